"""The DuckDB warehouse: connection and the schema of the ingestion tables.

One file (``crossmatch.duckdb`` by default) holds every canonical table (data contract section 4):

* ``src_<source>``: one per source spec, lineage columns first (``_source, _file, _file_hash,
  _row, _dup_of``), then the canonical fields; created from the spec (see
  :meth:`crossmatch.spec.SourceSpec.columns`);
* ``ingest_file``: one row per file version seen (status ``ok`` = the version whose rows are in
  the warehouse now, ``replaced`` = an older version, ``failed`` = a version that could not be
  loaded: its predecessor stays ``ok``);
* ``quarantine``: rows that could not be parsed, with the reason, raw values (JSON) and lineage;
* ``ingest_field_issue``: per file version and field, cells set to NULL (``nulled``), or whose
  row was quarantined (``quarantined``), and ID numbers stored with a bad status
  (``bad_checksum`` / ``bad_date`` / ``bad_format``), and person names holding a note in
  brackets (``name_note``, ``刘明(户主)``): counts, share and value shapes only;
* ``ingest_run``: one row per ``crossmatch ingest``;
* ``stage_state``: per derived stage (``resolve``, ``kinship``, ``seen:<source>``) the
  fingerprint of the inputs it was computed from, so a later stage can tell that its input
  is stale (issue 10).

Every command opens the warehouse through :func:`connect`: a missing, locked or corrupt file, or a
full disk, becomes a :class:`WarehouseError` naming the file and the fix (exit code 5).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb

from crossmatch import contract
from crossmatch.errors import WarehouseError

INGEST_DDL = """
CREATE TABLE IF NOT EXISTS ingest_run (
    run_id VARCHAR PRIMARY KEY,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    raw_root VARCHAR,
    sources_dir VARCHAR,
    files_loaded INTEGER,
    files_unchanged INTEGER,
    files_failed INTEGER,
    rows_loaded BIGINT,
    rows_quarantined BIGINT,
    status VARCHAR
);
CREATE TABLE IF NOT EXISTS ingest_file (
    run_id VARCHAR,
    source VARCHAR,
    file VARCHAR,
    hash VARCHAR,
    spec_digest VARCHAR,
    size BIGINT,
    encoding VARCHAR,
    header_row INTEGER,
    rows_read BIGINT,
    rows_loaded BIGINT,
    rows_quarantined BIGINT,
    rows_duplicate BIGINT,
    seconds DOUBLE,
    loaded_at TIMESTAMP,
    status VARCHAR,
    message VARCHAR
);
CREATE TABLE IF NOT EXISTS quarantine (
    source VARCHAR,
    file VARCHAR,
    file_hash VARCHAR,
    "row" INTEGER,
    reason VARCHAR,
    raw JSON
);
CREATE TABLE IF NOT EXISTS ingest_field_issue (
    run_id VARCHAR,
    source VARCHAR,
    file VARCHAR,
    file_hash VARCHAR,
    field VARCHAR,
    header VARCHAR,
    problem VARCHAR,
    cells BIGINT,
    share DOUBLE,
    example_shapes VARCHAR
);
"""


def _hint(msg: str) -> str:
    low = msg.lower()
    if "lock" in low:
        return "another crossmatch process holds it open; wait for it to finish, then run again"
    if "no space" in low or "disk is full" in low or "disk full" in low or "too large" in low:
        return "the disk is full; free space (or pass --warehouse on another disk), then run again"
    if "not a valid duckdb" in low or "corrupt" in low or "invalid" in low or "magic" in low:
        return (
            "the file is not a readable crossmatch warehouse (corrupt or another format); "
            "move it aside (or restore a backup) and rebuild it with `crossmatch ingest`"
        )
    return "check the path is a crossmatch DuckDB file, or pass another --warehouse"


#: DuckDB's buffer pool for every warehouse connection (:func:`connect`), unless
#: ``CROSSMATCH_MEMORY_LIMIT`` says otherwise (``2GB``, ``1500MB``; ``none``: DuckDB's own default,
#: 80% of the machine). Beyond it DuckDB spills joins, aggregates and sorts to its temporary
#: directory (``CROSSMATCH_TEMP_DIR``, else ``<warehouse>.tmp``), so a night's stages are bounded
#: by one setting; a stage may raise it for itself (kinship retries a build at 4GB) and restores
#: it. Why 2GB: a county office machine is small, and what a stage keeps in Python comes on top.
MEMORY_LIMIT = "2GB"


def memory_limit() -> str | None:
    """The buffer pool :func:`connect` sets: ``CROSSMATCH_MEMORY_LIMIT``, else
    :data:`MEMORY_LIMIT`; None to leave DuckDB's default. A malformed value is an error."""
    value = os.environ.get("CROSSMATCH_MEMORY_LIMIT", "").strip() or MEMORY_LIMIT
    if value.lower() in ("none", "default"):
        return None
    if not re.fullmatch(r"\d+(\.\d+)?\s*([KMGT]i?B)", value, re.IGNORECASE):
        raise WarehouseError(
            f"CROSSMATCH_MEMORY_LIMIT={value}: not a size. Fix: write it like 2GB or 1500MB "
            "(or none for DuckDB's default)."
        )
    return value


