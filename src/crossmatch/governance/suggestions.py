"""纪检监察建议 as items of the loop: 提出建议 -> 限期整改 -> 常态监督 -> 跟踪回访 -> 结果运用.

A suggestion is issued to the department that owns a finding's loophole, with a deadline. The
department's reply (what it changed: a rule, a policy, a system check), the follow-up visits
(跟踪回访: date, what was found) and the measured effect are events appended to it; nothing is
ever updated or deleted, and every step goes to the review store's hash-chained audit log.

Effect is measured by the data in later runs, never typed: the finding's figures in that run
against the run it was issued on (did the lag shrink, did the relatives' cases stop), and the
clue count of the finding's rules in its region. Effective = the finding's people (or cases)
fell by at least ``min_drop`` (default 50%) and the clue count did not grow. A run whose
analysis of that kind was not ``ok`` measures nothing (``unmeasured``, with the reason).

Metrics: 整改完成率 = suggestions completed (replied done, and shown effective) / issued;
制度健全度 = root causes (findings of the latest analysed run, and every finding a suggestion
was issued on) with an institutional fix recorded in a reply and shown effective / all of them.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import duckdb

from crossmatch import warehouse
from crossmatch.governance.findings import FINDING_DDL, scalar
from crossmatch.review.store import actor, audit

SUGGESTION_DDL = """
CREATE TABLE IF NOT EXISTS suggestion (
    suggestion_id VARCHAR PRIMARY KEY,
    finding_id VARCHAR,
    kind VARCHAR,
    department VARCHAR,
    region_code VARCHAR,
    region VARCHAR,
    who VARCHAR,
    title VARCHAR,
    problems JSON,
    cause VARCHAR,
    fixes JSON,
    issued_on DATE,
    deadline DATE,
    issued_run VARCHAR,
    baseline JSON,
    issued_by VARCHAR,
    issued_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS suggestion_event (
    suggestion_id VARCHAR,
    seq INTEGER,
    kind VARCHAR,
    on_date DATE,
    actor VARCHAR,
    text VARCHAR,
    data JSON,
    recorded_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS governance_metric (
    run_id VARCHAR,
    metric VARCHAR,
    value DOUBLE,
    computed_at TIMESTAMP
);
"""
EVENT_KINDS = ("reply", "visit", "effect", "docx")
#: the rules whose clues a finding kind is about (None: the finding's detail names it)
KIND_RULES: dict[str, tuple[str, ...] | None] = {
    "death_sync_lag": ("deceased_recipient",),
    "approver_kin": ("approver_relative",),
    "approval_check": None,
    "concentration": None,
    "identity_weakness": ("ghost_recipient", "shared_account"),
}


class SuggestionError(ValueError):
    """A suggestion command that cannot be carried out (the message says why and the fix)."""


def ensure(store: duckdb.DuckDBPyConnection) -> None:
    """Create the governance tables (a read-only store is read as it is)."""
    try:
        store.execute(FINDING_DDL)
        store.execute(SUGGESTION_DDL)
    except duckdb.InvalidInputException as exc:
        if "read-only" not in str(exc):
            raise


def _finding(store: duckdb.DuckDBPyConnection, finding_id: str, run_id: str | None) -> dict | None:
    q = (
        "SELECT run_id, finding_id, kind, title, department, region_code, region, who, people, "
        "cases, months, amount::DOUBLE, value, peer_value, clue_ids, detail FROM finding "
        "WHERE finding_id = ?"
    )
    args: list[Any] = [finding_id]
    if run_id:
        q += " AND run_id = ?"
        args.append(run_id)
    q += " ORDER BY computed_at DESC LIMIT 1"
    r = store.execute(q, args).fetchone()
    if r is None:
        return None
    keys = ("run_id", "finding_id", "kind", "title", "department", "region_code", "region",
            "who", "people", "cases", "months", "amount", "value", "peer_value", "clue_ids",
            "detail")  # fmt: skip
    d = dict(zip(keys, r, strict=True))
    d["clue_ids"] = json.loads(d["clue_ids"]) if isinstance(d["clue_ids"], str) else d["clue_ids"]
    d["detail"] = json.loads(d["detail"]) if isinstance(d["detail"], str) else d["detail"]
    return d


def _rules_of(f: dict) -> tuple[str, ...]:
    rules = KIND_RULES.get(f["kind"])
    if rules is not None:
        return rules
    detail = f.get("detail") or {}
    if detail.get("rule"):
        return (detail["rule"],)
    return tuple(detail.get("rules") or ())


def clue_count(
    store: duckdb.DuckDBPyConnection, run_id: str, rules: tuple[str, ...], region: str
) -> int:
    """Clues of ``rules`` that run ``run_id`` saw firing in ``region`` (code prefix)."""
    if not rules:
        return 0
    return int(
        scalar(
            store,
            "SELECT count(*) FROM clue_night n JOIN clue c USING (clue_id) WHERE n.run_id = ? "
            "AND n.state IN ('new', 'ongoing', 'reopened', 'suppressed') "
            "AND list_contains(?, c.rule_id) AND coalesce(c.village_code, '') LIKE ? || '%'",
            [run_id, list(rules), region or ""],
        )
    )


def issue(
    store: duckdb.DuckDBPyConnection,
    finding_id: str,
    *,
    deadline: dt.date,
    issued_on: dt.date | None = None,
    run_id: str | None = None,
    fixes: list[str] | None = None,
) -> str:
    """Issue a 纪检监察建议 on a stored finding; returns its id (``JJJY-<year>-<nnn>``)."""
    ensure(store)
    f = _finding(store, finding_id, run_id)
    if f is None:
        raise SuggestionError(
            f"finding {finding_id!r} is not in the review store"
            + (f" for run {run_id}" if run_id else "")
            + ". Fix: run `crossmatch findings` and copy an id from its list."
        )
    issued_on = issued_on or dt.date.today()
    if deadline <= issued_on:
        raise SuggestionError(f"deadline {deadline} is not after the issue date {issued_on}.")
    year = issued_on.year
    n = scalar(store, "SELECT count(*) FROM suggestion WHERE suggestion_id LIKE ?",
               [f"JJJY-{year}-%"])  # fmt: skip
    sid = f"JJJY-{year}-{n + 1:03d}"
    detail = f["detail"] or {}
    fix_list = fixes or [x for x in str(detail.get("fix", "")).split("; ") if x]
    problems = [{
        "title": f["title"], "region": f["region"], "who": f["who"], "cases": f["cases"],
        "people": f["people"], "months": f["months"], "amount": round(f["amount"], 2),
        "clues": len(f["clue_ids"] or []),
    }]  # fmt: skip
    baseline = {
        "run_id": f["run_id"],
        "people": f["people"],
        "cases": f["cases"],
        "months": f["months"],
        "amount": round(f["amount"], 2),
        "clues": clue_count(store, f["run_id"], _rules_of(f), f["region_code"]),
        "rules": list(_rules_of(f)),
    }
    now = dt.datetime.now().replace(microsecond=0)
    with warehouse.transaction(store):
        store.execute(
            "INSERT INTO suggestion VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [sid, finding_id, f["kind"], f["department"], f["region_code"], f["region"], f["who"],
             f["title"], json.dumps(problems, ensure_ascii=False), str(detail.get("cause", "")),
             json.dumps(fix_list, ensure_ascii=False), issued_on, deadline, f["run_id"],
             json.dumps(baseline, ensure_ascii=False), actor(), now],
        )  # fmt: skip
        audit(store, "suggestion_issue", {"suggestion_id": sid, "finding_id": finding_id,
                                          "department": f["department"],
                                          "deadline": deadline.isoformat()})  # fmt: skip
    return sid


def _append(
    store: duckdb.DuckDBPyConnection,
    sid: str,
    kind: str,
    on_date: dt.date,
    text: str,
    data: dict[str, Any],
) -> int:
    ensure(store)
    if kind not in EVENT_KINDS:
        raise SuggestionError(f"event kind {kind!r}: one of {', '.join(EVENT_KINDS)}")
    row = store.execute(
        "SELECT issued_on FROM suggestion WHERE suggestion_id = ?", [sid]
    ).fetchone()
    if row is None:
        raise SuggestionError(f"suggestion {sid!r} not found. Fix: `crossmatch suggest list`.")
    if kind != "docx" and on_date < row[0]:
        raise SuggestionError(f"{kind} date {on_date} is before the issue date {row[0]}.")
    seq = scalar(store, "SELECT coalesce(max(seq), 0) + 1 FROM suggestion_event "
                 "WHERE suggestion_id = ?", [sid])  # fmt: skip
    with warehouse.transaction(store):
        store.execute(
            "INSERT INTO suggestion_event VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [sid, seq, kind, on_date, actor(), text,
             json.dumps(data, ensure_ascii=False, default=str),
             dt.datetime.now().replace(microsecond=0)],
        )  # fmt: skip
        audit(store, f"suggestion_{kind}", {"suggestion_id": sid, "seq": seq, **data})
    return seq


def reply(
    store: duckdb.DuckDBPyConnection,
    sid: str,
    text: str,
    *,
    on_date: dt.date | None = None,
    fix: str = "",
    done: bool = False,
) -> int:
    """The department's reply: what it did (``fix``: the rule, policy or system change made;
    ``done``: it reports the rectification finished)."""
    if not text.strip():
        raise SuggestionError("a reply needs its text (the department's answer).")
    return _append(store, sid, "reply", on_date or dt.date.today(), text,
                   {"fix": fix.strip(), "done": bool(done)})  # fmt: skip


def visit(
    store: duckdb.DuckDBPyConnection,
    sid: str,
    findings: str,
    *,
    on_date: dt.date | None = None,
    rectified: bool | None = None,
) -> int:
    """A follow-up visit (跟踪回访): when, what was found, whether it was rectified."""
    if not findings.strip():
        raise SuggestionError("a visit needs what was found (回访情况).")
    return _append(store, sid, "visit", on_date or dt.date.today(), findings,
                   {"rectified": rectified})  # fmt: skip


@dataclass
class Effect:
    suggestion_id: str
    run_id: str
    status: str  # effective / not_effective / unmeasured
    baseline: dict[str, Any]
    current: dict[str, Any]
    reason: str

    def render(self) -> str:
        b, c = self.baseline, self.current
        return (
            f"{self.suggestion_id} in run {self.run_id}: {self.status} — "
            f"people {b.get('people')} -> {c.get('people')}, cases {b.get('cases')} -> "
            f"{c.get('cases')}, months {b.get('months')} -> {c.get('months')}, clues "
            f"{b.get('clues')} -> {c.get('clues')}" + (f" ({self.reason})" if self.reason else "")
        )


def measure_effect(
    store: duckdb.DuckDBPyConnection,
    sid: str,
    run_id: str,
    *,
    min_drop: float = 0.5,
    on_date: dt.date | None = None,
) -> Effect:
    """Measure a suggestion's effect in run ``run_id`` and append it as an ``effect`` event."""
    ensure(store)
    s = store.execute(
        "SELECT finding_id, kind, region_code, baseline, issued_run FROM suggestion "
        "WHERE suggestion_id = ?",
        [sid],
    ).fetchone()
    if s is None:
        raise SuggestionError(f"suggestion {sid!r} not found. Fix: `crossmatch suggest list`.")
    finding_id, kind, region, baseline, issued_run = s
    base = json.loads(baseline) if isinstance(baseline, str) else baseline
    st = store.execute(
        "SELECT status, reason FROM finding_status WHERE run_id = ? AND kind = ?", [run_id, kind]
    ).fetchone()
    current: dict[str, Any] = {}
    reason = ""
    if run_id == issued_run:
        status, reason = "unmeasured", "the run the suggestion was issued on"
    elif st is None:
        status, reason = "unmeasured", f"run {run_id} has no 类案分析 (run `crossmatch findings`)"
    elif st[0] != "ok":
        status, reason = "unmeasured", f"{kind} is {st[0]} in run {run_id}: {st[1]}"
    else:
        f = _finding(store, finding_id, run_id)
        current = {
            "people": f["people"] if f else 0,
            "cases": f["cases"] if f else 0,
            "months": f["months"] if f else 0,
            "amount": round(f["amount"], 2) if f else 0.0,
            "clues": clue_count(store, run_id, tuple(base.get("rules") or ()), region),
        }
        key = "people" if base.get("people") else "cases"
        fell = current[key] <= (1 - min_drop) * (base.get(key) or 0)
        clues_ok = current["clues"] <= (base.get("clues") or 0)
        status = "effective" if fell and clues_ok else "not_effective"
        if not fell:
            reason = f"{key} {base.get(key)} -> {current[key]}: fell less than {min_drop:.0%}"
        elif not clues_ok:
            reason = f"clues grew {base.get('clues')} -> {current['clues']}"
    eff = Effect(sid, run_id, status, base, current, reason)
    _append(store, sid, "effect", on_date or dt.date.today(), eff.render(),
            {"run_id": run_id, "status": status, "current": current, "reason": reason})  # fmt: skip
    return eff


def suggestions(store: duckdb.DuckDBPyConnection, today: dt.date | None = None) -> list[dict]:
    """Every suggestion with its derived status (never stored: computed from the events)."""
    ensure(store)
    today = today or dt.date.today()
    rows = store.execute(
        "SELECT suggestion_id, finding_id, kind, department, region, who, title, problems, "
        "cause, fixes, issued_on, deadline, issued_run, baseline FROM suggestion "
        "ORDER BY suggestion_id"
    ).fetchall()
    events: dict[str, list[tuple]] = {}
    for e in store.execute(
        "SELECT suggestion_id, seq, kind, on_date, actor, text, data FROM suggestion_event "
        "ORDER BY suggestion_id, seq"
    ).fetchall():
        events.setdefault(e[0], []).append(e)
    clue_ids = {
        (r[0], r[1]): json.loads(r[2]) if isinstance(r[2], str) else r[2]
        for r in store.execute("SELECT finding_id, run_id, clue_ids FROM finding").fetchall()
    }
    out = []
    for r in rows:
        ev = events.get(r[0], [])
        replies = [x for x in ev if x[2] == "reply"]
        visits = [x for x in ev if x[2] == "visit"]
        effects = [x for x in ev if x[2] == "effect"]
        docx = [x[5] for x in ev if x[2] == "docx"]
        last_reply = json.loads(replies[-1][6]) if replies else {}
        last_effect = json.loads(effects[-1][6]) if effects else {}
        measured = [json.loads(x[6]) for x in effects]
        measured = [m for m in measured if m.get("status") != "unmeasured"]
        effect = measured[-1]["status"] if measured else "unmeasured"
        done = bool(last_reply.get("done"))
        completed = done and effect == "effective"
        if completed:
            status = "整改完成"
        elif effects and effect == "not_effective":
            status = "未见成效"
        elif visits:
            status = "已回访"
        elif replies:
            status = "已回复"
        else:
            status = "已发出"
        out.append({
            "suggestion_id": r[0], "finding_id": r[1], "kind": r[2], "department": r[3],
            "region": r[4], "who": r[5], "title": r[6],
            "problems": json.loads(r[7]) if isinstance(r[7], str) else r[7], "cause": r[8],
            "fixes": json.loads(r[9]) if isinstance(r[9], str) else r[9], "issued_on": r[10],
            "deadline": r[11], "issued_run": r[12],
            "baseline": json.loads(r[13]) if isinstance(r[13], str) else r[13],
            "docx": docx[-1] if docx else None,
            "clue_ids": clue_ids.get((r[1], r[12])) or [],
            "status": status, "completed": completed, "effect": effect,
            "effect_detail": last_effect, "fix": last_reply.get("fix", ""),
            "replies": len(replies), "visits": [(x[3], x[5]) for x in visits],
            "overdue": not replies and r[11] < today,
        })  # fmt: skip
    return out


def metrics(store: duckdb.DuckDBPyConnection, today: dt.date | None = None) -> dict[str, Any]:
    """整改完成率 and 制度健全度 (see the module docstring), with their counts."""
    items = suggestions(store, today)
    issued = len(items)
    completed = sum(1 for s in items if s["completed"])
    latest = store.execute(
        "SELECT run_id FROM finding_status GROUP BY run_id ORDER BY max(run_id) DESC LIMIT 1"
    ).fetchone()
    causes = set()
    if latest:
        causes = {r[0] for r in store.execute(
            "SELECT finding_id FROM finding WHERE run_id = ?", [latest[0]]).fetchall()}  # fmt: skip
    causes |= {s["finding_id"] for s in items}
    fixed = {s["finding_id"] for s in items if s["fix"] and s["effect"] == "effective"}
    return {
        "issued": issued,
        "completed": completed,
        "overdue": sum(1 for s in items if s["overdue"]),
        "rectification_rate": completed / issued if issued else None,
        "root_causes": len(causes),
        "root_causes_fixed": len(fixed & causes),
        "institutional_soundness": len(fixed & causes) / len(causes) if causes else None,
    }


def record_docx(store: duckdb.DuckDBPyConnection, sid: str, path: str) -> int:
    """Record that a suggestion's 建议书 was written to ``path`` (an event like the others)."""
    return _append(store, sid, "docx", dt.date.today(), path, {"file": path})


def record_metrics(store: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any]:
    """Snapshot the metrics for ``run_id`` (once per run) so the report can show their trend."""
    ensure(store)
    m = metrics(store)
    if not store.execute("SELECT 1 FROM governance_metric WHERE run_id = ?", [run_id]).fetchone():
        now = dt.datetime.now().replace(microsecond=0)
        for k in ("rectification_rate", "institutional_soundness", "issued", "completed"):
            if m[k] is not None:
                store.execute(
                    "INSERT INTO governance_metric VALUES (?, ?, ?, ?)", [run_id, k, m[k], now]
                )
    return m
