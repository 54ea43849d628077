"""Graph IR of the front end: plain dataclasses, shape inference and per-layer statistics.

A :class:`Graph` holds named :class:`Tensor` s and a topologically ordered list of
:class:`Node` s. Each node carries an *operator* -- a frozen dataclass such as
:class:`Conv2d` whose fields are the operator attributes -- plus, once the graph is quantised,
a ``params`` dict with the integer parameters the hardware needs (multipliers, shifts, zero
points, clamp bounds, lookup tables). The same classes describe the float graph produced by
the importer/builder and the quantised graph produced by :func:`hasp.sw.frontend.quantize`.

Layout conventions: activations are NCHW; convolution weights are ``(Cout, Cin/groups, kh,
kw)``; fully-connected (:class:`Gemm`) weights are ``(N, K)`` (output, input) and act on the
last axis of their input; paddings are ``(top, left, bottom, right)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from functools import singledispatch

import numpy as np

__all__ = ["FrontendError", "QParams", "Tensor", "Node", "Graph", "Layer",
           "Conv2d", "Gemm", "MaxPool", "AvgPool", "GlobalAvgPool", "Add", "Mul", "Concat",
           "Reshape", "Slice", "Clip", "Sigmoid", "Tanh", "Softmax", "OPERATORS",
           "infer_shapes", "node_macs", "layer_table", "totals", "op_fields"]


class FrontendError(ValueError):
    """A model cannot be imported, built or quantised. The message is one line naming the
    node (or input, or file) and the problem."""


# ----------------------------------------------------------------------------- tensors
@dataclass
class QParams:
    """Affine quantisation ``real = scale * (q - zero_point)``.

    ``scale`` is a float (per tensor) or a tuple of floats, one per slice along ``axis``
    (per channel, used for weights, whose ``zero_point`` is 0).
    """
    scale: float | tuple[float, ...]
    zero_point: int = 0
    axis: int | None = None


@dataclass
class Tensor:
    """A named tensor. ``data`` is set for constants (weights, biases, constant operands)."""
    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"            # "float32", "int8" or "int32"
    data: np.ndarray | None = None
    qparams: QParams | None = None

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return math.prod(self.shape)


# ----------------------------------------------------------------------------- operators
_Act = float | None


@dataclass(frozen=True)
class Conv2d:
    """2-D convolution; inputs ``(x, weight, bias)``. ``act_min``/``act_max`` is a fused
    clamp (ReLU: ``(0, None)``, ReLU6: ``(0, 6)``)."""
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    act_min: _Act = None
    act_max: _Act = None


@dataclass(frozen=True)
class Gemm:
    """Fully connected ``y = x @ weight.T + bias`` on the last axis; inputs ``(x, weight,
    bias)`` with weight ``(N, K)``. Fused clamp as in :class:`Conv2d`."""
    act_min: _Act = None
    act_max: _Act = None


@dataclass(frozen=True)
class MaxPool:
    """Max pooling over ``kernel`` windows; padded positions never win."""
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)


@dataclass(frozen=True)
class AvgPool:
    """Average pooling; the divisor counts padded positions only if ``count_include_pad``."""
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    count_include_pad: bool = False


@dataclass(frozen=True)
class GlobalAvgPool:
    """Mean over H and W, keeping them as size-1 axes."""


@dataclass(frozen=True)
class Add:
    """Element-wise ``a + b`` with numpy broadcasting and a fused clamp."""
    act_min: _Act = None
    act_max: _Act = None


@dataclass(frozen=True)
class Mul:
    """Element-wise ``a * b`` with numpy broadcasting and a fused clamp."""
    act_min: _Act = None
    act_max: _Act = None


@dataclass(frozen=True)
class Concat:
    """Concatenation along ``axis`` (non-negative)."""
    axis: int


@dataclass(frozen=True)
class Reshape:
    """Reshape (row-major) to ``shape``; covers Flatten, Squeeze and Unsqueeze."""
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Slice:
    """``x[..., start:stop, ...]`` along ``axis`` (step 1)."""
    axis: int
    start: int
    stop: int


@dataclass(frozen=True)
class Clip:
    """Clamp to ``[min, max]`` (``None``: unbounded). ReLU is ``Clip(0, None)``."""
    min: _Act = None
    max: _Act = None


@dataclass(frozen=True)
class Sigmoid:
    """Logistic function; a 256-entry lookup table once quantised."""


@dataclass(frozen=True)
class Tanh:
    """Hyperbolic tangent; a 256-entry lookup table once quantised."""


@dataclass(frozen=True)
class Softmax:
    """Softmax jointly over ``axes``. Only allowed on graph outputs; it runs on the host in
    float on the dequantised input (the accelerator has no softmax)."""
    axes: tuple[int, ...]


OPERATORS = {cls.__name__: cls for cls in (Conv2d, Gemm, MaxPool, AvgPool, GlobalAvgPool, Add,
                                             Mul, Concat, Reshape, Slice, Clip, Sigmoid, Tanh,
                                             Softmax)}
ACTIVATED = (Conv2d, Gemm, Add, Mul)          # operators with a fused clamp


# ----------------------------------------------------------------------------- graph
@dataclass
class Node:
    """One operator instance. ``params`` holds the integer parameters of a quantised node."""
    name: str
    op: object
    inputs: list[str]
    outputs: list[str]
    params: dict = field(default_factory=dict)

    @property
    def op_type(self) -> str:
        return type(self.op).__name__


@dataclass
class Graph:
    """A dataflow graph: tensors by name, nodes in topological order, input/output names."""
    name: str = "graph"
    tensors: dict[str, Tensor] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    quantized: bool = False

    def shape(self, name: str) -> tuple[int, ...]:
        return self.tensors[name].shape

    def producer(self, name: str) -> Node | None:
        """The node writing tensor ``name`` (None for inputs and constants)."""
        return next((n for n in self.nodes if name in n.outputs), None)

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.nodes if name in n.inputs]

    def activations(self, node: Node) -> list[str]:
        """The non-constant inputs of ``node``."""
        return [i for i in node.inputs if not self.tensors[i].is_const]


# ----------------------------------------------------------------------------- shapes
def _window_out(size, k, s, pad0, pad1, d, what):
    out = (size + pad0 + pad1 - d * (k - 1) - 1) // s + 1
    if out < 1:
        raise FrontendError(f"{what} window {k} (dilation {d}) does not fit input size {size} "
                            f"with padding {pad0}+{pad1}")
    return out


def _pool_shape(x, kernel, stride, padding, dilation=(1, 1)):
    if len(x) != 4:
        raise FrontendError(f"expects an NCHW input, got shape {x}")
    h = _window_out(x[2], kernel[0], stride[0], padding[0], padding[2], dilation[0], "height:")
    w = _window_out(x[3], kernel[1], stride[1], padding[1], padding[3], dilation[1], "width:")
    return (x[0], x[1], h, w)


@singledispatch
def _shapes(op, ins):
    raise FrontendError(f"no shape rule for operator {type(op).__name__}")


@_shapes.register
def _(op: Conv2d, ins):
    x, w, b = ins
    if len(w) != 4:
        raise FrontendError(f"weight must be (Cout, Cin/groups, kh, kw), got {w}")
    if len(x) != 4 or x[1] != w[1] * op.groups or w[0] % op.groups:
        raise FrontendError(f"input {x} does not match weight {w} with groups={op.groups}")
    if b != (w[0],):
        raise FrontendError(f"bias shape {b} does not match {w[0]} output channels")
    n, _, h, wd = _pool_shape(x, w[2:], op.stride, op.padding, op.dilation)
    return [(n, w[0], h, wd)]


@_shapes.register
def _(op: Gemm, ins):
    x, w, b = ins
    if len(w) != 2 or not x or x[-1] != w[1] or b != (w[0],):
        raise FrontendError(f"input {x}, weight {w} and bias {b} do not match (weight is (N, K))")
    return [x[:-1] + (w[0],)]


@_shapes.register
def _(op: MaxPool, ins):
    return [_pool_shape(ins[0], op.kernel, op.stride, op.padding, op.dilation)]


@_shapes.register
def _(op: AvgPool, ins):
    return [_pool_shape(ins[0], op.kernel, op.stride, op.padding)]


@_shapes.register
def _(op: GlobalAvgPool, ins):
    x = ins[0]
    return [_pool_shape(x, x[2:], (1, 1), (0, 0, 0, 0))]


def _broadcast(op, ins):
    try:
        return [tuple(np.broadcast_shapes(*ins))]
    except ValueError:
        raise FrontendError(f"shapes {ins[0]} and {ins[1]} do not broadcast") from None


_shapes.register(Add, _broadcast)
_shapes.register(Mul, _broadcast)


@_shapes.register
def _(op: Concat, ins):
    ref = ins[0]
    if not 0 <= op.axis < len(ref):
        raise FrontendError(f"axis {op.axis} out of range for rank {len(ref)}")
    for s in ins[1:]:
        if len(s) != len(ref) or any(a != b for i, (a, b) in enumerate(zip(s, ref))
                                     if i != op.axis):
            raise FrontendError(f"shapes {ref} and {s} cannot be concatenated on axis {op.axis}")
    return [ref[:op.axis] + (sum(s[op.axis] for s in ins),) + ref[op.axis + 1:]]


@_shapes.register
def _(op: Reshape, ins):
    if math.prod(op.shape) != math.prod(ins[0]) or min(op.shape, default=1) < 1:
        raise FrontendError(f"cannot reshape {ins[0]} to {op.shape}")
    return [tuple(op.shape)]


@_shapes.register
def _(op: Slice, ins):
    x = ins[0]
    if not (0 <= op.axis < len(x) and 0 <= op.start < op.stop <= x[op.axis]):
        raise FrontendError(f"slice [{op.start}:{op.stop}] on axis {op.axis} is outside {x}")
    return [x[:op.axis] + (op.stop - op.start,) + x[op.axis + 1:]]


@_shapes.register
def _(op: Softmax, ins):
    if any(not 0 <= a < len(ins[0]) for a in op.axes):
        raise FrontendError(f"softmax axes {op.axes} out of range for {ins[0]}")
    return [ins[0]]


def _same(op, ins):
    return [ins[0]]


for _cls in (Clip, Sigmoid, Tanh):
    _shapes.register(_cls, _same)


def infer_shapes(op, in_shapes) -> list[tuple[int, ...]]:
    """Output shapes of ``op`` applied to inputs of ``in_shapes``.

    Raises
    ------
    FrontendError
        If the shapes are inconsistent (the caller prefixes the node name).
    """
    return _shapes(op, [tuple(int(d) for d in s) for s in in_shapes])


def node_macs(graph: Graph, node: Node) -> int:
    """Multiply-accumulates of one inference of ``node`` (convolutions and Gemm only)."""
    if isinstance(node.op, (Conv2d, Gemm)):
        w = graph.shape(node.inputs[1])
        return math.prod(graph.shape(node.outputs[0])) * math.prod(w[1:])
    return 0


# ----------------------------------------------------------------------------- statistics
@dataclass
class Layer:
    """One row of the layer table. Sizes are in bytes of the int8 deployment: weights and
    constant operands 1 byte per element, biases 4 bytes; ``act_bytes`` counts the int8
    activation inputs plus outputs."""
    name: str
    op: str
    in_shapes: list[tuple[int, ...]]
    out_shapes: list[tuple[int, ...]]
    macs: int
    weights: int
    weight_bytes: int
    act_bytes: int


def layer_table(graph: Graph) -> list[Layer]:
    """Per-node shapes, MACs, weight and activation sizes of ``graph``."""
    rows = []
    for n in graph.nodes:
        consts = [graph.tensors[i] for i in n.inputs if graph.tensors[i].is_const]
        wbytes = sum(t.size * (4 if isinstance(n.op, (Conv2d, Gemm)) and k == 1 else 1)
                     for k, t in enumerate(consts))
        acts = graph.activations(n)
        rows.append(Layer(n.name, n.op_type, [graph.shape(i) for i in acts],
                          [graph.shape(o) for o in n.outputs], node_macs(graph, n),
                          sum(t.size for t in consts), wbytes,
                          sum(graph.tensors[t].size for t in acts + n.outputs)))
    return rows


def totals(rows: list[Layer]) -> dict[str, int]:
    """Sums over a :func:`layer_table`: layers, MACs, weights, weight and activation bytes."""
    return {"layers": len(rows), "macs": sum(r.macs for r in rows),
            "weights": sum(r.weights for r in rows),
            "weight_bytes": sum(r.weight_bytes for r in rows),
            "act_bytes": sum(r.act_bytes for r in rows)}


def op_fields(op) -> dict:
    """The attribute values of operator ``op`` as a dict (tuples become lists)."""
    return {f.name: (list(v) if isinstance(v := getattr(op, f.name), tuple) else v)
            for f in fields(op)}
