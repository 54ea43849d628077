"""HASP: RTL generator, compiler and verification suite for multi-core NN accelerators."""

__version__ = "0.1.0"
