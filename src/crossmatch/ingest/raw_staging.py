"""Stage one raw file in DuckDB, then normalise it into ``src_<source>`` with SQL.

Two steps per file (the pipeline wraps them in the file's transaction):

1. **stage**: the file's data rows become the temporary table ``_cm_stage`` =
   ``_row`` (physical row), ``_nf`` (cells in the row), ``_h`` (hash of the row, for exact
   duplicates), ``_raw`` (the raw line, kept only for rows of the wrong shape) and the raw cells
   ``c0 .. c{width-1}`` as text. A clean CSV is staged by DuckDB itself
   (:func:`stage_csv`): ``read_csv`` reads the physical lines (in parallel, in order: line
   number = position), SQL splits them into cells. Everything else (xlsx, Parquet, GB18030
   files iconv cannot reproduce, quoted line breaks, stray carriage returns ...) is read by
   :mod:`crossmatch.ingest.readers` and appended batch by batch (:func:`stage_batch`).
2. **normalise** (:func:`normalise`): per field, the normalizer's SQL fast path
   (:mod:`crossmatch.normalize_sql`) covers the clean cells; the distinct values it does not
   cover go through the Python normalizer (the definition) and are joined back. Errors become
   quarantine reasons; exact duplicates get ``_dup_of``; one ``INSERT ... SELECT`` writes the
   canonical rows.

Why: reading, splitting, normalising and writing 30M rows is DuckDB's strength (vectorised,
multi-threaded); Python only ever sees the distinct awkward values.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from crossmatch import normalize, normalize_sql
from crossmatch.errors import InputFileError
from crossmatch.ingest import readers
from crossmatch.normalize_sql import sql_literal
from crossmatch.spec import SourceSpec
from crossmatch.spec.sources import FieldSpec

log = logging.getLogger(__name__)

STAGE = "_cm_stage"
BIG_FILE_ROWS = 200_000  # from here on, a fast path's helper columns are materialised once
LINES = "_cm_lines"
SCAN_BLOCK = 1 << 24


@dataclass(slots=True)
class FileScan:
    """What one pass over the bytes tells: content hash and whether DuckDB can read the lines."""

    sha256: str
    newlines: int = 0
    ends_with_newline: bool = True
    lone_cr: bool = False  # a carriage return not followed by a line feed
    soh: bool = False  # byte 0x01 or 0x02 occurs (our line delimiter and cell placeholder)


def scan_file(path: Path, *, lines: bool = True) -> FileScan:
    """Hash the file and (``lines``) count its lines in one streamed pass (run in a thread:
    hashlib releases the GIL)."""
    h = hashlib.sha256()
    n = cr = crlf = 0
    soh = False
    last = b""
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(SCAN_BLOCK), b""):
            h.update(chunk)
            if not lines:
                continue
            n += chunk.count(b"\n")
            c = chunk.count(b"\r")
            cr += c
            crlf += last == b"\r" and chunk[:1] == b"\n"  # a CRLF across two blocks
            if c:
                crlf += chunk.count(b"\r\n")
            soh = soh or b"\x01" in chunk or b"\x02" in chunk
            last = chunk[-1:]
    return FileScan(h.hexdigest(), n, last in (b"\n", b""), cr != crlf, soh)


def _x(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> Any:
    """Execute ``sql``; with debug logging on, log how long each statement took."""
    if not log.isEnabledFor(logging.DEBUG):
        return con.execute(sql, params)
    t0 = time.perf_counter()
    res = con.execute(sql, params)
    log.debug("%6.2fs  %s", time.perf_counter() - t0, " ".join(sql.split())[:150])
    return res


def create_stage(con: duckdb.DuckDBPyConnection, width: int) -> None:
    cells = "".join(f", c{i} VARCHAR" for i in range(width))
    _x(
        con,
        f"CREATE OR REPLACE TEMP TABLE {STAGE} (_row INTEGER, _nf INTEGER, _h UBIGINT, "
        f"_raw VARCHAR{cells})",
    )


def null_markers(con: duckdb.DuckDBPyConnection, markers: tuple[str, ...], width: int) -> None:
    """A source's ``null_values`` (``\\N`` in a database dump): every staged cell that is one
    of ``markers`` (spaces around ignored) becomes NULL, as an empty cell, before anything reads
    the cells (summary rows, ``default:``, unpivot groups, normalizers, ``required``). The
    row's hash and ``_raw`` keep the text as read."""
    if not markers or not width:
        return
    listed = ", ".join("'" + m.replace("'", "''") + "'" for m in markers)
    sets = ", ".join(
        f"c{i} = CASE WHEN trim(c{i}) IN ({listed}) THEN NULL ELSE c{i} END" for i in range(width)
    )
    _x(con, f"UPDATE {STAGE} SET {sets}")


def duplicate_ignored(spec: SourceSpec, header: list[str]) -> set[int]:
    """Indices of the header's columns named in the source's ``duplicates_ignore:``."""
    if not spec.duplicates_ignore:
        return set()
    wanted = {readers.norm_header(h) for h in spec.duplicates_ignore}
    return {i for i, h in enumerate(header) if readers.norm_header(h) in wanted}


def drop_stage(con: duckdb.DuckDBPyConnection) -> None:
    """Drop every temporary table of the file's load (stage, lines, maps ...)."""
    names = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE temporary AND starts_with(table_name, ?)",
        ["_cm_"],
    ).fetchall()
    for (name,) in names:
        con.execute(f'DROP TABLE IF EXISTS temp."{name}"')


# ----------------------------------------------------------------------------- CSV by DuckDB


class NotStageable(Exception):
    """DuckDB cannot stage this file exactly; the Python readers take over (reason in str)."""


