"""Plan and execute rules against a warehouse connection; store hits and per-rule run records.

parse (crossmatch.spec.rules) -> plan (check sources, render parameters) -> execute (the rule's
kind, in DuckDB) -> result (``hit`` + ``rule_run`` rows, and a :class:`RunResult`).

A rule whose required source is missing or stale is ``skipped`` with the reason (never reported as
zero hits); a rule that errors is recorded as ``error`` and the other rules still run.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from crossmatch.detect import schema
from crossmatch.detect.kinds import KIND_COLUMNS, KINDS
from crossmatch.errors import SpecError
from crossmatch.spec.common import Problem
from crossmatch.spec.rules import HIT_COLUMNS, Example, RuleSpec, load_rules

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
"""
#: Reference tables the shared base views (base.sql) read, with their key column.
REQUIRED_REFERENCE = {"ref_item_class": "item,class", "ref_assistance_classes": "class,parent"}
_BAD_STATUS = ("failed", "error", "stale", "rejected")


@dataclass
class RuleOutcome:
    """What happened to one rule in one run."""

    rule_id: str
    version: int
    status: str  # ok / skipped / error
    reason: str = ""
    hits: int = 0
    amount: float = 0.0
    seconds: float = 0.0


@dataclass
class RunResult:
    """All rule outcomes of one run; ``table()`` renders the per-rule summary."""

    run_id: str
    outcomes: list[RuleOutcome] = field(default_factory=list)
    prepare_seconds: float = 0.0  # stand-ins, reference tables, kinship if absent, base tables

    @property
    def ok(self) -> bool:
        return all(o.status != "error" for o in self.outcomes)

    def table(self) -> str:
        head = f"{'rule':<28} {'status':<8} {'hits':>7} {'amount':>14} {'seconds':>8}  reason"
        lines = [f"run {self.run_id}", head, "-" * len(head)]
        for o in self.outcomes:
            lines.append(
                f"{o.rule_id:<28} {o.status:<8} {o.hits:>7} {o.amount:>14,.2f} "
                f"{o.seconds:>8.2f}  {o.reason}"
            )
        tot = sum(o.hits for o in self.outcomes)
        amt = sum(o.amount for o in self.outcomes)
        sec = sum(o.seconds for o in self.outcomes)
        lines.append("-" * len(head))
        lines.append(
            f"{'(prepare: base tables)':<28} {'':<8} {'':>7} {'':>14} {self.prepare_seconds:>8.2f}"
        )
        sec += self.prepare_seconds
        lines.append(f"{'total':<28} {'':<8} {tot:>7} {amt:>14,.2f} {sec:>8.2f}")
        return "\n".join(lines)


def clue_key(rule_id: str, subject: str, period: str) -> str:
    """Stable clue id: the same (rule, subject, period) gives the same key in every run."""
    import hashlib

    return hashlib.sha256(f"{rule_id}|{subject}|{period}".encode()).hexdigest()[:20]


# ---------------------------------------------------------------- preparation


def load_reference(
    con: duckdb.DuckDBPyConnection, rules_dir: str | Path, keep: set[str] | None = None
) -> list[str]:
    """Load ``rules_dir/reference/*.csv`` as ``ref_<name>`` tables (all text columns), except
    the names in ``keep`` (already provided, e.g. by an inline example)."""
    names = []
    for f in sorted((Path(rules_dir) / "reference").glob("*.csv")):
        name = f"ref_{f.stem}"
        if name in (keep or set()):
            continue
        _create_text_table(con, name, f)
        names.append(name)
    missing = reference_problems(con, rules_dir)
    if missing:
        raise SpecError([str(p) for p in missing])
    return names


def reference_problems(con: duckdb.DuckDBPyConnection, rules_dir: str | Path) -> list[Problem]:
    """Reference tables the base views need but that are not loaded."""
    have = schema.existing_relations(con)
    return [
        Problem(
            str(Path(rules_dir) / "reference" / f"{t[4:]}.csv"),
            1,
            "reference table missing",
            f"create it with header `{col}` (the shared base views read it)",
        )
        for t, col in REQUIRED_REFERENCE.items()
        if t not in have
    ]


def _ident(name: str) -> str:
    """A SQL identifier quoted safely (embedded double quotes doubled): a reference CSV's header
    or file name is data, never SQL."""
    return '"' + name.replace('"', '""') + '"'


