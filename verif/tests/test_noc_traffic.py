"""Hardware traffic generator + checker (``hw/noc_bench.py``) on the mesh NoC.

* Amaranth simulation of a 2x2 bench (fast, no build): the Python models of the patterns and
  the body words agree with what the hardware sends; counters are consistent.
* Verilator (4x4, one cached build, ~100 s the first time): every pattern under load with
  random ejection back-pressure: every packet delivered exactly once, intact, in order per
  source/destination pair (checked in hardware), no deadlock (the bench's drain watchdog
  bounds every run), link counters = flits x routers counted by the ejectors.
* ``--long``: >= 10**6 packets over all patterns; the 4x4 latency-throughput sweep.
"""
import pytest

from amaranth.sim import Simulator

from hasp.config import preset
from hasp.hw.noc import Port
from hasp.hw.noc_bench import NoCBench, PATTERNS, pattern_dest, body_word
from hasp.hw.packet import parse_packet
from hasp.sw import noc_bench as nb
from conftest import require_simulator

ALL = list(PATTERNS)


def _amaranth_run(cfg, params, max_cycles=20000):
    dut = NoCBench(cfg)
    cores = cfg.mesh.rows * cfg.mesh.cols
    res, packets = {}, {i: [] for i in range(cores)}

    async def bench(ctx):
        for k, v in params.items():
            ctx.set(getattr(dut, k), v)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        partial = {i: [] for i in range(cores)}
        outs = [dut.mesh.local_out[i] for i in range(cores)]
        for _ in range(max_cycles):
            vals = [(ctx.get(o.valid), ctx.get(o.ready), ctx.get(o.payload.as_value()))
                    for o in outs]
            await ctx.tick()
            for i, (v, r, p) in enumerate(vals):
                if v and r:
                    partial[i].append(p)
                    if (p >> cfg.noc.flit_width) & 1:
                        packets[i].append(partial[i])
                        partial[i] = []
            if ctx.get(dut.done):
                break
        for name in ("gen", "gen_pkts", "tx_pkts", "rx_all", "errors", "flit_hops",
                     "mc_flit_hops"):
            res[name] = [ctx.get(getattr(dut, name)[i]) for i in range(cores)]
        res["links"] = sum(ctx.get(dut.flit_count[i][p]) for i in range(cores) for p in Port)
        res["timeout"] = ctx.get(dut.timeout)
        res["done"] = ctx.get(dut.done)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return res, packets


@pytest.mark.parametrize("router", ["wormhole", "vc"])
@pytest.mark.parametrize("pattern", ALL)
def test_bench_amaranth_2x2(pattern, router):
    """Every ejected packet decoded in Python: right format, destination by the pattern's
    model, body words by :func:`body_word`, sequence numbers consecutive per pair."""
    cfg = preset("tiny").replace(noc={"router": router})
    rows, cols = cfg.mesh.rows, cfg.mesh.cols
    L = 5
    res, packets = _amaranth_run(cfg, dict(
        seed=3, rate=9000, pattern=PATTERNS[pattern], hot_x=1, hot_y=0, hot_rate=30000,
        pkt_len=L, bp=16000, warmup=20, measure=200, drain_max=3000))
    assert res["done"] and not res["timeout"]
    assert sum(res["errors"]) == 0
    assert sum(res["gen"]) == sum(res["tx_pkts"]) == sum(res["rx_all"]) > 20
    assert res["links"] == sum(res["flit_hops"])
    seqs = {}
    for dst, pkts in packets.items():
        dx, dy = dst % cols, dst // cols
        for flits in pkts:
            p = parse_packet(cfg, flits)
            assert (p["dst_x"], p["dst_y"]) == (dx, dy) and len(p["payload"]) == L - 1
            src = p["src_y"] * cols + p["src_x"]
            fixed = pattern_dest(pattern, p["src_x"], p["src_y"], rows, cols)
            if fixed is not None:
                assert fixed == (dx, dy)
            if pattern == "neighbor":
                assert abs(p["src_x"] - dx) + abs(p["src_y"] - dy) == 1
            seq = p["address"]
            assert seq == seqs.get((src, dst), 0), "sequence per pair"
            seqs[src, dst] = seq + 1
            for k, w in enumerate(p["payload"][1:], start=2):
                assert w == body_word(src, seq, k, cfg.noc.flit_width)
    assert sum(len(v) for v in packets.values()) == sum(res["rx_all"])
    if pattern == "hotspot":
        assert len(packets[1]) > max(len(packets[i]) for i in (0, 2, 3))


