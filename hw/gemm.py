"""GEMM engine: streams tiles of A and B from a scratchpad through the PE array."""
from amaranth import Module, Signal, Mux
from amaranth.lib import wiring, data, fifo, stream, memory
from amaranth.lib.wiring import In, Out

from .pe_array import PEArray, pe_input_layout, pe_output_layout, COUNTER_WIDTH
from .scratchpad import (Scratchpad, ReadPortSignature, WritePortSignature, delay,
                         room_after)

__all__ = ["GemmEngine", "GemmBench", "gemm_command_layout"]


def gemm_command_layout(addr_width):
    """A GEMM command: ``C[mi, nj] = A[mi] @ B[nj]`` for every tile pair, where tile ``mi`` of A
    is the ``k`` words at ``a_base + mi*k`` (word ``kk`` holds column ``kk`` of the tile, lane
    ``i`` = row ``i``) and tile ``nj`` of B is the ``k`` words at ``b_base + nj*k`` (word ``kk``
    holds row ``kk``, lane ``j`` = column ``j``). Tiles come out in order ``mi`` outer, ``nj``
    inner."""
    return data.StructLayout({
        "a_base": addr_width, "b_base": addr_width,
        "k": 16, "m_tiles": 8, "n_tiles": 8,
    })


class GemmEngine(wiring.Component):
    """Address generator + PE array. Runs one :func:`gemm_command_layout` command at a time.

    Ports
    -----
    cmd : In(gemm_command_layout)
        Command, sampled when ``start`` is high and the engine is idle (the engine's command
        registers follow it every idle cycle).
    start : In(1)
        Start pulse.
    busy : Out(1)
        High from the cycle after ``start`` until the last result row has left.
    rd_a, rd_b : Out(ReadPortSignature)
        Scratchpad read ports for A and B: one beat per cycle when A and B are in different
        banks, one per two cycles when they share a bank. ``rd_a`` must be the scratchpad's
        highest-priority port and ``rd_b`` the next one: the engine knows its grants from
        its own addresses (A always, B unless A takes B's bank) and ignores ``ready``.

    Parameters
    ----------
    rows, cols, data_width, acc_width : int
        The PE array.
    addr_width : int
        Scratchpad word-address width.
    bank_offset : int
        Position of the bank field in an address (:attr:`Scratchpad.offset_bits`).
    multiplier : str
        The PE array's multiplier (:data:`hasp.hw.pe_array.MULTIPLIERS`).
    out : Out(stream.Signature(pe_output_layout))
        Result rows, ``rows`` per tile, tiles in command order.
    macs, mac_cycles : Out(48)
        The PE array's counters (MACs, cycles with a beat in the accumulators).
    other_en, other_bank : In(1), In(bank bits)
        A read on the scratchpad port above ``rd_a`` takes bank ``other_bank`` this cycle
        (0 if there is no such port).
    """

    #: Beats read and not yet taken by the PE array (in flight or in the FIFO): a beat's
    #: slot comes back ``READ_LATENCY + 2`` cycles after its read (the read, the FIFO write,
    #: `room` as a flip-flop), so this many keep one beat a cycle going.
    FIFO_DEPTH = Scratchpad.READ_LATENCY + 2

    def _bank(self, addr):
        """The scratchpad bank of ``addr`` (its bits from ``bank_offset`` up)."""
        return addr[self.bank_offset:]

    def __init__(self, rows, cols, data_width, acc_width, addr_width, *, bank_offset,
                 multiplier="generic"):
        if isinstance(bank_offset, bool) or not isinstance(bank_offset, int):
            raise TypeError(f"bank_offset must be an integer, not {bank_offset!r}")
        if not 0 <= bank_offset <= addr_width:
            raise ValueError(f"bank_offset must be in [0, {addr_width}], not {bank_offset!r}")
        self.bank_offset = bank_offset
        self.rows, self.cols, self.data_width = rows, cols, data_width
        self.word_width = max(rows, cols) * data_width
        self.pe = PEArray(rows, cols, data_width, acc_width, multiplier=multiplier)
        super().__init__({
            "cmd": In(gemm_command_layout(addr_width)),
            "start": In(1),
            "busy": Out(1),
            "rd_a": Out(ReadPortSignature(addr_width, self.word_width)),
            "rd_b": Out(ReadPortSignature(addr_width, self.word_width)),
            "out": Out(stream.Signature(pe_output_layout(rows, cols, acc_width))),
            "macs": Out(COUNTER_WIDTH),
            "mac_cycles": Out(COUNTER_WIDTH),
            "clear_counters": In(1),
            "other_en": In(1),
            "other_bank": In(max(1, addr_width - bank_offset)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.pe = pe = self.pe
        R, C, dw = self.rows, self.cols, self.data_width
        in_layout = pe_input_layout(R, C, dw)
        m.submodules.fifo = q = fifo.SyncFIFO(width=in_layout.size, depth=self.FIFO_DEPTH)

        cmd = Signal.like(self.cmd, name="cmd_r")
        # Down-counters (zero tests, no compare with k-1) and address pointers (the read
        # addresses come straight from flip-flops into the scratchpad's bank arbitration).
        kleft = Signal(16, name="kleft")        # beats left in the tile after this one
        njleft = Signal(8, name="njleft")       # B tiles left after this one
        mileft = Signal(8, name="mileft")       # A tiles left after this one
        first = Signal(name="first")            # the next beat starts a tile
        a_tile = Signal.like(self.cmd.a_base, name="a_tile")   # a_base + mi*k
        b_tile = Signal.like(self.cmd.b_base, name="b_tile")   # b_base + nj*k
        a_ptr = Signal.like(self.cmd.a_base, name="a_ptr")     # a_tile + kk
        b_ptr = Signal.like(self.cmd.b_base, name="b_ptr")     # b_tile + kk
        issuing = Signal(name="issuing")
        # Result rows still to come from tiles whose last beat has been issued (R are added
        # when a tile's last read pair fires, one is taken per output row): `busy` without
        # multiplying m_tiles * n_tiles at the start.
        rows_left = Signal(16, name="rows_left")    # bounded by the tiles in flight

        # k - 1 and n_tiles - 1 are computed from the command input and registered for the
        # reloads, so `start` only selects (no subtraction behind it).
        k_m1 = Signal(16, name="k_m1")
        nt_m1 = Signal(8, name="nt_m1")
        k_in_m1 = Signal(16, name="k_in_m1")
        nt_in_m1 = Signal(8, name="nt_in_m1")
        mt_in_m1 = Signal(8, name="mt_in_m1")
        m.d.comb += [k_in_m1.eq(self.cmd.k - 1), nt_in_m1.eq(self.cmd.n_tiles - 1),
                     mt_in_m1.eq(self.cmd.m_tiles - 1)]
        # A tile's R rows are added to `rows_left` the cycle after its last read pair
        # (`tile_done_r`: no adder behind `fire`); `busy` counts that cycle in.
        tile_done_r = Signal(name="tile_done_r")
        # `busy` = issuing | tile_done_r | (rows_left != 0), kept as the flip-flop `idle` (its
        # inverse, computed from the next values of the three): it enables the ~100 command
        # registers' reloads, and decoded from `rows_left` it was the tiny chip's seed-1
        # critical path (91.4 MHz, `rows_left` -> `busy` -> the reload of `kleft`).
        idle = Signal(init=1, name="idle")
        m.d.comb += self.busy.eq(~idle)
        # While idle the command registers follow `cmd` every cycle, so `start` itself only
        # sets `issuing` (a small fan-out behind the caller's start condition).
        # `k_z`, `nj_z`, `mi_z`: the counters are zero, as flip-flops kept with them (so
        # after `fire` only these flags decide, no zero test of a counter).
        k_z, nj_z, mi_z = Signal(name="k_z"), Signal(name="nj_z"), Signal(name="mi_z")
        k_m1_z, nt_m1_z = Signal(name="k_m1_z"), Signal(name="nt_m1_z")
        issuing_n = Signal(name="issuing_n")
        m.d.sync += issuing.eq(issuing_n)

        # Issue one A/B read pair per cycle while the FIFO has room (counting the reads in
        # flight: `used` = beats issued and not yet taken by the PE array).
        # When A and B sit in the same bank, the scratchpad grants A first: its word is kept in
        # `a_hold` and B is read on a later cycle (half rate, never a deadlock).
        room = Signal(init=1, name="room")      # used < FIFO_DEPTH, as a flip-flop
        used = Signal(range(self.FIFO_DEPTH + 1), name="used")
        want = Signal(name="want")
        a_done = Signal(name="a_done")          # A of the current beat already read
        m.d.comb += want.eq(issuing & room)
        m.d.comb += [
            self.rd_a.addr.eq(a_ptr), self.rd_a.en.eq(want & ~a_done),
            self.rd_b.addr.eq(b_ptr), self.rd_b.en.eq(want),
        ]
        # The read pair completes (`fire`) when B is granted with A or after it. The grants are
        # worked out here from registers, not taken from `ready` (so no path runs through the
        # scratchpad's bank arbitration into the engine's counters): `rd_a` and `rd_b` must be
        # the scratchpad's ports right below the one of `other_en` / `other_bank`, in that
        # order, so A is granted unless `other` takes its bank and B unless `other` or A does.
        same_bank = Signal(name="same_bank")
        m.d.comb += same_bank.eq(self._bank(a_ptr) == self._bank(b_ptr))
        other_a = Signal(name="other_a")          # the higher port takes A's bank
        other_b = Signal(name="other_b")          # ... B's
        m.d.comb += [other_a.eq(self.other_en & (self.other_bank == self._bank(a_ptr))),
                     other_b.eq(self.other_en & (self.other_bank == self._bank(b_ptr)))]
        got_a = Signal(name="got_a")              # A is read (now or before)
        m.d.comb += got_a.eq(a_done | ~other_a)
        fire = Signal(name="fire")
        m.d.comb += fire.eq(want & got_a & ~other_b & (a_done | ~same_bank))
        # The pop comes from the FIFO's level and the PE array's `ready`: `room` is not
        # behind the adder (`used` <= FIFO_DEPTH).
        pop = Signal(name="pop")
        m.d.comb += pop.eq(q.r_rdy & q.r_en)
        m.d.sync += [used.eq(used + fire - pop),
                     room.eq(room_after(used, fire, pop, self.FIFO_DEPTH))]
        # The scratchpad's read data arrives READ_LATENCY cycles after the grant: every
        # per-beat flag is delayed through as many registers to meet its words.
        a_only = Signal(name="a_only")          # an A-only grant (B not granted with it)
        m.d.comb += a_only.eq(want & ~a_done & ~other_a & (same_bank | other_b))
        L = Scratchpad.READ_LATENCY
        inflight = delay(m, fire, L, "inflight")
        cap_a = delay(m, a_only, L, "cap_a")                # capture A into a_hold
        use_hold = delay(m, fire & a_done, L, "use_hold")   # the beat takes a_hold
        first_d = delay(m, first, L, "first_d")
        last_d = delay(m, k_z, L, "last_d")
        a_hold = Signal(self.word_width, name="a_hold")
        with m.If(cap_a):
            m.d.sync += a_hold.eq(self.rd_a.data)
        with m.If(fire):
            m.d.sync += a_done.eq(0)
        with m.Elif(a_only):
            m.d.sync += a_done.eq(1)
        # The loop counters' next values after a read pair, from registers only: `fire` is
        # then just the flip-flops' enable (one LUT level after it, not the loop-end selects
        # and the address adders behind it).
        next_a = Signal.like(a_tile, name="next_a")
        next_b = Signal.like(b_tile, name="next_b")
        m.d.comb += [next_a.eq(a_tile + cmd.k), next_b.eq(b_tile + cmd.k)]
        new_b = Signal(name="new_b")            # the beat ends a tile: next B tile
        new_a = Signal(name="new_a")            # ... and the last B tile: next A tile
        m.d.comb += [new_b.eq(k_z), new_a.eq(k_z & nj_z & ~mi_z)]
        kleft_n, k_z_n = Signal.like(kleft, name="kleft_n"), Signal(name="k_z_n")
        njleft_n, nj_z_n = Signal.like(njleft, name="njleft_n"), Signal(name="nj_z_n")
        mileft_n, mi_z_n = Signal.like(mileft, name="mileft_n"), Signal(name="mi_z_n")
        a_tile_n, a_ptr_n = Signal.like(a_tile, name="a_tile_n"), Signal.like(a_ptr, name="a_ptr_n")
        b_tile_n, b_ptr_n = Signal.like(b_tile, name="b_tile_n"), Signal.like(b_ptr, name="b_ptr_n")
        m.d.comb += [
            kleft_n.eq(Mux(k_z, k_m1, kleft - 1)), k_z_n.eq(Mux(k_z, k_m1_z, kleft == 1)),
            njleft_n.eq(Mux(new_b, Mux(nj_z, nt_m1, njleft - 1), njleft)),
            nj_z_n.eq(Mux(new_b, Mux(nj_z, nt_m1_z, njleft == 1), nj_z)),
            mileft_n.eq(Mux(new_a, mileft - 1, mileft)),
            mi_z_n.eq(Mux(new_a, mileft == 1, mi_z)),
            a_tile_n.eq(Mux(new_a, next_a, a_tile)),
            b_tile_n.eq(Mux(new_b, Mux(nj_z, cmd.b_base, next_b), b_tile)),
            a_ptr_n.eq(Mux(k_z, Mux(nj_z, Mux(mi_z, a_ptr, next_a), a_tile), a_ptr + 1)),
            b_ptr_n.eq(Mux(k_z, Mux(nj_z, cmd.b_base, next_b), b_ptr + 1)),
        ]
        with m.If(idle):
            m.d.sync += [cmd.eq(self.cmd), kleft.eq(k_in_m1), k_m1.eq(k_in_m1),
                         njleft.eq(nt_in_m1), nt_m1.eq(nt_in_m1), mileft.eq(mt_in_m1),
                         k_z.eq(k_in_m1 == 0), k_m1_z.eq(k_in_m1 == 0),
                         nj_z.eq(nt_in_m1 == 0), nt_m1_z.eq(nt_in_m1 == 0),
                         mi_z.eq(mt_in_m1 == 0),
                         first.eq(1),
                         a_tile.eq(self.cmd.a_base), b_tile.eq(self.cmd.b_base),
                         a_ptr.eq(self.cmd.a_base), b_ptr.eq(self.cmd.b_base)]
        with m.Elif(fire):
            m.d.sync += [kleft.eq(kleft_n), k_z.eq(k_z_n), first.eq(k_z),
                         njleft.eq(njleft_n), nj_z.eq(nj_z_n),
                         mileft.eq(mileft_n), mi_z.eq(mi_z_n),
                         a_tile.eq(a_tile_n), a_ptr.eq(a_ptr_n),
                         b_tile.eq(b_tile_n), b_ptr.eq(b_ptr_n)]
        empty = (self.cmd.k == 0) | (self.cmd.m_tiles == 0) | (self.cmd.n_tiles == 0)
        m.d.comb += issuing_n.eq(Mux(self.start & idle, ~empty,
                                     issuing & ~(fire & k_z & nj_z & mi_z)))

        # The words arrive from the scratchpad's output registers (through its bank
        # multiplexer) and go straight into the FIFO.
        beat = Signal(in_layout, name="beat")
        a_word = Signal(self.word_width, name="a_word")
        m.d.comb += a_word.eq(Mux(use_hold, a_hold, self.rd_a.data))
        m.d.comb += [
            beat.a.as_value().eq(a_word[:R * dw]),
            beat.b.as_value().eq(self.rd_b.data[:C * dw]),
            beat.first.eq(first_d), beat.last.eq(last_d),
        ]
        m.d.comb += [
            q.w_data.eq(beat), q.w_en.eq(inflight),
            pe.inp.payload.eq(q.r_data), pe.inp.valid.eq(q.r_rdy), q.r_en.eq(pe.inp.ready),
        ]
        wiring.connect(m, pe.out, wiring.flipped(self.out))
        tile_done = Signal(name="tile_done")
        m.d.comb += tile_done.eq(fire & k_z)
        # `rows_left_n == 0` is selected by the row taken this cycle from two tests of
        # registers only (`out.valid` comes from the PE array's result row counter: through
        # the subtraction and a zero test it was seed 1's critical path into `idle`, 88.8 MHz).
        out_take = Signal(name="out_take")
        rows_added = Signal.like(rows_left, name="rows_added")
        m.d.comb += [out_take.eq(self.out.valid & self.out.ready),
                     rows_added.eq(rows_left + Mux(tile_done_r, R, 0))]
        rows_left_n_z = Mux(out_take, rows_added == 1, rows_added == 0)
        m.d.sync += [tile_done_r.eq(tile_done), rows_left.eq(rows_added - out_take),
                     idle.eq(~issuing_n & ~tile_done & rows_left_n_z)]
        m.d.comb += [self.macs.eq(pe.macs), self.mac_cycles.eq(pe.busy),
                     pe.clear_counters.eq(self.clear_counters)]
        return m


class GemmBench(wiring.Component):
    """PE array + scratchpad + result memory, runnable on its own: the unit under test of the
    GEMM regressions and of ``hasp bench pe-array``.

    The host (a testbench) loads A and B into the scratchpad, writes a command, pulses
    ``start`` and waits for ``done``; the engine then streams every tile with no host
    involvement, and result rows land in the result memory at ``tile * rows + row``.

    Ports
    -----
    ld_addr, ld_data, ld_en : In
        Scratchpad write (one word per cycle).
    rb_addr : In, rb_data : Out
        Scratchpad read-back, data ``Scratchpad.READ_LATENCY`` cycles after the address (the
        scratchpad's read latency; lowest priority: valid only while the engine is idle).
    a_base, b_base, k, m_tiles, n_tiles : In
        The command (see :func:`gemm_command_layout`), sampled on ``start``.
    start : In(1)
        Start pulse; clears ``cycles``, ``macs``, ``mac_cycles`` and ``done``.
    busy, done : Out(1)
        ``done`` rises when the last result row is stored and stays high until ``start``.
    res_addr : In, res_data : Out(cols * acc_width)
        Result memory read, data one cycle after the address; column ``j`` at bits
        ``[j*acc_width, (j+1)*acc_width)``.
    cycles : Out(48)
        Cycles from ``start`` to ``done``.
    macs, mac_cycles : Out(48)
        PE array counters for the last command.
    """

    def __init__(self, cfg, result_depth=None):
        pe, spm = cfg.pe, cfg.spm
        self.cfg = cfg
        self.result_depth = result_depth or spm.depth
        self.spm = Scratchpad(cfg.word_width, spm.depth, spm.banks, read_ports=3, write_ports=1)
        self.engine = GemmEngine(pe.rows, pe.cols, pe.data_width, pe.acc_width, self.spm.addr_width,
                                 bank_offset=self.spm.offset_bits)
        aw = self.spm.addr_width
        rw = (self.result_depth - 1).bit_length()
        super().__init__({
            "ld_addr": In(aw), "ld_data": In(cfg.word_width), "ld_en": In(1),
            "rb_addr": In(aw), "rb_data": Out(cfg.word_width),
            "a_base": In(aw), "b_base": In(aw), "k": In(16), "m_tiles": In(8), "n_tiles": In(8),
            "start": In(1), "busy": Out(1), "done": Out(1),
            "res_addr": In(rw), "res_data": Out(pe.cols * pe.acc_width),
            "cycles": Out(COUNTER_WIDTH), "macs": Out(COUNTER_WIDTH),
            "mac_cycles": Out(COUNTER_WIDTH),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.spm = spm = self.spm
        m.submodules.engine = eng = self.engine
        R, C, aw = self.cfg.pe.rows, self.cfg.pe.cols, self.cfg.pe.acc_width

        wiring.connect(m, eng.rd_a, spm.rd[0])
        wiring.connect(m, eng.rd_b, spm.rd[1])
        m.d.comb += [
            spm.rd[2].addr.eq(self.rb_addr), spm.rd[2].en.eq(1), self.rb_data.eq(spm.rd[2].data),
            spm.wr[0].addr.eq(self.ld_addr), spm.wr[0].data.eq(self.ld_data),
            spm.wr[0].en.eq(self.ld_en),
            eng.cmd.a_base.eq(self.a_base), eng.cmd.b_base.eq(self.b_base), eng.cmd.k.eq(self.k),
            eng.cmd.m_tiles.eq(self.m_tiles), eng.cmd.n_tiles.eq(self.n_tiles),
            eng.start.eq(self.start), eng.clear_counters.eq(self.start & ~eng.busy),
            eng.other_en.eq(0),          # A and B are the top ports, the read-back the last
            self.busy.eq(eng.busy), self.macs.eq(eng.macs), self.mac_cycles.eq(eng.mac_cycles),
        ]

        m.submodules.results = res = memory.Memory(shape=C * aw, depth=self.result_depth, init=[])
        wp, rp = res.write_port(), res.read_port()
        waddr = Signal.like(wp.addr, name="res_waddr")
        m.d.comb += [
            eng.out.ready.eq(1),
            wp.en.eq(eng.out.valid), wp.addr.eq(waddr), wp.data.eq(eng.out.payload.row),
            rp.addr.eq(self.res_addr), self.res_data.eq(rp.data),
        ]
        with m.If(eng.out.valid):
            m.d.sync += waddr.eq(waddr + 1)

        started = Signal(name="started")
        with m.If(self.start & ~eng.busy):
            m.d.sync += [self.cycles.eq(0), self.done.eq(0), started.eq(1), waddr.eq(0)]
        with m.Elif(started):
            m.d.sync += self.cycles.eq(self.cycles + 1)
            with m.If(~eng.busy):
                m.d.sync += [started.eq(0), self.done.eq(1)]
        return m
