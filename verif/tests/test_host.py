"""Host interface (AXI4-Lite slave): Amaranth-simulator tests.

Addresses come from the register-map helpers of :mod:`hasp.hw.host` (one definition), but every
*expected value* is written here from the specification in ``docs/host.md``: status bit
positions, CONFIG packing, core coordinates ``(core % cols, core // cols)``, the packet fields of
a window access (decoded with :func:`hasp.hw.packet.parse_packet`), the cycle-counter rule.

The testbench drives the AXI-Lite slave with a small cycle-accurate master (:class:`AxiLite`)
that can present AW before W, W before AW or both together, and delay ``bready``/``rready``
while checking that the response is held. A NoC model (:class:`NocModel`) sinks ``req_out``
with optional back-pressure (checking that a stalled flit is held stable), reassembles packets
and can answer READ_REQs with READ_RESPs built by :func:`hasp.hw.packet.make_packet`.
"""
import random

import pytest
from amaranth.sim import Simulator

from hasp.config import ChipConfig, MeshConfig, NoCConfig, PEConfig, preset
from hasp.hw.gen import port_list
from hasp.hw.host import (CoreReg, HostInterface, Mem, Reg, core_reg_addr, group_mask_addr,
                          group_phases_addr, window_addr)
from hasp.hw.packet import PacketType, make_packet, parse_flit, parse_packet

OKAY, SLVERR = 0, 2
TINY = preset("tiny")                       # 2x2 mesh, 4x4 PEs: 32-bit words
# 2x3 mesh (cols = 3, not a power of two), 16x16 PEs: 128-bit scratchpad words.
WIDE = ChipConfig(name="wide", mesh=MeshConfig(2, 3), pe=PEConfig(16, 16),
                  noc=NoCConfig(flit_width=128))


# ------------------------------------------------------------------------------------------
# Testbench helpers

class AxiLite:
    """Cycle-level AXI4-Lite master for an Amaranth testbench."""

    def __init__(self, dut, ctx, limit=20000):
        self.d, self.ctx, self.limit = dut, ctx, limit

    async def write(self, addr, data, strb=0xF, aw_delay=0, w_delay=0, b_delay=0):
        d, ctx = self.d, self.ctx
        ctx.set(d.s_axil_awaddr, addr)
        ctx.set(d.s_axil_wdata, data)
        ctx.set(d.s_axil_wstrb, strb)
        pend_aw = pend_w = True
        cyc = 0
        while pend_aw or pend_w:
            aw_on = pend_aw and cyc >= aw_delay
            w_on = pend_w and cyc >= w_delay
            ctx.set(d.s_axil_awvalid, aw_on)
            ctx.set(d.s_axil_wvalid, w_on)
            _, _, awr, wr = await ctx.tick().sample(d.s_axil_awready, d.s_axil_wready)
            pend_aw = pend_aw and not (aw_on and awr)
            pend_w = pend_w and not (w_on and wr)
            cyc += 1
            assert cyc < self.limit, "AW/W never accepted"
        ctx.set(d.s_axil_awvalid, 0)
        ctx.set(d.s_axil_wvalid, 0)
        held = None
        for k in range(self.limit):
            ctx.set(d.s_axil_bready, k >= b_delay)
            _, _, bv, br = await ctx.tick().sample(d.s_axil_bvalid, d.s_axil_bresp)
            if held is not None:
                assert bv and br == held, "B response not held until bready"
            if bv and k >= b_delay:
                ctx.set(d.s_axil_bready, 0)
                return br
            if bv:
                held = br
        raise AssertionError("no write response")

    async def read(self, addr, ar_delay=0, r_delay=0):
        d, ctx = self.d, self.ctx
        ctx.set(d.s_axil_araddr, addr)
        for _ in range(ar_delay):
            await ctx.tick()
        ctx.set(d.s_axil_arvalid, 1)
        for _ in range(self.limit):
            _, _, arr = await ctx.tick().sample(d.s_axil_arready)
            if arr:
                break
        else:
            raise AssertionError("AR never accepted")
        ctx.set(d.s_axil_arvalid, 0)
        held = None
        for k in range(self.limit):
            ctx.set(d.s_axil_rready, k >= r_delay)
            _, _, rv, rd, rr = await ctx.tick().sample(d.s_axil_rvalid, d.s_axil_rdata,
                                                       d.s_axil_rresp)
            if held is not None:
                assert rv and (rd, rr) == held, "R response not held until rready"
            if rv and k >= r_delay:
                ctx.set(d.s_axil_rready, 0)
                return rd, rr
            if rv:
                held = (rd, rr)
        raise AssertionError("no read response")

    async def write_and_read(self, waddr, wdata, raddr):
        """AW, W and AR presented in the same cycle; returns ``(bresp, rdata, rresp)``."""
        d, ctx = self.d, self.ctx
        ctx.set(d.s_axil_awaddr, waddr)
        ctx.set(d.s_axil_wdata, wdata)
        ctx.set(d.s_axil_wstrb, 0xF)
        ctx.set(d.s_axil_araddr, raddr)
        for s in (d.s_axil_awvalid, d.s_axil_wvalid, d.s_axil_arvalid, d.s_axil_bready,
                  d.s_axil_rready):
            ctx.set(s, 1)
        b = r = None
        for _ in range(self.limit):
            _, _, awr, wr, arr, bv, br, rv, rd, rr = await ctx.tick().sample(
                d.s_axil_awready, d.s_axil_wready, d.s_axil_arready, d.s_axil_bvalid,
                d.s_axil_bresp, d.s_axil_rvalid, d.s_axil_rdata, d.s_axil_rresp)
            if awr:
                ctx.set(d.s_axil_awvalid, 0)
            if wr:
                ctx.set(d.s_axil_wvalid, 0)
            if arr:
                ctx.set(d.s_axil_arvalid, 0)
            if bv and b is None:
                b = br
                ctx.set(d.s_axil_bready, 0)
            if rv and r is None:
                r = (rd, rr)
                ctx.set(d.s_axil_rready, 0)
            if b is not None and r is not None:
                return b, *r
        raise AssertionError("no responses")

    async def read_ok(self, addr, **kw):
        value, resp = await self.read(addr, **kw)
        assert resp == OKAY, f"read {addr:#x} answered {resp}"
        return value

    async def write_ok(self, addr, data, **kw):
        resp = await self.write(addr, data, **kw)
        assert resp == OKAY, f"write {addr:#x} answered {resp}"


