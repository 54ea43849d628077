"""PE array: constructor validation and Amaranth-simulator tests against the numpy golden."""
import random

import numpy as np
import pytest

from hasp.hw.pe_array import PEArray
from hasp.sw import golden
from hasp.verif.amaranth_sim import run_sim, stream_put, stream_get


@pytest.mark.parametrize("kwargs,exc,words", [
    (dict(rows=0, cols=4), ValueError, "rows must be in"),
    (dict(rows=4, cols=4.0), TypeError, "cols must be an integer"),
    (dict(rows=4, cols=4, data_width=8, acc_width=15), ValueError, "acc_width must be >= 2"),
])
def test_constructor_validates(kwargs, exc, words):
    with pytest.raises(exc, match=words):
        PEArray(**kwargs)


def _tiles(rng, R, C, ks, dw):
    lo, hi = -(1 << (dw - 1)), 1 << (dw - 1)
    return [(rng.integers(lo, hi, (R, k)), rng.integers(lo, hi, (k, C))) for k in ks]


def _run(dut, tiles, seed, idle, bp):
    R, C = dut.rows, dut.cols
    beats = [{"a": A[:, k].tolist(), "b": B[k].tolist(), "first": k == 0, "last": k == A.shape[1] - 1}
             for A, B in tiles for k in range(A.shape[1])]
    got = []
    rng = random.Random(seed)

    async def producer(ctx):
        await stream_put(ctx, dut.inp, beats, rng, idle)

    async def consumer(ctx):
        got.extend(await stream_get(ctx, dut.out, len(tiles) * R, random.Random(seed + 1), bp))

    run_sim(dut, producer, consumer)
    for t, (A, B) in enumerate(tiles):
        exp = golden.gemm(A, B, data_width=dut.data_width, acc_width=dut.acc_width)
        for r in range(R):
            row = got[t * R + r]
            assert row.index == r and row.last == (r == R - 1)
            assert [int(x) for x in row.row] == exp[r].tolist(), f"tile {t} row {r}"


@pytest.mark.parametrize("R,C", [(4, 4), (3, 5), (1, 1)])
@pytest.mark.parametrize("seed", [1, 2])
def test_random_tiles_with_stalls(R, C, seed):
    rng = np.random.default_rng(seed)
    dut = PEArray(R, C)
    _run(dut, _tiles(rng, R, C, [1, 2, 7, 16, 3], 8), seed, idle=0.3, bp=0.5)


def test_extremes_and_long_k():
    R = C = 4
    A, B = np.full((R, 256), -128), np.full((256, C), -128)
    _run(PEArray(R, C), [(A, B), (A, -B - 1)], 3, idle=0.0, bp=0.0)


def test_accumulator_wraps_like_golden():
    # 4-bit operands, 8-bit accumulators: 16 x (-8 * -8) = 1024 wraps.
    R = C = 2
    A, B = np.full((R, 16), -8), np.full((16, C), -8)
    dut = PEArray(R, C, data_width=4, acc_width=8)
    _run(dut, [(A, B)], 4, 0.0, 0.0)
    assert golden.gemm(A, B, data_width=4, acc_width=8)[0, 0] == 0   # 1024 mod 256


def test_full_rate_and_counters():
    """Back-to-back tiles keep the array busy every cycle and the counters count exactly."""
    R = C = 4
    K, T = 16, 6
    rng = np.random.default_rng(5)
    tiles = _tiles(rng, R, C, [K] * T, 8)
    dut = PEArray(R, C)
    beats = [{"a": A[:, k].tolist(), "b": B[k].tolist(), "first": k == 0, "last": k == K - 1}
             for A, B in tiles for k in range(K)]
    stats = {}

    async def tb(ctx):
        ctx.set(dut.out.ready, 1)
        ctx.set(dut.inp.valid, 1)
        cycles = 0
        for p in beats:
            ctx.set(dut.inp.payload, p)
            await ctx.tick().until(dut.inp.ready)
            cycles += 1
        ctx.set(dut.inp.valid, 0)
        await ctx.tick().repeat(10)
        stats.update(cycles=cycles, macs=ctx.get(dut.macs), busy=ctx.get(dut.busy))

    run_sim(dut, tb)
    assert stats["cycles"] == K * T          # never stalled
    assert stats["macs"] == K * T * R * C and stats["busy"] == K * T
