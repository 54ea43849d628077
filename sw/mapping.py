"""Hand mapping of a quantised MLP onto the cores: the reference program generator.

:func:`map_mlp` builds an :class:`~hasp.sw.image.Image` computing a stack of fully connected
int8 layers ``y = requant(x @ W + bias)`` ("helper-core mode" by default: every layer but the
last is split by output features over all cores, the last layer runs on core 0, which ends
holding the output). :func:`expected_mlp` is the numpy golden of the same network and
:func:`mlp_output` reads the result back from a :class:`~hasp.sw.model.RunResult`.

Data layout (identical address map on every core)
-------------------------------------------------
* Activations are **feature-major**: one scratchpad word = one feature, lane ``j`` = batch
  sample ``j`` of the batch tile (``C = cfg.pe.cols`` samples a tile). Activation ``l`` (``l =
  0`` is the input) lives at ``act[l] + nj*K_l + f`` for batch tile ``nj`` and feature ``f``:
  exactly the B operand of the next GEMM (tile ``nj`` = ``K_l`` words), and exactly what
  ``REQUANT`` writes (one accumulator row = one output feature, lanes = samples).
* Weights are the A operand: ``A = W^T`` (``N x K``), tile ``t`` = output features
  ``t*R .. t*R+R-1``, ``K`` words, word ``kk`` lane ``i`` = ``W[kk, t*R + i]``. A core holds
  only the tiles of its slice, followed by one bias word per output feature (int32 in the low
  bits).
* Output features are padded to a multiple of ``R`` (zero weights, zero bias); the next layer
  reads the padded activations with zero weight rows, so the padding never matters.

Program of a core for a layer it computes: ``WAIT`` for the input slices sent by other cores
(tag ``l``), ``SETQ``, then per chunk of at most 15 output tiles and per batch tile ``GEMM`` into
accumulator rows ``0..`` and ``REQUANT`` (+bias) into its slice of the next activation buffer,
then ``SEND`` the slice to every other core that consumes it (tag ``l + 1``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hasp.config import ChipConfig

from . import golden, isa
from .image import Image

__all__ = ["MappingError", "MlpLayer", "map_mlp", "expected_mlp", "mlp_output", "layer"]

GEMM_MAX_K = (1 << 12) - 1
GEMM_MAX_TILES = (1 << 4) - 1
SEND_MAX = 256


class MappingError(ValueError):
    """The network does not fit the chip (the message says which limit)."""


@dataclass
class MlpLayer:
    """One quantised fully connected layer: ``requant(x @ W + bias, mult, shift, zp)``,
    clamped to ``[zp, 127]`` with ``relu`` and ``[-128, 127]`` otherwise."""
    W: np.ndarray          # K x N int8
    bias: np.ndarray       # N int32
    mult: int
    shift: int
    zp: int = 0
    relu: bool = False


def layer(obj) -> MlpLayer:
    """Accept an :class:`MlpLayer` or a tuple ``(W, bias, (mult, shift, zp, relu))``."""
    if isinstance(obj, MlpLayer):
        return obj
    W, bias, (mult, shift, zp, relu) = obj
    return MlpLayer(np.asarray(W), None if bias is None else np.asarray(bias), int(mult),
                    int(shift), int(zp), bool(relu))


def _bounds(lay: MlpLayer, dw: int = 8):
    lo, hi = -(1 << (dw - 1)), (1 << (dw - 1)) - 1
    return (max(lo, lay.zp) if lay.relu else lo), hi


def expected_mlp(layers, x, data_width: int = 8, acc_width: int = 32) -> np.ndarray:
    """Numpy golden of the network (batch x N of the last layer)."""
    h = np.asarray(x, np.int64)
    for lay in map(layer, layers):
        acc = golden.gemm(h, lay.W, None, data_width, acc_width)
        if lay.bias is not None:
            acc = golden.wrap(acc + np.asarray(lay.bias, np.int64)[None, :], acc_width)
        lo, hi = _bounds(lay, data_width)
        h = golden.requantize(acc, lay.mult, lay.shift, lay.zp, lo, hi)
    return h


def _split(tiles: int, cores: list) -> dict:
    """Contiguous tile ranges per core (the first ``tiles % P`` cores get one more)."""
    P = len(cores)
    base, extra = divmod(tiles, P)
    out, t = {}, 0
    for n, c in enumerate(cores):
        cnt = base + (n < extra)
        out[c] = (t, t + cnt)
        t += cnt
    return out


def map_mlp(cfg: ChipConfig, layers, x, placement=None) -> Image:
    """Image computing the MLP ``layers`` on input ``x`` (batch x K int8).

    ``placement[l]`` lists the cores computing layer ``l`` (each gets a contiguous slice of the
    output-feature tiles); the default is every core for all layers but the last and core 0
    for the last. The output is gathered on core 0 (``image.regions["output"]``, read it with
    :func:`mlp_output`)."""
    layers = [layer(l) for l in layers]
    if not layers:
        raise MappingError("no layers")
    x = np.asarray(x)
    if x.ndim != 2:
        raise MappingError(f"x must be batch x features, not shape {x.shape}")
    R, C, dw, aw, ww = cfg.pe.rows, cfg.pe.cols, cfg.pe.data_width, cfg.pe.acc_width, cfg.word_width
    if dw > 8:
        raise MappingError(f"SETQ clamps to int8: data_width {dw} > 8 is not supported")
    golden.check_range(x, dw, "x")
    L = len(layers)
    if L >= isa.TAGS:
        raise MappingError(f"{L} layers: at most {isa.TAGS - 1} (one tag counter a layer)")
    if placement is None:
        placement = [list(range(cfg.cores))] * (L - 1) + [[0]]
    placement = [list(p) for p in placement]
    if len(placement) != L:
        raise MappingError(f"placement has {len(placement)} entries for {L} layers")
    for l, p in enumerate(placement):
        if not p or any(not 0 <= c < cfg.cores for c in p) or len(set(p)) != len(p):
            raise MappingError(f"placement of layer {l} must list distinct cores of 0..{cfg.cores - 1}, "
                               f"not {p}")

    batch = x.shape[0]
    nbt = math.ceil(batch / C)
    # feature counts: K[l] = (padded) input features of layer l, K[L] = padded output features
    K = [x.shape[1]]
    for l, lay in enumerate(layers):
        golden.check_range(lay.W, dw, f"layer {l} weights")
        true_in = x.shape[1] if l == 0 else layers[l - 1].W.shape[1]
        if lay.W.ndim != 2 or lay.W.shape[0] != true_in:
            raise MappingError(f"layer {l}: W has shape {lay.W.shape}, expected ({true_in}, N)")
        if lay.bias is not None:
            if lay.bias.shape != (lay.W.shape[1],):
                raise MappingError(f"layer {l}: bias has shape {lay.bias.shape}, expected "
                                   f"({lay.W.shape[1]},)")
            golden.check_range(lay.bias, min(aw, ww), f"layer {l} bias")
        if K[l] > GEMM_MAX_K:
            raise MappingError(f"layer {l}: K = {K[l]} > {GEMM_MAX_K} (GEMM.k field)")
        K.append(math.ceil(lay.W.shape[1] / R) * R)

    # uniform activation buffers
    act, addr = [], 0
    for l in range(L + 1):
        act.append(addr)
        addr += nbt * K[l]
    shared_end = addr
    limit = min(cfg.spm.words, 1 << isa.ADDR_BITS)

    def need(top, what):
        if top > limit:
            raise MappingError(f"{what}: {top} scratchpad words needed, the scratchpad "
                               f"holds {limit}")

    need(shared_end, "the activation buffers")

    consumers = [placement[l + 1] for l in range(L - 1)] + [[0]]
    slices = [_split(K[l + 1] // R, placement[l]) for l in range(L)]
    # packets of layer l's output that core d receives
    def packets(l, d):
        n = 0
        for c, (t0, t1) in slices[l].items():
            if c != d and t1 > t0:
                n += nbt * math.ceil((t1 - t0) * R / SEND_MAX)
        return n

    img = Image(cfg)
    progs = {c: [] for c in range(cfg.cores)}
    private = {c: shared_end for c in range(cfg.cores)}
    for c in placement[0]:
        xt = np.zeros((nbt * C, K[0]), np.int64)
        xt[:batch] = x
        for nj in range(nbt):
            img.write_lanes(c, act[0] + nj * K[0], xt[nj * C:(nj + 1) * C].T)

    for l, lay in enumerate(layers):
        Kl, Nl = K[l], K[l + 1]
        Wp = np.zeros((Kl, Nl), np.int64)
        Wp[:lay.W.shape[0], :lay.W.shape[1]] = lay.W
        bp = np.zeros(Nl, np.int64)
        if lay.bias is not None:
            bp[:lay.bias.shape[0]] = lay.bias
        lo, hi = _bounds(lay, dw)
        for c in placement[l]:
            t0, t1 = slices[l][c]
            prog = progs[c]
            if l > 0 and packets(l - 1, c):
                prog.append(isa.encode("WAIT", tag=l, count=packets(l - 1, c)))
            if t1 == t0:
                continue
            wbase = private[c]
            for t in range(t0, t1):
                img.write_lanes(c, wbase + (t - t0) * Kl, Wp[:, t * R:(t + 1) * R])
            bbase = wbase + (t1 - t0) * Kl
            img.write(c, bbase, [int(v) & ((1 << ww) - 1) for v in bp[t0 * R:t1 * R]])
            private[c] = bbase + (t1 - t0) * R
            need(private[c], f"core {c} (layer {l} weights and bias)")
            prog.append(isa.encode("SETQ", mult=lay.mult, shift=lay.shift, zp=lay.zp, lo=lo, hi=hi))
            for s0 in range(t0, t1, GEMM_MAX_TILES):
                s1 = min(t1, s0 + GEMM_MAX_TILES)
                for nj in range(nbt):
                    prog.append(isa.encode("GEMM", a=wbase + (s0 - t0) * Kl, b=act[l] + nj * Kl,
                                           k=Kl, mt=s1 - s0, nt=1, acc=0, dst=0))
                    prog.append(isa.encode("REQUANT", src=0, dst=act[l + 1] + nj * Nl + s0 * R,
                                           rows=(s1 - s0) * R, bias=bbase + (s0 - t0) * R,
                                           use_bias=int(lay.bias is not None)))
            for d in consumers[l]:
                if d == c:
                    continue
                x_, y_ = d % cfg.mesh.cols, d // cfg.mesh.cols
                for nj in range(nbt):
                    start, end = act[l + 1] + nj * Nl + t0 * R, act[l + 1] + nj * Nl + t1 * R
                    for a in range(start, end, SEND_MAX):
                        prog.append(isa.encode("SEND", src=a, len=min(SEND_MAX, end - a), x=x_,
                                               y=y_, dst=a, tag=l + 1))
    if packets(L - 1, 0):
        progs[0].append(isa.encode("WAIT", tag=L, count=packets(L - 1, 0)))
    for c, prog in progs.items():
        if prog or c == 0:
            img.programs[c] = prog + [isa.encode("HALT")]
    img.regions = {
        "input": {"cores": sorted(placement[0]), "addr": act[0], "features": int(x.shape[1]),
                  "batch": int(batch), "batch_tile": C, "layout": "feature-major"},
        "output": {"core": 0, "addr": act[L], "features": int(layers[-1].W.shape[1]),
                   "padded_features": K[L], "batch": int(batch), "batch_tile": C,
                   "layout": "feature-major"},
    }
    return img.validate()


def mlp_output(image: Image, result) -> np.ndarray:
    """The network output (batch x N) read from core 0 of a finished run."""
    reg = image.regions["output"]
    C, Np, batch = reg["batch_tile"], reg["padded_features"], reg["batch"]
    nbt = math.ceil(batch / C)
    tiles = [result.read_lanes(reg["core"], reg["addr"] + nj * Np, Np, C) for nj in range(nbt)]
    out = np.concatenate([t.T for t in tiles], axis=0)       # (nbt*C) x Np
    return out[:batch, :reg["features"]]
