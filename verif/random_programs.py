"""Random multi-core programs for differential testing (functional model vs RTL).

Each program runs ``phases`` phases on every core: some local work (GEMM, SETQ, REQUANT,
DELAY), then SENDs to random cores, then a WAIT for the packets sent to it in that phase
(tag = phase) and a SYNC on the core's group. Every destination range is written by exactly
one instruction, so the final scratchpad contents do not depend on timing; by construction
the programs cannot deadlock. The regions to compare are in ``image.regions``.
"""
from __future__ import annotations

import numpy as np

from hasp.sw import isa
from hasp.sw.image import Image

DATA = (0, 64)          # operands (random init), bank 0
DATA2 = (256, 64)       # more operands, bank 1 (full-rate GEMMs)
OUT = (512, 64)         # REQUANT results
INBOX = 768             # packets: INBOX + (phase * cores + sender) * SEND_MAX
SEND_MAX = 8


def random_image(cfg, seed: int, phases: int = 2) -> Image:
    rng = np.random.default_rng(seed)
    n = cfg.cores
    R, C = cfg.pe.rows, cfg.pe.cols
    if cfg.spm.words < INBOX + phases * n * SEND_MAX:
        raise ValueError("scratchpad too small for the random-program layout")
    # Random partition into 1..2 groups (group 0 may be all cores: the BSP case).
    ngroups = int(rng.integers(1, min(2, cfg.sync.groups) + 1))
    group_of = rng.integers(0, ngroups, n)
    if ngroups == 2 and len(set(group_of.tolist())) < 2:
        group_of[0] = 1 - group_of[0]
    groups = [sum(1 << i for i in range(n) if group_of[i] == g) for g in range(ngroups)]

    img = Image(cfg, groups=groups)
    mask = (1 << cfg.word_width) - 1
    # Everything read or compared is initialised (memories keep their contents across runs).
    inbox = (INBOX, phases * n * SEND_MAX)
    for c in range(n):
        for base, size in (DATA, DATA2, OUT, inbox):
            img.write(c, base, [int(w) for w in rng.integers(0, mask, size, dtype=np.uint64)])
    # Packets per (phase, receiver), decided up front so receivers know what to WAIT for.
    sends = [[[] for _ in range(n)] for _ in range(phases)]     # [phase][sender] -> (dst, len)
    for p in range(phases):
        for s in range(n):
            for _ in range(int(rng.integers(0, 3))):
                sends[p][s].append((int(rng.integers(0, n)), int(rng.integers(1, SEND_MAX + 1))))
    for c in range(n):
        prog, acc_rows = [], set()
        for p in range(phases):
            for _ in range(int(rng.integers(1, 4))):
                kind = rng.choice(["gemm", "requant", "delay", "setq"])
                if kind == "gemm":
                    k = int(rng.integers(1, 17))
                    base = DATA if rng.random() < 0.5 else DATA2
                    a = int(rng.integers(0, DATA[1] - k))
                    b = base[0] + int(rng.integers(0, base[1] - k))
                    dst = int(rng.integers(0, 8)) * R
                    acc = int(dst in acc_rows and rng.random() < 0.5)
                    prog.append(isa.encode("GEMM", a=a, b=b, k=k, mt=1, nt=1, acc=acc, dst=dst))
                    acc_rows.add(dst)
                elif kind == "requant" and acc_rows:
                    src = int(rng.choice(sorted(acc_rows)))
                    dst = OUT[0] + int(rng.integers(0, OUT[1] - R))
                    prog.append(isa.encode("REQUANT", src=src, dst=dst, rows=R,
                                           bias=int(rng.integers(0, DATA[1] - R)),
                                           use_bias=int(rng.integers(0, 2))))
                elif kind == "setq":
                    lo = int(rng.integers(-128, 0))
                    prog.append(isa.encode("SETQ", mult=int(rng.integers(1, 1 << 16)),
                                           shift=int(rng.integers(8, 30)),
                                           zp=int(rng.integers(-20, 20)), lo=lo, hi=127))
                else:
                    prog.append(isa.encode("DELAY", cycles=int(rng.integers(0, 40))))
            for dst, ln in sends[p][c]:
                x, y = dst % cfg.mesh.cols, dst // cfg.mesh.cols
                src = int(rng.choice([DATA[0], OUT[0]])) + int(rng.integers(0, 64 - ln))
                prog.append(isa.encode("SEND", src=src, len=ln, x=x, y=y, tag=p + 1,
                                       dst=INBOX + (p * n + c) * SEND_MAX))
            count = sum(1 for s in range(n) for d, _ in sends[p][s] if d == c)
            if count:
                prog.append(isa.encode("WAIT", tag=p + 1, count=count))
            prog.append(isa.encode("SYNC", group=int(group_of[c])))
        prog.append(isa.encode("HALT"))
        img.set_program(c, prog)
    img.regions = {f"core{c}_{name}": {"core": c, "addr": a, "words": w}
                   for c in range(n)
                   for name, a, w in (("out", OUT[0], OUT[1]),
                                      ("inbox", inbox[0], inbox[1]))}
    return img.validate()
