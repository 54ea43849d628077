"""HASP core: programs run in the Amaranth simulator, results checked against numpy/golden.

Every expectation is computed here from the instruction semantics (hasp.sw.isa docs) and the
golden arithmetic (hasp.sw.golden), never taken from the RTL.
"""
import numpy as np
import pytest

from hasp.config import preset
from hasp.hw.core import Core, CoreError
from hasp.hw.scratchpad import Scratchpad
from hasp.sw.isa import ErrorCode
from hasp.sw import golden, isa
from hasp.verif.amaranth_sim import run_sim

CFG = preset("tiny")                 # 4x4 PE array, 4 banks x 256 words of 32 bits
R, C, DW, AW = CFG.pe.rows, CFG.pe.cols, CFG.pe.data_width, CFG.pe.acc_width
BANK = CFG.spm.depth
TIMEOUT = 20000


# ---- helpers ---------------------------------------------------------------------------------

async def load(ctx, dut, program, spm=None):
    """Write the program into the instruction memory and ``spm`` ({addr: word}) into the SPM."""
    if isinstance(program, str):
        program = isa.assemble(program)
    for i, w in enumerate(program):
        ctx.set(dut.imem_wr.addr, i)
        ctx.set(dut.imem_wr.data, w)
        ctx.set(dut.imem_wr.en, 1)
        await ctx.tick()
    ctx.set(dut.imem_wr.en, 0)
    await ctx.tick()                 # the core registers the write: the last word lands now
    for a, w in (spm or {}).items():
        ctx.set(dut.spm_wr.addr, a)
        ctx.set(dut.spm_wr.data, w)
        ctx.set(dut.spm_wr.en, 1)
        await ctx.tick().until(dut.spm_wr.ready)
    ctx.set(dut.spm_wr.en, 0)


async def start(ctx, dut):
    ctx.set(dut.start, 1)
    await ctx.tick()
    ctx.set(dut.start, 0)


async def run(ctx, dut, timeout=TIMEOUT):
    """Pulse start, wait for halted or error; returns cycles from start to the stop."""
    await start(ctx, dut)
    for n in range(1, timeout):
        if ctx.get(dut.halted) or ctx.get(dut.error):
            return n
        await ctx.tick()
    raise AssertionError(f"core did not stop in {timeout} cycles (pc={ctx.get(dut.pc)})")


async def read_spm(ctx, dut, addrs):
    out = []
    for a in addrs:
        ctx.set(dut.spm_rd.addr, a)
        ctx.set(dut.spm_rd.en, 1)
        await ctx.tick().until(dut.spm_rd.ready)
        ctx.set(dut.spm_rd.en, 0)
        for _ in range(Scratchpad.READ_LATENCY - 1):     # the word is there READ_LATENCY
            await ctx.tick()                             # cycles after the grant
        out.append(ctx.get(dut.spm_rd.data))
    return out


def simulate(tb, dut=None):
    dut = dut if dut is not None else Core(CFG)

    async def bench(ctx):
        await tb(ctx, dut)
    run_sim(dut, bench)


def tile_rows(c_full, mt, nt, R=R, C=C):
    """Accumulator rows of a GEMM: row t*R + r = C[mi*R + r, nj*C : (nj+1)*C], t = mi*nt + nj
    (the ISA's definition), as an (mt*nt*R) x C array."""
    rows = []
    for mi in range(mt):
        for nj in range(nt):
            for r in range(R):
                rows.append(c_full[mi * R + r, nj * C:(nj + 1) * C])
    return np.array(rows, dtype=np.int64)


def gemm_images(a, b, a_base, b_base, R=R, C=C):
    aw, bw = golden.gemm_tile_words(a, b, R, C, DW)
    spm = {a_base + i: w for i, w in enumerate(aw)}
    spm.update({b_base + i: w for i, w in enumerate(bw)})
    return spm


def word_lanes(words, lanes=CFG.pe.lanes):
    return np.array([golden.unpack_lanes(w, lanes, DW) for w in words])


# ---- GEMM + SETQ + REQUANT -------------------------------------------------------------------

