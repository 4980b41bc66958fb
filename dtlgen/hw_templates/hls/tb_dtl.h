// C-simulation testbench driver shared by tb_fe.cpp and tb_rl.cpp (Vitis HLS csim / cosim and
// `dtlgen csim` run the same testbenches). It plays a script of host actions written by the
// generator from the golden model: fill DRAM, run a descriptor list, compare a DRAM range with the
// golden model's bytes. The testbench passes (returns 0) only if every comparison is bit-exact.
//
// Script lines (tb_data/<engine>_script.txt):
//   memory <bytes>                                  size of the DRAM image
//   load <addr> <file>                              copy a file's bytes into DRAM at addr
//   run <desc_addr> <count>                         run <count> descriptors from desc_addr
//   expect <addr> <file> <label>                    DRAM bytes must equal the file's
//   expect_rows <addr> <rows> <cols> <pitch> <file> <label>
//                                                   a matrix of 16-bit values (row pitch in values)
//                                                   must equal the file's rows x cols values
#ifndef TB_DTL_H
#define TB_DTL_H

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace tb {

inline bool read_file(const std::string &path, std::vector<uint8_t> &out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  out.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return true;
}

// `engine(memory, desc_addr, count)` runs the engine on the byte image in place.
template <typename Engine>
int run_script(const std::string &dir, const std::string &script, Engine engine) {
  std::ifstream in(dir + "/" + script);
  if (!in) {
    std::cerr << "testbench: cannot open " << dir << "/" << script << "\n";
    return 2;
  }
  std::vector<uint8_t> memory;
  std::string line;
  int failures = 0, checks = 0;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string command;
    if (!(words >> command) || command[0] == '#') continue;
    if (command == "memory") {
      size_t bytes;
      words >> bytes;
      memory.assign(bytes, 0);
    } else if (command == "load") {
      size_t addr;
      std::string file;
      std::vector<uint8_t> data;
      words >> addr >> file;
      if (!read_file(dir + "/" + file, data) || addr + data.size() > memory.size()) {
        std::cerr << "testbench: cannot load " << file << " at " << addr << "\n";
        return 2;
      }
      std::copy(data.begin(), data.end(), memory.begin() + addr);
    } else if (command == "run") {
      unsigned addr, count;
      words >> addr >> count;
      engine(memory, addr, count);
    } else if (command == "expect" || command == "expect_rows") {
      size_t addr, rows = 1, cols = 0, pitch = 0;
      std::string file, label;
      words >> addr;
      if (command == "expect_rows") words >> rows >> cols >> pitch;
      words >> file >> label;
      std::vector<uint8_t> want;
      if (!read_file(dir + "/" + file, want)) {
        std::cerr << "testbench: cannot read " << file << "\n";
        return 2;
      }
      const size_t unit = command == "expect" ? 1 : 2;  // bytes per compared value
      if (command == "expect") {
        cols = want.size();
        pitch = cols;
      }
      size_t wrong = 0, first = 0;
      for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols * unit; c++) {
          const size_t at = addr + r * pitch * unit + c;
          if (at >= memory.size() || memory[at] != want[r * cols * unit + c]) {
            if (wrong++ == 0) first = r * cols + c / unit;
          }
        }
      checks++;
      if (wrong) {
        failures++;
        std::cout << "FAIL " << label << ": " << wrong << " bytes differ, the first at value " << first << "\n";
      } else {
        std::cout << "PASS " << label << "\n";
      }
    } else {
      std::cerr << "testbench: unknown command '" << command << "'\n";
      return 2;
    }
  }
  std::cout << (failures ? "FAILED " : "PASSED ") << checks - failures << "/" << checks << " checks bit-exact\n";
  return failures ? 1 : 0;
}

}  // namespace tb

#endif
