"""Bit-exact numpy golden arithmetic of the hardware.

Every operation here is *the* definition the RTL implements: the RTL tests, the functional chip
model and the quantiser all call these functions, so there is one definition of each rounding,
saturation and wrap-around rule.

Integer conventions
-------------------
* Operands are signed ``data_width``-bit integers (int8 by default).
* Accumulators are signed ``acc_width``-bit registers that wrap around (two's complement), as
  the hardware adders do. With int8 operands and int32 accumulators the wrap cannot happen for
  K < 2**17, but it is modelled anyway.
* Requantisation (int32 -> int8) is ``clamp(((acc * mult + round) >> shift) + zero_point)``
  with an arithmetic right shift and ``round = 1 << (shift - 1)`` (round half up; 0 for
  ``shift == 0``). ``mult`` is an unsigned ``MULT_BITS``-bit integer and ``shift`` is in
  ``[0, SHIFT_MAX]``. A real scale ``s`` is represented as ``mult * 2**-shift``
  (see :func:`quantize_multiplier`).
"""
from __future__ import annotations

import numpy as np

MULT_BITS = 16
SHIFT_MAX = 47


def wrap(x, bits: int) -> np.ndarray:
    """Two's-complement wrap of integer array ``x`` to ``bits`` bits (as int64)."""
    x = np.asarray(x, dtype=np.int64)
    if bits >= 64:
        return x
    m = np.int64(1) << np.int64(bits)
    half = np.int64(1) << np.int64(bits - 1)
    return ((x + half) & (m - 1)) - half


def check_range(x, bits: int, what: str = "operand") -> np.ndarray:
    x = np.asarray(x)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"{what} out of signed {bits}-bit range [{lo}, {hi}]")
    return x.astype(np.int64)


def gemm(a, b, acc=None, data_width: int = 8, acc_width: int = 32) -> np.ndarray:
    """``acc + a @ b`` with signed ``data_width``-bit operands and a wrapping
    ``acc_width``-bit accumulator. ``a`` is M x K, ``b`` is K x N; returns int64 M x N."""
    a = check_range(a, data_width, "a")
    b = check_range(b, data_width, "b")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"gemm shapes do not match: a {a.shape}, b {b.shape}")
    out = a @ b
    if acc is not None:
        out = out + np.asarray(acc, dtype=np.int64)
    return wrap(out, acc_width)


def requantize(acc, mult: int, shift: int, zero_point: int = 0, lo: int = -128, hi: int = 127):
    """Requantise accumulators to the output type: see the module docstring. Returns int64."""
    if not 0 <= mult < (1 << MULT_BITS):
        raise ValueError(f"mult must be in [0, {1 << MULT_BITS}), not {mult}")
    if not 0 <= shift <= SHIFT_MAX:
        raise ValueError(f"shift must be in [0, {SHIFT_MAX}], not {shift}")
    if lo > hi:
        raise ValueError(f"clamp range is empty: lo={lo} > hi={hi}")
    x = np.asarray(acc, dtype=np.int64) * np.int64(mult)
    if shift:
        x = (x + (np.int64(1) << np.int64(shift - 1))) >> np.int64(shift)
    return np.clip(x + zero_point, lo, hi)


def quantize_multiplier(scale: float) -> tuple[int, int]:
    """Best ``(mult, shift)`` with ``mult * 2**-shift ~= scale``, ``mult < 2**MULT_BITS``."""
    if not scale > 0:
        raise ValueError(f"scale must be positive, not {scale}")
    mant, exp = np.frexp(scale)          # scale = mant * 2**exp, mant in [0.5, 1)
    shift = MULT_BITS - int(exp)
    mult = int(round(mant * (1 << MULT_BITS)))
    if mult == (1 << MULT_BITS):
        mult >>= 1
        shift -= 1
    if shift < 0:
        raise ValueError(f"scale {scale} too large for a {MULT_BITS}-bit multiplier")
    if shift > SHIFT_MAX:
        mult >>= shift - SHIFT_MAX
        shift = SHIFT_MAX
    return mult, shift


def relu_bounds(zero_point: int, lo: int = -128, hi: int = 127, relu6_q: int | None = None):
    """Clamp bounds implementing ReLU (and ReLU6 when ``relu6_q`` is the quantised 6.0)."""
    lo2 = max(lo, zero_point)
    hi2 = hi if relu6_q is None else min(hi, relu6_q)
    return lo2, hi2


def pack_lanes(values, width: int) -> int:
    """Pack integers into one word, element ``i`` at bits ``[i*width, (i+1)*width)``
    (two's complement). This is how a scratchpad word holds a vector."""
    mask = (1 << width) - 1
    word = 0
    for i, v in enumerate(np.asarray(values).ravel().tolist()):
        word |= (int(v) & mask) << (i * width)
    return word


def unpack_lanes(word: int, n: int, width: int, signed: bool = True) -> np.ndarray:
    """Inverse of :func:`pack_lanes`: ``n`` elements of ``width`` bits."""
    mask = (1 << width) - 1
    out = np.array([(word >> (i * width)) & mask for i in range(n)], dtype=np.int64)
    if signed:
        out = np.where(out >> (width - 1) & 1, out - (1 << width), out)
    return out


def gemm_tile_words(a_tiles, b_tiles, rows: int, cols: int, data_width: int = 8):
    """Scratchpad images of a tiled GEMM (see :func:`hasp.hw.gemm.gemm_command_layout`).

    ``a_tiles`` is A (M x K, M a multiple of ``rows``), ``b_tiles`` is B (K x N, N a multiple of
    ``cols``). Returns (A words, B words): tile ``mi`` of A is K words, word ``k`` = column ``k``
    of rows ``mi*rows ...``; tile ``nj`` of B is K words, word ``k`` = row ``k`` of columns
    ``nj*cols ...``."""
    a = np.asarray(a_tiles)
    b = np.asarray(b_tiles)
    M, K = a.shape
    N = b.shape[1]
    if M % rows or N % cols:
        raise ValueError(f"GEMM {M}x{K}x{N} does not tile by {rows}x{cols}")
    aw = [pack_lanes(a[mi:mi + rows, k], data_width) for mi in range(0, M, rows) for k in range(K)]
    bw = [pack_lanes(b[k, nj:nj + cols], data_width) for nj in range(0, N, cols) for k in range(K)]
    return aw, bw
