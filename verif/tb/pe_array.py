"""cocotb bench of the PE array alone: random tiles through the stream ports, with random idle
cycles on the input and back-pressure on the output, against the numpy golden."""
import numpy as np
import cocotb

from hasp.hw.pe_array import pe_input_layout, pe_output_layout
from hasp.sw import golden
from hasp.verif.tb.common import TB, StreamDriver, StreamMonitor, Scoreboard


def random_tile(rng, R, C, K, dw, extreme=False):
    lo, hi = -(1 << (dw - 1)), (1 << (dw - 1))
    if extreme:
        return np.full((R, K), lo), np.full((K, C), lo)
    return rng.integers(lo, hi, (R, K)), rng.integers(lo, hi, (K, C))


@cocotb.test()
async def random_tiles(dut):
    tb = TB(dut)
    pe = tb.cfg.pe
    R, C, dw, aw = pe.rows, pe.cols, pe.data_width, pe.acc_width
    in_l, out_l = pe_input_layout(R, C, dw), pe_output_layout(R, C, aw)
    ks = tb.args.get("ks", [1, 2, 5, 16, 64, 256])
    tiles = [random_tile(None, R, C, 256, dw, extreme=True)]
    for seed in tb.args.get("seeds", [tb.seed]):
        rng = np.random.default_rng(seed)
        tiles += [random_tile(rng, R, C, k, dw) for k in ks]
    beats = []
    for A, B in tiles:
        K = A.shape[1]
        for k in range(K):
            beats.append(in_l.const({"a": A[:, k].tolist(), "b": B[k, :].tolist(),
                                     "first": int(k == 0), "last": int(k == K - 1)}).as_bits())
    await tb.start()
    drv = StreamDriver(dut, "inp", tb.rng, idle=tb.args.get("idle", 0.2))
    mon = StreamMonitor(dut, "out", tb.rng, backpressure=tb.args.get("backpressure", 0.3))
    mon.start()
    await drv.send(beats)
    await mon.wait_for(len(tiles) * R, timeout_cycles=100 * R * len(tiles) + 100)
    sb = Scoreboard("pe_array")
    for t, (A, B) in enumerate(tiles):
        exp = golden.gemm(A, B, data_width=dw, acc_width=aw)
        for r in range(R):
            row = out_l.from_bits(mon.items[t * R + r])
            assert int(row.index) == r and int(row.last) == (r == R - 1), "row order"
            sb.compare([int(x) for x in row.row], exp[r], f"tile {t} (K={A.shape[1]}) row {r}")
    sb.check()
    macs = int(dut.macs.value)
    assert macs == sum(A.shape[1] for A, _ in tiles) * R * C, f"MAC counter {macs}"
    tb.report(tiles=len(tiles), macs=macs, checked=sb.checked)
