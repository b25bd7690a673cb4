"""Plan and execute rules against a warehouse connection; store hits and per-rule run records.

parse (crossmatch.spec.rules) -> plan (check sources, render parameters) -> execute (the rule's
kind, in DuckDB) -> result (``hit`` + ``rule_run`` rows, and a :class:`RunResult`).

Every rule gets a status from its real inputs (what it reads: :mod:`crossmatch.detect.needs`):

* ``skipped``: a source it needs has no loaded rows, or its last file failed (not run);
* ``stale``: identity (``crossmatch resolve``) was computed before the last ingest that changed
  data, or a source is older than ``max_age_days`` (not run: hits on stale inputs are wrong);
* ``blind``: a column it reads is absent from the loaded table or NULL in every row (run: the
  hits are stored, but the rule could not see everything it looks at);
* ``error``: the rule failed (the other rules still run); ``ok`` otherwise. Never ``ok`` over
  missing inputs.

Kinship is rebuilt whenever its inputs (hukou, marriage, identity) changed since it was built.
A run's hits and rule rows are written in one transaction at the end, and ``detect_run`` marks the
run finished: an interrupted run leaves the previous results as the latest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from crossmatch import kinship, warehouse
from crossmatch.console import text_table
from crossmatch.detect import needs as rule_needs
from crossmatch.detect import reuse, schema
from crossmatch.detect.reference import (
    load_reference,
    reference_problems,
)
from crossmatch.detect.rule_kinds import KIND_COLUMNS, KINDS, load_checked_rules
from crossmatch.errors import ExitCode, SpecError
from crossmatch.kinship import KINSHIP_VERSION
from crossmatch.spec.common import Problem
from crossmatch.spec.rules import HIT_COLUMNS, Example, RuleSpec

log = logging.getLogger(__name__)

HIT_DDL = """
CREATE TABLE IF NOT EXISTS hit (
    run_id VARCHAR, rule_id VARCHAR, rule_version INTEGER, subject VARCHAR,
    subject_name VARCHAR, period VARCHAR, amount DECIMAL(18,2), amount_formula VARCHAR,
    severity VARCHAR, village_code VARCHAR, evidence JSON, clue_key VARCHAR
);
CREATE TABLE IF NOT EXISTS rule_run (
    run_id VARCHAR, rule_id VARCHAR, rule_version INTEGER, status VARCHAR, reason VARCHAR,
    hits INTEGER, amount DECIMAL(18,2), seconds DOUBLE, started_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS detect_run (
    run_id VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP, status VARCHAR,
    rules INTEGER, hits INTEGER
);
"""
#: Rule statuses, worst last; the CLI and the flow exit with the code of the worst.
STATUSES = ("ok", "blind", "stale", "skipped", "error")
#: Columns whose NULL in every row is a normal state (open terms, nothing cancelled, no closing
#: date), so "all NULL" does not make a rule blind.
MAY_BE_ALL_NULL = frozenset(
    {
        "end_date",
        "cancel_date",
        "term_end",
        "closed",
        "deregistered",
        "valid_to",
        "status_date",
        "cancel_reason",
        "handler_pid",
        "approver_pid",
    }
)
_BAD_STATUS = ("failed", "error", "stale", "rejected")


@dataclass
class RuleOutcome:
    """What happened to one rule in one run."""

    rule_id: str
    version: int
    status: str  # ok / blind / stale / skipped / error
    reason: str = ""
    hits: int = 0
    amount: float = 0.0
    seconds: float = 0.0
    reused_from: str | None = None  # hits copied from this run (inputs unchanged)
    #: ``partition: period`` rules: (run, months kept, months computed) when only the payment
    #: months that changed since that run were computed and the others' hits copied from it
    months_from: tuple[str, int, int] | None = None


@dataclass
class RunResult:
    """All rule outcomes of one run; ``table()`` renders the per-rule summary."""

    run_id: str
    outcomes: list[RuleOutcome] = field(default_factory=list)
    prepare_seconds: float = 0.0  # stand-ins, reference tables, kinship if absent, base tables

    @property
    def ok(self) -> bool:
        """No rule in error (findings and degraded rules are not failures of the run)."""
        return all(o.status != "error" for o in self.outcomes)

    @property
    def complete(self) -> bool:
        """Every rule ``ok``: nothing skipped, stale, blind or in error."""
        return all(o.status == "ok" for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        """0 all ok (hits are findings, not failures); 4 some rule skipped / stale / blind
        (input problems); 6 some rule in error. The CLI and the nightly flow both use this."""
        return exit_code_for([o.status for o in self.outcomes])

    def table(self) -> str:
        """Per rule: status, hits, amount, seconds and the reason (a rule whose inputs did not
        change names the run whose hits it copied); totals below."""
        rows = [
            (
                o.rule_id,
                o.status,
                o.hits,
                f"{o.amount:,.2f}",
                f"{o.seconds:.2f}",
                (f"(inputs unchanged: hits of run {o.reused_from}) " if o.reused_from else "")
                + (
                    f"({o.months_from[1]} payment months unchanged: their hits of run "
                    f"{o.months_from[0]}; {o.months_from[2]} computed) "
                    if o.months_from
                    else ""
                )
                + o.reason,
            )
            for o in self.outcomes
        ]
        tot = sum(o.hits for o in self.outcomes)
        amt = sum(o.amount for o in self.outcomes)
        sec = sum(o.seconds for o in self.outcomes) + self.prepare_seconds
        footer = [
            ("(prepare: base tables)", "", "", "", f"{self.prepare_seconds:.2f}", ""),
            ("total", "", tot, f"{amt:,.2f}", f"{sec:.2f}", ""),
        ]
        head = ("rule", "status", "hits", "amount", "seconds", "reason")
        body = text_table(head, rows, right=(2, 3, 4), footer=footer)
        return f"run {self.run_id}\n{body}"


def exit_code_for(statuses: list[str]) -> int:
    """The exit code of a run whose rules ended with ``statuses`` (see RunResult.exit_code)."""
    if "error" in statuses:
        return int(ExitCode.RUN_FAILED)
    if any(s != "ok" for s in statuses):
        return int(ExitCode.INPUT_PROBLEMS)
    return int(ExitCode.OK)


def clue_key(rule_id: str, subject: str, period: str) -> str:
    """Stable clue id: the same (rule, subject, period) gives the same key in every run."""
    return hashlib.sha256(f"{rule_id}|{subject}|{period}".encode()).hexdigest()[:20]


# ---------------------------------------------------------------- preparation


def kinship_fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    """What kinship is computed from: the hukou and marriage file versions and the identity run
    (stage ``resolve``). '' on a warehouse not built by ingest (fixtures)."""
    if not warehouse.ingest_fingerprint(con):
        return ""
    files = warehouse.ingest_fingerprint(con, ["hukou", "marriage"])

    res = warehouse.stage_state(con, "resolve")
    ident = f"{res[0]}|{res[2]}" if res else "no-resolve"
    return hashlib.sha256(f"{files}|{ident}|{KINSHIP_VERSION}".encode()).hexdigest()


def rebuild_kinship(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """(Re)build the kinship tables and record the inputs they were built from."""
    counts = kinship.build(con)
    warehouse.record_stage(con, "kinship", kinship_fingerprint(con))
    return counts


def kinship_is_stale(con: duckdb.DuckDBPyConnection) -> str | None:
    """Why the kinship tables must be rebuilt before rules read them, or None."""
    have = schema.existing_relations(con)
    if "r_hukou" not in have:
        return None
    if "kin_relative" not in have:
        return "kinship tables missing"
    fp = kinship_fingerprint(con)
    if not fp:  # a hand-built warehouse: its kinship tables are what they are
        return None
    st = warehouse.stage_state(con, "kinship")
    if st is None or st[0] != fp:
        # identity ran again: the tables are still current when the rows kinship is computed
        # from are the same (content digest), e.g. resolve re-run on a changed payment file
        built = kinship.built_fingerprint(con)
        if built is not None and built == kinship.input_fingerprint(con):
            warehouse.record_stage(con, "kinship", fp)
            return None
        return "kinship inputs (hukou, marriage, identity) changed since it was built"
    return None


def ensure_kinship(con: duckdb.DuckDBPyConnection, *, force: bool = False) -> tuple[str, dict]:
    """Rebuild kinship when its inputs changed (or ``force``): ('rebuilt', counts) with the
    reason logged, or ('unchanged', counts of the current tables)."""
    why = "forced" if force else kinship_is_stale(con)
    if why or "kin_relative" not in schema.existing_relations(con):
        log.info("kinship: rebuilding (%s)", why or "tables missing")
        return "rebuilt", rebuild_kinship(con)
    counts = {
        t: warehouse.fetch_one(con, f"SELECT count(*) FROM {t}")[0]
        for t in ("kin_edge", "kin_relative")
    }
    return "unchanged", counts


def prepare(
    con: duckdb.DuckDBPyConnection,
    rules_dir: str | Path,
    *,
    build_kinship: bool = True,
    keep: set[str] | None = None,
) -> list[str]:
    """Make the connection ready for rules: stand-ins for absent contract tables, reference
    tables, kinship (rebuilt when absent or stale) and the shared base views.
    Returns the names of the stand-ins created (absent inputs)."""
    for level, note in schema.conform(con):
        log.log(level, "contract drift: %s", note)
    why = kinship_is_stale(con) if build_kinship else None
    if why:
        log.info("%s: building kinship from r_hukou / r_marriage", why)
        rebuild_kinship(con)
    made = schema.ensure_contract_tables(con)
    load_reference(con, rules_dir, keep)
    base = resources.files("crossmatch.detect").joinpath("base.sql").read_text(encoding="utf-8")
    con.execute(base)
    for (msg,) in con.execute("SELECT message FROM base_warning").fetchall():
        log.warning("%s", msg)  # e.g. an item name without a class: reported, never dropped
    return made


def loaded_columns(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    """Per source, the columns its resolved view (or canonical table) really has, before any
    contract stand-in is added (``person_pid`` counts when identity published ``<source>_pid``)."""
    cols: dict[str, set[str]] = {}
    temp: dict[str, set[str]] = {}
    for table, col, sch in con.execute(
        "SELECT table_name, column_name, table_schema FROM information_schema.columns "
        "WHERE table_name LIKE 'r\\_%' ESCAPE '\\' OR table_name LIKE 'src\\_%' ESCAPE '\\'"
    ).fetchall():
        (cols if sch == "main" else temp).setdefault(table, set()).add(col)
    for table, c in temp.items():  # a TEMP relation counts only without a stored one
        cols.setdefault(table, c)
    out = {}
    for src in schema.sources():
        have = cols.get(f"r_{src}") or cols.get(f"src_{src}")
        if have is None:
            continue
        if f"{src}_pid" in have:
            have = have | {"person_pid"}
        out[src] = have
    return out


def available_sources(
    con: duckdb.DuckDBPyConnection, *, max_age_days: float | None = None
) -> dict[str, tuple[str, str] | None]:
    """Source id -> None if usable, else (status, reason): ``skipped`` (not loaded, no rows, its
    last file failed) or ``stale`` (older than ``max_age_days``).

    With an ``ingest_file`` record, that decides; without one (tests, hand-built warehouses) a
    source is present when its resolved view has rows.
    """
    status: dict[str, tuple[str, str] | None] = {}
    have = schema.existing_relations(con)
    rows = (
        con.execute(
            "SELECT source, file, status, rows_loaded, loaded_at, message FROM ingest_file "
            "ORDER BY loaded_at"
        ).fetchall()
        if "ingest_file" in have
        else []
    )
    by_src: dict[str, list[tuple]] = {}
    for r in rows:
        by_src.setdefault(r[0], []).append(r)
    now = dt.datetime.now()
    for s in schema.sources():
        if rows:
            versions = by_src.get(s, [])
            if not versions:
                status[s] = (
                    "skipped",
                    f"source '{s}' not loaded (no file in ingest_file). Fix: add its export "
                    "and run `crossmatch ingest`",
                )
                continue
            last: dict[str, tuple] = {}
            for v in versions:  # ordered by loaded_at: the last record of each file wins
                last[v[1]] = v
            failed = [v for v in last.values() if str(v[2] or "").lower() in _BAD_STATUS]
            if failed:
                v = failed[-1]
                msg = str(v[5] or "").splitlines()[0][:200] if v[5] else ""
                status[s] = (
                    "skipped",
                    f"source '{s}': its last file {v[1]} {v[2]}"
                    + (f" ({msg})" if msg else "")
                    + ". Fix: correct the export and run `crossmatch ingest`",
                )
                continue
            good = [v for v in versions if v[2] == "ok" and (v[3] or 0) > 0]
            if not good:
                status[s] = ("skipped", f"source '{s}': no rows loaded")
                continue
            newest = max((v[4] for v in good if v[4] is not None), default=None)
            seen = warehouse.stage_state(con, f"seen:{s}")
            if seen and seen[2] and (newest is None or seen[2] > newest):
                newest = seen[2]
            if (
                max_age_days is not None
                and newest is not None
                and (now - newest).total_seconds() > max_age_days * 86400
            ):
                status[s] = (
                    "stale",
                    f"source '{s}' last present {newest:%Y-%m-%d %H:%M}, older than "
                    f"--max-age-days {max_age_days:g}. Fix: ingest tonight's export",
                )
                continue
        view = f"r_{s}" if f"r_{s}" in have else f"src_{s}" if f"src_{s}" in have else None
        # whether it has a row (not how many: counting a resolved view joins every link)
        n = con.execute(f'SELECT 1 FROM "{view}" LIMIT 1').fetchone() if view else None
        status[s] = None if n else ("skipped", f"source '{s}' has no rows in r_{s}")
    return status


def identity_is_stale(con: duckdb.DuckDBPyConnection) -> str | None:
    """Why identity (``identity_link``, ``person``, the ``R_pid`` columns) cannot be trusted now,
    or None. Hand-built warehouses (no ``ingest_file``) are taken as they are."""
    fp = warehouse.ingest_fingerprint(con)
    if not fp:
        return None
    have = schema.existing_relations(con)
    fix = "Fix: run `crossmatch resolve` (the nightly flow always does) and detect again"
    if "identity_link" not in have:
        return f"identity not resolved. {fix}"
    st = warehouse.stage_state(con, "resolve")
    if st is None or st[0] != fp:
        return f"identity was computed before the last ingest changed data. {fix}"
    if "person_mention" in have:
        row = con.execute(
            """SELECT count(*) FROM (
                (SELECT DISTINCT source, file, file_hash FROM person_mention
                 EXCEPT SELECT DISTINCT source, file, file_hash FROM identity_link)
                UNION ALL
                (SELECT DISTINCT source, file, file_hash FROM identity_link
                 EXCEPT SELECT DISTINCT source, file, file_hash FROM person_mention))"""
        ).fetchone()
        if row and row[0]:
            return f"person_mention and identity_link disagree (resolve interrupted?). {fix}"
    return None


def _reads_kinship(nd: rule_needs.RuleNeeds) -> bool:
    return any(t.startswith("kin_") for t in nd.columns)


def _reads_identity(nd: rule_needs.RuleNeeds) -> bool:
    return any(
        t in ("person", "identity_link")
        or t.startswith("kin_")
        or any(c.endswith("_pid") for c in cols)
        for t, cols in nd.columns.items()
    )


def assess(
    nd: rule_needs.RuleNeeds,
    avail: dict[str, tuple[str, str] | None],
    loaded: dict[str, set[str]],
    empty: dict[str, set[str]],
    identity_stale: str | None,
    lacking: dict[str, dict[str, list[str]]] | None = None,
) -> tuple[str, str]:
    """(status, reason) of a rule before it runs: skipped / stale / blind, or ('ok', '')."""
    reasons: list[str] = []
    for req in nd.requires:
        group = req if isinstance(req, tuple) else (req,)
        states = [avail.get(s) for s in group]
        if all(st is not None and st[0] == "skipped" for st in states):
            if len(group) == 1:
                reasons.append(states[0][1])  # type: ignore[index]
            else:
                reasons.append(
                    "needs one of " + "/".join(group) + ": " + "; ".join(st[1] for st in states)
                )  # type: ignore[index]
    if reasons:
        return "skipped", "; ".join(reasons)
    stale = [st[1] for s in sorted(nd.sources()) if (st := avail.get(s)) and st[0] == "stale"]
    if identity_stale and _reads_identity(nd):
        stale.insert(0, identity_stale)
    if stale:
        return "stale", "; ".join(stale)
    blind = []
    for src, cols in sorted(nd.source_columns().items()):
        if avail.get(src) is not None or src not in loaded:
            continue
        absent = [c for c in cols if c not in loaded[src]]
        nulls = [c for c in cols if c in empty.get(src, set()) and c not in absent]
        if absent:
            blind.append(
                f"r_{src} has no column {', '.join(absent)} (not in sources/{src}.yaml). "
                f"Fix: map it, then ingest and resolve"
            )
        no_header = {c: f for c, f in (lacking or {}).get(src, {}).items() if c in nulls}
        nulls = [c for c in nulls if c not in no_header]
        by_files: dict[tuple[str, ...], list[str]] = {}
        for col, files in sorted(no_header.items()):
            by_files.setdefault(tuple(files), []).append(col)
        for files, cols_ in by_files.items():
            shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
            blind.append(
                f"r_{src}.{', '.join(cols_)}: the export has no such column (an optional field of "
                f"sources/{src}.yaml whose header is not in {shown}). Fix: ask the department "
                "for an export with it, or map the header that holds it; then ingest and resolve"
            )
        if nulls:
            blind.append(
                f"r_{src}.{', '.join(nulls)} empty in every row. Fix: map the column that holds "
                f"it in sources/{src}.yaml (or a `value:`/`default:`), then ingest and resolve"
            )
    if blind:
        return "blind", "; ".join(blind)
    return "ok", ""


def counted_columns(
    con: duckdb.DuckDBPyConnection, needs: dict[str, rule_needs.RuleNeeds]
) -> dict[str, list[str]]:
    """``r_<source>`` -> the columns rules read whose all-NULL state :func:`empty_columns`
    checks (those in MAY_BE_ALL_NULL and lineage left out; only columns the view has)."""
    want: dict[str, set[str]] = {}
    for nd in needs.values():
        for src, cols in nd.source_columns().items():
            want.setdefault(src, set()).update(c for c in cols if c not in MAY_BE_ALL_NULL)
    have = schema.existing_relations(con)
    out: dict[str, list[str]] = {}
    for src, cols in want.items():
        if f"r_{src}" not in have or not cols:
            continue
        real = {r[0] for r in con.execute(f'DESCRIBE "r_{src}"').fetchall()}
        cols_l = sorted(c for c in cols if c in real)
        if cols_l:
            out[f"r_{src}"] = cols_l
    return out


def empty_columns(
    con: duckdb.DuckDBPyConnection,
    needs: dict[str, rule_needs.RuleNeeds],
    counts: dict[str, dict[str, int]] | None = None,
) -> dict[str, set[str]]:
    """Per source, the columns rules read that are NULL in every row of a non-empty view
    (those in MAY_BE_ALL_NULL and lineage left out). ``counts``: the non-NULL counts already
    taken (``reuse.period_inputs`` counts them in its fingerprint scans); a view without them
    is counted here."""
    out: dict[str, set[str]] = {}
    for table, cols_l in counted_columns(con, needs).items():
        got = (counts or {}).get(table)
        if got is None or "" not in got or any(c not in got for c in cols_l):
            sel = ", ".join(f'count("{c}")' for c in cols_l)
            row = con.execute(f'SELECT count(*), {sel} FROM "{table}"').fetchone()
            got = {"": row[0] if row else 0}
            got.update({c: n for c, n in zip(cols_l, row[1:] if row else [], strict=False)})
        if got[""]:
            empty = {c for c in cols_l if got.get(c) == 0}
            src = table[2:]
            if empty:
                empty -= present_optional(con, src)
            out[src] = empty
    return out


def present_optional(con: duckdb.DuckDBPyConnection, src: str) -> set[str]:
    """Columns of ``r_<src>`` from optional mapped fields whose header every file loaded in it
    has (``ingest_file.optional_columns``): NULL in every row, such a column says "none" (no
    home has a co-owner), it is not a column the export lacks. A source of several files
    (``join:`` parts) counts each column in the files of the part that maps it. A file loaded
    before this was recorded, or lacking the header, keeps the column counted as empty (the
    rule is blind)."""
    rows = _optional_records(con, src)
    if not rows:
        return set()
    present: set[str] = set()
    absent: set[str] = set()
    for _file, doc in rows:
        if not doc:
            return set()
        try:
            rec = json.loads(doc)
            present |= set(rec.get("present", []))
            absent |= set(rec.get("absent", []))
        except (ValueError, AttributeError):
            return set()
    return present - absent


def _optional_records(
    con: duckdb.DuckDBPyConnection, src: str
) -> list[tuple[str, str | None]] | None:
    """(file, its latest ok ``ingest_file.optional_columns`` JSON or None) per file loaded in
    ``r_<src>`` and per file of its ``join:`` parts (``_asm_<src>__join<k>``, ingest source
    ``<src>.join<k>``), by file name; None when the warehouse predates the record."""
    if not _has(con, "ingest_file"):
        return None
    if "optional_columns" not in {r[0] for r in con.execute("DESCRIBE ingest_file").fetchall()}:
        return None
    have = schema.existing_relations(con)
    parts = sorted(t for t in have if t.startswith(f"_asm_{src}__join"))
    files = [f"SELECT DISTINCT split_part(_file, '#', 1) AS file, ? AS source FROM \"r_{src}\""]
    args: list[str] = [src]
    for t in parts:
        files.append(f"SELECT DISTINCT split_part(_file, '#', 1), ? FROM \"{t}\"")
        args.append(f"{src}.{t.rsplit('__', 1)[1]}")
    return con.execute(
        f"""
        WITH f AS ({" UNION ALL ".join(files)})
        SELECT f.file, arg_max(i.optional_columns, i.loaded_at)
        FROM f LEFT JOIN ingest_file i
          ON i.source = f.source AND i.file = f.file AND i.status = 'ok'
        GROUP BY f.source, f.file ORDER BY f.source, f.file
        """,
        args,
    ).fetchall()


def lacking_headers(
    con: duckdb.DuckDBPyConnection, empty: dict[str, set[str]]
) -> dict[str, dict[str, list[str]]]:
    """Per source, the empty columns (of ``empty``) that some loaded file's header lacked
    (``ingest_file.optional_columns`` "absent"), with those files: the blind reason can then
    say the export has no such column rather than that it is empty."""
    out: dict[str, dict[str, list[str]]] = {}
    for src, cols in empty.items():
        rows = _optional_records(con, src) if cols else None
        for file, doc in rows or []:
            try:
                absent = set(json.loads(doc).get("absent", [])) if doc else set()
            except (ValueError, AttributeError):
                continue
            for col in sorted(absent & cols):
                out.setdefault(src, {}).setdefault(col, []).append(Path(file).name)
    return out


def _has(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return table in schema.existing_relations(con)


# ---------------------------------------------------------------- execution


def execute_rule(
    con: duckdb.DuckDBPyConnection, spec: RuleSpec, overrides: dict[str, Any] | None = None
) -> None:
    """Run one rule into TEMP table ``_rule_hits`` (HIT_COLUMNS, one row per clue key)."""
    values = spec.param_values(overrides)
    sql = spec.render_sql(overrides)
    KINDS[spec.kind](con, spec, sql, values)
    cols = [r[0] for r in con.execute("DESCRIBE _rule_hits").fetchall()]
    if tuple(cols[: len(HIT_COLUMNS)]) != HIT_COLUMNS:
        raise ValueError(f"rule {spec.id} returned columns {cols}; expected {list(HIT_COLUMNS)}")
    # One clue per (subject, period): keep the largest amount if a rule emits duplicates.
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _rule_hits AS
        SELECT subject::VARCHAR AS subject, subject_name::VARCHAR AS subject_name,
               coalesce(period::VARCHAR, '') AS period, CAST(amount AS DECIMAL(18,2)) AS amount,
               village_code::VARCHAR AS village_code, to_json(evidence) AS evidence
        FROM _rule_hits WHERE subject IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY subject, coalesce(period::VARCHAR, '')
                                   ORDER BY amount DESC NULLS LAST, subject_name, village_code,
                                            to_json(evidence)::VARCHAR) = 1
        """
    )


