"""Deadlock freedom: scripts/noc_deadlock.py finds no cycle in the channel dependency graph of
XY routing with separate request/response networks and XY-tree multicast (virtual cut-through
rule), and does find the cycles of a bad routing function, of a single shared network and of
multicast replication without the cut-through rule."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "noc_deadlock.py"


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def dl():
    spec = importlib.util.spec_from_file_location("noc_deadlock", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_xy_two_networks_acyclic():
    r = run("2x2", "3x3", "4x4")
    assert r.returncode == 0, r.stdout + r.stderr
    for mesh in ("2x2", "3x3", "4x4"):
        assert f"{mesh} xy (request + response networks, multicast vct)" in r.stdout
    assert r.stdout.count("acyclic") == 3


def test_multicast_sync_replication_is_cyclic():
    r = run("--multicast", "sync", "3x3")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "CYCLE" in r.stdout and "mc:" in r.stdout
    assert run("--multicast", "vct", "--routing", "yx", "2x2").returncode == 2


def test_multicast_trees(dl):
    """Every tree delivers once to every core of its rectangle (mc_walk raises otherwise) and
    its links agree with a count stated here: the source row spans the rectangle's columns and
    the source column, each column of the rectangle spans its rows and the source row."""
    rows, cols = 3, 4
    for src in dl.nodes(rows, cols):
        sx, sy = (0, 0) if src == dl.HOST else src
        for rect in dl.rectangles(rows, cols):
            x0, y0, x1, y1 = rect
            edges, turns = dl.mc_walk(rows, cols, src, rect)
            links = [b for a, b in edges if b[0] == "mc"]
            width = x1 - x0 + 1
            want = (max(x1, sx) - min(x0, sx)) + width * (max(y1, sy) - min(y0, sy))
            assert len(links) == len(set(links)) == want, (src, rect)
    # the multicast lane of the source's injection goes only to its children
    edges, _ = dl.mc_walk(2, 2, (0, 0), (0, 0, 1, 1))
    assert {b for a, b in edges if a == ("inj", (0, 0))} == {
        ("mc", (0, 0), dl.Port.E), ("mc", (0, 0), dl.Port.S), ("out", (0, 0), dl.Port.L)}


def test_bad_routing_is_cyclic():
    r = run("--routing", "mixed", "2x2")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "CYCLE" in r.stdout


def test_shared_network_is_cyclic():
    r = run("--shared", "3x3")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "CYCLE" in r.stdout and "inject" in r.stdout


def test_bad_arguments():
    assert run("3by3").returncode == 2


@pytest.mark.parametrize("rows,cols", [(1, 1), (1, 4), (4, 1), (2, 3), (5, 2), (6, 6)])
def test_more_shapes_and_turn_table(dl, rows, cols):
    # check() also compares the turns XY uses with the router's crossbar table
    assert dl.check(rows, cols, "xy") == 0
    assert dl.check(rows, cols, "xy", multicast="none") == 0
    assert dl.check(rows, cols, "yx") == 0
    assert dl.check(rows, cols, "mixed") == (1 if rows > 1 and cols > 1 else 0)


def test_cycle_finder(dl):
    assert dl.find_cycle({1: {2}, 2: {3}, 3: set()}) is None
    cyc = dl.find_cycle({1: {2}, 2: {3}, 3: {1}, 4: {1}})
    assert cyc[0] == cyc[-1] and set(cyc) == {1, 2, 3}
    assert dl.find_cycle({1: {1}}) == [1, 1]


def test_turn_table_mismatch_detected(dl, monkeypatch):
    # a crossbar missing a turn XY needs is reported (exit 3)
    real = dl.router_turns

    def broken(x, y, rows, cols, host=False):
        t = dict(real(x, y, rows, cols, host))
        t.pop(dl.Port.L, None)
        return t
    monkeypatch.setattr(dl, "router_turns", broken)
    assert dl.check(2, 2, "xy") == 3


def test_vc_router_channels(dl):
    """The VC router (--vcs): each router-to-router link split into V channels, any VC of a
    link waiting on any VC of the next; XY stays acyclic, a bad routing stays cyclic, and the
    number of channels is the links x V plus the single injection/ejection channels."""
    r = run("--vcs", "4", "2x2", "3x3", "4x4")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("4 VCs per link") == 3 and r.stdout.count("acyclic") == 3
    # 2x2: 8 router-to-router links, 4 ejections + host out, 4 cores + host injecting; x 2 nets
    n = (8 * 4 + 5 + 5) * 2
    assert f"2x2 xy (request + response networks, 4 VCs per link): {n} channels" in r.stdout
    bad = run("--vcs", "2", "--routing", "mixed", "3x3")
    assert bad.returncode == 1 and "#" in bad.stdout, bad.stdout
    assert run("--vcs", "0").returncode == 2
    assert run("--vcs", "2", "--multicast", "vct").returncode == 2
    graph = dl.expand_vcs({("req", ("out", (0, 0), dl.Port.E)): {("req", ("out", (1, 0),
                                                                          dl.Port.L))}}, 3)
    assert len(graph) == 4 and all(len(graph["req", ("out", (0, 0), dl.Port.E, v)]) == 1
                                   for v in range(3))
