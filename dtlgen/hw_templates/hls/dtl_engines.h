// The top functions of this project's HLS engines (Vitis HLS synthesises each as its own IP).
//
// Both are descriptor driven, like the RTL engines and with the same descriptor formats: the host
// writes a list of descriptors into DRAM, passes its address and length over AXI-Lite and starts
// the engine, which runs the whole list. `mem` is the DRAM the engine masters over AXI; every
// address in a descriptor is a byte offset from it.
#ifndef DTL_ENGINES_H
#define DTL_ENGINES_H

#include <ap_int.h>

#include "dtl_params.h"

// The DRAM ports: one beat of the board's memory bus per element (DTL_*_BUS_BYTES, the bytes per
// cycle the cycle model counts), little-endian: byte j of a beat is bits 8j+7..8j. Vitis HLS sees
// manual-burst m_axi ports (hls::burst_maxi, Vitis HLS 2022.2 or later); dtlgen's g++ C-simulation
// (DTL_CSIM_CHECKED) gives the engines bounds-checked views of the image with the same methods
// instead (DtlBurst, dtl_csim_check.h), and the engines check every descriptor against their limits
// before running it.
typedef ap_uint<DTL_FE_BUS_BYTES * 8> dtl_fe_word_t;
#if DTL_HAS_RL
typedef ap_uint<DTL_RL_BUS_BYTES * 8> dtl_rl_word_t;
#endif
#ifdef DTL_CSIM_CHECKED
#ifdef __SYNTHESIS__
#error "DTL_CSIM_CHECKED is for dtlgen's g++ C-simulation only: synthesis must see the plain pointer ports"
#endif
#include "dtl_csim_check.h"
typedef DtlBurst<dtl_fe_word_t> dtl_fe_burst_t;
#if DTL_HAS_RL
typedef DtlBurst<dtl_rl_word_t> dtl_rl_burst_t;
#endif
#else
#include <hls_burst_maxi.h>
typedef hls::burst_maxi<dtl_fe_word_t> dtl_fe_burst_t;
#if DTL_HAS_RL
typedef hls::burst_maxi<dtl_rl_word_t> dtl_rl_burst_t;
#endif
#endif

// Feature-extractor engine: 64-byte descriptors of dtlgen/generator/fe_program.py; activations and
// weights are bytes in memory. Both ports are manual-burst m_axi ports (hls::burst_maxi, Vitis HLS
// 2022.2 or later) of one AXI master: `mem` reads (descriptors, biases, inputs, weights), `out`
// writes the outputs with byte enables (an output row rarely starts or ends on a beat). The host
// points both at the same buffer.
void dtl_fe_engine(dtl_fe_burst_t mem, dtl_fe_burst_t out, ap_uint<32> desc_addr, ap_uint<16> desc_count);

#if DTL_HAS_RL
// Retrainable-layer engine: 128-byte descriptors of dtlgen/host/rl_program.py; 16-bit values in memory.
// Weights, biases and the activation / gradient stashes stay on chip between calls. `mem` is a
// manual-burst m_axi port that both reads and writes (whole beats).
void dtl_rl_engine(dtl_rl_burst_t mem, ap_uint<32> desc_addr, ap_uint<16> desc_count);
#endif

#endif
