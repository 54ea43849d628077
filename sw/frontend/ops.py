"""Integer operator definitions of the accelerator, built on :mod:`hasp.sw.golden`.

Every function here is bit-exact *the* definition of one int8 operator: the golden executor
calls them and the hardware must reproduce them. MAC operators use :func:`golden.gemm`; every
rounding is :func:`golden.requantize` (round half up, arithmetic shift, clamp). Operands are
int8 values held in any integer dtype; results are int64 arrays with int8 values.

Besides GEMM + requantise, the vector unit needs these primitives (``rq`` is
``golden.requantize``; ``lo``/``hi`` are clamp bounds, a fused ReLU/ReLU6/Clip):

=================  ===========================================================================
``rescale``        ``y = rq(x - zx, mult, shift, zy, lo, hi)`` (Concat inputs)
``add``            ``y = rq((a - za) * ma + (b - zb) * mb, 1, shift, zy, lo, hi)``
``mul``            ``y = rq((a - za) * (b - zb), mult, shift, zy, lo, hi)``
``lut``            ``y = table[x + 128]`` (Sigmoid, Tanh: 256-entry int8 -> int8)
``clamp``          ``y = rq(x, 1, 0, 0, lo, hi)`` (stand-alone ReLU/Clip)
``max_pool``       ``y = max`` over the in-bounds window elements
``avg_pool``       ``acc = sum(x - zx)`` over the in-bounds window elements;
                   ``y = rq(acc, mult[n], shift[n], zy)`` with ``n`` the divisor of the position
=================  ===========================================================================

Convolutions pad with the input zero point ``zx`` (the quantised 0.0) and add an int32 bias
into the GEMM accumulator; the quantiser has folded ``-zx * sum(w)`` into that bias.
"""
from __future__ import annotations

import numpy as np

from hasp.sw import golden

__all__ = ["pad", "windows", "conv2d_acc", "requantize_channels", "conv2d", "fully_connected",
           "rescale", "add", "mul", "lut", "clamp", "max_pool", "window_counts", "avg_pool"]


# ----------------------------------------------------------------------------- data movement
def pad(x, padding, value):
    """Pad the H and W axes of NCHW ``x`` by ``(top, left, bottom, right)`` with ``value``."""
    t, l, b, r = padding
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


def windows(x, kernel, stride, dilation=(1, 1)):
    """Sliding windows of an (already padded) NCHW array: a view ``(N, C, Ho, Wo, kh, kw)``."""
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    v = np.lib.stride_tricks.sliding_window_view(x, span, axis=(2, 3))
    return v[:, :, ::stride[0], ::stride[1], ::dilation[0], ::dilation[1]]


def conv2d_acc(x, w, bias, stride, padding, dilation, groups, pad_value, matmul):
    """Convolution as one GEMM per group over im2col columns.

    ``matmul(a, b, acc)`` computes ``acc + a @ b`` (``golden.gemm`` for int8, a float
    product for the float model). Returns the accumulators ``(N, Cout, Ho, Wo)``.
    """
    n = x.shape[0]
    cout, cg, kh, kw = w.shape
    og = cout // groups
    win = windows(pad(x, padding, pad_value), (kh, kw), stride, dilation)
    ho, wo = win.shape[2:4]
    outs = []
    for g in range(groups):
        cols = win[:, g * cg:(g + 1) * cg].transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, -1)
        wg = w[g * og:(g + 1) * og].reshape(og, -1)
        outs.append(matmul(cols, wg.T, bias[None, g * og:(g + 1) * og]))
    return np.concatenate(outs, axis=1).reshape(n, ho, wo, cout).transpose(0, 3, 1, 2)


# ----------------------------------------------------------------------------- int8 operators
def requantize_channels(acc, mult, shift, zero_point, lo=-128, hi=127, axis=1):
    """:func:`golden.requantize` with one ``(mult[c], shift[c])`` per index ``c`` of ``axis``."""
    acc = np.moveaxis(np.asarray(acc, dtype=np.int64), axis, 0)
    out = np.stack([golden.requantize(a, int(m), int(s), zero_point, lo, hi)
                    for a, m, s in zip(acc, mult, shift)])
    return np.moveaxis(out, 0, axis)


def _gemm(a, b, acc):
    return golden.gemm(a, b, acc)


