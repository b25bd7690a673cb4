"""The default run's ``-n 2 --dist loadgroup`` must keep a module's tests on one worker, so a
module-scoped fixture (a generated county, a resolved warehouse) is built once per run, not once
per worker (tests/conftest.py; pytest-dev/pytest-xdist#1386 broke this silently once).

Each build of the fixture below appends a line to a file shared by the run's workers; the test
that runs last sees every build. Run without xdist the check holds trivially."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="module")
def builds(tmp_path_factory, worker_id) -> object:
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # shared by the run's workers
    log = base / "xdist-group-builds.txt"
    with open(log, "a") as f:
        f.write(worker_id + "\n")
    return log


@pytest.mark.parametrize("n", range(6))
def test_module_fixture_is_built_once_per_run(builds, n, request):
    workers = builds.read_text().split()
    assert len(workers) == 1, f"module fixture built on {workers}: --dist loadgroup is not grouping"
    if request.config.getoption("loadgroup", False):
        assert request.node.nodeid.endswith("@tests/unit/test_xdist_groups.py")
