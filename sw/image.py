"""A chip program image: what a host loads before starting the cores.

An :class:`Image` is plain data: the chip config, one instruction list per core, the initial
scratchpad contents per core, the sync-group member masks and (optionally) named regions that
say where a program's inputs and outputs live. The functional model
(:class:`hasp.sw.model.FunctionalModel`) runs an image; a loader for the RTL will load the same
object. :meth:`Image.validate` refuses images the chip cannot hold, with messages naming the
core, the address and the limit, *before* anything runs::

    img = Image(cfg, programs={0: isa.assemble("HALT")}, spm={0: {0: 0x01020304}},
                groups=[0b0011])
    img.validate()
    img.save("prog.json"); Image.load("prog.json")

Cores that have no program (or an empty one) are idle: they never execute an instruction but
their scratchpad and tag counters still receive packets.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hasp.config import ChipConfig

from . import golden, isa

__all__ = ["ImageError", "Image", "FORMAT_VERSION", "check_program", "core_xy", "core_name"]

FORMAT_VERSION = 1


class ImageError(ValueError):
    """An image does not fit the chip or is malformed. The message names core, address, limit."""


def core_xy(cfg: ChipConfig, core: int) -> tuple[int, int]:
    """Mesh coordinates ``(x, y)`` of ``core`` (core id = ``y * cols + x``)."""
    return core % cfg.mesh.cols, core // cfg.mesh.cols


def core_name(cfg: ChipConfig, core: int) -> str:
    x, y = core_xy(cfg, core)
    return f"core {core} (x={x},y={y})"


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def check_program(words, core: int | None = None) -> None:
    """Static checks of one program's loops (the only control flow): every ``LOOP`` jumps
    backwards (``target <= pc``) and no loop body ``[target, pc)`` contains another ``LOOP``
    (loops do not nest). Words that do not decode are left to run time (they stop the core with
    an illegal-instruction error when reached). Raises :class:`ImageError`."""
    where = "" if core is None else f"core {core} "
    loops = []
    for pc, w in enumerate(words):
        try:
            insn = isa.decode(int(w))
        except isa.IsaError:
            continue
        if insn.op == isa.Op.LOOP:
            if insn.target > pc:
                raise ImageError(f"{where}pc {pc}: LOOP target {insn.target} is after the LOOP "
                                 f"(loops jump backwards: target <= pc)")
            loops.append((pc, insn.target))
    for pc, target in loops:
        inner = [p for p, _ in loops if target <= p < pc]
        if inner:
            raise ImageError(f"{where}pc {pc}: LOOP body [{target}, {pc}] contains the LOOP at "
                             f"pc {inner[0]} (loops do not nest)")


@dataclass
class Image:
    """Program image of one chip.

    Attributes
    ----------
    cfg : ChipConfig
    programs : dict[int, list[int]]
        Core id -> 64-bit instruction words (``hasp.sw.isa``), loaded at instruction address 0
        (assembler text is accepted and assembled).
    spm : dict[int, dict[int, int]]
        Core id -> {word address -> word} initial scratchpad contents (other words are 0); a
        list or array of words (from address 0) is accepted and converted to a dict.
        A word is an unsigned integer below ``2**cfg.word_width`` (see :meth:`write_lanes`).
    groups : list[int]
        Member mask of each sync group (bit ``i`` = core ``i``); at most ``cfg.sync.groups``
        entries. Groups not listed keep their reset membership (``hasp.hw.gsu``): group 0 =
        every core, the other groups empty.
    regions : dict[str, dict]
        Optional named regions (JSON-able dicts, e.g. ``{"core": 0, "addr": 64, "words": 12}``)
        telling a host where inputs and outputs live. Not interpreted by the chip.
    """
    cfg: ChipConfig
    programs: dict = field(default_factory=dict)
    spm: dict = field(default_factory=dict)
    groups: list = field(default_factory=list)
    regions: dict = field(default_factory=dict)

    def __post_init__(self):
        # a core's spm contents may be given as a list/array of words from address 0
        if isinstance(self.spm, dict):
            for c, mem in list(self.spm.items()):
                if isinstance(mem, (list, tuple, np.ndarray)):
                    self.spm[c] = {a: int(w) for a, w in enumerate(np.asarray(mem, dtype=object).ravel())}
        if isinstance(self.programs, dict):
            for c, prog in list(self.programs.items()):
                if isinstance(prog, str):
                    self.programs[c] = isa.assemble(prog)

    # ------------------------------------------------------------------ building
    def write(self, core: int, addr: int, words) -> None:
        """Set ``spm[core][addr + i] = words[i]`` (checked by :meth:`validate`)."""
        mem = self.spm.setdefault(core, {})
        for i, w in enumerate(words):
            mem[addr + i] = int(w)

    def write_lanes(self, core: int, addr: int, values) -> None:
        """Write a 2-D array of lane values: row ``i`` goes to word ``addr + i``, element ``j``
        of the row to lane ``j`` (signed ``data_width``-bit, at most ``lanes`` per row)."""
        values = np.asarray(values)
        if values.ndim != 2:
            raise ImageError(f"write_lanes wants a 2-D array (words x lanes), not shape {values.shape}")
        lanes, dw = self.cfg.pe.lanes, self.cfg.pe.data_width
        if values.shape[1] > lanes:
            raise ImageError(f"core {core}: {values.shape[1]} lanes per word, a word has {lanes}")
        golden.check_range(values, dw, f"core {core} lane value")
        self.write(core, addr, [golden.pack_lanes(row, dw) for row in values])

    def set_program(self, core: int, program) -> None:
        """Set a core's program from instruction words or assembler text."""
        self.programs[core] = isa.assemble(program) if isinstance(program, str) else list(program)

    # ------------------------------------------------------------------ checking
    def validate(self) -> "Image":
        """Check that the image fits the chip; raises :class:`ImageError`. Returns ``self``."""
        cfg = self.cfg
        if not isinstance(cfg, ChipConfig):
            raise ImageError(f"cfg must be a ChipConfig, not {cfg!r}")
        n = cfg.cores
        depth, words, ww = cfg.core.imem_depth, cfg.spm.words, cfg.word_width

        def check_core(c, what):
            if not _is_int(c) or not 0 <= c < n:
                raise ImageError(f"{what} for core {c!r}: the mesh has {n} cores "
                                 f"(ids 0..{n - 1})")

        if not isinstance(self.programs, dict):
            raise ImageError(f"programs must be a dict core -> instruction list, not {type(self.programs).__name__}")
        for c, prog in self.programs.items():
            check_core(c, "program")
            prog = list(prog)
            if len(prog) > depth:
                raise ImageError(f"core {c}: program has {len(prog)} instructions, "
                                 f"instruction memory holds {depth}")
            for pc, w in enumerate(prog):
                if not _is_int(w) or not 0 <= int(w) < (1 << isa.INSN_BITS):
                    raise ImageError(f"core {c} pc {pc}: instruction {w!r} is not a "
                                     f"{isa.INSN_BITS}-bit unsigned word")
            check_program(prog, c)
        if not isinstance(self.spm, dict):
            raise ImageError(f"spm must be a dict core -> {{addr: word}}, not {type(self.spm).__name__}")
        for c, mem in self.spm.items():
            check_core(c, "spm contents")
            if not isinstance(mem, dict):
                raise ImageError(f"core {c}: spm contents must be a dict addr -> word, "
                                 f"not {type(mem).__name__}")
            for a, w in mem.items():
                if not _is_int(a) or not 0 <= a < words:
                    raise ImageError(f"core {c}: spm address {a!r} out of range "
                                     f"(the scratchpad holds {words} words, 0..{words - 1})")
                if not _is_int(w):
                    raise ImageError(f"core {c}: spm word at {a} is {w!r}, not an integer")
                if w < 0 or int(w) >> ww:
                    raise ImageError(f"core {c}: spm word at {a} ({int(w):#x}) is not an unsigned "
                                     f"{ww}-bit word (pack lanes with golden.pack_lanes)")
        groups = list(self.groups)
        if len(groups) > cfg.sync.groups:
            raise ImageError(f"{len(groups)} sync groups given, the chip has {cfg.sync.groups}")
        for g, mask in enumerate(groups):
            if not _is_int(mask) or mask < 0:
                raise ImageError(f"sync group {g}: member mask {mask!r} is not a non-negative integer")
            if int(mask) >> n:
                raise ImageError(f"sync group {g}: member mask {int(mask):#x} names cores outside "
                                 f"the mesh ({n} cores, ids 0..{n - 1})")
        return self

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict:
        """JSON-able dict (instructions and words as hex strings, spm as contiguous runs)."""
        spm = {}
        for c, mem in sorted(self.spm.items()):
            runs = []
            for a in sorted(mem):
                if runs and runs[-1]["addr"] + len(runs[-1]["words"]) == a:
                    runs[-1]["words"].append(hex(mem[a]))
                else:
                    runs.append({"addr": int(a), "words": [hex(mem[a])]})
            spm[str(c)] = runs
        return {
            "format": "hasp-image", "version": FORMAT_VERSION,
            "config": self.cfg.to_dict(),
            "programs": {str(c): [f"{int(w):#018x}" for w in p] for c, p in sorted(self.programs.items())},
            "spm": spm,
            "groups": [hex(int(m)) for m in self.groups],
            "regions": self.regions,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Image":
        if not isinstance(d, dict) or d.get("format") != "hasp-image":
            raise ImageError("not a hasp image (missing 'format': 'hasp-image')")
        if d.get("version") != FORMAT_VERSION:
            raise ImageError(f"image format version {d.get('version')!r} is not supported "
                             f"(this reader knows {FORMAT_VERSION})")
        try:
            cfg = ChipConfig.from_dict(d["config"])
            programs = {int(c): [int(w, 16) for w in p] for c, p in d["programs"].items()}
            spm = {}
            for c, runs in d["spm"].items():
                mem = spm.setdefault(int(c), {})
                for run in runs:
                    for i, w in enumerate(run["words"]):
                        mem[int(run["addr"]) + i] = int(w, 16)
            groups = [int(m, 16) for m in d.get("groups", [])]
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, ImageError):
                raise
            raise ImageError(f"malformed image: {type(e).__name__}: {e}") from None
        return cls(cfg, programs, spm, groups, dict(d.get("regions", {}))).validate()

    def save(self, path) -> None:
        """Write the image as JSON (validated first)."""
        self.validate()
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path) -> "Image":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except OSError as e:
            raise ImageError(f"cannot read image {path}: {e.strerror}") from None
        except json.JSONDecodeError as e:
            raise ImageError(f"{path}: not JSON: {e}") from None
        try:
            return cls.from_dict(d)
        except ValueError as e:
            raise ImageError(f"{path}: {e}") from None
