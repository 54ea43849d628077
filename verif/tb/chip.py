"""cocotb bench of the whole chip through its AXI4-Lite host port (cocotbext-axi's
AxiLiteMaster): load a program image, start the cores, let the chip run on its own until no
core is running, then read back memories, status and the hardware counters.

Driven by :func:`hasp.sw.runtime.run` (backend ``rtl``), which passes the image path and what
to read back in ``HASP_TB_ARGS`` and gets everything back as JSON."""
import time

import cocotb
from cocotb.triggers import FallingEdge, First, ReadOnly, RisingEdge, Timer
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from hasp.hw import host as H
from hasp.sw.image import Image
from hasp.verif.tb.common import TB, CLK_NS


class AxiError(RuntimeError):
    pass


class ChipHost:
    """Transaction-level host driver: every access is one AXI4-Lite transaction."""

    def __init__(self, tb: TB):
        self.tb, self.dut, self.cfg = tb, tb.dut, tb.cfg
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(tb.dut, "s_axil"), tb.dut.clk,
                                  tb.dut.rst)
        self.axil.write_if.log.setLevel("WARNING")
        self.axil.read_if.log.setLevel("WARNING")
        self._data_regs = None

    async def write(self, addr: int, value: int):
        r = await self.axil.write(addr, int(value).to_bytes(4, "little"))
        if int(r.resp) != H.Resp.OKAY:
            raise AxiError(f"write {addr:#010x} answered {r.resp!r}")

    async def read(self, addr: int) -> int:
        self.dut._log.debug("read %#010x", addr)
        r = await self.axil.read(addr, 4)
        if int(r.resp) != H.Resp.OKAY:
            raise AxiError(f"read {addr:#010x} answered {r.resp!r}")
        return int.from_bytes(r.data, "little")

    async def write_word(self, core: int, mem, word: int, value: int):
        low, high = H.split_wide(value)
        if self._data_regs != high:          # stage the upper bits only when they change
            for k, v in enumerate(high):
                await self.write(H.Reg.DATA1 + 4 * k, v)
            self._data_regs = high
        await self.write(H.window_addr(core, mem, word), low)

    async def read_word(self, core: int, word: int, width: int, mem=H.Mem.SPM) -> int:
        low = await self.read(H.window_addr(core, mem, word))
        self._data_regs = None
        if width <= 32:
            return low
        regs = [await self.read(H.Reg.DATA1 + 4 * k) for k in range((width - 1) // 32)]
        return H.join_wide(low, regs)

    async def load(self, image: Image):
        for core, words in sorted(image.programs.items()):
            for a, w in enumerate(words):
                await self.write_word(core, H.Mem.IMEM, a, w)
        for core, words in sorted(image.spm.items()):
            items = words.items() if isinstance(words, dict) else enumerate(words)
            for a, w in sorted(items):
                await self.write_word(core, H.Mem.SPM, a, w)
        for g, mask in enumerate(image.groups):
            await self.write(H.group_mask_addr(g), mask)
        await self.fence(set(image.programs) | set(image.spm))

    async def fence(self, cores):
        """Wait until every window write to ``cores`` has landed: window writes are posted,
        and a read of a core answers after the writes to it before it (docs/host.md)."""
        for core in sorted(cores):
            await self.read(H.window_addr(core, H.Mem.IMEM, 0))

    async def counters(self):
        out = []
        for i in range(self.cfg.cores):
            st = H.decode_core_status(await self.read(H.core_reg_addr(i, H.CoreReg.STATUS)))
            perf = {}
            for k, name in enumerate(("busy", "sync", "net", "idle", "macs")):
                lo = await self.read(H.core_reg_addr(i, H.CoreReg.perf_lo(k)))
                hi = await self.read(H.core_reg_addr(i, H.CoreReg.perf_lo(k)) + 4)
                perf[name] = lo | hi << 32
            out.append({"status": st, "perf": perf})
        return out


async def _run_one(tb: TB, host: ChipHost, job: dict) -> dict:
    dut = tb.dut
    image = Image.load(job["image"])
    t_load = time.perf_counter()
    await host.load(image)
    t_load = time.perf_counter() - t_load
    await host.write(H.Reg.START, sum(1 << c for c in image.programs))
    # The chip runs on its own: no Python until `busy` falls or the watchdog fires. A falling
    # edge counts once `busy` is still low at the next clock edge (Icarus shows delta glitches
    # on combinational signals).
    t0 = time.perf_counter()
    deadline = Timer(job.get("timeout_cycles", 200_000) * CLK_NS, "ns")
    stop = "timeout"
    while True:
        fired = await First(FallingEdge(dut.busy), deadline)
        if fired is deadline:
            break
        await RisingEdge(dut.clk)
        await ReadOnly()
        if not dut.busy.value:
            stop = "done"
            break
    wall = time.perf_counter() - t0
    await RisingEdge(dut.clk)
    cycles = await host.read(H.Reg.CYCLES_LO)
    cycles |= await host.read(H.Reg.CYCLES_HI) << 32
    cores = await host.counters()
    phases = [await host.read(H.group_phases_addr(g))
              for g in range(min(tb.cfg.sync.groups, H.MAX_GROUP_REGS))]
    reads = {}
    t_read = time.perf_counter()
    for core, addr, n in (job.get("readback", []) if stop == "done" else []):
        reads.setdefault(str(core), {})
        for a in range(addr, addr + n):
            reads[str(core)][str(a)] = await host.read_word(core, a, tb.cfg.word_width)
    t_read = time.perf_counter() - t_read
    imem = {}
    for core, addr, n in job.get("imem_readback", []):
        imem[str(core)] = [await host.read_word(core, a, 64, H.Mem.IMEM)
                           for a in range(addr, addr + n)]
    return dict(stop=stop, cycles=cycles, cores=cores, phases=phases, spm=reads, imem=imem,
                wall_run_s=wall, wall_load_s=t_load, wall_read_s=t_read)


@cocotb.test()
async def run_images(dut):
    """Run each job of ``args["jobs"]`` (image path, readback, timeout) in turn, resetting
    the chip in between (registers and counters; memories keep their contents, so every
    image initialises what it reads)."""
    tb = TB(dut)
    results = []
    for job in tb.args["jobs"]:
        await tb.start()
        host = ChipHost(tb)
        assert await host.read(H.Reg.ID) == H.ID_VALUE, "ID register"
        results.append(await _run_one(tb, host, job))
    tb.report(results=results)
