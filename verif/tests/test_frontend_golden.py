"""The int8 golden executor against independent plain-Python-loop references.

Each test builds a one-node quantised graph with *random integer parameters* (multipliers,
shifts, zero points, clamp bounds, tables), runs it through ``run_quantized`` and compares it
bit for bit with a reference written here from the operator definitions, using Python ints
only (no numpy arithmetic, no hasp.sw.golden).
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from hasp.sw.frontend import (Add, AvgPool, Clip, Concat, Conv2d, Gemm, GlobalAvgPool, Graph,
                              MaxPool, Mul, Node, Reshape, Sigmoid, Slice, Softmax, Tanh, Tensor,
                              infer_shapes, run_quantized)

CASES = 40


# ----------------------------------------------------------------------------- references
def rq(acc: int, mult: int, shift: int, zp: int, lo: int = -128, hi: int = 127) -> int:
    """Round-half-up fixed-point requantisation with Python integers."""
    v = acc * mult
    if shift:
        v = (v + (1 << (shift - 1))) >> shift      # Python >> floors: arithmetic shift
    return min(max(v + zp, lo), hi)


def wrap32(v: int) -> int:
    return (v + 2 ** 31) % 2 ** 32 - 2 ** 31


def ref_conv(x, w, bias, op, p):
    n, c, h, wd = x.shape
    cout, cg, kh, kw = w.shape
    og = cout // op.groups
    (sh, sw), (dh, dw), (pt, pl, pb, pr) = op.stride, op.dilation, op.padding
    ho = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, cout, ho, wo), np.int64)
    for b, o, i, j in itertools.product(range(n), range(cout), range(ho), range(wo)):
        g = o // og
        acc = int(bias[o])
        for ci, u, v in itertools.product(range(cg), range(kh), range(kw)):
            y, xx = i * sh - pt + u * dh, j * sw - pl + v * dw
            val = int(x[b, g * cg + ci, y, xx]) if 0 <= y < h and 0 <= xx < wd else p["pad_value"]
            acc += val * int(w[o, ci, u, v])
        out[b, o, i, j] = rq(wrap32(acc), p["mult"][o], p["shift"][o], p["zero_point"],
                             p["lo"], p["hi"])
    return out


def ref_gemm(x, w, bias, p):
    flat = x.reshape(-1, x.shape[-1])
    out = np.zeros((flat.shape[0], w.shape[0]), np.int64)
    for m, o in itertools.product(range(flat.shape[0]), range(w.shape[0])):
        acc = int(bias[o]) + sum(int(a) * int(b) for a, b in zip(flat[m], w[o]))
        out[m, o] = rq(wrap32(acc), p["mult"][o], p["shift"][o], p["zero_point"], p["lo"], p["hi"])
    return out.reshape(x.shape[:-1] + (w.shape[0],))


def _bcast_pairs(a, b):
    shape = np.broadcast_shapes(a.shape, b.shape)
    A, B = np.broadcast_to(a, shape), np.broadcast_to(b, shape)
    return shape, [(int(A[i]), int(B[i])) for i in np.ndindex(*shape)]


def ref_add(a, b, p):
    (za, zb), (ma, mb) = p["in_zero_points"], p["in_mults"]
    shape, pairs = _bcast_pairs(a, b)
    vals = [rq((u - za) * ma + (v - zb) * mb, 1, p["shift"], p["zero_point"], p["lo"], p["hi"])
            for u, v in pairs]
    return np.array(vals, np.int64).reshape(shape)


def ref_mul(a, b, p):
    za, zb = p["in_zero_points"]
    shape, pairs = _bcast_pairs(a, b)
    vals = [rq((u - za) * (v - zb), p["mult"], p["shift"], p["zero_point"], p["lo"], p["hi"])
            for u, v in pairs]
    return np.array(vals, np.int64).reshape(shape)


def ref_concat(xs, axis, p):
    parts = []
    for x, z, m, s in zip(xs, p["in_zero_points"], p["mult"], p["shift"]):
        vals = [rq(int(v) - z, m, s, p["zero_point"]) for v in x.reshape(-1)]
        parts.append(np.array(vals, np.int64).reshape(x.shape))
    return np.concatenate(parts, axis=axis)


def _pool_positions(shape, kernel, stride, padding, dilation=(1, 1)):
    """Yield (i, j, [in-bounds (y, x)], number of positions inside the padded input)."""
    h, w = shape[2:]
    (kh, kw), (sh, sw), (pt, pl, pb, pr), (dh, dw) = kernel, stride, padding, dilation
    ho = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    wo = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    for i, j in itertools.product(range(ho), range(wo)):
        pts = [(i * sh - pt + u * dh, j * sw - pl + v * dw) for u in range(kh) for v in range(kw)]
        yield i, j, [(y, x) for y, x in pts if 0 <= y < h and 0 <= x < w], len(pts)


def ref_maxpool(x, op):
    res = {}
    for b, c in itertools.product(range(x.shape[0]), range(x.shape[1])):
        for i, j, pts, _ in _pool_positions(x.shape, op.kernel, op.stride, op.padding, op.dilation):
            res[b, c, i, j] = max(int(x[b, c, y, xx]) for y, xx in pts)
    return _from_dict(res)


def ref_avgpool(x, kernel, stride, padding, include_pad, p):
    table = dict(zip(p["divisors"], zip(p["mult"], p["shift"])))
    res = {}
    for b, c in itertools.product(range(x.shape[0]), range(x.shape[1])):
        for i, j, pts, total in _pool_positions(x.shape, kernel, stride, padding):
            acc = sum(int(x[b, c, y, xx]) - p["in_zero_point"] for y, xx in pts)
            m, s = table[total if include_pad else len(pts)]
            res[b, c, i, j] = rq(acc, m, s, p["zero_point"])
    return _from_dict(res)


def _from_dict(res):
    shape = tuple(d + 1 for d in max(res))
    out = np.zeros(shape, np.int64)
    for k, v in res.items():
        out[k] = v
    return out


def avg_divisors(shape, kernel, stride, padding, include_pad):
    return sorted({total if include_pad else len(pts)
                   for _, _, pts, total in _pool_positions(shape, kernel, stride, padding)})


# ----------------------------------------------------------------------------- harness
def run_node(op, acts, consts=(), params=None, const_dtypes=()):
    """Run a one-node quantised graph; ``acts`` are int8 inputs, ``consts`` constant inputs."""
    g = Graph("t", quantized=True)
    names = []
    for k, a in enumerate(acts):
        g.tensors[f"in{k}"] = Tensor(f"in{k}", a.shape, "int8")
        g.inputs.append(f"in{k}")
        names.append(f"in{k}")
    for k, (c, dt) in enumerate(zip(consts, const_dtypes)):
        g.tensors[f"c{k}"] = Tensor(f"c{k}", c.shape, dt, c)
        names.append(f"c{k}")
    shapes = infer_shapes(op, [g.tensors[n].shape for n in names])
    g.tensors["out"] = Tensor("out", shapes[0], "int8")
    g.nodes.append(Node("node", op, names, ["out"], params or {}))
    g.outputs.append("out")
    return run_quantized(g, {f"in{k}": a for k, a in enumerate(acts)})["out"]


def i8(rng, shape):
    return rng.integers(-128, 128, size=shape).astype(np.int8)


def bounds(rng):
    if rng.random() < 0.5:
        return {"lo": -128, "hi": 127}
    lo = int(rng.integers(-128, 60))
    return {"lo": lo, "hi": int(rng.integers(lo, 128))}


def requant(rng, n, gain):
    """Random ``(mult, shift)`` pairs around ``mult * 2**-shift ~ 2**-gain`` (``gain``: log2
    of the accumulator magnitude over the int8 range), so outputs are mostly not saturated
    and small shifts, where every rounding step shows, are covered."""
    shift = rng.integers(max(0, gain - 2), gain + 17, n)
    hi = np.minimum(2 ** 16, np.maximum(2, 2.0 ** (shift - gain + 1))).astype(np.int64)
    return {"mult": [int(rng.integers(0, h)) for h in hi], "shift": [int(v) for v in shift],
            "zero_point": int(rng.integers(-128, 128))}


def check(got, want):
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got.astype(np.int64), want)


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("seed", range(CASES))
def test_conv2d(seed):
    rng = np.random.default_rng(seed)
    groups = int(rng.choice([1, 1, 2, 3]))
    cg, og = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    if seed % 5 == 0:                                   # depthwise
        og = 1
        groups = int(rng.integers(2, 6))
        cg = 1
    kh, kw = (int(v) for v in rng.integers(1, 4, 2))
    dil = tuple(int(v) for v in rng.integers(1, 3, 2))
    pad = tuple(int(v) for v in rng.integers(0, 3, 4))
    stride = tuple(int(v) for v in rng.integers(1, 4, 2))
    h = int(rng.integers(dil[0] * (kh - 1) + 1, 9))
    w = int(rng.integers(dil[1] * (kw - 1) + 1, 9))
    x = i8(rng, (int(rng.integers(1, 3)), groups * cg, h, w))
    wt = i8(rng, (groups * og, cg, kh, kw))
    lim = 2 ** 31 - 1 if seed % 7 == 0 else 2 ** 20        # seed % 7: int32 wrap-around
    bias = rng.integers(-lim, lim, groups * og, endpoint=True).astype(np.int32)
    op = Conv2d(stride, pad, dil, groups)
    p = {"pad_value": int(rng.integers(-128, 128)), **requant(rng, groups * og, 8),
         **bounds(rng)}
    got = run_node(op, [x], [wt, bias], p, ["int8", "int32"])
    check(got, ref_conv(x, wt, bias, op, p))


@pytest.mark.parametrize("seed", range(CASES))
def test_gemm(seed):
    rng = np.random.default_rng(seed)
    k, n = int(rng.integers(1, 40)), int(rng.integers(1, 9))
    lead = tuple(int(v) for v in rng.integers(1, 4, int(rng.integers(1, 3))))
    x, w = i8(rng, lead + (k,)), i8(rng, (n, k))
    lim = 2 ** 31 - 1 if seed % 7 == 0 else 2 ** 20
    bias = rng.integers(-lim, lim, n, endpoint=True).astype(np.int32)
    p = {**requant(rng, n, 8), **bounds(rng)}
    check(run_node(Gemm(), [x], [w, bias], p, ["int8", "int32"]), ref_gemm(x, w, bias, p))


def _bshapes(rng):
    shape = tuple(int(v) for v in rng.integers(1, 7, int(rng.integers(1, 5))))
    other = tuple(1 if rng.random() < 0.3 else d for d in shape)[int(rng.integers(0, len(shape))):]
    return (shape, other) if rng.random() < 0.5 else (other, shape)


@pytest.mark.parametrize("seed", range(CASES))
def test_add(seed):
    rng = np.random.default_rng(seed)
    sa, sb = _bshapes(rng)
    a, b = i8(rng, sa), i8(rng, sb)
    shift = int(rng.integers(0, 8 if seed % 2 else 21))
    p = {"in_zero_points": [int(v) for v in rng.integers(-128, 128, 2)],
         "in_mults": [int(v) for v in rng.integers(0, min(2 ** 16, 2 ** shift + 1), 2)],
         "shift": shift, "zero_point": int(rng.integers(-128, 128)), **bounds(rng)}
    if seed % 4 == 0:                                   # constant second operand
        got = run_node(Add(), [a], [b], p, ["int8"])
    else:
        got = run_node(Add(), [a, b], [], p)
    check(got, ref_add(a, b, p))


@pytest.mark.parametrize("seed", range(CASES))
def test_mul(seed):
    rng = np.random.default_rng(seed)
    sa, sb = _bshapes(rng)
    a, b = i8(rng, sa), i8(rng, sb)
    rq_ = requant(rng, 1, int(rng.integers(0, 9)))
    p = {"in_zero_points": [int(v) for v in rng.integers(-128, 128, 2)],
         "mult": rq_["mult"][0], "shift": rq_["shift"][0], "zero_point": rq_["zero_point"],
         **bounds(rng)}
    check(run_node(Mul(), [a, b], [], p), ref_mul(a, b, p))


@pytest.mark.parametrize("seed", range(CASES))
def test_concat(seed):
    rng = np.random.default_rng(seed)
    rank = int(rng.integers(1, 5))
    base = [int(v) for v in rng.integers(1, 4, rank)]
    axis = int(rng.integers(0, rank))
    xs = []
    for _ in range(int(rng.integers(2, 5))):
        s = list(base)
        s[axis] = int(rng.integers(1, 4))
        xs.append(i8(rng, s))
    rq_ = requant(rng, len(xs), 1)
    p = {"in_zero_points": [int(v) for v in rng.integers(-128, 128, len(xs))], **rq_}
    check(run_node(Concat(axis), xs, [], p), ref_concat(xs, axis, p))


def _window(rng, max_dil=2):
    kernel = tuple(int(v) for v in rng.integers(1, 4, 2))
    dil = tuple(int(v) for v in rng.integers(1, max_dil + 1, 2))
    pad = tuple(int(rng.integers(0, k)) for k in kernel * 2)          # pads < kernel
    stride = tuple(int(v) for v in rng.integers(1, 4, 2))
    size = tuple(int(rng.integers(d * (k - 1) + 1, 9)) for k, d in zip(kernel, dil))
    return kernel, stride, pad, dil, size


@pytest.mark.parametrize("seed", range(CASES))
def test_maxpool(seed):
    rng = np.random.default_rng(seed)
    kernel, stride, pad, dil, size = _window(rng)
    x = i8(rng, (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + size)
    op = MaxPool(kernel, stride, pad, dil)
    check(run_node(op, [x]), ref_maxpool(x, op))


@pytest.mark.parametrize("seed", range(CASES))
def test_avgpool(seed):
    rng = np.random.default_rng(seed)
    kernel, stride, pad, _, size = _window(rng, max_dil=1)
    include = bool(seed % 2)
    x = i8(rng, (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + size)
    divs = avg_divisors(x.shape, kernel, stride, pad, include)
    rq_ = requant(rng, len(divs), 2)
    p = {"in_zero_point": int(rng.integers(-128, 128)), "divisors": divs, **rq_}
    got = run_node(AvgPool(kernel, stride, pad, include), [x], [], p)
    check(got, ref_avgpool(x, kernel, stride, pad, include, p))


@pytest.mark.parametrize("seed", range(CASES // 2))
def test_global_avgpool(seed):
    rng = np.random.default_rng(seed)
    x = i8(rng, tuple(int(v) for v in rng.integers(1, 7, 4)))
    rq_ = requant(rng, 1, 4)
    p = {"in_zero_point": int(rng.integers(-128, 128)), "divisors": [x.shape[2] * x.shape[3]],
         **rq_}
    want = ref_avgpool(x, x.shape[2:], (1, 1), (0, 0, 0, 0), False, p)
    check(run_node(GlobalAvgPool(), [x], [], p), want)


@pytest.mark.parametrize("seed", range(CASES // 2))
def test_clip_lut_reshape_slice(seed):
    rng = np.random.default_rng(seed)
    x = i8(rng, tuple(int(v) for v in rng.integers(1, 5, 3)))
    b = bounds(rng)
    check(run_node(Clip(), [x], [], b),
          np.array([min(max(int(v), b["lo"]), b["hi"]) for v in x.reshape(-1)]).reshape(x.shape))
    table = [int(v) for v in rng.integers(-128, 128, 256)]
    for op in (Sigmoid(), Tanh()):
        check(run_node(op, [x], [], {"lut": table}),
              np.array([table[int(v) + 128] for v in x.reshape(-1)]).reshape(x.shape))
    check(run_node(Reshape((x.size,)), [x]), np.array([int(v) for v in x.reshape(-1)]))
    axis = int(rng.integers(0, 3))
    start = int(rng.integers(0, x.shape[axis]))
    stop = int(rng.integers(start + 1, x.shape[axis] + 1))
    want = np.array([[[int(x[i, j, k]) for k in range(x.shape[2])
                       if axis != 2 or start <= k < stop]
                      for j in range(x.shape[1]) if axis != 1 or start <= j < stop]
                     for i in range(x.shape[0]) if axis != 0 or start <= i < stop])
    check(run_node(Slice(axis, start, stop), [x]), want)


def test_host_softmax():
    rng = np.random.default_rng(0)
    x = i8(rng, (3, 7))
    g = Graph("t", quantized=True, inputs=["x"], outputs=["y"])
    g.tensors = {"x": Tensor("x", x.shape, "int8"), "y": Tensor("y", x.shape, "float32")}
    g.nodes = [Node("sm", Softmax((1,)), ["x"], ["y"], {"in_scale": 0.1, "in_zero_point": 5})]
    got = run_quantized(g, {"x": x})["y"]
    for r in range(3):
        e = [math.exp(0.1 * (int(v) - 5)) for v in x[r]]
        np.testing.assert_allclose(got[r], [v / sum(e) for v in e], rtol=1e-12)


def test_reference_catches_a_rounding_change():
    """The references can fail: round-half-even instead of half-up changes results."""
    assert rq(5, 1, 1, 0) == 3 and rq(-5, 1, 1, 0) == -2
    x = np.full((1, 1, 1, 2), 1, np.int8)
    p = {"in_zero_point": 0, "divisors": [2], "mult": [1], "shift": [2], "zero_point": 0}
    # (1 + 1) * 1 / 4 = 0.5 rounds up to 1 (half-even would give 0)
    check(run_node(AvgPool((1, 2), (1, 1), (0, 0, 0, 0), False), [x], [], p),
          ref_avgpool(x, (1, 2), (1, 1), (0, 0, 0, 0), False, p))
    assert ref_avgpool(x, (1, 2), (1, 1), (0, 0, 0, 0), False, p)[0, 0, 0, 0] == 1
