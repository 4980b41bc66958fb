// Simulation top of the FE engine: the engine, the DRAM model and a perf-counter memory.
// cocotb drives start and waits for done; results leave through $writememh files.
module fe_tb_top #(
  parameter int TM = 4,
  parameter int TN = 4,
  parameter int TR = 4,
  parameter int TC = 4,
  parameter int A_BITS = 8,
  parameter int W_BITS = 8,
  parameter int BUS_BYTES = 8,
  parameter int M_MAX = 512,
  parameter int DRAIN = 6,
  parameter int LATENCY = 40,
  parameter int SIZE_BYTES = 1 << 20,
  parameter int STALL_PERIOD = 0,
  parameter int STALL_SEED = 1,
  parameter INIT_FILE = "",
  parameter DUMP_FILE = "dram_dump.hex",
  parameter PERF_FILE = "perf_dump.hex"
) (
  input  logic        clk,
  input  logic        rst,
  input  logic        start,
  input  logic [31:0] desc_addr,
  input  logic [15:0] desc_count,
  input  logic        dump,
  output logic        busy,
  output logic        done
);
  logic                   rd_req_valid, rd_req_ready, rd_valid, wr_valid, wr_ready, perf_valid;
  logic [31:0]            rd_req_addr, wr_addr, perf_cycles;
  logic [15:0]            rd_req_beats, perf_index;
  logic [BUS_BYTES*8-1:0] rd_data, wr_data;
  logic [7:0]             wr_bytes;
  logic [31:0]            perf_mem [65536];  // one entry per descriptor index

  fe_engine #(.TM(TM), .TN(TN), .TR(TR), .TC(TC), .A_BITS(A_BITS), .W_BITS(W_BITS),
              .BUS_BYTES(BUS_BYTES), .M_MAX(M_MAX), .DRAIN(DRAIN)) engine (
    .clk, .rst, .start, .desc_addr, .desc_count, .busy, .done,
    .rd_req_valid, .rd_req_ready, .rd_req_addr, .rd_req_beats, .rd_valid, .rd_data,
    .wr_valid, .wr_ready, .wr_addr, .wr_data, .wr_bytes,
    .perf_valid, .perf_index, .perf_cycles);

  dram_model #(.BUS_BYTES(BUS_BYTES), .LATENCY(LATENCY), .SIZE_BYTES(SIZE_BYTES), .STALL_PERIOD(STALL_PERIOD),
               .STALL_SEED(STALL_SEED), .INIT_FILE(INIT_FILE), .DUMP_FILE(DUMP_FILE)) dram (
    .clk, .rst, .rd_req_valid, .rd_req_ready, .rd_req_addr, .rd_req_beats, .rd_valid, .rd_data,
    .wr_valid, .wr_ready, .wr_addr, .wr_data, .wr_bytes, .load(1'b0), .dump, .dump_lo(32'd0),
    .dump_hi(32'(SIZE_BYTES - 1)));

  always_ff @(posedge clk) begin
    if (perf_valid) perf_mem[perf_index] <= perf_cycles;
    if (dump) $writememh(PERF_FILE, perf_mem);
  end
endmodule
