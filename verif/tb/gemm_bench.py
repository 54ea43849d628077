"""cocotb bench of the GEMM unit (scratchpad + engine + PE array): the host loads A and B,
starts the engine and waits for ``done`` while the design runs on its own; results and the
hardware counters are then checked against the numpy golden."""
import time

import numpy as np
import cocotb
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout

from hasp.hw.scratchpad import Scratchpad
from hasp.sw import golden
from hasp.verif.tb.common import TB, Scoreboard


class GemmHost:
    """Transaction-level driver of :class:`hasp.hw.gemm.GemmBench`."""

    def __init__(self, tb: TB):
        self.tb, self.dut = tb, tb.dut
        cfg = tb.cfg
        self.R, self.C = cfg.pe.rows, cfg.pe.cols
        self.dw, self.aw, self.width = cfg.pe.data_width, cfg.pe.acc_width, cfg.word_width
        half = max(1, cfg.spm.banks // 2)
        # A in the lower half of the banks, B in the upper half: no bank conflicts.
        self.a_base = 0
        self.b_base = half * cfg.spm.depth if cfg.spm.banks > 1 else cfg.spm.depth // 2
        self.region = self.b_base
        self.result_rows = cfg.spm.depth
        self.dut.ld_en.value = 0
        self.dut.start.value = 0

    async def load(self, base: int, words):
        d = self.dut
        for i, w in enumerate(words):
            d.ld_addr.value = base + i
            d.ld_data.value = w
            d.ld_en.value = 1
            await RisingEdge(d.clk)
        d.ld_en.value = 0

    async def readback(self, base: int, n: int):
        d, out = self.dut, []
        for i in range(n):
            d.rb_addr.value = base + i
            for _ in range(Scratchpad.READ_LATENCY):
                await RisingEdge(d.clk)
            await ReadOnly()
            out.append(int(d.rb_data.value))
            await RisingEdge(d.clk)
        return out

    async def run(self, k: int, m_tiles: int, n_tiles: int, timeout_cycles: int):
        d = self.dut
        d.a_base.value, d.b_base.value = self.a_base, self.b_base
        d.k.value, d.m_tiles.value, d.n_tiles.value = k, m_tiles, n_tiles
        d.start.value = 1
        await RisingEdge(d.clk)
        d.start.value = 0
        t0 = time.perf_counter()
        # The design runs on its own until done: no per-cycle Python.
        await with_timeout(RisingEdge(d.done), timeout_cycles * 10, "ns")
        wall = time.perf_counter() - t0
        await ReadOnly()
        return {"cycles": int(d.cycles.value), "macs": int(d.macs.value),
                "mac_cycles": int(d.mac_cycles.value), "wall_s": wall}

    async def results(self, tiles: int):
        d, rows = self.dut, []
        await RisingEdge(d.clk)
        for r in range(tiles * self.R):
            d.res_addr.value = r
            await RisingEdge(d.clk)
            await ReadOnly()
            rows.append(golden.unpack_lanes(int(d.res_data.value), self.C, self.aw))
            await RisingEdge(d.clk)
        return rows

    def fit(self, k: int, m: int, n: int) -> bool:
        return m * k <= self.region and n * k <= self.region and m * n * self.R <= \
            self.result_rows and m < 256 and n < 256

    async def gemm(self, A, B, k_tiles=None):
        """Run ``A @ B`` (tiles of R x K and K x C) and return the result and counters."""
        R, C = self.R, self.C
        M, K = A.shape
        N = B.shape[1]
        aw, bw = golden.gemm_tile_words(A, B, R, C, self.dw)
        await self.load(self.a_base, aw)
        await self.load(self.b_base, bw)
        mt, nt = M // R, N // C
        stats = await self.run(K, mt, nt, timeout_cycles=4 * (mt * nt * (K + R) + 100))
        rows = await self.results(mt * nt)
        got = np.zeros((M, N), dtype=np.int64)
        for t in range(mt * nt):
            mi, nj = divmod(t, nt)
            for r in range(R):
                got[mi * R + r, nj * C:(nj + 1) * C] = rows[t * R + r]
        return got, stats


def _operands(rng, M, K, N, dw, kind="random"):
    lo, hi = -(1 << (dw - 1)), (1 << (dw - 1))
    if kind == "min":
        return np.full((M, K), lo), np.full((K, N), lo)
    if kind == "max-min":
        return np.full((M, K), hi - 1), np.full((K, N), lo)
    return rng.integers(lo, hi, (M, K)), rng.integers(lo, hi, (K, N))


@cocotb.test()
async def random_gemms(dut):
    """Random GEMM shapes over many seeds, plus the -128 x -128 and 127 x -128 extremes at the
    largest K that fits, checked bit-exact together with the MAC counter."""
    tb = TB(dut)
    host = GemmHost(tb)
    await tb.start()
    rng = np.random.default_rng(tb.seed)
    R, C, dw = host.R, host.C, host.dw
    cases = []
    for _ in range(tb.args.get("cases", 8)):
        while True:
            K = int(rng.choice([1, 3, 16, 37, 64, 256]))
            m, n = int(rng.integers(1, 4)), int(rng.integers(1, 4))
            if host.fit(K, m, n):
                break
        cases.append((m * R, K, n * C, "random"))
    kmax = max(k for k in (256, 128, 64, 16) if host.fit(k, 1, 1))
    cases += [(R, kmax, C, "min"), (R, kmax, C, "max-min")]
    sb = Scoreboard("gemm")
    for M, K, N, kind in cases:
        A, B = _operands(rng, M, K, N, dw, kind)
        got, stats = await host.gemm(A, B)
        sb.compare(got, golden.gemm(A, B, data_width=dw, acc_width=host.aw), f"{M}x{K}x{N} {kind}")
        sb.compare(stats["macs"], M * K * N, f"MAC counter {M}x{K}x{N}")
    # The scratchpad holds what was loaded (read back through the third port).
    aw, _ = golden.gemm_tile_words(A, B, R, C, host.dw)
    sb.compare(await host.readback(host.a_base, len(aw)), aw, "scratchpad read-back")
    sb.check()
    tb.report(cases=len(cases), checked=sb.checked)


@cocotb.test()
async def benchmark(dut):
    """Utilisation per K from the hardware counters and simulated cycles per second."""
    tb = TB(dut)
    host = GemmHost(tb)
    await tb.start()
    rng = np.random.default_rng(tb.seed)
    R, C = host.R, host.C
    out = {}
    for K in tb.args.get("ks", [16, 64, 256]):
        # As many tiles as fit (square-ish), so that back-to-back tiles reach steady state.
        best = max(((m, n) for m in range(1, 17) for n in range(1, 17) if host.fit(K, m, n)),
                   key=lambda mn: (mn[0] * mn[1], -abs(mn[0] - mn[1])), default=None)
        if best is None:
            out[str(K)] = {"skipped": f"K={K} does not fit the scratchpad"}
            continue
        m, n = best
        A, B = _operands(rng, m * R, K, n * C, host.dw)
        got, st = await host.gemm(A, B)
        ok = bool(np.array_equal(got, golden.gemm(A, B, data_width=host.dw, acc_width=host.aw)))
        assert ok, f"K={K}: result differs from numpy"
        out[str(K)] = {
            "m_tiles": m, "n_tiles": n, "macs": st["macs"], "cycles": st["cycles"],
            "utilisation": st["macs"] / (R * C * st["cycles"]),
            "sim_cycles_per_s": st["cycles"] / st["wall_s"] if st["wall_s"] else None,
            "exact": ok,
        }
    tb.report(results=out)
