"""Mesh / NoC tests in the Amaranth simulator: random traffic with back-pressure against an
independent golden (per destination, per source queues of expected packets), a read storm with
responders over the two-network NoC, zero-load latency per hop, link counters, Verilog export.

Long regressions (bigger meshes, more packets) are marked ``long``: run them with ``--long``.
"""
from __future__ import annotations

import random
from collections import defaultdict

import pytest
from amaranth.back import verilog

from hasp.config import ChipConfig, MeshConfig, NoCConfig, preset
from hasp.hw.noc import Mesh, NoC, Port
from hasp.hw.packet import (NetClass, PacketType, make_packet, packet_class, parse_flit,
                            parse_packet)

from hasp.verif.noc_tb import (HOST, MESH_3X3, Scoreboard, Sink, Source, node_key, random_packet,
                               run_streams, simulate, xy_of)

REQ, RESP = NetClass.REQUEST, NetClass.RESPONSE


# --------------------------------------------------------------------------------------------
# Random traffic on one Mesh

def run_mesh_traffic(cfg, seed, n_packets, max_len, p_valid, p_ready, max_cycles):
    rng = random.Random(seed)
    dut = Mesh(cfg)
    cores = [xy_of(cfg, i) for i in range(cfg.cores)]
    nodes = cores + [HOST]
    board = Scoreboard(cfg)
    sources = [Source((x, y), dut.local_in[y * cfg.mesh.cols + x], p_valid) for x, y in cores]
    sources.append(Source(HOST, dut.host_in, p_valid))
    types = list(PacketType)
    for src in sources:
        for _ in range(n_packets):
            dst = rng.choice(nodes)
            flits, golden = random_packet(cfg, rng, src.name, dst, types, max_len)
            src.push(flits)
            board.expect_packet(dst, golden)
    sinks = []
    for x, y in cores:
        sinks.append(Sink((x, y), dut.local_out[y * cfg.mesh.cols + x],
                          lambda name, flits, cycle: board.check(name, flits),
                          p_ready=rng.choice(p_ready)))
    sinks.append(Sink(HOST, dut.host_out, lambda name, flits, cycle: board.check(name, flits),
                      p_ready=rng.choice(p_ready)))
    result = {}

    async def bench(ctx):
        result["cycles"] = await run_streams(
            ctx, sources, sinks, rng, max_cycles=max_cycles,
            done=lambda: board.outstanding() == 0 and not any(s.busy() for s in sources))
        result["error"] = ctx.get(dut.error)
        result["counts"] = {(i, p): ctx.get(dut.flit_count[i][p])
                            for i in range(cfg.cores) for p in Port}

    simulate(dut, bench)
    assert board.outstanding() == 0
    assert board.count == len(sources) * n_packets
    assert result["error"] == 0
    # every flit sent is counted once per link it crossed (golden: hand-walked XY routes)
    expect_counts = defaultdict(int)
    for s in sources:
        for _, flit in s.sent:
            pkt_route = golden_route(cfg, s.name, flit)
            for link in pkt_route:
                expect_counts[link] += 1
    for (i, p), v in result["counts"].items():
        assert v == expect_counts[i, p], f"router {i} port {p.name}: {v} != {expect_counts[i, p]}"
    return result


def golden_route(cfg, src, flit):
    """Links (router index, output Port) a flit from ``src`` crosses, by the XY rule stated in
    docs/noc.md: first along x, then along y; the host is reached through (0, 0) West."""
    f = parse_flit(cfg, flit)
    cols = cfg.mesh.cols
    x, y = (0, 0) if src == HOST else src
    tx, ty = (0, 0) if f["to_host"] else (f["dst_x"], f["dst_y"])
    links = []
    while x != tx:
        step = 1 if tx > x else -1
        links.append((y * cols + x, Port.E if step > 0 else Port.W))
        x += step
    while y != ty:
        step = 1 if ty > y else -1
        links.append((y * cols + x, Port.S if step > 0 else Port.N))
        y += step
    links.append((y * cols + x, Port.W if f["to_host"] else Port.L))
    return links


