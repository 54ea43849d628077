"""Output-stationary int8 PE array."""
from amaranth import Module, Signal, signed
from amaranth.lib import wiring, stream, data
from amaranth.lib.wiring import In, Out

__all__ = ["PEArray", "pe_input_layout", "pe_output_layout", "COUNTER_WIDTH"]

COUNTER_WIDTH = 48


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


class PEArray(wiring.Component):
    """``rows`` x ``cols`` output-stationary array of signed MACs.

    Each accepted beat performs ``acc[i][j] += a[i] * b[j]`` in every PE (an outer product), so
    a tile ``C = A @ B`` with A ``rows x K`` and B ``K x cols`` takes K beats. Accumulators wrap
    at ``acc_width`` bits (two's complement), exactly like :func:`hasp.sw.golden.gemm`.

    Pipeline (for FPGA timing, the multiplier output is registered, as in a DSP block)::

        inp -> [operand regs] -> [product regs] -> [accumulators] -> [result buffer] -> out

    The result buffer lets the next tile accumulate while the previous one drains, one row a
    cycle, so back-to-back tiles with ``K >= rows`` keep every MAC busy.

    Parameters
    ----------
    rows, cols : int
        Array size.
    data_width : int
        Operand width (signed). Default 8.
    acc_width : int
        Accumulator width (signed, wrapping). Default 32.

    Ports
    -----
    inp : In(stream.Signature(pe_input_layout))
        Operand beats. ``inp.ready`` is registered-state only (no combinational path from
        ``out.ready``); it drops only while a finished tile waits for a busy result buffer.
    out : Out(stream.Signature(pe_output_layout))
        Result rows, ``rows`` transfers per tile in row order. First row is valid 4 cycles
        after the ``last`` beat is accepted (3 pipeline stages + buffer).
    macs : Out(48)
        MACs performed since reset or ``clear_counters`` (``rows * cols`` per beat).
    busy : Out(48)
        Cycles in which the accumulators took a beat.
    clear_counters : In(1)
        Synchronous clear of ``macs`` and ``busy``.
    """

    def __init__(self, rows, cols, data_width=8, acc_width=32):
        _check_dims(rows, cols, data_width, acc_width)
        self.rows, self.cols = rows, cols
        self.data_width, self.acc_width = data_width, acc_width
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

        # Stage 1: operand registers. Stage 2: product registers. Stage 3: accumulators.
        v1, first1, last1 = Signal(name="v1"), Signal(name="first1"), Signal(name="last1")
        a1 = [Signal(signed(dw), name=f"a1_{i}") for i in range(R)]
        b1 = [Signal(signed(dw), name=f"b1_{j}") for j in range(C)]
        v2, first2, last2 = Signal(name="v2"), Signal(name="first2"), Signal(name="last2")
        p2 = [[Signal(signed(2 * dw), name=f"p2_{i}_{j}") for j in range(C)] for i in range(R)]
        acc = [[Signal(signed(aw), name=f"acc_{i}_{j}") for j in range(C)] for i in range(R)]
        acc_next = [[Signal(signed(aw), name=f"accn_{i}_{j}") for j in range(C)] for i in range(R)]

        # Result buffer drained one row per transfer.
        res = [[Signal(signed(aw), name=f"res_{i}_{j}") for j in range(C)] for i in range(R)]
        res_full = Signal(name="res_full")
        res_row = Signal(range(R), name="res_row")

        # The pipeline holds while a finished tile cannot enter the busy result buffer.
        stall = Signal(name="stall")
        adv = Signal(name="adv")
        m.d.comb += [stall.eq(v2 & last2 & res_full), adv.eq(~stall)]
        m.d.comb += self.inp.ready.eq(adv)

        with m.If(adv):
            m.d.sync += [v1.eq(self.inp.valid), v2.eq(v1), first2.eq(first1), last2.eq(last1)]
            with m.If(self.inp.valid):
                m.d.sync += [first1.eq(self.inp.payload.first), last1.eq(self.inp.payload.last)]
                m.d.sync += [a1[i].eq(self.inp.payload.a[i]) for i in range(R)]
                m.d.sync += [b1[j].eq(self.inp.payload.b[j]) for j in range(C)]
            for i in range(R):
                for j in range(C):
                    m.d.sync += p2[i][j].eq(a1[i] * b1[j])

        for i in range(R):
            for j in range(C):
                base = Signal(signed(aw), name=f"base_{i}_{j}")
                m.d.comb += base.eq(acc[i][j])
                with m.If(first2):
                    m.d.comb += base.eq(0)
                m.d.comb += acc_next[i][j].eq((base + p2[i][j])[:aw].as_signed())

        take = Signal(name="take")
        m.d.comb += take.eq(adv & v2)
        with m.If(take):
            m.d.sync += [acc[i][j].eq(acc_next[i][j]) for i in range(R) for j in range(C)]

        # Result buffer: load on a finished tile, drain a row per transfer.
        row_mux = Signal(data.ArrayLayout(signed(aw), C), name="row_mux")
        with m.Switch(res_row):
            for i in range(R):
                with m.Case(i):
                    m.d.comb += [row_mux[j].eq(res[i][j]) for j in range(C)]
        m.d.comb += [
            self.out.valid.eq(res_full),
            self.out.payload.row.eq(row_mux),
            self.out.payload.index.eq(res_row),
            self.out.payload.last.eq(res_row == R - 1),
        ]
        with m.If(self.out.valid & self.out.ready):
            m.d.sync += res_row.eq(res_row + 1)
            with m.If(res_row == R - 1):
                m.d.sync += [res_row.eq(0), res_full.eq(0)]
        with m.If(take & last2):
            # Only reached when the buffer is free (else stall): load the finished tile.
            m.d.sync += [res[i][j].eq(acc_next[i][j]) for i in range(R) for j in range(C)]
            m.d.sync += [res_full.eq(1), res_row.eq(0)]

        with m.If(self.clear_counters):
            m.d.sync += [self.macs.eq(0), self.busy.eq(0)]
        with m.Elif(take):
            m.d.sync += [self.macs.eq(self.macs + R * C), self.busy.eq(self.busy + 1)]
        return m
