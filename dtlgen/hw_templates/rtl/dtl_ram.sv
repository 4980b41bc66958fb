// One bank of on-chip memory: one write port, a registered read port with an enable (the read
// register holds while `re` is low), no reset. Every engine buffer is built from these, so that
// yosys (DP16KD / TRELLIS_DPR16X4) and Vivado (RAMB18 / LUTRAM) infer memory instead of flip-flops
// behind multiplexers. Reading a word in the cycle it is written returns the old word (no bypass).
module dtl_ram #(
  parameter int WIDTH = 16,
  parameter int DEPTH = 64
) (
  input  logic                                    clk,
  input  logic                                    we,
  input  logic [(DEPTH > 1 ? $clog2(DEPTH) : 1)-1:0] waddr,
  input  logic [WIDTH-1:0]                        wdata,
  input  logic                                    re,
  input  logic [(DEPTH > 1 ? $clog2(DEPTH) : 1)-1:0] raddr,
  output logic [WIDTH-1:0]                        rdata
);
  logic [WIDTH-1:0] mem [DEPTH];

  always_ff @(posedge clk) begin
    if (we) mem[waddr] <= wdata;
    if (re) rdata <= mem[raddr];
  end
endmodule
