// Host-side helpers (testbenches and the C-simulation library, never synthesised): run an engine
// on a DRAM image held as plain bytes, converting to and from the engines' bus beats.
//
// Each returns an error code of dtl_csim_check.h (0: the engine ran the whole list) with the
// message in *status. The descriptor list is checked against the image here in every build; with
// DTL_CSIM_CHECKED (dtlgen's g++ build) the engine also checks each descriptor and every access.
#ifndef DTL_BYTES_H
#define DTL_BYTES_H

#include <cstdint>
#include <new>
#include <vector>

#include "dtl_csim_check.h"
#include "dtl_engines.h"

// The call itself: an image, a count the 16-bit port carries, the whole list inside the image.
inline int dtl_check_call(const char *engine, const uint8_t *memory, uint64_t bytes, uint32_t desc_addr,
                          uint32_t count, unsigned desc_bytes, DtlCsimStatus *status) {
  if (memory == 0 && bytes > 0) {
    dtl_csim_fail(status, DTL_CSIM_BAD_CALL, "%s engine: no memory image (a null pointer)", engine);
  } else if (bytes > (uint64_t(1) << 32)) {
    dtl_csim_fail(status, DTL_CSIM_BAD_CALL, "%s engine: a %llu-byte memory image exceeds the 32-bit DRAM map",
                  engine, (unsigned long long)bytes);
  } else if (count > 0xFFFF) {
    dtl_csim_fail(status, DTL_CSIM_BAD_CALL, "%s engine: %u descriptors exceed the 16-bit desc_count port (65535)",
                  engine, count);
  } else if (uint64_t(desc_addr) + uint64_t(count) * desc_bytes > bytes) {
    dtl_csim_fail(status, DTL_CSIM_BAD_CALL,
                  "%s engine: %u descriptors of %u bytes at 0x%x span bytes 0x%x-0x%llx, outside the %llu-byte "
                  "memory image",
                  engine, count, desc_bytes, desc_addr, desc_addr,
                  (unsigned long long)(uint64_t(desc_addr) + uint64_t(count) * desc_bytes - 1),
                  (unsigned long long)bytes);
  }
  return status->code;
}

// The image as bus beats (little-endian; the last beat padded with zeros), and back, 64 bits at a time
// (a beat's range selects cost far more than the bytes they move).
template <int BYTES>
bool dtl_to_words(const uint8_t *memory, uint64_t bytes, std::vector<ap_uint<BYTES * 8> > &words, const char *engine,
                  DtlCsimStatus *status) {
  try {
    words.assign((bytes + BYTES - 1) / BYTES, ap_uint<BYTES * 8>(0));
  } catch (const std::bad_alloc &) {
    dtl_csim_fail(status, DTL_CSIM_BAD_CALL, "%s engine: no host memory for a %llu-byte image", engine,
                  (unsigned long long)bytes);
    return false;
  }
  const int CHUNK = BYTES < 8 ? BYTES : 8;
  for (uint64_t w = 0; w < words.size(); w++) {
    for (int c = 0; c < BYTES; c += CHUNK) {
      uint64_t chunk = 0;
      for (int b = 0; b < CHUNK; b++) {
        const uint64_t at = w * BYTES + c + b;
        if (at < bytes) chunk |= uint64_t(memory[at]) << (8 * b);
      }
      words[w].range(8 * (c + CHUNK) - 1, 8 * c) = chunk;
    }
  }
  return true;
}

template <int BYTES>
void dtl_from_words(const std::vector<ap_uint<BYTES * 8> > &words, uint8_t *memory, uint64_t bytes) {
  const int CHUNK = BYTES < 8 ? BYTES : 8;
  for (uint64_t w = 0; w < words.size(); w++) {
    for (int c = 0; c < BYTES; c += CHUNK) {
      const uint64_t chunk = words[w].range(8 * (c + CHUNK) - 1, 8 * c).to_uint64();
      for (int b = 0; b < CHUNK; b++) {
        const uint64_t at = w * BYTES + c + b;
        if (at < bytes) memory[at] = uint8_t(chunk >> (8 * b));
      }
    }
  }
}

inline int dtl_run_fe_bytes(uint8_t *memory, uint64_t bytes, uint32_t desc_addr, uint32_t count,
                            DtlCsimStatus *status) {
  if (dtl_check_call("FE", memory, bytes, desc_addr, count, DTL_FE_DESC_BYTES, status)) return status->code;
  std::vector<dtl_fe_word_t> mem;
  if (!dtl_to_words<DTL_FE_BUS_BYTES>(memory, bytes, mem, "FE", status)) return status->code;
#ifdef DTL_CSIM_CHECKED
  const DtlMem<dtl_fe_word_t> image(mem.data(), mem.size(), DTL_FE_BUS_BYTES, status, bytes);
  dtl_fe_engine(dtl_fe_burst_t(image), dtl_fe_burst_t(image), desc_addr, count);
#else
  dtl_fe_engine(dtl_fe_burst_t(mem.data()), dtl_fe_burst_t(mem.data()), desc_addr, count);
#endif
  dtl_from_words<DTL_FE_BUS_BYTES>(mem, memory, bytes);
  return status->code;
}

#if DTL_HAS_RL
inline int dtl_run_rl_bytes(uint8_t *memory, uint64_t bytes, uint32_t desc_addr, uint32_t count,
                            DtlCsimStatus *status) {
  if (dtl_check_call("RL", memory, bytes, desc_addr, count, DTL_RL_DESC_BYTES, status)) return status->code;
  std::vector<dtl_rl_word_t> mem;
  if (!dtl_to_words<DTL_RL_BUS_BYTES>(memory, bytes, mem, "RL", status)) return status->code;
#ifdef DTL_CSIM_CHECKED
  const DtlMem<dtl_rl_word_t> image(mem.data(), mem.size(), DTL_RL_BUS_BYTES, status, bytes);
  dtl_rl_engine(dtl_rl_burst_t(image), desc_addr, count);
#else
  dtl_rl_engine(dtl_rl_burst_t(mem.data()), desc_addr, count);
#endif
  dtl_from_words<DTL_RL_BUS_BYTES>(mem, memory, bytes);
  return status->code;
}
#endif

#endif
