// Testbench top: dtl_axi_master (a BUS_BYTES-wide AXI4 master) through dtl_axi_gang onto two AXI4 ports of
// half its width, for axi_master_cocotb_test.py's random engine traffic against two AxiRams that share
// one memory (axi_cocotb.memory: the ganged layout, dtlgen.isa.port.gang_offset).
/* verilator lint_off UNUSEDSIGNAL */
module axi_gang_tb #(
  parameter int BUS_BYTES = 16,
  parameter int MAX_READS = 8,
  parameter int MAX_WRITES = 8,
  parameter int RQ = 8
) (
  input  logic                   clk,
  input  logic                   rst,
  input  logic                   rd_req_valid,
  output logic                   rd_req_ready,
  input  logic [31:0]            rd_req_addr,
  input  logic [15:0]            rd_req_beats,
  output logic                   rd_valid,
  output logic [BUS_BYTES*8-1:0] rd_data,
  input  logic                   wr_valid,
  output logic                   wr_ready,
  input  logic [31:0]            wr_addr,
  input  logic [BUS_BYTES*8-1:0] wr_data,
  input  logic [7:0]             wr_bytes,
  output logic m_axi_arid,
  output logic [31:0] m_axi_araddr,
  output logic [7:0] m_axi_arlen,
  output logic [2:0] m_axi_arsize,
  output logic [1:0] m_axi_arburst,
  output logic [3:0] m_axi_arcache,
  output logic [2:0] m_axi_arprot,
  output logic m_axi_arvalid,
  input  logic m_axi_arready,
  input  logic m_axi_rid,
  input  logic [BUS_BYTES*4-1:0] m_axi_rdata,
  input  logic [1:0] m_axi_rresp,
  input  logic m_axi_rlast,
  input  logic m_axi_rvalid,
  output logic m_axi_rready,
  output logic m_axi_awid,
  output logic [31:0] m_axi_awaddr,
  output logic [7:0] m_axi_awlen,
  output logic [2:0] m_axi_awsize,
  output logic [1:0] m_axi_awburst,
  output logic [3:0] m_axi_awcache,
  output logic [2:0] m_axi_awprot,
  output logic m_axi_awvalid,
  input  logic m_axi_awready,
  output logic [BUS_BYTES*4-1:0] m_axi_wdata,
  output logic [BUS_BYTES/2-1:0] m_axi_wstrb,
  output logic m_axi_wlast,
  output logic m_axi_wvalid,
  input  logic m_axi_wready,
  input  logic m_axi_bid,
  input  logic [1:0] m_axi_bresp,
  input  logic m_axi_bvalid,
  output logic m_axi_bready,
  output logic m1_axi_arid,
  output logic [31:0] m1_axi_araddr,
  output logic [7:0] m1_axi_arlen,
  output logic [2:0] m1_axi_arsize,
  output logic [1:0] m1_axi_arburst,
  output logic [3:0] m1_axi_arcache,
  output logic [2:0] m1_axi_arprot,
  output logic m1_axi_arvalid,
  input  logic m1_axi_arready,
  input  logic m1_axi_rid,
  input  logic [BUS_BYTES*4-1:0] m1_axi_rdata,
  input  logic [1:0] m1_axi_rresp,
  input  logic m1_axi_rlast,
  input  logic m1_axi_rvalid,
  output logic m1_axi_rready,
  output logic m1_axi_awid,
  output logic [31:0] m1_axi_awaddr,
  output logic [7:0] m1_axi_awlen,
  output logic [2:0] m1_axi_awsize,
  output logic [1:0] m1_axi_awburst,
  output logic [3:0] m1_axi_awcache,
  output logic [2:0] m1_axi_awprot,
  output logic m1_axi_awvalid,
  input  logic m1_axi_awready,
  output logic [BUS_BYTES*4-1:0] m1_axi_wdata,
  output logic [BUS_BYTES/2-1:0] m1_axi_wstrb,
  output logic m1_axi_wlast,
  output logic m1_axi_wvalid,
  input  logic m1_axi_wready,
  input  logic m1_axi_bid,
  input  logic [1:0] m1_axi_bresp,
  input  logic m1_axi_bvalid,
  output logic m1_axi_bready,
  input  logic [31:0]            mem_base,
  input  logic                   clear_error,
  output logic                   writes_pending,
  output logic                   error
);
  logic a_arid;
  logic [31:0] a_araddr;
  logic [7:0] a_arlen;
  logic [2:0] a_arsize;
  logic [1:0] a_arburst;
  logic [3:0] a_arcache;
  logic [2:0] a_arprot;
  logic a_arvalid;
  logic a_arready;
  logic a_rid;
  logic [BUS_BYTES*8-1:0] a_rdata;
  logic [1:0] a_rresp;
  logic a_rlast;
  logic a_rvalid;
  logic a_rready;
  logic a_awid;
  logic [31:0] a_awaddr;
  logic [7:0] a_awlen;
  logic [2:0] a_awsize;
  logic [1:0] a_awburst;
  logic [3:0] a_awcache;
  logic [2:0] a_awprot;
  logic a_awvalid;
  logic a_awready;
  logic [BUS_BYTES*8-1:0] a_wdata;
  logic [BUS_BYTES-1:0] a_wstrb;
  logic a_wlast;
  logic a_wvalid;
  logic a_wready;
  logic a_bid;
  logic [1:0] a_bresp;
  logic a_bvalid;
  logic a_bready;

  dtl_axi_master #(.BUS_BYTES(BUS_BYTES), .MAX_READS(MAX_READS), .MAX_WRITES(MAX_WRITES), .RQ(RQ)) master (
    .clk, .rst, .rd_req_valid, .rd_req_ready, .rd_req_addr, .rd_req_beats, .rd_valid, .rd_data,
    .wr_valid, .wr_ready, .wr_addr, .wr_data, .wr_bytes,
    .m_axi_arid(a_arid), .m_axi_araddr(a_araddr), .m_axi_arlen(a_arlen), .m_axi_arsize(a_arsize), .m_axi_arburst(a_arburst), .m_axi_arcache(a_arcache), .m_axi_arprot(a_arprot), .m_axi_arvalid(a_arvalid), .m_axi_arready(a_arready), .m_axi_rid(a_rid), .m_axi_rdata(a_rdata), .m_axi_rresp(a_rresp), .m_axi_rlast(a_rlast), .m_axi_rvalid(a_rvalid), .m_axi_rready(a_rready), .m_axi_awid(a_awid), .m_axi_awaddr(a_awaddr), .m_axi_awlen(a_awlen), .m_axi_awsize(a_awsize), .m_axi_awburst(a_awburst), .m_axi_awcache(a_awcache), .m_axi_awprot(a_awprot), .m_axi_awvalid(a_awvalid), .m_axi_awready(a_awready), .m_axi_wdata(a_wdata), .m_axi_wstrb(a_wstrb), .m_axi_wlast(a_wlast), .m_axi_wvalid(a_wvalid), .m_axi_wready(a_wready), .m_axi_bid(a_bid), .m_axi_bresp(a_bresp), .m_axi_bvalid(a_bvalid), .m_axi_bready(a_bready),
    .mem_base, .clear_error, .writes_pending, .error);

  dtl_axi_gang #(.BUS_BYTES(BUS_BYTES)) gang (
    .clk, .rst,
    .s_axi_arid(a_arid), .s_axi_araddr(a_araddr), .s_axi_arlen(a_arlen), .s_axi_arsize(a_arsize), .s_axi_arburst(a_arburst), .s_axi_arcache(a_arcache), .s_axi_arprot(a_arprot), .s_axi_arvalid(a_arvalid), .s_axi_arready(a_arready), .s_axi_rid(a_rid), .s_axi_rdata(a_rdata), .s_axi_rresp(a_rresp), .s_axi_rlast(a_rlast), .s_axi_rvalid(a_rvalid), .s_axi_rready(a_rready), .s_axi_awid(a_awid), .s_axi_awaddr(a_awaddr), .s_axi_awlen(a_awlen), .s_axi_awsize(a_awsize), .s_axi_awburst(a_awburst), .s_axi_awcache(a_awcache), .s_axi_awprot(a_awprot), .s_axi_awvalid(a_awvalid), .s_axi_awready(a_awready), .s_axi_wdata(a_wdata), .s_axi_wstrb(a_wstrb), .s_axi_wlast(a_wlast), .s_axi_wvalid(a_wvalid), .s_axi_wready(a_wready), .s_axi_bid(a_bid), .s_axi_bresp(a_bresp), .s_axi_bvalid(a_bvalid), .s_axi_bready(a_bready),
    .m_axi_arid, .m_axi_araddr, .m_axi_arlen, .m_axi_arsize, .m_axi_arburst, .m_axi_arcache, .m_axi_arprot, .m_axi_arvalid, .m_axi_arready, .m_axi_rid, .m_axi_rdata, .m_axi_rresp, .m_axi_rlast, .m_axi_rvalid, .m_axi_rready, .m_axi_awid, .m_axi_awaddr, .m_axi_awlen, .m_axi_awsize, .m_axi_awburst, .m_axi_awcache, .m_axi_awprot, .m_axi_awvalid, .m_axi_awready, .m_axi_wdata, .m_axi_wstrb, .m_axi_wlast, .m_axi_wvalid, .m_axi_wready, .m_axi_bid, .m_axi_bresp, .m_axi_bvalid, .m_axi_bready, .m1_axi_arid, .m1_axi_araddr, .m1_axi_arlen, .m1_axi_arsize, .m1_axi_arburst, .m1_axi_arcache, .m1_axi_arprot, .m1_axi_arvalid, .m1_axi_arready, .m1_axi_rid, .m1_axi_rdata, .m1_axi_rresp, .m1_axi_rlast, .m1_axi_rvalid, .m1_axi_rready, .m1_axi_awid, .m1_axi_awaddr, .m1_axi_awlen, .m1_axi_awsize, .m1_axi_awburst, .m1_axi_awcache, .m1_axi_awprot, .m1_axi_awvalid, .m1_axi_awready, .m1_axi_wdata, .m1_axi_wstrb, .m1_axi_wlast, .m1_axi_wvalid, .m1_axi_wready, .m1_axi_bid, .m1_axi_bresp, .m1_axi_bvalid, .m1_axi_bready);
endmodule
/* verilator lint_on UNUSEDSIGNAL */
