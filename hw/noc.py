"""Mesh network-on-chip: 5-port wormhole routers with XY routing, a mesh of them, and the
two-network NoC (request + response) that the chip top instantiates.

Geometry: x is the column and grows to the East, y is the row and grows to the South; router
``(x, y)`` serves core ``i = y * cols + x``. The host port is the West port of router ``(0, 0)``.
Flits use :func:`hasp.hw.packet.flit_layout`. See ``docs/noc.md`` for the protocol, the
deadlock-freedom argument and measured latencies.
"""
from __future__ import annotations

from enum import IntEnum

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from .packet import PacketFormat, coord_width, flit_layout
from .checks import check_int as _check_int

__all__ = ["Port", "PORT_NAMES", "xy_route", "router_turns", "Router", "Mesh", "NoC"]


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


class Router(wiring.Component):
    """Five-port wormhole router with XY routing and round-robin output arbitration.

    Each existing input has a ``buffer_depth``-flit FIFO. The head flit at a FIFO's output
    computes its route (:func:`xy_route` on the flit's ``dst_x``/``dst_y``/``to_host``); each
    output picks one requesting input round-robin, then stays allocated to it until that input's
    ``last`` flit has been transferred (wormhole). The switch is combinational from the FIFO
    outputs, so a flit written into an input FIFO at clock edge *t* can leave the router in the
    cycle after *t* and be written into the next router's FIFO at edge *t + 1*: **one cycle per
    router** at zero load, and one flit per cycle per port (for ``buffer_depth >= 2``).

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
                 counter_width=32):
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
        self.x, self.y, self.rows, self.cols = x, y, rows, cols
        self.buffer_depth = buffer_depth
        self.host = host
        self.layout = flit_layout(data_width, coord_width(rows, cols))
        self.turns = router_turns(x, y, rows, cols, host)
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
            fifo = m.submodules[f"fifo_{n}"] = SyncFIFO(width=self.layout.size,
                                                         depth=self.buffer_depth)
            port = self.inputs[i]
            m.d.comb += [fifo.w_data.eq(port.payload), fifo.w_en.eq(port.valid),
                         port.ready.eq(fifo.w_rdy)]
            head[i] = fifo.r_data
            valid[i] = fifo.r_rdy
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

        # An input that holds an output sends every flit there until its tail; otherwise its
        # head flit requests the output its route names.
        req = {}
        for i in ins:
            n = PORT_NAMES[i]
            owns = {o: busy[o] & (owner[o] == self.turns[o].index(i)) for o in reach[i]}
            owns_any = Signal(name=f"{n}_owns")
            m.d.comb += owns_any.eq(Cat(*owns.values()).any())
            for o in reach[i]:
                req[i, o] = Signal(name=f"{n}_req_{PORT_NAMES[o]}")
                m.d.comb += req[i, o].eq(valid[i] & Mux(owns_any, owns[o], route[i][o]))
            illegal = Signal(name=f"{n}_illegal")
            m.d.comb += illegal.eq(valid[i] & ~owns_any &
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
            sel = Signal(range(k), name=f"{n}_sel")
            m.d.comb += sel.eq(Mux(busy[o], owner[o], pick))
            m.d.comb += [
                port.valid.eq(reqv.bit_select(sel, 1)),
                port.payload.eq(Array(head[i] for i in srcs)[sel]),
            ]
            for j, i in enumerate(srcs):
                r_en[i].append((sel == j) & reqv[j] & port.ready)
            with m.If(~busy[o] & reqv.any()):
                m.d.sync += [busy[o].eq(1), owner[o].eq(pick)]
                if k > 1:
                    m.d.sync += ptr.eq(Mux(pick == k - 1, 0, pick + 1))
            with m.If(port.valid & port.ready):
                m.d.sync += self.counts[o].eq(self.counts[o] + 1)
                with m.If(port.payload.last):
                    m.d.sync += busy[o].eq(0)

        for i in ins:
            m.d.comb += r_en_sig[i].eq(Cat(*r_en[i]).any())
        return m


class Mesh(wiring.Component):
    """One physical ``rows x cols`` mesh of :class:`Router` s with a host port.

    Parameters
    ----------
    cfg : hasp.config.ChipConfig
        Uses ``mesh.rows``, ``mesh.cols``, ``noc.flit_width``, ``noc.buffer_depth`` and the
        packet format widths (:class:`hasp.hw.packet.PacketFormat`).
    counter_width : int
        Width of the per-link flit counters.

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

    def __init__(self, cfg, *, counter_width=32):
        fmt = self.format = PacketFormat.from_config(cfg)
        _check_int("counter_width", counter_width, 1, 64)
        self.rows, self.cols = fmt.rows, fmt.cols
        self.routers = {}
        for y in range(fmt.rows):
            for x in range(fmt.cols):
                self.routers[x, y] = Router(
                    x=x, y=y, rows=fmt.rows, cols=fmt.cols, data_width=fmt.data_width,
                    buffer_depth=cfg.noc.buffer_depth, host=(x, y) == (0, 0),
                    counter_width=counter_width)
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
        Host injection into the request / response network.
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
        self.resp = Mesh(cfg, counter_width=counter_width)
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
