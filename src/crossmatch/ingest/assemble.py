"""Sources that are more than one file (``join``), values looked up in another source
(``lookup``) and wide tables (``unpivot``): see sources/README.md for the mapping syntax.

How a source is loaded:

* **plain** (no join, no lookup): its files load straight into ``src_<source>`` as before;
  with ``unpivot`` each raw row becomes one row per group while the file is normalised
  (:func:`normalise`, called by the pipeline instead of ``raw_staging.normalise``).
* **assembled** (a ``join`` or a ``lookup``): its files load, file by file with the usual
  lineage, quarantine and skip-when-unchanged, into *unit* tables: the main files into
  ``_asm_<source>__main`` (``ingest_file.source`` = the source id), join part *k* into
  ``_asm_<source>__join<k>`` (``ingest_file.source`` = ``<source>.join<k>``). Then
  :func:`run` rebuilds ``src_<source>`` in one transaction from those tables (LEFT JOIN of
  each part on its key, then the lookups, sources in dependency order), unless nothing it is
  computed from changed: the fingerprint of its spec, its units' file versions and the looked-up
  sources' versions equals the one recorded in ``assemble_run`` (an unchanged night costs a few
  small queries).

Never a guess: a part key present on two different part rows is *ambiguous* (the main rows
with that key get NULL part fields), a main key with no part row is *missing* (NULL), a lookup
key with two values in the other source is ambiguous (NULL), one absent is missing (NULL). All
are counted in ``assemble_run``, listed row by row in ``assemble_issue`` (file and row, never
a value) and reported as a warning in the ingest summary.

Lineage: an assembled row keeps the main row's ``_file``, ``_row`` and ``_dup_of``; part *k*'s
row is ``_join<k>_file`` / ``_join<k>_row``. ``_file_hash`` is the main file's sha256 for a
source without parts; with parts it is ``sha256(main file hash || '|' || parts digest)`` (the
digest covers every part file version), so identity's incremental run (keyed by file hash)
re-resolves a row whose part changed. Person fields that come from a part are mentions at the
main row.

Unpivot rows: ``_row = physical row * 100 + group`` (group 1..99, the group's position in the
``unpivot:`` list), so (file, row, role) stays unique for the identity stage and the ``r_*``
views, which key on it; the physical row is ``_row // 100``. Quarantine rows of an unpivoted
file give the physical row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import duckdb
import polars as pl

from crossmatch import normalize, warehouse
from crossmatch.errors import InputFileError
from crossmatch.ingest import raw_staging, readers
from crossmatch.ingest.results import FileResult, IngestSummary
from crossmatch.normalize_sql import sql_literal
from crossmatch.spec.sources import FieldSpec, JoinPart, SourceSpec

log = logging.getLogger(__name__)

ROW_FACTOR = 100  # unpivot: _row = physical row * ROW_FACTOR + group
MAX_UNPIVOT_ROW = (2**31 - 1) // ROW_FACTOR - 1

DDL = """
CREATE TABLE IF NOT EXISTS assemble_run (
    run_id VARCHAR, source VARCHAR, fingerprint VARCHAR, assembled_at TIMESTAMP,
    status VARCHAR, rows_out BIGINT, join_missing BIGINT, join_ambiguous BIGINT,
    part_unmatched BIGINT, part_duplicate_keys BIGINT, lookup_missing BIGINT,
    lookup_ambiguous BIGINT, seconds DOUBLE, message VARCHAR
);
CREATE TABLE IF NOT EXISTS assemble_issue (
    run_id VARCHAR, source VARCHAR, kind VARCHAR, file VARCHAR, "row" INTEGER, detail VARCHAR
);
"""


# ----------------------------------------------------------------------------- units


@dataclass(frozen=True, slots=True)
class UnitSpec(SourceSpec):
    """A source spec loaded into another table than ``src_<id>`` (a unit of an assembled
    source): the pipeline loads it like any source."""

    unit_table: str = ""

    @property
    def table(self) -> str:
        return self.unit_table or f"src_{self.id}"


def _unit(spec: SourceSpec, table: str, **changes: Any) -> UnitSpec:
    base = {f.name: getattr(spec, f.name) for f in dataclasses.fields(SourceSpec)}
    base.update(changes)
    return UnitSpec(**base, unit_table=table)


def main_table(spec: SourceSpec) -> str:
    return f"_asm_{spec.id}__main"


def part_table(spec: SourceSpec, k: int) -> str:
    return f"_asm_{spec.id}__join{k}"


def part_id(spec: SourceSpec, k: int) -> str:
    """``ingest_file.source`` / ``quarantine.source`` of join part ``k`` (1-based)."""
    return f"{spec.id}.join{k}"


def _main_fields(spec: SourceSpec) -> tuple[FieldSpec, ...]:
    """The fields read from the main files: a lookup field with a column reads its key cell
    (cleaned by its normalizer), one without is dropped; a field every unpivot group gives
    and that has no column of its own reads the groups' columns (found by :func:`normalise`)."""
    covered = set.intersection(*(set(g) for g in spec.unpivot)) if spec.unpivot else set()
    out = []
    for f in spec.fields:
        if f.lookup is not None:
            if f.columns:
                out.append(dataclasses.replace(f, lookup=None, required=False))
            continue
        if f.name in covered and not f.columns:  # the groups' columns (header detection)
            cols = [c for g in spec.unpivot for c in g[f.name].columns]
            f = dataclasses.replace(f, columns=tuple(dict.fromkeys(cols)), optional=not cols)
        out.append(f)
    return tuple(out)