#: Evidence with every top-level list sorted (rules build lists with list(), whose order follows
#: the scan): two runs over the same data store byte-identical evidence.
_SORT_EVIDENCE = """
CREATE OR REPLACE TEMP MACRO _sorted_evidence(e) AS to_json(map_from_entries(list_transform(
    json_keys(e), lambda k: {'key': k, 'value': CASE
        WHEN json_type(e, '$."' || k || '"') = 'ARRAY'
        THEN to_json(list_sort(CAST(json_extract(e, '$."' || k || '"') AS JSON[])))
        ELSE json_extract(e, '$."' || k || '"') END})))
"""


def _store(con: duckdb.DuckDBPyConnection, spec: RuleSpec, run_id: str) -> tuple[int, float]:
    """Append ``_rule_hits`` to the run's staging table ``_run_hit`` with identity links added
    to the evidence (written to ``hit`` when the whole run has finished)."""
    con.execute(_SORT_EVIDENCE)
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _hit_links AS
        WITH h AS (SELECT row_number() OVER (ORDER BY subject, period) AS hid, * FROM _rule_hits),
        r AS (
            SELECT hid, unnest(from_json(json_extract(evidence, '$.rows'),
                                         '[{"file": "VARCHAR", "row": "INTEGER"}]')) AS x
            FROM h
        ),
        l AS (
            SELECT r.hid,
                   list(DISTINCT {'file': il.file, 'row': il.row, 'role': il.role,
                                  'person_id': il.person_id, 'method': il.method,
                                  'probability': il.probability}
                        ORDER BY {'file': il.file, 'row': il.row, 'role': il.role,
                                  'person_id': il.person_id, 'method': il.method,
                                  'probability': il.probability}) AS links
            FROM r JOIN identity_link il ON il.file = r.x.file AND il.row = r.x.row
            GROUP BY r.hid
        )
        SELECT h.*, coalesce(l.links, []) AS links FROM h LEFT JOIN l USING (hid)
        """
    )
    # clue_key in SQL (same value as clue_key()): no per-hit round trip through Python
    con.execute(
        """
        INSERT INTO _run_hit
        SELECT ?, ?, ?, h.subject, h.subject_name, h.period, h.amount, ?, ?, h.village_code,
               _sorted_evidence(json_merge_patch(h.evidence,
                                                 to_json({'identity_links': h.links}))),
               substr(sha256(? || '|' || h.subject || '|' || h.period), 1, 20)
        FROM _hit_links h ORDER BY h.hid
        """,
        [run_id, spec.id, spec.version, spec.amount_formula, spec.severity, spec.id],
    )
    row = con.execute("SELECT count(*), coalesce(sum(amount), 0) FROM _rule_hits").fetchone()
    n, amt = row if row else (0, 0)
    return int(n), float(amt)


@dataclass
class RunPlan:
    """A detect run begun on a warehouse connection (:func:`begin_run`): the rules, what each
    reads, the status each gets from its real inputs before anything runs, and which rules copy
    the hits of an earlier run because their inputs are unchanged (:mod:`crossmatch.detect.reuse`).
    """

    run_id: str
    specs: list[RuleSpec]
    needs: dict[str, rule_needs.RuleNeeds]
    status: dict[str, tuple[str, str]]  # rule id -> (status, reason): ok/blind run, others not
    prepare_seconds: float = 0.0
    rules_dir: str | Path = "rules"
    only: list[str] | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)  # rule id -> inputs' digest
    previous: dict[str, str] = field(default_factory=dict)  # rule id -> run with the same inputs
    #: ``partition: period`` rules: everything but the payment rows (reuse.period_inputs)
    rests: dict[str, str] = field(default_factory=dict)
    #: ``partition: period`` rules: payment month -> digest (reuse.period_inputs)
    months: dict[str, dict[str | None, str]] = field(default_factory=dict)
    #: rule id -> (run, months whose hits it copies, months it computes): only some months'
    #: payments changed since that run (reuse module docstring)
    by_month: dict[str, tuple[str, list[str], list[str]]] = field(default_factory=dict)

    def runnable(self, rule_id: str) -> bool:
        """Whether the rule has hits this run (``ok``, or ``blind``: its hits flagged as partial),
        computed or copied (:meth:`reuses`)."""
        return self.status[rule_id][0] in ("ok", "blind")

    def reuses(self, rule_id: str) -> str | None:
        """The run whose hits this runnable rule copies (same inputs), else None: it executes."""
        return self.previous.get(rule_id) if self.runnable(rule_id) else None

    def executes(self, rule_id: str) -> bool:
        """Whether the rule's SQL runs this run (runnable and not reused)."""
        return self.runnable(rule_id) and self.reuses(rule_id) is None