def _transcode(path: Path, workdir: Path) -> Path:
    """GB18030 -> UTF-8 by iconv into a temporary file (NotStageable when iconv is missing or
    fails: the Python codec then reads the file and words any error)."""
    exe = shutil.which("iconv")
    if not exe:
        raise NotStageable("no iconv")
    out = workdir / "utf8.csv"
    with path.open("rb") as src, out.open("wb") as dst:
        res = subprocess.run(
            [exe, "-f", "GB18030", "-t", "UTF-8"], stdin=src, stdout=dst, stderr=subprocess.DEVNULL
        )
    if res.returncode != 0:
        raise NotStageable("iconv failed")
    return out


# glibc's GB18030 table differs from Python's for these characters (an RE2 class)
_GLIBC_DIFFERS = "[" + "".join(f"\\x{{{c:X}}}" for c in readers.GLIBC_DIFFERENT_CODEPOINTS) + "]"


def stage_csv(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    scan: Callable[[], FileScan],
    *,
    encoding: str,
    delimiter: str,
    header_row: int,
    width: int,
) -> int:
    """Stage a CSV by DuckDB: returns rows staged, or raises NotStageable (nothing staged).

    ``scan`` gives the file's byte scan (hash, line count), computed meanwhile in a thread."""
    if len(delimiter.encode("utf-8")) != 1 or delimiter == '"':
        raise NotStageable("multi-byte delimiter")
    e, d = _re_escape(delimiter), sql_literal(delimiter)
    # each line's kind, decided once while reading: 9 blank (only spaces and delimiters),
    # 0 no quotes, 1 quotes enclosing whole cells, 2 also "" inside them (RFC 4180),
    # 3 anything else (a quote inside a cell, a value spanning lines): left to the readers,
    # whose handling of it is the reference
    content = sql_literal(f"[^ \t\r{e}]")
    simple = sql_literal(f'(?:[^"{e}]*|"[^"]*")(?:{e}(?:[^"{e}]*|"[^"]*"))*')
    rfc = sql_literal(f'(?:[^"{e}]*|"(?:[^"]|"")*")(?:{e}(?:[^"{e}]*|"(?:[^"]|"")*"))*')
    kind = (
        f"CASE WHEN l IS NULL OR NOT regexp_matches(l, {content}) THEN 9 "
        f"WHEN NOT contains(l, '\"') THEN 0 WHEN regexp_full_match(l, {simple}) THEN 1 "
        f"WHEN regexp_full_match(l, {rfc}) THEN 2 ELSE 3 END"
    )
    # glibc's GB18030 table differs from Python's for a few characters: such a file is read
    # by the readers (Python's codec is the reference)
    differs = "regexp_matches(l, ?)" if encoding == "gb18030" else "false"
    with tempfile.TemporaryDirectory(prefix="crossmatch-") as td:
        src = _transcode(path, Path(td)) if encoding == "gb18030" else path
        try:
            _x(
                con,
                f"CREATE OR REPLACE TEMP TABLE {LINES} AS SELECT l, CAST({kind} AS TINYINT) AS q, "
                f"{differs} AS g FROM read_csv(?, columns = {{'l': 'VARCHAR'}}, header = false, "
                "delim = '\x01', quote = '', escape = '', auto_detect = false, "
                "strict_mode = false, new_line = '\\r\\n', max_line_size = 16777216)",
                [_GLIBC_DIFFERS, str(src)] if encoding == "gb18030" else [str(src)],
            )
        except duckdb.Error as exc:  # invalid UTF-8, over-long line ...
            raise NotStageable(str(exc).splitlines()[0]) from exc
    counted = scan()
    if counted.soh or counted.lone_cr:  # DuckDB may have split lines or cells differently
        raise NotStageable("control characters")
    expected = counted.newlines + (0 if counted.ends_with_newline else 1)
    n, irregular, glibc = _x(
        con,
        f"SELECT count(*), count(*) FILTER (WHERE q = 3), count(*) FILTER (WHERE g) FROM {LINES}",
    ).fetchall()[0]
    if n != expected:
        raise NotStageable(f"{n} lines read, {expected} expected")
    if irregular:
        raise NotStageable(f"{irregular} lines with irregular quoting")
    if glibc:
        raise NotStageable("characters iconv maps differently")
    cell_re = sql_literal(f'{e}(?:"(?:[^"]|"")*"|[^{e}]*)')
    # quoted cells: the quote-aware pattern, then unquote ("" -> ")
    unq = "x[2:]"
    dequote = (
        f"CASE WHEN starts_with({unq}, '\"') AND ends_with({unq}, '\"') AND strlen({unq}) >= 2 "
        f"THEN replace({unq}[2:-2], '\"\"', '\"') ELSE {unq} END"
    )
    quoted_split = f"list_transform(regexp_extract_all({d} || l, {cell_re}), lambda x: {dequote})"
    trimmed = f"rtrim(l, ' \t' || {d})"
    cells = "".join(f", f[{i + 1}] AS c{i}" for i in range(width))
    # kind 1: delimiters inside quotes become \x02, the quotes go, the line splits like a
    # plain one (3x faster than the regex)
    hidden = (
        f"array_to_string(list_transform(string_split(l, '\"'), lambda x, i: CASE WHEN i % 2 = 0 "
        f"THEN replace(x, {d}, '\x02') ELSE x END), '')"
    )
    simple_split = f"list_transform(string_split({hidden}, {d}), lambda y: replace(y, '\x02', {d}))"
    plain_count = f"len(string_split({trimmed}, {d}))"
    quoted_count = f"len(regexp_extract_all({d} || {trimmed}, {cell_re}))"
    # one pass per kind: a CASE choosing between list expressions costs more than the passes
    for q, split, count in (
        (0, f"string_split(l, {d})", plain_count),
        (1, simple_split, quoted_count),
        (2, quoted_split, quoted_count),
    ):
        # trailing empty cells beyond the header are harmless (Excel-made CSVs have them)
        nf = f"(CASE WHEN len(f) > {width} THEN greatest({count}, {width}) ELSE len(f) END)"
        _x(
            con,
            _finish(
                width,
                f"SELECT _row, {nf} AS _nf, CASE WHEN {nf} <> {width} THEN l END AS _raw{cells} "
                f"FROM (SELECT CAST(rowid + 1 AS INTEGER) AS _row, l, {split} AS f FROM {LINES} "
                f"WHERE rowid + 1 > {header_row} AND q = {q})",
            ),
        )
    _x(con, f"DROP TABLE {LINES}")
    return int(_x(con, f"SELECT count(*) FROM {STAGE}").fetchall()[0][0])


