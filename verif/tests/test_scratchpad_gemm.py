"""Scratchpad and GEMM unit: validation and Amaranth-simulator tests against the golden."""
import numpy as np
import pytest

from hasp.config import preset
from hasp.hw.gemm import GemmBench
from hasp.hw.scratchpad import Scratchpad, room_after
from hasp.sw import golden
from hasp.verif.amaranth_sim import run_sim


@pytest.mark.parametrize("kwargs,exc,words", [
    (dict(width=32, depth=100, banks=4), ValueError, "depth must be a power of two, not 100"),
    (dict(width=32, depth=64, banks=3), ValueError, "banks must be a power of two, not 3"),
    (dict(width=0, depth=64, banks=4), ValueError, "width must be >= 1"),
    (dict(width=32, depth=64, banks=2, read_ports="2"), TypeError, "read_ports must be an integer"),
    (dict(width=8, depth=2, banks=1, init=[0] * 3), ValueError, "init has 3 words"),
])
def test_scratchpad_validates(kwargs, exc, words):
    with pytest.raises(exc, match=words):
        Scratchpad(**kwargs)


def test_scratchpad_banks_priority_and_data():
    dut = Scratchpad(16, 8, 4, read_ports=2, write_ports=2)
    ref = {}

    async def tb(ctx):
        rng = np.random.default_rng(0)
        # Random writes from two ports; same-bank collisions are resolved by priority.
        for _ in range(200):
            reqs = []
            for p in dut.wr:
                a, d = int(rng.integers(0, 32)), int(rng.integers(0, 1 << 16))
                ctx.set(p.addr, a)
                ctx.set(p.data, d)
                ctx.set(p.en, 1)
                reqs.append((a, d))
            ready = [ctx.get(p.ready) for p in dut.wr]
            same_bank = reqs[0][0] // 8 == reqs[1][0] // 8
            assert ready == [1, 0 if same_bank else 1]
            for (a, d), r in zip(reqs, ready):
                if r:
                    ref[a] = d
            await ctx.tick()
        for p in dut.wr:
            ctx.set(p.en, 0)
        # Read everything back through both ports, one request per cycle: different banks are
        # served together, the same bank only to port 0; each word is on `data` exactly
        # READ_LATENCY cycles after its grant, so requests pipeline.
        L = Scratchpad.READ_LATENCY
        expect = []          # per issued cycle: [(port, address)] granted
        for a in range(32):
            addrs = [a, (a + 8) % 32, a ^ 1]
            for lo, hi, both in ((0, 1, True), (0, 2, False)):
                ctx.set(dut.rd[0].addr, addrs[lo])
                ctx.set(dut.rd[1].addr, addrs[hi])
                for p in dut.rd:
                    ctx.set(p.en, 1)
                assert [ctx.get(p.ready) for p in dut.rd] == [1, int(both)]
                expect.append([(0, addrs[lo])] + ([(1, addrs[hi])] if both else []))
                await ctx.tick()
                if len(expect) >= L:
                    for port, addr in expect[-L]:
                        assert ctx.get(dut.rd[port].data) == ref.get(addr, 0), f"address {addr}"
        for p in dut.rd:
            ctx.set(p.en, 0)
        for n in range(L - 1, 0, -1):
            await ctx.tick()
            for port, addr in expect[-n]:
                assert ctx.get(dut.rd[port].data) == ref.get(addr, 0), f"address {addr}"

    run_sim(dut, tb)


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5, 8])
def test_room_after_equals_the_compare_after_the_adder(depth):
    """`room_after` (the GEMM engine's and the vector unit's credit test) is
    `count + inc - dec < depth` for every count 0..depth and every pair of events."""
    from amaranth.hdl import Module, Signal
    from amaranth.sim import Simulator

    count, inc, dec = Signal(range(depth + 1)), Signal(), Signal()
    room = room_after(count, inc, dec, depth)
    m = Module()
    m.d.comb += Signal().eq(count)
    sim = Simulator(m)
    bad = []

    async def tb(ctx):
        for c in range(depth + 1):
            for i in (0, 1):
                for d in (0, 1):
                    if d and c == 0 and not i:
                        continue                 # a credit counter never goes below 0
                    ctx.set(count, c), ctx.set(inc, i), ctx.set(dec, d)
                    if ctx.get(room) != (c + i - d < depth):
                        bad.append((c, i, d, ctx.get(room)))

    sim.add_testbench(tb)
    sim.run()
    assert not bad, f"(count, inc, dec, room) wrong: {bad}"


async def _load_ab(ctx, dut, aw, bw, b_base):
    """Write the A tile words at 0 and the B tile words at ``b_base`` of a GemmBench."""
    for base, words in ((0, aw), (b_base, bw)):
        for i, w in enumerate(words):
            ctx.set(dut.ld_addr, base + i)
            ctx.set(dut.ld_data, w)
            ctx.set(dut.ld_en, 1)
            await ctx.tick()
    ctx.set(dut.ld_en, 0)