def units(spec: SourceSpec) -> list[SourceSpec]:
    """What the pipeline loads for ``spec``: the spec itself (plain), or the main unit and one
    unit per join part (assembled)."""
    if not spec.assembled:
        if spec.unpivot:
            return [dataclasses.replace(spec, fields=_main_fields(spec))]
        return [spec]
    out: list[SourceSpec] = [_unit(spec, main_table(spec), fields=_main_fields(spec), joins=())]
    # a part reads with its own options; every other file-level option (the main's `where:`,
    # `sheets:`, delimiter ...) is reset to its default, never inherited from the main
    keep = {"id", "path", "files", "fields", "persons", "description", "digest"}
    defaults: dict[str, Any] = {}
    for f in dataclasses.fields(SourceSpec):
        if f.name in keep:
            continue
        if f.default is not dataclasses.MISSING:
            defaults[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            defaults[f.name] = f.default_factory()
    defaults["null_values"] = spec.null_values  # the dump's NULL marker: the part's unless it says
    for k, part in enumerate(spec.joins, 1):
        opts = {key: v for key, v in part.options.items() if key in defaults}
        out.append(
            _unit(
                spec,
                part_table(spec, k),
                **{**defaults, **opts},
                id=part_id(spec, k),
                files=part.files,
                fields=part.fields,
            )
        )
    return out


def input_sources(spec: SourceSpec, specs: list[SourceSpec]) -> list[str]:
    """Every ``ingest_file.source`` whose file versions ``src_<spec.id>`` is computed from:
    the source, its join parts (``<id>.join<k>``) and, recursively, the sources it looks up.
    For staleness checks (``warehouse.ingest_fingerprint(con, sources=...)``)."""
    by_id = {s.id: s for s in specs}
    out: list[str] = []
    todo = [spec]
    while todo:
        s = todo.pop()
        if s.id in out:
            continue
        out += [s.id, *(part_id(s, k) for k in range(1, len(s.joins) + 1))]
        todo += [
            by_id[f.lookup.source]
            for f in s.fields
            if f.lookup is not None and f.lookup.source in by_id
        ]
    return sorted(out)


@dataclass(slots=True)
class Plan:
    """The specs the pipeline loads (``units``) and the sources to assemble afterwards, in
    dependency order (``assembled``)."""

    units: list[SourceSpec]
    assembled: list[SourceSpec]


def plan(specs: list[SourceSpec], every: list[SourceSpec] | None = None) -> Plan:
    """Units of ``specs``; assembled: those of ``specs`` plus, from ``every`` (all sources, when
    ``specs`` is an ``--only`` subset), each source that looks up one of ``specs`` directly or
    through another lookup, so a looked-up source loaded alone never leaves stale values."""
    units_: list[SourceSpec] = []
    for s in specs:
        units_ += units(s)
    chosen = {s.id: s for s in specs}
    grew = True
    while grew:
        grew = False
        for s in every or []:
            if s.id in chosen or not s.assembled:
                continue
            if any(f.lookup is not None and f.lookup.source in chosen for f in s.fields):
                chosen[s.id] = s
                grew = True
    return Plan(units_, _order([s for s in chosen.values() if s.assembled]))


def _order(specs: list[SourceSpec]) -> list[SourceSpec]:
    """Dependency order: a source after the sources it looks up (cycles are refused by
    validation; here a cycle just keeps the file order)."""
    by_id = {s.id: s for s in specs}
    out: list[SourceSpec] = []
    state: dict[str, int] = {}

    def visit(s: SourceSpec) -> None:
        if state.get(s.id):
            return
        state[s.id] = 1
        for f in s.fields:
            if f.lookup is not None and f.lookup.source in by_id:
                visit(by_id[f.lookup.source])
        state[s.id] = 2
        out.append(s)

    for s in specs:
        visit(s)
    return out


# ----------------------------------------------------------------------------- unpivot


def _header_index(header: list[str]) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, h in enumerate(header):
        index.setdefault(readers.norm_header(h), i)
    return index


def _group_column(cell: Any, index: dict[str, int]) -> int | None:
    return next((index[n] for a in cell.columns if (n := readers.norm_header(a)) in index), None)


def unpivot_missing(spec: SourceSpec, header: list[str]) -> list[tuple[int, str, str, int]]:
    """(group, field, wanted header, spec line) of every unpivot column absent from ``header``
    (fields marked ``optional`` may be absent)."""
    index = _header_index(header)
    fields = {f.name: f for f in spec.fields}
    out = []
    for g, group in enumerate(spec.unpivot, 1):
        for name, cell in group.items():
            if cell.value is not None or name not in fields or fields[name].optional:
                continue
            if _group_column(cell, index) is None:
                out.append((g, name, cell.columns[0], cell.line))
    return out


def normalise(
    con: duckdb.DuckDBPyConnection,
    spec: SourceSpec,
    rel: str,
    file_hash: str,
    header: list[str],
    mapping: dict[str, int | None],
    run_id: str = "",
) -> raw_staging.Counts:
    """``raw_staging.normalise``, after turning each staged row into one row per unpivot group."""
    if not spec.unpivot:
        return raw_staging.normalise(con, spec, rel, file_hash, header, mapping, run_id)
    width = len(header)
    index = _header_index(header)
    over = list(dict.fromkeys(name for g in spec.unpivot for name in g))
    exprs: list[list[str]] = []  # per group: one SQL expression per overridden field
    tests: list[str] = []  # per group: the group yields a row when one of its cells is not empty
    missing = [
        f"column '{want}' (group {g}, field {name})"
        for g, name, want, _line in unpivot_missing(spec, header)
    ]
    for group in spec.unpivot:
        row, cells = [], []
        for name in over:
            cell = group.get(name)
            if cell is None:  # this group keeps the field's own column
                idx = mapping.get(name)
                row.append(f"s.c{idx}" if idx is not None else "CAST(NULL AS VARCHAR)")
            elif cell.value is not None:
                row.append(sql_literal(cell.value))
            else:
                idx = _group_column(cell, index)
                if idx is None:  # optional and absent
                    row.append("CAST(NULL AS VARCHAR)")
                else:
                    row.append(f"s.c{idx}")
                    cells.append(f"s.c{idx} IS NOT NULL")
        exprs.append(row)
        tests.append(" OR ".join(cells) if cells else "true")
    if missing:
        raise InputFileError(
            f"{rel}: unpivot " + "; ".join(missing) + " not found in the header. Fix: add the "
            f"file's header name to the group in `unpivot:` of {spec.path.as_posix()} (a list "
            f"of aliases is allowed), or mark the field `optional: true`."
        )
    big = con.execute(
        f"SELECT count(*) FROM {raw_staging.STAGE} WHERE _row > {MAX_UNPIVOT_ROW}"
    ).fetchall()[0][0]
    if big:
        raise InputFileError(
            f"{rel}: more than {MAX_UNPIVOT_ROW} rows; an unpivoted file's rows are numbered "
            f"row * {ROW_FACTOR} + group. Fix: split the export into smaller files."
        )
    # rows of the wrong shape: quarantined once, at their physical row (after the groups)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _cm_unpivot_bad AS SELECT _row, _nf, _raw "
        f"FROM {raw_staging.STAGE} WHERE _nf <> {width}"
    )
    new_header = [*header, *(f"{n} (unpivot)" for n in over), "(unpivot group)"]
    new_width = len(new_header)
    cells = "".join(f", s.c{i}" for i in range(width))
    selects = []
    for g, row in enumerate(exprs, 1):
        extra = "".join(f", {e}" for e in row)
        selects.append(
            f"SELECT s._row * {ROW_FACTOR} + {g}, {new_width}, hash(s._h, {g}), s._raw{cells}"
            f"{extra}, '{g}' FROM {raw_staging.STAGE} s WHERE s._nf = {width} AND ({tests[g - 1]})"
        )
    new_cells = "".join(f", c{i} VARCHAR" for i in range(new_width))
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _cm_unpivot (_row INTEGER, _nf INTEGER, _h UBIGINT, "
        f"_raw VARCHAR{new_cells})"
    )
    con.execute(f"INSERT INTO _cm_unpivot {' UNION ALL '.join(selects)}")
    con.execute(f"DROP TABLE {raw_staging.STAGE}")
    con.execute(f"ALTER TABLE _cm_unpivot RENAME TO {raw_staging.STAGE}")
    new_mapping = dict(mapping)
    for j, name in enumerate(over):
        new_mapping[name] = width + j
    counts = raw_staging.normalise(con, spec, rel, file_hash, new_header, new_mapping, run_id)
    # quarantine: the physical row (a group's value error names its column in the reason)
    con.execute(
        f'UPDATE quarantine SET "row" = "row" // {ROW_FACTOR} WHERE source = ? AND file = ? '
        f'AND file_hash = ? AND "row" >= {ROW_FACTOR}',
        [spec.id, rel, file_hash],
    )
    (bad,) = con.execute("SELECT count(*) FROM _cm_unpivot_bad").fetchall()[0]
    msg = (
        f" cells but the header has {width} (truncated file, or a delimiter inside an "
        f"unquoted value, or a value past the last column?)"
    )
    con.execute(
        'INSERT INTO quarantine (source, file, file_hash, "row", reason, raw) SELECT ?, ?, ?, '
        "_row, 'row has ' || _nf || ?, json_object('line', _raw) FROM _cm_unpivot_bad",
        [spec.id, rel, file_hash, msg],
    )
    counts.read += bad
    counts.quarantined += bad
    return counts