@pytest.mark.parametrize("name", ["tiny", "fpga"])
def test_bench_amaranth_multicast(name):
    """Multicast mixed with unicast, with back-pressure, decoded in Python: every multicast
    packet reaches every core of its rectangle exactly once, intact; multicast sequence numbers
    increase per pair; the link counters equal the XY trees' links counted here."""
    cfg = preset(name).replace(noc={"router": "lanes"})
    rows, cols = cfg.mesh.rows, cfg.mesh.cols
    L = 4
    res, packets = _amaranth_run(cfg, dict(
        seed=5, rate=5000, pattern=PATTERNS["uniform"], mc_rate=25000, pkt_len=L, bp=12000,
        warmup=20, measure=300, drain_max=5000))
    assert res["done"] and not res["timeout"]
    assert sum(res["errors"]) == 0
    assert sum(res["gen_pkts"]) == sum(res["tx_pkts"])
    assert sum(res["gen"]) == sum(res["rx_all"])
    copies, links, last_seq = {}, 0, {}
    for dst, pkts in packets.items():
        dx, dy = dst % cols, dst // cols
        for flits in pkts:
            p = parse_packet(cfg, flits)
            src = p["src_y"] * cols + p["src_x"]
            sx, sy = p["src_x"], p["src_y"]
            x0, y0, x1, y1 = p["dst_x"], p["dst_y"], p["dst_x"] + p["mc_dx"], \
                p["dst_y"] + p["mc_dy"]
            assert x0 <= dx <= x1 and y0 <= dy <= y1
            for k, w in enumerate(p["payload"][1:], start=2):
                assert w == body_word(src, p["address"], k, cfg.noc.flit_width)
            if p["mc_dx"] or p["mc_dy"]:
                key = (src, p["address"])
                assert dst not in copies.setdefault(key, set()), "duplicate copy"
                copies[key].add(dst)
                assert p["address"] > last_seq.get((src, dst), -1)
                last_seq[src, dst] = p["address"]
                if len(copies[key]) == 1:
                    w = x1 - x0 + 1
                    links += L * ((max(x1, sx) - min(x0, sx)) + w * (max(y1, sy) - min(y0, sy))
                                  + w * (y1 - y0 + 1))
            else:
                assert (p["dst_x"], p["dst_y"]) == (dx, dy)
                links += L * (abs(sx - dx) + abs(sy - dy) + 1)
    assert len(copies) > 5
    # every multicast packet reached its whole rectangle
    for dst, pkts in packets.items():
        for flits in pkts:
            p = parse_packet(cfg, flits)
            if p["mc_dx"] or p["mc_dy"]:
                src = p["src_y"] * cols + p["src_x"]
                want = {y * cols + x for y in range(p["dst_y"], p["dst_y"] + p["mc_dy"] + 1)
                        for x in range(p["dst_x"], p["dst_x"] + p["mc_dx"] + 1)}
                assert copies[src, p["address"]] == want
    assert res["links"] == links == sum(res["flit_hops"]) + sum(res["mc_flit_hops"])


def _verilator_runs(runs, mesh="4x4", router=None):
    require_simulator("verilator")
    cfg = nb.bench_config(mesh, router=router)
    out = nb.run_bench(cfg, runs)
    results = nb._link_deltas(out["results"])
    for r in results:
        problems = nb.check_run(r)
        assert not problems, f"{r['params']}: {problems}"
    return cfg, results


