// Retrainable-layer engine in Vitis HLS C++: descriptor-driven tiled GEMM that runs forward,
// backward and the weight update on chip, the HLS twin of rtl/rl_engine.sv.
//
// A TM x TN array of BITS-wide multipliers works on one layer per descriptor (G = batch x positions
// rows per GEMM):
//   FWD        Y = W X + b, requantised, activation          loops  m-tile, row g, n-tile
//   BWD_DATA   dX = (W^T dY) requantised, masked by relu'(X)  loops  n-tile, row g, m-tile
//   UPDATE     dW = dY^T X summed over the rows, requantised, then W <- W - 2^-lr dW with
//              stochastic rounding                            loops  m-tile, n-tile, row g
// UPDATE is BWD_WEIGHT fused with the update, over the augmented matrix [W | b] (the bias is column
// N, its input the constant 1), and consumes the LFSR of dtlgen/quant/fixed.py in row-major order
// of [W | b]: row-start states jump with the GF(2) matrices A^(N+1) and A^(TM(N+1)) of the
// descriptor. LOAD / STORE descriptors move the stashes and the parameters to and from DRAM.
//
// Weights, biases and the activation (A) and gradient (G) stashes are static: they stay on chip
// between calls, as the RTL engine's banks do. A stash holds a matrix row-major with a row pitch of
// whole LANES-value words. Numerics: dtl_numerics.h, bit for bit with the golden model (checked by
// `dtlgen csim`). Nothing here was synthesised with Vitis HLS in this repository.
#include "dtl_engines.h"
#include "dtl_numerics.h"

#if DTL_HAS_RL