@pytest.mark.parametrize("use_bias,relu,pe", [
    (False, False, None), (True, True, None),
    # Non-square array, 24-bit accumulators: 2 of 4 lanes written, bias = low 24 bits of the word.
    (True, False, {"rows": 4, "cols": 2, "acc_width": 24}),
])
def test_layer_gemm_requant(use_bias, relu, pe):
    cfg = CFG.replace(pe=pe) if pe else CFG
    R, C, AW, BANK = cfg.pe.rows, cfg.pe.cols, cfg.pe.acc_width, cfg.spm.depth
    rng = np.random.default_rng(1 + use_bias)
    mt, nt, K = 2, 2, 6
    a = rng.integers(-128, 128, (mt * R, K))
    b = rng.integers(-128, 128, (K, nt * C))
    nrows = mt * nt * R
    bias = rng.integers(-20000, 20000, nrows)
    mult, shift, zp = 300, 16, -5
    lo, hi = (zp, 127) if relu else (-128, 127)
    a_base, b_base, bias_base, dst, acc_dst = 3, BANK + 7, 2 * BANK + 1, 3 * BANK + 10, 5

    expect_acc = tile_rows(golden.gemm(a, b, acc_width=AW), mt, nt, R, C)
    if pe:
        # Bits above acc_width in the bias word are ignored: only the low 24 bits count.
        bias = bias + rng.integers(-100, 100, nrows) * (1 << AW)
    pre = golden.wrap(expect_acc + (golden.wrap(bias, AW)[:, None] if use_bias else 0), AW)
    expect = golden.requantize(pre, mult, shift, zp, lo, hi)
    assert len(np.unique(expect)) > 10        # the test data exercises the arithmetic

    spm = gemm_images(a, b, a_base, b_base, R, C)
    spm.update({bias_base + i: int(v) & 0xFFFFFFFF for i, v in enumerate(bias)})
    prog = f"""
        SETQ mult={mult} shift={shift} zp={zp} lo={lo} hi={hi}
        GEMM a={a_base} b={b_base} k={K} mt={mt} nt={nt} acc=0 dst={acc_dst}
        REQUANT src={acc_dst} dst={dst} rows={nrows} bias={bias_base} use_bias={int(use_bias)}
        HALT
    """

    async def tb(ctx, dut):
        await load(ctx, dut, prog, spm)
        cycles = await run(ctx, dut)
        assert ctx.get(dut.halted) and not ctx.get(dut.error)
        assert ctx.get(dut.pc) == 3
        assert ctx.get(dut.perf_macs) == mt * R * nt * C * K
        # Cost model (Core docstring): 2 cycles per instruction, + 1 for SETQ's checks, plus
        # GEMM mt*nt*max(k, R) + 13, where a tile with k < R + C + 4 takes R + C + 4 (+ 1 of
        # margin: the PE array's pipeline and drain, PEArray docstring), and REQUANT at most
        # rows * max(II, I) + 15, II = C lanes x multiplier passes (1 for values that fit in
        # 18 bits, 2 up to 35 bits: one time-multiplexed multiplier), I = the row issue
        # (the scratchpad's read latency + 2).
        ii = max(Scratchpad.READ_LATENCY + 2, C * (1 if AW <= 18 else 2 if AW <= 35 else 3))
        # (+ 2: run() counts from the start pulse to the first cycle `halted` is seen)
        gemm = mt * nt * max(K, R, R + C + 5) + 13
        assert cycles <= 2 + 4 * 2 + 1 + gemm + (nrows * ii + 15), cycles
        got = word_lanes(await read_spm(ctx, dut, range(dst, dst + nrows + 1)),
                         cfg.pe.lanes)
        np.testing.assert_array_equal(got[:nrows, :C], expect)
        assert (got[:, C:] == 0).all()        # lanes C.. are zero
        assert (got[nrows] == 0).all()        # nothing written past the last row
    simulate(tb, Core(cfg))


