"""The review explanation and the clue-list export carry the subject's 模型评分 / 模型提示."""

from __future__ import annotations

import duckdb
import polars as pl

from crossmatch.export.clue_list import COLUMNS, export_clues
from crossmatch.ml.score import score_warehouse
from crossmatch.review import Review


def test_explain_and_export_show_the_model_score(county_warehouse, tmp_path):
    wh, planted = county_warehouse
    con = duckdb.connect(str(wh))
    con.execute("DROP TABLE hit")
    con.execute(
        "CREATE TABLE hit (run_id VARCHAR, rule_id VARCHAR, rule_version INTEGER, "
        "subject VARCHAR, subject_name VARCHAR, period VARCHAR, amount DECIMAL(18,2), "
        "amount_formula VARCHAR, severity VARCHAR, village_code VARCHAR, evidence JSON, "
        "clue_key VARCHAR)"
    )
    for subject in (planted["recipient"], "P00004"):
        con.execute(
            "INSERT INTO hit VALUES ('run1', 'over_standard_amount', 1, ?, '某', '2025-03', 10, "
            "'', 'medium', '341122001001', '{}', NULL)",
            [subject],
        )
    con.close()
    assert score_warehouse(wh).status["recipient"][0] == "ok"
    rv = Review(wh, store=tmp_path / "s.review.duckdb", rules_dir="rules")
    rv.sync()
    clues = rv.clues(unmask=True)
    odd = clues.filter(pl.col("subject") == planted["recipient"])["clue_id"][0]
    ex = rv.explain(odd)
    assert ex.model is not None and ex.model["entity"] == "recipient"
    assert ex.model["score"] > 90 and ex.model["reasons"]
    assert "模型评分" in str(ex) and "模型提示" in str(ex)
    out = export_clues(rv, tmp_path / "list.csv")
    df = pl.read_csv(out.path)
    got = dict(zip(df["subject_id"].str.slice(-4), df["model_score"], strict=True))
    assert got[planted["recipient"][-4:]] > got["0004"]
    assert COLUMNS["model_score"] == "模型评分" and COLUMNS["model_hint"] == "模型提示"
