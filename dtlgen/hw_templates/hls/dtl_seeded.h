// The seeded-weight generator (dtlgen/isa/seeded.py, which defines it): frozen weights as a pure
// function of (seed, layer, index), bit for bit as the golden model and the RTL (dtl_seeded.sv).
#ifndef DTL_SEEDED_H
#define DTL_SEEDED_H

#include <stdint.h>

static inline uint32_t dtl_mix32(uint32_t x) {  // bijective: lowbias32
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  x *= 0x846CA68Bu;
  x ^= x >> 16;
  return x;
}

static inline uint32_t dtl_seeded_key(uint32_t seed, uint32_t layer) {
  return dtl_mix32(seed ^ dtl_mix32(layer + 0x9E3779B9u));
}

// word n of a layer: a Weyl sequence into the mixer
static inline uint32_t dtl_seeded_word(uint32_t key, uint32_t n) { return dtl_mix32(key + n * 0x9E3779B9u); }

// weight j of a word: bits == 1 -> bit j as +1 / -1; else field j of `bits` bits, two's complement
static inline int dtl_seeded_weight(uint32_t word, int j, int bits) {
  if (bits == 1) return ((word >> j) & 1u) ? 1 : -1;
  const uint32_t field = (word >> (j * bits)) & ((1u << bits) - 1u);
  return (field >> (bits - 1)) ? (int)field - (1 << bits) : (int)field;
}

#endif
