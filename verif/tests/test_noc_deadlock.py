"""Deadlock freedom: scripts/noc_deadlock.py finds no cycle in the channel dependency graph of
XY routing with separate request/response networks, and does find the cycles of a bad routing
function and of a single shared network."""
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
        assert f"{mesh} xy (request + response networks)" in r.stdout
    assert r.stdout.count("acyclic") == 3


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
