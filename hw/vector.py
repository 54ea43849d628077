"""Vector unit: the core's post-processing stage (bias + requantisation + clamp)."""
from amaranth import Module, Signal, Mux, signed
from amaranth.lib import wiring, stream, data, fifo
from amaranth.lib.wiring import In, Out

from hasp.sw.golden import MULT_BITS, SHIFT_MAX
from .checks import check_int as _check_int

__all__ = ["VectorUnit", "vector_input_layout", "vector_output_layout", "vector_params_layout",
           "SHIFT_BITS", "MAX_ACC_WIDTH"]

#: Width of the ``shift`` parameter field (holds ``0 .. SHIFT_MAX``).
SHIFT_BITS = SHIFT_MAX.bit_length()
#: Widest accumulator: the product ``acc * mult`` (``acc_width + MULT_BITS`` bits) must fit in the
#: 64-bit integers of the golden model.
MAX_ACC_WIDTH = 64 - MULT_BITS


def _check_dims(lanes, acc_width, data_width, tag_width):
    _check_int("lanes", lanes, 1, 256)
    _check_int("data_width", data_width, 2, 16)
    _check_int("acc_width", acc_width, 2, MAX_ACC_WIDTH)
    _check_int("tag_width", tag_width, 1, 64)
    if acc_width < data_width:
        raise ValueError(f"acc_width must be >= data_width = {data_width}, not {acc_width}")


def vector_input_layout(lanes, acc_width=32, tag_width=16):
    """One beat into the vector unit: ``acc[i]`` (lane ``i``'s accumulator), ``bias`` (added to
    every lane, wrapping at ``acc_width`` bits, before requantisation) and ``tag`` (sideband,
    e.g. the destination address, carried to the output unchanged)."""
    return data.StructLayout({
        "acc": data.ArrayLayout(signed(acc_width), lanes),
        "bias": signed(acc_width),
        "tag": tag_width,
    })


