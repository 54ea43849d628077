"""Banked scratchpad SRAM."""
from amaranth import Module, Signal, Mux
from amaranth.lib import wiring, memory
from amaranth.lib.wiring import In, Out

__all__ = ["Scratchpad", "ReadPortSignature", "WritePortSignature", "BRAM_ATTRS", "delay"]

#: Attributes of every block-RAM memory of a core (scratchpad banks, instruction and
#: accumulator memories). ``no_rw_check`` tells Yosys that a read and a write of the same
#: word in the same cycle need not return the old word: without it Yosys emulates read-first
#: in fabric (the write delayed a cycle, an address comparator and a bypass multiplexer
#: behind the block RAM per memory, on the read path). The simulators still return the old
#: word; only a program that races (a packet written into words a running GEMM or SEND is
#: reading, a host write into a running program's instructions) can see the difference, and
#: such a program's result already depends on timing. See docs/hardware.md.
BRAM_ATTRS = {"no_rw_check": 1}


def delay(m, value, cycles, name):
    """``value`` through ``cycles`` flip-flops (``name1``, ``name2``, ...) of ``m``'s sync
    domain: what a reader uses to meet its words, :attr:`Scratchpad.READ_LATENCY` cycles
    after the request."""
    for n in range(1, cycles + 1):
        q = Signal.like(value, name=f"{name}{n}")
        m.d.sync += q.eq(value)
        value = q
    return value


def room_after(count, inc, dec, depth):
    """``count + inc - dec < depth`` for a credit counter ``count <= depth`` (``inc``, ``dec``
    one bit each), as tests of ``count`` selected by the two events instead of a compare
    behind the adder: a late event is one LUT from the result (the GEMM engine's FIFO credit
    and the vector unit's ``inp.ready`` were the tiny chip's critical paths through the
    adder, 97.4 and 98.7 MHz)."""
    return Mux(inc & ~dec, count < depth - 1, Mux(dec & ~inc, 1, count < depth))


class ReadPortSignature(wiring.Signature):
    """A scratchpad read port, from the requester's side.

    ``addr``/``en`` out, ``ready`` in (the request is granted this cycle), ``data`` in: valid
    :attr:`Scratchpad.READ_LATENCY` cycles after a granted request (only that cycle: a later
    access to the same bank by any port replaces it from the cycle after).
    """
    def __init__(self, addr_width, width):
        super().__init__({"addr": Out(addr_width), "en": Out(1), "ready": In(1), "data": In(width)})


class WritePortSignature(wiring.Signature):
    """A scratchpad write port, from the requester's side: ``addr``, ``data``, ``en`` out;
    ``ready`` in (the write is granted this cycle; see :class:`Scratchpad` for when reads
    see it)."""
    def __init__(self, addr_width, width):
        super().__init__({"addr": Out(addr_width), "data": Out(width), "en": Out(1), "ready": In(1)})


