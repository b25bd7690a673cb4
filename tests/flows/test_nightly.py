"""The nightly flow end to end on the committed sample county, in Prefect's test harness.

Also checks that the deployment declared in prefect.yaml registers with its schedule (the harness
has no scheduler, so the schedule is checked through the client, as the ecosystem notes advise).
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

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


def test_nightly_on_sample_county(harness, nightly_mod, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(ROOT / "data" / "sample" / "raw", raw)
    # an operator's bad night: one department's export is missing entirely
    shutil.rmtree(raw / "police")
    wh = tmp_path / "w.duckdb"
    report = nightly_mod.nightly(
        str(raw), str(ROOT / "sources"), str(ROOT / "rules"), str(wh), None
    )
    assert report.hits > 0
    # the missing vehicle export is visible, and its rule is skipped, not "zero hits"
    assert any("vehicle" in m for m in report.failed_files)
    assert any(s.startswith("vehicle_on_dibao:") for s in report.rules_skipped)
    assert not report.rules_error, report.rules_error
    # every other rule reads fresh, complete inputs: none stale or blind; exit code as the CLI's
    assert not report.rules_stale and not report.rules_blind, report.detect_table
    assert report.exit_code == 4
    con = duckdb.connect(str(wh), read_only=True)
    try:
        n_hits = con.execute("SELECT count(*) FROM hit").fetchone()[0]
        assert n_hits == report.hits
        rr = dict(con.execute("SELECT rule_id, status FROM rule_run").fetchall())
        assert rr["vehicle_on_dibao"] == "skipped"
        assert rr["deceased_recipient"] == "ok"
    finally:
        con.close()
    # a second night over unchanged files finds the same clues (stable keys)
    report2 = nightly_mod.nightly(
        str(raw), str(ROOT / "sources"), str(ROOT / "rules"), str(wh), None
    )
    assert report2.hits == report.hits
    # the review store saw both nights: every clue new on the first, ongoing on the second
    assert report.clues.startswith("clues: new ") and "ongoing 0" in report.clues
    assert "new 0" in report2.clues and "closed 0" in report2.clues
    con = duckdb.connect(str(wh), read_only=True)
    try:
        runs = con.execute(
            "SELECT count(DISTINCT run_id), count(DISTINCT clue_key) FROM hit"
        ).fetchone()
    finally:
        con.close()
    assert runs[1] == report.hits


def test_deployment_schedule_from_prefect_yaml(harness, nightly_mod):
    from prefect.client.orchestration import get_client
    from prefect.schedules import Cron

    cfg = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    (dep,) = [d for d in cfg["deployments"] if d["name"] == "nightly"]
    assert dep["entrypoint"] == "flows/nightly.py:nightly"
    (sch,) = dep["schedules"]
    deployment = nightly_mod.nightly.to_deployment(
        name=dep["name"],
        parameters=dep["parameters"],
        schedule=Cron(sch["cron"], timezone=sch["timezone"]),
    )
    dep_id = deployment.apply()

    async def read():
        async with get_client() as client:
            d = await client.read_deployment(dep_id)
            return d

    d = asyncio.run(read())
    assert d.parameters["warehouse"] == "crossmatch.duckdb"
    (s,) = d.schedules
    assert s.schedule.cron == "0 2 * * *"
    assert s.schedule.timezone == "Asia/Shanghai"
    assert s.active
