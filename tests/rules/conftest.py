"""Fixtures for rule-engine tests: tiny in-memory DuckDB warehouses shaped like the contract."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from crossmatch.detect import schema

RULES_DIR = Path(__file__).resolve().parents[2] / "rules"


def build_warehouse(tables: dict[str, list[dict]]) -> duckdb.DuckDBPyConnection:
    """In-memory warehouse with the given contract tables (rows; absent columns are NULL).

    Lineage columns of ``r_*`` rows default to ``<source>/fixture.csv`` and row = index + 2.
    """
    con = duckdb.connect()
    for table, rows in tables.items():
        full = []
        for i, r in enumerate(rows):
            r = dict(r)
            if table.startswith("r_"):
                r.setdefault("_source", table[2:])
                r.setdefault("_file", f"{table[2:]}/fixture.csv")
                r.setdefault("_row", i + 2)
                for role in schema.roles(table[2:]) if table[2:] in schema.sources() else ():
                    if f"{role}_pid" in r:
                        r.setdefault(f"{role}_id", r[f"{role}_pid"])
            full.append(r)
        schema.load_rows(con, table, full, temp=False)
    return con


@pytest.fixture
def rules_dir() -> Path:
    return RULES_DIR
