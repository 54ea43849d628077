"""The whole chip on the generated Verilog, through the runtime's RTL backend (AXI4-Lite host
port, cocotbext-axi) in Icarus and Verilator, against the numpy golden and the functional
model. One chip build per simulator is shared by every test (hasp.verif.runner caches it);
each test runs several images in one simulator session."""
import numpy as np
import pytest

from hasp.config import preset
from hasp.sw import isa, mapping, runtime
from hasp.sw.image import Image, ImageError
from hasp.verif.random_programs import random_image

pytestmark = pytest.mark.cocotb
TINY = preset("tiny")


def random_mlp(cfg, seed, n_layers=2):
    rng = np.random.default_rng(seed)
    batch = int(rng.integers(1, 9))
    sizes = [int(rng.integers(4, 33)) for _ in range(n_layers + 1)]
    layers = []
    for l in range(n_layers):
        W = rng.integers(-128, 128, (sizes[l], sizes[l + 1]))
        bias = rng.integers(-3000, 3000, sizes[l + 1])
        layers.append(mapping.MlpLayer(W, bias, int(rng.integers(1000, 1 << 16)),
                                       int(rng.integers(18, 24)), int(rng.integers(-10, 10)),
                                       relu=(l == 0)))
    x = rng.integers(-128, 128, (batch, sizes[0]))
    return layers, x


def test_mlp_bit_exact(simulator):
    """A fully connected layer and 2-layer MLPs split across the four cores (helper-core
    mode), gathered on core 0 with SEND/WAIT, random weights and inputs over several seeds."""
    cases = [random_mlp(TINY, 0, n_layers=1)] + [random_mlp(TINY, seed) for seed in range(1, 5)]
    images = [mapping.map_mlp(TINY, layers, x) for layers, x in cases]
    results = runtime.run_rtl(images, sim=simulator, read_programs=True)
    for (layers, x), img, r in zip(cases, images, results):
        assert r.ok, r.report()
        # Instruction memories read back through the host port hold the programs.
        assert r.imem == {c: list(p) for c, p in img.programs.items()}
        exp = mapping.expected_mlp(layers, x)
        assert np.array_equal(mapping.mlp_output(img, r), exp)
        func = runtime.run(img, "functional")
        assert np.array_equal(mapping.mlp_output(img, func), exp)
        # The MAC counters count exactly the work the mapping asked for.
        assert r.macs == func.macs > 0


@pytest.mark.long
@pytest.mark.parametrize("batch", range(5))
def test_mlp_bit_exact_long(simulator, batch):
    cases = [random_mlp(TINY, 100 + 20 * batch + s, n_layers=1 + s % 2) for s in range(20)]
    images = [mapping.map_mlp(TINY, layers, x) for layers, x in cases]
    for (layers, x), img, r in zip(cases, images, runtime.run_rtl(images, sim=simulator)):
        assert r.ok, r.report()
        assert np.array_equal(mapping.mlp_output(img, r), mapping.expected_mlp(layers, x))


def _compare(img, f, r):
    assert f.ok and r.ok, r.report()
    checked = 0
    for c, words in r.spm.items():
        for a, w in words.items():
            assert f.cores[c].spm[a] == w, f"core {c} word {a}: model {f.cores[c].spm[a]:#x}, rtl {w:#x}"
            checked += 1
    assert checked == sum(reg["words"] for reg in img.regions.values())


def test_differential_random_programs(simulator):
    """Random programs (GEMM, SETQ, REQUANT, DELAY, SEND, WAIT, SYNC across groups) end in the
    same scratchpad state in the functional model and in RTL."""
    images = [random_image(TINY, seed) for seed in range(5)]
    for img, r in zip(images, runtime.run_rtl(images, sim=simulator)):
        _compare(img, runtime.run(img), r)


@pytest.mark.long
@pytest.mark.parametrize("batch", range(10))
def test_differential_random_programs_long(simulator, batch):
    images = [random_image(TINY, 1000 + 40 * batch + s, phases=3) for s in range(40)]
    for img, r in zip(images, runtime.run_rtl(images, sim=simulator)):
        _compare(img, runtime.run(img), r)


