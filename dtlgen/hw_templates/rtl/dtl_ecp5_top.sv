// Pin-level top of an ECP5 board: the board oscillator through one EHXPLLL to the design clock,
// a power-on reset, and dtl_uart_core (both engines, their on-chip memory and the UART host link).
// The generator sets the parameters (engines from the design, PLL dividers from the design clock);
// the pin names are the board file's `pins` (the .lpf maps them to sites).
module dtl_ecp5_top #(
  parameter int FE_TM = 4,
  parameter int FE_TN = 4,
  parameter int FE_TR = 4,
  parameter int FE_TC = 4,
  parameter int A_BITS = 8,
  parameter int W_BITS = 8,
  parameter int M_MAX = 64,
  parameter int K_MAX = 7,
  parameter int DRAIN = 6,
  parameter int HAS_RL = 1,
  parameter int RL_TM = 2,
  parameter int RL_TN = 2,
  parameter int RL_BITS = 16,
  parameter int RL_ACC_BITS = 40,
  parameter int LANES = 4,
  parameter int A_DEPTH = 64,
  parameter int G_DEPTH = 64,
  parameter int W_DEPTH = 32,
  parameter int B_DEPTH = 16,
  parameter int LFSR_MASK = 'hB400,
  parameter int BUS_BYTES = 2,
  parameter int MEM_BYTES = 1 << 16,
  parameter int RL_BASE = 1 << 15,
  parameter int CLKS_PER_BIT = 434,
  parameter int CLKI_DIV = 1,   // EHXPLLL: f_out = f_in * CLKFB_DIV / CLKI_DIV, VCO = f_out * CLKOP_DIV
  parameter int CLKFB_DIV = 2,
  parameter int CLKOP_DIV = 12,
  parameter int CLKOP_CPHASE = 5
) (
  input  logic       clk_in,
  input  logic       uart_rx,
  output logic       uart_tx,
  output logic [7:0] led,
  output logic       keep_high  // a board pin that must stay high (ULX3S: wifi_gpio0, else the ESP32 resets the FPGA)
);
  logic clk, locked;
  (* keep *) EHXPLLL #(
    .PLLRST_ENA("DISABLED"), .INTFB_WAKE("DISABLED"), .STDBY_ENABLE("DISABLED"), .DPHASE_SOURCE("DISABLED"),
    .OUTDIVIDER_MUXA("DIVA"), .OUTDIVIDER_MUXB("DIVB"), .OUTDIVIDER_MUXC("DIVC"), .OUTDIVIDER_MUXD("DIVD"),
    .CLKI_DIV(CLKI_DIV), .CLKOP_ENABLE("ENABLED"), .CLKOP_DIV(CLKOP_DIV), .CLKOP_CPHASE(CLKOP_CPHASE),
    .CLKOP_FPHASE(0), .FEEDBK_PATH("CLKOP"), .CLKFB_DIV(CLKFB_DIV)
  ) pll (
    .RST(1'b0), .STDBY(1'b0), .CLKI(clk_in), .CLKOP(clk), .CLKFB(clk), .CLKINTFB(), .PHASESEL0(1'b0),
    .PHASESEL1(1'b0), .PHASEDIR(1'b1), .PHASESTEP(1'b1), .PHASELOADREG(1'b1), .PLLWAKESYNC(1'b0),
    .ENCLKOP(1'b0), .LOCK(locked));

  // reset until the PLL has locked and then for 2^16 cycles more
  logic [16:0] por = '0;
  logic        rst;
  always_ff @(posedge clk) begin
    if (!locked) por <= '0;
    else if (!por[16]) por <= por + 1;
  end
  assign rst = !por[16];
  assign keep_high = 1'b1;

  dtl_uart_core #(
    .FE_TM(FE_TM), .FE_TN(FE_TN), .FE_TR(FE_TR), .FE_TC(FE_TC), .A_BITS(A_BITS), .W_BITS(W_BITS), .M_MAX(M_MAX),
    .K_MAX(K_MAX), .DRAIN(DRAIN), .HAS_RL(HAS_RL), .RL_TM(RL_TM), .RL_TN(RL_TN), .RL_BITS(RL_BITS),
    .RL_ACC_BITS(RL_ACC_BITS), .LANES(LANES), .A_DEPTH(A_DEPTH), .G_DEPTH(G_DEPTH), .W_DEPTH(W_DEPTH),
    .B_DEPTH(B_DEPTH), .LFSR_MASK(LFSR_MASK), .BUS_BYTES(BUS_BYTES), .MEM_BYTES(MEM_BYTES), .RL_BASE(RL_BASE),
    .CLKS_PER_BIT(CLKS_PER_BIT)
  ) core (.clk, .rst, .uart_rx, .uart_tx, .status(led));
endmodule
