"""The golden arithmetic against plain-loop references."""
import numpy as np
import pytest

from hasp.sw import golden


def loop_gemm(A, B, acc_bits):
    M, K = len(A), len(A[0])
    N = len(B[0])
    out = [[0] * N for _ in range(M)]
    for i in range(M):
        for j in range(N):
            s = 0
            for k in range(K):
                s += int(A[i][k]) * int(B[k][j])
                s = (s + (1 << (acc_bits - 1))) % (1 << acc_bits) - (1 << (acc_bits - 1))
            out[i][j] = s
    return out


@pytest.mark.parametrize("seed", range(5))
def test_gemm_matches_loops(seed):
    rng = np.random.default_rng(seed)
    A = rng.integers(-128, 128, (3, 40))
    B = rng.integers(-128, 128, (40, 5))
    assert golden.gemm(A, B).tolist() == loop_gemm(A.tolist(), B.tolist(), 32)
    A4, B4 = rng.integers(-8, 8, (2, 30)), rng.integers(-8, 8, (30, 2))
    assert golden.gemm(A4, B4, data_width=4, acc_width=8).tolist() == loop_gemm(A4.tolist(), B4.tolist(), 8)


def test_gemm_rejects_out_of_range_operands():
    with pytest.raises(ValueError, match="out of signed 8-bit range"):
        golden.gemm([[128]], [[1]])


def loop_requant(x, mult, shift, zp, lo, hi):
    v = x * mult
    if shift:
        # floor((v + 2**(shift-1)) / 2**shift), written with Python's exact integer division
        v = (v + 2 ** (shift - 1)) // 2 ** shift
    return min(max(v + zp, lo), hi)


@pytest.mark.parametrize("seed", range(5))
def test_requantize_matches_loops(seed):
    rng = np.random.default_rng(seed)
    acc = rng.integers(-(1 << 31), 1 << 31, 200)
    for _ in range(20):
        mult = int(rng.integers(0, 1 << 16))
        shift = int(rng.integers(0, 48))
        zp = int(rng.integers(-128, 128))
        got = golden.requantize(acc, mult, shift, zp)
        assert got.tolist() == [loop_requant(int(a), mult, shift, zp, -128, 127) for a in acc]


@pytest.mark.parametrize("scale", [1e-6, 0.0123, 0.5, 0.99999, 1.0, 3.7, 1000.0])
def test_quantize_multiplier_precision(scale):
    mult, shift = golden.quantize_multiplier(scale)
    assert 0 < mult < (1 << golden.MULT_BITS) and 0 <= shift <= golden.SHIFT_MAX
    assert abs(mult * 2.0 ** -shift - scale) <= scale * 2.0 ** -15


def test_lanes_round_trip():
    rng = np.random.default_rng(0)
    v = rng.integers(-128, 128, 7)
    assert golden.unpack_lanes(golden.pack_lanes(v, 8), 7, 8).tolist() == v.tolist()