ROUTERS = ("lanes", "vc", "wormhole")


@pytest.mark.parametrize("router", ROUTERS)
@pytest.mark.parametrize("name,seed", [("tiny", 1), ("fpga", 2)])
def test_mesh_random_traffic(name, seed, router):
    cfg = preset(name).replace(noc={"router": router})
    run_mesh_traffic(cfg, seed, n_packets=20, max_len=8, p_valid=0.7,
                     p_ready=(0.3, 0.6, 1.0), max_cycles=20_000)


@pytest.mark.parametrize("router", ROUTERS)
def test_mesh_random_traffic_1xN_and_depth(router):
    # non-square mesh, 1-flit and 2-flit buffers
    for rows, cols, depth in ((1, 3, 1), (3, 2, 2)):
        cfg = ChipConfig(mesh=MeshConfig(rows, cols),
                         noc=NoCConfig(buffer_depth=depth, router=router))
        run_mesh_traffic(cfg, 10 + rows, n_packets=8, max_len=4, p_valid=0.8,
                         p_ready=(0.5, 1.0), max_cycles=20_000)


def rectangle(x0, y0, dx, dy):
    return [(x, y) for y in range(y0, y0 + dy + 1) for x in range(x0, x0 + dx + 1)]


def mc_golden_links(cfg, src, x0, y0, dx, dy):
    """Links (router index, output Port) of the XY multicast tree, stated independently of the
    hardware: along the source row to every column of the rectangle, then along each column to
    every row of it, ejecting in the rectangle."""
    cols = cfg.mesh.cols
    sx, sy = (0, 0) if src == HOST else src
    x1, y1 = x0 + dx, y0 + dy
    links = []
    for x in range(min(sx, x0), max(sx, x1) + 1):
        if x < sx:
            links.append((sy * cols + x + 1, Port.W))
        if x > sx:
            links.append((sy * cols + x - 1, Port.E))
    for x in range(x0, x1 + 1):
        for y in range(min(sy, y0), max(sy, y1) + 1):
            if y < sy:
                links.append(((y + 1) * cols + x, Port.N))
            if y > sy:
                links.append(((y - 1) * cols + x, Port.S))
    links += [(y * cols + x, Port.L) for x, y in rectangle(x0, y0, dx, dy)]
    return links