def _bench_run(cfg, A, B):
    R, C = cfg.pe.rows, cfg.pe.cols
    dut = GemmBench(cfg)
    aw, bw = golden.gemm_tile_words(A, B, R, C, cfg.pe.data_width)
    b_base = (cfg.spm.banks // 2) * cfg.spm.depth if cfg.spm.banks > 1 else cfg.spm.depth // 2
    mt, nt, K = A.shape[0] // R, B.shape[1] // C, A.shape[1]
    got = np.zeros((A.shape[0], B.shape[1]), dtype=np.int64)
    stats = {}

    async def tb(ctx):
        await _load_ab(ctx, dut, aw, bw, b_base)
        for sig, v in ((dut.a_base, 0), (dut.b_base, b_base), (dut.k, K), (dut.m_tiles, mt),
                       (dut.n_tiles, nt), (dut.start, 1)):
            ctx.set(sig, v)
        await ctx.tick()
        ctx.set(dut.start, 0)
        await ctx.tick().until(dut.done)
        stats.update(cycles=ctx.get(dut.cycles), macs=ctx.get(dut.macs))
        for t in range(mt * nt):
            mi, nj = divmod(t, nt)
            for r in range(R):
                ctx.set(dut.res_addr, t * R + r)
                await ctx.tick()
                got[mi * R + r, nj * C:(nj + 1) * C] = golden.unpack_lanes(
                    ctx.get(dut.res_data), C, cfg.pe.acc_width)

    run_sim(dut, tb)
    return got, stats


@pytest.mark.parametrize("pe,seed", [((4, 4), 1), ((3, 5), 2), ((2, 1), 3)])
def test_gemm_bench_random(pe, seed):
    cfg = preset("tiny").replace(pe={"rows": pe[0], "cols": pe[1]}, spm={"depth": 64})
    R, C = pe
    rng = np.random.default_rng(seed)
    A = rng.integers(-128, 128, (2 * R, 13))
    B = rng.integers(-128, 128, (13, 3 * C))
    got, stats = _bench_run(cfg, A, B)
    assert np.array_equal(got, golden.gemm(A, B))
    assert stats["macs"] == A.shape[0] * 13 * B.shape[1]


def test_gemm_bench_a_and_b_in_one_bank():
    """A and B in the same bank cannot be read together: the engine alternates (half rate)
    instead of waiting for a grant pair that never comes."""
    cfg = preset("tiny").replace(spm={"banks": 1, "depth": 256})
    rng = np.random.default_rng(9)
    A = rng.integers(-128, 128, (4, 9))
    B = rng.integers(-128, 128, (9, 8))
    got, stats = _bench_run(cfg, A, B)
    assert np.array_equal(got, golden.gemm(A, B))
    assert stats["cycles"] >= 2 * 9 * 2          # two tiles, two reads per beat


def test_gemm_engine_busy_contract_and_back_to_back_start():
    """The engine's `busy` (a flip-flop) is high from the cycle after `start` to the cycle of
    the last result row, and a command started in the first idle cycle is sampled whole: the
    second command (the first tile only) must give that tile, not the first command's."""
    cfg = preset("tiny").replace(spm={"depth": 64})
    R, C = cfg.pe.rows, cfg.pe.cols
    dut = GemmBench(cfg)
    eng = dut.engine
    rng = np.random.default_rng(5)
    A = rng.integers(-128, 128, (2 * R, 7))
    B = rng.integers(-128, 128, (7, 2 * C))
    aw, bw = golden.gemm_tile_words(A, B, R, C, cfg.pe.data_width)
    b_base = (cfg.spm.banks // 2) * cfg.spm.depth
    got = np.zeros((R, C), dtype=np.int64)
    rows_seen = []

    async def tb(ctx):
        await _load_ab(ctx, dut, aw, bw, b_base)
        for sig, v in ((dut.a_base, 0), (dut.b_base, b_base), (dut.k, 7)):
            ctx.set(sig, v)
        for mt, nt in ((2, 2), (1, 1)):
            ctx.set(dut.m_tiles, mt)
            ctx.set(dut.n_tiles, nt)
            assert ctx.get(eng.busy) == 0
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            rows = 0
            while True:
                assert ctx.get(eng.busy) == 1, f"busy fell with {rows} of {mt * nt * R} rows out"
                rows += ctx.get(eng.out.valid)
                await ctx.tick()
                if rows == mt * nt * R:
                    break
            rows_seen.append(rows)
            # The cycle after the last row: idle, and the next start is taken right here.
            assert ctx.get(eng.busy) == 0
        await ctx.tick().until(dut.done)
        for r in range(R):
            ctx.set(dut.res_addr, r)
            await ctx.tick()
            got[r] = golden.unpack_lanes(ctx.get(dut.res_data), C, cfg.pe.acc_width)

    run_sim(dut, tb)
    assert rows_seen == [4 * R, R]
    assert np.array_equal(got, golden.gemm(A[:R], B[:, :C]))
