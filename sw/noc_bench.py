"""NoC measurements on the generated RTL (Verilator): ``hasp bench noc``.

The traffic is generated and checked in hardware (:class:`hasp.hw.noc_bench.NoCBench`); the
cocotb bench :mod:`hasp.verif.tb.noc_traffic` runs a list of runs in one simulation and reads
the counters. This module builds the top, chooses the runs, turns counters into the usual NoC
figures and checks them:

* zero-load latency (head, from injection to ejection) per router traversed and per hop;
* average packet latency (generation to tail ejection, source queueing included) vs offered
  load, a sweep from light load past saturation;
* saturation throughput (accepted flits/node/cycle, the plateau of accepted vs offered) and its
  ratio to the channel-load bound ``4/k`` of a ``k x k`` mesh under uniform random traffic;
* every run: no checker error, every generated packet delivered, and the mesh's per-link flit
  counters equal to the flit x router traversals the ejectors counted.

Use from the CLI: :func:`add_arguments` on the ``bench`` sub-parser, then
:func:`cmd_bench_noc`; or call :func:`bench_noc` directly.
"""
from __future__ import annotations

import json
from pathlib import Path

from hasp.config import ChipConfig

__all__ = ["TOP", "bench_config", "run_bench", "summarize", "bench_noc",
           "channel_bound", "add_arguments", "cmd_bench_noc", "check_run"]

TOP = "noc_bench"
MASK32 = (1 << 32) - 1


def parse_mesh(mesh) -> tuple[int, int]:
    if isinstance(mesh, (tuple, list)):
        return int(mesh[0]), int(mesh[1])
    try:
        r, c = str(mesh).lower().split("x")
        return int(r), int(c)
    except ValueError:
        raise ValueError(f"mesh must be ROWSxCOLS, e.g. 4x4, not {mesh!r}") from None


def bench_config(mesh="4x4", base: ChipConfig | None = None, buffer_depth=None,
                 flit_width=None, router=None, vcs=None) -> ChipConfig:
    """The config of a bench build: ``base`` (default: the default config) with the mesh and
    NoC parameters replaced, named after them (one simulator build per name)."""
    base = base or ChipConfig()
    rows, cols = parse_mesh(mesh)
    noc = {"buffer_depth": buffer_depth or base.noc.buffer_depth,
           "flit_width": flit_width or base.noc.flit_width,
           "router": router or base.noc.router, "vcs": vcs or base.noc.vcs}
    name = (f"nocbench{rows}x{cols}d{noc['buffer_depth']}f{noc['flit_width']}"
            f"{noc['router']}m{base.noc.mc_depth}"
            + (f"v{noc['vcs']}" if noc["router"] == "vc" else ""))
    return base.replace(name=name, mesh={"rows": rows, "cols": cols}, noc=noc)


def channel_bound(rows: int, cols: int) -> float:
    """Ideal uniform-random throughput (flits/node/cycle) of a mesh, limited by the bisection
    channels: ``4/k`` for a ``k x k`` mesh with even k (Dally & Towles), capped at 1 (the
    injection port). For ``rows != cols`` the larger side is used."""
    k = max(rows, cols)
    return min(1.0, 4.0 / k)


def run_bench(cfg: ChipConfig, runs: list[dict], sim="verilator", name=None) -> dict:
    """Build (cached) and run ``runs`` in one simulation; returns the bench's JSON."""
    from hasp.verif import runner
    b = runner.build(TOP, cfg, sim)
    return runner.run(b, "hasp.verif.tb.noc_traffic", "sweep", args={"runs": runs},
                      name=name or f"noc-{cfg.name}")


def _link_deltas(results):
    """Per-run link-counter totals: the mesh counters are not cleared between runs and wrap at
    2**32, so each counter's difference is taken modulo 2**32 before summing."""
    prev = None
    for r in results:
        cur = r["flit_count"]
        if prev is None:
            prev = [[0] * len(row) for row in cur]
        d = [[(c - q) & MASK32 for c, q in zip(rc, rq)] for rc, rq in zip(cur, prev)]
        r["link_flits_run"] = sum(sum(row) for row in d)
        r["eject_flits_run"] = sum(row[4] for row in d)
        prev = cur
    return results