def _re_escape(ch: str) -> str:
    return "\\" + ch if ch in r"\.^$|?*+()[]{}-" else ch


# ----------------------------------------------------------------------------- other readers


def stage_batch(con: duckdb.DuckDBPyConnection, batch: pl.DataFrame, width: int) -> None:
    """Append one reader batch (wide: _row, _line, _nf, c0.. or list: _row, _fields, _line)."""
    if "_fields" in batch.columns:
        batch = readers.widen(batch, width)
    raw = "_raw_line" if "_raw_line" in batch.columns else "_line"
    cols = [f"c{i}" for i in range(width)]
    frame = batch.select(
        pl.col("_row").cast(pl.Int32),
        pl.col("_nf").cast(pl.Int32),
        pl.col(raw).alias("_rawsrc"),
        *cols,
    )
    con.register("_cm_batch", frame.to_arrow())
    try:
        cells = "".join(f", {c}" for c in cols)
        _x(
            con,
            _finish(
                width,
                f"SELECT _row, _nf, CASE WHEN _nf <> {width} THEN _rawsrc END AS _raw{cells} "
                f"FROM _cm_batch",
            ),
        )
    finally:
        con.unregister("_cm_batch")


def _finish(width: int, rows: str) -> str:
    """INSERT into the stage from ``rows`` (_row, _nf, _raw, c0..): empty cells become NULL
    (quoted or not, whichever reader), and ``_h`` hashes the shape and the cells, so two rows
    are exact duplicates when their cells are equal, however each was quoted."""
    cells = [f"nullif(c{i}, '')" for i in range(width)]
    return (
        f"INSERT INTO {STAGE} SELECT _row, _nf, hash(_nf, _raw{''.join(', ' + c for c in cells)}),"
        f" _raw{''.join(', ' + c for c in cells)} FROM ({rows})"
    )


# ----------------------------------------------------------------------------- normalise


@dataclass(slots=True)
class Counts:
    read: int = 0
    loaded: int = 0
    quarantined: int = 0
    duplicate: int = 0
    # per (field, problem) cell counts worth a word in the summary (nulled cells, bad IDs):
    # no value, no name, only value shapes
    warnings: list[str] = field(default_factory=list)


FIELD_ISSUE = "ingest_field_issue"
MIN_FAILED_CELLS = 3  # a column fails its file only from this many unreadable cells on
ID_PROBLEMS = ("bad_checksum", "bad_date", "bad_format")
_HINTS = {
    "date": "dates like 2024-03-05, 2024/3/5, 2024年3月5日, 20240305 or 45356 and months like "
    "2021.01, 2021年3月 or 202103 are read (`month: end` for the last day of the month)",
    "period": "months like 2025-01, 2025/1, 202501 or 2025年1月 are read",
    "amount": "amounts like 1,200.00, 350元, 0.8万元 or 人民币100万元 are read; a value outside "
    "the field's `min:` / `max:` (default 0 .. 100,000,000,000 yuan) counts as unreadable, and "
    "a bare number in 万元 needs `unit: wan`",
    "enum": "add the values to `map:`, or drop `other: error`",
}


def _unique_names(header: list[str]) -> list[str]:
    out: list[str] = []
    for i, h in enumerate(header):
        name = h or f"column{i + 1}"
        while name in out:
            name = f"{name}_{i + 1}"
        out.append(name)
    return out


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _python_map(
    con: duckdb.DuckDBPyConnection,
    table: str,
    values: pl.Series,
    norm: normalize.Normalizer,
    f: FieldSpec,
    label: str,
    types: dict[str, str],
) -> tuple[bool, bool]:
    """Normalise distinct ``values`` in Python into temp table ``table`` (k, o<i>.., msg, bad,
    shape). ``bad``: the normalizer could not read the value (``shape``: how it is written);
    ``msg``: why the row is quarantined (an unreadable value under ``on_error: quarantine``,
    or an empty required one). Under ``on_error: null`` an unreadable value's field is NULL.
    Returns (any message, any unreadable value)."""
    res = norm(values, f.params)
    quarantine = f.error_policy == "quarantine"
    bad = res.error.is_not_null()
    msg = pl.DataFrame({"e": res.error, "v": res.columns[""]}).select(
        pl.when(pl.col("e").is_not_null() & pl.lit(quarantine))
        .then(pl.lit(f"{label}: ") + pl.col("e"))
        .when(pl.col("e").is_null() & pl.col("v").is_null() & pl.lit(f.required))
        .then(pl.lit(f"{label}: empty, but the field '{f.name}' is required"))
        .alias("msg")
    )["msg"]
    outs = {f"o{i}": res.columns[s] for i, s in enumerate(types)}
    shape = pl.Series("shape", [None] * len(values), dtype=pl.String)
    if bad.any():  # the field itself NULL wherever the value was not read; their shapes
        outs["o0"] = pl.select(pl.when(~bad).then(outs["o0"])).to_series()
        idx = bad.arg_true()
        shapes = [normalize.value_shape(v) for v in values.gather(idx).to_list()]
        shape = shape.scatter(idx, pl.Series(shapes, dtype=pl.String))
    frame = pl.DataFrame({"k": values, **outs, "msg": msg, "bad": bad, "shape": shape})
    con.register("_cm_map", frame.to_arrow())
    try:
        cols = "".join(f", CAST(o{i} AS {t}) AS o{i}" for i, t in enumerate(types.values()))
        _x(
            con,
            f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT CAST(k AS VARCHAR) AS k{cols}, "
            f"CAST(msg AS VARCHAR) AS msg, bad, CAST(shape AS VARCHAR) AS shape FROM _cm_map",
        )
    finally:
        con.unregister("_cm_map")
    return bool(msg.is_not_null().any()), bool(bad.any())


