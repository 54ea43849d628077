"""Post-training quantisation: the scheme's formulas, per-operator accuracy, agreement of the
example networks with onnxruntime, and save/load."""
from __future__ import annotations

import math

import numpy as np
import pytest

from hasp.sw import frontend as fe
from hasp.sw.frontend import examples
from hasp.sw.frontend.check import agreement

RNG = np.random.default_rng(99)


def calib_set(g, n=6, scale=1.0):
    return [{i: (RNG.normal(size=g.shape(i)) * scale).astype(np.float32) for i in g.inputs}
            for _ in range(n)]


def one_op(build, *shapes, name="op"):
    """A graph with inputs of ``shapes`` and one output ``build(builder, *inputs)``."""
    b = fe.GraphBuilder(name)
    xs = [b.input(f"x{k}", s) for k, s in enumerate(shapes)]
    b.output(build(b, *xs))
    return b.build()


# ----------------------------------------------------------------------------- scheme
def test_activation_qparams_cover_range_and_zero():
    for lo, hi in [(-1.0, 3.0), (0.0, 6.0), (-5.0, -1.0), (2.0, 2.5), (0.0, 0.0)]:
        qp = fe.activation_qparams(lo, hi)
        assert -128 <= qp.zero_point <= 127
        assert qp.scale * (-128 - qp.zero_point) <= min(lo, 0) + 1e-12
        assert qp.scale * (127 - qp.zero_point) >= max(hi, 0) - qp.scale / 2


def test_conv_weights_bias_and_multipliers():
    w = RNG.normal(size=(6, 3, 3, 3)).astype(np.float32)
    w[2] = 0                                                      # an all-zero channel
    bias = RNG.normal(size=6).astype(np.float32)
    g = one_op(lambda b, x: b.conv2d(x, w, bias, padding=1), (2, 3, 5, 5))
    q = fe.quantize(g, calib_set(g))
    node = q.nodes[0]
    x, wq, bq = (q.tensors[i] for i in node.inputs)
    y = q.tensors[node.outputs[0]]
    sx, zx, sy = x.qparams.scale, x.qparams.zero_point, y.qparams.scale
    sw = np.array(wq.qparams.scale)
    assert wq.dtype == "int8" and bq.dtype == "int32" and wq.qparams.axis == 0
    qw = wq.data.astype(np.int64)
    for c in range(6):
        amax = np.abs(w[c]).max()
        if amax:
            assert np.abs(qw[c]).max() == 127
            assert math.isclose(sw[c], float(amax) / 127, rel_tol=1e-9)
        assert np.all(np.abs(w[c] / sw[c] - qw[c]) <= 0.5 + 1e-6)
        want = math.floor(bias[c] / (sx * sw[c]) + 0.5) - zx * int(qw[c].sum())
        assert int(bq.data[c]) == want
        m, s = node.params["mult"][c], node.params["shift"][c]
        assert 2 ** 15 <= m < 2 ** 16
        assert math.isclose(m * 2.0 ** -s, sx * sw[c] / sy, rel_tol=2 ** -15)
    assert node.params["pad_value"] == zx and node.params["zero_point"] == y.qparams.zero_point


def test_lookup_tables():
    g = one_op(lambda b, x: b.add(b.sigmoid(x), b.tanh(x)), (4, 5))
    q = fe.quantize(g, calib_set(g, scale=3.0))
    sig, tanh = q.nodes[0], q.nodes[1]
    qx = q.tensors[sig.inputs[0]].qparams
    for node, f, (s, z) in ((sig, lambda v: 1 / (1 + math.exp(-v)), (1 / 256, -128)),
                            (tanh, math.tanh, (1 / 128, 0))):
        out = q.tensors[node.outputs[0]].qparams
        assert (out.scale, out.zero_point) == (s, z)
        want = [min(127, max(-128, math.floor(f(qx.scale * (v - qx.zero_point)) / s + 0.5) + z))
                for v in range(-128, 128)]
        assert node.params["lut"] == want


def test_relu6_and_clip_bounds():
    g = one_op(lambda b, x: b.relu6(b.gemm(x, RNG.normal(size=(8, 4)) * 3)), (16, 4))
    q = fe.quantize(g, calib_set(g))
    p, qp = q.nodes[0].params, q.tensors[q.outputs[0]].qparams
    assert p["lo"] == max(-128, qp.zero_point)
    assert p["hi"] == min(127, qp.zero_point + math.floor(6 / qp.scale + 0.5))


