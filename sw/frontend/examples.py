"""Example ONNX models built in code with ``onnx.helper`` (random weights, fixed seed).

* :func:`mlp` -- Gemm/ReLU, Gemm/Tanh, MatMul + Add bias: a 10-class classifier.
* :func:`cnn` -- Conv + BatchNorm + ReLU, MaxPool, depthwise Conv + ReLU6, dilated Conv,
  residual Add, Concat, AveragePool, a squeeze-excitation block (GlobalAveragePool, Gemm,
  Sigmoid, broadcast Mul), strided Conv, Flatten, Gemm and Softmax.
* :func:`lstm` -- LSTM over 10 steps, then Squeeze and a Gemm head.

Each function returns ``(model, input_name, input_shape)``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["mlp", "cnn", "lstm", "EXAMPLES", "OPSET"]

OPSET = 17
BATCH = 16


class _Net:
    """Accumulates nodes and initialisers of a single-input ONNX graph."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []

    def init(self, name, value, dtype=np.float32):
        from onnx import numpy_helper
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def randn(self, name, shape, fan_in):
        return self.init(name, self.rng.normal(size=shape) * np.sqrt(2.0 / fan_in))

    def node(self, op, inputs, out, **attrs):
        from onnx import helper
        self.nodes.append(helper.make_node(op, inputs, [out] if isinstance(out, str) else out,
                                           name=out if isinstance(out, str) else out[0], **attrs))
        return out

    def conv(self, x, name, cin, cout, k, bn=True, **attrs):
        groups = attrs.get("group", 1)
        w = self.randn(f"{name}.w", (cout, cin // groups, k, k), cin // groups * k * k)
        b = self.init(f"{name}.b", self.rng.normal(size=cout) * 0.1)
        y = self.node("Conv", [x, w, b], name, kernel_shape=[k, k], **attrs)
        if bn:
            r = self.rng
            p = [self.init(f"{name}.bn.{s}", v) for s, v in (
                ("scale", r.uniform(0.5, 1.5, cout)), ("bias", r.normal(size=cout) * 0.1),
                ("mean", r.normal(size=cout) * 0.1), ("var", r.uniform(0.5, 1.5, cout)))]
            y = self.node("BatchNormalization", [y] + p, f"{name}.bn", epsilon=1e-5)
        return y

    def fc(self, x, name, k, n):
        return self.node("Gemm", [x, self.randn(f"{name}.w", (n, k), k),
                                  self.init(f"{name}.b", self.rng.normal(size=n) * 0.1)],
                         name, transB=1)

    def model(self, name, x, shape, out, out_shape):
        from onnx import TensorProto, helper
        g = helper.make_graph(self.nodes, name,
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)],
                              self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="hasp.sw.frontend.examples")
        m.ir_version = 8
        return m


def mlp(seed: int = 0):
    """MLP 64 -> 128 (ReLU) -> 64 (Tanh) -> 10 on a batch of 16."""
    n = _Net(seed)
    h = n.node("Relu", [n.fc("x", "fc1", 64, 128)], "relu1")
    h = n.node("Tanh", [n.fc(h, "fc2", 128, 64)], "tanh2")
    h = n.node("MatMul", [h, n.randn("fc3.w", (64, 10), 64)], "fc3")
    n.node("Add", [h, n.init("fc3.b", n.rng.normal(size=10) * 0.1)], "logits")
    return n.model("mlp", "x", [BATCH, 64], "logits", [BATCH, 10]), "x", (BATCH, 64)


def cnn(seed: int = 0):
    """Small CNN classifier on 3x32x32 images exercising every 2-D operator."""
    n = _Net(seed)
    y = n.node("Relu", [n.conv("x", "conv1", 3, 16, 3, pads=[1, 1, 1, 1])], "relu1")
    p = n.node("MaxPool", [y], "pool1", kernel_shape=[2, 2], strides=[2, 2])
    y = n.conv(p, "dw2", 16, 16, 3, pads=[1, 1, 1, 1], group=16)
    y = n.node("Clip", [y, n.init("six.lo", 0.0), n.init("six.hi", 6.0)], "relu6_2")
    a = n.node("Relu", [n.conv(y, "pw2", 16, 32, 1, bn=False)], "relu_pw2")
    b = n.node("Relu", [n.conv(p, "dil3", 16, 32, 3, pads=[2, 2, 2, 2], dilations=[2, 2])], "relu3")
    c = n.node("Add", [a, b], "res3")
    d = n.node("Concat", [c, a], "cat3", axis=1)
    d = n.node("AveragePool", [d], "avg3", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    s = n.node("Flatten", [n.node("GlobalAveragePool", [d], "se.gap")], "se.flat")
    s = n.node("Relu", [n.fc(s, "se.fc1", 64, 16)], "se.relu")
    s = n.node("Sigmoid", [n.fc(s, "se.fc2", 16, 64)], "se.gate")
    s = n.node("Reshape", [s, n.init("se.shape", [BATCH, 64, 1, 1], np.int64)], "se.gate4")
    y = n.node("Mul", [d, s], "se.scale")
    y = n.node("Relu", [n.conv(y, "conv4", 64, 32, 3, strides=[2, 2], pads=[1, 1, 1, 1])], "relu4")
    y = n.node("Flatten", [n.node("GlobalAveragePool", [y], "gap")], "flat")
    n.node("Softmax", [n.fc(y, "fc", 32, 10)], "prob", axis=-1)
    return n.model("cnn", "x", [BATCH, 3, 32, 32], "prob", [BATCH, 10]), "x", (BATCH, 3, 32, 32)


def lstm(seed: int = 0, direction: str = "forward", seq: int = 10, inputs: int = 12,
         hidden: int = 24):
    """LSTM (10 steps, 12 -> 24) whose last hidden state feeds a 6-class Gemm head."""
    n = _Net(seed)
    d = 2 if direction == "bidirectional" else 1
    w = n.init("lstm.W", n.rng.normal(size=(d, 4 * hidden, inputs)) / np.sqrt(inputs))
    r = n.init("lstm.R", n.rng.normal(size=(d, 4 * hidden, hidden)) / np.sqrt(hidden))
    b = n.init("lstm.B", n.rng.normal(size=(d, 8 * hidden)) * 0.1)
    n.node("LSTM", ["x", w, r, b], ["lstm.Y", "lstm.Y_h", "lstm.Y_c"],
           hidden_size=hidden, direction=direction)
    h = n.node("Reshape", ["lstm.Y_h", n.init("h.shape", [BATCH, d * hidden], np.int64)], "h")
    n.fc(h, "logits", d * hidden, 6)
    return (n.model(f"lstm_{direction}", "x", [seq, BATCH, inputs], "logits", [BATCH, 6]),
            "x", (seq, BATCH, inputs))


EXAMPLES = {"mlp": mlp, "cnn": cnn, "lstm": lstm}
