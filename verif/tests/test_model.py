"""The functional chip model (hasp.sw.model), program images (hasp.sw.image) and the MLP
mapping (hasp.sw.mapping) against numpy references written here.

Expected values are computed in this file with plain numpy/int arithmetic (lane packing,
matrix products, requantisation, wrap-around), not with the model or hasp.sw.golden.
"""
import json
import re

import numpy as np
import pytest

from hasp.config import preset
from hasp.sw import isa, mapping
from hasp.sw.image import Image, ImageError
from hasp.sw.model import ErrorCode, FunctionalModel, ModelError, State

TINY = preset("tiny")           # 2 x 2 cores, 4 x 4 PE array, 1024 words of 32 bits, 4 groups


# --------------------------------------------------------------------------- references
def pack(values, dw=8):
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) % (1 << dw)) << (i * dw)
    return word


def unpack(word, n, dw=8):
    out = []
    for i in range(n):
        v = (word >> (i * dw)) & ((1 << dw) - 1)
        out.append(v - (1 << dw) if v >= 1 << (dw - 1) else v)
    return out


def wrap(x, bits):
    x = np.asarray(x, dtype=object)
    return np.array([((int(v) + (1 << (bits - 1))) % (1 << bits)) - (1 << (bits - 1))
                     for v in x.ravel()], dtype=np.int64).reshape(x.shape)


def requant_ref(v, mult, shift, zp, lo, hi):
    out = []
    for x in np.asarray(v).ravel().tolist():
        y = x * mult
        if shift:
            y = (y + (1 << (shift - 1))) // (1 << shift)     # floor division = arithmetic shift
        out.append(min(max(y + zp, lo), hi))
    return np.array(out, np.int64).reshape(np.shape(v))


def make_image(cfg=TINY, programs=None, spm=None, groups=()):
    progs = {c: isa.assemble(p) if isinstance(p, str) else p for c, p in (programs or {}).items()}
    return Image(cfg, progs, spm or {}, list(groups))


def run(image, **kw):
    max_steps = kw.pop("max_steps", 100_000)
    return FunctionalModel(image, **kw).run(max_steps=max_steps)


def tile_words(A, B, R, C, dw=8):
    """A (mt*R x k) and B (k x nt*C) as GEMM tile words (word = A column / B row)."""
    k = A.shape[1]
    aw = [pack(A[mi:mi + R, kk], dw) for mi in range(0, A.shape[0], R) for kk in range(k)]
    bw = [pack(B[kk, nj:nj + C], dw) for nj in range(0, B.shape[1], C) for kk in range(k)]
    return aw, bw


# --------------------------------------------------------------------------- GEMM
@pytest.mark.parametrize("pe", [(4, 4), (8, 4), (2, 4)])
def test_gemm_tiles_overwrite_and_accumulate(pe):
    R, C = pe
    cfg = TINY.replace(pe={"rows": R, "cols": C})
    rng = np.random.default_rng(R * 10 + C)
    k, mt, nt = 5, 2, 3
    A = rng.integers(-128, 128, (mt * R, k))
    B1 = rng.integers(-128, 128, (k, nt * C))
    B2 = rng.integers(-128, 128, (k, nt * C))
    aw, b1 = tile_words(A, B1, R, C)
    _, b2 = tile_words(A, B2, R, C)
    spm = {0: {**{i: w for i, w in enumerate(aw)}, **{100 + i: w for i, w in enumerate(b1)},
               **{200 + i: w for i, w in enumerate(b2)}}}
    res = run(make_image(cfg, {0: f"""
        GEMM a=0 b=100 k={k} mt={mt} nt={nt} acc=0 dst=7
        GEMM a=0 b=200 k={k} mt={mt} nt={nt} acc=1 dst=7
        HALT"""}, spm))
    assert res.ok, res.report()
    acc = res.cores[0].acc
    P = A @ (B1 + B2)
    for mi in range(mt):
        for nj in range(nt):
            t = mi * nt + nj
            np.testing.assert_array_equal(acc[7 + t * R:7 + (t + 1) * R],
                                          P[mi * R:(mi + 1) * R, nj * C:(nj + 1) * C])
    assert not acc[:7].any() and not acc[7 + mt * nt * R:].any()
    assert res.cores[0].macs == 2 * R * C * k * mt * nt
    assert res.cores[0].instructions == 3


