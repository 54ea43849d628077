"""Vector unit: constructor validation and Amaranth-simulator tests against golden.requantize."""
import random

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.lib import data

from hasp.hw.vector import (VectorUnit, vector_input_layout, vector_output_layout,
                            vector_params_layout, SHIFT_BITS)
from hasp.sw import golden
from hasp.verif.amaranth_sim import run_sim
from hasp.verif.mult18x18d import compare_multipliers


@pytest.mark.parametrize("kwargs,exc,words", [
    (dict(lanes=0), ValueError, "lanes must be in"),
    (dict(lanes=257), ValueError, "lanes must be in"),
    (dict(lanes=4.0), TypeError, "lanes must be an integer"),
    (dict(lanes=True), TypeError, "lanes must be an integer"),
    (dict(lanes=4, acc_width=49), ValueError, "acc_width must be in"),
    (dict(lanes=4, acc_width="32"), TypeError, "acc_width must be an integer"),
    (dict(lanes=4, data_width=1), ValueError, "data_width must be in"),
    (dict(lanes=4, data_width=17), ValueError, "data_width must be in"),
    (dict(lanes=4, acc_width=8, data_width=12), ValueError, "acc_width must be >= data_width"),
    (dict(lanes=4, tag_width=0), ValueError, "tag_width must be in"),
    (dict(lanes=4, tag_width=None), TypeError, "tag_width must be an integer"),
])
def test_constructor_validates(kwargs, exc, words):
    with pytest.raises(exc, match=words):
        VectorUnit(**kwargs)


def test_layouts_are_the_ports():
    dut = VectorUnit(3, acc_width=24, data_width=6, tag_width=10)
    assert dut.inp.payload.shape() == vector_input_layout(3, 24, 10)
    assert dut.out.payload.shape() == vector_output_layout(3, 6, 10)
    assert dut.params.shape() == vector_params_layout(6)
    lay = vector_params_layout()
    assert lay.size == 16 + SHIFT_BITS + 3 * 8 and (1 << SHIFT_BITS) > golden.SHIFT_MAX
    assert isinstance(vector_input_layout(4)["acc"].shape, data.ArrayLayout)
    assert vector_input_layout(4).size == 4 * 32 + 32 + 16
    assert vector_output_layout(4).size == 4 * 8 + 16


def test_converts_to_verilog():
    text = verilog.convert(VectorUnit(4), name="vector_unit", emit_src=False)
    assert "module vector_unit" in text


# --------------------------------------------------------------------------- reference model
def expected(acc, bias, p, acc_width):
    """golden.requantize of the wrapped ``acc + bias``; for parameters outside the golden
    model's domain (shift > SHIFT_MAX, lo > hi) the same formula in Python integers."""
    x = golden.wrap(np.asarray(acc, dtype=np.int64) + bias, acc_width)
    if p["shift"] <= golden.SHIFT_MAX and p["lo"] <= p["hi"]:
        return golden.requantize(x, p["mult"], p["shift"], p["zero_point"], p["lo"], p["hi"])
    out = []
    for v in x.tolist():
        v *= p["mult"]
        if p["shift"]:
            v = (v + (1 << (p["shift"] - 1))) >> p["shift"]
        out.append(min(max(v + p["zero_point"], p["lo"]), p["hi"]))
    return np.array(out, dtype=np.int64)


def random_params(rng, dw, extra=False):
    """Parameter sets covering the corners, ReLU/ReLU6 bounds and random values."""
    qlo, qhi = -(1 << (dw - 1)), (1 << (dw - 1)) - 1
    mult = int(rng.choice([0, 1, 65535, 32768, int(rng.integers(0, 1 << 16))]))
    shift = int(rng.choice([0, 1, golden.SHIFT_MAX, 31, int(rng.integers(0, golden.SHIFT_MAX + 1))]))
    if extra and rng.random() < 0.3:
        shift = int(rng.integers(golden.SHIFT_MAX + 1, 1 << SHIFT_BITS))
    zp = int(rng.choice([0, qlo, qhi, int(rng.integers(qlo, qhi + 1))]))
    kind = rng.integers(0, 5 if extra else 4)
    if kind == 0:
        lo, hi = qlo, qhi                                            # no activation
    elif kind == 1:
        lo, hi = golden.relu_bounds(zp, qlo, qhi)                    # ReLU
    elif kind == 2:
        six = int(rng.integers(zp, qhi + 1))                         # q(6.0) >= zero point
        lo, hi = golden.relu_bounds(zp, qlo, qhi, relu6_q=six)       # ReLU6
    elif kind == 3:
        lo, hi = sorted(int(v) for v in rng.integers(qlo, qhi + 1, 2))
    else:
        hi, lo = sorted(int(v) for v in rng.integers(qlo, qhi + 1, 2))
        lo += lo == hi                                               # lo > hi: result is hi
        if lo > qhi:
            lo, hi = qhi, qhi - 1
    return dict(mult=mult, shift=shift, zero_point=zp, lo=lo, hi=hi)


