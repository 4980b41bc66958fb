// Host-side helpers (testbenches and the C-simulation library, never synthesised): run an engine
// on a DRAM image held as plain bytes, converting to and from the engines' ap_int memory words.
#ifndef DTL_BYTES_H
#define DTL_BYTES_H

#include <cstdint>
#include <vector>

#include "dtl_engines.h"

inline void dtl_run_fe_bytes(uint8_t *memory, uint64_t bytes, uint32_t desc_addr, uint32_t count) {
  std::vector<ap_int<8> > mem(bytes);
  for (uint64_t i = 0; i < bytes; i++) mem[i] = ap_int<8>(int8_t(memory[i]));
  dtl_fe_engine(mem.data(), desc_addr, count);
  for (uint64_t i = 0; i < bytes; i++) memory[i] = uint8_t(mem[i].to_int() & 0xFF);
}

#if DTL_HAS_RL
inline void dtl_run_rl_bytes(uint8_t *memory, uint64_t bytes, uint32_t desc_addr, uint32_t count) {
  std::vector<ap_int<16> > mem(bytes / 2);
  for (uint64_t i = 0; i < mem.size(); i++) mem[i] = ap_int<16>(int16_t(memory[2 * i] | memory[2 * i + 1] << 8));
  dtl_rl_engine(mem.data(), desc_addr, count);
  for (uint64_t i = 0; i < mem.size(); i++) {
    const int v = mem[i].to_int();
    memory[2 * i] = uint8_t(v & 0xFF);
    memory[2 * i + 1] = uint8_t((v >> 8) & 0xFF);
  }
}
#endif

#endif
