"""Post-training quantisation of a float graph to the int8 IR.

Scheme (``rq`` is :func:`hasp.sw.golden.requantize`, ``qm`` is
:func:`hasp.sw.golden.quantize_multiplier`, ``round`` is round half up):

* Activations: per tensor, asymmetric int8 from the calibration range ``[lo, hi]`` extended
  to contain 0: ``s = (hi - lo) / 255``, ``z = round(-128 - lo / s)``. MaxPool, Reshape,
  Slice and Clip outputs share their input's parameters; Sigmoid outputs use ``(1/256, -128)``
  and Tanh outputs ``(1/128, 0)``.
* Weights: symmetric per output channel, ``s_w[c] = max|W[c]| / 127``, ``q = round(W / s_w)``.
* Bias: int32 ``round(b[c] / (s_x s_w[c])) - z_x * sum(q_w[c])`` (the input zero point is
  folded in, so convolutions pad with ``z_x`` and multiply raw int8 values).
* Conv2d/Gemm: ``(mult[c], shift[c]) = qm(s_x s_w[c] / s_y)``; ``y = rq(acc, mult[c],
  shift[c], z_y, lo, hi)`` where ``lo``/``hi`` implement the fused ReLU/ReLU6/Clip.
* Add: ``(ma, shift) = qm(max(r_a, r_b))`` with ``r = s_in / s_y``; the other input gets
  ``round(r * 2**shift)``. Mul: ``qm(s_a s_b / s_y)``. Concat: ``qm(s_i / s_y)`` per input.
  AvgPool: ``qm(s_x / (s_y n))`` per window divisor ``n``.
* Sigmoid/Tanh: ``lut[q + 128] = clamp(round(f(s_x (q - z_x)) / s_y) + z_y)``.
* Constant operands of Add/Mul/Concat: per tensor from their own range.
"""
from __future__ import annotations

import math
from dataclasses import replace
from functools import singledispatch

import numpy as np

from hasp.sw import golden

from . import ops
from .execute import quantize_array, run_float
from .ir import (Add, AvgPool, Clip, Concat, Conv2d, FrontendError, Gemm, GlobalAvgPool, Graph,
                 MaxPool, Mul, Node, QParams, Reshape, Sigmoid, Slice, Softmax, Tanh, Tensor)

__all__ = ["calibrate", "quantize", "activation_qparams", "SIGMOID_QPARAMS", "TANH_QPARAMS"]

SIGMOID_QPARAMS = QParams(1.0 / 256, -128)
TANH_QPARAMS = QParams(1.0 / 128, 0)
_TIED = (MaxPool, Reshape, Slice, Clip)
_LUT_FN = {Sigmoid: lambda v: 1.0 / (1.0 + np.exp(-v)), Tanh: np.tanh}


def _round(x):
    return np.floor(np.asarray(x, np.float64) + 0.5)


def calibrate(graph: Graph, samples) -> dict[str, tuple[float, float]]:
    """Min and max of every tensor of ``graph`` over the calibration ``samples`` (an iterable
    of input dicts), evaluated with :func:`run_float`."""
    ranges: dict[str, tuple[float, float]] = {}

    def observe(name, v):
        lo, hi = float(np.min(v)), float(np.max(v))
        old = ranges.get(name, (lo, hi))
        ranges[name] = (min(lo, old[0]), max(hi, old[1]))

    count = 0
    for feeds in samples:
        count += 1
        run_float(graph, feeds, observe=observe)
    if not count:
        raise FrontendError(f"graph '{graph.name}': the calibration set is empty")
    return ranges


