"""ONNX importer: an ``onnx`` model into the float graph IR, through the builder.

Constant sub-graphs (initialisers, ``Constant``, ``ConstantOfShape``, ``Shape`` of a static
tensor, and any operator whose inputs are all constant) are folded with the ONNX reference
evaluator; ``Dropout`` and ``Identity`` are aliases; every other operator maps onto a
:class:`~hasp.sw.frontend.builder.GraphBuilder` call (see :data:`SUPPORTED`).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .builder import GraphBuilder
from .ir import FrontendError, Graph

__all__ = ["load_onnx", "load_model", "unsupported_operators", "SUPPORTED"]

_ALIASES = ("Identity", "Dropout")
_SHAPE_OPS = ("Shape",)


def load_model(model):
    """An ``onnx.ModelProto`` from a path, bytes or a ModelProto, checked with the ONNX
    checker. Raises :class:`FrontendError` for unreadable, truncated or non-ONNX input."""
    import onnx
    if isinstance(model, onnx.ModelProto):
        proto, where = model, model.graph.name or "model"
    else:
        where = str(model)
        try:
            proto = onnx.load(where) if not isinstance(model, bytes) else \
                onnx.load_model_from_string(model)
        except OSError as e:
            raise FrontendError(f"{where}: cannot read the file ({e.strerror or e})") from None
        except Exception as e:  # protobuf DecodeError and friends
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise FrontendError(f"{where}: not an ONNX model or truncated ({msg})") from None
    if not proto.graph.node:
        raise FrontendError(f"{where}: not an ONNX model or truncated (the graph has no nodes)")
    try:
        onnx.checker.check_model(proto)
    except Exception as e:
        msg = str(e).strip().splitlines()[0]
        raise FrontendError(f"{where}: invalid ONNX model ({msg})") from None
    return proto


def _opset(proto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 1)


def _attrs(node) -> dict:
    from onnx import helper
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _label(node) -> str:
    return node.name or next((o for o in node.output if o), node.op_type)


def _const_names(proto) -> tuple[set[str], dict[str, list[str]]]:
    """Names of constant tensors, and op type -> nodes of unsupported non-constant nodes."""
    const = {i.name for i in proto.graph.initializer}
    bad: dict[str, list[str]] = {}
    for n in proto.graph.node:
        if n.op_type in _SHAPE_OPS or all(i in const for i in n.input if i):
            const.update(n.output)
        elif n.domain not in ("", "ai.onnx") or n.op_type not in SUPPORTED:
            bad.setdefault(n.op_type, []).append(_label(n))
    return const, bad


def unsupported_operators(model) -> dict[str, list[str]]:
    """Operator type -> names of the nodes that the importer cannot map (empty if none)."""
    return _const_names(load_model(model))[1]


# ----------------------------------------------------------------------------- handlers
class _Ctx:
    """Import state: the builder, the opset and the current node's label."""

    def __init__(self, b: GraphBuilder, opset: int, used: set[str]):
        self.b, self.opset, self.used, self.where = b, opset, used, ""

    def fail(self, msg: str):
        raise FrontendError(f"node '{self.where}': {msg}")

    def const(self, v, what: str) -> np.ndarray:
        if not isinstance(v, np.ndarray):
            self.fail(f"{what} must be a constant (initialiser), not a computed tensor")
        return v

    def shape(self, v) -> tuple[int, ...]:
        return tuple(v.shape) if isinstance(v, np.ndarray) else self.b.shape(v)


def _window_args(ctx, a, shape, kernel):
    """Strides, pads (top, left, bottom, right) and dilations of Conv/MaxPool/AveragePool."""
    if len(kernel) != 2 or len(shape) != 4:
        ctx.fail(f"only 2-D windows on NCHW inputs are supported (kernel {tuple(kernel)}, "
                 f"input {shape})")
    s = tuple(a.get("strides", (1, 1)))
    d = tuple(a.get("dilations", (1, 1)))
    auto = a.get("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        p = tuple(a.get("pads", (0, 0, 0, 0)))
    elif auto == "VALID":
        p = (0, 0, 0, 0)
    else:
        total = [max((math.ceil(n / st) - 1) * st + (k - 1) * dl + 1 - n, 0)
                 for n, k, st, dl in zip(shape[2:], kernel, s, d)]
        first = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]
        p = (first[0], first[1], total[0] - first[0], total[1] - first[1])
    if a.get("ceil_mode", 0):
        for n, k, st, dl, p0, p1 in zip(shape[2:], kernel, s, d, p[:2], p[2:]):
            span = n + p0 + p1 - dl * (k - 1) - 1
            if span % st:
                ctx.fail("ceil_mode=1 with a partial last window is not supported")
    return s, p, d