class Scratchpad(wiring.Component):
    """``banks`` banks of ``depth`` words of ``width`` bits, one flat word address space
    (bank = high address bits), one read and one write access per bank per cycle.

    Each bank is an ``amaranth.lib.memory.Memory`` with one synchronous read port and one write
    port, so it maps to one (or a few) FPGA block RAMs. Requests from several ports to the same
    bank in one cycle are served by fixed priority (port 0 first); the others see ``ready = 0``
    and must hold their request.

    **Writes are written one cycle after their grant** and **reads read one cycle after
    theirs** (from a write and a read register per bank, so the block RAM's address, data
    and enable pins come straight from flip-flops, not from the bank arbitration): a read
    granted in the cycle after a write's grant or later sees the word. A read of the same
    word granted in the same cycle as the write returns the old word in the simulators and
    is undefined in block RAM (:data:`BRAM_ATTRS`): the core never issues one (its writers
    are REQUANT, whose results are read by later instructions, and the network interface,
    whose words are read after their tag counter moves).

    **Read latency is 3 cycles**: a request granted in cycle t is registered (t + 1: the
    block RAM's synchronous read), its word is registered right behind the block RAM
    (t + 2: a flip-flop per bank bit) and is on ``data`` in cycle t + 3, through the
    bank-select multiplexer to the port. So the block RAM's slow clock-to-out (5.8 ns on
    ECP5 without its output register, which Yosys' DP16KD mapping does not use) ends at a
    flip-flop, and neither the bank multiplexer nor the reader's logic is behind it.

    Parameters
    ----------
    width : int
        Word width in bits.
    depth : int
        Words per bank (power of two).
    banks : int
        Number of banks (power of two).
    read_ports, write_ports : int
        Number of requester ports of each kind.
    init : list of int, optional
        Initial contents by flat word address.

    Ports
    -----
    rd : In(ReadPortSignature).array(read_ports)
        Read ports; data returns :attr:`READ_LATENCY` cycles after a granted request.
    wr : In(WritePortSignature).array(write_ports)
        Write ports; a granted write is visible to reads granted from the next cycle on.
    """

    #: Cycles from a granted read request to its data on the port.
    READ_LATENCY = 3

    def __init__(self, width, depth, banks, read_ports=1, write_ports=1, init=None):
        for name, v, lo in (("width", width, 1), ("depth", depth, 2), ("banks", banks, 1),
                            ("read_ports", read_ports, 1), ("write_ports", write_ports, 1)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name} must be an integer, not {v!r}")
            if v < lo:
                raise ValueError(f"{name} must be >= {lo}, not {v!r}")
        for name, v in (("depth", depth), ("banks", banks)):
            if v & (v - 1):
                raise ValueError(f"{name} must be a power of two, not {v!r}")
        init = list(init or [])
        if len(init) > depth * banks:
            raise ValueError(f"init has {len(init)} words, more than {depth * banks}")
        self.width, self.depth, self.banks = width, depth, banks
        self.bank_bits = (banks - 1).bit_length()
        self.offset_bits = (depth - 1).bit_length()
        self.addr_width = max(1, self.bank_bits + self.offset_bits)
        self._init = init
        super().__init__({
            "rd": In(ReadPortSignature(self.addr_width, width)).array(read_ports),
            "wr": In(WritePortSignature(self.addr_width, width)).array(write_ports),
        })

    def elaborate(self, platform):
        m = Module()
        ob = self.offset_bits
        bank_data = []
        for b in range(self.banks):
            init = self._init[b * self.depth:(b + 1) * self.depth]
            mem = memory.Memory(shape=self.width, depth=self.depth, init=init, attrs=BRAM_ATTRS)
            m.submodules[f"bank{b}"] = mem
            rp, wp = mem.read_port(), mem.write_port()
            # The bank's read register (cycle t + 1 of a read granted in t: the granted
            # request, so the block RAM's address and enable pins come from flip-flops) and
            # output register (cycle t + 3: the word).
            r_en = Signal(name=f"bank{b}_r_en")
            r_addr = Signal(ob, name=f"bank{b}_r_addr")
            m.d.comb += [rp.en.eq(r_en), rp.addr.eq(r_addr)]
            m.d.sync += r_en.eq(0)
            dq = Signal(self.width, name=f"bank{b}_q")
            m.d.sync += dq.eq(rp.data)
            bank_data.append(dq)
            # Fixed priority: the lowest-numbered requesting port wins the bank.
            taken = Signal(name=f"rd_taken{b}")
            for i, port in enumerate(self.rd):
                hit = port.en & (self._bank(port.addr) == b) & ~taken
                hit_s = Signal(name=f"rd{i}_hit{b}")
                m.d.comb += hit_s.eq(hit)
                with m.If(hit_s):
                    m.d.comb += port.ready.eq(1)
                    m.d.sync += [r_en.eq(1), r_addr.eq(port.addr[:ob])]
                nt = Signal(name=f"rd_taken{b}_{i}")
                m.d.comb += nt.eq(taken | hit_s)
                taken = nt
            # Writes: the granted request goes into the bank's write register and reaches
            # the block RAM in the next cycle (no arbitration logic in front of its pins).
            w_en = Signal(name=f"bank{b}_w_en")
            w_addr = Signal(ob, name=f"bank{b}_w_addr")
            w_data = Signal(self.width, name=f"bank{b}_w_data")
            m.d.comb += [wp.en.eq(w_en), wp.addr.eq(w_addr), wp.data.eq(w_data)]
            m.d.sync += w_en.eq(0)
            wtaken = Signal(name=f"wr_taken{b}")
            for i, port in enumerate(self.wr):
                hit_s = Signal(name=f"wr{i}_hit{b}")
                m.d.comb += hit_s.eq(port.en & (self._bank(port.addr) == b) & ~wtaken)
                with m.If(hit_s):
                    m.d.comb += port.ready.eq(1)
                    m.d.sync += [w_en.eq(1), w_addr.eq(port.addr[:ob]), w_data.eq(port.data)]
                nt = Signal(name=f"wr_taken{b}_{i}")
                m.d.comb += nt.eq(wtaken | hit_s)
                wtaken = nt
        # Return data from the bank each port was granted READ_LATENCY cycles ago.
        for i, port in enumerate(self.rd):
            sel = Signal(range(self.banks), name=f"rd{i}_bank")
            with m.If(port.en & port.ready):
                m.d.sync += sel.eq(self._bank(port.addr))
            with m.Switch(delay(m, sel, self.READ_LATENCY - 1, f"rd{i}_bank_d")):
                for b in range(self.banks):
                    with m.Case(b):
                        m.d.comb += port.data.eq(bank_data[b])
        return m

    def _bank(self, addr):
        return addr[self.offset_bits:] if self.bank_bits else 0
