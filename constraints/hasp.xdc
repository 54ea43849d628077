# Clock constraint of a HASP design for Xilinx Vivado (XDC is Tcl/SDC syntax). Same meaning as
# constraints/hasp.sdc: one clock `clk`, 100 MHz chip target (6.667 ns for PE-array-only runs).
create_clock -name clk -period 10.000 [get_ports clk]
set_false_path -from [get_ports -quiet rst_btn]
set_false_path -from [get_ports -quiet uart_rx]
set_false_path -to [get_ports -quiet {uart_tx led[*]}]
