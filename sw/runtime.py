"""Runtime: one API, several backends.

``run(image, backend="functional")`` executes a program image in the functional chip model;
``backend="rtl"`` generates the chip for ``image.cfg``, loads the image through the AXI4-Lite
host port (cocotbext-axi) in Icarus or Verilator, starts it, lets it run on its own and reads
back the requested scratchpad regions, the core status and the hardware counters. Both return
an object with ``ok``, ``stop``, ``read_lanes(core, addr, n, lanes)`` and ``report()``, so the
same checking code serves both.
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .golden import unpack_lanes
from .image import Image, core_name
from . import isa

__all__ = ["run", "run_rtl", "RtlResult", "BACKENDS", "RuntimeError_", "default_readback"]

BACKENDS = ("functional", "rtl")


class RuntimeError_(ValueError):
    """A bad runtime request (unknown backend, region outside the scratchpad, ...)."""


def default_readback(image: Image) -> list[tuple[int, int, int]]:
    """Regions to read back after an RTL run: every ``image.regions`` entry that names a core
    and an address (``words``, or the MLP output's tiles), else nothing."""
    out = []
    for reg in image.regions.values():
        if "core" not in reg or "addr" not in reg:
            continue
        if "words" in reg:
            n = reg["words"]
        elif "padded_features" in reg:
            n = reg["padded_features"] * math.ceil(reg["batch"] / reg["batch_tile"])
        else:
            continue
        out.append((reg["core"], reg["addr"], n))
    return out


@dataclass
class RtlResult:
    """Result of an RTL run (see :func:`run`)."""
    cfg: object
    image: Image
    stop: str                       # "done" | "timeout"
    cycles: int
    cores: list                     # per core: {"status": {...}, "perf": {...}}
    phases: list
    spm: dict                       # core -> {addr: word} for the words read back
    sim: str
    wall: dict = field(default_factory=dict)
    imem: dict = field(default_factory=dict)    # core -> instruction words read back

    @property
    def ok(self) -> bool:
        started = set(self.image.programs)
        return self.stop == "done" and all(
            self.cores[c]["status"]["halted"] and not self.cores[c]["status"]["error"]
            for c in started)

    @property
    def macs(self) -> int:
        return sum(c["perf"]["macs"] for c in self.cores)

    def read_lanes(self, core: int, addr: int, n: int, lanes: int | None = None) -> np.ndarray:
        lanes = self.cfg.pe.lanes if lanes is None else lanes
        words = self.spm.get(core, {})
        missing = [a for a in range(addr, addr + n) if a not in words]
        if missing:
            raise RuntimeError_(f"core {core} words {missing[0]}.. were not read back: pass "
                                f"readback=[({core}, {addr}, {n})] to run()")
        rows = [unpack_lanes(words[a], self.cfg.pe.lanes, self.cfg.pe.data_width)
                for a in range(addr, addr + n)]
        return np.array(rows, dtype=np.int64).reshape(n, self.cfg.pe.lanes)[:, :lanes]

    def report(self) -> str:
        lines = [f"{self.sim}: {'all started cores stopped' if self.stop == 'done' else 'watchdog: cores still running'} "
                 f"after {self.cycles} cycles"]
        for c, st in enumerate(s["status"] for s in self.cores):
            name = core_name(self.cfg, c)
            prog = self.image.programs.get(c, [])
            insn = ""
            if st["pc"] < len(prog):
                try:
                    insn = repr(isa.decode(prog[st["pc"]]))
                except isa.IsaError as e:
                    insn = str(e)
            if st["error"]:
                code = st["error_code"]
                try:
                    cname = isa.ErrorCode(code).name
                except ValueError:
                    cname = "unknown"
                lines.append(f"{name} pc {st['pc']}: error code {code} {cname} ({insn})")
            elif st["running"]:
                lines.append(f"{name} pc {st['pc']}: still running at {insn}")
        return "\n".join(lines)


def run(image: Image, backend: str = "functional", *, sim: str = "verilator",
        timeout_cycles: int = 200_000, readback=None, max_steps: int = 1_000_000,
        waves: bool | None = None):
    """Run ``image`` on ``backend`` (``functional`` or ``rtl``); see the module docstring."""
    if backend not in BACKENDS:
        raise RuntimeError_(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    if backend == "functional":
        from .model import FunctionalModel
        image.validate()
        return FunctionalModel(image).run(max_steps=max_steps)
    return run_rtl([image], sim=sim, timeout_cycles=timeout_cycles,
                   readback=None if readback is None else [readback], waves=waves)[0]


def _pad_programs(image: Image, loaded: dict) -> Image:
    """The image to load after images that wrote ``loaded[core]`` instruction words: every
    program padded with zeros (``NOP``) over the words an earlier image of the same simulator
    session left behind (the reset between images keeps memories), so that, as in the ISA and
    the functional model, the words after a program are ``NOP`` (a program without ``HALT``
    stops with ``PC_OVERFLOW``). Updates ``loaded``."""
    programs = {}
    for core, prog in image.programs.items():
        prog = list(prog)
        programs[core] = prog + [0] * (loaded.get(core, 0) - len(prog))
        loaded[core] = max(loaded.get(core, 0), len(prog))
    return Image(image.cfg, programs, image.spm, image.groups, image.regions)


def run_rtl(images, *, sim: str = "verilator", timeout_cycles: int = 200_000, readback=None,
            waves: bool | None = None, read_programs: bool = False) -> list[RtlResult]:
    """Run several images (same config) in one simulator session, one after the other with a
    reset in between (programs are padded with NOPs over longer earlier ones, see
    :func:`_pad_programs`). ``readback[i]`` lists ``(core, addr, words)`` regions of image ``i``
    (default: :func:`default_readback`); ``read_programs`` also reads every program back from
    instruction memory (``result.imem``). Every image is validated before anything is loaded."""
    from hasp.verif import runner
    images = list(images)
    if not images:
        return []
    cfg = images[0].cfg
    regions_all = []
    for i, image in enumerate(images):
        if image.cfg != cfg:
            raise RuntimeError_(f"image {i} is for config {image.cfg.name!r}, not {cfg.name!r}")
        image.validate()
        regions = default_readback(image) if readback is None else list(readback[i])
        for core, addr, n in regions:
            if not (0 <= core < cfg.cores and 0 <= addr and addr + n <= cfg.spm.words):
                raise RuntimeError_(f"readback region core {core} words {addr}..{addr + n - 1} "
                                    f"is outside the chip ({cfg.cores} cores x "
                                    f"{cfg.spm.words} words)")
        regions_all.append(regions)
    b = runner.build("chip", cfg, sim, waves=waves)
    with tempfile.TemporaryDirectory(prefix="hasp-image-") as tmp:
        jobs = []
        loaded = {}                 # core -> instruction-memory words written so far
        for i, (image, regions) in enumerate(zip(images, regions_all)):
            path = Path(tmp) / f"image{i}.json"
            _pad_programs(image, loaded).save(path)
            jobs.append({"image": str(path), "readback": regions,
                         "timeout_cycles": timeout_cycles,
                         "imem_readback": [(c, 0, len(p)) for c, p in image.programs.items()]
                         if read_programs else []})
        out = runner.run(b, "hasp.verif.tb.chip", "run_images", name="runtime",
                         args={"jobs": jobs})
    results = []
    for image, r in zip(images, out["results"]):
        spm = {int(c): {int(a): w for a, w in words.items()} for c, words in r["spm"].items()}
        results.append(RtlResult(cfg, image, r["stop"], r["cycles"], r["cores"], r["phases"],
                                 spm, sim, {k: r[k] for k in ("wall_run_s", "wall_load_s",
                                                              "wall_read_s")},
                                 {int(c): words for c, words in r["imem"].items()}))
    return results
