# amaranth: UnusedElaboratable=no
"""Router and Mesh/NoC constructor tests, and single-router simulation: routing of every
(input, destination) pair, drop of unroutable flits, wormhole + round-robin, full throughput."""
from __future__ import annotations

import random

import pytest
from amaranth.hdl import Shape

from hasp.config import ChipConfig, MeshConfig, preset
from hasp.hw.noc import Mesh, NoC, Port, Router, flagged_fifo, router_turns, xy_route
from hasp.hw.packet import PacketType, flit_layout, make_packet, pack

from hasp.verif.noc_tb import MESH_3X3, Sink, Source, run_streams, simulate

N, S, E, W, L = Port.N, Port.S, Port.E, Port.W, Port.L


def inspect_only(*objs):
    """Built to inspect ports, never elaborated: keep Amaranth's unused-elaboratable warning for
    the routers built inside quiet (this file's own objects are silenced by line 1)."""
    for obj in objs:
        for mesh in (getattr(obj, "req", None), getattr(obj, "resp", None), obj):
            for r in getattr(mesh, "routers", {}).values():
                r._MustUse__silence = True
            if mesh is not None:
                mesh._MustUse__silence = True
    return objs[0]


def router(**kw):
    args = dict(x=1, y=1, rows=3, cols=3, data_width=64, buffer_depth=4)
    args.update(kw)
    return Router(**args)


# --------------------------------------------------------------------------------------------
# Construction

@pytest.mark.parametrize("kw,exc,text", [
    ({"x": 3}, ValueError, "3"),
    ({"x": -1}, ValueError, "-1"),
    ({"y": "1"}, TypeError, "'1'"),
    ({"rows": 0}, ValueError, "0"),
    ({"cols": 65}, ValueError, "65"),
    ({"buffer_depth": 0}, ValueError, "buffer_depth"),
    ({"buffer_depth": 2.0}, TypeError, "2.0"),
    ({"data_width": 0}, ValueError, "data_width"),
    ({"counter_width": 0}, ValueError, "counter_width"),
    ({"host": 1}, TypeError, "host"),
    ({"host_in": 0}, TypeError, "host_in"),
    ({"host": True}, ValueError, "(1, 1)"),
    ({"x": True}, TypeError, "True"),
])
def test_router_validation(kw, exc, text):
    with pytest.raises(exc) as info:
        router(**kw)
    assert text in str(info.value)


def test_mesh_validation():
    with pytest.raises(TypeError, match="ChipConfig"):
        Mesh("tiny")
    with pytest.raises(ValueError, match="counter_width"):
        Mesh(preset("tiny"), counter_width=0)
    # 64x64 mesh: 6-bit coordinates make a 66-bit header, too big for 64-bit flits
    big = ChipConfig(mesh=MeshConfig(64, 64))
    with pytest.raises(ValueError, match="flit_width"):
        Mesh(big)
    with pytest.raises(ValueError, match="flit_width"):
        NoC(big)
    # a 16x16 PE array has 128-bit words: they do not fit 64-bit flits
    with pytest.raises(ValueError, match="word_width 128"):
        Mesh(preset("tiny").replace(pe={"rows": 16, "cols": 16}))


def test_ports_and_shapes():
    cfg = MESH_3X3
    mesh = inspect_only(Mesh(cfg, counter_width=20))
    assert len(mesh.local_in) == len(mesh.local_out) == 9
    layout = mesh.local_in[0].payload.shape()
    assert layout == flit_layout(64, 2)
    assert layout.size == 64 + 1 + 1 + 2 + 2
    assert len(mesh.flit_count) == 9 and len(mesh.flit_count[0]) == 5
    assert Shape.cast(mesh.flit_count[8][Port.L].shape()).width == 20
    assert mesh.router(5) is mesh.routers[2, 1]
    noc = inspect_only(NoC(preset("large")))
    assert len(noc.req_in) == len(noc.resp_out) == 64
    assert noc.host_resp_out.payload.shape() == flit_layout(128, 3)


