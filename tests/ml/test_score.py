"""score_warehouse end to end on a small seeded warehouse: tables, the artefact, reproduction,
the current model on the next night, the review explanation and export columns."""

from __future__ import annotations

import json

import duckdb
import polars as pl

from crossmatch.ml import features as F
from crossmatch.ml import model as M
from crossmatch.ml.score import entity_scores, score_warehouse


def test_scores_stored_with_the_run_and_planted_entities_lead(county_warehouse):
    wh, planted = county_warehouse
    res = score_warehouse(wh)
    assert res.trained and res.run_id == "run1"
    assert res.status["recipient"][0] == "ok"
    assert res.status["official"][0] == "skipped"  # no cadres in this county
    con = duckdb.connect(str(wh), read_only=True)
    runs = dict(con.execute("SELECT entity, status FROM ml_run WHERE run_id = 'run1'").fetchall())
    assert runs["official"] == "skipped" and runs["village"] == "ok"
    for entity, eid in planted.items():
        rank = con.execute(
            "SELECT rank FROM ml_score WHERE entity = ? AND entity_id = ?", [entity, eid]
        ).fetchone()
        assert rank is not None and rank[0] <= 2, (entity, eid, rank)
    texts = [r[0] for r in con.execute(
        "SELECT text FROM ml_reason WHERE entity = 'village' AND entity_id = ? ORDER BY k",
        [planted["village"]],
    ).fetchall()]  # fmt: skip
    assert any(t.startswith("本村残疾人两项补贴发放额为按本村人口年龄结构预期的") for t in texts), (
        texts
    )
    got = entity_scores(con, [planted["recipient"], "nobody"])
    assert set(got) == {planted["recipient"]} and got[planted["recipient"]]["reasons"]
    con.close()


def test_model_artefact_reproduces_the_scores(county_warehouse):
    wh, _ = county_warehouse
    res = score_warehouse(wh)
    model = M.load(wh)
    assert model is not None and model.model_id == res.model_id
    meta = json.loads((M.models_dir(wh) / res.model_id / "model.json").read_text())
    for key in ("features", "params", "training_fingerprint", "versions", "created",
                "feature_digest"):  # fmt: skip
        assert meta[key], key
    assert meta["versions"]["scikit-learn"] != "?"
    con = duckdb.connect(str(wh), read_only=True)
    frames = {e: x.frame for e, x in F.compute(con, "run1").items() if x.status != "skipped"}
    stored = pl.from_arrow(con.execute("SELECT * FROM ml_score").to_arrow_table())
    con.close()
    assert M.frame_fingerprint(frames) == meta["training_fingerprint"]
    assert M.reproduce(model, frames, stored) < 1e-12
    # a changed score would be caught
    bumped = stored.with_columns(pl.col("ensemble") + 0.01)
    assert M.reproduce(model, frames, bumped) > 0.009


def test_next_night_uses_the_current_model_unless_retrained(county_warehouse):
    wh, _ = county_warehouse
    first = score_warehouse(wh)
    again = score_warehouse(wh)
    assert not again.trained and again.model_id == first.model_id
    con = duckdb.connect(str(wh), read_only=True)
    # scoring the same run twice replaces its rows
    assert con.execute("SELECT count(*) FROM ml_run WHERE run_id = 'run1'").fetchone()[0] == 5
    con.close()
    new = score_warehouse(wh, retrain=True)
    assert new.trained
    assert (M.models_dir(wh) / "CURRENT-unsupervised").read_text().strip() == new.model_id


def test_a_warehouse_without_payments_is_skipped_not_ok(county_warehouse):
    wh, _ = county_warehouse
    con = duckdb.connect(str(wh))
    con.execute("DROP TABLE r_payment")
    con.close()
    res = score_warehouse(wh)
    assert not res.ok
    assert res.status["recipient"][0] == "skipped" and "r_payment" in res.status["recipient"][1]
    assert res.status["handler"][0] == "ok"
