// Feature-extractor engine in Vitis HLS C++: descriptor-driven tiled convolution on a TM x TN
// multiplier array (the loop nest of Zhang et al., FPGA'15), the HLS twin of rtl/fe_engine.sv,
// written for the Vitis HLS scheduler.
//
// Per descriptor (and per image of a batch): output tiles in the order row tile, column tile,
// output-channel tile, the input-channel tiles ("trips") inside each. The trips run as a dataflow
// loop of three processes linked by ping-pong buffers (`fe_run`), so that while the array computes
// trip k, the memory side loads trip k + 1 and stores the output tile finished at an earlier trip:
//   fe_load     one burst request per input row and one per weight tile (dense, or sparse: the
//               tile's beats from w_first or the previous tile's header), issued up to MAX_REQ
//               ahead of the data, and one bus beat a cycle into the window and weight buffers;
//   fe_compute  one flattened loop over (tap row, tap column, output row, output column): all
//               TM x TN multipliers and the adder trees over TN busy every cycle; at the tile's last
//               trip it applies bias, requantisation (round half up, saturate), ReLU / ReLU6 and
//               writes each position's TM outputs as one word;
//   fe_store    one beat a cycle of B output bytes, with byte enables, the fused 2x2 max-pool taken
//               on the way (pooling finished values equals finishing the pooled sum: both monotonic).
// The window is stored as the beats that cover each row (their first byte's offset beside), so a
// row is one burst whatever its alignment; positions outside the image are padding, made on chip:
// zero, or the most negative value for max pooling (it never wins). Depthwise convs, pools and adds
// are per channel: lane m handles channel m0 + m alone. A descriptor with a batch (more_images > 0)
// runs its images one after another through the same trips (the RTL runs each trip over every
// image with the weight tile loaded once; the outputs are the same). Image groups (more_groups > 0)
// follow each other, group g's images at in + g * in_gstride and out + g * out_gstride.
//
// A sparse conv (the descriptor's `sparse`, a pruned conv's) stores each weight tile compressed
// (dtlgen.isa.fe, Sparse weights): a header beat with the next tile's size, then per tap row a bitmap
// with a bit per weight bank (TM x TN) and the kept weights; the load writes 0 where a bit is 0, so
// the weight banks, and the numerics, are those of the same conv stored dense.
//
// Numerics: dtl_numerics.h (dtlgen/quant/fixed.py); the golden model is the reference, bit for
// bit, and `dtlgen csim` checks it. Nothing here was synthesised with Vitis HLS in this repository;
// `dtlgen csim` reports a cycle estimate of this code's schedule (dtlgen.csim.hls_estimate).
#include "dtl_engines.h"
#include "dtl_numerics.h"
#include "dtl_seeded.h"

