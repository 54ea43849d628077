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
    cfg = preset("fpga").replace(noc={"router": "lanes"})       # 3x3
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
    cfg = preset("fpga").replace(noc={"router": "vc"})          # 3x3
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