def _conv(ctx, n, a, ins):
    w = ctx.const(ins[1], "the weight")
    if w.ndim != 4:
        ctx.fail(f"only 2-D convolutions are supported (weight rank {w.ndim})")
    s, p, d = _window_args(ctx, a, ctx.shape(ins[0]), w.shape[2:])
    bias = ctx.const(ins[2], "the bias") if len(ins) > 2 and ins[2] is not None else None
    return [ctx.b.conv2d(ins[0], w, bias, s, p, d, a.get("group", 1), name=n.output[0])]


def _gemm(ctx, n, a, ins):
    if a.get("transA", 0):
        ctx.fail("transA=1 is not supported")
    bm = ctx.const(ins[1], "B")
    w = (bm if a.get("transB", 0) else bm.T) * a.get("alpha", 1.0)
    bias = None
    if len(ins) > 2 and ins[2] is not None:
        c = ctx.const(ins[2], "C") * a.get("beta", 1.0)
        if c.size not in (1, w.shape[0]) or c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1):
            ctx.fail(f"bias C of shape {c.shape} is not a per-output vector")
        bias = np.broadcast_to(c.reshape(-1), w.shape[:1])
    return [ctx.b.gemm(ins[0], w, bias, name=n.output[0])]


def _matmul(ctx, n, a, ins):
    b = ctx.const(ins[1], "the second MatMul operand")
    if b.ndim != 2:
        ctx.fail(f"the constant MatMul operand must be 2-D, not {b.shape}")
    return [ctx.b.matmul(ins[0], b, name=n.output[0])]


def _bound(v):
    v = None if v is None else float(np.asarray(v).reshape(-1)[0])
    return None if v is None or abs(v) >= 3e38 or np.isinf(v) else v


def _clip(ctx, n, a, ins):
    if ctx.opset < 11:
        lo, hi = a.get("min"), a.get("max")
    else:
        lo, hi = [ctx.const(v, "the clip bound") if v is not None else None
                  for v in (ins[1:] + [None, None])[:2]]
    return [ctx.b.clip(ins[0], _bound(lo), _bound(hi), name=n.output[0])]


def _no_extra_outputs(ctx, n, what):
    if any(o in ctx.used for o in n.output[1:]):
        ctx.fail(f"the {what} output is not supported")


def _maxpool(ctx, n, a, ins):
    _no_extra_outputs(ctx, n, "Indices")
    if a.get("storage_order", 0):
        ctx.fail("storage_order=1 is not supported")
    k = a["kernel_shape"]
    s, p, d = _window_args(ctx, a, ctx.shape(ins[0]), k)
    return [ctx.b.max_pool(ins[0], k, s, p, d, name=n.output[0])]


def _avgpool(ctx, n, a, ins):
    k = a["kernel_shape"]
    s, p, d = _window_args(ctx, a, ctx.shape(ins[0]), k)
    if d != (1, 1):
        ctx.fail("dilated average pooling is not supported")
    return [ctx.b.avg_pool(ins[0], k, s, p, a.get("count_include_pad", 0), name=n.output[0])]


def _sum(ctx, n, a, ins):
    fn = ctx.b.mul if n.op_type == "Mul" else ctx.b.add
    acc = ins[0]
    for k, v in enumerate(ins[1:], 1):
        acc = fn(acc, v, name=n.output[0] if k == len(ins) - 1 else f"{n.output[0]}/{k}")
    return [acc]


def _reshape_to(ctx, n, x, shape):
    return [ctx.b.reshape(x, shape, name=n.output[0])]


def _reshape(ctx, n, a, ins):
    shape = list(a["shape"]) if ctx.opset < 5 else \
        [int(v) for v in ctx.const(ins[1], "the target shape")]
    src = ctx.shape(ins[0])
    if not a.get("allowzero", 0):
        shape = [src[i] if v == 0 else v for i, v in enumerate(shape)]
    return _reshape_to(ctx, n, ins[0], shape)


def _flatten(ctx, n, a, ins):
    s = ctx.shape(ins[0])
    ax = a.get("axis", 1) % (len(s) + 1)
    return _reshape_to(ctx, n, ins[0], (math.prod(s[:ax]), math.prod(s[ax:])))


def _axes(ctx, a, ins):
    if "axes" in a:
        return list(a["axes"])
    return None if len(ins) < 2 or ins[1] is None else \
        [int(v) for v in ctx.const(ins[1], "axes")]


