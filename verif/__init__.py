"""HASP verification: cocotb runner helpers and testbenches."""