class NocModel:
    """Sinks ``req_out`` (optionally with back-pressure), reassembles packets; answers
    READ_REQs from ``mem[(core, word)]`` and IMEM_READs from ``imem[(core, word)]`` after
    ``delay`` cycles when ``respond`` is set, and injects any flits put in ``inject``."""

    def __init__(self, dut, cfg, rng=None, backpressure=0.0, respond=True, delay=5):
        self.d, self.cfg = dut, cfg
        self.rng, self.bp = rng or random.Random(0), backpressure
        self.respond, self.delay = respond, delay
        self.packets, self.flits = [], []
        self.mem = {}
        self.imem = {}
        self.inject = []               # [(cycle, flit)]
        self.accept = True             # req_out.ready allowed at all
        self.allow_withdraw = False    # a stalled head may be withdrawn (injection timeout)
        self.cycle = 0
        self.resp_accepted = 0

    async def run(self, ctx):
        d, cfg = self.d, self.cfg
        cur, stalled = [], None
        while True:
            ready = self.accept and not (self.bp and self.rng.random() < self.bp)
            ctx.set(d.req_out.ready, ready)
            due = [f for f in self.inject if f[0] <= self.cycle]
            if due:
                ctx.set(d.resp_in.valid, 1)
                ctx.set(d.resp_in.payload.as_value(), due[0][1])
            else:
                ctx.set(d.resp_in.valid, 0)
            _, _, v, p, rr = await ctx.tick().sample(d.req_out.valid, d.req_out.payload.as_value(),
                                                     d.resp_in.ready)
            if stalled is not None and not (self.allow_withdraw and not v):
                assert v and p == stalled, "req_out flit changed or dropped while stalled"
            stalled = p if (v and not ready) else None
            if due:
                assert rr, "resp_in must always be ready"
                self.inject.remove(due[0])
                self.resp_accepted += 1
            if v and ready:
                self.flits.append(p)
                cur.append(p)
                if parse_flit(cfg, p)["last"]:
                    pkt = parse_packet(cfg, cur)
                    self.packets.append(pkt)
                    cur = []
                    if self.respond and pkt["type"] in (PacketType.READ_REQ,
                                                        PacketType.IMEM_READ):
                        self.answer(pkt)
            self.cycle += 1

    def answer(self, req, tag=None, word=None):
        cfg = self.cfg
        core = req["dst_y"] * cfg.mesh.cols + req["dst_x"]
        if word is None:
            src = self.imem if req["type"] == PacketType.IMEM_READ else self.mem
            word = src.get((core, req["address"]), 0)
        flits = make_packet(cfg, PacketType.READ_RESP, to_host=True, src_x=req["dst_x"],
                            src_y=req["dst_y"], tag=req["tag"] if tag is None else tag,
                            address=req["address"], payload=[word])
        self.queue(flits, self.delay)

    def queue(self, flits, delay=0):
        start = max([self.cycle + delay] + [c + 1 for c, _ in self.inject])
        for k, f in enumerate(flits):
            self.inject.append((start + k, f))