def _create_text_table(con: duckdb.DuckDBPyConnection, name: str, path: Path) -> None:
    """A reference CSV as a TEMP table of text columns. Python's csv module rather than DuckDB's
    sniffer: these files are tiny and hand-edited, and a comma inside a quoted note must not
    change the columns."""
    import csv

    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = [r for r in csv.reader(fh) if r and not r[0].startswith("#")]
    if not rows:
        raise ValueError(f"{path}: empty reference table; add a header row")
    header, body = rows[0], rows[1:]
    for i, r in enumerate(body):
        if len(r) != len(header):
            raise ValueError(
                f"{path}:{i + 2}: {len(r)} fields, header has {len(header)}; "
                "quote values that contain commas"
            )
    cols = ", ".join(f"{_ident(h.strip())} VARCHAR" for h in header)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_ident(name)} ({cols})")
    if body:
        marks = ", ".join("?" for _ in header)
        con.executemany(
            f"INSERT INTO {_ident(name)} VALUES ({marks})", [[v.strip() for v in r] for r in body]
        )


def prepare(
    con: duckdb.DuckDBPyConnection,
    rules_dir: str | Path,
    *,
    build_kinship: bool = True,
    keep: set[str] | None = None,
) -> list[str]:
    """Make the connection ready for rules: stand-ins for absent contract tables, reference
    tables, kinship (built if absent and the registry is loaded) and the shared base views.
    Returns the names of the stand-ins created (absent inputs)."""
    for note in schema.conform(con):
        log.warning("contract drift: %s", note)
    have = schema.existing_relations(con)
    if build_kinship and "kin_relative" not in have and "r_hukou" in have:
        from crossmatch import kinship

        log.info("kinship tables missing: building them from r_hukou / r_marriage")
        kinship.build(con)
    made = schema.ensure_contract_tables(con)
    load_reference(con, rules_dir, keep)
    base = resources.files("crossmatch.detect").joinpath("base.sql").read_text(encoding="utf-8")
    for stmt in _split_sql(base):
        con.execute(stmt)
    for (msg,) in con.execute("SELECT message FROM base_warning").fetchall():
        log.warning("%s", msg)  # e.g. an item name without a class: reported, never dropped
    return made


def _split_sql(text: str) -> list[str]:
    body = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


def available_sources(
    con: duckdb.DuckDBPyConnection, *, max_age_days: float | None = None
) -> dict[str, str | None]:
    """Source id -> None if usable, else the reason it is not (missing / failed / stale).

    With an ``ingest_file`` record, that decides; without one (tests, hand-built warehouses) a
    source is present when its resolved view has rows.
    """
    status: dict[str, str | None] = {}
    rows = con.execute(
        "SELECT source, status, rows_loaded, loaded_at, message FROM ingest_file"
    ).fetchall()
    by_src: dict[str, list[tuple]] = {}
    for r in rows:
        by_src.setdefault(r[0], []).append(r)
    now = dt.datetime.now()
    for s in schema.SOURCES:
        if rows:
            versions = by_src.get(s, [])
            good = [
                v
                for v in versions
                if str(v[1] or "").lower() not in _BAD_STATUS and (v[2] or 0) > 0
            ]
            if not versions:
                status[s] = f"source '{s}' not loaded (no file in ingest_file)"
                continue
            if not good:
                st = versions[-1]
                status[s] = f"source '{s}' unusable: status {st[1]!r}, {st[2] or 0} rows loaded" + (
                    f" ({st[4]})" if st[4] else ""
                )
                continue
            newest = max((v[3] for v in good if v[3] is not None), default=None)
            if (
                max_age_days is not None
                and newest is not None
                and (now - newest).total_seconds() > max_age_days * 86400
            ):
                status[s] = f"source '{s}' stale: last loaded {newest:%Y-%m-%d %H:%M}"
                continue
        row = con.execute(f"SELECT count(*) FROM r_{s}").fetchone()
        n = row[0] if row else 0
        status[s] = None if n else f"source '{s}' has no rows in r_{s}"
    return status