def run_multicast_traffic(cfg, seed, n_packets, p_mc, p_valid, p_ready, max_cycles):
    """Unicast and multicast packets from every core and the host, random back-pressure:
    every core of a multicast rectangle receives exactly one intact copy, unicast and
    multicast packets each in order per source/destination pair, link counters = the XY
    trees."""
    rng = random.Random(seed)
    dut = Mesh(cfg)
    rows, cols = cfg.mesh.rows, cfg.mesh.cols
    cores = [xy_of(cfg, i) for i in range(cfg.cores)]
    expect = defaultdict(list)          # (dst, src, is_mc) -> packets in order
    sources = [Source(c, dut.local_in[i], p_valid) for i, c in enumerate(cores)]
    sources.append(Source(HOST, dut.host_in, p_valid))
    links = defaultdict(int)
    mc_total = 0
    for src in sources:
        for _ in range(n_packets):
            kw = {"src_host": True} if src.name == HOST else \
                {"src_x": src.name[0], "src_y": src.name[1]}
            tag, addr = rng.randrange(256), rng.randrange(1 << 20)
            payload = [rng.getrandbits(cfg.word_width)
                       for _ in range(rng.randint(0, cfg.noc.mc_depth - 1))]
            if rng.random() < p_mc:
                x0, y0 = rng.randrange(cols), rng.randrange(rows)
                dx, dy = rng.randrange(cols - x0), rng.randrange(rows - y0)
                if dx == dy == 0:
                    continue
                flits = make_packet(cfg, PacketType.WRITE, dst_x=x0, dst_y=y0, mc_dx=dx,
                                    mc_dy=dy, tag=tag, address=addr, payload=payload, **kw)
                for d in rectangle(x0, y0, dx, dy):
                    expect[d, node_key_kw(src.name), True].append(flits)
                for link in mc_golden_links(cfg, src.name, x0, y0, dx, dy):
                    links[link] += len(flits)
                mc_total += 1
            else:
                d = rng.choice(cores)
                flits = make_packet(cfg, PacketType.WRITE, dst_x=d[0], dst_y=d[1], tag=tag,
                                    address=addr, payload=payload, **kw)
                expect[d, node_key_kw(src.name), False].append(flits)
                for f in flits:
                    for link in golden_route(cfg, src.name, f):
                        links[link] += 1
            src.push(flits)
    got = defaultdict(list)

    def on_packet(name, flits, cycle):
        pkt = parse_packet(cfg, flits)
        is_mc = bool(pkt["mc_dx"] or pkt["mc_dy"])
        got[name, node_key(pkt), is_mc].append(flits)

    sinks = [Sink(c, dut.local_out[i], on_packet, p_ready=rng.choice(p_ready))
             for i, c in enumerate(cores)]
    n_expected = sum(len(v) for v in expect.values())
    result = {}

    async def bench(ctx):
        result["cycles"] = await run_streams(
            ctx, sources, sinks, rng, max_cycles=max_cycles,
            done=lambda: sum(len(v) for v in got.values()) >= n_expected
            and not any(s.busy() for s in sources))
        for _ in range(10):
            await ctx.tick()
        result["error"] = ctx.get(dut.error)
        result["counts"] = {(i, p): ctx.get(dut.flit_count[i][p])
                            for i in range(cfg.cores) for p in Port}

    simulate(dut, bench)
    assert result["error"] == 0
    assert mc_total > 0
    assert set(got) <= set(expect), set(got) - set(expect)
    for key, pkts in expect.items():
        assert got[key] == pkts, f"{key}: {len(got[key])} packets received, {len(pkts)} expected"
    for (i, p), v in result["counts"].items():
        assert v == links[i, p], f"router {i} port {p.name}: {v} != {links[i, p]}"
    return result


def node_key_kw(name):
    return HOST if name == HOST else name


@pytest.mark.parametrize("name,seed", [("tiny", 3), ("fpga", 4)])
def test_multicast_with_unicast(name, seed):
    cfg = preset(name).replace(noc={"router": "lanes"})
    run_multicast_traffic(cfg, seed, n_packets=25, p_mc=0.4, p_valid=0.8,
                          p_ready=(0.3, 0.7, 1.0), max_cycles=40_000)


def test_multicast_shapes_and_errors():
    """Non-square mesh, 2-flit lanes; a too-long multicast packet and a rectangle outside the
    mesh are rejected by make_packet; the wormhole router drops nothing it cannot route."""
    cfg = ChipConfig(mesh=MeshConfig(3, 4),
                     noc=NoCConfig(buffer_depth=2, mc_depth=4, router="lanes"))
    run_multicast_traffic(cfg, 7, n_packets=15, p_mc=0.6, p_valid=1.0, p_ready=(0.5, 1.0),
                          max_cycles=40_000)
    with pytest.raises(ValueError, match="mc_dx"):
        make_packet(cfg, PacketType.WRITE, dst_x=2, dst_y=0, mc_dx=2, payload=[1])
    with pytest.raises(ValueError, match="host"):
        make_packet(cfg, PacketType.WRITE, to_host=True, mc_dy=1, payload=[1])
    wormhole = cfg.replace(noc={"router": "wormhole"})
    with pytest.raises(ValueError, match='multicast needs noc.router = "lanes"'):
        make_packet(wormhole, PacketType.WRITE, dst_x=0, dst_y=0, mc_dx=1, payload=[1])


