"""Host interface: the chip's AXI4-Lite slave (registers + a memory window onto every core).

The register map is defined **once**, here, by :class:`Reg`, :class:`CoreReg`, :class:`Mem` and
the address helpers (:func:`core_reg_addr`, :func:`group_mask_addr`, :func:`group_phases_addr`,
:func:`window_addr`). The RTL decodes with these constants and the tests and the runtime build
addresses with the same functions, so no offset is typed twice. ``docs/host.md`` has the table.

Summary (byte addresses, 32-bit registers; address bits [1:0] are ignored)::

    0x0000 ID            R   0x48415350 ('HASP')
    0x0004 CONFIG        R   mesh rows [7:0], mesh cols [15:8], pe rows [23:16], pe cols [31:24]
    0x0008 START         W   bit i starts core i (cores 0..31); reads the started mask
    0x000C STATUS        R   bit0 busy, bit1 any error, bit2 all started cores halted/errored
    0x0010 CYCLES_LO     R   chip cycle counter [31:0] (snapshots [63:32] for CYCLES_HI)
    0x0014 CYCLES_HI     R   chip cycle counter [63:32] at the last CYCLES_LO read
    0x0018 DATA1..       RW  bits 32..63, 64..95, 96..127 of wide values (window words,
    0x0020 DATA3             group masks of chips with more than 32 cores)
    0x0040 + 4g          RW  GROUP_MASK[g]   (g < min(groups, 16))
    0x0080 + 4g          R   GROUP_PHASES[g] (g < min(groups, 16))
    0x1000 + 0x40 i + o  R   per-core block of core i (o: CoreReg)
    0x1000_0000 | core << 20 | mem << 19 | word << 2     memory window (core < min(cores, 256))

Every unmapped address, out-of-range index, read-only/write-only violation or partial write
(``wstrb != 0b1111``) answers SLVERR and changes nothing.
"""
from __future__ import annotations

import enum

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hasp.sw import isa
from .core import ERROR_CODE_BITS
from .gsu import barrier_id_width
from .packet import PacketFormat, PacketType
from .checks import check_int as _check_int

__all__ = [
    "HostInterface", "Reg", "CoreReg", "Mem", "Resp", "ID_VALUE", "PERF_COUNTERS",
    "PERF_WIDTH", "PC_WIDTH", "PHASE_WIDTH", "MAX_GROUP_REGS", "MAX_WINDOW_CORES",
    "MAX_START_CORES", "WIDE_BITS", "DEFAULT_TIMEOUT",
    "core_reg_addr", "group_mask_addr", "group_phases_addr", "window_addr", "config_word",
    "split_wide", "join_wide", "core_xy", "decode_status", "decode_core_status",
]

#: Value of the ID register: ASCII 'HASP'.
ID_VALUE = 0x48415350
#: Perf counters per core, in the order of ``core_perf[i][k]`` and of the PERF registers.
PERF_COUNTERS = ("busy", "sync", "net", "idle", "macs")
#: Width of one perf counter input.
PERF_WIDTH = 48
#: Width of the ``core_pc`` inputs (and of STATUS.pc).
PC_WIDTH = 16
#: Width of the ``grp_phases`` inputs.
PHASE_WIDTH = 32
#: GROUP_MASK / GROUP_PHASES registers exist for groups ``0 .. MAX_GROUP_REGS - 1`` only.
MAX_GROUP_REGS = 16
#: The memory window reaches cores ``0 .. MAX_WINDOW_CORES - 1`` (8 core bits).
MAX_WINDOW_CORES = 256
#: START reaches cores ``0 .. MAX_START_CORES - 1``.
MAX_START_CORES = 32
#: Bits of a wide value: wdata/rdata + DATA1..3.
WIDE_BITS = 128
#: Cycles a window access may wait for the NoC (head flit accepted / READ_RESP) before SLVERR.
DEFAULT_TIMEOUT = 4096


class Reg(enum.IntEnum):
    """Global registers (byte offsets)."""
    ID = 0x0000
    CONFIG = 0x0004
    START = 0x0008
    STATUS = 0x000C
    CYCLES_LO = 0x0010
    CYCLES_HI = 0x0014
    DATA1 = 0x0018
    DATA2 = 0x001C
    DATA3 = 0x0020
    #: GROUP_MASK[g] at ``GROUP_MASK + 4 * g``.
    GROUP_MASK = 0x0040
    #: GROUP_PHASES[g] at ``GROUP_PHASES + 4 * g``.
    GROUP_PHASES = 0x0080
    #: Per-core block of core i at ``CORE_BASE + CORE_STRIDE * i``.
    CORE_BASE = 0x1000
    CORE_STRIDE = 0x40
    #: Memory window base (see :func:`window_addr`).
    WINDOW = 0x1000_0000