def missing_requirement(spec: RuleSpec, avail: dict[str, str | None]) -> str | None:
    """Why ``spec`` cannot run (first missing requirement), or None."""
    for req in spec.requires:
        if isinstance(req, tuple):
            if all(avail.get(s) for s in req):
                return (
                    "needs one of "
                    + "/".join(req)
                    + ": "
                    + "; ".join(str(avail.get(s)) for s in req)
                )
        elif avail.get(req):
            return str(avail[req])
    return None


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
                                   ORDER BY amount DESC NULLS LAST) = 1
        """
    )


def _store(con: duckdb.DuckDBPyConnection, spec: RuleSpec, run_id: str) -> tuple[int, float]:
    """Append ``_rule_hits`` to ``hit`` with identity links added to the evidence."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _hit_links AS
        WITH h AS (SELECT row_number() OVER () AS hid, * FROM _rule_hits),
        r AS (
            SELECT hid, unnest(from_json(json_extract(evidence, '$.rows'),
                                         '[{"file": "VARCHAR", "row": "INTEGER"}]')) AS x
            FROM h
        ),
        l AS (
            SELECT r.hid, list(DISTINCT {'file': il.file, 'row': il.row, 'role': il.role,
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
        INSERT INTO hit
        SELECT ?, ?, ?, h.subject, h.subject_name, h.period, h.amount, ?, ?, h.village_code,
               json_merge_patch(h.evidence, to_json({'identity_links': h.links})),
               substr(sha256(? || '|' || h.subject || '|' || h.period), 1, 20)
        FROM _hit_links h
        """,
        [run_id, spec.id, spec.version, spec.amount_formula, spec.severity, spec.id],
    )
    row = con.execute("SELECT count(*), coalesce(sum(amount), 0) FROM _rule_hits").fetchone()
    n, amt = row if row else (0, 0)
    return int(n), float(amt)


def run_rules(
    con: duckdb.DuckDBPyConnection,
    rules_dir: str | Path = "rules",
    only: list[str] | None = None,
    *,
    params: dict[str, dict[str, Any]] | None = None,
    run_id: str | None = None,
    max_age_days: float | None = None,
) -> RunResult:
    """Run every rule in ``rules_dir`` (or those in ``only``) and store hits and rule_run rows.

    Spec problems raise :class:`crossmatch.errors.SpecError` before anything runs. ``params``
    overrides parameters per rule id.
    """
    specs = load_rules(rules_dir, only=only)
    run_id = run_id or dt.datetime.now().strftime("%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:6]
    t_prep = time.perf_counter()
    prepare(con, rules_dir)
    for stmt in _split_sql(HIT_DDL):
        con.execute(stmt)
    avail = available_sources(con, max_age_days=max_age_days)
    result = RunResult(run_id, prepare_seconds=time.perf_counter() - t_prep)
    for spec in specs:
        t0 = time.perf_counter()
        started = dt.datetime.now()
        out = RuleOutcome(spec.id, spec.version, "ok")
        why = missing_requirement(spec, avail)
        if why:
            out.status, out.reason = "skipped", why
        else:
            try:
                con.execute("BEGIN TRANSACTION")
                execute_rule(con, spec, (params or {}).get(spec.id))
                out.hits, out.amount = _store(con, spec, run_id)
                con.execute("COMMIT")
            except Exception as exc:  # one broken rule must not stop the others
                con.execute("ROLLBACK")
                log.exception("rule %s failed", spec.id)
                out.status, out.reason = "error", f"{type(exc).__name__}: {exc}".splitlines()[0]
        out.seconds = time.perf_counter() - t0
        con.execute(
            "INSERT INTO rule_run VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                spec.id,
                spec.version,
                out.status,
                out.reason,
                out.hits,
                out.amount,
                out.seconds,
                started,
            ],
        )
        log.info("rule %s: %s %d hits %.2fs", spec.id, out.status, out.hits, out.seconds)
        result.outcomes.append(out)
    return result


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
        for stmt in _split_sql(base):
            con.execute(stmt)
        for spec in specs:
            try:
                sql = spec.render_sql()
                cols = [r[0] for r in con.execute(f"DESCRIBE {sql}").fetchall()]
            except duckdb.Error as exc:
                msg = str(exc).replace("\n", " ")
                problems.append(
                    Problem(spec.path, _line_in_sql(spec, str(exc)), f"SQL does not compile: {msg}")
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
                    for role in schema.roles(table[2:]) if table[2:] in schema.SOURCES else ():
                        if f"{role}_pid" in r:
                            r.setdefault(f"{role}_id", r[f"{role}_pid"])
                full.append(r)
            if table.startswith("ref_"):
                import pandas as pd

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
            "SELECT subject, period, amount, evidence FROM _rule_hits ORDER BY subject, period"
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()