# ----------------------------------------------------------------------------- assembly


@dataclass(slots=True)
class Outcome:
    """One source's assembly."""

    source: str
    status: str = "unchanged"  # assembled / unchanged / failed
    rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    message: str = ""
    seconds: float = 0.0


COUNT_KINDS = (
    "join_missing",
    "join_ambiguous",
    "part_unmatched",
    "part_duplicate_keys",
    "lookup_missing",
    "lookup_ambiguous",
)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _versions(con: duckdb.DuckDBPyConnection, source: str) -> list[tuple]:
    return con.execute(
        "SELECT file, hash, spec_digest FROM ingest_file WHERE source = ? AND status = 'ok' "
        "ORDER BY file",
        [source],
    ).fetchall()


def _last(con: duckdb.DuckDBPyConnection, source: str) -> str | None:
    row = con.execute(
        "SELECT fingerprint FROM assemble_run WHERE source = ? AND status = 'ok' "
        "ORDER BY assembled_at DESC LIMIT 1",
        [source],
    ).fetchall()
    return row[0][0] if row else None


def fingerprint(con: duckdb.DuckDBPyConnection, spec: SourceSpec) -> str:
    """What ``src_<source>`` is computed from: spec, unit file versions, looked-up sources."""
    parts: list[Any] = [spec.digest, _versions(con, spec.id)]
    parts += [_versions(con, part_id(spec, k)) for k in range(1, len(spec.joins) + 1)]
    for src in sorted({f.lookup.source for f in spec.fields if f.lookup is not None}):
        parts.append([src, _versions(con, src), _last(con, src)])
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def _parts_digest(con: duckdb.DuckDBPyConnection, spec: SourceSpec) -> str:
    vs = [_versions(con, part_id(spec, k)) for k in range(1, len(spec.joins) + 1)]
    return hashlib.sha256(json.dumps(vs, default=str).encode()).hexdigest()