def _keys(con: duckdb.DuckDBPyConnection, sql: str) -> pl.Series:
    return pl.Series("k", con.sql(sql).to_arrow_table().column("k")).cast(pl.String)


@dataclass(slots=True)
class _Plan:
    """How the canonical row gets its columns: expressions, joins, quarantine messages."""

    select: list[str]
    target: list[str]
    joins: list[str]
    bad_joins: list[str]
    bad_msgs: list[str]
    # fields with unreadable values: (field, header label, raw cell column, Python map table)
    checks: list[tuple[FieldSpec, str, str, str]] = field(default_factory=list)


def _plan_field(
    con: duckdb.DuckDBPyConnection,
    plan: _Plan,
    j: int,
    f: FieldSpec,
    idx: int | None,
    label: str,
    shape_ok: str,
    rows: int,
) -> None:
    """Plan one field. Two strategies:

    * map: the distinct values are normalised once (SQL fast path, then Python for the rest)
      into a table joined back on the raw value (names, IDs, dates, amounts ... repeat);
    * row: a fast path marked ``per_row`` (a test and a copy: text, codes) runs on every row,
      which costs less than collecting distinct values and joining them back, and Python
      normalises the distinct leftovers."""
    norm = normalize.get(f.normalizer)
    types = dict(norm.outputs)
    m, p, d = f"_cm_m{j}", f"_cm_p{j}", f"_cm_d{j}"
    col = f"s.c{idx}" if idx is not None else "NULL"

    def py_map(table: str, values: pl.Series) -> bool:
        has_msg, has_bad = _python_map(con, table, values, norm, f, label, types)
        if has_bad:
            plan.checks.append((f, label, col, table))
        return has_msg

    if idx is None:  # optional column absent from this file: every row gets the NULL outputs
        null = pl.Series("k", [None], dtype=pl.String)
        py_map(m, null)
        plan.joins.append(f"LEFT JOIN {m} ON true")
        plan.select += [f"{m}.o{i}" for i in range(len(types))]
        plan.target += [_ident(f.name + s) for s in types]
        if f.required:
            plan.bad_joins.append(f"LEFT JOIN {m} b{j} ON true")
            plan.bad_msgs.append(f"b{j}.msg")
        return
    fast = normalize_sql.fast_path(f.normalizer, "k", f.params, inline=False)
    has_msg = False
    if fast is not None and fast.per_row and not fast.pre:
        rf = normalize_sql.fast_path(f.normalizer, col, f.params)
        assert rf is not None
        ok = f"coalesce({rf.ok}, false)"
        left = _keys(
            con, f"SELECT DISTINCT {col} AS k FROM {STAGE} s WHERE {shape_ok} AND NOT {ok}"
        )
        if len(left):
            has_msg = py_map(p, left)
            plan.joins.append(f"LEFT JOIN {p} ON {col} IS NOT DISTINCT FROM {p}.k")
        for i, (suffix, typ) in enumerate(types.items()):
            py = f"{p}.o{i}" if len(left) else f"CAST(NULL AS {typ})"
            plan.select.append(
                f"CASE WHEN {ok} THEN CAST({rf.outputs[suffix]} AS {typ}) ELSE {py} END"
            )
    elif fast is not None:
        distinct = f"SELECT DISTINCT c{idx} AS k FROM {STAGE} s WHERE {shape_ok}"
        if fast.pre and rows >= BIG_FILE_ROWS:  # helper columns computed once, then used
            pre = "".join(f", {e} AS {n}" for n, e in fast.pre.items())
            _x(con, f"CREATE OR REPLACE TEMP TABLE {d} AS SELECT k{pre} FROM ({distinct})")
            source_sql, fp = d, fast
        else:  # one statement fewer (on small files statements cost more than re-evaluation)
            source_sql, fp = f"({distinct})", fast.inlined()
        outs = "".join(
            f", CASE WHEN ok THEN CAST({fp.outputs[s]} AS {t}) END AS o{i}"
            for i, (s, t) in enumerate(types.items())
        )
        _x(
            con,
            f"CREATE OR REPLACE TEMP TABLE {m} AS SELECT k, ok{outs}, CAST(NULL AS VARCHAR) AS "
            f"msg FROM (SELECT *, coalesce({fp.ok}, false) AS ok FROM {source_sql})",
        )
        left = _keys(con, f"SELECT k FROM {m} WHERE NOT ok")
        if _identity(fp, left, norm, f):  # e.g. clean names: no join
            plan.select += [f"CAST({col} AS {t})" for t in types.values()]
        elif len(left):  # the values the fast path leaves: Python, joined as a second map
            has_msg = py_map(p, left)
            plan.joins.append(f"LEFT JOIN {m} ON {col} IS NOT DISTINCT FROM {m}.k")
            plan.joins.append(f"LEFT JOIN {p} ON {col} IS NOT DISTINCT FROM {p}.k")
            plan.select += [
                f"CASE WHEN {m}.ok THEN {m}.o{i} ELSE {p}.o{i} END" for i in range(len(types))
            ]
        else:
            plan.joins.append(f"LEFT JOIN {m} ON {col} IS NOT DISTINCT FROM {m}.k")
            plan.select += [f"{m}.o{i}" for i in range(len(types))]
    else:  # no fast path: every distinct value through Python
        left = _keys(con, f"SELECT DISTINCT c{idx} AS k FROM {STAGE} s WHERE {shape_ok}")
        has_msg = py_map(p, left)
        plan.joins.append(f"LEFT JOIN {p} ON {col} IS NOT DISTINCT FROM {p}.k")
        plan.select += [f"{p}.o{i}" for i in range(len(types))]
    plan.target += [_ident(f.name + s) for s in types]
    if has_msg:
        plan.bad_joins.append(
            f"LEFT JOIN (SELECT k, msg FROM {p} WHERE msg IS NOT NULL) b{j} ON "
            f"{col} IS NOT DISTINCT FROM b{j}.k"
        )
        plan.bad_msgs.append(f"b{j}.msg")


