"""From hit rows to clues (线索), and each clue's life across nights.

A *clue* is one finding: a rule and its subject (a person's canonical ID number, a village code,
an account or a supplier credit code, as the rule defines it). It aggregates every hit row the
rule produced for that subject in a run: periods from/to, months affected, amount at stake,
evidence. Its 线索编号 is assigned once, the first night it is seen, and never changes:
``<rule prefix>-<township code>-<8 hex of sha256(rule|subject)>``, e.g. ``DEC-341122001-3F9A2C1B``.

States after a night's :func:`sync_run`:

``new``         first seen tonight
``ongoing``     seen tonight and on the night before it was last checked
``reopened``    firing again after it stopped, or a 不属实 verdict's evidence changed
``closed``      no longer firing (its rule ran ``ok`` tonight without it: data changed)
``suppressed``  firing, but its latest verdict is 不属实 and its evidence is unchanged since
``unchecked``   its rule did not run ``ok`` tonight (skipped / blind / stale / error): nothing
                is concluded, the clue keeps its summary and is listed as unchecked

The *fingerprint* hashes what the analyst judges: the periods, the amounts per period, and the
rule's evidence with lineage (file, row, identity links) left out and every list sorted, so an
export that only moved rows around does not reopen a settled clue.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from crossmatch import warehouse as wh_mod
from crossmatch.review.store import audit, open_store, store_path
from crossmatch.spec.rules import load_rules

log = logging.getLogger(__name__)

#: Readable prefixes of the core rules' 线索编号; other rules use their id's initials.
PREFIX = {
    "deceased_recipient": "DEC",
    "payroll_on_dibao": "PAY",
    "vehicle_on_dibao": "VEH",
    "property_on_dibao": "PRP",
    "business_on_dibao": "BUS",
    "underage_elderly_allowance": "AGE",
    "farmland_over_area": "FRM",
    "ghost_recipient": "GHO",
    "duplicate_payment": "DUP",
    "cadre_relative_recipient": "CRR",
    "approver_relative": "APR",
    "relative_concentration": "CON",
    "shared_account": "ACC",
    "cadre_account": "CAC",
    "over_standard_amount": "OVS",
    "supplier_official_link": "SUP",
}
FALSE_POSITIVE = ("不属实-数据错误", "不属实-政策允许")
VERDICTS = ("属实", "部分属实", *FALSE_POSITIVE, "无法核实")
_LINEAGE_KEYS = {"rows", "identity_links"}
_CLUE_COLUMNS = (
    "clue_id", "rule_id", "subject", "rule_version", "category", "severity", "subject_name",
    "village_code", "period_from", "period_to", "months", "hits", "amount", "amount_formula",
    "state", "fingerprint", "evidence_summary", "first_run", "first_seen", "last_run",
    "last_seen", "state_since_run",
)  # fmt: skip


def prefix(rule_id: str) -> str:
    """The 线索编号 prefix of a rule."""
    return PREFIX.get(rule_id) or "".join(w[0] for w in rule_id.split("_") if w).upper()[:4]


def clue_id(rule_id: str, subject: str, village_code: str | None, width: int = 8) -> str:
    """The readable, stable 线索编号 of a finding (region = township code when known)."""
    h = hashlib.sha256(f"{rule_id}|{subject}".encode()).hexdigest()[:width].upper()
    region = (village_code or "")[:9] or "000000000"
    return f"{prefix(rule_id)}-{region}-{h}"


def _canonical(value: Any) -> Any:
    """JSON value with lineage keys dropped and every list sorted (order-free comparison)."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in sorted(value.items()) if k not in _LINEAGE_KEYS}
    if isinstance(value, list):
        items = [_canonical(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, ensure_ascii=False, sort_keys=True))
    return value


def fingerprint(hits: list[tuple[str, Any, str]]) -> tuple[str, str]:
    """(fingerprint, evidence summary JSON) of a clue's hits ``(period, amount, evidence)``."""
    summary = sorted(
        (
            {
                "period": p or "",
                "amount": None if a is None else f"{float(a):.2f}",
                "evidence": _canonical(json.loads(e) if isinstance(e, str) else (e or {})),
            }
            for p, a, e in hits
        ),
        key=lambda d: (d["period"], json.dumps(d, ensure_ascii=False, sort_keys=True)),
    )
    text = json.dumps(summary, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16], text


