// 8N1 UART transmitter (CLKS_PER_BIT clock cycles per bit): the board's host link, FPGA to PC.
module uart_tx #(
  parameter int CLKS_PER_BIT = 434
) (
  input  logic       clk,
  input  logic       rst,
  input  logic       send,   // accepted when ready
  input  logic [7:0] data,
  output logic       ready,
  output logic       tx
);
  localparam int CW = $clog2(CLKS_PER_BIT + 1);
  logic [9:0]    shift;  // stop, data[7:0], start: sent from bit 0
  logic [3:0]    left;
  logic [CW-1:0] count;

  assign ready = (left == 0) && (count == 0);
  always_ff @(posedge clk) begin
    if (rst) begin
      left <= '0;
      count <= '0;
      tx <= 1'b1;
    end else if (count != 0) begin
      count <= count - 1;  // hold the current bit (the stop bit too) for a whole bit time
    end else if (left != 0) begin
      tx <= shift[0];
      shift <= {1'b1, shift[9:1]};
      count <= CW'(CLKS_PER_BIT - 1);
      left <= left - 1;
    end else if (send) begin
      shift <= {1'b1, data, 1'b0};
      left <= 4'd10;
    end
  end
endmodule