namespace {

typedef ap_int<DTL_FE_A_BITS> fe_act_t;
typedef ap_int<DTL_FE_W_BITS> fe_wgt_t;
typedef ap_int<DTL_FE_ACC_BITS> fe_acc_t;
typedef ap_int<48> fe_out_t;  // bias and average-pool reciprocal applied, before requantisation (as the RTL)
typedef dtl_fe_word_t fe_word_t;
typedef ap_uint<8 * DTL_FE_TM> fe_lanes_t;  // one output position's TM finished values, lane m at byte m

const int TM = DTL_FE_TM;
const int TN = DTL_FE_TN;
const int TR = DTL_FE_TR;
const int TC = DTL_FE_TC;
const int K_MAX = DTL_FE_K_MAX;
const int KK = K_MAX * K_MAX;
const int B = DTL_FE_BUS_BYTES;  // bytes a beat
const int LOG_B = B >= 64 ? 6 : B >= 32 ? 5 : B >= 16 ? 4 : B >= 8 ? 3 : B >= 4 ? 2 : 1;
static_assert(B == 1 << LOG_B && DTL_FE_DESC_BYTES % B == 0, "the bus is 2 to 64 bytes, a power of two");
const int IN_ROWS = (TR - 1) * DTL_FE_S_MAX + K_MAX;
const int IN_COLS = (TC - 1) * DTL_FE_S_MAX + K_MAX;
const int ROW_BEATS = (IN_COLS + B - 1) / B + 1;  // the beats that cover a window row, from any byte of a beat
const int LOG_ROW_WORDS = ROW_BEATS <= 2 ? 1 : ROW_BEATS <= 4 ? 2 : ROW_BEATS <= 8 ? 3 : ROW_BEATS <= 16 ? 4 : 5;
const int ROW_WORDS = 1 << LOG_ROW_WORDS;         // a window row's place in a bank: a power of two of beats
const int IN_BANKS = TM > TN ? TM : TN;           // per-channel ops read one bank per output lane
const int WIN_WORDS = 2 * IN_ROWS * ROW_WORDS;    // both operands of an add
const int DIST = 4;     // positions between two updates of one accumulator (read, add, write back)
const int MAX_REQ = 16;  // burst requests in flight on the read port (num_read_outstanding)
const int MAX_WRITES = 8;  // write bursts awaiting their response (within num_write_outstanding)
const int DESC_BEATS = DTL_FE_DESC_BYTES / B;
const int STORE_BANKS = 2 * B;  // tile columns read a cycle: a beat's bytes, or two per byte under the fused pool
// A sparse weight tile (dtlgen.isa.fe, Sparse weights): a header beat (bytes 0..1: the next tile's beats),
// then per tap row a bitmap of the whole array, TM x TN bits (TM for a depthwise conv: up to BM_BEATS
// beats), and its kept weights.
const int BM_BEATS = (TM * TN + 8 * B - 1) / (8 * B);
// Largest trip counts, for LOOP_TRIPCOUNT (csynth's latency figures): a trip's load (a full weight
// tile of 8-bit weights, stored sparse with every weight kept: its header and bitmaps too, and every
// window row of both operands), its taps, its store.
const int LOAD_TRIPS = 1 + KK * (BM_BEATS + (TM * TN + B - 1) / B) + 2 * IN_BANKS * IN_ROWS * ROW_BEATS;
const int TAP_TRIPS = KK * TR * TC;
const int STORE_ROWS = TM * TR;
const int STORE_TRIPS = STORE_ROWS * ((TC + B - 1) / B + 1);
const int BIAS_BEATS = (4 * (DTL_FE_M_MAX + 15 + DTL_FE_M_MAX) + B - 1) / B;  // a scaled conv's biases and scales
// BEGIN dtlgen.isa constants (generated by `python -m dtlgen.isa`: edit the spec, not these lines)
const int KIND_CONV = 1, KIND_MAXPOOL = 2, KIND_AVGPOOL = 3, KIND_ADD = 4;
enum { ACT_NONE = 0, ACT_RELU = 1, ACT_RELU6 = 2 };
const int W_SLOT = (DTL_FE_W_BITS <= 2) ? 2 : (DTL_FE_W_BITS <= 4) ? 4 : 8;  // a weight's bits in memory
const int GEN_WORDS = (TN % 32 == 0) ? TN / 32 : (31 + TN + 31) / 32;  // generated words a lane and tap
const int TABLE_ALIGN_WORDS = 16;  // a scaled conv's scales start on these
// END dtlgen.isa constants
const int LOG_SLOT = W_SLOT == 2 ? 1 : W_SLOT == 4 ? 2 : 3;
const int LOG_WB = LOG_B + 3 - LOG_SLOT;  // weights a beat carries: WB = B * 8 / W_SLOT
const int WB = 1 << LOG_WB;

struct FeDesc {
  int kind, act, pool, dw, scaled, gen;
  int sparse;  // the weight tiles are stored compressed (dtlgen.isa.fe, Sparse weights)
  int wfirst;  // ... and the first one takes this many beats (each tile's header gives the next one's)
  int prefetch;  // the RTL requests a trip's reads during the trip before (no effect here: this engine's schedule)
  int n, m, h, w, r, c, k, s, p;
  int shift, six, mult, sa, sb, more, moreg;
  int plane;  // whole channel planes per request (the RTL's load; this engine requests rows)
  int keep;   // the input stays on chip across output-channel tiles (the RTL's load; no effect here)
  unsigned in, wt, bias, out, istride, ostride, igstride, ogstride;
  bool per_channel() const { return dw || kind != KIND_CONV; }
};

struct Trip {
  int r0, c0, m0, n0;
};

// A trip's extents and input window: rows [ylo, yhi) and columns [xlo, xhi) of the image, the
// part of the window (origin y0, x0) that is not padding.
struct Geometry {
  int tr, tc, tm, channels, ch0, y0, x0, ylo, yhi, xlo, xhi;
};

static inline int min_int(int a, int b) { return a < b ? a : b; }
static inline int max_int(int a, int b) { return a > b ? a : b; }

static FeDesc fe_decode(dtl_fe_burst_t mem, unsigned addr) {
  ap_uint<8 * DTL_FE_DESC_BYTES> bits = 0;
  mem.read_request(addr >> LOG_B, DESC_BEATS);
desc_beats:
  for (int j = 0; j < DESC_BEATS; j++) {
#pragma HLS PIPELINE II = 1
    bits = (bits >> (8 * B)) | (ap_uint<8 * DTL_FE_DESC_BYTES>(mem.read()) << (8 * (DTL_FE_DESC_BYTES - B)));
  }
  ap_uint<32> word[DTL_FE_DESC_BYTES / 4];
#pragma HLS ARRAY_PARTITION variable = word complete
  for (int i = 0; i < DTL_FE_DESC_BYTES / 4; i++) {
#pragma HLS UNROLL
    word[i] = bits.range(32 * i + 31, 32 * i);
  }
  FeDesc d;
  // BEGIN dtlgen.isa decode (generated by `python -m dtlgen.isa`: edit the spec, not these lines)
  d.kind = word[0].range(3, 0);
  d.act = word[0].range(5, 4);
  d.pool = word[0][6];
  d.dw = word[0][7];
  d.scaled = word[0][8];
  d.gen = word[0][9];
  d.sparse = word[0][10];
  d.prefetch = word[0][11];
  d.wfirst = word[0].range(31, 16);
  d.n = word[1].range(15, 0);
  d.m = word[1].range(31, 16);
  d.h = word[2].range(15, 0);
  d.w = word[2].range(31, 16);
  d.r = word[3].range(15, 0);
  d.c = word[3].range(31, 16);
  d.k = word[4].range(7, 0);
  d.s = word[4].range(15, 8);
  d.p = word[4].range(23, 16);
  d.shift = ap_int<8>(word[4].range(31, 24));
  d.six = ap_int<16>(word[5].range(15, 0));
  d.mult = word[5].range(31, 16);
  d.in = word[6];
  d.wt = word[7];
  d.bias = word[8];
  d.out = word[9];
  d.sa = word[10].range(7, 0);
  d.sb = word[10].range(15, 8);
  d.more = word[11].range(7, 0);
  d.plane = word[11][8];
  d.keep = word[11][9];
  d.moreg = word[11].range(23, 16);
  d.istride = word[12];
  d.ostride = word[13];
  d.igstride = word[14];
  d.ogstride = word[15];
  // END dtlgen.isa decode
  return d;
}

// The next trip in the order r, c, m, n (n fastest); `nl` is 1 for per-channel ops.
static Trip next_trip(const FeDesc &d, Trip t, int nl) {
  if (t.n0 + TN < nl) { t.n0 += TN; return t; }
  t.n0 = 0;
  if (t.m0 + TM < d.m) { t.m0 += TM; return t; }
  t.m0 = 0;
  if (t.c0 + TC < d.c) { t.c0 += TC; return t; }
  t.c0 = 0;
  t.r0 += TR;
  return t;
}

// Each process steps its own copy of the trip sequence: trip 0 at k = 0, then the next one.
static Trip step_trip(const FeDesc &d, Trip t, int k) {
  const Trip zero = {0, 0, 0, 0};
  return k == 0 ? zero : next_trip(d, t, d.per_channel() ? 1 : d.n);
}

static Geometry geometry(const FeDesc &d, const Trip &t) {
  Geometry g;
  g.tr = min_int(TR, d.r - t.r0);
  g.tc = min_int(TC, d.c - t.c0);
  g.tm = min_int(TM, d.m - t.m0);
  g.channels = d.per_channel() ? g.tm : min_int(TN, d.n - t.n0);
  g.ch0 = d.per_channel() ? t.m0 : t.n0;
  g.y0 = t.r0 * d.s - d.p;
  g.x0 = t.c0 * d.s - d.p;
  g.ylo = max_int(g.y0, 0);
  g.yhi = max_int(g.ylo, min_int(g.y0 + (g.tr - 1) * d.s + d.k, d.h));
  g.xlo = max_int(g.x0, 0);
  g.xhi = max_int(g.xlo, min_int(g.x0 + (g.tc - 1) * d.s + d.k, d.w));
  return g;
}

// Beats of one tap row of a weight tile: tm x wn weights in W_SLOT-bit slots, padded to whole beats
// (dtlgen.isa.fe); a trip's tile is K*K of them, stored in trip order.
static int weight_row_beats(int tm, int wn) { return (tm * wn + WB - 1) >> LOG_WB; }
static unsigned weight_row_bytes(int tm, int wn) { return unsigned(weight_row_beats(tm, wn)) << LOG_B; }
// The weight walker's next tap row: column kc of row kr, as tap kr * K_MAX + kc of the weight buffers.
static void next_tap(int k, int &kc, int &tap) {
  if (++kc == k) {
    kc = 0;
    tap += K_MAX - k + 1;
  } else {
    tap++;
  }
}

// Beats of one tap row's bitmap in a sparse tile: a bit per weight bank, TM x TN (TM for a depthwise
// conv), bit m * TN + n (m) for lane m's weight of input channel n, padded to whole beats.
static int sparse_bitmap_beats(bool dw) { return ((dw ? TM : TM * TN) + 8 * B - 1) >> (LOG_B + 3); }
enum { SP_HEADER, SP_BITMAP, SP_VALUES, SP_DONE };  // the parts of a sparse tile, in order (fe_load)

// Beats that cover `bytes` bytes from byte address `addr`.
static int covering_beats(unsigned addr, int bytes) { return int(((addr + bytes - 1) >> LOG_B) - (addr >> LOG_B)) + 1; }

// Words of a convolution's bias table (dtlgen.isa.fe.bias_table_words): M biases, or under `scaled`
// the biases padded to TABLE_ALIGN_WORDS words, then M scales.
static int scale_base(const FeDesc &d) { return (d.m + TABLE_ALIGN_WORDS - 1) & ~(TABLE_ALIGN_WORDS - 1); }
static int bias_table_words(const FeDesc &d) { return d.scaled ? scale_base(d) + d.m : d.m; }

// Word w of the bias table into the bias or the scale banks.
static void fe_table_word(const FeDesc &d, int w, ap_uint<32> word, ap_int<32> bias[DTL_FE_M_MAX],
                          ap_int<16> scale[DTL_FE_M_MAX]) {
#pragma HLS INLINE
  if (w < d.m && w < DTL_FE_M_MAX) bias[w] = ap_int<32>(word);
  const int s = w - scale_base(d);
  if (d.scaled && s >= 0 && s < DTL_FE_M_MAX) scale[s] = ap_int<16>(word.range(15, 0));
}

// The bias table of a convolution: 32-bit words, B / 4 to a beat (a word over two beats on a 2-byte
// bus); a scaled conv's scales follow its biases.
static void fe_bias(dtl_fe_burst_t mem, const FeDesc &d, ap_int<32> bias[DTL_FE_M_MAX], ap_int<16> scale[DTL_FE_M_MAX]) {
  const int words = bias_table_words(d);
#if DTL_FE_BUS_BYTES >= 4
  const int beats = (4 * words + B - 1) >> LOG_B;
  mem.read_request(d.bias >> LOG_B, beats);
bias_beats:
  for (int j = 0; j < beats; j++) {
#pragma HLS LOOP_TRIPCOUNT max = BIAS_BEATS
#pragma HLS PIPELINE II = 1
    const fe_word_t beat = mem.read();
    for (int u = 0; u < B / 4; u++) {
#pragma HLS UNROLL
      fe_table_word(d, j * (B / 4) + u, beat.range(32 * u + 31, 32 * u), bias, scale);
    }
  }
#else
  mem.read_request(d.bias >> LOG_B, 2 * words);
bias_words:
  for (int w = 0; w < words; w++) {
#pragma HLS LOOP_TRIPCOUNT max = 2 * DTL_FE_M_MAX
#pragma HLS PIPELINE II = 2
    const fe_word_t lo = mem.read();
    const fe_word_t hi = mem.read();
    fe_table_word(d, w, (ap_uint<32>(hi) << 16) | ap_uint<32>(lo), bias, scale);
  }
#endif
}

// Weights generated on chip (dtlgen.isa.fe, Weights generated on chip): a seeded dense conv's ±1 weights
// of tap t, lane m, input channel n are bit (n0 + n) mod 32 of word (t * M + m0 + m) * NW + (n0 + n) / 32
// of the layer whose key the weight field holds (NW = ceil(N / 32); dtlgen.isa.seeded.conv_weights).
static void fe_generate(const FeDesc &d, const Trip &t, int tm, int wn, fe_wgt_t wts[TM][TN][KK]) {
  const uint32_t nw = uint32_t(d.n + 31) >> 5;
  int kr = 0, kc = 0, m = 0;
gen_rows:
  for (int i = 0; i < d.k * d.k * TM; i++) {  // a lane's row of each tap, one a cycle (one loop: it pipelines)
#pragma HLS LOOP_TRIPCOUNT max = KK * TM
#pragma HLS PIPELINE II = 1
    const uint32_t first = (uint32_t(kr * d.k + kc) * uint32_t(d.m) + uint32_t(t.m0 + m)) * nw + (uint32_t(t.n0) >> 5);
    ap_uint<32 * GEN_WORDS> words;  // the lane's run: GEN_WORDS words from the one holding input channel n0
    for (int j = 0; j < GEN_WORDS; j++) {
#pragma HLS UNROLL
      words.range(32 * j + 31, 32 * j) = dtl_seeded_word(d.wt, first + uint32_t(j));
    }
    const ap_uint<32 * GEN_WORDS> run = words >> (t.n0 & 31);  // bit n: input channel n0 + n
    for (int mm = 0; mm < TM; mm++) {
#pragma HLS UNROLL
      for (int n = 0; n < TN; n++) {
#pragma HLS UNROLL
        if (mm == m) wts[mm][n][kr * K_MAX + kc] = m < tm && n < wn ? fe_wgt_t(run[n] ? 1 : -1) : fe_wgt_t(0);
      }
    }
    if (++m == TM) {
      m = 0;
      if (++kc == d.k) {
        kc = 0;
        kr++;
      }
    }
  }
}

// A walk over a trip's input rows: operand, channel, row; `addr` is the row's first byte (its first
// window column), `chan` its channel's; an add's second operand starts at `second`.
struct RowWalker {
  int row, ch, op;
  unsigned addr, chan;
  explicit RowWalker(unsigned start) : row(0), ch(0), op(0), addr(start), chan(start) {}
  void next(unsigned width, int rows, unsigned plane, int channels, unsigned second) {
    addr += width;
    if (++row < rows) return;
    row = 0;
    chan += plane;
    if (++ch == channels) {
      ch = 0;
      op++;
      chan = second;
    }
    addr = chan;
  }
};

// Load trip k: its weight tile (one burst) and the rows of its input window (a burst each, both
// operands of an add), on one stream of beats. Requests run ahead of the data by up to MAX_REQ, so
// the memory latency is paid once per trip, as in the RTL's load.
static void fe_load(dtl_fe_burst_t mem, const FeDesc &d, int k, fe_word_t win[IN_BANKS][WIN_WORDS],
                    ap_uint<8> roff[IN_BANKS][2 * IN_ROWS], fe_wgt_t wts[TM][TN][KK]) {
  static Trip t;
  static unsigned w_ptr;
  static int w_size;  // a sparse tile's beats: the descriptor's w_first for the first, then each header's
  t = step_trip(d, t, k);
  const Geometry g = geometry(d, t);
  if (t.m0 == 0 && t.n0 == 0) {  // every output tile position reads its weights from the start
    w_ptr = d.wt;
    w_size = d.wfirst;
  }
  const bool conv = d.kind == KIND_CONV, sparse = conv && !d.gen && d.sparse;
  const int wn = d.dw ? 1 : g.channels, w_row = weight_row_beats(g.tm, wn);
  const int bm_row = sparse_bitmap_beats(d.dw);
  const int w_beats = !conv || d.gen ? 0 : sparse ? w_size : d.k * d.k * w_row;
  const unsigned w_addr = w_ptr;
  w_ptr += unsigned(w_beats) << LOG_B;
#ifdef DTL_CSIM_CHECKED
  if (sparse && w_beats == 0) {  // (fe_check walked the tiles: only weights changed since can get here)
    dtl_csim_fail(mem.status(), DTL_CSIM_BAD_DESCRIPTOR, "FE engine: the sparse weight tile at 0x%x has a size "
                  "of 0 beats (its descriptor's weights changed while it ran)", w_addr);
    return;
  }
#endif
  // lane (m, n)'s weight: slot q = m * wn + n of each tap row, in beat q / WB at slot q % WB
  ap_uint<16> q_beat[TM][TN];
  ap_uint<8> q_slot[TM][TN];
  bool q_ok[TM][TN];
#pragma HLS ARRAY_PARTITION variable = q_beat complete dim = 0
#pragma HLS ARRAY_PARTITION variable = q_slot complete dim = 0
#pragma HLS ARRAY_PARTITION variable = q_ok complete dim = 0
  for (int m = 0; m < TM; m++) {
#pragma HLS UNROLL
    for (int n = 0; n < TN; n++) {
#pragma HLS UNROLL
      const int q = m * wn + n;
      q_beat[m][n] = q >> LOG_WB;
      q_slot[m][n] = q & (WB - 1);
      q_ok[m][n] = m < g.tm && n < wn;
    }
  }
  if (conv && d.gen) fe_generate(d, t, g.tm, wn, wts);
  // A sparse tile's parse (sp_part): its header, then per tap row its bitmap (bm_row beats into `bm`),
  // then its kept weights; lane (m, n) of the tile (m < tm, n < wn) is kept where bit m * TN + n (a
  // depthwise conv's: m) is 1, its weight the rank-th kept one in (m, n) order, in value beat rank / WB
  // at slot rank % WB. A beat past the last tap row, or a tile that ends before it, disagrees with its size.
  int sp_part = SP_HEADER, sp_j = 0, sp_values = 0, sp_rows = 0;
  bool sp_bad = false;
  ap_uint<8 * B * BM_BEATS> bm = 0;
  ap_uint<16> rank[TM][TN];
  bool kept[TM][TN];
#pragma HLS ARRAY_PARTITION variable = rank complete dim = 0
#pragma HLS ARRAY_PARTITION variable = kept complete dim = 0
  const int operands = d.kind == KIND_ADD ? 2 : 1;
  const int rows = g.yhi - g.ylo, cols = g.xhi - g.xlo;
  const int row_requests = cols > 0 ? operands * g.channels * rows : 0;
  const unsigned plane = unsigned(d.h) * unsigned(d.w);
  const unsigned first = unsigned(g.ch0) * plane + unsigned(g.ylo) * unsigned(d.w) + unsigned(g.xlo);
  if (w_beats == 0 && row_requests == 0) return;
  // the request walker (rq) and the data walker (dt) step through the same rows, one behind the other
  int requests = (w_beats > 0) + row_requests, in_flight = 0;
  bool rq_weights = w_beats > 0;
  RowWalker rq(d.in + first), dt(d.in + first);
  int dt_w = 0, dt_tap = 0, dt_kc = 0, dt_tj = 0, dt_beat = 0;
load:
  for (;;) {
#pragma HLS LOOP_TRIPCOUNT max = LOAD_TRIPS
#pragma HLS PIPELINE II = 1
    if (requests > 0 && in_flight < MAX_REQ) {
      if (rq_weights) {
        mem.read_request(w_addr >> LOG_B, w_beats);
        rq_weights = false;
      } else {
        mem.read_request(rq.addr >> LOG_B, covering_beats(rq.addr, cols));
        rq.next(d.w, rows, plane, g.channels, d.wt + first);
      }
      requests--;
      in_flight++;
    }
    const fe_word_t beat = mem.read();
    bool request_done;
    if (dt_w < w_beats && sparse) {
      // a sparse tile's beat: its header, a bitmap beat or a value beat of tap dt_tap (kr * K_MAX + kc)
      bool row_done = false;
      if (sp_part == SP_HEADER) {
        w_size = beat.range(15, 0);  // the next tile's beats
        sp_part = SP_BITMAP;
      } else if (sp_part == SP_BITMAP) {
        for (int j = 0; j < BM_BEATS; j++) {
#pragma HLS UNROLL
          if (j == sp_j) bm.range(8 * B * j + 8 * B - 1, 8 * B * j) = beat;
        }
        if (++sp_j == bm_row) {
          // the row's bitmap is in: each lane's bit and rank (a prefix count in position order), and 0
          // in every lane's weight (the kept ones are written from the value beats)
          int count = 0;
          for (int m = 0; m < TM; m++) {
#pragma HLS UNROLL
            for (int n = 0; n < TN; n++) {
#pragma HLS UNROLL
              const bool on = m < g.tm && n < wn && (d.dw ? bm[m] : bm[m * TN + n]);
              kept[m][n] = on;
              rank[m][n] = count;
              count += on;
              wts[m][n][dt_tap] = 0;
            }
          }
          sp_j = 0;
          sp_values = (count + WB - 1) >> LOG_WB;
          sp_part = SP_VALUES;
          row_done = sp_values == 0;  // no weight kept: no value beats
        }
      } else if (sp_part == SP_VALUES) {
        for (int m = 0; m < TM; m++) {
#pragma HLS UNROLL
          for (int n = 0; n < TN; n++) {
#pragma HLS UNROLL
            // the slot, sign-extended from its low W_BITS bits (the slot holds the same value)
            const fe_wgt_t v = fe_wgt_t(beat >> ((rank[m][n] & (WB - 1)) * W_SLOT));
            if (kept[m][n] && (rank[m][n] >> LOG_WB) == sp_j) wts[m][n][dt_tap] = v;
          }
        }
        row_done = ++sp_j == sp_values;
      } else {
        sp_bad = true;  // a beat past the last tap row
      }
      if (row_done) {
        sp_j = 0;
        sp_part = ++sp_rows == d.k * d.k ? SP_DONE : SP_BITMAP;
        next_tap(d.k, dt_kc, dt_tap);
      }
      request_done = ++dt_w == w_beats;
      if (request_done && sp_part != SP_DONE) sp_bad = true;  // the tile ended before its last tap row
    } else if (dt_w < w_beats) {
      // weights: tap dt_tap (kr * K_MAX + kc), beat dt_tj of its row
      for (int m = 0; m < TM; m++) {
#pragma HLS UNROLL
        for (int n = 0; n < TN; n++) {
#pragma HLS UNROLL
          // the slot, sign-extended from its low W_BITS bits (the slot holds the same value)
          const fe_wgt_t v = fe_wgt_t(beat >> (q_slot[m][n] * W_SLOT));
          if (!q_ok[m][n]) wts[m][n][dt_tap] = 0;
          else if (q_beat[m][n] == dt_tj) wts[m][n][dt_tap] = v;
        }
      }
      if (++dt_tj == w_row) {
        dt_tj = 0;
        next_tap(d.k, dt_kc, dt_tap);
      }
      request_done = ++dt_w == w_beats;
    } else {
      // input: beat dt_beat of row dt.row of channel dt.ch (bank dt.ch) of operand dt.op
      const int at = ((dt.op * IN_ROWS + dt.row) << LOG_ROW_WORDS) + dt_beat;
      for (int b = 0; b < IN_BANKS; b++) {
#pragma HLS UNROLL
        if (b == dt.ch) {
          win[b][at] = beat;
          if (dt_beat == 0) roff[b][dt.op * IN_ROWS + dt.row] = dt.addr & (B - 1);
        }
      }
      request_done = ++dt_beat == covering_beats(dt.addr, cols);
      if (request_done) {
        dt_beat = 0;
        dt.next(d.w, rows, plane, g.channels, d.wt + first);
      }
    }
    if (request_done) in_flight--;
    if (request_done && requests == 0 && in_flight == 0) break;
  }
#ifdef DTL_CSIM_CHECKED
  if (sp_bad)  // (fe_check parsed every tile: only weights changed since can get here)
    dtl_csim_fail(mem.status(), DTL_CSIM_BAD_DESCRIPTOR, "FE engine: the sparse weight tile at 0x%x does not "
                  "take the %d beats its size gives (its descriptor's weights changed while it ran)", w_addr, w_beats);
#endif
}

// The multiplier (the average-pool reciprocal, a scaled conv's channel scale, else 1), bias,
// requantisation and activation of one accumulator.
static fe_act_t fe_finish(const FeDesc &d, fe_acc_t acc, ap_int<32> bias, ap_int<17> scale) {
#pragma HLS INLINE
  // the multiplier is 17 bits signed: a 48 x 17-bit multiplier. C-simulation computes the same low 48
  // bits in 64-bit integers where they hold the product (accumulators of up to 46 bits): ap_int's wide
  // path took a third of a small network's C-simulation
#ifndef __SYNTHESIS__
  const fe_out_t x = DTL_FE_ACC_BITS <= 46 ? fe_out_t(acc.to_int64() * scale.to_int64() + bias.to_int64())
                                           : fe_out_t(fe_out_t(acc) * scale + fe_out_t(bias));
#else
  const fe_out_t x = fe_out_t(acc) * scale + fe_out_t(bias);
#endif
  fe_out_t y = dtl_requantise<DTL_FE_A_BITS, 48>(x, d.shift);
  if (d.act != 0 && y < 0) y = 0;
  if (d.act == ACT_RELU6 && y > d.six) y = d.six;
  return fe_act_t(y);
}

// Compute trip k: a tap (kr, kc) per pass over the tile's positions, one position a cycle. The
// accumulators are read and written back each cycle; a pass of fewer than DIST positions is padded
// with idle cycles, so one accumulator's updates always lie DIST or more cycles apart (the distance
// the DEPENDENCE pragma gives Vitis). The tile's last trip writes the finished outputs.
static void fe_compute(const FeDesc &d, int k, const fe_word_t win[IN_BANKS][WIN_WORDS],
                       const ap_uint<8> roff[IN_BANKS][2 * IN_ROWS], const fe_wgt_t wts[TM][TN][KK],
                       const ap_int<32> bias[DTL_FE_M_MAX], const ap_int<16> scale[DTL_FE_M_MAX],
                       fe_lanes_t tile[TR][TC]) {
  static Trip t;
  static fe_acc_t acc[TM][TR * TC];
#pragma HLS ARRAY_PARTITION variable = acc dim = 1 complete
  t = step_trip(d, t, k);
  const Geometry g = geometry(d, t);
  const bool conv = d.kind == KIND_CONV, dense = conv && !d.dw;
  const bool first_trip = t.n0 == 0, last_trip = d.per_channel() || t.n0 + TN >= d.n;
  const fe_act_t pad = d.kind == KIND_MAXPOOL ? fe_act_t(-(1 << (DTL_FE_A_BITS - 1))) : fe_act_t(0);
  ap_int<32> lane_bias[TM];
  ap_int<17> lane_scale[TM];
#pragma HLS ARRAY_PARTITION variable = lane_bias complete
#pragma HLS ARRAY_PARTITION variable = lane_scale complete
  for (int m = 0; m < TM; m++) {
#pragma HLS UNROLL
    const bool in_table = t.m0 + m < DTL_FE_M_MAX;
    lane_bias[m] = conv && in_table ? bias[t.m0 + m] : ap_int<32>(0);
    lane_scale[m] = d.scaled && in_table ? ap_int<17>(scale[t.m0 + m])
                                         : ap_int<17>(d.kind == KIND_AVGPOOL ? d.mult : 1);
  }
  const int positions = g.tr * g.tc, pass = positions < DIST ? DIST : positions;
  const int iterations = d.k * d.k * pass;
  int kr = 0, kc = 0, tap = 0, p = 0, rr = 0, cc = 0, pos = 0, ry = 0, rx = 0;
taps:
  for (int i = 0; i < iterations; i++) {
#pragma HLS LOOP_TRIPCOUNT max = TAP_TRIPS
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = acc type = inter direction = RAW dependent = true distance = 4
    const bool valid = p < positions;
    const int y = g.y0 + kr + ry, x = g.x0 + kc + rx;
    const bool inside = valid && y >= g.ylo && y < g.yhi && x >= g.xlo && x < g.xhi;
    const int row = inside ? y - g.ylo : 0, col = inside ? x - g.xlo : 0;
    fe_act_t px[IN_BANKS], px2[IN_BANKS];  // each bank's element (and an add's second operand)
    for (int b = 0; b < IN_BANKS; b++) {
#pragma HLS UNROLL
      const bool live = inside && b < g.channels;  // a row this trip loaded (roff and win written)
      const int idx = live ? int(roff[b][row]) + col : 0;
      const int idx2 = live && d.kind == KIND_ADD ? int(roff[b][IN_ROWS + row]) + col : 0;
      const fe_word_t w0 = win[b][(row << LOG_ROW_WORDS) + (idx >> LOG_B)];
      const fe_word_t w1 = win[b][((IN_ROWS + row) << LOG_ROW_WORDS) + (idx2 >> LOG_B)];
      px[b] = live ? fe_act_t(w0 >> (8 * (idx & (B - 1)))) : pad;
      px2[b] = live ? fe_act_t(w1 >> (8 * (idx2 & (B - 1)))) : fe_act_t(0);
    }
    const int at = valid ? pos : 0;  // idle cycles of a short pass touch no accumulator
    const bool fresh = first_trip && kr == 0 && kc == 0;
    const bool finish = last_trip && kr == d.k - 1 && kc == d.k - 1;
    fe_lanes_t lanes = 0;
    for (int m = 0; m < TM; m++) {
#pragma HLS UNROLL
      fe_acc_t sum = 0;
      if (dense) {
        for (int n = 0; n < TN; n++) {
#pragma HLS UNROLL
          sum += wts[m][n][tap] * px[n];
        }
      } else if (conv) {
        sum = wts[m][0][tap] * px[m];
      } else if (d.kind == KIND_ADD) {
        sum = (fe_acc_t(px[m]) << d.sa) + (fe_acc_t(px2[m]) << d.sb);
      } else {
        sum = px[m];
      }
      const fe_acc_t prev = acc[m][at];
      fe_acc_t total;
      if (fresh) total = sum;
      else if (d.kind == KIND_MAXPOOL) total = sum > prev ? sum : prev;
      else total = prev + sum;
      if (valid) acc[m][at] = total;
      lanes.range(8 * m + 7, 8 * m) = ap_uint<8>(fe_finish(d, total, lane_bias[m], lane_scale[m]));
    }
    if (valid && finish) tile[rr][cc] = lanes;
    // next position, then the next tap
    if (++p == pass) {
      p = rr = cc = pos = ry = rx = 0;
      if (++kc == d.k) {
        kc = 0;
        kr++;
        tap += K_MAX - d.k + 1;
      } else {
        tap++;
      }
    } else if (++cc == g.tc) {
      cc = rx = 0;
      rr++;
      ry += d.s;
      pos += TC - g.tc + 1;
    } else {
      rx += d.s;
      pos++;
    }
  }
}

// Store trip k's output tile when k is its last trip: per lane and output row, the beats that cover
// the row's bytes (one burst request each), B bytes a beat with byte enables; the fused pool takes
// the maximum of four finished values. A row's write response is collected MAX_WRITES rows later
// (the rest at the tile's end), so the responses never hold the data back.
static void fe_store(dtl_fe_burst_t out, const FeDesc &d, int k, const fe_lanes_t tile[TR][TC]) {
  static Trip t;
  t = step_trip(d, t, k);
  const Geometry g = geometry(d, t);
  if (!(d.per_channel() || t.n0 + TN >= d.n)) return;  // not the tile's last trip
  const int out_rows = d.pool ? g.tr >> 1 : g.tr, out_cols = d.pool ? g.tc >> 1 : g.tc;
  if (out_rows == 0 || out_cols == 0) return;
  const unsigned map_rows = d.pool ? d.r >> 1 : d.r, map_cols = d.pool ? d.c >> 1 : d.c;
  const unsigned plane = map_rows * map_cols;
  unsigned lane_addr = d.out + unsigned(t.m0) * plane + unsigned(t.r0 >> d.pool) * map_cols + unsigned(t.c0 >> d.pool);
  unsigned addr = lane_addr;
  int sm = 0, si = 0, sj = 0, pending = 0;
store:
  for (;;) {
#pragma HLS LOOP_TRIPCOUNT max = STORE_TRIPS
#pragma HLS PIPELINE II = 1
    const int beats = covering_beats(addr, out_cols);
    if (sj == 0) {
      if (pending == MAX_WRITES) {  // retire the oldest row's response before a new request
        out.write_response();
        pending--;
      }
      out.write_request(addr >> LOG_B, beats);
      pending++;
    }
    // byte b of this beat is output column c0 + b of the row (outside [0, out_cols): not written)
    const int c0 = (sj << LOG_B) - int(addr & (B - 1));
    const int first_col = d.pool ? 2 * c0 : c0;  // the tile column of byte 0
    const int tr0 = d.pool ? 2 * si : si;
    fe_lanes_t v0[2 * B], v1[2 * B];  // tile rows tr0 and tr0 + 1 at the 2B columns from first_col
    for (int q = 0; q < 2 * B; q++) {
#pragma HLS UNROLL
      const int col = first_col + ((q - first_col) & (2 * B - 1));  // the column of bank q in the window
      const int at = col < 0 ? 0 : col >= TC ? TC - 1 : col;
      v0[q] = tile[tr0][at];
      v1[q] = tile[tr0 + 1 < TR ? tr0 + 1 : tr0][at];
    }
    fe_word_t word = 0;
    ap_int<B> mask = 0;
    for (int b = 0; b < B; b++) {
#pragma HLS UNROLL
      const int c = c0 + b;
      fe_act_t v;
      if (d.pool) {
        const int q = (2 * c) & (2 * B - 1);
        const fe_act_t a0 = fe_act_t(v0[q].range(8 * sm + 7, 8 * sm)), a1 = fe_act_t(v0[q + 1].range(8 * sm + 7, 8 * sm));
        const fe_act_t a2 = fe_act_t(v1[q].range(8 * sm + 7, 8 * sm)), a3 = fe_act_t(v1[q + 1].range(8 * sm + 7, 8 * sm));
        const fe_act_t top = a0 > a1 ? a0 : a1, bottom = a2 > a3 ? a2 : a3;
        v = top > bottom ? top : bottom;
      } else {
        v = fe_act_t(v0[c & (2 * B - 1)].range(8 * sm + 7, 8 * sm));
      }
      word.range(8 * b + 7, 8 * b) = ap_uint<8>(v);
      mask[b] = c >= 0 && c < out_cols;
    }
    out.write(word, mask);
    if (++sj == beats) {
      sj = 0;
      addr += map_cols;
      if (++si == out_rows) {
        si = 0;
        lane_addr += plane;
        addr = lane_addr;
        if (++sm == g.tm) break;
      }
    }
  }
responses:
  for (int i = 0; i < pending; i++) {
#pragma HLS LOOP_TRIPCOUNT max = MAX_WRITES
#pragma HLS PIPELINE II = 1
    out.write_response();
  }
}

// The trips of one image of a descriptor as a dataflow loop: load k + 1, compute k and store an
// earlier tile overlap, linked by the ping-pong buffers Vitis makes of the arrays declared here.
static void fe_run(dtl_fe_burst_t mem, dtl_fe_burst_t out, const FeDesc &d, int trips,
                   const ap_int<32> bias[DTL_FE_M_MAX], const ap_int<16> scale[DTL_FE_M_MAX]) {
trip:
  for (int k = 0; k < trips; k++) {
#pragma HLS LOOP_TRIPCOUNT max = 4096
#pragma HLS DATAFLOW
    fe_word_t win[IN_BANKS][WIN_WORDS];
#pragma HLS ARRAY_PARTITION variable = win dim = 1 complete
    ap_uint<8> roff[IN_BANKS][2 * IN_ROWS];
#pragma HLS ARRAY_PARTITION variable = roff dim = 1 complete
    fe_wgt_t wts[TM][TN][KK];
#pragma HLS ARRAY_PARTITION variable = wts dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = wts dim = 2 complete
    fe_lanes_t tile[TR][TC];
#pragma HLS ARRAY_PARTITION variable = tile dim = 1 cyclic factor = 2
#pragma HLS ARRAY_PARTITION variable = tile dim = 2 cyclic factor = STORE_BANKS
    fe_load(mem, d, k, win, roff, wts);
    fe_compute(d, k, win, roff, wts, bias, scale, tile);
    fe_store(out, d, k, tile);
  }
}

#ifdef DTL_CSIM_CHECKED
// C-simulation only: the descriptor's fields within what the engine's buffers hold, and every byte
// it will read or write inside the image, so a tampered descriptor stops the engine instead of
// indexing an on-chip array or DRAM out of range. Generated programs always pass.
static bool fe_fits(const dtl_fe_burst_t &mem, unsigned index, unsigned at, const char *verb, const char *what,
                    unsigned long long base, unsigned long long count) {
  if (count == 0 || base + count <= mem.bytes()) return true;
  dtl_csim_fail(mem.status(), DTL_CSIM_BAD_DESCRIPTOR,
                "FE descriptor %u at 0x%x %s %s at bytes 0x%llx-0x%llx, outside the %llu-byte memory image", index,
                at, verb, what, base, base + count - 1, (unsigned long long)mem.bytes());
  return false;
}

// A sparse conv's weight tiles (dtlgen.isa.fe, Sparse weights), walked as the engine will load them:
// each tile inside the image, and its header, bitmaps and kept weights exactly the beats its size
// (w_first, then the previous tile's header) gives; the last header gives the first tile's size. A
// walk, not a closed form: the sizes are data. It ends within the image (every tile takes a beat or
// more, and each must fit), reading the headers and bitmaps through a copy of the port.
static bool fe_sparse_check(const FeDesc &d, unsigned index, unsigned at, const dtl_fe_burst_t &mem) {
  DtlCsimStatus *status = mem.status();
#define FE_REFUSE(...) DTL_CSIM_REFUSE(status, "FE", index, at, __VA_ARGS__)
  dtl_fe_burst_t peek(mem);  // the engine's own port has no request open between descriptors
  const int mt = (d.m + TM - 1) / TM, nt = d.dw ? 1 : (d.n + TN - 1) / TN, bm_row = sparse_bitmap_beats(d.dw);
  const long long tiles = (long long)mt * nt;
  unsigned long long addr = d.wt;
  unsigned size = d.wfirst;
  long long tile = 0;
  while (tile < tiles) {
    const int m0 = int(tile / nt) * TM, n0 = int(tile % nt) * TN;
    const int tm = min_int(TM, d.m - m0), wn = d.dw ? 1 : min_int(TN, d.n - n0);
    if (size < 1u + unsigned(d.k * d.k * bm_row))
      FE_REFUSE("sparse weight tile %lld (m0=%d, n0=%d) at 0x%llx has a size of %u beats, fewer than its header and "
                "%d bitmaps take (%d beats)", tile, m0, n0, addr, size, d.k * d.k, 1 + d.k * d.k * bm_row);
    if (!fe_fits(mem, index, at, "reads", "a sparse weight tile", addr, (unsigned long long)size << LOG_B))
      return false;
    peek.read_request(addr >> LOG_B, 1);
    const unsigned next = unsigned(peek.read().range(15, 0));
    unsigned used = 1;  // beats of the tile parsed: each tap row's bitmap, then its kept weights
    for (int row = 0; row < KK; row++) {
      if (row == d.k * d.k) break;
      if (used + bm_row > size)
        FE_REFUSE("sparse weight tile %lld (m0=%d, n0=%d) at 0x%llx needs more than the %u beats its size gives, "
                  "by tap row %d of %d", tile, m0, n0, addr, size, row, d.k * d.k);
      peek.read_request((addr >> LOG_B) + used, bm_row);
      ap_uint<8 * B * BM_BEATS> bm = 0;
      for (int j = 0; j < BM_BEATS; j++)
        if (j < bm_row) bm.range(8 * B * j + 8 * B - 1, 8 * B * j) = peek.read();
      int count = 0;  // the row's kept weights (bits outside the tile's tm x wn lanes are not read)
      for (int m = 0; m < TM; m++)
        for (int n = 0; n < TN; n++)
          if (m < tm && n < wn) count += d.dw ? bm[m] : bm[m * TN + n];
      used += bm_row + ((count + WB - 1) >> LOG_WB);
      if (used > size)
        FE_REFUSE("sparse weight tile %lld (m0=%d, n0=%d) at 0x%llx needs more than the %u beats its size gives, "
                  "by tap row %d of %d", tile, m0, n0, addr, size, row, d.k * d.k);
    }
    if (used != size)
      FE_REFUSE("sparse weight tile %lld (m0=%d, n0=%d) at 0x%llx takes %u beats, but %s gives it %u", tile, m0, n0,
                addr, used, tile ? "the previous tile's header" : "the descriptor's w_first", size);
    addr += (unsigned long long)size << LOG_B;
    size = next;
    tile++;
  }
  if (size != unsigned(d.wfirst))
    FE_REFUSE("the last sparse weight tile's header gives %u beats for the first tile, which takes %d", size,
              d.wfirst);
#undef FE_REFUSE
  return true;
}

static bool fe_check(const FeDesc &d, unsigned index, unsigned at, const dtl_fe_burst_t &mem) {
  DtlCsimStatus *status = mem.status();
#define FE_REFUSE(...) DTL_CSIM_REFUSE(status, "FE", index, at, __VA_ARGS__)
  if (d.kind < KIND_CONV || d.kind > KIND_ADD)
    FE_REFUSE("kind %d is not 1 (conv), 2 (max pool), 3 (average pool) or 4 (add)", d.kind);
  if (d.act > 2) FE_REFUSE("activation %d is not 0 (none), 1 (ReLU) or 2 (ReLU6)", d.act);
  if (d.k < 1 || (d.kind == KIND_CONV && d.k > K_MAX))
    FE_REFUSE("kernel K=%d is outside the engine's 1..%d for a convolution (a pool's window is checked below)", d.k,
              K_MAX);
  if (d.s < 1) FE_REFUSE("stride S=0; the engine needs S >= 1");
  if (d.kind == KIND_CONV && d.m > DTL_FE_M_MAX)
    FE_REFUSE("M=%d output channels exceed the engine's bias table of %d", d.m, DTL_FE_M_MAX);
  if (d.kind == KIND_ADD && (d.sa >= DTL_FE_ACC_BITS || d.sb >= DTL_FE_ACC_BITS))
    FE_REFUSE("the add's operand shifts %d, %d exceed its %d-bit accumulator", d.sa, d.sb, DTL_FE_ACC_BITS);
  if (d.kind == KIND_CONV && ((d.bias | (d.gen ? 0u : d.wt)) & (B - 1)))
    FE_REFUSE("its biases at 0x%x and weights at 0x%x must start on %d-byte beats of the memory port", d.bias, d.wt,
              B);
  if (d.scaled && d.kind != KIND_CONV) FE_REFUSE("a per-channel scale on kind %d, which is not a convolution", d.kind);
  if (d.gen && (d.kind != KIND_CONV || d.dw || !d.scaled))
    FE_REFUSE("generated weights on kind %d (depthwise %d, scaled %d): only a scaled dense convolution's", d.kind, d.dw,
              d.scaled);
  if (d.sparse && (d.kind != KIND_CONV || d.gen))
    FE_REFUSE("sparse weights on kind %d (generated %d): only a convolution's stored weights", d.kind, d.gen);
  if (d.sparse && d.wfirst == 0) FE_REFUSE("sparse weights whose first tile takes 0 beats (w_first)");
  if (d.kind == KIND_CONV && !fe_fits(mem, index, at, "reads", "its biases", d.bias, 4ULL * bias_table_words(d)))
    return false;
  const long long nl = d.per_channel() ? 1 : d.n;
  if (d.r == 0 || d.c == 0 || d.m == 0 || nl == 0) return true;  // no trips: nothing is read or written
  // The input window of a tile must fit the buffer, and every output position's window must start
  // inside the padded input (which also bounds the work a descriptor asks for).
  const long long rows = (long long)(min_int(TR, d.r) - 1) * d.s + d.k;
  const long long cols = (long long)(min_int(TC, d.c) - 1) * d.s + d.k;
  if (rows > IN_ROWS || cols > IN_COLS)
    FE_REFUSE("a %dx%d output tile with K=%d, S=%d needs a %lldx%lld input window; the engine's buffer holds %dx%d",
              min_int(TR, d.r), min_int(TC, d.c), d.k, d.s, rows, cols, IN_ROWS, IN_COLS);
  // (a max pool's last window may run past the padded input, torch's ceil mode: it starts inside the
  // input or its left padding and sees the pad value beyond; dtlgen.isa.fe.out_sizes)
  const int past = d.kind == KIND_MAXPOOL ? d.k - 1 : 0;
  if ((long long)(d.r - 1) * d.s + d.k > d.h + 2LL * d.p + past || (long long)(d.r - 1) * d.s >= d.h + (long long)d.p ||
      (long long)(d.c - 1) * d.s + d.k > d.w + 2LL * d.p + past || (long long)(d.c - 1) * d.s >= d.w + (long long)d.p)
    FE_REFUSE("an R=%d x C=%d output with K=%d, S=%d, P=%d needs more input than the %dx%d map", d.r, d.c, d.k,
              d.s, d.p, d.h, d.w);
  if (d.pool && ((TR % 2 && d.r > TR) || (TC % 2 && d.c > TC)))
    FE_REFUSE("a fused 2x2 pool needs even tiles (TR=%d, TC=%d) or one tile per map (R=%d, C=%d)", TR, TC, d.r,
              d.c);
  // A batch: every image's output rows in one row tile, their input windows in the buffer (dtlgen.isa.fe)
  const long long images = d.more + 1LL;
  if (images > 1) {
    long long wrows = (long long)(d.r - 1) * d.s + d.k - d.p;
    if (wrows > d.h) wrows = d.h;
    if (wrows < 1) wrows = 1;
    if (images * d.r > TR || (d.pool && d.r % 2) || images * wrows > IN_ROWS)
      FE_REFUSE("%lld images of R=%d rows (%lld input rows each%s) do not fit one row tile of TR=%d rows and an "
                "input buffer of %d rows", images, d.r, wrows, d.pool ? ", a fused pool" : "", TR, IN_ROWS);
  }
#undef FE_REFUSE
  const unsigned long long map = (unsigned long long)d.h * d.w;
  const unsigned long long channels = d.per_channel() ? d.m : d.n;
  const unsigned long long out_rows = d.pool ? d.r >> 1 : d.r, out_cols = d.pool ? d.c >> 1 : d.c;
  // the last group's last image's input and output lie furthest (an image's starts a stride after the
  // previous one's, a group's a group stride after the previous group's)
  const unsigned long long in_span = (unsigned long long)d.moreg * d.igstride + (images - 1) * (unsigned long long)d.istride
                                     + channels * map;
  const unsigned long long out_span = (unsigned long long)d.moreg * d.ogstride + (images - 1) * (unsigned long long)d.ostride
                                      + (unsigned long long)d.m * out_rows * out_cols;
  if (!fe_fits(mem, index, at, "reads", "its input", d.in, in_span)) return false;
  if (d.kind == KIND_ADD && !fe_fits(mem, index, at, "reads", "its second input", d.wt, in_span)) return false;
  if (d.kind == KIND_CONV && !d.gen && d.sparse) {  // (its sizes are in its tiles' headers)
    if (!fe_sparse_check(d, index, at, mem)) return false;
  } else if (d.kind == KIND_CONV && !d.gen) {  // (generated weights: the field is a key, not an address)
    // every trip's weight tile (dtlgen.isa.fe.weight_bytes): full and edge tiles along m and n
    const unsigned long long mf = d.m / TM, mr = d.m % TM, nf = d.dw ? 1 : d.n / TN, nr = d.dw ? 0 : d.n % TN;
    const int nw = d.dw ? 1 : TN;
    const unsigned long long bytes = (unsigned long long)d.k * d.k *
        (mf * nf * weight_row_bytes(TM, nw) + mf * (nr ? weight_row_bytes(TM, int(nr)) : 0) +
         (mr ? nf * weight_row_bytes(int(mr), nw) + (nr ? weight_row_bytes(int(mr), int(nr)) : 0) : 0));
    if (!fe_fits(mem, index, at, "reads", "its weights", d.wt, bytes)) return false;
  }
  return fe_fits(mem, index, at, "writes", "its output", d.out, out_span);
}
#endif

}  // namespace