def stage_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``hit``/``rule_run``/``detect_run`` if absent and the run's empty staging tables
    ``_run_hit`` and ``_run_rule`` (what :func:`run_rule` and :func:`record_outcome` append to)."""
    con.execute(HIT_DDL)
    con.execute("CREATE OR REPLACE TEMP TABLE _run_hit AS SELECT * FROM hit LIMIT 0")
    con.execute("CREATE OR REPLACE TEMP TABLE _run_rule AS SELECT * FROM rule_run LIMIT 0")


def begin_run(
    con: duckdb.DuckDBPyConnection,
    rules_dir: str | Path = "rules",
    only: list[str] | None = None,
    *,
    params: dict[str, dict[str, Any]] | None = None,
    run_id: str | None = None,
    max_age_days: float | None = None,
    full: bool = False,
) -> RunPlan:
    """Begin a run: record it as ``running`` in ``detect_run``, rebuild kinship if stale, make the
    connection ready for rules (:func:`prepare`), stage the run's tables, decide each rule's
    status from its inputs and which rules reuse an earlier run's hits (none when ``full``).
    Spec problems raise :class:`crossmatch.errors.SpecError` first."""
    specs = load_checked_rules(rules_dir, only=only)
    needs = rule_needs.derive_stored(con, specs, rules_dir)
    run_id = run_id or dt.datetime.now().strftime("%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:6]
    t_prep = time.perf_counter()
    con.execute(HIT_DDL)
    con.execute(
        "INSERT INTO detect_run VALUES (?, ?, NULL, 'running', ?, NULL)",
        [run_id, dt.datetime.now(), len(specs)],
    )
    loaded = loaded_columns(con)  # before contract stand-ins hide an absent column
    kin_problem = None
    for level, note in schema.conform(con):
        log.log(level, "contract drift: %s", note)
    why = kinship_is_stale(con)
    if why:
        log.info("%s: rebuilding kinship", why)
        try:
            rebuild_kinship(con)
        except Exception as exc:  # the rules that read kinship wait; the others run
            log.exception("kinship rebuild failed")
            kin_problem = (
                f"kinship is stale ({why}) and could not be rebuilt: {type(exc).__name__}. "
                "Fix: run `crossmatch kinship` to see the error"
            )
    prepare(con, rules_dir, build_kinship=False)
    avail = available_sources(con, max_age_days=max_age_days)
    ident = identity_is_stale(con)
    # the fingerprints' scans also count the non-NULL values the empty-column check needs
    counts = {t: dict.fromkeys(c, 0) for t, c in counted_columns(con, needs).items()}
    fps, rests, months = reuse.period_inputs(con, specs, needs, rules_dir, params, counts)
    counts = {t: c for t, c in counts.items() if "" in c}  # those the scans counted
    empty = empty_columns(con, needs, counts)
    lacking = lacking_headers(con, empty)
    stage_tables(con)
    con.execute(reuse.RULE_INPUT_DDL)
    con.execute(reuse.RULE_PERIOD_DDL)
    prev = {} if full else reuse.previous_runs(con, fps)
    by_month: dict[str, tuple[str, list[str], list[str]]] = {}
    for rid, rest in ({} if full else rests).items():
        if rid in prev:
            continue
        found = reuse.previous_months(con, rid, rest)
        if found is None:
            continue
        mine = months.get(rid, {})
        keep = sorted(p for p, d in mine.items() if p is not None and found[1].get(p) == d)
        redo = sorted(p for p, d in mine.items() if p is not None and found[1].get(p) != d)
        if keep:  # else nothing to gain: the rule runs on every month
            by_month[rid] = (found[0], keep, redo)
    con.execute("CREATE OR REPLACE TEMP TABLE _run_input AS SELECT * FROM rule_input LIMIT 0")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _run_period AS SELECT * FROM rule_period_input LIMIT 0"
    )
    status = {}
    for spec in specs:
        st = assess(needs[spec.id], avail, loaded, empty, ident, lacking)
        if kin_problem and st[0] in ("ok", "blind") and _reads_kinship(needs[spec.id]):
            st = ("stale", kin_problem)
        status[spec.id] = st
    return RunPlan(
        run_id,
        specs,
        needs,
        status,
        time.perf_counter() - t_prep,
        rules_dir=rules_dir,
        only=only,
        params=dict(params or {}),
        fingerprints=fps,
        previous=prev,
        rests=rests,
        months=months,
        by_month=by_month,
    )


def run_rule(
    con: duckdb.DuckDBPyConnection,
    spec: RuleSpec,
    run_id: str,
    overrides: dict[str, Any] | None = None,
    link_sources: list[str] | None = None,
) -> tuple[int, float]:
    """Execute one rule on a prepared connection and append its hits to ``_run_hit``
    (:func:`stage_tables`); returns (hits, amount). Raises if the rule fails. With
    ``link_sources`` (``reuse.link_sources`` of its needs, as a run passes it) the rule sees
    only those sources' identity links."""
    with _LinksOf(con, link_sources):
        execute_rule(con, spec, overrides)
        return _store(con, spec, run_id)  # quotes the links as the rule saw them


