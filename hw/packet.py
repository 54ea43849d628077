"""The NoC packet and flit format: one definition for hardware, software and testbenches.

Every layout here is a :class:`amaranth.lib.data.StructLayout`. Hardware views flits through
these layouts; software and testbenches encode and decode integers with :func:`pack` and
:func:`unpack`, which read the bit offsets *from the same layout objects*, so no bit position is
typed twice.

Flits
-----
A packet is a sequence of flits ``[head, body_0, ..., body_{n-1}]``. Every flit carries the
routing side band (``dst_x``, ``dst_y``, ``to_host``) and ``last`` (set on the tail flit only; a
head-only packet has ``last`` set on its head). See :func:`flit_layout`.

* The **head** flit's ``data`` holds a header (:func:`header_layout`) in its low bits; the
  remaining high bits are zero.
* Each **body** flit's ``data`` holds one payload word in its low bits, zero-extended: a
  scratchpad word (``cfg.word_width`` bits) for ``WRITE`` and ``READ_RESP``, an instruction or
  CSR value (up to ``cfg.noc.flit_width`` bits) for ``IMEM_WRITE`` and ``CSR_WRITE``.

Widths
------
* Coordinates are ``coord_width(rows, cols) = max(1, ceil(log2(max(rows, cols))))`` bits, derived
  from the mesh size (1 bit for 2x2, 2 bits for 3x3 and 4x4, 3 bits for 8x8, 6 bits for 64x64).
* The address is ``address_width(cfg.spm.addr_width) = max(20, cfg.spm.addr_width)`` bits.
* The header must fit one flit: ``22 + address_width + 4 * coord_width <= cfg.noc.flit_width``.
  With 64-bit flits and a 20-bit address this allows meshes up to 32 x 32; a 64 x 64 mesh needs
  ``flit_width >= 66``. :class:`PacketFormat` raises :class:`ValueError` otherwise.

x grows to the East, y grows to the South, core ``i`` sits at ``(x, y) = (i % cols, i // cols)``.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from amaranth.hdl import Shape, unsigned
from amaranth.lib import data, enum
from .checks import check_int as _check_int

__all__ = [
    "TYPE_WIDTH", "TAG_WIDTH", "LENGTH_WIDTH", "MAX_LENGTH", "MIN_ADDRESS_WIDTH",
    "PacketType", "NetClass", "packet_class", "has_payload",
    "coord_width", "address_width", "flit_layout", "header_layout",
    "PacketFormat", "packet_format",
    "pack", "unpack", "make_flit", "parse_flit", "make_packet", "parse_packet",
]

TYPE_WIDTH = 4
TAG_WIDTH = 8
LENGTH_WIDTH = 9          # 0 ..= 256
MAX_LENGTH = 256
MIN_ADDRESS_WIDTH = 20


class PacketType(enum.IntEnum, shape=TYPE_WIDTH):
    """Packet type, the ``type`` field of the header (4 bits; codes 7..15 are reserved)."""
    #: Remote write of ``length`` words into the destination's scratchpad from ``address``.
    WRITE = 0
    #: Read request: answer with a ``READ_RESP`` of ``length`` words from ``address``, same tag.
    READ_REQ = 1
    #: Read response: ``length`` words read from ``address``, echoing the request's tag.
    READ_RESP = 2
    #: Write of ``length`` instruction words into instruction memory from ``address``.
    IMEM_WRITE = 3
    #: Write of ``length`` control/status register values from CSR ``address``.
    CSR_WRITE = 4
    #: Read of ``length`` CSRs; answered with a ``READ_RESP``.
    CSR_READ = 5
    #: Read of ``length`` instruction words from ``address``; answered with a ``READ_RESP``
    #: whose body words are 64-bit instructions.
    IMEM_READ = 6


class NetClass(enum.IntEnum, shape=1):
    """Message class = physical network a packet travels on (see ``docs/noc.md``)."""
    REQUEST = 0
    RESPONSE = 1


_RESPONSES = frozenset({PacketType.READ_RESP})
_WITH_PAYLOAD = frozenset({PacketType.WRITE, PacketType.READ_RESP, PacketType.IMEM_WRITE,
                           PacketType.CSR_WRITE})


def _ptype(ptype):
    try:
        return PacketType(ptype)
    except ValueError:
        raise ValueError(f"unknown packet type {ptype!r} (known: "
                         f"{', '.join(f'{t.name}={t.value}' for t in PacketType)})") from None


def packet_class(ptype) -> NetClass:
    """The network class a packet type travels on: ``READ_RESP`` on the response network,
    every other type on the request network."""
    return NetClass.RESPONSE if _ptype(ptype) in _RESPONSES else NetClass.REQUEST


def has_payload(ptype) -> bool:
    """Whether packets of this type carry ``length`` body flits (``READ_REQ``, ``IMEM_READ``
    and ``CSR_READ`` are head-only: their ``length`` is the number of words asked for)."""
    return _ptype(ptype) in _WITH_PAYLOAD


def coord_width(rows: int, cols: int) -> int:
    """Bits of one mesh coordinate: enough for ``max(rows, cols) - 1``, at least 1."""
    _check_int("rows", rows, 1, 64)
    _check_int("cols", cols, 1, 64)
    return max(1, (max(rows, cols) - 1).bit_length())


def address_width(spm_addr_width: int) -> int:
    """Bits of the header's word address: ``max(20, spm_addr_width)``."""
    _check_int("spm_addr_width", spm_addr_width, 0)
    return max(MIN_ADDRESS_WIDTH, spm_addr_width)


