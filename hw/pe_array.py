"""Output-stationary systolic int8 PE array: one MAC cell (:class:`PE`) per output element,
operands passed from neighbour to neighbour, a result buffer drained one row a transfer."""
from amaranth import Cat, ClockSignal, Const, Instance, Module, Signal, Mux, signed
from amaranth.lib import wiring, stream, data
from amaranth.lib.wiring import In, Out

__all__ = ["PE", "PEArray", "pe_input_layout", "pe_output_layout", "COUNTER_WIDTH",
           "MULTIPLIERS", "mult18x18d"]

COUNTER_WIDTH = 48

#: How a PE (and the vector unit) builds its multiplier. ``"generic"``: behavioural
#: ``a_r * b_r`` into a product register (simulators; synthesis infers a DSP, but Yosys' ECP5
#: flow leaves the DSP's own registers unused, so the multiplier sits combinationally between
#: two fabric registers). ``"ecp5"``: a ``MULT18X18D`` instance with its input and output
#: registers enabled (:func:`mult18x18d`), the same cycle timing (for ECP5 synthesis; the
#: tests simulate it against "generic" with the model in :mod:`hasp.verif.mult18x18d`).
MULTIPLIERS = ("generic", "ecp5")


def check_multiplier(multiplier):
    if multiplier not in MULTIPLIERS:
        raise ValueError(f"multiplier must be one of {', '.join(MULTIPLIERS)}, not {multiplier!r}")


def mult18x18d(m, a, b, name="dsp"):
    """An ECP5 ``MULT18X18D`` in ``m`` as a registered signed multiplier: its A/B input
    registers sample ``a`` and ``b`` (extended to 18 bits signed: a signed value
    sign-extended, an unsigned one zero-extended) every cycle and its output register holds
    the product, all on CLK0, always enabled, never reset; returns the 36-bit registered
    product, two cycles after the operands, the same timing as registered operands into a
    registered ``*``. The registers are inside the DSP block, so the
    multiplier's 4 ns are not on a fabric path and nothing outside the block has to be
    placed next to it."""
    a18 = Signal(signed(18), name=f"{name}_a")
    b18 = Signal(signed(18), name=f"{name}_b")
    p = Signal(36, name=f"{name}_p")
    m.d.comb += [a18.eq(a), b18.eq(b)]
    ports = {f"i_A{k}": a18[k] for k in range(18)}
    ports.update({f"i_B{k}": b18[k] for k in range(18)})
    ports.update({f"i_C{k}": Const(0) for k in range(18)})
    ports.update({f"o_P{k}": p[k] for k in range(36)})
    regs = {}
    for r in ("INPUTA", "INPUTB", "OUTPUT"):
        regs.update({f"p_REG_{r}_CLK": "CLK0", f"p_REG_{r}_CE": "CE0",
                     f"p_REG_{r}_RST": "RST0"})
    for r in ("INPUTC", "PIPELINE"):
        regs[f"p_REG_{r}_CLK"] = "NONE"
    m.submodules[name] = Instance(
        "MULT18X18D", **regs, p_GSR="DISABLED", p_RESETMODE="SYNC",
        p_MULT_BYPASS="DISABLED", p_CAS_MATCH_REG="FALSE", p_SOURCEB_MODE="B_SHIFT",
        i_SIGNEDA=Const(1), i_SIGNEDB=Const(1), i_SOURCEA=Const(0), i_SOURCEB=Const(0),
        i_CLK0=ClockSignal(), i_CE0=Const(1), i_RST0=Const(0), **ports)
    return p