def _paid_dependents() -> list[tuple[str, str]]:
    """(name, body) of the building blocks of ``base.sql`` computed from ``paid``, directly or
    through another, in base.sql's order (``dibao_paid_month``)."""
    names = {"paid"}
    out = []
    for kind, name, body in rule_needs.base_statements():
        if kind == "TABLE" and name != "paid":
            used = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", re.sub(r"--[^\n]*", "", body)))
            if used & names:
                names.add(name)
                out.append((name, body))
    return out


class _LinksOf:
    """Within ``with``: ``identity_link`` is a TEMP view of the links of ``sources`` only (the
    sources the rule reads; every source when None), so a rule's hits depend on exactly the
    links its fingerprint holds (``reuse.link_sources``), with ``probability`` at
    :data:`reuse.LINK_DECIMALS` decimals (what rules compare with ``min_link_probability`` and
    what hit evidence quotes: a rule's results depend on the rounded value only, which is what
    the fingerprints hash). Nothing when the warehouse has no stored ``identity_link``."""

    def __init__(self, con: duckdb.DuckDBPyConnection, sources: list[str] | None) -> None:
        self.con, self.sources, self.on = con, sources, False

    def __enter__(self) -> _LinksOf:
        row = self.con.execute(
            "SELECT database_name FROM duckdb_tables() WHERE schema_name = 'main' "
            "AND table_name = 'identity_link' AND NOT temporary"
        ).fetchone()
        if row:
            cols = {
                r[0] for r in self.con.execute(f'DESCRIBE "{row[0]}".main.identity_link').fetchall()
            }
            rounded = (
                f" REPLACE ({reuse.link_probability('probability')} AS probability)"
                if "probability" in cols
                else ""
            )
            where = ""
            if self.sources is not None:
                srcs = ", ".join("'" + s.replace("'", "''") + "'" for s in self.sources)
                where = f" WHERE source IN ({srcs or 'NULL'})"
            self.con.execute(
                f"CREATE OR REPLACE TEMP VIEW identity_link AS SELECT *{rounded} "
                f'FROM "{row[0]}".main.identity_link{where}'
            )
            self.on = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.on:
            self.con.execute("DROP VIEW IF EXISTS temp.identity_link")


