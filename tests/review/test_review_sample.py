"""The review layer on the real sample county: clues against the truth, explanations, persons."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import duckdb
import pytest

from crossmatch.review import Review

from .conftest import run_cli

pytestmark = pytest.mark.slow  # the whole sample county: ingest, resolve, detect, review


ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample"


@pytest.fixture(scope="module")
def sample_review(sample_warehouse: Path, tmp_path_factory) -> Review:
    wh = tmp_path_factory.mktemp("review") / "w.duckdb"
    shutil.copy(sample_warehouse, wh)
    rv = Review(wh, rules_dir=ROOT / "rules")
    rv.sync()
    return rv


def test_clues_aggregate_the_hits_and_cover_the_planted_findings(sample_review: Review) -> None:
    clues = sample_review.clues(unmask=True)
    con = duckdb.connect(str(sample_review.warehouse), read_only=True)
    try:
        run = sample_review.latest_run()
        hits = con.execute(
            "SELECT rule_id, subject, count(DISTINCT NULLIF(period, '')), min(NULLIF(period, '')),"
            " max(NULLIF(period, '')), sum(amount) FROM hit WHERE run_id = ? GROUP BY ALL",
            [run],
        ).fetchall()
    finally:
        con.close()
    # one clue per (rule, subject) of the night's hits, with its months, periods and amount
    by_key = {(h[0], h[1]): h for h in hits}
    assert set(zip(clues["rule_id"], clues["subject"], strict=True)) == set(by_key)
    for row in clues.iter_rows(named=True):
        h = by_key[(row["rule_id"], row["subject"])]
        assert (row["months"], row["period_from"], row["period_to"]) == (h[2], h[3], h[4])
        assert row["amount"] == h[5]
    # every planted finding is a clue, with the planted months
    with open(SAMPLE / "truth" / "planted.csv", encoding="utf-8") as fh:
        cases = [r for r in csv.DictReader(fh) if r["kind"] == "case"]
    assert {(r["rule_id"], r["subject"]) for r in cases} <= set(by_key)
    periods: dict[tuple[str, str], set[str]] = {}
    for r in cases:
        if r["period"]:
            periods.setdefault((r["rule_id"], r["subject"]), set()).add(r["period"])
    months = {(r["rule_id"], r["subject"]): r["months"] for r in clues.iter_rows(named=True)}
    for key, want in periods.items():
        assert months[key] >= len(want), key


def test_explain_has_lineage_identity_kinship_and_hints(sample_review: Review) -> None:
    cid = sample_review.clues(rule="cadre_relative_recipient", limit=1)["clue_id"][0]
    exp = sample_review.explain(cid)
    assert exp.rows and all(r.file and r.row > 0 for r in exp.rows)
    assert {r.source for r in exp.rows} >= {"payment", "cadre"}
    assert any(r.identity for r in exp.rows)
    assert exp.kinship, "a favouritism clue must show its kinship path"
    assert exp.rule is not None and exp.rule.exclusion_hints
    text = str(exp)
    assert "排除提示" in text and cid in text
    # nothing unmasked: no 18-character ID number appears in full
    assert not any(len(tok) == 18 and tok[:17].isdigit() for tok in text.replace(",", " ").split())


def test_person_view_and_second_night_is_ongoing(sample_review: Review, tmp_path) -> None:
    clue = sample_review.clues(rule="deceased_recipient", unmask=True, limit=1).row(0, named=True)
    view = sample_review.person(clue["subject"], unmask=True)
    assert view["person"].height == 1
    assert view["records"].height >= 2
    assert clue["clue_id"] in view["clues"]["clue_id"].to_list()
    n = sample_review.clues().height
    run_cli(
        "detect",
        "--rules",
        str(ROOT / "rules"),
        "--warehouse",
        str(sample_review.warehouse),
    )
    res = sample_review.sync()
    assert res.counts["ongoing"] == n and res.counts["new"] == 0
    chart = sample_review.chart("rule")
    assert chart.to_dict()["mark"]["type"] == "bar"


def test_cli_clues_and_explain_mask_ids(sample_review: Review) -> None:
    from click.testing import CliRunner

    from crossmatch.cli import main

    wh = str(sample_review.warehouse)
    rules = str(ROOT / "rules")
    out = CliRunner().invoke(
        main, ["clues", "--warehouse", wh, "--rules", rules, "--rule", "ghost_recipient"]
    )
    assert out.exit_code == 0, out.output
    assert "GHO-" in out.output and "********" in out.output
    cid = sample_review.clues(rule="ghost_recipient", limit=1)["clue_id"][0]
    out = CliRunner().invoke(main, ["explain", cid, "--warehouse", wh, "--rules", rules])
    assert out.exit_code == 0 and cid in out.output and "排除提示" in out.output
    out = CliRunner().invoke(main, ["explain", "NOPE-1", "--warehouse", wh, "--rules", rules])
    assert out.exit_code != 0 and "crossmatch clues" in out.output
    out = CliRunner().invoke(
        main, ["verdict", cid, "无法核实", "--note", "外出", "--warehouse", wh]
    )
    assert out.exit_code == 0, out.output
    assert sample_review.verdicts(cid)["verdict"].to_list() == ["无法核实"]