def _check_dims(rows, cols, data_width, acc_width):
    for name, v, lo, hi in (("rows", rows, 1, 64), ("cols", cols, 1, 64),
                            ("data_width", data_width, 2, 16), ("acc_width", acc_width, 2, 64)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must be an integer, not {v!r}")
        if not lo <= v <= hi:
            raise ValueError(f"{name} must be in [{lo}, {hi}], not {v!r}")
    if acc_width < 2 * data_width:
        raise ValueError(f"acc_width must be >= 2 * data_width = {2 * data_width}, not {acc_width}")


def pe_input_layout(rows, cols, data_width=8):
    """One beat into the array: column ``k`` of A (``a[i] = A[i, k]``), row ``k`` of B
    (``b[j] = B[k, j]``), ``first`` (start a new tile: accumulators restart from this product)
    and ``last`` (the tile ends with this beat: its result is emitted)."""
    return data.StructLayout({
        "a": data.ArrayLayout(signed(data_width), rows),
        "b": data.ArrayLayout(signed(data_width), cols),
        "first": 1,
        "last": 1,
    })


def pe_output_layout(rows, cols, acc_width=32):
    """One result row: ``row[j] = C[index, j]``; ``last`` marks the tile's final row."""
    return data.StructLayout({
        "row": data.ArrayLayout(signed(acc_width), cols),
        "index": range(rows),
        "last": 1,
    })


class PE(wiring.Component):
    """One int8 MAC cell of the systolic array: ``acc = (first ? 0 : acc) + a * b`` every cycle.

    The operands (and the flags) pass through the cell to its neighbours one cycle later
    (``a`` to the right, ``b`` downwards), so every register drives one multiplier input and
    one neighbouring register. There is no enable: an idle cycle is ``a = b = 0`` with both
    flags clear (it adds 0), so no control signal has to reach every PE in one cycle.

    The flags travel *encoded* (:meth:`encode`: ``ef = first ^ a[0]``, ``el = last ^ a[1]``):
    the plain flags of all PEs on one anti-diagonal are equal and synthesis would merge their
    registers into one that drives every PE of the diagonal; encoded with the row's own
    operand bits they stay one register per PE.

    Pipeline (the multiplier's input and output registers are where a DSP block has its own)::

        a, b, ef, el -> [a_r, b_r, ef1, el1] -> [p_r = a_r * b_r, f2, l2] -> [p2, f3, l3]
        -> acc, res

    The flags are decoded as soon as they arrive (``f2``/``l2`` are the plain flags, in
    registers of their own: delayed copies of ``a_r`` for a later decode would be merged with
    the next PEs' ``a_r``, and the decode would read a register three PEs away).

    ``p2`` is a fabric copy of the product: on an FPGA the multipliers sit in a few DSP rows
    and the accumulator's carry chain cannot always be placed next to its DSP (on an
    ECP5-85F the DSP output to the carry chain took 4 ns of routing in an 8x8 array).

    With ``multiplier="ecp5"`` the MULT18X18D's input registers sample ``a`` and ``b`` in
    parallel with ``a_r`` / ``b_r`` (which then only feed the neighbours and the flag decode)
    and its output register is ``p_r``: the same values in the same cycles.

    Ports
    -----
    a, b : In(signed(data_width))
        Operands, sampled every cycle.
    ef, el : In(1)
        Encoded flags (:meth:`encode`). ``first``: the accumulator restarts from this product.
        ``last``: the sum including this product is copied into ``res``.
    a_out, b_out, ef_out, el_out : Out
        The inputs, one cycle later (registered), for the neighbours.
    res : Out(signed(acc_width))
        The finished sum, valid 4 cycles after ``last`` was presented, held until the next
        ``last``. Wraps at ``acc_width`` bits.
    """

    def __init__(self, data_width=8, acc_width=32, *, multiplier="generic"):
        _check_dims(1, 1, data_width, acc_width)
        check_multiplier(multiplier)
        self.data_width, self.acc_width = data_width, acc_width
        self.multiplier = multiplier
        super().__init__({
            "a": In(signed(data_width)), "b": In(signed(data_width)),
            "ef": In(1), "el": In(1),
            "a_out": Out(signed(data_width)), "b_out": Out(signed(data_width)),
            "ef_out": Out(1), "el_out": Out(1),
            "res": Out(signed(acc_width)),
        })

    @staticmethod
    def encode(first, last, a):
        """The encoded flags ``(ef, el)`` for operand ``a``; the PE decodes with the same
        operand bits."""
        return first ^ a[0], last ^ a[1]

    def elaborate(self, platform):
        m = Module()
        dw, aw = self.data_width, self.acc_width
        # No register needs a reset: a tile starts with `first`, `res` is read only after a
        # `last` (the array's result-buffer state is reset), idle cycles carry zeros.
        def reg(shape, name):
            return Signal(shape, name=name, reset_less=True)
        a_r, b_r = reg(signed(dw), "a_r"), reg(signed(dw), "b_r")
        ef1, el1 = reg(1, "ef1"), reg(1, "el1")
        f2, l2, f3, l3 = reg(1, "f2"), reg(1, "l2"), reg(1, "f3"), reg(1, "l3")
        p_r, p2 = reg(signed(2 * dw), "p_r"), reg(signed(2 * dw), "p2")
        acc, res = reg(signed(aw), "acc"), reg(signed(aw), "res_r")
        first, last = Signal(name="first"), Signal(name="last")
        acc_next = Signal(signed(aw), name="acc_next")
        f, l = self.encode(ef1, el1, a_r)    # encoding twice decodes
        m.d.sync += [a_r.eq(self.a), b_r.eq(self.b), ef1.eq(self.ef), el1.eq(self.el),
                     f2.eq(f), l2.eq(l), f3.eq(f2), l3.eq(l2)]
        if self.multiplier == "generic":
            m.d.sync += p_r.eq(a_r * b_r)
        else:
            p_r = mult18x18d(m, self.a, self.b)[:2 * dw].as_signed()
        m.d.sync += p2.eq(p_r)
        m.d.comb += [first.eq(f3), last.eq(l3)]
        m.d.comb += acc_next.eq((Mux(first, 0, acc) + p2)[:aw].as_signed())
        m.d.sync += acc.eq(acc_next)
        with m.If(last):
            m.d.sync += res.eq(acc_next)
        m.d.comb += [self.a_out.eq(a_r), self.b_out.eq(b_r), self.ef_out.eq(ef1),
                     self.el_out.eq(el1), self.res.eq(res)]
        return m


class PEArray(wiring.Component):
    """``rows`` x ``cols`` output-stationary systolic array of signed MACs (:class:`PE` cells).

    Each accepted beat performs ``acc[i][j] += a[i] * b[j]`` in every PE (an outer product), so
    a tile ``C = A @ B`` with A ``rows x K`` and B ``K x cols`` takes K beats. Accumulators wrap
    at ``acc_width`` bits (two's complement), exactly like :func:`hasp.sw.golden.gemm`.

    Dataflow: ``a[i]`` enters row ``i`` at its left edge ``i`` cycles late and moves one PE to
    the right per cycle, ``b[j]`` enters column ``j`` at the top ``j`` cycles late and moves
    down, so PE ``(i, j)`` multiplies the operands of one beat ``i + j`` cycles after PE
    ``(0, 0)``. No register drives more than one multiplier and one neighbour: nothing grows
    with the array size but the latency. Pipeline::

        inp -> [stage 1] -> [injection] -> [skew: i (or j) registers] -> PE chain (4 stages
        in each PE, 1 cycle per hop) -> result buffer -> out

    Stage 1 is the only stage that can hold a beat: everything behind it advances every cycle
    (an empty cycle travels as zero operands). A beat with ``last`` leaves stage 1 only when
    the result buffer is empty and no other ``last`` is on its way, so the buffer is free when
    the tile's sums arrive. The result buffer (the PEs' ``res`` registers) drains a finished
    tile one row a cycle while the next tile accumulates; row ``r`` can leave as soon as its
    last PE ``(r, cols - 1)`` has its sum, one cycle after row ``r - 1``. Back-to-back tiles
    with ``K >= rows + cols + 4`` keep every MAC busy.

    Parameters
    ----------
    rows, cols : int
        Array size.
    data_width : int
        Operand width (signed). Default 8.
    acc_width : int
        Accumulator width (signed, wrapping). Default 32.
    multiplier : str
        ``"generic"`` (default; every simulator) or ``"ecp5"`` (MULT18X18D instances with
        their own registers, for ECP5 synthesis): see :data:`MULTIPLIERS`.

    Ports
    -----
    inp : In(stream.Signature(pe_input_layout))
        Operand beats. ``inp.ready`` is registered-state only (no combinational path from
        ``out.ready`` or ``inp.valid``); it drops only while a ``last`` beat waits in stage 1
        for the previous tile's result rows to drain.
    out : Out(stream.Signature(pe_output_layout))
        Result rows, ``rows`` transfers per tile in row order. The first row is valid
        :attr:`latency` ``= cols + 5`` cycles after the ``last`` beat is accepted, if the
        previous tile has drained.
    macs : Out(48)
        MACs performed since reset or ``clear_counters`` (``rows * cols`` per beat, counted
        when the beat leaves stage 1 towards the PEs).
    busy : Out(48)
        Cycles in which a beat left stage 1 towards the PEs.
    clear_counters : In(1)
        Synchronous clear of ``macs`` and ``busy``.
    """

    def __init__(self, rows, cols, data_width=8, acc_width=32, *, multiplier="generic"):
        _check_dims(rows, cols, data_width, acc_width)
        check_multiplier(multiplier)
        self.multiplier = multiplier
        self.rows, self.cols = rows, cols
        self.data_width, self.acc_width = data_width, acc_width
        #: cycles from accepting a ``last`` beat to its first result row (empty buffer)
        self.latency = cols + 5
        super().__init__({
            "inp": In(stream.Signature(pe_input_layout(rows, cols, data_width))),
            "out": Out(stream.Signature(pe_output_layout(rows, cols, acc_width))),
            "macs": Out(COUNTER_WIDTH),
            "busy": Out(COUNTER_WIDTH),
            "clear_counters": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        R, C, dw, aw = self.rows, self.cols, self.data_width, self.acc_width

        # Stage 1: the input register, the only one that holds a beat.
        v1, first1, last1 = Signal(name="v1"), Signal(name="first1"), Signal(name="last1")
        a1 = [Signal(signed(dw), name=f"a1_{i}", reset_less=True) for i in range(R)]
        b1 = [Signal(signed(dw), name=f"b1_{j}", reset_less=True) for j in range(C)]

        # Result buffer state. `lif`: a `last` is between stage 1 and the result buffer;
        # `ld[k]`: it left stage 1 k + 1 cycles ago. `res_full`: the buffer holds (or is
        # receiving) a tile, of which rows 0 .. avail - 1 are complete.
        res_full = Signal(name="res_full")
        res_row = Signal(range(R), name="res_row")
        avail = Signal(range(R + 1), name="avail")
        lif = Signal(name="lif")
        ld = [Signal(name=f"ld_{k}") for k in range(C + 3)]

        stall = Signal(name="stall")
        go = Signal(name="go")
        m.d.comb += [stall.eq(v1 & last1 & (lif | res_full)), go.eq(v1 & ~stall),
                     self.inp.ready.eq(~stall)]
        with m.If(~stall):
            m.d.sync += v1.eq(self.inp.valid)
            with m.If(self.inp.valid):
                m.d.sync += [first1.eq(self.inp.payload.first), last1.eq(self.inp.payload.last)]
                m.d.sync += [a1[i].eq(self.inp.payload.a[i]) for i in range(R)]
                m.d.sync += [b1[j].eq(self.inp.payload.b[j]) for j in range(C)]

        pes = [[PE(dw, aw, multiplier=self.multiplier) for j in range(C)] for i in range(R)]
        for i in range(R):
            for j in range(C):
                m.submodules[f"pe_{i}_{j}"] = pes[i][j]

        def skewed(m, sig, n, name):
            """``sig`` registered (injection) and then delayed by ``n`` more registers."""
            out = sig
            for k in range(n + 1):
                r = Signal.like(sig, name=f"{name}_{k}", reset_less=True)
                m.d.sync += r.eq(out)
                out = r
            return out

        # Injection: a cycle without a beat enters as zeros (and clear flags).
        fg, lg = Signal(name="first_go"), Signal(name="last_go")
        m.d.comb += [fg.eq(go & first1), lg.eq(go & last1)]
        for i in range(R):
            ag = Signal(signed(dw), name=f"a_go_{i}")
            fl = Signal(2, name=f"flags_go_{i}")
            m.d.comb += [ag.eq(Mux(go, a1[i], 0)), fl.eq(Cat(*PE.encode(fg, lg, ag)))]
            a_in, fl_in = skewed(m, ag, i, f"a_sk{i}"), skewed(m, fl, i, f"f_sk{i}")
            for j in range(C):
                pe = pes[i][j]
                if j == 0:
                    m.d.comb += [pe.a.eq(a_in), pe.ef.eq(fl_in[0]), pe.el.eq(fl_in[1])]
                else:
                    left = pes[i][j - 1]
                    m.d.comb += [pe.a.eq(left.a_out), pe.ef.eq(left.ef_out),
                                 pe.el.eq(left.el_out)]
        for j in range(C):
            bg = Signal(signed(dw), name=f"b_go_{j}")
            m.d.comb += bg.eq(Mux(go, b1[j], 0))
            b_in = skewed(m, bg, j, f"b_sk{j}")
            for i in range(R):
                m.d.comb += pes[i][j].b.eq(b_in if i == 0 else pes[i - 1][j].b_out)

        # A `last` leaving stage 1 at cycle s reaches PE (i, j) at s + 1 + i + j; its `res`
        # holds the tile from s + 5 + i + j: row r is complete from s + C + 4 + r.
        m.d.sync += [ld[0].eq(lg)] + [ld[k].eq(ld[k - 1]) for k in range(1, C + 3)]
        with m.If(lg):
            m.d.sync += lif.eq(1)

        # The row multiplexer: each column has its own copy of the row counter (one counter
        # would drive every result bit of the array: 6 ns of routing on an 8x8 array). The
        # copies hold `res_row ^ j`, so synthesis cannot merge them back into one register.
        w = len(res_row)
        sel = [Signal(w, name=f"sel_{j}", init=j % (1 << w)) for j in range(C)]

        def set_row(value):
            m.d.sync += [res_row.eq(value)]
            m.d.sync += [sel[j].eq(value ^ (j % (1 << w))) for j in range(C)]

        row_mux = Signal(data.ArrayLayout(signed(aw), C), name="row_mux")
        for j in range(C):
            with m.Switch(sel[j]):
                for i in range(R):
                    with m.Case(i ^ (j % (1 << w))):
                        m.d.comb += row_mux[j].eq(pes[i][j].res)
        m.d.comb += [
            self.out.valid.eq(res_row < avail),
            self.out.payload.row.eq(row_mux),
            self.out.payload.index.eq(res_row),
            self.out.payload.last.eq(res_row == R - 1),
        ]
        with m.If((avail != 0) & (avail != R)):
            m.d.sync += avail.eq(avail + 1)
        with m.If(self.out.valid & self.out.ready):
            with m.If(res_row == R - 1):
                set_row(0)
                m.d.sync += [res_full.eq(0), avail.eq(0)]
            with m.Else():
                set_row(res_row + 1)
        with m.If(ld[C + 2]):
            # Only one `last` in flight, and only into an empty buffer: row 0 is complete.
            m.d.sync += [res_full.eq(1), avail.eq(1), lif.eq(0)]

        with m.If(self.clear_counters):
            m.d.sync += [self.macs.eq(0), self.busy.eq(0)]
        with m.Elif(go):
            m.d.sync += [self.macs.eq(self.macs + R * C), self.busy.eq(self.busy + 1)]
        return m
