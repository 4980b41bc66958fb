// Two AXI4 ports ganged into one of twice their width: an engine's BUS_BYTES-wide AXI4 master (s_axi,
// from dtl_axi_master.sv) reaches DRAM through two BUS_BYTES/2-wide slave ports (m_axi, m1_axi: the
// Zynq's HP ports), which together move one whole beat a cycle where one port would move half.
//
// Layout (dtlgen.isa.port.gang_offset): each 4 KB page of the engine's address space holds its beats'
// low halves in its first 2 KB and their high halves in its last 2 KB, so beat i of a page
// (bytes [16 i, 16 i + 16) on a 16-byte bus) is bytes [8 i, 8 i + 8) of the page on port 0 and
// [2048 + 8 i, 2048 + 8 i + 8) on port 1. A burst never crosses 4 KB (dtl_axi_master), so each port's
// share of it is one contiguous INCR burst of the same length inside the same page; the layout moves
// bytes only within a page, so the memory keeps its size and base. The host writes and reads the
// buffer through that permutation (the board driver; the testbench's memory image).
// Every transaction goes to both ports with the same length, so their R and B streams stay in step:
// an R beat (B response) leaves when both ports have one, and the request channels (AR, AW, W) hand
// over once both ports have taken them (a port that took its half waits for the other). Responses
// combine by OR: bit 1 (SLVERR or DECERR) set if either port answered an error.
// Requires what dtl_axi_master issues: INCR bursts of whole, aligned BUS_BYTES beats (xSIZE =
// log2(BUS_BYTES)), one ID.
module dtl_axi_gang #(
  parameter int BUS_BYTES = 16  // the engine's data bus; each port carries half of it (a power of two, >= 2)
) (
  input  logic                     clk,
  input  logic                     rst,
  // the engine's master
  input  logic                     s_axi_arid,
  /* verilator lint_off UNUSEDSIGNAL */
  input  logic [31:0]              s_axi_araddr,  // (its byte-in-beat bits: aligned beats)
  /* verilator lint_on UNUSEDSIGNAL */
  input  logic [7:0]               s_axi_arlen,
  /* verilator lint_off UNUSEDSIGNAL */
  input  logic [2:0]               s_axi_arsize,  // always log2(BUS_BYTES): the ports' is log2(BUS_BYTES / 2)
  /* verilator lint_on UNUSEDSIGNAL */
  input  logic [1:0]               s_axi_arburst,
  input  logic [3:0]               s_axi_arcache,
  input  logic [2:0]               s_axi_arprot,
  input  logic                     s_axi_arvalid,
  output logic                     s_axi_arready,
  output logic                     s_axi_rid,
  output logic [BUS_BYTES*8-1:0]   s_axi_rdata,
  output logic [1:0]               s_axi_rresp,
  output logic                     s_axi_rlast,
  output logic                     s_axi_rvalid,
  input  logic                     s_axi_rready,
  input  logic                     s_axi_awid,
  /* verilator lint_off UNUSEDSIGNAL */
  input  logic [31:0]              s_axi_awaddr,
  /* verilator lint_on UNUSEDSIGNAL */
  input  logic [7:0]               s_axi_awlen,
  /* verilator lint_off UNUSEDSIGNAL */
  input  logic [2:0]               s_axi_awsize,
  /* verilator lint_on UNUSEDSIGNAL */
  input  logic [1:0]               s_axi_awburst,
  input  logic [3:0]               s_axi_awcache,
  input  logic [2:0]               s_axi_awprot,
  input  logic                     s_axi_awvalid,
  output logic                     s_axi_awready,
  input  logic [BUS_BYTES*8-1:0]   s_axi_wdata,
  input  logic [BUS_BYTES-1:0]     s_axi_wstrb,
  input  logic                     s_axi_wlast,
  input  logic                     s_axi_wvalid,
  output logic                     s_axi_wready,
  output logic                     s_axi_bid,
  output logic [1:0]               s_axi_bresp,
  output logic                     s_axi_bvalid,
  input  logic                     s_axi_bready,
  // port 0: the low half of every beat
  output logic                     m_axi_arid,
  output logic [31:0]              m_axi_araddr,
  output logic [7:0]               m_axi_arlen,
  output logic [2:0]               m_axi_arsize,
  output logic [1:0]               m_axi_arburst,
  output logic [3:0]               m_axi_arcache,
  output logic [2:0]               m_axi_arprot,
  output logic                     m_axi_arvalid,
  input  logic                     m_axi_arready,
  input  logic                     m_axi_rid,
  input  logic [BUS_BYTES*4-1:0]   m_axi_rdata,
  input  logic [1:0]               m_axi_rresp,
  input  logic                     m_axi_rlast,
  input  logic                     m_axi_rvalid,
  output logic                     m_axi_rready,
  output logic                     m_axi_awid,
  output logic [31:0]              m_axi_awaddr,
  output logic [7:0]               m_axi_awlen,
  output logic [2:0]               m_axi_awsize,
  output logic [1:0]               m_axi_awburst,
  output logic [3:0]               m_axi_awcache,
  output logic [2:0]               m_axi_awprot,
  output logic                     m_axi_awvalid,
  input  logic                     m_axi_awready,
  output logic [BUS_BYTES*4-1:0]   m_axi_wdata,
  output logic [BUS_BYTES/2-1:0]   m_axi_wstrb,
  output logic                     m_axi_wlast,
  output logic                     m_axi_wvalid,
  input  logic                     m_axi_wready,
  input  logic                     m_axi_bid,
  input  logic [1:0]               m_axi_bresp,
  input  logic                     m_axi_bvalid,
  output logic                     m_axi_bready,
  // port 1: the high half
  output logic                     m1_axi_arid,
  output logic [31:0]              m1_axi_araddr,
  output logic [7:0]               m1_axi_arlen,
  output logic [2:0]               m1_axi_arsize,
  output logic [1:0]               m1_axi_arburst,
  output logic [3:0]               m1_axi_arcache,
  output logic [2:0]               m1_axi_arprot,
  output logic                     m1_axi_arvalid,
  input  logic                     m1_axi_arready,
  /* verilator lint_off UNUSEDSIGNAL */
  input  logic                     m1_axi_rid,   // port 0's ID and RLAST speak for both
  /* verilator lint_on UNUSEDSIGNAL */
  input  logic [BUS_BYTES*4-1:0]   m1_axi_rdata,
  input  logic [1:0]               m1_axi_rresp,
  /* verilator lint_off UNUSEDSIGNAL */
  input  logic                     m1_axi_rlast,
  /* verilator lint_on UNUSEDSIGNAL */
  input  logic                     m1_axi_rvalid,
  output logic                     m1_axi_rready,
  output logic                     m1_axi_awid,
  output logic [31:0]              m1_axi_awaddr,
  output logic [7:0]               m1_axi_awlen,
  output logic [2:0]               m1_axi_awsize,
  output logic [1:0]               m1_axi_awburst,
  output logic [3:0]               m1_axi_awcache,
  output logic [2:0]               m1_axi_awprot,
  output logic                     m1_axi_awvalid,
  input  logic                     m1_axi_awready,
  output logic [BUS_BYTES*4-1:0]   m1_axi_wdata,
  output logic [BUS_BYTES/2-1:0]   m1_axi_wstrb,
  output logic                     m1_axi_wlast,
  output logic                     m1_axi_wvalid,
  input  logic                     m1_axi_wready,
  /* verilator lint_off UNUSEDSIGNAL */
  input  logic                     m1_axi_bid,
  /* verilator lint_on UNUSEDSIGNAL */
  input  logic [1:0]               m1_axi_bresp,
  input  logic                     m1_axi_bvalid,
  output logic                     m1_axi_bready
);
  localparam int LB = $clog2(BUS_BYTES);  // the byte-in-beat bits of an engine address
  localparam logic [2:0] PORT_SIZE = 3'(LB - 1);

  // A page's beat index moves down one bit and the port number takes bit 11 (dtlgen.isa.port.gang_offset);
  // the byte-in-beat bits are 0 (aligned beats).
  logic [31:0] ar0, ar1, aw0, aw1;
  assign ar0 = {s_axi_araddr[31:12], 1'b0, s_axi_araddr[11:LB], {(LB - 1){1'b0}}};
  assign ar1 = {s_axi_araddr[31:12], 1'b1, s_axi_araddr[11:LB], {(LB - 1){1'b0}}};
  assign aw0 = {s_axi_awaddr[31:12], 1'b0, s_axi_awaddr[11:LB], {(LB - 1){1'b0}}};
  assign aw1 = {s_axi_awaddr[31:12], 1'b1, s_axi_awaddr[11:LB], {(LB - 1){1'b0}}};

  // Request channels: a port that has taken its copy waits (took_*) until the other has taken its own.
  logic took_ar0, took_ar1, took_aw0, took_aw1, took_w0, took_w1;
  logic ar_done, aw_done, w_done;
  assign ar_done = (took_ar0 || m_axi_arready) && (took_ar1 || m1_axi_arready);
  assign aw_done = (took_aw0 || m_axi_awready) && (took_aw1 || m1_axi_awready);
  assign w_done = (took_w0 || m_axi_wready) && (took_w1 || m1_axi_wready);
  assign s_axi_arready = ar_done;
  assign s_axi_awready = aw_done;
  assign s_axi_wready = w_done;
  assign m_axi_arvalid = s_axi_arvalid && !took_ar0;
  assign m1_axi_arvalid = s_axi_arvalid && !took_ar1;
  assign m_axi_awvalid = s_axi_awvalid && !took_aw0;
  assign m1_axi_awvalid = s_axi_awvalid && !took_aw1;
  assign m_axi_wvalid = s_axi_wvalid && !took_w0;
  assign m1_axi_wvalid = s_axi_wvalid && !took_w1;

  always_ff @(posedge clk) begin
    if (rst || (s_axi_arvalid && ar_done)) begin
      took_ar0 <= 1'b0;
      took_ar1 <= 1'b0;
    end else begin
      took_ar0 <= took_ar0 || (m_axi_arvalid && m_axi_arready);
      took_ar1 <= took_ar1 || (m1_axi_arvalid && m1_axi_arready);
    end
    if (rst || (s_axi_awvalid && aw_done)) begin
      took_aw0 <= 1'b0;
      took_aw1 <= 1'b0;
    end else begin
      took_aw0 <= took_aw0 || (m_axi_awvalid && m_axi_awready);
      took_aw1 <= took_aw1 || (m1_axi_awvalid && m1_axi_awready);
    end
    if (rst || (s_axi_wvalid && w_done)) begin
      took_w0 <= 1'b0;
      took_w1 <= 1'b0;
    end else begin
      took_w0 <= took_w0 || (m_axi_wvalid && m_axi_wready);
      took_w1 <= took_w1 || (m1_axi_wvalid && m1_axi_wready);
    end
  end

  assign m_axi_arid = s_axi_arid;
  assign m1_axi_arid = s_axi_arid;
  assign m_axi_araddr = ar0;
  assign m1_axi_araddr = ar1;
  assign m_axi_arlen = s_axi_arlen;
  assign m1_axi_arlen = s_axi_arlen;
  assign m_axi_arsize = PORT_SIZE;
  assign m1_axi_arsize = PORT_SIZE;
  assign m_axi_arburst = s_axi_arburst;
  assign m1_axi_arburst = s_axi_arburst;
  assign m_axi_arcache = s_axi_arcache;
  assign m1_axi_arcache = s_axi_arcache;
  assign m_axi_arprot = s_axi_arprot;
  assign m1_axi_arprot = s_axi_arprot;

  assign m_axi_awid = s_axi_awid;
  assign m1_axi_awid = s_axi_awid;
  assign m_axi_awaddr = aw0;
  assign m1_axi_awaddr = aw1;
  assign m_axi_awlen = s_axi_awlen;
  assign m1_axi_awlen = s_axi_awlen;
  assign m_axi_awsize = PORT_SIZE;
  assign m1_axi_awsize = PORT_SIZE;
  assign m_axi_awburst = s_axi_awburst;
  assign m1_axi_awburst = s_axi_awburst;
  assign m_axi_awcache = s_axi_awcache;
  assign m1_axi_awcache = s_axi_awcache;
  assign m_axi_awprot = s_axi_awprot;
  assign m1_axi_awprot = s_axi_awprot;

  assign m_axi_wdata = s_axi_wdata[BUS_BYTES*4-1:0];
  assign m1_axi_wdata = s_axi_wdata[BUS_BYTES*8-1:BUS_BYTES*4];
  assign m_axi_wstrb = s_axi_wstrb[BUS_BYTES/2-1:0];
  assign m1_axi_wstrb = s_axi_wstrb[BUS_BYTES-1:BUS_BYTES/2];
  assign m_axi_wlast = s_axi_wlast;
  assign m1_axi_wlast = s_axi_wlast;

  // Response channels: a beat leaves when both ports have theirs (ready may wait for valid; a port's
  // valid never waits for ready, so the pair always completes).
  logic r_both, b_both;
  assign r_both = m_axi_rvalid && m1_axi_rvalid;
  assign b_both = m_axi_bvalid && m1_axi_bvalid;
  assign s_axi_rvalid = r_both;
  assign s_axi_rdata = {m1_axi_rdata, m_axi_rdata};
  assign s_axi_rresp = m_axi_rresp | m1_axi_rresp;
  assign s_axi_rlast = m_axi_rlast;
  assign s_axi_rid = m_axi_rid;
  assign m_axi_rready = s_axi_rready && r_both;
  assign m1_axi_rready = s_axi_rready && r_both;
  assign s_axi_bvalid = b_both;
  assign s_axi_bresp = m_axi_bresp | m1_axi_bresp;
  assign s_axi_bid = m_axi_bid;
  assign m_axi_bready = s_axi_bready && b_both;
  assign m1_axi_bready = s_axi_bready && b_both;
endmodule
