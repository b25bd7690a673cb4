"""`crossmatch run --dask local`: the whole night through the same atomic run (build copy,
one-step publish, lock, statuses, exit codes), detect's per-partition rules on a Dask
LocalCluster. On a small generated county it gives exactly the hits, rule statuses and clues of
`crossmatch run` without Dask, runs score and report as that night does, plans no partition when
nothing changed, and killed with SIGKILL during detect leaves the published night intact.

Slow (Dask worker processes start in ~10 s on the shared 2-core machine; four nights): ~2 min.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import psutil
import pytest

from crossmatch.synth import generate

ROOT = Path(__file__).resolve().parents[2]
SOURCES, RULES = ROOT / "sources", ROOT / "rules"
CHANGED = Path("finance") / "一卡通发放明细_2025Q4.csv"
pytestmark = pytest.mark.slow

LATEST_HITS = (
    "SELECT * EXCLUDE (run_id) FROM hit WHERE run_id = "
    "(SELECT max_by(run_id, finished_at) FROM detect_run WHERE status = 'finished')"
)
LATEST_RULES = (
    "SELECT rule_id, status, reason, hits, amount FROM rule_run WHERE run_id = "
    "(SELECT max_by(run_id, finished_at) FROM detect_run WHERE status = 'finished')"
)
CLUES = (
    "SELECT rule_id, subject, rule_version, severity, village_code, period_from, period_to, "
    "months, hits, amount, state, fingerprint, evidence_summary FROM clue"
)


def _night(raw: Path, wh: Path, *extra: str, log: Path | None = None) -> subprocess.Popen:
    """``crossmatch run`` in its own process (as an operator runs it)."""
    args = [sys.executable, "-m", "crossmatch.cli", "run", "--raw", str(raw), "--sources",
            str(SOURCES), "--rules", str(RULES), "--warehouse", str(wh), *extra]  # fmt: skip
    out = open(log or wh.with_suffix(".log"), "w")  # noqa: SIM115 (the child writes it)
    return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, text=True)


def _run(raw: Path, wh: Path, *extra: str) -> int:
    p = _night(raw, wh, *extra)
    return p.wait(timeout=600)


def _rows(db: Path, sql: str) -> list[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return sorted(map(repr, con.execute(sql).fetchall()))
    finally:
        con.close()


def _summary(wh: Path) -> dict:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        row = con.execute("SELECT summary FROM night_run ORDER BY started_at DESC LIMIT 1")
        return json.loads(row.fetchone()[0])
    finally:
        con.close()


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def county(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("dask-county")
    generate(persons=1500, seed=11, out=d / "county")
    return d / "county" / "raw"


@pytest.fixture(scope="module")
def single(county: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The single-machine night on the county."""
    wh = tmp_path_factory.mktemp("single") / "w.duckdb"
    assert _run(county, wh) == 0, wh.with_suffix(".log").read_text()
    return wh


