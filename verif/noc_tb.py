"""NoC testbench library for the Amaranth simulator (no tests here).

Sources and sinks of flit streams driven from one coroutine, one tick per cycle; a scoreboard
holding the golden (expected packets per destination and source, in order); a random packet
generator. Packets are built and checked with :mod:`hasp.hw.packet` only, never with bit
positions typed here.

(It lives next to the tests because it is shared by ``test_noc_router.py`` and
``test_noc_mesh.py``; it belongs in ``verif/tb/noc.py``.)
"""
from __future__ import annotations

from collections import defaultdict, deque

from amaranth.sim import Simulator

from hasp.config import preset
from hasp.hw.packet import PacketType, make_packet, parse_packet

HOST = "host"

#: A 3x3 mesh with the fpga preset's other sizes: every kind of router, the centre one with
#: five ports (the fpga preset itself is a 2x4 mesh, whose routers have at most four).
MESH_3X3 = preset("fpga").replace(mesh={"rows": 3, "cols": 3})


class Source:
    """Drives an ``In(stream)`` port of the DUT from a queue of packets. Before any flit (also
    inside a packet) it idles with probability ``1 - p_valid``; valid never drops before the
    transfer. ``sent`` lists ``(cycle, flit)`` of every transfer."""

    def __init__(self, name, port, p_valid=1.0):
        self.name, self.port, self.p_valid = name, port, p_valid
        self.packets = deque()      # of lists of flit ints
        self.flits = deque()
        self.cur = None
        self.sent = []

    def push(self, flits):
        self.packets.append(list(flits))

    def busy(self):
        return bool(self.cur is not None or self.flits or self.packets)

    def backlog(self):
        """Packets not completely sent."""
        return len(self.packets) + (1 if self.flits or self.cur is not None else 0)


class Sink:
    """Accepts flits from an ``Out(stream)`` port with probability ``p_ready`` per cycle (never
    while ``blocked()``), checks that valid and payload hold until the transfer, reassembles
    packets at ``last`` and calls ``on_packet(name, flits, cycle)``. ``received`` lists
    ``(cycle, flit)`` of every transfer."""

    def __init__(self, name, port, on_packet, p_ready=1.0, blocked=None):
        self.name, self.port, self.p_ready = name, port, p_ready
        self.on_packet, self.blocked = on_packet, blocked
        self.last_bit = port.payload.shape()["last"].offset
        self.partial, self.held = [], None
        self.received = []


async def run_streams(ctx, sources, sinks, rng, *, done, max_cycles, stall_limit=500):
    """Drive ``sources`` and ``sinks`` until ``done()``; returns the cycle count.

    Fails on a stream-rule violation, after ``max_cycles`` (watchdog) or after ``stall_limit``
    cycles without any transfer while a source still has flits (deadlock).
    """
    sample = ([s.port.ready for s in sources] + [k.port.valid for k in sinks]
              + [k.port.payload.as_value() for k in sinks])
    n_src, n_snk = len(sources), len(sinks)
    idle = 0
    for cycle in range(max_cycles):
        if done():
            return cycle
        for s in sources:
            if s.cur is None:
                if not s.flits and s.packets:
                    s.flits.extend(s.packets.popleft())
                if s.flits and rng.random() < s.p_valid:
                    s.cur = s.flits.popleft()
                    ctx.set(s.port.payload.as_value(), s.cur)
                    ctx.set(s.port.valid, 1)
        readies = []
        for k in sinks:
            r = rng.random() < k.p_ready and not (k.blocked is not None and k.blocked())
            readies.append(r)
            ctx.set(k.port.ready, r)
        _, _, *vals = await ctx.tick().sample(*sample)
        moved = False
        for s, ready in zip(sources, vals[:n_src]):
            if s.cur is not None and ready:
                s.sent.append((cycle, s.cur))
                s.cur = None
                ctx.set(s.port.valid, 0)
                moved = True
        for k, r, valid, payload in zip(sinks, readies, vals[n_src:n_src + n_snk],
                                        vals[n_src + n_snk:]):
            if k.held is not None:
                assert valid and payload == k.held, \
                    f"{k.name}: valid/payload changed before the transfer at cycle {cycle}"
            k.held = payload if valid and not r else None
            if valid and r:
                moved = True
                k.received.append((cycle, payload))
                k.partial.append(payload)
                if (payload >> k.last_bit) & 1:
                    flits, k.partial = k.partial, []
                    k.on_packet(k.name, flits, cycle)
        idle = 0 if moved else idle + 1
        assert not (idle > stall_limit and any(s.busy() for s in sources)), \
            f"no flit moved for {stall_limit} cycles with traffic pending (deadlock) at {cycle}"
    raise AssertionError(f"watchdog: not done after {max_cycles} cycles")