@pytest.mark.long
def test_multicast_long():
    for name, seed in (("tiny", 41), ("fpga", 42)):
        run_multicast_traffic(preset(name).replace(noc={"router": "lanes"}), seed,
                              n_packets=150, p_mc=0.3, p_valid=1.0, p_ready=(0.2, 0.6, 1.0),
                              max_cycles=400_000)
    run_multicast_traffic(ChipConfig(mesh=MeshConfig(4, 4), noc=NoCConfig(router="lanes")), 43, n_packets=60, p_mc=0.5,
                          p_valid=1.0, p_ready=(0.5, 1.0), max_cycles=400_000)


@pytest.mark.long
def test_mesh_random_traffic_long():
    for name, seed in (("tiny", 21), ("fpga", 22)):
        for router in ROUTERS:
            run_mesh_traffic(preset(name).replace(noc={"router": router}), seed, n_packets=80,
                             max_len=16, p_valid=0.9, p_ready=(0.2, 0.5, 1.0),
                             max_cycles=400_000)
    cfg = ChipConfig(mesh=MeshConfig(4, 4), noc=NoCConfig(buffer_depth=2))
    run_mesh_traffic(cfg, 23, n_packets=40, max_len=8, p_valid=1.0,
                     p_ready=(0.3, 1.0), max_cycles=400_000)
    run_mesh_traffic(preset("large"), 24, n_packets=6, max_len=8, p_valid=1.0,
                     p_ready=(0.5, 1.0), max_cycles=400_000)


@pytest.mark.parametrize("router", ROUTERS)
def test_mesh_hotspot_fair(router):
    """Every core and the host stream long packets to core (1, 1): every packet arrives whole,
    and the ejection port serves its five inputs round-robin (local, per-router fairness: with
    XY routing the N input merges four sources, so they share one fifth)."""
    cfg = MESH_3X3.replace(noc={"router": router})
    rng = random.Random(5)
    dut = Mesh(cfg)
    board = Scoreboard(cfg)
    cores = [xy_of(cfg, i) for i in range(cfg.cores)]
    sources = [Source(c, dut.local_in[i]) for i, c in enumerate(cores)] + \
              [Source(HOST, dut.host_in)]
    target = (1, 1)
    for s in sources:
        for k in range(4):
            flits, golden = random_packet(cfg, rng, s.name, target, [PacketType.WRITE], 8)
            s.push(flits)
            board.expect_packet(target, golden)
    arrivals = []
    sink = Sink(target, dut.local_out[4],
                lambda n, f, c: arrivals.append((c, node_key(board.check(n, f)))))

    async def bench(ctx):
        await run_streams(ctx, sources, [sink], rng, max_cycles=5000,
                          done=lambda: board.outstanding() == 0)

    simulate(dut, bench)
    assert board.outstanding() == 0

    def side(src):          # input port of (1, 1) that XY routing uses for src
        x, y = (0, 0) if src == HOST else src
        if y == target[1]:
            return "W" if x < target[0] else "E" if x > target[0] else "L"
        return "N" if y < target[1] else "S"
    sides = [side(src) for _, src in arrivals]
    assert sorted(sides[:5]) == sorted("NSEWL"), sides
    # E, W and L have 4 packets each; while they last, every round of 5 serves every input
    assert sorted(sides[5:10]) == sorted("NSEWL"), sides


# --------------------------------------------------------------------------------------------
# Two-network NoC under a read storm: responders stop taking requests while their response
# backlog is full, the situation that deadlocks a single shared network.

def mem_word(cfg, core, address):
    return (core[0] * 7919 + core[1] * 104729 + address * 2654435761) % (1 << cfg.word_width)