def configure(con: duckdb.DuckDBPyConnection) -> None:
    """Set the buffer pool (:func:`memory_limit`) and, when ``CROSSMATCH_TEMP_DIR`` is set, the
    folder DuckDB spills to on ``con`` (the whole database instance: every connection to the
    same file in this process shares them)."""
    limit = memory_limit()
    if limit is not None:
        con.execute(f"SET memory_limit = '{limit}'")
    temp = os.environ.get("CROSSMATCH_TEMP_DIR", "").strip()
    if temp:
        current = con.execute("SELECT current_setting('temp_directory')").fetchone()
        if current is None or current[0] != temp:
            con.execute(f"SET temp_directory = '{temp.replace(chr(39), chr(39) * 2)}'")


def connect(
    path: str | Path = "crossmatch.duckdb",
    *,
    read_only: bool = False,
    must_exist: str | None = None,
):
    """Open (or create) the warehouse; a clear WarehouseError when that is impossible.

    ``must_exist``: the next step to name when the file does not exist (then it is not created),
    e.g. "run `crossmatch ingest` first"."""
    p = Path(path)
    if (read_only or must_exist) and not p.exists():
        step = must_exist or "run `crossmatch ingest` first"
        raise WarehouseError(f"{p}: warehouse not found. Fix: {step}.")
    if not read_only and p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(p), read_only=read_only)
    except (duckdb.Error, OSError) as exc:
        msg = str(exc).splitlines()[0]
        raise WarehouseError(f"{p}: cannot open the warehouse ({msg}). Fix: {_hint(msg)}.") from exc
    try:
        configure(con)
    except BaseException:
        con.close()
        raise
    return con


@contextmanager
def session(
    path: str | Path, *, read_only: bool = False, must_exist: str | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """``with session(path) as con``: :func:`connect`, and a DuckDB I/O failure while working
    (disk full, a file damaged under us) also becomes a WarehouseError with the fix."""
    con = connect(path, read_only=read_only, must_exist=must_exist)
    try:
        yield con
    except duckdb.Error as exc:
        msg = str(exc).splitlines()[0]
        io = isinstance(
            exc, duckdb.IOException | duckdb.FatalException | duckdb.SerializationException
        ) or any(w in msg.lower() for w in ("could not write", "no space", "too large"))
        if not io:
            raise
        raise WarehouseError(f"{path}: warehouse I/O failed ({msg}). Fix: {_hint(msg)}.") from exc
    finally:
        with suppress(duckdb.Error):  # closing after a fatal error: nothing more to save
            con.close()


# ----------------------------------------------------------------------------- stage state

STAGE_DDL = """
CREATE TABLE IF NOT EXISTS stage_state (
    stage VARCHAR PRIMARY KEY, inputs_fingerprint VARCHAR, run_id VARCHAR, finished_at TIMESTAMP
)
"""


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
        ).fetchone()[0]  # type: ignore[index]
    )