def _identity(
    fast: normalize_sql.SqlFast,
    left: pl.Series,
    norm: normalize.Normalizer,
    f: FieldSpec,
) -> bool:
    """Whether every output is the raw cell itself for every value of the column: the fast
    path returns ``k`` unchanged for all its values and nothing is left for Python but empty
    cells, which Python maps to NULL without a message."""
    if any(e != "k" for e in fast.outputs.values()):
        return False
    if left.is_not_null().any():
        return False
    if len(left) == 0:
        return True
    res = norm(pl.Series("k", [None], dtype=pl.String), f.params)
    return (
        not f.required
        and res.error.is_null().all()
        and all(c.is_null().all() for c in res.columns.values())
    )


def normalise(
    con: duckdb.DuckDBPyConnection,
    spec: SourceSpec,
    rel: str,
    file_hash: str,
    header: list[str],
    mapping: dict[str, int | None],
    run_id: str = "",
) -> Counts:
    """Normalise ``_cm_stage`` into ``src_<source>`` and ``quarantine`` (see module doc).

    Per field, a cell the normalizer cannot read quarantines its row (``on_error:
    quarantine``, the default of a required field) or becomes NULL (``on_error: null``); the
    cells are counted per (file, field) in ``ingest_field_issue`` with their value shapes,
    as are ID numbers with a wrong check digit, date or format (stored with their status).
    Raises InputFileError (the file is refused, nothing written) when a column fails on more
    than its field's ``max_error_share`` of its non-empty cells."""
    width = len(header)
    names = _unique_names(header)
    counts = Counts()
    shape_ok = f"s._nf = {width}"
    counts.read = int(_x(con, f"SELECT count(*) FROM {STAGE}").fetchall()[0][0])
    plan = _Plan([], [], [], [], [])
    for j, f in enumerate(spec.fields):
        idx = mapping[f.name]
        label = header[idx] if idx is not None else f.name
        _plan_field(con, plan, j, f, idx, label, shape_ok, counts.read)
    tallies = _tally_unreadable(con, spec, rel, plan, shape_ok)
    select, target, joins = plan.select, plan.target, plan.joins
    bad_joins, bad_msgs = plan.bad_joins, plan.bad_msgs

    lineage = (
        f"{sql_literal(spec.id)}, {sql_literal(rel)}, {sql_literal(file_hash)}, s._row, d.first"
    )
    quar_cols = 'source, file, file_hash, "row", reason, raw'
    # rows whose values cannot be parsed (or a required value is missing)
    if bad_msgs:
        raw_json = (
            "json_object("
            + ", ".join(f"{sql_literal(n)}, s.c{i}" for i, n in enumerate(names))
            + ")"
            if names
            else "'{}'"
        )
        _x(
            con,
            f"CREATE OR REPLACE TEMP TABLE _cm_bad AS SELECT s._row, "
            f"concat_ws('; ', {', '.join(bad_msgs)}) AS reason, {raw_json} AS raw "
            f"FROM {STAGE} s {' '.join(bad_joins)} WHERE {shape_ok} AND "
            f"({' OR '.join(f'{b} IS NOT NULL' for b in bad_msgs)})",
        )
        _x(
            con,
            f"INSERT INTO quarantine ({quar_cols}) SELECT {sql_literal(spec.id)}, "
            f"{sql_literal(rel)}, {sql_literal(file_hash)}, _row, reason, raw FROM _cm_bad",
        )
    shape_msg = (
        f" cells but the header has {width} (truncated file, or a delimiter inside an unquoted "
        f"value, or a value past the last column?)"
    )
    _x(
        con,
        f"INSERT INTO quarantine ({quar_cols}) SELECT {sql_literal(spec.id)}, {sql_literal(rel)}, "
        f"{sql_literal(file_hash)}, _row, 'row has ' || _nf || {sql_literal(shape_msg)}, "
        f"json_object('line', _raw) FROM {STAGE} s WHERE NOT ({shape_ok})",
    )
    # exact duplicates: the first row with the same hash and the same cells (but the cells of
    # `duplicates_ignore:` columns, a dump's auto-increment key and update time)
    ignored = duplicate_ignored(spec, header)
    kept = [f"c{i}" for i in range(width) if i not in ignored]
    cells = ", ".join(["_nf", "_raw", *kept])
    h = f"hash({cells})" if ignored else "_h"
    _x(
        con,
        f"CREATE OR REPLACE TEMP TABLE _cm_dups AS SELECT _row, first FROM (SELECT _row, "
        f"min(_row) OVER (PARTITION BY {h}, {cells}) AS first FROM (SELECT *, {h} AS _dh "
        f"FROM {STAGE}) WHERE _dh IN (SELECT {h} FROM {STAGE} GROUP BY 1 HAVING count(*) > 1)) "
        "WHERE first < _row",
    )
    not_bad = " AND NOT EXISTS (SELECT 1 FROM _cm_bad b WHERE b._row = s._row)" if bad_msgs else ""
    cols = ", ".join(["_source", "_file", "_file_hash", "_row", "_dup_of", *target])
    _x(
        con,
        f'INSERT INTO "{spec.table}" ({cols}) SELECT {lineage}, {", ".join(select)} '
        f"FROM {STAGE} s LEFT JOIN _cm_dups d ON d._row = s._row {' '.join(joins)} "
        f"WHERE {shape_ok}{not_bad}",
    )
    loaded, dups = _x(
        con, f'SELECT count(*), count(_dup_of) FROM "{spec.table}" WHERE _file = ?', [rel]
    ).fetchall()[0]
    counts.loaded, counts.duplicate = int(loaded), int(dups)
    counts.quarantined = counts.read - counts.loaded
    issues = _unreadable_issues(con, plan, tallies, shape_ok, bool(bad_msgs))
    issues += _id_issues(con, spec, rel, header, mapping)
    issues += _name_issues(con, spec, rel, header, mapping)
    order = {f.name: i for i, f in enumerate(spec.fields)}
    issues.sort(key=lambda i: order[i.field])
    _record_issues(con, spec, rel, file_hash, run_id, issues)
    counts.warnings = _warnings(rel, issues)
    return counts


