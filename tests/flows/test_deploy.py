"""prefect.yaml is proven, not just declared.

The slow test does what docs/operations.md tells an operator to do, on a copy of the project:
a local Prefect server (with its scheduler), the work pool by the documented command,
``prefect deploy --all``; it checks the scheduler created the nightly runs at 02:00
Asia/Shanghai, then moves the first scheduled run to now and a worker started in another
folder, without CROSSMATCH_HOME, executes it: Completed, with the summary artifact and the
warehouse's night_run row, in the project copy.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest
import yaml

from crossmatch.night.deploy import enter_home, project_home

ROOT = Path(__file__).resolve().parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _project_copy(dest: Path) -> Path:
    dest.mkdir()
    for name in ("prefect.yaml", "flows", "sources", "rules"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    shutil.copytree(ROOT / "data" / "sample" / "raw", dest / "data" / "sample" / "raw")
    return dest


def test_prefect_yaml_declares_the_night():
    cfg = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    deps = {d["name"]: d for d in cfg["deployments"]}
    assert set(deps) == {"nightly", "rerun", "backfill"}
    (sch,) = deps["nightly"]["schedules"]
    assert (sch["cron"], sch["timezone"], sch["active"]) == ("0 2 * * *", "Asia/Shanghai", True)
    assert deps["nightly"]["entrypoint"] == "flows/nightly.py:nightly"
    assert cfg["pull"] == [
        {"crossmatch.night.deploy.enter_home": {"directory": "{{ home.directory }}"}}
    ]


def test_pull_step_finds_the_project(tmp_path, monkeypatch):
    proj = tmp_path / "proj"
    (proj / "flows").mkdir(parents=True)
    (proj / "flows" / "nightly.py").write_text("")
    elsewhere = tmp_path / "worker"
    elsewhere.mkdir()
    monkeypatch.chdir(proj)
    monkeypatch.delenv("CROSSMATCH_HOME", raising=False)
    assert project_home() == {"directory": str(proj.resolve())}
    monkeypatch.chdir(elsewhere)
    with pytest.raises(FileNotFoundError, match="prefect deploy"):
        project_home()
    # the worker: its folder is elsewhere; the recorded folder is entered
    assert enter_home(str(proj)) == {"directory": str(proj.resolve())}
    assert Path.cwd() == proj.resolve() and os.environ["CROSSMATCH_HOME"] == str(proj.resolve())
    # the worker's own CROSSMATCH_HOME wins over the recorded folder
    other = tmp_path / "other"
    shutil.copytree(proj, other)
    monkeypatch.setenv("CROSSMATCH_HOME", str(other))
    assert enter_home(str(proj))["directory"] == str(other.resolve())
    monkeypatch.setenv("CROSSMATCH_HOME", str(elsewhere))
    with pytest.raises(FileNotFoundError, match="CROSSMATCH_HOME for the worker"):
        enter_home(str(tmp_path / "gone"))


def _prefect(args: list[str], cwd: Path, env: dict, timeout: float = 180) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert r.returncode == 0, f"prefect {' '.join(args)}: {r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r.stdout


@pytest.mark.slow
@pytest.mark.flows
def test_deploy_schedule_and_worker_run(tmp_path, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterDeploymentId,
    )
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Scheduled

    from crossmatch.night.prefect_server import start_server

    proj = _project_copy(tmp_path / "proj")
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    monkeypatch.setenv("PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS", "3")
    monkeypatch.delenv("CROSSMATCH_HOME", raising=False)
    server = start_server(services=True, log_file=tmp_path / "server.log")
    try:
        env = {k: v for k, v in os.environ.items() if k != "CROSSMATCH_HOME"}
        env["PREFECT_API_URL"] = server.url
        _prefect(["work-pool", "create", "crossmatch", "--type", "process"], proj, env)
        _prefect(["--no-prompt", "deploy", "--all"], proj, env)
        again = subprocess.run(  # the one-command form redeploys; the pool is kept
            [sys.executable, "-m", "crossmatch.cli", "deploy"],
            cwd=proj,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert again.returncode == 0, again.stderr[-2000:]
        assert "work pool crossmatch: exists" in again.stdout

        async def scheduled():
            async with get_client() as c:
                d = await c.read_deployment_by_name("crossmatch-nightly/nightly")
                runs = await c.read_flow_runs(
                    flow_run_filter=FlowRunFilter(
                        deployment_id=FlowRunFilterDeploymentId(any_=[d.id])
                    ),
                    sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                )
                return d, runs

        with temporary_settings(updates={PREFECT_API_URL: server.url}):
            deadline = time.monotonic() + 120
            while True:
                dep, runs = asyncio.run(scheduled())
                if len(runs) >= 3 or time.monotonic() > deadline:
                    break
                time.sleep(2)
            assert dep.pull_steps == [
                {"crossmatch.night.deploy.enter_home": {"directory": str(proj.resolve())}}
            ]
            (s,) = dep.schedules
            assert (s.schedule.cron, s.schedule.timezone, s.active) == (
                "0 2 * * *",
                "Asia/Shanghai",
                True,
            )
            assert len(runs) >= 3, "the scheduler created no runs"
            local = [r.expected_start_time.astimezone(SHANGHAI) for r in runs]
            assert all((t.hour, t.minute, t.second) == (2, 0, 0) for t in local), local
            days = [t.date() for t in local]
            assert days == sorted(set(days)) and days[1] - days[0] == dt.timedelta(days=1)
            now_sh = dt.datetime.now(SHANGHAI)
            first = now_sh.replace(hour=2, minute=0, second=0, microsecond=0)
            if first <= now_sh:
                first += dt.timedelta(days=1)
            assert local[0] == first  # the next 02:00 in Shanghai

            run = runs[0]

            async def move_to_now():
                async with get_client() as c:
                    await c.set_flow_run_state(
                        run.id, Scheduled(scheduled_time=dt.datetime.now(dt.UTC)), force=True
                    )

            asyncio.run(move_to_now())
            worker_dir = tmp_path / "worker"
            worker_dir.mkdir()
            _prefect(
                ["worker", "start", "--pool", "crossmatch", "--run-once"],
                worker_dir,
                env,
                timeout=600,
            )

            async def final():
                async with get_client() as c:
                    fr = await c.read_flow_run(run.id)
                    arts = await c.read_artifacts(
                        artifact_filter=ArtifactFilter(
                            flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])
                        )
                    )
                    return fr, arts

            fr, arts = asyncio.run(final())
        assert fr.state.is_completed(), (fr.state.name, fr.state.message)
        assert "ok (exit 0)" in fr.state.message
        assert [a.key for a in arts] == ["crossmatch-night"]
        con = duckdb.connect(str(proj / "crossmatch.duckdb"), read_only=True)
        try:
            row = con.execute(
                "SELECT outcome, exit_code, flow_run_id FROM night_run ORDER BY started_at DESC"
            ).fetchone()
        finally:
            con.close()
        assert row == ("ok", 0, str(run.id))
        assert not (worker_dir / "crossmatch.duckdb").exists()
    finally:
        server.stop()