class _MonthsOnly:
    """Within ``with``: ``paid`` and the building blocks computed from it hold only ``months``
    (the full tables set aside and put back on exit, whatever happens)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, months: list[str]) -> None:
        self.con, self.months = con, months
        self.blocks = _paid_dependents()

    def __enter__(self) -> _MonthsOnly:
        con = self.con
        names = ["paid", *(n for n, _ in self.blocks)]
        for n in names:
            con.execute(f'ALTER TABLE "{n}" RENAME TO "_all_{n}"')
        self.renamed = names
        con.execute("CREATE OR REPLACE TEMP TABLE _only_month (period VARCHAR)")
        if self.months:
            con.executemany("INSERT INTO _only_month VALUES (?)", [[m] for m in self.months])
        con.execute(
            "CREATE TEMP TABLE paid AS SELECT * FROM _all_paid "
            "WHERE period IN (SELECT period FROM _only_month)"
        )
        for name, body in self.blocks:
            con.execute(f"CREATE TEMP TABLE {name} AS {body}")
        return self

    def __exit__(self, *exc: Any) -> None:
        for n in self.renamed:
            self.con.execute(f'DROP TABLE IF EXISTS "{n}"')
            self.con.execute(f'ALTER TABLE "_all_{n}" RENAME TO "{n}"')


class _MonthsScope:
    """A :class:`_MonthsOnly` kept entered across consecutive rules computing the same months
    (building the restricted blocks once, not once per rule); :meth:`release` before a rule
    that reads every month, and at the end of the run."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.cur: _MonthsOnly | None = None

    def only(self, months: list[str]) -> None:
        if self.cur is not None and self.cur.months == months:
            return
        self.release()
        cur = _MonthsOnly(self.con, months)
        cur.__enter__()
        self.cur = cur

    def release(self) -> None:
        if self.cur is not None:
            cur, self.cur = self.cur, None
            cur.__exit__(None, None, None)