# ----------------------------------------------------------------------------- field issues


@dataclass(slots=True)
class FieldIssue:
    """Cells of one field of one file with one problem: ``nulled`` (unreadable, set to NULL,
    row kept), ``quarantined`` (unreadable, row quarantined), an ID number status
    (``bad_checksum`` / ``bad_date`` / ``bad_format``, stored with that status), or
    ``name_note`` (a person name holding a note in brackets, stored as it is)."""

    field: str
    header: str
    problem: str
    cells: int
    share: float | None  # of the column's non-empty cells
    shapes: str  # the commonest value shapes, e.g. "9999.99.99 x12, 字字 x1"


def _tally_unreadable(
    con: duckdb.DuckDBPyConnection, spec: SourceSpec, rel: str, plan: _Plan, shape_ok: str
) -> list[tuple[int, int, str]]:
    """Per field of ``plan.checks``: (unreadable cells, non-empty cells, value shapes).
    Raises InputFileError when a column is unreadable beyond its ``max_error_share``."""
    out: list[tuple[int, int, str]] = []
    if not plan.checks:
        return out
    # non-empty cells of every such column in one scan; then per column, its few unreadable
    # values (joined to the small table of bad keys only)
    filled_all = _x(
        con,
        f"SELECT {', '.join(f'count({c[2]})' for c in plan.checks)} FROM {STAGE} s "
        f"WHERE {shape_ok}",
    ).fetchall()[0]
    for (f, label, col, table), filled in zip(plan.checks, filled_all, strict=True):
        rows = _x(
            con,
            f"SELECT p.shape, count(*) AS n FROM {STAGE} s JOIN (SELECT k, shape FROM {table} "
            f"WHERE bad) p ON {col} = p.k WHERE {shape_ok} GROUP BY 1 ORDER BY n DESC, 1",
        ).fetchall()
        bad, filled = sum(int(n) for _, n in rows), int(filled)
        shapes = ", ".join(f"{shape} ×{n}" for shape, n in rows[:4])
        out.append((bad, filled, shapes))
        if filled and bad >= MIN_FAILED_CELLS and bad > f.max_error_share * filled:
            marker = next((sh for sh, _ in rows if sh in normalize.NULL_MARKERS), None)
            if marker is not None:  # the column is mostly a NULL marker, not a wrong mapping
                raise InputFileError(
                    f"{rel}: column '{label}' (field {f.name}, normalizer {f.normalizer}): "
                    f"{bad} of its {filled} non-empty cells cannot be read (value shapes: "
                    f"{shapes}); `{marker}` is how the export writes NULL, read here as a "
                    f"value. The file is refused, its previous version (if any) stays in the "
                    f"warehouse. Fix: add `null_values: [{_yaml_quoted(marker)}]` at the top of "
                    f"{spec.path.as_posix()} (every column then reads `{marker}` as empty)."
                )
            hint = _HINTS.get(f.normalizer, f"check the column holds {f.normalizer} values")
            raise InputFileError(
                f"{rel}: column '{label}' (field {f.name}, normalizer {f.normalizer}): "
                f"{bad / filled:.0%} of its {filled} non-empty cells cannot be read ({bad} "
                f"cells; value shapes: {shapes}), more than max_error_share "
                f"{f.max_error_share:g}; the file is refused, its previous version (if any) "
                f"stays in the warehouse. Fix: check that `column:` of field {f.name} in "
                f"{spec.path.as_posix()} names the right column and that its normalizer "
                f"suits it ({hint}); if the values really are bad, correct the export, or "
                f"accept them as NULL with `max_error_share: 1` on the field."
            )
    return out


def _yaml_quoted(text: str) -> str:
    """``'\\N'``: a YAML single-quoted scalar (keeps a backslash as it is)."""
    return "'" + text.replace("'", "''") + "'"


HINT_ROWS = 20_000  # staged rows `null_marker_hint` looks at