def run_noc_storm(cfg, seed, n_requests, max_len, p_ready, max_cycles, backlog=1):
    rng = random.Random(seed)
    dut = NoC(cfg)
    cols = cfg.mesh.cols
    cores = [xy_of(cfg, i) for i in range(cfg.cores)]
    board = Scoreboard(cfg)
    req_src = {c: Source(c, dut.req_in[i], 0.9) for i, c in enumerate(cores)}
    req_src[HOST] = Source(HOST, dut.host_req_in, 0.9)
    resp_src = {c: Source(c, dut.resp_in[i], 0.9) for i, c in enumerate(cores)}

    def respond(core, flits, cycle):
        pkt = board.check(core, flits, REQ)
        assert packet_class(pkt["type"]) == NetClass.REQUEST
        if pkt["type"] == PacketType.READ_REQ:
            words = [mem_word(cfg, core, pkt["address"] + k) for k in range(pkt["length"])]
            back = {"to_host": True} if pkt["src_host"] else \
                {"dst_x": pkt["src_x"], "dst_y": pkt["src_y"]}
            resp_src[core].push(make_packet(cfg, PacketType.READ_RESP, src_x=core[0],
                                            src_y=core[1], tag=pkt["tag"],
                                            address=pkt["address"], payload=words, **back))

    # golden, from the requests alone: every READ_REQ yields this READ_RESP at its requester
    for src in [HOST] + cores:
        for _ in range(n_requests):
            dst = rng.choice(cores + ([HOST] if src != HOST else []))
            types = [PacketType.READ_REQ, PacketType.READ_REQ, PacketType.WRITE] \
                if dst != HOST else [PacketType.WRITE]
            flits, golden = random_packet(cfg, rng, src, dst, types, max_len)
            req_src[src].push(flits)
            board.expect_packet(dst, golden, REQ)
            if golden["type"] == PacketType.READ_REQ:
                resp = {"dst_x": 0 if src == HOST else src[0],
                        "dst_y": 0 if src == HOST else src[1], "to_host": int(src == HOST),
                        "type": PacketType.READ_RESP, "tag": golden["tag"],
                        "length": golden["length"], "src_host": 0,
                        "address": golden["address"], "src_x": dst[0], "src_y": dst[1],
                        "mc_dx": 0, "mc_dy": 0,
                        "payload": [mem_word(cfg, dst, golden["address"] + k)
                                    for k in range(golden["length"])]}
                board.expect_packet(src, resp, RESP)

    sinks = []
    for i, c in enumerate(cores):
        sinks.append(Sink(c, dut.req_out[i], respond, p_ready=p_ready,
                          blocked=lambda c=c: resp_src[c].backlog() >= backlog))
        sinks.append(Sink(c, dut.resp_out[i], lambda n, f, cy: board.check(n, f, RESP),
                          p_ready=p_ready))
    sinks.append(Sink(HOST, dut.host_req_out, lambda n, f, cy: board.check(n, f, REQ),
                      p_ready=p_ready))
    sinks.append(Sink(HOST, dut.host_resp_out, lambda n, f, cy: board.check(n, f, RESP),
                      p_ready=p_ready))
    sources = list(req_src.values()) + list(resp_src.values())
    result = {}

    async def bench(ctx):
        result["cycles"] = await run_streams(
            ctx, sources, sinks, rng, max_cycles=max_cycles,
            done=lambda: board.outstanding() == 0 and not any(s.busy() for s in sources))
        result["error"] = ctx.get(dut.error)
        result["resp_flits"] = (sum(ctx.get(dut.resp_flit_count[i][Port.L])
                                    for i in range(cfg.cores))
                                + ctx.get(dut.resp_flit_count[0][Port.W]))

    simulate(dut, bench)
    assert board.outstanding() == 0
    assert result["error"] == 0
    sent_resp = sum(len(s.sent) for s in resp_src.values())
    # ejected on the response network = flits to cores (L) + flits to the host ((0,0) W)
    assert result["resp_flits"] == sent_resp
    return result


def test_noc_read_storm_tiny():
    run_noc_storm(preset("tiny"), 3, n_requests=10, max_len=6, p_ready=0.6, max_cycles=20_000)


@pytest.mark.long
def test_noc_read_storm_long():
    run_noc_storm(preset("fpga"), 31, n_requests=40, max_len=16, p_ready=0.5,
                  max_cycles=400_000)
    run_noc_storm(preset("tiny").replace(noc={"buffer_depth": 1}), 32, n_requests=40,
                  max_len=8, p_ready=0.3, max_cycles=400_000)


