// The board's whole design below the clock: both engines, the on-chip memory they share, and a
// UART command interface a PC drives (dtlgen.host.uart_link). The same module runs in cocotb with
// the serial line simulated bit by bit, and in the bitstream under dtl_ecp5_top (PLL and pins).
//
// Memory: MEM_BYTES of on-chip RAM in BUS_BYTES byte-wide banks (registered reads), so a beat at any
// byte address reads every bank once: the engines' burst reads and byte-masked writes, and the
// link's byte accesses, all go through the same banks. The FE engine sees the memory from address
// 0, the RL engine from RL_BASE: the two engines' programs keep their own address maps.
//
// Commands (little-endian fields; every command ends with a reply, so the host knows it is done):
//   0x01 WRITE addr[4] len[4] data[len]          reply 0x81
//   0x02 READ  addr[4] len[4]                    reply data[len]
//   0x03 RUN   engine[1] desc_addr[4] count[2] perf_base[2]
//                                                reply 0x83 cycles[4] (start to done, engine clock)
//   0x04 PERF  index[2]                          reply cycles[4] of that descriptor (per-descriptor counters)
//   0x05 PING                                    reply "DTL" HAS_RL
// Anything else: reply 0xEE. The host never touches memory while an engine runs (the link is busy).
module dtl_uart_core #(
  parameter int FE_TM = 4,
  parameter int FE_TN = 4,
  parameter int FE_TR = 4,
  parameter int FE_TC = 4,
  parameter int A_BITS = 8,
  parameter int W_BITS = 8,
  parameter int M_MAX = 64,
  parameter int K_MAX = 7,
  parameter int S_MAX = 2,
  parameter int HAS_ADD = 1,
  parameter int DRAIN = 6,
  parameter int HAS_RL = 1,
  parameter int RL_TM = 2,
  parameter int RL_TN = 2,
  parameter int RL_BITS = 16,
  parameter int RL_ACC_BITS = 40,
  parameter int LANES = 4,
  parameter int A_DEPTH = 64,
  parameter int G_DEPTH = 64,
  parameter int W_DEPTH = 32,
  parameter int B_DEPTH = 16,
  parameter int LFSR_MASK = 'hB400,
  parameter int BUS_BYTES = 2,
  parameter int MEM_BYTES = 1 << 16,
  parameter int RL_BASE = 1 << 15,
  parameter int CLKS_PER_BIT = 434
) (
  input  logic       clk,
  input  logic       rst,
  input  logic       uart_rx,
  output logic       uart_tx,
  output logic [7:0] status  // LEDs: bit 0 FE busy, bit 1 RL busy, bit 2 link busy, bit 3 heartbeat
);
  localparam int DEPTH = MEM_BYTES / BUS_BYTES;
  localparam int IW = $clog2(DEPTH);
  localparam int LB = (BUS_BYTES > 1) ? $clog2(BUS_BYTES) : 1;
  localparam int MW = $clog2(MEM_BYTES);
  localparam logic [7:0] CMD_WRITE = 8'h01, CMD_READ = 8'h02, CMD_RUN = 8'h03, CMD_PERF = 8'h04, CMD_PING = 8'h05;

  // ---------------------------------------------------------------------------------------------
  // Engines: one memory master at a time (the one last started)
  logic                   start_fe, start_rl, busy_fe, busy_rl;
  /* verilator lint_off UNUSEDSIGNAL */
  logic                   done_fe, done_rl;  // the link waits for busy to fall instead
  /* verilator lint_on UNUSEDSIGNAL */
  logic [31:0]            run_desc_addr;
  logic [15:0]            run_count, run_perf_base;
  logic                   fe_rd_req_valid, rl_rd_req_valid, fe_wr_valid, rl_wr_valid, fe_perf_valid, rl_perf_valid;
  logic [31:0]            fe_rd_req_addr, rl_rd_req_addr, fe_wr_addr, rl_wr_addr, fe_perf_cycles, rl_perf_cycles;
  logic [15:0]            fe_rd_req_beats, rl_rd_req_beats;
  /* verilator lint_off UNUSEDSIGNAL */
  logic [15:0]            fe_perf_index, rl_perf_index;  // 256 counters: the low byte
  /* verilator lint_on UNUSEDSIGNAL */
  logic [BUS_BYTES*8-1:0] fe_wr_data, rl_wr_data, rd_data;
  logic [7:0]             fe_wr_bytes, rl_wr_bytes;
  logic                   rd_req_ready, rd_valid;
  logic                   use_rl;  // the RL engine owns the engine port

  fe_engine #(.TM(FE_TM), .TN(FE_TN), .TR(FE_TR), .TC(FE_TC), .A_BITS(A_BITS), .W_BITS(W_BITS),
              .BUS_BYTES(BUS_BYTES), .K_MAX(K_MAX), .S_MAX(S_MAX), .HAS_ADD(HAS_ADD), .M_MAX(M_MAX), .DRAIN(DRAIN)) fe (
    .clk, .rst, .start(start_fe), .desc_addr(run_desc_addr), .desc_count(run_count), .busy(busy_fe), .done(done_fe),
    .rd_req_valid(fe_rd_req_valid), .rd_req_ready(rd_req_ready && !use_rl), .rd_req_addr(fe_rd_req_addr),
    .rd_req_beats(fe_rd_req_beats), .rd_valid(rd_valid && !use_rl), .rd_data,
    .wr_valid(fe_wr_valid), .wr_ready(1'b1), .wr_addr(fe_wr_addr), .wr_data(fe_wr_data), .wr_bytes(fe_wr_bytes),
    .perf_valid(fe_perf_valid), .perf_index(fe_perf_index), .perf_cycles(fe_perf_cycles));

  if (HAS_RL != 0) begin : g_rl
    rl_engine #(.TM(RL_TM), .TN(RL_TN), .BITS(RL_BITS), .ACC_BITS(RL_ACC_BITS), .BUS_BYTES(BUS_BYTES),
                .LANES(LANES), .A_DEPTH(A_DEPTH), .G_DEPTH(G_DEPTH), .W_DEPTH(W_DEPTH), .B_DEPTH(B_DEPTH),
                .LFSR_MASK(16'(LFSR_MASK))) rl (
      .clk, .rst, .start(start_rl), .desc_addr(run_desc_addr), .desc_count(run_count), .perf_base(run_perf_base),
      .busy(busy_rl), .done(done_rl),
      .rd_req_valid(rl_rd_req_valid), .rd_req_ready(rd_req_ready && use_rl), .rd_req_addr(rl_rd_req_addr),
      .rd_req_beats(rl_rd_req_beats), .rd_valid(rd_valid && use_rl), .rd_data,
      .wr_valid(rl_wr_valid), .wr_ready(1'b1), .wr_addr(rl_wr_addr), .wr_data(rl_wr_data), .wr_bytes(rl_wr_bytes),
      .perf_valid(rl_perf_valid), .perf_index(rl_perf_index), .perf_cycles(rl_perf_cycles));
  end else begin : g_no_rl
    assign {busy_rl, done_rl, rl_rd_req_valid, rl_wr_valid, rl_perf_valid} = '0;
    assign {rl_rd_req_addr, rl_wr_addr, rl_perf_cycles, rl_rd_req_beats, rl_perf_index} = '0;
    assign {rl_wr_data, rl_wr_bytes} = '0;
  end

  // the active engine's port, its addresses moved to its region of the memory. Writes are registered
  // once on the way to the banks (the engines' address arithmetic ends at a register; nothing reads
  // an engine's output before the engine is done, so the extra cycle is invisible).
  logic                   e_req_valid, e_wr_valid;
  logic [31:0]            e_req_addr, e_wr_addr;
  logic [15:0]            e_req_beats;
  logic [BUS_BYTES*8-1:0] e_wr_data;
  logic [7:0]             e_wr_bytes;
  always_comb begin
    e_req_valid = use_rl ? rl_rd_req_valid : fe_rd_req_valid;
    e_req_addr  = use_rl ? rl_rd_req_addr + 32'(RL_BASE) : fe_rd_req_addr;
    e_req_beats = use_rl ? rl_rd_req_beats : fe_rd_req_beats;
  end
  always_ff @(posedge clk) begin
    if (rst) e_wr_valid <= 1'b0;
    else e_wr_valid <= use_rl ? rl_wr_valid : fe_wr_valid;
    e_wr_addr  <= use_rl ? rl_wr_addr + 32'(RL_BASE) : fe_wr_addr;
    e_wr_data  <= use_rl ? rl_wr_data : fe_wr_data;
    e_wr_bytes <= use_rl ? rl_wr_bytes : fe_wr_bytes;
  end

  // ---------------------------------------------------------------------------------------------
  // Burst reads: two queued requests, one beat issued per cycle, data one cycle later (registered banks)
  logic [31:0] q_addr [2];
  logic [15:0] q_beats [2];
  logic        q_head, q_tail;
  logic [1:0]  q_count;
  logic [15:0] q_beat;
  logic        issue;
  logic [31:0] issue_addr;
  logic [LB-1:0] rot;  // byte rotation of the beat in flight
  assign rd_req_ready = (q_count < 2'd2);
  assign issue = (q_count != 0);
  assign issue_addr = q_addr[q_head] + 32'(q_beat) * 32'(BUS_BYTES);
  always_ff @(posedge clk) begin
    if (rst) begin
      q_head <= 1'b0;
      q_tail <= 1'b0;
      q_count <= '0;
      q_beat <= '0;
      rd_valid <= 1'b0;
    end else begin
      logic push, pop;
      push = e_req_valid && rd_req_ready;
      pop = issue && (q_beat + 16'd1 >= q_beats[q_head]);
      if (push) begin
        q_addr[q_tail] <= e_req_addr;
        q_beats[q_tail] <= e_req_beats;
        q_tail <= ~q_tail;
      end
      if (issue) begin
        q_beat <= pop ? 16'd0 : q_beat + 16'd1;
        if (pop) q_head <= ~q_head;
      end
      q_count <= q_count + 2'(push) - 2'(pop);
      rd_valid <= issue;
      rot <= LB'(issue_addr);
    end
  end

  // ---------------------------------------------------------------------------------------------
  // Memory banks: bank b holds the bytes whose address mod BUS_BYTES is b
  logic [IW-1:0] b_raddr [BUS_BYTES];
  logic [IW-1:0] b_waddr [BUS_BYTES];
  logic [7:0]    b_rdata [BUS_BYTES];
  logic [7:0]    b_wdata [BUS_BYTES];
  logic          b_we    [BUS_BYTES];
  for (genvar b = 0; b < BUS_BYTES; b++) begin : g_bank
    dtl_ram #(.WIDTH(8), .DEPTH(DEPTH)) bank (
      .clk, .we(b_we[b]), .waddr(b_waddr[b]), .wdata(b_wdata[b]), .re(1'b1), .raddr(b_raddr[b]), .rdata(b_rdata[b]));
  end
  always_comb begin
    for (int j = 0; j < BUS_BYTES; j++) rd_data[j * 8 +: 8] = b_rdata[(32'(rot) + 32'(j)) % BUS_BYTES];
  end

  // The link's byte access (when no engine runs)
  logic          l_write;
  logic [31:0]   l_addr;
  logic [7:0]    l_wdata;

  logic [31:0] ra, wa, lane;
  always_comb begin
    ra = issue ? issue_addr : l_addr;
    wa = l_write ? l_addr : e_wr_addr;
    lane = '0;
    for (int b = 0; b < BUS_BYTES; b++) begin
      b_raddr[b] = IW'((32'(MW'(ra)) >> LB) + ((32'(b) < (ra % BUS_BYTES)) ? 32'd1 : 32'd0));
      b_waddr[b] = IW'((32'(MW'(wa)) >> LB) + ((32'(b) < (wa % BUS_BYTES)) ? 32'd1 : 32'd0));
      lane = (32'(b) + 32'(BUS_BYTES) - (wa % BUS_BYTES)) % BUS_BYTES;  // byte of the beat that lands in bank b
      if (l_write) begin
        b_we[b] = (lane == 0);
        b_wdata[b] = l_wdata;
      end else begin
        b_we[b] = e_wr_valid && (lane < 32'(e_wr_bytes));
        b_wdata[b] = e_wr_data[lane[LB-1:0] * 8 +: 8];
      end
    end
  end

  // ---------------------------------------------------------------------------------------------
  // Per-descriptor cycle counters (256) and the run's own cycle count
  logic [31:0] perf_mem [256];
  logic [31:0] perf_word, run_cycles;
  logic [7:0]  perf_addr;
  always_ff @(posedge clk) begin
    // one write port: only the engine that runs reports (a BRAM-friendly memory)
    if (use_rl ? rl_perf_valid : fe_perf_valid)
      perf_mem[use_rl ? rl_perf_index[7:0] : fe_perf_index[7:0]] <= use_rl ? rl_perf_cycles : fe_perf_cycles;
    perf_word <= perf_mem[perf_addr];
  end

  // ---------------------------------------------------------------------------------------------
  // The link
  logic       rx_valid, tx_send, tx_ready;
  logic [7:0] rx_data, tx_data;
  uart_rx #(.CLKS_PER_BIT(CLKS_PER_BIT)) receiver (.clk, .rst, .rx(uart_rx), .valid(rx_valid), .data(rx_data));
  uart_tx #(.CLKS_PER_BIT(CLKS_PER_BIT)) sender (.clk, .rst, .send(tx_send), .data(tx_data), .ready(tx_ready),
                                                  .tx(uart_tx));

  typedef enum logic [3:0] {
    L_CMD, L_ARGS, L_WRITE, L_READ, L_READ_WAIT, L_READ_SEND, L_RUN, L_RUN_WAIT, L_PERF, L_REPLY
  } lstate_t;
  lstate_t     lstate;
  logic [7:0]  cmd;
  logic [3:0]  args_left;
  /* verilator lint_off UNUSEDSIGNAL */
  logic [71:0] args;  // up to 9 argument bytes, shifted in from the top (the lowest byte drops out)
  /* verilator lint_on UNUSEDSIGNAL */
  logic [31:0] len;
  logic [39:0] reply;  // up to 5 reply bytes, sent from the low byte
  logic [2:0]  reply_left;
  logic        started;
  logic [23:0] heartbeat;

  function automatic logic [3:0] arg_count(input logic [7:0] c);
    case (c)
      CMD_WRITE, CMD_READ: arg_count = 4'd8;
      CMD_RUN: arg_count = 4'd9;
      CMD_PERF: arg_count = 4'd2;
      default: arg_count = 4'd0;
    endcase
  endfunction

  assign l_write = (lstate == L_WRITE) && rx_valid;
  assign l_wdata = rx_data;
  assign tx_send = tx_ready && ((lstate == L_REPLY && reply_left != 0) || lstate == L_READ_SEND);
  assign tx_data = (lstate == L_READ_SEND) ? b_rdata[l_addr % BUS_BYTES] : reply[7:0];
  assign status = {4'b0, heartbeat[23], lstate != L_CMD, busy_rl, busy_fe};

  always_ff @(posedge clk) begin
    start_fe <= 1'b0;
    start_rl <= 1'b0;
    heartbeat <= heartbeat + 1;
    if (rst) begin
      lstate <= L_CMD;
      use_rl <= 1'b0;
      reply_left <= '0;
      heartbeat <= '0;
    end else begin
      case (lstate)
        L_CMD: if (rx_valid) begin
          cmd <= rx_data;
          args_left <= arg_count(rx_data);
          args <= '0;
          if (arg_count(rx_data) != 0) lstate <= L_ARGS;
          else begin
            reply <= (rx_data == CMD_PING) ? {8'h0, 8'(HAS_RL), "L", "T", "D"} : 40'hEE;
            reply_left <= (rx_data == CMD_PING) ? 3'd4 : 3'd1;
            lstate <= L_REPLY;
          end
        end
        L_ARGS: if (rx_valid) begin
          args <= {rx_data, args[71:8]};
          args_left <= args_left - 1;
          if (args_left == 1) begin
            // the arguments arrive low byte first; shift them down to bit 0
            logic [71:0] a;
            a = {rx_data, args[71:8]} >> (8 * (9 - 32'(arg_count(cmd))));
            l_addr <= a[31:0];
            len <= a[63:32];
            case (cmd)
              CMD_WRITE: lstate <= (a[63:32] == 0) ? L_REPLY : L_WRITE;
              CMD_READ: lstate <= (a[63:32] == 0) ? L_CMD : L_READ;
              CMD_RUN: begin
                use_rl <= (a[7:0] != 0) && (HAS_RL != 0);
                run_desc_addr <= a[39:8];
                run_count <= a[55:40];
                run_perf_base <= a[71:56];
                lstate <= L_RUN;
              end
              default: begin  // PERF
                perf_addr <= a[7:0];
                started <= 1'b0;
                lstate <= L_PERF;
              end
            endcase
            reply <= 40'h81;
            reply_left <= 3'd1;
          end
        end
        L_WRITE: if (rx_valid) begin
          l_addr <= l_addr + 1;
          len <= len - 1;
          if (len == 1) lstate <= L_REPLY;
        end
        L_READ: if (!issue) lstate <= L_READ_WAIT;  // the bank read issued this cycle
        L_READ_WAIT: lstate <= L_READ_SEND;
        L_READ_SEND: if (tx_ready) begin
          l_addr <= l_addr + 1;
          len <= len - 1;
          lstate <= (len == 1) ? L_CMD : L_READ;
        end
        L_RUN: begin
          if (use_rl) start_rl <= 1'b1;
          else start_fe <= 1'b1;
          run_cycles <= '0;
          started <= 1'b0;
          lstate <= L_RUN_WAIT;
        end
        L_RUN_WAIT: begin
          run_cycles <= run_cycles + 1;
          started <= 1'b1;  // the engine left its idle state a cycle after start
          if (started && !(use_rl ? busy_rl : busy_fe)) begin
            reply <= {run_cycles, 8'h83};
            reply_left <= 3'd5;
            lstate <= L_REPLY;
          end
        end
        L_PERF: begin  // perf_word is read one cycle after perf_addr settles
          if (started) begin
            reply <= {8'h0, perf_word};
            reply_left <= 3'd4;
            lstate <= L_REPLY;
          end
          started <= ~started;
        end
        L_REPLY: begin
          if (reply_left == 0) lstate <= L_CMD;
          else if (tx_ready) begin
            reply <= {8'h0, reply[39:8]};
            reply_left <= reply_left - 1;
          end
        end
        default: lstate <= L_CMD;
      endcase
    end
  end
endmodule