def null_marker_hint(
    con: duckdb.DuckDBPyConnection,
    spec: SourceSpec,
    rel: str,
    header: list[str],
    mapping: dict[str, int | None],
) -> str | None:
    """A warning when mapped cells are a NULL marker (``\\N``, ``NULL`` ...) the source does
    not declare in ``null_values:``: such cells are read as values (a text field keeps
    ``\\N``, an ID gets ``bad_format``, a date is unreadable), silently wrong."""
    cols = sorted({i for i in mapping.values() if i is not None})
    markers = [m for m in normalize.NULL_MARKERS if m not in spec.null_values]
    if not cols or not markers:
        return None
    listed = ", ".join(sql_literal(m) for m in markers)
    # a hint, not a count: the first rows staged suffice (no extra pass over a big file)
    head = f"(SELECT * FROM {STAGE} LIMIT {HINT_ROWS})"
    counts = ", ".join(f"count(*) FILTER (WHERE trim(c{i}) IN ({listed}))" for i in cols)
    row = _x(con, f"SELECT {counts} FROM {head}").fetchall()[0]
    cols = [i for i, n in zip(cols, row, strict=True) if n]
    if not cols:  # the usual case: the marker's mode (a slower aggregate) is not needed
        return None
    modes = ", ".join(
        f"count(*) FILTER (WHERE trim(c{i}) IN ({listed})), "
        f"mode(trim(c{i})) FILTER (WHERE trim(c{i}) IN ({listed}))"
        for i in cols
    )
    row = _x(con, f"SELECT {modes} FROM {head}").fetchall()[0]
    found = {header[i]: (int(row[2 * k]), row[2 * k + 1]) for k, i in enumerate(cols)}
    total = sum(n for n, _ in found.values())
    rows = int(_x(con, f"SELECT least(count(*), {HINT_ROWS}) FROM {STAGE}").fetchall()[0][0])
    marker = max(found.values())[1]
    named = ", ".join(f"'{h}' ×{n}" for h, (n, _) in list(found.items())[:6])
    return (
        f"{rel}: {total} cells of mapped columns in {rows} rows are `{marker}`, how exports "
        "write NULL "
        f"({named}{', ...' if len(found) > 6 else ''}); they are read as values (text kept as "
        f"`{marker}`, IDs bad_format, dates and amounts unreadable). If the export means NULL "
        f"(see its data dictionary), add `null_values: [{_yaml_quoted(marker)}]` at the top of "
        f"{spec.path.as_posix()}"
    )


def _unreadable_issues(
    con: duckdb.DuckDBPyConnection,
    plan: _Plan,
    tallies: list[tuple[int, int, str]],
    shape_ok: str,
    any_bad_rows: bool,
) -> list[FieldIssue]:
    """Unreadable cells per field: quarantined with their row, or nulled in rows kept (a
    row quarantined for another field's value does not count as nulled)."""
    out: list[FieldIssue] = []
    for (f, label, col, table), (bad, filled, shapes) in zip(plan.checks, tallies, strict=True):
        if not bad:
            continue
        if f.error_policy == "quarantine":
            out.append(FieldIssue(f.name, label, "quarantined", bad, bad / filled, shapes))
            continue
        nulled = bad
        if any_bad_rows:
            nulled = int(
                _x(
                    con,
                    f"SELECT count(*) FROM {STAGE} s JOIN (SELECT k FROM {table} WHERE bad) p "
                    f"ON {col} = p.k WHERE {shape_ok} AND NOT EXISTS (SELECT 1 FROM _cm_bad b "
                    f"WHERE b._row = s._row)",
                ).fetchall()[0][0]
            )
        if nulled:
            out.append(FieldIssue(f.name, label, "nulled", nulled, nulled / filled, shapes))
    return out


# a person name holding a note in brackets: 刘明(户主), 王兰（代领）, 张三[已故]
NAME_NOTE_RE = r"[()（）\[\]【】]"


def _name_issues(
    con: duckdb.DuckDBPyConnection,
    spec: SourceSpec,
    rel: str,
    header: list[str],
    mapping: dict[str, int | None],
) -> list[FieldIssue]:
    """Names loaded with a note in brackets (``name_note``): stored as they are,
    but such a name matches the same person nowhere else, so it is counted and warned about."""
    names = [f for f in spec.fields if f.normalizer == "name" and mapping.get(f.name) is not None]
    out: list[FieldIssue] = []
    for f in names:
        col = _ident(f.name)
        rx = sql_literal(NAME_NOTE_RE)
        n, filled = _x(
            con,
            f"SELECT count(*) FILTER (WHERE regexp_matches({col}, {rx})), count({col}) "
            f'FROM "{spec.table}" WHERE _file = ?',
            [rel],
        ).fetchall()[0]
        if not n:
            continue
        vals = _x(
            con,
            f'SELECT {col} FROM "{spec.table}" WHERE _file = ? AND regexp_matches({col}, {rx}) '
            f"LIMIT 200",
            [rel],
        ).fetchall()
        counts: dict[str, int] = {}
        for (v,) in vals:
            k = normalize.value_shape(v)
            counts[k] = counts.get(k, 0) + 1
        shapes = ", ".join(f"{k} ×{c}" for k, c in sorted(counts.items(), key=lambda x: -x[1])[:3])
        label = header[mapping[f.name]]  # type: ignore[index]
        out.append(FieldIssue(f.name, label, "name_note", int(n), int(n) / int(filled), shapes))
    return out


