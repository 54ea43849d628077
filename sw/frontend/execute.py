"""Executors of the graph IR: a float64 reference and the bit-exact int8 golden model.

:func:`run_float` evaluates a float graph (used for calibration and to check the importer
against onnxruntime). :func:`run_quantized` evaluates a quantised graph with the integer
operators of :mod:`hasp.sw.frontend.ops`, i.e. exactly what the hardware computes.
"""
from __future__ import annotations

from functools import singledispatch

import numpy as np

from . import ops
from .ir import (Add, AvgPool, Clip, Concat, Conv2d, FrontendError, Gemm, GlobalAvgPool,
                 Graph, MaxPool, Mul, Node, QParams, Reshape, Sigmoid, Slice, Softmax, Tanh)

__all__ = ["run_float", "run_quantized", "run_dequantized", "quantize_array",
           "dequantize_array", "softmax"]


def _run(graph: Graph, feeds: dict, step, all_tensors: bool, observe=None) -> dict:
    """Evaluate ``graph`` node by node with ``step(op, node, args) -> outputs``; tensors are
    dropped after their last use unless ``all_tensors``; ``observe(name, value)`` sees each."""
    env = {}
    for name in graph.inputs:
        if name not in feeds:
            raise FrontendError(f"input '{name}' is not given")
        x = np.asarray(feeds[name])
        if x.shape != graph.shape(name):
            raise FrontendError(f"input '{name}' has shape {x.shape}, expected {graph.shape(name)}")
        env[name] = x
        if observe:
            observe(name, x)
    last = {i: k for k, n in enumerate(graph.nodes) for i in n.inputs}
    for k, node in enumerate(graph.nodes):
        args = [env[i] if i in env else graph.tensors[i].data for i in node.inputs]
        for name, v in zip(node.outputs, step(node.op, node, args)):
            env[name] = v
            if observe:
                observe(name, v)
        if not all_tensors:
            for i in node.inputs:
                if last[i] == k and i not in graph.outputs:
                    env.pop(i, None)
    return env if all_tensors else {o: env[o] for o in graph.outputs}


# ----------------------------------------------------------------------------- float model
def _clamp(y, op):
    lo = -np.inf if op.act_min is None else op.act_min
    hi = np.inf if op.act_max is None else op.act_max
    return np.clip(y, lo, hi)


def softmax(x, axes) -> np.ndarray:
    """Numerically stable softmax over ``axes`` (the host operator)."""
    e = np.exp(x - x.max(axis=axes, keepdims=True))
    return e / e.sum(axis=axes, keepdims=True)


@singledispatch
def _float(op, node: Node, args):
    raise FrontendError(f"node '{node.name}': no float implementation of {type(op).__name__}")


@_float.register
def _(op: Conv2d, node, args):
    x, w, b = (np.asarray(a, np.float64) for a in args)
    acc = ops.conv2d_acc(x, w, b, op.stride, op.padding, op.dilation, op.groups, 0.0,
                         lambda a, m, c: a @ m + c)
    return [_clamp(acc, op)]


@_float.register
def _(op: Gemm, node, args):
    x, w, b = (np.asarray(a, np.float64) for a in args)
    return [_clamp(x @ w.T + b, op)]


@_float.register
def _(op: MaxPool, node, args):
    x = ops.pad(np.asarray(args[0], np.float64), op.padding, -np.inf)
    return [ops.windows(x, op.kernel, op.stride, op.dilation).max(axis=(4, 5))]


@_float.register
def _(op: AvgPool, node, args):
    x = np.asarray(args[0], np.float64)
    s = ops.windows(ops.pad(x, op.padding, 0.0), op.kernel, op.stride).sum(axis=(4, 5))
    return [s / ops.window_counts(x.shape, op.kernel, op.stride, op.padding, op.count_include_pad)]


@_float.register
def _(op: GlobalAvgPool, node, args):
    return [np.asarray(args[0], np.float64).mean(axis=(2, 3), keepdims=True)]


@_float.register
def _(op: Add, node, args):
    return [_clamp(np.add(*args, dtype=np.float64), op)]


@_float.register
def _(op: Mul, node, args):
    return [_clamp(np.multiply(*args, dtype=np.float64), op)]


@_float.register
def _(op: Concat, node, args):
    return [np.concatenate(args, axis=op.axis)]


@_float.register
def _(op: Reshape, node, args):
    return [np.reshape(args[0], op.shape)]


@_float.register
def _(op: Slice, node, args):
    return [np.take(args[0], np.arange(op.start, op.stop), axis=op.axis)]


@_float.register
def _(op: Clip, node, args):
    lo = -np.inf if op.min is None else op.min
    hi = np.inf if op.max is None else op.max
    return [np.clip(np.asarray(args[0], np.float64), lo, hi)]


@_float.register
def _(op: Sigmoid, node, args):
    return [1.0 / (1.0 + np.exp(-np.asarray(args[0], np.float64)))]


@_float.register
def _(op: Tanh, node, args):
    return [np.tanh(np.asarray(args[0], np.float64))]


@_float.register
def _(op: Softmax, node, args):
    return [softmax(np.asarray(args[0], np.float64), op.axes)]