def activation_qparams(lo: float, hi: float) -> QParams:
    """Per-tensor asymmetric int8 parameters covering ``[min(lo, 0), max(hi, 0)]``."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255 if hi > lo else 1.0
    return QParams(float(scale), int(np.clip(_round(-128 - lo / scale), -128, 127)))


def _bounds(qp: QParams, vmin, vmax) -> dict:
    """Clamp bounds of a fused or stand-alone clamp to ``[vmin, vmax]``."""
    lo = -128 if vmin is None else int(np.clip(qp.zero_point + _round(vmin / qp.scale), -128, 127))
    hi = 127 if vmax is None else int(np.clip(qp.zero_point + _round(vmax / qp.scale), -128, 127))
    return {"lo": lo, "hi": hi}


def _multipliers(scales) -> tuple[list[int], list[int]]:
    pairs = [golden.quantize_multiplier(float(s)) for s in np.atleast_1d(scales)]
    return [m for m, _ in pairs], [s for _, s in pairs]


class _Quantizer:
    """State of one quantisation: the float graph, its ranges and the graph being built."""

    def __init__(self, graph: Graph, ranges: dict):
        self.g, self.ranges = graph, ranges
        self.q = Graph(graph.name, {}, [], list(graph.inputs), list(graph.outputs), True)

    def qp(self, name: str) -> QParams:
        return self.q.tensors[name].qparams

    def act(self, name: str, qp: QParams | None = None) -> None:
        """Add activation ``name`` as int8 (``qp`` defaults to its calibrated range)."""
        t = self.g.tensors[name]
        if t.is_const:
            qp = qp or activation_qparams(float(t.data.min()), float(t.data.max()))
            self.q.tensors[name] = Tensor(name, t.shape, "int8", quantize_array(t.data, qp), qp)
        elif name not in self.q.tensors:
            if name not in self.ranges:
                raise FrontendError(f"tensor '{name}' has no calibration range")
            self.q.tensors[name] = Tensor(name, t.shape, "int8", None,
                                          qp or activation_qparams(*self.ranges[name]))

    def const(self, node: Node, k: int, data: np.ndarray, dtype: str, qp: QParams) -> None:
        """Store quantised constant input ``k`` of ``node`` (renamed if shared and different)."""
        name = node.inputs[k]
        old = self.q.tensors.get(name)
        if old is not None and not np.array_equal(old.data, data):
            name = node.inputs[k] = f"{node.name}/{name}"
        self.q.tensors[name] = Tensor(name, data.shape, dtype, data, qp)

    def run(self) -> Graph:
        for name in self.g.inputs:
            self.act(name)
        for node in self.g.nodes:
            qn = Node(node.name, node.op, list(node.inputs), list(node.outputs))
            try:
                qn.params = _params(node.op, self, qn)
            except ValueError as e:
                raise FrontendError(f"node '{node.name}' ({node.op_type}): {e}") from None
            self.q.nodes.append(qn)
        return self.q


@singledispatch
def _params(op, qz: _Quantizer, node: Node) -> dict:
    raise FrontendError(f"node '{node.name}': cannot quantise {type(op).__name__}")


def _weighted(op, qz: _Quantizer, node: Node) -> dict:
    x, w, b = node.inputs
    qz.act(x)
    wf = np.asarray(qz.g.tensors[w].data, np.float64)
    bf = np.asarray(qz.g.tensors[b].data, np.float64)
    out = node.outputs[0]
    qz.act(out)
    sx, zx, qy = qz.qp(x).scale, qz.qp(x).zero_point, qz.qp(out)
    amax = np.abs(wf.reshape(len(wf), -1)).max(axis=1)
    sw = np.where(amax > 0, amax / 127, 1.0)
    wq = np.clip(_round(wf / sw.reshape((-1,) + (1,) * (wf.ndim - 1))), -127, 127)
    bq = _round(bf / (sx * sw)) - zx * wq.reshape(len(wq), -1).sum(axis=1)
    if np.abs(bq).max(initial=0) >= 2 ** 31:
        raise ValueError("quantised bias overflows int32")
    qz.const(node, 1, wq.astype(np.int8), "int8", QParams(tuple(sw.tolist()), 0, 0))
    qz.const(node, 2, bq.astype(np.int32), "int32", QParams(tuple((sx * sw).tolist()), 0, 0))
    mult, shift = _multipliers(sx * sw / qy.scale)
    p = {"mult": mult, "shift": shift, "zero_point": qy.zero_point,
         **_bounds(qy, op.act_min, op.act_max)}
    return {"pad_value": zx, **p} if isinstance(op, Conv2d) else p


_params.register(Conv2d, _weighted)
_params.register(Gemm, _weighted)


def _inputs(qz: _Quantizer, node: Node) -> list[QParams]:
    for i in node.inputs:
        qz.act(i)
    return [qz.qp(i) for i in node.inputs]


@_params.register
def _(op: Add, qz, node):
    qa, qb = _inputs(qz, node)
    qz.act(node.outputs[0])
    qy = qz.qp(node.outputs[0])
    ratios = [qa.scale / qy.scale, qb.scale / qy.scale]
    _, shift = golden.quantize_multiplier(max(ratios))
    mults = [int(_round(r * 2.0 ** shift)) for r in ratios]
    return {"in_zero_points": [qa.zero_point, qb.zero_point], "in_mults": mults,
            "shift": shift, "zero_point": qy.zero_point, **_bounds(qy, op.act_min, op.act_max)}


@_params.register
def _(op: Mul, qz, node):
    qa, qb = _inputs(qz, node)
    qz.act(node.outputs[0])
    qy = qz.qp(node.outputs[0])
    mult, shift = golden.quantize_multiplier(qa.scale * qb.scale / qy.scale)
    return {"in_zero_points": [qa.zero_point, qb.zero_point], "mult": mult, "shift": shift,
            "zero_point": qy.zero_point, **_bounds(qy, op.act_min, op.act_max)}


@_params.register
def _(op: Concat, qz, node):
    qins = _inputs(qz, node)
    qz.act(node.outputs[0])
    qy = qz.qp(node.outputs[0])
    mult, shift = _multipliers([q.scale / qy.scale for q in qins])
    return {"in_zero_points": [q.zero_point for q in qins], "mult": mult, "shift": shift,
            "zero_point": qy.zero_point}


def _pool(qz, node, counts) -> dict:
    qx, = _inputs(qz, node)
    qz.act(node.outputs[0])
    qy = qz.qp(node.outputs[0])
    divisors = sorted(int(c) for c in np.unique(counts))
    mult, shift = _multipliers([qx.scale / (qy.scale * n) for n in divisors])
    return {"in_zero_point": qx.zero_point, "divisors": divisors, "mult": mult,
            "shift": shift, "zero_point": qy.zero_point}


@_params.register
def _(op: AvgPool, qz, node):
    counts = ops.window_counts(qz.g.shape(node.inputs[0]), op.kernel, op.stride, op.padding,
                               op.count_include_pad)
    return _pool(qz, node, counts)


@_params.register
def _(op: GlobalAvgPool, qz, node):
    return _pool(qz, node, [math.prod(qz.g.shape(node.inputs[0])[2:])])


def _tied(op, qz, node) -> dict:
    qx, = _inputs(qz, node)
    qz.act(node.outputs[0], qx)
    return _bounds(qx, op.min, op.max) if isinstance(op, Clip) else {}


for _cls in _TIED:
    _params.register(_cls, _tied)


def _table(op, qz, node) -> dict:
    qx, = _inputs(qz, node)
    qy = SIGMOID_QPARAMS if isinstance(op, Sigmoid) else TANH_QPARAMS
    qz.act(node.outputs[0], qy)
    real = qx.scale * (np.arange(-128, 128) - qx.zero_point)
    return {"lut": quantize_array(_LUT_FN[type(op)](real), qy).astype(int).tolist()}


_params.register(Sigmoid, _table)
_params.register(Tanh, _table)


@_params.register
def _(op: Softmax, qz, node):
    out = node.outputs[0]
    if out not in qz.g.outputs or qz.g.consumers(out):
        raise ValueError("Softmax runs on the host and is only supported on graph outputs")
    qx, = _inputs(qz, node)
    qz.q.tensors[out] = replace(qz.g.tensors[out], dtype="float32", qparams=None)
    return {"host": True, "in_scale": qx.scale, "in_zero_point": qx.zero_point}


def quantize(graph: Graph, samples) -> Graph:
    """Post-training quantisation of a float ``graph`` to int8.

    Parameters
    ----------
    graph : Graph
        Float graph from :class:`~hasp.sw.frontend.builder.GraphBuilder` or
        :func:`~hasp.sw.frontend.onnx_import.load_onnx`.
    samples : iterable of dict
        Calibration inputs (input name -> float array of the input shape).

    Returns
    -------
    Graph
        The quantised graph (``quantized=True``): int8 activations with
        :class:`~hasp.sw.frontend.ir.QParams`, int8 weights, int32 biases and integer
        ``params`` on every node (see the module docstring).
    """
    return _Quantizer(graph, calibrate(graph, samples)).run()
