// Retrainable-layer engine in Vitis HLS C++: descriptor-driven tiled GEMM that runs forward,
// backward and the weight update on chip, the HLS twin of rtl/rl_engine.sv, written for the Vitis
// HLS scheduler.
//
// A TM x TN array of BITS-wide multipliers works on one layer per descriptor (G = batch x positions
// rows per GEMM). Each GEMM is one flattened, counter-driven loop at II = 1 (no divider, no
// multiplier in its address arithmetic), one tile product a cycle as in the RTL:
//   FWD        Y = W X + b, requantised, activation          over  m-tile, row g, n-tile
//   BWD_DATA   dX = (W^T dY) requantised, masked by relu'(X)  over  n-tile, row g, m-tile
//   UPDATE     dW = dY^T X summed over the rows, requantised, then W <- W - 2^-lr dW with
//              stochastic rounding                            over  m-tile, n-tile, row g
// UPDATE is BWD_WEIGHT fused with the update, over the augmented matrix [W | b] (the bias is column
// N, its input the constant 1): each PE accumulates its dW element over the rows, and a finished
// tile drains through max(TM, TN) requantisers in D = min(TM, TN) cycles while the next tile
// accumulates (tiles start max(G, D) cycles apart), as in the RTL. It consumes the LFSR of
// dtlgen/quant/fixed.py in row-major order of [W | b]: row-start states jump with the GF(2) matrices
// A^(N+1) and A^(TM(N+1)) of the descriptor. LOAD / STORE descriptors move the stashes and the
// parameters to and from DRAM as one burst of whole bus beats (a manual-burst m_axi port, as wide as
// the board's bus). Pruning masks (DTL_RL_HAS_MASK): a bit beside every weight, set by LOAD_P for the
// weights it loads and overwritten by LOAD_M from a bit plane in DRAM; UPDATE writes 0 where a bit is
// 0 (its LFSR steps all the same). FWD and BWD_DATA do not read them, STORE_P does not store them.
//
// Weights, biases, masks and the activation (A) and gradient (G) stashes are static: they stay on chip
// between calls, as the RTL engine's banks do. A stash holds a matrix row-major with a row pitch of
// whole LANES-value words; its words alternate between two banks of LANES lanes (even and odd
// words), so the two words a tile's values straddle are read in one cycle from different banks and a
// tile's results written back in the same cycle (one read and one write a bank: a true dual-port
// RAM), with barrel shifters between the words and the array. Descriptors the host never writes
// (addresses off a beat, a GEMM with M or N zero, a result region overlapping its operands) are
// undefined on the hardware; the C-simulation refuses them. Numerics: dtl_numerics.h, bit for bit
// with the golden model (checked by `dtlgen csim`). Nothing here was synthesised with Vitis HLS in
// this repository; `dtlgen csim` reports a cycle estimate of this code's schedule
// (dtlgen.csim.hls_estimate).
#include "dtl_engines.h"
#include "dtl_numerics.h"

#if DTL_HAS_RL

