"""Compare the canonical tables of two warehouses row by row (multisets, every column).

    uv run python benchmarks/compare_warehouses.py A.duckdb B.duckdb

Used to check that a change to ingestion loads exactly what it loaded before: ingest the same
raw folder with the old code into A and the new code into B. Every ``src_*`` table and
``quarantine`` must hold the same rows (any order); prints the first differing rows of each
table and exits 1 when a table differs. On a 3-million-person county (16.4M rows) it takes
about 3 minutes and 10 GB of memory.
"""

from __future__ import annotations

import sys

import duckdb


def main(a: str, b: str) -> int:
    con = duckdb.connect()
    con.execute(f"ATTACH '{a}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{b}' AS b (READ_ONLY)")
    tables = sorted(
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'a' AND "
            "(table_name LIKE 'src\\_%' ESCAPE '\\' OR table_name = 'quarantine')"
        ).fetchall()
    )
    differing = 0
    for t in tables:
        cols = [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = 'a' AND "
                "table_name = ? ORDER BY column_index",
                [t],
            ).fetchall()
        ]
        sel = ", ".join(f'"{c}"' for c in cols)
        only_a = f"SELECT {sel} FROM a.{t} EXCEPT ALL SELECT {sel} FROM b.{t}"
        only_b = f"SELECT {sel} FROM b.{t} EXCEPT ALL SELECT {sel} FROM a.{t}"
        n_a = con.execute(f"SELECT count(*) FROM ({only_a})").fetchall()[0][0]
        n_b = con.execute(f"SELECT count(*) FROM ({only_b})").fetchall()[0][0]
        if n_a or n_b:
            differing += 1
            print(f"{t}: {n_a} rows only in {a}, {n_b} rows only in {b}")
            for label, q in ((a, only_a), (b, only_b)):
                for row in con.execute(f"{q} LIMIT 3").fetchall():
                    print(f"  {label}: {row}")
    print(f"{len(tables)} tables compared, {differing} differ")
    return 1 if differing else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
