"""Synthesizable NoC traffic generator + checker around one :class:`hasp.hw.noc.Mesh`.

Every node has an injector and an ejector; the whole run (warm-up, measurement window, drain)
is sequenced in hardware, so a simulator runs it without per-cycle Python: the testbench sets
the parameter inputs, pulses ``start``, waits for ``done`` and reads the counters.

Injector (per node)
    A xorshift64 generator draws once per cycle. While generation is enabled (warm-up,
    measurement, first drain phase) a packet is *generated* when ``rnd[0:16] < rate``
    (Bernoulli, ``rate / 65536`` packets per node per cycle); its destination (from
    ``pattern``), the generation cycle and a "measured" bit (generated inside the window) go
    into a source queue of ``queue_depth`` entries (a generation that finds the queue full is
    counted in ``drop`` and lost: the offered load beyond that is not met). The sender injects
    queued packets back-to-back, ``pkt_len`` flits each (fixed, ``2 <= pkt_len <= 255``):

    * head: a ``WRITE`` header with ``length = pkt_len - 1``, ``src_x``/``src_y`` = the node,
      ``address[0:16]`` = sequence number of this (source, destination) pair, ``tag[0]`` =
      measured;
    * body 0: ``data[0:32]`` = generation cycle, ``data[32:64]`` = cycle the head was accepted
      by the network (injection timestamp);
    * body k >= 1: :func:`body_word` of (source, sequence, k), checked at the destination.

Ejector (per node)
    ``ready`` is low with probability ``bp / 65536`` per cycle (xorshift32). Every flit is
    checked: header fields, destination = this node, sequence number = the next one expected
    from that source (a memory of one counter per source: exactly once and in order per pair),
    routing fields of every flit, position of ``last``, body words. Any failing flit counts one
    ``errors``. Accumulated per node: every packet (``rx_all``), flits ejected during the window
    (``win_flits``), flit-router traversals (``flit_hops`` = flits x (hops + 1), must equal the
    sum of the mesh's link counters), and for measured packets: count, flits, latency sums and
    hop sum.

Phases (``phase`` output)
    0 idle, 1 warm-up (``warmup`` cycles), 2 measure (``measure`` cycles), 3 drain (generation
    goes on, unmeasured, until every measured packet is received), 4 flush (no generation, until
    every generated packet is received), 5 done. ``timeout`` (with ``done``) is set when phases
    3 + 4 together exceed ``drain_max`` cycles: a lost packet or a deadlock cannot hang a run.
"""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .checks import check_int as _check_int
from .noc import Mesh, Port
from .packet import PacketType

__all__ = ["Pattern", "PATTERNS", "Phase", "NoCBench", "body_word", "pattern_dest",
           "SEQ_WIDTH", "TS_WIDTH"]

SEQ_WIDTH = 16
TS_WIDTH = 32
CNT_WIDTH = 32
SUM_WIDTH = 48


class Pattern:
    UNIFORM = 0
    TRANSPOSE = 1
    BITCOMP = 2
    HOTSPOT = 3
    NEIGHBOR = 4


#: pattern name -> code of the ``pattern`` input
PATTERNS = {"uniform": Pattern.UNIFORM, "transpose": Pattern.TRANSPOSE,
            "bitcomp": Pattern.BITCOMP, "hotspot": Pattern.HOTSPOT,
            "neighbor": Pattern.NEIGHBOR}


class Phase:
    IDLE, WARMUP, MEASURE, DRAIN, FLUSH, DONE = range(6)


def pattern_dest(pattern: str, x: int, y: int, rows: int, cols: int):
    """Fixed destination of the deterministic patterns (Python model of the constants).

    transpose: ``(y mod cols, x mod rows)``; bitcomp: ``(cols-1-x, rows-1-y)`` (the bit
    complement for power-of-two sides). Returns None for the random patterns.
    """
    if pattern == "transpose":
        return y % cols, x % rows
    if pattern == "bitcomp":
        return cols - 1 - x, rows - 1 - y
    return None


def _neighbors(x, y, rows, cols):
    """Destinations for random direction 0..3 (E, W, S, N), reflected at the mesh edge."""
    def step(dx, dy):
        nx, ny = x + dx, y + dy
        if not 0 <= nx < cols:
            nx = x - dx if 0 <= x - dx < cols else x
        if not 0 <= ny < rows:
            ny = y - dy if 0 <= y - dy < rows else y
        return nx, ny
    return [step(1, 0), step(-1, 0), step(0, 1), step(0, -1)]