def run(dut, main, *background):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(main)
    for bg in background:
        sim.add_testbench(bg, background=True)
    sim.run()


def core_model(dut, runs, errors=None):
    """Background process: core ``i`` started by a pulse runs ``runs[i]`` cycles (``running``
    from the cycle after the pulse), then halts (or errors with code ``errors[i]``). Records
    every cycle a start pulse is seen in ``pulses[i]``."""
    errors = errors or {}
    n = len(dut.core_start)
    pulses = {i: [] for i in range(n)}
    state = {"cycle": 0}

    async def proc(ctx):
        left = [0] * n
        while True:
            _, _, *starts = await ctx.tick().sample(*dut.core_start)
            state["cycle"] += 1
            for i in range(n):
                if starts[i]:
                    pulses[i].append(state["cycle"] - 1)
                    if not left[i]:
                        left[i] = runs.get(i, 1)
                        ctx.set(dut.core_running[i], 1)
                        ctx.set(dut.core_halted[i], 0)
                        ctx.set(dut.core_error[i], 0)
                    continue
                if left[i]:
                    left[i] -= 1
                    if not left[i]:
                        ctx.set(dut.core_running[i], 0)
                        if i in errors:
                            ctx.set(dut.core_error[i], 1)
                            ctx.set(dut.core_error_code[i], errors[i])
                        else:
                            ctx.set(dut.core_halted[i], 1)
    return proc, pulses, state


# ------------------------------------------------------------------------------------------
# Construction and ports

def test_ports_and_validation():
    ports = {p["name"]: (p["direction"], p["width"]) for p in port_list(HostInterface(TINY))}
    axi = {"awaddr": ("input", 32), "awprot": ("input", 3), "awvalid": ("input", 1),
           "awready": ("output", 1), "wdata": ("input", 32), "wstrb": ("input", 4),
           "wvalid": ("input", 1), "wready": ("output", 1), "bresp": ("output", 2),
           "bvalid": ("output", 1), "bready": ("input", 1), "araddr": ("input", 32),
           "arprot": ("input", 3), "arvalid": ("input", 1), "arready": ("output", 1),
           "rdata": ("output", 32), "rresp": ("output", 2), "rvalid": ("output", 1),
           "rready": ("input", 1)}
    for k, v in axi.items():
        assert ports[f"s_axil_{k}"] == v, k
    assert ports["req_out__payload"] == ("output", 68)
    assert ports["resp_in__ready"] == ("output", 1)
    assert ports["core_start__3"] == ("output", 1)
    assert ports["core_perf__3__4"] == ("input", 48)
    assert ports["core_pc__0"] == ("input", 16)
    assert ports["core_error_code__2"] == ("input", 4)
    assert ports["grp_mask"] == ("output", 4)
    assert ports["grp_index"] == ("output", 2)
    assert ports["grp_phases__3"] == ("input", 32)
    with pytest.raises(ValueError, match="timeout.*0"):
        HostInterface(TINY, timeout=0)
    for name in ("fpga", "large"):
        HostInterface(preset(name))


def test_address_helpers():
    assert core_reg_addr(2, CoreReg.PERF_MACS_HI) == 0x1000 + 0x80 + 0x2C
    assert window_addr(3, Mem.IMEM, 5) == 0x1000_0000 | 3 << 20 | 1 << 19 | 5 << 2
    assert group_mask_addr(3) == 0x4C and group_phases_addr(3) == 0x8C
    assert CoreReg.perf_lo(4) == CoreReg.PERF_MACS_LO
    with pytest.raises(ValueError, match="core.*256"):
        window_addr(256, Mem.SPM, 0)


# ------------------------------------------------------------------------------------------
# Registers

