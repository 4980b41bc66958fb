// Simulation top of the RL engine: the engine, the DRAM model and a perf-counter memory.
// The cocotb host loop starts descriptor lists and exchanges data with the DRAM model through
// files: `load` applies a $readmemh patch, `dump` writes a byte range, `perf_dump` the counters.
module rl_tb_top #(
  parameter int TM = 4,
  parameter int TN = 4,
  parameter int BITS = 16,
  parameter int ACC_BITS = 40,
  parameter int BUS_BYTES = 8,
  parameter int LANES = 8,
  parameter int A_DEPTH = 256,
  parameter int G_DEPTH = 256,
  parameter int W_DEPTH = 64,
  parameter int B_DEPTH = 16,
  parameter int LFSR_MASK = 16'hB400,  // dtlgen.quant.fixed.LFSR_MASK
  parameter int LATENCY = 40,
  parameter int SIZE_BYTES = 1 << 16,
  parameter int STALL_PERIOD = 0,
  parameter int STALL_SEED = 1,
  parameter INIT_FILE = "",
  parameter LOAD_FILE = "dram_load.hex",
  parameter DUMP_FILE = "dram_dump.hex",
  parameter PERF_FILE = "perf_dump.hex"
) (
  input  logic        clk,
  input  logic        rst,
  input  logic        start,
  input  logic [31:0] desc_addr,
  input  logic [15:0] desc_count,
  input  logic [15:0] perf_base,
  input  logic        load,
  input  logic        dump,
  input  logic [31:0] dump_lo,
  input  logic [31:0] dump_hi,
  input  logic        perf_dump,
  output logic        busy,
  output logic        done,
  output logic [31:0] run_cycles  // cycles since the last start (the host's view of a list's run time)
);
  logic                   rd_req_valid, rd_req_ready, rd_valid, wr_valid, wr_ready, perf_valid;
  logic [31:0]            rd_req_addr, wr_addr, perf_cycles;
  logic [15:0]            rd_req_beats, perf_index;
  logic [BUS_BYTES*8-1:0] rd_data, wr_data;
  logic [7:0]             wr_bytes;
  logic [31:0]            perf_mem [65536];  // one entry per descriptor index

  rl_engine #(.TM(TM), .TN(TN), .BITS(BITS), .ACC_BITS(ACC_BITS), .BUS_BYTES(BUS_BYTES), .LANES(LANES),
              .A_DEPTH(A_DEPTH), .G_DEPTH(G_DEPTH), .W_DEPTH(W_DEPTH), .B_DEPTH(B_DEPTH), .LFSR_MASK(16'(LFSR_MASK))) engine (
    .clk, .rst, .start, .desc_addr, .desc_count, .perf_base, .busy, .done,
    .rd_req_valid, .rd_req_ready, .rd_req_addr, .rd_req_beats, .rd_valid, .rd_data,
    .wr_valid, .wr_ready, .wr_addr, .wr_data, .wr_bytes,
    .perf_valid, .perf_index, .perf_cycles);

  dram_model #(.BUS_BYTES(BUS_BYTES), .LATENCY(LATENCY), .SIZE_BYTES(SIZE_BYTES), .STALL_PERIOD(STALL_PERIOD),
               .STALL_SEED(STALL_SEED), .INIT_FILE(INIT_FILE), .LOAD_FILE(LOAD_FILE), .DUMP_FILE(DUMP_FILE)) dram (
    .clk, .rst, .rd_req_valid, .rd_req_ready, .rd_req_addr, .rd_req_beats, .rd_valid, .rd_data,
    .wr_valid, .wr_ready, .wr_addr, .wr_data, .wr_bytes, .load, .dump, .dump_lo, .dump_hi);

  always_ff @(posedge clk) begin
    if (rst || start) run_cycles <= '0;
    else if (busy) run_cycles <= run_cycles + 1;
  end

  always_ff @(posedge clk) begin
    if (perf_valid) perf_mem[perf_index] <= perf_cycles;
    if (perf_dump) $writememh(PERF_FILE, perf_mem);
  end
endmodule