def run_float(graph: Graph, feeds: dict, all_tensors: bool = False,
              observe=None) -> dict[str, np.ndarray]:
    """Evaluate a float graph in float64.

    Parameters
    ----------
    graph : Graph
        A float graph (from the builder or the ONNX importer).
    feeds : dict
        Input name -> array of the input's shape.
    all_tensors : bool
        Return every intermediate tensor too.
    observe : callable, optional
        ``observe(name, value)`` is called for every input and computed tensor (calibration).

    Returns
    -------
    dict
        Output name -> float64 array.
    """
    if graph.quantized:
        raise FrontendError(f"graph '{graph.name}' is quantised; use run_quantized")
    return _run(graph, feeds, _float, all_tensors, observe)


# ----------------------------------------------------------------------------- int8 model
def _bounds(p):
    return p.get("lo", -128), p.get("hi", 127)


@singledispatch
def _int(op, node: Node, args):
    raise FrontendError(f"node '{node.name}': no int8 implementation of {type(op).__name__}")


@_int.register
def _(op: Conv2d, node, args):
    p = node.params
    return [ops.conv2d(*args, op.stride, op.padding, op.dilation, op.groups, p["pad_value"],
                       p["mult"], p["shift"], p["zero_point"], *_bounds(p))]


@_int.register
def _(op: Gemm, node, args):
    p = node.params
    return [ops.fully_connected(*args, p["mult"], p["shift"], p["zero_point"], *_bounds(p))]


@_int.register
def _(op: MaxPool, node, args):
    return [ops.max_pool(args[0], op.kernel, op.stride, op.padding, op.dilation)]


def _avg(x, p, kernel, stride, padding, count_include_pad):
    return ops.avg_pool(x, p["in_zero_point"], kernel, stride, padding, count_include_pad,
                        p["divisors"], p["mult"], p["shift"], p["zero_point"])


@_int.register
def _(op: AvgPool, node, args):
    return [_avg(args[0], node.params, op.kernel, op.stride, op.padding, op.count_include_pad)]


@_int.register
def _(op: GlobalAvgPool, node, args):
    x = args[0]
    return [_avg(x, node.params, x.shape[2:], (1, 1), (0, 0, 0, 0), False)]


@_int.register
def _(op: Add, node, args):
    p = node.params
    return [ops.add(*args, *p["in_zero_points"], *p["in_mults"], p["shift"], p["zero_point"],
                    *_bounds(p))]


@_int.register
def _(op: Mul, node, args):
    p = node.params
    return [ops.mul(*args, *p["in_zero_points"], p["mult"], p["shift"], p["zero_point"],
                    *_bounds(p))]


@_int.register
def _(op: Concat, node, args):
    p = node.params
    parts = [ops.rescale(x, z, m, s, p["zero_point"])
             for x, z, m, s in zip(args, p["in_zero_points"], p["mult"], p["shift"])]
    return [np.concatenate(parts, axis=op.axis)]


@_int.register
def _(op: Clip, node, args):
    return [ops.clamp(args[0], *_bounds(node.params))]


@_int.register
def _(op: Sigmoid, node, args):
    return [ops.lut(args[0], node.params["lut"])]


_int.register(Tanh, _int.dispatch(Sigmoid))
_int.register(Reshape, _float.dispatch(Reshape))
_int.register(Slice, _float.dispatch(Slice))


@_int.register
def _(op: Softmax, node, args):
    qp = node.params
    x = qp["in_scale"] * (np.asarray(args[0], np.float64) - qp["in_zero_point"])
    return [softmax(x, op.axes)]


def _to_int8(outs):
    return [o if o.dtype.kind == "f" else o.astype(np.int8) for o in outs]


def run_quantized(qgraph: Graph, feeds: dict, all_tensors: bool = False) -> dict[str, np.ndarray]:
    """Evaluate a quantised graph bit-exactly as the hardware does.

    Parameters
    ----------
    qgraph : Graph
        A graph from :func:`hasp.sw.frontend.quantize`.
    feeds : dict
        Input name -> int8 array (see :func:`quantize_array`).
    all_tensors : bool
        Return every intermediate tensor too.

    Returns
    -------
    dict
        Output name -> int8 array (float64 for host Softmax outputs).
    """
    if not qgraph.quantized:
        raise FrontendError(f"graph '{qgraph.name}' is not quantised; use run_float")
    return _run(qgraph, feeds, lambda op, node, args: _to_int8(_int(op, node, args)), all_tensors)


# ----------------------------------------------------------------------------- conversions
def quantize_array(x, qp: QParams) -> np.ndarray:
    """Host-side quantisation ``clamp(floor(x / scale + 0.5) + zero_point)`` to int8."""
    q = np.floor(np.asarray(x, np.float64) / qp.scale + 0.5) + qp.zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize_array(q, qp: QParams | None) -> np.ndarray:
    """``scale * (q - zero_point)``; float tensors (``qp`` None) pass through."""
    q = np.asarray(q, np.float64)
    return q if qp is None else qp.scale * (q - qp.zero_point)


def run_dequantized(qgraph: Graph, feeds: dict) -> dict[str, np.ndarray]:
    """Quantise float ``feeds``, run :func:`run_quantized`, dequantise the outputs."""
    q = {k: quantize_array(feeds[k], qgraph.tensors[k].qparams) for k in qgraph.inputs}
    out = run_quantized(qgraph, q)
    return {k: dequantize_array(v, qgraph.tensors[k].qparams) for k, v in out.items()}
