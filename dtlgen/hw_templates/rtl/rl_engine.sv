// Retrainable-layer engine: descriptor-driven tiled GEMM that runs forward, backward and the weight
// update of the retrainable layers on chip (dtlgen/perf/rl.py holds the schedule this RTL runs).
//
// A TM x TN array of BITS-wide multipliers works in three modes on one layer (a GEMM per sample;
// G = batch x positions rows):
//   FWD        Y = W X + b, requantised, activation          loops  m-tile, row g, n-tile
//   BWD_DATA   dX = (W^T dY) requantised, masked by relu'(X)  loops  n-tile, row g, m-tile
//   UPDATE     dW = dY^T X over the batch (each PE accumulates its own element), requantised, then
//              W <- W - 2^-lr dW with stochastic rounding     loops  m-tile, n-tile, row g
// UPDATE is BWD_WEIGHT fused with the update: a tile's dW never leaves the accumulators. The bias is
// column N of the augmented matrix [W | b] (its input is the constant 1), so db comes out of the
// same accumulators, and the LFSR of dtlgen/quant/fixed.py is consumed in row-major order of
// [W | b]: lane (i, j) of a tile uses the state of element (m0 + i, n0 + j). Row-start states jump
// with the 16x16 GF(2) matrices A^(N+1) and A^(TM(N+1)) that the host puts in the descriptor.
//
// Weights and biases stay on chip in TM*TN weight banks and TM bias banks (one tile per address),
// read as a whole tile in one cycle in both FWD and BWD_DATA: no transposed copy, no stall.
// Activations (A stash: every layer's input and the last output) and gradients (G stash: every
// layer's output gradient) live in LANES banks, a matrix row-major with a row pitch of whole
// LANES-value words, so any TM, TN or bus-beat run of consecutive values hits distinct banks.
// Data moves between DRAM and the stashes / parameter banks with LOAD / STORE descriptors; the
// host (the Zynq PS, or the cocotb test) computes the softmax cross-entropy gradient between the
// forward list and the backward list. Numerics: dtlgen/quant/fixed.py, bit for bit.
module rl_engine #(
  parameter int TM = 4,
  parameter int TN = 4,
  parameter int BITS = 16,
  parameter int ACC_BITS = 40,
  parameter int BUS_BYTES = 8,
  parameter int LANES = 8,      // stash banks: a power of two >= TM, TN and BUS_BYTES / 2
  parameter int A_DEPTH = 256,  // words per activation-stash bank
  parameter int G_DEPTH = 256,  // words per gradient-stash bank
  parameter int W_DEPTH = 64,   // weight tiles
  parameter int B_DEPTH = 16,   // bias rows (TM biases each)
  parameter logic [15:0] LFSR_MASK = 16'hB400
) (
  input  logic                     clk,
  input  logic                     rst,
  // control
  input  logic                     start,
  input  logic [31:0]              desc_addr,
  input  logic [15:0]              desc_count,
  input  logic [15:0]              perf_base,
  output logic                     busy,
  output logic                     done,
  // memory read port: burst requests (at most 65535 beats each), data returns in request order,
  // one beat per cycle
  output logic                     rd_req_valid,
  input  logic                     rd_req_ready,
  output logic [31:0]              rd_req_addr,
  output logic [15:0]              rd_req_beats,
  input  logic                     rd_valid,
  input  logic [BUS_BYTES*8-1:0]   rd_data,
  // memory write port: one beat per cycle
  output logic                     wr_valid,
  input  logic                     wr_ready,
  output logic [31:0]              wr_addr,
  output logic [BUS_BYTES*8-1:0]   wr_data,
  output logic [7:0]               wr_bytes,
  // performance counter: cycles of each descriptor (index perf_base + position in the list)
  output logic                     perf_valid,
  output logic [15:0]              perf_index,
  output logic [31:0]              perf_cycles
);
  localparam int VALS = BUS_BYTES / 2;  // 16-bit values per bus beat
  localparam int LOG2L = $clog2(LANES);
  localparam int TMN = TM * TN;
  localparam int DESC_BYTES = 128;
  localparam int DESC_WORDS = DESC_BYTES / 4;
  localparam int DESC_BEATS = DESC_BYTES / BUS_BYTES;
  localparam int TILE_BEATS = (TMN + VALS - 1) / VALS;  // a weight tile in DRAM, padded to whole beats
  localparam int BROW_BEATS = (TM + VALS - 1) / VALS;   // a bias row in DRAM
  localparam int AAW = $clog2(A_DEPTH);
  localparam int GAW = $clog2(G_DEPTH);
  localparam int WAW = $clog2(W_DEPTH);
  localparam int BAW = $clog2(B_DEPTH);
  localparam int PROD_BITS = 2 * BITS;
  localparam int RR = (TM > TN) ? TM : TN;         // terms a lane sums (FWD: TN, BWD_DATA: TM)
  localparam int RT = (RR > 1) ? $clog2(RR) : 0;   // adder-tree levels (dtlgen.perf.rl.reduce_depth)
  localparam int RW = 1 << RT;                     // terms per lane, padded
  // Output arithmetic, sized to what the shifts can reach (the program generator holds the bias
  // alignment to 0..31 and every other shift to -31..127): the requantiser's input is an accumulator
  // plus a bias shifted by up to 31; a left shift of BITS or more saturates every non-zero value, and
  // a right shift past the input's width leaves only its sign, so the shift amounts are clamped to
  // those limits once per descriptor and the datapath never sees a wider value.
  localparam int VB = ((ACC_BITS > BITS + 31) ? ACC_BITS : BITS + 31) + 1;  // requantiser input
  localparam int TB = VB + BITS;  // after the shift
  localparam int SRB = BITS + 2;  // update step: values beyond +-2^(BITS+1) saturate the new weight anyway
  localparam int NQ = (TMN > LANES) ? TMN : LANES;  // requantisers, shared by UPDATE (one per PE) and FWD / BWD_DATA (one per lane)
  // BEGIN dtlgen.isa constants (generated by `python -m dtlgen.isa`: edit the spec, not these lines)
  localparam logic [3:0] M_LOAD_A = 4'd1, M_LOAD_G = 4'd2, M_STORE_A = 4'd3, M_FWD = 4'd4, M_BWD_DATA = 4'd5,
                         M_UPDATE = 4'd6, M_LOAD_P = 4'd7, M_STORE_P = 4'd8;
  /* verilator lint_off UNUSEDPARAM */
  localparam logic [1:0] ACT_NONE = 2'd0, ACT_RELU = 2'd1, ACT_RELU6 = 2'd2;
  /* verilator lint_on UNUSEDPARAM */
  // END dtlgen.isa constants
  localparam int PW = (TM > 1) ? $clog2(TM) : 1;

  // ---------------------------------------------------------------------------------------------
  // Numerics (dtlgen/quant/fixed.py), one short stage at a time
  //   requantise by s (> 0: round half up; <= 0: exact left shift), saturate:
  //     shift   t = v >>> (min(s, VB) - 1), or v <<< min(-s, BITS)
  //     round   sat((t + 1) >>> 1), or sat(t), the saturation decided on t
  //   stochastic rounding of v by s with 16 random bits r (then W - that, saturated):
  //     s > 0   a = (v >>> pre) + (r & mask), pre = min(max(s - 16, 0), 16), mask = 2^min(s, 16) - 1,
  //             then a >>> min(s, 16) (for s > 16 the term r << (s - 16) only moves v's floor);
  //             clamping both steps' results to SRB bits changes no saturated new weight
  //     s <= 0  v <<< min(-s, SRB), clamped to SRB bits
  // A descriptor's shifts become these amounts in S_SETUP (the `rq_*` and `sr_*` registers).
  typedef struct packed {
    logic       right;  // s > 0
    logic [6:0] rs;     // right: min(s, VB) - 1
    logic [4:0] ls;     // left: min(-s, BITS)
  } rq_t;
  typedef struct packed {
    logic        right;  // s > 0
    logic [4:0]  pre;    // right: min(max(s - 16, 0), 16)
    logic [15:0] mask;   // right: 2^min(s, 16) - 1
    logic [4:0]  post;   // right: min(s, 16)
    logic [4:0]  ls;     // left: min(-s, SRB)
  } sr_t;

  // (the functions build the structs as packed vectors: yosys assigns no members of a function result)
  function automatic rq_t rq_amounts(input logic signed [7:0] s);
    logic [6:0] rs;
    logic [4:0] ls;
    rs = '0;
    ls = '0;
    if (s > 0) rs = 7'((s > 8'(VB) ? 8'(VB) : s) - 8'sd1);
    else ls = 5'((-s > 8'(BITS)) ? 8'(BITS) : -s);
    rq_amounts = {s > 0, rs, ls};
  endfunction

  function automatic sr_t sr_amounts(input logic signed [7:0] s);
    logic [4:0]  pre, post, ls;
    logic [15:0] mask;
    pre = '0;
    post = '0;
    ls = '0;
    if (s > 0) begin
      pre = 5'((s > 8'sd32) ? 8'sd16 : (s > 8'sd16) ? s - 8'sd16 : 8'sd0);
      post = 5'((s > 8'sd16) ? 8'sd16 : s);
    end else begin
      ls = 5'((-s > 8'(SRB)) ? 8'(SRB) : -s);
    end
    mask = 16'((17'd1 << post) - 17'd1);
    sr_amounts = {s > 0, pre, mask, post, ls};
  endfunction

  function automatic logic signed [TB-1:0] rq_shift(input logic signed [VB-1:0] v, input logic right,
                                                    input logic [6:0] rs, input logic [4:0] ls);
    rq_shift = right ? TB'(v >>> rs) : TB'(v) <<< ls;
  endfunction

  function automatic logic signed [BITS-1:0] rq_round(input logic signed [TB-1:0] t, input logic right);
    logic [BITS:0] up;
    up = t[BITS:0] + 1'b1;
    if (right) begin
      if (t >= (TB'(1) <<< BITS) - TB'(1)) rq_round = {1'b0, {(BITS - 1){1'b1}}};
      else if (t < -(TB'(1) <<< BITS) - TB'(1)) rq_round = {1'b1, {(BITS - 1){1'b0}}};
      else rq_round = BITS'(up >> 1);
    end else begin
      if (t > (TB'(1) <<< (BITS - 1)) - TB'(1)) rq_round = {1'b0, {(BITS - 1){1'b1}}};
      else if (t < -(TB'(1) <<< (BITS - 1))) rq_round = {1'b1, {(BITS - 1){1'b0}}};
      else rq_round = t[BITS-1:0];
    end
  endfunction

  function automatic logic signed [SRB-1:0] sr_term(input logic signed [BITS-1:0] v, input logic right,
                                                   input logic [4:0] pre, input logic [15:0] mask, input logic [4:0] ls,
                                                   input logic [15:0] r);
    logic signed [BITS+SRB-1:0] l;
    if (right) begin
      sr_term = SRB'(v >>> pre) + $signed(SRB'({1'b0, r & mask}));
    end else begin
      l = (BITS + SRB)'(v) <<< ls;
      if (l > (BITS + SRB)'((1 <<< (SRB - 1)) - 1)) sr_term = {1'b0, {(SRB - 1){1'b1}}};
      else if (l < -(BITS + SRB)'(1 <<< (SRB - 1))) sr_term = {1'b1, {(SRB - 1){1'b0}}};
      else sr_term = l[SRB-1:0];
    end
  endfunction

  function automatic logic signed [BITS-1:0] sr_sub(input logic signed [BITS-1:0] w, input logic signed [SRB-1:0] step);
    logic signed [SRB:0] d;
    d = (SRB + 1)'(w) - (SRB + 1)'(step);
    if (d > (SRB + 1)'((1 <<< (BITS - 1)) - 1)) sr_sub = {1'b0, {(BITS - 1){1'b1}}};
    else if (d < -(SRB + 1)'(1 <<< (BITS - 1))) sr_sub = {1'b1, {(BITS - 1){1'b0}}};
    else sr_sub = d[BITS-1:0];
  endfunction

  function automatic logic [15:0] lfsr_step(input logic [15:0] v);
    lfsr_step = {1'b0, v[15:1]} ^ (v[0] ? LFSR_MASK : 16'h0000);
  endfunction

  // ---------------------------------------------------------------------------------------------
  // Descriptor
  logic [15:0] desc_h [DESC_BYTES / 2];  // filled a bus beat at a time (a beat may be 16 bits)
  logic [31:0] desc [DESC_WORDS];
  logic [255:0] j_row, j_blk;  // LFSR jump matrices: row r in bits 16r +: 16
  always_comb begin
    for (int w = 0; w < DESC_WORDS; w++) desc[w] = {desc_h[2 * w + 1], desc_h[2 * w]};
    for (int w = 0; w < 8; w++) begin
      j_row[32 * w +: 32] = desc[16 + w];
      j_blk[32 * w +: 32] = desc[24 + w];
    end
  end
  logic [3:0]  d_mode;
  logic [1:0]  d_act;
  logic signed [BITS-1:0] d_six;
  logic [15:0] d_m, d_n, d_g, d_seed, d_xa, d_ya, d_gy, d_gx, d_wbase, d_bbase, d_mt, d_nt, d_nta, d_pn, d_pm;
  logic [31:0] d_dram, d_beats;
  logic signed [7:0] d_s0, d_s1, d_s2, d_s3;
  always_comb begin
    // BEGIN dtlgen.isa decode (generated by `python -m dtlgen.isa`: edit the spec, not these lines)
    d_mode  = desc[0][3:0];
    d_act   = desc[0][5:4];
    d_six   = BITS'(desc[0][31:16]);
    d_m     = desc[1][15:0];
    d_n     = desc[1][31:16];
    d_g     = desc[2][15:0];
    d_seed  = desc[2][31:16];
    d_xa    = desc[3][15:0];
    d_ya    = desc[3][31:16];
    d_gy    = desc[4][15:0];
    d_gx    = desc[4][31:16];
    d_wbase = desc[5][15:0];
    d_bbase = desc[5][31:16];
    d_dram  = desc[6];
    d_s0    = desc[7][7:0];
    d_s1    = desc[7][15:8];
    d_s2    = desc[7][23:16];
    d_s3    = desc[7][31:24];
    d_mt    = desc[8][15:0];
    d_nt    = desc[8][31:16];
    d_nta   = desc[9][15:0];
    d_pn    = desc[9][31:16];
    d_pm    = desc[10][15:0];
    d_beats = desc[11];
    // END dtlgen.isa decode
  end

  // an LFSR jump: output bit r is the parity of row r of the matrix and the state
  // (words 16..23 hold A^(N+1), words 24..31 A^(TM(N+1)), A being one LFSR step over GF(2))
  function automatic logic [15:0] jump(input logic [255:0] m, input logic [15:0] v);
    for (int r = 0; r < 16; r++) jump[r] = ^(m[16 * r +: 16] & v);
  endfunction

  // ---------------------------------------------------------------------------------------------
  // Memories: activation stash (A), gradient stash (G), weight tiles, bias rows
  logic [AAW-1:0]  a_raddr [LANES];
  logic [AAW-1:0]  a_waddr [LANES];
  logic [BITS-1:0] a_rdata [LANES];
  logic [BITS-1:0] a_wdata [LANES];
  logic            a_we    [LANES];
  logic [GAW-1:0]  g_raddr [LANES];
  logic [GAW-1:0]  g_waddr [LANES];
  logic [BITS-1:0] g_rdata [LANES];
  logic [BITS-1:0] g_wdata [LANES];
  logic            g_we    [LANES];
  logic [WAW-1:0]  w_raddr, w_waddr;
  logic [BITS-1:0] w_rdata [TMN];
  logic [BITS-1:0] w_wdata [TMN];
  logic            w_we    [TMN];
  logic [BAW-1:0]  b_raddr, b_waddr;
  logic [BITS-1:0] b_rdata [TM];
  logic [BITS-1:0] b_wdata [TM];
  logic            b_we    [TM];

  for (genvar l = 0; l < LANES; l++) begin : g_stash
    dtl_ram #(.WIDTH(BITS), .DEPTH(A_DEPTH)) a_bank (
      .clk, .we(a_we[l]), .waddr(a_waddr[l]), .wdata(a_wdata[l]), .re(1'b1), .raddr(a_raddr[l]), .rdata(a_rdata[l]));
    dtl_ram #(.WIDTH(BITS), .DEPTH(G_DEPTH)) g_bank (
      .clk, .we(g_we[l]), .waddr(g_waddr[l]), .wdata(g_wdata[l]), .re(1'b1), .raddr(g_raddr[l]), .rdata(g_rdata[l]));
  end
  for (genvar e = 0; e < TMN; e++) begin : g_weights
    dtl_ram #(.WIDTH(BITS), .DEPTH(W_DEPTH)) w_bank (
      .clk, .we(w_we[e]), .waddr(w_waddr), .wdata(w_wdata[e]), .re(1'b1), .raddr(w_raddr), .rdata(w_rdata[e]));
  end
  for (genvar i = 0; i < TM; i++) begin : g_bias
    dtl_ram #(.WIDTH(BITS), .DEPTH(B_DEPTH)) b_bank (
      .clk, .we(b_we[i]), .waddr(b_waddr), .wdata(b_wdata[i]), .re(1'b1), .raddr(b_raddr), .rdata(b_rdata[i]));
  end

  // A run of consecutive values starting at flat offset f0 of a row that starts at word `row`:
  // bank l holds offset f with f mod LANES == l, at word row + f / LANES.
  function automatic logic [31:0] bank_word(input logic [31:0] row, input logic [31:0] f0, input int l);
    bank_word = row + (f0 >> LOG2L) + ((32'(l) < (f0 & 32'(LANES - 1))) ? 32'd1 : 32'd0);
  endfunction

  // ---------------------------------------------------------------------------------------------
  // Control
  typedef enum logic [2:0] {S_IDLE, S_FETCH, S_FETCH_DATA, S_SETUP, S_RUN, S_FINISH, S_DONE} state_t;
  state_t state;
  logic [15:0] desc_index;
  logic [31:0] cur_addr, cycle_count;
  logic [15:0] beat;
  logic        run_done;

  assign busy = (state != S_IDLE) && (state != S_DONE);
  assign done = (state == S_DONE);

  // ---------------------------------------------------------------------------------------------
  // GEMM sweep counters (FWD, BWD_DATA, UPDATE): outer c0, middle c1, inner c2, one issue per cycle
  logic [15:0] c0, c1, c2, l0, l1, l2;
  logic        issuing, prep;
  logic [15:0] prep_count;
  always_comb begin
    case (d_mode)
      M_FWD:      begin l0 = d_mt; l1 = d_g;   l2 = d_nt; end
      M_BWD_DATA: begin l0 = d_nt; l1 = d_g;   l2 = d_mt; end
      default:    begin l0 = d_mt; l1 = d_nta; l2 = d_g;  end
    endcase
  end

  // Stage tags travel with the data through the pipeline.
  typedef struct packed {
    logic        valid;
    logic        first;
    logic        last;
    logic        blk_end;  // UPDATE: last tile of a row block (the LFSR row starts jump)
    logic [31:0] m0;
    logic [31:0] n0;
    logic [31:0] out_row;  // FWD: Y row in A; BWD_DATA: dX row in G
    logic [31:0] x_row;    // BWD_DATA: X row in A (the producer's activation mask)
    logic [31:0] tile;     // weight tile address
    logic [31:0] brow;     // bias row address
    logic [LOG2L:0] rot_a;  // rotation of the A-stash read
    logic [LOG2L:0] rot_g;  // rotation of the G-stash read
  } tag_t;
  tag_t st1, st2, st3, st4;

  // Counter addressing: each loop axis (m-tile, n-tile, row g) keeps its index and the products the
  // addresses need (m0 = t_m TM, t_m Nt, n0 = t_n TN, g Pn, g Pm) as registers that add their step
  // when the axis advances and clear when it wraps: no multiplier on the issue path.
  logic [15:0] a_tm, a_tn;           // tile indices
  logic [31:0] a_m0, a_tmnt, a_n0;   // t_m TM, t_m Nt, t_n TN
  logic [31:0] a_gpn, a_gpm;         // g Pn, g Pm
  logic        step2, wrap2, step1, wrap1, step0;
  logic        inc_m, inc_n, inc_g, clr_m, clr_n, clr_g;
  always_comb begin
    step2 = issuing && (c2 + 1 < l2);
    wrap2 = issuing && !step2;
    step1 = wrap2 && (c1 + 1 < l1);
    wrap1 = wrap2 && !step1;
    step0 = wrap1 && (c0 + 1 < l0);
    case (d_mode)
      M_FWD:      begin inc_m = step0; clr_m = 1'b0;  inc_g = step1; clr_g = wrap1; inc_n = step2; clr_n = wrap2; end
      M_BWD_DATA: begin inc_n = step0; clr_n = 1'b0;  inc_g = step1; clr_g = wrap1; inc_m = step2; clr_m = wrap2; end
      default:    begin inc_m = step0; clr_m = 1'b0;  inc_n = step1; clr_n = wrap1; inc_g = step2; clr_g = wrap2; end
    endcase
  end
  always_ff @(posedge clk) begin
    if (state == S_SETUP) begin
      {a_tm, a_tn, a_m0, a_tmnt, a_n0, a_gpn, a_gpm} <= '0;
    end else begin
      if (inc_m) begin
        a_tm <= a_tm + 1;
        a_m0 <= a_m0 + 32'(TM);
        a_tmnt <= a_tmnt + 32'(d_nt);
      end else if (clr_m) begin
        a_tm <= '0;
        a_m0 <= '0;
        a_tmnt <= '0;
      end
      if (inc_n) begin
        a_tn <= a_tn + 1;
        a_n0 <= a_n0 + 32'(TN);
      end else if (clr_n) begin
        a_tn <= '0;
        a_n0 <= '0;
      end
      if (inc_g) begin
        a_gpn <= a_gpn + 32'(d_pn);
        a_gpm <= a_gpm + 32'(d_pm);
      end else if (clr_g) begin
        a_gpn <= '0;
        a_gpm <= '0;
      end
    end
  end

  tag_t iss;
  always_comb begin
    iss = '0;
    iss.valid = issuing;
    iss.m0 = a_m0;
    iss.n0 = a_n0;
    iss.tile = 32'(d_wbase) + a_tmnt + 32'(a_tn);
    iss.brow = 32'(d_bbase) + 32'(a_tm);
    iss.blk_end = (c1 == l1 - 1);
    iss.first = (c2 == 16'd0);
    iss.last = (c2 == l2 - 1);
    case (d_mode)
      M_FWD: begin
        iss.out_row = 32'(d_ya) + a_gpm;
        iss.rot_a = (LOG2L + 1)'(iss.n0 & 32'(LANES - 1));
      end
      M_BWD_DATA: begin
        iss.out_row = 32'(d_gx) + a_gpn;
        iss.x_row = 32'(d_xa) + a_gpn;
        iss.rot_g = (LOG2L + 1)'(iss.m0 & 32'(LANES - 1));
      end
      default: begin
        iss.rot_a = (LOG2L + 1)'(iss.n0 & 32'(LANES - 1));
        iss.rot_g = (LOG2L + 1)'(iss.m0 & 32'(LANES - 1));
      end
    endcase
  end

  // ---------------------------------------------------------------------------------------------
  // Pipeline registers
  logic signed [BITS-1:0]     op_x [TN];   // stage 2 operands: X row slice (or the bias column's 1)
  logic signed [BITS-1:0]     op_y [TM];   // dY row slice
  logic signed [BITS-1:0]     op_w [TMN];  // weight tile
  logic signed [PROD_BITS-1:0] prod [TMN];  // stage 3
  logic signed [ACC_BITS-1:0] lacc [LANES];  // lane accumulators (FWD: TM lanes, BWD_DATA: TN lanes)
  logic signed [ACC_BITS-1:0] pacc [TMN];    // PE accumulators (UPDATE)
  logic signed [ACC_BITS-1:0] ovec [LANES];  // stage 4: finished lane sums
  logic signed [ACC_BITS-1:0] uvec [TMN];    // stage 4: finished dW tile (incl. the bias column)
  // FWD and BWD_DATA sum each lane's products in an adder tree of RT levels, one register each,
  // before the lane accumulators; UPDATE accumulates each PE's product straight from stage 3.
  // `sr` is the tag entering the accumulators (and the output stage's side reads).
  logic signed [ACC_BITS-1:0] red0 [LANES * RW];                    // a lane's terms (mode's choice)
  logic signed [ACC_BITS-1:0] red [(RT > 0 ? RT : 1) * LANES * RW];  // level k (1..RT) at k - 1
  tag_t rtag [RT > 0 ? RT : 1];
  tag_t sr;
  logic rt_busy;
  logic m_fwd, m_bwd, m_upd;  // the mode, registered per descriptor for the datapath
  always_ff @(posedge clk) begin
    m_fwd <= (d_mode == M_FWD);
    m_bwd <= (d_mode == M_BWD_DATA);
    m_upd <= (d_mode == M_UPDATE);
  end
  always_comb begin
    for (int l = 0; l < LANES; l++)
      for (int r = 0; r < RW; r++) begin
        if (m_fwd && l < TM && r < TN) red0[l * RW + r] = ACC_BITS'(prod[(l < TM && r < TN) ? l * TN + r : 0]);
        else if (m_bwd && l < TN && r < TM) red0[l * RW + r] = ACC_BITS'(prod[(l < TN && r < TM) ? r * TN + l : 0]);
        else red0[l * RW + r] = '0;
      end
    sr = (RT == 0 || m_upd) ? st3 : rtag[(RT > 0) ? RT - 1 : 0];
    rt_busy = 1'b0;
    for (int k = 0; k < RT; k++) rt_busy = rt_busy | rtag[k].valid;
  end
  always_ff @(posedge clk) begin
    if (rst) begin
      for (int k = 0; k < (RT > 0 ? RT : 1); k++) rtag[k] <= '0;
    end else begin
      rtag[0] <= m_upd ? '0 : st3;
      for (int k = 1; k < RT; k++) rtag[k] <= rtag[k - 1];
    end
    for (int k = 0; k < RT; k++)
      for (int l = 0; l < LANES; l++)
        for (int i = 0; i < (RW >> (k + 1)); i++)
          red[(k * LANES + l) * RW + i] <= (k == 0)
            ? red0[l * RW + 2 * i] + red0[l * RW + 2 * i + 1]
            : red[((k - 1) * LANES + l) * RW + 2 * i] + red[((k - 1) * LANES + l) * RW + 2 * i + 1];
  end
  logic signed [BITS-1:0]     res [LANES];   // stage 5: FWD / BWD_DATA results to write
  logic                       res_ok [LANES];
  /* verilator lint_off UNUSEDSIGNAL */
  tag_t                       sa, sb, sc, sd, se;  // output stages A-E (the later ones need only some of the tags)
  tag_t                       st5;
  /* verilator lint_on UNUSEDSIGNAL */
  logic [15:0]                rowstart [TM];  // LFSR state at the start of row m0 + i of [W | b]
  logic [15:0]                ptr [TM];       // LFSR state at element (m0 + i, n0)
  logic [15:0]                rnd [TMN];

  always_comb begin
    for (int i = 0; i < TM; i++) begin
      logic [15:0] r;
      r = ptr[i];
      for (int j = 0; j < TN; j++) begin
        rnd[i * TN + j] = r;
        r = lfsr_step(r);
      end
    end
  end
  logic [15:0] ptr_next [TM];  // ptr advanced by TN elements
  always_comb begin
    for (int i = 0; i < TM; i++) begin
      logic [15:0] r;
      r = ptr[i];
      for (int j = 0; j < TN; j++) r = lfsr_step(r);
      ptr_next[i] = r;
    end
  end

  // ---------------------------------------------------------------------------------------------
  // Transfer (LOAD / STORE) state
  logic [31:0] xfer_word;   // stash word or parameter tile / bias row
  logic [31:0] xfer_lane;   // first lane of the beat within the word / tile
  logic [31:0] xfer_beats;  // beats moved so far
  // LOAD: a transfer of d_beats beats goes out as a chain of read requests of at most REQ_MAX beats
  // (the request port counts beats in 16 bits). Each request is offered the cycle after the previous
  // one is accepted, long before that one's data ends, so a memory that queues requests streams the
  // whole transfer after one latency, without a gap: the cycle model's LOAD term does not change.
  localparam logic [15:0] REQ_MAX = 16'hFFFF;
  logic        is_load;
  logic [31:0] req_left;    // beats still to request (0: nothing to request)
  logic [31:0] req_addr;    // DRAM address of the next request
  logic [15:0] req_beats;   // beats of the next request
  assign is_load = (d_mode == M_LOAD_A) || (d_mode == M_LOAD_G) || (d_mode == M_LOAD_P);
  assign req_beats = (req_left > 32'(REQ_MAX)) ? REQ_MAX : req_left[15:0];
  logic        in_bias;     // LOAD_P / STORE_P: past the weight tiles
  logic [31:0] issue_beat;  // STORE: beats read from the stash / banks
  logic        st_valid;    // STORE: a read issued last cycle
  logic [31:0] st_lane;
  logic        st_bias;
  logic [31:0] st_word;
  logic        store_stall;
  assign store_stall = wr_valid && !wr_ready;

  // Next transfer position after one beat (stashes: LANES-value words; parameters: padded tiles / rows).
  function automatic logic [63:0] next_pos(input logic [3:0] mode, input logic [31:0] word, input logic [31:0] lane,
                                          input logic bias);
    logic [31:0] span;
    span = (mode == M_LOAD_P || mode == M_STORE_P) ? (bias ? 32'(BROW_BEATS * VALS) : 32'(TILE_BEATS * VALS))
                                                    : 32'(LANES);
    if (lane + 32'(VALS) >= span) next_pos = {word + 32'd1, 32'd0};
    else next_pos = {word, lane + 32'(VALS)};
  endfunction

  // Output stages: A adds the bias (FWD) and captures the bank words; B shifts; C rounds and
  // saturates; D applies the activation / mask (FWD, BWD_DATA) or forms the stochastic-rounding term
  // (UPDATE); E shifts that term into the step (UPDATE); stage 5 subtracts and saturates (UPDATE) and
  // writes. Requantiser q is lane q in FWD / BWD_DATA and PE q in UPDATE.
  rq_t rq0, rq1;  // requantise by s0; by s1 (UPDATE's bias column)
  sr_t sr2, sr3;  // stochastic rounding by s2 (weights), s3 (biases)
  logic signed [VB-1:0]   qa_v [NQ];
  logic signed [TB-1:0]   qb_t [NQ];
  logic signed [BITS-1:0] qc_y [NQ];
  logic signed [SRB-1:0]  qd_t [NQ];
  logic                   qa_bias [NQ], qb_bias [NQ], qc_bias [NQ], qd_bias [NQ];  // UPDATE: the bias column
  logic signed [BITS-1:0] qa_old [NQ], qb_old [NQ], qc_old [NQ], qd_old [NQ];      // UPDATE: the value it updates
  logic [15:0]            qa_rnd [NQ], qb_rnd [NQ], qc_rnd [NQ];                  // UPDATE: its random bits
  logic signed [BITS-1:0] qa_x [NQ], qb_x [NQ], qc_x [NQ];                        // BWD_DATA: the ReLU mask's input
  logic signed [BITS-1:0] qd_y [NQ], qe_y [NQ];                                   // FWD / BWD_DATA: the result
  logic signed [SRB-1:0]  qe_step [NQ];                                           // UPDATE: the step subtracted
  logic                   qe_bias [NQ];
  logic signed [BITS-1:0] qe_old [NQ];

  // UPDATE results (stage 5 writes them)
  logic signed [BITS-1:0] upd_w [TMN];
  logic                   upd_w_ok [TMN];
  logic signed [BITS-1:0] upd_b [TM];
  logic                   upd_b_ok [TM];

  // ---------------------------------------------------------------------------------------------
  // Memory-port addresses and write data (combinational from the state above)
  always_comb begin
    logic [BITS-1:0]  value;
    logic [LOG2L-1:0] lane, k;
    int               pe;
    logic [31:0]      xrow, yrow, f0;
    value = '0;
    lane = '0;
    k = '0;
    pe = 0;
    xrow = '0;
    yrow = '0;
    f0 = '0;
    for (int l = 0; l < LANES; l++) begin
      a_raddr[l] = '0;
      a_waddr[l] = '0;
      a_wdata[l] = '0;
      a_we[l] = 1'b0;
      g_raddr[l] = '0;
      g_waddr[l] = '0;
      g_wdata[l] = '0;
      g_we[l] = 1'b0;
    end
    w_raddr = '0;
    w_waddr = '0;
    b_raddr = '0;
    b_waddr = '0;
    for (int e = 0; e < TMN; e++) begin
      w_wdata[e] = '0;
      w_we[e] = 1'b0;
    end
    for (int i = 0; i < TM; i++) begin
      b_wdata[i] = '0;
      b_we[i] = 1'b0;
    end
    rd_req_valid = 1'b0;
    rd_req_addr = '0;
    rd_req_beats = '0;

    // descriptor fetch and LOAD requests
    if (state == S_FETCH) begin
      rd_req_valid = 1'b1;
      rd_req_addr = cur_addr;
      rd_req_beats = 16'(DESC_BEATS);
    end else if (state == S_RUN && req_left != 0) begin
      rd_req_valid = 1'b1;
      rd_req_addr = req_addr;
      rd_req_beats = req_beats;
    end

    // LOAD data: one beat of VALS values per cycle into the target memory (every beat the memory
    // returns in S_RUN belongs to this transfer: the descriptor fetch took all of its own)
    if (state == S_RUN && is_load && rd_valid) begin
      for (int v = 0; v < VALS; v++) begin
        value = BITS'(rd_data[16 * v +: 16]);
        if (d_mode == M_LOAD_A || d_mode == M_LOAD_G) begin
          lane = LOG2L'(xfer_lane + 32'(v));
          if (d_mode == M_LOAD_A) begin
            a_we[lane] = 1'b1;
            a_waddr[lane] = AAW'(xfer_word);
            a_wdata[lane] = value;
          end else begin
            g_we[lane] = 1'b1;
            g_waddr[lane] = GAW'(xfer_word);
            g_wdata[lane] = value;
          end
        end else if (d_mode == M_LOAD_P) begin
          pe = xfer_lane + 32'(v);
          if (!in_bias && pe < TMN) begin
            w_we[pe] = 1'b1;
            w_wdata[pe] = value;
          end else if (in_bias && pe < TM) begin
            b_we[pe] = 1'b1;
            b_wdata[pe] = value;
          end
        end
      end
      w_waddr = WAW'(xfer_word);
      b_waddr = BAW'(xfer_word);
    end

    // STORE reads: the word / tile / bias row of the next beat
    // (a stalled write re-reads the pending word, so the bank output still holds it next cycle)
    if (state == S_RUN && d_mode == M_STORE_A)
      for (int l = 0; l < LANES; l++) a_raddr[l] = AAW'(store_stall ? st_word : xfer_word);
    if (state == S_RUN && d_mode == M_STORE_P) begin
      w_raddr = WAW'(store_stall ? st_word : xfer_word);
      b_raddr = BAW'(store_stall ? st_word : xfer_word);
    end

    // GEMM issue reads
    if (iss.valid) begin
      if (d_mode == M_FWD || d_mode == M_UPDATE) begin
        xrow = 32'(d_xa) + a_gpn;
        for (int l = 0; l < LANES; l++) a_raddr[l] = AAW'(bank_word(xrow, iss.n0, l));
      end
      if (d_mode == M_BWD_DATA || d_mode == M_UPDATE) begin
        yrow = 32'(d_gy) + a_gpm;
        for (int l = 0; l < LANES; l++) g_raddr[l] = GAW'(bank_word(yrow, iss.m0, l));
      end
      if (d_mode != M_UPDATE) w_raddr = WAW'(iss.tile);
    end

    // stage 3 side reads for the output stage: bias row (FWD), producer's activations (BWD_DATA),
    // the weight tile and bias row being updated (UPDATE)
    if (sr.valid && sr.last) begin
      if (d_mode == M_FWD || d_mode == M_UPDATE) b_raddr = BAW'(sr.brow);
      if (d_mode == M_UPDATE) w_raddr = WAW'(sr.tile);
      if (d_mode == M_BWD_DATA)
        for (int l = 0; l < LANES; l++) a_raddr[l] = AAW'(bank_word(sr.x_row, sr.n0, l));
    end

    // stage 5 writes: FWD results to A, BWD_DATA results to G, UPDATE results to the parameter banks
    if (st5.valid) begin
      if (d_mode == M_FWD || d_mode == M_BWD_DATA) begin
        f0 = (d_mode == M_FWD) ? st5.m0 : st5.n0;
        for (int l = 0; l < LANES; l++) begin
          k = LOG2L'(32'(l) - f0);
          if (res_ok[k]) begin
            if (d_mode == M_FWD) begin
              a_we[l] = 1'b1;
              a_waddr[l] = AAW'(bank_word(st5.out_row, f0, l));
              a_wdata[l] = res[k];
            end else begin
              g_we[l] = 1'b1;
              g_waddr[l] = GAW'(bank_word(st5.out_row, f0, l));
              g_wdata[l] = res[k];
            end
          end
        end
      end else if (d_mode == M_UPDATE) begin
        w_waddr = WAW'(st5.tile);
        b_waddr = BAW'(st5.brow);
        for (int e = 0; e < TMN; e++) begin
          w_we[e] = upd_w_ok[e];
          w_wdata[e] = upd_w[e];
        end
        for (int i = 0; i < TM; i++) begin
          b_we[i] = upd_b_ok[i];
          b_wdata[i] = upd_b[i];
        end
      end
    end
  end

  // STORE beat data (one cycle after the read)
  logic [BUS_BYTES*8-1:0] store_beat;
  always_comb begin
    store_beat = '0;
    for (int v = 0; v < VALS; v++) begin
      int k;
      k = st_lane + 32'(v);
      if (d_mode == M_STORE_A) store_beat[16 * v +: 16] = 16'($signed(a_rdata[k]));
      else if (!st_bias && k < TMN) store_beat[16 * v +: 16] = 16'($signed(w_rdata[k]));
      else if (st_bias && k < TM) store_beat[16 * v +: 16] = 16'($signed(b_rdata[k]));
    end
  end

  // ---------------------------------------------------------------------------------------------
  // Sequencer and datapath
  always_ff @(posedge clk) begin
    if (rst) begin
      state <= S_IDLE;
      perf_valid <= 1'b0;
      perf_index <= '0;
      perf_cycles <= '0;
      wr_valid <= 1'b0;
      wr_addr <= '0;
      wr_data <= '0;
      wr_bytes <= '0;
      st1 <= '0;
      st2 <= '0;
      st3 <= '0;
      st4 <= '0;
      sa <= '0;
      sb <= '0;
      sc <= '0;
      sd <= '0;
      se <= '0;
      st5 <= '0;
      issuing <= 1'b0;
      prep <= 1'b0;
      st_valid <= 1'b0;
      req_left <= '0;
    end else begin
      perf_valid <= 1'b0;
      if (state != S_IDLE && state != S_DONE) cycle_count <= cycle_count + 1;
      if (wr_valid && wr_ready) wr_valid <= 1'b0;

      case (state)
        S_IDLE, S_DONE: begin
          if (start) begin
            desc_index <= '0;
            cur_addr <= desc_addr;
            cycle_count <= 32'd1;
            state <= (desc_count == 0) ? S_DONE : S_FETCH;
          end
        end
        S_FETCH: begin
          beat <= '0;
          if (rd_req_ready) state <= S_FETCH_DATA;
        end
        S_FETCH_DATA: begin
          if (rd_valid) begin
            for (int v = 0; v < VALS; v++) desc_h[32'(beat) * VALS + v] <= rd_data[16 * v +: 16];
            beat <= beat + 1;
            if (32'(beat) + 1 == DESC_BEATS) state <= S_SETUP;
          end
        end
        S_SETUP: begin
          req_left <= is_load ? d_beats : 32'd0;
          req_addr <= d_dram;
          xfer_word <= (d_mode == M_LOAD_A) ? 32'(d_xa) : (d_mode == M_LOAD_G) ? 32'(d_gy)
                     : (d_mode == M_STORE_A) ? 32'(d_ya) : 32'd0;
          xfer_lane <= '0;
          xfer_beats <= '0;
          issue_beat <= '0;
          in_bias <= (d_mode == M_LOAD_P || d_mode == M_STORE_P) && (d_n == 0);
          st_valid <= 1'b0;
          c0 <= '0;
          c1 <= '0;
          c2 <= '0;
          run_done <= 1'b0;
          rq0 <= rq_amounts(d_s0);
          rq1 <= rq_amounts(d_s1);
          sr2 <= sr_amounts(d_s2);
          sr3 <= sr_amounts(d_s3);
          if (d_mode == M_UPDATE) begin
            prep <= 1'b1;
            prep_count <= 16'd1;
            rowstart[0] <= lfsr_step(d_seed);
            ptr[0] <= lfsr_step(d_seed);
          end else if (d_mode == M_FWD || d_mode == M_BWD_DATA) begin
            issuing <= 1'b1;
          end
          state <= S_RUN;
        end
        S_RUN: begin
          // ---- LOAD: request the transfer as chained bursts, take one beat per cycle
          if (is_load) begin
            if (req_left != 0 && rd_req_ready) begin
              req_left <= req_left - 32'(req_beats);
              req_addr <= req_addr + 32'(req_beats) * BUS_BYTES;
            end
            if (rd_valid) begin
              logic [63:0] nxt;
              nxt = next_pos(d_mode, xfer_word, xfer_lane, in_bias);
              xfer_word <= nxt[63:32];
              xfer_lane <= nxt[31:0];
              if (d_mode == M_LOAD_P && !in_bias && nxt[31:0] == 0 && nxt[63:32] == 32'(d_n)) begin
                in_bias <= 1'b1;
                xfer_word <= '0;
              end
              xfer_beats <= xfer_beats + 1;
              if (xfer_beats + 1 == d_beats) state <= S_FINISH;
            end
          end
          // ---- STORE: read a word / tile per beat, write it the next cycle
          if (d_mode == M_STORE_A || d_mode == M_STORE_P) begin
            if (!wr_valid || wr_ready) begin
              if (st_valid) begin
                wr_valid <= 1'b1;
                wr_addr <= d_dram + xfer_beats * BUS_BYTES;
                wr_data <= store_beat;
                wr_bytes <= 8'(BUS_BYTES);
                xfer_beats <= xfer_beats + 1;
              end
              if (issue_beat < d_beats) begin
                logic [63:0] nxt;
                nxt = next_pos(d_mode, xfer_word, xfer_lane, in_bias);
                st_valid <= 1'b1;
                st_lane <= xfer_lane;
                st_word <= xfer_word;
                st_bias <= in_bias;
                xfer_word <= nxt[63:32];
                xfer_lane <= nxt[31:0];
                if (d_mode == M_STORE_P && !in_bias && nxt[31:0] == 0 && nxt[63:32] == 32'(d_n)) begin
                  in_bias <= 1'b1;
                  xfer_word <= '0;
                end
                issue_beat <= issue_beat + 1;
              end else begin
                st_valid <= 1'b0;
              end
              if (st_valid && xfer_beats + 1 == d_beats) state <= S_FINISH;
            end
          end
          // ---- GEMM modes: UPDATE first walks the LFSR row starts, then issue one iteration per cycle
          if (prep) begin
            if (prep_count == 16'(TM)) begin
              prep <= 1'b0;
              issuing <= 1'b1;
            end else begin
              rowstart[PW'(prep_count)] <= jump(j_row, rowstart[PW'(prep_count - 1)]);
              ptr[PW'(prep_count)] <= jump(j_row, rowstart[PW'(prep_count - 1)]);
              prep_count <= prep_count + 1;
            end
          end
          if (issuing) begin
            if (c2 + 1 < l2) c2 <= c2 + 1;
            else begin
              c2 <= '0;
              if (c1 + 1 < l1) c1 <= c1 + 1;
              else begin
                c1 <= '0;
                if (c0 + 1 < l0) c0 <= c0 + 1;
                else begin
                  issuing <= 1'b0;
                  run_done <= 1'b1;
                end
              end
            end
          end
          if (run_done && !st1.valid && !st2.valid && !st3.valid && !rt_busy && !st4.valid && !sa.valid && !sb.valid
              && !sc.valid && !sd.valid && !se.valid && !st5.valid)
            state <= S_FINISH;
        end
        S_FINISH: begin
          perf_valid <= 1'b1;
          perf_index <= perf_base + desc_index;
          perf_cycles <= cycle_count;
          cycle_count <= 32'd1;
          desc_index <= desc_index + 1;
          cur_addr <= cur_addr + DESC_BYTES;
          state <= (desc_index + 1 == desc_count) ? S_DONE : S_FETCH;
        end
        default: state <= S_IDLE;
      endcase

      // ---- stage 1 -> 2: rotate the stash words into lanes, mask edges, register the operands
      st1 <= iss;
      st2 <= st1;
      if (st1.valid) begin
        for (int j = 0; j < TN; j++) begin
          logic [31:0] col;
          col = st1.n0 + 32'(j);
          if (col < 32'(d_n)) op_x[j] <= a_rdata[(32'(st1.rot_a) + 32'(j)) & 32'(LANES - 1)];
          else if (d_mode == M_UPDATE && col == 32'(d_n)) op_x[j] <= BITS'(1);  // the bias column
          else op_x[j] <= '0;
        end
        for (int i = 0; i < TM; i++) begin
          if (st1.m0 + 32'(i) < 32'(d_m)) op_y[i] <= g_rdata[(32'(st1.rot_g) + 32'(i)) & 32'(LANES - 1)];
          else op_y[i] <= '0;
        end
        for (int e = 0; e < TMN; e++) op_w[e] <= w_rdata[e];
      end

      // ---- stage 2 -> 3: products
      st3 <= st2;
      if (st2.valid) begin
        for (int i = 0; i < TM; i++)
          for (int j = 0; j < TN; j++) begin
            logic signed [BITS-1:0] a, b;
            a = (d_mode == M_UPDATE) ? op_y[i] : op_w[i * TN + j];
            b = (d_mode == M_BWD_DATA) ? op_y[i] : op_x[j];
            prod[i * TN + j] <= PROD_BITS'(a) * PROD_BITS'(b);
          end
      end

      // ---- stage 3 (UPDATE) or the tree's last level (FWD, BWD_DATA) -> 4: accumulate
      st4 <= sr;
      if (sr.valid) begin
        if (m_upd) begin
          for (int e = 0; e < TMN; e++) begin
            logic signed [ACC_BITS-1:0] total;
            total = (sr.first ? '0 : pacc[e]) + ACC_BITS'(prod[e]);
            pacc[e] <= total;
            if (sr.last) uvec[e] <= total;
          end
        end else begin
          for (int l = 0; l < LANES; l++) begin
            logic signed [ACC_BITS-1:0] total;
            total = (sr.first ? '0 : lacc[l]) + ((RT == 0) ? red0[l * RW] : red[((RT > 0 ? RT - 1 : 0) * LANES + l) * RW]);
            lacc[l] <= total;
            if (sr.last) ovec[l] <= total;
          end
        end
      end
      if (!(sr.valid && sr.last)) st4.valid <= 1'b0;

      // ---- the LFSR row pointers move to the next tile, or jump to the next row block (UPDATE)
      if (st4.valid && d_mode == M_UPDATE)
        for (int i = 0; i < TM; i++) begin
          if (st4.blk_end) begin
            rowstart[i] <= jump(j_blk, rowstart[i]);
            ptr[i] <= jump(j_blk, rowstart[i]);
          end else begin
            ptr[i] <= ptr_next[i];
          end
        end

      // ---- stage 4 -> A: the requantiser inputs (FWD adds its bias), and this cycle's bank reads
      //      that the later stages need (the weights and biases being updated, the mask's input)
      sa <= st4;
      if (st4.valid) begin
        for (int q = 0; q < NQ; q++) begin
          qa_v[q] <= '0;
          qa_bias[q] <= 1'b0;
          qa_old[q] <= '0;
          qa_rnd[q] <= '0;
          qa_x[q] <= '0;
          if (d_mode == M_UPDATE) begin
            if (q < TMN) begin
              logic is_bias;
              is_bias = st4.n0 + 32'(q % TN) == 32'(d_n);
              qa_v[q] <= VB'(uvec[q]);
              qa_bias[q] <= is_bias;
              qa_old[q] <= is_bias ? b_rdata[q / TN] : w_rdata[q];
              qa_rnd[q] <= rnd[q];
            end
          end else if (q < LANES) begin
            if (d_mode == M_FWD && q < TM) qa_v[q] <= VB'(ovec[q]) + (VB'($signed(b_rdata[q < TM ? q : 0])) <<< d_s1[4:0]);
            else qa_v[q] <= VB'(ovec[q < LANES ? q : 0]);
            qa_x[q] <= a_rdata[(32'(st4.n0) + 32'(q)) & 32'(LANES - 1)];
          end
        end
      end

      // ---- A -> B: shift
      sb <= sa;
      if (sa.valid)
        for (int q = 0; q < NQ; q++) begin
          qb_t[q] <= qa_bias[q] ? rq_shift(qa_v[q], rq1.right, rq1.rs, rq1.ls) : rq_shift(qa_v[q], rq0.right, rq0.rs, rq0.ls);
          qb_bias[q] <= qa_bias[q];
          qb_old[q] <= qa_old[q];
          qb_rnd[q] <= qa_rnd[q];
          qb_x[q] <= qa_x[q];
        end

      // ---- B -> C: round, saturate
      sc <= sb;
      if (sb.valid)
        for (int q = 0; q < NQ; q++) begin
          qc_y[q] <= rq_round(qb_t[q], qb_bias[q] ? rq1.right : rq0.right);
          qc_bias[q] <= qb_bias[q];
          qc_old[q] <= qb_old[q];
          qc_rnd[q] <= qb_rnd[q];
          qc_x[q] <= qb_x[q];
        end

      // ---- C -> D: activation (FWD), mask (BWD_DATA); the stochastic-rounding term (UPDATE)
      sd <= sc;
      if (sc.valid)
        for (int q = 0; q < NQ; q++) begin
          logic signed [BITS-1:0] y;
          logic keep;
          y = qc_y[q];
          if (d_mode == M_FWD) begin
            if (d_act == ACT_RELU && y < 0) y = '0;
            if (d_act == ACT_RELU6) y = (y < 0) ? '0 : (y > d_six) ? d_six : y;
          end else if (d_mode == M_BWD_DATA) begin
            keep = (d_act == ACT_NONE) || (d_act == ACT_RELU && qc_x[q] > 0)
                || (d_act == ACT_RELU6 && qc_x[q] > 0 && qc_x[q] < d_six);
            if (!keep) y = '0;
          end
          qd_y[q] <= y;
          qd_t[q] <= qc_bias[q] ? sr_term(qc_y[q], sr3.right, sr3.pre, sr3.mask, sr3.ls, qc_rnd[q])
                              : sr_term(qc_y[q], sr2.right, sr2.pre, sr2.mask, sr2.ls, qc_rnd[q]);
          qd_bias[q] <= qc_bias[q];
          qd_old[q] <= qc_old[q];
        end

      // ---- D -> E: the stochastically rounded step (UPDATE)
      se <= sd;
      if (sd.valid)
        for (int q = 0; q < NQ; q++) begin
          logic right;
          logic [4:0] post;
          right = qd_bias[q] ? sr3.right : sr2.right;
          post = qd_bias[q] ? sr3.post : sr2.post;
          qe_step[q] <= right ? (qd_t[q] >>> post) : qd_t[q];
          qe_bias[q] <= qd_bias[q];
          qe_old[q] <= qd_old[q];
          qe_y[q] <= qd_y[q];
        end

      // ---- E -> 5: W - step, saturated (UPDATE); the lane results and their write enables
      st5 <= se;
      if (se.valid) begin
        if (d_mode == M_UPDATE) begin
          for (int i = 0; i < TM; i++) begin
            upd_b_ok[i] <= 1'b0;
            upd_b[i] <= '0;
            for (int j = 0; j < TN; j++) begin
              logic [31:0] row, col;
              logic signed [BITS-1:0] new_value;
              row = se.m0 + 32'(i);
              col = se.n0 + 32'(j);
              new_value = sr_sub(qe_old[i * TN + j], qe_step[i * TN + j]);
              if (qe_bias[i * TN + j]) begin
                upd_b[i] <= new_value;
                upd_b_ok[i] <= row < 32'(d_m);
              end
              upd_w[i * TN + j] <= new_value;
              upd_w_ok[i * TN + j] <= (row < 32'(d_m)) && (col < 32'(d_n));
            end
          end
        end else begin
          for (int l = 0; l < LANES; l++) begin
            logic [31:0] idx;
            if (d_mode == M_FWD) begin
              idx = se.m0 + 32'(l);
              res_ok[l] <= (l < TM) && (idx < 32'(d_m));
            end else begin
              idx = se.n0 + 32'(l);
              res_ok[l] <= (l < TN) && (idx < 32'(d_n));
            end
            res[l] <= qe_y[l];
          end
        end
      end
    end
  end
endmodule
