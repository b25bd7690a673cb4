"""Engine behaviour: skipped vs zero hits, errors isolated, hits stored with stable keys."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from crossmatch import warehouse
from crossmatch.detect import run_rules, schema
from crossmatch.detect.rule_kinds import bh_adjust
from crossmatch.detect.rule_runner import clue_key
from crossmatch.errors import SpecError

from .conftest import RULES_DIR, build_warehouse

PAY = {
    "item": "城乡低保金",
    "amount": 500,
    "status": "success",
    "account": "6200001",
    "village_code": "341122001001",
}


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
        "r_death": [
            {
                "person_pid": "A",
                "person_id": "A",
                "person_id_raw": "A",
                "death_date": "2025-01-10",
            }
        ],
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
    con = build_warehouse(tables)
    if with_ingest:  # identity computed from exactly these files
        warehouse.record_stage(con, "resolve", warehouse.ingest_fingerprint(con))
    return con


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
        "INSERT INTO r_payment (payee_pid, item, amount, period, status, _row, account, "
        "village_code) VALUES ('G', '城乡低保金', 1, '2025-03', 'success', 9, '1', '341122001001')"
    )
    # registry present
    schema.load_rows(con, "r_hukou", [{"person_pid": "A", "status": "正常"}], temp=False)
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
    # a tiny fixture: most sources absent (skipped), some columns empty (blind): never "ok"
    assert all(o.status in ("ok", "skipped", "blind") for o in res.outcomes), res.table()
    assert all(o.reason for o in res.outcomes if o.status != "ok")


def test_bh_adjust_matches_definition():
    q = bh_adjust([0.01, 0.04, 0.03, 0.20])
    assert [round(x, 4) for x in q] == [0.04, 0.0533, 0.0533, 0.2]


def test_share_kind_stores_evidence_as_an_object():
    from crossmatch.spec.rules import load_rules

    (spec,) = load_rules(RULES_DIR, only=["relative_concentration"])
    given = dict(spec.examples[0].given)
    given["r_hukou"] = [{"household_no": "H", "person_pid": "K1", "relation_to_head": "户主"}]
    given["kin_relative"] = spec.examples[0].given["kin_relative"]  # as given, not rebuilt
    # the filing register is loaded (an unrelated filing): a source with no rows is "skipped"
    given["r_relative_filing"] = [{"cadre_pid": "X1", "relative_pid": "X2"}]
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


# ---------------------------------------------------------------- needs derived from the SQL


def test_needs_follow_building_blocks_to_the_roster():
    """over_standard_amount declares [payment, subsidy_standard] but reads the case roster
    through dibao_member / dibao_case: the derived needs say so (issue 10)."""
    from crossmatch.detect.needs import derive
    from crossmatch.spec.rules import load_rules

    specs = load_rules(RULES_DIR, only=["over_standard_amount", "cadre_account"])
    nd = derive(specs, RULES_DIR)
    over = nd["over_standard_amount"]
    assert "assistance" in over.requires and "subsidy_standard" in over.requires
    cols = over.source_columns()
    assert "household_size" in cols["assistance"] and "status" in cols["payment"]
    # a column of a building block the rule never uses is not a need
    assert "handler_name" not in cols["assistance"]
    # hand-declared alternatives stay alternatives; kinship needs the registry or marriages
    ca = nd["cadre_account"]
    assert ("cadre", "payroll") in ca.requires and "cadre" not in ca.requires
    assert ("hukou", "marriage") in ca.requires


def test_blind_when_a_read_column_is_absent_and_skipped_when_a_source_is_missing():
    con = _dead_payee_warehouse()
    con.execute("CREATE TABLE p2 AS SELECT * EXCLUDE (status) FROM r_payment")
    con.execute("DROP TABLE r_payment")
    con.execute("ALTER TABLE p2 RENAME TO r_payment")
    res = run_rules(con, RULES_DIR, only=["deceased_recipient"])
    (o,) = res.outcomes
    assert o.status == "blind" and "status" in o.reason, o
    assert res.exit_code == 4


def test_interrupted_run_is_not_the_latest():
    con = _dead_payee_warehouse()
    run_rules(con, RULES_DIR, only=["deceased_recipient"])
    # a crash while storing the second run: nothing of it is written, the first stays latest
    con.execute("CREATE TABLE hit_backup AS SELECT * FROM hit")
    con.execute("DROP TABLE hit")
    con.execute("CREATE VIEW hit AS SELECT * FROM hit_backup")  # INSERT INTO hit will fail
    with pytest.raises(Exception):  # noqa: B017 - any failure of the final write
        run_rules(con, RULES_DIR, only=["deceased_recipient"])
    runs = con.execute("SELECT status FROM detect_run ORDER BY started_at").fetchall()
    assert [r[0] for r in runs] == ["finished", "running"]
    assert con.execute("SELECT count(DISTINCT run_id) FROM rule_run").fetchone()[0] == 1


def test_kinship_that_cannot_be_rebuilt_makes_its_rules_stale(monkeypatch):
    from crossmatch.detect import rule_runner

    con = _dead_payee_warehouse(with_ingest=True)
    schema.load_rows(con, "r_hukou", [{"person_pid": "A", "status": "正常"}], temp=False)
    schema.load_rows(con, "kin_relative", [], temp=False)  # built before: stale now

    def broken(_con):
        raise RuntimeError("boom")

    monkeypatch.setattr(rule_runner, "rebuild_kinship", broken)
    res = run_rules(con, RULES_DIR, only=["cadre_account", "deceased_recipient"])
    by = {o.rule_id: o for o in res.outcomes}
    assert by["cadre_account"].status in ("stale", "skipped")
    assert by["deceased_recipient"].status == "ok", by["deceased_recipient"]
    # with the sources of cadre_account present, the kinship problem is what stops it
    con.execute(
        "INSERT INTO ingest_file (source, file, rows_loaded, status) VALUES "
        "('bank_account', 'b.csv', 1, 'ok'), ('proxy_filing', 'p.csv', 1, 'ok'), "
        "('cadre', 'c.csv', 1, 'ok'), ('hukou', 'h.csv', 1, 'ok')"
    )
    from crossmatch import warehouse

    warehouse.record_stage(con, "resolve", warehouse.ingest_fingerprint(con))
    for t in ("r_bank_account", "r_proxy_filing", "r_cadre"):
        schema.load_rows(con, t, [{"_row": 2}], temp=False)
    res = run_rules(con, RULES_DIR, only=["cadre_account"])
    (o,) = res.outcomes
    assert o.status == "stale" and "could not be rebuilt" in o.reason, o


def test_needs_stored_in_the_warehouse_are_the_derived_ones(tmp_path: Path, monkeypatch):
    """A night in a new process reads the needs from ``rule_needs_cache`` instead of probing;
    what it reads equals a fresh derivation, and a changed rule is derived again."""
    import duckdb

    from crossmatch.detect import needs as rule_needs
    from crossmatch.detect.rule_kinds import load_checked_rules

    monkeypatch.delenv(rule_needs.NEEDS_CACHE_ENV, raising=False)  # tests/rules/test_needs_cache
    some = ["deceased_recipient", "duplicate_payment", "shared_account"]
    specs = load_checked_rules(RULES_DIR, only=some)
    fresh = rule_needs.derive(specs, RULES_DIR)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    assert rule_needs.derive_stored(con, specs, RULES_DIR) == fresh
    calls = []
    monkeypatch.setattr(rule_needs, "_CACHE", {})  # a new process
    monkeypatch.setattr(rule_needs, "derive", lambda *a: calls.append(a) or {})
    assert rule_needs.derive_stored(con, specs, RULES_DIR) == fresh  # read back, equal
    assert calls == []
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    f = rules / "deceased_recipient.yaml"  # the rule now also reads the payment's bank
    f.write_text(f.read_text(encoding="utf-8").replace("p.item),", "p.item || p.bank),"),
                 encoding="utf-8")  # fmt: skip
    edited = load_checked_rules(rules, only=some)
    assert rule_needs.derivation_key(edited, rules) != rule_needs.derivation_key(specs, RULES_DIR)
    monkeypatch.undo()
    monkeypatch.delenv(rule_needs.NEEDS_CACHE_ENV, raising=False)
    got = rule_needs.derive_stored(con, edited, rules)
    assert "bank" in got["deceased_recipient"].columns["r_payment"]
    assert "bank" not in fresh["deceased_recipient"].columns["r_payment"]
    assert got == rule_needs.derive(edited, rules)
    assert con.execute("SELECT count(*) FROM rule_needs_cache").fetchone() == (1,)


def test_derived_needs_are_remembered_by_content_not_by_folder(tmp_path: Path, monkeypatch):
    """``derive_cached`` (validate, classify) derives again exactly when what the derivation
    reads changes: a copy of the rules folder elsewhere is the same derivation; an edited
    reference file, rule or contract is not."""
    from crossmatch import contract
    from crossmatch.detect import needs as rule_needs
    from crossmatch.detect.rule_kinds import load_checked_rules

    calls: list[object] = []
    real = rule_needs.derive
    monkeypatch.delenv(rule_needs.NEEDS_CACHE_ENV, raising=False)  # per process only here
    monkeypatch.setattr(rule_needs, "_CACHE", {})
    monkeypatch.setattr(rule_needs, "derive", lambda *a: calls.append(a) or real(*a))
    some = ["deceased_recipient"]  # one rule: each derivation probes its columns
    rule_needs.derive_cached(load_checked_rules(RULES_DIR, only=some), RULES_DIR)
    assert len(calls) == 1
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    rule_needs.derive_cached(load_checked_rules(rules, only=some), rules)
    assert len(calls) == 1  # the same texts elsewhere
    ref = rules / "reference" / "exempt_posts.csv"
    ref.write_text(ref.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    rule_needs.derive_cached(load_checked_rules(rules, only=some), rules)
    assert len(calls) == 2  # a reference file's content changed
    f = rules / "deceased_recipient.yaml"
    f.write_text(f.read_text(encoding="utf-8").replace("p.item),", "p.item || p.bank),"),
                 encoding="utf-8")  # fmt: skip
    got = rule_needs.derive_cached(load_checked_rules(rules, only=some), rules)
    assert len(calls) == 3 and "bank" in got["deceased_recipient"].columns["r_payment"]
    extra = tmp_path / "sources"
    extra.mkdir()
    (extra / "pension.yaml").write_text(
        (RULES_DIR.parent / "sources" / "elderly.yaml")
        .read_text(encoding="utf-8")
        .replace("source: elderly", "source: pension"),
        encoding="utf-8",
    )
    try:
        contract.use(extra)
        rule_needs.derive_cached(load_checked_rules(rules, only=some), rules)
        assert len(calls) == 4  # the contract gained a source
    finally:
        contract.reset()