@functools.lru_cache(maxsize=None)
def flit_layout(data_width: int, coord_width: int) -> data.StructLayout:
    """Layout of one flit on a link, LSB first.

    ========== ================= ==========================================================
    field      bits              meaning
    ========== ================= ==========================================================
    data       ``data_width``    head: header (:func:`header_layout`); body: one word
    last       1                 tail flit of the packet (head-only packets: set on head)
    to_host    1                 deliver to the host port (``dst_x``/``dst_y`` ignored)
    dst_x      ``coord_width``   destination column
    dst_y      ``coord_width``   destination row
    ========== ================= ==========================================================
    """
    _check_int("data_width", data_width, 1)
    _check_int("coord_width", coord_width, 1, 16)
    return data.StructLayout({
        "data": unsigned(data_width),
        "last": unsigned(1),
        "to_host": unsigned(1),
        "dst_x": unsigned(coord_width),
        "dst_y": unsigned(coord_width),
    })


@functools.lru_cache(maxsize=None)
def header_layout(coord_width: int, address_width: int) -> data.StructLayout:
    """Layout of the header in the head flit's ``data``, LSB first.

    ========== ================= ==========================================================
    field      bits              meaning
    ========== ================= ==========================================================
    type       4                 :class:`PacketType`
    tag        8                 tag (arrival counter index; echoed in ``READ_RESP``)
    length     9                 payload words, 0..256
    src_host   1                 the packet was sent by the host (src_x/src_y are then 0)
    address    ``address_width`` first word address at the destination
    src_x      ``coord_width``   source column
    src_y      ``coord_width``   source row
    mc_dx      ``coord_width``   multicast rectangle width - 1 (0 and ``mc_dy`` 0: unicast)
    mc_dy      ``coord_width``   multicast rectangle height - 1; the rectangle's corner with
                                 the smallest coordinates is ``(dst_x, dst_y)``
    ========== ================= ==========================================================
    """
    _check_int("coord_width", coord_width, 1, 16)
    _check_int("address_width", address_width, 1)
    return data.StructLayout({
        "type": PacketType,
        "tag": unsigned(TAG_WIDTH),
        "length": unsigned(LENGTH_WIDTH),
        "src_host": unsigned(1),
        "address": unsigned(address_width),
        "src_x": unsigned(coord_width),
        "src_y": unsigned(coord_width),
        "mc_dx": unsigned(coord_width),
        "mc_dy": unsigned(coord_width),
    })