def test_registers_and_axi_orderings():
    dut = HostInterface(TINY)

    async def main(ctx):
        axi = AxiLite(dut, ctx)
        assert await axi.read_ok(Reg.ID) == 0x48415350
        assert await axi.read_ok(Reg.CONFIG) == 2 | 2 << 8 | 4 << 16 | 4 << 24
        assert await axi.read_ok(Reg.STATUS) == 0
        # DATA1..3 are R/W; every AW/W ordering, delayed bready/rready.
        orders = [dict(), dict(aw_delay=3), dict(w_delay=3), dict(b_delay=4),
                  dict(aw_delay=1, w_delay=5, b_delay=2)]
        for k, reg in enumerate((Reg.DATA1, Reg.DATA2, Reg.DATA3)):
            for j, kw in enumerate(orders):
                v = (0x1234_5678 * (k + 1) + 0x1111 * j) & 0xFFFF_FFFF
                await axi.write_ok(reg, v, **kw)
                assert await axi.read_ok(reg, r_delay=j) == v
        # low address bits are ignored
        assert await axi.read_ok(Reg.ID + 2) == 0x48415350
        # partial writes are refused and change nothing
        assert await axi.write(Reg.DATA1, 0xDEAD_BEEF, strb=0b0011) == SLVERR
        assert await axi.read_ok(Reg.DATA1) == (0x1234_5678 + 0x1111 * 4) & 0xFFFF_FFFF
        # read-only registers
        for addr in (Reg.ID, Reg.CONFIG, Reg.STATUS, Reg.CYCLES_LO, Reg.CYCLES_HI,
                     group_phases_addr(0), core_reg_addr(1, CoreReg.STATUS),
                     core_reg_addr(0, CoreReg.PERF_IDLE_LO)):
            assert await axi.write(addr, 0x5555_5555) == SLVERR, hex(addr)
        assert await axi.read_ok(Reg.ID) == 0x48415350
        assert await axi.read_ok(Reg.CYCLES_LO) == 0
        # unmapped addresses / indices (tiny: 4 cores, 4 groups, 1024 spm words, 256 insns)
        for addr in (0x24, 0x3C, 0x50, 0x90, 0x100, 0xFFC, 0x1004, 0x1030, 0x103C,
                     0x1000 + 0x40 * 4, 0x2000, 0x0100_0000, 0x2000_0000, 0xFFFF_FFFC,
                     window_addr(4, Mem.SPM, 0), window_addr(0, Mem.SPM, 1024),
                     window_addr(0, Mem.IMEM, 256)):
            assert (await axi.read(addr))[1] == SLVERR, hex(addr)
            assert await axi.write(addr, 1) == SLVERR, hex(addr)

    noc = NocModel(dut, TINY)
    run(dut, main, noc.run)
    assert noc.packets == [], "a refused access sent a packet"


def test_register_latency():
    """docs/host.md: a register write answers 2 cycles after its AW/W handshake, a register
    read 4 cycles after its AR handshake."""
    dut = HostInterface(TINY)
    d = dut

    async def handshake_then_wait(ctx, valids, ready, resp_valid):
        for v in valids:
            ctx.set(v, 1)
        while not (await ctx.tick().sample(ready))[2]:
            pass
        for v in valids:
            ctx.set(v, 0)
        k = 1
        while not (await ctx.tick().sample(resp_valid))[2]:
            k += 1
        await ctx.tick()
        return k

    async def main(ctx):
        ctx.set(d.s_axil_bready, 1)
        ctx.set(d.s_axil_rready, 1)
        ctx.set(d.s_axil_awaddr, Reg.DATA2)
        ctx.set(d.s_axil_wdata, 0xC0FFEE)
        ctx.set(d.s_axil_wstrb, 0xF)
        assert await handshake_then_wait(ctx, (d.s_axil_awvalid, d.s_axil_wvalid),
                                         d.s_axil_awready, d.s_axil_bvalid) == 2
        ctx.set(d.s_axil_araddr, Reg.DATA2)
        assert await handshake_then_wait(ctx, (d.s_axil_arvalid,), d.s_axil_arready,
                                         d.s_axil_rvalid) == 4
        assert ctx.get(d.s_axil_rdata) == 0xC0FFEE

    run(dut, main)


