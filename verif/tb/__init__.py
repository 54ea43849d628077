"""cocotb testbench modules (loaded by the simulator)."""
