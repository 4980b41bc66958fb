// Testbench of the FE engine: one input sample through every FE descriptor, each op's output held
// against the golden model's (tb_data/fe_script.txt). Usage: tb_fe <tb_data directory>.
#include "dtl_bytes.h"
#include "tb_dtl.h"

int main(int argc, char **argv) {
  return tb::run_script(argc > 1 ? argv[1] : "tb_data", "fe_script.txt",
                        [](std::vector<uint8_t> &m, unsigned addr, unsigned count, DtlCsimStatus *status) {
                          return dtl_run_fe_bytes(m.data(), m.size(), addr, count, status);
                        });
}
