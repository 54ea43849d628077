"""Helpers for Amaranth-simulator tests (the middle test tier): stream drivers and a runner."""
from __future__ import annotations

import random

from amaranth.sim import Simulator


def run_sim(dut, *testbenches, processes=(), vcd: str | None = None, deadline_s: float = 1e-3):
    """Simulate ``dut`` with a 100 MHz clock until every testbench returns."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for tb in testbenches:
        sim.add_testbench(tb)
    for p in processes:
        sim.add_process(p)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()


async def stream_put(ctx, port, payloads, rng: random.Random | None = None, idle: float = 0.0):
    """Send ``payloads`` (Amaranth consts or dicts) on a stream sink, with random idle cycles."""
    for p in payloads:
        while rng is not None and idle and rng.random() < idle:
            ctx.set(port.valid, 0)
            await ctx.tick()
        ctx.set(port.valid, 1)
        ctx.set(port.payload, p)
        await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def stream_get(ctx, port, n, rng: random.Random | None = None, backpressure: float = 0.0,
                     timeout: int = 100000):
    """Receive ``n`` transfers from a stream source, with random back-pressure."""
    out = []
    for _ in range(timeout):
        if len(out) == n:
            break
        ready = not (rng is not None and backpressure and rng.random() < backpressure)
        ctx.set(port.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
        if ready and valid:
            out.append(payload)
    else:
        raise AssertionError(f"timeout: got {len(out)} of {n} transfers")
    ctx.set(port.ready, 0)
    return out
