#!/usr/bin/env python3
"""Estimated register-to-register delays of an ECP5 netlist, before place and route.

    python scripts/logic_depth.py build/synth/tiny-core-ecp5-85k/netlist.json [--top N]
        [--module NAME] [--period NS] [--net-delay NS]

Reads the Yosys JSON netlist that ``hasp synth`` writes (``synth_ecp5``: LUT4, CCU2C, PFUMX,
L6MUX21, TRELLIS_DPR16X4, TRELLIS_FF, DP16KD, MULT18X18D) and, for every flip-flop, block
RAM, DSP and module-output endpoint, the longest path to it under a simple delay model: a
fixed logic delay per cell type plus one routed net per cell-to-cell hop (``--net-delay``,
default 1.2 ns, growing with the log of the net's fan-out; carry chains inside CCU2C cells
use the dedicated carry wire). nextpnr's real routing varies by a factor of two around that,
so this ranks paths, it does not predict Fmax; its use is to find *every* deep path of a
design in seconds instead of one critical path per 15-minute place and route.

Prints a histogram of endpoint estimates and the ``--top`` worst endpoints with the signal
names along each path (Yosys' net names; cells in between are anonymous LUTs).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict

# Logic delays (ns) of ECP5 speed grade 6, rounded from nextpnr's timing database.
CLK_TO_Q = 0.52
SETUP = 0.10
LUT = 0.24             # LUT4 input -> output
MUX = 0.20             # PFUMX / L6MUX21
CARRY_IN = 0.45        # CCU2C A/B -> COUT
CARRY_STEP = 0.07      # CCU2C CIN -> COUT
CARRY_SUM = 0.40       # CCU2C CIN -> S
LUTRAM = 0.45          # TRELLIS_DPR16X4 RAD -> DO
BRAM_CLK_TO_Q = 5.8    # DP16KD without its output register
DSP_COMB = 4.45        # MULT18X18D with no pipeline registers

FF_TYPES = {"TRELLIS_FF"}


def _dsp_is_registered(cell, port):
    p = cell.get("parameters", {})
    def on(name):
        v = str(p.get(name, "NONE"))
        return v not in ("NONE", "\"NONE\"")
    if port.startswith("P"):
        return on("REG_OUTPUT_CLK")
    return on("REG_INPUTA_CLK") if port.startswith("A") else on("REG_INPUTB_CLK")


def analyse(netlist: dict, module: str | None = None, net_delay: float = 1.2):
    mods = netlist["modules"]
    if module is None:
        # The module with the most cells that is not the harness.
        module = max((m for m in mods if "harness" not in m),
                     key=lambda m: len(mods[m].get("cells", {})))
    mod = mods[module]
    cells = mod.get("cells", {})
    names = {}
    for n, info in mod.get("netnames", {}).items():
        hidden = info.get("hide_name", 0)
        for i, b in enumerate(info["bits"]):
            if isinstance(b, int):
                label = f"{n}[{i}]" if len(info["bits"]) > 1 else n
                old = names.get(b)
                if old is None or (old[0] and not hidden) or (old[0] == hidden and len(label) < len(old[1])):
                    names[b] = (hidden, label)

    def name(bit):
        return names.get(bit, (1, f"n{bit}"))[1]

    drivers = {}          # bit -> (cell, port)
    sinks = defaultdict(list)
    for cn, c in cells.items():
        for port, bits in c["connections"].items():
            d = c["port_directions"].get(port, "input")
            for b in bits:
                if not isinstance(b, int):
                    continue
                if d == "output":
                    drivers[b] = (cn, port)
                else:
                    sinks[b].append((cn, port))
    for pn, p in mod.get("ports", {}).items():
        if p["direction"] == "input":
            for b in p["bits"]:
                if isinstance(b, int):
                    drivers[b] = (None, pn)

    fanout = {b: len(s) for b, s in sinks.items()}
    # Nets on dedicated slice wires (LUT4 -> PFUMX -> L6MUX21 inside a slice): no routing.
    local = {b for b, s in sinks.items()
             if len(s) == 1 and (cells[s[0][0]]["type"], s[0][1]) in
             {("PFUMX", "ALUT"), ("PFUMX", "BLUT"), ("L6MUX21", "D0"), ("L6MUX21", "D1")}}

    def wire(b):
        f = max(1, fanout.get(b, 1))
        return net_delay * (1 + 0.12 * math.log2(f))

    arrival = {}          # bit -> (time, predecessor bit or None)
    visiting = set()

    def cell_out(cn, port, b):
        c = cells[cn]
        t = c["type"]
        con = c["connections"]
        if t in FF_TYPES:
            return CLK_TO_Q, None
        if t == "DP16KD" or t == "PDPW16KD":
            return BRAM_CLK_TO_Q, None
        if t == "MULT18X18D":
            if _dsp_is_registered(c, port):
                return CLK_TO_Q + 0.5, None
            ins = [x for p, bits in con.items() if p[0] in "AB" and p[1:].isdigit() for x in bits]
            return _worst(ins, DSP_COMB)
        if t == "LUT4":
            ins = [x for p in "ABCD" for x in con.get(p, [])]
            return _worst(ins, LUT)
        if t in ("PFUMX", "L6MUX21"):
            ins = [x for p in ("ALUT", "BLUT", "C0", "D0", "D1", "SD") for x in con.get(p, [])]
            return _worst(ins, MUX)
        if t == "CCU2C":
            lut_ins = [x for p in ("A0", "B0", "C0", "D0", "A1", "B1", "C1", "D1")
                       for x in con.get(p, [])]
            cin = con.get("CIN", [])
            t_in, p_in = _worst(lut_ins, CARRY_IN)
            t_c, p_c = _worst(cin, 0.0, chain=True)
            if port == "COUT":
                return max((t_in, p_in), (t_c + CARRY_STEP, p_c), key=lambda x: x[0])
            return max((t_in - CARRY_IN + LUT + 0.1, p_in), (t_c + CARRY_SUM, p_c),
                       key=lambda x: x[0])
        if t == "TRELLIS_DPR16X4":
            ins = [x for x in con.get("RAD", [])]
            return _worst(ins, LUTRAM)
        # Unknown cell: treat as a register (a boundary).
        return CLK_TO_Q, None

    def _worst(bits, delay, chain=False):
        best, pred = 0.0, None
        for x in bits:
            if not isinstance(x, int):
                continue
            tx = at(x) + (0.0 if chain or x in local else wire(x))
            if tx > best:
                best, pred = tx, x
        return best + delay, pred

    def at(b):
        if b in arrival:
            return arrival[b][0]
        drv = drivers.get(b)
        if drv is None:
            arrival[b] = (0.0, None)
            return 0.0
        cn, port = drv
        if cn is None:                       # module input: from a (harness) register
            arrival[b] = (CLK_TO_Q, None)
            return CLK_TO_Q
        if b in visiting:                    # combinational loop: cut it
            return 0.0
        visiting.add(b)
        t, pred = cell_out(cn, port, b)
        visiting.discard(b)
        arrival[b] = (t, pred)
        return t

    sys.setrecursionlimit(1000000)
    endpoints = []         # (time, endpoint label, bit)
    for cn, c in cells.items():
        t = c["type"]
        con = c["connections"]
        if t in FF_TYPES:
            ports = ("DI", "M", "CE", "LSR")
        elif t in ("DP16KD", "PDPW16KD"):
            ports = tuple(p for p in con if p[:2] in ("DI", "AD", "CE", "WE", "OC", "CS"))
        elif t == "MULT18X18D" and any(_dsp_is_registered(c, p) for p in ("A0", "B0")):
            ports = tuple(p for p in con if p[0] in "AB" and p[1:].isdigit())
        elif t == "TRELLIS_DPR16X4":
            ports = ("DI", "WAD", "WRE")
        else:
            continue
        for p in ports:
            for b in con.get(p, []):
                if isinstance(b, int):
                    tt = at(b) + wire(b) + SETUP
                    q = con.get("Q", con.get("DO", [None]))
                    label = name(q[0]) if q and isinstance(q[0], int) else cn
                    endpoints.append((tt, f"{label} ({t}.{p})", b))
    for pn, p in mod.get("ports", {}).items():
        if p["direction"] == "output":
            for i, b in enumerate(p["bits"]):
                if isinstance(b, int):
                    endpoints.append((at(b) + wire(b) + SETUP, f"{pn}[{i}] (output)", b))

    def path(b, src=False):
        out = []
        while b is not None:
            label = name(b)
            if src:
                drv = drivers.get(b)
                cell = cells.get(drv[0], {}) if drv and drv[0] else {}
                label += "  @" + cell.get("attributes", {}).get("src", "?").split("|")[0]
            out.append(label)
            b = arrival.get(b, (0, None))[1]
        return list(reversed(out))

    return module, endpoints, path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("netlist")
    ap.add_argument("--module", help="module to analyse (default: the largest non-harness one)")
    ap.add_argument("--top", type=int, default=25, help="worst endpoints to list")
    ap.add_argument("--period", type=float, default=10.0, help="clock period in ns (default 10)")
    ap.add_argument("--net-delay", type=float, default=1.2, help="ns per routed net")
    ap.add_argument("--grep", help="only list endpoints whose path mentions this text")
    a = ap.parse_args(argv)
    with open(a.netlist) as f:
        nl = json.load(f)
    module, eps, path = analyse(nl, a.module, a.net_delay)
    eps.sort(key=lambda e: -e[0])
    print(f"module {module}: {len(eps)} endpoints; estimate of the worst "
          f"{eps[0][0]:.2f} ns" if eps else f"module {module}: no endpoints")
    edges = [a.period * f for f in (0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5)]
    hist = [sum(1 for e in eps if e[0] > x) for x in edges]
    print("endpoints above: " + ", ".join(f"{x:.1f} ns: {n}" for x, n in zip(edges, hist)))
    seen = set()
    shown = 0
    for t, label, b in eps:
        p = path(b)
        key = tuple(p[:-1])
        if key in seen:
            continue
        if a.grep and not any(a.grep in s for s in p + [label]):
            continue
        seen.add(key)
        named = [s for s in p if not s.startswith("$")]
        print(f"{t:6.2f} ns  {label}  [{len(p)} nets]")
        print("          " + " -> ".join(named[-12:]))
        shown += 1
        if shown >= a.top:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