def test_gemm_accumulator_wraps_at_acc_width():
    cfg = TINY.replace(pe={"acc_width": 16})
    k = 3
    A = np.full((4, k), -128)
    B = np.full((k, 4), -128)
    aw, bw = tile_words(A, B, 4, 4)
    spm = {0: {**dict(enumerate(aw)), **{10 + i: w for i, w in enumerate(bw)}}}
    res = run(make_image(cfg, {0: f"""
        GEMM a=0 b=10 k={k} mt=1 nt=1 dst=0
        GEMM a=0 b=10 k={k} mt=1 nt=1 acc=1 dst=0
        HALT"""}, spm))
    assert res.ok
    # 3 * 16384 = 49152 wraps to -16384; twice: 98304 wraps to -32768
    assert 2 * k * 128 * 128 - (1 << 17) == -32768
    np.testing.assert_array_equal(res.cores[0].acc[:4], np.full((4, 4), -32768))


@pytest.mark.parametrize("fields", ["k=0 mt=1 nt=1", "k=4 mt=0 nt=1", "k=4 mt=1 nt=0"])
def test_gemm_empty_is_noop(fields):
    # addresses would be out of range, but an empty GEMM checks nothing
    res = run(make_image(programs={0: f"GEMM a=16000 b=16000 dst=1023 {fields}\nHALT"}))
    assert res.ok, res.report()
    assert res.cores[0].macs == 0 and not res.cores[0].acc.any()


# --------------------------------------------------------------------------- REQUANT
def test_requant_with_bias_non_square():
    R, C = 8, 4                                     # lanes = 8, words of 64 bits
    cfg = TINY.replace(pe={"rows": R, "cols": C})
    rng = np.random.default_rng(5)
    k = 6
    A = rng.integers(-128, 128, (R, k))
    B = rng.integers(-128, 128, (k, C))
    aw, bw = tile_words(A, B, R, C)
    bias = rng.integers(-40000, 40000, R)
    # bias words: int32 in the low 32 bits; the high bits are ignored
    bias_words = [(int(b) % (1 << 32)) | (0xDEAD << 40) for b in bias]
    spm = {0: {**dict(enumerate(aw)), **{50 + i: w for i, w in enumerate(bw)},
               **{80 + i: w for i, w in enumerate(bias_words)}, 120: (1 << 64) - 1}}
    mult, shift, zp, lo, hi = 1234, 18, -7, -100, 90
    res = run(make_image(cfg, {0: f"""
        GEMM a=0 b=50 k={k} mt=1 nt=1 dst=3
        REQUANT src=3 dst=200 rows={R}                      # reset params: identity + int8 clamp
        SETQ mult={mult} shift={shift} zp={zp} lo={lo} hi={hi}
        REQUANT src=3 dst=300 rows={R} bias=80 use_bias=1
        REQUANT src=3 dst=120 rows=0 bias=80 use_bias=1     # no-op: word 120 unchanged
        HALT"""}, spm))
    assert res.ok, res.report()
    v = A @ B
    exp_plain = np.clip(v, -128, 127)
    exp_bias = requant_ref(v + bias[:, None], mult, shift, zp, lo, hi)
    spm_out = res.cores[0].spm
    for i in range(R):
        assert unpack(spm_out[200 + i], 8) == exp_plain[i].tolist() + [0] * 4
        assert unpack(spm_out[300 + i], 8) == exp_bias[i].tolist() + [0] * 4
    assert spm_out[120] == (1 << 64) - 1
    assert res.cores[0].requant == dict(mult=mult, shift=shift, zp=zp, lo=lo, hi=hi)


def test_requant_bias_add_wraps():
    cfg = TINY.replace(pe={"acc_width": 16, "rows": 2, "cols": 2})   # 16-bit words = acc
    A = np.array([[127, 127], [-128, -128]])
    B = np.array([[127, 127], [127, 127]])
    aw, bw = tile_words(A, B, 2, 2)
    bias = [30000, -30000]
    spm = {0: {0: aw[0], 1: aw[1], 10: bw[0], 11: bw[1],
               20: bias[0] % (1 << 16), 21: bias[1] % (1 << 16)}}
    res = run(make_image(cfg, {0: """
        GEMM a=0 b=10 k=2 mt=1 nt=1
        SETQ mult=1 shift=8
        REQUANT src=0 dst=30 rows=2 bias=20 use_bias=1
        HALT"""}, spm))
    assert res.ok
    v = wrap(wrap(A @ B, 16) + np.array(bias)[:, None], 16)
    exp = requant_ref(v, 1, 8, 0, -128, 127)
    assert [unpack(res.cores[0].spm[30 + i], 2) for i in range(2)] == exp.tolist()


