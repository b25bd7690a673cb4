"""A night when nothing changed: last night's results stand and the run takes seconds.

On a generated 3,000-person county (seed 7): night 1 builds everything; night 2 on the same
files builds nothing (no copy, no stage, no new detect run), says so, keeps the rule statuses,
hits and clues, and re-stamps when each source was last present; what does change the night
(a rule file, a missing source, an analyst's verdict for the report, ``even_if_unchanged``)
is honoured.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from build_cache import cached_build, module_closure
from crossmatch.night import NightConfig, run_night
from crossmatch.night.run import default_workspace
from crossmatch.publish import acquire_lock
from crossmatch.synth import generate

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # whole nights (~10 s each); the CLI path is in tests/flows


def night(raw: Path, wh: Path, rules: Path = ROOT / "rules", **kw):
    cfg = NightConfig.resolve(raw, ROOT / "sources", rules, wh)
    return run_night(cfg, workspace=default_workspace(), **kw)


def q(path: Path, sql: str, args: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, args or []).fetchall()
    finally:
        con.close()


def seen(wh: Path) -> dict[str, object]:
    return dict(q(wh, "SELECT stage, finished_at FROM stage_state WHERE stage LIKE 'seen:%'"))


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("unchanged-night")
    generated = cached_build(
        tmp_path_factory,
        "night-county-3000-7",
        lambda out: generate(persons=3000, seed=7, out=out),
        module_closure("crossmatch.synth"),
    )
    shutil.copytree(generated / "raw", tmp / "raw")
    wh = tmp / "out" / "w.duckdb"
    first = night(tmp / "raw", wh)
    assert first.outcome == "ok", first.problems
    before = seen(wh)
    second = night(tmp / "raw", wh)
    return tmp / "raw", wh, first, second, before


def copy_of(wh: Path, dst: Path) -> Path:
    shutil.copytree(wh.parent, dst / "out")
    return dst / "out" / wh.name


def test_nothing_changed_builds_nothing_and_says_so(county):
    _raw, wh, first, second, before = county
    assert second.unchanged_since == first.night_id
    assert {s.status for s in second.stages.values()} == {"unchanged"}
    assert second.outcome == "ok" and second.exit_code == 0
    # the same detect run stands: no new run, the same rule statuses and hits
    assert second.detect_run_id == first.detect_run_id
    assert q(wh, "SELECT count(*) FROM detect_run") == [(1,)]
    assert [(r["rule_id"], r["status"], r["hits"]) for r in second.rules] == [
        (r["rule_id"], r["status"], r["hits"]) for r in first.rules
    ]
    assert second.hits == first.hits > 0
    # every clue of night 1 is ongoing, none new or closed
    assert second.clues["new"] == second.clues["closed"] == 0
    assert second.clues["ongoing"] == first.clues["new"] > 0
    assert second.report_path == first.report_path and Path(second.report_path).exists()
    assert not list(wh.parent.glob(".*night-*"))  # no build copy was made
    assert "Nothing changed since night " + first.night_id in second.markdown()
    row = q(wh, "SELECT outcome, exit_code, hits, summary FROM night_run WHERE night_id = ?",
            [second.night_id])  # fmt: skip
    assert row[0][:3] == ("ok", 0, first.hits)
    assert json.loads(row[0][3])["unchanged_since"] == first.night_id
    # data age counts from tonight: every source's export is present
    after = seen(wh)
    assert after.keys() == before.keys() and len(after) > 10
    assert all(after[k] > before[k] for k in after)


def test_a_changed_rule_runs_the_night(county, tmp_path):
    raw, wh, first, _second, _ = county
    wh = copy_of(wh, tmp_path)
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    f = next(rules.glob("deceased_recipient.y*ml"))
    f.write_text(f.read_text(encoding="utf-8").replace("severity: high", "severity: medium", 1),
                 encoding="utf-8")  # fmt: skip
    res = night(raw, wh, rules=rules)
    assert not res.unchanged_since
    assert res.stages["detect"].status == "ok" and res.detect_run_id != first.detect_run_id


def test_even_if_unchanged_runs_every_stage(county, tmp_path):
    raw, wh, first, _second, _ = county
    wh = copy_of(wh, tmp_path)
    res = night(raw, wh, even_if_unchanged=True)
    assert not res.unchanged_since
    assert all(s.status == "ok" for s in res.stages.values()), res.stages
    assert res.detect_run_id != first.detect_run_id and res.hits == first.hits


def test_an_analysts_verdict_refreshes_the_report(county, tmp_path):
    raw, wh, first, _second, _ = county
    wh = copy_of(wh, tmp_path)
    from crossmatch.review import Review

    rv = Review(wh)
    rv.mark(rv.clues()["clue_id"][0], "属实", note="checked at the village office")
    report = wh.parent / Path(first.report_path).name
    mtime = report.stat().st_mtime_ns
    res = night(raw, wh)
    assert res.unchanged_since == first.night_id
    assert res.stages["report"].status in ("ok", "blind")  # written again, for the same run
    assert res.stages["detect"].status == "unchanged"
    assert Path(res.report_path) == report and report.stat().st_mtime_ns > mtime
    again = night(raw, wh)  # nothing since: the report stands
    assert again.stages["report"].status == "unchanged"


def test_a_source_missing_stays_incomplete(county, tmp_path):
    raw, wh, _first, _second, _ = county
    wh = copy_of(wh, tmp_path)
    short = tmp_path / "raw"
    shutil.copytree(raw, short)
    shutil.rmtree(short / "police")  # the vehicle register
    one = night(short, wh)
    assert not one.unchanged_since and one.exit_code == 4
    stamps_one = seen(wh)
    two = night(short, wh)
    assert two.unchanged_since == one.night_id
    assert two.outcome == "incomplete" and two.exit_code == 4  # never green over a gap
    assert two.sources_missing == one.sources_missing and two.sources_missing
    status = {r["rule_id"]: (r["status"], r["reason"]) for r in two.rules}
    assert status == {r["rule_id"]: (r["status"], r["reason"]) for r in one.rules}
    assert any(p.startswith("source missing: vehicle") for p in two.problems)
    stamps = seen(wh)
    assert stamps["seen:vehicle"] == stamps_one["seen:vehicle"]  # the gap ages on
    assert stamps["seen:death"] > stamps_one["seen:death"]
    short.joinpath("police").mkdir()  # the export is back: a change, the night runs
    shutil.copytree(raw / "police", short / "police", dirs_exist_ok=True)
    three = night(short, wh)
    assert not three.unchanged_since and three.outcome == "ok", three.problems


def test_another_night_running_refuses_at_once(county, tmp_path):
    raw, wh, _first, _second, _ = county
    wh = copy_of(wh, tmp_path)
    lock = acquire_lock(wh, "someone-else")
    try:
        res = night(raw, wh, wait_seconds=0)
    finally:
        lock.release()
    assert res.outcome == "warehouse" and res.exit_code == 5
    assert "another crossmatch night is running" in res.error
