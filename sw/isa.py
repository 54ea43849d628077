"""The core instruction set: one definition of every instruction layout.

Instructions are 64-bit words. Bits ``[0, 5)`` hold the opcode; the other fields of each
instruction are given by one ``amaranth.lib.data.StructLayout`` per opcode (below), used by
the RTL decoder, by this module's assembler/disassembler and by the functional model alike.
See ``docs/isa.md`` for the semantics.
"""
from __future__ import annotations

import enum
import re

from amaranth.lib import data

__all__ = ["Op", "LAYOUTS", "INSN_BITS", "IsaError", "ErrorCode", "TAGS", "ACC_ROWS",
           "TAG_COUNTER_BITS", "TAG_MAX", "encode", "decode", "assemble", "disassemble", "Insn"]

INSN_BITS = 64
OP_BITS = 5
ADDR_BITS = 14        # scratchpad word address
ACC_BITS = 10         # accumulator-memory row address
TAG_BITS = 8

#: Tag counters per core (``WAIT``/``SEND`` ``tag`` must be below this; the field has
#: ``TAG_BITS`` bits, the hardware implements only the first ``TAGS`` counters).
TAGS = 16
#: Width of a tag counter; counters saturate at ``TAG_MAX``.
TAG_COUNTER_BITS = 16
TAG_MAX = (1 << TAG_COUNTER_BITS) - 1
#: Accumulator-memory rows per core (addresses have ``ACC_BITS`` bits; rows ``>= ACC_ROWS``
#: are out of range).
ACC_ROWS = 256
assert TAGS <= 1 << TAG_BITS and ACC_ROWS <= 1 << ACC_BITS


class ErrorCode(enum.IntEnum):
    """Error status of a core: the RTL core's ``error_code`` and the functional model's
    ``CoreResult.error_code`` (``docs/isa.md``, "Errors"). The reported ``pc`` is that of the
    faulting instruction (``cfg.core.imem_depth`` for ``PC_OVERFLOW``)."""
    NONE = 0
    ILLEGAL_OP = 1       # opcode not in Op
    PC_OVERFLOW = 2      # execution ran past the last instruction-memory word (no HALT)
    SPM_RANGE = 3        # a scratchpad range (GEMM A/B, REQUANT dst/bias, SEND src/dst) overflows
    ACC_RANGE = 4        # an accumulator range (GEMM dst, REQUANT src) overflows ACC_ROWS
    LOOP_TARGET = 5      # LOOP target > the LOOP's own address
    LOOP_NEST = 6        # a LOOP reached while the LOOP at another pc is active
    BAD_TAG = 7          # WAIT or SEND tag >= TAGS
    BAD_GROUP = 8        # SYNC group >= cfg.sync.groups
    BAD_DEST = 9         # SEND x >= mesh.cols or y >= mesh.rows
    SYNC_ERROR = 10      # SYNC on a group the core is not a member of (group-sync unit error)
    BAD_REQUANT = 11     # SETQ shift > golden.SHIFT_MAX or an empty clamp range


class Op(enum.IntEnum):
    NOP = 0
    HALT = 1
    GEMM = 2
    SETQ = 3
    REQUANT = 4
    SEND = 5
    WAIT = 6
    SYNC = 7
    DELAY = 8
    LOOP = 9


def _layout(fields: dict) -> data.StructLayout:
    layout = data.StructLayout({"op": OP_BITS, **fields})
    assert layout.size <= INSN_BITS, layout
    return layout


#: Field layout of each instruction (``op`` first, at bit 0).
LAYOUTS: dict[Op, data.StructLayout] = {
    Op.NOP: _layout({}),
    Op.HALT: _layout({}),
    # ACC[dst + t*rows + r] (+)= A-tile(mi) @ B-tile(nj), t = mi*nt + nj: see hasp.hw.gemm.
    Op.GEMM: _layout({"a": ADDR_BITS, "b": ADDR_BITS, "k": 12, "mt": 4, "nt": 4, "acc": 1,
                      "dst": ACC_BITS}),
    # Requantisation parameters for the following REQUANTs (golden.requantize).
    Op.SETQ: _layout({"mult": 16, "shift": 6, "zp": 8, "lo": 8, "hi": 8}),
    # SPM[dst + i] = requant(ACC[src + i] + bias_i), i < rows; bias_i = SPM[bias + i] if use_bias.
    Op.REQUANT: _layout({"src": ACC_BITS, "dst": ADDR_BITS, "rows": ACC_BITS, "bias": ADDR_BITS,
                         "use_bias": 1}),
    # Remote write of SPM[src .. src+len) into core (x, y)'s SPM at dst, counted on `tag` there.
    Op.SEND: _layout({"src": ADDR_BITS, "len": 8, "x": 6, "y": 6, "dst": ADDR_BITS,
                      "tag": TAG_BITS}),
    # Wait until tag counter >= count, then subtract count (lock/key).
    Op.WAIT: _layout({"tag": TAG_BITS, "count": 16}),
    # Group barrier on sync group `group`.
    Op.SYNC: _layout({"group": 6}),
    Op.DELAY: _layout({"cycles": 24}),
    # Run the instructions from `target` to this LOOP `count` times in all (one level).
    Op.LOOP: _layout({"target": 12, "count": 16}),
}
SIGNED_FIELDS = {(Op.SETQ, "zp"), (Op.SETQ, "lo"), (Op.SETQ, "hi")}
#: Fields stored minus one, so that the full range fits: SEND.len is 1..256.
MINUS_ONE = {(Op.SEND, "len")}


