# Clock constraint of a HASP design for SDC-based flows (nextpnr --sdc, Lattice Radiant,
# Synopsys/OpenSTA/OpenROAD). The RTL has one clock domain, "sync", whose clock port is `clk`
# in every generated top (hasp gen, hasp synth harness, board top).
#
# 100 MHz: the whole-chip target on ECP5-85F speed grade 6. Blocks (PE array) target 150 MHz:
# change the period to 6.667.
create_clock -name clk -period 10.000 [get_ports clk]

# The reset is synchronous; the board top synchronises the button first.
# Board I/O (UART, LEDs, buttons) is asynchronous to clk.
set_false_path -from [get_ports rst_btn]
set_false_path -from [get_ports uart_rx]
set_false_path -to [get_ports {uart_tx led*}]