def simulate(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def xy_of(cfg, i):
    """Coordinates of core ``i`` (row-major)."""
    return i % cfg.mesh.cols, i // cfg.mesh.cols


def node_key(pkt):
    """Sender of a parsed packet: ``HOST`` or ``(x, y)``."""
    return HOST if pkt["src_host"] else (pkt["src_x"], pkt["src_y"])


class Scoreboard:
    """``expect[net, dst][src]`` is the queue of packets (parsed dicts) still to arrive at
    ``dst`` from ``src`` on network ``net``. A received packet must be the head of its queue:
    this checks exactly-once delivery, intact payload, right destination and per-pair order."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.expect = defaultdict(lambda: defaultdict(deque))
        self.count = 0

    def expect_packet(self, dst, fields, net=None):
        self.expect[net, dst][node_key(fields)].append(fields)

    def check(self, dst, flits, net=None):
        pkt = parse_packet(self.cfg, flits)
        if pkt["to_host"]:
            assert dst == HOST, f"to_host packet delivered to core {dst}: {pkt}"
        else:
            assert dst == (pkt["dst_x"], pkt["dst_y"]), \
                f"packet for {(pkt['dst_x'], pkt['dst_y'])} delivered to {dst}: {pkt}"
        queue = self.expect[net, dst][node_key(pkt)]
        assert queue, f"unexpected (duplicate?) packet at {dst}: {pkt}"
        want = queue.popleft()
        assert pkt == want, f"at {dst} from {node_key(pkt)}:\n got  {pkt}\n want {want}"
        self.count += 1
        return pkt

    def outstanding(self):
        return sum(len(q) for per in self.expect.values() for q in per.values())


def random_packet(cfg, rng, src, dst, types, max_len):
    """A random packet from ``src`` to ``dst`` (``HOST`` or ``(x, y)``).

    Returns ``(flits, golden)``: the flits from :func:`make_packet` and the dict that
    :func:`parse_packet` must return at the destination, written out field by field here.
    """
    ptype = rng.choice(types)
    kw = dict(tag=rng.randrange(256), address=rng.randrange(1 << 20))
    if src == HOST:
        kw["src_host"] = True
    else:
        kw["src_x"], kw["src_y"] = src
    if dst == HOST:
        kw["to_host"] = True
    else:
        kw["dst_x"], kw["dst_y"] = dst
    wbits = cfg.word_width if ptype == PacketType.WRITE else cfg.noc.flit_width
    if ptype in (PacketType.READ_REQ, PacketType.IMEM_READ, PacketType.CSR_READ):
        kw["length"] = rng.randint(1, max_len)
        payload = []
    else:
        payload = [rng.getrandbits(wbits) for _ in range(rng.randint(0, max_len))]
    flits = make_packet(cfg, ptype, payload=payload, **kw)
    golden = {"dst_x": kw.get("dst_x", 0), "dst_y": kw.get("dst_y", 0),
              "to_host": int(dst == HOST), "type": ptype, "tag": kw["tag"],
              "length": kw.get("length", len(payload)), "src_host": int(src == HOST),
              "address": kw["address"], "src_x": kw.get("src_x", 0), "src_y": kw.get("src_y", 0),
              "mc_dx": 0, "mc_dy": 0, "payload": payload}
    return flits, golden
