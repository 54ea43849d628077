"""HASP hardware: Amaranth components."""
