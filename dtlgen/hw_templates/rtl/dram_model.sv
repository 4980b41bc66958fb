// Testbench DRAM: byte-addressed memory behind the engines' burst read / beat write ports.
//
// A read request accepted in cycle t returns its first beat in cycle t + LATENCY, then one beat
// per cycle; requests queue and are served in order, so back-to-back requests stream without
// gaps (one latency per group of pipelined requests, as dtlgen.perf assumes). STALL_PERIOD > 0
// drops read beats on a seeded pseudo-random pattern (about one cycle in STALL_PERIOD).
// Contents come from INIT_FILE ($readmemh, one byte per line); `load` reads LOAD_FILE ($readmemh with
// @address lines: only the bytes it lists change) and `dump` writes bytes dump_lo..dump_hi to
// DUMP_FILE ($writememh): bulk data never passes through the testbench language.
module dram_model #(
  parameter int BUS_BYTES = 8,
  parameter int LATENCY = 40,
  parameter int SIZE_BYTES = 1 << 20,
  parameter int QUEUE = 256,
  parameter int STALL_PERIOD = 0,
  parameter int STALL_SEED = 1,
  parameter INIT_FILE = "",
  parameter LOAD_FILE = "dram_load.hex",
  parameter DUMP_FILE = "dram_dump.hex"
) (
  input  logic                   clk,
  input  logic                   rst,
  input  logic                   rd_req_valid,
  output logic                   rd_req_ready,
  input  logic [31:0]            rd_req_addr,
  input  logic [15:0]            rd_req_beats,
  output logic                   rd_valid,
  output logic [BUS_BYTES*8-1:0] rd_data,
  input  logic                   wr_valid,
  output logic                   wr_ready,
  input  logic [31:0]            wr_addr,
  input  logic [BUS_BYTES*8-1:0] wr_data,
  input  logic [7:0]             wr_bytes,
  input  logic                   load,
  input  logic                   dump,
  input  logic [31:0]            dump_lo,
  input  logic [31:0]            dump_hi
);
  localparam int QW = $clog2(QUEUE);
  localparam int AW = $clog2(SIZE_BYTES);

  logic [7:0]  mem [SIZE_BYTES];
  logic [31:0] q_addr [QUEUE];
  logic [15:0] q_beats [QUEUE];
  logic [63:0] q_time [QUEUE];
  logic [QW-1:0] head, tail;
  logic [QW:0]   count;
  logic [15:0]   beat;
  logic [63:0]   now;
  logic [15:0]   lfsr;
  logic          stall;

  initial begin
    if (INIT_FILE != "") $readmemh(INIT_FILE, mem);
  end

  assign rd_req_ready = (count < (QW + 1)'(QUEUE));
  assign wr_ready = 1'b1;
  assign stall = (STALL_PERIOD > 0) && (32'(lfsr) % 32'(STALL_PERIOD > 0 ? STALL_PERIOD : 1) == 0);
  assign rd_valid = (count != 0) && (q_time[head] <= now) && !stall;

  always_comb begin
    rd_data = '0;
    for (int j = 0; j < BUS_BYTES; j++)
      rd_data[j * 8 +: 8] = mem[AW'(q_addr[head] + 32'(beat) * BUS_BYTES + 32'(j))];
  end

  always_ff @(posedge clk) begin
    if (rst) begin
      head <= '0;
      tail <= '0;
      count <= '0;
      beat <= '0;
      now <= '0;
      lfsr <= 16'(STALL_SEED) | 16'd1;
    end else begin
      logic push, pop;
      now <= now + 1;
      lfsr <= {1'b0, lfsr[15:1]} ^ (lfsr[0] ? 16'hB400 : 16'h0000);
      push = rd_req_valid && rd_req_ready;
      pop = 1'b0;
      if (push) begin
        q_addr[tail] <= rd_req_addr;
        q_beats[tail] <= rd_req_beats;
        q_time[tail] <= now + 64'(LATENCY);
        tail <= tail + 1;
      end
      if (rd_valid) begin
        if (beat + 1 < q_beats[head]) beat <= beat + 1;
        else begin
          beat <= '0;
          head <= head + 1;
          pop = 1'b1;
        end
      end
      count <= count + (QW + 1)'(push) - (QW + 1)'(pop);
      if (wr_valid) begin
        for (int j = 0; j < BUS_BYTES; j++)
          if (8'(j) < wr_bytes) mem[AW'(wr_addr + 32'(j))] <= wr_data[j * 8 +: 8];
      end
      if (load) $readmemh(LOAD_FILE, mem);
      if (dump) $writememh(DUMP_FILE, mem, dump_lo, dump_hi);
    end
  end
endmodule
