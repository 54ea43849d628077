"""Mesh network-on-chip: 5-port wormhole routers with XY routing, a mesh of them, and the
two-network NoC (request + response) that the chip top instantiates.

Geometry: x is the column and grows to the East, y is the row and grows to the South; router
``(x, y)`` serves core ``i = y * cols + x``. The host port is the West port of router ``(0, 0)``.
Flits use :func:`hasp.hw.packet.flit_layout`. See ``docs/noc.md`` for the protocol, the
deadlock-freedom argument and measured latencies.
"""
from __future__ import annotations

from enum import IntEnum

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .packet import PacketFormat, coord_width, flit_layout, header_layout
from .checks import check_int as _check_int

__all__ = ["Port", "PORT_NAMES", "xy_route", "router_turns", "Router", "LaneRouter", "Mesh",
           "NoC", "mc_route", "link_signature", "LANE_MC", "VcRouter", "make_router"]


class Port(IntEnum):
    """Router port index; also the second index of :attr:`Mesh.flit_count`."""
    N = 0
    S = 1
    E = 2
    W = 3
    L = 4


PORT_NAMES = {Port.N: "n", Port.S: "s", Port.E: "e", Port.W: "w", Port.L: "l"}


def xy_route(x: int, y: int, dst_x: int, dst_y: int, to_host: bool) -> Port:
    """The routing function of router ``(x, y)`` (Python model of the hardware).

    Dimension-ordered XY: correct x first (E/W), then y (S/N), then eject on L. A packet with
    ``to_host`` set is routed XY towards ``(0, 0)`` and ejected there on the West port, where
    the host sits. The router's output choice depends only on the flit, never on the input port.
    """
    tx, ty = (0, 0) if to_host else (dst_x, dst_y)
    if tx > x:
        return Port.E
    if tx < x:
        return Port.W
    if ty > y:
        return Port.S
    if ty < y:
        return Port.N
    return Port.W if to_host else Port.L


def router_turns(x: int, y: int, rows: int, cols: int, host: bool = False) -> dict:
    """Input ports that XY routing can forward to each output port of router ``(x, y)``.

    Returns ``{output Port: tuple of input Ports}`` with only the outputs that exist. Links off
    the mesh edge do not exist, except the West port of ``(0, 0)`` when ``host`` is set. Turns
    that XY routing never makes (Y to X, U-turns) are absent; the crossbar and arbiters are built
    from this table only. ``scripts/noc_deadlock.py`` checks it against the turns that
    :func:`xy_route` actually uses.
    """
    exists = {Port.N: y > 0, Port.S: y < rows - 1, Port.E: x < cols - 1,
              Port.W: x > 0 or host, Port.L: True}
    # in port -> outputs (an input on side P carries packets travelling away from side P)
    reach = {
        Port.L: (Port.N, Port.S, Port.E, Port.W, Port.L),
        Port.W: (Port.N, Port.S, Port.E, Port.L) + ((Port.W,) if host else ()),
        Port.E: (Port.N, Port.S, Port.W, Port.L),
        Port.N: (Port.S, Port.L),
        Port.S: (Port.N, Port.L) + ((Port.W,) if host else ()),
    }
    turns = {}
    for out in Port:
        if exists[out]:
            ins = tuple(i for i in Port if exists[i] and out in reach[i])
            if ins:
                turns[out] = ins
    return turns


def flagged_fifo(m, name, width, depth):
    """A ``SyncFIFO`` submodule ``name`` with its ``r_rdy`` / ``w_rdy`` also kept in flip-flops
    (equal to the FIFO's own every cycle, worked out from this cycle's enables): a router's
    arbitration and its upstream neighbour read them without a compare of ``level`` in front.
    Returns ``(fifo, nonempty, nonfull)``."""
    f = m.submodules[name] = SyncFIFO(width=width, depth=depth)
    nonempty = Signal(name=f"{name}_nonempty")
    nonfull = Signal(init=1, name=f"{name}_nonfull")
    do_w, do_r = f.w_en & nonfull, f.r_en & nonempty
    room2 = (f.level <= depth - 2) if depth >= 2 else Const(0)
    m.d.sync += [nonempty.eq(do_w | (f.level >= 2) | (nonempty & ~do_r)),
                 nonfull.eq(do_r | room2 | (nonfull & ~do_w))]
    return f, nonempty, nonfull


def _check_router_args(x, y, rows, cols, data_width, buffer_depth, counter_width, host):
    """The constructor arguments every router micro-architecture shares."""
    _check_int("rows", rows, 1, 64)
    _check_int("cols", cols, 1, 64)
    _check_int("x", x, 0, cols - 1)
    _check_int("y", y, 0, rows - 1)
    _check_int("data_width", data_width, 1)
    _check_int("buffer_depth", buffer_depth, 1, 1024)
    _check_int("counter_width", counter_width, 1, 64)
    if not isinstance(host, bool):
        raise TypeError(f"host must be a bool, not {host!r}")
    if host and (x, y) != (0, 0):
        raise ValueError(f"the host port sits on router (0, 0), not on ({x}, {y})")


