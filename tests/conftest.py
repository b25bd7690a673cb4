"""Project-wide test settings.

Prefect must never try to reach the network (no telemetry) and must not touch the developer's own
``~/.prefect``: every test session gets a fresh PREFECT_HOME, and the temporary server gets the
start-up time it needs on a 2-core machine.
"""

from __future__ import annotations

import os
import tempfile

import pytest

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="crossmatch-prefect-"))


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