class CoreReg(enum.IntEnum):
    """Offsets inside a per-core block (all read-only)."""
    STATUS = 0x00
    PERF_BUSY_LO = 0x08
    PERF_BUSY_HI = 0x0C
    PERF_SYNC_LO = 0x10
    PERF_SYNC_HI = 0x14
    PERF_NET_LO = 0x18
    PERF_NET_HI = 0x1C
    PERF_IDLE_LO = 0x20
    PERF_IDLE_HI = 0x24
    PERF_MACS_LO = 0x28
    PERF_MACS_HI = 0x2C

    @classmethod
    def perf_lo(cls, k: int) -> "CoreReg":
        """LO register of perf counter ``k`` (index into :data:`PERF_COUNTERS`)."""
        return cls(cls.PERF_BUSY_LO + 8 * k)


class Mem(enum.IntEnum):
    """The ``mem`` bit of a window address."""
    SPM = 0
    IMEM = 1


class Resp(enum.IntEnum):
    """AXI response codes used (``bresp``/``rresp``)."""
    OKAY = 0
    SLVERR = 2


# Status bit positions.
STATUS_BUSY, STATUS_ERROR, STATUS_DONE = 0, 1, 2
CORE_RUNNING, CORE_HALTED, CORE_ERROR = 0, 1, 2
CORE_ERROR_CODE_LSB, CORE_PC_LSB = 4, 16

_WIN_CORE_LSB, _WIN_CORE_BITS = 20, 8
_WIN_MEM_BIT = 19
_WIN_WORD_BITS = 17           # address bits [18:2]


#: The AXI4-Lite signals (32-bit address and data) as seen from the master: name, width, flow.
AXIL_SIGNALS = (
    ("awaddr", 32, Out), ("awprot", 3, Out), ("awvalid", 1, Out), ("awready", 1, In),
    ("wdata", 32, Out), ("wstrb", 4, Out), ("wvalid", 1, Out), ("wready", 1, In),
    ("bresp", 2, In), ("bvalid", 1, In), ("bready", 1, Out),
    ("araddr", 32, Out), ("arprot", 3, Out), ("arvalid", 1, Out), ("arready", 1, In),
    ("rdata", 32, In), ("rresp", 2, In), ("rvalid", 1, In), ("rready", 1, Out),
)


def axil_members(prefix: str, master: bool) -> dict:
    """Signature members ``<prefix>_<signal>`` of an AXI4-Lite master or slave port."""
    flip = {In: Out, Out: In}
    return {f"{prefix}_{name}": (flow if master else flip[flow])(width)
            for name, width, flow in AXIL_SIGNALS}


def core_reg_addr(core: int, reg: CoreReg) -> int:
    """Byte address of register ``reg`` of core ``core``."""
    _check_int("core", core, 0)
    return Reg.CORE_BASE + Reg.CORE_STRIDE * core + int(CoreReg(reg))


def group_mask_addr(group: int) -> int:
    """Byte address of GROUP_MASK[group]."""
    _check_int("group", group, 0, MAX_GROUP_REGS - 1)
    return Reg.GROUP_MASK + 4 * group


def group_phases_addr(group: int) -> int:
    """Byte address of GROUP_PHASES[group]."""
    _check_int("group", group, 0, MAX_GROUP_REGS - 1)
    return Reg.GROUP_PHASES + 4 * group


def window_addr(core: int, mem, word: int) -> int:
    """Byte address of ``word`` of memory ``mem`` (:class:`Mem`) of ``core`` in the window."""
    _check_int("core", core, 0, MAX_WINDOW_CORES - 1)
    _check_int("word", word, 0, (1 << _WIN_WORD_BITS) - 1)
    return Reg.WINDOW | core << _WIN_CORE_LSB | int(Mem(mem)) << _WIN_MEM_BIT | word << 2


def config_word(cfg) -> int:
    """Value of the CONFIG register for ``cfg``."""
    return (cfg.mesh.rows | cfg.mesh.cols << 8 | cfg.pe.rows << 16 | cfg.pe.cols << 24)


