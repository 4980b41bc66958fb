// Numerics of DESIGN.md section 5 for the HLS engines, rule for rule as dtlgen/quant/fixed.py (the
// golden model) and the RTL engines compute them. Every shift amount is explicit about what happens
// past the operand width, because C++ leaves that undefined and the golden model does not.
#ifndef DTL_NUMERICS_H
#define DTL_NUMERICS_H

#include <ap_int.h>

#include "dtl_params.h"

// Arithmetic right shift that fills with the sign once k reaches the width (numpy's and SV's >>>).
template <int W>
static inline ap_int<W> dtl_shr(ap_int<W> v, int k) {
#pragma HLS INLINE
  if (k >= W) return v < 0 ? ap_int<W>(-1) : ap_int<W>(0);
  return v >> k;
}

// Left shift; callers keep the result inside W bits (the widths below are chosen so).
template <int W>
static inline ap_int<W> dtl_shl(ap_int<W> v, int k) {
#pragma HLS INLINE
  if (k >= W) return ap_int<W>(0);
  return v << k;
}

// Clamp to the signed B-bit range.
template <int B, int W>
static inline ap_int<B> dtl_saturate(ap_int<W> v) {
#pragma HLS INLINE
  const ap_int<W> hi = (ap_int<W>(1) << (B - 1)) - 1;
  const ap_int<W> lo = -(ap_int<W>(1) << (B - 1));
  if (v > hi) return ap_int<B>(hi);
  if (v < lo) return ap_int<B>(lo);
  return ap_int<B>(v);
}

// Requantise by s bits to B bits: s > 0 rounds half up (adds the last bit shifted out), s < 0 is an
// exact left shift, then saturation (fixed.requantise). Before a left shift the value is clipped to
// just beyond what the shift maps into range, so the shift can never wrap W bits.
template <int B, int W>
static inline ap_int<B> dtl_requantise(ap_int<W> v, int s) {
#pragma HLS INLINE
  ap_int<W> t;
  if (s > 0) {
    t = dtl_shr<W>(v, s) + (dtl_shr<W>(v, s - 1) & ap_int<W>(1));
  } else if (s < 0) {
    const int k = -s;
    if (k >= B) {  // every non-zero value leaves the range
      const ap_int<W> out = ap_int<W>(1) << (B - 1);
      t = 0;
      if (v > 0) t = out;
      if (v < 0) t = -out;
    } else {
      const ap_int<W> edge = ap_int<W>(1) << (B - 1 - k);
      ap_int<W> c = v;
      if (c > edge) c = edge;
      if (c < -edge - 1) c = -edge - 1;
      t = c << k;
    }
  } else {
    t = v;
  }
  return dtl_saturate<B, W>(t);
}

// Stochastic rounding of v by s bits with the 16 random bits r (fixed.stochastic_round_shift): the
// rounding term is r's low s bits, or r scaled up for s > 16. No saturation here.
template <int W, int B>
static inline ap_int<W> dtl_stochastic_round(ap_int<B> v, int s, ap_uint<16> r) {
#pragma HLS INLINE
  ap_int<W> wide = v;
  if (s <= 0) return dtl_shl<W>(wide, -s);
  ap_int<W> term;
  if (s <= 16) term = ap_int<W>(r & ap_uint<16>((ap_uint<17>(1) << s) - 1));
  else term = dtl_shl<W>(ap_int<W>(r), s - 16);
  return dtl_shr<W>(wide + term, s);
}

// One step of the 16-bit Galois LFSR (fixed.lfsr_step).
static inline ap_uint<16> dtl_lfsr_step(ap_uint<16> v) {
#pragma HLS INLINE
  ap_uint<16> next = v >> 1;
  if (v[0]) next ^= ap_uint<16>(DTL_LFSR_MASK);
  return next;
}

// A jump of the LFSR by a GF(2) matrix: bit r of the result is the parity of (row r & v) (fixed.lfsr_jump).
static inline ap_uint<16> dtl_lfsr_jump(const ap_uint<16> rows[16], ap_uint<16> v) {
#pragma HLS INLINE
  ap_uint<16> out = 0;
  for (int r = 0; r < 16; r++) {
#pragma HLS UNROLL
    out[r] = (rows[r] & v).xor_reduce();
  }
  return out;
}

#endif
