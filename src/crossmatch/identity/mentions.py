"""Stage 1 of identity resolution: ``person_mention``, one row per (source, file, row, role)
from the canonical ``src_*`` tables, with its name, ID and context.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from crossmatch.errors import WarehouseError
from crossmatch.identity.roles import RoleRef
from crossmatch.identity.summary import ResolveSummary

# context keys a role may give (RoleRef.context): village_code, village (a village *name*:
# mapped to its code through the name / code pairs other records give), account, township
# (a township name: staff of that township), unit (employer), date (the record's date or
# month, e.g. a payment's period: a candidate who had died before it is unlikely)
_CTX = ("village_code", "village", "account", "township", "unit", "date")


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]
    ).fetchall()
    return {r[0] for r in rows}


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }


def _store(con: duckdb.DuckDBPyConnection, name: str, df: pd.DataFrame, temp: bool = False) -> None:
    """Materialise a DataFrame as a (temporary) table."""
    # DuckDB refuses register() while an earlier execute() has unread rows (a fetchone());
    # a new statement closes that result
    con.execute("SELECT 1").fetchall()
    con.register("_df_in", df)
    try:
        kind = "TEMP TABLE" if temp else "TABLE"
        con.execute(f"CREATE OR REPLACE {kind} {name} AS SELECT * FROM _df_in")
    finally:
        con.unregister("_df_in")


def _sql_text(s: str) -> str:
    """``s`` as a SQL string literal (quotes doubled)."""
    return "'" + s.replace("'", "''") + "'"


def build_mentions(
    con: duckdb.DuckDBPyConnection, roles: list[RoleRef], summary: ResolveSummary
) -> None:
    """Create ``person_mention`` from every role whose table exists."""
    parts = []
    for r in roles:
        cols = _columns(con, r.table)
        if not cols:
            summary.skipped.append(f"{r.table} ({r.role}): table not in the warehouse")
            continue
        need = [c for c in (r.name, r.id) if c]
        missing = [c for c in need if c not in cols]
        if missing:
            summary.skipped.append(
                f"{r.table} ({r.role}): missing column(s) {', '.join(missing)}; "
                "check the persons: block of the source spec"
            )
            continue

        def col(c: str | None, typ: str = "VARCHAR", cols: set[str] = cols) -> str:
            return f"CAST({c} AS {typ})" if c and c in cols else f"CAST(NULL AS {typ})"

        idc = r.id
        context = dict(r.context)
        if r.id is None and "township" not in context and "township" in cols:
            # name-only staff roles (handler/approver): their township is the row's township
            context["township"] = "township"
        ctx = {k: col(context.get(k)) for k in _CTX}
        # the row's township name (contract field `township`), to tell two villages of one
        # name apart; only read where the role names its village by name
        town = (
            "CAST(NULLIF(trim(CAST(township AS VARCHAR)), '') AS VARCHAR)"
            if context.get("village") and "township" in cols
            else "CAST(NULL AS VARCHAR)"
        )
        fh = "CAST(_file_hash AS VARCHAR)" if "_file_hash" in cols else "CAST(NULL AS VARCHAR)"
        parts.append(
            f"""SELECT {_sql_text(r.source)} AS source, _file AS file, _row AS row,
                {_sql_text(r.role)} AS role,
                {fh} AS file_hash,
                {col(r.name)} AS name, {col(f"{r.name}_raw" if r.name else None)} AS name_raw,
                {col(idc)} AS id, {col(f"{idc}_raw" if idc else None)} AS id_raw,
                {col(f"{idc}_status" if idc else None)} AS id_status,
                {ctx["village_code"]} AS village_code, {ctx["village"]} AS village,
                {ctx["account"]} AS account,
                {ctx["township"]} AS township, {ctx["unit"]} AS unit, {ctx["date"]} AS event_raw,
                {town} AS village_town
            FROM {r.table}"""
        )
    if not parts:
        raise WarehouseError(
            "no person-bearing src_* table found in the warehouse; run `crossmatch ingest` first"
        )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _pm AS SELECT * REPLACE (" + _VILLAGE_CLEAN + " AS village), "
        "CASE WHEN id IS NOT NULL THEN strptime(substr(id, 7, 8), '%Y%m%d')::DATE END "
        "AS birth_date, "
        "CASE WHEN id IS NOT NULL THEN "
        "CASE WHEN CAST(substr(id, 17, 1) AS INTEGER) % 2 = 1 THEN '男' ELSE '女' END END AS sex, "
        "date_trunc('month', coalesce(try_cast(event_raw AS DATE), "
        "try_strptime(event_raw, '%Y-%m')::DATE, try_strptime(event_raw, '%Y%m')::DATE))::DATE "
        "AS event_month "
        "FROM (" + " UNION ALL ".join(parts) + ") "
        "WHERE name IS NOT NULL OR id IS NOT NULL OR id_raw IS NOT NULL"
    )
    # a village written by name takes the code that name has wherever a record gives both
    # (only a name with one code in the county: two villages of one name give no code)
    # pairs: every mention that has both, and every canonical table with both a `village`
    # and a `village_code` field (a roster or payment file naming and coding its villages)
    # (a name two villages share: the pair (township name, village name) where the row says
    # its township)
    pairs = ["SELECT village_town AS town, village, village_code FROM _pm"]
    for t in sorted(_tables(con)):
        cols = _columns(con, t)
        if t.startswith("src_") and {"village", "village_code"} <= cols:
            town = (
                "NULLIF(trim(CAST(township AS VARCHAR)), '')"
                if "township" in cols
                else "NULL::VARCHAR"
            )
            pairs.append(
                f"SELECT {town} AS town, " + _VILLAGE_CLEAN + " AS village, "
                f"CAST(village_code AS VARCHAR) AS village_code FROM {t}"
            )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _village_pairs AS SELECT * FROM
        ({" UNION ALL ".join(pairs)}) x WHERE village IS NOT NULL AND village_code IS NOT NULL"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _village_map AS
        SELECT village, min(village_code) AS code FROM _village_pairs
        GROUP BY village HAVING count(DISTINCT village_code) = 1"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _village_town_map AS
        SELECT town, village, min(village_code) AS code FROM _village_pairs
        WHERE town IS NOT NULL GROUP BY town, village HAVING count(DISTINCT village_code) = 1"""
    )
    con.execute(
        """CREATE OR REPLACE TABLE person_mention AS
        SELECT m.* EXCLUDE (event_raw, village_town)
            REPLACE (coalesce(m.village_code, v.code, vt.code) AS village_code)
        FROM _pm m LEFT JOIN _village_map v USING (village)
        LEFT JOIN _village_town_map vt ON vt.town = m.village_town AND vt.village = m.village"""
    )
    con.execute("DROP TABLE _pm")


# village names as written (马冲村村民委员会, 马冲村3组, 马冲村民委员会, 马冲 村) -> 马冲村;
# idempotent on names a `village` normalizer has cleaned already
_VILLAGE_CLEAN = """nullif(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
    regexp_replace(CAST(village AS VARCHAR), '[\\s\u3000]+', '', 'g'),
    '([0-9一二三四五六七八九十]+(村民小组|组|队))$', ''),
    '(村民委员会|村委会|村民委|村委)$', '村'),
    '(社区居民委员会|社区居委会|居民委员会|居委会)$', '社区'),
    '村村$', '村'), '')"""
