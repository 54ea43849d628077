"""One HASP core: sequencer, instruction memory, scratchpad, GEMM engine, accumulator memory,
vector (requantisation) unit, tag counters and performance counters.

The instruction set is :mod:`hasp.sw.isa`; the decoder reads every field through
``data.View(isa.LAYOUTS[op], word)``, so the bit positions are defined in one place only.
"""
from amaranth import Module, Signal, Mux, Const, Cat, signed
from amaranth.lib import wiring, stream, data, memory
from amaranth.lib.wiring import In, Out

from hasp.sw import golden, isa
from .gemm import GemmEngine
from .pe_array import COUNTER_WIDTH
from .scratchpad import Scratchpad, ReadPortSignature, WritePortSignature, BRAM_ATTRS, delay
from .vector import VectorUnit, vector_params_layout

__all__ = ["Core", "CoreError", "ImemWriteSignature", "ImemReadSignature", "TagIncSignature", "send_layout",
           "ERROR_CODE_BITS", "TAG_COUNTER_BITS"]

ERROR_CODE_BITS = 4
TAG_COUNTER_BITS = isa.TAG_COUNTER_BITS


#: Values of ``Core.error_code`` (``error`` high; ``pc`` = the faulting instruction): the
#: shared :class:`hasp.sw.isa.ErrorCode` (one definition for the RTL and the functional model).
CoreError = isa.ErrorCode
assert max(CoreError) < 1 << ERROR_CODE_BITS


class ImemWriteSignature(wiring.Signature):
    """Instruction-memory write port, from the writer's side: ``addr``, ``data`` (64 bits),
    ``en`` out. Always accepted (one write per cycle); the word is in the memory from the
    cycle after ``en`` (the core registers the write)."""
    def __init__(self, depth):
        super().__init__({"addr": Out(range(depth)), "data": Out(isa.INSN_BITS), "en": Out(1)})


class ImemReadSignature(wiring.Signature):
    """Instruction-memory read port, from the reader's side: ``addr``, ``en`` out; ``data``
    (64 bits) in, valid the cycle after ``en`` (a second read port of the memory: always
    served, independent of the sequencer)."""
    def __init__(self, depth):
        super().__init__({"addr": Out(range(depth)), "en": Out(1), "data": In(isa.INSN_BITS)})


class TagIncSignature(wiring.Signature):
    """Tag-counter increment, from the network interface's side: ``valid``, ``tag`` out. Every
    cycle with ``valid`` adds one to counter ``tag`` (always accepted; tags beyond the core's
    counters are ignored)."""
    def __init__(self):
        super().__init__({"valid": Out(1), "tag": Out(isa.TAG_BITS)})


def _ge_const(x, c):
    """``x >= c`` for an unsigned ``x`` and a constant ``c``: a test of the high bits when ``c``
    is a power of two or one more (Yosys maps a compare with a constant to a carry chain,
    which after an adder puts two chains in series)."""
    if c <= 0:
        return Const(1)
    if c >= 1 << len(x):
        return Const(0)
    k = (c - 1).bit_length() - 1
    if c & (c - 1) == 0:
        return x[c.bit_length() - 1:].any()
    if c == (1 << k) + 1 and k >= 1:              # x >= 2**k + 1: above 2**k
        hi = x[k + 1:]
        return (hi.any() if len(hi) else Const(0)) | (x[k] & x[:k].any())
    return x >= c


def _gt_const(x, c):
    """``x > c`` for an unsigned ``x`` and a constant ``c`` (see :func:`_ge_const`)."""
    return _ge_const(x, c + 1)


def _does_more(insn):
    """The predecoded bit of an instruction word: it does more than EXEC (it is not a NOP,
    DELAY 0, a GEMM with a zero dimension or a REQUANT of no rows)."""
    Op = isa.Op
    opcode, g = insn[:isa.OP_BITS], _view(Op.GEMM, insn)
    return ~((opcode == Op.NOP) |
             ((opcode == Op.DELAY) & (_view(Op.DELAY, insn).cycles == 0)) |
             ((opcode == Op.GEMM) & ((g.k == 0) | (g.mt == 0) | (g.nt == 0))) |
             ((opcode == Op.REQUANT) & (_view(Op.REQUANT, insn).rows == 0)))


def _view(op, insn):
    """The fields of instruction ``op`` in the word ``insn``."""
    return data.View(isa.LAYOUTS[op], insn[:isa.LAYOUTS[op].size])


def _field(op, name):
    return dict(isa.LAYOUTS[op])[name].width


def send_layout():
    """A SEND request: copy ``len`` words (1 .. 256, the real count, not minus one) from this
    core's ``SPM[src ..]`` to core (``x``, ``y``)'s ``SPM[dst ..]``, counted on ``tag`` there."""
    return data.StructLayout({
        "src": _field(isa.Op.SEND, "src"), "len": _field(isa.Op.SEND, "len") + 1,
        "x": _field(isa.Op.SEND, "x"), "y": _field(isa.Op.SEND, "y"),
        "dst": _field(isa.Op.SEND, "dst"), "tag": _field(isa.Op.SEND, "tag"),
    })