def _phases_program(lengths, group):
    lines = []
    for n in lengths:
        lines += [f"DELAY cycles={n}", f"SYNC group={group}"]
    return isa.assemble("\n".join(lines + ["HALT"]))


def test_hasp_groups_advance_independently(simulator):
    """Two groups with phase lengths that alternate (40/10 and 10/40 cycles): under HASP each
    group only waits for its own members; the same workload under BSP (one group = all cores)
    waits for the slowest group every phase, takes longer and stalls on sync more. A third
    image has group 0 run 6 short phases while group 1 runs 3 long ones."""
    a = [40, 10] * 3
    b = [10, 40] * 3
    hasp = Image(TINY, programs={0: _phases_program(a, 0), 1: _phases_program(a, 0),
                                 2: _phases_program(b, 1), 3: _phases_program(b, 1)},
                 groups=[0b0011, 0b1100])
    bsp = Image(TINY, programs={0: _phases_program(a, 0), 1: _phases_program(a, 0),
                                2: _phases_program(b, 0), 3: _phases_program(b, 0)},
                groups=[0b1111, 0])
    nm = Image(TINY, programs={0: _phases_program([10] * 6, 0), 1: _phases_program([10] * 6, 0),
                               2: _phases_program([40] * 3, 1), 3: _phases_program([40] * 3, 1)},
               groups=[0b0011, 0b1100])
    rh, rb, rn = runtime.run_rtl([hasp, bsp, nm], sim=simulator)
    for r in (rh, rb, rn):
        assert r.ok, r.report()
    assert rh.phases[:2] == [6, 6] and rb.phases[:2] == [6, 0] and rn.phases[:2] == [6, 3]
    # BSP pays the slowest group's phase every time: 6 x 40 against 3 x (40 + 10).
    assert rb.cycles >= 6 * 40 and rh.cycles < 3 * (40 + 10) + 6 * 12
    assert rb.cycles - rh.cycles >= 60
    sync_h = sum(c["perf"]["sync"] for c in rh.cores)
    sync_b = sum(c["perf"]["sync"] for c in rb.cores)
    assert sync_b >= sync_h + 4 * 60
    # N/M: group 0's cores finish their 6 short phases long before group 1's 3 long ones.
    busy = [c["perf"]["busy"] for c in rn.cores]
    assert max(busy[:2]) + 20 < min(busy[2:])


def test_watchdog_and_errors(simulator):
    """A WAIT for a tag that never comes is caught by the watchdog and the report names the
    core, its pc and what it waits on; an illegal instruction stops its core with the error
    code the host reads, without stopping the others."""
    wait = Image(TINY, programs={0: isa.assemble("WAIT tag=5 count=1\nHALT"),
                                 1: isa.assemble("HALT")})
    illegal = Image(TINY, programs={0: isa.assemble("NOP") + [31], 1: isa.assemble("HALT")})
    rw, ri = runtime.run_rtl([wait, illegal], sim=simulator, timeout_cycles=3000)
    assert rw.stop == "timeout" and not rw.ok
    assert "core 0 (x=0,y=0) pc 0: still running at WAIT tag=5 count=1" in rw.report()
    assert rw.cores[1]["status"]["halted"] == 1
    assert ri.stop == "done" and not ri.ok
    st = ri.cores[0]["status"]
    assert st["error"] == 1 and st["error_code"] == 1 and st["pc"] == 1   # ILLEGAL_OP at pc 1
    assert "core 0 (x=0,y=0) pc 1: error code 1 ILLEGAL_OP" in ri.report()
    assert ri.cores[1]["status"]["halted"] == 1


