# Board build on the ULX3S: the chip runs on the 25 MHz oscillator (no PLL).
create_clock -name clk -period 40.000 [get_ports clk]