def test_concurrent_read_and_write():
    """AR, AW and W presented in the same cycle; both complete; repeated with random delays."""
    dut = HostInterface(TINY)
    rng = random.Random(3)
    log = []

    async def writer(ctx):
        axi = AxiLite(dut, ctx)
        for k in range(20):
            await axi.write_ok(Reg.DATA2, k, aw_delay=rng.randrange(3), w_delay=rng.randrange(3),
                               b_delay=rng.randrange(3))
            log.append(("w", k))

    async def reader(ctx):
        axi = AxiLite(dut, ctx)
        for k in range(20):
            v = await axi.read_ok(Reg.DATA2, ar_delay=rng.randrange(3), r_delay=rng.randrange(3))
            log.append(("r", v))
            assert await axi.read_ok(Reg.ID) == 0x48415350

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(writer)
    sim.add_testbench(reader)
    sim.run()
    # every read returns a value written at or before that point
    last = 0
    for kind, v in log:
        if kind == "w":
            last = v
        else:
            assert v <= last + 1


def test_core_status_and_perf_registers():
    dut = HostInterface(TINY)
    rng = random.Random(7)
    vals = {}

    async def main(ctx):
        axi = AxiLite(dut, ctx)
        for i in range(4):
            st = dict(running=rng.randrange(2), halted=rng.randrange(2), error=rng.randrange(2),
                      code=rng.randrange(16), pc=rng.randrange(1 << 16))
            perf = [rng.randrange(1 << 48) for _ in range(5)]
            vals[i] = st, perf
            ctx.set(dut.core_running[i], st["running"])
            ctx.set(dut.core_halted[i], st["halted"])
            ctx.set(dut.core_error[i], st["error"])
            ctx.set(dut.core_error_code[i], st["code"])
            ctx.set(dut.core_pc[i], st["pc"])
            for k in range(5):
                ctx.set(dut.core_perf[i][k], perf[k])
        for i in range(4):
            st, perf = vals[i]
            want = (st["running"] | st["halted"] << 1 | st["error"] << 2 | st["code"] << 4
                    | st["pc"] << 16)
            assert await axi.read_ok(0x1000 + 0x40 * i) == want
            # busy, sync, net, idle, macs at +0x08, +0x10, +0x18, +0x20, +0x28 (lo, hi)
            for k in range(5):
                lo = await axi.read_ok(0x1000 + 0x40 * i + 8 + 8 * k)
                hi = await axi.read_ok(0x1000 + 0x40 * i + 12 + 8 * k)
                assert lo | hi << 32 == perf[k], (i, k)
        # STATUS.error is the OR of the cores' error bits
        any_err = any(v[0]["error"] for v in vals.values())
        assert (await axi.read_ok(Reg.STATUS)) >> 1 & 1 == any_err

    run(dut, main)


def test_group_masks():
    dut = HostInterface(TINY)
    strobes = []

    async def watch(ctx):
        cyc = 0
        while True:
            _, _, we, idx, mask = await ctx.tick().sample(dut.grp_we, dut.grp_index, dut.grp_mask)
            if we:
                strobes.append((cyc, idx, mask))
            cyc += 1

    async def main(ctx):
        axi = AxiLite(dut, ctx)
        # reset: group 0 = every core (BSP), others empty (as the GSU)
        assert [await axi.read_ok(group_mask_addr(g)) for g in range(4)] == [0xF, 0, 0, 0]
        await axi.write_ok(group_mask_addr(1), 0b0110)
        await axi.write_ok(group_mask_addr(3), 0b1001)
        await axi.write_ok(group_mask_addr(0), 0b0001)
        assert [await axi.read_ok(group_mask_addr(g)) for g in range(4)] == [0b0001, 0b0110, 0,
                                                                              0b1001]
        # a member bit for a core that does not exist, or a group that does not exist
        assert await axi.write(group_mask_addr(2), 0b1_0000) == SLVERR
        assert await axi.write(group_mask_addr(4), 0b1) == SLVERR
        assert await axi.read_ok(group_mask_addr(2)) == 0
        for g in range(4):
            ctx.set(dut.grp_phases[g], 0x1000_0000 * g + 17 * g + 1)
        for g in range(4):
            assert await axi.read_ok(group_phases_addr(g)) == 0x1000_0000 * g + 17 * g + 1
        await ctx.tick().repeat(3)

    run(dut, main, watch)
    assert [(i, mk) for _, i, mk in strobes] == [(1, 0b0110), (3, 0b1001), (0, 0b0001)]
    # one-cycle strobes
    assert all(b[0] - a[0] > 1 for a, b in zip(strobes, strobes[1:]))


