"""Clues across nights: aggregation, stable ids, states, verdicts that outlive the warehouse."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from crossmatch.detect.rule_runner import HIT_DDL
from crossmatch.review import VERDICTS, Review, clue_id, mask, store_path

PID_A = "341122195609279642"
PID_B = "34112219460615062X"


def _night(wh: Path, run: str, hits: list[tuple], statuses: dict[str, str] | None = None) -> None:
    """Append one detect run to a warehouse: hit rows (rule, subject, period, amount, evidence)."""
    con = duckdb.connect(str(wh))
    con.execute(HIT_DDL)
    n = con.execute("SELECT count(DISTINCT run_id) FROM rule_run").fetchone()[0]
    started = f"2026-01-{n + 1:02d} 02:00:00"
    rules = {h[0] for h in hits} | set(statuses or {})
    for rule in sorted(rules):
        status = (statuses or {}).get(rule, "ok")
        con.execute(
            "INSERT INTO rule_run VALUES (?, ?, 1, ?, '', 0, 0, 0.1, ?)",
            [run, rule, status, started],
        )
    for rule, subject, period, amount, evidence in hits:
        con.execute(
            "INSERT INTO hit VALUES (?, ?, 1, ?, '某某', ?, ?, 'sum', 'high', '341122001001', ?, "
            "'k')",
            [run, rule, subject, period, amount, json.dumps(evidence)],
        )
    con.close()


def _ev(death: str, row: int) -> dict:
    return {
        "death_date": death,
        "items": ["养老金", "高龄津贴"],
        "rows": [{"source": "payment", "file": "f.csv", "row": row, "role": "payee"}],
    }


@pytest.fixture
def wh(tmp_path: Path) -> Path:
    return tmp_path / "w.duckdb"


def test_hits_aggregate_into_one_clue_per_rule_and_subject(wh: Path) -> None:
    _night(
        wh,
        "r1",
        [
            ("deceased_recipient", PID_A, "2025-03", 100, _ev("2025-01-05", 1)),
            ("deceased_recipient", PID_A, "2025-04", 100, _ev("2025-01-05", 2)),
            ("deceased_recipient", PID_A, "2025-06", 150.5, _ev("2025-01-05", 3)),
            ("deceased_recipient", PID_B, "2025-05", 80, _ev("2025-02-01", 4)),
            ("ghost_recipient", PID_A, "2025-03", 100, {"rows": []}),
        ],
    )
    rv = Review(wh)
    res = rv.sync()
    assert res.counts["new"] == 3
    df = rv.clues(unmask=True).sort("clue_id")
    a = df.filter((df["rule_id"] == "deceased_recipient") & (df["subject"] == PID_A)).row(
        0, named=True
    )
    assert (a["period_from"], a["period_to"], a["months"], a["hits"]) == (
        "2025-03",
        "2025-06",
        3,
        3,
    )
    assert float(a["amount"]) == pytest.approx(350.5)
    assert a["clue_id"] == clue_id("deceased_recipient", PID_A, "341122001001")
    assert a["clue_id"].startswith("DEC-341122001-")
    # masked by default: the subject's ID keeps its first 6 and last 4 characters only
    masked = rv.clues().filter(rv.clues()["clue_id"] == a["clue_id"])["subject"][0]
    assert masked == mask(PID_A) == "341122********9642"


def test_three_nights_new_ongoing_closed_reopened(wh: Path) -> None:
    rv = Review(wh)
    a = ("deceased_recipient", PID_A, "2025-03", 100, _ev("2025-01-05", 1))
    _night(wh, "n1", [a])
    rv.sync("n1")
    _night(wh, "n2", [a])
    assert rv.sync("n2").counts["ongoing"] == 1
    _night(wh, "n3", [], statuses={"deceased_recipient": "ok"})  # payment stopped
    assert rv.sync("n3").counts["closed"] == 1
    assert rv.clues().height == 0
    assert rv.clues(state="closed").height == 1
    _night(wh, "n4", [a])
    assert rv.sync("n4").counts["reopened"] == 1
    cid = rv.clues(unmask=True)["clue_id"][0]
    assert rv.history(cid)["state"].to_list() == ["new", "ongoing", "closed", "reopened"]
    # the same run twice changes nothing
    assert rv.sync("n4").already_synced


def test_a_rule_that_did_not_run_ok_closes_nothing(wh: Path) -> None:
    rv = Review(wh)
    a = ("deceased_recipient", PID_A, "2025-03", 100, _ev("2025-01-05", 1))
    _night(wh, "n1", [a])
    rv.sync("n1")
    _night(wh, "n2", [], statuses={"deceased_recipient": "skipped"})
    res = rv.sync("n2")
    assert res.counts["unchecked"] == 1 and res.counts["closed"] == 0
    assert rv.clues()["state"].to_list() == ["unchecked"]


def test_false_positive_suppressed_until_evidence_changes(wh: Path) -> None:
    rv = Review(wh)
    a = ("deceased_recipient", PID_A, "2025-03", 100, _ev("2025-01-05", 1))
    _night(wh, "n1", [a])
    rv.sync("n1")
    cid = rv.clues(unmask=True)["clue_id"][0]
    rv.mark(cid, "不属实-数据错误", note="死亡日期录入错误", author="审查员甲")
    # same evidence, rows moved in a new export (lineage changes only): still suppressed
    moved = ("deceased_recipient", PID_A, "2025-03", 100, _ev("2025-01-05", 999))
    _night(wh, "n2", [moved])
    assert rv.sync("n2").counts["suppressed"] == 1
    assert rv.clues().height == 0
    # the evidence changes (another month paid): back as reopened, with the change shown
    later = ("deceased_recipient", PID_A, "2025-04", 100, _ev("2025-01-05", 7))
    _night(wh, "n3", [moved, later])
    assert rv.sync("n3").counts["reopened"] == 1
    exp = rv.explain(cid)
    assert exp.clue["state"] == "reopened"
    assert any(c.startswith("+ 2025-04") for c in exp.changes)
    assert "不属实-数据错误" in str(exp)


def test_verdicts_survive_a_full_warehouse_rebuild(wh: Path) -> None:
    rv = Review(wh)
    a = ("deceased_recipient", PID_A, "2025-03", 100, _ev("2025-01-05", 1))
    _night(wh, "n1", [a])
    rv.sync("n1")
    cid = rv.clues(unmask=True)["clue_id"][0]
    rv.mark(cid, "属实", note="已追回", author="审查员乙")
    wh.unlink()  # the warehouse is rebuilt from scratch
    _night(wh, "fresh-1", [a])
    assert rv.sync("fresh-1").counts["ongoing"] == 1
    assert rv.clues(unmask=True)["clue_id"].to_list() == [cid]
    v = rv.verdicts(cid)
    assert v["verdict"].to_list() == ["属实"] and v["author"].to_list() == ["审查员乙"]
    assert store_path(wh).exists()


def test_killed_sync_leaves_the_store_as_it_was(wh: Path, monkeypatch) -> None:
    rv = Review(wh)
    a = ("deceased_recipient", PID_A, "2025-03", 100, _ev("2025-01-05", 1))
    _night(wh, "n1", [a])
    rv.sync("n1")
    _night(wh, "n2", [], statuses={"deceased_recipient": "ok"})
    import crossmatch.review.clues as clues_mod

    def boom(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(clues_mod, "audit", boom)  # dies after the writes, before COMMIT
    with pytest.raises(KeyboardInterrupt):
        rv.sync("n2")
    monkeypatch.undo()
    assert rv.clues()["state"].to_list() == ["new"]
    assert rv.runs()["run_id"].to_list() == ["n1"]
    assert rv.sync("n2").counts["closed"] == 1


def test_verdict_values_are_checked_and_audited(wh: Path) -> None:
    rv = Review(wh)
    _night(wh, "n1", [("deceased_recipient", PID_A, "2025-03", 100, _ev("2025-01-05", 1))])
    rv.sync("n1")
    cid = rv.clues(unmask=True)["clue_id"][0]
    with pytest.raises(ValueError, match="not one of"):
        rv.mark(cid, "不对")
    with pytest.raises(KeyError):
        rv.mark("DEC-000-NOPE", VERDICTS[0])
    rv.clues(unmask=True)
    con = duckdb.connect(str(store_path(wh)), read_only=True)
    actions = [r[0] for r in con.execute('SELECT action FROM audit ORDER BY "at"').fetchall()]
    con.close()
    assert "unmask" in actions and "sync" in actions
