"""The rule engine's view of the warehouse contract (docs/data-contract.md sections 4-7).

Rules read the resolved views ``r_<source>``, ``person``, ``identity_link``, the kinship tables and
``ref_<name>`` reference tables. This module spells those columns out once so that

* ``crossmatch validate`` can compile every rule's SQL against empty contract tables, without data;
* the engine can create an empty stand-in for a view whose source was never loaded (the rule that
  needs it is then ``skipped``; a rule that only *mentions* it still compiles);
* tests and the rules' inline examples can build tiny fixtures by giving only the columns they use.
"""

from __future__ import annotations

import logging

import duckdb

LINEAGE = [
    ("_source", "VARCHAR"),
    ("_file", "VARCHAR"),
    ("_file_hash", "VARCHAR"),
    ("_row", "INTEGER"),
    ("_dup_of", "INTEGER"),
]

# Field spec per source: "name:TYPE" or "@role" (a person role R -> R_name, R_name_raw, R_id,
# R_id_raw, R_id_status, and R_pid in the resolved view). Default type VARCHAR.
_D, _M, _F, _I = "DATE", "DECIMAL(18,2)", "DOUBLE", "INTEGER"
SOURCES: dict[str, list[str]] = {
    "hukou": [
        "household_no",
        "@person",
        "relation_to_head",
        "sex",
        "ethnicity",
        f"birth_date:{_D}",
        "address",
        "village_code",
        "status",
        "cancel_reason",
        f"cancel_date:{_D}",
        "@father",
        "@mother",
    ],
    "death": ["@person", f"death_date:{_D}", "cause", "reporting_unit"],
    "cremation": ["@person", f"cremation_date:{_D}", "funeral_home"],
    "marriage": ["kind", "@husband", "@wife", f"reg_date:{_D}", "office"],
    "assistance": [
        "assistance_type",
        "case_no",
        "@applicant",
        "@member",
        "relation_to_applicant",
        f"household_size:{_I}",
        f"monthly_amount:{_M}",
        "township",
        "village",
        "village_code",
        "handler_name",
        "handler_name_raw",
        "approver_name",
        "approver_name_raw",
        "handler_pid",
        "approver_pid",
        f"start_date:{_D}",
        f"end_date:{_D}",
    ],
    "elderly": [
        "@person",
        "sex",
        f"age:{_I}",
        "village",
        "village_code",
        f"monthly_amount:{_M}",
        "start_month",
    ],
    "proxy_filing": ["@beneficiary", "@agent", "account", f"filed_date:{_D}"],
    "payment": [
        "batch_no",
        "item",
        "@payee",
        "account",
        "bank",
        f"amount:{_M}",
        "period",
        f"pay_date:{_D}",
        "status",
        "township",
        "village",
        "village_code",
    ],
    "payroll": [
        "@person",
        "unit_name",
        "unit_code",
        "post",
        "post_type",
        f"start_date:{_D}",
        f"end_date:{_D}",
    ],
    "cadre": [
        "@person",
        "township",
        "village",
        "village_code",
        "post",
        f"term_start:{_D}",
        f"term_end:{_D}",
    ],
    "relative_filing": ["@cadre", "@relative", "relation", "item", f"filed_date:{_D}"],
    "property": [
        "@owner",
        "@co_owner",  # optional (共有人): a member who only co-owns a home holds it
        "unit_no",
        "location",
        "usage",
        f"area_m2:{_F}",
        f"reg_date:{_D}",
        f"cancel_date:{_D}",
    ],
    "vehicle": [
        "@owner",
        "plate",
        "vehicle_type",
        "use_type",
        f"reg_date:{_D}",
        "status",
        f"status_date:{_D}",
    ],
    "enterprise": [
        "credit_code",
        "name",
        "@legal_rep",
        f"capital:{_M}",
        "status",
        f"established:{_D}",
        f"deregistered:{_D}",
    ],
    "shareholder": ["credit_code", "@holder", f"subscribed:{_M}", f"share:{_F}"],
    "land_contract": [
        "contract_no",
        "@contractor",
        "village",
        "village_code",
        f"plots:{_I}",
        f"area_mu:{_F}",
    ],
    "farmland_subsidy": [
        "@person",
        "village",
        "village_code",
        f"area_mu:{_F}",
        f"rate:{_M}",
        f"amount:{_M}",
        f"year:{_I}",
    ],
    "bank_account": ["account", "@holder", "bank", f"opened:{_D}", f"closed:{_D}"],
    "subsidy_standard": [
        "item",
        "region_prefix",
        "basis",
        f"band:{_I}",  # covered persons (保障人数); the last band is open (6 = 6+)
        f"amount:{_M}",
        f"valid_from:{_D}",
        f"valid_to:{_D}",
    ],
    "procurement": [
        "contract_no",
        "buyer_name",
        "buyer_code",
        "supplier_name",
        "supplier_credit_code",
        f"amount:{_M}",
        f"signed_date:{_D}",
    ],
    "school_staff": ["@person", "school_name", "school_code", "post"],
}

