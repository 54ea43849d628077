"""pytest options and fixtures shared by the test tiers.

* ``--long`` runs the long regressions (tests marked ``long``); without it they are skipped
  with that reason printed.
* ``simulator`` fixtures skip with the reason when a simulator is missing, except under CI
  (``CI=true``), where every simulator is required and a missing one fails.
"""
import os

import pytest

from hasp import toolchain


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true", default=False,
                     help="also run the long regressions (marker 'long')")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--long") or "long" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="long regression: run with --long")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_simulator(sim: str):
    """Skip (or, under CI, fail) when ``sim`` is not usable here, saying why."""
    try:
        toolchain.check_simulator(sim)
    except toolchain.ToolError as e:
        if in_ci():
            pytest.fail(f"CI requires {sim}: {e}")
        pytest.skip(f"{sim} not available: {e}")


@pytest.fixture(params=toolchain.SIMULATORS)
def simulator(request):
    require_simulator(request.param)
    return request.param
