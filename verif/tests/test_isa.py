"""The instruction encoding (hasp.sw.isa) and the field table of docs/isa.md.

Expected words are built here from the bit offsets of ``isa.LAYOUTS`` with plain shifts, not
with the encoder. ``python verif/tests/test_isa.py`` rewrites the generated table in
docs/isa.md.
"""
import random
import re
import sys
from pathlib import Path

import pytest

from hasp.sw import isa

DOC = Path(__file__).resolve().parents[2] / "docs" / "isa.md"
BEGIN, END = "<!-- isa-table:begin (generated from hasp.sw.isa.LAYOUTS by verif/tests/test_isa.py) -->", \
    "<!-- isa-table:end -->"


def fields(op):
    """(name, offset, width) of every field but ``op``."""
    return [(n, f.offset, f.width) for n, f in isa.LAYOUTS[op] if n != "op"]


def kind(op, name):
    if (op, name) in isa.SIGNED_FIELDS:
        return "signed"
    if (op, name) in isa.MINUS_ONE:
        return "minus-one"
    return "unsigned"


def value_range(op, name, width):
    k = kind(op, name)
    if k == "signed":
        return -(1 << (width - 1)), (1 << (width - 1)) - 1
    if k == "minus-one":
        return 1, 1 << width
    return 0, (1 << width) - 1


def reference_word(op, values):
    """The instruction word by hand: opcode in bits [0, 5), each field at its offset."""
    word = int(op)
    for name, off, width in fields(op):
        v = values[name]
        if kind(op, name) == "minus-one":
            v -= 1
        word |= (v % (1 << width)) << off
    return word


def field_table() -> str:
    """The markdown field table of docs/isa.md."""
    enc = {"unsigned": "unsigned", "signed": "signed (two's complement)",
           "minus-one": "stored as value - 1"}
    lines = ["| instruction | opcode | field | bits | width | encoding | range |",
             "|---|---|---|---|---|---|---|"]
    for op in isa.Op:
        fs = fields(op)
        if not fs:
            lines.append(f"| {op.name} | {int(op)} | (none) | | | | |")
        for name, off, width in fs:
            lo, hi = value_range(op, name, width)
            lines.append(f"| {op.name} | {int(op)} | `{name}` | [{off}, {off + width}) | {width} | "
                         f"{enc[kind(op, name)]} | {lo} .. {hi} |")
    return "\n".join(lines)


def doc_table() -> str:
    text = DOC.read_text()
    m = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    assert m, f"{DOC} has no generated table between {BEGIN!r} and {END!r}"
    return m.group(1)


def write_doc_table():
    text = DOC.read_text()
    i, j = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOC.write_text(text[:i] + "\n" + field_table() + "\n" + text[j:])


# --------------------------------------------------------------------------- layouts
def test_layouts_are_well_formed():
    assert len(set(map(int, isa.Op))) == len(isa.Op)
    assert set(isa.LAYOUTS) == set(isa.Op)
    for op in isa.Op:
        layout = isa.LAYOUTS[op]
        assert (layout["op"].offset, layout["op"].width) == (0, isa.OP_BITS)
        assert int(op) < (1 << isa.OP_BITS)
        used = (1 << isa.OP_BITS) - 1
        for name, off, width in fields(op):
            mask = ((1 << width) - 1) << off
            assert not used & mask, f"{op.name}.{name} overlaps another field"
            assert off + width <= isa.INSN_BITS, f"{op.name}.{name} does not fit 64 bits"
            used |= mask


def test_doc_table_matches_layouts():
    assert doc_table() == field_table(), (
        "docs/isa.md field table is out of date; run `python verif/tests/test_isa.py`:\n"
        + field_table())


# --------------------------------------------------------------------------- encode/decode
@pytest.mark.parametrize("op", list(isa.Op), ids=lambda o: o.name)
def test_round_trip_random_fields(op):
    rng = random.Random(int(op))
    for trial in range(200):
        values = {}
        for name, off, width in fields(op):
            lo, hi = value_range(op, name, width)
            values[name] = rng.choice([lo, hi, rng.randint(lo, hi)])
        word = isa.encode(op, **values)
        assert word == reference_word(op, values), (op.name, values)
        assert 0 <= word < (1 << isa.INSN_BITS)
        dec = isa.decode(word)
        assert dec.op == op
        assert dict(dec) == {"op": op, **values}
        # the mnemonic form and the disassembler round-trip too
        assert isa.encode(op.name.lower(), **values) == word
        assert isa.assemble(isa.disassemble([word])) == [word]


def test_encode_defaults():
    assert isa.encode("SETQ", mult=5) == reference_word(
        isa.Op.SETQ, {"mult": 5, "shift": 0, "zp": 0, "lo": -128, "hi": 127})
    assert isa.decode(isa.encode("SEND", x=1)).len == 1
    assert isa.encode("NOP") == 0 and isa.encode("HALT") == 1