class Core(wiring.Component):
    """One HASP core executing :mod:`hasp.sw.isa` programs, one instruction at a time.

    Parameters
    ----------
    cfg : hasp.config.ChipConfig
        Chip configuration (PE array, scratchpad, instruction memory, mesh size for SEND
        checks, sync groups).
    acc_depth : int, optional
        Accumulator-memory rows (``pe.cols x pe.acc_width`` bits each). Default
        ``isa.ACC_ROWS`` (what the functional model assumes); at most ``1 << isa.ACC_BITS``.
    tags : int, optional
        Number of tag counters (``TAG_COUNTER_BITS`` each, saturating). Default ``isa.TAGS``
        (what the functional model assumes), at most ``1 << isa.TAG_BITS``.
    multiplier : str, optional
        The PE array's and vector unit's multipliers (:data:`hasp.hw.pe_array.MULTIPLIERS`):
        ``"generic"`` (default, what every simulator runs) or ``"ecp5"`` (``hasp synth`` on
        ECP5 targets).

    Semantics not fixed by the ISA text
    -----------------------------------
    * GEMM: ``ACC[dst + t*R + r] (+)= ...`` with ``acc=1`` adding with ``acc_width`` wrap.
      ``k = 0`` or ``mt*nt = 0`` does nothing.
    * REQUANT: lane ``j < C`` of ``SPM[dst + i]`` = requant(wrap(``ACC[src + i][j]`` + bias_i));
      lanes ``C ..`` of the word are written as 0. bias_i is the low ``min(word_width,
      acc_width)`` bits of ``SPM[bias + i]``, signed. Uses the SETQ registers (reset: mult=1,
      shift=0, zp=0, full clamp range); ``zp`` is taken modulo ``data_width``, ``lo``/``hi``
      are clamped to the ``data_width`` range by SETQ.
    * SETQ checks ``shift <= golden.SHIFT_MAX`` and a non-empty clamp range
      ``max(lo, -2**(dw-1)) <= min(hi, 2**(dw-1)-1)`` (``BAD_REQUANT``) and stores the clamped
      ``lo``/``hi``.
    * WAIT and SEND with ``tag >= tags`` fail with ``BAD_TAG``. SEND checks in the order
      ``SPM_RANGE`` (source, destination range), ``BAD_DEST``, ``BAD_TAG``.
    * GEMM with ``k``, ``mt`` or ``nt`` 0 and REQUANT with ``rows = 0`` do nothing (no address
      is checked).
    * LOOP with ``count`` 0 or 1 falls through. Only one loop may be running: reaching another
      LOOP while one runs is ``LOOP_NEST``. ``target`` must be <= the LOOP's address.
    * HALT and errors leave ``pc`` at the instruction; the instruction memory after the program
      is NOP (zero) unless written, so running off the end gives ``PC_OVERFLOW``.
    * WAIT with ``count = 0`` completes at once. Tag counters saturate at ``2**16 - 1``;
      ``tag_inc`` for a tag >= ``tags`` is ignored (a SEND cannot produce one). Counters are
      not cleared by ``start``.

    Cycle costs (measured in the simulator, tiny preset, no scratchpad contention)
    -------------------------------------------------------------------------------
    Every instruction takes 1 decode cycle (the instruction word is registered after the
    instruction-memory read) + 1 execute cycle, plus:
    NOP, HALT: nothing (2 cycles). SETQ, LOOP (taken or not): 1 check cycle (3 cycles).
    DELAY n: n (2 + n).
    GEMM: ``mt*nt*k + 24`` when A and B are in different banks and ``k >= R + C + 4`` (two
    check cycles, the scratchpad's 3-cycle read, the systolic array's ``C + 5`` cycles to the
    first result row, the accumulator registers, the registered done flag; 1x1 tile k=16: 40
    in all, 2x2 tiles k=16: 88, 2x2 tiles k=64: 280); a tile takes ``R + C + 4`` cycles when
    ``k`` is smaller (1x1 k=4: 28). A and B in one bank share its read port: half the rate
    (2x2 k=16: 152). The
    same for ``acc=0`` and ``acc=1`` (the accumulator read-modify-write is pipelined, one
    row a cycle, no stall: consecutive rows of one GEMM never hit the same accumulator row).
    REQUANT: ``rows * max(P, 5) + 17`` where ``P`` is the vector unit's passes per row: C lanes
    x 1 multiplier pass when ``acc + bias`` fits in 18 bits signed, x 2 otherwise (32-bit
    accumulators): 4 to 8 on the tiny preset (rows=1: 22 in all, rows=16: 97 with small
    values); one time-multiplexed multiplier per core; 5 is the row issue (one row between the
    reads and the vector unit, 4 cycles of bias read into `rq_in`, then the take). The bias
    read has the scratchpad port that the GEMM engine's A reads use (never at the same time)
    below the external read port, which is always granted: an external read of the bias bank
    costs REQUANT that cycle.
    SEND: 1 check cycle, then until ``send.ready`` and ``send_done`` (done in the transfer
    cycle is accepted).
    WAIT: 5 cycles when the counter already holds ``count`` (the counter read and the compare
    are registered); a waiting WAIT completes 6 cycles after the ``tag_inc`` that satisfies
    it (the increment is registered, then read-modify-written; the subtraction of ``count``
    happens in the completing cycle).
    SYNC: until ``sync_release``.

    Ports
    -----
    imem_wr : In(ImemWriteSignature(cfg.core.imem_depth))
        Program loading (any time; the sequencer reads the instruction memory).
    imem_rd : In(ImemReadSignature(cfg.core.imem_depth))
        Instruction-memory read (host read-back), data one cycle after ``en``.
    spm_rd : In(ReadPortSignature(spm_addr_width, cfg.word_width))
        External scratchpad read (network interface / host), above the GEMM engine's and
        REQUANT's reads: always granted (``ready`` equals ``en``), data two cycles later.
    spm_wr : In(WritePortSignature(spm_addr_width, cfg.word_width))
        External scratchpad write, above REQUANT's result writes: always granted (``ready``
        equals ``en``), one word per cycle.
    start : In(1)
        Pulse: ``pc = 0``, clear the loop state and pending sync error, run. Ignored while
        ``running``.
    running, halted, error : Out(1)
        Status. ``halted`` / ``error`` stay high until the next ``start``.
    error_code : Out(ERROR_CODE_BITS)
        A :class:`CoreError`, valid while ``error``.
    pc : Out(range(imem_depth + 1))
        Address of the current instruction (the HALT or the faulting instruction once stopped;
        ``imem_depth`` for ``PC_OVERFLOW``).
    send : Out(stream.Signature(send_layout()))
        SEND requests. The request is held until transferred; the instruction then completes
        when ``send_done`` is high (in the transfer cycle or later).
    send_done : In(1)
        The network interface has finished (or taken over) the SEND in progress.
    tag_inc : In(TagIncSignature())
        Tag counter increments from the network interface (one per cycle).
    sync_arrive : Out(1), sync_group : Out(6)
        High (with the group) while the core waits in SYNC.
    sync_release : In(1)
        Pulse: the SYNC completes.
    sync_error : In(1)
        Pulse or level while ``running``: latched, and the core stops with ``SYNC_ERROR`` at
        the next instruction boundary or while waiting in SYNC.
    clear_counters : In(1)
        Synchronous clear of the performance counters.
    perf_busy, perf_sync, perf_net, perf_idle, perf_macs : Out(48)
        Cycles running; cycles waiting in SYNC; cycles waiting in WAIT or SEND; cycles not
        running; MACs performed by the PE array.
    """

    def __init__(self, cfg, acc_depth=isa.ACC_ROWS, tags=isa.TAGS, *, multiplier="generic"):
        if acc_depth is None:
            acc_depth = isa.ACC_ROWS
        for name, v, lo, hi in (("acc_depth", acc_depth, 1, 1 << isa.ACC_BITS),
                                ("tags", tags, 1, 1 << isa.TAG_BITS)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name} must be an integer, not {v!r}")
            if not lo <= v <= hi:
                raise ValueError(f"{name} must be in [{lo}, {hi}], not {v!r}")
        self.cfg = cfg
        self.acc_depth, self.tags = acc_depth, tags
        pe = cfg.pe
        self.spm = Scratchpad(cfg.word_width, cfg.spm.depth, cfg.spm.banks,
                              read_ports=3, write_ports=2)
        aw = self.spm.addr_width
        self.engine = GemmEngine(pe.rows, pe.cols, pe.data_width, pe.acc_width, aw,
                                 bank_offset=self.spm.offset_bits,
                                 multiplier=multiplier)
        self.vector = VectorUnit(pe.cols, pe.acc_width, pe.data_width, tag_width=aw,
                                  multiplier=multiplier)
        #: Accumulator memory: row ``i`` holds ``pe.cols`` signed ``acc_width``-bit lanes,
        #: lane ``j`` at bits ``[j*acc_width, (j+1)*acc_width)``.
        self.accmem = memory.Memory(shape=pe.cols * pe.acc_width, depth=acc_depth, init=[],
                                    attrs=BRAM_ATTRS)
        depth = cfg.core.imem_depth
        super().__init__({
            "imem_wr": In(ImemWriteSignature(depth)),
            "imem_rd": In(ImemReadSignature(depth)),
            "spm_rd": In(ReadPortSignature(aw, cfg.word_width)),
            "spm_wr": In(WritePortSignature(aw, cfg.word_width)),
            "start": In(1),
            "running": Out(1), "halted": Out(1), "error": Out(1),
            "error_code": Out(ERROR_CODE_BITS),
            "pc": Out(range(depth + 1)),
            "send": Out(stream.Signature(send_layout())),
            "send_done": In(1),
            "tag_inc": In(TagIncSignature()),
            "sync_arrive": Out(1), "sync_group": Out(_field(isa.Op.SYNC, "group")),
            "sync_release": In(1), "sync_error": In(1),
            "clear_counters": In(1),
            "perf_busy": Out(COUNTER_WIDTH), "perf_sync": Out(COUNTER_WIDTH),
            "perf_net": Out(COUNTER_WIDTH), "perf_idle": Out(COUNTER_WIDTH),
            "perf_macs": Out(COUNTER_WIDTH),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        R, C = cfg.pe.rows, cfg.pe.cols
        aw_acc, dw = cfg.pe.acc_width, cfg.pe.data_width
        ww = cfg.word_width
        words = cfg.spm.words
        depth = cfg.core.imem_depth
        Op = isa.Op

        m.submodules.spm = spm = self.spm
        m.submodules.engine = eng = self.engine
        m.submodules.vector = vec = self.vector

        # ---- Instruction memory ------------------------------------------------------------
        # Each word holds the instruction and one bit predecoded from it as it is written,
        # `more` (:func:`_does_more`; 0 in a never-written, all-zero word, a NOP). EXEC's `pc`
        # advance then reads one flip-flop, not zero tests of the fields (the tiny chip's
        # routed critical path at c3c0b67 seed 1 and be7606a seed 2: GEMM's `k` -> the
        # sequencer's next state -> `pc`). The write is registered (the block RAM's pins come
        # from flip-flops, the predecode has its own cycle): a word is in the memory the
        # cycle after `imem_wr.en`.
        m.submodules.imem = imem = memory.Memory(shape=isa.INSN_BITS + 1, depth=depth, init=[],
                                                 attrs=BRAM_ATTRS)
        iwp, irp = imem.write_port(), imem.read_port()
        xrp = imem.read_port()            # the network interface's (host) reads
        m.d.comb += [xrp.addr.eq(self.imem_rd.addr), xrp.en.eq(self.imem_rd.en),
                     self.imem_rd.data.eq(xrp.data[:isa.INSN_BITS])]
        m.d.sync += [iwp.addr.eq(self.imem_wr.addr),
                     iwp.data.eq(Cat(self.imem_wr.data, _does_more(self.imem_wr.data))),
                     iwp.en.eq(self.imem_wr.en)]
        pc = Signal(range(depth + 1), name="pc_r")
        # The instruction word is registered after the memory read (DECODE), so EXEC decodes
        # from a flip-flop, not from the block RAM's clock-to-out. The read address is the
        # instruction that comes next: 0 while stopped (a start goes straight to DECODE), the
        # target while a LOOP that jumps executes, `pc + 1` otherwise, so an instruction that
        # completes in cycle t has its successor's word at the memory output in t + 1 (DECODE).
        fetch_addr = Signal(range(depth), name="fetch_addr")
        m.d.comb += [irp.en.eq(1), irp.addr.eq(fetch_addr), self.pc.eq(pc)]
        word = Signal(isa.INSN_BITS, name="insn")
        more = Signal(name="insn_more")
        opcode = word[:isa.OP_BITS]

        def view(op):
            return _view(op, word)

        # ---- Scratchpad ports: rd 0 external, 1 GEMM A or REQUANT bias, 2 GEMM B; wr 0
        # external, 1 REQUANT. The external ports (network interface: SEND data, host reads
        # and writes) are always granted, so the network interface never waits on the core's
        # arbitration; GEMM and REQUANT never run at once (one instruction at a time), so A
        # and the bias share port 1, and both work out their grants from the external
        # request (registers of the network interface) instead of waiting for `ready`.
        rd1 = spm.rd[1]
        wiring.connect(m, wiring.flipped(self.spm_rd), spm.rd[0])
        wiring.connect(m, eng.rd_b, spm.rd[2])
        wiring.connect(m, wiring.flipped(self.spm_wr), spm.wr[0])
        res_wr = spm.wr[1]
        bias_en = Signal(name="bias_rd_en")
        m.d.comb += [eng.rd_a.ready.eq(rd1.ready), eng.rd_a.data.eq(rd1.data),
                     rd1.en.eq(eng.rd_a.en | bias_en),
                     eng.other_en.eq(self.spm_rd.en),
                     eng.other_bank.eq(self.spm_rd.addr[spm.offset_bits:])]

        # ---- Accumulator memory -------------------------------------------------------------
        row_layout = data.ArrayLayout(signed(aw_acc), C)
        m.submodules.accmem = accmem = self.accmem
        awp, arp = accmem.write_port(), accmem.read_port()
        m.d.comb += arp.en.eq(1)
        acc_rdata = data.View(row_layout, arp.data)

        # ---- Status / sequencer registers ---------------------------------------------------
        err_code = Signal(ERROR_CODE_BITS, name="err_code")
        m.d.comb += self.error_code.eq(err_code)
        loop_active = Signal(name="loop_active")
        loop_pc = Signal.like(pc, name="loop_pc")
        loop_left = Signal(_field(Op.LOOP, "count"), name="loop_left")
        delay_left = Signal(_field(Op.DELAY, "cycles"), name="delay_left")
        sync_err_pending = Signal(name="sync_err_pending")

        # SETQ registers (reset: identity-ish mult=1, shift=0, full int8 range).
        q = Signal(vector_params_layout(dw), name="qparams",
                   init={"mult": 1, "shift": 0, "zero_point": 0,
                         "lo": -(1 << (dw - 1)), "hi": (1 << (dw - 1)) - 1})
        m.d.comb += vec.params.eq(q)

        # GEMM command registers.
        g_dst = Signal(range(self.acc_depth + 1), name="g_dst")
        g_acc = Signal(name="g_acc")
        g_row = Signal(range(self.acc_depth + 1), name="g_row")   # acc address of next out row

        # REQUANT registers.
        r_src = Signal(isa.ACC_BITS + 1, name="r_src")
        r_dst = Signal(isa.ADDR_BITS + 1, name="r_dst")
        r_bias = Signal(isa.ADDR_BITS + 1, name="r_bias")
        r_use_bias = Signal(name="r_use_bias")
        r_rows = Signal(isa.ACC_BITS, name="r_rows")
        r_issued = Signal(isa.ACC_BITS, name="r_issued")
        r_written = Signal(isa.ACC_BITS, name="r_written")

        # SEND / WAIT / SYNC registers.
        send_req = Signal(send_layout(), name="send_req")
        m.d.comb += self.send.payload.eq(send_req)
        w_tag = Signal(isa.TAG_BITS, name="w_tag")
        w_count = Signal(_field(Op.WAIT, "count"), name="w_count")
        s_group = Signal(_field(Op.SYNC, "group"), name="s_group")
        # `sync_arrive` is a flip-flop, high exactly in the SYNC state (set on entering it,
        # cleared on leaving), not a decode of `seq_state`: the arrival crosses the chip to the
        # group-sync unit (tiny chip seed 1's path at 99.84 MHz ran seq_state -> decode ->
        # GSU -> its `error` register).
        s_arrive = Signal(name="s_arrive")
        m.d.comb += [self.sync_group.eq(s_group), self.sync_arrive.eq(s_arrive)]

        # Tag counters (saturating). Counter i is kept as two 16-bit LUT-RAM words, arrivals
        # A[i] (written only by `tag_inc`) and consumption C[i] (written only when a WAIT takes):
        # its value is (A[i] - C[i]) mod 2**16. One incrementer and one adder serve every
        # counter instead of a 3-operand adder each (a register file costs ~1100 LUT4 a core on
        # ECP5, this ~250). Flip-flops `a_ok`/`c_ok` (cleared by reset) say a word was written
        # since reset; an unwritten word reads as 0, so reset clears every counter at once.
        # Both sides are pipelined so that no path runs from a counter read through an adder
        # into a write: WAIT registers the two words of its counter (`w_a`, `w_c`), then
        # compares their difference with its count into `w_ge`, and takes the cycle after
        # (counters only grow while a WAIT waits, so the comparison still holds); an
        # increment from the network interface is registered (`inc_v0`), reads its two words
        # into registers (`inc_v1`), then writes A + 1 (`inc_ok`) unless the counter is at
        # its maximum. An increment of the tag that the one before is writing in its read
        # cycle takes that one's result instead of the read (`inc_fwd`), so increments may
        # come every cycle.
        tag_a = memory.Memory(shape=TAG_COUNTER_BITS, depth=self.tags, init=[])
        tag_c = memory.Memory(shape=TAG_COUNTER_BITS, depth=self.tags, init=[])
        m.submodules.tag_a, m.submodules.tag_c = tag_a, tag_c
        a_ok = Signal(self.tags, name="tag_a_ok")
        c_ok = Signal(self.tags, name="tag_c_ok")
        tb = max(1, (self.tags - 1).bit_length())

        def tag_word(mem, ok, tag):          # counter word `tag` (0 if not written since reset)
            rp = mem.read_port(domain="comb")
            m.d.comb += rp.addr.eq(tag[:tb])
            return Mux(ok.bit_select(tag[:tb], 1), rp.data, 0)

        wait_take = Signal(name="wait_take")
        w_zero = Signal(name="w_zero")                                  # w_count == 0
        w_a = Signal(TAG_COUNTER_BITS, name="w_a")
        w_c = Signal(TAG_COUNTER_BITS, name="w_c")
        w_rv = Signal(name="w_rv")               # w_a / w_c are of this WAIT's tag
        m.d.sync += [w_a.eq(tag_word(tag_a, a_ok, w_tag)), w_c.eq(tag_word(tag_c, c_ok, w_tag))]
        w_ge = Signal(name="w_ge")
        m.d.sync += [w_ge.eq(0), w_rv.eq(0)]
        tag_cwp = tag_c.write_port()
        m.d.comb += [tag_cwp.addr.eq(w_tag[:tb]), tag_cwp.data.eq(w_c + w_count),
                     tag_cwp.en.eq(wait_take)]
        with m.If(wait_take):
            m.d.sync += c_ok.bit_select(w_tag[:tb], 1).eq(1)
        w_takes = Signal(name="w_takes")                                # C of w_tag moves
        m.d.comb += w_takes.eq(wait_take & ~w_zero)
        # `w_ge` is set only in the WAIT state, which then stays there for a cycle: it is the
        # take itself, no state decode behind it (the tiny chip's seed-2 path at 93.0 MHz ran
        # from `seq_state` through the take into the tag LUT-RAM's write enable).
        m.d.comb += wait_take.eq(w_ge)

        inc_v0 = Signal(name="inc_v0")
        inc_t0 = Signal(isa.TAG_BITS, name="inc_t0")
        m.d.sync += [inc_v0.eq(self.tag_inc.valid & ~_ge_const(self.tag_inc.tag, self.tags)),
                     inc_t0.eq(self.tag_inc.tag)]
        inc_v1 = Signal(name="inc_v1")
        inc_t1 = Signal(isa.TAG_BITS, name="inc_t1")
        inc_a = Signal(TAG_COUNTER_BITS, name="inc_a")
        inc_cm1 = Signal(TAG_COUNTER_BITS, name="inc_c_m1")   # the tag's C - 1
        inc_cmoved = Signal(name="inc_cmoved")   # a WAIT moved C while it was read
        a_next = Signal(TAG_COUNTER_BITS, name="inc_a_next")
        m.d.comb += a_next.eq(inc_a + 1)
        inc_ok = Signal(name="tag_inc_ok")
        inc_fwd = Signal(name="inc_fwd")
        m.d.comb += inc_fwd.eq(inc_v1 & (inc_t1 == inc_t0))
        m.d.sync += [inc_v1.eq(inc_v0), inc_t1.eq(inc_t0),
                     inc_a.eq(Mux(inc_fwd, Mux(inc_ok, a_next, inc_a),
                                  tag_word(tag_a, a_ok, inc_t0))),
                     inc_cm1.eq(tag_word(tag_c, c_ok, inc_t0) - 1),
                     inc_cmoved.eq(w_takes & (w_tag == inc_t0))]
        # A counter at its maximum (A + 1 == C) ignores the increment, unless a WAIT takes a
        # non-zero count from it (in this cycle, or while its words were read). The test is
        # `A == C - 1` against a registered `C - 1` (with `A + 1` it was two carry chains in
        # front of `inc_ok`: the tiny chip's seed-2 critical path, 88.8 MHz).
        i_max = Signal(name="inc_at_max")
        m.d.comb += i_max.eq((inc_a == inc_cm1) & ~inc_cmoved & ~(w_takes & (w_tag == inc_t1)))
        tag_awp = tag_a.write_port()
        m.d.comb += [inc_ok.eq(inc_v1 & ~i_max),
                     tag_awp.addr.eq(inc_t1[:tb]), tag_awp.data.eq(a_next),
                     tag_awp.en.eq(inc_ok)]
        # A word not written since reset reads 0 and is never at its maximum (C <= A, so
        # C - 1 == A would need A - C == 2**16 - 1): `a_ok` follows the increment alone.
        with m.If(inc_v1):
            m.d.sync += a_ok.bit_select(inc_t1[:tb], 1).eq(1)
        with m.If(self.sync_error & self.running):
            m.d.sync += sync_err_pending.eq(1)

        # ---- GEMM result path: accumulator read-modify-write, one row a cycle ---------------
        rmw_v = Signal(name="rmw_v")
        rmw_addr = Signal.like(awp.addr, name="rmw_addr")
        rmw_row = Signal(row_layout, name="rmw_row")
        rmw_add = Signal(name="rmw_add")
        gemm_mode = Signal(name="gemm_mode")
        m.d.comb += eng.out.ready.eq(1)
        out_fire = eng.out.valid      # ready is always high
        # Two stages: the old row read from the accumulator memory is registered first (the
        # block RAM's clock-to-out ends at a flip-flop), then added and written back.
        rmw2_v = Signal(name="rmw2_v")
        rmw2_addr = Signal.like(awp.addr, name="rmw2_addr")
        rmw2_row = Signal(row_layout, name="rmw2_row")
        rmw2_old = Signal(row_layout, name="rmw2_old")
        m.d.sync += [rmw_v.eq(out_fire), rmw_addr.eq(g_row), rmw_row.eq(eng.out.payload.row),
                     rmw_add.eq(g_acc)]
        m.d.sync += [rmw2_v.eq(rmw_v), rmw2_addr.eq(rmw_addr), rmw2_row.eq(rmw_row),
                     rmw2_old.eq(Mux(rmw_add, acc_rdata.as_value(), 0))]
        with m.If(out_fire):
            m.d.sync += g_row.eq(g_row + 1)
        # The GEMM state's exit reads `g_idle`, a flip-flop, not the engine's combinational
        # `busy`: the tiny chip's critical path ran from the engine's `tile_done_r` through
        # `busy` into the sequencer's state register (90.8 MHz). `g_armed` masks the first
        # GEMM cycle, when `g_idle` still holds the cycle before `start`.
        g_idle = Signal(name="g_idle")
        g_armed = Signal(name="g_armed")
        m.d.sync += g_idle.eq(~eng.busy & ~rmw_v & ~rmw2_v)
        wdata = Signal(row_layout, name="acc_wdata")
        for j in range(C):
            m.d.comb += wdata[j].eq((rmw2_row[j] + rmw2_old[j])[:aw_acc])
        m.d.comb += [awp.en.eq(rmw2_v), awp.addr.eq(rmw2_addr), awp.data.eq(wdata)]

        # ---- REQUANT path: acc + bias reads -> `rq_in` register -> vector unit -> scratchpad --
        # One row at a time between the reads and the vector unit (no FIFO: LUT-RAM is what
        # the fpga chip runs out of). The bias read takes READ_LATENCY + 1 cycles into
        # `rq_in`, the accumulator row is read from the cycle after the issue on so both
        # arrive together; a row is issued every READ_LATENCY + 2 cycles (the issue waits for
        # the take: not in the take cycle, which would put the vector unit's data-dependent
        # `inp.ready` in front of the scratchpad arbitration, 49.5 MHz); the vector unit
        # needs at least C cycles per row, so for C >= 5 it never waits.
        rq_layout = data.StructLayout({"acc": row_layout, "bias": signed(aw_acc),
                                       "tag": spm.addr_width})
        rq_mode = Signal(name="rq_mode")   # a register: set entering REQUANT, cleared leaving
        rq_src = Signal.like(r_src, name="rq_src")      # the issued row's accumulator address
        rq_tag = Signal(spm.addr_width, name="rq_tag")
        rq_want = Signal(name="rq_want")
        # `r_issued != r_rows` as a flip-flop (core-r4, 84.9 MHz: the compare was in front of
        # the bias read request and the scratchpad arbitration): set by REQUANT_CHECK, updated
        # with each issued row.
        rq_more = Signal(name="rq_more")
        rq_fire = Signal(name="rq_fire")
        rq_valid = Signal(name="rq_valid")             # `rq_in` holds a row
        rq_used = Signal(name="rq_used")               # a row read and not yet in the vector unit
        rq_take = Signal(name="rq_take")
        m.d.comb += rq_take.eq(rq_valid & vec.inp.ready)
        m.d.sync += rq_used.eq(rq_used + rq_fire - rq_take)
        m.d.comb += [
            rq_want.eq(rq_mode & rq_more & ~rq_used),
            bias_en.eq(rq_want & r_use_bias),
            rd1.addr.eq(Mux(rq_mode, r_bias, eng.rd_a.addr)),
            # granted unless the external read takes the bias word's bank
            rq_fire.eq(rq_want & ~(r_use_bias & self.spm_rd.en &
                                   (self.spm_rd.addr[spm.offset_bits:]
                                    == r_bias[spm.offset_bits:spm.addr_width]))),
        ]
        # r_src, r_dst and r_bias are pointers to the next row (incremented per row issued).
        rq_inflight = delay(m, rq_fire, Scratchpad.READ_LATENCY, "rq_inflight")
        with m.If(rq_fire):
            m.d.sync += [r_issued.eq(r_issued + 1), r_src.eq(r_src + 1), r_dst.eq(r_dst + 1),
                         r_bias.eq(r_bias + 1), rq_src.eq(r_src), rq_tag.eq(r_dst),
                         rq_more.eq((r_issued + 1)[:len(r_issued)] != r_rows)]
        # The accumulator read port: GEMM's RMW address, else the issued REQUANT row (read
        # from the cycle after the issue on, and held until the next issue, so its data is
        # there when the bias word arrives, `rq_inflight`).
        m.d.comb += arp.addr.eq(Mux(gemm_mode, g_row, rq_src))
        # The accumulator row and the bias word are registered in `rq_in` (the block RAM's
        # clock-to-out ends at a flip-flop) and offered to the vector unit from there.
        rq_in = Signal(rq_layout, name="rq_in")
        bias_w = min(ww, aw_acc)
        with m.If(rq_inflight):
            m.d.sync += [
                rq_valid.eq(1),
                rq_in.acc.eq(acc_rdata),
                rq_in.bias.eq(Mux(r_use_bias, rd1.data[:bias_w].as_signed(), 0)),
                rq_in.tag.eq(rq_tag),
            ]
        with m.Elif(rq_take):
            m.d.sync += rq_valid.eq(0)
        m.d.comb += [
            vec.inp.valid.eq(rq_valid),
            vec.inp.payload.acc.eq(rq_in.acc), vec.inp.payload.bias.eq(rq_in.bias),
            vec.inp.payload.tag.eq(rq_in.tag),
        ]
        # Results go to the scratchpad from a 2-entry shift FIFO in flip-flops: the head
        # entry `res_h` is what is offered to the write port, so its enable, address and
        # data come straight from flip-flops, and the write grant depends only on registers
        # (the head and the network interface's registered write). The vector unit's `ready`
        # is the tail's empty bit. A granted head takes the tail (or the vector unit's result
        # when the tail is empty). History of this loop on the tiny chip: a skid pair (grant
        # into the write register's enables, 91.5 MHz), then a ping-pong pair whose read
        # pointer selected the offered entry (seed 1: `res_rp` -> entry select -> grant ->
        # `res_rp`, 94.4 MHz at 95cc70b). `r_written` counts granted writes, so REQUANT
        # completes when its last row is written.
        res_layout = data.StructLayout({"v": 1, "addr": spm.addr_width, "data": len(res_wr.data)})
        res_h = Signal(res_layout, name="res_h")
        res_t = Signal(res_layout, name="res_t")
        res_in = Signal(res_layout, name="res_in")
        res_grant, res_load = Signal(name="res_grant"), Signal(name="res_load")
        m.d.comb += [
            vec.out.ready.eq(~res_t.v),
            res_load.eq(vec.out.valid & vec.out.ready),
            res_in.v.eq(res_load), res_in.addr.eq(vec.out.payload.tag),
            res_in.data.eq(vec.out.payload.data.as_value()),
            res_wr.en.eq(res_h.v), res_wr.addr.eq(res_h.addr), res_wr.data.eq(res_h.data),
            res_grant.eq(res_h.v & res_wr.ready),
        ]
        with m.If(res_grant | ~res_h.v):
            # The head is free after this cycle: it takes the tail, else the new result.
            m.d.sync += res_h.eq(Mux(res_t.v, res_t, res_in))
            with m.If(res_t.v):
                m.d.sync += res_t.v.eq(0)
        with m.Elif(res_load):
            m.d.sync += res_t.eq(res_in)
        with m.If(res_grant):
            m.d.sync += r_written.eq(r_written + 1)

        # ---- Sequencer ----------------------------------------------------------------------
        next_pc = Signal.like(pc, name="next_pc")
        m.d.comb += [next_pc.eq(pc + 1), fetch_addr.eq(next_pc)]

        def fail(code):
            m.d.sync += err_code.eq(code)
            m.next = "ERROR"

        def checked(*checks):
            """The registered check flags of a *_CHECK state, as (flag, code) pairs in priority
            order: the error code is written in the state whatever the flags say (NONE when
            none is set), so the flags reach err_code's data, not its enable (tiny chip
            seed 1's critical path at 97.1 MHz ran from the flags into that enable).
            Returns whether any failed; the caller moves to ERROR then."""
            code = Const(CoreError.NONE, ERROR_CODE_BITS)
            for flag, c in reversed(checks):
                code = Mux(flag, c, code)
            m.d.sync += err_code.eq(code)
            bad = Signal(name="check_bad")
            m.d.comb += bad.eq(Cat(flag for flag, _ in checks).any())
            return bad

        def done():
            m.d.sync += pc.eq(next_pc)
            m.next = "DECODE"

        # GEMM bounds checks without multipliers: the products mt*k, nt*k and mt*nt*R are
        # shift-and-add sums of the (registered) instruction fields, registered in EXEC and
        # compared in GEMM_CHECK; the error code and pc are the same as a one-cycle check.
        def shift_add(x, y, width):
            """x * y for unsigned x, y as a sum of shifted copies of y (no DSP)."""
            terms = [Mux(x[i], y << i, 0) for i in range(len(x))]
            while len(terms) > 1:
                terms = [(terms[i] + terms[i + 1])[:width] if i + 1 < len(terms) else terms[i]
                         for i in range(0, len(terms), 2)]
            return terms[0][:width]

        def const_mul(x, c):
            terms = [x << i for i in range(c.bit_length()) if (c >> i) & 1]
            out = terms[0]
            for t in terms[1:]:
                out = out + t
            return out

        gv = view(Op.GEMM)
        g_ak = Signal(16 + 1, name="g_ak")          # mt * k
        g_bk = Signal(16 + 1, name="g_bk")          # nt * k
        g_rows = Signal(8 + R.bit_length() + 1, name="g_rows")   # mt * nt * R
        # ... and the room left above the base addresses (signed: negative when the base is
        # already past the end), so GEMM_CHECK only compares.
        g_aroom = Signal(signed(isa.ADDR_BITS + 2), name="g_aroom")     # words - a
        g_broom = Signal(signed(isa.ADDR_BITS + 2), name="g_broom")     # words - b
        g_droom = Signal(signed(isa.ACC_BITS + 2), name="g_droom")      # acc_depth - dst
        m.d.sync += [g_ak.eq(shift_add(gv.mt, gv.k, 16)), g_bk.eq(shift_add(gv.nt, gv.k, 16)),
                     g_rows.eq(const_mul(shift_add(gv.mt, gv.nt, 8), R)),
                     g_aroom.eq(words - gv.a), g_broom.eq(words - gv.b),
                     g_droom.eq(self.acc_depth - gv.dst)]
        # SETQ and LOOP checks, computed from the instruction register during EXEC and
        # registered for SETQ_CHECK / LOOP_CHECK.
        qv, lv = view(Op.SETQ), view(Op.LOOP)
        dmin, dmax = -(1 << (dw - 1)), (1 << (dw - 1)) - 1
        lo_s, hi_s = qv.lo.as_signed(), qv.hi.as_signed()
        sq_lo, sq_hi = Signal(signed(dw), name="sq_lo"), Signal(signed(dw), name="sq_hi")
        sq_bad = Signal(name="sq_bad")
        lp_target_bad, lp_nest_bad = Signal(name="lp_target_bad"), Signal(name="lp_nest_bad")
        lp_count2, lp_jump = Signal(name="lp_count2"), Signal(name="lp_jump")
        lo_c = Mux(lo_s < dmin, dmin, lo_s)
        hi_c = Mux(hi_s > dmax, dmax, hi_s)
        m.d.sync += [
            sq_lo.eq(lo_c), sq_hi.eq(hi_c),
            sq_bad.eq((qv.shift > golden.SHIFT_MAX) | (lo_c > hi_c)),
            lp_target_bad.eq(lv.target > pc), lp_nest_bad.eq(loop_active & (loop_pc != pc)),
            lp_count2.eq(lv.count >= 2),
            lp_jump.eq(Mux(loop_active, loop_left != 0, lv.count >= 2)),
        ]
        # REQUANT and SEND range checks, computed from the instruction register during EXEC
        # and registered for REQUANT_CHECK / SEND_CHECK.
        rv, sv = view(Op.REQUANT), view(Op.SEND)
        rq_spm_bad, rq_acc_bad = Signal(name="rq_spm_bad"), Signal(name="rq_acc_bad")
        sd_spm_bad, sd_dest_bad = Signal(name="sd_spm_bad"), Signal(name="sd_dest_bad")
        sd_tag_bad = Signal(name="sd_tag_bad")
        m.d.sync += [
            rq_spm_bad.eq(_gt_const(rv.dst + rv.rows, words) |
                          (rv.use_bias & _gt_const(rv.bias + rv.rows, words))),
            rq_acc_bad.eq(_gt_const(rv.src + rv.rows, self.acc_depth)),
            sd_spm_bad.eq(_ge_const(sv.src + sv.len, words) | _ge_const(sv.dst + sv.len, words)),
            sd_dest_bad.eq((sv.x >= cfg.mesh.cols) | (sv.y >= cfg.mesh.rows)),
            sd_tag_bad.eq(_ge_const(sv.tag, self.tags)),
        ]
        # The engine's command is the GEMM instruction register (its command registers
        # follow it while idle; `start` is given in GEMM_CHECK).
        m.d.comb += [eng.cmd.a_base.eq(gv.a), eng.cmd.b_base.eq(gv.b), eng.cmd.k.eq(gv.k),
                     eng.cmd.m_tiles.eq(gv.mt), eng.cmd.n_tiles.eq(gv.nt)]
        # ... compared in GEMM_CHECK into registers, acted on in GEMM_START.
        g_spm_bad = Signal(name="g_spm_bad")
        g_acc_bad = Signal(name="g_acc_bad")
        m.d.sync += [g_spm_bad.eq((g_ak > g_aroom) | (g_bk > g_broom)),
                     g_acc_bad.eq(g_rows > g_droom)]

        net_wait = Signal(name="net_wait")
        # `send.valid` is a flip-flop, high exactly in the SEND state (set by SEND_CHECK,
        # cleared when the NI takes the job): decoded from the state it started the NI's
        # egress read requests (a deep path of the tiny chip's netlist).
        send_valid = Signal(name="send_valid")
        m.d.comb += self.send.valid.eq(send_valid)
        sync_wait = Signal(name="sync_wait")

        with m.FSM(name="seq"):
            def startable():
                # start: only when not running (IDLE / HALTED / ERROR). The memory reads
                # address 0 meanwhile, so the first word is there in DECODE.
                m.d.comb += fetch_addr.eq(0)
                with m.If(self.start):
                    m.d.sync += [pc.eq(0), err_code.eq(CoreError.NONE), loop_active.eq(0),
                                 sync_err_pending.eq(0)]
                    m.next = "DECODE"

            with m.State("IDLE"):
                startable()
            with m.State("HALTED"):
                m.d.comb += self.halted.eq(1)
                startable()
            with m.State("ERROR"):
                m.d.comb += self.error.eq(1)
                startable()

            with m.State("DECODE"):      # the word of `pc` is at the memory output
                m.d.comb += self.running.eq(1)
                with m.If(pc >= depth):
                    fail(CoreError.PC_OVERFLOW)
                with m.Else():
                    m.d.sync += Cat(word, more).eq(irp.data)
                    m.next = "EXEC"

            with m.State("EXEC"):
                m.d.comb += self.running.eq(1)
                with m.If(sync_err_pending):
                    fail(CoreError.SYNC_ERROR)
                with m.Elif(~more):         # NOP, DELAY 0, an empty GEMM or REQUANT
                    done()
                with m.Else():
                    with m.Switch(opcode):
                        with m.Case(Op.HALT):
                            m.next = "HALTED"
                        with m.Case(Op.SETQ):
                            m.next = "SETQ_CHECK"
                        with m.Case(Op.DELAY):
                            m.d.sync += delay_left.eq(view(Op.DELAY).cycles - 1)
                            m.next = "DELAY"
                        with m.Case(Op.LOOP):
                            m.next = "LOOP_CHECK"
                        with m.Case(Op.GEMM):
                            m.next = "GEMM_CHECK"
                        with m.Case(Op.REQUANT):
                            m.next = "REQUANT_CHECK"
                        with m.Case(Op.SEND):
                            m.next = "SEND_CHECK"
                        with m.Case(Op.WAIT):
                            v = view(Op.WAIT)
                            with m.If(_ge_const(v.tag, self.tags)):
                                fail(CoreError.BAD_TAG)
                            with m.Else():
                                m.d.sync += [w_tag.eq(v.tag), w_count.eq(v.count),
                                             w_zero.eq(v.count == 0)]
                                m.next = "WAIT"
                        with m.Case(Op.SYNC):
                            v = view(Op.SYNC)
                            with m.If(_ge_const(v.group, cfg.sync.groups)):
                                fail(CoreError.BAD_GROUP)
                            with m.Else():
                                m.d.sync += [s_group.eq(v.group), s_arrive.eq(1)]
                                m.next = "SYNC"
                        with m.Default():
                            fail(CoreError.ILLEGAL_OP)

            with m.State("DELAY"):
                m.d.comb += self.running.eq(1)
                with m.If(delay_left == 0):
                    done()
                with m.Else():
                    m.d.sync += delay_left.eq(delay_left - 1)

            with m.State("GEMM_CHECK"):  # the products of EXEC are registered
                m.d.comb += self.running.eq(1)
                m.next = "GEMM_START"

            with m.State("GEMM_START"):  # the compares of GEMM_CHECK are registered
                m.d.comb += self.running.eq(1)
                # Loaded whatever the checks say (unused after a failure): only `start` and
                # the next state depend on them.
                m.d.sync += [g_row.eq(gv.dst), g_acc.eq(gv.acc)]
                with m.If(checked((g_spm_bad, CoreError.SPM_RANGE),
                                  (g_acc_bad, CoreError.ACC_RANGE))):
                    m.next = "ERROR"
                with m.Else():
                    m.d.comb += eng.start.eq(1)
                    m.d.sync += g_armed.eq(0)
                    m.next = "GEMM"

            with m.State("SETQ_CHECK"):      # the checks of EXEC are registered
                m.d.comb += self.running.eq(1)
                with m.If(checked((sq_bad, CoreError.BAD_REQUANT))):
                    m.next = "ERROR"
                with m.Else():
                    m.d.sync += [q.mult.eq(qv.mult), q.shift.eq(qv.shift),
                                 q.zero_point.eq(qv.zp.as_signed()),
                                 q.lo.eq(sq_lo), q.hi.eq(sq_hi)]
                    done()

            with m.State("LOOP_CHECK"):      # the checks of EXEC are registered
                m.d.comb += self.running.eq(1)
                # Jumps (unless it fails): fetch the target instead of pc + 1.
                with m.If(lp_jump):
                    m.d.comb += fetch_addr.eq(lv.target)
                with m.If(checked((lp_target_bad, CoreError.LOOP_TARGET),
                                  (lp_nest_bad, CoreError.LOOP_NEST))):
                    m.next = "ERROR"
                with m.Elif(loop_active):
                    with m.If(loop_left == 0):
                        m.d.sync += loop_active.eq(0)
                        done()
                    with m.Else():
                        m.d.sync += [loop_left.eq(loop_left - 1), pc.eq(lv.target)]
                        m.next = "DECODE"
                with m.Elif(lp_count2):
                    m.d.sync += [loop_active.eq(1), loop_pc.eq(pc),
                                 loop_left.eq(lv.count - 2), pc.eq(lv.target)]
                    m.next = "DECODE"
                with m.Else():
                    done()

            with m.State("REQUANT_CHECK"):   # the range checks of EXEC are registered
                m.d.comb += self.running.eq(1)
                with m.If(checked((rq_spm_bad, CoreError.SPM_RANGE),
                                  (rq_acc_bad, CoreError.ACC_RANGE))):
                    m.next = "ERROR"
                with m.Else():
                    m.d.sync += [r_src.eq(rv.src), r_dst.eq(rv.dst), r_bias.eq(rv.bias),
                                 r_use_bias.eq(rv.use_bias), r_rows.eq(rv.rows),
                                 r_issued.eq(0), r_written.eq(0), rq_mode.eq(1),
                                 rq_more.eq(rv.rows != 0)]
                    m.next = "REQUANT"

            with m.State("SEND_CHECK"):      # the range checks of EXEC are registered
                m.d.comb += self.running.eq(1)
                with m.If(checked((sd_spm_bad, CoreError.SPM_RANGE),
                                  (sd_dest_bad, CoreError.BAD_DEST),
                                  (sd_tag_bad, CoreError.BAD_TAG))):
                    m.next = "ERROR"
                with m.Else():
                    m.d.sync += [send_valid.eq(1),
                                 send_req.src.eq(sv.src), send_req.len.eq(sv.len + 1),
                                 send_req.x.eq(sv.x), send_req.y.eq(sv.y),
                                 send_req.dst.eq(sv.dst), send_req.tag.eq(sv.tag)]
                    m.next = "SEND"

            with m.State("GEMM"):
                m.d.comb += [self.running.eq(1), gemm_mode.eq(1)]
                m.d.sync += g_armed.eq(1)
                with m.If(g_armed & g_idle):
                    done()

            with m.State("REQUANT"):
                # `rq_mode` (the row issue's enable) is a flip-flop, not decoded from the
                # sequencer state: core-r3's critical path ran from the state register
                # through the issue into the scratchpad arbitration (80.5 MHz).
                m.d.comb += self.running.eq(1)
                with m.If(r_written == r_rows):
                    m.d.sync += rq_mode.eq(0)
                    done()

            with m.State("SEND"):
                m.d.comb += [self.running.eq(1), net_wait.eq(1)]
                with m.If(self.send.ready):
                    m.d.sync += send_valid.eq(0)
                    with m.If(self.send_done):
                        done()
                    with m.Else():
                        m.next = "SEND_WAIT"

            with m.State("SEND_WAIT"):
                m.d.comb += [self.running.eq(1), net_wait.eq(1)]
                with m.If(self.send_done):
                    done()

            with m.State("WAIT"):
                m.d.comb += [self.running.eq(1), net_wait.eq(1)]
                with m.If(w_ge):
                    done()
                with m.Else():
                    m.d.sync += [w_rv.eq(1),
                                 w_ge.eq(w_rv & ((w_a - w_c)[:TAG_COUNTER_BITS] >= w_count))]

            with m.State("SYNC"):
                m.d.comb += [self.running.eq(1), sync_wait.eq(1)]
                with m.If(sync_err_pending | self.sync_error):
                    m.d.sync += s_arrive.eq(0)
                    fail(CoreError.SYNC_ERROR)
                with m.Elif(self.sync_release):
                    m.d.sync += s_arrive.eq(0)
                    done()

        # ---- Performance counters -----------------------------------------------------------
        with m.If(self.clear_counters):
            m.d.sync += [self.perf_busy.eq(0), self.perf_sync.eq(0), self.perf_net.eq(0),
                         self.perf_idle.eq(0)]
        with m.Else():
            m.d.sync += [
                self.perf_busy.eq(self.perf_busy + self.running),
                self.perf_idle.eq(self.perf_idle + ~self.running),
                self.perf_sync.eq(self.perf_sync + sync_wait),
                self.perf_net.eq(self.perf_net + net_wait),
            ]
        m.d.comb += [eng.clear_counters.eq(self.clear_counters), self.perf_macs.eq(eng.macs)]
        return m