def test_dask_night_equals_the_single_machine_night(county: Path, single: Path, tmp_path: Path):
    wh = tmp_path / "w.duckdb"
    code = _run(county, wh, "--dask", "local")
    log = wh.with_suffix(".log").read_text()
    assert code == 0, log

    hits = _rows(wh, LATEST_HITS)
    assert len(hits) > 500
    assert hits == _rows(single, LATEST_HITS)  # every column: evidence, amounts, clue key
    assert _rows(wh, LATEST_RULES) == _rows(single, LATEST_RULES)
    review = Path(str(wh).replace(".duckdb", ".review.duckdb"))
    clues = _rows(review, CLUES)
    assert clues and clues == _rows(Path(str(single).replace(".duckdb", ".review.duckdb")), CLUES)

    s, s1 = _summary(wh), _summary(single)
    p = s["partitions"]
    assert p["planned"] and p["cluster_started"] and p["partitions"] >= 2, p
    assert "LocalCluster" in p["dask"] and len(p["local"]) == 10 and len(p["cross"]) == 6
    # score and report ran as on one machine, on the partitioned detect run
    for stage in ("ingest", "resolve", "kinship", "detect", "score", "clues", "report"):
        assert s["stages"][stage]["status"] == s1["stages"][stage]["status"] == "ok", stage
    assert Path(s["report"]).is_file() and s["detect_run_id"] in s["report"]
    assert s["ml"]["kinds"].keys() == s1["ml"]["kinds"].keys()
    assert "partitioned: " in log and "partitions on Dask LocalCluster" in log
    assert not list(tmp_path.glob(".w.duckdb.night-*"))  # the build was published (renamed)

    # the same night again, nothing changed: last night's results stand, no stage runs, no
    # cluster starts
    code = _run(county, wh, "--dask", "local")
    log = wh.with_suffix(".log").read_text()
    assert code == 0, log
    assert _summary(wh)["unchanged_since"] and "nothing changed since night" in log
    assert _summary(wh)["partitions"] is None and "LocalCluster" not in log
    # and with every stage run anyway, every rule reuses its hits, so no partition is planned
    # and no cluster started, and the summary says so
    code = _run(county, wh, "--dask", "local", "--even-if-unchanged")
    log = wh.with_suffix(".log").read_text()
    assert code == 0, log
    p = _summary(wh)["partitions"]
    assert not p["planned"] and not p["cluster_started"] and len(p["reused"]) == 16, p
    assert "no partition planned, no cluster started" in log
    assert p["plan"].startswith("partitions not planned: no rule computes per partition")
    assert _rows(wh, LATEST_HITS) == hits


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def test_killed_during_dask_detect_the_published_night_stays(
    county: Path, single: Path, tmp_path: Path
):
    """Published: the single-machine night on the county without its last 300 payments of
    2025Q4; tonight the full file, so detect has work. SIGKILL once the LocalCluster's worker
    processes run: the published warehouse is byte for byte last night's, the workers go, and
    the next `crossmatch run --dask local` takes over the stale lock and completes."""
    raw = tmp_path / "raw"
    shutil.copytree(county, raw)
    lines = (raw / CHANGED).read_bytes().splitlines(keepends=True)
    (raw / CHANGED).write_bytes(b"".join(lines[:-300]))
    wh = tmp_path / "w.duckdb"
    assert _run(raw, wh) == 0, wh.with_suffix(".log").read_text()
    before = _sha(wh)
    shutil.copyfile(county / CHANGED, raw / CHANGED)

    p = _night(raw, wh, "--dask", "local", log=tmp_path / "killed.log")
    workers: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and p.poll() is None:
            text = (tmp_path / "killed.log").read_text()
            kids = [c for c in _children(p.pid) if "python" in c.name().lower()]
            # in detect (kinship done) with the cluster's worker processes up
            if "stage kinship:" in text and len(kids) >= 2:
                workers = kids
                break
            time.sleep(0.2)
        assert workers, "the night never reached detect on Dask:\n" + text
        assert "stage detect:" not in text
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        # the LocalCluster's processes notice their parent is gone and exit
        _gone, alive = psutil.wait_procs(workers, timeout=60)
        assert not alive, [w.pid for w in alive]
    finally:
        if p.poll() is None:
            p.kill()
        for w in workers:  # only the processes this test started
            if w.is_running():
                w.kill()

    assert _sha(wh) == before  # last night's results, untouched
    assert list(tmp_path.glob(".w.duckdb.night-*"))  # the killed build is left aside
    code = _run(raw, wh, "--dask", "local")
    log = wh.with_suffix(".log").read_text()
    assert code == 0, log
    assert "stale run lock" in log
    assert not list(tmp_path.glob(".w.duckdb.night-*"))
    # the same findings as the single-machine night on these files (hit evidence may carry
    # fuzzy-link probabilities of the earlier night: docs/nights.md)
    assert _rows(wh, LATEST_RULES) == _rows(single, LATEST_RULES)


async def _partition_task_runs(flow_run_id) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return [r for r in runs if r.name.startswith("partition")]


@pytest.mark.flows
def test_nightly_flow_with_dask_parameter(county: Path, single: Path, tmp_path: Path):
    """The ``nightly`` flow's ``dask`` parameter: partitions as Prefect tasks on prefect-dask's
    DaskTaskRunner (a task run each), the night Completed with the single machine's hits."""
    import asyncio

    from prefect.testing.utilities import prefect_test_harness

    from crossmatch.night.flows import nightly

    wh = tmp_path / "w.duckdb"
    with prefect_test_harness(server_startup_timeout=120):
        state = nightly(str(county), str(SOURCES), str(RULES), str(wh), dask="local",
                        return_state=True)  # fmt: skip
        summary = state.result(raise_on_failure=False)
        assert state.is_completed(), state.message
        parts = asyncio.run(_partition_task_runs(state.state_details.flow_run_id))
    p = summary["partitions"]
    assert "DaskTaskRunner" in p["dask"] and p["cluster_started"], p
    assert len(parts) == p["partitions"] >= 2
    assert all(r.state.is_completed() for r in parts)
    assert _rows(wh, LATEST_HITS) == _rows(single, LATEST_HITS)
    assert summary["stages"]["score"]["status"] == summary["stages"]["report"]["status"] == "ok"