ILLEGAL_WORD = 31 | (1 << 40)         # opcode 31 is not an instruction
DEPTH = TINY.core.imem_depth             # 256
# (name, core-0 program, groups, expected code name, its hardware number, expected pc):
# expectations written from docs/isa.md, not read from the model or the RTL.
ERROR_CASES = [
    ("illegal", [isa.encode("NOP"), ILLEGAL_WORD, isa.encode("HALT")], [],
     "ILLEGAL_OP", 1, 1),
    ("spm_range", "NOP\nGEMM a=1020 b=0 k=4 mt=2 nt=1\nHALT", [], "SPM_RANGE", 3, 1),
    ("acc_range", "GEMM a=0 b=0 k=4 mt=2 nt=2 dst=244\nHALT", [], "ACC_RANGE", 4, 0),
    ("wait_tag", "NOP\nNOP\nWAIT tag=16 count=0\nHALT", [], "BAD_TAG", 7, 2),
    ("send_tag", "NOP\nSEND src=0 len=1 x=1 y=0 dst=0 tag=16\nHALT", [], "BAD_TAG", 7, 1),
    ("group", "SYNC group=4\nHALT", [], "BAD_GROUP", 8, 0),
    ("dest", "SEND src=0 len=1 x=0 y=2 dst=0 tag=1\nHALT", [], "BAD_DEST", 9, 0),
    ("requant_shift", "SETQ mult=1 shift=48\nHALT", [], "BAD_REQUANT", 11, 0),
    ("requant_clamp", "NOP\nSETQ mult=1 lo=20 hi=-20\nHALT", [], "BAD_REQUANT", 11, 1),
    # group 1 = cores 1 and 2: core 0 is not a member
    ("sync_member", "NOP\nSYNC group=1\nHALT", [0b1111, 0b0110], "SYNC_ERROR", 10, 1),
    # no HALT, and shorter than the earlier images' core-0 programs: the words after it are
    # NOP up to the end of instruction memory
    ("pc_overflow", "NOP\nNOP", [], "PC_OVERFLOW", 2, DEPTH),
]


def test_error_codes_match_model(simulator):
    """One small faulty program per error code on core 0 (core 1 runs a good program): the
    RTL core's error code and pc, read by the host, equal the functional model's and the
    documented code; the other core is not disturbed."""
    images = []
    for _, prog, groups, _, _, _ in ERROR_CASES:
        if isinstance(prog, str):
            prog = isa.assemble(prog)
        images.append(Image(TINY, programs={0: prog, 1: isa.assemble("NOP\nNOP\nHALT")},
                            groups=groups))
    results = runtime.run_rtl(images, sim=simulator, timeout_cycles=20_000)
    for (name, _, _, code_name, number, pc), img, r in zip(ERROR_CASES, images, results):
        f = runtime.run(img)
        fc = f.cores[0]
        assert fc.state == "error", (name, f.report())
        assert int(fc.error_code) == number and fc.error_code.name == code_name, \
            (name, f.report())
        assert fc.pc == pc, (name, f.report())
        assert r.stop == "done" and not r.ok, (name, r.report())
        st = r.cores[0]["status"]
        assert st["error"] == 1 and not st["halted"] and not st["running"], (name, r.report())
        assert (st["error_code"], st["pc"]) == (int(fc.error_code), fc.pc), (name, r.report())
        assert isa.ErrorCode(st["error_code"]).name == code_name
        assert f"core 0 (x=0,y=0) pc {pc}: error code {number} {code_name}" in r.report()
        assert r.cores[1]["status"]["halted"] == 1 and not r.cores[1]["status"]["error"]
        assert f.cores[1].state == "halted" and r.cores[1]["status"]["pc"] == f.cores[1].pc == 2


def test_image_too_large_is_refused_before_loading():
    prog = isa.assemble("NOP\n" * (TINY.core.imem_depth + 1))
    with pytest.raises(ImageError, match=r"core 0: program has 257 instructions, instruction "
                                         r"memory holds 256"):
        runtime.run_rtl([Image(TINY, programs={0: prog})], sim="verilator")
    with pytest.raises(runtime.RuntimeError_, match="unknown backend"):
        runtime.run(Image(TINY), backend="fpga")
