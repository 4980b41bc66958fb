// 8N1 UART receiver (CLKS_PER_BIT clock cycles per bit): the board's host link, PC to FPGA.
module uart_rx #(
  parameter int CLKS_PER_BIT = 434
) (
  input  logic       clk,
  input  logic       rst,
  input  logic       rx,
  output logic       valid,  // one cycle per received byte
  output logic [7:0] data
);
  localparam int CW = $clog2(CLKS_PER_BIT + 1);
  logic [1:0]    sync;  // two flip-flops: rx comes from another clock domain
  logic [CW-1:0] count;
  logic [3:0]    bit_index;
  logic          busy;

  always_ff @(posedge clk) begin
    sync <= {sync[0], rx};
    valid <= 1'b0;
    if (rst) begin
      busy <= 1'b0;
      sync <= 2'b11;
    end else if (!busy) begin
      if (!sync[1]) begin  // start bit: sample every bit in its middle from here
        busy <= 1'b1;
        count <= CW'(CLKS_PER_BIT / 2);
        bit_index <= '0;
      end
    end else if (count != 0) begin
      count <= count - 1;
    end else begin
      count <= CW'(CLKS_PER_BIT - 1);
      bit_index <= bit_index + 1;
      if (bit_index == 0) begin
        if (sync[1]) busy <= 1'b0;  // a glitch, not a start bit
      end else if (bit_index <= 8) begin
        data <= {sync[1], data[7:1]};
      end else begin
        busy <= 1'b0;
        valid <= sync[1];  // a byte counts only with its stop bit
      end
    end
  end
endmodule