def run(
    con: duckdb.DuckDBPyConnection, plan_: Plan, run_id: str, *, force: bool = False
) -> list[Outcome]:
    """Assemble every source of ``plan_`` whose inputs changed (all with ``force``)."""
    con.execute(DDL)
    out = []
    for spec in plan_.assembled:
        t0 = time.perf_counter()
        res = Outcome(spec.id)
        try:
            fp = fingerprint(con, spec)
            stored = warehouse.stored_columns(con, spec.table)
            same_schema = [(c, t.upper()) for c, t in stored] == [
                (c, t.upper()) for c, t in spec.columns()
            ]
            if force or not same_schema or fp != _last(con, spec.id):
                _assemble(con, spec, run_id, fp, res, t0)
        except (duckdb.Error, pl.exceptions.PolarsError, KeyError) as exc:
            log.exception("assembling %s failed", spec.id)
            res.status = "failed"
            res.message = (
                f"{spec.id}: could not assemble {spec.table} ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0]}); its previous rows stay. Please report this."
            )
        res.seconds = time.perf_counter() - t0
        out.append(res)
    return out


def _assemble(
    con: duckdb.DuckDBPyConnection,
    spec: SourceSpec,
    run_id: str,
    fp: str,
    res: Outcome,
    t0: float,
) -> None:
    main = main_table(spec)
    have = {c for c, _ in warehouse.stored_columns(con, main)}
    counts = dict.fromkeys(COUNT_KINDS, 0)
    issues: list[str] = []  # SELECTs of (kind, file, row, detail) over the parts
    flags: list[tuple[str, str, str]] = []  # (kind, detail, condition) over the joined rows
    warnings: list[str] = []
    try:
        con.begin()
        select = ["m._source", "m._file"]
        joins: list[str] = []
        if spec.joins:
            select.append(f"sha256(m._file_hash || '|' || {sql_literal(_parts_digest(con, spec))})")
        else:
            select.append("m._file_hash")
        select += ["m._row", "m._dup_of"]
        key_of: dict[str, str] = {}  # field name -> SQL expression over the joined row
        for f in spec.fields:
            if f.lookup is None or f.columns:
                key_of[f.name] = f"m.{_q(f.name)}" if f.name in have else "NULL"
        for k, part in enumerate(spec.joins, 1):
            a = f"p{k}"
            _part_keyed(con, spec, k, part, a)
            select += [f"{a}._file", f"{a}._row"]
            cond = " AND ".join(
                f"{a}.k{i} = CAST({key_of.get(key, 'NULL')} AS VARCHAR)"
                for i, key in enumerate(part.on)
            )
            joins.append(f"LEFT JOIN _cm_asm_{a} {a} ON {cond}")
            for f in part.output_fields():
                key_of[f.name] = f"{a}.{_q(f.name)}"
            where = f"{spec.id}: join part {k} ({', '.join(part.files)}) on {', '.join(part.on)}"
            flags.append(("join_missing", where, f"{a}.k0 IS NULL"))
            flags.append(("join_ambiguous", where, f"{a}._n > 1"))
            dup_rows = (
                f"SELECT 'part_duplicate_key', _file, _row, {sql_literal(where)} "
                f"FROM _cm_asm_{a}_all WHERE _n > 1"
            )
            unmatched = (
                f"SELECT 'part_unmatched', _file, _row, {sql_literal(where)} FROM _cm_asm_{a}_all "
                f"x WHERE NOT EXISTS (SELECT 1 FROM {main} m WHERE "
                + " AND ".join(
                    f"x.k{i} = CAST({key_of.get(key, 'NULL')} AS VARCHAR)"
                    for i, key in enumerate(part.on)
                )
                + ")"
            )
            issues += [dup_rows, unmatched]
        lookups: dict[str, str] = {}
        for i, f in enumerate(f for f in spec.fields if f.lookup is not None):
            a = f"l{i}"
            lk = f.lookup
            assert lk is not None
            keys = [
                (key_of[mine] if mine in key_of else f"m.{_q(f.name)}", their, mine)
                for mine, their in lk.on.items()
            ]
            missing_src = _lookup_table(con, spec, f, keys, a)
            if missing_src:
                warnings.append(missing_src)
            cond = " AND ".join(
                f"{a}.k{j} = CAST({expr} AS VARCHAR)" for j, (expr, _t, _m) in enumerate(keys)
            )
            joins.append(f"LEFT JOIN _cm_asm_{a} {a} ON {cond}")
            lookups[f.name] = f"CASE WHEN {a}._n = 1 THEN CAST({a}.v AS {lk.take_type}) END"
            has_key = " AND ".join(f"{expr} IS NOT NULL" for expr, _t, _m in keys)
            what = f"{spec.id}: field {f.name} (lookup in {lk.source})"
            flags.append(("lookup_missing", what, f"{has_key} AND {a}.k0 IS NULL"))
            flags.append(("lookup_ambiguous", what, f"{a}._n > 1"))
        for f in spec.fields:
            if f.lookup is not None:
                select.append(lookups[f.name])
            else:
                select += [
                    f"m.{_q(c)}" if c in have else f"CAST(NULL AS {t})"
                    for c, t in f.output_columns()
                ]
        for k, part in enumerate(spec.joins, 1):
            for f in part.output_fields():
                select += [
                    f"CASE WHEN p{k}._n = 1 THEN p{k}.{_q(c)} END" for c, _t in f.output_columns()
                ]
        base = f"{_q(main)} m {' '.join(joins)}" if have else None
        warehouse.ensure_table(con, spec.table, spec.columns())
        con.execute(f"DELETE FROM {_q(spec.table)}")
        if base is not None:
            con.execute(f"INSERT INTO {_q(spec.table)} SELECT {', '.join(select)} FROM {base}")
            if flags:  # one pass over the joined rows: the flagged ones, then one SELECT per kind
                conds = "".join(
                    f", coalesce({c}, false) AS f{i}" for i, (_k, _d, c) in enumerate(flags)
                )
                anyf = " OR ".join(f"coalesce({c}, false)" for _k, _d, c in flags)
                con.execute(
                    f"CREATE OR REPLACE TEMP TABLE _cm_asm_flags AS SELECT m._file, m._row{conds} "
                    f"FROM {base} WHERE {anyf}"
                )
                issues += [
                    f"SELECT {sql_literal(k)}, _file, _row, {sql_literal(d)} FROM _cm_asm_flags "
                    f"WHERE f{i}"
                    for i, (k, d, _c) in enumerate(flags)
                ]
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _cm_asm_issue AS "
                + " UNION ALL ".join(
                    "SELECT * FROM (" + s + ") t(kind, file, row, detail)" for s in issues
                )
                if issues
                else "CREATE OR REPLACE TEMP TABLE _cm_asm_issue AS SELECT NULL::VARCHAR AS kind, "
                "NULL::VARCHAR AS file, NULL::INTEGER AS row, NULL::VARCHAR AS detail WHERE false"
            )
        else:
            warnings.append(f"{spec.id}: no main file loaded yet; {spec.table} is empty")
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _cm_asm_issue AS SELECT NULL::VARCHAR AS kind, "
                "NULL::VARCHAR AS file, NULL::INTEGER AS row, NULL::VARCHAR AS detail WHERE false"
            )
        con.execute(
            "INSERT INTO assemble_issue SELECT ?, ?, * FROM _cm_asm_issue", [run_id, spec.id]
        )
        kinds = dict(
            con.execute("SELECT kind, count(*) FROM _cm_asm_issue GROUP BY kind").fetchall()
        )
        counts["join_missing"] = kinds.get("join_missing", 0)
        counts["join_ambiguous"] = kinds.get("join_ambiguous", 0)
        counts["part_unmatched"] = kinds.get("part_unmatched", 0)
        counts["part_duplicate_keys"] = kinds.get("part_duplicate_key", 0)
        counts["lookup_missing"] = kinds.get("lookup_missing", 0)
        counts["lookup_ambiguous"] = kinds.get("lookup_ambiguous", 0)
        res.rows = con.execute(f"SELECT count(*) FROM {_q(spec.table)}").fetchall()[0][0]
        warnings += _warnings(con)
        res.status, res.counts, res.warnings = "assembled", counts, warnings
        res.message = " | ".join(warnings)
        res.seconds = time.perf_counter() - t0
        con.execute(
            "INSERT INTO assemble_run VALUES (?, ?, ?, ?, 'ok', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                spec.id,
                fp,
                dt.datetime.now(),
                res.rows,
                *(counts[k] for k in COUNT_KINDS),
                round(res.seconds, 3),
                res.message,
            ],
        )
        con.commit()
    except BaseException:
        con.rollback()
        raise
    finally:
        names = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE temporary AND "
            "starts_with(table_name, '_cm_asm_')"
        ).fetchall()
        for (name,) in names:
            con.execute(f"DROP TABLE IF EXISTS temp.{_q(name)}")


