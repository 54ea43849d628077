"""ONNX importer and builder: the float IR against onnxruntime, graph passes, bad input."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hasp.sw.frontend import (Conv2d, FrontendError, GraphBuilder, load_onnx, run_float,
                              unsupported_operators)
from hasp.sw.frontend.check import onnxruntime_outputs
from hasp.sw.frontend import examples

RNG = np.random.default_rng(1234)


def model(nodes, inputs, inits=(), opset=17, outputs=("out",)):
    """A model with float inputs ``{name: shape}``, initialisers ``{name: array}``."""
    g = helper.make_graph(
        nodes, "t",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, s) for k, s in inputs.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(inits).items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return onnx.shape_inference.infer_shapes(m)      # output types, as exporters write them


def node(op, ins, out="out", **attrs):
    return helper.make_node(op, ins, [out] if isinstance(out, str) else out, **attrs)


def f32(*shape, scale=1.0):
    return (RNG.normal(size=shape) * scale).astype(np.float32)


def assert_matches_ort(m, feeds=None, rtol=1e-5):
    g = load_onnx(m)
    feeds = feeds or {i: f32(*g.shape(i)) for i in g.inputs}
    ref = onnxruntime_outputs(m, feeds)
    got = run_float(g, feeds)
    for k, r in ref.items():
        assert got[k].shape == r.shape, k
        np.testing.assert_allclose(got[k], r, rtol=rtol, atol=rtol * max(1.0, np.abs(r).max()))
    return g


# ----------------------------------------------------------------------------- operators
CONVS = [  # cin, cout, k, attrs
    (3, 8, 3, {}),
    (4, 6, 3, {"pads": [1, 0, 2, 1], "strides": [2, 1]}),
    (4, 4, 3, {"pads": [2, 2, 2, 2], "dilations": [2, 2]}),
    (6, 9, 3, {"group": 3, "pads": [1, 1, 1, 1]}),
    (8, 8, 3, {"group": 8, "pads": [1, 1, 1, 1], "strides": [2, 2]}),     # depthwise
    (8, 16, 5, {"group": 8, "auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    (3, 5, 4, {"auto_pad": "SAME_LOWER"}),
    (3, 5, 2, {"auto_pad": "VALID", "strides": [3, 3]}),
]


@pytest.mark.parametrize("cin,cout,k,attrs", CONVS)
def test_conv(cin, cout, k, attrs):
    w = f32(cout, cin // attrs.get("group", 1), k, k)
    assert_matches_ort(model([node("Conv", ["x", "w", "b"], kernel_shape=[k, k], **attrs)],
                             {"x": [2, cin, 11, 10]}, {"w": w, "b": f32(cout)}))


@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [3, 3], "strides": [2, 2]},
    {"kernel_shape": [3, 2], "pads": [1, 0, 1, 1], "strides": [1, 2]},
    {"kernel_shape": [2, 2], "dilations": [2, 2], "pads": [1, 1, 0, 0]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1},
])
def test_maxpool(attrs):
    assert_matches_ort(model([node("MaxPool", ["x"], **attrs)], {"x": [2, 3, 9, 9]}))


@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [3, 3], "strides": [2, 2]},
    {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1},
    {"kernel_shape": [2, 3], "pads": [0, 1, 1, 2], "strides": [2, 1]},
    {"kernel_shape": [7, 7], "pads": [0, 0, 1, 1]},               # as in Inception v1
])
def test_avgpool(attrs):
    assert_matches_ort(model([node("AveragePool", ["x"], **attrs)], {"x": [2, 3, 7, 7]}))


def test_global_avgpool_flatten_reshape():
    nodes = [node("GlobalAveragePool", ["x"], "g"), node("Flatten", ["g"], "f"),
             node("Reshape", ["f", "shape"], "r"), node("Unsqueeze", ["r", "ax"], "u"),
             node("Squeeze", ["u", "ax"], "s"), node("Flatten", ["x"], "out", axis=2)]
    m = model(nodes, {"x": [2, 3, 4, 5]}, {"shape": np.array([0, -1], np.int64),
                                           "ax": np.array([1], np.int64)},
              outputs=("out", "s"))
    assert_matches_ort(m)


@pytest.mark.parametrize("transb,alpha,beta,cshape", [
    (1, 1.0, 1.0, (5,)), (0, 0.5, 2.0, (1, 5)), (1, 1.0, 1.0, None), (0, 1.0, 0.5, ())])
def test_gemm(transb, alpha, beta, cshape):
    b = f32(5, 7) if transb else f32(7, 5)
    ins, inits = ["x", "b"], {"b": b}
    if cshape is not None:
        ins.append("c")
        inits["c"] = f32(*cshape)
    assert_matches_ort(model([node("Gemm", ins, transB=transb, alpha=alpha, beta=beta)],
                             {"x": [3, 7]}, inits))


def test_matmul_rank3_and_bias_add():
    nodes = [node("MatMul", ["x", "w"], "mm"), node("Add", ["mm", "b"], "out")]
    g = assert_matches_ort(model(nodes, {"x": [2, 3, 6]}, {"w": f32(6, 4), "b": f32(4)}))
    assert [n.op_type for n in g.nodes] == ["Gemm"]          # bias Add folded into the Gemm


@pytest.mark.parametrize("op", ["Add", "Mul", "Sum"])
def test_binary_broadcast(op):
    nodes = [node(op, ["x", "y"], "t"), node(op, ["t", "c"], "u"), node(op, ["u", "x"], "out")]
    assert_matches_ort(model(nodes, {"x": [2, 3, 4, 5], "y": [3, 1, 5]},
                             {"c": f32(1, 4, 1)}))


def test_sum_of_three_and_concat():
    nodes = [node("Sum", ["x", "y", "x"], "s"), node("Concat", ["s", "c", "y"], "out", axis=-1)]
    assert_matches_ort(model(nodes, {"x": [2, 3], "y": [2, 3]}, {"c": f32(2, 2)}))


@pytest.mark.parametrize("opset", [9, 17])
def test_activations(opset):
    if opset < 11:
        clip = node("Clip", ["a"], "b", min=-0.5, max=0.7)
        inits = {}
    else:
        clip = node("Clip", ["a", "lo", "hi"], "b")
        inits = {"lo": np.float32(-0.5), "hi": np.float32(0.7)}
    nodes = [node("Relu", ["x"], "r"), node("Sigmoid", ["x"], "s"), node("Tanh", ["x"], "t"),
             node("Add", ["r", "s"], "a"), clip, node("Add", ["b", "t"], "c"),
             node("Softmax", ["c"], "out", axis=1)]
    assert_matches_ort(model(nodes, {"x": [2, 3, 2, 2]}, inits, opset=opset))


def test_batchnorm_folded_into_conv_and_standalone():
    c = 4
    bn = [f32(c) + 2, f32(c), f32(c), np.abs(f32(c)) + 0.5]
    names = ["s", "b", "m", "v"]
    inits = {"w": f32(c, 3, 3, 3), **{f"{k}{i}": v for i in (1, 2) for k, v in zip(names, bn)},
             "sc": f32(c, 1, 1), "sh": f32(c, 1, 1)}
    nodes = [node("Conv", ["x", "w"], "y", kernel_shape=[3, 3]),
             node("BatchNormalization", ["y"] + [f"{k}1" for k in names], "z", epsilon=1e-3),
             node("Relu", ["z"], "r"), node("MaxPool", ["r"], "p", kernel_shape=[2, 2]),
             node("BatchNormalization", ["p"] + [f"{k}2" for k in names], "q"),
             node("Mul", ["q", "sc"], "q2"), node("Add", ["q2", "sh"], "out")]
    g = assert_matches_ort(model(nodes, {"x": [2, 3, 8, 8]}, inits))
    ops = [n.op for n in g.nodes]
    assert [type(o).__name__ for o in ops] == ["Conv2d", "MaxPool", "Conv2d"]
    assert ops[0].act_min == 0.0                         # BN folded, ReLU fused
    assert ops[2].groups == c and g.shape(g.nodes[2].inputs[1]) == (c, 1, 1, 1)


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_lstm_unrolled(direction):
    d, h, i, seq, batch = 1 + (direction == "bidirectional"), 5, 3, 4, 2
    inits = {"W": f32(d, 4 * h, i), "R": f32(d, 4 * h, h), "B": f32(d, 8 * h, scale=0.3),
             "h0": f32(d, batch, h), "c0": f32(d, batch, h),
             "lens": np.full(batch, seq, np.int32)}
    n = node("LSTM", ["x", "W", "R", "B", "lens", "h0", "c0"], ["Y", "Y_h", "Y_c"],
             hidden_size=h, direction=direction)
    g = assert_matches_ort(model([n], {"x": [seq, batch, i]}, inits, outputs=("Y", "Y_h", "Y_c")))
    assert sum(n.op_type == "Sigmoid" for n in g.nodes) == 3 * seq * d     # one cell per step


def test_lstm_without_bias_or_state():
    m = model([node("LSTM", ["x", "W", "R"], ["", "Y_h"], hidden_size=4)], {"x": [3, 1, 2]},
              {"W": f32(1, 16, 2), "R": f32(1, 16, 4)}, outputs=("Y_h",))
    assert_matches_ort(m)


def test_dropout_identity_are_aliases():
    nodes = [node("Dropout", ["x"], ["d", "mask"]), node("Identity", ["d"], "i"),
             node("Relu", ["i"], "out")]
    g = assert_matches_ort(model(nodes, {"x": [2, 3]}, opset=11))
    assert [n.op_type for n in g.nodes] == ["Clip"]


@pytest.mark.parametrize("name", ["mlp", "cnn", "lstm"])
def test_examples_float_match_ort(name):
    m, x, shape = examples.EXAMPLES[name]()
    assert_matches_ort(m, {x: f32(*shape)})


def test_builder_produces_the_same_ir_as_the_importer():
    m, x, shape = examples.cnn()
    imported = load_onnx(m)
    w = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    b = GraphBuilder("cnn")
    t = b.input("x", shape)

    def conv(t, name, bn=True, **kw):
        t = b.conv2d(t, w[f"{name}.w"], w[f"{name}.b"], name=name, **kw)
        if bn:
            t = b.batch_norm(t, *(w[f"{name}.bn.{k}"] for k in ("scale", "bias", "mean", "var")))
        return t

    def fc(t, name):
        return b.gemm(t, w[f"{name}.w"], w[f"{name}.b"], name=name)

    p = b.max_pool(b.relu(conv(t, "conv1", padding=1)), 2)
    y = b.relu6(conv(p, "dw2", padding=1, groups=16))
    a = b.relu(conv(y, "pw2", bn=False))
    c = b.add(a, b.relu(conv(p, "dil3", padding=2, dilation=2)))
    d = b.avg_pool(b.concat([c, a], 1), 3, 2, 1)
    s = b.sigmoid(fc(b.relu(fc(b.flatten(b.global_avg_pool(d)), "se.fc1")), "se.fc2"))
    y = b.mul(d, b.reshape(s, (16, 64, 1, 1)))
    y = b.relu(conv(y, "conv4", stride=2, padding=1))
    b.output(b.softmax(fc(b.flatten(b.global_avg_pool(y)), "fc")))
    built = b.build()
    assert [(n.op, [built.shape(i) for i in n.inputs]) for n in built.nodes] == \
        [(n.op, [imported.shape(i) for i in n.inputs]) for n in imported.nodes]
    for nb, ni in zip(built.nodes, imported.nodes):
        for tb, ti in zip(nb.inputs, ni.inputs):
            cb, ci = built.tensors[tb].data, imported.tensors[ti].data
            assert (cb is None) == (ci is None)
            if cb is not None:
                np.testing.assert_allclose(cb, ci, rtol=1e-6, atol=1e-7)
    feeds = {"x": f32(*shape)}
    np.testing.assert_allclose(run_float(built, feeds)[built.outputs[0]],
                               run_float(imported, feeds)["prob"], rtol=1e-6)


# ----------------------------------------------------------------------------- bad input
def test_unsupported_operator_names_node_and_all_ops():
    nodes = [node("LRN", ["x"], "l", size=3, name="norm1"), node("Relu", ["l"], "r"),
             node("Transpose", ["r"], "out", perm=[0, 1, 3, 2])]
    m = model(nodes, {"x": [1, 3, 4, 4]})
    m.graph.node[0].name = "norm1"
    with pytest.raises(FrontendError,
                       match=r"node 'norm1': unsupported operator LRN .*Transpose x1"):
        load_onnx(m)
    assert unsupported_operators(m) == {"LRN": ["norm1"], "Transpose": ["out"]}


def test_dynamic_shape_is_rejected_unless_given():
    m = model([node("Relu", ["x"])], {"x": ["N", 3]})
    with pytest.raises(FrontendError, match=r"input 'x': dynamic or unknown shape \(N, 3\)"):
        load_onnx(m)
    assert load_onnx(m, input_shapes={"x": (2, 3)}).shape("out") == (2, 3)


def test_bad_files(tmp_path):
    good = examples.mlp()[0].SerializeToString()
    (tmp_path / "cut.onnx").write_bytes(good[:len(good) // 2])
    (tmp_path / "text.onnx").write_text("this is not a model\n")
    for f in ("cut.onnx", "text.onnx"):
        with pytest.raises(FrontendError, match="not an ONNX model or truncated"):
            load_onnx(tmp_path / f)
    with pytest.raises(FrontendError, match="cannot read"):
        load_onnx(tmp_path / "missing.onnx")


@pytest.mark.parametrize("nodes,inputs,match", [
    ([node("MatMul", ["x", "y"])], {"x": [2, 3], "y": [3, 2]},
     "node 'out': the second MatMul operand must be a constant"),
    ([node("Conv", ["x", "y"], kernel_shape=[1, 1])], {"x": [1, 2, 3, 3], "y": [2, 2, 1, 1]},
     "node 'out': the weight must be a constant"),
    ([node("Add", ["x", "y"])], {"x": [2, 3], "y": [4]},
     r"node 'out' \(Add\): shapes \(2, 3\) and \(4,\) do not broadcast"),
    ([node("Conv", ["x", "w"], kernel_shape=[5, 5])], {"x": [1, 1, 3, 3]},
     "node 'out' .*does not fit input size 3"),
    ([node("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)],
     {"x": [1, 1, 10, 10]}, "node 'out': ceil_mode=1 with a partial last window"),
    ([node("LSTM", ["x", "w", "w"], ["", "out"], hidden_size=1, clip=1.0)],
     {"x": [2, 1, 1]}, "node 'out': layout=1, input_forget=1 and clip are not supported"),
])
def test_bad_graphs(nodes, inputs, match):
    inits = {"w": f32(1, 4, 1) if nodes[0].op_type == "LSTM" else f32(1, 1, 5, 5)}
    inits = inits if "w" in nodes[0].input else {}
    m = model(nodes, inputs, inits)
    m.graph.output[0].type.tensor_type.shape.SetInParent()   # where inference failed too
    with pytest.raises(FrontendError, match=match):
        load_onnx(m)


def test_errors_are_one_line_value_errors():
    assert issubclass(FrontendError, ValueError)
    with pytest.raises(FrontendError) as e:
        load_onnx(model([node("LRN", ["x"], size=3)], {"x": [1, 1, 2, 2]}))
    assert "\n" not in str(e.value)


def test_builder_rejects_dynamic_input_and_depthwise_shape():
    b = GraphBuilder()
    with pytest.raises(FrontendError, match="input 'x': dynamic"):
        b.input("x", (None, 3))
    x = b.input("x", (1, 4, 5, 5))
    y = b.conv2d(x, np.ones((4, 1, 3, 3)), groups=4, name="dw")
    assert b.shape(y) == (1, 4, 3, 3)
    with pytest.raises(FrontendError, match="node 'bad' .*groups=3"):
        b.conv2d(x, np.ones((4, 1, 3, 3)), groups=3, name="bad")
    assert isinstance(b.graph.nodes[0].op, Conv2d)