def random_beats(rng, n, lanes, aw, dw, tw, extra=False):
    amin, amax = -(1 << (aw - 1)), (1 << (aw - 1)) - 1
    beats = []
    for _ in range(n):
        kind = rng.integers(0, 4)
        params = random_params(rng, dw, extra)
        if kind == 0:       # full-range accumulators and bias (the sum wraps)
            acc = rng.integers(amin, amax, lanes, endpoint=True)
            bias = int(rng.integers(amin, amax, endpoint=True))
        elif kind == 1:     # extremes
            acc = rng.choice([amin, amax, amin + 1, amax - 1, 0, -1, 1], lanes)
            bias = int(rng.choice([0, amin, amax, 1, -1]))
        elif kind == 2:     # small values: most results inside the clamp range
            acc = rng.integers(-4096, 4097, lanes)
            bias = int(rng.integers(-4096, 4097))
        else:               # rounding ties: acc * mult = (2k + 1) * 2**(shift-1), round half up
            s = int(rng.integers(1, min(aw - 6, 12)))
            acc = (2 * rng.integers(-16, 16, lanes) + 1) << (s - 1)
            bias = 0
            params.update(mult=1, shift=s)
        acc = np.clip(acc, amin, amax).astype(np.int64)
        beats.append(dict(acc=acc, bias=bias, params=params,
                          tag=int.from_bytes(rng.bytes(8), "little") % (1 << tw)))
    return beats


# --------------------------------------------------------------------------- stream drivers
def run_stream(dut, beats, seed, idle, bp, params_per_beat=True):
    """Drive ``beats`` (params set with each beat, or held per group of beats with the pipeline
    drained in between) with random idle cycles and back-pressure; check the stream rules on
    ``out`` every cycle; return the received payloads as (data, tag)."""
    rng_in, rng_out = random.Random(seed), random.Random(seed + 1)
    junk = np.random.default_rng(seed + 2)
    got = []

    async def producer(ctx):
        prev = None
        for n, b in enumerate(beats):
            if not params_per_beat and prev is not None and b["params"] != prev:
                ctx.set(dut.inp.valid, 0)         # operation boundary: drain, then change params
                while len(got) < n:
                    await ctx.tick()
            while idle and rng_in.random() < idle:
                ctx.set(dut.inp.valid, 0)
                if params_per_beat:
                    ctx.set(dut.params, random_params(junk, dut.data_width))   # junk while idle
                await ctx.tick()
            ctx.set(dut.params, b["params"])
            ctx.set(dut.inp.payload, {"acc": b["acc"].tolist(), "bias": b["bias"], "tag": b["tag"]})
            ctx.set(dut.inp.valid, 1)
            await ctx.tick().until(dut.inp.ready)
            prev = b["params"]
        ctx.set(dut.inp.valid, 0)

    async def consumer(ctx):
        held = None               # (payload) offered and not taken last cycle
        for _ in range(50 * len(beats) + 100):
            if len(got) == len(beats):
                break
            ready = not (bp and rng_out.random() < bp)
            ctx.set(dut.out.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.out.valid, dut.out.payload)
            pl = ([int(x) for x in payload.data], int(payload.tag)) if valid else None
            if held is not None:
                assert valid, "out.valid dropped before the transfer"
                assert pl == held, "out.payload changed before the transfer"
            if valid and ready:
                got.append(pl)
                held = None
            elif valid:
                held = pl
        else:
            raise AssertionError(f"timeout: got {len(got)} of {len(beats)} beats")
        ctx.set(dut.out.ready, 0)
        await ctx.tick().repeat(2 * dut.LATENCY)
        assert not ctx.get(dut.out.valid), "extra beat on out"

    run_sim(dut, producer, consumer)
    return got


def check(dut, beats, got):
    assert len(got) == len(beats)
    for n, (b, (d, tag)) in enumerate(zip(beats, got)):
        exp = expected(b["acc"], b["bias"], b["params"], dut.acc_width)
        assert tag == b["tag"], f"beat {n}: tag"
        assert np.array_equal(np.array(d, dtype=np.int64), exp), \
            f"beat {n}: {b['acc'].tolist()} + {b['bias']}, {b['params']}: got {d}, expected {exp.tolist()}"


@pytest.mark.parametrize("seed,idle,bp", [(1, 0.3, 0.5), (2, 0.0, 0.0), (3, 0.6, 0.2), (4, 0.1, 0.8)])
def test_random_beats_with_stalls(seed, idle, bp):
    rng = np.random.default_rng(seed)
    dut = VectorUnit(4)
    beats = random_beats(rng, 150, 4, 32, 8, 16)
    check(dut, beats, run_stream(dut, beats, seed, idle, bp))