_WHAT = {
    "join_missing": (
        "main row(s) have no part row for their key: their part fields are NULL",
        "check the part's export is complete, or that the key columns hold the same codes",
    ),
    "join_ambiguous": (
        "main row(s) have a key found on two different part rows: their part fields are NULL "
        "(never a guess)",
        "remove the duplicate rows from the part's export (assemble_issue lists them)",
    ),
    "part_duplicate_key": (
        "part row(s) share a key with another, different part row",
        "remove the duplicate rows from the part's export",
    ),
    "part_unmatched": (
        "part row(s) match no main row (their fields reach no row of the source)",
        "check the main export is complete",
    ),
    "lookup_missing": (
        "row(s) have a lookup key absent from the looked-up source: the field is NULL",
        "check the spelling in both exports, or add the missing rows to the looked-up source",
    ),
    "lookup_ambiguous": (
        "row(s) have a lookup key with two or more values in the looked-up source: the field "
        "is NULL (never a guess)",
        "add a key field to `on:` (e.g. the township) so the key is unique",
    ),
}


def _warnings(con: duckdb.DuckDBPyConnection) -> list[str]:
    """One warning per (kind, join part or lookup field) of ``_cm_asm_issue``, with up to five
    example rows in up to three files (file and row only: never a value)."""
    out = []
    groups = con.execute(
        "SELECT kind, detail, count(*) FROM _cm_asm_issue GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    for kind, detail, n in groups:
        rows = con.execute(
            "SELECT file, list(row ORDER BY row)[:5] FROM _cm_asm_issue WHERE kind = ? AND "
            "detail = ? GROUP BY file ORDER BY file LIMIT 3",
            [kind, detail],
        ).fetchall()
        where = "; ".join(f"{f} rows {', '.join(map(str, r))}" for f, r in rows)
        what, fix = _WHAT[kind]
        out.append(f"{detail}: {n} {what} (e.g. {where}; all in table assemble_issue). Fix: {fix}.")
    return out


def _part_keyed(
    con: duckdb.DuckDBPyConnection, spec: SourceSpec, k: int, part: JoinPart, a: str
) -> None:
    """``_cm_asm_<a>``: one row per key of part ``k`` (k0.. = key as text, ``_n`` = distinct
    part rows with that key; values only when ``_n`` = 1), ``_cm_asm_<a>_all``: every keyed
    part row with its key's ``_n``."""
    table = part_table(spec, k)
    have = {c for c, _ in warehouse.stored_columns(con, table)}
    keycols = {f.name: f for f in part.fields}
    cols = [c for f in part.output_fields() for c, _t in f.output_columns()]
    typed = [(c, t) for f in part.output_fields() for c, t in f.output_columns()]
    keys = ", ".join(f"CAST({_q(key)} AS VARCHAR) AS k{i}" for i, key in enumerate(part.on))
    knames = ", ".join(f"k{i}" for i in range(len(part.on)))
    if not have or any(key not in have for key in keycols if key in part.on):
        vals = "".join(f", CAST(NULL AS {t}) AS {_q(c)}" for c, t in typed)
        nulls = ", ".join(f"CAST(NULL AS VARCHAR) AS k{i}" for i in range(len(part.on)))
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _cm_asm_{a}_all AS SELECT {nulls}, "
            f"CAST(NULL AS VARCHAR) AS _file, CAST(NULL AS INTEGER) AS _row, 0 AS _n{vals} "
            "WHERE false"
        )
    else:
        content = ", ".join(_q(c) for c in cols) or "1"
        notnull = " AND ".join(f"{_q(key)} IS NOT NULL" for key in part.on)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _cm_asm_{a}_all AS SELECT {knames}, _file, _row, "
            f"count(DISTINCT _c) OVER (PARTITION BY {knames}) AS _n"
            + "".join(f", {_q(c)}" for c in cols)
            + f" FROM (SELECT {keys}, _file, _row, hash({content}) AS _c"
            + "".join(f", {_q(c)}" for c in cols)
            + f" FROM {_q(table)} WHERE _dup_of IS NULL AND {notnull})"
        )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _cm_asm_{a} AS SELECT {knames}, _n, "
        f"CASE WHEN _n = 1 THEN _file END AS _file, CASE WHEN _n = 1 THEN _row END AS _row"
        + "".join(f", CASE WHEN _n = 1 THEN {_q(c)} END AS {_q(c)}" for c in cols)
        + f" FROM (SELECT *, row_number() OVER (PARTITION BY {knames} ORDER BY _file, _row) "
        f"AS _rk FROM _cm_asm_{a}_all) WHERE _rk = 1"
    )


