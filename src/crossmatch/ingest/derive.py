"""File-level steps around the staged rows of one file (stream *files*).

Between staging (``_cm_stage``: ``_row, _nf, _h, _raw, c0..``) and normalisation:

* :func:`drop_summary_rows`: 合计 / 总计 / 小计 rows are removed from the stage (counted);
* :func:`add_derived_cells`: fields not (only) read from a column become extra stage cells
  after the file's own (``value:`` constant, ``default:`` for an absent column or an empty
  cell, ``from: path|sheet|title`` with ``pattern:``), so the normalisers treat them exactly
  like cells; each sheet's rows get the sheet in their duplicate hash.

After normalisation, inside the file's transaction:

* :func:`apply_where`: canonical rows not matching the source's ``where:`` are deleted
  (counted as ``filtered``, not quarantined);
* :func:`sheet_lineage`: rows of a workbook read with ``sheets:`` get ``_file`` =
  ``<path>#<sheet name>`` and ``_row`` = the sheet's physical row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb

from crossmatch.errors import InputFileError
from crossmatch.ingest import readers
from crossmatch.normalize_sql import sql_literal
from crossmatch.spec import SourceSpec

STAGE = "_cm_stage"
# a summary cell: optional scope (本页 / 全县 ...), then 合计 / 总计 / 小计, little after it
SUMMARY_RE = (
    r"^[\s\x{3000}]*(?:本页|本月|本年|本表|本村|本乡|本镇|全县|全乡|全镇|全村|全部|总)?"
    r"[\s\x{3000}]*(?:合|总|小)[\s\x{3000}]*计.{0,12}$"
)


# a sign-off footer cell of an exported table: 制表人：张三 / 审核人: / 导出时间：2026-01-21
SIGNOFF_RE = (
    r"^[\s\x{3000}]*(?:制表人?|填表人|填报人|审核人?|审批人|复核人|负责人|单位负责人|"
    r"导出时间|打印时间|制表时间|制表日期|填报日期|填表日期)[\s\x{3000}]*[:：]"
)


@dataclass(slots=True)
class Derived:
    """The stage's header and field -> cell mapping once derived cells are added."""

    header: list[str]
    mapping: dict[str, int | None]


def _person_cells(spec: SourceSpec, mapping: dict[str, int | None]) -> list[int]:
    names = {r.name for r in spec.persons} | {r.id for r in spec.persons}
    out = []
    for f in spec.fields:
        idx = mapping.get(f.name)
        if f.name in names and f.origin == "column" and idx is not None:
            out.append(idx)
    return sorted(set(out))


def drop_summary_rows(
    con: duckdb.DuckDBPyConnection,
    spec: SourceSpec,
    width: int,
    mapping: dict[str, int | None],
) -> int:
    """Delete the rows holding a 合计 / 总计 / 小计 cell, or a sign-off footer cell (制表人：,
    审核人：, 导出时间： ...), whose person name / ID cells are empty (or that summary cell
    itself), whatever their number of cells; returns how many."""
    if width == 0:
        return 0
    rx = sql_literal(SUMMARY_RE)
    cells = [f"c{i}" for i in range(width)]

    signoff = sql_literal(SIGNOFF_RE)

    def summary(c: str) -> str:
        return (
            f"((contains({c}, '计') AND regexp_matches({c}, {rx})) "
            f"OR regexp_matches({c}, {signoff}))"
        )

    person = [f"c{i}" for i in _person_cells(spec, mapping)]
    # cheap tests first (person cells empty or holding 计), the patterns on what is left
    maybe = [
        f"({c} IS NULL OR trim({c}) = '' OR contains({c}, '计') OR regexp_matches({c}, '[:：]'))"
        for c in person
    ]
    exact = [f"({c} IS NULL OR trim({c}) = '' OR {summary(c)})" for c in person]
    pre = f"SELECT * FROM {STAGE}" + (f" WHERE {' AND '.join(maybe)}" if maybe else "")
    cond = " AND ".join([*exact, "(" + " OR ".join(summary(c) for c in cells) + ")"])
    hits = f"SELECT _row FROM ({pre}) WHERE {cond}"
    n = con.execute(f"SELECT count(*) FROM ({hits})").fetchone()
    if not n or not n[0]:
        return 0
    con.execute(f"DELETE FROM {STAGE} WHERE _row IN ({hits})")
    return int(n[0])


