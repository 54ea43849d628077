"""One chip configuration that drives the RTL, the compiler and the golden model.

A :class:`ChipConfig` is a frozen tree of dataclasses. Every field has a default, derived
values are properties, and the named presets (``tiny``, ``fpga``, ``large``) are built with
:func:`dataclasses.replace`. A config round-trips through TOML::

    [mesh]
    rows = 2
    cols = 2

    [pe]
    rows = 4
    ...

Bad values raise :class:`ConfigError` (a ``ValueError``) whose message names the field and the
offending value.
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

__all__ = ["ConfigError", "MeshConfig", "PEConfig", "ScratchpadConfig", "NoCConfig",
           "SyncConfig", "CoreConfig", "ChipConfig", "PRESETS", "preset", "load", "loads", "dumps"]


class ConfigError(ValueError):
    """A configuration value or file is invalid. The message names the field and the value."""


def _check_int(where, name, value, lo=1, hi=None):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}.{name} must be an integer, not {value!r}")
    if value < lo:
        raise ConfigError(f"{where}.{name} must be >= {lo}, not {value!r}")
    if hi is not None and value > hi:
        raise ConfigError(f"{where}.{name} must be <= {hi}, not {value!r}")


def _check_pow2(where, name, value):
    if value & (value - 1):
        raise ConfigError(f"{where}.{name} must be a power of two, not {value!r}")


@dataclass(frozen=True)
class MeshConfig:
    """The 2D mesh of cores: ``rows`` x ``cols``."""
    rows: int = 2
    cols: int = 2

    def __post_init__(self):
        _check_int("mesh", "rows", self.rows, 1, 64)
        _check_int("mesh", "cols", self.cols, 1, 64)

    @property
    def cores(self) -> int:
        return self.rows * self.cols


@dataclass(frozen=True)
class PEConfig:
    """The PE array of one core: ``rows`` x ``cols`` MACs of ``data_width``-bit signed operands
    accumulating into ``acc_width``-bit signed registers (wrap-around, two's complement)."""
    rows: int = 4
    cols: int = 4
    dataflow: str = "os"
    data_width: int = 8
    acc_width: int = 32

    DATAFLOWS = ("os",)

    def __post_init__(self):
        _check_int("pe", "rows", self.rows, 1, 64)
        _check_int("pe", "cols", self.cols, 1, 64)
        if self.dataflow not in self.DATAFLOWS:
            raise ConfigError(f"pe.dataflow must be one of {list(self.DATAFLOWS)} "
                              f"(output-stationary), not {self.dataflow!r}")
        _check_int("pe", "data_width", self.data_width, 2, 16)
        _check_int("pe", "acc_width", self.acc_width, 2, 64)
        if self.acc_width < 2 * self.data_width:
            raise ConfigError(f"pe.acc_width must be >= 2 * pe.data_width = {2 * self.data_width}, "
                              f"not {self.acc_width!r}")

    @property
    def macs(self) -> int:
        return self.rows * self.cols

    @property
    def lanes(self) -> int:
        """Elements per scratchpad word: one A column or one B row fits one word."""
        return max(self.rows, self.cols)


@dataclass(frozen=True)
class ScratchpadConfig:
    """Per-core scratchpad: ``banks`` banks of ``depth`` words. The word width is derived from
    the PE array (``pe.lanes * pe.data_width`` bits), see :attr:`ChipConfig.word_width`."""
    banks: int = 4
    depth: int = 256

    def __post_init__(self):
        _check_int("spm", "banks", self.banks, 1, 64)
        _check_pow2("spm", "banks", self.banks)
        _check_int("spm", "depth", self.depth, 2, 1 << 20)
        _check_pow2("spm", "depth", self.depth)

    @property
    def words(self) -> int:
        return self.banks * self.depth

    @property
    def addr_width(self) -> int:
        return (self.words - 1).bit_length()

    @property
    def bank_addr_width(self) -> int:
        return (self.depth - 1).bit_length()


#: Router micro-architectures (``noc.router``), see ``docs/noc.md``.
NOC_ROUTERS = ("lanes", "vc", "wormhole")


@dataclass(frozen=True)
class NoCConfig:
    """Mesh network: flit payload width in bits, router input buffer depth in flits (per lane
    for ``router = "lanes"``, per virtual channel for ``"vc"``), router micro-architecture,
    multicast lane depth and virtual channels per input.

    ``router`` (docs/noc.md): ``"wormhole"`` (one FIFO per input, smallest and fastest,
    122 MHz on ECP5; no multicast; 0.49 of the 4x4 uniform-random channel bound, every
    preset), ``"lanes"`` (input buffers split by output port, credit flow control, multicast;
    0.54) or ``"vc"`` (``vcs`` virtual channels of ``buffer_depth`` flits per input, credit
    flow control, VC allocation; the only one at >= 0.8 of the bound). ``mc_depth``: flits of
    the multicast lane of each ``lanes`` router input, the longest multicast packet. ``vcs``:
    virtual channels per input of the ``vc`` router (1..6).
    """
    flit_width: int = 64
    buffer_depth: int = 4
    router: str = "wormhole"
    mc_depth: int = 8
    vcs: int = 6

    def __post_init__(self):
        _check_int("noc", "flit_width", self.flit_width, 64, 1024)
        _check_int("noc", "buffer_depth", self.buffer_depth, 1, 64)
        if self.router not in NOC_ROUTERS:
            raise ConfigError(f"noc.router must be one of {', '.join(NOC_ROUTERS)}, "
                              f"not {self.router!r}")
        _check_int("noc", "mc_depth", self.mc_depth, 2, 64)
        _check_int("noc", "vcs", self.vcs, 1, 6)


@dataclass(frozen=True)
class SyncConfig:
    """Group-sync unit: number of programmable sync groups."""
    groups: int = 4

    def __post_init__(self):
        _check_int("sync", "groups", self.groups, 1, 64)


@dataclass(frozen=True)
class CoreConfig:
    """Core sequencer: instruction memory depth (instructions)."""
    imem_depth: int = 256

    def __post_init__(self):
        _check_int("core", "imem_depth", self.imem_depth, 2, 1 << 16)
        _check_pow2("core", "imem_depth", self.imem_depth)


_SECTIONS = {"mesh": MeshConfig, "pe": PEConfig, "spm": ScratchpadConfig, "noc": NoCConfig,
             "sync": SyncConfig, "core": CoreConfig}


@dataclass(frozen=True)
class ChipConfig:
    """The whole chip. One instance drives RTL generation, the compiler and the golden model."""
    name: str = "tiny"
    mesh: MeshConfig = field(default_factory=MeshConfig)
    pe: PEConfig = field(default_factory=PEConfig)
    spm: ScratchpadConfig = field(default_factory=ScratchpadConfig)
    noc: NoCConfig = field(default_factory=NoCConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    core: CoreConfig = field(default_factory=CoreConfig)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"name must be a non-empty string, not {self.name!r}")
        for sec, cls in _SECTIONS.items():
            if not isinstance(getattr(self, sec), cls):
                raise ConfigError(f"{sec} must be a {cls.__name__}, not {getattr(self, sec)!r}")
        # Limits of the instruction encoding (hasp.sw.isa): 14-bit scratchpad addresses,
        # 12-bit loop targets.
        if self.spm.words > 1 << 14:
            raise ConfigError(f"spm.banks * spm.depth = {self.spm.words} words exceeds the "
                              f"16384 an instruction can address")
        if self.core.imem_depth > 1 << 12:
            raise ConfigError(f"core.imem_depth = {self.core.imem_depth} exceeds the 4096 "
                              f"instructions a LOOP target can address")

    @property
    def cores(self) -> int:
        return self.mesh.cores

    @property
    def word_width(self) -> int:
        """Scratchpad word width in bits: one A column or one B row of the PE array."""
        return self.pe.lanes * self.pe.data_width

    @property
    def total_macs(self) -> int:
        return self.cores * self.pe.macs

    def replace(self, **sections) -> "ChipConfig":
        """Copy with some sections replaced, e.g. ``cfg.replace(pe={"rows": 8})``."""
        new = {}
        for key, value in sections.items():
            if key in _SECTIONS and isinstance(value, dict):
                value = dataclasses.replace(getattr(self, key), **value)
            new[key] = value
        return dataclasses.replace(self, **new)

    def to_dict(self) -> dict:
        out = {"name": self.name}
        for sec in _SECTIONS:
            out[sec] = dataclasses.asdict(getattr(self, sec))
        return out

    @classmethod
    def from_dict(cls, data: dict, base: "ChipConfig | None" = None) -> "ChipConfig":
        """Build from a (TOML-shaped) dict; missing fields come from ``base`` (default config)."""
        base = base if base is not None else cls()
        if not isinstance(data, dict):
            raise ConfigError(f"config must be a table, not {data!r}")
        kwargs = {}
        for key, value in data.items():
            if key == "name":
                kwargs["name"] = value
            elif key in _SECTIONS:
                if not isinstance(value, dict):
                    raise ConfigError(f"[{key}] must be a table, not {value!r}")
                known = {f.name for f in fields(_SECTIONS[key])}
                for k in value:
                    if k not in known:
                        raise ConfigError(f"unknown key {key}.{k} (known: {', '.join(sorted(known))})")
                kwargs[key] = dataclasses.replace(getattr(base, key), **value)
            else:
                raise ConfigError(f"unknown key {key!r} (known: name, {', '.join(_SECTIONS)})")
        return dataclasses.replace(base, **kwargs)


PRESETS: dict[str, ChipConfig] = {}
PRESETS["tiny"] = ChipConfig()
# The largest chip that routes on an ECP5-85F with every MAC in a DSP: 2x4 cores x 16 MACs =
# 128 MACs, 136 of the 156 MULT18X18D and 76 % of the LUTs. A 3x3 mesh (144 MACs, 153
# multipliers, 84 % of the LUTs) fits by resource count but does not route (docs/fpga.md).
PRESETS["fpga"] = ChipConfig(name="fpga", mesh=MeshConfig(2, 4), pe=PEConfig(4, 4),
                             spm=ScratchpadConfig(banks=4, depth=512),
                             sync=SyncConfig(groups=4),
                             core=CoreConfig(imem_depth=512))
PRESETS["large"] = ChipConfig(name="large", mesh=MeshConfig(8, 8), pe=PEConfig(16, 16),
                              spm=ScratchpadConfig(banks=8, depth=1024), noc=NoCConfig(flit_width=128),
                              sync=SyncConfig(groups=16), core=CoreConfig(imem_depth=1024))


def preset(name: str) -> ChipConfig:
    """Return a named preset, or raise :class:`ConfigError` naming the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})") from None


def loads(text: str, base: ChipConfig | None = None) -> ChipConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"not valid TOML: {e}") from None
    return ChipConfig.from_dict(data, base)


def load(path, base: ChipConfig | None = None) -> ChipConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    try:
        return loads(text, base)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def dumps(cfg: ChipConfig) -> str:
    """TOML text for ``cfg``; :func:`loads` of it gives back an equal config."""
    def val(v):
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return str(v)
    d = cfg.to_dict()
    lines = [f"name = {val(d.pop('name'))}"]
    for sec, table in d.items():
        lines.append("")
        lines.append(f"[{sec}]")
        lines += [f"{k} = {val(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"
