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

// Feature-extractor engine: 64-byte descriptors of dtlgen/generator/fe_program.py; bytes in memory.
void dtl_fe_engine(ap_int<8> *mem, ap_uint<32> desc_addr, ap_uint<16> desc_count);

#if DTL_HAS_RL
// Retrainable-layer engine: 128-byte descriptors of dtlgen/generator/rl_program.py; 16-bit values.
// Weights, biases and the activation / gradient stashes stay on chip between calls.
void dtl_rl_engine(ap_int<16> *mem, ap_uint<32> desc_addr, ap_uint<16> desc_count);
#endif

#endif
