"""The Prefect flows over run_night, in Prefect's test harness, on the committed sample county.

The final state says what happened (a missing source is a failed ``Incomplete`` run, never a
green one), the exit code is the CLI's (a rule error: 6 from both), crossmatch's own log lines
are in the run's log (what the UI shows), and the summary is an artifact.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.flows, pytest.mark.slow]  # a temporary Prefect server (about 15 s)


def _load_flow_module():
    spec = importlib.util.spec_from_file_location("nightly", ROOT / "flows" / "nightly.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["nightly"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def nightly_mod():
    return _load_flow_module()


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("county")
    full = tmp / "full"
    shutil.copytree(ROOT / "data" / "sample" / "raw", full)
    missing = tmp / "missing"
    shutil.copytree(full, missing)
    shutil.rmtree(missing / "police")
    return full, missing, tmp / "w.duckdb"


def _args(raw: Path, wh: Path) -> dict:
    return {
        "raw": str(raw),
        "sources": str(ROOT / "sources"),
        "rules": str(ROOT / "rules"),
        "warehouse": str(wh),
    }


async def _logs_and_artifacts(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogHandler

    await APILogHandler.aflush()  # the run's last lines are still in the batching worker
    async with get_client() as client:
        logs: list = []
        while True:  # the API pages logs by 200
            page = await client.read_logs(
                LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                limit=200,
                offset=len(logs),
            )
            logs += page
            if len(page) < 200:
                break
        arts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
        run = await client.read_flow_run(flow_run_id)
    return [lg.message for lg in logs], arts, run


@pytest.fixture(scope="module")
def missing_night(harness, nightly_mod, county):
    _full, missing, wh = county
    return nightly_mod.nightly(**_args(missing, wh), return_state=True)


def test_missing_source_fails_the_run(missing_night, nightly_mod):
    st = missing_night
    assert st.is_failed() and st.name == "Incomplete"
    assert "vehicle" in st.message and "vehicle_on_dibao" in st.message
    assert nightly_mod.exit_code_of(st) == 4
    summary = st.result(raise_on_failure=False)
    assert summary["outcome"] == "incomplete" and summary["exit_code"] == 4
    assert {r["rule_id"]: r["status"] for r in summary["rules"]}["vehicle_on_dibao"] == "skipped"


def test_crossmatch_logs_and_summary_reach_prefect(missing_night):
    logs, arts, run = asyncio.run(_logs_and_artifacts(missing_night.state_details.flow_run_id))
    assert run.state.name == "Incomplete" and run.state.is_failed()  # what the UI shows
    assert any(m.startswith("crossmatch.night: source missing tonight: vehicle") for m in logs)
    assert any(m.startswith("crossmatch.detect.rule_runner: rule deceased_recipient") for m in logs)
    assert any(m.startswith("crossmatch.review.clues: clues: new") for m in logs)
    (art,) = [a for a in arts if a.key == "crossmatch-night"]
    assert art.type == "markdown"
    assert "## Rows per source" in art.data and "| vehicle_on_dibao | skipped |" in art.data
    assert "incomplete (exit 4)" in art.description


def test_source_back_completes(missing_night, nightly_mod, county):
    full, _missing, wh = county
    st = nightly_mod.nightly(**_args(full, wh), return_state=True)
    assert st.is_completed(), st.message
    assert nightly_mod.exit_code_of(st) == 0
    summary = st.result()
    assert summary["outcome"] == "ok" and summary["clues"]["ongoing"] > 0


def test_rule_error_exits_6_from_flow_and_cli(
    missing_night, nightly_mod, county, monkeypatch, tmp_path
):
    full, _missing, wh = county
    copy = tmp_path / "w.duckdb"
    shutil.copy(wh, copy)
    from crossmatch.detect import rule_runner

    real = rule_runner.execute_rule

    def broken(con, spec, params=None):
        if spec.id == "ghost_recipient":
            raise RuntimeError("boom")
        return real(con, spec, params)

    monkeypatch.setattr(rule_runner, "execute_rule", broken)
    # unchanged inputs would reuse the previous hits (detect/reuse.py): make the rules run
    from crossmatch.detect import reuse

    monkeypatch.setattr(reuse, "previous_runs", lambda con, fps: {})
    monkeypatch.setattr(reuse, "previous_months", lambda con, rid, rest: None)  # nor by month
    st = nightly_mod.rerun("detect", **_args(full, copy), return_state=True)
    assert st.is_failed() and st.name == "Failed" and "ghost_recipient" in st.message
    assert nightly_mod.exit_code_of(st) == 6
    from crossmatch.cli import main

    opts = [x for k, v in _args(full, copy).items() for x in ("--" + k, v)]
    res = CliRunner().invoke(main, ["run", "--from-stage", "detect", *opts])
    assert res.exit_code == 6, res.output


def test_backfill_runs_each_night_in_order(missing_night, nightly_mod, county, tmp_path):
    full, missing, wh = county
    copy = tmp_path / "w.duckdb"
    shutil.copy(wh, copy)
    st = nightly_mod.backfill(
        [str(missing), str(full)],
        str(ROOT / "sources"),
        str(ROOT / "rules"),
        str(copy),
        return_state=True,
    )
    assert st.is_failed() and st.name == "Incomplete"  # one of the nights was not green
    outcomes = st.result(raise_on_failure=False)
    assert [(o["raw"], o["state"]) for o in outcomes] == [
        (str(missing), "Incomplete"),
        (str(full), "Completed"),
    ]
