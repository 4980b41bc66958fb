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

#include <ap_int.h>

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

// The C-simulation view of a manual-burst m_axi port (Vitis HLS's hls::burst_maxi<T>, the methods
// the engines use, in its order rules): read_request(offset, len) queues `len` beats from beat
// `offset`; read() returns the next beat of the oldest request; write_request / write(value,
// byte-enable mask) likewise, a beat's bytes written only where the mask's bit is set; one
// write_response() per write request once its beats are written. Each beat goes through the
// bounds-checked DtlMem; a read or write without a request, or a response without a finished
// request, fails the run (status) instead of reaching memory.
template <typename T>
class DtlBurst {
 public:
  explicit DtlBurst(const DtlMem<T> &mem) : mem_(mem), next_read_(0), reads_left_(0), next_write_(0),
                                             writes_left_(0), responses_(0), read_queue_(), write_queue_() {}

  void read_request(uint64_t offset, unsigned len) { request(read_queue_, next_read_, reads_left_, offset, len); }

  T read() {
    if (reads_left_ == 0 && !pop(read_queue_, next_read_, reads_left_)) {
      dtl_csim_fail(mem_.status(), DTL_CSIM_OUT_OF_RANGE, "the engine read a memory beat it had not requested");
      return T(0);
    }
    reads_left_--;
    return mem_[next_read_++];
  }

  void write_request(uint64_t offset, unsigned len) {
    request(write_queue_, next_write_, writes_left_, offset, len);
  }

  template <int N>
  void write(const T &value, ap_int<N> mask) {
    if (writes_left_ == 0 && !pop(write_queue_, next_write_, writes_left_)) {
      dtl_csim_fail(mem_.status(), DTL_CSIM_OUT_OF_RANGE, "the engine wrote a memory beat it had not requested");
      return;
    }
    T &beat = mem_[next_write_++];
    for (int b = 0; b < N; b++)
      if (mask[b]) beat.range(8 * b + 7, 8 * b) = value.range(8 * b + 7, 8 * b);
    if (--writes_left_ == 0) responses_++;
  }

  void write_response() {
    if (responses_ == 0)
      dtl_csim_fail(mem_.status(), DTL_CSIM_OUT_OF_RANGE, "the engine waited for a write response it had not earned");
    else
      responses_--;
  }

  DtlCsimStatus *status() const { return mem_.status(); }
  bool failed() const { return mem_.failed(); }
  uint64_t bytes() const { return mem_.bytes(); }

 private:
  // Requests beyond the current one: a small ring (the engines keep at most a few dozen in flight).
  static const unsigned QUEUE = 64;
  struct Queue {
    uint64_t offset[QUEUE];
    unsigned len[QUEUE];
    unsigned head, count;
    Queue() : head(0), count(0) {}
  };
  // A request starts at once when none is running or waiting, else it waits its turn. A request of
  // no beats is refused (Vitis's burst_maxi would still owe it a write response).
  void request(Queue &q, uint64_t &next, unsigned &left, uint64_t offset, unsigned len) {
    if (len == 0) {
      dtl_csim_fail(mem_.status(), DTL_CSIM_OUT_OF_RANGE, "the engine requested a burst of no beats");
      return;
    }
    if (left == 0 && q.count == 0) {
      next = offset;
      left = len;
    } else {
      push(q, offset, len);
    }
  }
  void push(Queue &q, uint64_t offset, unsigned len) {
    if (q.count == QUEUE) {
      dtl_csim_fail(mem_.status(), DTL_CSIM_OUT_OF_RANGE, "the engine queued more than %u memory requests", QUEUE);
      return;
    }
    const unsigned at = (q.head + q.count++) % QUEUE;
    q.offset[at] = offset;
    q.len[at] = len;
  }
  static bool pop(Queue &q, uint64_t &offset, unsigned &len) {
    if (q.count == 0) return false;
    offset = q.offset[q.head];
    len = q.len[q.head];
    q.head = (q.head + 1) % QUEUE;
    q.count--;
    return true;
  }

  DtlMem<T> mem_;
  uint64_t next_read_;
  unsigned reads_left_;
  uint64_t next_write_;
  unsigned writes_left_;
  unsigned responses_;
  Queue read_queue_, write_queue_;
};

#endif