def test_group_mask_wide_chip():
    """With more than 32 cores the mask's upper bits travel through DATA1..3."""
    cfg = preset("large")                   # 64 cores, 16 groups
    dut = HostInterface(cfg)
    strobes = []

    async def watch(ctx):
        while True:
            _, _, we, idx, mask = await ctx.tick().sample(dut.grp_we, dut.grp_index, dut.grp_mask)
            if we:
                strobes.append((idx, mask))

    async def main(ctx):
        axi = AxiLite(dut, ctx)
        assert await axi.read_ok(group_mask_addr(0)) == 0xFFFF_FFFF
        assert await axi.read_ok(Reg.DATA1) == 0xFFFF_FFFF       # latched bits 63..32
        await axi.write_ok(Reg.DATA1, 0x8000_0001)
        await axi.write_ok(group_mask_addr(15), 0x0000_00F0)
        await axi.write_ok(Reg.DATA1, 0)
        assert await axi.read_ok(group_mask_addr(15)) == 0xF0
        assert await axi.read_ok(Reg.DATA1) == 0x8000_0001
        await axi.write_ok(Reg.DATA2, 1)                          # bit 64: no core 64
        assert await axi.write(group_mask_addr(1), 0) == SLVERR

    run(dut, main, watch)
    assert strobes == [(15, 0x8000_0001_0000_00F0)]


# ------------------------------------------------------------------------------------------
# START, STATUS and the cycle counter

def test_start_status_and_cycle_counter():
    dut = HostInterface(TINY)
    runs = {0: 10, 1: 7, 2: 40, 3: 5}
    proc, pulses, clock = core_model(dut, runs, errors={3: 9})
    t = {}

    async def main(ctx):
        axi = AxiLite(dut, ctx)
        assert await axi.write(Reg.START, 0b1_0000) == SLVERR       # no core 4
        await ctx.tick().repeat(3)
        assert all(not p for p in pulses.values())
        t["start"] = clock["cycle"]
        await axi.write_ok(Reg.START, 0b0101)
        st = await axi.read_ok(Reg.STATUS)
        assert st & 1 and not st >> 2 & 1, f"STATUS {st:#x} right after START"
        assert await axi.read_ok(Reg.START) == 0b0101
        while True:
            st = await axi.read_ok(Reg.STATUS)
            if not st & 1:
                break
        assert st == 0b100, f"STATUS {st:#x}: done, no error"
        lo = await axi.read_ok(Reg.CYCLES_LO)
        hi = await axi.read_ok(Reg.CYCLES_HI)
        # longest run: core 2, 40 running cycles after its pulse cycle
        assert lo | hi << 32 == 40 + 1
        # counter stopped
        await ctx.tick().repeat(5)
        assert await axi.read_ok(Reg.CYCLES_LO) == 41
        # second run (cores 1 and 3): restarts the counter; core 3 ends with an error
        await axi.write_ok(Reg.START, 0b1010)
        while (await axi.read_ok(Reg.STATUS)) & 1:
            pass
        assert await axi.read_ok(Reg.STATUS) == 0b110
        assert await axi.read_ok(Reg.CYCLES_LO) == 7 + 1
        assert await axi.read_ok(core_reg_addr(3, CoreReg.STATUS)) == 1 << 2 | 9 << 4
        assert await axi.read_ok(core_reg_addr(1, CoreReg.STATUS)) == 1 << 1
        # third run: core 0 again. STATUS read together with the START is served in the cycle
        # of the start pulse, while core 0 still shows the previous run's halted bit: busy
        # (bit0), core 3's error (bit1), not done (bit2).
        bresp, st, rresp = await axi.write_and_read(Reg.START, 0b0001, Reg.STATUS)
        assert bresp == OKAY and rresp == OKAY and st == 0b011, f"STATUS {st:#x}"
        while (await axi.read_ok(Reg.STATUS)) & 1:
            pass
        assert await axi.read_ok(Reg.STATUS) == 0b110
        assert await axi.read_ok(Reg.CYCLES_LO) == 10 + 1

    run(dut, main, proc)
    # exactly one pulse per started core per START, both cores in the same cycle
    assert pulses[2] == pulses[0][:1] and len(pulses[0]) == 2
    assert pulses[1] == pulses[3] and len(pulses[1]) == 1
    assert pulses[0][1] > pulses[1][0] > pulses[0][0] >= t["start"]


