"""Import the ONNX "light" model zoo (architecture-only models shipped in the ``onnx`` package)
and print a markdown summary: per model the unsupported operators, or the layer count, total
MACs and weights; ``--layers`` adds each imported model's per-layer table.

Usage::

    python examples/frontend_light_models.py [--layers]
"""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import onnx

from hasp.sw import frontend as fe
from hasp.sw.frontend.cli import format_table

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", action="store_true", help="append per-layer tables")
    args = ap.parse_args(argv)
    print(f"ONNX {onnx.__version__}, models from `{LIGHT.relative_to(LIGHT.parents[4])}`\n")
    print("| model | ONNX nodes | status | IR layers | Conv2d / Gemm | MACs | weights "
          "| weight bytes (int8 + int32 bias) |")
    print("|---|---|---|---|---|---|---|---|")
    tables = []
    for p in sorted(LIGHT.glob("light_*.onnx")):
        name = p.stem[len("light_"):]
        n_onnx = len(onnx.load(p).graph.node)
        bad = fe.unsupported_operators(p)
        if bad:
            ops = ", ".join(f"{k} (x{len(v)})" for k, v in bad.items())
            print(f"| {name} | {n_onnx} | unsupported: {ops} | | | | | |")
            continue
        g = fe.load_onnx(p)
        rows = fe.layer_table(g)
        t = fe.totals(rows)
        ops = Counter(r.op for r in rows)
        print(f"| {name} | {n_onnx} | imported | {t['layers']} | {ops['Conv2d']} / {ops['Gemm']} "
              f"| {t['macs']:,} | {t['weights']:,} | {t['weight_bytes']:,} |")
        tables.append((name, format_table(rows)))
    for name, table in tables if args.layers else ():
        print(f"\n<details><summary>{name}: per-layer table</summary>\n\n```\n{table}\n```\n"
              "</details>")


if __name__ == "__main__":
    main()
