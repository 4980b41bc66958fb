// Feature-extractor engine: descriptor-driven tiled convolution on a TM x TN multiplier array.
//
// It runs exactly the schedule written down in dtlgen/perf/fe.py: output tiles in the order
// row tile, column tile, output-channel tile; input-channel tiles ("trips") inside each; input and
// weight buffers double-buffered so that the memory side loads trip i+1 (after storing the
// previous output tile, on the first trip of a tile) while the array computes trip i; the trip
// ends when both sides are done. Bias, ReLU/ReLU6, requantisation (round half up, saturate) and
// an optional fused 2x2 max-pool are applied on the way out. The numerics are those of
// dtlgen/quant/fixed.py; the golden model is the reference, bit for bit.
//
// Operations: dense and depthwise convolution (K up to K_MAX, stride 1/2, zero padding generated
// on chip), linear layers as 1x1 convolutions, max / average pooling and residual add. Depthwise
// convs, pools and adds are "per channel": lane m of the array handles channel m0 + m alone (the
// tn dimension idles), with no input-channel loop. Activations and weights up to 8 bits (one byte
// each in memory). The memory side is a byte-addressed burst read port and a one-beat write port
// that an AXI master can sit behind.
module fe_engine #(
  parameter int TM = 4,
  parameter int TN = 4,
  parameter int TR = 4,
  parameter int TC = 4,
  parameter int A_BITS = 8,
  parameter int W_BITS = 8,
  parameter int ACC_BITS = 32,
  parameter int BUS_BYTES = 8,
  parameter int K_MAX = 7,    // largest kernel the buffers hold
  parameter int S_MAX = 2,    // largest stride the input window is sized for
  parameter int HAS_ADD = 1,  // 0: no residual add runs here, so no second operand buffer
  parameter int M_MAX = 512,
  parameter int DRAIN = 6  // pipeline fill/drain cycles per trip (dtlgen.perf.fe.pipeline_depth)
) (
  input  logic                     clk,
  input  logic                     rst,
  // control
  input  logic                     start,
  input  logic [31:0]              desc_addr,
  input  logic [15:0]              desc_count,
  output logic                     busy,
  output logic                     done,
  // memory read port: burst requests, data returns in request order, one beat per cycle
  output logic                     rd_req_valid,
  input  logic                     rd_req_ready,
  output logic [31:0]              rd_req_addr,
  output logic [15:0]              rd_req_beats,
  input  logic                     rd_valid,
  input  logic [BUS_BYTES*8-1:0]   rd_data,
  // memory write port: one beat per cycle, wr_bytes valid bytes from wr_addr
  output logic                     wr_valid,
  input  logic                     wr_ready,
  output logic [31:0]              wr_addr,
  output logic [BUS_BYTES*8-1:0]   wr_data,
  output logic [7:0]               wr_bytes,
  // performance counter: cycles of each descriptor, reported as it completes
  output logic                     perf_valid,
  output logic [15:0]              perf_index,
  output logic [31:0]              perf_cycles
);
  localparam int IN_ROWS = (TR - 1) * S_MAX + K_MAX;
  localparam int IN_COLS = (TC - 1) * S_MAX + K_MAX;
  localparam int IN_PITCH = 1 << $clog2(IN_COLS);
  localparam int IN_WINDOW = IN_ROWS * IN_PITCH;
  localparam int IN_DEPTH = (HAS_ADD != 0 ? 2 : 1) * IN_WINDOW;  // an add keeps its second operand after the first
  localparam int IN_BANKS = (TM > TN) ? TM : TN;  // per-channel ops read one bank per output lane
  localparam int W_PITCH = 1 << $clog2(K_MAX);  // a weight tap sits at kr * W_PITCH + kc
  localparam int W_DEPTH = W_PITCH * W_PITCH;
  localparam int O_DEPTH = TR * TC;
  localparam int DESC_BYTES = 64;
  localparam int DESC_WORDS = DESC_BYTES / 4;
  localparam int OUT_LATENCY = 4;  // dtlgen.perf.fe.OUTPUT_STAGE_CYCLES

  // ---------------------------------------------------------------------------------------------
  // Buffers (flat arrays: every tool accepts them). Index helpers keep the layout in one place.
  logic signed [A_BITS-1:0]   ibuf [2 * IN_BANKS * IN_DEPTH];
  logic signed [W_BITS-1:0]   wbuf [2 * TM * TN * W_DEPTH];
  logic signed [ACC_BITS-1:0] obuf [2 * TM * O_DEPTH];
  logic signed [31:0]         bias [M_MAX];
  logic [31:0]                desc [DESC_WORDS];

  function automatic int i_idx(input logic half, input int n, input int a);
    i_idx = (32'(half) * IN_BANKS + n) * IN_DEPTH + a;
  endfunction
  function automatic int w_idx(input logic half, input int m, input int n, input int a);
    w_idx = ((32'(half) * TM + m) * TN + n) * W_DEPTH + a;
  endfunction
  function automatic int o_idx(input logic half, input int m, input int a);
    o_idx = (32'(half) * TM + m) * O_DEPTH + a;
  endfunction

  // ---------------------------------------------------------------------------------------------
  // Descriptor fields
  localparam logic [3:0] K_CONV = 4'd1, K_MAXPOOL = 4'd2, K_AVGPOOL = 4'd3, K_ADD = 4'd4;
  logic [3:0]  d_kind;
  logic        d_dw;       // depthwise conv
  logic        d_pc;       // per-channel operation: depthwise conv, pool or add
  logic [1:0]  d_act;
  logic        d_pool;
  logic [15:0] d_mult;     // average-pool reciprocal (1 otherwise)
  logic [7:0]  d_sa, d_sb; // add: left shifts aligning the two operands
  logic [15:0] d_n, d_m, d_h, d_w, d_r, d_c;
  logic [7:0]  d_k, d_s, d_p;
  logic signed [7:0]  d_shift;
  logic signed [15:0] d_six;
  logic [31:0] d_in, d_wt, d_bias, d_out;
  always_comb begin
    // BEGIN dtlgen.isa decode (generated by `python -m dtlgen.isa`: edit the spec, not these lines)
    d_kind  = desc[0][3:0];
    d_act   = desc[0][5:4];
    d_pool  = desc[0][6];
    d_dw    = desc[0][7];
    d_n     = desc[1][15:0];
    d_m     = desc[1][31:16];
    d_h     = desc[2][15:0];
    d_w     = desc[2][31:16];
    d_r     = desc[3][15:0];
    d_c     = desc[3][31:16];
    d_k     = desc[4][7:0];
    d_s     = desc[4][15:8];
    d_p     = desc[4][23:16];
    d_shift = desc[4][31:24];
    d_six   = desc[5][15:0];
    d_mult  = desc[5][31:16];
    d_in    = desc[6];
    d_wt    = desc[7];
    d_bias  = desc[8];
    d_out   = desc[9];
    d_sa    = desc[10][7:0];
    d_sb    = desc[10][15:8];
    // END dtlgen.isa decode
    d_pc = d_dw || (d_kind != K_CONV);
  end
  logic [15:0] d_nl;        // input channels the trip loop walks: 1 for per-channel ops
  assign d_nl = d_pc ? 16'd1 : d_n;
  logic [15:0] d_or, d_oc;  // stored output rows / cols (after the fused pool)
  assign d_or = d_pool ? (d_r >> 1) : d_r;
  assign d_oc = d_pool ? (d_c >> 1) : d_c;

  // ---------------------------------------------------------------------------------------------
  // Trip sequencing: tile counters of the trip being computed (cur) and of the trip being loaded (nxt)
  typedef struct packed {
    logic [15:0] r0, c0, m0, n0;
  } trip_t;

  // extent of the tile starting at `base` along a dimension of `size`
  function automatic logic [15:0] ext(input logic [15:0] base, input logic [15:0] size, input logic [15:0] tile);
    logic [15:0] rest;
    rest = size - base;
    ext = (rest < tile) ? rest : tile;
  endfunction

  // Advance a trip in the order r, c, m, n (n fastest); `last` says there is no next trip.
  function automatic trip_t next_trip(input trip_t t, input logic [15:0] n, input logic [15:0] m,
                                      input logic [15:0] c);
    trip_t o;
    o = t;
    if (t.n0 + 16'(TN) < n) o.n0 = t.n0 + 16'(TN);
    else begin
      o.n0 = '0;
      if (t.m0 + 16'(TM) < m) o.m0 = t.m0 + 16'(TM);
      else begin
        o.m0 = '0;
        if (t.c0 + 16'(TC) < c) o.c0 = t.c0 + 16'(TC);
        else begin
          o.c0 = '0;
          o.r0 = t.r0 + 16'(TR);
        end
      end
    end
    next_trip = o;
  endfunction

  function automatic logic is_last_trip(input trip_t t, input logic [15:0] n, input logic [15:0] m,
                                        input logic [15:0] c, input logic [15:0] r);
    is_last_trip = (t.n0 + 16'(TN) >= n) && (t.m0 + 16'(TM) >= m) && (t.c0 + 16'(TC) >= c) && (t.r0 + 16'(TR) >= r);
  endfunction

  // ---------------------------------------------------------------------------------------------
  // Main sequencer state
  typedef enum logic [3:0] {
    S_IDLE, S_DESC, S_BIAS, S_FIRST, S_RUN, S_LAST, S_OUTLAT, S_NEXT, S_DONE
  } state_t;
  state_t state;

  logic [15:0] desc_index;
  logic [31:0] cycle_count;
  trip_t       cur;                 // the trip being computed
  logic        cur_half;            // its input/weight buffer half
  logic        tile_half;           // output buffer half of its output tile
  logic        cur_last;            // it is the op's last trip
  logic [3:0]  out_wait;

  // memory jobs: read the descriptor, read the bias table, or a trip's store-then-load
  typedef enum logic [1:0] {J_DESC, J_BIAS, J_TRIP} job_t;
  logic        job_start;
  job_t        job_kind;
  logic        job_store, job_load;
  trip_t       job_ld, job_st;
  logic        job_ld_half, job_st_half;
  // a trip starts computing at the next clock edge
  logic        go;
  trip_t       go_trip;
  logic        go_half, go_tile_half, go_has_next;
  trip_t       go_next;
  logic        advance;
  logic        comp_start;
  logic        job_start_pending;  // a phase's own memory job has not been started yet

  // ---------------------------------------------------------------------------------------------
  // Memory side: one job at a time; a trip job stores the previous output tile, then loads a trip
  typedef enum logic [1:0] {M_IDLE, M_STORE, M_LOAD, M_WAIT} mstate_t;
  mstate_t     mstate;
  job_t        mjob;
  logic        m_do_load;
  trip_t       ld;           // trip being loaded
  logic        ld_half;
  /* verilator lint_off UNUSEDSIGNAL */
  trip_t       st_tile;      // output tile being stored (its n0 is not used)
  /* verilator lint_on UNUSEDSIGNAL */
  logic        st_half;
  // An input row segment of a trip: window row y of bank n, operand op (an add has two); `done`
  // once every segment is past. Requests and responses walk the same sequence, one behind the other.
  typedef struct packed {
    logic [15:0] y, n;
    logic        op, done;
  } seg_t;
  seg_t        iss, rsp;
  logic        iss_w;        // the weight request is issued
  logic        iss_all;
  logic [15:0] rsp_beat;     // beat within the responding row segment
  logic [31:0] rsp_byte;     // bytes received of the descriptor / bias table / weight tile
  logic [15:0] wr_m, wr_n, wr_kr, wr_kc;  // weight walker: next (m, n, kr, kc) to write

  // geometry of the trip being loaded
  logic [15:0] ld_tr, ld_tc, ld_tm, ld_tn;
  logic signed [17:0] ld_y0, ld_x0;      // first input row / col of the window (may be negative)
  logic [15:0] ld_ylo, ld_xlo, ld_rows, ld_cols, ld_row_beats;
  always_comb begin
    logic signed [17:0] yhi, xhi;
    ld_tr = ext(ld.r0, d_r, 16'(TR));
    ld_tc = ext(ld.c0, d_c, 16'(TC));
    ld_tm = ext(ld.m0, d_m, 16'(TM));
    ld_tn = ext(ld.n0, d_n, 16'(TN));
    ld_y0 = 18'(ld.r0) * 18'(d_s) - 18'(d_p);
    ld_x0 = 18'(ld.c0) * 18'(d_s) - 18'(d_p);
    yhi = ld_y0 + (18'(ld_tr) - 18'sd1) * 18'(d_s) + 18'(d_k);  // exclusive
    xhi = ld_x0 + (18'(ld_tc) - 18'sd1) * 18'(d_s) + 18'(d_k);
    if (yhi > 18'(d_h)) yhi = 18'(d_h);
    if (xhi > 18'(d_w)) xhi = 18'(d_w);
    ld_ylo = (ld_y0 < 0) ? 16'd0 : 16'(ld_y0);
    ld_xlo = (ld_x0 < 0) ? 16'd0 : 16'(ld_x0);
    ld_rows = (yhi > 18'(ld_ylo)) ? 16'(yhi - 18'(ld_ylo)) : 16'd0;
    ld_cols = (xhi > 18'(ld_xlo)) ? 16'(xhi - 18'(ld_xlo)) : 16'd0;
    ld_row_beats = 16'((32'(ld_cols) + 32'(BUS_BYTES) - 1) / 32'(BUS_BYTES));
  end
  // channels of one operand a trip loads, the first of them, the operands, the weight columns
  logic [15:0] ld_ch, ld_ch0, ld_wn;
  logic        ld_two_ops;
  assign ld_ch = d_pc ? ld_tm : ld_tn;
  assign ld_ch0 = d_pc ? ld.m0 : ld.n0;
  assign ld_wn = d_dw ? 16'd1 : ld_tn;
  assign ld_two_ops = (d_kind == K_ADD);
  logic [31:0] ld_w_bytes;
  assign ld_w_bytes = (d_kind == K_CONV) ? 32'(ld_tm) * 32'(ld_wn) * 32'(d_k) * 32'(d_k) : 32'd0;
  // The generator stores weights in trip order: for every output tile position the (m, n) tiles
  // follow each other, so the pointer advances by each trip's weights and rewinds per position.
  logic [31:0] w_ptr;
  logic        in_req_pending;
  assign in_req_pending = !iss_w && ld_rows != 0 && !iss.done;

  function automatic seg_t next_segment(input seg_t g, input logic [15:0] rows, input logic [15:0] channels,
                                        input logic two_ops);
    seg_t o;
    o = g;
    if (g.y + 1 < rows) o.y = g.y + 1;
    else begin
      o.y = '0;
      if (g.n + 1 < channels) o.n = g.n + 1;
      else if (two_ops && !g.op) begin
        o.n = '0;
        o.op = 1'b1;
      end else o.done = 1'b1;
    end
    next_segment = o;
  endfunction
  seg_t iss_next, rsp_next;
  assign iss_next = next_segment(iss, ld_rows, ld_ch, ld_two_ops);
  assign rsp_next = next_segment(rsp, ld_rows, ld_ch, ld_two_ops);

  // store side geometry
  logic [15:0] st_tr, st_tc, st_tm, st_orows, st_ocols, st_obeats;
  logic [15:0] st_m, st_row, st_beat;
  always_comb begin
    st_tr = ext(st_tile.r0, d_r, 16'(TR));
    st_tc = ext(st_tile.c0, d_c, 16'(TC));
    st_tm = ext(st_tile.m0, d_m, 16'(TM));
    st_orows = d_pool ? (st_tr >> 1) : st_tr;
    st_ocols = d_pool ? (st_tc >> 1) : st_tc;
    st_obeats = 16'((32'(st_ocols) + 32'(BUS_BYTES) - 1) / 32'(BUS_BYTES));
  end

  // requantise + activation of one accumulator (dtlgen/quant/fixed.py: requantise, relu, relu6)
  function automatic logic signed [A_BITS-1:0] finish(input logic signed [ACC_BITS-1:0] acc,
                                                      input logic signed [31:0] b);
    logic signed [47:0] x, y, lo, hi, bound, c;
    x = 48'(acc) * ((d_kind == K_AVGPOOL) ? 48'(d_mult) : 48'sd1) + 48'(b);
    lo = -(48'sd1 <<< (A_BITS - 1));
    hi = (48'sd1 <<< (A_BITS - 1)) - 48'sd1;
    // round half up: add the last bit shifted out (keep every operand signed: >>> is arithmetic)
    if (d_shift > 0) y = (x >>> d_shift) + (x[d_shift - 1] ? 48'sd1 : 48'sd0);
    else if (d_shift < 0) begin
      // a left shift saturates: clip first to just beyond what the shift maps into range (no wrap)
      if (-d_shift >= 8'(A_BITS)) y = (x > 0) ? hi : ((x < 0) ? lo : 48'sd0);
      else begin
        bound = 48'sd1 <<< (8'(A_BITS - 1) + d_shift);
        c = x;
        if (c > bound) c = bound;
        if (c < -bound - 48'sd1) c = -bound - 48'sd1;
        y = c <<< (-d_shift);
      end
    end else y = x;
    if (y < lo) y = lo;
    if (y > hi) y = hi;
    if (d_act != 2'd0 && y < 0) y = 0;
    if (d_act == 2'd2 && y > 48'(d_six)) y = 48'(d_six);
    finish = A_BITS'(y);
  endfunction

  logic job_st_empty;  // the tile a starting job would store has no output row or column
  always_comb begin
    logic [15:0] rows, cols;
    rows = ext(job_st.r0, d_r, 16'(TR));
    cols = ext(job_st.c0, d_c, 16'(TC));
    job_st_empty = d_pool && (rows < 2 || cols < 2);
  end

  // one output beat of the store: BUS_BYTES outputs of lane st_m, output row st_row
  logic [BUS_BYTES*8-1:0] st_data;
  logic [7:0]             st_bytes;
  always_comb begin
    logic signed [31:0] b;
    b = (d_kind == K_CONV) ? bias[$clog2(M_MAX)'(st_tile.m0 + st_m)] : 32'sd0;
    st_data = '0;
    st_bytes = '0;
    for (int j = 0; j < BUS_BYTES; j++) begin
      int col;
      logic signed [A_BITS-1:0] v, q;
      col = 32'(st_beat) * BUS_BYTES + j;
      v = '0;
      q = '0;
      if (col < 32'(st_ocols)) begin
        if (d_pool) begin
          v = finish(obuf[o_idx(st_half, 32'(st_m), (2 * 32'(st_row)) * TC + 2 * col)], b);
          for (int dy = 0; dy < 2; dy++) begin
            for (int dx = 0; dx < 2; dx++) begin
              q = finish(obuf[o_idx(st_half, 32'(st_m), (2 * 32'(st_row) + dy) * TC + 2 * col + dx)], b);
              if (q > v) v = q;
            end
          end
        end else begin
          v = finish(obuf[o_idx(st_half, 32'(st_m), 32'(st_row) * TC + col)], b);
        end
      end
      st_data[j * 8 +: 8] = 8'(v);
    end
    st_bytes = (32'(st_ocols) - 32'(st_beat) * 32'(BUS_BYTES) < 32'(BUS_BYTES))
             ? 8'(32'(st_ocols) - 32'(st_beat) * 32'(BUS_BYTES)) : 8'(BUS_BYTES);
  end

  assign wr_valid = (mstate == M_STORE);
  assign wr_data = st_data;
  assign wr_bytes = st_bytes;
  assign wr_addr = d_out + (32'(st_tile.m0 + st_m) * 32'(d_or) + 32'(st_tile.r0 >> d_pool) + 32'(st_row))
                 * 32'(d_oc) + 32'(st_tile.c0 >> d_pool) + 32'(st_beat) * 32'(BUS_BYTES);

  // read requests
  always_comb begin
    rd_req_valid = 1'b0;
    rd_req_addr = '0;
    rd_req_beats = '0;
    if (mstate == M_LOAD && !iss_all) begin
      rd_req_valid = 1'b1;
      case (mjob)
        J_DESC: begin
          rd_req_addr = desc_addr + 32'(desc_index) * DESC_BYTES;
          rd_req_beats = 16'((DESC_BYTES + BUS_BYTES - 1) / BUS_BYTES);
        end
        J_BIAS: begin
          rd_req_addr = d_bias;
          rd_req_beats = 16'((32'(d_m) * 4 + 32'(BUS_BYTES) - 1) / 32'(BUS_BYTES));
        end
        default: begin
          if (in_req_pending) begin
            rd_req_addr = (iss.op ? d_wt : d_in)
                        + (32'(ld_ch0 + iss.n) * 32'(d_h) + 32'(ld_ylo + iss.y)) * 32'(d_w) + 32'(ld_xlo);
            rd_req_beats = ld_row_beats;
          end else begin
            rd_req_addr = w_ptr;
            rd_req_beats = 16'((ld_w_bytes + 32'(BUS_BYTES) - 1) / 32'(BUS_BYTES));
          end
        end
      endcase
    end
  end

  always_ff @(posedge clk) begin
    if (rst) begin
      mstate <= M_IDLE;
      iss_all <= 1'b0;
    end else begin
      if (job_start) begin
        mjob <= job_kind;
        m_do_load <= job_load;
        ld <= job_ld;
        ld_half <= job_ld_half;
        st_tile <= job_st;
        st_half <= job_st_half;
        iss <= '0; rsp <= '0; iss_w <= 1'b0; iss_all <= 1'b0;
        rsp_beat <= '0; rsp_byte <= '0;
        wr_m <= '0; wr_n <= '0; wr_kr <= '0; wr_kc <= '0;
        st_m <= '0; st_row <= '0; st_beat <= '0;
        // a pooled edge tile of one row or column stores nothing
        mstate <= (job_store && !job_st_empty) ? M_STORE : (job_load ? M_LOAD : M_WAIT);
      end else begin
        case (mstate)
          M_STORE: begin
            if (wr_ready) begin
              if (st_beat + 1 < st_obeats) st_beat <= st_beat + 1;
              else begin
                st_beat <= '0;
                if (st_row + 1 < st_orows) st_row <= st_row + 1;
                else begin
                  st_row <= '0;
                  if (st_m + 1 < st_tm) st_m <= st_m + 1;
                  else mstate <= m_do_load ? M_LOAD : M_WAIT;
                end
              end
            end
          end
          M_LOAD: begin
            // request issue
            if (rd_req_valid && rd_req_ready) begin
              if (mjob != J_TRIP) iss_all <= 1'b1;
              else if (in_req_pending) begin
                iss <= iss_next;
                if (iss_next.done && d_kind != K_CONV) iss_all <= 1'b1;  // no weights to fetch
              end else begin
                iss_w <= 1'b1;
                iss_all <= 1'b1;
                w_ptr <= w_ptr + ld_w_bytes;
              end
            end
            // responses, in request order
            if (rd_valid) begin
              if (mjob == J_DESC) begin
                for (int j = 0; j < BUS_BYTES; j++)
                  if (rsp_byte + 32'(j) < DESC_BYTES)
                    desc[(rsp_byte + 32'(j)) >> 2][8 * ((rsp_byte + 32'(j)) & 3) +: 8] <= rd_data[j * 8 +: 8];
                rsp_byte <= rsp_byte + BUS_BYTES;
                if (rsp_byte + BUS_BYTES >= DESC_BYTES) mstate <= M_WAIT;
              end else if (mjob == J_BIAS) begin
                for (int j = 0; j < BUS_BYTES; j++)
                  if (rsp_byte + 32'(j) < 32'(d_m) * 4)
                    bias[(rsp_byte + 32'(j)) >> 2][8 * ((rsp_byte + 32'(j)) & 3) +: 8] <= rd_data[j * 8 +: 8];
                rsp_byte <= rsp_byte + BUS_BYTES;
                if (rsp_byte + BUS_BYTES >= 32'(d_m) * 4) mstate <= M_WAIT;
              end else if (!rsp.done && ld_rows != 0) begin
                // an input row segment: bank rsp.n, window row rsp.y, columns from rsp_beat * BUS_BYTES
                for (int j = 0; j < BUS_BYTES; j++) begin
                  int col;
                  col = 32'(rsp_beat) * BUS_BYTES + j;
                  if (col < 32'(ld_cols))
                    ibuf[i_idx(ld_half, 32'(rsp.n), 32'(rsp.op) * IN_WINDOW + 32'(rsp.y) * IN_PITCH + col)]
                      <= rd_data[j * 8 +: A_BITS];
                end
                if (rsp_beat + 1 < ld_row_beats) rsp_beat <= rsp_beat + 1;
                else begin
                  rsp_beat <= '0;
                  rsp <= rsp_next;
                  if (rsp_next.done && d_kind != K_CONV) mstate <= M_WAIT;  // no weights follow
                end
              end else begin
                // the weight tile, bytes in (m, n, kr, kc) order
                logic [15:0] m_i, n_i, kr_i, kc_i;
                m_i = wr_m; n_i = wr_n; kr_i = wr_kr; kc_i = wr_kc;
                for (int j = 0; j < BUS_BYTES; j++) begin
                  if (rsp_byte + 32'(j) < ld_w_bytes) begin
                    wbuf[w_idx(ld_half, 32'(m_i), 32'(n_i), 32'(kr_i) * W_PITCH + 32'(kc_i))] <= rd_data[j * 8 +: W_BITS];
                    if (kc_i + 1 < 16'(d_k)) kc_i = kc_i + 1;
                    else begin
                      kc_i = '0;
                      if (kr_i + 1 < 16'(d_k)) kr_i = kr_i + 1;
                      else begin
                        kr_i = '0;
                        if (n_i + 1 < ld_wn) n_i = n_i + 1;
                        else begin
                          n_i = '0;
                          m_i = m_i + 1;
                        end
                      end
                    end
                  end
                end
                wr_m <= m_i; wr_n <= n_i; wr_kr <= kr_i; wr_kc <= kc_i;
                rsp_byte <= rsp_byte + BUS_BYTES;
                if (rsp_byte + BUS_BYTES >= ld_w_bytes) mstate <= M_WAIT;
              end
            end
          end
          default: ;
        endcase
      end
      // every output tile position reads the weights from the start again
      if (job_start && job_load && job_kind == J_TRIP && job_ld.m0 == 0 && job_ld.n0 == 0) w_ptr <= d_wt;
    end
  end

  // ---------------------------------------------------------------------------------------------
  // Compute side: one (rr, cc, kr, kc) tap per cycle, DRAIN cycles after the last
  typedef enum logic [1:0] {C_IDLE, C_ISSUE, C_DRAIN, C_DONE} cstate_t;
  cstate_t     cstate;
  logic [15:0] rr, cc, kr, kc;
  logic [7:0]  drain;
  logic [15:0] c_tr, c_tc, c_tn;
  logic        c_first_n;
  assign c_tr = ext(cur.r0, d_r, 16'(TR));
  assign c_tc = ext(cur.c0, d_c, 16'(TC));
  assign c_tn = ext(cur.n0, d_n, 16'(TN));
  assign c_first_n = (cur.n0 == 0);

  // geometry of the computed trip's input window (same rule as the loader)
  logic signed [17:0] c_y0, c_x0;
  logic [15:0] c_ylo, c_xlo;
  assign c_y0 = 18'(cur.r0) * 18'(d_s) - 18'(d_p);
  assign c_x0 = 18'(cur.c0) * 18'(d_s) - 18'(d_p);
  assign c_ylo = (c_y0 < 0) ? 16'd0 : 16'(c_y0);
  assign c_xlo = (c_x0 < 0) ? 16'd0 : 16'(c_x0);

  // stage 1 registers
  logic                       p_valid, p_first_tap, p_last_tap;
  logic [15:0]                p_oaddr;
  logic signed [A_BITS-1:0]   p_in [IN_BANKS];   // one operand per bank
  logic signed [A_BITS-1:0]   p_inb [TM];        // an add's second operand, per lane
  logic signed [W_BITS-1:0]   p_w [TM * TN];
  logic signed [ACC_BITS-1:0] acc [TM];

  logic last_tap_now;
  assign last_tap_now = (kr + 1 == 16'(d_k)) && (kc + 1 == 16'(d_k));

  always_ff @(posedge clk) begin
    if (rst) begin
      cstate <= C_IDLE;
      p_valid <= 1'b0;
    end else begin
      p_valid <= 1'b0;
      case (cstate)
        C_IDLE, C_DONE: begin
          if (comp_start) begin
            cstate <= C_ISSUE;
            rr <= '0; cc <= '0; kr <= '0; kc <= '0;
          end
        end
        C_ISSUE: begin
          // read the operands of tap (rr, cc, kr, kc)
          begin
            logic signed [17:0] iy, ix;
            logic outside;
            int at;
            iy = c_y0 + 18'(rr) * 18'(d_s) + 18'(kr);
            ix = c_x0 + 18'(cc) * 18'(d_s) + 18'(kc);
            outside = iy < 0 || ix < 0 || iy >= 18'(d_h) || ix >= 18'(d_w);
            at = (32'(iy) - 32'(c_ylo)) * IN_PITCH + 32'(ix) - 32'(c_xlo);
            for (int b = 0; b < IN_BANKS; b++) begin
              if (outside || (!d_pc && b >= 32'(c_tn)))
                // padding: zero, except for max pooling, where it must never win
                p_in[b] <= (d_kind == K_MAXPOOL) ? {1'b1, {(A_BITS - 1){1'b0}}} : '0;
              else
                p_in[b] <= ibuf[i_idx(cur_half, b, at)];
            end
            for (int m = 0; m < TM; m++)
              p_inb[m] <= (outside || HAS_ADD == 0) ? '0 : ibuf[i_idx(cur_half, m, (HAS_ADD != 0 ? IN_WINDOW : 0) + at)];
            for (int m = 0; m < TM; m++)
              for (int n = 0; n < TN; n++)
                p_w[m * TN + n] <= wbuf[w_idx(cur_half, m, n, 32'(kr) * W_PITCH + 32'(kc))];
          end
          p_valid <= 1'b1;
          p_first_tap <= (kr == 0) && (kc == 0);
          p_last_tap <= last_tap_now;
          p_oaddr <= 16'(32'(rr) * TC + 32'(cc));
          // advance kc, kr, cc, rr
          if (kc + 1 < 16'(d_k)) kc <= kc + 1;
          else begin
            kc <= '0;
            if (kr + 1 < 16'(d_k)) kr <= kr + 1;
            else begin
              kr <= '0;
              if (cc + 1 < c_tc) cc <= cc + 1;
              else begin
                cc <= '0;
                if (rr + 1 < c_tr) rr <= rr + 1;
                else begin
                  cstate <= C_DRAIN;
                  drain <= (d_kind == K_CONV) ? 8'(DRAIN - 1) : 8'd3;  // pools and adds skip the tree
                end
              end
            end
          end
        end
        C_DRAIN: begin
          if (drain == 0) cstate <= C_DONE;
          else drain <= drain - 1;
        end
        default: ;
      endcase

      // stage 2: multiply, adder tree, accumulate; write the output buffer on the last tap
      if (p_valid) begin
        for (int m = 0; m < TM; m++) begin
          logic signed [ACC_BITS-1:0] sum, total, v;
          sum = '0;
          v = ACC_BITS'(p_in[m]);
          if (d_kind == K_CONV && !d_dw)
            for (int n = 0; n < TN; n++) sum = sum + ACC_BITS'(p_w[m * TN + n]) * ACC_BITS'(p_in[n]);
          else if (d_kind == K_CONV)
            sum = ACC_BITS'(p_w[m * TN]) * v;
          else if (d_kind == K_ADD)
            sum = (v <<< d_sa) + (ACC_BITS'(p_inb[m]) <<< d_sb);
          else
            sum = v;
          if (p_first_tap) total = sum;
          else if (d_kind == K_MAXPOOL) total = (sum > acc[m]) ? sum : acc[m];
          else total = acc[m] + sum;
          acc[m] <= total;
          if (p_last_tap)
            obuf[o_idx(tile_half, m, 32'(p_oaddr))] <= (c_first_n ? '0 : obuf[o_idx(tile_half, m, 32'(p_oaddr))])
                                                         + total;
        end
      end
    end
  end

  // ---------------------------------------------------------------------------------------------
  // Sequencer: descriptor, bias table, first load, then trips until the last, then the last store
  assign advance = (state == S_RUN) && (cstate == C_DONE) && (mstate == M_WAIT);

  always_comb begin
    go = 1'b0;
    go_trip = '0;
    go_half = 1'b0;
    go_tile_half = 1'b0;
    if (state == S_FIRST && mstate == M_WAIT && !job_start_pending) begin
      go = 1'b1;
    end else if (advance && !cur_last) begin
      go = 1'b1;
      go_trip = next_trip(cur, d_nl, d_m, d_c);
      go_half = ~cur_half;
      go_tile_half = (go_trip.n0 == 0) ? ~tile_half : tile_half;
    end
    go_has_next = !is_last_trip(go_trip, d_nl, d_m, d_c, d_r);
    go_next = next_trip(go_trip, d_nl, d_m, d_c);
  end

  always_comb begin
    job_start = 1'b0;
    job_kind = J_TRIP;
    job_store = 1'b0;
    job_load = 1'b0;
    job_ld = '0;
    job_ld_half = 1'b0;
    job_st = cur;
    job_st_half = tile_half;
    if (go) begin
      // store the previous output tile on the first trip of a tile; load the following trip
      job_start = 1'b1;
      job_store = (go_trip.n0 == 0) && (state == S_RUN);
      job_st = cur;
      job_st_half = tile_half;
      job_load = go_has_next;
      job_ld = go_next;
      job_ld_half = ~go_half;
    end else if ((state == S_DESC || state == S_BIAS || state == S_FIRST || state == S_LAST) && job_start_pending) begin
      job_start = 1'b1;
      job_kind = (state == S_DESC) ? J_DESC : (state == S_BIAS) ? J_BIAS : J_TRIP;
      job_load = (state != S_LAST);
      job_store = (state == S_LAST);
      job_ld = '0;
      job_ld_half = 1'b0;
    end
  end

  assign comp_start = go;
  assign busy = (state != S_IDLE) && (state != S_DONE);

  always_ff @(posedge clk) begin
    if (rst) begin
      state <= S_IDLE;
      done <= 1'b0;
      perf_valid <= 1'b0;
      job_start_pending <= 1'b0;
    end else begin
      perf_valid <= 1'b0;
      cycle_count <= cycle_count + 1;
      if (job_start && !go) job_start_pending <= 1'b0;
      case (state)
        S_IDLE, S_DONE: begin
          if (start) begin
            done <= 1'b0;
            desc_index <= '0;
            cycle_count <= '0;
            if (desc_count == 0) begin
              state <= S_DONE;
              done <= 1'b1;
            end else begin
              state <= S_DESC;
              job_start_pending <= 1'b1;
            end
          end
        end
        S_DESC: if (mstate == M_WAIT && !job_start_pending) begin
          state <= (d_kind == K_CONV) ? S_BIAS : S_FIRST;  // only convs have a bias table
          job_start_pending <= 1'b1;
        end
        S_BIAS: if (mstate == M_WAIT && !job_start_pending) begin
          state <= S_FIRST;
          job_start_pending <= 1'b1;
        end
        S_FIRST: if (go) begin
          state <= S_RUN;
          cur <= '0;
          cur_half <= 1'b0;
          tile_half <= 1'b0;
          cur_last <= !go_has_next;
        end
        S_RUN: begin
          if (go) begin
            cur <= go_trip;
            cur_half <= go_half;
            tile_half <= go_tile_half;
            cur_last <= !go_has_next;
          end else if (advance && cur_last) begin
            state <= S_LAST;
            job_start_pending <= 1'b1;
          end
        end
        S_LAST: if (mstate == M_WAIT && !job_start_pending) begin
          state <= S_OUTLAT;
          out_wait <= 4'(OUT_LATENCY - 1);
        end
        S_OUTLAT: begin
          if (out_wait == 0) state <= S_NEXT;
          else out_wait <= out_wait - 1;
        end
        S_NEXT: begin
          perf_valid <= 1'b1;
          perf_index <= desc_index;
          perf_cycles <= cycle_count;
          cycle_count <= '0;
          if (desc_index + 1 < desc_count) begin
            desc_index <= desc_index + 1;
            state <= S_DESC;
            job_start_pending <= 1'b1;
          end else begin
            state <= S_DONE;
            done <= 1'b1;
          end
        end
        default: ;
      endcase
    end
  end
endmodule