def _squeeze(ctx, n, a, ins):
    s = ctx.shape(ins[0])
    axes = _axes(ctx, a, ins)
    axes = [i for i, d in enumerate(s) if d == 1] if axes is None else [x % len(s) for x in axes]
    return _reshape_to(ctx, n, ins[0], [d for i, d in enumerate(s) if i not in axes])


def _unsqueeze(ctx, n, a, ins):
    s = list(ctx.shape(ins[0]))
    axes = _axes(ctx, a, ins) or []
    rank = len(s) + len(axes)
    for ax in sorted(x % rank for x in axes):
        s.insert(ax, 1)
    return _reshape_to(ctx, n, ins[0], s)


def _concat(ctx, n, a, ins):
    return [ctx.b.concat(ins, a["axis"], name=n.output[0])]


def _softmax(ctx, n, a, ins):
    rank = len(ctx.shape(ins[0]))
    if ctx.opset < 13:
        axes = tuple(range(a.get("axis", 1) % rank, rank))
    else:
        axes = (a.get("axis", -1) % rank,)
    return [ctx.b.softmax(ins[0], axes, name=n.output[0])]


def _batchnorm(ctx, n, a, ins):
    _no_extra_outputs(ctx, n, "training statistics")
    if a.get("training_mode", 0) or not a.get("spatial", 1):
        ctx.fail("only inference-mode spatial BatchNormalization is supported")
    scale, bias, mean, var = (ctx.const(v, "BatchNormalization parameters") for v in ins[1:5])
    return [ctx.b.batch_norm(ins[0], scale, bias, mean, var, a.get("epsilon", 1e-5),
                             name=n.output[0])]


def _lstm(ctx, n, a, ins):
    x, w, r, b, lens, h0, c0, peep = (list(ins) + [None] * 8)[:8]
    w, r = ctx.const(w, "W"), ctx.const(r, "R")
    b = None if b is None else ctx.const(b, "B")
    direction = a.get("direction", "forward")
    ndir = 2 if direction == "bidirectional" else 1
    seq, batch = ctx.shape(x)[:2]
    if a.get("layout", 0) or a.get("input_forget", 0) or "clip" in a:
        ctx.fail("layout=1, input_forget=1 and clip are not supported")
    if [s.lower() for s in a.get("activations", ["Sigmoid", "Tanh", "Tanh"] * ndir)] != \
            ["sigmoid", "tanh", "tanh"] * ndir:
        ctx.fail(f"only the default activations are supported, not {a['activations']}")
    if lens is not None and not np.all(ctx.const(lens, "sequence_lens") == seq):
        ctx.fail("sequence_lens shorter than the sequence are not supported")
    if peep is not None and np.any(ctx.const(peep, "P")):
        ctx.fail("peephole connections are not supported")
    return list(ctx.b.lstm(x, w, r, b, h0, c0, direction, name=_label(n)))


def _shape(ctx, n, a, ins):
    s = np.array(ctx.shape(ins[0]), dtype=np.int64)
    return [s[a.get("start", 0):a.get("end", len(s))]]


def _unary(method):
    return lambda ctx, n, a, ins: [getattr(ctx.b, method)(ins[0], name=n.output[0])]


SUPPORTED = {
    "Conv": _conv, "Gemm": _gemm, "MatMul": _matmul, "Relu": _unary("relu"), "Clip": _clip,
    "MaxPool": _maxpool, "AveragePool": _avgpool, "GlobalAveragePool": _unary("global_avg_pool"),
    "Add": _sum, "Sum": _sum, "Mul": _sum, "Concat": _concat, "Flatten": _flatten,
    "Reshape": _reshape, "Squeeze": _squeeze, "Unsqueeze": _unsqueeze,
    "Sigmoid": _unary("sigmoid"), "Tanh": _unary("tanh"), "Softmax": _softmax,
    "BatchNormalization": _batchnorm, "LSTM": _lstm, "Shape": _shape,
    "Identity": None, "Dropout": None,
}
"""ONNX operator -> handler (None: alias of the first input)."""


