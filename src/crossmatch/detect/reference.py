"""Reference tables of a rules folder (``rules/reference/*.csv`` -> ``ref_<name>``)."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb

from crossmatch.errors import SpecError
from crossmatch.spec.common import Problem
from crossmatch.warehouse import existing_relations

#: Reference tables the shared base views (base.sql) read, with their key column.
REQUIRED_REFERENCE = {"ref_item_class": "item,class", "ref_assistance_classes": "class,parent"}


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
        create_text_table(con, name, f)
        names.append(name)
    missing = reference_problems(con, rules_dir)
    if missing:
        raise SpecError([str(p) for p in missing])
    return names


def reference_problems(con: duckdb.DuckDBPyConnection, rules_dir: str | Path) -> list[Problem]:
    """Reference tables the base views need but that are not loaded."""
    have = existing_relations(con)
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


def create_text_table(con: duckdb.DuckDBPyConnection, name: str, path: Path) -> None:
    """A reference CSV as a TEMP table of text columns. Python's csv module rather than DuckDB's
    sniffer: these files are tiny and hand-edited, and a comma inside a quoted note must not
    change the columns."""
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
