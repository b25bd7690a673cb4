"""Project-wide test settings.

Prefect must never try to reach the network (no telemetry) and must not touch the developer's own
``~/.prefect``: every test session gets a fresh PREFECT_HOME, and the temporary server gets the
start-up time it needs on a 2-core machine. Tiers and markers: docs/architecture.md, "Tests".
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="crossmatch-prefect-"))
# Rule needs derived once for every process of the run (xdist workers, CLI subprocesses) and
# kept across runs, keyed on what the derivation reads (detect/needs.py): ~4.5 s per process
# otherwise. A cold run (CROSSMATCH_TEST_CACHE=session, tests/build_cache.py) keeps them for
# the run only.
if os.environ.get("CROSSMATCH_TEST_CACHE", "").lower() == "session":
    os.environ.setdefault("CROSSMATCH_NEEDS_CACHE", tempfile.mkdtemp(prefix="crossmatch-needs-"))
else:
    os.environ.setdefault(
        "CROSSMATCH_NEEDS_CACHE",
        str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "d" / "crossmatch-needs"),
    )
# Two xdist workers share the machine's cores: an OpenMP pool per worker as wide as the machine
# (scikit-learn's gradient boosting, OpenBLAS) spin-waits against the other worker's and turns a
# 0.5 s fit into 35 s. One OpenMP thread per worker; DuckDB and polars keep their own pools.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the tests that share an expensive fixture on one xdist worker (``--dist loadgroup``
    in pyproject): a module-scoped fixture of ours groups its module's tests, a session-scoped
    one the tests of the folder whose conftest defines it. Without this, ``-n 2`` spreads a
    module over both workers and each builds the same county or warehouse. Runs before xdist
    turns the marks into group names; a test that already has an ``xdist_group`` keeps it."""
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        group = None
        for name in item.fixturenames:
            defs = info.name2fixturedefs.get(name)
            if not defs:
                continue
            fd = defs[-1]
            if not fd.baseid.startswith("tests") or fd.scope not in ("module", "session"):
                continue  # pytest's own (tmp_path_factory ...) or cheap per-test fixtures
            if fd.scope == "session":
                group = fd.baseid.split("::")[0]
                break
            group = group or fd.baseid.split("::")[0]
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


class _GroupSuffix:
    """pytest-xdist 3.8 tells the controller a test's group by appending ``@<group>`` to the
    test id the worker reports, written into ``item._nodeid``; pytest 9.2 keeps the id in a
    structured ``item._id`` instead, so the write is lost and ``--dist loadgroup`` silently
    spreads every group over both workers (each then builds the module's county again:
    pytest-dev/pytest-xdist#1386). Runs after xdist's own hook and writes the suffix where
    this pytest reads the id; a no-op where xdist's write took effect."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]):
        if not config.getoption("loadgroup", False):
            return  # not an xdist worker of a --dist loadgroup run
        for item in items:
            ident = getattr(item, "_id", None)
            if ident is None or type(ident).__name__ != "NodeId":
                return  # a pytest whose ids xdist's hook already suffixed
            names = sorted(
                {
                    str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                    for m in item.iter_markers("xdist_group")
                }
            )
            if not names or item.nodeid.endswith("@" + "_".join(names)):
                continue
            item._id = type(ident).parse(f"{item.nodeid}@{'_'.join(names)}")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_GroupSuffix(), "crossmatch-xdist-group-suffix")