# ----------------------------------------------------------------------------- folding
def _fold(node, ins, opset):
    """Evaluate a node whose inputs are all constant."""
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator
    if node.op_type == "ConstantOfShape":
        a = _attrs(node)
        value = numpy_helper.to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
        return [np.broadcast_to(value.reshape(()), tuple(int(d) for d in ins[0]))]
    names = [f"i{k}" for k in range(len(ins))]
    vi = [helper.make_tensor_value_info(nm, helper.np_dtype_to_tensor_dtype(v.dtype), None)
          for nm, v in zip(names, ins) if v is not None]
    outs = [f"o{k}" for k in range(len(node.output))]
    n2 = helper.make_node(node.op_type, [nm if v is not None else "" for nm, v in zip(names, ins)],
                          outs, domain=node.domain)
    n2.attribute.extend(node.attribute)
    g = helper.make_graph([n2], "fold", vi, [helper.make_value_info(o, helper.TypeProto())
                                              for o in outs])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    feeds = {nm: np.ascontiguousarray(v) for nm, v in zip(names, ins) if v is not None}
    return [np.asarray(v) for v in ReferenceEvaluator(m).run(None, feeds)]


# ----------------------------------------------------------------------------- importer
def _input_shape(vi, override) -> tuple[int, ...]:
    from onnx import TensorProto
    tt = vi.type.tensor_type
    if tt.elem_type != TensorProto.FLOAT:
        raise FrontendError(f"input '{vi.name}': only float32 inputs are supported")
    if override is not None:
        return tuple(int(d) for d in override)
    if not tt.HasField("shape"):
        raise FrontendError(f"input '{vi.name}': unknown shape; pass input_shapes")
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim]
    if not all(isinstance(d, int) and d > 0 for d in dims):
        raise FrontendError(f"input '{vi.name}': dynamic or unknown shape "
                            f"({', '.join(map(str, dims))}); pass input_shapes")
    return tuple(dims)


def _rename(graph: Graph, old: str, new: str) -> None:
    t = graph.tensors.pop(old)
    t.name = new
    graph.tensors[new] = t
    for n in graph.nodes:
        n.inputs = [new if i == old else i for i in n.inputs]
        n.outputs = [new if o == old else o for o in n.outputs]
    graph.outputs = [new if o == old else o for o in graph.outputs]


def load_onnx(model, input_shapes: dict | None = None, optimize: bool = True) -> Graph:
    """Import an ONNX model into the float graph IR.

    Parameters
    ----------
    model : str, Path, bytes or onnx.ModelProto
        The model.
    input_shapes : dict, optional
        Input name -> shape, for inputs whose shape is dynamic in the model.
    optimize : bool
        Run :func:`~hasp.sw.frontend.builder.optimize` (BatchNormalization folding, ReLU
        fusion, dead-code removal).

    Returns
    -------
    Graph
        The float graph; its inputs and outputs keep their ONNX names.

    Raises
    ------
    FrontendError
        Unreadable or invalid file, unsupported operator or attribute, dynamic shape.
    """
    from onnx import numpy_helper
    proto = load_model(model)
    const, bad = _const_names(proto)
    if bad:
        op, nodes = next(iter(bad.items()))
        summary = ", ".join(f"{k} x{len(v)}" for k, v in bad.items())
        raise FrontendError(f"node '{nodes[0]}': unsupported operator {op} "
                            f"(unsupported in this model: {summary})")
    opset = _opset(proto)
    g = proto.graph
    name = g.name or (Path(model).stem if isinstance(model, (str, Path)) else "model")
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    ctx = _Ctx(GraphBuilder(name), opset, used)
    values: dict[str, object] = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    for vi in g.input:
        if vi.name not in values:
            shape = _input_shape(vi, (input_shapes or {}).get(vi.name))
            values[vi.name] = ctx.b.input(vi.name, shape)
    for n in g.node:
        ctx.where = _label(n)
        missing = [i for i in n.input if i and i not in values]
        if missing:
            ctx.fail(f"input '{missing[0]}' is not defined (truncated model?)")
        ins = [values[i] if i else None for i in n.input]
        if n.op_type in _ALIASES:
            _no_extra_outputs(ctx, n, "mask")
            outs = ins[:1]
        elif n.op_type not in _SHAPE_OPS and all(i in const for i in n.input if i):
            try:
                outs = _fold(n, ins, opset)
            except Exception as e:
                ctx.fail(f"cannot evaluate constant {n.op_type} ({str(e).splitlines()[0]})")
        else:
            outs = SUPPORTED[n.op_type](ctx, n, _attrs(n), ins)
        values.update((o, v) for o, v in zip(n.output, outs) if o)
    for o in g.output:
        v = values.get(o.name)
        if not isinstance(v, str):
            what = "a constant" if v is not None else "not computed"
            raise FrontendError(f"output '{o.name}' is {what}")
        ctx.b.output(v)
    graph = ctx.b.build(optimize)
    for o in g.output:
        v = values[o.name]
        if v != o.name and o.name not in graph.tensors:
            _rename(graph, v, o.name)
    return graph
