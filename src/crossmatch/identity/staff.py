"""Staff mentions: handlers and approvers (name only) and payroll rows without an ID.

An assistance case names its handler (经办人) and approver (审批人) by name only, with the
case's township; :func:`link_handlers <crossmatch.identity.exact.link_handlers>` links them
to payroll staff of that township. A payroll row whose ID cell is empty names its employer
(``unit``: 舜店乡人民政府) but no township, so it never met the handler mentions of the same
clerk: the clerk's hundreds of handler mentions and the payroll row became two persons.
:func:`assign_townships` gives such a row the township its unit names (a township name that
other records write in their ``township`` field), so that it groups with that township's staff
mentions of the same name.

Profiles of staff roles (:data:`crossmatch.identity.role_profile.PROFILES`): a handler or
approver is a payroll or cadre roster's person; a namesake on no roster is no candidate (an
approver on no payroll stays name-only rather than grab a namesake).
"""

from __future__ import annotations

import duckdb


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [table]
    ).fetchall()
    return {r[0] for r in rows}


def township_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Township names the records write (the ``township`` field of any src_* table)."""
    tables = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'src\\_%' "
            "ESCAPE '\\'"
        ).fetchall()
    ]
    parts = [
        f"SELECT DISTINCT trim(CAST(township AS VARCHAR)) AS t FROM {t}"
        for t in tables
        if "township" in _columns(con, t)
    ]
    if not parts:
        return []
    rows = con.execute(
        "SELECT DISTINCT t FROM (" + " UNION ALL ".join(parts) + ") WHERE length(t) >= 2"
    ).fetchall()
    return sorted(r[0] for r in rows)


def assign_townships(
    con: duckdb.DuckDBPyConnection, table: str = "person_mention", names: list[str] | None = None
) -> int:
    """Mentions with an employer (``unit``) but neither ID nor township: the township their
    unit's name contains, where exactly one known township name is in it (the longest
    wins over its own prefix). Returns how many mentions got one. ``names``: the township
    names (default :func:`township_names`)."""
    names = township_names(con) if names is None else names
    if not names:
        return 0
    con.execute("CREATE OR REPLACE TEMP TABLE _towns AS SELECT unnest(?::VARCHAR[]) AS t", [names])
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _unit_town AS
        SELECT m.unit, min(t.t) AS t FROM (SELECT DISTINCT unit FROM {table}
            WHERE unit IS NOT NULL AND township IS NULL AND id IS NULL) m
        JOIN _towns t ON contains(m.unit, t.t)
        -- a name inside a longer matching name (城关 in 城关镇) is the same township
        WHERE NOT EXISTS (SELECT 1 FROM _towns u WHERE contains(m.unit, u.t)
            AND length(u.t) > length(t.t) AND contains(u.t, t.t))
        GROUP BY m.unit HAVING count(*) = 1"""
    )
    n = con.execute(
        f"""SELECT count(*) FROM {table} m JOIN _unit_town USING (unit)
        WHERE m.township IS NULL AND m.id IS NULL"""
    ).fetchall()[0][0]
    con.execute(
        f"""UPDATE {table} SET township = u.t FROM _unit_town u
        WHERE {table}.unit = u.unit AND {table}.township IS NULL AND {table}.id IS NULL"""
    )
    con.execute("DROP TABLE _unit_town")
    con.execute("DROP TABLE _towns")
    return int(n)
