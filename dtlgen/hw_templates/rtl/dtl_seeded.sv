// The seeded-weight generator (dtlgen/isa/seeded.py defines it; dtl_seeded.h is the C++ twin):
// a layer's key from (seed, layer) and word n of the layer, combinationally. An engine registers the
// key once per layer and pipelines the word (one 32x32 multiply a stage); tests/isa/test_seeded.py
// holds this module to the golden model in Verilator.
module dtl_seeded (
  input  logic [31:0] seed,
  input  logic [31:0] layer,
  input  logic [31:0] n,
  output logic [31:0] key,
  output logic [31:0] word
);
  localparam logic [31:0] GOLDEN = 32'h9E3779B9;

  function automatic logic [31:0] mix32(input logic [31:0] v);  // bijective: lowbias32
    logic [31:0] x;
    x = v ^ (v >> 16);
    x = x * 32'h7FEB352D;
    x = x ^ (x >> 15);
    x = x * 32'h846CA68B;
    mix32 = x ^ (x >> 16);
  endfunction

  assign key = mix32(seed ^ mix32(layer + GOLDEN));
  assign word = mix32(key + n * GOLDEN);  // a Weyl sequence into the mixer
endmodule
