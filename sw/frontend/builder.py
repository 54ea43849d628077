"""Python builder API for the graph IR, and the graph optimisation passes.

Example
-------
>>> import numpy as np
>>> b = GraphBuilder("tiny")
>>> x = b.input("x", (1, 3, 8, 8))
>>> y = b.relu(b.conv2d(x, np.ones((4, 3, 3, 3), np.float32), padding=1))
>>> b.output(b.global_avg_pool(y))
>>> g = b.build()          # the ReLU is fused into the convolution
>>> [n.op_type for n in g.nodes]
['Conv2d', 'GlobalAvgPool']

Every method takes tensor names (``str``) or numpy arrays (which become constants) and
returns the name of its output tensor. Shapes are inferred as the graph is built, so shape
errors name the offending node. :meth:`GraphBuilder.build` runs :func:`optimize`.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from .ir import (ACTIVATED, Add, AvgPool, Clip, Concat, Conv2d, FrontendError, Gemm, Graph,
                 GlobalAvgPool, MaxPool, Mul, Node, Reshape, Sigmoid, Slice, Softmax, Tanh,
                 Tensor, infer_shapes)

__all__ = ["GraphBuilder", "optimize", "fold_affine", "fuse_activations", "remove_dead"]


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else tuple(int(a) for a in v)


def _pads(v) -> tuple[int, int, int, int]:
    """``p``, ``(ph, pw)`` or ``(top, left, bottom, right)`` -> 4-tuple."""
    if np.isscalar(v):
        return (int(v),) * 4
    v = tuple(int(a) for a in v)
    return v + v if len(v) == 2 else v


class GraphBuilder:
    """Builds a float :class:`~hasp.sw.frontend.ir.Graph` operator by operator.

    Parameters
    ----------
    name : str
        Name of the graph.
    """

    def __init__(self, name: str = "graph"):
        self.graph = Graph(name)
        self._count = 0
        self._names: set[str] = set()

    # ------------------------------------------------------------------ plumbing
    def _unique(self, base: str) -> str:
        """``base``, or ``base_<k>`` if taken by a tensor or node; reserves the result."""
        name, k = base, 1
        while name in self._names:
            name, k = f"{base}_{k}", k + 1
        self._names.add(name)
        return name

    def shape(self, x: str) -> tuple[int, ...]:
        """Shape of tensor ``x`` (or of a constant array)."""
        return self.graph.shape(x) if isinstance(x, str) else np.shape(x)

    def constant(self, value, name: str | None = None) -> str:
        """Add a float constant tensor and return its name."""
        data = np.asarray(value, dtype=np.float32)
        name = self._unique(name or f"const{len(self.graph.tensors)}")
        self.graph.tensors[name] = Tensor(name, data.shape, "float32", data)
        return name

    def _operand(self, x, name: str) -> str:
        if isinstance(x, str):
            if x not in self.graph.tensors:
                raise FrontendError(f"node '{name}': input tensor '{x}' is not defined")
            return x
        return self.constant(x, name)

    def _emit(self, op, inputs, name: str | None) -> str:
        """Append a node; its name (also its output tensor's) is made unique."""
        self._count += 1
        name = self._unique(name or f"{type(op).__name__.lower()}{self._count}")
        roles = ("x", "weight", "bias") if isinstance(op, (Conv2d, Gemm)) else ()
        inputs = [self._operand(x, f"{name}/{roles[k] if roles else f'const{k}'}")
                  for k, x in enumerate(inputs)]
        try:
            shapes = infer_shapes(op, [self.shape(i) for i in inputs])
        except FrontendError as e:
            raise FrontendError(f"node '{name}' ({type(op).__name__}): {e}") from None
        self.graph.tensors[name] = Tensor(name, shapes[0])
        self.graph.nodes.append(Node(name, op, inputs, [name]))
        return name

    # ------------------------------------------------------------------ graph interface
    def input(self, name: str, shape) -> str:
        """Declare a float graph input of a static ``shape``."""
        if not all(isinstance(d, (int, np.integer)) and d > 0 for d in shape):
            raise FrontendError(f"input '{name}': dynamic or unknown shape {tuple(shape)}; "
                                "give every dimension a fixed positive size")
        name = self._unique(name)
        self.graph.tensors[name] = Tensor(name, tuple(int(d) for d in shape))
        self.graph.inputs.append(name)
        return name

    def output(self, *names: str) -> None:
        """Mark tensors as graph outputs."""
        for n in names:
            if n not in self.graph.tensors or self.graph.tensors[n].is_const:
                raise FrontendError(f"output '{n}' is not computed by the graph")
            self.graph.outputs.append(n)

    def build(self, optimize_graph: bool = True) -> Graph:
        """Finish the graph (running :func:`optimize` unless told not to) and return it."""
        if not self.graph.outputs:
            raise FrontendError(f"graph '{self.graph.name}' has no outputs")
        return optimize(self.graph) if optimize_graph else self.graph

    # ------------------------------------------------------------------ operators
    def conv2d(self, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
               name=None) -> str:
        """2-D convolution, weight ``(Cout, Cin/groups, kh, kw)``; depthwise when
        ``groups == Cin``. ``padding``: int, ``(ph, pw)`` or ``(top, left, bottom, right)``."""
        weight = np.asarray(weight, dtype=np.float32)
        bias = np.zeros(weight.shape[:1], np.float32) if bias is None else bias
        op = Conv2d(_pair(stride), _pads(padding), _pair(dilation), int(groups))
        return self._emit(op, [x, weight, bias], name)

    def gemm(self, x, weight, bias=None, name=None) -> str:
        """Fully connected ``x @ weight.T + bias`` on the last axis; weight ``(N, K)``."""
        weight = np.asarray(weight, dtype=np.float32)
        bias = np.zeros(weight.shape[:1], np.float32) if bias is None else bias
        return self._emit(Gemm(), [x, weight, bias], name)

    def matmul(self, x, b, name=None) -> str:
        """``x @ b`` with a constant ``(K, N)`` matrix ``b``."""
        return self.gemm(x, np.asarray(b, dtype=np.float32).T, None, name)

    def clip(self, x, min=None, max=None, name=None) -> str:
        """Clamp to ``[min, max]``; ``None`` leaves that side open."""
        as_f = lambda v: None if v is None else float(v)  # noqa: E731
        return self._emit(Clip(as_f(min), as_f(max)), [x], name)

    def relu(self, x, name=None) -> str:
        return self.clip(x, 0.0, None, name)

    def relu6(self, x, name=None) -> str:
        return self.clip(x, 0.0, 6.0, name)

    def max_pool(self, x, kernel, stride=None, padding=0, dilation=1, name=None) -> str:
        """Max pooling; ``stride`` defaults to ``kernel``."""
        k = _pair(kernel)
        return self._emit(MaxPool(k, _pair(stride or k), _pads(padding), _pair(dilation)),
                          [x], name)

    def avg_pool(self, x, kernel, stride=None, padding=0, count_include_pad=False,
                 name=None) -> str:
        """Average pooling; ``stride`` defaults to ``kernel``."""
        k = _pair(kernel)
        return self._emit(AvgPool(k, _pair(stride or k), _pads(padding),
                                  bool(count_include_pad)), [x], name)

    def global_avg_pool(self, x, name=None) -> str:
        return self._emit(GlobalAvgPool(), [x], name)

    def add(self, a, b, name=None) -> str:
        return self._emit(Add(), [a, b], name)

    def mul(self, a, b, name=None) -> str:
        return self._emit(Mul(), [a, b], name)

    def concat(self, xs, axis: int, name=None) -> str:
        """Concatenate ``xs`` along ``axis`` (a single tensor is returned unchanged)."""
        if len(xs) == 1:
            return xs[0]
        return self._emit(Concat(axis % len(self.shape(xs[0]))), list(xs), name)

    def reshape(self, x, shape, name=None) -> str:
        """Reshape; one dimension may be -1."""
        shape = [int(d) for d in shape]
        if shape.count(-1) == 1:
            rest = math.prod(d for d in shape if d != -1)
            shape[shape.index(-1)] = math.prod(self.shape(x)) // rest if rest else 0
        return self._emit(Reshape(tuple(shape)), [x], name)

    def flatten(self, x, axis: int = 1, name=None) -> str:
        """Flatten to 2-D: ``(prod(shape[:axis]), prod(shape[axis:]))``."""
        s = self.shape(x)
        return self.reshape(x, (math.prod(s[:axis]), math.prod(s[axis:])), name)

    def slice(self, x, axis: int, start: int, stop: int, name=None) -> str:
        return self._emit(Slice(axis % len(self.shape(x)), int(start), int(stop)), [x], name)

    def sigmoid(self, x, name=None) -> str:
        return self._emit(Sigmoid(), [x], name)

    def tanh(self, x, name=None) -> str:
        return self._emit(Tanh(), [x], name)

    def softmax(self, x, axes=(-1,), name=None) -> str:
        """Softmax jointly over ``axes`` (host operator: graph outputs only)."""
        rank = len(self.shape(x))
        axes = tuple(sorted(int(a) % rank for a in np.atleast_1d(axes)))
        return self._emit(Softmax(axes), [x], name)

    def batch_norm(self, x, scale, bias, mean, var, eps: float = 1e-5, name=None) -> str:
        """Inference batch normalisation over axis 1, emitted as a per-channel ``Mul`` and
        ``Add`` that :func:`optimize` folds into the preceding convolution (or turns into a
        depthwise 1x1 convolution)."""
        name = name or f"batchnorm{self._count + 1}"
        a = np.asarray(scale, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
        c = np.asarray(bias, np.float64) - np.asarray(mean, np.float64) * a
        bshape = (-1,) + (1,) * (len(self.shape(x)) - 2)
        y = self.mul(x, a.reshape(bshape), name=f"{name}/scale")
        return self.add(y, c.reshape(bshape), name=name)

    def lstm(self, x, w, r, b=None, initial_h=None, initial_c=None, direction="forward",
             name=None) -> tuple[str, str, str]:
        """ONNX-convention LSTM, unrolled into cells over time.

        Parameters
        ----------
        x : str
            Input ``(seq, batch, I)``.
        w, r : ndarray
            ``(D, 4H, I)`` and ``(D, 4H, H)`` weights, gates in ONNX order i, o, f, c.
        b : ndarray, optional
            ``(D, 8H)``: input then recurrent biases.
        initial_h, initial_c : str or ndarray, optional
            ``(D, batch, H)``; zero when omitted.
        direction : {"forward", "reverse", "bidirectional"}

        Returns
        -------
        (Y, Y_h, Y_c) : tuple of str
            ``(seq, D, batch, H)``, ``(D, batch, H)`` and ``(D, batch, H)``.

        Notes
        -----
        ``X @ W.T + b`` is one :class:`Gemm` over all time steps; each step then slices its
        gates, adds ``h @ R.T``, applies Sigmoid/Tanh and updates ``c = f*c + i*g`` and
        ``h = o * tanh(c)`` with element-wise :class:`Mul` and :class:`Add`.
        """
        name = name or f"lstm{self._count + 1}"
        w, r = np.asarray(w, np.float32), np.asarray(r, np.float32)
        seq, batch, _ = self.shape(x)
        ndir, hid = w.shape[0], w.shape[1] // 4
        if direction not in ("forward", "reverse", "bidirectional") or \
                ndir != 1 + (direction == "bidirectional"):
            raise FrontendError(f"node '{name}' (LSTM): direction {direction!r} does not match "
                                f"{ndir} weight sets")
        b = np.zeros((ndir, 8 * hid), np.float32) if b is None else np.asarray(b, np.float32)
        ys, hs, cs = [], [], []
        for d in range(ndir):
            rev = direction == "reverse" or d == 1
            p = f"{name}/{'bwd' if rev else 'fwd'}"
            gx = self.gemm(x, w[d], b[d, :4 * hid] + b[d, 4 * hid:], name=f"{p}/x_gates")
            h = None if initial_h is None else self.slice(initial_h, 0, d, d + 1, f"{p}/h0")
            c = None if initial_c is None else self.slice(initial_c, 0, d, d + 1, f"{p}/c0")
            steps = [None] * seq
            for t in (reversed(range(seq)) if rev else range(seq)):
                q = f"{p}/t{t}"
                g = self.slice(gx, 0, t, t + 1, f"{q}/x_gates")
                if h is not None:
                    g = self.add(g, self.gemm(h, r[d], None, f"{q}/h_gates"), f"{q}/gates")
                i, o, f, gc = (self.slice(g, 2, k * hid, (k + 1) * hid, f"{q}/{s}_pre")
                               for k, s in enumerate("iofc"))
                i, o, f = (self.sigmoid(v, f"{q}/{s}") for v, s in ((i, "i"), (o, "o"), (f, "f")))
                ig = self.mul(i, self.tanh(gc, f"{q}/g"), f"{q}/ig")
                c = ig if c is None else self.add(self.mul(f, c, f"{q}/fc"), ig, f"{q}/c")
                h = steps[t] = self.mul(o, self.tanh(c, f"{q}/tanh_c"), f"{q}/h")
            ys.append(self.reshape(self.concat(steps, 0, f"{p}/y"), (seq, 1, batch, hid)))
            hs.append(h)
            cs.append(c)
        return (self.concat(ys, 1, f"{name}/Y"), self.concat(hs, 0, f"{name}/Y_h"),
                self.concat(cs, 0, f"{name}/Y_c"))


# ----------------------------------------------------------------------------- passes
def _fresh(graph: Graph, base: str) -> str:
    """A tensor name based on ``base`` that ``graph`` does not use yet."""
    name, k = base, 1
    while name in graph.tensors:
        name, k = f"{base}_{k}", k + 1
    return name


def _sole_consumer(graph: Graph, t: str, node: Node) -> bool:
    return t not in graph.outputs and graph.consumers(t) == [node]


def _remove(graph: Graph, node: Node, into: Node) -> None:
    """Drop ``node`` whose single input is ``into``'s output; ``into`` takes its outputs."""
    del graph.tensors[into.outputs[0]]
    into.outputs = node.outputs
    graph.nodes.remove(node)


def _channel_vector(const: np.ndarray, shape, axis: int):
    """``const`` as one value per index of ``axis`` when broadcast to ``shape``, else None."""
    c = np.asarray(const, np.float64)
    if c.ndim > len(shape):
        return None
    c = c.reshape((1,) * (len(shape) - c.ndim) + c.shape)
    if c.shape[axis] not in (1, shape[axis]) or \
            any(d != 1 for i, d in enumerate(c.shape) if i != axis):
        return None
    return np.broadcast_to(c.reshape(-1), (shape[axis],))


def _affine(graph: Graph, node: Node, x: str, axis: int):
    """``(a, b)`` if ``node`` computes ``a[c] * x + b[c]`` per index ``c`` of ``axis``."""
    op, shape = node.op, graph.shape(x)
    if getattr(op, "act_min", None) is not None or getattr(op, "act_max", None) is not None:
        return None
    if isinstance(op, (Add, Mul)):
        if len(node.inputs) != 2 or graph.shape(node.outputs[0]) != shape or axis >= len(shape):
            return None
        v = _channel_vector(graph.tensors[next(i for i in node.inputs if i != x)].data, shape, axis)
        if v is None:
            return None
        return (v, np.zeros_like(v)) if isinstance(op, Mul) else (np.ones_like(v), v)
    if isinstance(op, Conv2d) and op.stride == (1, 1) and op.padding == (0,) * 4 and axis == 1:
        _, w, b = node.inputs
        ws = graph.shape(w)
        if ws[1:] == (1, 1, 1) and op.groups == ws[0] == shape[1]:
            return (graph.tensors[w].data.reshape(-1).astype(np.float64),
                    graph.tensors[b].data.astype(np.float64))
    return None


def _set_const(graph: Graph, node: Node, k: int, data: np.ndarray) -> None:
    """Give input ``k`` of ``node`` new constant data (a fresh tensor if it is shared)."""
    name = node.inputs[k]
    if len(graph.consumers(name)) > 1:
        name = node.inputs[k] = _fresh(graph, f"{node.name}/{'weight' if k == 1 else 'bias'}")
    graph.tensors[name] = Tensor(name, data.shape, "float32", data.astype(np.float32))


def fold_affine(graph: Graph) -> Graph:
    """Fold per-channel affine nodes (BatchNormalization, per-channel constant Mul/Add,
    depthwise 1x1 convolutions) into a preceding Conv2d/Gemm without activation; turn the
    remaining per-channel NCHW Mul/Add into depthwise 1x1 convolutions."""
    for node in list(graph.nodes):
        acts = graph.activations(node)
        if len(acts) != 1:
            continue
        x = acts[0]
        prod = graph.producer(x)
        foldable = (prod is not None and isinstance(prod.op, (Conv2d, Gemm))
                    and prod.op.act_min is None and prod.op.act_max is None
                    and _sole_consumer(graph, x, node))
        axis = len(graph.shape(x)) - 1 if foldable and isinstance(prod.op, Gemm) else 1
        aff = _affine(graph, node, x, axis)
        if aff is None:
            continue
        a, b = aff
        if foldable:
            w = graph.tensors[prod.inputs[1]].data
            bias = graph.tensors[prod.inputs[2]].data
            _set_const(graph, prod, 1, w * a.reshape((-1,) + (1,) * (w.ndim - 1)))
            _set_const(graph, prod, 2, bias * a + b)
            _remove(graph, node, prod)
        elif isinstance(node.op, (Add, Mul)) and len(graph.shape(x)) == 4:
            c = graph.shape(x)[1]
            consts = [(_fresh(graph, f"{node.name}/weight"),
                       np.broadcast_to(a, (c,)).reshape(c, 1, 1, 1)),
                      (_fresh(graph, f"{node.name}/bias"), np.broadcast_to(b, (c,)))]
            for t, v in consts:
                graph.tensors[t] = Tensor(t, v.shape, "float32", np.array(v, np.float32))
            node.op, node.inputs = Conv2d(groups=c), [x] + [t for t, _ in consts]
    return graph


def fuse_activations(graph: Graph) -> Graph:
    """Fuse a Clip (ReLU, ReLU6) into the clamp of the preceding Conv2d/Gemm/Add/Mul."""
    for node in list(graph.nodes):
        if not isinstance(node.op, Clip):
            continue
        prod = graph.producer(node.inputs[0])
        if (prod is not None and isinstance(prod.op, ACTIVATED) and prod.op.act_min is None
                and prod.op.act_max is None and _sole_consumer(graph, node.inputs[0], node)):
            prod.op = dataclasses.replace(prod.op, act_min=node.op.min, act_max=node.op.max)
            _remove(graph, node, prod)
    return graph


def remove_dead(graph: Graph) -> Graph:
    """Drop nodes and tensors that do not contribute to the graph outputs."""
    live = set(graph.outputs)
    kept = []
    for node in reversed(graph.nodes):
        if live.intersection(node.outputs):
            kept.append(node)
            live.update(node.inputs)
    graph.nodes = kept[::-1]
    live.update(graph.inputs)
    graph.tensors = {k: t for k, t in graph.tensors.items() if k in live}
    return graph


def optimize(graph: Graph) -> Graph:
    """:func:`fold_affine`, :func:`fuse_activations`, then :func:`remove_dead` (in place)."""
    return remove_dead(fuse_activations(fold_affine(graph)))