def conv2d(x, w, bias, stride, padding, dilation, groups, pad_value,
           mult, shift, zero_point, lo=-128, hi=127):
    """int8 convolution: ``acc = bias + sum(xpad * w)`` in the wrapping int32 accumulator of
    :func:`golden.gemm` (``xpad`` padded with ``pad_value``), then per-channel requantise."""
    acc = conv2d_acc(np.asarray(x), np.asarray(w), np.asarray(bias, dtype=np.int64), stride,
                     padding, dilation, groups, pad_value, _gemm)
    return requantize_channels(acc, mult, shift, zero_point, lo, hi, axis=1)


def fully_connected(x, w, bias, mult, shift, zero_point, lo=-128, hi=127):
    """int8 fully connected layer on the last axis: ``rq(bias + x @ w.T)`` per output."""
    x = np.asarray(x)
    acc = golden.gemm(x.reshape(-1, x.shape[-1]), np.asarray(w).T,
                      np.asarray(bias, dtype=np.int64)[None])
    out = requantize_channels(acc, mult, shift, zero_point, lo, hi, axis=1)
    return out.reshape(x.shape[:-1] + (w.shape[0],))


def rescale(x, zx, mult, shift, zero_point, lo=-128, hi=127):
    """Change the quantisation of ``x``: ``rq(x - zx, mult, shift, zero_point, lo, hi)``."""
    return golden.requantize(np.asarray(x, dtype=np.int64) - zx, mult, shift, zero_point, lo, hi)


def add(a, b, za, zb, ma, mb, shift, zero_point, lo=-128, hi=127):
    """Element-wise add of two int8 tensors (numpy broadcasting).

    Each input is re-centred and scaled by an unsigned 16-bit multiplier sharing one
    ``shift``: ``acc = (a - za) * ma + (b - zb) * mb`` (exact, |acc| < 2**25), then
    ``rq(acc, 1, shift, zero_point, lo, hi)``.
    """
    acc = ((np.asarray(a, dtype=np.int64) - za) * ma + (np.asarray(b, dtype=np.int64) - zb) * mb)
    return golden.requantize(acc, 1, shift, zero_point, lo, hi)


def mul(a, b, za, zb, mult, shift, zero_point, lo=-128, hi=127):
    """Element-wise multiply (broadcasting): ``rq((a - za) * (b - zb), mult, shift, zp)``."""
    acc = (np.asarray(a, dtype=np.int64) - za) * (np.asarray(b, dtype=np.int64) - zb)
    return golden.requantize(acc, mult, shift, zero_point, lo, hi)


def lut(x, table):
    """Table lookup ``table[x + 128]`` with a 256-entry int8 table."""
    return np.asarray(table, dtype=np.int64)[np.asarray(x, dtype=np.int64) + 128]


def clamp(x, lo, hi):
    """Clamp to ``[lo, hi]``, i.e. ``rq(x, 1, 0, 0, lo, hi)``."""
    return golden.requantize(x, 1, 0, 0, lo, hi)


def max_pool(x, kernel, stride, padding, dilation=(1, 1)):
    """Max over each window; padded positions hold -128 so they never exceed real ones."""
    return windows(pad(np.asarray(x, dtype=np.int64), padding, -128),
                   kernel, stride, dilation).max(axis=(4, 5))


def window_counts(shape, kernel, stride, padding, count_include_pad):
    """Divisor of every output position ``(Ho, Wo)`` of an average pool over ``shape``."""
    ones = np.ones((1, 1) + tuple(shape[2:]), dtype=np.int64)
    fill = 1 if count_include_pad else 0
    return windows(pad(ones, padding, fill), kernel, stride).sum(axis=(4, 5))[0, 0]


def avg_pool(x, zx, kernel, stride, padding, count_include_pad, divisors, mult, shift,
             zero_point, lo=-128, hi=127):
    """int8 average pool: ``acc = sum(x - zx)`` over the window (padded positions add 0),
    then ``rq(acc, mult[i], shift[i], zero_point)`` where ``divisors[i]`` is the divisor of
    the output position (see :func:`window_counts`)."""
    x = np.asarray(x, dtype=np.int64)
    acc = windows(pad(x - zx, padding, 0), kernel, stride).sum(axis=(4, 5))
    counts = window_counts(x.shape, kernel, stride, padding, count_include_pad)
    out = np.empty_like(acc)
    if not set(np.unique(counts).tolist()) <= set(divisors):
        raise ValueError(f"divisors {divisors} miss some window sizes {np.unique(counts)}")
    for n, m, s in zip(divisors, mult, shift):
        sel = counts == n
        out[:, :, sel] = golden.requantize(acc[:, :, sel], int(m), int(s), zero_point, lo, hi)
    return out