class Router(wiring.Component):
    """Five-port wormhole router with XY routing and round-robin output arbitration
    (``noc.router = "wormhole"``, the smallest router).

    Each existing input has a ``buffer_depth``-flit FIFO. The head flit at a FIFO's output
    computes its route (:func:`xy_route` on the flit's ``dst_x``/``dst_y``/``to_host``); each
    free output grants one requesting input round-robin into a register, and then stays
    allocated to it until that input's ``last`` flit has been transferred (wormhole). The grant
    is registered so that the crossbar select, ``valid`` and ``payload`` come from registers
    and the FIFO outputs only (the critical path is route -> arbitration -> grant register, not
    across the link): **two cycles per router** at zero load (grant, then traversal; a flit
    written into an input FIFO at clock edge *t* is written into the next router's FIFO at edge
    *t + 2*), one flit per cycle per port (for ``buffer_depth >= 2``); an output is re-granted
    in the cycle its tail leaves, so packets follow each other without a bubble.

    A flit whose route names an output this input cannot reach (destination outside the mesh,
    or ``to_host`` on a mesh without host port) is dropped and sets :attr:`error`.

    Parameters
    ----------
    x, y : int
        Router coordinates.
    rows, cols : int
        Mesh size (1..64); the coordinate width is :func:`hasp.hw.packet.coord_width`.
    data_width : int
        Flit ``data`` width in bits.
    buffer_depth : int
        Input FIFO depth in flits (>= 1; 1 halves throughput, see ``docs/noc.md``).
    host : bool
        The West port is the host port (only for ``x == y == 0``).
    host_in : bool
        With ``host``: the host injects through the West input. ``False`` (the response
        network, where the host only receives) leaves that input out: no FIFO, no arbitration
        input, ``in_w.ready`` = 0.
    counter_width : int
        Width of the wrap-around flit counters.

    Members
    -------
    in_n, in_s, in_e, in_w, in_l : ``In(stream.Signature(flit_layout(data_width, cw)))``
        Input links (from the neighbour on that side, ``l`` = local core). ``ready`` depends
        only on registers (FIFO not full). Inputs of absent links are ignored (``ready`` = 0).
    out_n, out_s, out_e, out_w, out_l : ``Out(stream.Signature(...))``
        Output links. ``valid``/``payload`` depend combinationally on input FIFO state and
        arbitration registers, never on ``ready``; payload is stable while ``valid`` and not
        ``ready``. Absent links have ``valid`` = 0.
    count_n, count_s, count_e, count_w, count_l : ``Out(counter_width)``
        Flits transferred on each output since reset (registered, wraps).
    error : ``Out(1)``
        Sticky: a flit with an unreachable route was dropped.
    """

    def __init__(self, *, x, y, rows, cols, data_width, buffer_depth, host=False,
                 host_in=True, counter_width=32):
        _check_router_args(x, y, rows, cols, data_width, buffer_depth, counter_width, host)
        if not isinstance(host_in, bool):
            raise TypeError(f"host_in must be a bool, not {host_in!r}")
        self.x, self.y, self.rows, self.cols = x, y, rows, cols
        self.buffer_depth = buffer_depth
        self.host = host
        self.layout = flit_layout(data_width, coord_width(rows, cols))
        self.turns = router_turns(x, y, rows, cols, host)
        if host and not host_in:
            self.turns = {o: tuple(i for i in srcs if i != Port.W)
                          for o, srcs in self.turns.items() if srcs != (Port.W,)}
        sig = {}
        for p in Port:
            sig[f"in_{PORT_NAMES[p]}"] = In(stream.Signature(self.layout))
        for p in Port:
            sig[f"out_{PORT_NAMES[p]}"] = Out(stream.Signature(self.layout))
        for p in Port:
            sig[f"count_{PORT_NAMES[p]}"] = Out(counter_width)
        sig["error"] = Out(1)
        super().__init__(sig)

    @property
    def inputs(self):
        """Input interfaces indexed by :class:`Port`."""
        return tuple(getattr(self, f"in_{PORT_NAMES[p]}") for p in Port)

    @property
    def outputs(self):
        """Output interfaces indexed by :class:`Port`."""
        return tuple(getattr(self, f"out_{PORT_NAMES[p]}") for p in Port)

    @property
    def counts(self):
        """Flit counters indexed by :class:`Port`."""
        return tuple(getattr(self, f"count_{PORT_NAMES[p]}") for p in Port)

    def elaborate(self, platform):
        m = Module()
        x, y = self.x, self.y
        ins = sorted({i for srcs in self.turns.values() for i in srcs})
        reach = {i: [o for o, srcs in self.turns.items() if i in srcs] for i in ins}

        head, valid, route, r_en, r_en_sig = {}, {}, {}, {}, {}
        for i in ins:
            n = PORT_NAMES[i]
            fifo, nonempty, nonfull = flagged_fifo(m, f"fifo_{n}", self.layout.size,
                                                   self.buffer_depth)
            port = self.inputs[i]
            m.d.comb += [fifo.w_data.eq(port.payload), fifo.w_en.eq(port.valid),
                         port.ready.eq(nonfull)]
            head[i] = fifo.r_data
            valid[i] = nonempty
            r_en_sig[i] = fifo.r_en
            flit = data.View(self.layout, fifo.r_data)

            tx = Mux(flit.to_host, 0, flit.dst_x)
            ty = Mux(flit.to_host, 0, flit.dst_y)
            go_e, go_w = Signal(name=f"{n}_go_e"), Signal(name=f"{n}_go_w")
            go_s, go_n = Signal(name=f"{n}_go_s"), Signal(name=f"{n}_go_n")
            m.d.comb += [go_e.eq(tx > x), go_w.eq(tx < x),
                         go_s.eq(~go_e & ~go_w & (ty > y)), go_n.eq(~go_e & ~go_w & (ty < y))]
            here = ~(go_e | go_w | go_s | go_n)
            route[i] = {Port.N: go_n, Port.S: go_s, Port.E: go_e,
                        Port.W: go_w | (here & flit.to_host), Port.L: here & ~flit.to_host}

        busy, owner = {}, {}
        for o, srcs in self.turns.items():
            n = PORT_NAMES[o]
            busy[o] = Signal(name=f"{n}_busy")
            owner[o] = Signal(range(len(srcs)), name=f"{n}_owner")

        # An input that holds an output sends every flit there until its tail; an input that
        # holds none requests the output its head flit's route names. The grant is registered:
        # the crossbar select and ``valid`` come from registers only (timing), and a head
        # flit leaves the cycle after its grant.
        req, owns_any = {}, {}
        for i in ins:
            n = PORT_NAMES[i]
            owns = [busy[o] & (owner[o] == self.turns[o].index(i)) for o in reach[i]]
            owns_any[i] = Signal(name=f"{n}_owns")
            m.d.comb += owns_any[i].eq(Cat(*owns).any())
            for o in reach[i]:
                req[i, o] = Signal(name=f"{n}_req_{PORT_NAMES[o]}")
                m.d.comb += req[i, o].eq(valid[i] & ~owns_any[i] & route[i][o])
            illegal = Signal(name=f"{n}_illegal")
            m.d.comb += illegal.eq(valid[i] & ~owns_any[i] &
                                   ~Cat(*(route[i][o] for o in reach[i])).any())
            with m.If(illegal):
                m.d.sync += self.error.eq(1)
            r_en[i] = [illegal]

        for o, srcs in self.turns.items():
            n = PORT_NAMES[o]
            k = len(srcs)
            port = self.outputs[o]
            reqv = Signal(k, name=f"{n}_reqv")
            m.d.comb += reqv.eq(Cat(*(req[i, o] for i in srcs)))
            pick = Signal(range(k), name=f"{n}_pick")
            if k > 1:
                ptr = Signal(range(k), name=f"{n}_ptr")
                with m.Switch(ptr):
                    for s in range(k):
                        with m.Case(s):
                            # later assignments win: the highest priority goes last
                            for j in reversed([(s + d) % k for d in range(k)]):
                                with m.If(reqv[j]):
                                    m.d.comb += pick.eq(j)
            ovalid = Signal(name=f"{n}_ovalid")
            m.d.comb += ovalid.eq(busy[o] & Cat(*(valid[i] for i in srcs)).bit_select(owner[o], 1))
            m.d.comb += [
                port.valid.eq(ovalid),
                port.payload.eq(Array(head[i] for i in srcs)[owner[o]]),
            ]
            xfer = ovalid & port.ready
            for j, i in enumerate(srcs):
                r_en[i].append(busy[o] & (owner[o] == j) & xfer)
            done = xfer & port.payload.last
            with m.If(done):
                m.d.sync += busy[o].eq(0)
            # the output is free this cycle or after this cycle's tail: grant the next packet
            with m.If((~busy[o] | done) & reqv.any()):
                m.d.sync += [busy[o].eq(1), owner[o].eq(pick)]
                if k > 1:
                    m.d.sync += ptr.eq(Mux(pick == k - 1, 0, pick + 1))
            with m.If(xfer):
                m.d.sync += self.counts[o].eq(self.counts[o] + 1)

        for i in ins:
            m.d.comb += r_en_sig[i].eq(Cat(*r_en[i]).any())
        return m


def make_router(cfg, x, y, *, counter_width=32, host_in=True):
    """The router at ``(x, y)`` of a mesh of ``cfg``: :class:`Router`, :class:`LaneRouter` or
    :class:`VcRouter` by ``cfg.noc.router``; the host port on ``(0, 0)``. ``host_in=False``
    leaves the host's input out of the wormhole router (the lane and VC routers keep it)."""
    fmt = PacketFormat.from_config(cfg)
    args = dict(x=x, y=y, rows=fmt.rows, cols=fmt.cols, data_width=fmt.data_width,
                buffer_depth=cfg.noc.buffer_depth, host=(x, y) == (0, 0),
                counter_width=counter_width)
    if cfg.noc.router == "lanes":
        return LaneRouter(mc_depth=cfg.noc.mc_depth, address_width=fmt.address_width, **args)
    if cfg.noc.router == "vc":
        return VcRouter(vcs=cfg.noc.vcs, address_width=fmt.address_width, **args)
    return Router(host_in=host_in, **args)