def run_rule_months(
    con: duckdb.DuckDBPyConnection,
    plan: RunPlan,
    spec: RuleSpec,
    scope: _MonthsScope | None = None,
) -> tuple[int, float] | None:
    """A ``partition: period`` rule on a night where only some payment months changed: compute
    the months that changed (``paid`` restricted to them) and copy the other months' hits from
    the run :attr:`RunPlan.by_month` names (why this equals a full run: :mod:`reuse`). Returns
    (hits, amount), or None when the restricted run returned a hit outside the months it was
    given (the rule does not keep its promise): nothing is staged, the caller runs it whole.
    With ``scope`` the restriction stays in place for the next rule (the caller releases it)."""
    from_run, keep, redo = plan.by_month[spec.id]
    if redo:
        if scope is None:
            with _MonthsOnly(con, redo), _LinksOf(con, reuse.link_sources(plan.needs[spec.id])):
                execute_rule(con, spec, plan.params.get(spec.id))
        else:
            scope.only(redo)
            with _LinksOf(con, reuse.link_sources(plan.needs[spec.id])):
                execute_rule(con, spec, plan.params.get(spec.id))
        row = con.execute(
            "SELECT count(*) FROM _rule_hits WHERE period NOT IN (SELECT period FROM _only_month)"
        ).fetchone()
        if row and row[0]:
            log.warning(
                "rule %s declares partition: period but returned %d hit(s) outside the payment "
                "months it was given: run on every month, its hits not kept by month",
                spec.id,
                row[0],
            )
            return None
        with _LinksOf(con, reuse.link_sources(plan.needs[spec.id])):
            _store(con, spec, plan.run_id)  # quotes the links as the rule saw them
    with _Requote(con, plan.needs[spec.id]) as rq:
        reuse.copy_month_hits(con, spec.id, from_run, plan.run_id, keep, requote=rq.requote)
    row = con.execute(
        "SELECT count(*), coalesce(sum(amount), 0) FROM _run_hit WHERE rule_id = ?", [spec.id]
    ).fetchone()
    n, amt = row if row else (0, 0)
    return int(n), float(amt)


