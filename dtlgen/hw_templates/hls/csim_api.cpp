// C entry points of the C-simulation library that `dtlgen csim` loads with ctypes: each runs an
// engine on a DRAM byte image in place. The RL engine's on-chip state (weights, stashes) lives in
// the library between calls, as it lives in the engine between runs on the board.
//
// dtl_csim_fe_run / dtl_csim_rl_run return an error code of dtl_csim_check.h: 0 when the engine ran
// the whole descriptor list, else 1 (a bad call), 2 (a bad descriptor: the engine stopped before
// running it) or 3 (an access outside the image); dtl_csim_last_error() then gives one line naming
// the problem (the calling thread's last run; "" after a run that succeeded). They never crash on
// what the image or the arguments hold.
#include <exception>

#include "dtl_bytes.h"

namespace {

thread_local DtlCsimStatus last_run;

template <typename Run>
int guarded(const char *engine, Run run) {
  last_run = DtlCsimStatus();
  try {
    return run(&last_run);
  } catch (const std::exception &e) {
    dtl_csim_fail(&last_run, DTL_CSIM_BAD_CALL, "%s engine: the C-simulation failed: %s", engine, e.what());
  } catch (...) {
    dtl_csim_fail(&last_run, DTL_CSIM_BAD_CALL, "%s engine: the C-simulation failed", engine);
  }
  return last_run.code;
}

}  // namespace

extern "C" {

int dtl_csim_has_rl() { return DTL_HAS_RL; }

const char *dtl_csim_last_error() { return last_run.message; }

int dtl_csim_fe_run(uint8_t *memory, uint64_t bytes, uint32_t desc_addr, uint32_t count) {
  return guarded("FE", [&](DtlCsimStatus *status) {
    return dtl_run_fe_bytes(memory, bytes, desc_addr, count, status);
  });
}

#if DTL_HAS_RL
int dtl_csim_rl_run(uint8_t *memory, uint64_t bytes, uint32_t desc_addr, uint32_t count) {
  return guarded("RL", [&](DtlCsimStatus *status) {
    return dtl_run_rl_bytes(memory, bytes, desc_addr, count, status);
  });
}
#endif
}
