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
  (``bad_checksum`` / ``bad_date`` / ``bad_format``): counts, share and value shapes only;
* ``ingest_run``: one row per ``crossmatch ingest``.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

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


def connect(path: str | Path = "crossmatch.duckdb", *, read_only: bool = False):
    """Open (or create) the warehouse; a clear WarehouseError when that is impossible."""
    p = Path(path)
    if read_only and not p.exists():
        raise WarehouseError(f"{p}: warehouse not found. Fix: run `crossmatch ingest` first.")
    if not read_only and p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    try:
        return duckdb.connect(str(p), read_only=read_only)
    except duckdb.Error as exc:
        msg = str(exc).splitlines()[0]
        hint = (
            "another process holds it open; wait for it to finish"
            if "lock" in msg.lower()
            else "check the path is a crossmatch DuckDB file, or pass another --warehouse"
        )
        raise WarehouseError(f"{p}: cannot open the warehouse ({msg}). Fix: {hint}.") from exc


def ensure_ingest_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create ingest_run / ingest_file / quarantine / ingest_field_issue when missing."""
    con.execute(INGEST_DDL)


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
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
    have = table_columns(con, table)
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
