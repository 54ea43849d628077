#!/usr/bin/env python3
"""Where an ECP5 netlist's logic goes, per module of the flattened design.

    python scripts/lut_breakdown.py build/synth/fpga-chip-ecp5-85k/netlist.json
        [--depth N] [--module NAME] [--top N]

Reads the Yosys JSON netlist that ``hasp synth`` writes and charges each cell to the module
path of the signal it drives (Yosys' net names keep Amaranth's hierarchy, ``core0.engine.x``;
the cells themselves are anonymous after ABC): LUT4 and PFUMX/L6MUX21 to their output, a
CCU2C to its sum outputs, a TRELLIS_DPR16X4 to its data output, a TRELLIS_FF to its Q.
``--depth`` keeps that many levels of the path (``core0.engine`` at 2); digits at the end of
a level are folded (``core0`` .. ``core8`` -> ``core*``) so one row sums a module over its
instances. The *sites* column is LUT4 + 2 x CCU2C + 6 x DPR16X4, the LUT4 sites each cell
takes on the device (a distributed RAM uses two slices as RAM and half a slice for its write
port), so it adds up to nextpnr's TRELLIS_COMB count of the module (``hasp synth``'s
``lut4_equiv`` leaves the distributed RAMs out).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict

#: Output ports per cell type; a bus is a port per bit in the netlist (``DO0``..``DO3``,
#: ``P0``..``P35``), matched by the name followed by digits.
OUT_PORT = {"LUT4": ("Z",), "PFUMX": ("Z",), "L6MUX21": ("Z",), "CCU2C": ("S0", "S1"),
            "TRELLIS_DPR16X4": ("DO",), "TRELLIS_FF": ("Q",), "MULT18X18D": ("P",),
            "DP16KD": ("DOA", "DOB")}
SITES = {"LUT4": 1, "CCU2C": 2, "TRELLIS_DPR16X4": 6}
COLUMNS = ("sites", "LUT4", "CCU2C", "TRELLIS_DPR16X4", "TRELLIS_FF", "MULT18X18D", "DP16KD")


def _fold(level: str) -> str:
    return re.sub(r"\d+$", "*", level)


def breakdown(netlist: dict, module: str | None = None, depth: int = 2) -> dict:
    """``{module path: {column: count}}`` for the cells of ``module`` (default: the largest
    module that is not the measurement harness)."""
    mods = netlist["modules"]
    if module is None:
        module = max((m for m in mods if "harness" not in m),
                     key=lambda m: len(mods[m].get("cells", {})))
    if module not in mods:
        raise KeyError(f"no module {module!r} in the netlist (modules: {', '.join(mods)})")
    mod = mods[module]
    # bit -> the best name: a visible net name, the shortest hierarchy wins ties.
    name_of = {}
    for net, info in mod.get("netnames", {}).items():
        if info.get("hide_name"):
            continue
        for b in info["bits"]:
            if isinstance(b, int) and (b not in name_of or len(net) < len(name_of[b])):
                name_of[b] = net
    out = defaultdict(lambda: dict.fromkeys(COLUMNS, 0))
    for cname, cell in mod.get("cells", {}).items():
        ctype = cell["type"]
        ports = OUT_PORT.get(ctype)
        if ports is None:
            continue
        conns = cell["connections"]
        bits = [b for p in ports for port in sorted(conns)
                if port == p or (port.startswith(p) and port[len(p):].isdigit())
                for b in conns[port]]
        net = next((name_of[b] for b in bits if b in name_of), None)
        if net is None and not cname.startswith("$"):
            net = cname
        if net is None:
            key = "?"
        else:
            path = net.lstrip("\\").split(".")[:-1] or ["(top)"]
            key = ".".join(_fold(x) for x in path[:depth])
        row = out[key]
        if ctype in row:
            row[ctype] += 1
        if ctype in ("PFUMX", "L6MUX21"):
            continue
        row["sites"] += SITES.get(ctype, 0)
    return dict(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("netlist")
    ap.add_argument("--module")
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args(argv)
    try:
        with open(args.netlist) as f:
            netlist = json.load(f)
        rows = breakdown(netlist, args.module, args.depth)
    except (OSError, ValueError, KeyError) as e:
        print(f"lut_breakdown: error: {e}", file=sys.stderr)
        return 2
    total = dict.fromkeys(COLUMNS, 0)
    for r in rows.values():
        for c in COLUMNS:
            total[c] += r[c]
    print(f"{'module':40s} " + " ".join(f"{c.replace('TRELLIS_', ''):>9s}" for c in COLUMNS))
    for key, r in sorted(rows.items(), key=lambda kv: -kv[1]["sites"])[:args.top]:
        print(f"{key:40s} " + " ".join(f"{r[c]:9d}" for c in COLUMNS))
    print(f"{'total':40s} " + " ".join(f"{total[c]:9d}" for c in COLUMNS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
