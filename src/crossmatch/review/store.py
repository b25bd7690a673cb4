"""The review store: clues, the nights that saw them, verdicts and the audit log.

It is a DuckDB file of its own beside the warehouse (``crossmatch.duckdb`` ->
``crossmatch.review.duckdb``) because the pipeline rebuilds the warehouse at will (a full
re-ingest, a new rule version, a deleted file) while an analyst's verdicts must outlive all of
that. Clues are keyed by (rule, subject), which survive a rebuild: the subject is a canonical ID
number, a village code, an account or a supplier credit code, never a warehouse row id.

Tables (all written by :mod:`crossmatch.review.clues` and :class:`crossmatch.review.Review`):

``clue``        one row per finding ever seen, its current state and summary
``clue_night``  which clues each synced run saw, with their state and fingerprint that night
``review_run``  one row per synced run (counts per state); a run is synced once
``verdict``     append-only verdict history (属实 / 部分属实 / 不属实-数据错误 / ...)
``audit``       who did what when (verdicts, unmasked views and exports)
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import duckdb

from crossmatch.errors import WarehouseError

STORE_DDL = """
CREATE TABLE IF NOT EXISTS clue (
    clue_id VARCHAR PRIMARY KEY,
    rule_id VARCHAR NOT NULL,
    subject VARCHAR NOT NULL,
    rule_version INTEGER,
    category VARCHAR,
    severity VARCHAR,
    subject_name VARCHAR,
    village_code VARCHAR,
    period_from VARCHAR,
    period_to VARCHAR,
    months INTEGER,
    hits INTEGER,
    amount DECIMAL(18,2),
    amount_formula VARCHAR,
    state VARCHAR,
    fingerprint VARCHAR,
    evidence_summary JSON,
    first_run VARCHAR,
    first_seen TIMESTAMP,
    last_run VARCHAR,
    last_seen TIMESTAMP,
    state_since_run VARCHAR,
    UNIQUE (rule_id, subject)
);
CREATE TABLE IF NOT EXISTS clue_night (
    run_id VARCHAR,
    clue_id VARCHAR,
    state VARCHAR,
    fingerprint VARCHAR,
    amount DECIMAL(18,2),
    months INTEGER
);
CREATE TABLE IF NOT EXISTS review_run (
    run_id VARCHAR PRIMARY KEY,
    synced_at TIMESTAMP,
    warehouse VARCHAR,
    rules_ok INTEGER,
    rules_not_ok INTEGER,
    n_new INTEGER,
    n_ongoing INTEGER,
    n_reopened INTEGER,
    n_closed INTEGER,
    n_suppressed INTEGER,
    n_unchecked INTEGER
);
CREATE TABLE IF NOT EXISTS verdict (
    clue_id VARCHAR,
    verdict VARCHAR,
    note VARCHAR,
    author VARCHAR,
    recorded_at TIMESTAMP,
    fingerprint VARCHAR,
    evidence_summary JSON
);
CREATE TABLE IF NOT EXISTS audit (
    seq BIGINT PRIMARY KEY,
    "at" TIMESTAMP,
    actor VARCHAR,
    action VARCHAR,
    detail JSON,
    prev_hash VARCHAR,
    hash VARCHAR
);
CREATE TABLE IF NOT EXISTS assignment (
    clue_id VARCHAR,
    batch_id VARCHAR,
    unit_code VARCHAR,
    unit_name VARCHAR,
    assignee VARCHAR,
    assigned_at TIMESTAMP,
    due_at DATE,
    workbook VARCHAR
);
CREATE TABLE IF NOT EXISTS loop_state (
    clue_id VARCHAR PRIMARY KEY,
    stage VARCHAR,
    since TIMESTAMP,
    reason VARCHAR
);
CREATE TABLE IF NOT EXISTS feedback (
    clue_id VARCHAR,
    batch_id VARCHAR,
    verdict VARCHAR,
    reason VARCHAR,
    verifier VARCHAR,
    verified_on DATE,
    measures VARCHAR,
    payments_stopped DECIMAL(18,2),
    amount_due DECIMAL(18,2),
    amount_recovered DECIMAL(18,2),
    data_corrected BOOLEAN,
    accountability INTEGER,
    sanctions INTEGER,
    source_file VARCHAR,
    source_row INTEGER,
    imported_at TIMESTAMP
);
"""


def store_path(warehouse: str | Path) -> Path:
    """The review store beside a warehouse: ``x.duckdb`` -> ``x.review.duckdb``."""
    p = Path(warehouse)
    return p.with_name(p.stem + ".review" + (p.suffix or ".duckdb"))


def open_store(path: str | Path, *, read_only: bool = False, wait: float = 30.0):
    """Open (creating if needed) the review store; waits up to ``wait`` s for another writer.

    DuckDB allows one writing process per file: a nightly sync and an analyst marking a verdict
    take turns, the second one waiting, then failing with a clear message.
    """
    p = Path(path)
    if read_only and not p.exists():
        raise WarehouseError(
            f"{p}: review store not found. Fix: run `crossmatch detect` (it syncs the clues) "
            "or `crossmatch clues --sync`."
        )
    new = not p.exists()
    if new:
        p.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait
    while True:
        try:
            con = duckdb.connect(str(p), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise WarehouseError(
                    f"{p}: cannot open the review store ({str(exc).splitlines()[0]}). Fix: "
                    "close the notebook or process holding it, then retry."
                ) from exc
            time.sleep(0.5)
    if new:
        os.chmod(p, 0o600)  # verdicts name people: readable by the owner only
    if not read_only:
        con.execute(STORE_DDL)
    return con


def actor() -> str:
    """Who is acting: ``CROSSMATCH_USER`` or the login name."""
    return os.environ.get("CROSSMATCH_USER") or getpass.getuser()


def _row_hash(prev: str, seq: int, at: str, who: str, action: str, detail: str) -> str:
    text = "\x1f".join((prev, str(seq), at, who, action, detail))
    return hashlib.sha256(text.encode()).hexdigest()


def audit(con: duckdb.DuckDBPyConnection, action: str, detail: dict[str, Any]) -> None:
    """Append one audit row, chained to the previous one by sha256 (the caller commits).

    Each row's hash covers its own fields and the previous row's hash, so editing, deleting or
    reordering any row breaks the chain from there on: :func:`verify_audit` finds it.
    """
    last = con.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (last[0] + 1, last[1]) if last else (1, "")
    at = dt.datetime.now().replace(microsecond=0)
    who = actor()
    text = json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str)
    con.execute(
        "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?)",
        [seq, at, who, action, text, prev,
         _row_hash(prev, seq, at.isoformat(), who, action, text)],
    )  # fmt: skip


def verify_audit(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Problems in the audit chain (empty when no row was edited, removed or reordered)."""
    problems: list[str] = []
    prev = ""
    expected = 1
    rows = con.execute(
        'SELECT seq, "at", actor, action, detail, prev_hash, hash FROM audit ORDER BY seq'
    ).fetchall()
    for seq, at, who, action, detail, prev_hash, h in rows:
        if seq != expected:
            problems.append(f"audit row {expected} is missing (next is {seq})")
        if prev_hash != prev:
            problems.append(f"audit row {seq}: previous-hash link broken")
        text = detail if isinstance(detail, str) else json.dumps(detail)
        if _row_hash(prev_hash, seq, at.isoformat(), who, action, text) != h:
            problems.append(f"audit row {seq}: contents changed after it was written")
        prev, expected = h, seq + 1
    return problems
