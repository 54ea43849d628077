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


def _run_pe_bench(cfg, ks, sim="verilator"):
    from .verif import runner
    b = runner.build("gemm_bench", cfg, sim)
    out = runner.run(b, "hasp.verif.tb.gemm_bench", "benchmark", args={"ks": ks, "seed": 1},
                     name=f"bench-{cfg.name}")
    return b, out["results"]


def cmd_bench(args):
    cfg = _config(args)
    if args.what == "pe-array":
        _, res = _run_pe_bench(cfg, args.k)
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
    raise CLIError(f"unknown benchmark {args.what!r}")


def cmd_demo(args):
    from .hw.gen import generate
    cfg = _config(args)
    v, p, name = generate("gemm_bench", cfg, args.out)
    print(f"generated {v} and {p}")
    b, res = _run_pe_bench(cfg, [args.k], args.sim)
    r = res[str(args.k)]
    R, C = cfg.pe.rows, cfg.pe.cols
    M, N = r["m_tiles"] * R, r["n_tiles"] * C
    print(f"GEMM {M}x{args.k}x{N} int8 on the {R}x{C} PE array ({cfg.name}) in {args.sim}")
    print(f"  check against numpy:   {'bit-exact' if r['exact'] else 'MISMATCH'}")
    print(f"  cycles:                {r['cycles']}")
    print(f"  MACs (hw counter):     {r['macs']}")
    print(f"  MAC utilisation:       {r['utilisation']:.4f}  (MACs / (R*C*cycles))")
    print(f"  simulated cycles/s:    {r['sim_cycles_per_s']:.0f}")
    return 0 if r["exact"] else 1


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
    p.add_argument("what", choices=["pe-array"], help="what to measure")
    _add_config_args(p)
    p.add_argument("--k", type=int, nargs="+", default=[16, 64, 256], help="K values")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("demo", help="end-to-end demo: generate, simulate, check against numpy")
    _add_config_args(p)
    p.add_argument("--sim", default="verilator", choices=["verilator", "icarus"])
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--out", default="out", metavar="DIR")
    p.set_defaults(func=cmd_demo)

    try:
        from .sw.frontend.cli import register as register_frontend
    except ImportError:
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
