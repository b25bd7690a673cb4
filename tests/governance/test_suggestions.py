"""纪检监察建议: the Word draft, and a full follow-up cycle across runs with its effect."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import docx as python_docx
import pytest

from crossmatch.governance import refresh, suggestions
from crossmatch.governance.docx import TEMPLATE, build_template
from crossmatch.review.store import open_store, store_path, verify_audit
from crossmatch.synth import causes as causes_mod
from crossmatch.synth import generate
from crossmatch.synth.causes import read_causes

from .conftest import PERSONS, SEED, pipeline, run_cli

D = dt.date


def _text(path: Path) -> str:
    doc = python_docx.Document(str(path))
    parts = [p.text for p in doc.paragraphs]
    for t in doc.tables:
        for row in t.rows:
            parts.append(" | ".join(c.text for c in row.cells))
    return "\n".join(parts)


def test_the_draft_opens_and_carries_the_figures(warehouse: Path, gov_county: Path) -> None:
    t = {c["kind"]: c for c in read_causes(gov_county / "truth" / "causes.csv")}["death_sync_lag"]
    refresh(warehouse, rules_dir="rules")
    fid = f"death_sync_lag:{t['township_code']}"
    out = run_cli("suggest", "issue", fid, "--deadline", "2026-06-30", "--issued-on",
                  "2026-01-05", "--warehouse", str(warehouse))  # fmt: skip
    path = Path(out.strip().rsplit(": ", 1)[1])
    text = _text(path)
    assert "纪检监察建议书" in text and "JJJY-2026-001" in text
    assert f"{t['department']}：" in text
    assert t["township"] in text
    amount = f"{float(t['amount']):,.2f}"
    assert f"| {t['people']} | {t['people']} | {t['months']} | {amount}" in text
    assert "2026年6月30日前" in text  # the deadline
    assert "死亡信息按月比对" in text or "按月比对" in text  # the concrete fix
    assert "{{" not in text and "{%" not in text  # every tag filled
    store = open_store(store_path(warehouse), read_only=True)
    try:
        item = suggestions.suggestions(store)[0]
    finally:
        store.close()
    assert item["docx"] == str(path) and item["status"] == "已发出"
    assert all(c in text for c in item["clue_ids"])


def test_the_stock_template_is_what_build_template_writes(tmp_path: Path) -> None:
    fresh = build_template(tmp_path / "t.docx")
    assert _text(fresh) == _text(TEMPLATE)


def test_a_suggestions_follow_up_cycle_across_runs(
    warehouse: Path, gov_county: Path, tmp_path: Path, monkeypatch
) -> None:
    truth = {c["kind"]: c for c in read_causes(gov_county / "truth" / "causes.csv")}
    t = truth["death_sync_lag"]
    run1 = refresh(warehouse, rules_dir="rules").run_id
    store = open_store(store_path(warehouse))
    try:
        sid = suggestions.issue(store, f"death_sync_lag:{t['township_code']}",
                                deadline=D(2026, 4, 30), issued_on=D(2026, 1, 5))  # fmt: skip
        kin = suggestions.issue(store, f"approver_kin:{truth['approver_kin']['township_code']}"
                                f":approver:{truth['approver_kin']['who']}",
                                deadline=D(2026, 2, 28), issued_on=D(2026, 1, 5))  # fmt: skip
        with pytest.raises(suggestions.SuggestionError, match="before the issue date"):
            suggestions.reply(store, sid, "x", on_date=D(2025, 12, 1))
        suggestions.reply(store, sid, "已与卫健、公安建立死亡信息按月比对", on_date=D(2026, 2, 10),
                          fix="发放前按月比对死亡登记和火化记录", done=True)  # fmt: skip
        suggestions.visit(store, sid, "抽查3个月比对记录, 已落实", on_date=D(2026, 3, 15),
                          rectified=True)  # fmt: skip
        same = suggestions.measure_effect(store, sid, run1)
        assert same.status == "unmeasured"
        items = {s["suggestion_id"]: s for s in suggestions.suggestions(store, D(2026, 3, 20))}
        assert items[sid]["status"] == "已回访" and not items[sid]["overdue"]
        assert items[kin]["overdue"]  # no reply by its deadline
    finally:
        store.close()

    # night 2: nothing changed in the data -> the lag is still there: not effective
    run_cli("detect", "--rules", "rules", "--warehouse", str(warehouse))
    run2 = refresh(warehouse, rules_dir="rules").run_id
    store = open_store(store_path(warehouse))
    try:
        eff2 = suggestions.measure_effect(store, sid, run2)
    finally:
        store.close()
    assert eff2.status == "not_effective"
    assert eff2.current["people"] == int(t["people"])

    # night 3: the department fixed the sync: the same county, but the deaths of the lag
    # township reach the payer in time (the cause not planted); re-ingest changed files
    monkeypatch.setattr(causes_mod.Causes, "_death_sync_lag", lambda self, d, planter, rng: None)
    fixed = tmp_path / "fixed"
    generate(persons=PERSONS, seed=SEED, out=fixed)
    pipeline(fixed / "raw", warehouse)
    fs3 = refresh(warehouse, rules_dir="rules")
    assert fs3.by_kind("death_sync_lag") == []
    store = open_store(store_path(warehouse))
    try:
        eff3 = suggestions.measure_effect(store, sid, fs3.run_id)
        items = {s["suggestion_id"]: s for s in suggestions.suggestions(store, D(2026, 5, 1))}
        m = suggestions.metrics(store, D(2026, 5, 1))
        events = store.execute(
            "SELECT kind FROM suggestion_event WHERE suggestion_id = ? ORDER BY seq", [sid]
        ).fetchall()
        assert verify_audit(store) == []
        actions = {r[0] for r in store.execute("SELECT action FROM audit").fetchall()}
    finally:
        store.close()
    assert eff3.status == "effective", eff3.render()
    assert eff3.current["people"] == 0
    assert eff3.current["clues"] == eff3.baseline["clues"] - int(t["people"])
    assert items[sid]["status"] == "整改完成" and items[sid]["completed"]
    assert items[kin]["status"] == "已发出"
    assert [e[0] for e in events] == ["reply", "visit", "effect", "effect", "effect"]
    assert m["issued"] == 2 and m["completed"] == 1 and m["rectification_rate"] == 0.5
    assert m["root_causes_fixed"] == 1
    assert m["institutional_soundness"] == pytest.approx(1 / m["root_causes"])
    assert {"suggestion_issue", "suggestion_reply", "suggestion_visit",
            "suggestion_effect"} <= actions  # fmt: skip


def test_suggest_commands_refuse_with_the_fix(warehouse: Path) -> None:
    from click.testing import CliRunner

    from crossmatch.cli import main

    refresh(warehouse, rules_dir="rules")
    wh = ["--warehouse", str(warehouse)]
    res = CliRunner().invoke(main, ["suggest", "issue", "nope:1", "--deadline", "2026-06-30", *wh])
    assert res.exit_code == 2
    assert "finding 'nope:1' is not in the review store" in res.output
    assert "Fix: run `crossmatch findings`" in res.output
    res = CliRunner().invoke(main, ["suggest", "reply", "JJJY-2026-999", "--text", "x", *wh])
    assert res.exit_code == 2 and "Fix: `crossmatch suggest list`" in res.output
    res = CliRunner().invoke(main, ["suggest", "list", *wh])
    assert res.exit_code == 0 and "建议 0 件" in res.output