def reuse_rule(con: duckdb.DuckDBPyConnection, plan: RunPlan, spec: RuleSpec) -> tuple[int, float]:
    """Stage the hits the rule had in the run :meth:`RunPlan.reuses` names, under this run's id;
    returns (hits, amount)."""
    prev = plan.reuses(spec.id)
    if prev is None:
        raise ValueError(f"rule {spec.id} has no earlier run with the same inputs")
    with _Requote(con, plan.needs[spec.id]) as rq:
        return reuse.copy_hits(con, spec.id, prev, plan.run_id, requote=rq.requote)


class _Requote(_LinksOf):
    """Within ``with``: copied hits have their evidence's ``identity_links`` quoted afresh
    (``requote``), from the links of the rule's sources as ``_store`` sees them (when the
    warehouse has no stored ``identity_link``, from whatever ``identity_link`` is): the
    fingerprints hold only the links a rule's SQL reads (``reuse.period_inputs``)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, nd: rule_needs.RuleNeeds) -> None:
        super().__init__(con, reuse.link_sources(nd))
        self.requote = True

    def __enter__(self) -> _Requote:
        if self.requote:
            super().__enter__()
            self.con.execute(_SORT_EVIDENCE)
        return self


def record_outcome(
    con: duckdb.DuckDBPyConnection, plan: RunPlan, out: RuleOutcome, started: dt.datetime
) -> None:
    """Append one rule's outcome to the run's staging tables: ``_run_rule``, and ``_run_input``
    (its inputs' fingerprint, for the next run's reuse) when it has hits this run."""
    con.execute(
        "INSERT INTO _run_rule VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            plan.run_id,
            out.rule_id,
            out.version,
            out.status,
            out.reason,
            out.hits,
            out.amount,
            out.seconds,
            started,
        ],
    )
    if out.status in ("ok", "blind"):
        con.execute(
            "INSERT INTO _run_input VALUES (?, ?, ?, ?)",
            [plan.run_id, out.rule_id, plan.fingerprints[out.rule_id], out.reused_from],
        )
        rest = plan.rests.get(out.rule_id)
        months = plan.months.get(out.rule_id)
        if rest is not None and months:  # the months its hits came from (month-wise reuse)
            kept = (
                {p: plan.by_month[out.rule_id][0] for p in plan.by_month[out.rule_id][1]}
                if out.months_from
                else {p: out.reused_from for p in months}
                if out.reused_from
                else {}
            )
            con.executemany(
                "INSERT INTO _run_period VALUES (?, ?, ?, ?, ?, ?)",
                [[plan.run_id, out.rule_id, rest, p, d, kept.get(p)] for p, d in months.items()],
            )
    log.info(
        "rule %s: %s %d hits %.2fs%s", out.rule_id, out.status, out.hits, out.seconds,
        f" (reused from {out.reused_from})" if out.reused_from
        else f" ({out.months_from[1]} months kept from {out.months_from[0]}, "
             f"{out.months_from[2]} computed)" if out.months_from else "",
    )  # fmt: skip


def finish_run(con: duckdb.DuckDBPyConnection, plan: RunPlan, outcomes: list[RuleOutcome]) -> None:
    """Publish the staged hits, rule rows and fingerprints and mark the run finished, in one
    transaction; a run of the whole rule set records stage ``detect`` (what it ran on)."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("INSERT INTO hit SELECT * FROM _run_hit")
        con.execute("INSERT INTO rule_run SELECT * FROM _run_rule")
        con.execute("INSERT INTO rule_input SELECT * FROM _run_input")
        con.execute(reuse.RULE_PERIOD_DDL)
        con.execute("INSERT INTO rule_period_input SELECT * FROM _run_period")
        if plan.only is None and not plan.params:  # the whole rule set ran on these inputs
            detect_inputs = reuse.detect_inputs(con, plan.rules_dir)
            warehouse.record_stage(con, "detect", detect_inputs, plan.run_id)
        con.execute(
            "UPDATE detect_run SET finished_at = ?, status = 'finished', hits = ? WHERE run_id = ?",
            [dt.datetime.now(), sum(o.hits for o in outcomes), plan.run_id],
        )
        con.execute("COMMIT")
    except BaseException:
        with suppress(duckdb.Error):  # a failed COMMIT has already rolled back
            con.execute("ROLLBACK")
        raise


def run_rules(
    con: duckdb.DuckDBPyConnection,
    rules_dir: str | Path = "rules",
    only: list[str] | None = None,
    *,
    params: dict[str, dict[str, Any]] | None = None,
    run_id: str | None = None,
    max_age_days: float | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    full: bool = False,
) -> RunResult:
    """Run every rule in ``rules_dir`` (or those in ``only``) and store hits and rule_run rows.

    ``progress(rule_id, done, total)`` is called before each rule (and once at the end).

    Spec problems raise :class:`crossmatch.errors.SpecError` before anything runs. ``params``
    overrides parameters per rule id. Each rule's status comes from its real inputs (module
    docstring); hits, ``rule_run`` rows and the finished ``detect_run`` row are written in one
    transaction at the end.

    A rule whose inputs are unchanged since a finished run copies that run's hits
    (:mod:`crossmatch.detect.reuse`); ``full`` runs every rule.
    """
    plan = begin_run(
        con, rules_dir, only, params=params, run_id=run_id, max_age_days=max_age_days, full=full
    )
    result = RunResult(plan.run_id, prepare_seconds=plan.prepare_seconds)
    scope = _MonthsScope(con)
    try:
        _run_all(con, plan, result, scope, progress)
    finally:
        scope.release()
    if progress is not None:
        progress("storing hits", len(plan.specs), len(plan.specs))
    finish_run(con, plan, result.outcomes)
    return result


