"""The ``hasp`` command line: generate, simulate, benchmark, compile.

Every user mistake (bad preset, bad config file, bad model, missing simulator) ends in one line
``hasp: error: ...`` and exit code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .config import ConfigError, load, preset, dumps

EXIT_USAGE = 2


class CLIError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def _config(args):
    cfg = preset(args.preset)
    if getattr(args, "config", None):
        cfg = load(args.config, base=cfg)
    return cfg


def _add_config_args(p):
    p.add_argument("--preset", default="tiny", help="named preset: tiny, fpga, large (default tiny)")
    p.add_argument("--config", metavar="FILE", help="TOML file overriding fields of the preset")


def cmd_config(args):
    print(dumps(_config(args)), end="")
    return 0


def cmd_gen(args):
    from .hw.gen import generate, TOPS
    cfg = _config(args)
    tops = list(TOPS) if args.top == "all" else [args.top]
    for top in tops:
        if top not in TOPS:
            raise CLIError(f"unknown top {top!r} (known: all, {', '.join(TOPS)})")
    for top in tops:
        v, p, name = generate(top, cfg, args.out)
        print(f"{name}: {v} ({p.name})")
    return 0


def _run_pe_bench(cfg, ks):
    from .verif import runner
    b = runner.build("gemm_bench", cfg, "verilator")
    out = runner.run(b, "hasp.verif.tb.gemm_bench", "benchmark", args={"ks": ks, "seed": 1},
                     name=f"bench-{cfg.name}")
    return out["results"]


def _noc_table(report) -> str:
    lines = [f"{k}: {v}" for k, v in report.items() if not isinstance(v, (list, dict))]
    for run in report.get("runs", []):
        lines.append("  " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                                      for k, v in run.items() if not isinstance(v, (list, dict))))
    return "\n".join(lines)


def cmd_bench(args):
    cfg = _config(args)
    if args.what == "pe-array":
        res = _run_pe_bench(cfg, args.k)
        report = {"benchmark": "pe-array", "preset": cfg.name, "simulator": "verilator",
                  "pe": f"{cfg.pe.rows}x{cfg.pe.cols}", "results": res}
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print(f"PE array {cfg.pe.rows}x{cfg.pe.cols} ({cfg.name}), Verilator")
            print(f"{'K':>5} {'tiles':>7} {'MACs':>9} {'cycles':>8} {'util':>7} {'cycles/s':>10}")
            for k, r in res.items():
                print(f"{k:>5} {r['m_tiles'] * r['n_tiles']:>7} {r['macs']:>9} {r['cycles']:>8} "
                      f"{r['utilisation']:>7.4f} {r['sim_cycles_per_s']:>10.0f}")
        return 0
    if args.what == "noc":
        from .sw.noc_bench import cmd_bench_noc
        report = cmd_bench_noc(cfg, args)
        print(json.dumps(report, indent=2) if args.json else _noc_table(report))
        return 0
    report = cmd_bench_chip(cfg, args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"chip {cfg.mesh.rows}x{cfg.mesh.cols} x {cfg.pe.rows}x{cfg.pe.cols} ({cfg.name}), "
              f"Verilator")
        for name in ("mlp_end_to_end", "gemm_loop"):
            f = report[name]
            print(f"  {name:15s} cycles {f['cycles']:>8}  MACs {f['macs']:>9}  MAC bound "
                  f"{f['mac_bound_cycles']:>8.0f}  util {f['utilisation']:.3f}  "
                  f"{f['sim_cycles_per_s']:>9.0f} cycles/s")
    return 0


def cmd_demo(args):
    """Generate the chip, run an int8 MLP across its cores in a simulator, check it."""
    import numpy as np
    from .hw.gen import generate
    from .sw import mapping, runtime, workloads
    cfg = _config(args)
    v, p, name = generate("chip", cfg, args.out)
    print(f"generated {v} ({p.name}: the AXI4-Lite port list)")
    layers, x, img = workloads.demo_mlp(cfg, seed=args.seed)
    sizes = [layers[0].W.shape[0]] + [l.W.shape[1] for l in layers]
    print(f"MLP {' -> '.join(map(str, sizes))}, batch {x.shape[0]}, int8, on the "
          f"{cfg.mesh.rows}x{cfg.mesh.cols} mesh of {cfg.pe.rows}x{cfg.pe.cols} PE arrays "
          f"({cfg.name}) in {args.sim}")
    r = runtime.run(img, "rtl", sim=args.sim)
    if not r.ok:
        print(r.report())
        return 1
    exact = bool(np.array_equal(mapping.mlp_output(img, r), mapping.expected_mlp(layers, x)))
    model = runtime.run(img, "functional")
    bound = r.macs / (cfg.cores * cfg.pe.macs)
    print(f"  check against numpy:      {'bit-exact' if exact else 'MISMATCH'}")
    print(f"  functional model agrees:  {model.ok and model.macs == r.macs}")
    print(f"  total cycles:             {r.cycles}")
    print(f"  MACs (hw counters):       {r.macs}")
    print(f"  MAC bound:                {bound:.0f} cycles  (MACs / (cores x R x C))")
    print(f"  utilisation:              {bound / r.cycles:.3f}  (MAC bound / cycles)")
    for c, core in enumerate(r.cores):
        pf = core["perf"]
        print(f"    core {c}: busy {pf['busy']}, sync stall {pf['sync']}, "
              f"net stall {pf['net']}, MACs {pf['macs']}")
    return 0 if exact else 1


def cmd_bench_chip(cfg, args):
    from .sw import runtime, workloads
    layers, x, img = workloads.demo_mlp(cfg)
    loop = workloads.gemm_loop(cfg, args.iterations)
    r_mlp, r_loop = runtime.run_rtl([img, loop], sim="verilator", timeout_cycles=10_000_000)
    for r in (r_mlp, r_loop):
        if not r.ok:
            raise CLIError("benchmark run failed:\n" + r.report())
    def figures(r):
        bound = r.macs / (cfg.cores * cfg.pe.macs)
        return {"cycles": r.cycles, "macs": r.macs, "mac_bound_cycles": bound,
                "utilisation": bound / r.cycles, "wall_run_s": r.wall["wall_run_s"],
                "sim_cycles_per_s": r.cycles / r.wall["wall_run_s"]}
    return {"benchmark": "chip", "preset": cfg.name, "simulator": "verilator",
            "mlp_end_to_end": figures(r_mlp), "gemm_loop": figures(r_loop)}


def build_parser():
    ap = argparse.ArgumentParser(prog="hasp", description=__doc__.splitlines()[0])
    ap.add_argument("--version", action="version", version=f"hasp {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("config", help="print a preset (with overrides) as TOML")
    _add_config_args(p)
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("gen", help="generate Verilog and a JSON port list")
    _add_config_args(p)
    p.add_argument("--top", default="all", help="which top to generate (default: all)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.set_defaults(func=cmd_gen)

    p = sub.add_parser("bench", help="benchmarks on the generated RTL (Verilator)")
    p.add_argument("what", choices=["pe-array", "chip", "noc"], help="what to measure")
    _add_config_args(p)
    p.add_argument("--k", type=int, nargs="+", default=[16, 64, 256],
                   help="pe-array: K values")
    p.add_argument("--iterations", type=int, default=300,
                   help="chip: GEMM loop iterations of the speed run")
    from .sw.noc_bench import add_arguments as add_noc_arguments
    add_noc_arguments(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("demo", help="end-to-end demo: generate the chip, run an MLP on it, "
                                     "check against numpy")
    _add_config_args(p)
    p.add_argument("--sim", default="verilator", choices=["verilator", "icarus"])
    p.add_argument("--seed", type=int, default=0, help="random weights and inputs")
    p.add_argument("--out", default="out", metavar="DIR")
    p.set_defaults(func=cmd_demo)

    from .synth import register as register_synth
    register_synth(sub)
    try:
        from .sw.frontend.cli import register as register_frontend
    except ImportError:         # onnx is an optional dependency (the `frontend` extra)
        register_frontend = None
    if register_frontend is not None:
        register_frontend(sub)
    return ap


def main(argv=None) -> int:
    from .toolchain import ToolError
    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except (CLIError, ConfigError, ToolError, ValueError, OSError) as e:
        # ValueError covers the front end's and the blocks' parameter errors.
        print(f"hasp: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