def test_cycle_counter_64_bits_and_snapshot():
    """CYCLES_HI returns the upper half as of the last CYCLES_LO read."""
    dut = HostInterface(TINY)
    proc, pulses, _ = core_model(dut, {0: 300})

    async def main(ctx):
        axi = AxiLite(dut, ctx)
        await axi.write_ok(Reg.START, 1)
        lo1 = await axi.read_ok(Reg.CYCLES_LO)
        await ctx.tick().repeat(20)
        hi = await axi.read_ok(Reg.CYCLES_HI)
        lo2 = await axi.read_ok(Reg.CYCLES_LO)
        assert hi == 0 and 0 < lo1 < lo2 - 20
        while (await axi.read_ok(Reg.STATUS)) & 1:
            pass
        assert await axi.read_ok(Reg.CYCLES_LO) == 301

    run(dut, main, proc)


# ------------------------------------------------------------------------------------------
# Memory window

def _expect_packet(cfg, pkt, ptype, core, address, payload):
    cols = cfg.mesh.cols
    assert pkt["type"] == ptype
    assert (pkt["dst_x"], pkt["dst_y"]) == (core % cols, core // cols)
    assert pkt["to_host"] == 0 and pkt["src_host"] == 1
    assert pkt["length"] == 1 and pkt["address"] == address
    assert pkt["payload"] == payload


@pytest.mark.parametrize("bp", [0.0, 0.6])
def test_window_write_packets(bp):
    cfg = WIDE
    dut = HostInterface(cfg)
    noc = NocModel(dut, cfg, rng=random.Random(11), backpressure=bp)
    rng = random.Random(5)
    expect = []

    async def main(ctx):
        axi = AxiLite(dut, ctx)
        for n in range(12):
            core, word = rng.randrange(cfg.cores), rng.randrange(cfg.spm.words)
            d = [rng.randrange(1 << 32) for _ in range(4)]
            for k, reg in enumerate((Reg.DATA1, Reg.DATA2, Reg.DATA3)):
                await axi.write_ok(reg, d[k + 1])
            mem = Mem.IMEM if n % 3 == 2 else Mem.SPM
            if mem == Mem.IMEM:
                word %= cfg.core.imem_depth
            await axi.write_ok(window_addr(core, mem, word), d[0], aw_delay=n % 2, w_delay=n % 3)
            full = d[0] | d[1] << 32 | d[2] << 64 | d[3] << 96
            if mem == Mem.IMEM:
                expect.append((PacketType.IMEM_WRITE, core, word, full & ((1 << 64) - 1)))
            else:
                expect.append((PacketType.WRITE, core, word, full))    # 128-bit words
            # answered only once the whole packet is in: every flit is out already
            assert len(noc.packets) == len(expect)

    run(dut, main, noc.run)
    assert len(noc.flits) == 2 * len(expect)
    for pkt, (ptype, core, word, value) in zip(noc.packets, expect):
        _expect_packet(cfg, pkt, ptype, core, word, [value])


def test_window_write_truncates_to_word():
    dut = HostInterface(TINY)                   # 32-bit words
    noc = NocModel(dut, TINY)

    async def main(ctx):
        axi = AxiLite(dut, ctx)
        await axi.write_ok(Reg.DATA1, 0xAAAA_AAAA)
        await axi.write_ok(window_addr(3, Mem.SPM, 1023), 0x1234_5678)
        await axi.write_ok(window_addr(2, Mem.IMEM, 255), 0x0BAD_F00D)

    run(dut, main, noc.run)
    assert len(noc.packets) == 2
    _expect_packet(TINY, noc.packets[0], PacketType.WRITE, 3, 1023, [0x1234_5678])
    _expect_packet(TINY, noc.packets[1], PacketType.IMEM_WRITE, 2, 255,
                   [0xAAAA_AAAA_0BAD_F00D])


@pytest.mark.parametrize("bp", [0.0, 0.5])
def test_window_read(bp):
    cfg = WIDE
    dut = HostInterface(cfg)
    noc = NocModel(dut, cfg, rng=random.Random(2), backpressure=bp, delay=7)
    rng = random.Random(9)
    for _ in range(40):
        noc.mem[(rng.randrange(cfg.cores), rng.randrange(cfg.spm.words))] = rng.randrange(1 << 128)
    keys = list(noc.mem)

    async def main(ctx):
        axi = AxiLite(dut, ctx)
        for n, (core, word) in enumerate(keys[:10]):
            if n == 3:
                # a stray multi-flit READ_RESP with a wrong tag arrives first: drained, ignored
                noc.queue(make_packet(cfg, PacketType.READ_RESP, to_host=True, tag=0xEE,
                                      address=word, payload=[1, 2, 3]))
            v = await axi.read_ok(window_addr(core, Mem.SPM, word), r_delay=n % 3)
            full = noc.mem[(core, word)]
            assert v == full & 0xFFFF_FFFF
            for k, reg in enumerate((Reg.DATA1, Reg.DATA2, Reg.DATA3)):
                assert await axi.read_ok(reg) == (full >> (32 * (k + 1))) & 0xFFFF_FFFF

    run(dut, main, noc.run)
    reqs = noc.packets
    assert len(reqs) == 10
    tags = set()
    for pkt, (core, word) in zip(reqs, keys):
        assert pkt["type"] == PacketType.READ_REQ and pkt["payload"] == []
        assert (pkt["dst_x"], pkt["dst_y"]) == (core % cfg.mesh.cols, core // cfg.mesh.cols)
        assert pkt["src_host"] == 1 and pkt["length"] == 1 and pkt["address"] == word
        tags.add(pkt["tag"])
    assert len(tags) == 10, "each read uses a fresh tag"
    assert noc.resp_accepted == 10 * 2 + 4


def test_window_read_instruction_memory():
    """A window read of instruction memory sends an IMEM_READ and returns the 64-bit
    instruction: bits [31:0] in rdata, [63:32] in DATA1."""
    cfg = TINY
    dut = HostInterface(cfg)
    noc = NocModel(dut, cfg, delay=3)
    noc.imem[(2, 17)] = 0x0123_4567_89AB_CDEF
    noc.mem[(2, 17)] = 0x5555_5555

    async def main(ctx):
        axi = AxiLite(dut, ctx)
        assert await axi.read_ok(window_addr(2, Mem.IMEM, 17)) == 0x89AB_CDEF
        assert await axi.read_ok(Reg.DATA1) == 0x0123_4567
        assert await axi.read_ok(window_addr(2, Mem.SPM, 17)) == 0x5555_5555

    run(dut, main, noc.run)
    kinds = [(p["type"], p["address"], p["dst_x"], p["dst_y"]) for p in noc.packets]
    assert kinds == [(PacketType.IMEM_READ, 17, 0, 1), (PacketType.READ_REQ, 17, 0, 1)]


def test_window_read_timeout_and_late_response():
    dut = HostInterface(TINY)                   # default timeout: 4096 cycles
    noc = NocModel(dut, TINY, respond=False)
    noc.mem[(1, 9)] = 0x0C0F_FEE0
    t = {}

    async def main(ctx):
        axi = AxiLite(dut, ctx)
        c0 = noc.cycle
        v, resp = await axi.read(window_addr(1, Mem.SPM, 9))
        t["lat"] = noc.cycle - c0
        assert resp == SLVERR
        # the late answer to the timed-out request (stale data) arrives while the next read
        # waits for its own answer: it is dropped, the new read returns the right word
        noc.answer(noc.packets[0], word=0xBAD)
        noc.respond = True
        noc.delay = 20
        assert await axi.read_ok(window_addr(1, Mem.SPM, 9)) == 0x0C0F_FEE0
        assert noc.resp_accepted == 4
        # and with a quick answer after a stale one queued in front of it
        noc.delay = 0
        noc.mem[(1, 9)] = 0x1111
        noc.answer(noc.packets[0], word=0xBAD)
        assert await axi.read_ok(window_addr(1, Mem.SPM, 9)) == 0x1111

    run(dut, main, noc.run)
    assert 4096 <= t["lat"] <= 4096 + 10


def test_window_write_timeout_when_noc_blocked():
    dut = HostInterface(TINY, timeout=50)
    noc = NocModel(dut, TINY)
    noc.accept = False
    noc.allow_withdraw = True

    async def main(ctx):
        axi = AxiLite(dut, ctx)
        assert await axi.write(window_addr(0, Mem.SPM, 0), 5) == SLVERR
        assert (await axi.read(window_addr(0, Mem.SPM, 0)))[1] == SLVERR
        await ctx.tick().repeat(5)
        assert not ctx.get(dut.req_out.valid), "abandoned head flit still offered"
        noc.accept = True
        await axi.write_ok(window_addr(1, Mem.SPM, 2), 6)

    run(dut, main, noc.run)
    assert len(noc.packets) == 1
    _expect_packet(TINY, noc.packets[0], PacketType.WRITE, 1, 2, [6])