def test_requant_bias_word_narrower_than_acc():
    cfg = TINY.replace(pe={"rows": 2, "cols": 2})     # 16-bit words, 32-bit accumulators
    A = np.array([[3, 0], [0, 5]])
    B = np.array([[100, -7], [2, 9]])
    aw, bw = tile_words(A, B, 2, 2)
    bias = [-300, 1000]                                # stored as 16-bit two's complement
    spm = {0: {0: aw[0], 1: aw[1], 10: bw[0], 11: bw[1],
               20: bias[0] % (1 << 16), 21: bias[1] % (1 << 16)}}
    res = run(make_image(cfg, {0: """
        GEMM a=0 b=10 k=2 mt=1 nt=1
        SETQ mult=1 shift=3
        REQUANT src=0 dst=30 rows=2 bias=20 use_bias=1
        HALT"""}, spm))
    assert res.ok
    exp = requant_ref(A @ B + np.array(bias)[:, None], 1, 3, 0, -128, 127)
    assert [unpack(res.cores[0].spm[30 + i], 2) for i in range(2)] == exp.tolist()


# --------------------------------------------------------------------------- SEND / WAIT
def test_send_wait_lock_key_and_self_send():
    data = [pack([i, -i, 2 * i, 100]) for i in range(10)]
    spm = {1: {5 + i: w for i, w in enumerate(data)}, 0: {40: 0xAABBCCDD}}
    res = run(make_image(programs={
        0: """WAIT tag=5 count=2
              SEND src=40 len=1 x=0 y=0 dst=41 tag=9      # to itself
              WAIT tag=9 count=1
              HALT""",
        1: """SEND src=5 len=4 x=0 y=0 dst=100 tag=5
              SEND src=9 len=6 x=0 y=0 dst=104 tag=5
              SEND src=5 len=1 x=0 y=1 dst=0 tag=5         # to core 2
              SEND src=5 len=2 x=0 y=0 dst=200 tag=5
              HALT"""}, spm=spm))
    assert res.ok, res.report()
    c0 = res.cores[0]
    assert c0.spm[100:110] == data
    assert c0.spm[200:202] == data[:2]
    assert c0.spm[41] == 0xAABBCCDD
    assert c0.tags[5] == 1 and c0.tags[9] == 0          # 3 packets in, 2 taken
    assert res.cores[2].spm[0] == data[0] and res.cores[2].tags[5] == 1
    assert res.cores[2].state == State.IDLE
    assert res.cores[1].packets_sent == 4 and res.cores[1].words_sent == 13


def consumer_producer(wait: bool):
    """Core 3 computes slowly, then sends B to core 0, which multiplies it (after WAIT)."""
    rng = np.random.default_rng(1)
    A = rng.integers(-128, 128, (4, 8))
    B = rng.integers(-128, 128, (8, 4))
    aw, bw = tile_words(A, B, 4, 4)
    spm = {0: dict(enumerate(aw)), 3: {500 + i: w for i, w in enumerate(bw)}}
    img = make_image(programs={
        0: ("WAIT tag=7 count=1\n" if wait else "") + "GEMM a=0 b=64 k=8 mt=1 nt=1\nHALT",
        3: """top: DELAY cycles=100
              LOOP target=top count=25
              SEND src=500 len=8 x=0 y=0 dst=64 tag=7
              HALT"""}, spm=spm)
    return img, A @ B


@pytest.mark.parametrize("latency,seed", [(0, None), (5, None), (9, 1), (9, 2)])
def test_wait_orders_consumer_after_producer(latency, seed):
    img, expected = consumer_producer(wait=True)
    res = run(img, latency=latency, seed=seed)
    assert res.ok, res.report()
    np.testing.assert_array_equal(res.cores[0].acc[:4], expected)
    assert res.cores[0].tags[7] == 0


def test_missing_wait_reads_stale_data():
    img, expected = consumer_producer(wait=False)
    res = run(img)
    assert res.ok
    assert not res.cores[0].acc[:4].any()               # B not there yet: zeros
    assert not np.array_equal(res.cores[0].acc[:4], expected)


# --------------------------------------------------------------------------- SYNC
def events(res, core, kind, op="SYNC"):
    return [e.step for e in res.trace if e.core == core and e.kind == kind and e.text.startswith(op)]


def test_sync_two_groups():
    groups = [0b0011, 0b1100]
    res = run(make_image(programs={
        0: "a: NOP\nLOOP target=a count=20\nSYNC group=0\nHALT",
        1: "SYNC group=0\nHALT",
        2: "SYNC group=1\nHALT",
        3: "a: NOP\nLOOP target=a count=60\nSYNC group=1\nHALT",
    }, groups=groups), trace=True)
    assert res.ok, res.report()
    arrive = {c: events(res, c, "block")[0] for c in range(4)}
    release = {c: events(res, c, "retire")[0] for c in range(4)}
    for members in ([0, 1], [2, 3]):
        last = max(arrive[m] for m in members)
        for m in members:
            assert release[m] == last, (members, arrive, release)
    assert arrive[1] < arrive[0] < arrive[3]
    assert release[0] < arrive[3]                        # group 0 does not wait for group 1
    assert [c.instructions for c in res.cores] == [42, 2, 2, 122]