namespace {

typedef ap_int<DTL_RL_BITS> rl_val_t;
typedef ap_int<DTL_RL_ACC_BITS> rl_acc_t;
typedef ap_int<DTL_RL_WIDE> rl_wide_t;
typedef dtl_rl_word_t rl_word_t;

const int TM = DTL_RL_TM;
const int TN = DTL_RL_TN;
const int TMN = TM * TN;
const int D = TM < TN ? TM : TN;   // cycles a finished UPDATE tile takes to drain
const int LANES = DTL_RL_LANES;    // a power of two >= TM, TN and the values a beat carries
const int LOG_LANES = LANES >= 256 ? 8 : LANES >= 128 ? 7 : LANES >= 64 ? 6 : LANES >= 32 ? 5 : LANES >= 16 ? 4
                    : LANES >= 8 ? 3 : LANES >= 4 ? 2 : 1;
const int B = DTL_RL_BUS_BYTES;    // bytes a beat
const int LOG_B = B >= 128 ? 7 : B >= 64 ? 6 : B >= 32 ? 5 : B >= 16 ? 4 : B >= 8 ? 3 : B >= 4 ? 2 : 1;
static_assert(LANES == 1 << LOG_LANES, "the stash lanes are a power of two from 2 to 256");
static_assert(B == 1 << LOG_B && DTL_RL_DESC_BYTES % B == 0, "the bus is 2 to 128 bytes, a power of two");
const int VALS = B / 2;            // 16-bit values a beat
const int LOG_VALS = LOG_B - 1;
const int LOG_BPW = LOG_LANES - LOG_VALS;  // beats a stash word: 2^LOG_BPW
const int TILE_BEATS = (TMN + VALS - 1) / VALS;  // a weight tile in DRAM, padded to whole beats
const int BROW_BEATS = (TM + VALS - 1) / VALS;   // a bias row in DRAM
const int DESC_BEATS = DTL_RL_DESC_BYTES / B;
const int DESC_HALVES = DTL_RL_DESC_BYTES / 2;
// Each stash's even and odd words: word w sits at [w & 1][w >> 1]. One word more than the stash
// holds on each side, so a tile's second word is addressable even after the last word.
const int A_HALF = (DTL_RL_A_DEPTH + 1) / 2 + 1;
const int G_HALF = (DTL_RL_G_DEPTH + 1) / 2 + 1;
// Largest trip counts, for LOOP_TRIPCOUNT (csynth's latency figures).
const int MAX_ROWS = DTL_RL_A_DEPTH;  // a GEMM row takes at least one stash word
const int MAX_GEMM = DTL_RL_W_DEPTH * MAX_ROWS;
const int MAX_BEATS = DTL_RL_W_DEPTH * TILE_BEATS + DTL_RL_B_DEPTH * BROW_BEATS;
// A mask tile in DRAM: its TMN bits, least significant first, padded to whole beats of 8B bits.
const int LOG_MASK_BITS = LOG_B + 3;
const int MASK_BITS = 1 << LOG_MASK_BITS;  // bits a beat
const int MASK_TILE_BEATS = (TMN + MASK_BITS - 1) / MASK_BITS;
const int MAX_MASK_BEATS = DTL_RL_W_DEPTH * MASK_TILE_BEATS;
// BEGIN dtlgen.isa constants (generated by `python -m dtlgen.isa`: edit the spec, not these lines)
enum { LOAD_A = 1, LOAD_G = 2, STORE_A = 3, FWD = 4, BWD_DATA = 5, UPDATE = 6, LOAD_P = 7, STORE_P = 8, LOAD_M = 9, MAXPOOL = 10, MAXPOOL_BWD = 11 };
enum { ACT_NONE = 0, ACT_RELU = 1, ACT_RELU6 = 2 };
// END dtlgen.isa constants

rl_val_t stash_a[2][A_HALF][LANES];
rl_val_t stash_g[2][G_HALF][LANES];
rl_val_t weights[DTL_RL_W_DEPTH][TMN];
rl_val_t biases[DTL_RL_B_DEPTH][TM];
#if DTL_RL_HAS_MASK
ap_uint<TMN> masks[DTL_RL_W_DEPTH];  // a tile's pruning bits, bit e for PE e: where 0, UPDATE writes the weight 0
#endif

struct RlDesc {
  int mode, act, bg, m, n, rows, xa, ya, gy, gx, wbase, bbase, mt, nt, nta, pitch_n, pitch_m;  // bg: a background LOAD_A (the sequential C++ runs it in order)
  int k, st, pad, tnt, tstep, hi, wi, ro, co, rp, is, mstep;  // a windowed GEMM (k >= 1; dtlgen.isa.rl)
  rl_val_t six;
  ap_uint<16> seed;
  unsigned dram, beats;
  int s0, s1, s2, s3;
  ap_uint<16> j_row[16], j_blk[16];
};

static RlDesc rl_decode(dtl_rl_burst_t mem, unsigned addr) {
  ap_uint<8 * DTL_RL_DESC_BYTES> bits = 0;
  mem.read_request(addr >> LOG_B, DESC_BEATS);
desc_beats:
  for (int j = 0; j < DESC_BEATS; j++) {
#pragma HLS PIPELINE II = 1
    bits = (bits >> (8 * B)) | (ap_uint<8 * DTL_RL_DESC_BYTES>(mem.read()) << (8 * (DTL_RL_DESC_BYTES - B)));
  }
  ap_uint<16> half[DESC_HALVES];
#pragma HLS ARRAY_PARTITION variable = half complete
  for (int h = 0; h < DESC_HALVES; h++) {
#pragma HLS UNROLL
    half[h] = bits.range(16 * h + 15, 16 * h);
  }
  RlDesc d;
  // BEGIN dtlgen.isa decode (generated by `python -m dtlgen.isa`: edit the spec, not these lines)
  d.mode = half[0].range(3, 0);
  d.act = half[0].range(5, 4);
  d.bg = half[0].range(6, 6);
  d.k = half[0].range(10, 8);
  d.st = half[0].range(12, 11);
  d.pad = half[0].range(15, 13);
  d.six = rl_val_t(ap_int<16>(half[1]));
  d.m = half[2];
  d.n = half[3];
  d.rows = half[4];
  d.seed = half[5];
  d.xa = half[6];
  d.ya = half[7];
  d.gy = half[8];
  d.gx = half[9];
  d.wbase = half[10];
  d.bbase = half[11];
  d.dram = unsigned(half[12]) | unsigned(half[13]) << 16;
  d.s0 = ap_int<8>(half[14].range(7, 0));
  d.s1 = ap_int<8>(half[14].range(15, 8));
  d.s2 = ap_int<8>(half[15].range(7, 0));
  d.s3 = ap_int<8>(half[15].range(15, 8));
  d.mt = half[16];
  d.nt = half[17];
  d.nta = half[18];
  d.pitch_n = half[19];
  d.pitch_m = half[20];
  d.beats = unsigned(half[22]) | unsigned(half[23]) << 16;
  d.tnt = half[24];
  d.tstep = int(ap_int<16>(half[25]));
  d.hi = half[26].range(7, 0);
  d.wi = half[26].range(15, 8);
  d.ro = half[27].range(7, 0);
  d.co = half[27].range(15, 8);
  d.rp = half[28];
  d.is = half[29];
  d.mstep = half[30];
  // END dtlgen.isa decode
  for (int r = 0; r < 16; r++) {
#pragma HLS UNROLL
    d.j_row[r] = half[32 + r];
    d.j_blk[r] = half[48 + r];
  }
  return d;
}

// Stash words w and w + 1 side by side (lanes of w, then of w + 1): one read from each bank.
template <int HALF>
static void read_pair(rl_val_t stash[2][HALF][LANES], unsigned w, rl_val_t v[2 * LANES]) {
#pragma HLS INLINE
  const bool odd = w & 1;
  for (int l = 0; l < LANES; l++) {
#pragma HLS UNROLL
    const rl_val_t even_word = stash[0][(w + 1) >> 1][l], odd_word = stash[1][w >> 1][l];
    v[l] = odd ? odd_word : even_word;
    v[LANES + l] = odd ? even_word : odd_word;
  }
}

// Writes the enabled values of words w and w + 1 (laid out as read_pair's): one write a bank.
template <int HALF>
static void write_pair(rl_val_t stash[2][HALF][LANES], unsigned w, const rl_val_t v[2 * LANES],
                       const bool en[2 * LANES]) {
#pragma HLS INLINE
  const bool odd = w & 1;
  for (int l = 0; l < LANES; l++) {
#pragma HLS UNROLL
    if (odd ? en[LANES + l] : en[l]) stash[0][(w + 1) >> 1][l] = odd ? v[LANES + l] : v[l];
    if (odd ? en[l] : en[LANES + l]) stash[1][w >> 1][l] = odd ? v[l] : v[LANES + l];
  }
}

// Barrel shifters over two words: `take` moves value `off` to place 0, `place` moves place 0 to `off`
// (with its enables), LOG_LANES stages of constant wiring each.
static void take(rl_val_t v[2 * LANES], unsigned off) {
#pragma HLS INLINE
  for (int s = 0; s < LOG_LANES; s++) {
#pragma HLS UNROLL
    const bool on = (off >> s) & 1;
    for (int i = 0; i < 2 * LANES; i++) {
#pragma HLS UNROLL
      if (on) v[i] = i + (1 << s) < 2 * LANES ? v[i + (1 << s)] : rl_val_t(0);
    }
  }
}

static void place(rl_val_t v[2 * LANES], bool en[2 * LANES], unsigned off) {
#pragma HLS INLINE
  for (int s = LOG_LANES - 1; s >= 0; s--) {
#pragma HLS UNROLL
    const bool on = (off >> s) & 1;
    for (int i = 2 * LANES - 1; i >= 0; i--) {
#pragma HLS UNROLL
      if (on) {
        v[i] = i >= (1 << s) ? v[i - (1 << s)] : rl_val_t(0);
        en[i] = i >= (1 << s) ? en[i - (1 << s)] : false;
      }
    }
  }
}

// Values [col, col + LANES) of the matrix row whose first stash word is `row`.
template <int HALF>
static void read_tile(rl_val_t stash[2][HALF][LANES], unsigned row, unsigned col, rl_val_t v[2 * LANES]) {
#pragma HLS INLINE
  read_pair<HALF>(stash, row + (col >> LOG_LANES), v);
  take(v, col & (LANES - 1));
}

// Writes values v[0 .. count) at columns [col, col + count) of the row whose first word is `row`,
// where enabled.
template <int HALF, int COUNT>
static void write_tile(rl_val_t stash[2][HALF][LANES], unsigned row, unsigned col, const rl_val_t v[COUNT],
                       const bool en[COUNT]) {
#pragma HLS INLINE
  rl_val_t pair[2 * LANES];
  bool pair_en[2 * LANES];
#pragma HLS ARRAY_PARTITION variable = pair complete
#pragma HLS ARRAY_PARTITION variable = pair_en complete
  for (int i = 0; i < 2 * LANES; i++) {
#pragma HLS UNROLL
    pair[i] = i < COUNT ? v[i] : rl_val_t(0);
    pair_en[i] = i < COUNT ? en[i] : false;
  }
  place(pair, pair_en, col & (LANES - 1));
  write_pair<HALF>(stash, row + (col >> LOG_LANES), pair, pair_en);
}

static rl_val_t activate(rl_val_t y, int act, rl_val_t six) {
#pragma HLS INLINE
  if (act != 0 && y < 0) y = 0;
  if (act == ACT_RELU6 && y > six) y = six;
  return y;
}

// relu'(x) of the producer's output: 1 where its activation passed the value through.
static bool passes(rl_val_t x, int act, rl_val_t six) {
#pragma HLS INLINE
  if (act == ACT_RELU) return x > 0;
  if (act == ACT_RELU6) return x > 0 && x < six;
  return true;
}

// Where beat b of a transfer goes on chip: stash word `word` (slot `slot` of its 2^LOG_BPW beats), or
// beat `part` of weight tile `tile` or of bias row `row` of the parameter image (d.n weight tiles,
// then d.m bias rows, each padded to whole beats). Counters, stepped once a beat.
struct Place {
  unsigned word, slot, tile, row, part;
  bool bias;
  void start(unsigned first) { word = first; slot = tile = row = part = 0; bias = false; }
  void step(int tiles) {
    if (++slot == (1u << LOG_BPW)) {
      slot = 0;
      word++;
    }
    if (!bias && ++part == unsigned(TILE_BEATS)) {
      part = 0;
      if (++tile == unsigned(tiles)) bias = true;
    } else if (bias && ++part == unsigned(BROW_BEATS)) {
      part = 0;
      row++;
    }
  }
};

// LOAD_A, LOAD_G, LOAD_P: one burst of d.beats beats into a stash or the parameters.
static void rl_load(dtl_rl_burst_t mem, const RlDesc &d) {
  const unsigned base = d.mode == LOAD_A ? d.xa : d.gy;
  if (d.beats == 0) return;  // no request: a burst has at least one beat
  Place at;
  at.start(base);
  at.bias = d.n == 0;
  mem.read_request(d.dram >> LOG_B, d.beats);
load:
  for (unsigned b = 0; b < d.beats; b++) {
#pragma HLS LOOP_TRIPCOUNT max = MAX_BEATS
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = stash_a type = inter dependent = false
#pragma HLS DEPENDENCE variable = stash_g type = inter dependent = false
    const rl_word_t beat = mem.read();
    rl_val_t v[VALS];
#pragma HLS ARRAY_PARTITION variable = v complete
    for (int k = 0; k < VALS; k++) {
#pragma HLS UNROLL
      v[k] = rl_val_t(ap_int<16>(beat.range(16 * k + 15, 16 * k)));
    }
    const bool odd = at.word & 1;
    for (int l = 0; l < LANES; l++) {
#pragma HLS UNROLL
      if ((l >> LOG_VALS) != int(at.slot)) continue;
      if (d.mode == LOAD_A && !odd) stash_a[0][at.word >> 1][l] = v[l & (VALS - 1)];
      if (d.mode == LOAD_A && odd) stash_a[1][at.word >> 1][l] = v[l & (VALS - 1)];
      if (d.mode == LOAD_G && !odd) stash_g[0][at.word >> 1][l] = v[l & (VALS - 1)];
      if (d.mode == LOAD_G && odd) stash_g[1][at.word >> 1][l] = v[l & (VALS - 1)];
    }
    if (d.mode == LOAD_P && !at.bias) {
      for (int e = 0; e < TMN; e++) {
#pragma HLS UNROLL
        if ((e >> LOG_VALS) != int(at.part)) continue;
        weights[at.tile][e] = v[e & (VALS - 1)];
      }
#if DTL_RL_HAS_MASK
      masks[at.tile] = ~ap_uint<TMN>(0);  // a loaded tile is unpruned until a LOAD_M says otherwise
#endif
    }
    if (d.mode == LOAD_P && at.bias) {
      for (int i = 0; i < TM; i++) {
#pragma HLS UNROLL
        if ((i >> LOG_VALS) == int(at.part)) biases[at.row][i] = v[i & (VALS - 1)];
      }
    }
    at.step(d.n);
  }
}

#if DTL_RL_HAS_MASK
// LOAD_M: d.n mask tiles from tile 0, MASK_TILE_BEATS beats each, as one burst. Bit e of a tile (PE e,
// the weight tile's order) is bit e mod 8B of the tile's beat e / 8B; padding bits are dropped.
static void rl_load_mask(dtl_rl_burst_t mem, const RlDesc &d) {
  if (d.beats == 0) return;  // no request: a burst has at least one beat
  unsigned tile = 0, part = 0;
  ap_uint<TMN> word = 0;  // the tile's bits so far: written whole at its last beat
  mem.read_request(d.dram >> LOG_B, d.beats);
load_mask:
  for (unsigned b = 0; b < d.beats; b++) {
#pragma HLS LOOP_TRIPCOUNT max = MAX_MASK_BEATS
#pragma HLS PIPELINE II = 1
    const rl_word_t bits = mem.read();
    for (int e = 0; e < TMN; e++) {
#pragma HLS UNROLL
      if ((e >> LOG_MASK_BITS) == int(part)) word[e] = bits[e & (MASK_BITS - 1)];
    }
    if (++part == unsigned(MASK_TILE_BEATS)) {
      masks[tile] = word;
      part = 0;
      tile++;
    }
  }
}
#endif

// STORE_A, STORE_P: one burst of d.beats beats from the activation stash or the parameters.
static void rl_store(dtl_rl_burst_t mem, const RlDesc &d) {
  if (d.beats == 0) return;  // no request: a burst has at least one beat
  Place at;
  at.start(d.ya);
  at.bias = d.n == 0;
  mem.write_request(d.dram >> LOG_B, d.beats);
store:
  for (unsigned b = 0; b < d.beats; b++) {
#pragma HLS LOOP_TRIPCOUNT max = MAX_BEATS
#pragma HLS PIPELINE II = 1
    rl_word_t beat = 0;
    if (d.mode == STORE_A) {
      rl_val_t word[2 * LANES];
#pragma HLS ARRAY_PARTITION variable = word complete
      read_pair<A_HALF>(stash_a, at.word, word);
      for (int l = 0; l < LANES; l++) {
#pragma HLS UNROLL
        if ((l >> LOG_VALS) == int(at.slot)) beat.range(16 * (l & (VALS - 1)) + 15, 16 * (l & (VALS - 1))) = ap_uint<16>(word[l]);
      }
    } else if (!at.bias) {
      for (int e = 0; e < TMN; e++) {
#pragma HLS UNROLL
        if ((e >> LOG_VALS) == int(at.part)) beat.range(16 * (e & (VALS - 1)) + 15, 16 * (e & (VALS - 1))) = ap_uint<16>(weights[at.tile][e]);
      }
    } else {
      for (int i = 0; i < TM; i++) {
#pragma HLS UNROLL
        if ((i >> LOG_VALS) == int(at.part)) beat.range(16 * (i & (VALS - 1)) + 15, 16 * (i & (VALS - 1))) = ap_uint<16>(biases[at.row][i]);
      }
    }
    mem.write(beat, ap_int<B>(-1));
    at.step(d.n);
  }
  mem.write_response();
}

// A windowed GEMM (d.k >= 1, dtlgen.isa.rl): the walk of the X operand's rows, stepped like rl_engine.sv's
// counters (no divider): the tap (kr, kc) inside the reduction, the output position (r, c) of an ro x co grid with
// the GEMM rows. row() is the tap's input row in words from the matrix's first (b img_step + y row_pitch +
// x pitch, modulo 2^32), inside() whether the tap lies in the hi x wi grid (the operand is 0 where it does not).
struct WindowWalk {
  int kr, kc, r, c, y0, x0;          // the tap; the output position; its window's top-left r S - P, c S - P
  unsigned img, wy, wx, trow, tcol;  // b img_step, y0 row_pitch, x0 pitch, kr row_pitch, kc pitch
  unsigned pitch;

