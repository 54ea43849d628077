"""cocotb runner helper: one cached build per (top, config, simulator), tests run against it.

* ``Build`` directories live under ``$HASP_BUILD_DIR`` (default ``./build``) as
  ``sim/<module>/<simulator>[-waves]``; a stamp (hash of the Verilog and the build options)
  makes later runs reuse the build, and a file lock lets parallel workers (``pytest -n``)
  share it safely.
* Testbenches get their parameters as JSON in ``HASP_TB_ARGS`` (always including the chip
  config) and write measured results as JSON to ``HASP_TB_OUT``.
* ``HASP_WAVES=1`` (or ``waves=True``) builds with tracing and dumps waveforms into the test
  directory.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hasp import toolchain
from hasp.config import ChipConfig
from hasp.hw.gen import generate

__all__ = ["Build", "build", "run", "TBFailure", "build_root"]

TIMESCALE = ("1ns", "1ps")
# Amaranth's Verilog forces its combinational blocks to evaluate at time 0 through a register
# initialiser; under -g2012 (cocotb's default) Icarus runs initialisers before any process
# starts, so blocks that depend only on never-changing registers would stay X. Verilog-2005
# semantics (the later -g flag wins) keep that event.
ICARUS_ARGS = ["-g2005"]
# Yosys writes a combinational constant driving part of a reg as `always @* x[k] = 1'h0;`: a
# process with an empty sensitivity list, which Icarus never runs (x stays X). The Icarus copy
# of the Verilog turns those into `initial` assignments (same value, never changes).
_CONST_ALWAYS = re.compile(r"always @\*\n(\s+)([^\n=;]+?) = (\d+'[hbd][0-9a-fA-F_]+);")


def icarus_source(vpath: Path) -> Path:
    """The Verilog to give Icarus: ``vpath`` with constant-only ``always @*`` blocks fixed."""
    text = vpath.read_text()
    fixed = _CONST_ALWAYS.sub(r"initial\n\1\2 = \3;", text)
    if fixed == text:
        return vpath
    out = vpath.with_suffix(".icarus.v")
    out.write_text(fixed)
    return out
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "--x-assign", "fast",
                  "--x-initial", "fast", "-O3"]
# cocotb builds with --public-flat-rw (every signal visible to Python), which stops Verilator
# from optimising across the hierarchy: the tiny chip simulates 4x slower. The benches only
# touch top-level ports, so only those stay public unless HASP_VERILATOR_PUBLIC=1 (to poke at
# internal signals from Python; waveforms show everything either way).
if os.environ.get("HASP_VERILATOR_PUBLIC", "") in ("", "0"):
    VERILATOR_ARGS += ["--no-public-flat-rw", "--public-depth", "1"]


class TBFailure(AssertionError):
    """A cocotb test failed (or no test ran). The message names the log to read."""


def build_root() -> Path:
    return Path(os.environ.get("HASP_BUILD_DIR", "build")).resolve()


def waves_requested(waves: bool | None = None) -> bool:
    if waves is not None:
        return waves
    return os.environ.get("HASP_WAVES", "") not in ("", "0")


@dataclass(frozen=True)
class Build:
    top: str
    cfg: ChipConfig
    sim: str
    module: str
    verilog: Path
    ports: Path
    dir: Path
    waves: bool


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


_generated: dict[Path, tuple] = {}


def build(top: str, cfg: ChipConfig, sim: str, waves: bool | None = None) -> Build:
    """Generate ``top`` for ``cfg`` and compile it for ``sim`` unless a matching build exists."""
    from cocotb_tools.runner import get_runner

    toolchain.check_simulator(sim)
    waves = waves_requested(waves)
    # Config names can repeat with different contents: key the directories by content too.
    key_cfg = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
    gen_dir = build_root() / "gen" / f"{cfg.name}-{key_cfg}" / top
    # Generating the chip takes seconds: do it once per process (the design cannot change
    # while this process runs), then only check that the files are still there.
    memo = _generated.get(gen_dir)
    if memo is None or not all(p.exists() for p in memo[:2]):
        with _locked(build_root() / "locks" / f"gen-{cfg.name}-{key_cfg}-{top}.lock"):
            memo = _generated[gen_dir] = generate(top, cfg, gen_dir)
    vpath, ppath, module = memo
    bdir = build_root() / "sim" / module / (sim + ("-waves" if waves else ""))
    key = hashlib.sha256(vpath.read_bytes() + repr((sim, waves, VERILATOR_ARGS, ICARUS_ARGS, _CONST_ALWAYS.pattern, TIMESCALE))
                         .encode()).hexdigest()
    stamp = bdir / "hasp.stamp"
    with _locked(bdir.parent / f".{bdir.name}.lock"):
        if not (stamp.exists() and stamp.read_text() == key):
            runner = get_runner(sim)
            args = VERILATOR_ARGS if sim == "verilator" else ICARUS_ARGS
            bdir.mkdir(parents=True, exist_ok=True)
            source = icarus_source(vpath) if sim == "icarus" else vpath
            try:
                runner.build(sources=[source], hdl_toplevel=module, build_dir=bdir,
                             build_args=args, timescale=TIMESCALE, waves=waves, always=True,
                             log_file=bdir / "build.log")
            except (RuntimeError, SystemExit) as e:
                raise toolchain.ToolError(f"{sim} build of {module} failed ({e}): see "
                                          f"{bdir / 'build.log'}") from None
            stamp.write_text(key)
    return Build(top, cfg, sim, module, vpath, ppath, bdir, waves)


def run(b: Build, tb_module: str, testcase: str | None = None, args: dict | None = None,
        name: str | None = None, seed: int | None = None) -> dict:
    """Run the cocotb tests of ``tb_module`` against build ``b``; return the TB's JSON output.

    Raises :class:`TBFailure` if any test failed or none ran.
    """
    from cocotb_tools.runner import get_runner, get_results

    toolchain.setup_env()
    name = name or (testcase or tb_module.rsplit(".", 1)[-1])
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:120]
    test_dir = b.dir.parent / "runs" / f"{b.dir.name}-{safe}-{os.getpid()}"
    test_dir.mkdir(parents=True, exist_ok=True)
    out_json = test_dir / "tb_out.json"
    if out_json.exists():
        out_json.unlink()
    tb_args = {"config": b.cfg.to_dict(), "ports": str(b.ports), "top": b.top}
    tb_args.update(args or {})
    env = {"HASP_TB_ARGS": json.dumps(tb_args), "HASP_TB_OUT": str(out_json)}
    runner = get_runner(b.sim)
    log = test_dir / "sim.log"
    xml = test_dir / "results.xml"
    try:
        runner.test(test_module=tb_module, hdl_toplevel=b.module, hdl_toplevel_lang="verilog",
                    testcase=testcase, build_dir=b.dir, test_dir=test_dir, extra_env=env,
                    waves=b.waves, timescale=TIMESCALE, results_xml=str(xml), seed=seed,
                    log_file=log)
    except SystemExit:          # the cocotb runner exits when the simulator fails
        pass
    ntests, nfailed = get_results(xml) if xml.exists() else (0, 0)
    if ntests == 0 or nfailed:
        tail = ""
        if log.exists():
            lines = log.read_text(errors="replace").splitlines()
            tail = "\n".join(lines[-40:])
        raise TBFailure(f"{tb_module}{'::' + testcase if testcase else ''} on {b.sim}: "
                        f"{nfailed} of {ntests} cocotb tests failed (log: {log})\n{tail}")
    return json.loads(out_json.read_text()) if out_json.exists() else {}