@dataclass
class SyncResult:
    """What one night did to the clues."""

    run_id: str
    counts: Counter[str] = field(default_factory=Counter)
    already_synced: bool = False

    def render(self) -> str:
        if self.already_synced:
            return f"clues: run {self.run_id} was already synced"
        order = ("new", "ongoing", "reopened", "closed", "suppressed", "unchecked")
        return "clues: " + ", ".join(f"{k} {self.counts.get(k, 0)}" for k in order)


def _aggregate(wh: duckdb.DuckDBPyConnection, run_id: str) -> dict[tuple[str, str], dict]:
    """One dict per (rule, subject) of the run: summary figures and its hit rows."""
    rows = wh.execute(
        """
        SELECT rule_id, subject, max(rule_version), min(NULLIF(period, '')),
               max(NULLIF(period, '')), count(DISTINCT NULLIF(period, '')), count(*),
               sum(amount), min(amount_formula), min(severity),
               mode(subject_name ORDER BY subject_name), mode(village_code ORDER BY village_code),
               list((period, amount, evidence::VARCHAR) ORDER BY period, amount, evidence::VARCHAR)
        FROM hit WHERE run_id = ? AND subject IS NOT NULL
        GROUP BY rule_id, subject
        """,
        [run_id],
    ).fetchall()
    out: dict[tuple[str, str], dict] = {}
    for r in rows:
        hits = [(h[0], h[1], h[2]) for h in (tuple(x.values()) if isinstance(x, dict) else x
                                             for x in r[12])]  # fmt: skip
        fp, summary = fingerprint(hits)
        out[(r[0], r[1])] = {
            "rule_version": r[2], "period_from": r[3], "period_to": r[4], "months": r[5],
            "hits": r[6], "amount": r[7], "amount_formula": r[8], "severity": r[9],
            "subject_name": r[10], "village_code": r[11], "fingerprint": fp, "summary": summary,
        }  # fmt: skip
    return out


def _rule_status(wh: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, str]:
    rows = wh.execute("SELECT rule_id, status FROM rule_run WHERE run_id = ?", [run_id]).fetchall()
    return {r[0]: r[1] for r in rows}


def latest_run(wh: duckdb.DuckDBPyConnection) -> str | None:
    """The latest finished detect run in the warehouse (None when there is none)."""
    try:
        row = wh.execute(
            "SELECT run_id FROM rule_run GROUP BY run_id ORDER BY max(started_at) DESC, run_id "
            "DESC LIMIT 1"
        ).fetchone()
    except duckdb.CatalogException:
        return None
    return row[0] if row else None


