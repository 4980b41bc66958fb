// Testbench of the RL engine: training steps as the host runs them (load the parameters; per step
// the features, the forward list, the logits checked, the gradient, the backward list, the
// parameters read back and checked), every check against the golden model (tb_data/rl_script.txt).
// Usage: tb_rl <tb_data directory> [script]: the script rl_cosim_script.txt runs the first step
// alone (run_hls.tcl's co-simulation).
#include "dtl_bytes.h"
#include "tb_dtl.h"

int main(int argc, char **argv) {
  const char *script = tb::pick_script(argc, argv, "rl_script.txt", "rl_cosim_script.txt");
  if (script == 0) return 2;
  return tb::run_script(argc > 1 ? argv[1] : "tb_data", script,
                        [](std::vector<uint8_t> &m, unsigned addr, unsigned count, DtlCsimStatus *status) {
                          return dtl_run_rl_bytes(m.data(), m.size(), addr, count, status);
                        });
}
