"""Outside check: compare the IR executors with onnxruntime running the original model."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .execute import run_dequantized, run_float
from .ir import Graph
from .onnx_import import load_model

__all__ = ["Agreement", "onnxruntime_outputs", "agreement"]


@dataclass
class Agreement:
    """Agreement of one output over ``samples`` input sets.

    ``rel_error`` is ``max_abs_error / output_range`` where the range is ``max - min`` of the
    onnxruntime output (1 if constant), ``mean_rel_error`` the mean absolute error over that
    range; ``top1`` is the fraction of rows whose argmax agrees (2-D outputs with
    more than one column, i.e. classifiers; otherwise None).
    """
    output: str
    samples: int
    max_abs_error: float
    output_range: float
    rel_error: float
    mean_rel_error: float
    top1: float | None


def onnxruntime_outputs(model, feeds: dict) -> dict[str, np.ndarray]:
    """Run the float ONNX ``model`` on ``feeds`` with onnxruntime (CPU)."""
    import onnxruntime as ort
    proto = load_model(model)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(names, {k: np.asarray(v, np.float32) for k, v in feeds.items()})
    return dict(zip(names, outs))


def agreement(model, graph: Graph, samples) -> list[Agreement]:
    """Compare ``graph`` (float: :func:`run_float`; quantised: dequantised
    :func:`run_dequantized`) with onnxruntime on each input dict of ``samples``."""
    run = run_dequantized if graph.quantized else run_float
    ref: dict[str, list] = {}
    got: dict[str, list] = {}
    for feeds in samples:
        for k, v in onnxruntime_outputs(model, feeds).items():
            ref.setdefault(k, []).append(np.asarray(v, np.float64))
        for k, v in run(graph, feeds).items():
            got.setdefault(k, []).append(v)
    out = []
    for k in graph.outputs:
        r, g = np.stack(ref[k]), np.stack(got[k])
        diff = np.abs(r - g)
        err = float(diff.max())
        rng = float(r.max() - r.min()) or 1.0
        top1 = None
        if r.ndim == 3 and r.shape[-1] > 1:
            top1 = float((r.argmax(-1) == g.argmax(-1)).mean())
        out.append(Agreement(k, len(ref[k]), err, rng, err / rng, float(diff.mean()) / rng, top1))
    return out