def core_xy(cfg, core: int) -> tuple[int, int]:
    """Mesh coordinates ``(x, y)`` of core ``core``."""
    _check_int("core", core, 0, cfg.cores - 1)
    return core % cfg.mesh.cols, core // cfg.mesh.cols


def split_wide(value: int) -> tuple[int, list[int]]:
    """Split a wide value into ``(wdata, [DATA1, DATA2, DATA3])``."""
    _check_int("value", value, 0, (1 << WIDE_BITS) - 1)
    return value & 0xFFFF_FFFF, [(value >> (32 * k)) & 0xFFFF_FFFF for k in (1, 2, 3)]


def join_wide(low: int, data_regs) -> int:
    """Inverse of :func:`split_wide`: ``low | DATA1 << 32 | DATA2 << 64 | DATA3 << 96``."""
    out = low
    for k, v in enumerate(data_regs, 1):
        out |= v << (32 * k)
    return out


def decode_status(value: int) -> dict:
    """Fields of the global STATUS register."""
    return {"busy": value >> STATUS_BUSY & 1, "error": value >> STATUS_ERROR & 1,
            "done": value >> STATUS_DONE & 1}


def decode_core_status(value: int) -> dict:
    """Fields of a per-core STATUS register."""
    return {"running": value >> CORE_RUNNING & 1, "halted": value >> CORE_HALTED & 1,
            "error": value >> CORE_ERROR & 1,
            "error_code": value >> CORE_ERROR_CODE_LSB & ((1 << ERROR_CODE_BITS) - 1),
            "pc": value >> CORE_PC_LSB & ((1 << PC_WIDTH) - 1)}


