"""The night's score and report stages, on a generated 3,000-person county (seed 7).

A night scores its detect run with the current model inside the build copy (the model is fitted
on the first night and made current once its scores are published) and writes the HTML report
beside the warehouse; an unchanged night copies the scores instead of computing features; a
crash in scoring or in the report marks that stage failed (exit 6) and the clues are still
published and synced; ``ml_fit="never"`` without a model skips the stage with the reason.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import duckdb
import pytest

from build_cache import cached_build, module_closure
from crossmatch.ml import model as M
from crossmatch.night import NightConfig, run_night
from crossmatch.night.run import default_workspace
from crossmatch.synth import generate

ROOT = Path(__file__).resolve().parents[2]
# two whole nights on a generated county (~18 s of fixture); the stages' own behaviour is in the
# default tier: tests/ml/test_score.py (scoring, reuse of a model), tests/governance (the report)
pytestmark = pytest.mark.slow


def night(raw: Path, wh: Path, **kw):
    cfg = NightConfig.resolve(raw, ROOT / "sources", ROOT / "rules", wh)
    return run_night(cfg, workspace=default_workspace(), **kw)


def q(path: Path, sql: str, args: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, args or []).fetchall()
    finally:
        con.close()


def synced_runs(wh: Path) -> set[str]:
    store = wh.with_name(wh.stem + ".review.duckdb")
    return {r[0] for r in q(store, "SELECT run_id FROM review_run")}


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    """Night 1 (fits the first model), then night 2 with nothing changed and feature
    computation made to fail: it must reuse, never compute (run with ``even_if_unchanged``:
    by default a night that changes nothing runs no stage, tests/night/test_unchanged_night.py)."""
    tmp = tmp_path_factory.mktemp("score-night")
    generated = cached_build(
        tmp_path_factory,
        "night-county-3000-7",
        lambda out: generate(persons=3000, seed=7, out=out),
        module_closure("crossmatch.synth"),
    )
    shutil.copytree(generated / "raw", tmp / "county" / "raw")
    raw = tmp / "county" / "raw"
    wh = tmp / "out" / "w.duckdb"
    first = night(raw, wh)
    with pytest.MonkeyPatch.context() as mp:
        from crossmatch.ml import features

        def no_compute(*a, **k):
            raise AssertionError("features computed on an unchanged night")

        mp.setattr(features, "compute", no_compute)
        second = night(raw, wh, even_if_unchanged=True)  # the stages run: score reuses
    return raw, wh, first, second


def crash(monkeypatch, module, name: str, exc: Exception) -> None:
    """Make ``module.name`` raise ``exc`` when the night calls it."""

    def boom(*a, **k):
        raise exc

    monkeypatch.setattr(module, name, boom)


def copy_of(wh: Path, dst: Path) -> Path:
    shutil.copytree(wh.parent, dst / "out")
    return dst / "out" / wh.name


def test_night_scores_its_detect_run_with_the_current_model(county):
    _raw, wh, first, _second = county
    st = first.stages["score"]
    assert st.status == "ok", st.problems
    assert first.ml["trained"] and first.ml["model_id"]
    # made current after publishing, the artefact beside the published warehouse (not the build)
    assert M.current_id(wh) == first.ml["model_id"]
    assert (M.models_dir(wh) / first.ml["model_id"] / "model.json").exists()
    assert not list(wh.parent.glob(".*night-*"))  # no build (or its models) left behind
    rows = dict(
        q(
            wh,
            "SELECT entity, count(*) FROM ml_score WHERE run_id = ? GROUP BY 1",
            [first.detect_run_id],
        )
    )
    assert set(rows) == {"recipient", "household", "village", "handler", "official"}
    assert rows == {e: k["entities"] for e, k in first.ml["kinds"].items()}
    models = q(wh, "SELECT DISTINCT model_id FROM ml_run WHERE run_id = ?", [first.detect_run_id])
    assert models == [(first.ml["model_id"],)]
    summary = json.loads(
        q(wh, "SELECT summary FROM night_run WHERE night_id = ?", [first.night_id])[0][0]
    )
    assert summary["ml"]["model_id"] == first.ml["model_id"]
    assert summary["stages"]["score"]["status"] == "ok"
    assert f"model {first.ml['model_id']}" in first.markdown()


def test_night_writes_the_report_beside_the_warehouse(county):
    _raw, wh, first, _second = county
    st = first.stages["report"]
    assert st.status in ("ok", "blind") and (st.status == "ok") == (not st.problems)
    path = Path(first.report_path)
    assert path.parent == wh.parent and path.name == f"w.report_{first.detect_run_id}.html"
    page = path.read_text(encoding="utf-8")
    data = json.loads(
        re.search(r'id="report-data">(.*?)</script>', page, re.S).group(1).replace("&amp;", "&")
    )
    assert data["run_id"] == first.detect_run_id and data["charts"]
    assert str(path) in first.markdown()  # the outcome table names it
    assert not list(wh.parent.glob(".*.tmp"))


def test_unchanged_night_reuses_the_scores(county):
    _raw, wh, first, second = county
    st = second.stages["score"]
    assert st.status == "ok", st.problems
    assert second.ml["reused_from"] == first.detect_run_id
    assert not second.ml["trained"] and second.ml["model_id"] == first.ml["model_id"]
    assert "reused" in second.markdown()
    a, b = (
        q(
            wh,
            "SELECT entity, entity_id, ensemble, rank FROM ml_score WHERE run_id = ? ORDER BY ALL",
            [r.detect_run_id],
        )
        for r in (first, second)
    )
    assert a == b and len(a) > 1000
    assert q(wh, "SELECT reused_from FROM ml_input WHERE run_id = ?", [second.detect_run_id]) == [
        (first.detect_run_id,)
    ]
    assert second.report_path != first.report_path and Path(second.report_path).exists()


def test_changed_input_rescores_from_stage_score(county, tmp_path):
    _raw, wh, _first, second = county
    wh = copy_of(wh, tmp_path)
    con = duckdb.connect(str(wh))
    # tonight's hits differ (the features count them): the scores must be computed again
    con.execute(
        "DELETE FROM hit WHERE run_id = ? AND subject IN (SELECT subject FROM hit "
        "WHERE run_id = ? ORDER BY subject LIMIT 30)",
        [second.detect_run_id, second.detect_run_id],
    )
    con.close()
    res = night(_raw, wh, from_stage="score")
    assert [n for n, s in res.stages.items() if s.status == "not run"] == [
        "ingest", "resolve", "kinship", "detect"
    ]  # fmt: skip
    assert res.stages["score"].status == "ok" and res.ml["reused_from"] == ""
    run = res.ml["run_id"]
    assert run == second.detect_run_id  # the latest detect run, scored again from new inputs
    assert q(wh, "SELECT reused_from FROM ml_input WHERE run_id = ?", [run]) == [(None,)]


def test_scoring_crash_keeps_the_clues_and_exits_6(county, tmp_path, monkeypatch):
    raw, wh, _first, second = county
    wh = copy_of(wh, tmp_path)
    from crossmatch.night import run as night_run

    crash(monkeypatch, night_run, "score_warehouse", RuntimeError("boom in scoring"))
    res = night(raw, wh, even_if_unchanged=True)
    st = res.stages["score"]
    assert st.status == "failed" and st.problems == ["RuntimeError: boom in scoring"]
    assert res.outcome == "failed" and res.exit_code == 6
    assert any(p.startswith("stage score failed: RuntimeError") for p in res.problems)
    # the build was published and its clues synced all the same
    assert res.detect_run_id != second.detect_run_id
    latest = q(wh, "SELECT run_id FROM detect_run WHERE status = 'finished' "
                   "ORDER BY finished_at DESC LIMIT 1")  # fmt: skip
    assert latest == [(res.detect_run_id,)]
    assert res.detect_run_id in synced_runs(wh)
    assert res.stages["clues"].status == "ok" and res.clues["ongoing"] > 0
    assert q(wh, "SELECT count(*) FROM ml_score WHERE run_id = ?", [res.detect_run_id]) == [(0,)]
    row = q(wh, "SELECT outcome, exit_code FROM night_run WHERE night_id = ?", [res.night_id])
    assert row == [("failed", 6)]


def test_report_crash_is_a_failed_stage_not_a_lost_night(county, tmp_path, monkeypatch):
    raw, wh, _first, _second = county
    wh = copy_of(wh, tmp_path)
    from crossmatch.night import run as night_run

    crash(monkeypatch, night_run, "refresh_and_report", OSError("disk gone writing the report"))
    res = night(raw, wh, from_stage="clues")
    assert res.stages["clues"].status == "ok"
    assert res.stages["report"].status == "failed"
    assert "disk gone" in res.stages["report"].problems[0]
    assert res.exit_code == 6 and not res.report_path


def test_no_model_and_no_fitting_is_skipped_not_ok(county, tmp_path):
    raw, wh, _first, _second = county
    wh = copy_of(wh, tmp_path)
    shutil.rmtree(M.models_dir(wh))
    res = night(raw, wh, from_stage="score", ml_fit="never")
    st = res.stages["score"]
    assert st.status == "skipped" and "no usable model" in st.problems[0]
    assert res.outcome in ("incomplete",) and res.exit_code == 4
    assert any(p.startswith("stage score skipped") for p in res.problems)
    assert M.current_id(wh) is None