def sync_run(
    wh: duckdb.DuckDBPyConnection,
    store: duckdb.DuckDBPyConnection,
    run_id: str | None = None,
    *,
    categories: dict[str, str] | None = None,
    warehouse_name: str = "",
) -> SyncResult:
    """Record which clues run ``run_id`` (default: the latest) saw and move every clue's state.

    One transaction in the store: a run killed mid-way leaves the store as it was, and syncing
    the same run again changes nothing.
    """
    run_id = run_id or latest_run(wh)
    if run_id is None:
        raise ValueError("no detect run in the warehouse: run `crossmatch detect` first")
    res = SyncResult(run_id)
    if store.execute("SELECT 1 FROM review_run WHERE run_id = ?", [run_id]).fetchone():
        res.already_synced = True
        return res
    status = _rule_status(wh, run_id)
    if not status:
        raise ValueError(f"run {run_id} is not in the warehouse's rule_run table")
    now = dt.datetime.now().replace(microsecond=0)
    current = _aggregate(wh, run_id)
    known = {
        (r[1], r[2]): {"clue_id": r[0], "state": r[3], "fingerprint": r[4]}
        for r in store.execute(
            "SELECT clue_id, rule_id, subject, state, fingerprint FROM clue"
        ).fetchall()
    }
    last_verdict = {
        r[0]: (r[1], r[2])
        for r in store.execute(
            "SELECT clue_id, arg_max(verdict, recorded_at), arg_max(fingerprint, recorded_at) "
            "FROM verdict GROUP BY clue_id"
        ).fetchall()
    }
    taken = {k["clue_id"] for k in known.values()}
    upserts: list[list[Any]] = []
    nights: list[list[Any]] = []
    for key in sorted(current):
        c = current[key]
        rule_id, subject = key
        prev = known.get(key)
        if prev is None:
            cid = clue_id(rule_id, subject, c["village_code"])
            width = 8
            while cid in taken:  # a hash prefix collision: lengthen this clue's hash
                width += 2
                cid = clue_id(rule_id, subject, c["village_code"], width)
            taken.add(cid)
            state = "new"
        else:
            cid = prev["clue_id"]
            verdict = last_verdict.get(cid)
            if verdict and verdict[0] in FALSE_POSITIVE:
                state = "suppressed" if verdict[1] == c["fingerprint"] else "reopened"
            else:
                state = "reopened" if prev["state"] == "closed" else "ongoing"
        res.counts[state] += 1
        upserts.append(
            [cid, rule_id, subject, c["rule_version"], (categories or {}).get(rule_id),
             c["severity"], c["subject_name"], c["village_code"], c["period_from"],
             c["period_to"], c["months"], c["hits"], c["amount"], c["amount_formula"], state,
             c["fingerprint"], c["summary"], run_id, now, run_id, now, run_id]
        )  # fmt: skip
        nights.append([run_id, cid, state, c["fingerprint"], c["amount"], c["months"]])
    gone: list[tuple[str, str]] = []
    for key, prev in known.items():
        if key in current:
            continue
        rule_ok = status.get(key[0]) == "ok"
        state = "closed" if rule_ok else "unchecked"
        if prev["state"] == "closed" and rule_ok:
            continue  # closed before and still not firing: nothing new to say
        res.counts[state] += 1
        gone.append((prev["clue_id"], state))
        nights.append([run_id, prev["clue_id"], state, prev["fingerprint"], None, None])
    with wh_mod.transaction(store):
        if upserts:
            up = pa.Table.from_pylist([dict(zip(_CLUE_COLUMNS, u, strict=True)) for u in upserts])
            store.register("_clue_up", up)
            store.execute(
                f"""
                INSERT INTO clue SELECT {", ".join(_CLUE_COLUMNS)} FROM _clue_up
                ON CONFLICT (clue_id) DO UPDATE SET
                    rule_version = excluded.rule_version, category = excluded.category,
                    severity = excluded.severity, subject_name = excluded.subject_name,
                    village_code = excluded.village_code, period_from = excluded.period_from,
                    period_to = excluded.period_to, months = excluded.months,
                    hits = excluded.hits, amount = excluded.amount,
                    amount_formula = excluded.amount_formula,
                    state_since_run = CASE WHEN clue.state = excluded.state
                                           THEN clue.state_since_run ELSE excluded.last_run END,
                    state = excluded.state, fingerprint = excluded.fingerprint,
                    evidence_summary = excluded.evidence_summary,
                    last_run = excluded.last_run, last_seen = excluded.last_seen
                """
            )
            store.unregister("_clue_up")
        if gone:
            store.register("_gone", pa.table({"clue_id": [g[0] for g in gone],
                                              "new_state": [g[1] for g in gone]}))  # fmt: skip
            store.execute(
                "UPDATE clue SET state = g.new_state, state_since_run = CASE WHEN "
                "clue.state = g.new_state THEN clue.state_since_run ELSE ? END "
                "FROM _gone g WHERE clue.clue_id = g.clue_id",
                [run_id],
            )
            store.unregister("_gone")
        if nights:
            cols = ("run_id", "clue_id", "state", "fingerprint", "amount", "months")
            store.register("_night", pa.Table.from_pylist([dict(zip(cols, n, strict=True))
                                                          for n in nights]))  # fmt: skip
            store.execute("INSERT INTO clue_night SELECT * FROM _night")
            store.unregister("_night")
        ok = sum(1 for s in status.values() if s == "ok")
        store.execute(
            "INSERT INTO review_run VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, now, warehouse_name, ok, len(status) - ok]
            + [res.counts.get(k, 0) for k in
               ("new", "ongoing", "reopened", "closed", "suppressed", "unchecked")],
        )  # fmt: skip
        audit(store, "sync", {"run_id": run_id, **dict(res.counts)})
    log.info("%s", res.render())
    return res


def sync_warehouse(
    warehouse: str | Path,
    store_file: str | Path | None = None,
    run_id: str | None = None,
    rules_dir: str | Path | None = "rules",
) -> SyncResult:
    """Open the warehouse (read-only) and its review store and sync ``run_id`` (default latest)."""
    categories: dict[str, str] = {}
    if rules_dir is not None and Path(rules_dir).is_dir():
        categories = {s.id: s.category for s in load_rules(rules_dir)}
    wh = wh_mod.connect(warehouse, read_only=True)
    try:
        store = open_store(store_file or store_path(warehouse))
        try:
            return sync_run(wh, store, run_id, categories=categories, warehouse_name=str(warehouse))
        finally:
            store.close()
    finally:
        wh.close()