def _pick(value: str, pattern: str | None) -> str | None:
    if pattern is None:
        return value
    m = re.search(pattern, value)
    if m is None:
        return None
    return m.group(1) if m.re.groups else m.group(0)


def origin_values(
    spec: SourceSpec, rel: str, info: readers.ReadInfo, fname: str
) -> list[str | None]:
    """The value of a ``from:`` field per part of the file (one part, or one per sheet)."""
    f = spec.field(fname)
    parts = info.parts if spec.sheets is not None else info.parts[:1]
    if f.origin == "path":
        texts = [rel]
        what = "the file path under the raw folder"
    elif f.origin == "sheet":
        if not info.parts:
            raise InputFileError(
                f"{rel}: field {fname!r} takes `from: sheet`, but the file has no sheets "
                f"(it is not a workbook). Fix: map the field from a column, `value:` or "
                f"`from: path` in {spec.path.as_posix()}."
            )
        texts = [p.name for p in parts]
        what = "the sheet name"
    else:
        texts = [p.title for p in parts] if parts else [info.title]
        what = "the title rows above the header"
    out: list[str | None] = []
    for k, text in enumerate(texts):
        got = _pick(text, f.pattern)
        if f.origin == "title" and not text and f.pattern is None:
            got = None  # no title rows and nothing asked of them: NULL
        elif got is None or (f.origin == "title" and not text):
            where = f"{rel}#{parts[k].name}" if spec.sheets is not None and parts else rel
            shown = f" ({text!r})" if f.origin in ("path", "sheet") else ""
            found = "holds no text" if not text else "does not match"
            raise InputFileError(
                f"{where}: field {fname!r}: {what}{shown} {found}"
                + (f" the pattern '{f.pattern}'" if text and f.pattern else "")
                + f". Fix: correct `pattern:` of field {fname!r} in {spec.path.as_posix()} "
                f"(group 1 is the value), or map the field from a column."
            )
        out.append(got)
    return out


def column_pattern_sql(cell: str, pattern: str) -> str:
    """SQL: the text ``pattern`` picks in a cell (group 1, else the whole match), spaces
    trimmed; NULL when the cell does not match (``姓名(身份证号)`` cells, ``刘明(户主)``)."""
    rx = sql_literal(pattern)
    group = 1 if re.compile(pattern).groups else 0
    return (
        f"(CASE WHEN regexp_matches({cell}, {rx}) THEN "
        f"NULLIF(trim(regexp_extract({cell}, {rx}, {group})), '') END)"
    )


