// Guards of dtlgen's C-simulation (host code only: Vitis HLS never synthesises anything here).
//
// A project directory is data from a stranger: a tampered descriptor, a short memory image or a
// test vector of the wrong size must stop the engine with one line saying what is wrong, never make
// C read or write outside the buffers it was given. Two layers do that:
// - the byte-image wrappers (dtl_bytes.h) check the descriptor list against the image they hold,
//   in every build, Vitis HLS csim included;
// - with DTL_CSIM_CHECKED defined (dtlgen's g++ build defines it; Vitis HLS must not, because its
//   cosim needs the plain pointer ports), the engines' DRAM port is a DtlMem: a view that knows the
//   image's size, so every access is bounds-checked, and each engine checks every descriptor against
//   its compile-time limits (on-chip buffers, K_MAX, tile counts, bank depths) before running it.
//
// Error codes returned by the wrappers and the C entry points of csim_api.cpp:
//   DTL_CSIM_OK              0  the engine ran the whole list
//   DTL_CSIM_BAD_CALL        1  the call itself is wrong: no image, a count past the 16-bit port,
//                               the descriptor list outside the image, no memory for the image
//   DTL_CSIM_BAD_DESCRIPTOR  2  a descriptor's fields are outside the engine's limits or address
//                               memory outside the image; the engine stopped before running it
//   DTL_CSIM_OUT_OF_RANGE    3  an access fell outside the image anyway (the last line of defence;
//                               the descriptor checks are meant to catch everything first)
#ifndef DTL_CSIM_CHECK_H
#define DTL_CSIM_CHECK_H

#ifdef __SYNTHESIS__
#error "dtl_csim_check.h is host code for C-simulation; it must not reach synthesis"
#endif

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <type_traits>

enum { DTL_CSIM_OK = 0, DTL_CSIM_BAD_CALL = 1, DTL_CSIM_BAD_DESCRIPTOR = 2, DTL_CSIM_OUT_OF_RANGE = 3 };

// The first error of one engine run: what follows an error is a consequence of it.
struct DtlCsimStatus {
  int code;
  char message[512];
  DtlCsimStatus() : code(DTL_CSIM_OK) { message[0] = '\0'; }
};

inline void dtl_csim_fail(DtlCsimStatus *status, int code, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
inline void dtl_csim_fail(DtlCsimStatus *status, int code, const char *format, ...) {
  if (status->code != DTL_CSIM_OK) return;
  status->code = code;
  va_list args;
  va_start(args, format);
  vsnprintf(status->message, sizeof status->message, format, args);
  va_end(args);
}

// Refuse descriptor `index` (at byte `at`) of `engine` from inside a bool check function: records the
// reason with the descriptor's place and returns false from the caller.
#define DTL_CSIM_REFUSE(status, engine, index, at, ...)                                                \
  do {                                                                                                 \
    char why_[320];                                                                                    \
    snprintf(why_, sizeof why_, __VA_ARGS__);                                                          \
    dtl_csim_fail(status, DTL_CSIM_BAD_DESCRIPTOR, "%s descriptor %u at 0x%x: %s", engine, index, at, why_); \
    return false;                                                                                      \
  } while (0)

// A DRAM port that knows how many elements (bus beats) the image behind it holds. Out of range, a
// read gives zero and a write goes nowhere, and the status records the first such access; the
// engine checks `failed()` after each descriptor and stops. `bytes()` is the image's own size: its
// last element may be partly padding (a descriptor's reach is checked against the bytes).
template <typename T>
class DtlMem {
 public:
  typedef typename std::remove_const<T>::type value_type;

  DtlMem(T *data, uint64_t size, unsigned element_bytes, DtlCsimStatus *status, uint64_t bytes = ~uint64_t(0))
      : data_(data), size_(size), element_bytes_(element_bytes), status_(status),
        bytes_(bytes == ~uint64_t(0) ? size * element_bytes : bytes) {}
  template <typename U>  // a writable view converts to a read-only one
  DtlMem(const DtlMem<U> &other)
      : data_(other.data()), size_(other.size()), element_bytes_(other.element_bytes()), status_(other.status()),
        bytes_(other.bytes()) {}

  T &operator[](uint64_t i) const {
    if (i < size_) return data_[i];
    const unsigned long long first = (unsigned long long)i * element_bytes_;
    dtl_csim_fail(status_, DTL_CSIM_OUT_OF_RANGE,
                  "the engine addressed bytes 0x%llx-0x%llx, outside the %llu-byte memory image", first,
                  first + element_bytes_ - 1, (unsigned long long)bytes_);
    static thread_local value_type scratch;
    scratch = 0;
    return scratch;
  }

  T *data() const { return data_; }
  uint64_t size() const { return size_; }  // elements
  uint64_t bytes() const { return bytes_; }
  unsigned element_bytes() const { return element_bytes_; }
  DtlCsimStatus *status() const { return status_; }
  bool failed() const { return status_->code != DTL_CSIM_OK; }

 private:
  T *data_;
  uint64_t size_;
  unsigned element_bytes_;
  DtlCsimStatus *status_;
  uint64_t bytes_;
};

#endif
