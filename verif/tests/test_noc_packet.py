"""Packet format: bit positions against the table in docs/noc.md, pack/unpack and
make_packet/parse_packet round trips, agreement with Amaranth's own encoding, validation."""
from __future__ import annotations

import random

import pytest

from hasp.config import ChipConfig, MeshConfig, NoCConfig, preset
from hasp.hw.packet import (NetClass, PacketFormat, PacketType, address_width, coord_width,
                            flit_layout, has_payload, header_layout, make_flit, make_packet,
                            pack, packet_class, packet_format, parse_flit, parse_packet, unpack)


def test_widths():
    assert [coord_width(n, n) for n in (1, 2, 3, 4, 5, 8, 9, 32, 33, 64)] == \
        [1, 1, 2, 2, 3, 3, 4, 5, 6, 6]
    assert coord_width(1, 7) == 3
    assert address_width(10) == 20 and address_width(26) == 26
    fmt = packet_format(preset("tiny"))
    assert (fmt.coord_width, fmt.address_width, fmt.flit.size, fmt.header.size) == (1, 20, 68, 46)
    fmt = packet_format(preset("large"))
    assert (fmt.coord_width, fmt.address_width, fmt.flit.size, fmt.header.size) == (3, 20, 136, 54)
    assert packet_format(fmt) is fmt


def test_bit_positions_tiny():
    """The tiny preset's positions, typed from the table in docs/noc.md."""
    fmt = packet_format(preset("tiny"))
    hdr = {name: (f.offset, f.width) for name, f in fmt.header}
    assert hdr == {"type": (0, 4), "tag": (4, 8), "length": (12, 9), "src_host": (21, 1),
                   "address": (22, 20), "src_x": (42, 1), "src_y": (43, 1), "mc_dx": (44, 1),
                   "mc_dy": (45, 1)}
    flit = {name: (f.offset, f.width) for name, f in fmt.flit}
    assert flit == {"data": (0, 64), "last": (64, 1), "to_host": (65, 1), "dst_x": (66, 1),
                    "dst_y": (67, 1)}
    # WRITE (type 0) of two words from core (0, 1) to core (1, 0), tag 0xA5, address 0x12345
    flits = make_packet(preset("tiny"), PacketType.WRITE, dst_x=1, dst_y=0, src_x=0, src_y=1,
                        tag=0xA5, address=0x12345, payload=[0xDEADBEEF, 0x1])
    header = (0 << 0) | (0xA5 << 4) | (2 << 12) | (0 << 21) | (0x12345 << 22) | (1 << 43)
    assert flits == [header | (1 << 66),
                     0xDEADBEEF | (1 << 66),
                     0x1 | (1 << 64) | (1 << 66)]
    # READ_REQ (type 1) from the host for 7 words: head only, last set
    flits = make_packet(preset("tiny"), PacketType.READ_REQ, dst_x=1, dst_y=1, src_host=True,
                        tag=3, address=9, length=7)
    assert flits == [1 | (3 << 4) | (7 << 12) | (1 << 21) | (9 << 22)
                     | (1 << 64) | (1 << 66) | (1 << 67)]
    # READ_RESP to the host: to_host bit
    flits = make_packet(preset("tiny"), PacketType.READ_RESP, to_host=True, src_x=1, src_y=1,
                        tag=3, address=9, payload=[5])
    assert flits[1] == 5 | (1 << 64) | (1 << 65)


@pytest.mark.parametrize("name", ["tiny", "fpga", "large"])
def test_pack_unpack_round_trip_and_amaranth_agree(name):
    fmt = packet_format(preset(name))
    rng = random.Random(name)
    for layout in (fmt.flit, fmt.header):
        for _ in range(200):
            fields = {n: rng.getrandbits(f.width) for n, f in layout}
            if "type" in fields:
                fields["type"] = rng.choice(list(PacketType)).value
            value = pack(layout, **fields)
            assert unpack(layout, value) == fields
            # Amaranth's own encoding of the same layout gives the same integer
            assert layout.const(fields).as_bits() == value
    assert make_flit(fmt, last=1, dst_y=1) == pack(fmt.flit, last=1, dst_y=1)
    assert parse_flit(fmt, make_flit(fmt, data=7))["data"] == 7


@pytest.mark.parametrize("name", ["tiny", "fpga", "large"])
def test_make_parse_round_trip(name):
    cfg = preset(name)
    rng = random.Random(name)
    for _ in range(200):
        ptype = rng.choice(list(PacketType))
        kw = dict(dst_x=rng.randrange(cfg.mesh.cols), dst_y=rng.randrange(cfg.mesh.rows),
                  to_host=rng.random() < 0.3, src_x=rng.randrange(cfg.mesh.cols),
                  src_y=rng.randrange(cfg.mesh.rows), src_host=rng.random() < 0.3,
                  tag=rng.randrange(256), address=rng.randrange(1 << 20))
        if has_payload(ptype):
            bits = cfg.word_width if ptype in (PacketType.WRITE, PacketType.READ_RESP) \
                else cfg.noc.flit_width
            payload = [rng.getrandbits(bits) for _ in range(rng.choice([0, 1, 5, 256]))]
            flits = make_packet(cfg, ptype, payload=payload, **kw)
            length = len(payload)
        else:
            payload, length = [], rng.randint(1, 256)
            flits = make_packet(cfg, ptype, length=length, **kw)
        assert len(flits) == 1 + len(payload)
        got = parse_packet(cfg, flits)
        want = dict(kw, type=ptype, length=length, payload=payload, mc_dx=0, mc_dy=0)
        want["to_host"] = int(want["to_host"])
        want["src_host"] = int(want["src_host"])
        assert got == want


