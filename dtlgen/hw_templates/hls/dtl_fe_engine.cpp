// Feature-extractor engine in Vitis HLS C++: descriptor-driven tiled convolution on a TM x TN
// multiplier array (the loop nest of Zhang et al., FPGA'15), the HLS twin of rtl/fe_engine.sv.
//
// Per descriptor: output tiles in the order row tile, column tile, output-channel tile, with the
// input-channel tiles ("trips") inside each. Input windows and weight tiles are double-buffered:
// while the array computes trip i from one half, trip i+1 loads into the other (the two calls sit
// in one loop iteration on distinct arrays, so HLS schedules them side by side). The output tile
// accumulates over its trips and is stored after the last one with bias, requantisation (round half
// up, saturate), ReLU / ReLU6 and an optional fused 2x2 max-pool applied on the way out.
// Depthwise convs, pools and adds are per channel: lane m handles channel m0 + m alone.
//
// Numerics: dtl_numerics.h (dtlgen/quant/fixed.py); the golden model is the reference, bit for
// bit, and `dtlgen csim` checks it. Nothing here was synthesised with Vitis HLS in this repository.
#include "dtl_engines.h"
#include "dtl_numerics.h"

namespace {

typedef ap_int<DTL_FE_A_BITS> fe_act_t;
typedef ap_int<DTL_FE_W_BITS> fe_wgt_t;
typedef ap_int<DTL_FE_ACC_BITS> fe_acc_t;
typedef ap_int<48> fe_out_t;  // bias and average-pool reciprocal applied, before requantisation (as the RTL)

const int TM = DTL_FE_TM;
const int TN = DTL_FE_TN;
const int TR = DTL_FE_TR;
const int TC = DTL_FE_TC;
const int K_MAX = DTL_FE_K_MAX;
const int KK = K_MAX * K_MAX;
const int IN_ROWS = (TR - 1) * DTL_FE_S_MAX + K_MAX;
const int IN_COLS = (TC - 1) * DTL_FE_S_MAX + K_MAX;
const int IN_WINDOW = IN_ROWS * IN_COLS;
const int IN_BANKS = TM > TN ? TM : TN;  // per-channel ops read one bank per output lane
const int KIND_CONV = 1, KIND_MAXPOOL = 2, KIND_AVGPOOL = 3, KIND_ADD = 4;

struct FeDesc {
  int kind, act, pool, dw;
  int n, m, h, w, r, c, k, s, p;
  int shift, six, mult, sa, sb;
  unsigned in, wt, bias, out;
  bool per_channel() const { return dw || kind != KIND_CONV; }
};

struct Trip {
  int r0, c0, m0, n0;
};

static inline int min_int(int a, int b) { return a < b ? a : b; }

static FeDesc fe_decode(dtl_fe_rmem_t mem, unsigned addr) {
  ap_uint<32> word[DTL_FE_DESC_BYTES / 4];
  for (int b = 0; b < DTL_FE_DESC_BYTES; b++) {
#pragma HLS PIPELINE II = 1
    word[b / 4].range(8 * (b % 4) + 7, 8 * (b % 4)) = ap_uint<8>(mem[addr + b]);
  }
  FeDesc d;
  d.kind = word[0].range(3, 0);
  d.act = word[0].range(5, 4);
  d.pool = word[0][6];
  d.dw = word[0][7];
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

// Bytes of the weight tile of a trip (the generator stores them in trip order).
static unsigned trip_weight_bytes(const FeDesc &d, const Trip &t) {
  if (d.kind != KIND_CONV) return 0;
  int tm = min_int(TM, d.m - t.m0);
  int wn = d.dw ? 1 : min_int(TN, d.n - t.n0);
  return unsigned(tm * wn * d.k * d.k);
}

// Load a trip's input window (both operands of an add) and weight tile. Positions outside the
// image get the padding value: zero, or the most negative value for max pooling (it never wins).
static void fe_load(dtl_fe_rmem_t mem, const FeDesc &d, const Trip &t, unsigned w_addr,
                    fe_act_t ibuf[IN_BANKS][2 * IN_WINDOW], fe_wgt_t wbuf[TM][TN][KK]) {
  const bool pc = d.per_channel();
  const int tr = min_int(TR, d.r - t.r0), tc = min_int(TC, d.c - t.c0);
  const int channels = pc ? min_int(TM, d.m - t.m0) : min_int(TN, d.n - t.n0);
  const int ch0 = pc ? t.m0 : t.n0;
  const int y0 = t.r0 * d.s - d.p, x0 = t.c0 * d.s - d.p;
  const int rows = (tr - 1) * d.s + d.k, cols = (tc - 1) * d.s + d.k;
  const fe_act_t pad = d.kind == KIND_MAXPOOL ? fe_act_t(-(1 << (DTL_FE_A_BITS - 1))) : fe_act_t(0);
  const int operands = d.kind == KIND_ADD ? 2 : 1;
load_operand:
  for (int op = 0; op < operands; op++) {
    const unsigned base = op ? d.wt : d.in;
  load_bank:
    for (int b = 0; b < IN_BANKS; b++) {
    load_row:
      for (int wy = 0; wy < rows; wy++) {
#pragma HLS LOOP_TRIPCOUNT max = IN_ROWS
      load_col:
        for (int wx = 0; wx < cols; wx++) {
#pragma HLS LOOP_TRIPCOUNT max = IN_COLS
#pragma HLS PIPELINE II = 1
          const int y = y0 + wy, x = x0 + wx;
          fe_act_t v = 0;
          if (b < channels) {
            if (y >= 0 && y < d.h && x >= 0 && x < d.w)
              v = fe_act_t(mem[base + (unsigned(ch0 + b) * d.h + y) * d.w + x]);
            else
              v = pad;
          }
          ibuf[b][op * IN_WINDOW + wy * IN_COLS + wx] = v;
        }
      }
    }
  }
  if (d.kind != KIND_CONV) return;
  const int tm = min_int(TM, d.m - t.m0);
  const int wn = d.dw ? 1 : min_int(TN, d.n - t.n0);
  unsigned a = w_addr;
load_weights:
  for (int m = 0; m < TM; m++) {
    for (int n = 0; n < TN; n++) {
      for (int kr = 0; kr < d.k; kr++) {
#pragma HLS LOOP_TRIPCOUNT max = K_MAX
        for (int kc = 0; kc < d.k; kc++) {
#pragma HLS LOOP_TRIPCOUNT max = K_MAX
#pragma HLS PIPELINE II = 1
          fe_wgt_t v = 0;
          if (m < tm && n < wn) v = fe_wgt_t(mem[a++]);
          wbuf[m][n][kr * K_MAX + kc] = v;
        }
      }
    }
  }
}

// One trip on the array: a tap (kr, kc) per pass over the tile, one output position per cycle,
// all TM x TN multipliers and the adder trees over TN busy in every cycle.
static void fe_compute(const FeDesc &d, const Trip &t, fe_act_t ibuf[IN_BANKS][2 * IN_WINDOW],
                       fe_wgt_t wbuf[TM][TN][KK], fe_acc_t obuf[TM][TR * TC]) {
  const int tr = min_int(TR, d.r - t.r0), tc = min_int(TC, d.c - t.c0);
  const bool first_trip = t.n0 == 0;
tap_row:
  for (int kr = 0; kr < d.k; kr++) {
#pragma HLS LOOP_TRIPCOUNT max = K_MAX
  tap_col:
    for (int kc = 0; kc < d.k; kc++) {
#pragma HLS LOOP_TRIPCOUNT max = K_MAX
    out_row:
      for (int rr = 0; rr < tr; rr++) {
#pragma HLS LOOP_TRIPCOUNT max = TR
      out_col:
        for (int cc = 0; cc < tc; cc++) {
#pragma HLS LOOP_TRIPCOUNT max = TC
#pragma HLS PIPELINE II = 1
          const int at = (rr * d.s + kr) * IN_COLS + cc * d.s + kc;
          const bool first = first_trip && kr == 0 && kc == 0;
        lane:
          for (int m = 0; m < TM; m++) {
#pragma HLS UNROLL
            fe_acc_t sum = 0;
            if (d.kind == KIND_CONV && !d.dw) {
            tree:
              for (int n = 0; n < TN; n++) {
#pragma HLS UNROLL
                sum += wbuf[m][n][kr * K_MAX + kc] * ibuf[n][at];
              }
            } else if (d.kind == KIND_CONV) {
              sum = wbuf[m][0][kr * K_MAX + kc] * ibuf[m][at];
            } else if (d.kind == KIND_ADD) {
              sum = (fe_acc_t(ibuf[m][at]) << d.sa) + (fe_acc_t(ibuf[m][IN_WINDOW + at]) << d.sb);
            } else {
              sum = ibuf[m][at];
            }
            const fe_acc_t prev = obuf[m][rr * TC + cc];
            fe_acc_t total;
            if (first) total = sum;
            else if (d.kind == KIND_MAXPOOL) total = sum > prev ? sum : prev;
            else total = prev + sum;
            obuf[m][rr * TC + cc] = total;
          }
        }
      }
    }
  }
}

// Bias (or the average-pool reciprocal), requantisation and activation of one accumulator.
static fe_act_t fe_finish(const FeDesc &d, fe_acc_t acc, ap_int<32> bias) {
#pragma HLS INLINE
  const fe_out_t x = fe_out_t(acc) * fe_out_t(d.kind == KIND_AVGPOOL ? d.mult : 1) + fe_out_t(bias);
  fe_out_t y = dtl_requantise<DTL_FE_A_BITS, 48>(x, d.shift);
  if (d.act != 0 && y < 0) y = 0;
  if (d.act == 2 && y > d.six) y = d.six;
  return fe_act_t(y);
}

// Store an output tile: one byte per output, rows of the (pooled) tile to their place in the map.
static void fe_store(dtl_fe_mem_t mem, const FeDesc &d, const Trip &t, fe_acc_t obuf[TM][TR * TC],
                     const ap_int<32> bias[DTL_FE_M_MAX]) {
  const int tr = min_int(TR, d.r - t.r0), tc = min_int(TC, d.c - t.c0), tm = min_int(TM, d.m - t.m0);
  const int out_rows = d.pool ? tr >> 1 : tr, out_cols = d.pool ? tc >> 1 : tc;
  const int map_rows = d.pool ? d.r >> 1 : d.r, map_cols = d.pool ? d.c >> 1 : d.c;
store_lane:
  for (int m = 0; m < tm; m++) {
#pragma HLS LOOP_TRIPCOUNT max = TM
    const ap_int<32> b = d.kind == KIND_CONV ? bias[t.m0 + m] : ap_int<32>(0);
  store_row:
    for (int i = 0; i < out_rows; i++) {
#pragma HLS LOOP_TRIPCOUNT max = TR
    store_col:
      for (int j = 0; j < out_cols; j++) {
#pragma HLS LOOP_TRIPCOUNT max = TC
#pragma HLS PIPELINE II = 1
        fe_act_t v;
        if (d.pool) {
          v = fe_finish(d, obuf[m][(2 * i) * TC + 2 * j], b);
          for (int dy = 0; dy < 2; dy++) {
            for (int dx = 0; dx < 2; dx++) {
              const fe_act_t q = fe_finish(d, obuf[m][(2 * i + dy) * TC + 2 * j + dx], b);
              if (q > v) v = q;
            }
          }
        } else {
          v = fe_finish(d, obuf[m][i * TC + j], b);
        }
        const unsigned row = unsigned(t.m0 + m) * map_rows + (t.r0 >> d.pool) + i;
        mem[d.out + row * map_cols + (t.c0 >> d.pool) + j] = ap_int<8>(v);
      }
    }
  }
}

#ifdef DTL_CSIM_CHECKED
// C-simulation only: the descriptor's fields within what the engine's buffers hold, and every byte
// it will read or write inside the image, so a tampered descriptor stops the engine instead of
// indexing an on-chip array or DRAM out of range. Generated programs always pass.
static bool fe_fits(const dtl_fe_rmem_t &mem, unsigned index, unsigned at, const char *verb, const char *what,
                    unsigned long long base, unsigned long long count) {
  if (count == 0 || base + count <= mem.bytes()) return true;
  dtl_csim_fail(mem.status(), DTL_CSIM_BAD_DESCRIPTOR,
                "FE descriptor %u at 0x%x %s %s at bytes 0x%llx-0x%llx, outside the %llu-byte memory image", index,
                at, verb, what, base, base + count - 1, (unsigned long long)mem.bytes());
  return false;
}

static bool fe_check(const FeDesc &d, unsigned index, unsigned at, const dtl_fe_rmem_t &mem) {
  DtlCsimStatus *status = mem.status();
#define FE_REFUSE(...) DTL_CSIM_REFUSE(status, "FE", index, at, __VA_ARGS__)
  if (d.kind < KIND_CONV || d.kind > KIND_ADD)
    FE_REFUSE("kind %d is not 1 (conv), 2 (max pool), 3 (average pool) or 4 (add)", d.kind);
  if (d.act > 2) FE_REFUSE("activation %d is not 0 (none), 1 (ReLU) or 2 (ReLU6)", d.act);
  if (d.k < 1 || d.k > K_MAX) FE_REFUSE("kernel K=%d is outside the engine's 1..%d", d.k, K_MAX);
  if (d.s < 1) FE_REFUSE("stride S=0; the engine needs S >= 1");
  if (d.kind == KIND_CONV && d.m > DTL_FE_M_MAX)
    FE_REFUSE("M=%d output channels exceed the engine's bias table of %d", d.m, DTL_FE_M_MAX);
  if (d.kind == KIND_ADD && (d.sa >= DTL_FE_ACC_BITS || d.sb >= DTL_FE_ACC_BITS))
    FE_REFUSE("the add's operand shifts %d, %d exceed its %d-bit accumulator", d.sa, d.sb, DTL_FE_ACC_BITS);
  if (d.kind == KIND_CONV && !fe_fits(mem, index, at, "reads", "its biases", d.bias, 4ULL * d.m)) return false;
  const long long nl = d.per_channel() ? 1 : d.n;
  if (d.r == 0 || d.c == 0 || d.m == 0 || nl == 0) return true;  // no trips: nothing is read or written
  // The input window of a tile must fit the buffer, and every output position's window must start
  // inside the padded input (which also bounds the work a descriptor asks for).
  const long long rows = (long long)(min_int(TR, d.r) - 1) * d.s + d.k;
  const long long cols = (long long)(min_int(TC, d.c) - 1) * d.s + d.k;
  if (rows > IN_ROWS || cols > IN_COLS)
    FE_REFUSE("a %dx%d output tile with K=%d, S=%d needs a %lldx%lld input window; the engine's buffer holds %dx%d",
              min_int(TR, d.r), min_int(TC, d.c), d.k, d.s, rows, cols, IN_ROWS, IN_COLS);
  if ((long long)(d.r - 1) * d.s + d.k > d.h + 2LL * d.p || (long long)(d.c - 1) * d.s + d.k > d.w + 2LL * d.p)
    FE_REFUSE("an R=%d x C=%d output with K=%d, S=%d, P=%d needs more input than the %dx%d map", d.r, d.c, d.k,
              d.s, d.p, d.h, d.w);
  if (d.pool && ((TR % 2 && d.r > TR) || (TC % 2 && d.c > TC)))
    FE_REFUSE("a fused 2x2 pool needs even tiles (TR=%d, TC=%d) or one tile per map (R=%d, C=%d)", TR, TC, d.r,
              d.c);
#undef FE_REFUSE
  const unsigned long long map = (unsigned long long)d.h * d.w;
  const unsigned long long channels = d.per_channel() ? d.m : d.n;
  const unsigned long long out_rows = d.pool ? d.r >> 1 : d.r, out_cols = d.pool ? d.c >> 1 : d.c;
  if (!fe_fits(mem, index, at, "reads", "its input", d.in, channels * map)) return false;
  if (d.kind == KIND_ADD && !fe_fits(mem, index, at, "reads", "its second input", d.wt, channels * map))
    return false;
  if (d.kind == KIND_CONV) {
    const unsigned long long taps = (unsigned long long)d.k * d.k * d.m * (d.dw ? 1 : d.n);
    if (!fe_fits(mem, index, at, "reads", "its weights", d.wt, taps)) return false;
  }
  return fe_fits(mem, index, at, "writes", "its output", d.out, (unsigned long long)d.m * out_rows * out_cols);
}
#endif

}  // namespace

void dtl_fe_engine(dtl_fe_mem_t mem, ap_uint<32> desc_addr, ap_uint<16> desc_count) {
#pragma HLS INTERFACE mode = m_axi port = mem bundle = gmem offset = slave depth = DTL_FE_MEM_BYTES
#pragma HLS INTERFACE mode = s_axilite port = desc_addr bundle = control
#pragma HLS INTERFACE mode = s_axilite port = desc_count bundle = control
#pragma HLS INTERFACE mode = s_axilite port = return bundle = control
  // Static: large on-chip buffers, not stack frames (C-simulation runs them on the host's stack otherwise).
  static fe_act_t ibuf0[IN_BANKS][2 * IN_WINDOW], ibuf1[IN_BANKS][2 * IN_WINDOW];
  static fe_wgt_t wbuf0[TM][TN][KK], wbuf1[TM][TN][KK];
  static fe_acc_t obuf[TM][TR * TC];
  static ap_int<32> bias[DTL_FE_M_MAX];
#pragma HLS ARRAY_PARTITION variable = ibuf0 dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = ibuf1 dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = wbuf0 dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = wbuf0 dim = 2 complete
#pragma HLS ARRAY_PARTITION variable = wbuf1 dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = wbuf1 dim = 2 complete
#pragma HLS ARRAY_PARTITION variable = obuf dim = 1 complete
descriptor:
  for (unsigned i = 0; i < desc_count; i++) {
    const unsigned at = unsigned(desc_addr) + i * DTL_FE_DESC_BYTES;
    const FeDesc d = fe_decode(mem, at);
#ifdef DTL_CSIM_CHECKED
    if (!fe_check(d, i, at, mem)) return;
#endif
    if (d.kind == KIND_CONV) {
    bias_load:
      for (int m = 0; m < d.m; m++) {
#pragma HLS LOOP_TRIPCOUNT max = DTL_FE_M_MAX
#pragma HLS PIPELINE II = 4
        ap_uint<32> word = 0;
        for (int b = 0; b < 4; b++) word.range(8 * b + 7, 8 * b) = ap_uint<8>(mem[d.bias + 4 * m + b]);
        bias[m] = ap_int<32>(word);
      }
    }
    const int nl = d.per_channel() ? 1 : d.n;
    const long trips = long((d.r + TR - 1) / TR) * ((d.c + TC - 1) / TC) * ((d.m + TM - 1) / TM) * ((nl + TN - 1) / TN);
    Trip cur = {0, 0, 0, 0}, nxt = {0, 0, 0, 0};
    unsigned w_ptr = d.wt;
  trip:
    for (long k = 0; k <= trips; k++) {
      const bool load = k < trips, compute = k > 0;
      // every output tile position reads its weights from the start again
      const unsigned w_addr = (nxt.m0 == 0 && nxt.n0 == 0) ? unsigned(d.wt) : w_ptr;
      if (k % 2 == 0) {
        if (load) fe_load(mem, d, nxt, w_addr, ibuf0, wbuf0);
        if (compute) fe_compute(d, cur, ibuf1, wbuf1, obuf);
      } else {
        if (load) fe_load(mem, d, nxt, w_addr, ibuf1, wbuf1);
        if (compute) fe_compute(d, cur, ibuf0, wbuf0, obuf);
      }
      if (compute && cur.n0 + TN >= nl) fe_store(mem, d, cur, obuf, bias);
      if (load) {
        w_ptr = w_addr + trip_weight_bytes(d, nxt);
        cur = nxt;
        nxt = next_trip(d, nxt, nl);
      }
    }
#ifdef DTL_CSIM_CHECKED
    if (mem.failed()) return;
#endif
  }
}