class IsaError(ValueError):
    """An instruction or program is malformed. The message names the line/field and value."""


class Insn(dict):
    """A decoded instruction: ``Insn(op=Op.GEMM, a=0, ...)``; ``insn.op`` is an :class:`Op`."""
    __getattr__ = dict.__getitem__

    def __repr__(self):
        args = " ".join(f"{k}={v}" for k, v in self.items() if k != "op")
        return f"{self['op'].name} {args}".strip()


def _field_range(op, name, width):
    if (op, name) in SIGNED_FIELDS:
        return -(1 << (width - 1)), (1 << (width - 1)) - 1
    if (op, name) in MINUS_ONE:
        return 1, 1 << width
    return 0, (1 << width) - 1


def encode(op: Op | str, **fields) -> int:
    """Encode one instruction; missing fields are 0 (``SETQ`` ``lo``/``hi`` default to the
    full int8 range). Raises :class:`IsaError` naming a bad field."""
    try:
        op = Op[op.upper()] if isinstance(op, str) else Op(op)
    except (KeyError, ValueError):
        raise IsaError(f"unknown instruction {op!r} (known: {', '.join(o.name for o in Op)})") \
            from None
    layout = LAYOUTS[op]
    names = [n for n, _ in layout if n != "op"]
    for k in fields:
        if k not in names:
            raise IsaError(f"{op.name} has no field {k!r} (fields: {', '.join(names) or 'none'})")
    if op == Op.SETQ:
        fields = {"lo": -128, "hi": 127, **fields}
    if op == Op.SEND:
        fields.setdefault("len", 1)
    values = {"op": int(op)}
    for name, field in layout:
        if name == "op":
            continue
        v = fields.get(name, 0)
        if isinstance(v, bool) or not isinstance(v, int):
            raise IsaError(f"{op.name}.{name} must be an integer, not {v!r}")
        lo, hi = _field_range(op, name, field.width)
        if not lo <= v <= hi:
            raise IsaError(f"{op.name}.{name} = {v} out of range [{lo}, {hi}]")
        if (op, name) in MINUS_ONE:
            v -= 1
        values[name] = v & ((1 << field.width) - 1)
    return layout.const(values).as_bits()


def decode(word: int) -> Insn:
    """Decode one instruction word; raises :class:`IsaError` for an unknown opcode."""
    opv = word & ((1 << OP_BITS) - 1)
    try:
        op = Op(opv)
    except ValueError:
        raise IsaError(f"illegal opcode {opv} in instruction {word:#018x}") from None
    layout = LAYOUTS[op]
    out = Insn(op=op)
    for name, field in layout:
        if name == "op":
            continue
        v = (word >> field.offset) & ((1 << field.width) - 1)
        if (op, name) in SIGNED_FIELDS and v >> (field.width - 1):
            v -= 1 << field.width
        if (op, name) in MINUS_ONE:
            v += 1
        out[name] = v
    return out


_LINE = re.compile(r"^\s*(?:(?P<label>[A-Za-z_]\w*)\s*:)?\s*(?P<body>.*?)\s*(?:[#;].*)?$")


def assemble(text: str) -> list[int]:
    """Assemble text: one instruction a line, ``OP field=value ...``, ``label:`` prefixes,
    ``#`` or ``;`` comments; ``LOOP target=label``. Errors name the line."""
    lines = text.splitlines()
    labels, parsed = {}, []
    for n, line in enumerate(lines, 1):
        m = _LINE.match(line)
        if m.group("label"):
            if m.group("label") in labels:
                raise IsaError(f"line {n}: label {m.group('label')!r} defined twice")
            labels[m.group("label")] = len(parsed)
        if m.group("body"):
            parsed.append((n, m.group("body")))
    words = []
    for n, body in parsed:
        op, *args = body.split()
        fields = {}
        for a in args:
            if "=" not in a:
                raise IsaError(f"line {n}: expected field=value, not {a!r}")
            k, v = a.split("=", 1)
            if v in labels:
                fields[k] = labels[v]
                continue
            try:
                fields[k] = int(v, 0)
            except ValueError:
                raise IsaError(f"line {n}: {k}={v!r} is neither a number nor a label") from None
        try:
            words.append(encode(op, **fields))
        except IsaError as e:
            raise IsaError(f"line {n}: {e}") from None
    return words


def disassemble(words) -> str:
    return "\n".join(repr(decode(w)) for w in words)