@pytest.mark.parametrize("same_bank", [False, True])
def test_external_reads_during_gemm_and_requant(same_bank):
    """External reads (the network interface's port, always granted) hit the banks of A, B
    and the bias words at random while GEMM and REQUANT run: every read returns its word
    READ_LATENCY cycles after the request, and the layer's result is still bit-exact (the engine and
    REQUANT work out their grants from the external request; a wrong guess loses or
    duplicates a beat). With ``same_bank`` A and B share a bank as well."""
    rng = np.random.default_rng(7 + same_bank)
    mt, nt, K = 2, 2, 9
    a = rng.integers(-128, 128, (mt * R, K))
    b = rng.integers(-128, 128, (K, nt * C))
    nrows = mt * nt * R
    bias = rng.integers(-20000, 20000, nrows)
    mult, shift, zp = 300, 16, 3
    a_base, bias_base, dst, acc_dst = 3, 2 * BANK + 1, 3 * BANK + 10, 5
    b_base = 40 if same_bank else BANK + 7
    expect_acc = tile_rows(golden.gemm(a, b, acc_width=AW), mt, nt)
    expect = golden.requantize(golden.wrap(expect_acc + bias[:, None], AW), mult, shift, zp,
                               -128, 127)
    spm = gemm_images(a, b, a_base, b_base)
    spm.update({bias_base + i: int(v) & 0xFFFFFFFF for i, v in enumerate(bias)})
    readable = sorted(spm)                      # never the result rows (written meanwhile)
    prog = f"""
        SETQ mult={mult} shift={shift} zp={zp}
        GEMM a={a_base} b={b_base} k={K} mt={mt} nt={nt} acc=0 dst={acc_dst}
        REQUANT src={acc_dst} dst={dst} rows={nrows} bias={bias_base} use_bias=1
        HALT
    """
    reads = []

    async def tb(ctx, dut):
        await load(ctx, dut, prog, spm)
        await start(ctx, dut)
        pending = []                            # (cycle the data is due, address)
        for cycle in range(TIMEOUT):
            stopped = ctx.get(dut.halted) or ctx.get(dut.error)
            a_ = int(rng.choice(readable))
            en = not stopped and rng.random() < 0.5
            ctx.set(dut.spm_rd.addr, a_)
            ctx.set(dut.spm_rd.en, en)
            if en:
                assert ctx.get(dut.spm_rd.ready)          # the external port always wins
                pending.append((cycle + Scratchpad.READ_LATENCY, a_))
            await ctx.tick()
            if pending and pending[0][0] == cycle + 1:
                reads.append((pending.pop(0)[1], ctx.get(dut.spm_rd.data)))
            if stopped and not pending:
                break
        ctx.set(dut.spm_rd.en, 0)
        assert ctx.get(dut.halted) and not ctx.get(dut.error)
        assert len(reads) > 50
        assert [d for _, d in reads] == [spm[a_] for a_, _ in reads]
        got = word_lanes(await read_spm(ctx, dut, range(dst, dst + nrows)))
        np.testing.assert_array_equal(got[:, :C], expect)
    simulate(tb)