def add_derived_cells(
    con: duckdb.DuckDBPyConnection,
    spec: SourceSpec,
    rel: str,
    info: readers.ReadInfo,
    mapping: dict[str, int | None],
) -> Derived:
    """Append one stage cell per field with ``value`` / ``default`` / ``from`` (see module
    doc). A row of the file's shape gets the new width; a ragged row stays ragged."""
    header = list(info.header)
    mapping = dict(mapping)
    multi = spec.sheets is not None and len(info.parts) > 0
    exprs: list[str] = []
    for f in spec.fields:
        if f.origin == "column" and f.default is None and f.pattern is None:
            continue
        if f.origin == "column":
            idx = mapping[f.name]
            dflt = "NULL" if f.default is None else sql_literal(f.default)
            if idx is None:  # the column is absent from this file: the default throughout
                expr, label = dflt, f.columns[0]
            else:
                cell = f"c{idx}"
                if f.pattern is not None:  # the part of the cell the pattern picks
                    cell = column_pattern_sql(cell, f.pattern)
                expr = f"CASE WHEN {cell} IS NULL OR trim({cell}) = '' THEN {dflt} ELSE {cell} END"
                label = header[idx]
        elif f.origin == "value":
            expr, label = sql_literal(f.value or ""), f"({f.name})"
        else:
            values = origin_values(spec, rel, info, f.name)
            lits = [sql_literal(v) if v is not None else "NULL" for v in values]
            if multi and len(lits) > 1:
                whens = " ".join(f"WHEN {k} THEN {v}" for k, v in enumerate(lits))
                expr = f"CASE (_row >> {readers.SHEET_ROW_BITS}) {whens} END"
            else:
                expr = lits[0]
            label = f"({f.name})"
        mapping[f.name] = len(header)
        header.append(label)
        exprs.append(f"CAST({expr} AS VARCHAR)")
    if not exprs and not multi:
        return Derived(header, mapping)
    w0, n = len(info.header), len(exprs)
    cells = "".join(f", c{i}" for i in range(w0))
    extra = "".join(f", {e} AS c{w0 + i}" for i, e in enumerate(exprs))
    # rows of different sheets are never exact duplicates of each other
    h = f"hash(_h, _row >> {readers.SHEET_ROW_BITS})" if multi else "_h"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {STAGE} AS SELECT _row, CAST(CASE WHEN _nf = {w0} THEN "
        f"{w0 + n} WHEN _nf > {w0} THEN _nf + {n} ELSE _nf END AS INTEGER) AS _nf, "
        f"CAST({h} AS UBIGINT) AS _h, _raw{cells}{extra} FROM {STAGE}"
    )
    return Derived(header, mapping)


def apply_where(con: duckdb.DuckDBPyConnection, spec: SourceSpec, rel: str) -> int:
    """Delete the file's canonical rows not matching ``where:`` (NULL = not matching)."""
    if not spec.where:
        return 0
    try:
        row = con.execute(
            f'DELETE FROM "{spec.table}" WHERE (_file = ? OR starts_with(_file, ?)) '
            f"AND NOT coalesce(({spec.where}), false)",
            [rel, rel + "#"],
        ).fetchone()
    except duckdb.Error as exc:  # e.g. a cast failing on this file's values (never quoted)
        raise InputFileError(
            f"{rel}: the source's `where:` condition fails on this file's rows "
            f"({type(exc).__name__}). Fix: correct `where:` in {spec.path.as_posix()} (e.g. "
            f"TRY_CAST instead of CAST)."
        ) from exc
    return int(row[0]) if row else 0


def sheet_file_expr(rel: str, info: readers.ReadInfo, row_col: str) -> str:
    """SQL: ``<rel>#<sheet name>`` of a staged row number ``row_col``."""
    whens = " ".join(
        f"WHEN {k} THEN {sql_literal(rel + '#' + p.name)}" for k, p in enumerate(info.parts)
    )
    return f"CASE ({row_col} >> {readers.SHEET_ROW_BITS}) {whens} END"


def sheet_lineage(
    con: duckdb.DuckDBPyConnection, spec: SourceSpec, rel: str, info: readers.ReadInfo
) -> None:
    """Rows of a multi-sheet read: ``_file`` = ``<rel>#<sheet>``, ``_row`` = physical row
    (canonical table and quarantine)."""
    if spec.sheets is None or not info.parts:
        return
    mask = readers.SHEET_ROW_MASK
    quoted_row = '"row"'
    con.execute(
        f'UPDATE "{spec.table}" SET _file = {sheet_file_expr(rel, info, "_row")}, '
        f"_row = _row & {mask}, _dup_of = _dup_of & {mask} WHERE _file = ?",
        [rel],
    )
    con.execute(
        f"UPDATE quarantine SET file = {sheet_file_expr(rel, info, quoted_row)}, "
        f'"row" = "row" & {mask} WHERE source = ? AND file = ?',
        [spec.id, rel],
    )
