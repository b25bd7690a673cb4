"""The rule engine's use of the warehouse contract (``crossmatch.contract``, derived from
``sources/*.yaml``; docs/data-contract.md sections 4-7).

Rules read the resolved views ``r_<source>``, ``person``, ``identity_link``, the kinship tables and
``ref_<name>`` reference tables. This module builds on the contract so that

* ``crossmatch validate`` can compile every rule's SQL against empty contract tables, without data;
* the engine can create an empty stand-in for a view whose source was never loaded (the rule that
  needs it is then ``skipped``; a rule that only *mentions* it still compiles);
* tests and the rules' inline examples can build tiny fixtures by giving only the columns they use.
"""

from __future__ import annotations

import logging

import duckdb
from rapidfuzz import process

from crossmatch import contract
from crossmatch.warehouse import create_empty, existing_relations

__all__ = [
    "all_tables",
    "conform",
    "contract_columns",
    "create_empty",
    "ensure_contract_tables",
    "existing_relations",
    "load_rows",
    "resolved_columns",
    "roles",
    "sources",
]


def sources() -> list[str]:
    """Source ids of the active contract (``crossmatch.contract``)."""
    return list(contract.active().sources)


def roles(source: str) -> list[str]:
    """Person roles of a source that carry an ID number, in contract order."""
    return contract.active().roles(source)


def resolved_columns(source: str) -> list[tuple[str, str]]:
    """Columns of ``r_<source>``: canonical fields, per-role person fields + ``R_pid``, lineage."""
    return contract.active().resolved_columns(source)


def contract_columns(table: str) -> list[tuple[str, str]]:
    """Contract columns of any table the rules may read (``r_*``, person, ...)."""
    return contract.active().columns_of(table)


def all_tables() -> list[str]:
    return contract.active().tables()


def conform(con: duckdb.DuckDBPyConnection) -> list[tuple[int, str]]:
    """Make every resolved view the rules read present with its contract columns.

    * ``r_<source>`` absent but ``src_<source>`` loaded (sources without person roles): a TEMP
      view over ``src_<source>``;
    * a contract column absent from an existing view: a TEMP view adding it, from a known alias
      (``<source>_pid`` for ``person_pid``, as identity names the cadre's) or as NULL.

    Returns (log level, note) per adaptation, logged by the engine: a real drift (a contract
    column absent: the rules reading it are reported ``blind``) is a warning; the agreed alias and
    an old warehouse without role-less ``r_*`` views are not (no warning on a clean run).
    """
    notes: list[tuple[int, str]] = []
    where = {
        r[0]: f'"{r[1]}"."{r[2]}"."{r[0]}"'
        for r in con.execute(
            "SELECT table_name, table_catalog, table_schema FROM information_schema.tables"
        ).fetchall()
    }
    for src in sources():
        view = f"r_{src}"
        if view in where:
            base = where[view]
        elif f"src_{src}" in where:
            base = where[f"src_{src}"]
            notes.append((logging.INFO, f"{view} missing: using src_{src}"))
        else:
            continue
        cols = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {base}").fetchall()}
        adds = []
        for name, typ in resolved_columns(src):
            if name in cols:
                continue
            alias = f"{src}_pid" if name == "person_pid" else None
            if alias and alias in cols:
                adds.append(f'"{alias}" AS "{name}"')
                notes.append((logging.DEBUG, f"{view}.{name} taken from {alias}"))
            else:
                adds.append(f'CAST(NULL AS {typ}) AS "{name}"')
                notes.append((logging.WARNING, f"{view}.{name} missing: NULL"))
        if adds and base.startswith('"temp"'):
            raise ValueError(f"{view} is a temp table without contract columns {adds}")
        if adds or view not in where:
            extra = (", " + ", ".join(adds)) if adds else ""
            con.execute(f'CREATE OR REPLACE TEMP VIEW "{view}" AS SELECT *{extra} FROM {base}')
    return notes


def ensure_contract_tables(con: duckdb.DuckDBPyConnection, *, temp: bool = True) -> list[str]:
    """Create empty stand-ins for every contract table that does not exist; return their names."""
    have = existing_relations(con)
    made = []
    for t in all_tables():
        if t not in have:
            create_empty(con, t, temp=temp)
            made.append(t)
    return made


def load_rows(
    con: duckdb.DuckDBPyConnection, table: str, rows: list[dict], *, temp: bool = True
) -> None:
    """Create ``table`` with its contract columns and insert ``rows`` (missing columns -> NULL).

    Unknown column names raise ``KeyError`` naming the nearest contract column, so a typo in a
    fixture fails loudly instead of silently becoming NULL.
    """
    cols = contract_columns(table)
    names = [c for c, _ in cols]
    for i, r in enumerate(rows):
        bad = set(r) - set(names)
        if bad:
            hints = [f"{b} (did you mean {process.extractOne(b, names)[0]}?)" for b in sorted(bad)]
            raise KeyError(f"{table} row {i + 1}: unknown column(s) " + ", ".join(hints))
    create_empty(con, table, temp=temp)
    if not rows:
        return
    placeholders = ", ".join(f"CAST(? AS {t})" for _, t in cols)
    con.executemany(
        f'INSERT INTO "{table}" VALUES ({placeholders})',
        [[None if r.get(c) is None else r.get(c) for c in names] for r in rows],
    )