def test_router_turns_table():
    # centre router: X inputs may turn, Y inputs only go straight or eject (no U-turns)
    assert router_turns(1, 1, 3, 3) == {
        N: (S, E, W, L), S: (N, E, W, L), E: (W, L), W: (E, L), L: (N, S, E, W, L)}
    # host router (0, 0): West is the host; S -> W carries to_host packets from column 0
    assert router_turns(0, 0, 3, 3, host=True) == {
        S: (E, W, L), E: (W, L), W: (S, E, W, L), L: (S, E, W, L)}
    assert router_turns(0, 0, 3, 3, host=False) == {S: (E, L), E: (L,), L: (S, E, L)}
    assert router_turns(2, 2, 3, 3) == {N: (W, L), W: (L,), L: (N, W, L)}
    assert router_turns(0, 0, 1, 1, host=True) == {W: (W, L), L: (W, L)}


# --------------------------------------------------------------------------------------------
# Single-router routing: every input, every encodable destination, to_host or not

SIDE_STEP = {N: (0, -1), S: (0, 1), E: (1, 0), W: (-1, 0)}


def expected_output(x, y, rows, cols, host, inp, dst_x, dst_y, to_host):
    """Independent statement of the rules in docs/noc.md: route x first, then y; the host is
    (0, 0)'s West side. A flit is dropped (None) if that output does not exist or the turn is
    not an XY turn for a packet arriving on ``inp``."""
    tx, ty = (0, 0) if to_host else (dst_x, dst_y)
    if tx != x:
        out = E if tx > x else W
    elif ty != y:
        out = S if ty > y else N
    else:
        out = W if to_host else L
    if out == W and host:
        pass                                    # the host link
    elif out != L:
        dx, dy = SIDE_STEP[out]
        if not (0 <= x + dx < cols and 0 <= y + dy < rows):
            return None                         # off the mesh
    if inp == L:
        return out
    if inp in (E, W):                           # travelling along x: anything but a U-turn
        return out if out != inp or (host and inp == W) else None
    opposite = S if inp == N else N             # travelling along y: straight on or eject,
    if out in (opposite, L) or (host and inp == S and out == W):   # or turn into the host
        return out
    return None


@pytest.mark.parametrize("x,y,host,host_in", [(1, 1, False, True), (0, 0, True, True),
                                              (0, 0, True, False), (2, 2, False, True),
                                              (2, 0, False, True), (0, 1, False, True)])