def _id_issues(
    con: duckdb.DuckDBPyConnection,
    spec: SourceSpec,
    rel: str,
    header: list[str],
    mapping: dict[str, int | None],
) -> list[FieldIssue]:
    """ID numbers loaded with a bad status, per field (identity resolution uses them as
    evidence; they are counted so that nobody mistakes them for absent persons)."""
    ids = [f for f in spec.fields if f.normalizer == "id" and mapping.get(f.name) is not None]
    if not ids:
        return []
    t = _ident
    aggs = ", ".join(
        f"count({t(f.name + '_raw')})"
        + "".join(
            f", count(*) FILTER (WHERE {t(f.name + '_status')} = {sql_literal(p)})"
            for p in ID_PROBLEMS
        )
        for f in ids
    )
    row = _x(con, f'SELECT {aggs} FROM "{spec.table}" WHERE _file = ?', [rel]).fetchall()[0]
    out: list[FieldIssue] = []
    step = 1 + len(ID_PROBLEMS)
    for i, f in enumerate(ids):
        filled = int(row[i * step])
        found = {p: int(row[i * step + 1 + k]) for k, p in enumerate(ID_PROBLEMS)}
        if not any(found.values()):
            continue
        label = header[mapping[f.name]]  # type: ignore[index]
        shapes = _id_shapes(con, spec, rel, f)
        for problem, n in found.items():
            if n:
                out.append(FieldIssue(f.name, label, problem, n, n / filled, shapes[problem]))
        bad = sum(found.values())
        if bad >= MIN_FAILED_CELLS and bad > f.max_error_share * filled:
            every = ", ".join(shapes[p] for p in ID_PROBLEMS if found[p])
            raise InputFileError(
                f"{rel}: column '{label}' (field {f.name}, normalizer id): {bad / filled:.0%} "
                f"of its {filled} non-empty cells are not valid ID numbers ({bad} cells; value "
                f"shapes: {every}), more than max_error_share {f.max_error_share:g}; the file "
                f"is refused, its previous version (if any) stays in the warehouse. Fix: check "
                f"that `column:` of field {f.name} in {spec.path.as_posix()} names the ID "
                f"number column (18 characters, or 15 digits); if the IDs really are damaged, "
                f"correct the export, or load them as they are with `max_error_share: 1` on "
                f"the field."
            )
    return out


def _id_shapes(
    con: duckdb.DuckDBPyConnection, spec: SourceSpec, rel: str, f: FieldSpec
) -> dict[str, str]:
    """Per bad ID status, the commonest shapes of the raw cells (from up to 5000 values)."""
    raw, st = _ident(f.name + "_raw"), _ident(f.name + "_status")
    rows = _x(
        con,
        f'SELECT {st}, {raw}, count(*) FROM "{spec.table}" WHERE _file = ? AND {st} IN '
        f"({', '.join(sql_literal(p) for p in ID_PROBLEMS)}) GROUP BY 1, 2 LIMIT 5000",
        [rel],
    ).fetchall()
    tally: dict[str, dict[str, int]] = {p: {} for p in ID_PROBLEMS}
    for status, value, n in rows:
        shape = normalize.value_shape(value)
        tally[status][shape] = tally[status].get(shape, 0) + int(n)
    return {
        p: ", ".join(f"{k} ×{n}" for k, n in sorted(t.items(), key=lambda kv: (-kv[1], kv[0]))[:4])
        for p, t in tally.items()
    }


def _record_issues(
    con: duckdb.DuckDBPyConnection,
    spec: SourceSpec,
    rel: str,
    file_hash: str,
    run_id: str,
    issues: list[FieldIssue],
) -> None:
    """This file version's issues replace the previous version's (same transaction)."""
    _x(con, f"DELETE FROM {FIELD_ISSUE} WHERE source = ? AND file = ?", [spec.id, rel])
    for i in issues:
        _x(
            con,
            f"INSERT INTO {FIELD_ISSUE} (run_id, source, file, file_hash, field, header, "
            f"problem, cells, share, example_shapes) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                run_id or None,
                spec.id,
                rel,
                file_hash,
                i.field,
                i.header,
                i.problem,
                i.cells,
                i.share,
                i.shapes or None,
            ],
        )


_ID_WORDS = {
    "bad_checksum": "with a wrong check digit",
    "bad_date": "with an impossible birth date",
    "bad_format": "of a wrong length or with other characters",
}


def _warnings(rel: str, issues: list[FieldIssue]) -> list[str]:
    """Summary lines, one per column (no value, no name: counts and value shapes only)."""
    out: list[str] = []
    ids: dict[tuple[str, str], list[FieldIssue]] = {}
    for i in issues:
        where = f"{rel}: column '{i.header}' (field {i.field})"
        if i.problem == "nulled":
            out.append(
                f"{where}: {i.cells} unreadable cells set to NULL, rows kept (value shapes: "
                f"{i.shapes}); see ingest_field_issue, or set `on_error: quarantine`"
            )
        elif i.problem == "name_note":
            out.append(
                f"{where}: {i.cells} names hold a note in brackets (value shapes: "
                f"{i.shapes}), stored as they are, so they match the same person nowhere else; "
                f"keep the name alone with `pattern: '^\\s*([^(（]*)'` on the field (a name "
                f"and ID in one cell: a second field with the ID's pattern)"
            )
        elif i.problem in _ID_WORDS:
            if (i.field, where) not in ids:
                out.append(where)  # placeholder, filled below (keeps the field order)
            ids.setdefault((i.field, where), []).append(i)
    for (_, where), found in ids.items():
        parts = [f"{i.cells} {_ID_WORDS[i.problem]}" for i in found]
        parts[0] = parts[0].replace(" ", " ID numbers ", 1)  # 12 ID numbers with ..., 5 with ...
        statuses = " / ".join(i.problem for i in found)
        out[out.index(where)] = f"{where}: {', '.join(parts)} (stored with status {statuses})"
    return out