def test_traffic_patterns_verilator():
    """Every pattern at a load below and one above saturation, 30% ejection back-pressure;
    uniform and hotspot also with 30% multicast packets (lane router)."""
    runs = []
    for j, pattern in enumerate(ALL):
        for rate in (0.04, 0.3):
            runs.append(dict(seed=10 + j, rate=rate, pattern=pattern, pkt_len=4 + j, bp=0.3,
                             hot_x=2, hot_y=1, hot_frac=0.3, warmup=300, measure=1500,
                             drain_max=50000))
    for j, pattern in enumerate(("uniform", "hotspot")):
        for rate in (0.02, 0.2):
            runs.append(dict(seed=30 + j, rate=rate, pattern=pattern, pkt_len=3 + 2 * j,
                             bp=0.3, hot_x=1, hot_y=2, hot_frac=0.3, mc_frac=0.3, warmup=300,
                             measure=1500, drain_max=50000))
    cfg, results = _verilator_runs(runs, router="lanes")
    assert cfg.noc.router == "lanes"
    total = sum(r["rx_all_total"] for r in results)
    assert total > 10000
    for r in results:
        assert r["rx_pkts_total"] > 0 and r["win_flits_total"] > 0
    for r in results[-4:]:
        # multicast happened: more deliveries than packets, tree links counted
        assert r["gen_total"] > r["gen_pkts_total"] and r["mc_flit_hops_total"] > 0


def test_traffic_patterns_verilator_vc():
    """The VC router: every pattern at a load below and one above saturation, 30% ejection
    back-pressure (hardware checks: exactly once, intact, in order per pair; link counters)."""
    runs = []
    for j, pattern in enumerate(ALL):
        for rate in (0.04, 0.3):
            runs.append(dict(seed=50 + j, rate=rate, pattern=pattern, pkt_len=3 + j, bp=0.3,
                             hot_x=1, hot_y=2, hot_frac=0.3, warmup=300, measure=1500,
                             drain_max=50000))
    cfg, results = _verilator_runs(runs, router="vc")
    assert cfg.noc.router == "vc"
    assert sum(r["rx_all_total"] for r in results) > 10000
    for r in results:
        assert r["rx_pkts_total"] > 0 and r["win_flits_total"] > 0


@pytest.mark.parametrize("router", ["lanes", "vc"])
def test_zero_load_latency_verilator(router):
    """Zero load, uniform traffic, lane and VC routers: head latency = 2 hops + 3 cycles (two
    cycles per router, one for the ejection buffer), so the slope is 2 cycles per hop."""
    rep = nb.bench_noc(None, "4x4", "uniform", loads=[0.1], measure=2000, router=router)
    z = rep["zero_load"]
    assert z["latency_per_hop"] == pytest.approx(2.0, abs=0.03)
    assert z["head_latency"] == pytest.approx(2 * z["hops"] + 3, abs=0.05)
    assert rep["checks"] == "ok"


@pytest.mark.long
@pytest.mark.parametrize("router", ["lanes", "vc", "wormhole"])
def test_traffic_million_packets(router):
    """>= 10**6 packets over all patterns, with back-pressure, loads up to saturation; on the
    lane router also multicast mixed with unicast."""
    runs = []
    for j, pattern in enumerate(ALL):
        for rate, bp in ((0.1, 0.0), (0.2, 0.2), (0.4, 0.5)):
            runs.append(dict(seed=100 + j, rate=rate, pattern=pattern, pkt_len=2 + 3 * j % 7,
                             bp=bp, hot_x=1, hot_y=3, hot_frac=0.1, warmup=1000,
                             measure=60000, drain_max=500000))
    if router == "lanes":
        for j, pattern in enumerate(ALL):
            runs.append(dict(seed=200 + j, rate=0.03 + 0.03 * j, pattern=pattern,
                             pkt_len=2 + j, bp=0.2, hot_x=2, hot_y=2, hot_frac=0.2,
                             mc_frac=0.25, warmup=1000, measure=30000, drain_max=500000))
    _, results = _verilator_runs(runs, router=router)
    total = sum(r["tx_pkts_total"] for r in results)
    assert total >= 10**6, total


@pytest.mark.long
@pytest.mark.parametrize("router,floor", [("lanes", 0.5), ("wormhole", 0.45)])
def test_latency_throughput_sweep_4x4(tmp_path, router, floor):
    rep = nb.bench_noc(None, "4x4", "uniform", png=tmp_path / "noc.png", router=router)
    assert rep["checks"] == "ok"
    assert (tmp_path / "noc.png").stat().st_size > 1000
    # measured 0.54 (lanes) and 0.49 (wormhole) of the 4/k bound (docs/noc.md; the issue's
    # 0.8 target is not met): guard against regressions
    assert rep["ratio_to_bound"] > floor