def _run_all(
    con: duckdb.DuckDBPyConnection,
    plan: RunPlan,
    result: RunResult,
    scope: _MonthsScope,
    progress: Callable[[str, int, int], None] | None,
) -> None:
    """Run (or copy) every rule of ``plan``, appending to ``result`` in the plan's order. The
    rules computing only some payment months run first, one after the other, so that the
    restricted building blocks (``_MonthsScope``) are built once, not again after each rule
    that reads every month (rules are independent: the order changes no result)."""
    first = [s for s in plan.specs if s.id in plan.by_month and plan.executes(s.id)]
    order = first + [s for s in plan.specs if s not in first]
    outcomes: dict[str, RuleOutcome] = {}
    for i, spec in enumerate(order):
        if progress is not None:
            progress(spec.id, i, len(plan.specs))
        t0 = time.perf_counter()
        started = dt.datetime.now()
        status, why = plan.status[spec.id]
        out = RuleOutcome(spec.id, spec.version, status, why)
        if plan.reuses(spec.id):  # same inputs: same hits
            out.reused_from = plan.reuses(spec.id)
            out.hits, out.amount = reuse_rule(con, plan, spec)
        elif plan.runnable(spec.id):  # a blind rule runs: its hits, flagged as partial
            try:
                by_month = spec.id in plan.by_month
                done = run_rule_months(con, plan, spec, scope) if by_month else None
                if done is not None:  # only the payment months that changed were computed
                    from_run, keep, redo = plan.by_month[spec.id]
                    out.months_from = (from_run, len(keep), len(redo))
                    out.hits, out.amount = done
                else:
                    scope.release()  # it reads every month
                    out.hits, out.amount = run_rule(
                        con, spec, plan.run_id, plan.params.get(spec.id),
                        reuse.link_sources(plan.needs[spec.id]),
                    )  # fmt: skip
            except Exception as exc:  # one broken rule must not stop the others
                log.exception("rule %s failed", spec.id)
                out.status, out.reason = "error", f"{type(exc).__name__}: {exc}".splitlines()[0]
                out.hits, out.amount = 0, 0.0
                con.execute("DELETE FROM _run_hit WHERE rule_id = ?", [spec.id])
        out.seconds = time.perf_counter() - t0
        record_outcome(con, plan, out, started)
        outcomes[spec.id] = out
    result.outcomes.extend(outcomes[s.id] for s in plan.specs)


# ---------------------------------------------------------------- planning checks, examples


def _line_in_sql(spec: RuleSpec, msg: str) -> int:
    m = re.search(r"LINE (\d+):", msg)
    return spec.sql_line + (int(m.group(1)) if m else 1)


def compile_problems(specs: list[RuleSpec]) -> list[Problem]:
    """Compile every rule's rendered SQL against empty contract tables: unknown tables/columns,
    syntax errors and a wrong result shape become ``file:line`` problems."""
    problems: list[Problem] = []
    con = duckdb.connect()
    try:
        dirs = {Path(s.path).parent for s in specs}
        schema.ensure_contract_tables(con)
        for d in dirs:
            try:
                load_reference(con, d)
            except SpecError:
                return reference_problems(con, d)
            except ValueError as exc:  # a malformed reference CSV
                return [Problem(str(d / "reference"), 1, str(exc))]
        base = resources.files("crossmatch.detect").joinpath("base.sql").read_text("utf-8")
        con.execute(base)
        for spec in specs:
            try:
                sql = spec.render_sql()
                cols = [r[0] for r in con.execute(f"DESCRIBE {sql}").fetchall()]
            except duckdb.Error as exc:
                msg = str(exc).replace("\n", " ")
                ref = re.search(r"Table with name (ref_\w+) does not exist", msg)
                fix = (
                    f"create {Path(spec.path).parent / 'reference' / (ref.group(1)[4:] + '.csv')}"
                    " (a reference table the rule reads)"
                    if ref
                    else None
                )
                problems.append(
                    Problem(
                        spec.path,
                        _line_in_sql(spec, str(exc)),
                        f"SQL does not compile: {msg}",
                        fix,
                    )
                )
                continue
            want = list(HIT_COLUMNS) + list(KIND_COLUMNS.get(spec.kind, ()))
            if cols[: len(want)] != want:
                problems.append(
                    Problem(
                        spec.path,
                        spec.sql_line,
                        f"SQL returns columns {cols}; a {spec.kind} rule must return {want} first",
                        "alias the SELECT list, e.g. `... AS subject, ... AS period`",
                    )
                )
    finally:
        con.close()
    return problems


def run_example(
    spec: RuleSpec, example: Example, rules_dir: str | Path | None = None
) -> list[dict[str, Any]]:
    """Run ``spec`` on one inline example in a fresh in-memory DuckDB; returns the hits."""
    con = duckdb.connect()
    try:
        for table, rows in example.given.items():
            full = []
            for i, r in enumerate(rows or []):
                r = dict(r)
                if table.startswith("r_"):
                    r.setdefault("_source", table[2:])
                    r.setdefault("_file", f"{table[2:]}/example.csv")
                    r.setdefault("_row", i + 2)
                    # a row given with a person id carries that ID number unless it says
                    # otherwise (`<role>_id: null` = a name-only link)
                    for role in schema.roles(table[2:]) if table[2:] in schema.sources() else ():
                        if f"{role}_pid" in r:
                            r.setdefault(f"{role}_id", r[f"{role}_pid"])
                full.append(r)
            if table.startswith("ref_"):
                con.register("_ex", pd.DataFrame(full).astype(str))
                con.execute(f'CREATE TEMP TABLE "{table}" AS SELECT * FROM _ex')
                con.unregister("_ex")
            else:
                schema.load_rows(con, table, full)
        rdir = Path(rules_dir) if rules_dir else Path(spec.path).parent
        # reference rows given by the example replace the files' ones
        prepare(con, rdir, keep={t for t in example.given if t.startswith("ref_")})
        execute_rule(con, spec, example.params)
        cur = con.execute(
            "SELECT subject, period, amount, village_code, evidence FROM _rule_hits "
            "ORDER BY subject, period"
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()