@dataclass(frozen=True)
class PacketFormat:
    """All widths of the packet format, derived from a chip config.

    Parameters
    ----------
    rows, cols : int
        Mesh size.
    data_width : int
        Flit ``data`` width (``cfg.noc.flit_width``).
    word_width : int
        Scratchpad word width (``cfg.word_width``), at most ``data_width``.
    spm_addr_width : int
        Scratchpad word-address bits (``cfg.spm.addr_width``).

    Raises
    ------
    ValueError
        If the header or a scratchpad word does not fit one flit.
    """
    rows: int
    cols: int
    data_width: int
    word_width: int
    spm_addr_width: int

    def __post_init__(self):
        _check_int("rows", self.rows, 1, 64)
        _check_int("cols", self.cols, 1, 64)
        _check_int("data_width", self.data_width, 1)
        _check_int("word_width", self.word_width, 1)
        _check_int("spm_addr_width", self.spm_addr_width, 0)
        if self.word_width > self.data_width:
            raise ValueError(f"word_width {self.word_width} does not fit a flit of "
                             f"noc.flit_width = {self.data_width} bits")
        if self.header.size > self.data_width:
            raise ValueError(
                f"the {self.header.size}-bit header ({self.rows}x{self.cols} mesh: "
                f"{self.coord_width}-bit coordinates, {self.address_width}-bit address) does not "
                f"fit noc.flit_width = {self.data_width}; raise noc.flit_width to "
                f">= {self.header.size}")

    @classmethod
    def from_config(cls, cfg) -> "PacketFormat":
        """Format of a :class:`hasp.config.ChipConfig`."""
        for attr in ("mesh", "noc", "spm", "word_width"):
            if not hasattr(cfg, attr):
                raise TypeError(f"cfg must be a ChipConfig, not {cfg!r}")
        return cls(rows=cfg.mesh.rows, cols=cfg.mesh.cols, data_width=cfg.noc.flit_width,
                   word_width=cfg.word_width, spm_addr_width=cfg.spm.addr_width)

    @property
    def coord_width(self) -> int:
        return coord_width(self.rows, self.cols)

    @property
    def address_width(self) -> int:
        return address_width(self.spm_addr_width)

    @property
    def flit(self) -> data.StructLayout:
        """Flit layout (:func:`flit_layout`); ``flit.size`` bits per link."""
        return flit_layout(self.data_width, self.coord_width)

    @property
    def header(self) -> data.StructLayout:
        """Header layout (:func:`header_layout`)."""
        return header_layout(self.coord_width, self.address_width)

    @property
    def cores(self) -> int:
        return self.rows * self.cols


def packet_format(cfg) -> PacketFormat:
    """A :class:`PacketFormat` from a ``ChipConfig`` (a ``PacketFormat`` is returned as is)."""
    if isinstance(cfg, PacketFormat):
        return cfg
    return PacketFormat.from_config(cfg)


def _fields(layout):
    if not isinstance(layout, data.StructLayout):
        raise TypeError(f"layout must be a data.StructLayout, not {layout!r}")
    return [(name, field.offset, Shape.cast(field.shape).width) for name, field in layout]


def pack(layout: data.StructLayout, **fields) -> int:
    """Encode ``fields`` into an integer with the bit offsets of ``layout``.

    Missing fields are 0. Raises :class:`ValueError` for an unknown field or a value that does
    not fit its field, :class:`TypeError` for a non-integer value.
    """
    value = 0
    known = _fields(layout)
    names = {name for name, _, _ in known}
    for name in fields:
        if name not in names:
            raise ValueError(f"unknown field {name!r} (layout fields: {', '.join(sorted(names))})")
    for name, offset, width in known:
        v = fields.get(name, 0)
        if isinstance(v, bool):
            v = int(v)
        if not isinstance(v, int):
            raise TypeError(f"field {name} must be an integer, not {v!r}")
        if not 0 <= v < (1 << width):
            raise ValueError(f"field {name} = {v!r} does not fit {width} bits")
        value |= int(v) << offset
    return value