class HostInterface(wiring.Component):
    """AXI4-Lite slave of the chip: control/status registers and a memory window that turns
    word accesses into NoC packets.

    **AXI4-Lite.** 32-bit data and address. AW and W are accepted independently (any order,
    same cycle included) into one-entry holding registers; ``awready``/``wready``/``arready``
    are high while the holding register is empty, and depend only on registers. One write and
    one read are outstanding at most; a single sequencer serves them one at a time, alternating
    when both are pending. ``bvalid``/``rvalid`` are held until ``bready``/``rready``.
    ``awprot``/``arprot`` are ignored. A register write answers 1 cycle after the sequencer
    takes it (B valid 2 cycles after the last of AW/W is accepted), a register read 2 cycles
    (R valid 3 cycles after AR is accepted: the read multiplexer is registered).

    **Memory window.** A write sends one ``WRITE`` (scratchpad) or ``IMEM_WRITE`` (instruction
    memory) packet of one word (head + 1 body flit, ``src_host = 1``, ``tag = 0``) to core
    ``(x, y) = (core % cols, core // cols)`` and answers OKAY once the body flit is accepted.
    The word is ``wdata | DATA1 << 32 | DATA2 << 64 | DATA3 << 96`` truncated to the word
    width (``cfg.word_width`` for the scratchpad, ``isa.INSN_BITS`` for instructions). A read of
    the scratchpad sends a ``READ_REQ`` (of instruction memory: an ``IMEM_READ``; length 1,
    ``src_host = 1``, a rolling 8-bit tag) and waits for the ``READ_RESP`` with that tag on
    ``resp_in``; it answers bits [31:0] and latches bits [127:32] into DATA1..3. ``resp_in`` is
    always ready; flits of other packets (wrong type or tag, late responses) are drained and
    dropped. If the head flit is not accepted, or the READ_RESP does not arrive, within
    ``timeout`` cycles the access answers SLVERR (a write's body flit always follows its
    accepted head).

    **Cycle counter.** A START that starts a run (counter stopped) clears it; it then counts
    every cycle from the START pulse up to and including the last cycle in which some core is
    ``running`` (a core rises ``running`` the cycle after its start pulse): for one core running
    N cycles, CYCLES = N + 1.

    Parameters
    ----------
    cfg : hasp.config.ChipConfig
    timeout : int
        NoC timeout of window accesses in cycles (>= 1). Default :data:`DEFAULT_TIMEOUT`.

    Ports
    -----
    Below ``N = cfg.cores``, ``G = cfg.sync.groups``, ``flit = PacketFormat.from_config(cfg).flit``.

    s_axil_awaddr : In(32); s_axil_awprot : In(3); s_axil_awvalid : In(1); s_axil_awready : Out(1)
        Write address channel.
    s_axil_wdata : In(32); s_axil_wstrb : In(4); s_axil_wvalid : In(1); s_axil_wready : Out(1)
        Write data channel. ``wstrb`` must be ``0b1111`` (else SLVERR).
    s_axil_bresp : Out(2); s_axil_bvalid : Out(1); s_axil_bready : In(1)
        Write response (registered).
    s_axil_araddr : In(32); s_axil_arprot : In(3); s_axil_arvalid : In(1); s_axil_arready : Out(1)
        Read address channel.
    s_axil_rdata : Out(32); s_axil_rresp : Out(2); s_axil_rvalid : Out(1); s_axil_rready : In(1)
        Read data channel (registered).
    req_out : Out(stream.Signature(flit))
        Request packets to ``NoC.host_req_in``. ``valid``/``payload`` are registers-only,
        payload stable while not ``ready``.
    resp_in : In(stream.Signature(flit))
        Response packets from ``NoC.host_resp_out``; ``ready`` is constantly 1.
    core_start : Out(1).array(N)
        One-cycle start pulse per core (registered), in the cycle after the START write is
        taken; ``bvalid`` rises in the same cycle.
    core_running, core_halted, core_error : In(1).array(N)
        Core status (``Core.running/halted/error``).
    core_error_code : In(4).array(N)
        ``Core.error_code``.
    core_pc : In(16).array(N)
        ``Core.pc`` (zero-extended).
    core_perf : In(48).array(N, 5)
        ``core_perf[i][k]``: perf counter ``k`` of core ``i``, ``k`` indexing
        :data:`PERF_COUNTERS` (busy, sync, net, idle, macs).
    grp_we : Out(1)
        One-cycle write strobe of a group member mask (registered) to ``GroupSyncUnit.cfg_we``.
    grp_index : Out(barrier_id_width(G))
        Group written (``GroupSyncUnit.cfg_group``); held after the strobe.
    grp_mask : Out(N)
        New member mask (``GroupSyncUnit.cfg_mask``); held after the strobe.
    grp_phases : In(32).array(G)
        ``GroupSyncUnit.phases`` (only groups ``< 16`` are readable).
    """

    def __init__(self, cfg, *, timeout=DEFAULT_TIMEOUT):
        self.format = PacketFormat.from_config(cfg)
        _check_int("timeout", timeout, 1, 1 << 24)
        for name, v in (("mesh.rows", cfg.mesh.rows), ("mesh.cols", cfg.mesh.cols),
                        ("pe.rows", cfg.pe.rows), ("pe.cols", cfg.pe.cols)):
            _check_int(name, v, 1, 255)
        if isa.INSN_BITS > cfg.noc.flit_width:
            raise ValueError(f"an instruction ({isa.INSN_BITS} bits) does not fit "
                             f"noc.flit_width = {cfg.noc.flit_width}")
        self.cfg = cfg
        self.timeout = timeout
        N, G = cfg.cores, cfg.sync.groups
        flit = stream.Signature(self.format.flit)
        super().__init__({
            **axil_members("s_axil", master=False),
            "req_out": Out(flit),
            "resp_in": In(flit),
            "core_start": Out(1).array(N),
            "core_running": In(1).array(N),
            "core_halted": In(1).array(N),
            "core_error": In(1).array(N),
            "core_error_code": In(ERROR_CODE_BITS).array(N),
            "core_pc": In(PC_WIDTH).array(N),
            "core_perf": In(PERF_WIDTH).array(N, len(PERF_COUNTERS)),
            "grp_we": Out(1),
            "grp_index": Out(barrier_id_width(G)),
            "grp_mask": Out(N),
            "grp_phases": In(PHASE_WIDTH).array(G),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, fmt = self.cfg, self.format
        N, G = cfg.cores, cfg.sync.groups
        GR = min(G, MAX_GROUP_REGS)
        WN = min(N, MAX_WINDOW_CORES)
        NS = min(N, MAX_START_CORES)
        ww = cfg.word_width
        cw = max(1, (N - 1).bit_length())

        # ---------------------------------------------------------------- AXI holding registers
        aw_full, w_full, ar_full = Signal(), Signal(), Signal()
        w_data, w_strb = Signal(32), Signal(4)
        bvalid, bresp = Signal(), Signal(2)
        rvalid, rresp, rdata = Signal(), Signal(2), Signal(32)
        m.d.comb += [
            self.s_axil_awready.eq(~aw_full), self.s_axil_wready.eq(~w_full),
            self.s_axil_arready.eq(~ar_full),
            self.s_axil_bvalid.eq(bvalid), self.s_axil_bresp.eq(bresp),
            self.s_axil_rvalid.eq(rvalid), self.s_axil_rresp.eq(rresp),
            self.s_axil_rdata.eq(rdata),
        ]
        with m.If(self.s_axil_awvalid & ~aw_full):
            m.d.sync += aw_full.eq(1)
        with m.If(self.s_axil_wvalid & ~w_full):
            m.d.sync += [w_data.eq(self.s_axil_wdata), w_strb.eq(self.s_axil_wstrb), w_full.eq(1)]
        with m.If(self.s_axil_arvalid & ~ar_full):
            m.d.sync += ar_full.eq(1)
        with m.If(bvalid & self.s_axil_bready):
            m.d.sync += bvalid.eq(0)
        with m.If(rvalid & self.s_axil_rready):
            m.d.sync += rvalid.eq(0)

        def respond_w(resp):
            m.d.sync += [bvalid.eq(1), bresp.eq(resp), aw_full.eq(0), w_full.eq(0)]

        def respond_r(resp, value=0):
            m.d.sync += [rvalid.eq(1), rresp.eq(resp), rdata.eq(value), ar_full.eq(0)]

        # ---------------------------------------------------------------- state
        data_regs = [Signal(32, name=f"data{k}") for k in (1, 2, 3)]
        wide = Cat(w_data, *data_regs)                     # 128-bit staged value
        shadow = [Signal(N, name=f"grp_shadow_{g}", init=((1 << N) - 1) if g == 0 else 0)
                  for g in range(G)]
        started = Signal(N)
        cycles = Signal(64)
        cycles_hi_snap = Signal(32)
        counting = Signal()
        start_d = Signal()

        any_running = Signal()
        m.d.comb += any_running.eq(Cat(*self.core_running).any())
        start_any = Signal()
        m.d.comb += start_any.eq(Cat(*self.core_start).any())
        start_pending = Signal()
        m.d.comb += start_pending.eq(start_any | start_d)
        m.d.sync += start_d.eq(start_any)

        # one-cycle pulses by default
        m.d.sync += [s.eq(0) for s in self.core_start]
        m.d.sync += self.grp_we.eq(0)

        # Cycle counter.
        with m.If(start_any):
            m.d.sync += counting.eq(1)
            with m.If(counting):
                m.d.sync += cycles.eq(cycles + 1)
            with m.Else():
                m.d.sync += cycles.eq(1)
        with m.Elif(counting):
            with m.If(any_running | start_d):
                m.d.sync += cycles.eq(cycles + 1)
            with m.Else():
                m.d.sync += counting.eq(0)

        # Status.
        done_i = Cat(~started[i] | ((self.core_halted[i] | self.core_error[i])
                                    & ~self.core_running[i]) for i in range(N))
        status = Signal(32)
        m.d.comb += status.eq(Cat(any_running | start_pending,
                                  Cat(*self.core_error).any(),
                                  started.any() & ~start_pending & done_i.all()))

        # ---------------------------------------------------------------- address decode
        def decode(addr):
            """Common decode of a byte address; returns a dict of comb signals."""
            d = {}
            woff = addr[2:12]                          # word offset in the low 4 KiB
            d["low"] = addr[12:32] == 0
            d["woff"] = woff
            gidx = woff[0:4]
            d["gidx"] = gidx
            d["is_gmask"] = d["low"] & (woff[4:10] == Reg.GROUP_MASK >> 6) & (gidx < GR)
            d["is_gphase"] = d["low"] & (woff[4:10] == Reg.GROUP_PHASES >> 6) & (gidx < GR)
            blk = addr[6:28]
            base = Reg.CORE_BASE // Reg.CORE_STRIDE
            d["is_core"] = (addr[28:32] == 0) & (blk >= base) & (blk < base + N)
            cidx = Signal(cw, name="cidx")
            m.d.comb += cidx.eq(blk - base)
            d["cidx"] = cidx
            d["coff"] = addr[2:6]                      # word offset in the core block
            win = addr[28:32] == Reg.WINDOW >> 28
            wcore = addr[_WIN_CORE_LSB:_WIN_CORE_LSB + _WIN_CORE_BITS]
            wmem = addr[_WIN_MEM_BIT]
            wword = addr[2:2 + _WIN_WORD_BITS]
            in_range = Mux(wmem, wword < cfg.core.imem_depth, wword < cfg.spm.words)
            d["is_win"] = win & (wcore < WN) & in_range
            d["wcore"], d["wmem"], d["wword"] = wcore, wmem, wword
            return d

        def decoded(addr, capture, prefix):
            """The decode of an address input, registered when the holding register takes
            it (so the sequencer works from flip-flops, not from a 32-bit address through
            the decode and the read multiplexer)."""
            out = {}
            for k, v in decode(addr).items():
                r = Signal(len(v), name=f"{prefix}_{k}")
                with m.If(capture):
                    m.d.sync += r.eq(v)
                out[k] = r
            return out

        ra = decoded(self.s_axil_araddr, self.s_axil_arvalid & ~ar_full, "ra")
        wa = decoded(self.s_axil_awaddr, self.s_axil_awvalid & ~aw_full, "wa")

        # Read mux for register reads.
        rd_ok = Signal()
        rd_val = Signal(32)
        cstat = [Cat(self.core_running[i], self.core_halted[i], self.core_error[i],
                           Const(0, 1), self.core_error_code[i],
                           Const(0, CORE_PC_LSB - CORE_ERROR_CODE_LSB - ERROR_CODE_BITS),
                           self.core_pc[i]) for i in range(N)]
        gmask_low = Array([sh[:32] for sh in shadow])
        gphase = Array(list(self.grp_phases))
        # A core register is selected in two registered stages: the word of the offset in
        # every core (`core_word`, next to its counters), then the core. As one multiplexer
        # it ran from the decoded address across every core's counters into `rd_val_r`
        # (10 nets, the tiny chip's deepest estimated path after the NI's write).
        core_word = [Signal(32, name=f"core_word{i}") for i in range(N)]
        coff = ra["coff"]
        k = Signal(range(len(PERF_COUNTERS)), name="perf_k")
        m.d.comb += k.eq((coff - (CoreReg.PERF_BUSY_LO >> 2))[1:])
        for i in range(N):
            val = Array(list(self.core_perf[i]))[k]
            m.d.sync += core_word[i].eq(Mux(coff == CoreReg.STATUS >> 2, cstat[i],
                                            Mux(coff[0], val[32:], val[:32])))
        with m.If(ra["low"]):
            with m.Switch(ra["woff"]):
                with m.Case(Reg.ID >> 2):
                    m.d.comb += [rd_ok.eq(1), rd_val.eq(ID_VALUE)]
                with m.Case(Reg.CONFIG >> 2):
                    m.d.comb += [rd_ok.eq(1), rd_val.eq(config_word(cfg))]
                with m.Case(Reg.START >> 2):
                    m.d.comb += [rd_ok.eq(1), rd_val.eq(started[:NS])]
                with m.Case(Reg.STATUS >> 2):
                    m.d.comb += [rd_ok.eq(1), rd_val.eq(status)]
                with m.Case(Reg.CYCLES_LO >> 2):
                    m.d.comb += [rd_ok.eq(1), rd_val.eq(cycles[:32])]
                with m.Case(Reg.CYCLES_HI >> 2):
                    m.d.comb += [rd_ok.eq(1), rd_val.eq(cycles_hi_snap)]
                for k, reg in enumerate((Reg.DATA1, Reg.DATA2, Reg.DATA3)):
                    with m.Case(reg >> 2):
                        m.d.comb += [rd_ok.eq(1), rd_val.eq(data_regs[k])]
                with m.Default():
                    with m.If(ra["is_gmask"]):
                        m.d.comb += [rd_ok.eq(1), rd_val.eq(gmask_low[ra["gidx"]])]
                    with m.If(ra["is_gphase"]):
                        m.d.comb += [rd_ok.eq(1), rd_val.eq(gphase[ra["gidx"]])]
        with m.Elif(ra["is_core"]):
            with m.If((coff == CoreReg.STATUS >> 2)
                      | ((coff >= CoreReg.PERF_BUSY_LO >> 2) & (coff <= CoreReg.PERF_MACS_HI >> 2))):
                m.d.comb += [rd_ok.eq(1), rd_val.eq(Array(core_word)[ra["cidx"]])]

        # ---------------------------------------------------------------- window packets
        xs = Array([Const(i % cfg.mesh.cols, fmt.coord_width) for i in range(WN)])
        ys = Array([Const(i // cfg.mesh.cols, fmt.coord_width) for i in range(WN)])
        p_core = Signal(range(WN))
        p_type = Signal(PacketType)
        p_tag = Signal(8)
        p_addr = Signal(fmt.address_width)
        p_word = Signal(max(ww, isa.INSN_BITS))
        rd_tag = Signal(8)
        header = Signal(fmt.header)
        m.d.comb += [header.type.eq(p_type), header.tag.eq(p_tag), header.src_host.eq(1),
                     header.address.eq(p_addr),
                     header.length.eq(1)]
        body_phase = Signal()
        payload = self.req_out.payload
        m.d.comb += [payload.dst_x.eq(xs[p_core]), payload.dst_y.eq(ys[p_core]),
                     payload.to_host.eq(0)]
        with m.If(body_phase):
            m.d.comb += [payload.data.eq(p_word), payload.last.eq(1)]
        with m.Else():
            m.d.comb += [payload.data.eq(header.as_value()),
                         payload.last.eq((p_type == PacketType.READ_REQ) |
                                         (p_type == PacketType.IMEM_READ))]

        # Response sink: always drain. The flit is registered before it is decoded, so no path
        # runs from the response router's switch allocation into the AXI read channel.
        m.d.comb += self.resp_in.ready.eq(1)
        rin = Signal.like(self.resp_in.payload, name="rin")
        rin_valid = Signal(name="rin_valid")
        m.d.sync += [rin.eq(self.resp_in.payload), rin_valid.eq(self.resp_in.valid)]
        rhdr = data.View(fmt.header, rin.data[:fmt.header.size])
        in_body = Signal()          # the next flit on resp_in is a body flit
        match = Signal()            # the current packet is the awaited READ_RESP
        waiting = Signal()          # a READ_REQ is outstanding (set by the sequencer)
        got = Signal()              # comb: body of the awaited response arrives this cycle
        with m.If(rin_valid):
            with m.If(~in_body):
                m.d.sync += [in_body.eq(~rin.last),
                             match.eq(waiting & (rhdr.type == PacketType.READ_RESP)
                                      & (rhdr.tag == rd_tag) & ~rin.last)]
            with m.Else():
                m.d.sync += [in_body.eq(~rin.last), match.eq(0)]
                m.d.comb += got.eq(match & waiting)

        # ---------------------------------------------------------------- sequencer
        timer = Signal(range(self.timeout + 1))
        timed_out = Signal()
        m.d.comb += timed_out.eq(timer == self.timeout)
        prefer_read = Signal()
        rd_pending = Signal()
        wr_pending = Signal()
        # A register read answers from `rd_val_r`, the read multiplexer registered (and a
        # core's word registered before it, `core_word`): its address decode was taken with
        # the address, so the answer waits two cycles more (`ar_full_d`, `ar_full_d2`), and
        # two more after the sequencer served a write (`w_turn`), so a read after a write
        # sees the write's effect.
        ar_full_d, ar_full_d2, w_turn = Signal(), Signal(), Signal()
        rd_ok_r, rd_val_r, cycles_hi_r = Signal(), Signal(32), Signal(32)
        m.d.sync += [ar_full_d.eq(ar_full & ~w_turn), ar_full_d2.eq(ar_full_d & ~w_turn),
                     rd_ok_r.eq(rd_ok), rd_val_r.eq(rd_val), cycles_hi_r.eq(cycles[32:])]
        m.d.comb += [rd_pending.eq(ar_full & ar_full_d2 & ~rvalid),
                     wr_pending.eq(aw_full & w_full & ~bvalid)]

        with m.FSM(name="seq"):
            with m.State("IDLE"):
                m.d.sync += timer.eq(0)
                with m.If(rd_pending & (prefer_read | ~wr_pending)):
                    m.d.sync += prefer_read.eq(0)
                    with m.If(ra["is_win"]):
                        m.d.sync += [p_core.eq(ra["wcore"]),
                                     p_type.eq(Mux(ra["wmem"], PacketType.IMEM_READ,
                                                   PacketType.READ_REQ)),
                                     p_tag.eq(rd_tag + 1), rd_tag.eq(rd_tag + 1),
                                     p_addr.eq(ra["wword"])]
                        m.next = "RD_HEAD"
                    with m.Elif(rd_ok_r):
                        respond_r(int(Resp.OKAY), rd_val_r)
                        with m.If(ra["low"] & (ra["woff"] == Reg.CYCLES_LO >> 2)):
                            m.d.sync += cycles_hi_snap.eq(cycles_hi_r)
                        if N > 32:
                            with m.If(ra["is_gmask"]):
                                sel = Array(shadow)[ra["gidx"]]
                                m.d.sync += Cat(*data_regs).eq(sel[32:])
                    with m.Else():
                        respond_r(int(Resp.SLVERR))
                with m.Elif(wr_pending):
                    m.d.comb += w_turn.eq(1)
                    m.d.sync += prefer_read.eq(1)
                    full = w_strb == 0b1111
                    with m.If(~full):
                        respond_w(int(Resp.SLVERR))
                    with m.Elif(wa["is_win"]):
                        m.d.sync += [p_core.eq(wa["wcore"]), p_tag.eq(0), p_addr.eq(wa["wword"]),
                                     p_type.eq(Mux(wa["wmem"], PacketType.IMEM_WRITE,
                                                   PacketType.WRITE)),
                                     p_word.eq(Mux(wa["wmem"], wide[:isa.INSN_BITS],
                                                   wide[:ww]))]
                        m.next = "WR_HEAD"
                    with m.Elif(wa["low"] & (wa["woff"] == Reg.START >> 2)):
                        with m.If(w_data[NS:].any()):
                            respond_w(int(Resp.SLVERR))
                        with m.Else():
                            respond_w(int(Resp.OKAY))
                            m.d.sync += [self.core_start[i].eq(w_data[i]) for i in range(NS)]
                            with m.If(w_data[:NS].any()):
                                with m.If(counting):
                                    m.d.sync += started.eq(started | w_data[:NS])
                                with m.Else():
                                    m.d.sync += started.eq(w_data[:NS])
                    with m.Elif(wa["low"] & (wa["woff"] >= Reg.DATA1 >> 2)
                                & (wa["woff"] <= Reg.DATA3 >> 2)):
                        respond_w(int(Resp.OKAY))
                        for k, reg in enumerate((Reg.DATA1, Reg.DATA2, Reg.DATA3)):
                            with m.If(wa["woff"] == reg >> 2):
                                m.d.sync += data_regs[k].eq(w_data)
                    with m.Elif(wa["is_gmask"]):
                        value = wide if N > 32 else w_data
                        with m.If(value[N:].any() if len(value) > N else Const(0)):
                            respond_w(int(Resp.SLVERR))
                        with m.Else():
                            respond_w(int(Resp.OKAY))
                            m.d.sync += [self.grp_we.eq(1), self.grp_index.eq(wa["gidx"]),
                                         self.grp_mask.eq(value[:N])]
                            for g in range(GR):
                                with m.If(wa["gidx"] == g):
                                    m.d.sync += shadow[g].eq(value[:N])
                    with m.Else():
                        respond_w(int(Resp.SLVERR))

            with m.State("WR_HEAD"):
                m.d.sync += timer.eq(timer + 1)
                m.d.comb += self.req_out.valid.eq(1)
                with m.If(self.req_out.ready):
                    m.next = "WR_BODY"
                with m.Elif(timed_out):
                    respond_w(int(Resp.SLVERR))
                    m.next = "IDLE"

            with m.State("WR_BODY"):
                m.d.comb += [self.req_out.valid.eq(1), body_phase.eq(1)]
                with m.If(self.req_out.ready):
                    respond_w(int(Resp.OKAY))
                    m.next = "IDLE"

            with m.State("RD_HEAD"):
                m.d.comb += self.req_out.valid.eq(1)
                with m.If(self.req_out.ready):
                    m.d.sync += [timer.eq(0), waiting.eq(1)]
                    m.next = "RD_WAIT"
                with m.Elif(timed_out):
                    respond_r(int(Resp.SLVERR))
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += timer.eq(timer + 1)

            with m.State("RD_WAIT"):
                m.d.sync += timer.eq(timer + 1)
                with m.If(got):
                    word = Signal(WIDE_BITS, name="resp_word")
                    # A scratchpad word or a 64-bit instruction, zero-extended in the flit.
                    m.d.comb += word.eq(rin.data[:min(len(rin.data), WIDE_BITS)])
                    respond_r(int(Resp.OKAY), word[:32])
                    m.d.sync += [Cat(*data_regs).eq(word[32:]), waiting.eq(0)]
                    m.next = "IDLE"
                with m.Elif(timed_out):
                    respond_r(int(Resp.SLVERR))
                    m.d.sync += waiting.eq(0)
                    m.next = "IDLE"

        return m