def test_classes():
    assert packet_class(PacketType.READ_RESP) == NetClass.RESPONSE
    for t in (PacketType.WRITE, PacketType.READ_REQ, PacketType.IMEM_WRITE,
              PacketType.CSR_WRITE, PacketType.CSR_READ):
        assert packet_class(t) == NetClass.REQUEST
    assert not has_payload(PacketType.READ_REQ) and not has_payload(PacketType.CSR_READ)
    assert has_payload(2)
    with pytest.raises(ValueError, match="9"):
        packet_class(9)


def test_pack_errors():
    layout = header_layout(2, 20)
    with pytest.raises(ValueError, match="'bogus'"):
        pack(layout, bogus=1)
    with pytest.raises(ValueError, match="tag = 256"):
        pack(layout, tag=256)
    with pytest.raises(ValueError, match="-1"):
        pack(layout, length=-1)
    with pytest.raises(TypeError, match="'3'"):
        pack(layout, tag="3")
    with pytest.raises(TypeError, match="StructLayout"):
        pack(42, tag=1)
    with pytest.raises(ValueError, match="does not fit"):
        unpack(layout, 1 << layout.size)
    with pytest.raises(ValueError, match="data_width"):
        flit_layout(0, 1)


def test_make_packet_errors():
    cfg = preset("tiny")
    with pytest.raises(ValueError, match="dst_x"):
        make_packet(cfg, PacketType.WRITE, dst_x=2, payload=[1])
    with pytest.raises(ValueError, match=r"payload\[1\]"):
        make_packet(cfg, PacketType.WRITE, payload=[1, 1 << 32])
    make_packet(cfg, PacketType.IMEM_WRITE, payload=[1 << 63])       # instructions: flit wide
    with pytest.raises(ValueError, match="payload"):
        make_packet(cfg, PacketType.IMEM_WRITE, payload=[1 << 64])
    with pytest.raises(ValueError, match="length 3"):
        make_packet(cfg, PacketType.WRITE, length=3, payload=[1])
    with pytest.raises(ValueError, match="257"):
        make_packet(cfg, PacketType.WRITE, payload=[0] * 257)
    with pytest.raises(ValueError, match="no payload"):
        make_packet(cfg, PacketType.READ_REQ, length=1, payload=[1])
    with pytest.raises(ValueError, match="needs length"):
        make_packet(cfg, PacketType.READ_REQ)
    with pytest.raises(ValueError, match="0"):
        make_packet(cfg, PacketType.CSR_READ, length=0)
    with pytest.raises(ValueError, match="unknown packet type 12"):
        make_packet(cfg, 12, payload=[])
    with pytest.raises(ValueError, match="address"):
        make_packet(cfg, PacketType.WRITE, address=1 << 20)


def test_parse_packet_errors():
    cfg = preset("tiny")
    good = make_packet(cfg, PacketType.WRITE, dst_x=1, payload=[1, 2])
    last = 1 << 64
    with pytest.raises(ValueError, match="empty"):
        parse_packet(cfg, [])
    with pytest.raises(ValueError, match="last"):
        parse_packet(cfg, good[:2])                     # tail missing
    with pytest.raises(ValueError, match="last"):
        parse_packet(cfg, [good[0] | last] + good[1:])  # early tail
    with pytest.raises(ValueError, match="dst_x"):
        parse_packet(cfg, [good[0], good[1] & ~(1 << 66), good[2]])
    short = make_packet(cfg, PacketType.WRITE, payload=[1, 2])
    with pytest.raises(ValueError, match="body flits"):
        parse_packet(cfg, [short[0], short[2]])
    with pytest.raises(ValueError, match="above the header"):
        parse_packet(cfg, [short[0] | (1 << 50)] + short[1:])


def test_format_validation():
    with pytest.raises(ValueError, match="flit_width = 64"):
        PacketFormat.from_config(ChipConfig(mesh=MeshConfig(64, 64)))
    PacketFormat.from_config(ChipConfig(mesh=MeshConfig(64, 64), noc=NoCConfig(flit_width=66)))
    PacketFormat.from_config(ChipConfig(mesh=MeshConfig(32, 32)))
    with pytest.raises(ValueError, match="word_width 128"):
        PacketFormat.from_config(preset("tiny").replace(pe={"rows": 16}))
    with pytest.raises(TypeError, match="ChipConfig"):
        PacketFormat.from_config(object())
    with pytest.raises(TypeError, match="rows"):
        PacketFormat(rows="2", cols=2, data_width=64, word_width=32, spm_addr_width=10)