def test_params_held_per_operation():
    """The documented use: params stable for a group of beats, changed between operations."""
    rng = np.random.default_rng(7)
    dut = VectorUnit(4)
    beats = []
    for _ in range(6):
        group = random_beats(rng, 15, 4, 32, 8, 16)
        for b in group:
            b["params"] = group[0]["params"]
        beats += group
    check(dut, beats, run_stream(dut, beats, 7, 0.2, 0.3, params_per_beat=False))


@pytest.mark.parametrize("lanes,aw,dw,tw", [(3, 20, 4, 5), (2, 48, 16, 64), (1, 8, 8, 1)])
def test_other_widths(lanes, aw, dw, tw):
    rng = np.random.default_rng(aw)
    dut = VectorUnit(lanes, acc_width=aw, data_width=dw, tag_width=tw)
    beats = random_beats(rng, 100, lanes, aw, dw, tw)
    check(dut, beats, run_stream(dut, beats, aw, 0.2, 0.4))


def test_outside_golden_domain():
    """shift in SHIFT_MAX+1 .. 63 and lo > hi: the documented extension of the formula."""
    rng = np.random.default_rng(11)
    dut = VectorUnit(4)
    beats = random_beats(rng, 120, 4, 32, 8, 16, extra=True)
    assert any(b["params"]["shift"] > golden.SHIFT_MAX for b in beats)
    assert any(b["params"]["lo"] > b["params"]["hi"] for b in beats)
    check(dut, beats, run_stream(dut, beats, 11, 0.2, 0.3))


def test_corner_products():
    """Every extreme accumulator against every corner (mult, shift) pair."""
    amin, amax = -(1 << 31), (1 << 31) - 1
    accs = np.array([amin, amax, amin + 1, -1], dtype=np.int64)
    beats = []
    for mult in (0, 1, 65535):
        for shift in (0, 1, 16, 31, 32, 46, 47):
            for zp, lo, hi in ((0, -128, 127), (-128, -128, 127), (127, -128, 127), (5, 5, 127)):
                beats.append(dict(acc=accs, bias=0, tag=len(beats),
                                  params=dict(mult=mult, shift=shift, zero_point=zp, lo=lo, hi=hi)))
    dut = VectorUnit(4)
    check(dut, beats, run_stream(dut, beats, 12, 0.0, 0.3))


@pytest.mark.parametrize("lanes,aw,small", [(4, 32, False), (4, 32, True), (1, 16, False),
                                             (3, 48, False), (3, 48, True)])
def test_full_throughput_and_latency(lanes, aw, small):
    """No stalls: beat n enters in cycle n * II and its result is valid II + 9 cycles later,
    II = lanes x multiplier passes per lane: one pass when acc + bias fits in 18 bits signed
    (`small`), else one per 17-bit chunk (the top one signed, up to 18 bits): 2 for 32 bits,
    3 for 48."""
    N = 20
    chunks = 1 if small or aw <= 18 else {32: 2, 48: 3}[aw]
    II, L = lanes * chunks, lanes * chunks + 9
    rng = np.random.default_rng(13)
    dut = VectorUnit(lanes, acc_width=aw)
    assert (dut.INTERVAL, dut.MIN_INTERVAL) == (lanes * {16: 1, 32: 2, 48: 3}[aw], lanes)
    beats = random_beats(rng, N, lanes, aw, 8, 16)
    for b in beats:
        if small:      # |acc + bias| < 2**17
            b["acc"] = rng.integers(-(1 << 16), 1 << 16, lanes)
            b["bias"] = int(rng.integers(-(1 << 16), 1 << 16))
        else:          # every lane needs every pass: |acc + bias| >= 2**(aw - 18) * 2**17
            b["acc"] = rng.choice([-1, 1], lanes) * (1 << (aw - 2)) + rng.integers(-99, 99, lanes)
            b["bias"] = 0
    stats = {"in_cycles": [], "out_cycles": []}
    got = []

    async def tb(ctx):
        ctx.set(dut.out.ready, 1)
        for cycle in range(N * II + 3 * L):
            k = len(stats["in_cycles"])
            if k < N:
                b = beats[k]
                ctx.set(dut.params, b["params"])
                ctx.set(dut.inp.payload, {"acc": b["acc"].tolist(), "bias": b["bias"], "tag": b["tag"]})
            ctx.set(dut.inp.valid, k < N)
            _, _, iv, ir, ov, op = await ctx.tick().sample(dut.inp.valid, dut.inp.ready,
                                                           dut.out.valid, dut.out.payload)
            if iv and ir:
                stats["in_cycles"].append(cycle)
            if ov:
                stats["out_cycles"].append(cycle)
                got.append(([int(x) for x in op.data], int(op.tag)))

    run_sim(dut, tb)
    assert stats["in_cycles"] == [n * II for n in range(N)]        # one beat per II cycles
    assert stats["out_cycles"] == [L + n * II for n in range(N)]
    check(dut, beats, got)