def vector_output_layout(lanes, data_width=8, tag_width=16):
    """One result beat: ``data[i]`` (lane ``i`` requantised) and the input beat's ``tag``."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(data_width), lanes),
        "tag": tag_width,
    })


def vector_params_layout(data_width=8):
    """Requantisation parameters of :func:`hasp.sw.golden.requantize`: ``mult`` (unsigned
    ``MULT_BITS``), ``shift`` (``0 .. SHIFT_MAX``), output ``zero_point`` and clamp bounds
    ``lo``/``hi`` (signed ``data_width``). ReLU is ``lo = zero_point``, ReLU6 additionally
    ``hi = min(hi, q(6.0))``, no activation is the full range; see
    :func:`hasp.sw.golden.relu_bounds`."""
    return data.StructLayout({
        "mult": MULT_BITS,
        "shift": SHIFT_BITS,
        "zero_point": signed(data_width),
        "lo": signed(data_width),
        "hi": signed(data_width),
    })


class VectorUnit(wiring.Component):
    """``lanes``-wide requantisation pipeline: for every lane of every beat ::

        data[i] = golden.requantize(wrap(acc[i] + bias, acc_width), mult, shift, zero_point, lo, hi)

    bit-exactly (:func:`hasp.sw.golden.requantize`: ``x = acc * mult``; for ``shift > 0``
    ``x = (x + 2**(shift-1)) >> shift``, arithmetic; then ``clamp(x + zero_point, lo, hi)``).
    Fused activations are the clamp bounds: ReLU is ``lo = zero_point``, ReLU6 is
    ``lo = zero_point, hi = q(6.0)`` (:func:`hasp.sw.golden.relu_bounds`), none is
    ``lo = -2**(data_width-1), hi = 2**(data_width-1) - 1``.

    Outside the golden model's domain the hardware is still defined: ``shift`` in
    ``SHIFT_MAX+1 .. 2**SHIFT_BITS-1`` computes the same formula in unbounded precision, and
    ``lo > hi`` gives ``hi`` (as ``numpy.clip``).

    Pipeline (one beat per cycle; the multiplier maps onto a DSP with input and output
    registers)::

        inp -> [S1: acc + bias, params] -> [S2: 48-bit product] -> [S3: rounding shift,
            saturated to data_width + 2 bits] -> (zero point, clamp) -> [output FIFO] -> out

    The stages never stall. ``inp.ready`` is a credit check (beats in flight + in the FIFO <
    FIFO depth = ``LATENCY + 1``) on registered state only, so there is no combinational path
    from ``out.ready`` (or any other input) to ``inp.ready``, and with ``out.ready`` held high
    the unit accepts a beat every cycle.

    Parameters
    ----------
    lanes : int
        Vector width, 1 .. 256.
    acc_width : int
        Accumulator and bias width (signed), ``data_width`` .. ``MAX_ACC_WIDTH`` (48). Default 32.
    data_width : int
        Output width (signed), 2 .. 16. Default 8.
    tag_width : int
        Sideband width, 1 .. 64. Default 16.

    Ports
    -----
    inp : In(stream.Signature(vector_input_layout(lanes, acc_width, tag_width)))
        Accumulator beats. ``inp.ready`` depends on registered state only; it is low only
        while ``LATENCY + 1`` beats are accepted but not yet delivered on ``out``.
    params : In(vector_params_layout(data_width))
        Requantisation parameters, sampled together with each beat on its ``inp`` transfer
        (so they must be valid in that cycle; they may change from one beat to the next).
    out : Out(stream.Signature(vector_output_layout(lanes, data_width, tag_width)))
        Results, one per input beat, in order. A beat transferred on ``inp`` in cycle ``t`` is
        valid on ``out`` from cycle ``t + LATENCY`` (4) if the output FIFO is empty; ``valid``
        and ``payload`` are held until the transfer.
    """

    #: Cycles from an ``inp`` transfer to ``out.valid`` (empty pipeline).
    LATENCY = 4
    #: Output FIFO entries (credits): ``LATENCY + 1`` sustains one beat per cycle.
    FIFO_DEPTH = LATENCY + 1

    def __init__(self, lanes, acc_width=32, data_width=8, tag_width=16):
        _check_dims(lanes, acc_width, data_width, tag_width)
        self.lanes, self.acc_width = lanes, acc_width
        self.data_width, self.tag_width = data_width, tag_width
        super().__init__({
            "inp": In(stream.Signature(vector_input_layout(lanes, acc_width, tag_width))),
            "params": In(vector_params_layout(data_width)),
            "out": Out(stream.Signature(vector_output_layout(lanes, data_width, tag_width))),
        })

    def elaborate(self, platform):
        m = Module()
        L, aw, dw, tw = self.lanes, self.acc_width, self.data_width, self.tag_width
        pw = aw + MULT_BITS          # |acc * mult| < 2**(aw - 1) * 2**MULT_BITS
        sw = dw + 2                  # saturated rounded value: wide enough to clamp exactly
        out_layout = vector_output_layout(L, dw, tw)

        m.submodules.fifo = q = fifo.SyncFIFO(width=out_layout.size, depth=self.FIFO_DEPTH)

        # Credits: beats accepted and not yet delivered (in the stages or in the FIFO).
        count = Signal(range(self.FIFO_DEPTH + 1), name="count")
        take = Signal(name="take")
        give = Signal(name="give")
        m.d.comb += [
            self.inp.ready.eq(count < self.FIFO_DEPTH),
            take.eq(self.inp.valid & self.inp.ready),
            give.eq(self.out.valid & self.out.ready),
        ]
        m.d.sync += count.eq(count + take - give)

        # S1: bias added (wrapping), parameters captured with the beat.
        v1 = Signal(name="v1")
        s1 = [Signal(signed(aw), name=f"sum1_{i}") for i in range(L)]
        tag1 = Signal(tw, name="tag1")
        prm1 = Signal(vector_params_layout(dw), name="prm1")
        m.d.sync += [v1.eq(take), tag1.eq(self.inp.payload.tag), prm1.eq(self.params)]
        m.d.sync += [s1[i].eq((self.inp.payload.acc[i] + self.inp.payload.bias)[:aw].as_signed())
                     for i in range(L)]

        # S2: registered product (acc_width x MULT_BITS, 48 bits by default).
        v2 = Signal(name="v2")
        p2 = [Signal(signed(pw), name=f"prod2_{i}") for i in range(L)]
        tag2 = Signal(tw, name="tag2")
        shift2 = Signal(SHIFT_BITS, name="shift2")
        zp2 = Signal(signed(dw), name="zp2")
        lo2, hi2 = Signal(signed(dw), name="lo2"), Signal(signed(dw), name="hi2")
        m.d.sync += [v2.eq(v1), tag2.eq(tag1), shift2.eq(prm1.shift), zp2.eq(prm1.zero_point),
                     lo2.eq(prm1.lo), hi2.eq(prm1.hi)]
        m.d.sync += [p2[i].eq((s1[i] * prm1.mult)[:pw].as_signed()) for i in range(L)]

        # S3: rounding shift. floor((x + 2**(s-1)) / 2**s) == (floor(2x / 2**s) + 1) >> 1 for
        # every s >= 0 (s = 0 gives x), so y = (2x) >> s is a plain arithmetic shift and the
        # rounding increment moves to S4 where it folds into the zero-point add. y is saturated
        # to `sw` bits: beyond that range the result clamps to lo/hi either way.
        v3 = Signal(name="v3")
        y3 = [Signal(signed(sw), name=f"y3_{i}") for i in range(L)]
        tag3 = Signal(tw, name="tag3")
        off3 = Signal(signed(dw + 2), name="off3")      # 2 * zero_point + 1
        lo3, hi3 = Signal(signed(dw), name="lo3"), Signal(signed(dw), name="hi3")
        m.d.sync += [v3.eq(v2), tag3.eq(tag2), off3.eq(zp2 * 2 + 1), lo3.eq(lo2), hi3.eq(hi2)]
        smax, smin = (1 << (sw - 1)) - 1, -(1 << (sw - 1))
        for i in range(L):
            y = Signal(signed(pw + 1), name=f"y_{i}")
            m.d.comb += y.eq((p2[i] << 1) >> shift2)
            m.d.sync += y3[i].eq(Mux(y > smax, smax, Mux(y < smin, smin, y)))

        # S4: zero point and clamp (numpy.clip order: max with lo, then min with hi), written
        # into the output FIFO.
        res = Signal(out_layout, name="res")
        m.d.comb += res.tag.eq(tag3)
        for i in range(L):
            z = Signal(signed(sw + 1), name=f"z_{i}")
            lo_c = Signal(signed(sw + 1), name=f"loc_{i}")
            m.d.comb += [
                z.eq((y3[i] + off3) >> 1),
                lo_c.eq(Mux(z < lo3, lo3, z)),
                res.data[i].eq(Mux(lo_c > hi3, hi3, lo_c)[:dw].as_signed()),
            ]
        m.d.comb += [
            q.w_data.eq(res),
            q.w_en.eq(v3),               # never refused: the credits reserve the entry
            self.out.valid.eq(q.r_rdy),
            self.out.payload.eq(q.r_data),
            q.r_en.eq(self.out.ready),
        ]
        return m
