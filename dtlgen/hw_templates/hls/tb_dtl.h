// C-simulation testbench driver shared by tb_fe.cpp and tb_rl.cpp (Vitis HLS csim / cosim and
// `dtlgen csim` run the same testbenches). It plays a script of host actions written by the
// generator from the golden model: fill DRAM, run a descriptor list, compare a DRAM range with the
// golden model's bytes. The testbench passes (returns 0) only if every comparison is bit-exact.
//
// Script lines (tb_data/<engine>_script.txt):
//   memory <bytes>                                  size of the DRAM image
//   load <addr> <file> [<bytes>]                    copy a file's bytes into DRAM at addr
//   run <desc_addr> <count>                         run <count> descriptors from desc_addr
//   expect <addr> <file> <label> [<bytes>]          DRAM bytes must equal the file's
//   expect_rows <addr> <rows> <cols> <pitch> <file> <label>
//                                                   a matrix of 16-bit values (row pitch in values)
//                                                   must equal the file's rows x cols values
// <bytes>, where given, is the file's size: a file of another size was truncated or replaced.
//
// Exit status: 0 every check passed, 1 some check failed, 2 the script, its data or a descriptor
// is malformed (one line on stderr says which; nothing was compared past that point).
#ifndef TB_DTL_H
#define TB_DTL_H

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "dtl_csim_check.h"

