"""Testbench library shared by the cocotb benches: clock/reset, arguments, stream drivers and
monitors with idle/back-pressure generators, and a scoreboard.

Benches receive their parameters as JSON in ``HASP_TB_ARGS`` (see ``hasp.verif.runner``) and
report measurements by :meth:`TB.report`. Payloads are packed and unpacked with the Amaranth
layouts of the hardware (``layout.const(...).as_bits()`` / ``layout.from_bits(...)``), so no bit
position is typed twice.
"""
from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from hasp.config import ChipConfig

CLK_NS = 10


def tb_args() -> dict:
    return json.loads(os.environ.get("HASP_TB_ARGS", "{}"))


def tb_config() -> ChipConfig:
    return ChipConfig.from_dict(tb_args()["config"])


class TB:
    """Clock, reset and result reporting around a DUT with Amaranth's ``clk``/``rst``."""

    def __init__(self, dut, seed: int | None = None):
        self.dut = dut
        self.args = tb_args()
        self.cfg = ChipConfig.from_dict(self.args["config"])
        self.seed = self.args.get("seed", 1) if seed is None else seed
        self.rng = random.Random(self.seed)

    async def start(self, reset_cycles: int = 3):
        Clock(self.dut.clk, CLK_NS, unit="ns").start()
        self.dut.rst.value = 1
        for _ in range(reset_cycles):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    async def cycles(self, n: int):
        for _ in range(n):
            await RisingEdge(self.dut.clk)

    def report(self, **values):
        """Merge ``values`` into the JSON the runner returns to the pytest side."""
        path = os.environ.get("HASP_TB_OUT")
        if not path:
            return
        out = {}
        if os.path.exists(path):
            with open(path) as f:
                out = json.load(f)
        out.update(values)
        with open(path, "w") as f:
            json.dump(out, f)


def signed(value: int, width: int) -> int:
    return value - (1 << width) if value >> (width - 1) & 1 else value


class StreamDriver:
    """Drives an Amaranth ``stream`` sink (``<prefix>__valid/__ready/__payload``) from a list of
    payload bit patterns, inserting random idle cycles with probability ``idle``. Valid never
    drops before the transfer."""

    def __init__(self, dut, prefix: str, rng: random.Random, idle: float = 0.0):
        self.clk = dut.clk
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.rng, self.idle = rng, idle
        self.valid.value = 0

    async def send(self, items):
        for bits in items:
            while self.idle and self.rng.random() < self.idle:
                self.valid.value = 0
                await RisingEdge(self.clk)
            self.valid.value = 1
            self.payload.value = bits
            while True:
                await ReadOnly()
                done = bool(self.ready.value)
                await RisingEdge(self.clk)
                if done:
                    break
        self.valid.value = 0


class StreamMonitor:
    """Collects transfers of an Amaranth ``stream`` source, applying random back-pressure
    (``ready`` low with probability ``backpressure``)."""

    def __init__(self, dut, prefix: str, rng: random.Random, backpressure: float = 0.0):
        self.clk = dut.clk
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.rng, self.bp = rng, backpressure
        self.items: list[int] = []
        self.ready.value = 0

    def start(self):
        return cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            self.ready.value = 0 if (self.bp and self.rng.random() < self.bp) else 1
            await ReadOnly()
            if self.valid.value == 1 and self.ready.value == 1:
                self.items.append(int(self.payload.value))
            await RisingEdge(self.clk)

    async def wait_for(self, n: int, timeout_cycles: int):
        for _ in range(timeout_cycles):
            if len(self.items) >= n:
                return
            await RisingEdge(self.clk)
        raise AssertionError(f"timeout: {len(self.items)} of {n} transfers after "
                             f"{timeout_cycles} cycles")


class Scoreboard:
    """Compares observed items with expected ones, in order, and counts mismatches."""

    def __init__(self, name: str):
        self.name = name
        self.checked = 0
        self.errors: list[str] = []

    def compare(self, got, exp, what: str = ""):
        import numpy as np
        self.checked += 1
        if not np.array_equal(np.asarray(got), np.asarray(exp)):
            self.errors.append(f"{self.name} {what}: got {np.asarray(got).tolist()}, "
                               f"expected {np.asarray(exp).tolist()}")

    def check(self):
        assert self.checked, f"{self.name}: nothing was checked"
        assert not self.errors, f"{self.name}: {len(self.errors)} mismatches of {self.checked}:\n" \
            + "\n".join(self.errors[:10])
