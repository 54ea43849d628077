"""Outside check of the front end: onnxruntime vs the float IR and the int8 golden model.

For each example network of :mod:`hasp.sw.frontend.examples` (MLP, small CNN, LSTM) this
imports the ONNX model, quantises it on ``--calib`` random N(0,1) batches and reports, against
onnxruntime running the float model:

* the float IR (importer exactness),
* the dequantised int8 golden output on the calibration batches and on fresh random batches:
  max (and mean) abs error relative to the output range, and top-1 agreement of the
  classifiers.

Usage::

    python examples/frontend_agreement.py [--calib 8] [--eval 8] [--save DIR]

``--save DIR`` also writes ``<name>.onnx`` and the quantised ``<name>.q.npz``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hasp.sw import frontend as fe
from hasp.sw.frontend import examples
from hasp.sw.frontend.check import agreement


def batches(shape, n, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calib", type=int, default=8, help="calibration batches (16 samples each)")
    ap.add_argument("--eval", type=int, default=8, help="fresh random evaluation batches")
    ap.add_argument("--save", type=Path, help="directory for the .onnx and .q.npz files")
    args = ap.parse_args(argv)
    print("| model | IR nodes | MACs | float IR max abs err | inputs | samples "
          "| int8 max abs err / range | int8 mean abs err / range | top-1 agreement |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, make in examples.EXAMPLES.items():
        model, x, shape = make()
        g = fe.load_onnx(model)
        calib = [{x: v} for v in batches(shape, args.calib, 1)]
        fresh = [{x: v} for v in batches(shape, args.eval, 2)]
        q = fe.quantize(g, calib)
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            (args.save / f"{name}.onnx").write_bytes(model.SerializeToString())
            fe.save(q, args.save / f"{name}.q.npz")
        f, = agreement(model, g, fresh)
        macs = fe.totals(fe.layer_table(g))["macs"]
        for label, feeds in (("calibration", calib), ("random", fresh)):
            a, = agreement(model, q, feeds)
            top1 = "-" if a.top1 is None else f"{a.top1:.3f}"
            print(f"| {name} | {len(g.nodes)} | {macs:,} | {f.max_abs_error:.1e} | {label} "
                  f"| {a.samples * examples.BATCH} | {a.max_abs_error:.4f} / "
                  f"{a.output_range:.3f} = {a.rel_error:.2%} | {a.mean_rel_error:.3%} | {top1} |")


if __name__ == "__main__":
    main()