namespace tb {

const uint64_t MAX_MEMORY_BYTES = uint64_t(1) << 32;  // the engines' 32-bit DRAM map
const char *const REGENERATE = "tb_data was changed: regenerate the project with 'dtlgen generate'";

inline bool read_file(const std::string &path, std::vector<uint8_t> &out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  if (size < 0 || uint64_t(size) > MAX_MEMORY_BYTES) return false;
  f.seekg(0, std::ios::beg);
  out.resize(size_t(size));
  return size == 0 || bool(f.read(reinterpret_cast<char *>(out.data()), size));
}

// A decimal number of at most 12 digits (no sign: ">> unsigned" would accept "-1").
inline bool read_number(std::istringstream &words, uint64_t &value) {
  std::string text;
  if (!(words >> text) || text.size() > 12 || text.find_first_not_of("0123456789") != std::string::npos) return false;
  value = std::strtoull(text.c_str(), 0, 10);
  return true;
}

// A data file is a plain name inside the tb_data directory.
inline bool read_name(std::istringstream &words, std::string &name) {
  return bool(words >> name) && name[0] != '.' && name.find_first_of("/\\") == std::string::npos;
}

// `rows` rows of `cols` values of `unit` bytes, `pitch` values apart, from byte `addr`, inside `size` bytes.
inline bool fits(uint64_t addr, uint64_t rows, uint64_t cols, uint64_t pitch, uint64_t unit, uint64_t size) {
  if (rows == 0 || cols == 0) return addr <= size;
  if (cols > pitch || addr > size) return false;
  const uint64_t room = (size - addr) / unit;  // whole values from addr to the end
  if (rows - 1 > room / pitch) return false;
  return (rows - 1) * pitch + cols <= room;
}

// The script a testbench runs: the whole one, or (second argument) its reduced co-simulation script.
inline const char *pick_script(int argc, char **argv, const char *whole, const char *cosim) {
  if (argc <= 2) return whole;
  const std::string wanted = argv[2];
  if (wanted == whole || wanted == cosim) return wanted == whole ? whole : cosim;
  std::cerr << "testbench: unknown script '" << wanted << "' (" << whole << " or " << cosim << ")\n";
  return 0;
}

// `engine(memory, desc_addr, count, status)` runs the engine on the byte image in place and
// returns an error code of dtl_csim_check.h with the message in *status.
template <typename Engine>
int run_script(const std::string &dir, const std::string &script, Engine engine) {
  std::ifstream in(dir + "/" + script);
  if (!in) {
    std::cerr << "testbench: cannot open " << dir << "/" << script << "\n";
    return 2;
  }
  std::vector<uint8_t> memory;
  std::string line;
  int failures = 0, checks = 0, line_no = 0;
  // One line on stderr: where in the script, what is wrong, and (for data) the fix.
  auto stop = [&](const std::string &problem, bool data) {
    std::cerr << "testbench: " << script << " line " << line_no << ": " << problem;
    if (data) std::cerr << "; " << REGENERATE;
    std::cerr << "\n";
    return 2;
  };
  auto file_size_error = [&](const std::string &file, size_t got, uint64_t want) {
    std::ostringstream text;
    text << "tb_data/" << file << " has " << got << " bytes, the script expects " << want
         << " (the file was truncated or replaced)";
    return text.str();
  };
  while (std::getline(in, line)) {
    line_no++;
    std::istringstream words(line);
    std::string command;
    if (!(words >> command) || command[0] == '#') continue;
    if (command == "memory") {
      uint64_t bytes;
      if (!read_number(words, bytes) || bytes == 0 || bytes > MAX_MEMORY_BYTES)
        return stop("'memory' needs a size of 1 to 4294967296 bytes", true);
      try {
        memory.assign(size_t(bytes), 0);
      } catch (const std::bad_alloc &) {
        return stop("no host memory for a " + std::to_string(bytes) + "-byte image", false);
      }
    } else if (command == "load") {
      uint64_t addr, want = 0;
      std::string file;
      std::vector<uint8_t> data;
      if (!read_number(words, addr) || !read_name(words, file))
        return stop("'load' needs an address and a file name inside tb_data", true);
      const bool sized = read_number(words, want);
      if (!read_file(dir + "/" + file, data)) return stop("cannot read tb_data/" + file, true);
      if (sized && data.size() != want) return stop(file_size_error(file, data.size(), want), true);
      if (!fits(addr, 1, data.size(), data.size(), 1, memory.size()))
        return stop("tb_data/" + file + " (" + std::to_string(data.size()) + " bytes) at " + std::to_string(addr) +
                        " does not fit the " + std::to_string(memory.size()) + "-byte memory image",
                    true);
      std::copy(data.begin(), data.end(), memory.begin() + addr);
    } else if (command == "run") {
      uint64_t addr, count;
      if (!read_number(words, addr) || !read_number(words, count) || addr > 0xFFFFFFFFu || count > 0xFFFFu)
        return stop("'run' needs a 32-bit descriptor address and a count of at most 65535", true);
      DtlCsimStatus status;
      if (engine(memory, unsigned(addr), unsigned(count), &status) != DTL_CSIM_OK) return stop(status.message, true);
    } else if (command == "expect" || command == "expect_rows") {
      uint64_t addr, rows = 1, cols = 0, pitch = 0, want_bytes = 0;
      std::string file, label;
      const bool matrix = command == "expect_rows";
      bool ok = read_number(words, addr);
      if (matrix) ok = ok && read_number(words, rows) && read_number(words, cols) && read_number(words, pitch);
      ok = ok && read_name(words, file) && bool(words >> label);
      if (!ok) return stop("'" + command + "' has missing or malformed fields", true);
      const bool sized = !matrix && read_number(words, want_bytes);
      std::vector<uint8_t> want;
      if (!read_file(dir + "/" + file, want)) return stop("cannot read tb_data/" + file, true);
      const uint64_t unit = matrix ? 2 : 1;  // bytes per compared value
      if (!matrix) {
        if (sized && want.size() != want_bytes) return stop(file_size_error(file, want.size(), want_bytes), true);
        cols = want.size();
        pitch = cols;
      } else if (rows > MAX_MEMORY_BYTES / 2 || cols > MAX_MEMORY_BYTES / 2 || rows * cols * unit != want.size()) {
        return stop(file_size_error(file, want.size(), rows * cols * unit), true);
      }
      if (!fits(addr, rows, cols, pitch, unit, memory.size()))
        return stop("'" + label + "' compares bytes outside the " + std::to_string(memory.size()) +
                        "-byte memory image",
                    true);
      size_t wrong = 0, first = 0;
      for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols * unit; c++) {
          const size_t at = addr + r * pitch * unit + c;
          if (memory[at] != want[r * cols * unit + c]) {
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
      return stop("unknown command '" + command + "'", true);
    }
  }
  if (checks == 0) {
    std::cerr << "testbench: " << script << " has no 'expect' line, so nothing was checked; " << REGENERATE << "\n";
    return 2;
  }
  std::cout << (failures ? "FAILED " : "PASSED ") << checks - failures << "/" << checks << " checks bit-exact\n";
  return failures ? 1 : 0;
}

}  // namespace tb

#endif