# --------------------------------------------------------------------------------------------
# Zero-load latency

def measure_latency(cfg, pairs, length=0):
    """Cycles from the head flit's injection transfer to its ejection transfer, and from the
    injection of the head to the ejection of the tail, for each (src, dst) pair on an idle
    mesh with always-ready sinks."""
    dut = Mesh(cfg)
    cols = cfg.mesh.cols
    out = {}

    def port_in(n):
        return dut.host_in if n == HOST else dut.local_in[n[1] * cols + n[0]]

    def port_out(n):
        return dut.host_out if n == HOST else dut.local_out[n[1] * cols + n[0]]

    async def bench(ctx):
        rng = random.Random(0)
        for src, dst in pairs:
            s = Source(src, port_in(src))
            payload = list(range(1, length + 1))
            kw = {"to_host": True} if dst == HOST else {"dst_x": dst[0], "dst_y": dst[1]}
            s.push(make_packet(cfg, PacketType.WRITE, payload=payload, **kw))
            got = []
            k = Sink(dst, port_out(dst), lambda n, f, c: got.append(c))
            await run_streams(ctx, [s], [k], rng, max_cycles=200, done=lambda: bool(got))
            for _ in range(3):      # drain
                await ctx.tick()
            ctx.set(k.port.ready, 0)
            out[src, dst] = (k.received[0][0] - s.sent[0][0], k.received[-1][0] - s.sent[0][0])

    simulate(dut, bench)
    return out


def hops(a, b):
    a = (0, 0) if a == HOST else a
    b = (0, 0) if b == HOST else b
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


@pytest.mark.parametrize("router", ROUTERS)
def test_zero_load_latency_per_hop(router):
    cfg = MESH_3X3.replace(noc={"router": router})
    nodes = [xy_of(cfg, i) for i in range(cfg.cores)] + [HOST]
    pairs = [(s, d) for s in nodes for d in nodes]
    lat = measure_latency(cfg, pairs)
    # least-squares slope of head latency against router-to-router hops
    xs = [hops(s, d) for s, d in pairs]
    ys = [lat[p][0] for p in pairs]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    print(f"zero-load head latency: {slope:.2f} cycles/hop, "
          + ", ".join(f"{h} hops: {sorted({y for x, y in zip(xs, ys) if x == h})}"
                      for h in sorted(set(xs))))
    assert slope <= 2.0
    # exact figures of the designs (docs/noc.md): two cycles per router (allocation,
    # traversal); the lane and VC routers' ejection buffer adds one
    extra = {"wormhole": 2, "lanes": 3, "vc": 3}[router]
    assert all(lat[p][0] == 2 * h + extra for p, h in zip(pairs, xs)), lat


@pytest.mark.parametrize("router", ROUTERS)
def test_zero_load_serialisation(router):
    """A 16-word packet streams at one flit per cycle through the whole path."""
    cfg = MESH_3X3.replace(noc={"router": router})
    pairs = [((0, 0), (2, 2)), (HOST, (2, 1)), ((2, 2), HOST)]
    lat = measure_latency(cfg, pairs, length=16)
    for p in pairs:
        head, tail = lat[p]
        assert tail - head == 16, (p, lat[p])


# --------------------------------------------------------------------------------------------

def test_verilog_export():
    v = verilog.convert(NoC(preset("tiny")), name="hasp_noc")
    for port in ("req_in__0__payload", "resp_out__3__valid", "host_req_in__ready",
                 "host_resp_out__payload", "req_flit_count__3__4", "error"):
        assert port in v, port


# --------------------------------------------------------------------------------------------
# Saturation throughput (figures in docs/noc.md)