def test_sync_barrier_repeated():
    groups = [0, 0b1011]
    progs = {
        0: "top: SYNC group=1\n" + "NOP\n" * 9 + "LOOP target=top count=4\nHALT",
        1: "top: SYNC group=1\nLOOP target=top count=4\nHALT",
        3: "top: NOP\nNOP\nNOP\nSYNC group=1\nLOOP target=top count=4\nHALT",
    }
    res = run(make_image(programs=progs, groups=groups), trace=True)
    assert res.ok, res.report()
    arrivals = {c: events(res, c, "block") for c in (0, 1, 3)}
    releases = {c: events(res, c, "retire") for c in (0, 1, 3)}
    for c in (0, 1, 3):
        assert len(arrivals[c]) == len(releases[c]) == 4
    for k in range(4):
        last = max(arrivals[c][k] for c in (0, 1, 3))
        assert all(releases[c][k] == last for c in (0, 1, 3)), (k, arrivals, releases)
    assert res.cores[2].state == State.IDLE


# --------------------------------------------------------------------------- loops
@pytest.mark.parametrize("count,times", [(0, 1), (1, 1), (2, 2), (7, 7)])
def test_loop_runs_body_count_times(count, times):
    rng = np.random.default_rng(count)
    A = rng.integers(-128, 128, (4, 3))
    B = rng.integers(-128, 128, (3, 4))
    aw, bw = tile_words(A, B, 4, 4)
    spm = {0: {**dict(enumerate(aw)), **{10 + i: w for i, w in enumerate(bw)}}}
    res = run(make_image(programs={0: f"""
        NOP
        body: GEMM a=0 b=10 k=3 mt=1 nt=1 acc=1
        NOP
        LOOP target=body count={count}
        again: DELAY cycles=3
        LOOP target=again count=3             # a second loop reuses the counter
        HALT"""}, spm=spm))
    assert res.ok, res.report()
    np.testing.assert_array_equal(res.cores[0].acc[:4], times * (A @ B))
    assert res.cores[0].instructions == 1 + 3 * times + 2 * 3 + 1
    assert res.cores[0].delay_cycles == 9
    assert res.cores[0].loop_counter == 0


@pytest.mark.parametrize("text,match", [
    ("a: NOP\nb: NOP\nLOOP target=b count=2\nLOOP target=a count=2\nHALT",
     r"core 1 pc 3: LOOP body \[0, 3\] contains the LOOP at pc 2 \(loops do not nest\)"),
    ("LOOP target=2 count=2\nNOP\nHALT", r"core 1 pc 0: LOOP target 2 is after the LOOP"),
])
def test_bad_loops_refused(text, match):
    img = make_image(programs={1: text})
    with pytest.raises(ImageError, match=match):
        FunctionalModel(img)