namespace {

typedef ap_int<DTL_RL_BITS> rl_val_t;
typedef ap_int<DTL_RL_ACC_BITS> rl_acc_t;
typedef ap_int<DTL_RL_WIDE> rl_wide_t;

const int TM = DTL_RL_TM;
const int TN = DTL_RL_TN;
const int TMN = TM * TN;
const int LANES = DTL_RL_LANES;
const int VALS = DTL_RL_BUS_BYTES / 2;                 // 16-bit values per bus beat
const int TILE_VALS = (TMN + VALS - 1) / VALS * VALS;  // a weight tile in DRAM, padded to whole beats
const int BROW_VALS = (TM + VALS - 1) / VALS * VALS;   // a bias row in DRAM
const int DESC_HALVES = DTL_RL_DESC_BYTES / 2;
enum { LOAD_A = 1, LOAD_G = 2, STORE_A = 3, FWD = 4, BWD_DATA = 5, UPDATE = 6, LOAD_P = 7, STORE_P = 8 };

rl_val_t stash_a[DTL_RL_A_DEPTH][LANES];
rl_val_t stash_g[DTL_RL_G_DEPTH][LANES];
rl_val_t weights[DTL_RL_W_DEPTH][TMN];
rl_val_t biases[DTL_RL_B_DEPTH][TM];

struct RlDesc {
  int mode, act, m, n, rows, xa, ya, gy, gx, wbase, bbase, mt, nt, nta, pitch_n, pitch_m;
  rl_val_t six;
  ap_uint<16> seed;
  unsigned dram, beats;
  int s0, s1, s2, s3;
  ap_uint<16> j_row[16], j_blk[16];
};

static RlDesc rl_decode(dtl_rl_mem_t mem, unsigned addr) {
  ap_uint<16> half[DESC_HALVES];
  for (int h = 0; h < DESC_HALVES; h++) {
#pragma HLS PIPELINE II = 1
    half[h] = ap_uint<16>(mem[addr / 2 + h]);
  }
  RlDesc d;
  d.mode = half[0].range(3, 0);
  d.act = half[0].range(5, 4);
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
  for (int r = 0; r < 16; r++) {
    d.j_row[r] = half[32 + r];
    d.j_blk[r] = half[48 + r];
  }
  return d;
}

// Element (row, col) of a matrix that starts at stash word `base` with `pitch` words per row.
template <int DEPTH>
static inline rl_val_t &element(rl_val_t stash[DEPTH][LANES], int base, int pitch, int row, int col) {
#pragma HLS INLINE
  return stash[base + row * pitch + col / LANES][col % LANES];
}

static rl_val_t activate(rl_val_t y, int act, rl_val_t six) {
#pragma HLS INLINE
  if (act != 0 && y < 0) y = 0;
  if (act == 2 && y > six) y = six;
  return y;
}

// relu'(x) of the producer's output: 1 where its activation passed the value through.
static bool passes(rl_val_t x, int act, rl_val_t six) {
#pragma HLS INLINE
  if (act == 1) return x > 0;
  if (act == 2) return x > 0 && x < six;
  return true;
}

static void rl_transfer(dtl_rl_mem_t mem, const RlDesc &d) {
  const unsigned values = d.beats * VALS, at = d.dram / 2;
transfer:
  for (unsigned v = 0; v < values; v++) {
#pragma HLS PIPELINE II = 1
    const int word = v / LANES, lane = v % LANES;
    switch (d.mode) {
      case LOAD_A: stash_a[d.xa + word][lane] = rl_val_t(mem[at + v]); break;
      case LOAD_G: stash_g[d.gy + word][lane] = rl_val_t(mem[at + v]); break;
      case STORE_A: mem[at + v] = ap_int<16>(stash_a[d.ya + word][lane]); break;
      default: {
        // the parameter image: d.n weight tiles, then d.m bias rows, each padded to whole beats
        const unsigned w_vals = unsigned(d.n) * TILE_VALS;
        const bool load = d.mode == LOAD_P;
        if (v < w_vals) {
          const int tile = v / TILE_VALS, e = v % TILE_VALS;
          if (load && e < TMN) weights[tile][e] = rl_val_t(mem[at + v]);
          if (!load) mem[at + v] = e < TMN ? ap_int<16>(weights[tile][e]) : ap_int<16>(0);
        } else {
          const int row = (v - w_vals) / BROW_VALS, i = (v - w_vals) % BROW_VALS;
          if (load && i < TM) biases[row][i] = rl_val_t(mem[at + v]);
          if (!load) mem[at + v] = i < TM ? ap_int<16>(biases[row][i]) : ap_int<16>(0);
        }
      }
    }
  }
}

static void rl_forward(const RlDesc &d) {
fwd_m:
  for (int tm = 0; tm < d.mt; tm++) {
  fwd_row:
    for (int g = 0; g < d.rows; g++) {
      rl_acc_t acc[TM];
#pragma HLS ARRAY_PARTITION variable = acc complete
      for (int i = 0; i < TM; i++) acc[i] = 0;
    fwd_n:
      for (int tn = 0; tn < d.nt; tn++) {
#pragma HLS PIPELINE II = 1
        const int tile = d.wbase + tm * d.nt + tn;
        for (int j = 0; j < TN; j++) {
          const int col = tn * TN + j;
          const rl_val_t x = col < d.n ? element<DTL_RL_A_DEPTH>(stash_a, d.xa, d.pitch_n, g, col) : rl_val_t(0);
          for (int i = 0; i < TM; i++) acc[i] += weights[tile][i * TN + j] * x;
        }
      }
      for (int i = 0; i < TM; i++) {
#pragma HLS UNROLL
        const int row = tm * TM + i;
        if (row >= d.m) continue;
        const rl_wide_t sum = rl_wide_t(acc[i]) + dtl_shl<DTL_RL_WIDE>(rl_wide_t(biases[d.bbase + tm][i]), d.s1);
        const rl_val_t y = dtl_requantise<DTL_RL_BITS, DTL_RL_WIDE>(sum, d.s0);
        element<DTL_RL_A_DEPTH>(stash_a, d.ya, d.pitch_m, g, row) = activate(y, d.act, d.six);
      }
    }
  }
}

static void rl_backward_data(const RlDesc &d) {
bwd_n:
  for (int tn = 0; tn < d.nt; tn++) {
  bwd_row:
    for (int g = 0; g < d.rows; g++) {
      rl_acc_t acc[TN];
#pragma HLS ARRAY_PARTITION variable = acc complete
      for (int j = 0; j < TN; j++) acc[j] = 0;
    bwd_m:
      for (int tm = 0; tm < d.mt; tm++) {
#pragma HLS PIPELINE II = 1
        const int tile = d.wbase + tm * d.nt + tn;
        for (int i = 0; i < TM; i++) {
          const int row = tm * TM + i;
          const rl_val_t dy = row < d.m ? element<DTL_RL_G_DEPTH>(stash_g, d.gy, d.pitch_m, g, row) : rl_val_t(0);
          for (int j = 0; j < TN; j++) acc[j] += weights[tile][i * TN + j] * dy;
        }
      }
      for (int j = 0; j < TN; j++) {
#pragma HLS UNROLL
        const int col = tn * TN + j;
        if (col >= d.n) continue;
        rl_val_t dx = dtl_requantise<DTL_RL_BITS, DTL_RL_WIDE>(rl_wide_t(acc[j]), d.s0);
        if (!passes(element<DTL_RL_A_DEPTH>(stash_a, d.xa, d.pitch_n, g, col), d.act, d.six)) dx = 0;
        element<DTL_RL_G_DEPTH>(stash_g, d.gx, d.pitch_n, g, col) = dx;
      }
    }
  }
}

static void rl_update(const RlDesc &d) {
  // LFSR state at the start of row m0 + i of [W | b]: A^((m0 + i)(N+1)) applied to the seed
  ap_uint<16> row_start[TM];
#pragma HLS ARRAY_PARTITION variable = row_start complete
  row_start[0] = d.seed;
  for (int i = 1; i < TM; i++) row_start[i] = dtl_lfsr_jump(d.j_row, row_start[i - 1]);
upd_m:
  for (int tm = 0; tm < d.mt; tm++) {
    if (tm > 0)
      for (int i = 0; i < TM; i++) row_start[i] = dtl_lfsr_jump(d.j_blk, row_start[i]);
    ap_uint<16> state[TM];  // the state of element (m0 + i, n0): one step past the row start
#pragma HLS ARRAY_PARTITION variable = state complete
    for (int i = 0; i < TM; i++) state[i] = dtl_lfsr_step(row_start[i]);
  upd_n:
    for (int tn = 0; tn < d.nta; tn++) {
      rl_acc_t pe[TM][TN];  // each PE accumulates its own dW element over the rows
#pragma HLS ARRAY_PARTITION variable = pe complete dim = 0
      for (int i = 0; i < TM; i++)
        for (int j = 0; j < TN; j++) pe[i][j] = 0;
    upd_row:
      for (int g = 0; g < d.rows; g++) {
#pragma HLS PIPELINE II = 1
        for (int i = 0; i < TM; i++) {
          const int row = tm * TM + i;
          const rl_val_t dy = row < d.m ? element<DTL_RL_G_DEPTH>(stash_g, d.gy, d.pitch_m, g, row) : rl_val_t(0);
          for (int j = 0; j < TN; j++) {
            const int col = tn * TN + j;
            const rl_val_t x = col < d.n ? element<DTL_RL_A_DEPTH>(stash_a, d.xa, d.pitch_n, g, col)
                                         : rl_val_t(col == d.n ? 1 : 0);
            pe[i][j] += dy * x;
          }
        }
      }
    write_back:
      for (int i = 0; i < TM; i++) {
        ap_uint<16> r = state[i];
        const int row = tm * TM + i;
        for (int j = 0; j < TN; j++) {
          const int col = tn * TN + j;
          if (row < d.m && col < d.n) {
            rl_val_t &w = weights[d.wbase + tm * d.nt + tn][i * TN + j];
            const rl_val_t dw = dtl_requantise<DTL_RL_BITS, DTL_RL_WIDE>(rl_wide_t(pe[i][j]), d.s0);
            w = dtl_saturate<DTL_RL_BITS, DTL_RL_WIDE>(rl_wide_t(w) - dtl_stochastic_round<DTL_RL_WIDE>(dw, d.s2, r));
          } else if (row < d.m && col == d.n) {
            rl_val_t &b = biases[d.bbase + tm][i];
            const rl_val_t db = dtl_requantise<DTL_RL_BITS, DTL_RL_WIDE>(rl_wide_t(pe[i][j]), d.s1);
            b = dtl_saturate<DTL_RL_BITS, DTL_RL_WIDE>(rl_wide_t(b) - dtl_stochastic_round<DTL_RL_WIDE>(db, d.s3, r));
          }
          r = dtl_lfsr_step(r);
        }
        state[i] = r;
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
                                         "STORE_P"};

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

static bool rl_check(const RlDesc &d, unsigned index, unsigned at, const dtl_rl_mem_t &mem) {
  DtlCsimStatus *status = mem.status();
#define RL_REFUSE(...) DTL_CSIM_REFUSE(status, "RL", index, at, __VA_ARGS__)
  if (d.mode < LOAD_A || d.mode > STORE_P)
    RL_REFUSE("mode %d is not one of 1..8 (LOAD_A, LOAD_G, STORE_A, FWD, BWD_DATA, UPDATE, LOAD_P, STORE_P)", d.mode);
  if (d.act > 2) RL_REFUSE("activation %d is not 0 (none), 1 (ReLU) or 2 (ReLU6)", d.act);
  const char *mode = MODE_NAMES[d.mode];
  if (d.mode == LOAD_A || d.mode == LOAD_G || d.mode == STORE_A || d.mode == LOAD_P || d.mode == STORE_P) {
    const u64 values = u64(d.beats) * VALS, first = d.dram / 2;
    if (values == 0) return true;
    if (first + values > mem.size())
      RL_REFUSE("%s %s DRAM bytes 0x%llx-0x%llx, outside the %llu-byte memory image", mode,
                d.mode == STORE_A || d.mode == STORE_P ? "writes" : "reads", 2 * first, 2 * (first + values) - 1,
                (unsigned long long)mem.bytes());
    const u64 words = (values + LANES - 1) / LANES;
    if (d.mode == LOAD_A) RL_WITHIN("activation-stash words", d.xa, d.xa + words, DTL_RL_A_DEPTH);
    if (d.mode == LOAD_G) RL_WITHIN("gradient-stash words", d.gy, d.gy + words, DTL_RL_G_DEPTH);
    if (d.mode == STORE_A) RL_WITHIN("activation-stash words", d.ya, d.ya + words, DTL_RL_A_DEPTH);
    if (d.mode == LOAD_P || d.mode == STORE_P) {
      const u64 w_vals = u64(d.n) * TILE_VALS;
      const u64 tiles = values < w_vals ? (values + TILE_VALS - 1) / TILE_VALS : u64(d.n);
      RL_WITHIN("weight tiles", 0, tiles, DTL_RL_W_DEPTH);
      if (values > w_vals) RL_WITHIN("bias rows", 0, (values - w_vals + BROW_VALS - 1) / BROW_VALS, DTL_RL_B_DEPTH);
    }
    return true;
  }
  // FWD, BWD_DATA, UPDATE: the tile counts follow from M and N, rows do not overlap in a stash.
  const int mt = (d.m + TM - 1) / TM, nt = (d.n + TN - 1) / TN, nta = (d.n + 1 + TN - 1) / TN;
  if (d.mt != mt || d.nt != nt || (d.mode == UPDATE && d.nta != nta))
    RL_REFUSE("%s tiles Mt=%d, Nt=%d, Nt'=%d do not match M=%d, N=%d on the engine's %dx%d array (%d, %d, %d)", mode,
              d.mt, d.nt, d.nta, d.m, d.n, TM, TN, mt, nt, nta);
  const int words_n = (d.n + LANES - 1) / LANES, words_m = (d.m + LANES - 1) / LANES;
  if (d.pitch_n < words_n || d.pitch_m < words_m)
    RL_REFUSE("%s row pitches %d, %d words are shorter than the %d, %d words of an N=%d, M=%d row", mode, d.pitch_n,
              d.pitch_m, words_n, words_m, d.n, d.m);
  // What each loop nest touches, where it runs at all (with M = 0 or N = 0 some loops run empty).
  const u64 tiles_end = u64(d.wbase) + u64(d.mt) * u64(d.nt), brows_end = u64(d.bbase) + u64(d.mt);
  const u64 x_end = stash_end(d.xa, d.pitch_n, d.rows, d.n);  // X (the producer's output) in A
  const u64 dy_end = stash_end(d.gy, d.pitch_m, d.rows, d.m);
  if (d.mode == FWD && d.mt > 0 && d.rows > 0) {
    RL_WITHIN("weight tiles", d.wbase, tiles_end, DTL_RL_W_DEPTH);
    RL_WITHIN("bias rows", d.bbase, brows_end, DTL_RL_B_DEPTH);
    RL_WITHIN("activation-stash words", d.xa, x_end, DTL_RL_A_DEPTH);
    RL_WITHIN("activation-stash words", d.ya, stash_end(d.ya, d.pitch_m, d.rows, d.m), DTL_RL_A_DEPTH);
  }
  if (d.mode == BWD_DATA && d.nt > 0 && d.rows > 0) {
    RL_WITHIN("weight tiles", d.wbase, tiles_end, DTL_RL_W_DEPTH);
    RL_WITHIN("gradient-stash words", d.gy, dy_end, DTL_RL_G_DEPTH);
    RL_WITHIN("activation-stash words", d.xa, x_end, DTL_RL_A_DEPTH);
    RL_WITHIN("gradient-stash words", d.gx, stash_end(d.gx, d.pitch_n, d.rows, d.n), DTL_RL_G_DEPTH);
  }
  if (d.mode == UPDATE && d.mt > 0) {
    RL_WITHIN("weight tiles", d.wbase, tiles_end, DTL_RL_W_DEPTH);
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

void dtl_rl_engine(dtl_rl_mem_t mem, ap_uint<32> desc_addr, ap_uint<16> desc_count) {
#pragma HLS INTERFACE mode = m_axi port = mem bundle = gmem offset = slave depth = DTL_RL_MEM_BYTES / 2
#pragma HLS INTERFACE mode = s_axilite port = desc_addr bundle = control
#pragma HLS INTERFACE mode = s_axilite port = desc_count bundle = control
#pragma HLS INTERFACE mode = s_axilite port = return bundle = control
#pragma HLS ARRAY_PARTITION variable = stash_a dim = 2 complete
#pragma HLS ARRAY_PARTITION variable = stash_g dim = 2 complete
#pragma HLS ARRAY_PARTITION variable = weights dim = 2 complete
#pragma HLS ARRAY_PARTITION variable = biases dim = 2 complete
descriptor:
  for (unsigned i = 0; i < desc_count; i++) {
    const unsigned at = unsigned(desc_addr) + i * DTL_RL_DESC_BYTES;
    const RlDesc d = rl_decode(mem, at);
#ifdef DTL_CSIM_CHECKED
    if (!rl_check(d, i, at, mem)) return;
#endif
    switch (d.mode) {
      case FWD: rl_forward(d); break;
      case BWD_DATA: rl_backward_data(d); break;
      case UPDATE: rl_update(d); break;
      default: rl_transfer(mem, d); break;
    }
#ifdef DTL_CSIM_CHECKED
    if (mem.failed()) return;
#endif
  }
}

#endif