def body_word(src: int, seq: int, k: int, width: int) -> int:
    """Body word ``k >= 1`` of the packet ``seq`` from node ``src`` (Python model)."""
    w = (seq & 0xFFFF) | (src & 0xFF) << 16 | (k & 0xFF) << 24
    out = 0
    for j in range((width + 31) // 32):
        out |= (w if j % 2 == 0 else w ^ 0xFFFFFFFF) << (32 * j)
    return out & ((1 << width) - 1)


def _body_word_hw(src, seq, k, width):
    w = Cat(seq[:16], src[:8], k[:8])
    parts = [(w if j % 2 == 0 else ~w) for j in range((width + 31) // 32)]
    return Cat(*parts)[:width]


def _xorshift64(s):
    s1 = s ^ (s << 13)[:64]
    s2 = s1 ^ (s1 >> 7)
    return s2 ^ (s2 << 17)[:64]


def _xorshift32(s):
    s1 = s ^ (s << 13)[:32]
    s2 = s1 ^ (s1 >> 17)
    return s2 ^ (s2 << 5)[:32]


def _absdiff(a, c):
    return Mux(a >= c, a - c, c - a)


class NoCBench(wiring.Component):
    """Traffic generator + checker + one :class:`Mesh` (``cfg.mesh``, ``cfg.noc``).

    Parameters
    ----------
    cfg : hasp.config.ChipConfig
    queue_depth : int
        Source queue entries per node (generated, not yet injected packets).

    Inputs (hold them stable during a run)
        ``start`` (pulse, from idle or done), ``seed`` (32), ``rate`` (17: packets per node per
        cycle x 65536, 65536 = every cycle), ``pattern`` (:data:`PATTERNS`), ``hot_x``,
        ``hot_y``, ``hot_rate`` (16: fraction x 65536 of packets sent to the hotspot),
        ``pkt_len`` (8, flits, 2..255), ``bp`` (16: ejector not-ready probability x 65536),
        ``warmup``, ``measure``, ``drain_max`` (32, cycles).
    Outputs
        ``done``, ``timeout``, ``phase``, ``cycles`` (since start), ``error`` (mesh dropped a
        flit), per node arrays (index ``i = y * cols + x``): ``gen``, ``gen_meas``, ``drop``,
        ``tx_pkts``, ``rx_all``, ``rx_pkts``, ``rx_flits``, ``lat_sum``, ``net_lat_sum``,
        ``head_lat_sum``, ``hop_sum``, ``win_flits``, ``flit_hops``, ``errors``, and the mesh's
        ``flit_count[i][p]``.
    """

    def __init__(self, cfg, *, queue_depth=8):
        _check_int("queue_depth", queue_depth, 1, 1024)
        self.cfg = cfg
        self.queue_depth = queue_depth
        self.mesh = Mesh(cfg)
        fmt = self.format = self.mesh.format
        if fmt.data_width < 64:
            raise ValueError("NoCBench needs noc.flit_width >= 64")
        n = fmt.cores
        cw = fmt.coord_width
        sig = {
            "start": In(1), "seed": In(32), "rate": In(17), "pattern": In(3),
            "mc_rate": In(16),
            "hot_x": In(cw), "hot_y": In(cw), "hot_rate": In(16), "pkt_len": In(8),
            "bp": In(16), "warmup": In(32), "measure": In(32), "drain_max": In(32),
            "done": Out(1), "timeout": Out(1), "phase": Out(3), "cycles": Out(32),
            "error": Out(1),
        }
        for name in ("gen", "gen_meas", "gen_pkts", "drop", "tx_pkts", "rx_all", "rx_pkts",
                     "rx_flits", "win_flits", "errors"):
            sig[name] = Out(CNT_WIDTH).array(n)
        for name in ("lat_sum", "net_lat_sum", "head_lat_sum", "hop_sum", "flit_hops",
                     "mc_flit_hops", "hl_sum", "h2_sum"):
            sig[name] = Out(SUM_WIDTH).array(n)
        sig["flit_count"] = Out(32).array(n, len(Port))
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        fmt = self.format
        rows, cols, n, cw, fw = fmt.rows, fmt.cols, fmt.cores, fmt.coord_width, fmt.data_width
        m.submodules.mesh = mesh = self.mesh
        m.d.comb += mesh.host_out.ready.eq(1)
        for i in range(n):
            for p in Port:
                m.d.comb += self.flit_count[i][p].eq(mesh.flit_count[i][p])
        m.d.comb += self.error.eq(mesh.error)

        # ---- global sequencer ----
        phase = Signal(3)
        now = Signal(TS_WIDTH)
        left = Signal(32)
        drain_cnt = Signal(32)
        m.d.comb += [self.phase.eq(phase), self.cycles.eq(now),
                     self.done.eq(phase == Phase.DONE)]
        gen_en = (phase == Phase.WARMUP) | (phase == Phase.MEASURE) | (phase == Phase.DRAIN)
        running = (phase != Phase.IDLE) & (phase != Phase.DONE)
        clear = Signal()        # start of a run: every counter to 0
        m.d.comb += clear.eq(self.start & ((phase == Phase.IDLE) | (phase == Phase.DONE)))
        sum_meas_gen = Signal(SUM_WIDTH)
        sum_meas_rx = Signal(SUM_WIDTH)
        sum_gen = Signal(SUM_WIDTH)
        sum_rx = Signal(SUM_WIDTH)
        m.d.sync += [sum_meas_gen.eq(sum(self.gen_meas)), sum_meas_rx.eq(sum(self.rx_pkts)),
                     sum_gen.eq(sum(self.gen)), sum_rx.eq(sum(self.rx_all))]
        settle = Signal(2)      # the registered sums lag the counters: wait before comparing
        with m.If(running):
            m.d.sync += now.eq(now + 1)
        with m.If(clear):
            m.d.sync += [phase.eq(Mux(self.warmup == 0, Phase.MEASURE, Phase.WARMUP)),
                         left.eq(Mux(self.warmup == 0, self.measure, self.warmup)),
                         now.eq(0), drain_cnt.eq(0), self.timeout.eq(0), settle.eq(0)]
        with m.Switch(phase):
            with m.Case(Phase.WARMUP):
                m.d.sync += left.eq(left - 1)
                with m.If(left <= 1):
                    m.d.sync += [phase.eq(Phase.MEASURE), left.eq(self.measure)]
            with m.Case(Phase.MEASURE):
                m.d.sync += left.eq(left - 1)
                with m.If(left <= 1):
                    m.d.sync += [phase.eq(Phase.DRAIN), settle.eq(3)]
            with m.Case(Phase.DRAIN, Phase.FLUSH):
                m.d.sync += drain_cnt.eq(drain_cnt + 1)
                with m.If(settle != 0):
                    m.d.sync += settle.eq(settle - 1)
                with m.If(drain_cnt >= self.drain_max):
                    m.d.sync += [phase.eq(Phase.DONE), self.timeout.eq(1)]
                with m.Elif((phase == Phase.DRAIN) & (settle == 0) &
                            (sum_meas_rx == sum_meas_gen)):
                    m.d.sync += [phase.eq(Phase.FLUSH), settle.eq(3)]
                with m.Elif((phase == Phase.FLUSH) & (settle == 0) & (sum_rx == sum_gen)):
                    m.d.sync += phase.eq(Phase.DONE)

        hdr_layout = fmt.header
        flit_layout = fmt.flit
        qlayout = data.StructLayout({"ts": unsigned(TS_WIDTH), "meas": 1,
                                     "dx": unsigned(cw), "dy": unsigned(cw),
                                     "mdx": unsigned(cw), "mdy": unsigned(cw)})

        def counter(sig, inc, cond):
            with m.If(clear):
                m.d.sync += sig.eq(0)
            with m.Elif(cond):
                m.d.sync += sig.eq(sig + inc)

        for i in range(n):
            x, y = i % cols, i // cols
            # ---------- injector ----------
            rnd = Signal(64, name=f"rnd{i}")
            seed64 = Cat(self.seed ^ Const((0x9E3779B9 * (i + 1)) & 0xFFFFFFFF, 32),
                         Const((0x85EBCA6B * (i + 7)) & 0xFFFFFFFF | 1, 32))
            with m.If(clear):
                m.d.sync += rnd.eq(seed64)
            with m.Else():
                m.d.sync += rnd.eq(_xorshift64(rnd))
            fire = Signal(name=f"fire{i}")
            m.d.comb += fire.eq(gen_en & (rnd[:16] < self.rate))

            # destination
            ux = (rnd[16:24] * cols)[8:]
            uy = (rnd[24:32] * rows)[8:]
            tdx, tdy = pattern_dest("transpose", x, y, rows, cols)
            bdx, bdy = pattern_dest("bitcomp", x, y, rows, cols)
            nb = _neighbors(x, y, rows, cols)
            nbx = Array(Const(a, cw) for a, _ in nb)[rnd[48:50]]
            nby = Array(Const(b, cw) for _, b in nb)[rnd[48:50]]
            hot = rnd[32:48] < self.hot_rate
            dx, dy = Signal(cw, name=f"dx{i}"), Signal(cw, name=f"dy{i}")
            with m.Switch(self.pattern):
                with m.Case(Pattern.TRANSPOSE):
                    m.d.comb += [dx.eq(tdx), dy.eq(tdy)]
                with m.Case(Pattern.BITCOMP):
                    m.d.comb += [dx.eq(bdx), dy.eq(bdy)]
                with m.Case(Pattern.HOTSPOT):
                    m.d.comb += [dx.eq(Mux(hot, self.hot_x, ux)), dy.eq(Mux(hot, self.hot_y, uy))]
                with m.Case(Pattern.NEIGHBOR):
                    m.d.comb += [dx.eq(nbx), dy.eq(nby)]
                with m.Default():
                    m.d.comb += [dx.eq(ux), dy.eq(uy)]

            # multicast: a fraction mc_rate / 65536 of the packets goes to a random rectangle
            # with its corner at the uniform destination (1 x 1 rectangles stay unicast)
            rmc = Signal(32, name=f"rmc{i}")
            with m.If(clear):
                m.d.sync += rmc.eq(Cat(self.seed[16:32] ^ Const((0x3C6E * (i + 11)) & 0xFFFF, 16),
                                       Const((0x5F35 * (i + 13)) & 0xFFFF | 1, 16)))
            with m.Else():
                m.d.sync += rmc.eq(_xorshift32(rmc))
            mdx, mdy = Signal(cw, name=f"mdx{i}"), Signal(cw, name=f"mdy{i}")
            is_mc = Signal(name=f"is_mc{i}")
            m.d.comb += [mdx.eq((rmc[16:24] * (cols - ux))[8:]),
                         mdy.eq((rmc[24:32] * (rows - uy))[8:]),
                         is_mc.eq((rmc[:16] < self.mc_rate) & ((mdx != 0) | (mdy != 0)))]
            copies = Signal(2 * cw + 2, name=f"copies{i}")
            tree = Signal(3 * cw + 4, name=f"tree{i}")
            xl = (Mux(ux + mdx > x, ux + mdx, x) - Mux(ux < x, ux, x))[:cw + 1]
            yl = (Mux(uy + mdy > y, uy + mdy, y) - Mux(uy < y, uy, y))[:cw + 1]
            m.d.comb += [copies.eq(Mux(is_mc, (mdx + 1) * (mdy + 1), 1)),
                         tree.eq(xl + (mdx + 1) * yl + (mdx + 1) * (mdy + 1))]

            q = m.submodules[f"q{i}"] = SyncFIFO(width=qlayout.size, depth=self.queue_depth)
            qin = data.View(qlayout, q.w_data)
            m.d.comb += [qin.ts.eq(now), qin.meas.eq(phase == Phase.MEASURE),
                         qin.dx.eq(Mux(is_mc, ux, dx)), qin.dy.eq(Mux(is_mc, uy, dy)),
                         qin.mdx.eq(Mux(is_mc, mdx, 0)), qin.mdy.eq(Mux(is_mc, mdy, 0)),
                         q.w_en.eq(fire & ~clear)]
            counter(self.gen[i], copies, fire & q.w_rdy)
            counter(self.gen_meas[i], copies, fire & q.w_rdy & (phase == Phase.MEASURE))
            counter(self.gen_pkts[i], 1, fire & q.w_rdy)
            counter(self.mc_flit_hops[i], self.pkt_len * tree, fire & q.w_rdy & is_mc)
            counter(self.drop[i], 1, fire & ~q.w_rdy)

            cur = data.View(qlayout, q.r_data)
            cur_mc = (cur.mdx != 0) | (cur.mdy != 0)
            seqm = m.submodules[f"seq{i}"] = Memory(shape=unsigned(SEQ_WIDTH), depth=n, init=[])
            srd = seqm.read_port(domain="comb")
            swr = seqm.write_port()
            didx = cur.dy * cols + cur.dx
            m.d.comb += srd.addr.eq(didx)
            mc_seq = Signal(SEQ_WIDTH, name=f"mc_seq{i}")     # one sequence for its multicasts
            seq = Mux(cur_mc, mc_seq, srd.data)
            k = Signal(8, name=f"k{i}")
            inj_ts = Signal(TS_WIDTH, name=f"inj_ts{i}")
            port = mesh.local_in[i]
            flit = data.View(flit_layout, port.payload)
            hdr = data.View(hdr_layout, flit.data[:hdr_layout.size])
            last_k = self.pkt_len - 1
            m.d.comb += [
                port.valid.eq(q.r_rdy),
                flit.dst_x.eq(cur.dx), flit.dst_y.eq(cur.dy), flit.to_host.eq(0),
                flit.last.eq(k == last_k),
            ]
            with m.If(k == 0):
                m.d.comb += [hdr.type.eq(PacketType.WRITE), hdr.tag.eq(cur.meas),
                             hdr.length.eq(self.pkt_len - 1), hdr.address.eq(seq),
                             hdr.src_x.eq(x), hdr.src_y.eq(y), hdr.mc_dx.eq(cur.mdx),
                             hdr.mc_dy.eq(cur.mdy)]
            with m.Elif(k == 1):
                m.d.comb += flit.data.eq(Cat(cur.ts, inj_ts))
            with m.Else():
                m.d.comb += flit.data.eq(_body_word_hw(Const(i, 8), seq, k, fw))
            xfer = port.valid & port.ready
            with m.If(xfer):
                m.d.sync += k.eq(k + 1)
                with m.If(k == 0):
                    m.d.sync += inj_ts.eq(now)
                with m.If(k == last_k):
                    m.d.sync += k.eq(0)
            m.d.comb += [swr.addr.eq(didx), swr.data.eq(seq + 1),
                         swr.en.eq(xfer & (k == last_k) & ~cur_mc),
                         q.r_en.eq(xfer & (k == last_k))]
            with m.If(xfer & (k == last_k) & cur_mc):
                m.d.sync += mc_seq.eq(mc_seq + 1)
            counter(self.tx_pkts[i], 1, xfer & (k == last_k))
            with m.If(clear):
                m.d.sync += k.eq(0)
            # (the sequence memories are not cleared: a run starts from the previous run's
            # numbers at both ends, which stay in step because every run drains completely)

            # ---------- ejector ----------
            bpr = Signal(32, name=f"bpr{i}")
            with m.If(clear):
                m.d.sync += bpr.eq(Cat(self.seed[:16] ^ Const((0x2545 * (i + 3)) & 0xFFFF, 16),
                                       Const((0x6C07 * (i + 5)) & 0xFFFF | 1, 16)))
            with m.Else():
                m.d.sync += bpr.eq(_xorshift32(bpr))
            out = mesh.local_out[i]
            m.d.comb += out.ready.eq(~(bpr[:16] < self.bp))
            of = data.View(flit_layout, out.payload)
            oh = data.View(hdr_layout, of.data[:hdr_layout.size])
            expm = m.submodules[f"exp{i}"] = Memory(shape=unsigned(SEQ_WIDTH), depth=n, init=[])
            erd = expm.read_port(domain="comb")
            ewr = expm.write_port()
            # multicast: per source, the next sequence number at least expected (a node gets
            # the multicasts whose rectangle covers it: increasing, not consecutive)
            mexp = m.submodules[f"mexp{i}"] = Memory(shape=unsigned(SEQ_WIDTH), depth=n,
                                                     init=[])
            mrd = mexp.read_port(domain="comb")
            mwr = mexp.write_port()
            c_mc = Signal(name=f"c_mc{i}")
            c_x0 = Signal(cw, name=f"c_x0{i}")
            c_y0 = Signal(cw, name=f"c_y0{i}")
            ek = Signal(8, name=f"ek{i}")
            c_src = Signal(8, name=f"c_src{i}")
            c_seq = Signal(SEQ_WIDTH, name=f"c_seq{i}")
            c_meas = Signal(name=f"c_meas{i}")
            c_hops = Signal(8, name=f"c_hops{i}")
            c_thead = Signal(TS_WIDTH, name=f"c_thead{i}")
            c_gen = Signal(TS_WIDTH, name=f"c_gen{i}")
            c_inj = Signal(TS_WIDTH, name=f"c_inj{i}")
            src_idx = oh.src_y * cols + oh.src_x
            m.d.comb += [erd.addr.eq(src_idx), mrd.addr.eq(src_idx)]
            rx = out.valid & out.ready
            is_last = ek == last_k
            h_mc = (oh.mc_dx != 0) | (oh.mc_dy != 0)
            in_rect = ((of.dst_x <= x) & (of.dst_x + oh.mc_dx >= x) & (of.dst_y <= y) &
                       (of.dst_y + oh.mc_dy >= y) & ~of.to_host)
            route_ok = Mux(c_mc, (of.dst_x == c_x0) & (of.dst_y == c_y0) & ~of.to_host,
                           (of.dst_x == x) & (of.dst_y == y) & ~of.to_host)
            seq_in = oh.address[:SEQ_WIDTH]
            seq_ok = Mux(h_mc, ~(seq_in - mrd.data)[SEQ_WIDTH - 1], seq_in == erd.data)
            bad = Signal(name=f"bad{i}")
            hops = _absdiff(oh.src_x, x) + _absdiff(oh.src_y, y)
            with m.If(ek == 0):
                m.d.comb += bad.eq(~Mux(h_mc, in_rect, (of.dst_x == x) & (of.dst_y == y) &
                                        ~of.to_host) |
                                   of.last | (oh.type != PacketType.WRITE) |
                                   (oh.length != self.pkt_len - 1) | (oh.src_x >= cols) |
                                   (oh.src_y >= rows) | ~seq_ok |
                                   (oh.address[SEQ_WIDTH:] != 0) | (oh.tag[1:] != 0) |
                                   (oh.src_host != 0) | (of.data[hdr_layout.size:] != 0))
            with m.Elif(ek == 1):
                m.d.comb += bad.eq(~route_ok | (of.last != is_last))
            with m.Else():
                m.d.comb += bad.eq(~route_ok | (of.last != is_last) |
                                   (of.data != _body_word_hw(c_src, c_seq, ek, fw)))
            src_ok = (oh.src_x < cols) & (oh.src_y < rows)
            m.d.comb += [ewr.addr.eq(src_idx), ewr.data.eq(seq_in + 1),
                         ewr.en.eq(rx & (ek == 0) & src_ok & ~h_mc),
                         mwr.addr.eq(src_idx), mwr.data.eq(seq_in + 1),
                         mwr.en.eq(rx & (ek == 0) & src_ok & h_mc)]
            with m.If(rx):
                m.d.sync += ek.eq(ek + 1)
                with m.If(ek == 0):
                    m.d.sync += [c_src.eq(src_idx), c_seq.eq(oh.address[:SEQ_WIDTH]),
                                 c_meas.eq(oh.tag[0]), c_hops.eq(hops), c_thead.eq(now),
                                 c_mc.eq(h_mc), c_x0.eq(of.dst_x), c_y0.eq(of.dst_y)]
                with m.If(ek == 1):
                    m.d.sync += [c_gen.eq(of.data[:32]), c_inj.eq(of.data[32:64])]
                with m.If(of.last | is_last):
                    m.d.sync += ek.eq(0)
            with m.If(clear):
                m.d.sync += ek.eq(0)
            done_pkt = rx & of.last & is_last & (ek != 0)
            meas_pkt = done_pkt & c_meas
            counter(self.errors[i], 1, rx & bad)
            counter(self.rx_all[i], 1, done_pkt)
            counter(self.rx_pkts[i], 1, meas_pkt)
            counter(self.rx_flits[i], self.pkt_len, meas_pkt)
            counter(self.lat_sum[i], (now - c_gen)[:TS_WIDTH], meas_pkt)
            counter(self.net_lat_sum[i], (now - c_inj)[:TS_WIDTH], meas_pkt)
            counter(self.head_lat_sum[i], (c_thead - c_inj)[:TS_WIDTH], meas_pkt)
            counter(self.hop_sum[i], c_hops, meas_pkt)
            counter(self.flit_hops[i], self.pkt_len * (c_hops + 1), done_pkt & ~c_mc)
            hl = (c_thead - c_inj)[:16]
            counter(self.hl_sum[i], hl * c_hops, meas_pkt)
            counter(self.h2_sum[i], c_hops * c_hops, meas_pkt)
            counter(self.win_flits[i], 1, rx & (phase == Phase.MEASURE))
        return m
