"""Network interface of a core: SEND -> WRITE packets, incoming packets -> scratchpad,
instruction memory and tag counters, host reads -> READ_RESP packets."""
from amaranth import Module, Signal, Mux
from amaranth.lib import wiring, stream, data, fifo
from amaranth.lib.wiring import In, Out

from .core import ImemReadSignature, ImemWriteSignature, TagIncSignature, send_layout
from hasp.sw import isa
from .packet import PacketFormat, PacketType
from .scratchpad import ReadPortSignature, WritePortSignature

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

    Ingress (request network): ``WRITE`` bodies go to ``spm_wr`` at ``address + i``; when the
    tail word is written and the packet came from a core (``src_host = 0``) the tag counter
    ``tag`` is incremented (``tag_inc``), so a counted packet's data is always in place.
    ``IMEM_WRITE`` bodies go to ``imem_wr``. A ``READ_REQ`` (scratchpad) or ``IMEM_READ``
    (instruction memory, through ``imem_rd``) is latched (one outstanding: the host interface
    issues one read at a time) and never blocks the ingress, so the request network always
    drains into the core: see ``docs/noc.md`` for the deadlock argument.
    Unknown packet types are consumed and flagged on ``error`` (sticky).

    Ports
    -----
    req_out, resp_out : Out(stream of flits)
        To ``NoC.req_in[i]`` / ``NoC.resp_in[i]``.
    req_in : In(stream of flits)
        From ``NoC.req_out[i]``.
    send : In(stream.Signature(send_layout())), send_done : Out(1)
        From/to the core: accepted when the packet starts, ``send_done`` pulses when its tail
        flit has left.
    tag_inc : Out(TagIncSignature), spm_rd : Out(ReadPortSignature), spm_wr :
    Out(WritePortSignature), imem_wr : Out(ImemWriteSignature), imem_rd :
    Out(ImemReadSignature)
        To the core.
    error : Out(1)
        Sticky: an unexpected packet type arrived.
    """

    FIFO_DEPTH = 4

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
        inp = self.req_in
        head = Signal(hdr_l, name="in_hdr")
        m.d.comb += head.eq(inp.payload.data[:hdr_l.size])
        cur = Signal(hdr_l, name="in_cur")        # header of the packet being received
        # The write address is a pointer register (header address, + 1 per body word), so no
        # adder lies between the flip-flops and the core's scratchpad bank arbitration, whose
        # `ready` returns to the router as `req_in.ready`.
        wptr = Signal(max(len(self.spm_wr.addr), len(self.imem_wr.addr)), name="in_wptr")
        rd_pending = Signal(name="rd_pending")
        rd_hdr = Signal(hdr_l, name="rd_hdr")
        rd_taken = Signal(name="rd_taken")         # egress starts the response this cycle
        word = inp.payload.data[:self.cfg.word_width]
        m.d.comb += [
            self.spm_wr.addr.eq(wptr), self.spm_wr.data.eq(word),
            self.imem_wr.addr.eq(wptr), self.imem_wr.data.eq(inp.payload.data),
        ]
        with m.FSM(name="ingress"):
            with m.State("HEAD"):
                is_read = (head.type == PacketType.READ_REQ) | (head.type == PacketType.IMEM_READ)
                m.d.comb += inp.ready.eq(~(rd_pending & is_read))
                with m.If(inp.valid & inp.ready):
                    m.d.sync += [cur.eq(head), wptr.eq(head.address)]
                    with m.Switch(head.type):
                        with m.Case(PacketType.READ_REQ, PacketType.IMEM_READ):
                            m.d.sync += [rd_pending.eq(1), rd_hdr.eq(head)]
                        with m.Case(PacketType.WRITE, PacketType.IMEM_WRITE):
                            with m.If(~inp.payload.last):
                                m.next = "BODY"
                        with m.Default():
                            m.d.sync += self.error.eq(1)
                            with m.If(~inp.payload.last):
                                m.next = "DROP"
            with m.State("BODY"):
                with m.If(cur.type == PacketType.WRITE):
                    m.d.comb += [self.spm_wr.en.eq(inp.valid), inp.ready.eq(self.spm_wr.ready)]
                with m.Else():
                    m.d.comb += [self.imem_wr.en.eq(inp.valid), inp.ready.eq(1)]
                with m.If(inp.valid & inp.ready):
                    m.d.sync += wptr.eq(wptr + 1)
                    with m.If(inp.payload.last):
                        m.next = "HEAD"
                        with m.If((cur.type == PacketType.WRITE) & ~cur.src_host):
                            m.d.comb += [self.tag_inc.valid.eq(1), self.tag_inc.tag.eq(cur.tag)]
            with m.State("DROP"):
                m.d.comb += inp.ready.eq(1)
                with m.If(inp.valid & inp.payload.last):
                    m.next = "HEAD"
        with m.If(rd_taken):
            m.d.sync += rd_pending.eq(0)

        # ---------------- egress ----------------
        job_hdr = Signal(hdr_l, name="eg_hdr")
        job_resp = Signal(name="eg_resp")          # READ_RESP on the response network
        job_dx = Signal.like(inp.payload.dst_x, name="eg_dst_x")
        job_dy = Signal.like(inp.payload.dst_y, name="eg_dst_y")
        rd_addr = Signal(max(len(self.spm_rd.addr), len(self.imem_rd.addr)), name="eg_rd_addr")
        rd_imem = Signal(name="eg_rd_imem")        # the job reads instruction memory
        rd_left = Signal(range(257), name="eg_rd_left")
        out_left = Signal(range(257), name="eg_out_left")
        inflight = Signal(name="eg_inflight")      # a granted read, data next cycle (imem)
        inflight2 = Signal(name="eg_inflight2")    # ... its data in this cycle (scratchpad)
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

        # Memory reads run ahead of the flits, credit-limited by the FIFO. Scratchpad reads
        # wait for a grant; instruction-memory reads have a port of their own. The scratchpad
        # returns data two cycles after the grant (its read latency), the instruction memory
        # one: its word is registered once more (`imem_q`) so both reach the FIFO in the same
        # cycle, `inflight2`.
        want = Signal(name="eg_want")
        m.d.comb += [want.eq((rd_left != 0)
                             & ((q.level + inflight + inflight2) < self.FIFO_DEPTH)),
                     self.spm_rd.addr.eq(rd_addr), self.spm_rd.en.eq(want & ~rd_imem),
                     self.imem_rd.addr.eq(rd_addr), self.imem_rd.en.eq(want & rd_imem)]
        got = Signal(name="eg_got")
        m.d.comb += got.eq(want & (rd_imem | self.spm_rd.ready))
        imem_q = Signal.like(self.imem_rd.data, name="eg_imem_q")
        m.d.sync += [inflight.eq(got), inflight2.eq(inflight), imem_q.eq(self.imem_rd.data)]
        with m.If(got):
            m.d.sync += [rd_addr.eq(rd_addr + 1), rd_left.eq(rd_left - 1)]
        m.d.comb += [q.w_data.eq(Mux(rd_imem, imem_q, self.spm_rd.data)),
                     q.w_en.eq(inflight2)]

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
                        rd_imem.eq(rd_hdr.type == PacketType.IMEM_READ),
                    ]
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
                        rd_imem.eq(0),
                    ]
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
                        m.d.comb += self.send_done.eq(~job_resp)
                        m.next = "IDLE"
        return m