void dtl_fe_engine(dtl_fe_burst_t mem, dtl_fe_burst_t out, ap_uint<32> desc_addr, ap_uint<16> desc_count) {
#pragma HLS INTERFACE mode = m_axi port = mem bundle = gmem offset = slave depth = DTL_FE_MEM_BYTES / DTL_FE_BUS_BYTES max_read_burst_length = 64 num_read_outstanding = 16 latency = DTL_MAXI_LATENCY
#pragma HLS INTERFACE mode = m_axi port = out bundle = gmem offset = slave depth = DTL_FE_MEM_BYTES / DTL_FE_BUS_BYTES max_write_burst_length = 64 num_write_outstanding = 16 latency = DTL_MAXI_LATENCY
#pragma HLS INTERFACE mode = s_axilite port = desc_addr bundle = control
#pragma HLS INTERFACE mode = s_axilite port = desc_count bundle = control
#pragma HLS INTERFACE mode = s_axilite port = return bundle = control
  static ap_int<32> bias[DTL_FE_M_MAX];
  static ap_int<16> scale[DTL_FE_M_MAX];
#pragma HLS ARRAY_PARTITION variable = bias cyclic factor = DTL_FE_TM
#pragma HLS ARRAY_PARTITION variable = scale cyclic factor = DTL_FE_TM
descriptor:
  for (unsigned i = 0; i < desc_count; i++) {
#pragma HLS LOOP_TRIPCOUNT max = 64
    const unsigned at = unsigned(desc_addr) + i * DTL_FE_DESC_BYTES;
#ifdef DTL_CSIM_CHECKED
    if (at & (B - 1)) {
      dtl_csim_fail(mem.status(), DTL_CSIM_BAD_DESCRIPTOR,
                    "FE descriptor %u at 0x%x is not on a %d-byte beat of the memory port", i, at, B);
      return;
    }
#endif
    const FeDesc d = fe_decode(mem, at);
#ifdef DTL_CSIM_CHECKED
    if (!fe_check(d, i, at, mem)) return;
#endif
    if (d.kind == KIND_CONV) fe_bias(mem, d, bias, scale);
    const int nl = d.per_channel() ? 1 : d.n;
    const int trips = ((d.r + TR - 1) / TR) * ((d.c + TC - 1) / TC) * ((d.m + TM - 1) / TM) * ((nl + TN - 1) / TN);
  group:
    for (int g = 0; g <= d.moreg; g++) {
#pragma HLS LOOP_TRIPCOUNT max = 1
    image:
      for (int img = 0; img <= d.more; img++) {
#pragma HLS LOOP_TRIPCOUNT max = 1
        FeDesc e = d;  // image img of group g: its input, an add's second input, its output
        const unsigned in_off = unsigned(g) * d.igstride + unsigned(img) * d.istride;
        e.in = d.in + in_off;
        if (d.kind == KIND_ADD) e.wt = d.wt + in_off;
        e.out = d.out + unsigned(g) * d.ogstride + unsigned(img) * d.ostride;
        fe_run(mem, out, e, trips, bias, scale);
      }
    }
#ifdef DTL_CSIM_CHECKED
    if (mem.failed()) return;
#endif
  }
}
