"""Network interface + lane-router mesh: a multicast WRITE from the host or a core is written
into the scratchpad of every core of its rectangle and counted on its tag there, exactly like a
unicast WRITE; cores outside the rectangle see nothing."""
from __future__ import annotations

import random

from amaranth.hdl import Module
from amaranth.sim import Simulator
from amaranth.lib import wiring

from hasp.config import preset
from hasp.hw.ni import NetworkInterface
from hasp.hw.noc import Mesh
from hasp.hw.packet import PacketType, make_packet
from hasp.verif.noc_tb import MESH_3X3


class _Top(wiring.Component):
    def __init__(self, cfg):
        self.cfg = cfg
        self.mesh = Mesh(cfg)
        self.nis = [NetworkInterface(cfg, i % cfg.mesh.cols, i // cfg.mesh.cols)
                    for i in range(cfg.cores)]
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mesh = self.mesh
        for i, ni in enumerate(self.nis):
            m.submodules[f"ni{i}"] = ni
            wiring.connect(m, self.mesh.local_out[i], ni.req_in)
        return m


def _run(cfg, packets, cycles=400):
    """Inject ``packets`` at the host port; every NI's scratchpad writes and tag increments.
    The core accepts every external write (``spm_wr.ready`` is not looked at)."""
    dut = _Top(cfg)
    writes = {i: [] for i in range(cfg.cores)}
    tags = {i: [] for i in range(cfg.cores)}

    async def bench(ctx):
        host = dut.mesh.host_in
        flits = [f for p in packets for f in p]
        k = 0
        for _ in range(cycles):
            if k < len(flits):
                ctx.set(host.valid, 1)
                ctx.set(host.payload.as_value(), flits[k])
            else:
                ctx.set(host.valid, 0)
            sampled = [(ctx.get(ni.spm_wr.en), ctx.get(ni.spm_wr.addr), ctx.get(ni.spm_wr.data),
                        ctx.get(ni.tag_inc.valid), ctx.get(ni.tag_inc.tag)) for ni in dut.nis]
            hready = ctx.get(host.ready)
            await ctx.tick()
            if k < len(flits) and hready:
                k += 1
            for i, (en, a, d, tv, t) in enumerate(sampled):
                if en:
                    writes[i].append((a, d))
                if tv:
                    tags[i].append(t)
        assert k == len(flits)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return writes, tags, dut


def test_ni_receives_multicast_like_unicast():
    cfg = MESH_3X3.replace(noc={"router": "lanes"})
    cols = cfg.mesh.cols
    mc_payload = [0x11, 0x22, 0x33, 0x44]
    uni_payload = [0x55, 0x66]
    packets = [
        # from core (2, 2) (the host port injects it, as a core's NI would) to the 2x2
        # rectangle with corner (1, 0)
        make_packet(cfg, PacketType.WRITE, dst_x=1, dst_y=0, mc_dx=1, mc_dy=1, src_x=2,
                    src_y=2, tag=7, address=0x40, payload=mc_payload),
        make_packet(cfg, PacketType.WRITE, dst_x=0, dst_y=2, src_x=1, src_y=1, tag=3,
                    address=0x10, payload=uni_payload),
    ]
    writes, tags, dut = _run(cfg, packets)
    rect = {y * cols + x for x in (1, 2) for y in (0, 1)}
    for i in range(cfg.cores):
        want, want_tags = [], []
        if i in rect:
            want += [(0x40 + k, w) for k, w in enumerate(mc_payload)]
            want_tags.append(7)
        if i == 2 * cols + 0:
            want += [(0x10 + k, w) for k, w in enumerate(uni_payload)]
            want_tags.append(3)
        assert writes[i] == want, (i, writes[i])
        assert tags[i] == want_tags, (i, tags[i])


def test_ni_unicast_over_vc_router():
    """The network interfaces talk to the VC router's mesh through the same local ports: host
    WRITEs to every core, several per core with different lengths, land in each scratchpad in
    order with their tags."""
    cfg = MESH_3X3.replace(noc={"router": "vc"})
    rng = random.Random(4)
    packets, want, want_tags = [], {i: [] for i in range(cfg.cores)}, {i: [] for i in
                                                                         range(cfg.cores)}
    for k in range(3):
        for i in range(cfg.cores):
            payload = [rng.getrandbits(cfg.word_width) for _ in range(1 + (i + k) % 4)]
            address, tag = 0x20 * k + i, (5 * i + k) % 8
            packets.append(make_packet(cfg, PacketType.WRITE, dst_x=i % cfg.mesh.cols,
                                       dst_y=i // cfg.mesh.cols, src_x=0, src_y=0, tag=tag,
                                       address=address, payload=payload))
            want[i] += [(address + j, w) for j, w in enumerate(payload)]
            want_tags[i].append(tag)
    writes, tags, dut = _run(cfg, packets, cycles=600)
    for i in range(cfg.cores):
        assert writes[i] == want[i], (i, writes[i])
        assert tags[i] == want_tags[i], (i, tags[i])


def test_ni_read_latch_backpressure():
    """Host reads arriving faster than the response network takes them: the ingress holds
    ``req_in.ready`` low once the two-deep read latch may fill, and every READ_REQ gets its
    READ_RESP, in order, with the scratchpad words it asked for (a read let in with the
    latch full would be lost or answered with another's header)."""
    from hasp.hw.packet import parse_packet
    from hasp.hw.scratchpad import Scratchpad
    cfg = preset("tiny")
    dut = NetworkInterface(cfg, 1, 0)
    rng = random.Random(11)
    word = lambda a: (a * 2654435761 + 12345) % (1 << cfg.word_width)
    reqs = [dict(src_host=True, tag=i % 8, address=8 * i + 3, length=1 + i % 4)
            for i in range(7)]
    flits = [f for r in reqs for f in make_packet(cfg, PacketType.READ_REQ, dst_x=1, **r)]
    out, stalled = [], []

    async def bench(ctx):
        due, k = {}, 0
        ctx.set(dut.spm_rd.ready, 1)
        for cycle in range(600):
            ctx.set(dut.spm_rd.data, word(due.pop(cycle)) if cycle in due else 0)
            ctx.set(dut.req_in.valid, k < len(flits))
            ctx.set(dut.req_in.payload.as_value(), flits[k] if k < len(flits) else 0)
            take = cycle >= 60 and rng.random() < 0.5     # responses blocked at first
            ctx.set(dut.resp_out.ready, take)
            ready, rd_en, rd_addr = (ctx.get(dut.req_in.ready), ctx.get(dut.spm_rd.en),
                                     ctx.get(dut.spm_rd.addr))
            if ctx.get(dut.resp_out.valid) and take:
                out.append(ctx.get(dut.resp_out.payload.as_value()))
            if rd_en:
                due[cycle + Scratchpad.READ_LATENCY] = rd_addr
            if k < len(flits):
                if ready:
                    k += 1
                else:
                    stalled.append(cycle)
            await ctx.tick()
        assert k == len(flits)
        assert not ctx.get(dut.error)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert stalled and stalled[0] < 60, "the ingress never waited while responses were blocked"
    got, i = [], 0
    for r in reqs:
        got.append(parse_packet(cfg, out[i:i + 1 + r["length"]]))
        i += 1 + r["length"]
    assert i == len(out)
    for r, p in zip(reqs, got):
        assert p["type"] == PacketType.READ_RESP
        assert (p["to_host"], p["src_x"], p["src_y"], p["tag"], p["address"]) == (
            1, 1, 0, r["tag"], r["address"])
        assert p["payload"] == [word(r["address"] + j) for j in range(r["length"])]
