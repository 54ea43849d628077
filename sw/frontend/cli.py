"""Command line: ``inspect`` and ``quantize`` subcommands for the ``hasp`` CLI.

:func:`register` adds them to an ``argparse`` subparsers object; each handler returns an exit
code and raises :class:`~hasp.sw.frontend.FrontendError` (a ``ValueError``) on bad input.
``python -m hasp.sw.frontend.cli`` runs them stand-alone.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import numpy as np

from .ir import FrontendError, Layer, layer_table, totals

__all__ = ["register", "format_table", "main"]


def _shapes(shapes) -> str:
    return " ".join("x".join(map(str, s)) for s in shapes)


def format_table(rows: list[Layer]) -> str:
    """The layer table as aligned text, with a totals line."""
    head = ("#", "layer", "op", "input", "output", "MACs", "weight B")
    body = [(str(i), r.name, r.op, _shapes(r.in_shapes), _shapes(r.out_shapes),
             f"{r.macs:,}", f"{r.weight_bytes:,}") for i, r in enumerate(rows)]
    t = totals(rows)
    foot = ("", "total", f"{t['layers']} layers", "", "", f"{t['macs']:,}",
            f"{t['weight_bytes']:,}")
    cols = list(zip(head, *body, foot))
    width = [max(len(c) for c in col) for col in cols]
    right = {0, 5, 6}

    def line(cells):
        return "  ".join(c.rjust(w) if k in right else c.ljust(w)
                         for k, (c, w) in enumerate(zip(cells, width))).rstrip()
    rule = "  ".join("-" * w for w in width)
    return "\n".join([line(head), rule] + [line(b) for b in body] + [rule, line(foot)])


def _inspect(args) -> int:
    from .onnx_import import load_onnx
    g = load_onnx(args.model)
    rows = layer_table(g)
    if args.json:
        print(json.dumps({"model": g.name, "inputs": {i: g.shape(i) for i in g.inputs},
                          "layers": [dataclasses.asdict(r) for r in rows],
                          "totals": totals(rows)}, indent=1))
    else:
        ins = ", ".join(f"{i} {_shapes([g.shape(i)])}" for i in g.inputs)
        print(f"model {g.name}: inputs {ins}")
        print(format_table(rows))
    return 0


def _quantize(args) -> int:
    from .onnx_import import load_onnx
    from .quantize import quantize
    from .serialize import save
    if args.calib < 1:
        raise FrontendError(f"--calib must be at least 1, not {args.calib}")
    g = load_onnx(args.model)
    rng = np.random.default_rng(args.seed)
    samples = ({i: rng.standard_normal(g.shape(i)).astype(np.float32) for i in g.inputs}
               for _ in range(args.calib))
    q = quantize(g, samples)
    save(q, args.out)
    t = totals(layer_table(q))
    print(f"wrote {args.out}: {t['layers']} layers, {t['macs']:,} MACs, "
          f"{t['weight_bytes']:,} weight bytes; calibrated on {args.calib} N(0,1) inputs "
          f"(seed {args.seed})")
    return 0


def register(subparsers) -> None:
    """Add the ``inspect`` and ``quantize`` subcommands to an argparse ``subparsers``."""
    p = subparsers.add_parser("inspect", help="print the layer table of an ONNX model",
                              description="Import an ONNX model and print per-layer operator, "
                              "shapes, MACs and int8 weight bytes, with totals.")
    p.add_argument("model", help="ONNX model file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_inspect)
    p = subparsers.add_parser("quantize", help="quantise an ONNX model to the int8 IR",
                              description="Import an ONNX model, calibrate it on N random "
                              "standard-normal inputs and write the quantised IR (.npz, or "
                              ".json for a single JSON file).")
    p.add_argument("model", help="ONNX model file")
    p.add_argument("--calib", type=int, default=8, metavar="N",
                   help="number of random calibration inputs (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration inputs")
    p.add_argument("--out", required=True, metavar="FILE", help="output file (.npz or .json)")
    p.set_defaults(func=_quantize)


def main(argv=None) -> int:
    """Stand-alone entry point mirroring ``hasp``: errors print ``hasp: error: ...``, exit 2."""
    parser = argparse.ArgumentParser(prog="hasp")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except FrontendError as e:
        print(f"hasp: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