def _lookup_table(
    con: duckdb.DuckDBPyConnection,
    spec: SourceSpec,
    f: FieldSpec,
    keys: list[tuple[str, str, str]],
    a: str,
) -> str | None:
    """``_cm_asm_<a>``: per key of the looked-up source (k0.. cleaned as this source's key
    fields clean them), ``_n`` distinct non-empty ``take`` values and ``v`` (one of them).
    Returns a warning when the looked-up source has no table yet."""
    lk = f.lookup
    assert lk is not None
    other = f"src_{lk.source}"
    have = {c for c, _ in warehouse.stored_columns(con, other)}
    knames = ", ".join(f"k{j}" for j in range(len(keys)))
    need = [their for _e, their, _m in keys] + [lk.take]
    if not have or any(c not in have for c in need):
        nulls = ", ".join(f"CAST(NULL AS VARCHAR) AS k{j}" for j in range(len(keys)))
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _cm_asm_{a} AS SELECT {nulls}, 0 AS _n, "
            f"CAST(NULL AS {lk.take_type}) AS v WHERE false"
        )
        return (
            f"{spec.id}: field {f.name}: the looked-up table {other} (or its columns "
            f"{', '.join(need)}) is not in the warehouse: every value is NULL. Fix: ingest "
            f"source {lk.source!r} (its files must load)."
        )
    fields = {x.name: x for x in spec.all_fields()}
    joins, ks = [], []
    for j, (_expr, their, mine) in enumerate(keys):
        key_field = fields.get(mine, f)  # the lookup field's own cell: its normalizer
        _clean_map(con, other, their, key_field, f"_cm_asm_{a}_m{j}")
        joins.append(f"JOIN _cm_asm_{a}_m{j} m{j} ON CAST(o.{_q(their)} AS VARCHAR) = m{j}.k")
        ks.append(f"m{j}.n AS k{j}")
    notnull = " AND ".join(f"m{j}.n IS NOT NULL" for j in range(len(keys)))
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _cm_asm_{a} AS SELECT {knames}, count(DISTINCT v) AS _n, "
        f"min(v) AS v FROM (SELECT {', '.join(ks)}, o.{_q(lk.take)} AS v FROM {_q(other)} o "
        f"{' '.join(joins)} WHERE o.{_q(lk.take)} IS NOT NULL AND {notnull}) GROUP BY {knames}"
    )
    return None


