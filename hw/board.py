"""Board top: a HASP chip on a real FPGA board, reachable from a PC over the board's USB UART.

:class:`BoardTop` = clock pin + reset button (synchronised) + :class:`hasp.hw.chip.Chip` +
:class:`UartAxiBridge` (a UART-to-AXI4-Lite master on the chip's host port) + LEDs.
The chip runs on the board oscillator directly (25 MHz ULX3S, 12 MHz iCEBreaker); no PLL.

UART protocol (8N1, default 115200 baud, little-endian words), see ``docs/fpga.md``::

    PC -> FPGA  'W' a0 a1 a2 a3 d0 d1 d2 d3    write word d to byte address a
    FPGA -> PC  r                              r = BRESP (0 OKAY, 2 SLVERR)
    PC -> FPGA  'R' a0 a1 a2 a3                read word at byte address a
    FPGA -> PC  r d0 d1 d2 d3                  r = RRESP, d = RDATA

Any other command byte is ignored (send a few zero bytes to resynchronise). Up to 16 bytes of
further commands may be sent before the reply arrives (receive FIFO); there is no flow control.
LEDs: 0 heartbeat (about 1.5 Hz), 1 chip busy, 2 chip error, 3 reset held; the rest off.

Build a bitstream with ``python -m hasp.hw.board --board ulx3s-85f --preset tiny`` (see
:func:`build`; the fpga preset's chip, 76 % of an ECP5-85F, needs ``--placer static --router
router2``: docs/fpga.md) or only the Verilog with ``--verilog-only``.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from amaranth import Cat, ClockDomain, Const, Elaboratable, Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.cdc import FFSynchronizer, ResetSynchronizer
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .chip import Chip
from .host import axil_members

__all__ = ["UartRx", "UartTx", "UartAxiBridge", "BoardTop", "Board", "BOARDS", "ECP5_PLL_HALF",
           "board_verilog", "build", "main"]

REPO = Path(__file__).resolve().parent.parent


class UartRx(wiring.Component):
    """8N1 receiver. ``data``/``valid``: one-cycle strobe per byte (no backpressure).

    ``divisor`` = clock cycles per bit (>= 4)."""

    def __init__(self, divisor):
        if divisor < 4:
            raise ValueError(f"divisor must be >= 4, not {divisor}")
        self.divisor = divisor
        super().__init__({"rx": In(1, init=1), "data": Out(8), "valid": Out(1)})

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)
        cnt = Signal(range(self.divisor * 3 // 2 + 1))
        bits = Signal(4)
        shreg = Signal(8)
        m.d.sync += self.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    # Sample in the middle of data bit 0: 1.5 bit times after the start edge.
                    m.d.sync += [cnt.eq(self.divisor * 3 // 2 - 1), bits.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(cnt == 0):
                    m.d.sync += [shreg.eq(Cat(shreg[1:], rx)), bits.eq(bits + 1),
                                 cnt.eq(self.divisor - 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += cnt.eq(cnt - 1)
            with m.State("STOP"):
                with m.If(cnt == 0):
                    with m.If(rx):                     # framing error: drop the byte
                        m.d.sync += [self.data.eq(shreg), self.valid.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += cnt.eq(cnt - 1)
        return m


class UartTx(wiring.Component):
    """8N1 transmitter. Takes ``data`` when ``valid & ready``."""

    def __init__(self, divisor):
        if divisor < 4:
            raise ValueError(f"divisor must be >= 4, not {divisor}")
        self.divisor = divisor
        super().__init__({"data": In(8), "valid": In(1), "ready": Out(1),
                          "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        cnt = Signal(range(self.divisor))
        shreg = Signal(10, init=0x3FF)        # stop, data[7:0], start, shifted out LSB first
        left = Signal(range(11))
        m.d.comb += [self.ready.eq(left == 0), self.tx.eq(shreg[0])]
        with m.If(left == 0):
            with m.If(self.valid):
                m.d.sync += [shreg.eq(Cat(Const(0, 1), self.data, Const(1, 1))), left.eq(10),
                             cnt.eq(self.divisor - 1)]
        with m.Elif(cnt == 0):
            m.d.sync += [shreg.eq(Cat(shreg[1:], Const(1, 1))), left.eq(left - 1),
                         cnt.eq(self.divisor - 1)]
        with m.Else():
            m.d.sync += cnt.eq(cnt - 1)
        return m


def _axil_master_signature():
    return axil_members("m_axil", master=True)


class UartAxiBridge(wiring.Component):
    """UART-to-AXI4-Lite master: the byte protocol of the module docstring, one access at a
    time. ``divisor`` = clock cycles per UART bit (clock / baud)."""
    CMD_WRITE = ord("W")
    CMD_READ = ord("R")

    def __init__(self, divisor):
        self.divisor = divisor
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1),
                          **_axil_master_signature()})

    def elaborate(self, platform):
        m = Module()
        m.submodules.urx = urx = UartRx(self.divisor)
        m.submodules.utx = utx = UartTx(self.divisor)
        # Commands may arrive while a reply is still being sent: buffer them.
        m.submodules.rxq = rxq = SyncFIFOBuffered(width=8, depth=16)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx),
                     rxq.w_data.eq(urx.data), rxq.w_en.eq(urx.valid)]
        byte = rxq.r_data
        got = Signal()

        write = Signal()
        addr = Signal(32)
        data = Signal(32)
        resp = Signal(2)
        n = Signal(range(9))              # bytes received of the command / sent of the reply
        aw_done, w_done = Signal(), Signal()

        m.d.comb += [self.m_axil_awaddr.eq(addr), self.m_axil_araddr.eq(addr),
                     self.m_axil_wdata.eq(data), self.m_axil_wstrb.eq(0xF),
                     self.m_axil_awprot.eq(0), self.m_axil_arprot.eq(0)]
        reply = Signal(40)                 # resp byte, then data LSB first
        with m.FSM():
            with m.State("CMD"):
                m.d.comb += [rxq.r_en.eq(1), got.eq(rxq.r_rdy)]
                with m.If(got):
                    with m.If(byte == self.CMD_WRITE):
                        m.d.sync += [write.eq(1), n.eq(0)]
                        m.next = "ARGS"
                    with m.Elif(byte == self.CMD_READ):
                        m.d.sync += [write.eq(0), n.eq(0)]
                        m.next = "ARGS"
            with m.State("ARGS"):
                m.d.comb += [rxq.r_en.eq(1), got.eq(rxq.r_rdy)]
                with m.If(got):
                    # address bytes 0..3 then data bytes 4..7, little-endian
                    with m.If(n < 4):
                        m.d.sync += addr.eq(Cat(addr[8:], byte))
                    with m.Else():
                        m.d.sync += data.eq(Cat(data[8:], byte))
                    m.d.sync += n.eq(n + 1)
                    with m.If(write & (n == 7)):
                        m.d.sync += [aw_done.eq(0), w_done.eq(0)]
                        m.next = "WRITE"
                    with m.If(~write & (n == 3)):
                        m.next = "READ"
            with m.State("WRITE"):
                m.d.comb += [self.m_axil_awvalid.eq(~aw_done), self.m_axil_wvalid.eq(~w_done)]
                with m.If(self.m_axil_awready & ~aw_done):
                    m.d.sync += aw_done.eq(1)
                with m.If(self.m_axil_wready & ~w_done):
                    m.d.sync += w_done.eq(1)
                with m.If(aw_done & w_done):
                    m.next = "WRESP"
            with m.State("WRESP"):
                m.d.comb += self.m_axil_bready.eq(1)
                with m.If(self.m_axil_bvalid):
                    m.d.sync += [reply.eq(self.m_axil_bresp), n.eq(1)]
                    m.next = "REPLY"
            with m.State("READ"):
                m.d.comb += self.m_axil_arvalid.eq(1)
                with m.If(self.m_axil_arready):
                    m.next = "RDATA"
            with m.State("RDATA"):
                m.d.comb += self.m_axil_rready.eq(1)
                with m.If(self.m_axil_rvalid):
                    m.d.sync += [reply.eq(Cat(self.m_axil_rresp, Const(0, 6), self.m_axil_rdata)),
                                 n.eq(5)]
                    m.next = "REPLY"
            with m.State("REPLY"):
                m.d.comb += [utx.data.eq(reply[:8]), utx.valid.eq(1)]
                with m.If(utx.ready):
                    m.d.sync += [reply.eq(reply >> 8), n.eq(n - 1)]
                    with m.If(n == 1):
                        m.next = "CMD"
        return m


@dataclass(frozen=True)
class Board:
    name: str
    target: str              # a hasp.synth target
    clk_hz: int
    rst_active_low: bool
    leds: int
    led_active_low: bool
    constraints: str         # file under constraints/
    description: str


BOARDS = {
    "ulx3s-85f": Board("ulx3s-85f", "ecp5-85k", 25_000_000, False, 8, False,
                       "ulx3s_85f.lpf", "Radiona ULX3S with LFE5U-85F (25 MHz, FIRE1 = reset, "
                       "FTDI UART)"),
    "icebreaker": Board("icebreaker", "ice40-up5k", 12_000_000, True, 2, True,
                        "icebreaker.pcf", "1BitSquared iCEBreaker, iCE40UP5K (12 MHz, user "
                        "button = reset, FTDI UART)"),
}


#: EHXPLLL settings that halve the board clock (25 -> 12.5 MHz), from yowasp-ecppll.
ECP5_PLL_HALF = {
    "ulx3s-85f": dict(
        a_FREQUENCY_PIN_CLKI="25", a_FREQUENCY_PIN_CLKOP="12.5", a_ICP_CURRENT="12",
        a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
        p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
        p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
        p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD", p_CLKI_DIV=2,
        p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=48, p_CLKOP_CPHASE=23, p_CLKOP_FPHASE=0,
        p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=1),
}


class BoardTop(Elaboratable):
    """Top of a board build. Pins: ``clk``, ``rst_btn``, ``uart_rx``, ``uart_tx``, ``led``.

    The reset button is synchronised (:class:`ResetSynchronizer`) and resets the chip and the
    bridge; FPGA configuration also starts everything in its reset state."""

    def __init__(self, cfg, board: Board, baud: int = 115200, pll: bool = False):
        self.cfg, self.board, self.baud = cfg, board, baud
        if pll and board.name not in ECP5_PLL_HALF:
            raise ValueError(f"no PLL setting for board {board.name!r}")
        self.pll = pll
        self.chip_hz = board.clk_hz // 2 if pll else board.clk_hz
        self.divisor = round(self.chip_hz / baud)
        if self.divisor < 4:
            raise ValueError(f"baud {baud} is too fast for a {board.clk_hz} Hz clock")
        self.clk = Signal(name="clk")
        self.rst_btn = Signal(name="rst_btn")
        self.uart_rx = Signal(name="uart_rx", init=1)
        self.uart_tx = Signal(name="uart_tx", init=1)
        self.led = Signal(board.leds, name="led")

    def ports(self):
        return [self.clk, self.rst_btn, self.uart_rx, self.uart_tx, self.led]

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd = ClockDomain("sync", local=True)
        rst = Signal()
        m.d.comb += rst.eq(~self.rst_btn if self.board.rst_active_low else self.rst_btn)
        if self.pll:
            # ECP5 EHXPLLL: board clock / 2 (parameters from `ecppll -i 25 -o 12.5`:
            # VCO 600 MHz). Reset is held until the PLL locks.
            pll_clk, locked = Signal(), Signal()
            m.submodules.pll = Instance(
                "EHXPLLL", **ECP5_PLL_HALF[self.board.name],
                i_CLKI=self.clk, o_CLKOP=pll_clk, i_CLKFB=pll_clk, o_LOCK=locked,
                i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=0,
                i_PHASESTEP=0, i_PHASELOADREG=0, i_PLLWAKESYNC=0, i_ENCLKOP=0)
            m.d.comb += cd.clk.eq(pll_clk)
            rst_any = Signal()
            m.d.comb += rst_any.eq(rst | ~locked)
            rst = rst_any
        else:
            m.d.comb += cd.clk.eq(self.clk)
        # The synchronised reset reaches the chip's ~12k flip-flops through a global buffer on
        # ECP5 (`global_reset`): the synchroniser runs in its own domain `rsync` on the same
        # clock, and its output drives the chip domain's reset.
        from hasp.synth import TARGETS, global_reset, pe_multiplier
        family = TARGETS[self.board.target].family
        m.domains.rsync = rcd = ClockDomain("rsync", local=True)
        m.d.comb += rcd.clk.eq(cd.clk)
        m.submodules.rst_sync = ResetSynchronizer(rst, domain="rsync")
        m.d.comb += cd.rst.eq(global_reset(m, rcd.rst, family, name="chip_rst"))

        m.submodules.chip = chip = Chip(
            self.cfg, multiplier=pe_multiplier(family))
        m.submodules.bridge = bridge = UartAxiBridge(self.divisor)
        m.d.comb += [bridge.rx.eq(self.uart_rx), self.uart_tx.eq(bridge.tx)]
        for name, member in chip.signature.members.items():
            if not name.startswith("s_axil_"):
                continue
            ours = getattr(bridge, "m" + name[1:])
            if member.flow == In:
                m.d.comb += getattr(chip, name).eq(ours)
            else:
                m.d.comb += ours.eq(getattr(chip, name))

        beat = Signal(24)
        m.d.sync += beat.eq(beat + 1)
        leds = Signal(max(self.board.leds, 4))
        m.d.comb += leds.eq(Cat(beat[-1], chip.busy, chip.error, rst))
        out = leds[:self.board.leds]
        m.d.comb += self.led.eq(~out if self.board.led_active_low else out)
        return m


def board_verilog(cfg, board: Board, out_dir, baud: int = 115200, pll: bool = False) -> Path:
    from amaranth.back import verilog
    top = BoardTop(cfg, board, baud, pll)
    text = verilog.convert(top, name="hasp_board", ports=top.ports(), emit_src=False,
                           strip_internal_attrs=True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "hasp_board.v"
    path.write_text(f"// Generated by hasp: board {board.name}, config '{cfg.name}'. Do not edit.\n"
                    + text)
    return path


def build(cfg, board_name: str, out_dir, *, bitstream: bool = True, baud: int = 115200,
          timeout: float | None = 7200, seed: int = 1, pll: bool = False,
          router: str = "router1", placer: str = "heap") -> dict:
    """Verilog -> Yosys -> nextpnr (with the board's pin constraints) -> bitstream.

    Returns a dict with the file paths, nextpnr's Fmax and utilisation. With ``bitstream``
    false only the Verilog and the Yosys netlist are made. ``router``: nextpnr's router
    (``router1``, the default, routed the tiny chip's board top; ``router2`` did not converge
    on it, docs/fpga.md); ``placer``: nextpnr's placer (heap, sa or static)."""
    from hasp import synth as S
    options = S.pnr_options(seed, router, placer)
    try:
        board = BOARDS[board_name]
    except KeyError:
        raise S.SynthError(f"unknown board {board_name!r} (known: {', '.join(BOARDS)})") from None
    tgt = S.TARGETS[board.target]
    out_dir = Path(out_dir)
    vpath = board_verilog(cfg, board, out_dir, baud, pll)
    yosys = S.find_tool("yosys")
    _, mapper, note = S.run_yosys(
        yosys, out_dir / "board.ys",
        lambda abc9: (f"read_verilog {vpath.name}\n"
                      f"{S.synth_command(tgt.family, abc9)} -top hasp_board -json board.json\n"
                      f"tee -q -o board_stat.json stat -json\n"), timeout)
    res = {"board": board.name, "preset": cfg.name, "verilog": str(vpath),
           "netlist": str(out_dir / "board.json"), "mapper": mapper}
    if note:
        res["mapper_note"] = note
    if not bitstream:
        return res
    cons = REPO / "constraints" / board.constraints
    nextpnr = S.find_tool("nextpnr", tgt.family)
    mhz = board.clk_hz / 1e6    # the pin's clock; nextpnr derives the PLL output clock
    args = nextpnr + list(tgt.nextpnr_args) + [
        "--json", "board.json", "--freq", f"{mhz:g}", "--report", "board_report.json",
        "-l", "nextpnr.log"] + options
    if tgt.family == "ecp5":
        args += ["--lpf", str(cons), "--textcfg", "board.config"]
        pack = [_sibling(nextpnr[0], "ecppack"), "--compress", "board.config", "board.bit"]
    else:
        args += ["--pcf", str(cons), "--asc", "board.asc"]
        pack = [_sibling(nextpnr[0], "icepack"), "board.asc", "board.bin"]
    S._run(args, out_dir / "nextpnr.out", timeout, "nextpnr")
    S._run(pack, out_dir / "pack.out", timeout, pack[0])
    import json
    res["pnr"] = S.parse_nextpnr_report(json.loads((out_dir / "board_report.json").read_text()),
                                        tgt.family)
    res["bitstream"] = str(out_dir / pack[-1])
    return res


def _sibling(exe: str, tool: str) -> str:
    p = Path(exe)
    for name in (f"yowasp-{tool}", tool):
        if (p.parent / name).exists():
            return str(p.parent / name)
    import shutil
    return shutil.which(f"yowasp-{tool}") or shutil.which(tool) or tool


def main(argv=None) -> int:
    from hasp.config import load, preset
    ap = argparse.ArgumentParser(prog="python -m hasp.hw.board", description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="ulx3s-85f", help=f"one of: {', '.join(BOARDS)}")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--config", metavar="FILE")
    ap.add_argument("--baud", type=int, default=115200)
    ap.add_argument("--pll", action="store_true",
                    help="run the chip at half the board clock through an EHXPLLL (ULX3S)")
    ap.add_argument("--out", default=None, metavar="DIR")
    ap.add_argument("--router", default="router1", help="nextpnr router: router1 or router2")
    ap.add_argument("--placer", default="heap", help="nextpnr placer: heap, sa or static")
    ap.add_argument("--timeout", type=float, default=7200, help="per tool run, seconds")
    ap.add_argument("--synth-only", action="store_true", help="stop after Yosys")
    ap.add_argument("--verilog-only", action="store_true", help="only write hasp_board.v")
    args = ap.parse_args(argv)
    try:
        cfg = preset(args.preset)
        if args.config:
            cfg = load(args.config, base=cfg)
        out = Path(args.out or f"build/board/{args.board}-{cfg.name}")
        if args.verilog_only:
            if args.board not in BOARDS:
                raise ValueError(f"unknown board {args.board!r} (known: {', '.join(BOARDS)})")
            print(board_verilog(cfg, BOARDS[args.board], out, args.baud, args.pll))
            return 0
        res = build(cfg, args.board, out, bitstream=not args.synth_only, baud=args.baud,
                    pll=args.pll, router=args.router, placer=args.placer, timeout=args.timeout)
    except (ValueError, OSError, RuntimeError) as e:
        print(f"hasp: error: {e}", file=sys.stderr)
        return 2
    for k, v in res.items():
        if k != "pnr":
            print(f"{k}: {v}")
    if "pnr" in res:
        print(f"Fmax: {res['pnr']['fmax_mhz']:.1f} MHz; utilisation: "
              + ", ".join(f"{k} {v['used']}/{v['available']}" for k, v in
                          res["pnr"]["utilization"].items() if v["used"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