def test_external_writes_during_requant():
    """External writes (the network interface's port, always granted) into the bank REQUANT
    writes its results to, in bursts long enough that result writes wait and the vector unit
    is held back (its `ready` is the result FIFO's): every result row and every
    external word lands, none lost or written twice."""
    rng = np.random.default_rng(11)
    nrows = 16
    acc = rng.integers(-3000, 3000, (nrows, C))
    mult, shift, zp = 300, 10, -2
    expect = golden.requantize(acc, mult, shift, zp, -128, 127)
    dst, ext_base, acc_dst = BANK + 3, BANK + 100, 0
    prog = f"""
        SETQ mult={mult} shift={shift} zp={zp}
        REQUANT src={acc_dst} dst={dst} rows={nrows} bias=0 use_bias=0
        HALT
    """
    ext = {ext_base + i: int(rng.integers(0, 1 << 32)) for i in range(120)}
    counts = {"wait": 0, "held": 0}

    async def tb(ctx, dut):
        await load(ctx, dut, prog)
        accmem = dut.accmem
        for i, row in enumerate(acc):       # the accumulator rows, through the simulator
            ctx.set(accmem.data[acc_dst + i],
                    sum((int(v) & ((1 << AW) - 1)) << (j * AW) for j, v in enumerate(row)))
        await start(ctx, dut)
        pending = list(ext.items())
        for cycle in range(TIMEOUT):
            stopped = ctx.get(dut.halted) or ctx.get(dut.error)
            burst = (cycle // 12) % 2 == 0 and cycle >= 8
            if pending and burst:
                a_, w = pending[0]
                ctx.set(dut.spm_wr.addr, a_)
                ctx.set(dut.spm_wr.data, w)
                ctx.set(dut.spm_wr.en, 1)
                assert ctx.get(dut.spm_wr.ready)          # the external port always wins
                pending.pop(0)
            else:
                ctx.set(dut.spm_wr.en, 0)
            counts["wait"] += ctx.get(dut.spm.wr[1].en) and not ctx.get(dut.spm.wr[1].ready)
            counts["held"] += ctx.get(dut.vector.out.valid) and not ctx.get(dut.vector.out.ready)
            await ctx.tick()
            if stopped and not pending:
                break
        ctx.set(dut.spm_wr.en, 0)
        assert ctx.get(dut.halted) and not ctx.get(dut.error)
        assert counts["wait"] > 10 and counts["held"] > 5, counts   # the test does contend
        got = word_lanes(await read_spm(ctx, dut, range(dst, dst + nrows + 1)))
        np.testing.assert_array_equal(got[:nrows, :C], expect)
        assert (got[nrows] == 0).all()                              # nothing past the rows
        assert await read_spm(ctx, dut, list(ext)) == list(ext.values())
    simulate(tb)


def test_gemm_accumulate():
    """acc=1 adds into the accumulator memory; acc=0 overwrites. Checked in the accumulator
    memory itself (full 32-bit values) and through REQUANT with mult=1, shift=0 on small data."""
    rng = np.random.default_rng(7)
    mt, nt, K = 1, 2, 5
    ops = [(rng.integers(-128, 128, (mt * R, K)), rng.integers(-128, 128, (K, nt * C)))
           for _ in range(3)]
    small = [(rng.integers(-3, 4, (R, 4)), rng.integers(-3, 4, (4, C))) for _ in range(2)]
    bases = [(0, BANK), (20, BANK + 20), (40, BANK + 40), (60, BANK + 60), (80, BANK + 80)]
    spm = {}
    for (a, b), (ab, bb) in zip(ops + small, bases):
        spm.update(gemm_images(a, b, ab, bb))
    n = mt * nt * R
    g = [tile_rows(golden.gemm(a, b), mt, nt) for a, b in ops]
    # rows 0..n: op0 + op1 + op2; rows 2n..3n: op1 then op2 overwrites (acc=0).
    expect_sum = golden.wrap(g[0] + g[1] + g[2], AW)
    expect_over = g[2]
    gs = [tile_rows(golden.gemm(a, b), 1, 1) for a, b in small]
    expect_small = golden.requantize(gs[0] + gs[1], 1, 0)
    prog = f"""
        GEMM a=0 b={BANK} k={K} mt={mt} nt={nt} acc=0 dst=0
        GEMM a=20 b={BANK + 20} k={K} mt={mt} nt={nt} acc=1 dst=0
        GEMM a=40 b={BANK + 40} k={K} mt={mt} nt={nt} acc=1 dst=0
        GEMM a=20 b={BANK + 20} k={K} mt={mt} nt={nt} acc=1 dst={2 * n}
        GEMM a=40 b={BANK + 40} k={K} mt={mt} nt={nt} acc=0 dst={2 * n}
        GEMM a=60 b={BANK + 60} k=4 mt=1 nt=1 acc=0 dst=100
        GEMM a=80 b={BANK + 80} k=4 mt=1 nt=1 acc=1 dst=100
        SETQ mult=1 shift=0
        REQUANT src=100 dst={2 * BANK} rows={R}
        HALT
    """

    async def tb(ctx, dut):
        await load(ctx, dut, prog, spm)
        await start(ctx, dut)
        # External reads while the GEMM engine uses the same banks: served (at lowest priority)
        # with the right data.
        addrs = [0, 1, BANK, BANK + 1, 20, BANK + 21, 2]
        assert await read_spm(ctx, dut, addrs) == [spm[a] for a in addrs]
        assert ctx.get(dut.running)
        for _ in range(TIMEOUT):
            if ctx.get(dut.halted) or ctx.get(dut.error):
                break
            await ctx.tick()
        assert ctx.get(dut.halted) and not ctx.get(dut.error)

        def acc_row(i):
            return golden.unpack_lanes(ctx.get(dut.accmem.data[i]), C, AW)
        np.testing.assert_array_equal([acc_row(i) for i in range(n)], expect_sum)
        np.testing.assert_array_equal([acc_row(2 * n + i) for i in range(n)], expect_over)
        got = word_lanes(await read_spm(ctx, dut, range(2 * BANK, 2 * BANK + R)))
        np.testing.assert_array_equal(got[:, :C], expect_small)
    simulate(tb)


# ---- sequencing: LOOP, DELAY, errors ---------------------------------------------------------

def test_loop_runs_body_count_times():
    """GEMM acc=0 once, then a body GEMM acc=1 run 3 times by LOOP, then a second loop of
    count=1 (falls through) and one of count 2: acc = (1 + 3 + 1 + 2) * A@B."""
    rng = np.random.default_rng(3)
    a, b = rng.integers(-3, 4, (R, 3)), rng.integers(-3, 4, (3, C))
    spm = gemm_images(a, b, 0, BANK)
    expect = golden.requantize(7 * golden.gemm(a, b), 1, 0)
    prog = f"""
            GEMM a=0 b={BANK} k=3 mt=1 nt=1 acc=0 dst=0
        L1: GEMM a=0 b={BANK} k=3 mt=1 nt=1 acc=1 dst=0
            NOP
            LOOP target=L1 count=3
        L2: GEMM a=0 b={BANK} k=3 mt=1 nt=1 acc=1 dst=0
            LOOP target=L2 count=1
        L3: GEMM a=0 b={BANK} k=3 mt=1 nt=1 acc=1 dst=0
            LOOP target=L3 count=2
            SETQ mult=1 shift=0
            REQUANT src=0 dst={3 * BANK} rows={R}
            HALT
    """

    async def tb(ctx, dut):
        await load(ctx, dut, prog, spm)
        await run(ctx, dut)
        assert ctx.get(dut.halted) and not ctx.get(dut.error)
        got = word_lanes(await read_spm(ctx, dut, range(3 * BANK, 3 * BANK + R)))
        np.testing.assert_array_equal(got[:, :C], expect)
    simulate(tb)


def test_delay_timing_and_counters():
    """DELAY n costs exactly n more cycles than DELAY 0; a NOP costs the same as DELAY 0."""
    async def tb(ctx, dut):
        cycles = {}
        for n in (0, 1, 17, 100):
            await load(ctx, dut, f"DELAY cycles={n}\nHALT")
            cycles[n] = await run(ctx, dut)
            assert ctx.get(dut.halted)
        for n in (1, 17, 100):
            assert cycles[n] - cycles[0] == n, cycles
        await load(ctx, dut, "NOP\nHALT")
        assert await run(ctx, dut) == cycles[0]
        # Performance counters: busy counts running cycles, idle the rest.
        ctx.set(dut.clear_counters, 1)
        await ctx.tick()
        ctx.set(dut.clear_counters, 0)
        await load(ctx, dut, "DELAY cycles=50\nHALT")    # 3 idle cycles: 2 writes + 1
        n = await run(ctx, dut)
        await ctx.tick().repeat(5)
        busy, idle = ctx.get(dut.perf_busy), ctx.get(dut.perf_idle)
        assert busy + idle == 3 + n + 5
        assert 50 < busy <= n
        assert ctx.get(dut.perf_net) == 0 and ctx.get(dut.perf_sync) == 0
    simulate(tb)


ILLEGAL = 31


@pytest.mark.parametrize("program,code,pc", [
    (["NOP", "NOP", ILLEGAL, "HALT"], ErrorCode.ILLEGAL_OP, 2),
    (["NOP"], ErrorCode.PC_OVERFLOW, CFG.core.imem_depth),   # imem is zero = NOP after it
    (["NOP", f"GEMM a={CFG.spm.words - 8} b=0 k=4 mt=3 nt=1"], ErrorCode.SPM_RANGE, 1),
    (["GEMM a=0 b=0 k=4 mt=2 nt=2 dst=250"], ErrorCode.ACC_RANGE, 0),
    # exact fits pass, one word / row more fails (the checks compare products with the room)
    ([f"GEMM a={CFG.spm.words - 8} b=0 k=4 mt=2 nt=1", f"GEMM a={CFG.spm.words - 7} b=0 k=4 mt=2 nt=1"],
     ErrorCode.SPM_RANGE, 1),
    ([f"GEMM a=0 b={CFG.spm.words - 12} k=4 mt=1 nt=3", f"GEMM a=0 b={CFG.spm.words - 11} k=4 mt=1 nt=3"],
     ErrorCode.SPM_RANGE, 1),
    ([f"GEMM a=0 b=0 k=4 mt=2 nt=3 dst={256 - 6 * R}", f"GEMM a=0 b=0 k=4 mt=2 nt=3 dst={257 - 6 * R}"],
     ErrorCode.ACC_RANGE, 1),
    (["REQUANT src=0 dst=0 rows=4 bias=1022 use_bias=1"], ErrorCode.SPM_RANGE, 0),
    # REQUANT: exact fits pass, one row more fails (destination, bias, accumulator rows)
    ([f"REQUANT src=0 dst={CFG.spm.words - 4} rows=4", f"REQUANT src=0 dst={CFG.spm.words - 3} rows=4"],
     ErrorCode.SPM_RANGE, 1),
    ([f"REQUANT src=0 dst=0 rows=4 bias={CFG.spm.words - 4} use_bias=1",
      f"REQUANT src=0 dst=0 rows=4 bias={CFG.spm.words - 3} use_bias=1"], ErrorCode.SPM_RANGE, 1),
    ([f"REQUANT src={isa.ACC_ROWS - 4} dst=0 rows=4", f"REQUANT src={isa.ACC_ROWS - 3} dst=0 rows=4"],
     ErrorCode.ACC_RANGE, 1),
    (["NOP", "LOOP target=3 count=2", "NOP", "HALT"], ErrorCode.LOOP_TARGET, 1),
    # The outer LOOP (pc 2) is running when the inner one (pc 1) is reached again.
    (["L: NOP", "LOOP target=L count=2", "LOOP target=L count=2", "HALT"], ErrorCode.LOOP_NEST, 1),
    (["WAIT tag=200 count=1"], ErrorCode.BAD_TAG, 0),
    (["NOP", "SYNC group=9"], ErrorCode.BAD_GROUP, 1),
    (["SEND x=5 y=0"], ErrorCode.BAD_DEST, 0),
    # SEND checks: scratchpad ranges, then the destination, then the tag
    (["NOP", "SEND src=1020 len=8 x=1 y=0 tag=16"], ErrorCode.SPM_RANGE, 1),
    (["SEND x=1 y=2 tag=16"], ErrorCode.BAD_DEST, 0),
    (["NOP", "SEND x=1 y=1 tag=16"], ErrorCode.BAD_TAG, 1),
    (["SEND x=0 y=0 tag=255"], ErrorCode.BAD_TAG, 0),
    (["WAIT tag=16 count=0"], ErrorCode.BAD_TAG, 0),
    (["SETQ mult=1 shift=48"], ErrorCode.BAD_REQUANT, 0),
    (["NOP", "SETQ mult=1 shift=63"], ErrorCode.BAD_REQUANT, 1),
    (["SETQ mult=1 lo=10 hi=5"], ErrorCode.BAD_REQUANT, 0),
    (["SETQ mult=1 shift=47 lo=5 hi=5", "NOP"], ErrorCode.PC_OVERFLOW, CFG.core.imem_depth),
    # both ranges bad: the scratchpad is checked first
    (["REQUANT src=250 dst=1020 rows=8"], ErrorCode.SPM_RANGE, 0),
    (["REQUANT src=250 dst=0 rows=8"], ErrorCode.ACC_RANGE, 0),
    # empty GEMM / REQUANT: no address is checked (they run, then the program runs off the end)
    (["GEMM a=16000 b=16000 k=0 mt=1 nt=1 dst=1000", "GEMM a=16000 b=0 k=4 mt=0 nt=1 dst=1000",
      "GEMM a=0 b=16000 k=4 mt=1 nt=0 dst=1000", "REQUANT src=1000 dst=16000 rows=0"],
     ErrorCode.PC_OVERFLOW, CFG.core.imem_depth),
])
def test_errors(program, code, pc):
    if all(isinstance(w, str) for w in program):
        words = isa.assemble("\n".join(program))
    else:
        words = [w if isinstance(w, int) else isa.assemble(w)[0] for w in program]

    async def tb(ctx, dut):
        await load(ctx, dut, words)
        await run(ctx, dut, timeout=2000)
        assert ctx.get(dut.error) and not ctx.get(dut.halted) and not ctx.get(dut.running)
        assert ctx.get(dut.error_code) == code
        assert ctx.get(dut.pc) == pc
        # The core stays stopped, and a new start runs a good program.
        await ctx.tick().repeat(3)
        assert ctx.get(dut.error)
        await load(ctx, dut, "HALT")
        await run(ctx, dut)
        assert ctx.get(dut.halted) and not ctx.get(dut.error) and ctx.get(dut.error_code) == 0
    simulate(tb)


# ---- network / sync ports ---------------------------------------------------------------------

async def pulse(ctx, *assignments):
    for sig, v in assignments:
        ctx.set(sig, v)
    await ctx.tick()
    for sig, _ in assignments:
        ctx.set(sig, 0)


def test_wait_tag_counter():
    prog = "WAIT tag=3 count=2\nWAIT tag=3 count=2\nHALT"

    async def tb(ctx, dut):
        await load(ctx, dut, prog)
        await start(ctx, dut)
        await ctx.tick().repeat(20)
        assert ctx.get(dut.running) and ctx.get(dut.pc) == 0
        # Other tags do not count.
        await pulse(ctx, (dut.tag_inc.valid, 1), (dut.tag_inc.tag, 2))
        await pulse(ctx, (dut.tag_inc.valid, 1), (dut.tag_inc.tag, 3))
        await ctx.tick().repeat(10)
        assert ctx.get(dut.pc) == 0
        # Two more on tag 3 (three in all): the first WAIT takes 2, the second sees 1 and waits.
        ctx.set(dut.tag_inc.tag, 3)
        ctx.set(dut.tag_inc.valid, 1)
        await ctx.tick().repeat(2)
        ctx.set(dut.tag_inc.valid, 0)
        await ctx.tick().repeat(20)
        assert ctx.get(dut.running) and ctx.get(dut.pc) == 1
        assert ctx.get(dut.perf_net) > 40
        await pulse(ctx, (dut.tag_inc.valid, 1), (dut.tag_inc.tag, 3))
        await ctx.tick().repeat(9)
        assert ctx.get(dut.halted) and ctx.get(dut.pc) == 2
        # The counter is now 0 again (2 + 2 taken of 4 on tag 3); tag 2 still holds 1.
        await load(ctx, dut, "WAIT tag=2 count=1\nWAIT tag=3 count=1\nHALT")
        await start(ctx, dut)
        await ctx.tick().repeat(20)
        assert ctx.get(dut.running) and ctx.get(dut.pc) == 1
    simulate(tb)


def test_wait_takes_while_counting():
    """Increments arriving every cycle, also in the cycle a WAIT takes its count: none is lost
    (10 arrive, WAIT 2 then WAIT 8 complete, a third WAIT 1 stays waiting)."""
    prog = "WAIT tag=5 count=2\nWAIT tag=5 count=8\nWAIT tag=5 count=1\nHALT"

    async def tb(ctx, dut):
        await load(ctx, dut, prog)
        await start(ctx, dut)
        await ctx.tick().repeat(5)
        ctx.set(dut.tag_inc.tag, 5)
        ctx.set(dut.tag_inc.valid, 1)
        await ctx.tick().repeat(10)
        ctx.set(dut.tag_inc.valid, 0)
        await ctx.tick().repeat(20)
        assert ctx.get(dut.running) and ctx.get(dut.pc) == 2
        await pulse(ctx, (dut.tag_inc.valid, 1), (dut.tag_inc.tag, 5))
        await ctx.tick().repeat(9)
        assert ctx.get(dut.halted) and ctx.get(dut.pc) == 3
    simulate(tb)


def test_tag_counters_saturate_and_reset_clears():
    """A counter stops at 2**16 - 1 (65537 increments: a WAIT of 65535 then leaves 0, not 2),
    increments count while the core is idle, and reset clears every counter."""
    from amaranth.hdl import ResetInserter, Signal
    from hasp.hw.core import TAG_COUNTER_BITS
    cmax = (1 << TAG_COUNTER_BITS) - 1
    rst, core = Signal(), Core(CFG)

    async def tb(ctx, dut):
        await load(ctx, dut, f"WAIT tag=1 count={cmax}\nWAIT tag=1 count=1\nHALT")
        ctx.set(dut.tag_inc.tag, 1)
        ctx.set(dut.tag_inc.valid, 1)
        await ctx.tick().repeat(cmax + 2)
        ctx.set(dut.tag_inc.valid, 0)
        await start(ctx, dut)
        await ctx.tick().repeat(30)
        assert ctx.get(dut.running) and ctx.get(dut.pc) == 1
        await pulse(ctx, (dut.tag_inc.valid, 1), (dut.tag_inc.tag, 1))
        await ctx.tick().repeat(9)
        assert ctx.get(dut.halted) and ctx.get(dut.pc) == 2
        # Three on tag 7, one on tag 0, then reset: nothing is left to take.
        for t in (7, 7, 0, 7):
            await pulse(ctx, (dut.tag_inc.valid, 1), (dut.tag_inc.tag, t))
        ctx.set(rst, 1)
        await ctx.tick()
        ctx.set(rst, 0)
        for tag in (7, 0):
            prog = f"WAIT tag={tag} count=1\nHALT"
            await load(ctx, dut, prog)
            await start(ctx, dut)
            await ctx.tick().repeat(20)
            assert ctx.get(dut.running) and ctx.get(dut.pc) == 0, prog
            await pulse(ctx, (dut.tag_inc.valid, 1), (dut.tag_inc.tag, tag))
            await ctx.tick().repeat(9)
            assert ctx.get(dut.halted) and ctx.get(dut.pc) == 1, prog

    async def bench(ctx):
        await tb(ctx, core)
    run_sim(ResetInserter(rst)(core), bench)


def test_sync_handshake_and_error():
    async def tb(ctx, dut):
        await load(ctx, dut, "NOP\nSYNC group=2\nHALT")
        await start(ctx, dut)
        for _ in range(20):
            if ctx.get(dut.sync_arrive):
                break
            await ctx.tick()
        assert ctx.get(dut.sync_arrive) and ctx.get(dut.sync_group) == 2 and ctx.get(dut.pc) == 1
        await ctx.tick().repeat(15)
        assert ctx.get(dut.sync_arrive) and ctx.get(dut.running)
        assert ctx.get(dut.perf_sync) >= 15
        await pulse(ctx, (dut.sync_release, 1))
        await ctx.tick().repeat(4)
        assert ctx.get(dut.halted) and not ctx.get(dut.sync_arrive)
        # sync_error while waiting: error stop at the SYNC.
        await load(ctx, dut, "SYNC group=1\nHALT")
        await start(ctx, dut)
        await ctx.tick().repeat(5)
        assert ctx.get(dut.sync_arrive) and ctx.get(dut.sync_group) == 1
        await pulse(ctx, (dut.sync_error, 1))
        await ctx.tick()
        assert ctx.get(dut.error) and ctx.get(dut.error_code) == ErrorCode.SYNC_ERROR
        assert ctx.get(dut.pc) == 0 and not ctx.get(dut.sync_arrive)
        # sync_error during a DELAY: stop at the next instruction boundary (pc 1).
        await load(ctx, dut, "DELAY cycles=20\nNOP\nHALT")
        await start(ctx, dut)
        await ctx.tick().repeat(5)
        await pulse(ctx, (dut.sync_error, 1))
        await ctx.tick().repeat(30)
        assert ctx.get(dut.error) and ctx.get(dut.error_code) == ErrorCode.SYNC_ERROR
        assert ctx.get(dut.pc) == 1
    simulate(tb)


def test_send_request():
    prog = "NOP\nSEND src=5 len=3 x=1 y=1 dst=700 tag=7\nSEND src=9 len=256 x=0 y=1 dst=2\nHALT"
    expect = [dict(src=5, len=3, x=1, y=1, dst=700, tag=7),
              dict(src=9, len=256, x=0, y=1, dst=2, tag=0)]

    async def tb(ctx, dut):
        await load(ctx, dut, prog)
        await start(ctx, dut)
        for e in expect:
            for _ in range(20):
                if ctx.get(dut.send.valid):
                    break
                await ctx.tick()
            # Held (valid and payload) while not ready.
            for _ in range(5):
                assert ctx.get(dut.send.valid)
                p = ctx.get(dut.send.payload)
                assert {k: int(getattr(p, k)) for k in e} == e
                await ctx.tick()
            ctx.set(dut.send.ready, 1)
            await ctx.tick()
            ctx.set(dut.send.ready, 0)
            await ctx.tick().repeat(8)
            # Completes only with send_done.
            assert ctx.get(dut.running) and not ctx.get(dut.send.valid)
            await pulse(ctx, (dut.send_done, 1))
        await ctx.tick().repeat(4)
        assert ctx.get(dut.halted) and ctx.get(dut.pc) == 3
        assert ctx.get(dut.perf_net) >= 2 * 14
    simulate(tb)


def test_error_codes_and_sizes_are_the_isa_ones():
    assert CoreError is isa.ErrorCode
    core = Core(CFG)
    assert (core.tags, core.acc_depth) == (isa.TAGS, isa.ACC_ROWS) == (16, 256)


def test_setq_clamps_lo_hi_to_the_data_range():
    # dw = 4: lo=-100 -> -8, hi=100 -> 7 (golden clamp), not taken modulo 16
    cfg = CFG.replace(pe={"data_width": 4, "acc_width": 16})

    async def tb(ctx, dut):
        await load(ctx, dut, "SETQ mult=1 lo=-100 hi=100\nHALT")
        await run(ctx, dut)
        assert ctx.get(dut.halted)
        q = ctx.get(dut.vector.params)
        assert (int(q.lo), int(q.hi)) == (-8, 7)
        await load(ctx, dut, "SETQ mult=1 lo=8 hi=100\nHALT")     # max(8, -8) > min(100, 7)
        await run(ctx, dut)
        assert ctx.get(dut.error) and ctx.get(dut.error_code) == ErrorCode.BAD_REQUANT
    simulate(tb, Core(cfg))


def test_validates():
    with pytest.raises(ValueError, match="acc_depth must be in"):
        Core(CFG, acc_depth=2048)
    with pytest.raises(TypeError, match="tags must be an integer"):
        Core(CFG, tags="4")


@pytest.mark.parametrize("width", [1, 2, 3, 5])
def test_constant_compares_equal_python_for_every_value(width):
    """`_ge_const` / `_gt_const` (the high-bit tests behind the range checks) agree with
    Python's compare for every x of the width and every constant around the powers of two."""
    from amaranth.hdl import Module, Signal
    from amaranth.sim import Simulator
    from hasp.hw.core import _ge_const, _gt_const

    x = Signal(width)
    consts = range(-1, (1 << width) + 3)
    ge = [_ge_const(x, c) for c in consts]
    gt = [_gt_const(x, c) for c in consts]
    m = Module()
    m.d.comb += Signal().eq(x)            # a module that drives nothing else: comb only
    sim = Simulator(m)
    bad = []

    async def tb(ctx):
        for v in range(1 << width):
            ctx.set(x, v)
            for c, g, t in zip(consts, ge, gt):
                if ctx.get(g) != (v >= c) or ctx.get(t) != (v > c):
                    bad.append((v, c, ctx.get(g), ctx.get(t)))

    sim.add_testbench(tb)
    sim.run()
    assert not bad, f"(x, c, x >= c, x > c) wrong: {bad[:5]}"