def check_run(r: dict) -> list[str]:
    """Problems of one run (empty = every check passed)."""
    bad = []
    L = r["params"]["pkt_len"]
    if r["timeout"]:
        bad.append(f"watchdog: not drained within {r['params']['drain_max']} cycles")
    if r["errors_total"]:
        bad.append(f"{r['errors_total']} checker errors (per node {r['errors']})")
    if r["mesh_error"]:
        bad.append("the mesh dropped a flit (error)")
    if r["gen_pkts_total"] != r["tx_pkts_total"]:
        bad.append(f"generated {r['gen_pkts_total']}, injected {r['tx_pkts_total']} packets")
    if r["gen_total"] != r["rx_all_total"]:
        bad.append(f"{r['gen_total']} deliveries expected (multicast: one per core of the "
                   f"rectangle), {r['rx_all_total']} received")
    if r["gen_meas_total"] != r["rx_pkts_total"]:
        bad.append(f"measured: generated {r['gen_meas_total']}, received {r['rx_pkts_total']}")
    if "link_flits_run" in r:
        want = r["flit_hops_total"] + r["mc_flit_hops_total"]
        if r["link_flits_run"] != want:
            bad.append(f"link counters {r['link_flits_run']} flits != flit x routers "
                       f"{want} (unicast counted by the ejectors, multicast trees by the "
                       f"generators)")
        if r["eject_flits_run"] != r["rx_all_total"] * L:
            bad.append(f"local-port counters {r['eject_flits_run']} != {r['rx_all_total']} "
                       f"packets x {L} flits")
    return bad


def summarize(r: dict, cores: int) -> dict:
    """NoC figures of one run."""
    p = r["params"]
    L = p["pkt_len"]
    n = max(1, r["rx_pkts_total"])
    sh, sl = r["hop_sum_total"], r["head_lat_sum_total"]
    var = n * r["h2_sum_total"] - sh * sh
    return {
        # least-squares slope of head latency against hops: the latency per hop
        "head_latency_per_hop": (n * r["hl_sum_total"] - sh * sl) / var if var else None,
        "rate_pkt": p["rate"],
        "offered": p["rate"] * L,                                   # flits/node/cycle
        "accepted": r["win_flits_total"] / (cores * p["measure"]),  # flits/node/cycle
        "generated": r["gen_meas_total"] * L / (cores * p["measure"]),
        "dropped": r["drop_total"],
        "packets": r["rx_pkts_total"],
        "latency": r["lat_sum_total"] / n,          # generation -> tail ejection
        "net_latency": r["net_lat_sum_total"] / n,  # head injection -> tail ejection
        "head_latency": r["head_lat_sum_total"] / n,  # head injection -> head ejection
        "hops": r["hop_sum_total"] / n,
        "cycles": r["cycles"],
        "wall_s": round(r["wall_s"], 3),
    }


def bench_noc(cfg: ChipConfig | None = None, mesh="4x4", pattern="uniform", *, pkt_len=4,
              loads=None, warmup=1000, measure=4000, drain_max=200000, seed=1, bp=0.0,
              buffer_depth=None, png=None, sim="verilator", strict=True, router=None,
              mc_frac=0.0, vcs=None) -> dict:
    """Latency-throughput measurement of one mesh and pattern.

    ``loads``: offered loads in flits/node/cycle (default: 0.1 .. 1.3 x the uniform bound,
    plus a zero-load point at 1% of it). ``png``: where to write the latency-throughput plot.
    ``strict``: raise ``AssertionError`` if any run fails a check. Returns a JSON-able dict.
    """
    cfg = bench_config(mesh, cfg, buffer_depth=buffer_depth, router=router, vcs=vcs)
    if not 0.0 <= mc_frac <= 1.0:
        raise ValueError(f"mc_frac must be in [0, 1], not {mc_frac!r}")
    if mc_frac and cfg.noc.router != "lanes":
        raise ValueError(f"multicast traffic needs the lanes router (--router lanes), "
                         f"not {cfg.noc.router!r}")
    rows, cols = cfg.mesh.rows, cfg.mesh.cols
    cores = rows * cols
    bound = channel_bound(rows, cols)
    if loads is None:
        loads = [bound * f for f in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.15,
                                     1.3)]
    zero = min(0.01 * bound, 0.01)
    loads = [zero] + [float(x) for x in loads]
    runs = []
    for i, load in enumerate(loads):
        rate = min(1.0, load / pkt_len)
        runs.append(dict(seed=seed + i, rate=rate, pattern=pattern, pkt_len=pkt_len, bp=bp,
                         hot_x=cols // 2, hot_y=rows // 2, hot_frac=0.2 if pattern == "hotspot"
                         else 0.0, mc_frac=mc_frac, warmup=warmup if i else 200,
                         measure=measure if i else max(measure, 20000), drain_max=drain_max))
    out = run_bench(cfg, runs, sim, name=f"noc-{cfg.name}-{pattern}")
    results = _link_deltas(out["results"])
    points, problems = [], []
    for r in results:
        s = summarize(r, cores)
        s["checks"] = check_run(r) or "ok"
        if s["checks"] != "ok":
            problems.append((s["offered"], s["checks"]))
        points.append(s)
    z = points[0]
    sweep = points[1:]
    sat = max(s["accepted"] for s in sweep)
    lat_knee = next((s["offered"] for s in sweep if s["latency"] > 3 * z["latency"]), None)
    report = {
        "benchmark": "noc", "mesh": f"{rows}x{cols}", "pattern": pattern,
        "simulator": sim, "config": cfg.name, "router": cfg.noc.router,
        "vcs": cfg.noc.vcs if cfg.noc.router == "vc" else None,
        "buffer_depth": cfg.noc.buffer_depth, "mc_frac": mc_frac,
        "flit_width": cfg.noc.flit_width, "pkt_len": pkt_len, "warmup": warmup,
        "measure": measure,
        "zero_load": {
            "head_latency": round(z["head_latency"], 3), "hops": round(z["hops"], 3),
            "latency_per_router": round(z["head_latency"] / (z["hops"] + 1), 3),
            "latency_per_hop": (round(z["head_latency_per_hop"], 3)
                                if z["head_latency_per_hop"] is not None else None),
            "packet_latency": round(z["latency"], 3), "packets": z["packets"]},
        "saturation_throughput": round(sat, 4),
        "channel_bound": round(bound, 4),
        "ratio_to_bound": round(sat / bound, 3),
        "offered_at_3x_zero_load_latency": lat_knee,
        "sweep": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.items()}
                  for s in sweep],
        "packets_checked": sum(r["rx_all_total"] for r in results),
        "checks": "ok" if not problems else problems,
        "wall_s": round(out.get("wall_s", 0.0), 2),
    }
    if png:
        plot(report, png)
        report["png"] = str(png)
    if strict and problems:
        raise AssertionError(f"NoC bench checks failed: {problems}")
    return report


