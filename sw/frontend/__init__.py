"""Front end: ONNX / Python builder -> quantised graph IR -> bit-exact int8 golden model.

Typical use::

    from hasp.sw import frontend as fe
    g = fe.load_onnx("model.onnx")                 # or fe.GraphBuilder(...).build()
    q = fe.quantize(g, calibration_inputs)         # list of {input name: float array}
    y = fe.run_dequantized(q, {"x": x})            # int8 golden model, dequantised outputs
    fe.save(q, "model.q.npz")

See ``docs/frontend.md`` for the IR, the quantisation scheme and the CLI.
"""
from .ir import (FrontendError, QParams, Tensor, Node, Graph, Layer, OPERATORS, Conv2d, Gemm,
                 MaxPool, AvgPool, GlobalAvgPool, Add, Mul, Concat, Reshape, Slice, Clip,
                 Sigmoid, Tanh, Softmax, infer_shapes, node_macs, layer_table, totals)
from .builder import GraphBuilder, optimize
from .execute import (run_float, run_quantized, run_dequantized, quantize_array,
                      dequantize_array)
from .quantize import calibrate, quantize, activation_qparams
from .serialize import save, load
from .onnx_import import load_onnx, unsupported_operators
from .check import Agreement, agreement

__all__ = ["FrontendError", "QParams", "Tensor", "Node", "Graph", "Layer", "OPERATORS",
           "Conv2d", "Gemm", "MaxPool", "AvgPool", "GlobalAvgPool", "Add", "Mul", "Concat",
           "Reshape", "Slice", "Clip", "Sigmoid", "Tanh", "Softmax", "infer_shapes", "node_macs",
           "layer_table", "totals", "GraphBuilder", "optimize", "run_float", "run_quantized",
           "run_dequantized", "quantize_array", "dequantize_array", "calibrate", "quantize",
           "activation_qparams", "save", "load", "load_onnx", "unsupported_operators",
           "Agreement", "agreement"]