  void start(const RlDesc &d, int words) {
    pitch = unsigned(words);
    first_image(d);
    first_tap();
  }
  void first_image(const RlDesc &d) {  // the first image's first position
    first_position(d);
    img = 0;
  }
  void first_position(const RlDesc &d) {
    r = c = 0;
    y0 = x0 = -d.pad;
    wy = unsigned(-d.pad) * unsigned(d.rp);
    wx = unsigned(-d.pad) * pitch;
  }
  void first_tap() {
    kr = kc = 0;
    trow = tcol = 0;
  }
  void next_tap(const RlDesc &d) {
    if (kc + 1 < d.k) {
      kc++;
      tcol += pitch;
    } else {
      kc = 0;
      tcol = 0;
      kr++;
      trow += unsigned(d.rp);
    }
  }
  void next_position(const RlDesc &d) {  // the next GEMM row (the last image's last position: the first again)
    if (c + 1 < d.co) {
      c++;
      x0 += d.st;
      wx += unsigned(d.st) * pitch;
    } else {
      c = 0;
      x0 = -d.pad;
      wx = unsigned(-d.pad) * pitch;
      if (r + 1 < d.ro) {
        r++;
        y0 += d.st;
        wy += unsigned(d.st) * unsigned(d.rp);
      } else {
        r = 0;
        y0 = -d.pad;
        wy = unsigned(-d.pad) * unsigned(d.rp);
        img += unsigned(d.is);
      }
    }
  }
  bool inside(const RlDesc &d) const {
    return y0 + kr >= 0 && y0 + kr < d.hi && x0 + kc >= 0 && x0 + kc < d.wi;
  }
  unsigned row() const { return img + wy + wx + trow + tcol; }
};

static void rl_forward(const RlDesc &d) {
  const unsigned total = unsigned(d.mt) * unsigned(d.rows) * unsigned(d.nt);
  int tn = 0, g = 0, tm = 0;
  unsigned tile_row = d.wbase, tile = d.wbase;  // tiles (tm, 0) and (tm, tn)
  unsigned x_row = d.xa, y_row = d.ya, c0 = 0, r0 = 0;  // row g's first words; c0 = tn TN, r0 = tm TM
  rl_acc_t acc[TM];
#pragma HLS ARRAY_PARTITION variable = acc complete
  // a windowed GEMM: n-tile tn is the tap's n-tile t_n (tap-major tiles: the tile address runs on as for a plain
  // GEMM), the X row the window's
  WindowWalk win;
  win.start(d, d.pitch_n);
  int t_n = 0;
fwd:
  for (unsigned it = 0; it < total; it++) {
#pragma HLS LOOP_TRIPCOUNT max = MAX_GEMM
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = stash_a type = inter dependent = false
    rl_val_t x[2 * LANES];
#pragma HLS ARRAY_PARTITION variable = x complete
    const unsigned xr = d.k ? d.xa + win.row() : x_row, cc = d.k ? unsigned(t_n) * TN : c0;
    const bool inside = !d.k || win.inside(d);
    if (inside) read_tile<A_HALF>(stash_a, xr, cc, x);  // (a tap in the padding reads nothing: its row is no row)
    for (int i = 0; i < TM; i++) {
#pragma HLS UNROLL
      rl_acc_t sum = 0;  // the tile row's products, then the running sum: one adder on the recurrence
      for (int j = 0; j < TN; j++) {
#pragma HLS UNROLL
        if (inside && int(cc) + j < d.n) sum += weights[tile][i * TN + j] * x[j];
      }
      acc[i] = (tn == 0 ? rl_acc_t(0) : acc[i]) + sum;
    }
    const bool last = tn == d.nt - 1;
    if (last) {
      rl_val_t y[TM];
      bool en[TM];
#pragma HLS ARRAY_PARTITION variable = y complete
#pragma HLS ARRAY_PARTITION variable = en complete
      for (int i = 0; i < TM; i++) {
#pragma HLS UNROLL
        const rl_wide_t sum = rl_wide_t(acc[i]) + dtl_shl<DTL_RL_WIDE>(rl_wide_t(biases[d.bbase + tm][i]), d.s1);
        y[i] = activate(dtl_requantise<DTL_RL_BITS, DTL_RL_WIDE>(sum, d.s0), d.act, d.six);
        en[i] = int(r0) + i < d.m;
      }
      write_tile<A_HALF, TM>(stash_a, y_row, r0, y, en);
    }
    // next: n-tile, then row, then m-tile
    tile++;
    c0 += TN;
    tn++;
    if (d.k && ++t_n == d.tnt) {
      t_n = 0;
      win.next_tap(d);
    }
    if (last) {
      tn = 0;
      c0 = 0;
      t_n = 0;
      win.first_tap();
      win.next_position(d);
      x_row += d.pitch_n;
      y_row += d.pitch_m;
      if (++g == d.rows) {
        g = 0;
        win.first_image(d);
        tm++;
        r0 += TM;
        tile_row += d.nt;
        x_row = d.xa;
        y_row = d.ya;
      }
      tile = tile_row;
    }
  }
}

static void rl_backward_data(const RlDesc &d) {
  const unsigned total = unsigned(d.nt) * unsigned(d.rows) * unsigned(d.mt);
  int tm = 0, g = 0;
  unsigned tile_col = d.wbase, tile = d.wbase;  // tiles (0, tn) and (tm, tn)
  unsigned x_row = d.xa, dy_row = d.gy, dx_row = d.gx, c0 = 0, r0 = 0;  // row g's first words; c0 = tn TN, r0 = tm TM
  rl_acc_t acc[TN];
#pragma HLS ARRAY_PARTITION variable = acc complete
  // a windowed GEMM (the flipped kernel over dY's grid): m-tile tm is the tap's m-tile t_m, at weight tile
  // (this n-tile's first) + t_m m_step + tap tap_step
  WindowWalk win;
  win.start(d, d.pitch_m);
  int t_m = 0;
  unsigned w_off = 0;  // t_m m_step + tap tap_step (modulo 2^32: tap_step is negative)
bwd:
  for (unsigned it = 0; it < total; it++) {
#pragma HLS LOOP_TRIPCOUNT max = MAX_GEMM
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = stash_g type = inter dependent = false
    rl_val_t dy[2 * LANES], x[2 * LANES];
#pragma HLS ARRAY_PARTITION variable = dy complete
#pragma HLS ARRAY_PARTITION variable = x complete
    const unsigned yr = d.k ? d.gy + win.row() : dy_row, rr = d.k ? unsigned(t_m) * TM : r0;
    const unsigned wt = d.k ? tile_col + w_off : tile;
    const bool inside = !d.k || win.inside(d);
    if (inside) read_tile<G_HALF>(stash_g, yr, rr, dy);
    read_tile<A_HALF>(stash_a, x_row, c0, x);
    for (int j = 0; j < TN; j++) {
#pragma HLS UNROLL
      rl_acc_t sum = 0;  // as in rl_forward
      for (int i = 0; i < TM; i++) {
#pragma HLS UNROLL
        if (inside && int(rr) + i < d.m) sum += weights[wt][i * TN + j] * dy[i];
      }
      acc[j] = (tm == 0 ? rl_acc_t(0) : acc[j]) + sum;
    }
    const bool last = tm == d.mt - 1;
    if (last) {
      rl_val_t dx[TN];
      bool en[TN];
#pragma HLS ARRAY_PARTITION variable = dx complete
#pragma HLS ARRAY_PARTITION variable = en complete
      for (int j = 0; j < TN; j++) {
#pragma HLS UNROLL
        const rl_val_t v = dtl_requantise<DTL_RL_BITS, DTL_RL_WIDE>(rl_wide_t(acc[j]), d.s0);
        dx[j] = passes(x[j], d.act, d.six) ? v : rl_val_t(0);
        en[j] = int(c0) + j < d.n;
      }
      write_tile<G_HALF, TN>(stash_g, dx_row, c0, dx, en);
    }
    // next: m-tile, then row, then n-tile
    tile += d.nt;
    r0 += TM;
    tm++;
    if (d.k) {
      w_off += unsigned(d.mstep);
      if (++t_m == d.tnt) {
        t_m = 0;
        w_off += unsigned(d.tstep) - unsigned(d.tnt) * unsigned(d.mstep);  // (loop-invariant product)
        win.next_tap(d);
      }
    }
    if (last) {
      tm = 0;
      r0 = 0;
      t_m = 0;
      w_off = 0;
      win.first_tap();
      win.next_position(d);
      x_row += d.pitch_n;
      dy_row += d.pitch_m;
      dx_row += d.pitch_n;
      if (++g == d.rows) {
        g = 0;
        win.first_image(d);
        c0 += TN;
        tile_col++;
        x_row = d.xa;
        dy_row = d.gy;
        dx_row = d.gx;
      }
      tile = tile_col;
    }
  }
}

// MAXPOOL and MAXPOOL_BWD (kernel = stride, no padding, exact tiling): the window walk of a windowed GEMM, one tap
// an issue, TN channels at a time; d.mt issues a window (its taps; MAXPOOL_BWD twice them: the first pass finds
// each channel's maximum, the second writes every tap's dX, dY at the first tap equal to the maximum and masked
// by relu'(X) there, 0 at the others). rl_engine.sv runs the same order.
static void rl_pool(const RlDesc &d) {
  const bool bwd = d.mode == MAXPOOL_BWD;
  const int taps = d.k * d.k;
  const unsigned total = unsigned(d.nt) * unsigned(d.rows) * unsigned(d.mt);
  int t = 0, g = 0;
  unsigned c0 = 0, y_row = bwd ? d.gy : d.ya;  // row g's output (MAXPOOL) or dY (MAXPOOL_BWD) word; c0 = tn TN
  rl_val_t best[TN];
  bool found[TN];
#pragma HLS ARRAY_PARTITION variable = best complete
#pragma HLS ARRAY_PARTITION variable = found complete
  WindowWalk win;
  win.start(d, d.pitch_n);
pool:
  for (unsigned it = 0; it < total; it++) {
#pragma HLS LOOP_TRIPCOUNT max = MAX_GEMM
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = stash_a type = inter dependent = false
#pragma HLS DEPENDENCE variable = stash_g type = inter dependent = false
    rl_val_t x[2 * LANES], out[TN];
    bool en[TN];
#pragma HLS ARRAY_PARTITION variable = x complete
#pragma HLS ARRAY_PARTITION variable = out complete
#pragma HLS ARRAY_PARTITION variable = en complete
    read_tile<A_HALF>(stash_a, d.xa + win.row(), c0, x);
    const bool second = t >= taps;
    for (int j = 0; j < TN; j++) {
#pragma HLS UNROLL
      en[j] = int(c0) + j < d.n;
      out[j] = 0;
      if (!second) {
        best[j] = (t == 0 || x[j] > best[j]) ? x[j] : best[j];
        found[j] = false;
        out[j] = activate(best[j], d.act, d.six);
      }
    }
    if (!bwd && t == taps - 1) write_tile<A_HALF, TN>(stash_a, y_row, c0, out, en);
    if (second) {
      rl_val_t dy[2 * LANES];
#pragma HLS ARRAY_PARTITION variable = dy complete
      read_tile<G_HALF>(stash_g, y_row, c0, dy);
      for (int j = 0; j < TN; j++) {
#pragma HLS UNROLL
        const bool first_max = x[j] == best[j] && !found[j];
        found[j] = found[j] || first_max;
        out[j] = first_max && passes(x[j], d.act, d.six) ? dy[j] : rl_val_t(0);
      }
      write_tile<G_HALF, TN>(stash_g, d.gx + win.row(), c0, out, en);
    }
    // next: tap (the second pass: the taps again), then row, then n-tile
    if (++t == d.mt) {
      t = 0;
      win.first_tap();
      win.next_position(d);
      y_row += d.pitch_n;
      if (++g == d.rows) {
        g = 0;
        win.first_image(d);
        c0 += TN;
        y_row = bwd ? d.gy : d.ya;
      }
    } else if (t == taps) {
      win.first_tap();
    } else {
      win.next_tap(d);
    }
  }
}

// Chunk k of UPDATE's write-back of a finished tile (weight tile `tile`, bias row `brow`, first
// row r0 and column c0), D chunks of max(TM, TN) results: the tile's columns when TM >= TN (every
// row's LFSR state steps once a chunk), else its rows (a row's states step along it). The tile's
// accumulated gradient dw, its weights, mask bits and biases as they were when it finished, and the
// LFSR states (of element (r0 + i, c0 + k), or of row r0 + k's first) shift by one chunk after each,
// so every index is a constant. A weight whose mask bit is 0 is written 0 (its random value is
// consumed all the same, so the other elements' rounding does not depend on the mask).
static void drain_chunk(const RlDesc &d, rl_acc_t dw[TM][TN], rl_val_t old_w[TM][TN], bool keep[TM][TN],
                        rl_val_t old_b[TM], ap_uint<16> lfsr[TM], unsigned tile, unsigned brow, int r0, int c0,
                        int k, int bias_col) {
#pragma HLS INLINE
  if (TM >= TN) {
    const int col = c0 + k;
    for (int i = 0; i < TM; i++) {
#pragma HLS UNROLL
      const int row = r0 + i;
      if (row < d.m && col < d.n) {
        const rl_val_t g = dtl_requantise<DTL_RL_BITS, DTL_RL_WIDE>(rl_wide_t(dw[i][0]), d.s0);
        const rl_val_t w = keep[i][0] ? dtl_saturate<DTL_RL_BITS, DTL_RL_WIDE>(
            rl_wide_t(old_w[i][0]) - dtl_stochastic_round<DTL_RL_WIDE>(g, d.s2, lfsr[i])) : rl_val_t(0);
        for (int j = 0; j < TN; j++) {
#pragma HLS UNROLL
          if (j == k) weights[tile][i * TN + j] = w;
        }
      } else if (row < d.m && col == bias_col) {
        const rl_val_t g = dtl_requantise<DTL_RL_BITS, DTL_RL_WIDE>(rl_wide_t(dw[i][0]), d.s1);
        biases[brow][i] = dtl_saturate<DTL_RL_BITS, DTL_RL_WIDE>(
            rl_wide_t(old_b[i]) - dtl_stochastic_round<DTL_RL_WIDE>(g, d.s3, lfsr[i]));
      }
      lfsr[i] = dtl_lfsr_step(lfsr[i]);
      for (int j = 0; j + 1 < TN; j++) {
#pragma HLS UNROLL
        dw[i][j] = dw[i][j + 1];
        old_w[i][j] = old_w[i][j + 1];
        keep[i][j] = keep[i][j + 1];
      }
    }
  } else {
    const int row = r0 + k;
    ap_uint<16> r = lfsr[0];
    rl_val_t bias = 0;
    bool has_bias = false;
    for (int j = 0; j < TN; j++) {
#pragma HLS UNROLL
      const int col = c0 + j;
      if (row < d.m && col < d.n) {
        const rl_val_t g = dtl_requantise<DTL_RL_BITS, DTL_RL_WIDE>(rl_wide_t(dw[0][j]), d.s0);
        const rl_val_t w = keep[0][j] ? dtl_saturate<DTL_RL_BITS, DTL_RL_WIDE>(
            rl_wide_t(old_w[0][j]) - dtl_stochastic_round<DTL_RL_WIDE>(g, d.s2, r)) : rl_val_t(0);
        for (int i = 0; i < TM; i++) {
#pragma HLS UNROLL
          if (i == k) weights[tile][i * TN + j] = w;
        }
      } else if (row < d.m && col == bias_col) {  // at most one column of the row: one store a bank, below
        const rl_val_t g = dtl_requantise<DTL_RL_BITS, DTL_RL_WIDE>(rl_wide_t(dw[0][j]), d.s1);
        bias = dtl_saturate<DTL_RL_BITS, DTL_RL_WIDE>(rl_wide_t(old_b[0]) - dtl_stochastic_round<DTL_RL_WIDE>(g, d.s3, r));
        has_bias = true;
      }
      r = dtl_lfsr_step(r);
    }
    for (int i = 0; i < TM; i++) {
#pragma HLS UNROLL
      if (has_bias && i == k) biases[brow][i] = bias;
    }
    for (int i = 0; i + 1 < TM; i++) {
#pragma HLS UNROLL
      lfsr[i] = lfsr[i + 1];
      old_b[i] = old_b[i + 1];
      for (int j = 0; j < TN; j++) {
#pragma HLS UNROLL
        dw[i][j] = dw[i + 1][j];
        old_w[i][j] = old_w[i + 1][j];
        keep[i][j] = keep[i + 1][j];
      }
    }
  }
}

static void rl_update(const RlDesc &d) {
  // LFSR state at the start of row m0 + i of [W | b]: A^((m0 + i)(N+1)) applied to the seed, walked
  // one row a cycle into a shift register
  ap_uint<16> row_start[TM], state[TM];  // state: of element (r0 + i, c0), one step past the row start
#pragma HLS ARRAY_PARTITION variable = row_start complete
#pragma HLS ARRAY_PARTITION variable = state complete
  ap_uint<16> walk = d.seed;
row_starts:
  for (int k = 0; k < TM; k++) {
#pragma HLS PIPELINE II = 1
    for (int i = 0; i + 1 < TM; i++) {
#pragma HLS UNROLL
      row_start[i] = row_start[i + 1];
    }
    row_start[TM - 1] = walk;
    walk = dtl_lfsr_jump(d.j_row, walk);
  }
  for (int i = 0; i < TM; i++) {
#pragma HLS UNROLL
    state[i] = dtl_lfsr_step(row_start[i]);
  }
  const int interval = d.rows > D ? d.rows : D;  // cycles a tile
  const unsigned tiles = unsigned(d.mt) * unsigned(d.nta);
  const unsigned total = tiles == 0 ? 0u : tiles * unsigned(interval) + D;  // + the last tile's drain
  rl_acc_t pe[TM][TN];  // each PE accumulates its own dW element over the rows
#pragma HLS ARRAY_PARTITION variable = pe complete dim = 0
  // the tile being drained (see drain_chunk); dk: its chunks done, D when there is none
  rl_acc_t dw[TM][TN];
  rl_val_t old_w[TM][TN], old_b[TM];
  bool keep[TM][TN];  // its mask bits
  ap_uint<16> lfsr[TM];
#pragma HLS ARRAY_PARTITION variable = dw complete dim = 0
#pragma HLS ARRAY_PARTITION variable = old_w complete dim = 0
#pragma HLS ARRAY_PARTITION variable = keep complete dim = 0
#pragma HLS ARRAY_PARTITION variable = old_b complete
#pragma HLS ARRAY_PARTITION variable = lfsr complete
  unsigned dtile = 0, dbrow = 0;
  int dr0 = 0, dc0 = 0, dk = D, dbias = d.n;
  // a windowed GEMM: n-tile tn is tap `tap`'s n-tile t_n (the last tap's run on into the bias column), at weight
  // tile (this m-tile's first) + tap tap_step + t_n; the X row the window's of GEMM row k
  const int taps = d.k ? d.k * d.k : 1;
  WindowWalk win;
  win.start(d, d.pitch_n);
  int t_n = 0, tap = 0;
  unsigned tap_off = 0;  // tap tap_step
  int k = 0, tn = 0, tm = 0;
  unsigned tile_row = d.wbase, x_row = d.xa, dy_row = d.gy, c0 = 0, r0 = 0;  // c0 = tn TN, r0 = tm TM
upd:
  for (unsigned it = 0; it < total; it++) {
#pragma HLS LOOP_TRIPCOUNT max = MAX_GEMM
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = weights type = inter dependent = false
#pragma HLS DEPENDENCE variable = biases type = inter dependent = false
    const bool live = tm < d.mt;  // else the last tile's drain
    const bool row = live && k < d.rows;
    rl_val_t dy[2 * LANES], x[2 * LANES];
#pragma HLS ARRAY_PARTITION variable = dy complete
#pragma HLS ARRAY_PARTITION variable = x complete
    const unsigned cc = d.k ? unsigned(t_n) * TN : c0, wtile = tile_row + tap_off + unsigned(d.k ? t_n : tn);
    const int bias_col = tap == taps - 1 ? d.n : -1;  // only the last tap's columns go on into [W | b]'s bias
    const unsigned xr = d.k ? d.xa + win.row() : x_row;
    const bool inside = !d.k || win.inside(d);
    if (row) read_tile<G_HALF>(stash_g, dy_row, r0, dy);
    if (row && inside && int(cc) < d.n) read_tile<A_HALF>(stash_a, xr, cc, x);
    if (dk < D) {
      drain_chunk(d, dw, old_w, keep, old_b, lfsr, dtile, dbrow, dr0, dc0, dk, dbias);
      dk++;
    }
    for (int i = 0; i < TM; i++) {
#pragma HLS UNROLL
      for (int j = 0; j < TN; j++) {
#pragma HLS UNROLL
        const int col = int(cc) + j;
        const rl_acc_t product = row && int(r0) + i < d.m
                                     ? rl_acc_t(dy[i] * (col < d.n ? (inside ? x[j] : rl_val_t(0))
                                                                   : rl_val_t(col == bias_col ? 1 : 0)))
                                     : rl_acc_t(0);
        pe[i][j] = (k == 0 ? rl_acc_t(0) : pe[i][j]) + product;
      }
    }
    if (live && k == interval - 1) {  // the tile is finished: hand it to the drain
      const bool weighted = (d.k ? t_n : tn) < (d.k ? d.tnt : d.nt);  // the tile past the last: only the bias column
#if DTL_RL_HAS_MASK
      const ap_uint<TMN> mask_word = weighted ? masks[wtile] : ~ap_uint<TMN>(0);
#endif
      for (int i = 0; i < TM; i++) {
#pragma HLS UNROLL
        for (int j = 0; j < TN; j++) {
#pragma HLS UNROLL
          dw[i][j] = pe[i][j];
          old_w[i][j] = weighted ? weights[wtile][i * TN + j] : rl_val_t(0);
#if DTL_RL_HAS_MASK
          keep[i][j] = weighted ? bool(mask_word[i * TN + j]) : true;
#else
          keep[i][j] = true;
#endif
        }
        old_b[i] = biases[d.bbase + tm][i];
        lfsr[i] = state[i];
      }
      dtile = wtile;
      dbrow = d.bbase + tm;
      dr0 = r0;
      dc0 = int(cc);
      dbias = bias_col;
      dk = 0;
      if (tn == d.nta - 1) {  // the next row block: its row starts
        for (int i = 0; i < TM; i++) {
#pragma HLS UNROLL
          row_start[i] = dtl_lfsr_jump(d.j_blk, row_start[i]);
          state[i] = dtl_lfsr_step(row_start[i]);
        }
      } else {
        // on along the row by the tile's columns of W: TN, or fewer in a windowed GEMM's tap's last tile
        const int cols = d.n - int(cc) < TN ? d.n - int(cc) : TN;
        for (int i = 0; i < TM; i++) {
#pragma HLS UNROLL
          ap_uint<16> r = state[i];
          for (int j = 0; j < TN; j++) {
#pragma HLS UNROLL
            if (j < cols) r = dtl_lfsr_step(r);
          }
          state[i] = r;
        }
      }
    }
    // next: row, then n-tile, then m-tile
    x_row += d.pitch_n;
    dy_row += d.pitch_m;
    if (d.k) win.next_position(d);
    if (++k == interval) {
      k = 0;
      x_row = d.xa;
      dy_row = d.gy;
      c0 += TN;
      if (d.k) {
        win.first_image(d);
        if (++t_n == d.tnt && tap < taps - 1) {
          t_n = 0;
          tap++;
          tap_off += unsigned(d.tstep);
          win.next_tap(d);
        }
      }
      if (++tn == d.nta) {
        tn = 0;
        c0 = 0;
        t_n = 0;
        tap = 0;
        tap_off = 0;
        win.first_tap();
        tm++;
        r0 += TM;
        tile_row += d.k ? d.mstep : d.nt;
      }
    }
  }
}

#ifdef DTL_CSIM_CHECKED
// C-simulation only: every stash word, weight tile, bias row and DRAM value a descriptor will touch
// inside what the engine holds, and its tile counts the ones its M and N imply, so a tampered
// descriptor stops the engine instead of indexing an on-chip array or DRAM out of range (and cannot
// ask for unbounded work). Generated programs always pass.
typedef unsigned long long u64;

static const char *const MODE_NAMES[] = {"", "LOAD_A", "LOAD_G", "STORE_A", "FWD", "BWD_DATA", "UPDATE", "LOAD_P",
                                         "STORE_P", "LOAD_M", "MAXPOOL", "MAXPOOL_BWD"};

// Words [first, end) of an on-chip array of `depth` words; `end` <= first means nothing is touched.
#define RL_WITHIN(what, first, end, depth)                                                                  \
  do {                                                                                                      \
    const u64 first_ = (first), end_ = (end);                                                               \
    if (end_ > first_ && end_ > u64(depth))                                                                 \
      RL_REFUSE("%s uses %s %llu-%llu; the engine holds %d", MODE_NAMES[d.mode], what, first_, end_ - 1,    \
                int(depth));                                                                                \
  } while (0)

// One past the last stash word of `rows` rows of `cols` values from word `base` with `pitch` words per row.
static u64 stash_end(int base, int pitch, int rows, int cols) {
  if (rows <= 0 || cols <= 0) return 0;
  return u64(base) + u64(rows - 1) * u64(pitch) + u64(cols - 1) / LANES + 1;
}

static bool rl_check(const RlDesc &d, unsigned index, unsigned at, const dtl_rl_burst_t &mem) {
  DtlCsimStatus *status = mem.status();
#define RL_REFUSE(...) DTL_CSIM_REFUSE(status, "RL", index, at, __VA_ARGS__)
  if (d.mode < LOAD_A || d.mode > MAXPOOL_BWD)
    RL_REFUSE("mode %d is not one of 1..11 (LOAD_A, LOAD_G, STORE_A, FWD, BWD_DATA, UPDATE, LOAD_P, STORE_P, LOAD_M, "
              "MAXPOOL, MAXPOOL_BWD)", d.mode);
  if (d.mode == LOAD_M && !DTL_RL_HAS_MASK)
    RL_REFUSE("LOAD_M loads pruning masks, and this RL engine was built without them (DTL_RL_HAS_MASK 0)");
  if (d.act > 2) RL_REFUSE("activation %d is not 0 (none), 1 (ReLU) or 2 (ReLU6)", d.act);
  const char *mode = MODE_NAMES[d.mode];
  if (d.mode == LOAD_M && u64(d.beats) != u64(d.n) * MASK_TILE_BEATS)
    RL_REFUSE("LOAD_M of %d mask tiles has %u beats; %d tiles take %llu (%d a tile)", d.n, d.beats, d.n,
              u64(d.n) * MASK_TILE_BEATS, MASK_TILE_BEATS);
  if (d.mode == LOAD_A || d.mode == LOAD_G || d.mode == STORE_A || d.mode == LOAD_P || d.mode == STORE_P ||
      d.mode == LOAD_M) {
    const u64 values = u64(d.beats) * VALS, first = d.dram / 2;
    if (values == 0) return true;
    if (d.dram & (B - 1))
      RL_REFUSE("%s DRAM address 0x%x is not on a %d-byte beat of the memory port", mode, d.dram, B);
    if (2 * (first + values) > mem.bytes())
      RL_REFUSE("%s %s DRAM bytes 0x%llx-0x%llx, outside the %llu-byte memory image", mode,
                d.mode == STORE_A || d.mode == STORE_P ? "writes" : "reads", 2 * first, 2 * (first + values) - 1,
                (unsigned long long)mem.bytes());
    const u64 words = (values + LANES - 1) / LANES;
    if (d.mode == LOAD_A) RL_WITHIN("activation-stash words", d.xa, d.xa + words, DTL_RL_A_DEPTH);
    if (d.mode == LOAD_G) RL_WITHIN("gradient-stash words", d.gy, d.gy + words, DTL_RL_G_DEPTH);
    if (d.mode == STORE_A) RL_WITHIN("activation-stash words", d.ya, d.ya + words, DTL_RL_A_DEPTH);
    if (d.mode == LOAD_P || d.mode == STORE_P) {
      const u64 w_vals = u64(d.n) * TILE_BEATS * VALS;
      const u64 tiles = values < w_vals ? (values + TILE_BEATS * VALS - 1) / (TILE_BEATS * VALS) : u64(d.n);
      RL_WITHIN("weight tiles", 0, tiles, DTL_RL_W_DEPTH);
      if (values > w_vals) RL_WITHIN("bias rows", 0, (values - w_vals + BROW_BEATS * VALS - 1) / (BROW_BEATS * VALS), DTL_RL_B_DEPTH);
    }
    if (d.mode == LOAD_M) RL_WITHIN("mask tiles", 0, d.n, DTL_RL_W_DEPTH);
    return true;
  }
  if (d.mode == MAXPOOL || d.mode == MAXPOOL_BWD) {  // N channels in and out, an exact tiling by K x K windows
    const int nt = (d.n + TN - 1) / TN, words = (d.n + LANES - 1) / LANES, issues = (d.mode == MAXPOOL_BWD ? 2 : 1) * d.k * d.k;
    if (d.n < 1 || d.m != d.n) RL_REFUSE("%s has M=%d, N=%d; a pool has N >= 1 channels in and out", mode, d.m, d.n);
    if (d.k < 1 || d.k > 2 || d.st != d.k || d.pad != 0 || d.ro < 1 || d.co < 1 || d.hi != d.ro * d.k ||
        d.wi != d.co * d.k)
      RL_REFUSE("%s window K=%d, stride %d, padding %d over %dx%d -> %dx%d: the engine pools with K = stride <= 2, "
                "no padding, an exact tiling", mode, d.k, d.st, d.pad, d.hi, d.wi, d.ro, d.co);
    if (d.nt != nt || d.mt != issues || d.tnt != 1 || d.s0 != 0)
      RL_REFUSE("%s counts Nt=%d, %d issues a window, %d tiles a tap, shift %d: N=%d takes %d, %d, 1 and 0", mode,
                d.nt, d.mt, d.tnt, d.s0, d.n, nt, issues);
    if (d.pitch_n < words || u64(d.rp) != u64(d.wi) * d.pitch_n || u64(d.is) != u64(d.hi) * d.wi * d.pitch_n ||
        d.rows % (d.ro * d.co))
      RL_REFUSE("%s pitch %d, window steps %d, %d words and %d rows do not follow from a %dx%d grid of N=%d", mode,
                d.pitch_n, d.rp, d.is, d.rows, d.hi, d.wi, d.n);
    const int in_rows = d.rows / (d.ro * d.co) * d.hi * d.wi;
    const u64 x_end = stash_end(d.xa, d.pitch_n, in_rows, d.n);
    RL_WITHIN("activation-stash words", d.xa, x_end, DTL_RL_A_DEPTH);
    if (d.mode == MAXPOOL) {
      const u64 y_end = stash_end(d.ya, d.pitch_n, d.rows, d.n);
      RL_WITHIN("activation-stash words", d.ya, y_end, DTL_RL_A_DEPTH);
      if (d.rows > 0 && u64(d.xa) < y_end && u64(d.ya) < x_end)
        RL_REFUSE("MAXPOOL's input (activation-stash words %d-%llu) and output (%d-%llu) overlap", d.xa, x_end - 1,
                  d.ya, y_end - 1);
    } else {
      const u64 dy_end = stash_end(d.gy, d.pitch_n, d.rows, d.n), dx_end = stash_end(d.gx, d.pitch_n, in_rows, d.n);
      RL_WITHIN("gradient-stash words", d.gy, dy_end, DTL_RL_G_DEPTH);
      RL_WITHIN("gradient-stash words", d.gx, dx_end, DTL_RL_G_DEPTH);
      if (d.rows > 0 && u64(d.gy) < dx_end && u64(d.gx) < dy_end)
        RL_REFUSE("MAXPOOL_BWD's output gradient (gradient-stash words %d-%llu) and input gradient (%d-%llu) overlap",
                  d.gy, dy_end - 1, d.gx, dx_end - 1);
    }
    return true;
  }
  // FWD, BWD_DATA, UPDATE: a GEMM of at least one output and one input, the tile counts following
  // from M and N, rows that do not overlap in a stash, and a result region apart from the operands
  // (the engine's pipelines write results while later rows are read).
  if (d.m < 1 || d.n < 1) RL_REFUSE("%s has M=%d, N=%d; a layer needs at least one output and one input", mode, d.m, d.n);
  const int mt = (d.m + TM - 1) / TM, nt = (d.n + TN - 1) / TN, nta = (d.n + 1 + TN - 1) / TN;
  // a windowed GEMM (dtlgen.isa.rl): its window and grids consistent, its walk's counts the ones K implies
  int taps = 1, images = d.rows, x_rows = d.rows, dy_rows = d.rows;
  if (d.k) {
    if (d.k > 7 || d.st < 1 || d.st > 2 || d.pad > d.k - 1 || (d.mode == BWD_DATA && d.st != 1))
      RL_REFUSE("%s window K=%d, stride %d, padding %d: the engine runs K <= 7, stride 1 or 2 (BWD_DATA 1), padding < K",
                mode, d.k, d.st, d.pad);
    const int pitch = d.mode == BWD_DATA ? d.pitch_m : d.pitch_n;
    if (d.hi + 2 * d.pad < d.k || d.wi + 2 * d.pad < d.k || d.ro != (d.hi + 2 * d.pad - d.k) / d.st + 1 ||
        d.co != (d.wi + 2 * d.pad - d.k) / d.st + 1)
      RL_REFUSE("%s window grid %dx%d -> %dx%d does not follow from K=%d, stride %d, padding %d", mode, d.hi, d.wi,
                d.ro, d.co, d.k, d.st, d.pad);
    if (u64(d.rp) != u64(d.wi) * pitch || u64(d.is) != u64(d.hi) * d.wi * pitch || d.rows % (d.ro * d.co))
      RL_REFUSE("%s window steps %d, %d words and %d rows do not follow from a %dx%d grid of %d-word rows", mode, d.rp,
                d.is, d.rows, d.hi, d.wi, pitch);
    taps = d.k * d.k;
    images = d.rows / (d.ro * d.co);
    (d.mode == BWD_DATA ? dy_rows : x_rows) = images * d.hi * d.wi;
  }
  const bool counts_ok =
      !d.k ? d.mt == mt && d.nt == nt && (d.mode != UPDATE || d.nta == nta)
      : d.mode == FWD ? d.mt == mt && d.nt == taps * nt && d.tnt == nt && d.tstep == nt && d.mstep == taps * nt
      : d.mode == BWD_DATA ? d.nt == nt && d.mt == taps * mt && d.tnt == mt && d.tstep == -nt && d.mstep == taps * nt &&
                                 d.wbase >= (taps - 1) * nt
      : d.mt == mt && d.nta == (taps - 1) * nt + nta && d.tnt == nt && d.tstep == nt && d.mstep == taps * nt;
  if (!counts_ok)
    RL_REFUSE("%s tiles Mt=%d, Nt=%d, Nt'=%d (window K=%d: %d, %d, %d) do not match M=%d, N=%d on the engine's %dx%d "
              "array (%d, %d, %d)", mode, d.mt, d.nt, d.nta, d.k, d.tnt, d.tstep, d.mstep, d.m, d.n, TM, TN, mt, nt, nta);
  const int words_n = (d.n + LANES - 1) / LANES, words_m = (d.m + LANES - 1) / LANES;
  if (d.pitch_n < words_n || d.pitch_m < words_m)
    RL_REFUSE("%s row pitches %d, %d words are shorter than the %d, %d words of an N=%d, M=%d row", mode, d.pitch_n,
              d.pitch_m, words_n, words_m, d.n, d.m);
  // What each loop nest touches, where it runs at all (with M = 0 or N = 0 some loops run empty).
  const u64 tile_lo = u64(d.wbase) - (d.k && d.mode == BWD_DATA ? u64(taps - 1) * nt : 0);
  const u64 tiles_end = tile_lo + u64(mt) * u64(taps) * u64(nt), brows_end = u64(d.bbase) + u64(mt);
  const u64 x_end = stash_end(d.xa, d.pitch_n, d.mode == BWD_DATA ? d.rows : x_rows, d.n);  // X (the producer's output)
  const u64 dy_end = stash_end(d.gy, d.pitch_m, dy_rows, d.m);
  if (d.mode == FWD && d.mt > 0 && d.rows > 0) {
    RL_WITHIN("weight tiles", tile_lo, tiles_end, DTL_RL_W_DEPTH);
    RL_WITHIN("bias rows", d.bbase, brows_end, DTL_RL_B_DEPTH);
    RL_WITHIN("activation-stash words", d.xa, x_end, DTL_RL_A_DEPTH);
    const u64 y_end = stash_end(d.ya, d.pitch_m, d.rows, d.m);
    RL_WITHIN("activation-stash words", d.ya, y_end, DTL_RL_A_DEPTH);
    if (d.rows > 0 && u64(d.xa) < y_end && u64(d.ya) < x_end)
      RL_REFUSE("FWD's input (activation-stash words %d-%llu) and output (%d-%llu) overlap", d.xa, x_end - 1, d.ya,
                y_end - 1);
  }
  if (d.mode == BWD_DATA && d.nt > 0 && d.rows > 0) {
    RL_WITHIN("weight tiles", tile_lo, tiles_end, DTL_RL_W_DEPTH);
    RL_WITHIN("gradient-stash words", d.gy, dy_end, DTL_RL_G_DEPTH);
    RL_WITHIN("activation-stash words", d.xa, x_end, DTL_RL_A_DEPTH);
    const u64 dx_end = stash_end(d.gx, d.pitch_n, d.rows, d.n);
    RL_WITHIN("gradient-stash words", d.gx, dx_end, DTL_RL_G_DEPTH);
    if (u64(d.gy) < dx_end && u64(d.gx) < dy_end)
      RL_REFUSE("BWD_DATA's output gradient (gradient-stash words %d-%llu) and input gradient (%d-%llu) overlap", d.gy,
                dy_end - 1, d.gx, dx_end - 1);
  }
  if (d.mode == UPDATE && d.mt > 0) {
    RL_WITHIN("weight tiles", tile_lo, tiles_end, DTL_RL_W_DEPTH);
    RL_WITHIN("bias rows", d.bbase, brows_end, DTL_RL_B_DEPTH);
    RL_WITHIN("gradient-stash words", d.gy, dy_end, DTL_RL_G_DEPTH);
    RL_WITHIN("activation-stash words", d.xa, x_end, DTL_RL_A_DEPTH);
  }
#undef RL_REFUSE
  return true;
}
#undef RL_WITHIN
#endif

}  // namespace