def plot(report: dict, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sw = report["sweep"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([s["accepted"] for s in sw], [s["latency"] for s in sw], "o-",
            label="latency vs accepted")
    ax.plot([s["offered"] for s in sw], [s["latency"] for s in sw], "x--", alpha=0.6,
            label="latency vs offered")
    ax.axvline(report["channel_bound"], color="gray", ls=":",
               label=f"bound 4/k = {report['channel_bound']:.2f}")
    ax.axvline(report["saturation_throughput"], color="red", ls=":",
               label=f"saturation {report['saturation_throughput']:.3f}")
    ax.set_xlabel("flits / node / cycle")
    ax.set_ylabel("average packet latency (cycles)")
    ax.set_yscale("log")
    ax.set_title(f"{report['mesh']} mesh, {report['pattern']}, {report['pkt_len']}-flit "
                 f"packets, depth {report['buffer_depth']}")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


def add_arguments(p):
    """Options of ``hasp bench noc`` (add to the ``bench`` sub-parser)."""
    p.add_argument("--mesh", default="4x4", help="noc: mesh ROWSxCOLS (default 4x4)")
    p.add_argument("--pattern", default="uniform",
                   choices=["uniform", "transpose", "bitcomp", "hotspot", "neighbor"],
                   help="noc: destination pattern")
    p.add_argument("--pkt-len", type=int, default=4, help="noc: flits per packet")
    p.add_argument("--buffer-depth", type=int, default=None,
                   help="noc: input FIFO depth (default: the config's)")
    p.add_argument("--measure", type=int, default=4000, help="noc: measurement window cycles")
    p.add_argument("--router", default=None, choices=["wormhole", "lanes", "vc"],
                   help="noc: router micro-architecture (default: the config's noc.router)")
    p.add_argument("--vcs", type=int, default=None,
                   help="noc: virtual channels per input of the vc router (default: the "
                        "config's noc.vcs)")
    p.add_argument("--mc-frac", type=float, default=0.0,
                   help="noc: fraction of multicast packets (needs --router lanes)")
    p.add_argument("--png", default=None, help="noc: latency-throughput plot "
                                               "(default build/noc-<mesh>-<pattern>.png)")


def cmd_bench_noc(cfg, args) -> dict:
    """Run ``hasp bench noc`` from parsed ``args``; returns the report dict."""
    png = args.png or f"build/noc-{args.mesh}-{args.pattern}.png"
    return bench_noc(cfg, args.mesh, args.pattern, pkt_len=args.pkt_len,
                     buffer_depth=args.buffer_depth, measure=args.measure, png=png,
                     router=args.router, mc_frac=args.mc_frac, vcs=args.vcs)


if __name__ == "__main__":     # python -m hasp.sw.noc_bench [MESH] [PATTERN]
    import sys
    a = sys.argv[1:]
    print(json.dumps(bench_noc(None, a[0] if a else "4x4", a[1] if len(a) > 1 else "uniform",
                               png=f"build/noc-{a[0] if a else '4x4'}.png"), indent=1))