def _clean_map(
    con: duckdb.DuckDBPyConnection, table: str, column: str, key: FieldSpec, name: str
) -> None:
    """Temp table ``name`` (k, n): each distinct value of ``table.column`` (as text) and that
    value cleaned by ``key``'s normalizer, so both sides of a lookup compare cleaned values."""
    vals = pl.Series(
        "k",
        con.sql(
            f"SELECT DISTINCT CAST({_q(column)} AS VARCHAR) AS k FROM {_q(table)} "
            f"WHERE {_q(column)} IS NOT NULL"
        )
        .to_arrow_table()
        .column("k"),
    ).cast(pl.String)
    norm = normalize.get(key.normalizer)
    typ = norm.outputs.get("", "VARCHAR")
    res = norm(vals, key.params)
    out = res.columns[""]
    frame = pl.DataFrame({"k": vals, "n": out}).with_columns(
        pl.when(res.error.is_null()).then(pl.col("n")).alias("n")
    )
    con.register("_cm_asm_frame", frame.to_arrow())
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT CAST(k AS VARCHAR) AS k, "
            f"CAST(CAST(n AS {typ}) AS VARCHAR) AS n FROM _cm_asm_frame"
        )
    finally:
        con.unregister("_cm_asm_frame")


# ----------------------------------------------------------------------------- summary


def report(summary: IngestSummary, outcomes: list[Outcome]) -> None:
    """Add each assembly to the ingest summary: a failure fails the run, counts warn."""
    for o in outcomes:
        if o.status == "unchanged":
            continue
        if o.status == "failed":
            summary.results.append(FileResult(o.source, "(assembly)", "failed", message=o.message))
        for w in o.warnings:  # one line each in the summary
            summary.results.append(FileResult(o.source, "(assembly)", "warning", message=w))
        if not o.warnings and o.status != "failed":
            summary.results.append(FileResult(o.source, "(assembly)", "assembled"))