# --------------------------------------------------------------------------- errors
DEPTH = TINY.core.imem_depth    # 256
ERRORS = [
    # no HALT: the words after the program are NOP (0) up to the end of instruction memory
    ("NOP\nNOP", ErrorCode.PC_OVERFLOW, DEPTH, "past the end of instruction memory"),
    (None, ErrorCode.ILLEGAL_OP, 1, "illegal instruction"),
    ("GEMM a=1020 b=0 k=4 mt=2 nt=1\nHALT", ErrorCode.SPM_RANGE, 0, r"spm words \[1020, 1028\)"),
    ("GEMM a=0 b=1021 k=4 mt=1 nt=1\nHALT", ErrorCode.SPM_RANGE, 0, "GEMM B reads"),
    # 256 accumulator rows: [244, 260) overflows by 4 rows, [240, 256) just fits (below)
    ("NOP\nGEMM a=0 b=0 k=4 mt=2 nt=2 dst=244\nHALT", ErrorCode.ACC_RANGE, 1,
     r"accumulator rows \[244, 260\) out of range \(256 rows\)"),
    ("REQUANT src=252 dst=0 rows=5\nHALT", ErrorCode.ACC_RANGE, 0, "REQUANT reads"),
    ("REQUANT src=0 dst=1023 rows=2\nHALT", ErrorCode.SPM_RANGE, 0, "REQUANT writes"),
    ("REQUANT src=0 dst=0 rows=2 bias=1023 use_bias=1\nHALT", ErrorCode.SPM_RANGE, 0, "bias"),
    # both ranges bad: the scratchpad is checked first (the RTL's order)
    ("REQUANT src=1000 dst=1023 rows=2\nHALT", ErrorCode.SPM_RANGE, 0, "REQUANT writes"),
    ("SEND src=1000 len=30 x=1 y=0 dst=0\nHALT", ErrorCode.SPM_RANGE, 0, "SEND reads"),
    ("SEND src=0 len=30 x=1 y=0 dst=1000\nHALT", ErrorCode.SPM_RANGE, 0, "of core 1 out of range"),
    ("SEND src=1000 len=30 x=2 y=0 dst=0 tag=16\nHALT", ErrorCode.SPM_RANGE, 0, "SEND reads"),
    ("SEND src=0 len=1 x=2 y=0 dst=0\nHALT", ErrorCode.BAD_DEST, 0, r"\(x=2,y=0\) is outside the 2x2 mesh"),
    ("SEND src=0 len=1 x=0 y=5 dst=0\nHALT", ErrorCode.BAD_DEST, 0, "outside"),
    ("SEND src=0 len=1 x=0 y=5 dst=0 tag=200\nHALT", ErrorCode.BAD_DEST, 0, "outside"),
    ("SEND src=0 len=1 x=1 y=0 dst=0 tag=16\nHALT", ErrorCode.BAD_TAG, 0,
     r"tag 16 out of range \(a core has 16 tag counters"),
    ("NOP\nWAIT tag=16 count=0\nHALT", ErrorCode.BAD_TAG, 1, "tag 16 out of range"),
    ("WAIT tag=255 count=1\nHALT", ErrorCode.BAD_TAG, 0, "tag 255"),
    ("SYNC group=1\nHALT", ErrorCode.SYNC_ERROR, 0,
     r"core 0 is not a member of sync group 1 \(members: 1, 2\)"),
    ("SYNC group=3\nHALT", ErrorCode.SYNC_ERROR, 0, r"members: none"),
    ("SYNC group=4\nHALT", ErrorCode.BAD_GROUP, 0, r"group 4 does not exist \(the chip has 4"),
    ("SETQ mult=1 shift=48\nHALT", ErrorCode.BAD_REQUANT, 0, "shift 48 > 47"),
    ("SETQ mult=1 lo=10 hi=5\nHALT", ErrorCode.BAD_REQUANT, 0, "empty clamp range"),
]


@pytest.mark.parametrize("text,code,pc,match", ERRORS, ids=[e[1].name + str(i) for i, e in enumerate(ERRORS)])
def test_errors_stop_the_core(text, code, pc, match):
    prog = [isa.encode("NOP"), 31 | (1 << 40), isa.encode("HALT")] if text is None else text
    # core 1 keeps working and halts normally: one core's error does not stop the others
    img = make_image(programs={0: prog, 1: "NOP\nNOP\nHALT"}, groups=[0b0001, 0b0110])
    res = run(img)
    c0 = res.cores[0]
    assert res.stop == "done" and not res.ok
    assert c0.state == State.ERROR and c0.error_code == code and c0.pc == pc, res.report()
    assert re.search(match, c0.error), c0.error
    assert res.cores[1].state == State.HALTED
    assert not c0.acc.any() and not any(res.cores[1].spm)      # the failing instruction did nothing
    assert f"error {code.name}" in res.report()
    with pytest.raises(ModelError, match=code.name):
        res.check()


def test_error_report_names_illegal_instruction():
    img = make_image(programs={2: [isa.encode("NOP"), isa.encode("NOP"), 0x1F]})
    res = run(img)
    assert "core 2 (x=0,y=1) pc 2: error ILLEGAL_OP (1): illegal instruction " \
           "0x000000000000001f (opcode 31) at pc 2" in res.report()


def test_error_codes_are_the_isa_codes():
    # one definition: the model's codes are hasp.sw.isa.ErrorCode (the RTL core's numbering)
    assert ErrorCode is isa.ErrorCode
    assert [(e.name, e.value) for e in ErrorCode] == [
        ("NONE", 0), ("ILLEGAL_OP", 1), ("PC_OVERFLOW", 2), ("SPM_RANGE", 3), ("ACC_RANGE", 4),
        ("LOOP_TARGET", 5), ("LOOP_NEST", 6), ("BAD_TAG", 7), ("BAD_GROUP", 8), ("BAD_DEST", 9),
        ("SYNC_ERROR", 10), ("BAD_REQUANT", 11)]
    assert (isa.TAGS, isa.ACC_ROWS) == (16, 256)
    res = run(make_image(programs={0: "HALT"}))
    assert res.cores[0].acc.shape == (256, TINY.pe.cols) and len(res.cores[0].tags) == 16


