"""Duplicates across the files of one source: an overlapping re-export is loaded once.

Within one file, a row whose raw cells equal an earlier row's gets ``_dup_of`` at staging
(:mod:`crossmatch.ingest.raw_staging`); byte-identical copies of a whole file are skipped
(``split_copies``). What is left is the export that overlaps another one: the first quarter's
payments exported again inside a half-year file, a 副本 saved with another encoding, a registry
re-exported with other column names. Their rows carry the same canonical values in two files,
and counting both inflates amounts and makes false ``duplicate_payment`` clues (the rule
catalogue names "an exact duplicate row of the export itself" as a trap).

After the files of a source are loaded, rows of different physical files whose canonical fields
are all equal (NULL equal to NULL) are duplicates: the one first in (file, row) order stays, the
others get ``_dup_of`` = its row and are listed in ``ingest_duplicate`` with the file and row they
repeat. The order is by file path, never by scan order, so two runs mark the same rows. Rows of
two sheets of one workbook are never compared (the sheet is their difference, as in
``derive.sheet_lineage``). Values taken from the file name (``from: path``) are canonical
fields, so monthly files that differ only in their month never match.

The marks are recomputed for a source whenever one of its files was loaded this run (a file
replaced or removed can free a row marked before), and once for a warehouse written before this
pass existed.
"""

from __future__ import annotations

import duckdb

from crossmatch import warehouse
from crossmatch.spec.sources import SourceSpec

DUPLICATE_TABLE = "ingest_duplicate"
STATE_TABLE = "ingest_duplicate_state"

_DDL = f"""
CREATE TABLE IF NOT EXISTS {DUPLICATE_TABLE} (
    source VARCHAR NOT NULL,  -- source id
    file VARCHAR NOT NULL,    -- the repeated row's file (relative to the raw folder)
    "row" INTEGER NOT NULL,   -- its row
    of_file VARCHAR NOT NULL, -- the file of the row it repeats (first in file, row order)
    of_row INTEGER NOT NULL,  -- that row
    run_id VARCHAR            -- the ingest run that marked it
);
CREATE TABLE IF NOT EXISTS {STATE_TABLE} (
    source VARCHAR PRIMARY KEY,
    run_id VARCHAR,
    marked BIGINT
);
"""


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_DDL)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def needs_pass(con: duckdb.DuckDBPyConnection, spec: SourceSpec, loaded_now: bool) -> bool:
    """A file of the source was loaded this run, or the source was never checked."""
    if loaded_now:
        return True
    row = con.execute(f"SELECT 1 FROM {STATE_TABLE} WHERE source = ?", [spec.id]).fetchone()
    return row is None


def mark(con: duckdb.DuckDBPyConnection, spec: SourceSpec, run_id: str) -> dict[str, int]:
    """Recompute the source's cross-file duplicate marks; returns rows marked per file.

    Runs in one transaction: the marks are either all of the old ones or all of the new."""
    ensure_tables(con)
    table = _quote(spec.table)
    fields = [c for c, _ in spec.columns() if not c.startswith("_")]
    with warehouse.transaction(con):
        # the previous marks go first: a replaced or removed file can free a row
        con.execute(
            f"UPDATE {table} AS t SET _dup_of = NULL FROM {DUPLICATE_TABLE} AS d "
            f'WHERE d.source = ? AND t._file = d.file AND t._row = d."row"',
            [spec.id],
        )
        con.execute(f"DELETE FROM {DUPLICATE_TABLE} WHERE source = ?", [spec.id])
        counts: dict[str, int] = {}
        # one physical file (most sources): no row can repeat another file's, and hashing
        # every canonical column of a 3M-row register to find that out costs seconds
        files = con.execute(
            f"SELECT count(DISTINCT split_part(_file, '#', 1)) FROM {table} WHERE _dup_of IS NULL"
        ).fetchone()
        if fields and files is not None and files[0] > 1:
            cols = ", ".join(_quote(f) for f in fields)
            physical = "split_part(_file, '#', 1)"
            # only hash groups that span two physical files are compared in full
            con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE _cm_xdup AS
                WITH keyed AS (
                    SELECT _file, _row, {physical} AS _phys, hash({cols}) AS _h
                    FROM {table} WHERE _dup_of IS NULL
                ),
                spanning AS (
                    SELECT _h FROM keyed GROUP BY _h HAVING count(DISTINCT _phys) > 1
                ),
                cand AS (
                    SELECT t._file, t._row, k._phys, {", ".join(f"t.{_quote(f)}" for f in fields)}
                    FROM {table} AS t
                    JOIN keyed AS k ON k._file = t._file AND k._row = t._row
                    WHERE k._h IN (SELECT _h FROM spanning)
                ),
                ranked AS (
                    SELECT _file, _row, _phys,
                        first_value(_file) OVER w AS of_file,
                        first_value(_row) OVER w AS of_row,
                        first_value(_phys) OVER w AS of_phys
                    FROM cand
                    WINDOW w AS (PARTITION BY {cols} ORDER BY _file, _row)
                )
                SELECT _file, _row, of_file, of_row FROM ranked WHERE _phys <> of_phys
                """
            )
            con.execute(
                f"INSERT INTO {DUPLICATE_TABLE} SELECT ?, _file, _row, of_file, of_row, ? "
                f"FROM _cm_xdup",
                [spec.id, run_id],
            )
            con.execute(
                f"UPDATE {table} AS t SET _dup_of = x.of_row FROM _cm_xdup AS x "
                f"WHERE t._file = x._file AND t._row = x._row"
            )
            counts = dict(
                con.execute(
                    "SELECT split_part(_file, '#', 1), count(*) FROM _cm_xdup GROUP BY 1"
                ).fetchall()
            )
            con.execute("DROP TABLE _cm_xdup")
        con.execute(
            f"INSERT OR REPLACE INTO {STATE_TABLE} VALUES (?, ?, ?)",
            [spec.id, run_id, sum(counts.values())],
        )
    return counts