void dtl_rl_engine(dtl_rl_burst_t mem, ap_uint<32> desc_addr, ap_uint<16> desc_count) {
#pragma HLS INTERFACE mode = m_axi port = mem bundle = gmem offset = slave depth = DTL_RL_MEM_BYTES / DTL_RL_BUS_BYTES max_read_burst_length = 64 max_write_burst_length = 64 num_read_outstanding = 16 num_write_outstanding = 16 latency = DTL_MAXI_LATENCY
#pragma HLS INTERFACE mode = s_axilite port = desc_addr bundle = control
#pragma HLS INTERFACE mode = s_axilite port = desc_count bundle = control
#pragma HLS INTERFACE mode = s_axilite port = return bundle = control
#pragma HLS ARRAY_PARTITION variable = stash_a dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = stash_a dim = 3 complete
#pragma HLS ARRAY_PARTITION variable = stash_g dim = 1 complete
#pragma HLS ARRAY_PARTITION variable = stash_g dim = 3 complete
#pragma HLS ARRAY_PARTITION variable = weights dim = 2 complete
#pragma HLS ARRAY_PARTITION variable = biases dim = 2 complete
#pragma HLS BIND_STORAGE variable = stash_a type = ram_t2p
#pragma HLS BIND_STORAGE variable = stash_g type = ram_t2p
#pragma HLS BIND_STORAGE variable = weights type = ram_t2p
#pragma HLS BIND_STORAGE variable = biases type = ram_t2p
descriptor:
  for (unsigned i = 0; i < desc_count; i++) {
#pragma HLS LOOP_TRIPCOUNT max = 64
    const unsigned at = unsigned(desc_addr) + i * DTL_RL_DESC_BYTES;
#ifdef DTL_CSIM_CHECKED
    if (at & (B - 1)) {
      dtl_csim_fail(mem.status(), DTL_CSIM_BAD_DESCRIPTOR,
                    "RL descriptor %u at 0x%x is not on a %d-byte beat of the memory port", i, at, B);
      return;
    }
#endif
    const RlDesc d = rl_decode(mem, at);
#ifdef DTL_CSIM_CHECKED
    if (!rl_check(d, i, at, mem)) return;
#endif
    switch (d.mode) {
      case FWD: rl_forward(d); break;
      case BWD_DATA: rl_backward_data(d); break;
      case UPDATE: rl_update(d); break;
      case MAXPOOL:
      case MAXPOOL_BWD: rl_pool(d); break;
      case STORE_A:
      case STORE_P: rl_store(mem, d); break;
      case LOAD_M:
#if DTL_RL_HAS_MASK
        rl_load_mask(mem, d);
#endif
        break;  // without masks the host sends no LOAD_M (the C-simulation refuses it)
      default: rl_load(mem, d); break;
    }
#ifdef DTL_CSIM_CHECKED
    if (mem.failed()) return;
#endif
  }
}

#endif
