"""类案分析 reproduces the planted root causes with the truth's figures."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from crossmatch.governance import refresh
from crossmatch.governance.findings import Finding, analyse
from crossmatch.review.store import open_store, store_path, verify_audit
from crossmatch.synth.causes import read_causes

from .conftest import run_cli


@pytest.fixture
def truth(gov_county: Path) -> dict[str, dict[str, str]]:
    return {c["kind"]: c for c in read_causes(gov_county / "truth" / "causes.csv")}


def test_death_sync_lag_found_with_the_truths_figures(warehouse: Path, truth) -> None:
    fs = refresh(warehouse, rules_dir="rules")
    assert fs.status["death_sync_lag"][0] == "ok"
    lag = fs.by_kind("death_sync_lag")
    t = truth["death_sync_lag"]
    # exactly the planted township, nowhere else
    assert [f.region_code for f in lag] == [t["township_code"]]
    f = lag[0]
    assert f.people == int(t["people"])
    assert f.months == int(t["months"])
    assert f"{f.amount:.2f}" == t["amount"]
    assert f.detail["subjects"] == sorted(t["subjects"].split(";"))
    assert f.department == t["department"]
    # months from death to the last payment: grace + 2..5 months paid late
    assert all(3 <= m <= 6 for m in f.detail["lag_months"])
    assert f.detail["median_days_to_cremation"] <= 3  # the cremation record was there in days
    assert f.detail["median_days_to_cancel"] > 60  # the registry cancelled months later
    # each clue id is a deceased_recipient clue of one of those people, in the review store
    store = open_store(store_path(warehouse), read_only=True)
    try:
        rows = store.execute(
            "SELECT clue_id, rule_id, subject FROM clue WHERE list_contains(?, clue_id)",
            [f.clue_ids],
        ).fetchall()
        assert verify_audit(store) == []
    finally:
        store.close()
    assert len(rows) == len(f.clue_ids) == f.people
    assert {r[1] for r in rows} == {"deceased_recipient"}
    assert {r[2] for r in rows} == set(t["subjects"].split(";"))


def test_approver_kin_found_with_the_truths_figures(warehouse: Path, truth) -> None:
    fs = refresh(warehouse, rules_dir="rules")
    t = truth["approver_kin"]
    kin = fs.by_kind("approver_kin")
    assert len(kin) == 1, [k.finding_id for k in kin]  # the single planted cases stay single
    f = kin[0]
    assert f.region_code == t["township_code"]
    assert f.who == f"审批人{t['who']}"
    assert f.cases == int(t["cases"]) and f.people == int(t["people"])
    assert f"{f.amount:.2f}" == t["amount"]
    assert f.detail["subjects"] == sorted(t["subjects"].split(";"))
    assert len(f.clue_ids) == f.cases and all(c.startswith("APR-") for c in f.clue_ids)
    assert f.peer_value < f.value


def test_approval_check_splits_every_asset_clue(warehouse: Path) -> None:
    fs = refresh(warehouse, rules_dir="rules")
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        for rule in ("vehicle_on_dibao", "property_on_dibao", "business_on_dibao"):
            subjects = con.execute(
                "SELECT count(DISTINCT subject) FROM hit WHERE rule_id = ? AND run_id = ?",
                [rule, fs.run_id],
            ).fetchone()[0]
            parts = [f for f in fs.by_kind("approval_check") if f.detail["rule"] == rule]
            assert sum(f.cases for f in parts) + parts[0].detail["unknown_dates"] >= subjects
            assert {f.detail["split"] for f in parts} <= {"at_approval", "later"}
    finally:
        con.close()


def test_findings_are_stored_once_per_run_and_trend(warehouse: Path) -> None:
    fs1 = refresh(warehouse, rules_dir="rules")
    fs2 = refresh(warehouse, rules_dir="rules")  # the same run again: nothing added
    assert [f.finding_id for f in fs1.findings] == [f.finding_id for f in fs2.findings]
    store = open_store(store_path(warehouse), read_only=True)
    try:
        n = store.execute("SELECT count(*) FROM finding").fetchone()[0]
    finally:
        store.close()
    assert n == len(fs1.findings)
    run_cli("detect", "--rules", "rules", "--warehouse", str(warehouse))  # a second night
    fs3 = refresh(warehouse, rules_dir="rules")
    assert fs3.run_id != fs1.run_id
    lag = fs3.by_kind("death_sync_lag")[0]
    assert [t["run_id"] for t in lag.trend] == [fs1.run_id, fs3.run_id]
    assert lag.trend[0]["people"] == lag.trend[1]["people"] == lag.people


def test_a_rule_that_did_not_run_ok_makes_its_analysis_stale(warehouse: Path) -> None:
    con = duckdb.connect(str(warehouse))
    try:
        run = con.execute("SELECT max(run_id) FROM rule_run").fetchone()[0]
        con.execute(
            "UPDATE rule_run SET status = 'blind', reason = 'no death source' "
            "WHERE rule_id = 'deceased_recipient' AND run_id = ?",
            [run],
        )
        fs = analyse(con, run, rules_dir="rules")
    finally:
        con.close()
    assert fs.status["death_sync_lag"][0] == "stale"
    assert "blind" in fs.status["death_sync_lag"][1]
    assert fs.by_kind("death_sync_lag") == []
    assert fs.status["approver_kin"][0] == "ok"


def test_findings_cli_prints_and_exits_zero(warehouse: Path) -> None:
    out = run_cli("findings", "--warehouse", str(warehouse))
    assert "death_sync_lag:" in out and "approver_kin:" in out
    store = open_store(store_path(warehouse), read_only=True)
    try:
        details = [json.loads(r[0]) for r in store.execute("SELECT detail FROM finding").fetchall()]
    finally:
        store.close()
    assert all("cause" in d and "fix" in d for d in details)


def test_weakness_and_concentration_figures_add_up(warehouse: Path) -> None:
    fs = refresh(warehouse, rules_dir="rules")
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        ghosts, shared = (
            con.execute(
                "SELECT count(DISTINCT subject) FROM hit WHERE rule_id = ? AND run_id = ?",
                [rule, fs.run_id],
            ).fetchone()[0]
            for rule in ("ghost_recipient", "shared_account")
        )
        bad_rows = con.execute(
            "SELECT count(*) FROM r_payment WHERE _dup_of IS NULL AND (status IS NULL OR "
            "status = 'success') AND payee_id_status IN ('bad_checksum', 'missing', 'bad_date')"
        ).fetchone()[0]
    finally:
        con.close()
    weak = fs.by_kind("identity_weakness")
    # every ghost payee and shared account belongs to exactly one paying department
    assert sum(f.detail["ghost"] for f in weak) == ghosts > 0
    assert sum(f.detail["shared_accounts"] for f in weak) == shared > 0
    assert sum(f.detail["bad_id_rows"] for f in weak) == bad_rows > 0
    depts = {d for f in weak for d in f.department.split("、")}
    assert depts <= {"民政局", "人社局", "残联", "农业农村局"}
    for f in fs.by_kind("concentration"):
        assert f.cases >= 5 and f.value >= 3 * f.peer_value
        assert len(f.clue_ids) == f.cases


def test_identity_weakness_summary_names_bad_id_rows_without_clues() -> None:
    f = Finding(
        finding_id="identity_weakness:民政局", kind="identity_weakness", title="t",
        department="民政局", region_code="", region="全县", who="", people=0, cases=0,
        months=0, amount=0.0, value=12.0, peer_value=0.0, cause="", fix="",
        detail={"bad_id_rows": 12, "bad_id_amount": 3456.5},
    )  # fmt: skip
    text = f.figures()
    assert "12 行" in text and "3,456.50" in text
    assert "0 件" not in text and "涉及金额 0.00" not in text
    f.amount, f.cases = 100.0, 2
    assert "2 件" in f.figures() and "涉及金额 100.00 元" in f.figures()