def test_router_routes_every_destination(x, y, host, host_in):
    """host_in=False (the response network's (0, 0)): the host input is gone, the host
    output still takes every packet routed to it."""
    rows = cols = 3
    dut = router(x=x, y=y, host=host, host_in=host_in)
    assert (W in {i for ins in dut.turns.values() for i in ins}) == (x > 0 or (host and host_in))
    layout = dut.layout
    cases = []
    for inp in Port:
        if inp not in {i for ins in dut.turns.values() for i in ins}:
            continue
        for to_host in (0, 1):
            for dx in range(4):             # 2-bit coordinates: 0..3, 3 is off the mesh
                for dy in range(4):
                    want = expected_output(x, y, rows, cols, host, inp, dx, dy, to_host)
                    if want is not None:
                        assert want == xy_route(x, y, dx, dy, to_host)
                    cases.append((inp, dx, dy, to_host, want))
    # legal cases first: error must stay low through them
    cases.sort(key=lambda c: c[4] is None)
    seen = []

    async def bench(ctx):
        for p in Port:
            ctx.set(dut.outputs[p].ready, 1)
        if not host_in:         # a host flit offered to the absent input is never taken
            ctx.set(dut.in_w.payload.as_value(), pack(layout, data=1, last=1))
            ctx.set(dut.in_w.valid, 1)
            for _ in range(4):
                _, _, ready, *valids = await ctx.tick().sample(
                    dut.in_w.ready, *[dut.outputs[p].valid for p in Port])
                assert not ready and not any(valids)
            ctx.set(dut.in_w.valid, 0)
        for n, (inp, dx, dy, th, want) in enumerate(cases):
            flit = pack(layout, data=n, last=1, dst_x=dx, dst_y=dy, to_host=th)
            port = dut.inputs[inp]
            ctx.set(port.payload.as_value(), flit)
            ctx.set(port.valid, 1)
            for _ in range(10):
                _, _, ready = await ctx.tick().sample(port.ready)
                if ready:
                    break
            else:
                raise AssertionError(f"input {inp.name} stuck (not ready) at case {n}")
            ctx.set(port.valid, 0)
            got = []
            for _ in range(3):
                _, _, *vals = await ctx.tick().sample(
                    *[dut.outputs[p].valid for p in Port],
                    *[dut.outputs[p].payload.as_value() for p in Port])
                got += [(Port(p), vals[5 + p]) for p in range(5) if vals[p]]
            seen.append(got)
            if want is None:
                assert got == [], (inp, dx, dy, th, got)
            else:
                assert got == [(want, flit)], (inp, dx, dy, th, want, got)
            assert ctx.get(dut.error) == (want is None)     # sticky; illegal cases come last
        counted = [ctx.get(c) for c in dut.counts]
        assert counted == [sum(1 for c in cases if c[4] == p) for p in Port]

    simulate(dut, bench)
    assert len(seen) == len(cases)


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_flagged_fifo_flags_equal_the_fifos_own(depth):
    """The registered nonempty / nonfull flags equal SyncFIFO's r_rdy / w_rdy every cycle
    through random writes and reads that fill and drain the FIFO."""
    from amaranth.hdl import Module
    m = Module()
    f, nonempty, nonfull = flagged_fifo(m, "q", 8, depth)
    rng = random.Random(depth)
    seen = set()

    async def bench(ctx):
        for n in range(400):
            phase = (n // 40) % 2                 # bursts that fill, then drain
            ctx.set(f.w_en, rng.random() < (0.8 if phase == 0 else 0.2))
            ctx.set(f.r_en, rng.random() < (0.2 if phase == 0 else 0.8))
            ctx.set(f.w_data, n & 0xFF)
            await ctx.delay(1e-9)
            got = (ctx.get(nonempty), ctx.get(nonfull))
            assert got == (ctx.get(f.r_rdy), ctx.get(f.w_rdy)), (n, got, ctx.get(f.level))
            seen.add(ctx.get(f.level))
            await ctx.tick()

    simulate(m, bench)
    assert seen == set(range(depth + 1))      # empty, full and everything between


# --------------------------------------------------------------------------------------------
# Wormhole, arbitration, throughput

def test_wormhole_round_robin():
    """Four inputs send multi-flit packets to L with bubbles and back-pressure: packets never
    interleave, every packet arrives whole, and ownership rotates round-robin."""
    cfg = MESH_3X3
    dut = router()
    rng = random.Random(7)
    sources = {p: Source(p, dut.inputs[p], p_valid=0.8) for p in (N, S, E, W)}
    # each source sends 5 packets of 2..6 flits, data = (input, packet, flit) tags
    for p, s in sources.items():
        for k in range(5):
            words = [p * 1000 + k * 10 + j for j in range(rng.randint(1, 5))]
            s.push(make_packet(cfg, PacketType.WRITE, dst_x=1, dst_y=1, payload=words))
    packets = []
    sink = Sink(L, dut.out_l, lambda n, flits, c: packets.append(flits), p_ready=0.6)

    async def bench(ctx):
        await run_streams(ctx, list(sources.values()), [sink], rng, max_cycles=2000,
                          done=lambda: len(packets) == 20)

    simulate(dut, bench)
    order, per_input = [], {p: [] for p in (N, S, E, W)}
    for flits in packets:
        body = [f & 0xFFFF for f in flits[1:]]
        src, k = body[0] // 1000, body[0] // 10 % 100
        assert body == [src * 1000 + k * 10 + j for j in range(len(body))], \
            f"interleaved or broken packet: {body}"
        order.append(src)
        per_input[src].append(k)
    assert all(ks == list(range(5)) for ks in per_input.values()), per_input
    # always-pending inputs are served in rotation while all four still have packets
    assert sorted(order[:4]) == [0, 1, 2, 3] and sorted(order[4:8]) == [0, 1, 2, 3], order


@pytest.mark.parametrize("depth,rate", [(2, 1.0), (4, 1.0), (1, 0.5)])
def test_throughput_all_ports(depth, rate):
    """Five simultaneous flows (W->E, E->W, N->S, S->N, L->L) of 40 flits each: with depth >= 2
    every input accepts a flit every cycle while forwarding one; depth 1 halves it."""
    cfg = MESH_3X3.replace(noc={"buffer_depth": depth})
    dut = router(buffer_depth=depth)
    flows = {W: (2, 1), E: (0, 1), N: (1, 2), S: (1, 0), L: (1, 1)}
    out_of = {W: E, E: W, N: S, S: N, L: L}
    sources, sinks = [], []
    for p, (dx, dy) in flows.items():
        s = Source(p, dut.inputs[p])
        s.push(make_packet(cfg, PacketType.WRITE, dst_x=dx, dst_y=dy, payload=list(range(39))))
        sources.append(s)
        sinks.append(Sink(out_of[p], dut.outputs[out_of[p]], lambda *a: None))

    async def bench(ctx):
        await run_streams(ctx, sources, sinks, random.Random(0), max_cycles=500,
                          done=lambda: all(len(k.received) == 40 for k in sinks))

    simulate(dut, bench)
    for s, k in zip(sources, sinks):
        in_cycles = [c for c, _ in s.sent]
        out_cycles = [c for c, _ in k.received]
        assert [f for _, f in s.sent] == [f for _, f in k.received]
        span_in = in_cycles[-1] - in_cycles[0] + 1
        span_out = out_cycles[-1] - out_cycles[0] + 1
        assert 40 / span_in >= rate * 0.95 and 40 / span_out >= rate * 0.95, (span_in, span_out)
        if rate == 1.0:
            assert out_cycles[0] - in_cycles[0] == 2       # grant, then traversal


def test_noc_config_router_knob():
    from hasp.config import ConfigError, NoCConfig, loads
    with pytest.raises(ConfigError,
                       match="noc.router must be one of lanes, vc, wormhole, not 'vcs'"):
        NoCConfig(router="vcs")
    with pytest.raises(ConfigError, match=r"noc\.mc_depth must be >= 2, not 1"):
        NoCConfig(mc_depth=1)
    with pytest.raises(ConfigError, match=r"noc\.vcs must be <= 6, not 7"):
        NoCConfig(vcs=7)
    with pytest.raises(ConfigError, match=r"noc\.vcs must be >= 1, not 0"):
        NoCConfig(vcs=0)
    assert all(preset(n).noc.router == "wormhole" for n in ("tiny", "fpga", "large"))
    cfg = loads('[noc]\nrouter = "wormhole"\nmc_depth = 16\n')
    assert (cfg.noc.router, cfg.noc.mc_depth) == ("wormhole", 16)
    from hasp.hw.noc import LaneRouter, Mesh
    lanes = preset("tiny").replace(noc={"router": "lanes"})
    assert all(isinstance(r, LaneRouter) for r in Mesh(lanes).routers.values())
    assert not any(isinstance(r, LaneRouter) for r in Mesh(preset("fpga")).routers.values())
    from hasp.hw.noc import VcRouter
    vcfg = loads('[mesh]\nrows = 2\ncols = 3\n[noc]\nrouter = "vc"\nvcs = 3\n')
    routers = Mesh(vcfg).routers.values()
    assert all(isinstance(r, VcRouter) and r.vcs == 3 for r in routers)


def test_lane_router_validation():
    from hasp.hw.noc import LaneRouter
    args = dict(x=1, y=1, rows=3, cols=3, data_width=64, buffer_depth=4)
    with pytest.raises(ValueError, match="mc_depth"):
        LaneRouter(mc_depth=1, **args)
    with pytest.raises(ValueError, match="host port"):
        LaneRouter(**dict(args, host=True))
    r = LaneRouter(**args)
    assert {"lane", "credit"} <= set(r.in_e.signature.members)       # credit-based link
    assert "ready" in r.in_l.signature.members                       # stream at the core


def test_vc_router_validation():
    from hasp.hw.noc import VcRouter
    args = dict(x=1, y=1, rows=3, cols=3, data_width=64, buffer_depth=4)
    for bad in (0, 7):
        with pytest.raises(ValueError, match="vcs"):
            VcRouter(vcs=bad, **args)
    with pytest.raises(ValueError, match="host port"):
        VcRouter(**dict(args, host=True))
    r = VcRouter(vcs=3, **args)
    # credit-based link with one credit per VC and the VC index next to the flit
    members = r.in_e.signature.members
    assert (members["credit"].shape, members["lane"].shape) == (3, 2)
    assert "ready" in r.in_l.signature.members                       # stream at the core
