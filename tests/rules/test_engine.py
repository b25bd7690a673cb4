"""Engine behaviour: skipped vs zero hits, errors isolated, hits stored with stable keys."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from crossmatch.detect import run_rules
from crossmatch.detect.engine import clue_key
from crossmatch.detect.kinds import bh_adjust
from crossmatch.errors import SpecError

from .conftest import RULES_DIR, build_warehouse

PAY = {"item": "城乡低保金", "amount": 500, "status": "success"}


def _dead_payee_warehouse(with_ingest: bool = False):
    tables = {
        "person": [
            {"person_id": "A", "name": "张三", "death_date": "2025-01-10", "in_registry": True}
        ],
        "r_payment": [
            {
                **PAY,
                "payee_pid": "A",
                "payee_name": "张三",
                "period": "2025-05",
                "_file": "finance/q2.csv",
                "_row": 7,
            }
        ],
        "r_death": [{"person_pid": "A", "death_date": "2025-01-10"}],
        "identity_link": [
            {
                "source": "payment",
                "file": "finance/q2.csv",
                "row": 7,
                "role": "payee",
                "person_id": "A",
                "method": "exact",
                "probability": 1.0,
            }
        ],
    }
    if with_ingest:
        tables["ingest_file"] = [
            {"source": "payment", "file": "finance/q2.csv", "rows_loaded": 1, "status": "ok"},
            {"source": "death", "file": "death/d.xlsx", "rows_loaded": 1, "status": "ok"},
        ]
    return build_warehouse(tables)


def test_hits_stored_with_key_evidence_and_links():
    con = _dead_payee_warehouse()
    res = run_rules(con, RULES_DIR, only=["deceased_recipient"])
    (o,) = res.outcomes
    assert (o.status, o.hits, o.amount) == ("ok", 1, 500.0)
    row = con.execute(
        "SELECT subject, period, amount, clue_key, evidence, severity FROM hit"
    ).fetchone()
    assert row[:3] == ("A", "2025-05", 500)
    assert row[3] == clue_key("deceased_recipient", "A", "2025-05")
    ev = json.loads(row[4])
    assert {"file": "finance/q2.csv", "row": 7} in [
        {k: r[k] for k in ("file", "row")} for r in ev["rows"]
    ]
    assert ev["identity_links"][0]["method"] == "exact"
    assert row[5] == "high"
    runs = con.execute("SELECT rule_id, status, hits FROM rule_run").fetchall()
    assert runs == [("deceased_recipient", "ok", 1)]


def test_clue_key_is_stable_across_runs():
    con = _dead_payee_warehouse()
    run_rules(con, RULES_DIR, only=["deceased_recipient"])
    run_rules(con, RULES_DIR, only=["deceased_recipient"])
    keys = con.execute("SELECT DISTINCT clue_key FROM hit").fetchall()
    runs = con.execute("SELECT count(DISTINCT run_id) FROM hit").fetchone()[0]
    assert len(keys) == 1 and runs == 2


def test_missing_source_is_skipped_not_zero():
    con = _dead_payee_warehouse(with_ingest=True)
    res = run_rules(con, RULES_DIR, only=["vehicle_on_dibao", "deceased_recipient"])
    by = {o.rule_id: o for o in res.outcomes}
    assert by["vehicle_on_dibao"].status == "skipped"
    assert "assistance" in by["vehicle_on_dibao"].reason
    assert by["deceased_recipient"].status == "ok"


def test_failed_source_is_skipped_with_reason():
    con = _dead_payee_warehouse(with_ingest=True)
    con.execute("UPDATE ingest_file SET status = 'failed', rows_loaded = 0 WHERE source = 'death'")
    res = run_rules(con, RULES_DIR, only=["deceased_recipient"])
    # death is one of death/cremation/hukou: all three unusable -> skipped
    assert res.outcomes[0].status == "skipped"
    assert "failed" in res.outcomes[0].reason


def test_erroring_rule_does_not_stop_others(tmp_path: Path):
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    bad = (rules / "ghost_recipient.yaml").read_text(encoding="utf-8")
    # compiles against the contract but fails at run time (division by zero on a cast)
    bad = bad.replace("sum(amount) AS amount", "sum(amount) / CAST('x' AS INTEGER) AS amount")
    assert "CAST('x'" in bad
    (rules / "ghost_recipient.yaml").write_text(bad, encoding="utf-8")
    con = _dead_payee_warehouse()
    con.execute("INSERT INTO person (person_id, in_registry) VALUES ('G', false)")
    con.execute(
        "INSERT INTO r_payment (payee_pid, item, amount, period, status, _row) "
        "VALUES ('G', '城乡低保金', 1, '2025-03', 'success', 9)"
    )
    con.execute("CREATE TABLE r_hukou AS SELECT 'A' AS person_pid")  # registry present
    res = run_rules(con, rules, only=["ghost_recipient", "deceased_recipient"])
    by = {o.rule_id: o for o in res.outcomes}
    assert by["ghost_recipient"].status == "error" and by["ghost_recipient"].reason
    assert by["deceased_recipient"].status == "ok" and by["deceased_recipient"].hits == 1
    assert (
        con.execute("SELECT count(*) FROM hit WHERE rule_id = 'ghost_recipient'").fetchone()[0] == 0
    )


def test_unknown_rule_in_only_is_a_spec_error():
    con = build_warehouse({})
    with pytest.raises(SpecError, match="did you mean 'deceased_recipient'"):
        run_rules(con, RULES_DIR, only=["deceased_recipents"])


def test_parameter_override():
    con = _dead_payee_warehouse()
    res = run_rules(
        con,
        RULES_DIR,
        only=["deceased_recipient"],
        params={"deceased_recipient": {"grace_months": 6}},
    )
    assert res.outcomes[0].hits == 0


def test_table_lists_every_rule():
    con = _dead_payee_warehouse()
    res = run_rules(con, RULES_DIR)
    text = res.table()
    assert len(res.outcomes) == len(list(RULES_DIR.glob("*.yaml")))
    assert all(o.rule_id in text for o in res.outcomes)
    assert all(o.status in ("ok", "skipped") for o in res.outcomes), res.table()


def test_bh_adjust_matches_definition():
    q = bh_adjust([0.01, 0.04, 0.03, 0.20])
    assert [round(x, 4) for x in q] == [0.04, 0.0533, 0.0533, 0.2]


def test_share_kind_stores_evidence_as_an_object():
    from crossmatch.spec.rules import load_rules

    (spec,) = load_rules(RULES_DIR, only=["relative_concentration"])
    given = dict(spec.examples[0].given)
    given["r_hukou"] = [{"household_no": "H", "person_pid": "K1", "relation_to_head": "户主"}]
    given["kin_relative"] = spec.examples[0].given["kin_relative"]  # as given, not rebuilt
    con = build_warehouse(given)
    res = run_rules(con, RULES_DIR, only=["relative_concentration"])
    assert res.outcomes[0].hits == 1
    ev = json.loads(con.execute("SELECT evidence FROM hit").fetchone()[0])
    assert ev["units"] == 5 and ev["flagged_units"] == 4 and ev["share"] == 0.8
    assert ev["test"] == "none" and "q_value_bh" not in ev
    assert ev["cases"]
    # the significance test is an option; its p and q values join the evidence
    res = run_rules(
        con, RULES_DIR, only=["relative_concentration"],
        params={"relative_concentration": {"test": "hypergeom"}},
    )  # fmt: skip
    ev = json.loads(
        con.execute("SELECT evidence FROM hit WHERE run_id = ?", [res.run_id]).fetchone()[0]
    )
    assert ev["test"] == "hypergeom" and 0 <= ev["q_value_bh"] <= 1
