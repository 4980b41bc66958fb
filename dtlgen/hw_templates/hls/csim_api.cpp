// C entry points of the C-simulation library that `dtlgen csim` loads with ctypes: each runs an
// engine on a DRAM byte image in place. The RL engine's on-chip state (weights, stashes) lives in
// the library between calls, as it lives in the engine between runs on the board.
#include "dtl_bytes.h"

extern "C" {

int dtl_csim_has_rl() { return DTL_HAS_RL; }

void dtl_csim_fe_run(uint8_t *memory, uint64_t bytes, uint32_t desc_addr, uint32_t count) {
  dtl_run_fe_bytes(memory, bytes, desc_addr, count);
}

#if DTL_HAS_RL
void dtl_csim_rl_run(uint8_t *memory, uint64_t bytes, uint32_t desc_addr, uint32_t count) {
  dtl_run_rl_bytes(memory, bytes, desc_addr, count);
}
#endif
}
