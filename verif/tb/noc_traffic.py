"""cocotb bench of :class:`hasp.hw.noc_bench.NoCBench`: the traffic is generated and checked in
hardware; Python only sets the parameters of each run, pulses ``start``, waits for ``done``
and reads the counters (no per-cycle Python).

``HASP_TB_ARGS``: ``runs`` = list of dicts with the keys of :data:`DEFAULTS`. Reports
``results`` = one dict per run (see :func:`read_counters`) and ``wall_s``.
"""
import time

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge, Timer, with_timeout

from hasp.hw.noc import Port
from hasp.hw.noc_bench import PATTERNS
from hasp.verif.tb.common import CLK_NS, TB

DEFAULTS = dict(seed=1, rate=0.05, pattern="uniform", hot_x=0, hot_y=0, hot_frac=0.0,
                pkt_len=4, bp=0.0, warmup=1000, measure=5000, drain_max=100000, mc_frac=0.0)

PER_NODE = ("gen", "gen_meas", "gen_pkts", "drop", "tx_pkts", "rx_all", "rx_pkts", "rx_flits",
            "win_flits", "errors", "lat_sum", "net_lat_sum", "head_lat_sum", "hop_sum",
            "flit_hops", "mc_flit_hops", "hl_sum", "h2_sum")


def _prob16(p, full=65535):
    return max(0, min(full, int(round(p * 65536))))


def read_counters(dut, cores):
    """Every counter of the top: per-node lists, their totals and the link counters."""
    out = {"done": int(dut.done.value), "timeout": int(dut.timeout.value),
           "cycles": int(dut.cycles.value), "mesh_error": int(dut.error.value)}
    for name in PER_NODE:
        vals = [int(getattr(dut, f"{name}__{i}").value) for i in range(cores)]
        out[name] = vals
        out[f"{name}_total"] = sum(vals)
    links = [[int(getattr(dut, f"flit_count__{i}__{p}").value) for p in range(len(Port))]
             for i in range(cores)]
    out["flit_count"] = links
    out["link_flits_total"] = sum(sum(r) for r in links)
    out["eject_flits_total"] = sum(r[Port.L] for r in links)
    return out


async def run_one(tb, params):
    d = tb.dut
    p = dict(DEFAULTS, **params)
    if p["pattern"] not in PATTERNS:
        raise ValueError(f"unknown pattern {p['pattern']!r}")
    if not 2 <= p["pkt_len"] <= 255:
        raise ValueError("pkt_len must be in [2, 255]")
    d.seed.value = p["seed"] & 0xFFFFFFFF
    d.rate.value = _prob16(p["rate"], 65536)
    d.pattern.value = PATTERNS[p["pattern"]]
    d.hot_x.value, d.hot_y.value = p["hot_x"], p["hot_y"]
    d.hot_rate.value = _prob16(p["hot_frac"])
    d.mc_rate.value = _prob16(p["mc_frac"])
    d.pkt_len.value = p["pkt_len"]
    d.bp.value = _prob16(p["bp"])
    d.warmup.value, d.measure.value, d.drain_max.value = p["warmup"], p["measure"], p["drain_max"]
    await RisingEdge(d.clk)
    d.start.value = 1
    await RisingEdge(d.clk)
    d.start.value = 0
    await RisingEdge(d.clk)
    limit = p["warmup"] + p["measure"] + p["drain_max"] + 100
    t0 = time.perf_counter()
    if not int(d.done.value):
        await with_timeout(RisingEdge(d.done), limit * CLK_NS, "ns")
    wall = time.perf_counter() - t0
    await ReadOnly()
    res = read_counters(d, tb.cfg.mesh.rows * tb.cfg.mesh.cols)
    res["params"] = p
    res["wall_s"] = wall
    await Timer(1, "ns")
    return res


@cocotb.test()
async def sweep(dut):
    tb = TB(dut)
    for name in ("start", "seed", "rate", "pattern", "hot_x", "hot_y", "hot_rate", "pkt_len",
                 "bp", "warmup", "measure", "drain_max", "mc_rate"):
        getattr(dut, name).value = 0
    await tb.start()
    t0 = time.perf_counter()
    results = []
    for params in tb.args.get("runs", [{}]):
        results.append(await run_one(tb, params))
        tb.report(results=results, wall_s=time.perf_counter() - t0)
    tb.report(results=results, wall_s=time.perf_counter() - t0)