@pytest.mark.parametrize("op,kwargs,match", [
    ("GEMM", {"k": 1 << 12}, r"GEMM\.k = 4096 out of range \[0, 4095\]"),
    ("GEMM", {"a": -1}, r"GEMM\.a = -1 out of range"),
    ("SETQ", {"zp": 128}, r"SETQ\.zp = 128 out of range \[-128, 127\]"),
    ("SEND", {"len": 0}, r"SEND\.len = 0 out of range \[1, 256\]"),
    ("SEND", {"len": 257}, r"SEND\.len = 257"),
    ("WAIT", {"tag": 256}, r"WAIT\.tag = 256"),
    ("WAIT", {"count": True}, r"WAIT\.count must be an integer"),
    ("SYNC", {"grp": 1}, r"SYNC has no field 'grp'"),
    ("JUMP", {}, r"unknown instruction 'JUMP'"),
])
def test_encode_errors_name_the_field(op, kwargs, match):
    with pytest.raises(isa.IsaError, match=match):
        isa.encode(op, **kwargs)


@pytest.mark.parametrize("opcode", [10, 17, 31])
def test_decode_illegal_opcode(opcode):
    with pytest.raises(isa.IsaError, match=f"illegal opcode {opcode}"):
        isa.decode(opcode | (0xABC << 20))


# --------------------------------------------------------------------------- error codes
# The hardware numbering (hasp.hw.core's error_code), written out here, not read from isa.
EXPECTED_ERRORS = {"NONE": 0, "ILLEGAL_OP": 1, "PC_OVERFLOW": 2, "SPM_RANGE": 3, "ACC_RANGE": 4,
                   "LOOP_TARGET": 5, "LOOP_NEST": 6, "BAD_TAG": 7, "BAD_GROUP": 8,
                   "BAD_DEST": 9, "SYNC_ERROR": 10, "BAD_REQUANT": 11}


def test_error_codes():
    assert {e.name: int(e) for e in isa.ErrorCode} == EXPECTED_ERRORS
    from hasp.hw import core
    from hasp.sw import model
    assert core.CoreError is isa.ErrorCode and model.ErrorCode is isa.ErrorCode
    assert max(isa.ErrorCode) < 1 << core.ERROR_CODE_BITS


def test_sizes_fit_the_fields():
    assert isa.TAGS == 16 and isa.ACC_ROWS == 256 and isa.TAG_MAX == 65535
    tag_w = dict(isa.LAYOUTS[isa.Op.WAIT])["tag"].width
    assert dict(isa.LAYOUTS[isa.Op.SEND])["tag"].width == tag_w
    assert isa.TAGS <= 1 << tag_w
    for op, name in ((isa.Op.GEMM, "dst"), (isa.Op.REQUANT, "src")):
        assert isa.ACC_ROWS <= 1 << dict(isa.LAYOUTS[op])[name].width


def test_doc_error_table_matches_codes():
    text = DOC.read_text()
    section = text[text.index("## Errors"):]
    section = section[:section.index("\n## ", 1)]
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \|", section, re.M)
    assert [(int(c), n) for c, n in rows] == \
        [(v, n) for n, v in EXPECTED_ERRORS.items() if v], rows
    # no retired names left anywhere in the document
    for old in ("ILLEGAL_INSN", "PC_RANGE", "SYNC_GROUP", "SYNC_MEMBER", "BAD_LOOP",
                "TAG_OVERFLOW"):
        assert old not in text, old


# --------------------------------------------------------------------------- assembler
def test_assembler_labels_and_comments():
    words = isa.assemble("""
        # a comment line
        SETQ mult=3 shift=2 zp=-1        ; trailing comment
    top: GEMM a=0x10 b=32 k=4 mt=1 nt=1 acc=1 dst=0
        DELAY cycles=7
        LOOP target=top count=5
        HALT
    """)
    assert words == [
        reference_word(isa.Op.SETQ, {"mult": 3, "shift": 2, "zp": -1, "lo": -128, "hi": 127}),
        reference_word(isa.Op.GEMM, {"a": 16, "b": 32, "k": 4, "mt": 1, "nt": 1, "acc": 1, "dst": 0}),
        reference_word(isa.Op.DELAY, {"cycles": 7}),
        reference_word(isa.Op.LOOP, {"target": 1, "count": 5}),
        int(isa.Op.HALT),
    ]


@pytest.mark.parametrize("text,match", [
    ("NOP\nHALT\nFOO x=1", r"line 3: unknown instruction 'FOO'"),
    ("NOP\nGEMM a", r"line 2: expected field=value, not 'a'"),
    ("x: NOP\nx: HALT", r"line 2: label 'x' defined twice"),
    ("NOP\n\nLOOP target=nowhere count=2", r"line 3: target='nowhere' is neither a number nor a label"),
    ("# c\nWAIT tag=1 count=70000", r"line 2: WAIT\.count = 70000 out of range"),
    ("SEND len=0", r"line 1: SEND\.len = 0"),
    ("NOP\nSYNC group=1 extra=2", r"line 2: SYNC has no field 'extra'"),
])
def test_assembler_errors_name_the_line(text, match):
    with pytest.raises(isa.IsaError, match=match):
        isa.assemble(text)


if __name__ == "__main__":
    if "--check" in sys.argv:
        sys.exit(0 if doc_table() == field_table() else 1)
    write_doc_table()
    print(f"rewrote the field table of {DOC}")
