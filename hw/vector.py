"""Vector unit: the core's post-processing stage (bias + requantisation + clamp)."""
from amaranth import Module, Signal, Mux, signed
from amaranth.lib import wiring, stream, data, fifo
from amaranth.lib.wiring import In, Out

from hasp.sw.golden import MULT_BITS, SHIFT_MAX
from .checks import check_int as _check_int
from .pe_array import check_multiplier, mult18x18d
from .scratchpad import room_after

__all__ = ["VectorUnit", "vector_input_layout", "vector_output_layout", "vector_params_layout",
           "SHIFT_BITS", "MAX_ACC_WIDTH", "CHUNK_BITS", "mult_chunks"]

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


#: Bits of a low accumulator chunk fed to the multiplier (unsigned, so 18 bits signed: one
#: MULT18X18D operand); the top chunk is signed and up to 18 bits wide.
CHUNK_BITS = 17


def mult_chunks(acc_width):
    """Multiplier passes per lane: the accumulator is cut into a signed top chunk of at most
    18 bits and unsigned ``CHUNK_BITS``-bit low chunks (1 for ``acc_width <= 18``, 2 for 32)."""
    return 1 + max(0, -(-(acc_width - 18) // CHUNK_BITS))


class VectorUnit(wiring.Component):
    """``lanes``-wide requantisation unit: for every lane of every beat ::

        data[i] = golden.requantize(wrap(acc[i] + bias, acc_width), mult, shift, zero_point, lo, hi)

    bit-exactly (:func:`hasp.sw.golden.requantize`: ``x = acc * mult``; for ``shift > 0``
    ``x = (x + 2**(shift-1)) >> shift``, arithmetic; then ``clamp(x + zero_point, lo, hi)``).
    Fused activations are the clamp bounds: ReLU is ``lo = zero_point``, ReLU6 is
    ``lo = zero_point, hi = q(6.0)`` (:func:`hasp.sw.golden.relu_bounds`), none is
    ``lo = -2**(data_width-1), hi = 2**(data_width-1) - 1``.

    Outside the golden model's domain the hardware is still defined: ``shift`` in
    ``SHIFT_MAX+1 .. 2**SHIFT_BITS-1`` computes the same formula in unbounded precision, and
    ``lo > hi`` gives ``hi`` (as ``numpy.clip``).

    One multiplier, time-multiplexed: the lanes of a beat go through one 18 x 17-bit signed
    multiplier (one MULT18X18D on ECP5) one pass per cycle, and through one rounding shifter
    and one clamp. A lane whose ``acc + bias`` fits in 18 bits signed takes one pass; a wider
    one is cut into a signed top chunk and unsigned 17-bit low chunks, one pass each, top
    first (``acc_width`` 32: 2 passes). A 4-lane beat of 32-bit lanes therefore takes 4 to
    ``INTERVAL`` = 8 cycles. Pipeline, one pass per cycle::

        inp -> [S1: acc + bias, params] -> [A: chunk select] -> [B: chunk * mult]
            -> [C: sum = (sum << 17) + product] -> [D: rounding shift of the lane's product]
            -> [D2: saturated to data_width + 2 bits] -> [E: + zero point]
            -> [E2: the two clamp compares] -> (clamp select) -> [lane register]
            -> [output FIFO] -> out

    ``inp.ready`` is a flip-flop (a credit check: beats accepted and not yet delivered <
    ``FIFO_DEPTH``, and the multiplier free from the next cycle on), so there
    is no combinational path from ``out.ready`` (or any other input) to ``inp.ready``; with
    ``out.ready`` held high the unit accepts the next beat as soon as the last pass of the
    current one is issued.

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
    multiplier : str
        ``"generic"`` (default; every simulator) or ``"ecp5"`` (a MULT18X18D with its own
        registers, for ECP5 synthesis): see :data:`hasp.hw.pe_array.MULTIPLIERS`.

    Attributes
    ----------
    INTERVAL : int
        Most cycles per beat: ``lanes * mult_chunks(acc_width)`` (every lane wide).
    MIN_INTERVAL : int
        Fewest cycles per beat: ``lanes`` (every lane fits in 18 bits).
    LATENCY : int
        Most cycles from an ``inp`` transfer to ``out.valid`` (empty unit): ``INTERVAL + 9``;
        in general the beat's passes + 9.
    FIFO_DEPTH : int
        Output FIFO entries (credits), enough for one beat every ``MIN_INTERVAL`` cycles.

    Ports
    -----
    inp : In(stream.Signature(vector_input_layout(lanes, acc_width, tag_width)))
        Accumulator beats. ``inp.ready`` depends on registered state only.
    params : In(vector_params_layout(data_width))
        Requantisation parameters, sampled together with each beat on its ``inp`` transfer
        (so they must be valid in that cycle; they may change from one beat to the next).
    out : Out(stream.Signature(vector_output_layout(lanes, data_width, tag_width)))
        Results, one per input beat, in order. A beat transferred on ``inp`` in cycle ``t`` is
        valid on ``out`` from cycle ``t + LATENCY`` if the output FIFO is empty; ``valid``
        and ``payload`` are held until the transfer.
    """

    def __init__(self, lanes, acc_width=32, data_width=8, tag_width=16, *, multiplier="generic"):
        _check_dims(lanes, acc_width, data_width, tag_width)
        check_multiplier(multiplier)
        self.multiplier = multiplier
        self.lanes, self.acc_width = lanes, acc_width
        self.data_width, self.tag_width = data_width, tag_width
        self.chunks = mult_chunks(acc_width)
        self.INTERVAL = lanes * self.chunks
        self.MIN_INTERVAL = lanes
        self.LATENCY = self.INTERVAL + 9
        self.FIFO_DEPTH = -(-(self.MIN_INTERVAL + 9) // self.MIN_INTERVAL) + 1
        super().__init__({
            "inp": In(stream.Signature(vector_input_layout(lanes, acc_width, tag_width))),
            "params": In(vector_params_layout(data_width)),
            "out": Out(stream.Signature(vector_output_layout(lanes, data_width, tag_width))),
        })

    def elaborate(self, platform):
        m = Module()
        L, aw, dw, tw = self.lanes, self.acc_width, self.data_width, self.tag_width
        n, cb = self.chunks, CHUNK_BITS
        pw = aw + MULT_BITS          # |acc * mult| < 2**(aw - 1) * 2**MULT_BITS
        sw = dw + 2                  # saturated rounded value: wide enough to clamp exactly
        out_layout = vector_output_layout(L, dw, tw)

        m.submodules.fifo = q = fifo.SyncFIFO(width=out_layout.size, depth=self.FIFO_DEPTH)

        # Credits: beats accepted and not yet delivered (in the stages or in the FIFO).
        count = Signal(range(self.FIFO_DEPTH + 1), name="count")
        take = Signal(name="take")
        give = Signal(name="give")
        busy = Signal(name="busy")                       # S1 holds a beat being issued
        li = Signal(range(max(L, 2)), name="li")         # lane issued this cycle
        cj = Signal(range(max(n, 2)), name="cj")         # pass of that lane
        # A lane whose acc + bias fits in 18 bits signed needs one pass (the whole value is one
        # multiplier operand); otherwise `n` passes, top chunk first.
        # `fits` is registered with the sum (computed from the adder's output at the take), so
        # the pass control (and `inp.ready`'s next value) is not behind the sums' 15-bit
        # tests, except with a single lane.
        s1 = [Signal(signed(aw), name=f"sum1_{i}") for i in range(L)]
        sums = [Signal(signed(aw), name=f"sum0_{i}") for i in range(L)]
        m.d.comb += [sums[i].eq((self.inp.payload.acc[i] + self.inp.payload.bias)[:aw].as_signed())
                     for i in range(L)]
        # `s1` and `fits` shift down a lane after each lane's last pass, so the lane being
        # issued is always lane 0: the operand select has no L-way multiplexer (on the tiny
        # chip `li` -> lane mux -> DSP input was the critical path, 86.0 MHz).
        fits = [Signal(name=f"fits{i}") for i in range(L)]
        fits_in = [Signal(name=f"fits_in{i}") for i in range(L)]
        for i in range(L):
            top = sums[i][17:]                           # all sign copies: fits in 18 bits
            m.d.comb += fits_in[i].eq((top.all() | ~top.any()) if aw > 18 else 1)
        last_pass = Signal(name="last_pass")             # the lane's last pass is issued
        m.d.comb += [
            last_pass.eq(fits[0] | (cj == n - 1)),
            take.eq(self.inp.valid & self.inp.ready),
            give.eq(self.out.valid & self.out.ready),
        ]
        # `inp.ready` = credits left and (idle or the beat's last pass issued), as a
        # flip-flop: worked out from this cycle's state for the next (on the tiny chip the
        # combinational version, `fits0` -> `last_pass` -> `inp.ready` -> the caller's take ->
        # `busy`, `li`, `cj`, ran between the core and the DSP's corner: 74.9 MHz).
        ready = Signal(init=1, name="ready")
        count_n = Signal.like(count, name="count_n")
        last_n = Signal(name="last_issue_n")             # next cycle issues the beat's last pass
        m.d.comb += [count_n.eq(count + take - give), self.inp.ready.eq(ready)]
        with m.If(take):                                 # lane 0, pass 0 of the new beat
            m.d.comb += last_n.eq((L == 1) & (fits_in[0] | (n == 1)))
        with m.Elif(busy & last_pass):
            if L > 1:                                    # next lane (lane 1 moves down), pass 0
                m.d.comb += last_n.eq((li == L - 1) | ((li == L - 2) & (fits[1] | (n == 1))))
            else:
                m.d.comb += last_n.eq(1)                 # idle next
        with m.Elif(busy):                               # next pass of this lane
            m.d.comb += last_n.eq((li == L - 1) & (fits[0] | (cj == n - 2)))
        with m.Else():
            m.d.comb += last_n.eq(1)                     # idle
        # `give` comes from the output FIFO's level and the caller's `out.ready`: the room
        # test is not behind the adder (`count` never exceeds FIFO_DEPTH).
        m.d.sync += [count.eq(count_n),
                     ready.eq(room_after(count, take, give, self.FIFO_DEPTH) & last_n)]

        # S1: bias added (wrapping), parameters captured with the beat.
        tag1 = Signal(tw, name="tag1")
        prm1 = Signal(vector_params_layout(dw), name="prm1")
        with m.If(take):
            m.d.sync += [tag1.eq(self.inp.payload.tag), prm1.eq(self.params), busy.eq(1),
                         li.eq(0), cj.eq(0)]
            m.d.sync += [s1[i].eq(sums[i]) for i in range(L)]
            m.d.sync += [fits[i].eq(fits_in[i]) for i in range(L)]
        with m.Elif(busy):
            with m.If(last_pass):
                m.d.sync += [li.eq(li + 1), cj.eq(0)]
                m.d.sync += [s1[i].eq(s1[i + 1]) for i in range(L - 1)]
                m.d.sync += [fits[i].eq(fits[i + 1]) for i in range(L - 1)]
                with m.If(li == L - 1):
                    m.d.sync += busy.eq(0)
            with m.Else():
                m.d.sync += cj.eq(cj + 1)

        # The metadata that travels with each chunk down the stages.
        meta = data.StructLayout({"first": 1, "last": 1, "last_lane": 1, "lane": range(L),
                                  "shift": SHIFT_BITS, "off": signed(dw + 2),
                                  "lo": signed(dw), "hi": signed(dw), "tag": tw})

        # A: chunk select (issue order: lane 0's passes, top chunk first, then lane 1 ...).
        # The operands are registered at A (in the DSP's input registers with "ecp5"); an
        # idle cycle's operand is a don't-care (`va` is low), so the select has no hold case.
        va = Signal(name="va")
        opa_n = Signal(signed(18), name="opa_n")
        ma = Signal(meta, name="meta_a")
        m.d.sync += [va.eq(busy),
                     ma.shift.eq(prm1.shift), ma.off.eq(prm1.zero_point * 2 + 1),
                     ma.lo.eq(prm1.lo), ma.hi.eq(prm1.hi), ma.tag.eq(tag1),
                     ma.first.eq(cj == 0), ma.last.eq(last_pass),
                     ma.last_lane.eq(last_pass & (li == L - 1)), ma.lane.eq(li)]
        with m.If(fits[0]):
            m.d.comb += opa_n.eq(s1[0][:min(aw, 18)].as_signed())
        with m.Else():
            with m.Switch(cj):
                for j in range(n):
                    c = n - 1 - j                        # chunk index, top (c = n-1) first
                    with m.Case(j):
                        if c == n - 1:
                            chunk = s1[0][c * cb:].as_signed()
                        else:
                            chunk = s1[0][c * cb:(c + 1) * cb].as_unsigned()
                        m.d.comb += opa_n.eq(chunk)

        # B: the product (the multiplier with registered operands and product).
        vb = Signal(name="vb")
        pb = Signal(signed(18 + MULT_BITS + 1), name="prodb")
        mb = Signal(meta, name="meta_b")
        m.d.sync += [vb.eq(va), mb.eq(ma)]
        if self.multiplier == "generic":
            opa = Signal(signed(18), name="opa")
            multa = Signal(signed(MULT_BITS + 1), name="multa")
            m.d.sync += [opa.eq(opa_n), multa.eq(prm1.mult), pb.eq(opa * multa)]
        else:
            m.d.comb += pb.eq(mult18x18d(m, opa_n, prm1.mult)[:len(pb)].as_signed())

        # C: the lane's product, accumulated top chunk first.
        vc = Signal(name="vc")
        pc = Signal(signed(pw), name="prodc")
        mc = Signal(meta, name="meta_c")
        m.d.sync += [vc.eq(vb), mc.eq(mb)]
        with m.If(vb):
            with m.If(mb.first):
                m.d.sync += pc.eq(pb)
            with m.Else():
                m.d.sync += pc.eq(((pc << cb) + pb)[:pw].as_signed())

        # D: rounding shift. floor((x + 2**(s-1)) / 2**s) == (floor(2x / 2**s) + 1) >> 1 for
        # every s >= 0 (s = 0 gives x), so y = (2x) >> s is a plain arithmetic shift and the
        # rounding increment moves to E where it folds into the zero-point add.
        vd = Signal(name="vd")
        yd = Signal(signed(pw + 1), name="yd")
        md = Signal(meta, name="meta_d")
        m.d.sync += [vd.eq(vc & mc.last), md.eq(mc), yd.eq((pc << 1) >> mc.shift)]

        # D2: y saturated to `sw` bits (beyond that range the result clamps to lo/hi either
        # way): out of range when the bits above the low sw-1 are not all copies of the sign.
        vs = Signal(name="vs")
        ys = Signal(signed(sw), name="ys")
        ms = Signal(meta, name="meta_s")
        smax, smin = (1 << (sw - 1)) - 1, -(1 << (sw - 1))
        top = yd[sw - 1:]
        neg = yd[-1]
        m.d.sync += [vs.eq(vd), ms.eq(md),
                     ys.eq(Mux(~neg & top.any(), smax, Mux(neg & ~top.all(), smin, yd[:sw])))]
        # E: zero point and clamp (numpy.clip order: max with lo, then min with hi) into the
        # lane's result register; a complete beat goes into the output FIFO the next cycle.
        # (E: the zero-point add is registered, E2: the clamp.)
        vz = Signal(name="vz")
        z = Signal(signed(sw + 1), name="z")
        mz = Signal(meta, name="meta_z")
        m.d.sync += [vz.eq(vs), mz.eq(ms), z.eq((ys + ms.off) >> 1)]
        # E2: both clamp compares side by side into registers (in series they were the
        # core's critical path), the selection in E3:
        # clip(z, lo, hi) = hi if max(z, lo) > hi else max(z, lo).
        vk = Signal(name="vk")
        zk = Signal(signed(dw), name="zk")
        mk = Signal(meta, name="meta_k")
        k_lt, k_gt, k_lohi = Signal(name="k_lt"), Signal(name="k_gt"), Signal(name="k_lohi")
        m.d.sync += [vk.eq(vz), mk.eq(mz), zk.eq(z[:dw]),
                     k_lt.eq(z < mz.lo), k_gt.eq(z > mz.hi), k_lohi.eq(mz.lo > mz.hi)]
        lane_res = Signal(signed(dw), name="lane_res")
        m.d.comb += lane_res.eq(Mux(k_lt, Mux(k_lohi, mk.hi, mk.lo), Mux(k_gt, mk.hi, zk)))
        vz, mz = vk, mk
        res = Signal(out_layout, name="res")
        res_v = Signal(name="res_v")
        m.d.sync += res_v.eq(vz & mz.last_lane)
        with m.If(vz):
            with m.Switch(mz.lane):
                for i in range(L):
                    with m.Case(i):
                        m.d.sync += res.data[i].eq(lane_res)
            with m.If(mz.last_lane):
                m.d.sync += res.tag.eq(mz.tag)
        m.d.comb += [
            q.w_data.eq(res),
            q.w_en.eq(res_v),            # never refused: the credits reserve the entry
            self.out.valid.eq(q.r_rdy),
            self.out.payload.eq(q.r_data),
            q.r_en.eq(self.out.ready),
        ]
        return m