# ----------------------------------------------------------------------------- accuracy
W = {"conv": RNG.normal(size=(5, 3, 3, 3)), "dw": RNG.normal(size=(3, 1, 3, 3)),
     "fc": RNG.normal(size=(7, 6)), "bias5": RNG.normal(size=5)}
OPS = {
    "conv": (lambda b, x: b.conv2d(x, W["conv"], W["bias5"], 2, 1), [(2, 3, 7, 7)]),
    "conv_relu": (lambda b, x: b.relu(b.conv2d(x, W["conv"], None, 1, (1, 0, 2, 1), 2)),
                  [(2, 3, 7, 7)]),
    "depthwise_relu6": (lambda b, x: b.relu6(b.conv2d(x, W["dw"], None, 1, 1, groups=3)),
                        [(2, 3, 6, 6)]),
    "gemm": (lambda b, x: b.gemm(x, W["fc"]), [(3, 4, 6)]),
    "add_relu": (lambda b, x, y: b.relu(b.add(x, y)), [(2, 3, 4), (3, 4)]),
    "add_const": (lambda b, x: b.add(x, RNG.normal(size=(4, 1)) * 5), [(2, 4, 3)]),
    "mul": (lambda b, x, y: b.mul(x, y), [(2, 3, 4), (2, 3, 1)]),
    "concat": (lambda b, x, y: b.concat([x, b.relu(y)], 1), [(2, 3, 4), (2, 2, 4)]),
    "maxpool": (lambda b, x: b.max_pool(x, 3, 2, 1), [(2, 3, 7, 7)]),
    "avgpool": (lambda b, x: b.avg_pool(x, 3, 1, 1), [(2, 3, 5, 5)]),
    "avgpool_incl": (lambda b, x: b.avg_pool(x, 2, 2, 1, count_include_pad=True), [(2, 3, 5, 5)]),
    "gap": (lambda b, x: b.global_avg_pool(x), [(2, 3, 4, 5)]),
    "clip": (lambda b, x: b.clip(b.max_pool(x, 2), -0.5, 1.0), [(2, 3, 4, 4)]),
    "sigmoid": (lambda b, x: b.sigmoid(x), [(4, 5)]),
    "tanh": (lambda b, x: b.tanh(x), [(4, 5)]),
    "reshape_slice": (lambda b, x: b.slice(b.flatten(x), 1, 2, 9), [(2, 3, 2, 2)]),
    "batchnorm": (lambda b, x: b.batch_norm(x, *RNG.uniform(0.5, 2, (4, 3))), [(2, 3, 4, 4)]),
}


def _float_on_dequantized(q: fe.Graph, g: fe.Graph, qin: dict) -> np.ndarray:
    """The float graph evaluated on the dequantised int8 inputs, with dequantised weights
    (bias: ``(b_q + z_x sum(w_q)) s_x s_w``)."""
    d = fe.Graph(g.name, dict(g.tensors), g.nodes, g.inputs, g.outputs)
    for node in g.nodes:
        if isinstance(node.op, (fe.Conv2d, fe.Gemm)):
            qn = next(n for n in q.nodes if n.name == node.name)
            x, w, bias = (q.tensors[i] for i in qn.inputs)
            sw = np.array(w.qparams.scale)
            wd = w.data * sw.reshape((-1,) + (1,) * (w.data.ndim - 1))
            zx = x.qparams.zero_point
            bd = (bias.data + zx * w.data.reshape(len(sw), -1).sum(1)) * \
                np.array(bias.qparams.scale)
            for name, v in ((node.inputs[1], wd), (node.inputs[2], bd)):
                d.tensors[name] = fe.Tensor(name, v.shape, "float32", v)
    feeds = {k: fe.dequantize_array(v, q.tensors[k].qparams) for k, v in qin.items()}
    return fe.run_float(d, feeds)[g.outputs[0]]


@pytest.mark.parametrize("name", OPS)
def test_operator_error_within_one_lsb(name):
    """Given its int8 inputs, each quantised operator is within 1 output LSB of the float
    operator on the dequantised inputs and weights (the requantisation error alone)."""
    build, shapes = OPS[name]
    g = one_op(build, *shapes, name=name)
    samples = calib_set(g, 8)
    q = fe.quantize(g, samples)
    assert len(q.nodes) == len(g.nodes)
    out = q.outputs[0]
    qp = q.tensors[out].qparams
    for feeds in samples:
        qin = {k: fe.quantize_array(v, q.tensors[k].qparams) for k, v in feeds.items()}
        got = fe.dequantize_array(fe.run_quantized(q, qin)[out], qp)
        want = _float_on_dequantized(q, g, qin)
        assert np.abs(got - want).max() <= 1.0 * qp.scale + 1e-9, name
        # and the whole thing against the float graph on the float input
        assert np.abs(got - fe.run_float(g, feeds)[out]).max() <= 0.08 * (np.ptp(want) + 1e-9)


