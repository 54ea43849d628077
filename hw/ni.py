"""Network interface of a core: SEND -> WRITE packets, incoming packets -> scratchpad,
instruction memory and tag counters, host reads -> READ_RESP packets."""
from amaranth import Module, Signal, Mux
from amaranth.lib import wiring, stream, data, fifo
from amaranth.lib.wiring import In, Out

from .core import ImemReadSignature, ImemWriteSignature, TagIncSignature, send_layout
from hasp.sw import isa
from .packet import PacketFormat, PacketType
from .scratchpad import Scratchpad, ReadPortSignature, WritePortSignature, delay

__all__ = ["NetworkInterface"]


class NetworkInterface(wiring.Component):
    """Connects one core at mesh position (``x``, ``y``) to the request and response networks.

    Egress (one packet at a time, from a 4-entry read pipeline so body flits leave one per
    cycle): a SEND request from the core becomes a ``WRITE`` packet on the request network;
    a pending host ``READ_REQ`` becomes a ``READ_RESP`` packet on the response network. Both
    read the scratchpad through ``spm_rd``; a pending read is served before the next SEND.

    Multicast ``WRITE`` packets (``mc_dx``/``mc_dy`` non-zero, one copy delivered to every
    core of the rectangle by the lane routers) are received exactly like unicast ones. A SEND
    becomes a multicast packet when :func:`hasp.hw.core.send_layout` has ``mc_dx``/``mc_dy``
    fields (``x``/``y`` is then the rectangle's corner; at most ``noc.mc_depth - 1`` words).

    Ingress (request network), one flit per cycle, ``req_in.ready`` a flip-flop: ``WRITE``
    bodies go to ``spm_wr`` at ``address + i`` (through a write register, the cycle after
    they arrive, and ``spm_wr`` itself is a register, so the core's write arbitration starts
    at flip-flops; the core always accepts them); with the tail word of a packet from a core
    (``src_host = 0``) the tag counter ``tag`` is incremented (``tag_inc``), so a counted
    packet's data is always in place. ``IMEM_WRITE`` bodies go to ``imem_wr``. A ``READ_REQ``
    (scratchpad) or ``IMEM_READ`` (instruction memory, through ``imem_rd``) is latched, two
    deep (the host interface has one read outstanding, so the latch never fills and the
    ingress never waits for the egress): the request network always drains into the core,
    see ``docs/noc.md`` for the deadlock argument. Unknown packet types are consumed and
    flagged on ``error`` (sticky).

    Ports
    -----
    req_out, resp_out : Out(stream of flits)
        To ``NoC.req_in[i]`` / ``NoC.resp_in[i]``.
    req_in : In(stream of flits)
        From ``NoC.req_out[i]``.
    send : In(stream.Signature(send_layout())), send_done : Out(1)
        From/to the core: accepted when the packet starts, ``send_done`` pulses the cycle
        after its tail flit has left.
    tag_inc : Out(TagIncSignature), spm_rd : Out(ReadPortSignature), spm_wr :
    Out(WritePortSignature), imem_wr : Out(ImemWriteSignature), imem_rd :
    Out(ImemReadSignature)
        To the core.
    error : Out(1)
        Sticky: an unexpected packet type arrived.
    """

    #: Egress words read and not yet sent (in flight or in the FIFO): a word's slot comes
    #: back ``READ_LATENCY + 2`` cycles after its read (the read request as a flip-flop, the
    #: read, the FIFO write), so this many keep one flit a cycle going.
    FIFO_DEPTH = Scratchpad.READ_LATENCY + 2

    def __init__(self, cfg, x, y):
        self.cfg, self.x, self.y = cfg, x, y
        self.fmt = PacketFormat.from_config(cfg)
        flit = stream.Signature(self.fmt.flit)
        aw = cfg.spm.addr_width
        super().__init__({
            "req_out": Out(flit), "resp_out": Out(flit), "req_in": In(flit),
            "send": In(stream.Signature(send_layout())), "send_done": Out(1),
            "tag_inc": Out(TagIncSignature()),
            "spm_rd": Out(ReadPortSignature(aw, cfg.word_width)),
            "spm_wr": Out(WritePortSignature(aw, cfg.word_width)),
            "imem_wr": Out(ImemWriteSignature(cfg.core.imem_depth)),
            "imem_rd": Out(ImemReadSignature(cfg.core.imem_depth)),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        fmt = self.fmt
        hdr_l = fmt.header

        # ---------------- ingress ----------------
        # Every flit from the router is registered first (`rx`) and handled from there, and
        # `req_in.ready` is a flip-flop (computed from the next state), so no path runs from
        # this interface's state through its logic into the router's switch allocation. Body words go from `rx` to the core
        # (which always accepts external writes); up to two READ_REQ / IMEM_READ headers are
        # latched, and the ingress waits only when a third could arrive (the host has at most
        # one read outstanding, so in practice it never waits).
        inp = self.req_in
        rx_v = Signal(name="in_rx_v")
        rx = Signal.like(inp.payload, name="in_rx")
        rx_read = Signal(name="in_rx_read")       # `rx` could be a READ_REQ / IMEM_READ head
        in_type = data.View(hdr_l, inp.payload.data[:hdr_l.size]).type
        m.d.sync += [rx_v.eq(inp.valid & inp.ready), rx.eq(inp.payload),
                     rx_read.eq((in_type == PacketType.READ_REQ)
                                | (in_type == PacketType.IMEM_READ))]
        head = Signal(hdr_l, name="in_hdr")
        m.d.comb += head.eq(rx.data[:hdr_l.size])
        cur = Signal(hdr_l, name="in_cur")        # header of the packet being received
        # The write address is a pointer register (header address, + 1 per body word).
        wptr = Signal(max(len(self.spm_wr.addr), len(self.imem_wr.addr)), name="in_wptr")
        rd_pending = Signal(name="rd_pending")
        rd_hdr = Signal(hdr_l, name="rd_hdr")
        rd_pending2 = Signal(name="rd_pending2")   # a second read, behind `rd_hdr`
        rd_hdr2 = Signal(hdr_l, name="rd_hdr2")
        rd_taken = Signal(name="rd_taken")         # egress starts the response this cycle
        new_read = Signal(name="in_new_read")
        is_read = rx_read
        # Stall while both read slots may be full next cycle, or while one may be and the
        # flit taken now may be a read header (a body word that looks like one costs a
        # cycle, only with a read pending). "May be": from this cycle's registers, as if
        # `rx` were a new read (`rx_v & rx_read`) and the egress took none, so `ready`'s
        # input does not wait on the ingress state machine and the read latch (tiny chip
        # seed 2's critical path at c3c0b67, 93.3 MHz: `in_rx_v` -> the latch's next state
        # -> `ready`, 5 levels).
        ready = Signal(init=1, name="in_ready")
        pend_n, pend2_n = Signal(name="rd_pending_n"), Signal(name="rd_pending2_n")
        rx_new = rx_v & rx_read
        m.d.sync += ready.eq(~(rd_pending2 | (rd_pending & rx_new)) & ~(
            (rd_pending | rx_new) & inp.valid & inp.ready & (
                (in_type == PacketType.READ_REQ) | (in_type == PacketType.IMEM_READ))))
        # The scratchpad write and the tag increment leave through registers (the increment
        # with its tail word, so a counted packet's data is still in place first): the write
        # request goes into the core's bank arbitration, and from there into REQUANT's write
        # grant (the tiny chip's critical path at 91.5 MHz ran from the ingress state through
        # the write enable and that grant).
        spm_en, inc_v = Signal(name="in_spm_en"), Signal(name="in_tag_inc")
        m.d.sync += [self.spm_wr.en.eq(spm_en), self.spm_wr.addr.eq(wptr),
                     self.spm_wr.data.eq(rx.data[:self.cfg.word_width]),
                     self.tag_inc.valid.eq(inc_v), self.tag_inc.tag.eq(cur.tag)]
        m.d.comb += [
            inp.ready.eq(ready),
            self.imem_wr.addr.eq(wptr), self.imem_wr.data.eq(rx.data),
        ]
        with m.FSM(name="ingress"):
            with m.State("HEAD"):
                with m.If(rx_v):
                    m.d.sync += [cur.eq(head), wptr.eq(head.address)]
                    with m.If(is_read):
                        m.d.comb += new_read.eq(1)
                    with m.Elif((head.type == PacketType.WRITE)
                                | (head.type == PacketType.IMEM_WRITE)):
                        with m.If(~rx.last):
                            m.next = "BODY"
                    with m.Else():
                        m.d.sync += self.error.eq(1)
                        with m.If(~rx.last):
                            m.next = "DROP"
            with m.State("BODY"):
                with m.If(cur.type == PacketType.WRITE):
                    m.d.comb += [spm_en.eq(rx_v), inc_v.eq(rx_v & rx.last & ~cur.src_host)]
                with m.Else():
                    m.d.comb += self.imem_wr.en.eq(rx_v)
                with m.If(rx_v):
                    m.d.sync += wptr.eq(wptr + 1)
                    with m.If(rx.last):
                        m.next = "HEAD"
            with m.State("DROP"):
                with m.If(rx_v & rx.last):
                    m.next = "HEAD"
        # The read latch: two slots, the egress takes the first.
        m.d.comb += [pend_n.eq(rd_pending), pend2_n.eq(rd_pending2)]
        m.d.sync += [rd_pending.eq(pend_n), rd_pending2.eq(pend2_n)]
        with m.If(new_read):
            with m.If(rd_pending & ~rd_taken):
                m.d.comb += pend2_n.eq(1)
                m.d.sync += rd_hdr2.eq(head)
            with m.Else():
                m.d.comb += pend_n.eq(1)
                m.d.sync += rd_hdr.eq(head)
        with m.Elif(rd_taken):
            m.d.comb += [pend_n.eq(rd_pending2), pend2_n.eq(0)]
            m.d.sync += rd_hdr.eq(rd_hdr2)

        # ---------------- egress ----------------
        job_hdr = Signal(hdr_l, name="eg_hdr")
        job_resp = Signal(name="eg_resp")          # READ_RESP on the response network
        job_dx = Signal.like(inp.payload.dst_x, name="eg_dst_x")
        job_dy = Signal.like(inp.payload.dst_y, name="eg_dst_y")
        rd_addr = Signal(max(len(self.spm_rd.addr), len(self.imem_rd.addr)), name="eg_rd_addr")
        rd_imem = Signal(name="eg_rd_imem")        # the job reads instruction memory
        rd_left = Signal(range(257), name="eg_rd_left")
        out_left = Signal(range(257), name="eg_out_left")
        word_w = max(self.cfg.word_width, isa.INSN_BITS)
        m.submodules.eg_fifo = q = fifo.SyncFIFO(width=word_w, depth=self.FIFO_DEPTH)

        head_flit = Signal(fmt.flit, name="eg_head_flit")
        body_flit = Signal(fmt.flit, name="eg_body_flit")
        for f in (head_flit, body_flit):
            m.d.comb += [f.dst_x.eq(job_dx), f.dst_y.eq(job_dy), f.to_host.eq(job_resp)]
        m.d.comb += [
            head_flit.data.eq(job_hdr), head_flit.last.eq(0),
            body_flit.data.eq(q.r_data), body_flit.last.eq(out_left == 1),
        ]
        out_valid = Signal(name="eg_valid")
        out_flit = Signal(fmt.flit, name="eg_flit")
        out_ready = Signal(name="eg_ready")
        m.d.comb += [
            self.req_out.payload.eq(out_flit), self.resp_out.payload.eq(out_flit),
            self.req_out.valid.eq(out_valid & ~job_resp), self.resp_out.valid.eq(out_valid & job_resp),
            out_ready.eq(Mux(job_resp, self.resp_out.ready, self.req_out.ready)),
        ]

        # Memory reads run ahead of the flits, credit-limited by the FIFO. Both memories grant
        # every request (the core's external scratchpad port has the highest priority, the
        # instruction memory a port of its own), and the requests are flip-flops (`rd_spm`,
        # `rd_im`: words left to read and a FIFO entry not claimed by a word in it or in
        # flight, from next-state values), so nothing in the core waits on logic here. The
        # scratchpad returns data READ_LATENCY cycles after the request, the instruction
        # memory one: its word is registered READ_LATENCY - 1 times more (`eg_imem_q`) so both
        # reach the FIFO in the same cycle, `inflight`.
        rd_more = Signal(name="eg_rd_more")
        rd_more_n = Signal(name="eg_rd_more_next")
        rd_imem_n = Signal(name="eg_rd_imem_next")
        credits = Signal(range(self.FIFO_DEPTH + 1), init=self.FIFO_DEPTH, name="eg_credits")
        credits_next = Signal.like(credits, name="eg_credits_next")
        rd_spm, rd_im = Signal(name="eg_rd_spm"), Signal(name="eg_rd_imem_en")
        got = Signal(name="eg_got")
        m.d.comb += [got.eq(rd_spm | rd_im),
                     self.spm_rd.addr.eq(rd_addr), self.spm_rd.en.eq(rd_spm),
                     self.imem_rd.addr.eq(rd_addr), self.imem_rd.en.eq(rd_im),
                     rd_more_n.eq(rd_more), rd_imem_n.eq(rd_imem),
                     credits_next.eq(credits - got + (q.r_en & q.r_rdy))]
        L = Scratchpad.READ_LATENCY
        inflight = delay(m, got, L, "eg_inflight")
        imem_q = delay(m, self.imem_rd.data, L - 1, "eg_imem_q")
        with m.If(got):
            m.d.comb += rd_more_n.eq(rd_left != 1)
            m.d.sync += [rd_addr.eq(rd_addr + 1), rd_left.eq(rd_left - 1)]
        want_n = rd_more_n & (credits_next != 0)
        m.d.sync += [credits.eq(credits_next), rd_more.eq(rd_more_n), rd_imem.eq(rd_imem_n),
                     rd_spm.eq(want_n & ~rd_imem_n), rd_im.eq(want_n & rd_imem_n)]
        m.d.comb += [q.w_data.eq(Mux(rd_imem, imem_q, self.spm_rd.data)),
                     q.w_en.eq(inflight)]

        # `send_done` is a flip-flop (a cycle after the tail flit): combinational, it ran from
        # the router's FIFO level through `out_ready` into the core's sequencer state (the
        # tiny chip's critical path, 92.1 MHz).
        m.d.sync += self.send_done.eq(0)
        me_x, me_y = self.x, self.y
        with m.FSM(name="egress"):
            with m.State("IDLE"):
                with m.If(rd_pending):
                    m.d.comb += rd_taken.eq(1)
                    m.d.sync += [
                        job_resp.eq(1), job_dx.eq(0), job_dy.eq(0),
                        job_hdr.eq(0), job_hdr.type.eq(PacketType.READ_RESP),
                        job_hdr.tag.eq(rd_hdr.tag), job_hdr.length.eq(rd_hdr.length),
                        job_hdr.address.eq(rd_hdr.address),
                        job_hdr.src_x.eq(me_x), job_hdr.src_y.eq(me_y),
                        rd_addr.eq(rd_hdr.address), rd_left.eq(rd_hdr.length),
                        out_left.eq(rd_hdr.length),
                    ]
                    m.d.comb += [rd_more_n.eq(rd_hdr.length != 0),
                                 rd_imem_n.eq(rd_hdr.type == PacketType.IMEM_READ)]
                    m.next = "HEAD"
                with m.Elif(self.send.valid):
                    p = self.send.payload
                    m.d.comb += self.send.ready.eq(1)
                    m.d.sync += [
                        job_resp.eq(0), job_dx.eq(p.x), job_dy.eq(p.y),
                        job_hdr.eq(0), job_hdr.type.eq(PacketType.WRITE),
                        job_hdr.tag.eq(p.tag), job_hdr.length.eq(p.len),
                        job_hdr.address.eq(p.dst), job_hdr.src_x.eq(me_x), job_hdr.src_y.eq(me_y),
                        rd_addr.eq(p.src), rd_left.eq(p.len), out_left.eq(p.len),
                    ]
                    m.d.comb += [rd_more_n.eq(p.len != 0), rd_imem_n.eq(0)]
                    # multicast SEND, once the core's send layout carries the rectangle
                    # (docs/noc.md, "Multicast from the core")
                    members = send_layout().members
                    if "mc_dx" in members and "mc_dy" in members:
                        m.d.sync += [job_hdr.mc_dx.eq(p.mc_dx), job_hdr.mc_dy.eq(p.mc_dy)]
                    m.next = "HEAD"
            with m.State("HEAD"):
                m.d.comb += [out_valid.eq(1), out_flit.eq(head_flit)]
                with m.If(out_ready):
                    m.next = "BODY"
            with m.State("BODY"):
                m.d.comb += [out_valid.eq(q.r_rdy), out_flit.eq(body_flit),
                             q.r_en.eq(out_ready)]
                with m.If(q.r_rdy & out_ready):
                    m.d.sync += out_left.eq(out_left - 1)
                    with m.If(out_left == 1):
                        m.d.sync += self.send_done.eq(~job_resp)
                        m.next = "IDLE"
        return m
