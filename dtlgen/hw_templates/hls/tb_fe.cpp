// Testbench of the FE engine: one input sample through every FE descriptor, each op's output held
// against the golden model's (tb_data/fe_script.txt). Usage: tb_fe <tb_data directory> [script]: the
// script fe_cosim_script.txt runs the first descriptor alone (run_hls.tcl's co-simulation).
#include "dtl_bytes.h"
#include "tb_dtl.h"

int main(int argc, char **argv) {
  const char *script = tb::pick_script(argc, argv, "fe_script.txt", "fe_cosim_script.txt");
  if (script == 0) return 2;
  return tb::run_script(argc > 1 ? argv[1] : "tb_data", script,
                        [](std::vector<uint8_t> &m, unsigned addr, unsigned count, DtlCsimStatus *status) {
                          return dtl_run_fe_bytes(m.data(), m.size(), addr, count, status);
                        });
}