def test_last_tag_and_last_acc_rows_are_usable():
    res = run(make_image(programs={
        0: "SEND src=0 len=1 x=0 y=0 dst=5 tag=15\nWAIT tag=15 count=1\n"
           "GEMM a=0 b=0 k=1 mt=2 nt=2 dst=240\nREQUANT src=255 dst=9 rows=1\nHALT"},
        spm={0: {0: pack([1, 2, 3, 4]), 1: pack([1, 2, 3, 4])}}))
    assert res.ok, res.report()
    # tile (mi=1, nj=1) row 3 = lane 3 of A times B row: 4 * [1, 2, 3, 4]
    assert list(res.cores[0].acc[255]) == [4, 8, 12, 16]
    assert unpack(res.cores[0].spm[9], 4) == [4, 8, 12, 16]


def test_running_past_the_program_executes_nops():
    res = run(make_image(programs={0: "NOP\nNOP\nNOP", 1: "HALT"}))
    c0 = res.cores[0]
    assert c0.state == State.ERROR and c0.error_code == ErrorCode.PC_OVERFLOW
    assert c0.pc == TINY.core.imem_depth
    assert c0.instructions == TINY.core.imem_depth      # 3 NOPs + 253 zero words
    assert "missing HALT" in c0.error


def test_tag_counter_saturates():
    res = run(make_image(programs={
        0: "top: SEND src=0 len=1 x=1 y=0 dst=0 tag=2\nLOOP target=top count=65535\n"
           "SEND src=0 len=1 x=1 y=0 dst=0 tag=2\nSEND src=0 len=1 x=1 y=0 dst=0 tag=3\nHALT",
        1: "WAIT tag=3 count=1\nWAIT tag=2 count=65535\nHALT"}), max_steps=200_000)
    # 65536 packets on tag 2: the counter stops at 65535 (no error), WAIT takes them all
    assert res.ok, res.report()
    assert res.cores[0].packets_sent == 65537
    assert res.cores[1].tags[2] == 0 and res.cores[1].tags[3] == 0


@pytest.mark.parametrize("text,code,pc", [
    ("NOP\nLOOP target=3 count=2\nNOP\nHALT", ErrorCode.LOOP_TARGET, 1),
    # the outer LOOP (pc 2) is active when the inner one (pc 1) is reached again
    ("L: NOP\nLOOP target=L count=2\nLOOP target=L count=2\nHALT", ErrorCode.LOOP_NEST, 1),
])
def test_bad_loops_at_run_time(monkeypatch, text, code, pc):
    # Image.validate refuses these statically; bypass it to check the run-time codes (the
    # RTL core's, verif/tests/test_core.py::test_errors)
    img = make_image(programs={0: text})
    with pytest.raises(ImageError):
        img.validate()
    monkeypatch.setattr(Image, "validate", lambda self: self)
    res = run(img)
    c0 = res.cores[0]
    assert c0.state == State.ERROR and c0.error_code == code and c0.pc == pc, res.report()


# --------------------------------------------------------------------------- watchdog
def test_deadlock_report_names_cores():
    res = run(make_image(programs={
        0: "WAIT tag=3 count=2\nHALT",
        1: "NOP\nSYNC group=1\nHALT",
        2: "SEND src=0 len=1 x=0 y=0 dst=9 tag=3\nHALT",
        3: "HALT",
    }, groups=[0, 0b1010]), max_steps=1000)
    assert res.stop == "deadlock" and not res.ok
    assert res.steps < 10
    rep = res.report()
    assert "deadlock" in rep
    assert "core 0 (x=0,y=0) pc 0: WAIT tag 3 count 2 (counter 1)" in rep
    assert "core 1 (x=1,y=0) pc 1: SYNC group 1 (waiting for cores 3; core 3 halted)" in rep
    assert "halted: cores 2, 3" in rep
    assert res.cores[0].state == State.WAIT and res.cores[1].state == State.SYNC
    with pytest.raises(ModelError, match=r"WAIT tag 3 count 2") as e:
        res.check()
    assert e.value.result is res


def test_deadlock_two_cores_waiting_on_each_other():
    res = run(make_image(programs={
        0: "WAIT tag=1 count=1\nSEND src=0 len=1 x=1 y=0 dst=0 tag=2\nHALT",
        1: "WAIT tag=2 count=1\nSEND src=0 len=1 x=0 y=0 dst=0 tag=1\nHALT"}))
    assert res.stop == "deadlock"
    assert "core 0 (x=0,y=0) pc 0: WAIT tag 1 count 1 (counter 0)" in res.report()
    assert "core 1 (x=1,y=0) pc 0: WAIT tag 2 count 1 (counter 0)" in res.report()


