"""Pruning old runs' hits and scores: what is kept, what reuse sees, the CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
from click.testing import CliRunner

from crossmatch.cli import main
from crossmatch.detect.reuse import RULE_INPUT_DDL, previous_runs
from crossmatch.detect.rule_runner import HIT_DDL
from crossmatch.ml import model as M
from crossmatch.ml.score import DDL as ML_DDL
from crossmatch.night import retention
from crossmatch.review.store import STORE_DDL, store_path


def _warehouse(path: Path, runs: int) -> None:
    con = duckdb.connect(str(path))
    con.execute(HIT_DDL)
    con.execute(RULE_INPUT_DDL)
    con.execute(ML_DDL)
    t0 = dt.datetime(2026, 11, 1)
    for i in range(runs):
        run = f"r{i:02d}"
        at = t0 + dt.timedelta(days=i)
        con.execute("INSERT INTO detect_run VALUES (?, ?, ?, 'finished', 1, 2)", [run, at, at])
        con.execute("INSERT INTO rule_run VALUES (?, 'x', 1, 'ok', '', 2, 0, 0, ?)", [run, at])
        con.execute("INSERT INTO rule_input VALUES (?, 'x', 'fp-same', NULL)", [run])
        for s in ("P1", "P2"):
            con.execute(
                "INSERT INTO hit (run_id, rule_id, subject, amount) VALUES (?, 'x', ?, 1)",
                [run, s],
            )
        con.execute("INSERT INTO ml_run VALUES (?, 'm1', 'person', 'ok', '', 2, 0, ?)", [run, at])
        con.execute(
            "INSERT INTO ml_score (run_id, model_id, entity, entity_id) "
            "VALUES (?, 'm1', 'person', 'P1')",
            [run],
        )
        con.execute("INSERT INTO ml_input VALUES (?, 'm1', 'f', NULL, ?)", [run, at])
    con.close()


def _store(warehouse: Path, last_runs: list[str]) -> None:
    con = duckdb.connect(str(store_path(warehouse)))
    con.execute(STORE_DDL)
    for i, run in enumerate(last_runs):
        con.execute(
            "INSERT INTO clue (clue_id, rule_id, subject, last_run) VALUES (?, 'x', ?, ?)",
            [f"c{i}", f"P{i}", run],
        )
    con.close()


def test_prune_keeps_latest_nights_and_clue_runs_and_hides_pruned_runs_from_reuse(
    tmp_path: Path,
) -> None:
    wh = tmp_path / "w.duckdb"
    _warehouse(wh, 10)
    _store(wh, ["r02"])  # a closed clue last seen in an old run: its evidence stays
    con = duckdb.connect(str(wh))
    dry = retention.prune(con, keep_nights=3, clue_runs=retention.clue_runs(wh), dry_run=True)
    assert dry.hit_rows == 12 and con.execute("SELECT count(*) FROM hit").fetchone()[0] == 20
    out = retention.prune(con, keep_nights=3, clue_runs=retention.clue_runs(wh))
    assert sorted(out.kept) == ["r02", "r07", "r08", "r09"] and out.protected == 1
    assert out.hit_rows == 12 and out.ml_rows == 6
    left = {r[0] for r in con.execute("SELECT DISTINCT run_id FROM hit").fetchall()}
    assert left == {"r02", "r07", "r08", "r09"}
    assert con.execute("SELECT count(*) FROM ml_input").fetchone()[0] == 4
    # history stays, marked; reuse never copies from a pruned run
    assert con.execute("SELECT count(*) FROM rule_run").fetchone()[0] == 10
    assert con.execute("SELECT count(*) FROM detect_run WHERE status = 'pruned'").fetchone()[0] == 6
    con.execute("DELETE FROM rule_input WHERE run_id IN ('r07', 'r08', 'r09', 'r02')")
    assert previous_runs(con, {"x": "fp-same"}) == {}
    assert con.execute("SELECT runs, hit_rows FROM prune_log").fetchall() == [(6, 12)]
    again = retention.prune(con, keep_nights=3, clue_runs=retention.clue_runs(wh))
    assert again.pruned == [] and "nothing to delete" in again.render()
    con.close()


def test_prune_without_a_readable_store_deletes_nothing(tmp_path: Path) -> None:
    wh = tmp_path / "w.duckdb"
    _warehouse(wh, 5)
    store_path(wh).write_bytes(b"not a duckdb file")
    runs = retention.clue_runs(wh)
    assert runs is None
    con = duckdb.connect(str(wh))
    out = retention.prune(con, keep_nights=1, clue_runs=runs)
    assert out.skipped and "review store" in out.render()
    assert con.execute("SELECT count(*) FROM hit").fetchone()[0] == 10
    con.close()


def test_prune_cli_dry_run_then_prune_and_unused_models(tmp_path: Path) -> None:
    wh = tmp_path / "w.duckdb"
    _warehouse(wh, 4)
    root = M.models_dir(wh)
    for mid, kind in (("m1", "unsupervised"), ("m-dead", "unsupervised"), ("s1", "supervised")):
        (root / mid).mkdir(parents=True)
        (root / mid / "model.json").write_text(json.dumps({"kind": kind}))
    (root / "CURRENT-unsupervised").write_text("m1\n")
    r = CliRunner().invoke(main, ["prune", "--warehouse", str(wh), "--keep-nights", "2",
                                  "--dry-run"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "would delete 4 hit rows" in r.output and "m-dead" in r.output
    assert (root / "m-dead").exists()
    r = CliRunner().invoke(main, ["prune", "--warehouse", str(wh), "--keep-nights", "2"])
    assert r.exit_code == 0, r.output
    assert "deleted 4 hit rows" in r.output
    assert not (root / "m-dead").exists() and (root / "m1").exists() and (root / "s1").exists()