def ingest_fingerprint(con: duckdb.DuckDBPyConnection, sources: list[str] | None = None) -> str:
    """sha256 of the file versions now in the warehouse (source, file, content hash, mapping
    digest of every ``ingest_file`` row with status ok), for all sources or those listed.
    '' when nothing was ingested through ``ingest_file`` (a hand-built warehouse)."""
    if not _has_table(con, "ingest_file"):
        return ""
    cols = {r[0] for r in con.execute("DESCRIBE ingest_file").fetchall()}
    digest = "coalesce(spec_digest, '')" if "spec_digest" in cols else "''"
    rows = con.execute(
        f"SELECT source, file, hash, {digest} FROM ingest_file "
        "WHERE status = 'ok' ORDER BY source, file, hash"
    ).fetchall()
    if sources is not None:
        keep = set(sources)
        rows = [r for r in rows if r[0] in keep]
    if not rows and sources is None:
        return ""
    return hashlib.sha256("\n".join("|".join(map(str, r)) for r in rows).encode()).hexdigest()


def record_stage(
    con: duckdb.DuckDBPyConnection, stage: str, fingerprint: str, run_id: str = ""
) -> None:
    """Record that ``stage`` finished now, computed from inputs with ``fingerprint``."""
    con.execute(STAGE_DDL)
    con.execute(
        "INSERT OR REPLACE INTO stage_state VALUES (?, ?, ?, ?)",
        [stage, fingerprint, run_id, dt.datetime.now()],
    )


def stage_state(con: duckdb.DuckDBPyConnection, stage: str) -> tuple[str, str, dt.datetime] | None:
    """(inputs_fingerprint, run_id, finished_at) of ``stage``, or None if never recorded."""
    if not _has_table(con, "stage_state"):
        return None
    row = con.execute(
        "SELECT inputs_fingerprint, run_id, finished_at FROM stage_state WHERE stage = ?", [stage]
    ).fetchone()
    return (row[0], row[1], row[2]) if row else None


def record_seen(con: duckdb.DuckDBPyConnection, results: list, run_id: str = "") -> None:
    """After an ingest: per source, when its export was last present (loaded or unchanged), as
    stage ``seen:<source>``; data age (``detect --max-age-days``) counts from there."""
    seen: dict[str, list[str]] = {}
    for r in results:
        if getattr(r, "status", "") in ("loaded", "unchanged"):
            seen.setdefault(r.source, []).append(f"{r.file}|{r.hash}")
    for src, files in seen.items():
        fp = hashlib.sha256("\n".join(sorted(files)).encode()).hexdigest()
        record_stage(con, f"seen:{src}", fp, run_id)


def ensure_ingest_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create ingest_run / ingest_file / quarantine / ingest_field_issue when missing."""
    con.execute(INGEST_DDL)


def stored_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    """(column, type) of ``table`` in the main schema, [] when it does not exist."""
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def ensure_table(
    con: duckdb.DuckDBPyConnection, table: str, columns: list[tuple[str, str]]
) -> bool:
    """Create ``table`` with ``columns``; if it exists with other columns, rebuild it empty.

    Returns True when an existing table was rebuilt (its files must be loaded again)."""
    have = stored_columns(con, table)
    want = [(c, t.upper()) for c, t in columns]
    if have and [(c, t.upper()) for c, t in have] == want:
        return False
    cols = ", ".join(f"{_quote(c)} {t}" for c, t in columns)
    con.execute(f"CREATE OR REPLACE TABLE {_quote(table)} ({cols})")
    return bool(have)


def fetch_one(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> tuple:
    """The single row of a query that always yields one (a count, a setting, scalar
    sub-queries): typed as a tuple, and a clear error instead of ``None[0]`` if it does not."""
    row = con.execute(sql, params or []).fetchone()
    if row is None:
        raise WarehouseError(f"expected one row, got none from: {sql.strip()[:120]}")
    return row


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """``with transaction(con):`` the block's statements commit together, or none on any error."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def existing_relations(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Names of tables and views visible on ``con`` (main schema and temp)."""
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema IN ('main', 'temp') OR table_catalog = 'temp'"
    ).fetchall()
    return {r[0] for r in rows}


def create_empty(con: duckdb.DuckDBPyConnection, table: str, *, temp: bool = True) -> None:
    """Create an empty contract-shaped table (a stand-in for a source that was never loaded)."""
    cols = ", ".join(f'"{c}" {t}' for c, t in contract.active().columns_of(table))
    kw = "TEMP " if temp else ""
    con.execute(f'CREATE OR REPLACE {kw}TABLE "{table}" ({cols})')