OTHER_TABLES: dict[str, list[tuple[str, str]]] = {
    "person": [
        ("person_id", "VARCHAR"),
        ("name", "VARCHAR"),
        ("id_number", "VARCHAR"),
        ("birth_date", "DATE"),
        ("sex", "VARCHAR"),
        ("household_no", "VARCHAR"),
        ("village_code", "VARCHAR"),
        ("in_registry", "BOOLEAN"),
        ("death_date", "DATE"),
    ],
    "identity_link": [
        ("source", "VARCHAR"),
        ("file", "VARCHAR"),
        ("row", "INTEGER"),
        ("role", "VARCHAR"),
        ("person_id", "VARCHAR"),
        ("method", "VARCHAR"),
        ("probability", "DOUBLE"),
        ("cluster_id", "VARCHAR"),
    ],
    "ingest_file": [
        ("source", "VARCHAR"),
        ("file", "VARCHAR"),
        ("hash", "VARCHAR"),
        ("spec_digest", "VARCHAR"),
        ("rows_read", "INTEGER"),
        ("rows_loaded", "INTEGER"),
        ("rows_quarantined", "INTEGER"),
        ("rows_duplicate", "INTEGER"),
        ("loaded_at", "TIMESTAMP"),
        ("status", "VARCHAR"),
        ("message", "VARCHAR"),
    ],
}


def roles(source: str) -> list[str]:
    """Person roles of a source, in contract order."""
    return [f[1:] for f in SOURCES[source] if f.startswith("@")]


def resolved_columns(source: str) -> list[tuple[str, str]]:
    """Columns of ``r_<source>``: canonical fields, per-role person fields + ``R_pid``, lineage."""
    cols: list[tuple[str, str]] = []
    for f in SOURCES[source]:
        if f.startswith("@"):
            r = f[1:]
            cols += [
                (f"{r}_name", "VARCHAR"),
                (f"{r}_name_raw", "VARCHAR"),
                (f"{r}_id", "VARCHAR"),
                (f"{r}_id_raw", "VARCHAR"),
                (f"{r}_id_status", "VARCHAR"),
                (f"{r}_pid", "VARCHAR"),
            ]
        else:
            name, _, typ = f.partition(":")
            cols.append((name, typ or "VARCHAR"))
    return cols + LINEAGE


def table_columns(table: str) -> list[tuple[str, str]]:
    """Contract columns of any table the rules may read (``r_*``, person, ...)."""
    if table.startswith("r_") and table[2:] in SOURCES:
        return resolved_columns(table[2:])
    if table in OTHER_TABLES:
        return OTHER_TABLES[table]
    from crossmatch.kinship import KINSHIP_TABLES

    if table in KINSHIP_TABLES:
        return KINSHIP_TABLES[table]
    raise KeyError(table)


def all_tables() -> list[str]:
    from crossmatch.kinship import KINSHIP_TABLES

    return [f"r_{s}" for s in SOURCES] + list(OTHER_TABLES) + list(KINSHIP_TABLES)


def existing_relations(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Names of tables and views visible on ``con`` (main schema and temp)."""
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema IN ('main', 'temp') OR table_catalog = 'temp'"
    ).fetchall()
    return {r[0] for r in rows}


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
    for src in SOURCES:
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


def create_empty(con: duckdb.DuckDBPyConnection, table: str, *, temp: bool = True) -> None:
    """Create an empty contract-shaped table (a stand-in for a source that was never loaded)."""
    cols = ", ".join(f'"{c}" {t}' for c, t in table_columns(table))
    kw = "TEMP " if temp else ""
    con.execute(f'CREATE OR REPLACE {kw}TABLE "{table}" ({cols})')


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
    cols = table_columns(table)
    names = [c for c, _ in cols]
    for i, r in enumerate(rows):
        bad = set(r) - set(names)
        if bad:
            from rapidfuzz import process

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