def test_max_steps_stops_a_long_program():
    res = run(make_image(programs={3: "top: NOP\nLOOP target=top count=60000\nHALT"}),
              max_steps=100)
    assert res.stop == "max_steps" and res.steps == 100 and not res.ok
    assert "core 3 (x=1,y=1) pc" in res.report() and "running" in res.report()
    assert res.cores[3].instructions == 100


def test_run_check_raises():
    with pytest.raises(ModelError, match="deadlock"):
        FunctionalModel(make_image(programs={0: "WAIT tag=0 count=1\nHALT"})).run(check=True)
    res = FunctionalModel(make_image(programs={0: "HALT"})).run(check=True)
    assert res.ok and res.cores[0].instructions == 1


# --------------------------------------------------------------------------- images
def test_program_too_large_refused_before_running():
    img = make_image(programs={3: [isa.encode("NOP")] * 256 + [isa.encode("HALT")]})
    with pytest.raises(ImageError, match=r"^core 3: program has 257 instructions, "
                                         r"instruction memory holds 256$"):
        FunctionalModel(img)
    ok = make_image(programs={3: [isa.encode("NOP")] * 255 + [isa.encode("HALT")]})
    assert run(ok).ok


@pytest.mark.parametrize("kwargs,match", [
    ({"programs": {4: [1]}}, r"program for core 4: the mesh has 4 cores \(ids 0..3\)"),
    ({"programs": {-1: [1]}}, r"program for core -1"),
    ({"programs": {0: [1 << 64]}}, r"core 0 pc 0: instruction .* is not a 64-bit unsigned word"),
    ({"programs": {0: [1, -5]}}, r"core 0 pc 1: instruction -5"),
    ({"spm": {7: {0: 1}}}, r"spm contents for core 7"),
    ({"spm": {1: {1024: 1}}}, r"core 1: spm address 1024 out of range \(the scratchpad holds 1024 words"),
    ({"spm": {1: {-1: 1}}}, r"core 1: spm address -1"),
    ({"spm": {2: {5: 1 << 32}}}, r"core 2: spm word at 5 \(0x100000000\) is not an unsigned 32-bit word"),
    ({"spm": {2: {5: -1}}}, r"core 2: spm word at 5"),
    ({"groups": [0, 0, 0, 0, 0]}, r"5 sync groups given, the chip has 4"),
    ({"groups": [0b10000]}, r"sync group 0: member mask 0x10 names cores outside the mesh"),
])
def test_image_validation(kwargs, match):
    with pytest.raises(ImageError, match=match):
        Image(TINY, **kwargs).validate()


def test_image_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (3, 9))
    layers = [(rng.integers(-128, 128, (9, 8)), rng.integers(-500, 500, 8), (7, 9, 0, True)),
              (rng.integers(-128, 128, (8, 5)), None, (9, 10, 2, False))]
    img = mapping.map_mlp(TINY, layers, x)
    img.groups = [0b1111]
    path = tmp_path / "img.json"
    img.save(path)
    json.loads(path.read_text())
    back = Image.load(path)
    assert back.cfg == img.cfg and back.programs == img.programs and back.spm == img.spm
    assert back.groups == img.groups and back.regions == img.regions
    assert mapping.mlp_output(back, run(back)).tolist() == mapping.mlp_output(img, run(img)).tolist()
    path.write_text("{}")
    with pytest.raises(ImageError, match="not a hasp image"):
        Image.load(path)


# --------------------------------------------------------------------------- the MLP
def mlp_reference(layers, x):
    """Independent numpy reference: int64 matmul, bias, round-half-up shift, clamp."""
    h = np.asarray(x, np.int64)
    for W, b, (mult, shift, zp, relu) in layers:
        acc = h @ np.asarray(W, np.int64)
        if b is not None:
            acc = acc + np.asarray(b, np.int64)
        assert np.abs(acc).max() < 2 ** 31                   # no int32 wrap in this test
        y = (acc * mult + (1 << (shift - 1))) >> shift if shift else acc * mult
        h = np.clip(y + zp, max(zp, -128) if relu else -128, 127)
    return h


def random_mlp(rng, sizes, batch):
    x = rng.integers(-128, 128, (batch, sizes[0]))
    layers = []
    for i, (k, n) in enumerate(zip(sizes, sizes[1:])):
        W = rng.integers(-128, 128, (k, n))
        b = rng.integers(-20000, 20000, n)
        shift = 10 + int(np.log2(k))                          # keep outputs mostly in range
        layers.append((W, b, (int(rng.integers(20, 60)), shift, int(rng.integers(-10, 10)),
                           i < len(sizes) - 2)))
    return x, layers