class Mesh(wiring.Component):
    """One physical ``rows x cols`` mesh of :class:`Router` s with a host port.

    Parameters
    ----------
    cfg : hasp.config.ChipConfig
        Uses ``mesh.rows``, ``mesh.cols``, ``noc.flit_width``, ``noc.buffer_depth`` and the
        packet format widths (:class:`hasp.hw.packet.PacketFormat`).
    counter_width : int
        Width of the per-link flit counters.
    host_in : bool
        ``False``: the host only receives on this mesh; a wormhole mesh then has no host input
        (:attr:`host_in` is ignored, ``ready`` = 0). :class:`NoC` builds its response network
        so: an input FIFO that never fills is area, and its level was a routed critical path.

    Members
    -------
    local_in : ``In(stream.Signature(flit)).array(cores)``
        ``local_in[i]``: core ``i = y * cols + x`` injects flits into router ``(x, y)``.
        ``ready`` is registered (FIFO not full): at most one flit per cycle is accepted.
    local_out : ``Out(stream.Signature(flit)).array(cores)``
        ``local_out[i]``: flits ejected to core ``i``; packets arrive contiguous (head to tail,
        possibly with idle cycles in between). ``valid`` never depends on ``ready``.
    host_in : ``In(stream.Signature(flit))``
        Host injection, the West input of router ``(0, 0)``.
    host_out : ``Out(stream.Signature(flit))``
        Flits of packets with ``to_host`` set, the West output of router ``(0, 0)``.
    flit_count : ``Out(counter_width).array(cores, 5)``
        ``flit_count[i][p]``: flits sent on output port ``p`` (:class:`Port`) of router ``i``
        since reset; ``p = Port.L`` counts ejections to core ``i``, ``flit_count[0][Port.W]``
        counts flits to the host. Registered, wraps around.
    error : ``Out(1)``
        Sticky: some router dropped a flit whose destination is outside the mesh.
    """

    def __init__(self, cfg, *, counter_width=32, host_in=True):
        fmt = self.format = PacketFormat.from_config(cfg)
        _check_int("counter_width", counter_width, 1, 64)
        self.rows, self.cols = fmt.rows, fmt.cols
        self.routers = {}
        self.kind = cfg.noc.router
        for y in range(fmt.rows):
            for x in range(fmt.cols):
                self.routers[x, y] = make_router(cfg, x, y, counter_width=counter_width,
                                                 host_in=host_in)
        flit = stream.Signature(fmt.flit)
        super().__init__({
            "local_in": In(flit).array(fmt.cores),
            "local_out": Out(flit).array(fmt.cores),
            "host_in": In(flit),
            "host_out": Out(flit),
            "flit_count": Out(counter_width).array(fmt.cores, len(Port)),
            "error": Out(1),
        })

    def router(self, i: int) -> Router:
        """Router of core ``i``."""
        return self.routers[i % self.cols, i // self.cols]

    def elaborate(self, platform):
        m = Module()
        cols = self.cols
        for (x, y), r in self.routers.items():
            m.submodules[f"router_{x}_{y}"] = r
        for (x, y), r in self.routers.items():
            if (x + 1, y) in self.routers:
                east = self.routers[x + 1, y]
                wiring.connect(m, r.out_e, east.in_w)
                wiring.connect(m, east.out_w, r.in_e)
            if (x, y + 1) in self.routers:
                south = self.routers[x, y + 1]
                wiring.connect(m, r.out_s, south.in_n)
                wiring.connect(m, south.out_n, r.in_s)
            i = y * cols + x
            wiring.connect(m, wiring.flipped(self.local_in[i]), r.in_l)
            wiring.connect(m, r.out_l, wiring.flipped(self.local_out[i]))
            for p in Port:
                m.d.comb += self.flit_count[i][p].eq(r.counts[p])
        host = self.routers[0, 0]
        wiring.connect(m, wiring.flipped(self.host_in), host.in_w)
        wiring.connect(m, host.out_w, wiring.flipped(self.host_out))
        m.d.comb += self.error.eq(Cat(*(r.error for r in self.routers.values())).any())
        return m


class NoC(wiring.Component):
    """The chip NoC: two physically separate :class:`Mesh` es, one per message class.

    The request network carries every packet type except ``READ_RESP``; the response network
    carries ``READ_RESP`` (:func:`hasp.hw.packet.packet_class`). Injecting a packet on the wrong
    network is not detected. See ``docs/noc.md`` for why this is deadlock-free.

    Parameters
    ----------
    cfg : hasp.config.ChipConfig
    counter_width : int
        Width of the per-link flit counters.

    Members
    -------
    req_in, resp_in : ``In(stream.Signature(flit)).array(cores)``
        Per-core injection into the request / response network (as :attr:`Mesh.local_in`).
    req_out, resp_out : ``Out(stream.Signature(flit)).array(cores)``
        Per-core ejection from the request / response network (as :attr:`Mesh.local_out`).
    host_req_in, host_resp_in : ``In(stream.Signature(flit))``
        Host injection into the request / response network; the host sends no responses, so
        ``host_resp_in`` is ignored (``ready`` = 0) with wormhole routers (``Mesh(host_in=False)``).
    host_req_out, host_resp_out : ``Out(stream.Signature(flit))``
        Packets with ``to_host`` set, from the request / response network.
    req_flit_count, resp_flit_count : ``Out(counter_width).array(cores, 5)``
        Per-link flit counters of each network (as :attr:`Mesh.flit_count`).
    error : ``Out(1)``
        Sticky OR of both meshes' ``error``.
    """

    def __init__(self, cfg, *, counter_width=32):
        PacketFormat.from_config(cfg)
        _check_int("counter_width", counter_width, 1, 64)
        self.req = Mesh(cfg, counter_width=counter_width)
        self.resp = Mesh(cfg, counter_width=counter_width, host_in=False)
        self.format = self.req.format
        flit = stream.Signature(self.format.flit)
        cores = self.format.cores
        super().__init__({
            "req_in": In(flit).array(cores),
            "req_out": Out(flit).array(cores),
            "resp_in": In(flit).array(cores),
            "resp_out": Out(flit).array(cores),
            "host_req_in": In(flit),
            "host_req_out": Out(flit),
            "host_resp_in": In(flit),
            "host_resp_out": Out(flit),
            "req_flit_count": Out(counter_width).array(cores, len(Port)),
            "resp_flit_count": Out(counter_width).array(cores, len(Port)),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.req = self.req
        m.submodules.resp = self.resp
        for net, name in ((self.req, "req"), (self.resp, "resp")):
            for i in range(self.format.cores):
                wiring.connect(m, wiring.flipped(getattr(self, f"{name}_in")[i]), net.local_in[i])
                wiring.connect(m, net.local_out[i], wiring.flipped(getattr(self, f"{name}_out")[i]))
                for p in Port:
                    m.d.comb += getattr(self, f"{name}_flit_count")[i][p].eq(net.flit_count[i][p])
            wiring.connect(m, wiring.flipped(getattr(self, f"host_{name}_in")), net.host_in)
            wiring.connect(m, net.host_out, wiring.flipped(getattr(self, f"host_{name}_out")))
        m.d.comb += self.error.eq(self.req.error | self.resp.error)
        return m


# ------------------------------------------------------------------------------------------
# Lane router (noc.router = "lanes")

#: Lane index of the multicast lane (lanes 0..4 are the unicast lanes, indexed by the output
#: :class:`Port` the flits take at the router that stores them).
LANE_MC = 5
N_LANES = 6
#: Depth of the ejection buffers of a lane router (local port and host port).
EJECT_DEPTH = 4
STEP = {Port.N: (0, -1), Port.S: (0, 1), Port.E: (1, 0), Port.W: (-1, 0)}
OPPOSITE = {Port.N: Port.S, Port.S: Port.N, Port.E: Port.W, Port.W: Port.E}


def link_signature(layout, lanes=N_LANES) -> wiring.Signature:
    """Router-to-router link of the credit-based routers (from the sender's side).

    ``valid``/``payload``/``lane`` (out): a flit and the lane of the receiving input it is
    written into (lane router: the output it takes at the receiver, or :data:`LANE_MC`; VC
    router: the virtual channel); there is no ``ready``: the sender holds one credit per free
    slot of every lane of the receiver. ``credit`` (in): bit ``l`` pulses (registered) when the
    receiver frees a slot of lane ``l``. ``lanes``: lanes per receiving input.
    """
    return wiring.Signature({"valid": Out(1), "payload": Out(layout),
                             "lane": Out(max(1, (lanes - 1).bit_length())),
                             "credit": In(lanes)})


def _route_at(rx, ry, f):
    """Unicast XY route (:func:`xy_route`) of flit view ``f`` at router ``(rx, ry)``, in
    hardware: dict Port -> bit, one-hot."""
    tx = Mux(f.to_host, 0, f.dst_x)
    ty = Mux(f.to_host, 0, f.dst_y)
    e, w = tx > rx, tx < rx
    s_, n_ = ~e & ~w & (ty > ry), ~e & ~w & (ty < ry)
    here = ~(e | w | s_ | n_)
    return {Port.N: n_, Port.S: s_, Port.E: e, Port.W: w | (here & f.to_host),
            Port.L: here & ~f.to_host}


def mc_route(x: int, y: int, came: Port, x0: int, y0: int, x1: int, y1: int) -> set:
    """Outputs a multicast packet for the rectangle ``[x0, x1] x [y0, y1]`` takes at router
    ``(x, y)`` when it arrived on input ``came`` (Python model of the hardware).

    Dimension-ordered (XY) tree: along the source row towards the rectangle's columns (East
    and/or West), in each column of the rectangle a branch along the column towards its rows
    (South and/or North), ejecting at every router inside the rectangle. Every branch of the
    tree is an XY route, so the tree makes only the turns unicast XY routing makes.
    """
    outs = set()
    x_phase = came in (Port.L, Port.W, Port.E)
    if came in (Port.L, Port.W) and x < x1:
        outs.add(Port.E)
    if came in (Port.L, Port.E) and x > x0:
        outs.add(Port.W)
    in_x = x0 <= x <= x1
    if x_phase and in_x or came == Port.N:
        if y < y1:
            outs.add(Port.S)
    if x_phase and in_x or came == Port.S:
        if y > y0:
            outs.add(Port.N)
    if in_x and y0 <= y <= y1:
        outs.add(Port.L)
    return outs


def _rr(m, reqs, name):
    """Round-robin arbiter: one-hot grants of ``reqs`` and ``advance(cond)`` that moves the
    priority past the winner when ``cond`` holds."""
    k = len(reqs)
    grant = [Signal(name=f"{name}_g{j}") for j in range(k)]
    if k == 1:
        m.d.comb += grant[0].eq(reqs[0])
        return grant, lambda cond, stay=None: None
    ptr = Signal(range(k), name=f"{name}_ptr")
    with m.Switch(ptr):
        for s in range(k):
            with m.Case(s):
                order = [(s + d) % k for d in range(k)]
                for idx, j in enumerate(order):
                    before = Cat(*(reqs[q] for q in order[:idx]))
                    m.d.comb += grant[j].eq(reqs[j] & ~before.any() if idx else reqs[j])

    def advance(cond, stay=None):
        """Move the priority past the winner when ``cond`` holds, or keep it on the winner
        when ``stay`` also holds (winner-take-all: a packet keeps its grant until its tail)."""
        for j in range(k):
            with m.If(cond & grant[j]):
                if stay is None:
                    m.d.sync += ptr.eq((j + 1) % k)
                else:
                    m.d.sync += ptr.eq(Mux(stay, j, (j + 1) % k))
    return grant, advance


class LaneRouter(wiring.Component):
    """Five-port router with input buffers split into lanes by output port, credit-based flow
    control, separable switch allocation and multicast (``noc.router = "lanes"``).

    Each input's buffer (one LUT-RAM) is split into one lane per output that input can reach
    (``buffer_depth`` flits each) plus a multicast lane (``mc_depth`` flits). A flit is written
    into the lane of the output it takes *at this router*; the upstream router computed it
    (lookahead routing, the link carries the lane), so a packet blocked at one output never
    blocks packets behind it that go elsewhere at this router. Lanes need no VC allocation:
    the lane is a function of the route, and XY routing keeps the network deadlock-free
    (``docs/noc.md``). Measured, this does not raise uniform-random saturation (0.54 of the
    bound on 4x4): packets that turn the same way at the next router share one lane there and
    block in chains; ``docs/noc.md`` has the analysis (VC allocation would fix it).

    Pipeline, two cycles per router: *switch allocation* (registers only: lane occupancy,
    credits, lane ownership) picks at most one lane per input (round-robin, the multicast lane
    first) and one input per output (round-robin, multicast first) and registers the grant;
    *switch traversal* reads the granted flit from the input RAM and drives it through the
    crossbar onto the link, where the next router writes it at the end of the cycle. A
    downstream lane is owned by one packet from head to tail (flits of different packets
    interleave on a link only into different lanes).

    Multicast: a head flit whose header has ``mc_dx`` or ``mc_dy`` non-zero is a packet for the
    rectangle ``[dst_x, dst_x + mc_dx] x [dst_y, dst_y + mc_dy]``, routed along the XY tree of
    :func:`mc_route` and replicated in the crossbar. It travels in the multicast lanes with a
    virtual-cut-through rule: its head is allocated only when the whole packet is in the lane
    and every branch's downstream multicast lane is empty and free, and it then has priority,
    so a multicast packet never holds a channel while waiting for another packet. Multicast
    packets must not be longer than ``mc_depth`` flits (a longer one sets ``error`` and stalls
    its lane).

    Local and host ports are ``amaranth.lib.stream`` interfaces as for :class:`Router`; the
    local input's ``ready`` depends on the offered flit (the space in its lane), ejection goes
    through a :data:`EJECT_DEPTH`-flit FIFO. Router-to-router ports use
    :func:`link_signature`.

    Parameters are those of :class:`Router` plus ``mc_depth`` (multicast lane depth) and
    ``address_width`` (of the header, to find ``mc_dx``/``mc_dy``; 20 for every config).
    """

    def __init__(self, *, x, y, rows, cols, data_width, buffer_depth, host=False,
                 counter_width=32, mc_depth=8, address_width=20):
        _check_router_args(x, y, rows, cols, data_width, buffer_depth, counter_width, host)
        _check_int("mc_depth", mc_depth, 2, 1024)
        self.x, self.y, self.rows, self.cols = x, y, rows, cols
        self.buffer_depth, self.mc_depth = buffer_depth, mc_depth
        self.host = host
        cw = coord_width(rows, cols)
        self.layout = flit_layout(data_width, cw)
        self.header = header_layout(cw, address_width)
        if self.header.size > data_width:
            raise ValueError(f"the header does not fit data_width {data_width}")
        self.turns = router_turns(x, y, rows, cols, host)
        self.stream_ports = {Port.L} | ({Port.W} if host else set())
        sig = {}
        for p in Port:
            n = PORT_NAMES[p]
            if p in self.stream_ports:
                sig[f"in_{n}"] = In(stream.Signature(self.layout))
                sig[f"out_{n}"] = Out(stream.Signature(self.layout))
            else:
                sig[f"in_{n}"] = In(link_signature(self.layout, self.link_lanes))
                sig[f"out_{n}"] = Out(link_signature(self.layout, self.link_lanes))
        for p in Port:
            sig[f"count_{PORT_NAMES[p]}"] = Out(counter_width)
        sig["error"] = Out(1)
        super().__init__(sig)

    #: lanes per router-to-router link (:func:`link_signature`)
    link_lanes = N_LANES

    inputs = Router.inputs
    outputs = Router.outputs
    counts = Router.counts

    def _port_sets(self):
        """Inputs, outputs, the outputs each input reaches, and the stream (ejection) outputs."""
        turns = self.turns
        ins = sorted({i for srcs in turns.values() for i in srcs})
        outs = list(turns)
        reach = {i: [o for o in outs if i in turns[o]] for i in ins}
        return ins, outs, reach, {o for o in outs if o in self.stream_ports}

    def _lanes_of(self, x, y, i):
        """Lanes of input ``i`` of router ``(x, y)`` of a mesh (host port at (0, 0)): its
        reachable outputs + multicast."""
        turns = router_turns(x, y, self.rows, self.cols, (x, y) == (0, 0))
        return [o for o, srcs in turns.items() if i in srcs] + [LANE_MC]

    def elaborate(self, platform):
        m = Module()
        x, y, rows, cols = self.x, self.y, self.rows, self.cols
        L = self.layout
        turns = self.turns
        ins, outs, reach, eject = self._port_sets()
        D, MD = self.buffer_depth, self.mc_depth
        hdr = self.header

        def depth(lane):
            return MD if lane == LANE_MC else D

        # lanes of the receiving input of each neighbour (for the credit counters)
        nbr_lanes = {}
        for o in outs:
            if o in eject:
                continue
            nx, ny = x + STEP[o][0], y + STEP[o][1]
            nbr_lanes[o] = self._lanes_of(nx, ny, OPPOSITE[o])

        route_at = _route_at

        def mc_mask(f, came):
            """Multicast outputs at this router (dict Port -> bit) of head flit view ``f``."""
            h = data.View(hdr, f.data[:hdr.size])
            x0, y0 = f.dst_x, f.dst_y
            x1 = (x0 + h.mc_dx)[:len(x0) + 1]
            y1 = (y0 + h.mc_dy)[:len(y0) + 1]
            x_phase = came in (Port.L, Port.W, Port.E)
            in_x = (x0 <= x) & (x1 >= x)
            res = {o: Const(0, 1) for o in Port}
            if came in (Port.L, Port.W):
                res[Port.E] = x1 > x
            if came in (Port.L, Port.E):
                res[Port.W] = x0 < x
            if x_phase:
                res[Port.S] = in_x & (y1 > y)
                res[Port.N] = in_x & (y0 < y)
            elif came == Port.N:
                res[Port.S] = y1 > y
            else:
                res[Port.N] = y0 < y
            res[Port.L] = in_x & (y0 <= y) & (y1 >= y)
            return res

        def is_mc(f):
            h = data.View(hdr, f.data[:hdr.size])
            return (h.mc_dx != 0) | (h.mc_dy != 0)

        # ---------------- input side: lanes ----------------
        lanes = {}          # i -> list of lane ids
        bases = {}          # (i, l) -> first RAM address of the lane
        lane_st = {}        # (i, l) -> dict of signals
        rdata, rd_addr = {}, {}
        credit_pulse = {}
        for i in ins:
            n = PORT_NAMES[i]
            lanes[i] = reach[i] + [LANE_MC]
            base, total = {}, 0
            for l in lanes[i]:
                base[l] = bases[i, l] = total
                total += depth(l)
            mem = m.submodules[f"buf_{n}"] = Memory(shape=unsigned(L.size), depth=total, init=[])
            rp = mem.read_port(domain="comb")
            wp = mem.write_port()
            rd_addr[i] = Signal(range(total), name=f"{n}_rd_addr")
            m.d.comb += rp.addr.eq(rd_addr[i])
            rdata[i] = rp.data

            port = self.inputs[i]
            wflit = data.View(L, port.payload)
            w_lane = Signal(3, name=f"{n}_w_lane")
            w_en = Signal(name=f"{n}_w_en")
            for l in lanes[i]:
                ln = f"{n}_{l}"
                st = lane_st[i, l] = {
                    "cnt": Signal(range(depth(l) + 1), name=f"{ln}_cnt"),
                    "wptr": Signal(range(depth(l)), name=f"{ln}_wptr"),
                    "rptr": Signal(range(depth(l)), name=f"{ln}_rptr"),
                    "last": [Signal(name=f"{ln}_last{k}") for k in range(depth(l))],
                    "info": [Signal(5, name=f"{ln}_info{k}") for k in range(depth(l))],
                    "in_pkt": Signal(name=f"{ln}_in_pkt"),
                    "pop": Signal(name=f"{ln}_pop"),
                    "push": Signal(name=f"{ln}_push"),
                }
                if l == LANE_MC:
                    st["tails"] = Signal(range(depth(l) + 1), name=f"{ln}_tails")
                    st["mask"] = Signal(5, name=f"{ln}_mask")
            # what the incoming flit stores: its lane's info (next lane or multicast mask)
            if i in self.stream_ports:
                # stream input: the lane is computed here from the head, kept for the body
                in_pkt = Signal(name=f"{n}_s_in_pkt")
                cur_lane = Signal(3, name=f"{n}_s_lane")
                cur_drop = Signal(name=f"{n}_s_drop")
                r = route_at(x, y, wflit)
                mc = is_mc(wflit)
                h = data.View(hdr, wflit.data[:hdr.size])
                inside = (wflit.dst_x < cols) & (wflit.dst_y < rows)
                mc_ok = (~wflit.to_host & ((wflit.dst_x + h.mc_dx) < cols) &
                         ((wflit.dst_y + h.mc_dy) < rows))
                hlane = Signal(3, name=f"{n}_h_lane")
                hok = Signal(name=f"{n}_h_ok")
                m.d.comb += hlane.eq(LANE_MC)
                uni_ok = []
                for o in reach[i]:
                    with m.If(~mc & r[o]):
                        m.d.comb += hlane.eq(o)
                    uni_ok.append(r[o])
                m.d.comb += hok.eq(Mux(mc, mc_ok, Cat(*uni_ok).any() &
                                       (wflit.to_host | inside)))
                lane = Signal(3, name=f"{n}_lane")
                drop = Signal(name=f"{n}_drop")
                m.d.comb += [lane.eq(Mux(in_pkt, cur_lane, hlane)),
                             drop.eq(Mux(in_pkt, cur_drop, ~hok))]
                space = Signal(name=f"{n}_space")
                with m.Switch(lane):
                    for l in lanes[i]:
                        with m.Case(l):
                            m.d.comb += space.eq(lane_st[i, l]["cnt"] != depth(l))
                m.d.comb += port.ready.eq(drop | space)
                acc = port.valid & port.ready
                with m.If(acc):
                    m.d.sync += in_pkt.eq(~wflit.last)
                    with m.If(~in_pkt):
                        m.d.sync += [cur_lane.eq(hlane), cur_drop.eq(~hok)]
                    with m.If(drop):
                        m.d.sync += self.error.eq(1)
                m.d.comb += [w_lane.eq(lane), w_en.eq(acc & ~drop)]
            else:
                m.d.comb += [w_lane.eq(port.lane), w_en.eq(port.valid)]
                credit_pulse[i] = Signal(N_LANES, name=f"{n}_credit")
                m.d.comb += port.credit.eq(credit_pulse[i])
            # info per lane for the flit being written
            mcm = mc_mask(wflit, i)
            mc_info = Cat(*(mcm[o] if o in reach[i] else Const(0, 1) for o in Port))
            addr_w = Signal(range(total), name=f"{n}_wr_addr")
            m.d.comb += [wp.addr.eq(addr_w), wp.data.eq(port.payload), wp.en.eq(w_en)]
            for l in lanes[i]:
                st = lane_st[i, l]
                if l == LANE_MC:
                    info = mc_info
                elif l in self.stream_ports or l not in nbr_lanes:
                    info = Const(0, 5)
                else:
                    nx, ny = x + STEP[l][0], y + STEP[l][1]
                    rr = route_at(nx, ny, wflit)
                    info = Signal(3, name=f"{n}_{l}_nxt")
                    for o in Port:
                        with m.If(rr[o]):
                            m.d.comb += info.eq(o)
                with m.If(w_lane == l):
                    m.d.comb += addr_w.eq(base[l] + st["wptr"])
                m.d.comb += st["push"].eq(w_en & (w_lane == l))
                with m.If(st["push"]):
                    m.d.sync += st["wptr"].eq(Mux(st["wptr"] == depth(l) - 1, 0, st["wptr"] + 1))
                    for k in range(depth(l)):
                        with m.If(st["wptr"] == k):
                            m.d.sync += [st["last"][k].eq(wflit.last), st["info"][k].eq(info)]
                m.d.sync += st["cnt"].eq(st["cnt"] + st["push"] - st["pop"])
                with m.If(st["pop"]):
                    m.d.sync += st["rptr"].eq(Mux(st["rptr"] == depth(l) - 1, 0, st["rptr"] + 1))
                if l == LANE_MC:
                    tail_in = st["push"] & wflit.last
                    f_last = Array(st["last"])[st["rptr"]]
                    tail_out = st["pop"] & f_last
                    m.d.sync += st["tails"].eq(st["tails"] + tail_in - tail_out)
                    with m.If((st["cnt"] == depth(l)) & (st["tails"] == 0)):
                        m.d.sync += self.error.eq(1)        # multicast packet too long
            if i in credit_pulse:
                m.d.sync += credit_pulse[i].eq(
                    Cat(*(lane_st[i, l]["pop"] if l in lanes[i] else Const(0, 1)
                          for l in range(N_LANES))))

        # ---------------- output side state: credits and lane ownership ----------------
        cred, busy = {}, {}
        for o in outs:
            n = PORT_NAMES[o]
            if o in eject:
                cred[o] = {0: Signal(range(EJECT_DEPTH + 1), name=f"{n}_ecred",
                                     init=EJECT_DEPTH)}
                busy[o] = {0: Signal(name=f"{n}_ebusy")}
            else:
                cred[o] = {d: Signal(range(depth(d) + 1), name=f"{n}_cred{d}", init=depth(d))
                           for d in nbr_lanes[o]}
                busy[o] = {d: Signal(name=f"{n}_busy{d}") for d in nbr_lanes[o]}

        def cred_ok(o, d_sig):
            """Output o has a credit for downstream lane d_sig (a signal or 0 for ejection)."""
            if o in eject:
                return cred[o][0] != 0, ~busy[o][0]
            v = Cat(*((cred[o][d] != 0) if d in cred[o] else Const(0, 1) for d in range(N_LANES)))
            b = Cat(*(busy[o][d] if d in busy[o] else Const(1, 1) for d in range(N_LANES)))
            return v.bit_select(d_sig, 1), ~b.bit_select(d_sig, 1)

        # ---------------- switch allocation ----------------
        elig = {}          # (i, l) -> eligible signal (unicast lanes)
        front = {}
        mc_head_ok, mc_body_ok, mc_cur_mask = {}, {}, {}
        for i in ins:
            n = PORT_NAMES[i]
            for l in lanes[i]:
                st = lane_st[i, l]
                f_last = Signal(name=f"{n}_{l}_f_last")
                f_info = Signal(5, name=f"{n}_{l}_f_info")
                m.d.comb += [f_last.eq(Array(st["last"])[st["rptr"]]),
                             f_info.eq(Array(st["info"])[st["rptr"]])]
                front[i, l] = (f_last, f_info)
                if l == LANE_MC:
                    mask = Signal(5, name=f"{n}_mc_mask")
                    m.d.comb += mask.eq(Mux(st["in_pkt"], st["mask"], f_info))
                    mc_cur_mask[i] = mask
                    body, headok = [], []
                    for o in reach[i]:
                        if o in eject:
                            c, free = cred[o][0] != 0, ~busy[o][0]
                            full = free
                        else:
                            c = cred[o][LANE_MC] != 0
                            full = ~busy[o][LANE_MC] & (cred[o][LANE_MC] == MD)
                        body.append(~mask[o] | c)
                        headok.append(~mask[o] | (c & full))
                    mc_body_ok[i] = Signal(name=f"{n}_mc_body_ok")
                    mc_head_ok[i] = Signal(name=f"{n}_mc_head_ok")
                    m.d.comb += [
                        mc_body_ok[i].eq(st["in_pkt"] & (st["cnt"] != 0) & Cat(*body).all()),
                        mc_head_ok[i].eq(~st["in_pkt"] & (st["tails"] != 0) &
                                         Cat(*headok).all() & (mask != 0)),
                    ]
                else:
                    c, free = cred_ok(l, f_info if l not in eject else 0)
                    e = elig[i, l] = Signal(name=f"{n}_{l}_elig")
                    m.d.comb += e.eq((st["cnt"] != 0) & c & (st["in_pkt"] | free))

        # one multicast head per router per cycle
        mc_ins = list(ins)
        mc_pick, mc_adv = _rr(m, [mc_head_ok[i] for i in mc_ins], "mc_pick")
        mc_req = {}
        for j, i in enumerate(mc_ins):
            mc_req[i] = Signal(name=f"{PORT_NAMES[i]}_mc_req")
            m.d.comb += mc_req[i].eq(mc_body_ok[i] | mc_pick[j])

        # input arbitration: the multicast lane first, else round-robin over unicast lanes
        ichoice = {}       # (i, l) -> chosen
        in_adv = {}
        for i in ins:
            n = PORT_NAMES[i]
            ul = [l for l in lanes[i] if l != LANE_MC]
            g, adv = _rr(m, [elig[i, l] for l in ul], f"{n}_in")
            in_adv[i] = (g, adv)
            for l, gl in zip(ul, g):
                ichoice[i, l] = Signal(name=f"{n}_{l}_ich")
                m.d.comb += ichoice[i, l].eq(gl & ~mc_req[i])
            ichoice[i, LANE_MC] = mc_req[i]

        # output arbitration: a multicast request first (at most one per output), else RR
        ogrant = {}        # (o, i) -> grant
        for o in outs:
            n = PORT_NAMES[o]
            srcs = turns[o]
            mcr = [mc_req[i] & mc_cur_mask[i][o] for i in srcs]
            any_mc = Cat(*mcr).any()
            g, adv = _rr(m, [ichoice[i, o] for i in srcs], f"{n}_out")
            for i, gi, mi in zip(srcs, g, mcr):
                ogrant[o, i] = Signal(name=f"{n}_grant_{PORT_NAMES[i]}")
                m.d.comb += ogrant[o, i].eq(mi | (gi & ~any_mc))
            adv(~any_mc)

        # pops, pointer updates, credits, ownership, registered traversal
        st_valid = {o: Signal(name=f"{PORT_NAMES[o]}_st_valid") for o in outs}
        st_sel = {o: Signal(range(len(turns[o])), name=f"{PORT_NAMES[o]}_st_sel") for o in outs}
        st_lane = {o: Signal(3, name=f"{PORT_NAMES[o]}_st_lane") for o in outs}
        dec = {(o, d): Signal(name=f"{PORT_NAMES[o]}_dec{d}") for o in outs for d in cred[o]}
        for i in ins:
            n = PORT_NAMES[i]
            g, adv = in_adv[i]
            popped_uni = []
            for l in lanes[i]:
                st = lane_st[i, l]
                f_last, f_info = front[i, l]
                if l == LANE_MC:
                    pop = mc_req[i]         # granted at every output of its mask
                    with m.If(pop & ~st["in_pkt"]):
                        m.d.sync += st["mask"].eq(f_info)
                else:
                    pop = ichoice[i, l] & ogrant[l, i]
                    popped_uni.append(pop)
                m.d.comb += st["pop"].eq(pop)
                with m.If(pop):
                    m.d.sync += [st["in_pkt"].eq(~f_last),
                                 rd_addr[i].eq(bases[i, l] + st["rptr"])]
            adv(Cat(*popped_uni).any() & ~mc_req[i]) if popped_uni else None

        for o in outs:
            srcs = turns[o]
            granted = Cat(*(ogrant[o, i] for i in srcs)).any()
            m.d.sync += st_valid[o].eq(granted)
            for j, i in enumerate(srcs):
                with m.If(ogrant[o, i]):
                    m.d.sync += st_sel[o].eq(j)
            # the flit granted at o: its last bit and downstream lane
            g_last = Signal(name=f"{PORT_NAMES[o]}_g_last")
            g_lane = Signal(3, name=f"{PORT_NAMES[o]}_g_lane")
            for i in srcs:
                with m.If(ogrant[o, i]):
                    with m.If(mc_req[i] & mc_cur_mask[i][o]):
                        m.d.comb += [g_last.eq(front[i, LANE_MC][0]), g_lane.eq(LANE_MC)]
                    with m.Else():
                        m.d.comb += [g_last.eq(front[i, o][0]),
                                     g_lane.eq(0 if o in eject else front[i, o][1][:3])]
            m.d.sync += st_lane[o].eq(g_lane)
            for d in cred[o]:
                hit = granted & (g_lane == d) if o not in eject else granted
                m.d.comb += dec[o, d].eq(hit)
                with m.If(hit):
                    m.d.sync += busy[o][d].eq(~g_last)
        return self._traversal(m, ins, outs, turns, eject, rdata, st_valid, st_sel, st_lane,
                               cred, dec)

    def _traversal(self, m, ins, outs, turns, eject, rdata, st_valid, st_sel, st_lane, cred,
                   dec):
        for o in outs:
            n = PORT_NAMES[o]
            srcs = turns[o]
            port = self.outputs[o]
            payload = Signal(self.layout.size, name=f"{n}_xbar")
            m.d.comb += payload.eq(Array(rdata[i] for i in srcs)[st_sel[o]])
            if o in eject:
                q = m.submodules[f"eject_{n}"] = SyncFIFO(width=self.layout.size,
                                                           depth=EJECT_DEPTH)
                m.d.comb += [q.w_data.eq(payload), q.w_en.eq(st_valid[o]),
                             port.valid.eq(q.r_rdy), port.payload.eq(q.r_data),
                             q.r_en.eq(port.ready)]
                back = Signal(name=f"{n}_eback")
                m.d.sync += back.eq(q.r_rdy & port.ready)
                m.d.sync += cred[o][0].eq(cred[o][0] + back - dec[o, 0])
                with m.If(port.valid & port.ready):
                    m.d.sync += self.counts[o].eq(self.counts[o] + 1)
            else:
                m.d.comb += [port.valid.eq(st_valid[o]), port.payload.eq(payload),
                             port.lane.eq(st_lane[o])]
                for d in cred[o]:
                    m.d.sync += cred[o][d].eq(cred[o][d] + port.credit[d] - dec[o, d])
                with m.If(st_valid[o]):
                    m.d.sync += self.counts[o].eq(self.counts[o] + 1)
        return m


# ------------------------------------------------------------------------------------------
# Virtual-channel router (noc.router = "vc")

def _first(m, bits, name):
    """Priority encoder: index of the lowest set bit of the list ``bits`` (0 if none)."""
    idx = Signal(range(max(2, len(bits))), name=name)
    for j in reversed(range(len(bits))):
        with m.If(bits[j]):
            m.d.comb += idx.eq(j)
    return idx


class VcRouter(LaneRouter):
    """Five-port input-queued virtual-channel router (``noc.router = "vc"``).

    Each input has ``vcs`` virtual channels of ``buffer_depth`` flits, all in one LUT-RAM per
    input, with per-VC read/write pointers, occupancy and ``last`` bits in registers. The route
    of a VC's packet at this router is computed when its flits are written (the routing fields
    are in every flit) and kept in a register, so allocation never waits for route
    computation. Links are credit-based with one credit counter per downstream VC
    (:func:`link_signature`, the lane router's link; the link's ``lane`` is the VC).

    Allocation (cycle 1, registers only) combines VC and switch allocation: a head flit at the
    front of a VC is eligible when its output has a **free downstream VC** (not held by a
    packet and empty: all its credits back) and no older head of the same input waits for the
    same output; a body flit is eligible when the downstream VC its packet holds has a credit.
    Separable, input-first: each input picks one eligible VC round-robin, each output one of
    the inputs whose pick goes there, round-robin; the pointers move only on success (iSLIP)
    and stay on the winner until its packet's tail (winner-take-all: packets cross links
    contiguous rather than interleaved flit by flit, which kept ejection ports waiting), and
    an input prefers VCs whose output is not in the middle of another input's packet (that
    output will grant its owner). An output grants at most one flit per cycle, so a head granted at output ``o`` simply takes
    the lowest free VC of ``o``: there is no VC-allocation conflict. A downstream VC is held by
    one packet from head to tail and given to another packet only once it is empty again, so a
    VC buffer holds at most one packet. Heads of one input that go to the same output are
    allocated in arrival order (an age matrix per input): packets of a source/destination pair
    follow one path, so they stay in order at every hop and are delivered in order.

    Cycle 2 (switch traversal, shared with :class:`LaneRouter`): the granted flit is read from
    the input RAM, crosses the crossbar and the link with its VC; the ejection ports (local,
    host) are streams fed through an :data:`EJECT_DEPTH`-flit FIFO with credits, held by one
    packet at a time (packets leave contiguous). Two cycles per router at zero load, one more
    for ejection.

    The local and host inputs are ``amaranth.lib.stream`` ports: a head is accepted when one of
    the input's VCs is empty and free, its body follows in that VC. A packet entering there
    whose destination is outside the mesh is dropped whole and sets ``error``. The multicast
    header fields are ignored (a multicast packet goes to ``(dst_x, dst_y)`` only).

    Deadlock freedom: XY routing, and a VC is held from head to tail, so every VC of a channel
    waits only on VCs of channels later in XY order: the channel dependency graph of
    ``scripts/noc_deadlock.py`` stays acyclic whatever VC a packet takes.

    Parameters are those of :class:`Router` plus ``vcs`` (virtual channels per input, 1..6).
    """

    def __init__(self, *, vcs=6, **kwargs):
        _check_int("vcs", vcs, 1, N_LANES)
        self.vcs = vcs
        super().__init__(**kwargs)

    @property
    def link_lanes(self):
        return self.vcs

    def elaborate(self, platform):
        m = Module()
        x, y, rows, cols = self.x, self.y, self.rows, self.cols
        L = self.layout
        turns = self.turns
        ins, outs, reach, eject = self._port_sets()
        V, D = self.vcs, self.buffer_depth
        lw = max(1, (V - 1).bit_length())

        # ---------------- input side: virtual channels ----------------
        vc = {}             # (i, v) -> dict of signals
        rdata, rd_addr = {}, {}
        credit_pulse = {}
        older = {}          # (i, a, b) with a < b -> VC a's head arrived before VC b's
        for i in ins:
            n = PORT_NAMES[i]
            mem = m.submodules[f"buf_{n}"] = Memory(shape=unsigned(L.size), depth=V * D,
                                                    init=[])
            rp = mem.read_port(domain="comb")
            wp = mem.write_port()
            rd_addr[i] = Signal(range(V * D), name=f"{n}_rd_addr")
            m.d.comb += rp.addr.eq(rd_addr[i])
            rdata[i] = rp.data
            port = self.inputs[i]
            wflit = data.View(L, port.payload)
            r = _route_at(x, y, wflit)
            rvec = Cat(*(r[o] if o in reach[i] else Const(0, 1) for o in Port))
            for v in range(V):
                vn = f"{n}_vc{v}"
                vc[i, v] = {
                    "cnt": Signal(range(D + 1), name=f"{vn}_cnt"),
                    "wptr": Signal(range(D), name=f"{vn}_wptr"),
                    "rptr": Signal(range(D), name=f"{vn}_rptr"),
                    "last": [Signal(name=f"{vn}_last{k}") for k in range(D)],
                    "route": Signal(5, name=f"{vn}_route"),
                    "wopen": Signal(name=f"{vn}_wopen"),    # a packet is being written
                    "alloc": Signal(name=f"{vn}_alloc"),    # its head left: holds ovc
                    "ovc": Signal(range(max(2, V)), name=f"{vn}_ovc"),
                    "push": Signal(name=f"{vn}_push"),
                    "pop": Signal(name=f"{vn}_pop"),
                }
            for a in range(V):
                for b in range(a + 1, V):
                    older[i, a, b] = Signal(name=f"{n}_older{a}_{b}")
            w_vc = Signal(range(max(2, V)), name=f"{n}_w_vc")
            w_en = Signal(name=f"{n}_w_en")
            if i in self.stream_ports:
                # stream input: a head takes an empty free VC, the body follows it
                in_pkt = Signal(name=f"{n}_s_in_pkt")
                cur_vc = Signal(range(max(2, V)), name=f"{n}_s_vc")
                cur_drop = Signal(name=f"{n}_s_drop")
                inside = (wflit.dst_x < cols) & (wflit.dst_y < rows)
                hok = Signal(name=f"{n}_h_ok")
                m.d.comb += hok.eq(Cat(*(r[o] for o in reach[i])).any() &
                                   (wflit.to_host | inside))
                free = [(vc[i, v]["cnt"] == 0) & ~vc[i, v]["alloc"] & ~vc[i, v]["wopen"]
                        for v in range(V)]
                hvc = _first(m, free, f"{n}_h_vc")
                any_free = Cat(*free).any()
                space = Signal(name=f"{n}_space")
                with m.Switch(cur_vc):
                    for v in range(V):
                        with m.Case(v):
                            m.d.comb += space.eq(vc[i, v]["cnt"] != D)
                drop = Signal(name=f"{n}_drop")
                m.d.comb += [drop.eq(Mux(in_pkt, cur_drop, ~hok)),
                             port.ready.eq(drop | Mux(in_pkt, space, any_free))]
                acc = port.valid & port.ready
                with m.If(acc):
                    m.d.sync += in_pkt.eq(~wflit.last)
                    with m.If(~in_pkt):
                        m.d.sync += [cur_vc.eq(hvc), cur_drop.eq(~hok)]
                    with m.If(drop):
                        m.d.sync += self.error.eq(1)
                m.d.comb += [w_vc.eq(Mux(in_pkt, cur_vc, hvc)), w_en.eq(acc & ~drop)]
            else:
                m.d.comb += [w_vc.eq(port.lane), w_en.eq(port.valid)]
                credit_pulse[i] = Signal(V, name=f"{n}_credit")
                m.d.comb += port.credit.eq(credit_pulse[i])
                m.d.sync += credit_pulse[i].eq(Cat(*(vc[i, v]["pop"] for v in range(V))))
            m.d.comb += [wp.data.eq(port.payload), wp.en.eq(w_en)]
            for v in range(V):
                st = vc[i, v]
                m.d.comb += st["push"].eq(w_en & (w_vc == v))
                with m.If(st["push"] & (w_vc == v)):
                    m.d.comb += wp.addr.eq(v * D + st["wptr"])
                with m.If(st["push"]):
                    m.d.sync += [st["wptr"].eq(Mux(st["wptr"] == D - 1, 0, st["wptr"] + 1)),
                                 st["route"].eq(rvec), st["wopen"].eq(~wflit.last)]
                    for k in range(D):
                        with m.If(st["wptr"] == k):
                            m.d.sync += st["last"][k].eq(wflit.last)
                    # a head written into VC v: every other VC's head is older
                    with m.If(~st["wopen"]):
                        for w in range(V):
                            if w < v:
                                m.d.sync += older[i, w, v].eq(1)
                            elif w > v:
                                m.d.sync += older[i, v, w].eq(0)
                m.d.sync += st["cnt"].eq(st["cnt"] + st["push"] - st["pop"])
                with m.If(st["pop"]):
                    m.d.sync += st["rptr"].eq(Mux(st["rptr"] == D - 1, 0, st["rptr"] + 1))

        # ---------------- output side: credits and VC ownership per downstream VC -------------
        cred, busy, free_vc, vc_pick, avail = {}, {}, {}, {}, {}
        for o in outs:
            n = PORT_NAMES[o]
            if o in eject:
                cred[o] = {0: Signal(range(EJECT_DEPTH + 1), name=f"{n}_ecred",
                                     init=EJECT_DEPTH)}
                busy[o] = {0: Signal(name=f"{n}_ebusy")}
                free_vc[o] = [~busy[o][0] & (cred[o][0] != 0)]
            else:
                cred[o] = {d: Signal(range(D + 1), name=f"{n}_cred{d}", init=D)
                           for d in range(V)}
                busy[o] = {d: Signal(name=f"{n}_busy{d}") for d in range(V)}
                free_vc[o] = [~busy[o][d] & (cred[o][d] == D) for d in range(V)]
            avail[o] = Signal(name=f"{n}_avail")
            m.d.comb += avail[o].eq(Cat(*free_vc[o]).any())
            vc_pick[o] = _first(m, free_vc[o], f"{n}_vc_pick") if o not in eject else Const(0, 1)

        # ---------------- allocation ----------------
        elig, front_last, pend = {}, {}, {}
        for i in ins:
            for v in range(V):
                st = vc[i, v]
                vn = f"{PORT_NAMES[i]}_vc{v}"
                front_last[i, v] = Signal(name=f"{vn}_f_last")
                m.d.comb += front_last[i, v].eq(Array(st["last"])[st["rptr"]])
                pend[i, v] = Signal(name=f"{vn}_pend")
                m.d.comb += pend[i, v].eq((st["cnt"] != 0) & ~st["alloc"])
        for i in ins:
            for v in range(V):
                st = vc[i, v]
                vn = f"{PORT_NAMES[i]}_vc{v}"
                # an older head of this input waiting for the same output
                blk = []
                for w in range(V):
                    if w == v:
                        continue
                    ow = older[i, w, v] if w < v else ~older[i, v, w]
                    blk.append(pend[i, w] & ow & (vc[i, w]["route"] & st["route"]).any())
                blocked = Cat(*blk).any() if blk else Const(0, 1)
                head_ok = Cat(*(st["route"][o] & avail[o] for o in reach[i])).any()
                body_ok = []
                for o in reach[i]:
                    if o in eject:
                        c = cred[o][0] != 0
                    else:
                        c = Cat(*(cred[o][d] != 0 for d in range(V))).bit_select(st["ovc"], 1)
                    body_ok.append(st["route"][o] & c)
                elig[i, v] = Signal(name=f"{vn}_elig")
                m.d.comb += elig[i, v].eq((st["cnt"] != 0) &
                                          Mux(st["alloc"], Cat(*body_ok).any(),
                                              head_ok & ~blocked))

        ichoice, ogrant, won, in_last = {}, {}, {}, {}
        in_adv = {}
        # an output in the middle of a packet (winner-take-all) will grant its owner: the
        # other inputs prefer VCs for other outputs
        olock = {o: Signal(name=f"{PORT_NAMES[o]}_lock") for o in outs}
        oown = {o: Signal(range(max(2, len(turns[o]))), name=f"{PORT_NAMES[o]}_own")
                for o in outs}
        for i in ins:
            n = PORT_NAMES[i]
            pref = []
            for v in range(V):
                taken = [vc[i, v]["route"][o] & olock[o] & (oown[o] != turns[o].index(i))
                         for o in reach[i]]
                pref.append(elig[i, v] & ~Cat(*taken).any())
            any_pref = Signal(name=f"{n}_any_pref")
            m.d.comb += any_pref.eq(Cat(*pref).any())
            reqs = [Mux(any_pref, pref[v], elig[i, v]) for v in range(V)]
            g, in_adv[i] = _rr(m, reqs, f"{n}_in")
            for v in range(V):
                ichoice[i, v] = g[v]
        granted_in, out_adv = {i: [] for i in ins}, {}
        for o in outs:
            n = PORT_NAMES[o]
            srcs = turns[o]
            reqs = []
            for i in srcs:
                rq = Signal(name=f"{n}_req_{PORT_NAMES[i]}")
                m.d.comb += rq.eq(Cat(*(ichoice[i, v] & vc[i, v]["route"][o]
                                        for v in range(V))).any())
                reqs.append(rq)
            g, adv = _rr(m, reqs, f"{n}_out")
            out_adv[o] = adv
            for i, gi in zip(srcs, g):
                ogrant[o, i] = gi
                granted_in[i].append(gi)
        for i in ins:
            won[i] = Signal(name=f"{PORT_NAMES[i]}_won")
            m.d.comb += won[i].eq(Cat(*granted_in[i]).any())
            in_last[i] = Cat(*(ichoice[i, v] & front_last[i, v] for v in range(V))).any()
            in_adv[i](won[i], ~in_last[i])

        st_valid = {o: Signal(name=f"{PORT_NAMES[o]}_st_valid") for o in outs}
        st_sel = {o: Signal(range(len(turns[o])), name=f"{PORT_NAMES[o]}_st_sel") for o in outs}
        st_lane = {o: Signal(lw, name=f"{PORT_NAMES[o]}_st_lane") for o in outs}
        dec = {(o, d): Signal(name=f"{PORT_NAMES[o]}_dec{d}") for o in outs for d in cred[o]}
        for i in ins:
            for v in range(V):
                st = vc[i, v]
                pop = ichoice[i, v] & won[i]
                m.d.comb += st["pop"].eq(pop)
                with m.If(pop):
                    m.d.sync += [st["alloc"].eq(~front_last[i, v]),
                                 rd_addr[i].eq(v * D + st["rptr"])]
                    with m.If(~st["alloc"]):
                        for o in reach[i]:
                            if o not in eject:
                                with m.If(st["route"][o]):
                                    m.d.sync += st["ovc"].eq(vc_pick[o])
        # signals read by verif/tests/test_noc_mesh.py::allocation_probe (docs/noc.md)
        self._probe = {"elig": elig, "pend": pend, "avail": avail, "vc": vc, "ins": ins,
                       "outs": outs, "cred": cred, "busy": busy, "ichoice": ichoice}
        for o in outs:
            srcs = turns[o]
            granted = Cat(*(ogrant[o, i] for i in srcs)).any()
            self._probe.setdefault("granted", {})[o] = granted
            m.d.sync += st_valid[o].eq(granted)
            g_last = Signal(name=f"{PORT_NAMES[o]}_g_last")
            g_lane = Signal(lw, name=f"{PORT_NAMES[o]}_g_lane")
            for j, i in enumerate(srcs):
                with m.If(ogrant[o, i]):
                    m.d.sync += st_sel[o].eq(j)
                    for v in range(V):
                        with m.If(ichoice[i, v]):
                            m.d.comb += g_last.eq(front_last[i, v])
                            if o not in eject:
                                m.d.comb += g_lane.eq(Mux(vc[i, v]["alloc"], vc[i, v]["ovc"],
                                                          vc_pick[o]))
            m.d.sync += st_lane[o].eq(g_lane)
            out_adv[o](granted, ~g_last)
            with m.If(granted):
                m.d.sync += olock[o].eq(~g_last)
                for j, i in enumerate(srcs):
                    with m.If(ogrant[o, i]):
                        m.d.sync += oown[o].eq(j)
            for d in cred[o]:
                hit = (granted & (g_lane == d)) if o not in eject else granted
                m.d.comb += dec[o, d].eq(hit)
                with m.If(hit):
                    m.d.sync += busy[o][d].eq(~g_last)
        return self._traversal(m, ins, outs, turns, eject, rdata, st_valid, st_sel, st_lane,
                               cred, dec)