def unpack(layout: data.StructLayout, value: int) -> dict:
    """Decode an integer into ``{field: int}`` with the bit offsets of ``layout``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"value must be an integer, not {value!r}")
    if not 0 <= value < (1 << layout.size):
        raise ValueError(f"value {value:#x} does not fit the {layout.size}-bit layout")
    return {name: (value >> offset) & ((1 << width) - 1) for name, offset, width in _fields(layout)}


def make_flit(cfg, **fields) -> int:
    """One flit as an integer: ``pack(packet_format(cfg).flit, **fields)``."""
    return pack(packet_format(cfg).flit, **fields)


def parse_flit(cfg, flit: int) -> dict:
    """One flit integer decoded: ``unpack(packet_format(cfg).flit, flit)``."""
    return unpack(packet_format(cfg).flit, flit)


def make_packet(cfg, ptype, *, dst_x=0, dst_y=0, to_host=False, src_x=0, src_y=0,
                src_host=False, tag=0, address=0, length=None, payload=(), mc_dx=0,
                mc_dy=0) -> list[int]:
    """Encode one packet as a list of flit integers ``[head, *body]``.

    Parameters
    ----------
    cfg : ChipConfig or PacketFormat
    ptype : PacketType or int
    dst_x, dst_y : int
        Destination core; ignored by routers when ``to_host`` is set.
    to_host : bool
        Deliver to the host port.
    mc_dx, mc_dy : int
        Multicast: deliver to every core of the rectangle ``[dst_x, dst_x + mc_dx] x
        [dst_y, dst_y + mc_dy]`` (inside the mesh; not with ``to_host``; 0, 0 = unicast).
        Needs ``noc.router = "lanes"`` and at most ``noc.mc_depth`` flits.
    src_x, src_y, src_host :
        Sender (``src_host`` for the host).
    tag, address : int
    length : int, optional
        Payload words. For types with a payload it defaults to (and must equal)
        ``len(payload)``; for ``READ_REQ``/``CSR_READ`` it is the number of words requested
        (1..256) and ``payload`` must be empty.
    payload : sequence of int
        Body words: at most ``cfg.word_width`` bits each for ``WRITE``, at most
        ``cfg.noc.flit_width`` bits for ``READ_RESP``/``IMEM_WRITE``/``CSR_WRITE``.
    """
    fmt = packet_format(cfg)
    ptype = _ptype(ptype)
    payload = list(payload)
    for name, v, hi in (("dst_x", dst_x, fmt.cols - 1), ("dst_y", dst_y, fmt.rows - 1),
                        ("src_x", src_x, fmt.cols - 1), ("src_y", src_y, fmt.rows - 1)):
        _check_int(name, v, 0, hi)
    _check_int("mc_dx", mc_dx, 0, fmt.cols - 1 - dst_x)
    _check_int("mc_dy", mc_dy, 0, fmt.rows - 1 - dst_y)
    if (mc_dx or mc_dy) and to_host:
        raise ValueError("a multicast packet cannot go to the host")
    if (mc_dx or mc_dy) and cfg.noc.router != "lanes":
        raise ValueError(f"multicast needs noc.router = \"lanes\", this config has "
                         f"{cfg.noc.router!r}")
    if has_payload(ptype):
        if length is None:
            length = len(payload)
        if length != len(payload):
            raise ValueError(f"length {length!r} != len(payload) = {len(payload)} for {ptype.name}")
        _check_int("length", length, 0, MAX_LENGTH)
        # A READ_RESP answers a scratchpad or an instruction-memory read: up to a flit's width.
        wbits = fmt.word_width if ptype == PacketType.WRITE else fmt.data_width
        for i, w in enumerate(payload):
            if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w < (1 << wbits):
                raise ValueError(f"payload[{i}] = {w!r} is not a {wbits}-bit unsigned word")
    else:
        if payload:
            raise ValueError(f"{ptype.name} packets carry no payload, got {len(payload)} words")
        if length is None:
            raise ValueError(f"{ptype.name} needs length (words requested)")
        _check_int("length", length, 1, MAX_LENGTH)
    route = dict(dst_x=dst_x, dst_y=dst_y, to_host=int(bool(to_host)))
    header = pack(fmt.header, type=int(ptype), tag=tag, length=length, src_host=int(bool(src_host)),
                  address=address, src_x=src_x, src_y=src_y, mc_dx=mc_dx, mc_dy=mc_dy)
    flits = [pack(fmt.flit, data=header, last=int(not payload), **route)]
    for i, w in enumerate(payload):
        flits.append(pack(fmt.flit, data=w, last=int(i == len(payload) - 1), **route))
    return flits


def parse_packet(cfg, flits) -> dict:
    """Decode a list of flit integers into a dict.

    Keys: ``type`` (:class:`PacketType`), ``dst_x``, ``dst_y``, ``to_host``, every header field
    (``tag``, ``length``, ``src_host``, ``address``, ``src_x``, ``src_y``, ``mc_dx``,
    ``mc_dy``) and ``payload`` (list of int).

    Raises :class:`ValueError` for a malformed packet: ``last`` not exactly on the final flit,
    routing fields that differ between flits, an unknown type, or a body length that does not
    match ``length``.
    """
    fmt = packet_format(cfg)
    flits = list(flits)
    if not flits:
        raise ValueError("empty packet")
    decoded = [unpack(fmt.flit, f) for f in flits]
    for i, d in enumerate(decoded):
        if d["last"] != (i == len(decoded) - 1):
            raise ValueError(f"flit {i} of {len(decoded)} has last={d['last']}")
        for key in ("dst_x", "dst_y", "to_host"):
            if d[key] != decoded[0][key]:
                raise ValueError(f"flit {i} has {key}={d[key]}, head has {decoded[0][key]}")
    head = decoded[0]
    if head["data"] >> fmt.header.size:
        raise ValueError(f"head flit data {head['data']:#x} has bits set above the header")
    hdr = unpack(fmt.header, head["data"])
    hdr["type"] = _ptype(hdr["type"])
    body = [d["data"] for d in decoded[1:]]
    expect = hdr["length"] if has_payload(hdr["type"]) else 0
    if len(body) != expect:
        raise ValueError(f"{hdr['type'].name} packet with length {hdr['length']} has "
                         f"{len(body)} body flits, expected {expect}")
    return {"dst_x": head["dst_x"], "dst_y": head["dst_y"], "to_host": head["to_host"],
            **hdr, "payload": body}