def test_softmax_host_output_and_misplaced_softmax():
    g = one_op(lambda b, x: b.softmax(b.gemm(x, W["fc"])), (5, 6))
    samples = calib_set(g)
    q = fe.quantize(g, samples)
    assert q.tensors[q.outputs[0]].dtype == "float32" and q.nodes[-1].params["host"]
    got = fe.run_dequantized(q, samples[0])[q.outputs[0]]
    np.testing.assert_allclose(got.sum(axis=1), 1.0)
    np.testing.assert_allclose(got, fe.run_float(g, samples[0])[g.outputs[0]], atol=0.05)
    g = one_op(lambda b, x: b.relu(b.softmax(x)), (2, 3))
    with pytest.raises(fe.FrontendError, match=r"node 'softmax\d+' \(Softmax\): .*graph outputs"):
        fe.quantize(g, calib_set(g))


# ----------------------------------------------------------------------------- outside check
LIMITS = {  # example: (max rel. error on calibration, on random inputs, min top-1 agreement)
    "mlp": (0.03, 0.10, 0.95), "cnn": (0.04, 0.06, 0.97), "lstm": (0.03, 0.04, 0.9)}


@pytest.mark.parametrize("name", LIMITS)
def test_examples_agree_with_onnxruntime(name):
    model, x, shape = examples.EXAMPLES[name]()
    g = fe.load_onnx(model)
    rng = np.random.default_rng(1)
    calib = [{x: rng.standard_normal(shape).astype(np.float32)} for _ in range(8)]
    fresh = [{x: rng.standard_normal(shape).astype(np.float32)} for _ in range(4)]
    q = fe.quantize(g, calib)
    cal_lim, rnd_lim, top1 = LIMITS[name]
    for feeds, lim in ((calib, cal_lim), (fresh, rnd_lim)):
        a, = agreement(model, q, feeds)
        assert a.rel_error < lim, a
        assert a.mean_rel_error < 0.01, a
        assert a.top1 >= top1, a
    f, = agreement(model, g, fresh)
    assert f.rel_error < 1e-5


def test_agreement_detects_a_broken_model():
    """The outside check can fail: corrupt one quantised weight and the error jumps."""
    model, x, shape = examples.mlp()
    g = fe.load_onnx(model)
    feeds = [{x: RNG.standard_normal(shape).astype(np.float32)} for _ in range(4)]
    q = fe.quantize(g, feeds)
    w = q.tensors[q.nodes[-1].inputs[1]]
    w.data = -w.data
    a, = agreement(model, q, feeds)
    assert a.rel_error > 0.2 and a.top1 < 0.5


# ----------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("suffix", [".npz", ".json", ".qir"])
def test_save_load_roundtrip(tmp_path, suffix):
    model, x, shape = examples.lstm(seq=3)
    g = fe.load_onnx(model)
    samples = calib_set(g, 2)
    q = fe.quantize(g, samples)
    path = tmp_path / f"m{suffix}"
    fe.save(q, path)
    r = fe.load(path)
    assert r.quantized and r.inputs == q.inputs and r.outputs == q.outputs
    assert [(n.name, n.op, n.inputs, n.outputs, n.params) for n in r.nodes] == \
        [(n.name, n.op, n.inputs, n.outputs, n.params) for n in q.nodes]
    for k, t in q.tensors.items():
        assert r.tensors[k].qparams == t.qparams and r.tensors[k].dtype == t.dtype
        if t.data is not None:
            assert r.tensors[k].data.dtype == t.data.dtype
            np.testing.assert_array_equal(r.tensors[k].data, t.data)
    qin = {x: fe.quantize_array(samples[0][x], q.tensors[x].qparams)}
    np.testing.assert_array_equal(fe.run_quantized(r, qin)["logits"],
                                  fe.run_quantized(q, qin)["logits"])
    f = tmp_path / "float.json"
    fe.save(g, f)
    np.testing.assert_allclose(fe.run_float(fe.load(f), samples[0])["logits"],
                               fe.run_float(g, samples[0])["logits"], rtol=1e-6)


def test_load_rejects_other_files(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"junk")
    (tmp_path / "y.json").write_text('{"format": "other"}')
    for f in ("x.npz", "y.json"):
        with pytest.raises(fe.FrontendError):
            fe.load(tmp_path / f)