def saturation_throughput(k, flits, cycles, depth=4, seed=1, router="wormhole", vcs=6,
                          probe=None):
    """Accepted flits per node per cycle with every core always holding a packet of ``flits``
    flits for a uniformly random core (itself included), always-ready sinks, after a warm-up of
    ``cycles // 4``. ``probe(ctx, dut)`` is called every measured cycle (see
    :func:`allocation_probe`)."""
    cfg = ChipConfig(mesh=MeshConfig(k, k),
                     noc=NoCConfig(buffer_depth=depth, router=router, vcs=vcs))
    rng = random.Random(seed)
    dut = Mesh(cfg)
    cores = [xy_of(cfg, i) for i in range(cfg.cores)]
    sources = []
    for i in range(cfg.cores):
        s = Source(cores[i], dut.local_in[i])
        for _ in range(cycles // flits + 2):
            d = rng.choice(cores)
            s.push(make_packet(cfg, PacketType.WRITE, dst_x=d[0], dst_y=d[1],
                               payload=[0] * (flits - 1)))
        sources.append(s)
    sinks = [Sink(c, dut.local_out[i], lambda *a: None) for i, c in enumerate(cores)]
    clock = iter(range(cycles + 1))
    warm = cycles // 4

    async def bench(ctx):
        def done():
            c = next(clock)
            if probe is not None and c >= warm:
                probe(ctx, dut)
            return c == cycles
        await run_streams(ctx, sources, sinks, rng, max_cycles=cycles + 2, done=done)

    simulate(dut, bench)
    got = sum(1 for snk in sinks for c, _ in snk.received if c >= warm)
    return got / (cycles - warm) / cfg.cores


def allocation_probe(k=4, cycles=1000, depth=4, vcs=6):
    """Saturation throughput of the VC router and, per output and cycle (fractions of the
    measured cycles, ejection and router-to-router links apart): granted, ``alloc_loss`` (some
    VC eligible for it but none granted: its input chose another VC), ``head_no_vc`` (a head
    waits for it, no free downstream VC), ``idle`` (nothing wants it). The figures of
    docs/noc.md ("Measurements")."""
    from collections import Counter
    count = Counter()

    def probe(ctx, dut):
        for r in dut.routers.values():
            P, V = r._probe, r.vcs
            get = ctx.get
            for o in P["outs"]:
                g = get(P["granted"][o])
                on_o = [(i, v) for i in P["ins"] for v in range(V)
                        if get(P["vc"][i, v]["route"]) >> o & 1]
                want = any(get(P["elig"][iv]) for iv in on_o)
                head = any(get(P["pend"][iv]) for iv in on_o)
                body = any(get(P["vc"][iv]["alloc"]) and get(P["vc"][iv]["cnt"]) for iv in on_o)
                key = "eject" if o == Port.L else "link"
                count[key, "cycles"] += 1
                count[key, "granted"] += g
                count[key, "alloc_loss"] += want and not g
                count[key, "head_no_vc"] += head and not get(P["avail"][o]) and not g
                count[key, "idle"] += not (want or head or body)

    thr = saturation_throughput(k, 4, cycles, depth, router="vc", vcs=vcs, probe=probe)
    out = {"throughput": round(thr, 3)}
    for key in ("eject", "link"):
        n = count[key, "cycles"]
        out[key] = {f: round(count[key, f] / n, 3)
                    for f in ("granted", "alloc_loss", "head_no_vc", "idle")}
    return out


@pytest.mark.long
def test_saturation_throughput():
    thr = saturation_throughput(4, 4, 3000)
    print(f"4x4 depth 4, 4-flit packets, uniform random: {thr:.3f} flits/node/cycle "
          f"= {thr:.0%} of the min(1, 4/k) bound")
    assert thr >= 0.45


@pytest.mark.long
def test_saturation_throughput_vc():
    """The VC router (6 VCs of 4 flits) reaches the issue's target, 0.8 of the 4/k bound, on a
    4x4 mesh under uniform random traffic (measured 0.85, docs/noc.md)."""
    thr = saturation_throughput(4, 4, 1000, router="vc", vcs=6)
    print(f"4x4 vc router, 6 VCs x 4 flits: {thr:.3f} flits/node/cycle")
    assert thr >= 0.8