def test_ready_is_registered_and_buffer_bounded():
    """out.ready held low: exactly FIFO_DEPTH beats are accepted, none is lost; inp.ready never
    reacts combinationally to out.ready."""
    rng = np.random.default_rng(17)
    dut = VectorUnit(2)
    beats = random_beats(rng, 12, 2, 32, 8, 16)
    got, accepted = [], []

    async def tb(ctx):
        ctx.set(dut.out.ready, 0)
        k = 0
        for cycle in range(30):
            if k < len(beats):
                b = beats[k]
                ctx.set(dut.params, b["params"])
                ctx.set(dut.inp.payload, {"acc": b["acc"].tolist(), "bias": b["bias"], "tag": b["tag"]})
            ctx.set(dut.inp.valid, k < len(beats))
            r0 = ctx.get(dut.inp.ready)
            ctx.set(dut.out.ready, 1)
            assert ctx.get(dut.inp.ready) == r0          # no comb path out.ready -> inp.ready
            ctx.set(dut.out.ready, 0)
            _, _, iv, ir = await ctx.tick().sample(dut.inp.valid, dut.inp.ready)
            if iv and ir:
                k += 1
            accepted.append(k)
        assert k == dut.FIFO_DEPTH
        ctx.set(dut.inp.valid, 0)
        ctx.set(dut.out.ready, 1)
        for _ in range(len(beats) * dut.INTERVAL + 2 * dut.LATENCY):
            if len(got) == len(beats):
                break
            if k < len(beats):
                b = beats[k]
                ctx.set(dut.params, b["params"])
                ctx.set(dut.inp.payload, {"acc": b["acc"].tolist(), "bias": b["bias"], "tag": b["tag"]})
            ctx.set(dut.inp.valid, k < len(beats))
            _, _, iv, ir, ov, op = await ctx.tick().sample(dut.inp.valid, dut.inp.ready,
                                                           dut.out.valid, dut.out.payload)
            if iv and ir:
                k += 1
            if ov:
                got.append(([int(x) for x in op.data], int(op.tag)))

    run_sim(dut, tb)
    check(dut, beats, got)


_EQUIV_TB = """
module tb;
  reg clk = 0, rst = 1;
  reg [175:0] inp;
  reg [45:0] params;
  reg inp_valid = 0, out_ready = 0;
  wire [47:0] out_g, out_e;
  wire ready_g, ready_e, valid_g, valid_e;
  vu_generic g(.clk(clk), .rst(rst), .inp__payload(inp), .inp__valid(inp_valid),
               .inp__ready(ready_g), .params(params), .out__payload(out_g),
               .out__valid(valid_g), .out__ready(out_ready));
  vu_ecp5 e(.clk(clk), .rst(rst), .inp__payload(inp), .inp__valid(inp_valid),
            .inp__ready(ready_e), .params(params), .out__payload(out_e),
            .out__valid(valid_e), .out__ready(out_ready));
  integer t, k, bad = 0, beats = 0, seed = 11;
  initial begin
    #1 clk = 1; #1 clk = 0; rst = 0;
    for (t = 0; t < 6000; t = t + 1) begin
      // acc lanes and bias: random magnitudes, so lanes take one pass or two
      for (k = 0; k < 5; k = k + 1)
        inp[32*k +: 32] = $signed($random(seed)) >>> ($random(seed) & 31);
      inp[175:160] = $random(seed);
      params = {$random(seed), $random(seed)};
      inp_valid = ($random(seed) & 3) != 0; out_ready = ($random(seed) & 3) != 0;
      #1 clk = 1; #1 clk = 0;
      if (out_g !== out_e || ready_g !== ready_e || valid_g !== valid_e) bad = bad + 1;
      if (valid_g && out_ready) beats = beats + 1;
    end
    $display("RESULT bad=%0d beats=%0d", bad, beats);
    $finish;
  end
endmodule
"""


def test_ecp5_multiplier_matches_generic(tmp_path):
    """The "ecp5" vector unit (a MULT18X18D instance with its own registers, what `hasp synth`
    builds for ECP5) against the "generic" one, output by output and cycle by cycle in
    Icarus, with random beats, parameters and back-pressure."""
    import shutil
    if shutil.which("iverilog") is None or shutil.which("vvp") is None:
        pytest.skip("iverilog not available")
    r, line = compare_multipliers(tmp_path, lambda mult: VectorUnit(4, multiplier=mult), "vu",
                                  _EQUIV_TB)
    assert r["bad"] == 0 and r["beats"] > 500, line
