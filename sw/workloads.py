"""Standard workloads of the demo and the chip benchmark, defined once."""
from __future__ import annotations

import numpy as np

from . import isa, mapping
from .image import Image


def demo_mlp(cfg, seed: int = 0, sizes=(64, 64, 16), batch: int = 8):
    """A random int8 2-layer MLP (ReLU after layer 1), mapped with hidden features split over
    every core and gathered on core 0. Returns (layers, x, image)."""
    rng = np.random.default_rng(seed)
    layers = [mapping.MlpLayer(rng.integers(-128, 128, (sizes[i], sizes[i + 1])),
                               rng.integers(-2000, 2000, sizes[i + 1]), 20000, 20, 0,
                               relu=(i == 0))
              for i in range(len(sizes) - 1)]
    x = rng.integers(-128, 128, (batch, sizes[0]))
    return layers, x, mapping.map_mlp(cfg, layers, x)


def gemm_loop(cfg, iterations: int, k: int = 64, seed: int = 0) -> Image:
    """Every core repeats a 2x2-tile GEMM with ``k``-long tiles (A and B in different banks)
    ``iterations`` times: a long, compute-bound run for measuring simulation speed."""
    rng = np.random.default_rng(seed)
    R, C = cfg.pe.rows, cfg.pe.cols
    b_base = cfg.spm.depth if cfg.spm.banks > 1 else cfg.spm.depth // 2
    if 2 * k > min(b_base, cfg.spm.words - b_base):
        raise ValueError(f"k = {k} does not fit the scratchpad")
    img = Image(cfg)
    mask = (1 << cfg.word_width) - 1
    for c in range(cfg.cores):
        img.write(c, 0, [int(w) for w in rng.integers(0, mask, 2 * k, dtype=np.uint64)])
        img.write(c, b_base, [int(w) for w in rng.integers(0, mask, 2 * k, dtype=np.uint64)])
        img.set_program(c, [isa.encode("GEMM", a=0, b=b_base, k=k, mt=2, nt=2, dst=0),
                            isa.encode("LOOP", target=0, count=iterations),
                            isa.encode("HALT")])
    return img.validate()
