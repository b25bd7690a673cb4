"""run_night, the one orchestration of ``crossmatch run`` and the flows, without Prefect.

On the committed sample county (8,000 persons): a night with a whole department folder missing
is not green (exit 4, the rule skipped with the reason, a ``night_run`` row saying so); the next
night with the folder back is ok (exit 0); a rule in error exits 6, a crashed stage 6; an
analyst's notebook holding the warehouse makes the night wait and say who holds it, or give
up with exit 5 naming the holder; paths come from CROSSMATCH_HOME.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from crossmatch.cli import main
from crossmatch.errors import InputFileError
from crossmatch.night import STAGES, NightConfig, run_night

pytestmark = pytest.mark.slow  # run_night over the sample county (~35 s)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_RAW = ROOT / "data" / "sample" / "raw"


def cfg(raw: Path, wh: Path) -> NightConfig:
    return NightConfig.resolve(raw, ROOT / "sources", ROOT / "rules", wh)


def night_rows(wh: Path) -> list[dict]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        cur = con.execute("SELECT * FROM night_run ORDER BY started_at")
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    """Night 1 without the police folder, night 2 with it back (incremental)."""
    tmp = tmp_path_factory.mktemp("nights")
    raw = tmp / "raw"
    shutil.copytree(SAMPLE_RAW, raw)
    shutil.move(raw / "police", tmp / "police")
    wh = tmp / "w.duckdb"
    first = run_night(cfg(raw, wh))
    shutil.move(tmp / "police", raw / "police")
    second = run_night(cfg(raw, wh))
    return first, second, wh, raw


def test_missing_source_is_not_green(nights):
    first, _second, _wh, _raw = nights
    assert first.outcome == "incomplete" and first.exit_code == 4
    assert any(m.startswith("vehicle:") for m in first.sources_missing)
    rules = {r["rule_id"]: r for r in first.rules}
    assert rules["vehicle_on_dibao"]["status"] == "skipped"
    assert "vehicle" in rules["vehicle_on_dibao"]["reason"]
    assert rules["deceased_recipient"]["status"] == "ok"
    assert any("vehicle_on_dibao" in p for p in first.problems)
    assert first.clues["new"] > 0 and first.clues["ongoing"] == 0
    assert set(first.stages) == set(STAGES)
    assert all(s.seconds > 0 for s in first.stages.values())


def test_source_back_is_green_and_incremental(nights):
    first, second, _wh, _raw = nights
    assert second.outcome == "ok" and second.exit_code == 0, second.problems
    assert not second.problems
    per_source = {s["source"]: s for s in second.sources}
    assert per_source["vehicle"]["loaded"] == 1
    assert per_source["hukou"]["unchanged"] == 1 and per_source["hukou"]["loaded"] == 0
    assert second.clues["ongoing"] > 0
    assert second.hits > first.hits  # the vehicle rule now runs


def test_night_run_rows(nights):
    first, second, wh, _raw = nights
    rows = night_rows(wh)
    assert [r["night_id"] for r in rows] == [first.night_id, second.night_id]
    a, b = rows
    assert (a["outcome"], a["exit_code"], a["sources_missing"], a["rules_skipped"]) == (
        "incomplete",
        4,
        1,
        1,
    )
    assert (b["outcome"], b["exit_code"], b["rules_skipped"], b["rules_error"]) == ("ok", 0, 0, 0)
    assert a["hits"] == first.hits and a["clues_new"] == first.clues["new"]
    assert b["clues_ongoing"] == second.clues["ongoing"]
    assert a["peak_rss_mb"] > 50 and a["seconds"] > 0
    summary = json.loads(a["summary"])
    assert {s["source"] for s in summary["sources"]} >= {"hukou", "payment", "vehicle"}
    assert summary["stages"]["detect"]["status"] == "problems"
    assert any("vehicle_on_dibao" in p for p in summary["problems"])


def test_rule_error_exits_6(nights, tmp_path, monkeypatch):
    _f, _s, wh, raw = nights
    copy = tmp_path / "w.duckdb"
    shutil.copy(wh, copy)
    from crossmatch.detect import rule_runner

    real = rule_runner.execute_rule

    def broken(con, spec, params=None):
        if spec.id == "shared_account":
            raise RuntimeError("boom in the rule")
        return real(con, spec, params)

    monkeypatch.setattr(rule_runner, "execute_rule", broken)
    # unchanged inputs would reuse the previous hits (detect/reuse.py): make the rules run
    from crossmatch.detect import reuse

    monkeypatch.setattr(reuse, "previous_runs", lambda con, fps: {})
    res = run_night(cfg(raw, copy), from_stage="detect")
    assert res.outcome == "failed" and res.exit_code == 6
    assert {r["rule_id"]: r["status"] for r in res.rules}["shared_account"] == "error"
    assert res.stages["ingest"].status == "not run"
    assert night_rows(copy)[-1]["exit_code"] == 6


def test_crashed_stage_exits_6_and_is_recorded(nights, tmp_path):
    _f, _s, wh, raw = nights
    copy = tmp_path / "w.duckdb"
    shutil.copy(wh, copy)

    def stage(name, fn):
        if name == "kinship":
            raise MemoryError("out of memory in kinship")
        return fn()

    res = run_night(cfg(raw, copy), from_stage="resolve", stage=stage)
    assert res.outcome == "failed" and res.exit_code == 6
    assert res.stages["resolve"].status == "ok"
    assert res.stages["kinship"].status == "failed"
    assert res.stages["detect"].status == "not run"
    row = night_rows(copy)[-1]
    assert row["outcome"] == "failed" and "MemoryError" in json.loads(row["summary"])["problems"][0]


def test_workspace_hook_builds_elsewhere(nights, tmp_path):
    """The hook an atomic publish plugs into: stages build in the yielded file."""
    _f, _s, wh, raw = nights
    live = tmp_path / "live.duckdb"
    shutil.copy(wh, live)
    seen: list[Path] = []

    @contextmanager
    def build_copy(warehouse: Path):
        work = warehouse.with_suffix(".building")
        shutil.copy(warehouse, work)
        yield work
        seen.append(work)
        work.replace(warehouse)  # publish

    before = night_rows(live)
    res = run_night(cfg(raw, live), from_stage="detect", workspace=build_copy)
    assert res.exit_code == 0, res.problems
    assert seen == [live.with_suffix(".building")] and not seen[0].exists()
    con = duckdb.connect(str(live), read_only=True)
    try:  # the published file holds the rerun's detect run
        ids = {r[0] for r in con.execute("SELECT run_id FROM detect_run").fetchall()}
    finally:
        con.close()
    assert res.detect_run_id in ids
    assert len(night_rows(live)) == len(before) + 1


NOTEBOOK = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
con.execute("SELECT count(*) FROM night_run").fetchone()
print("open", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def _notebook(wh: Path, hold: float) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-c", NOTEBOOK, str(wh), str(hold)], stdout=subprocess.PIPE, text=True
    )
    assert p.stdout is not None and p.stdout.readline().strip() == "open"
    return p


def test_notebook_holding_the_warehouse_gives_up_with_5(nights, tmp_path, caplog):
    _f, _s, wh, raw = nights
    copy = tmp_path / "w.duckdb"
    shutil.copy(wh, copy)
    nb = _notebook(copy, 60)
    try:
        t0 = time.monotonic()
        res = run_night(cfg(raw, copy), from_stage="clues", wait_seconds=2)
        assert time.monotonic() - t0 < 30
    finally:
        nb.kill()
        nb.wait()
    assert res.outcome == "warehouse" and res.exit_code == 5
    assert f"PID {nb.pid}" in res.error and "notebook" in res.error
    assert f"PID {nb.pid}" in caplog.text  # said while waiting


def test_notebook_closing_lets_the_night_through(nights, tmp_path, caplog):
    _f, _s, wh, raw = nights
    copy = tmp_path / "w.duckdb"
    shutil.copy(wh, copy)
    nb = _notebook(copy, 3)
    try:
        res = run_night(cfg(raw, copy), from_stage="clues", wait_seconds=120)
    finally:
        nb.wait(30)
    assert res.exit_code == 0, res.problems
    assert "held open by" in caplog.text and "waiting" in caplog.text


def test_notebook_never_blocks_a_build_copy(nights, tmp_path):
    """With a build-and-publish workspace the notebook reads the published file throughout;
    the night neither waits for it nor fails."""
    _f, _s, wh, raw = nights
    live = tmp_path / "live.duckdb"
    shutil.copy(wh, live)

    @contextmanager
    def build_copy(warehouse: Path):
        work = warehouse.with_suffix(".building")
        shutil.copy(warehouse, work)
        yield work
        work.replace(warehouse)

    nb = _notebook(live, 120)
    try:
        t0 = time.monotonic()
        res = run_night(cfg(raw, live), from_stage="detect", workspace=build_copy, wait_seconds=5)
        took = time.monotonic() - t0
        assert nb.poll() is None  # the notebook is still open on the old file
    finally:
        nb.kill()
        nb.wait()
    assert res.exit_code == 0, res.problems
    assert res.stages["clues"].status == "ok" and res.clues["new"] > 0
    from crossmatch.review.store import store_path

    assert store_path(live).exists()  # the store sits beside the published file, not the build
    assert not store_path(live.with_suffix(".building")).exists()
    assert took < 120
    row = night_rows(live)[-1]  # published with the results (provisional: clues pending)
    assert (row["night_id"], row["outcome"]) == (res.night_id, "ok")


def test_paths_from_crossmatch_home(tmp_path, monkeypatch):
    home = tmp_path / "proj"
    home.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CROSSMATCH_HOME", str(home))
    monkeypatch.delenv("CROSSMATCH_WAREHOUSE", raising=False)
    c = NightConfig.resolve()
    assert (c.raw, c.sources, c.rules, c.warehouse) == (
        home.resolve() / "data/sample/raw",
        home.resolve() / "sources",
        home.resolve() / "rules",
        home.resolve() / "crossmatch.duckdb",
    )
    monkeypatch.setenv("CROSSMATCH_WAREHOUSE", "/srv/wh/x.duckdb")
    assert NightConfig.resolve().warehouse == Path("/srv/wh/x.duckdb")
    assert NightConfig.resolve(warehouse="y.duckdb").warehouse == home.resolve() / "y.duckdb"
    monkeypatch.setenv("CROSSMATCH_HOME", str(tmp_path / "nowhere"))
    with pytest.raises(InputFileError, match="CROSSMATCH_HOME"):
        NightConfig.resolve()
    monkeypatch.delenv("CROSSMATCH_HOME")
    assert NightConfig.resolve().sources == tmp_path / "sources"


def test_cli_run_exit_code_and_summary(nights, tmp_path, monkeypatch):
    _f, _s, wh, raw = nights
    copy = tmp_path / "w.duckdb"
    shutil.copy(wh, copy)
    monkeypatch.setenv("CROSSMATCH_HOME", str(ROOT))
    args = ["run", "--raw", str(raw), "--warehouse", str(copy), "--from-stage", "detect"]
    ok = CliRunner().invoke(main, args)
    assert ok.exit_code == 0, ok.output
    assert "ok (exit 0)" in ok.output and "## Rules" in ok.output
    bad = CliRunner().invoke(main, [*args, "--rules", str(tmp_path / "no-rules")])
    assert bad.exit_code != 0
    assert night_rows(copy)[-1]["exit_code"] == bad.exit_code


def test_default_workspace_is_the_atomic_build():
    from crossmatch.night.run import default_workspace, in_place
    from crossmatch.publish import night_build

    assert default_workspace() is night_build
    assert default_workspace() is not in_place