@pytest.mark.parametrize("sizes,batch", [((20, 24, 10), 6), ((32, 64, 16), 4), ((7, 5, 3), 1)])
def test_mlp_two_layers_on_four_cores(sizes, batch):
    rng = np.random.default_rng(sum(sizes) + batch)
    x, layers = random_mlp(rng, sizes, batch)
    expected = mlp_reference(layers, x)
    assert len(np.unique(expected)) > min(expected.size, 8) // 2   # not all saturated
    np.testing.assert_array_equal(mapping.expected_mlp(layers, x), expected)

    img = mapping.map_mlp(TINY, layers, x)
    res = run(img)
    assert res.ok, res.report()
    np.testing.assert_array_equal(mapping.mlp_output(img, res), expected)

    # helper-core mode: layer 1 split over the cores that got feature tiles, layer 2 on core 0
    R, C = TINY.pe.rows, TINY.pe.cols
    K0, N1, N2 = sizes
    T1, T2 = -(-N1 // R), -(-N2 // R)
    nbt = -(-batch // C)
    tiles = [T1 // 4 + (i < T1 % 4) for i in range(4)]
    macs = [R * C * nbt * K0 * t for t in tiles]
    macs[0] += R * C * nbt * (T1 * R) * T2
    assert [c.macs for c in res.cores] == macs
    helpers = [c for c in range(1, 4) if tiles[c]]
    assert all(res.cores[c].packets_sent == nbt for c in helpers)
    assert res.cores[0].tags.sum() == 0
    # the same answer whatever the packet latencies and core order
    for seed in range(3):
        r2 = run(img, latency=6, seed=seed)
        assert r2.ok, r2.report()
        np.testing.assert_array_equal(mapping.mlp_output(img, r2), expected)


def test_mlp_three_layers_split_everywhere():
    rng = np.random.default_rng(11)
    x, layers = random_mlp(rng, (16, 40, 24, 12), 7)
    img = mapping.map_mlp(TINY, layers, x, placement=[[0, 1, 2, 3], [1, 2, 3], [0, 3]])
    for seed in (None, 4):
        res = run(img, latency=4, seed=seed)
        assert res.ok, res.report()
        np.testing.assert_array_equal(mapping.mlp_output(img, res), mlp_reference(layers, x))


def test_mlp_without_wait_is_caught_by_latency():
    rng = np.random.default_rng(2)
    x, layers = random_mlp(rng, (20, 24, 10), 6)
    img = mapping.map_mlp(TINY, layers, x)
    wait = isa.Op.WAIT
    img.programs[0] = [w for w in img.programs[0] if isa.decode(w).op != wait]
    res = run(img, latency=5)
    assert res.ok
    assert not np.array_equal(mapping.mlp_output(img, res), mlp_reference(layers, x))


def test_mlp_too_big_refused():
    x = np.zeros((4, 4000), np.int64)
    layers = [(np.zeros((4000, 64), np.int64), None, (1, 0, 0, False))]
    with pytest.raises(mapping.MappingError, match=r"activation buffers: 4064 scratchpad words "
                                                   r"needed, the scratchpad holds 1024"):
        mapping.map_mlp(TINY, layers, x)
    x = np.zeros((4, 200), np.int64)
    layers = [(np.zeros((200, 64), np.int64), None, (1, 0, 0, False))]
    with pytest.raises(mapping.MappingError, match=r"core 0 \(layer 0 weights and bias\)"):
        mapping.map_mlp(TINY, layers, x)


def test_image_accepts_word_lists_and_text():
    img = Image(TINY, programs={1: "SEND src=0 len=3 x=0 y=0 dst=10 tag=1\nHALT",
                                0: "WAIT tag=1 count=1\nHALT"},
                spm={1: np.array([7, 8, 9])})
    assert img.spm[1] == {0: 7, 1: 8, 2: 9}
    res = run(img)
    assert res.ok and res.cores[0].spm[10:13] == [7, 8, 9]


def test_sync_group0_is_every_core_by_default():
    progs = {c: "NOP\n" * (3 * c) + "SYNC group=0\nHALT" for c in range(4)}
    res = run(make_image(programs=progs), trace=True)
    assert res.ok, res.report()
    releases = [events(res, c, "retire")[0] for c in range(4)]
    assert releases == [3 * 3 + 1] * 4                  # when core 3 arrives (step 10)
    # an idle core is a member too: the others wait for it
    del progs[2]
    res = run(make_image(programs=progs))
    assert res.stop == "deadlock"
    assert "SYNC group 0 (waiting for cores 2; core 2 idle)" in res.report()
    # group 1 has no members by default
    res = run(make_image(programs={0: "SYNC group=1\nHALT"}))
    assert res.cores[0].error_code == ErrorCode.SYNC_ERROR
