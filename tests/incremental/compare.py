"""Compare the results of two warehouses: the latest finished detect run's hits (every column
but the run id), the persons, identity links and kinship. Used by the tests and the night
benchmark to prove an incremental night equals a full rebuild."""

from __future__ import annotations

from pathlib import Path

import duckdb

#: table -> the query whose rows (as a multiset) must be equal
RESULTS = {
    "hit": """SELECT * EXCLUDE (run_id) FROM hit WHERE run_id = (SELECT run_id FROM detect_run
              WHERE status = 'finished' ORDER BY finished_at DESC LIMIT 1)""",
    "rule_run": """SELECT rule_id, rule_version, status, reason, hits, amount FROM rule_run
              WHERE run_id = (SELECT run_id FROM detect_run WHERE status = 'finished'
              ORDER BY finished_at DESC LIMIT 1)""",
    "person": "SELECT * FROM person",
    "identity_link": "SELECT * EXCLUDE (node_id) FROM identity_link",
    "kin_relative": "SELECT * FROM kin_relative",
}


#: every result, with the fuzzy-link probabilities quoted in hit evidence masked: a kept link
#: keeps the probability of the night it was scored on (see docs/nights.md); findings, amounts,
#: persons, links and kinship must be identical
EQUAL = {
    "hit": """SELECT * EXCLUDE (run_id, evidence), regexp_replace(evidence::VARCHAR,
              '"(link_)?probability":[0-9.eE+-]+', '"p"', 'g') AS evidence FROM hit
              WHERE run_id = (SELECT run_id FROM detect_run WHERE status = 'finished'
              ORDER BY finished_at DESC LIMIT 1)""",
    "rule_run": """SELECT rule_id, rule_version, status, reason, hits, amount FROM rule_run
              WHERE run_id = (SELECT run_id FROM detect_run WHERE status = 'finished'
              ORDER BY finished_at DESC LIMIT 1)""",
    "person": "SELECT * FROM person",
    "identity_link": "SELECT source, file, row, role, file_hash, person_id, method "
    "FROM identity_link",
    "kin_edge": "SELECT * FROM kin_edge",
    "kin_relative": "SELECT * FROM kin_relative",
}


def differences(a: Path, b: Path, tables: dict[str, str] | None = None) -> dict[str, str]:
    """table -> what differs ('' tables left out); empty when the results are equal."""
    con = duckdb.connect()
    out: dict[str, str] = {}
    try:
        con.execute(f"ATTACH '{a}' AS a (READ_ONLY)")
        con.execute(f"ATTACH '{b}' AS b (READ_ONLY)")
        for name, sql in (tables or RESULTS).items():
            con.execute("USE a")
            con.execute(f"CREATE OR REPLACE TEMP TABLE _qa AS {sql}")
            con.execute("USE b")
            con.execute(f"CREATE OR REPLACE TEMP TABLE _qb AS {sql}")
            con.execute("USE memory")
            only_a = con.execute("SELECT count(*) FROM (FROM _qa EXCEPT ALL FROM _qb)").fetchone()
            only_b = con.execute("SELECT count(*) FROM (FROM _qb EXCEPT ALL FROM _qa)").fetchone()
            na = con.execute("SELECT count(*) FROM _qa").fetchone()
            if (only_a and only_a[0]) or (only_b and only_b[0]):
                out[name] = f"{only_a[0]} rows only in A, {only_b[0]} only in B (A has {na[0]})"  # type: ignore[index]
    finally:
        con.close()
    return out


def examples(
    a: Path, b: Path, name: str, n: int = 5, tables: dict[str, str] | None = None
) -> dict[str, list[tuple]]:
    """A few rows of ``name`` only in A and only in B (for a failure message), compared by the
    same query as :func:`differences` (``tables``, default :data:`EQUAL`)."""
    sql = (tables or EQUAL)[name]
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{a}' AS a (READ_ONLY)")
        con.execute(f"ATTACH '{b}' AS b (READ_ONLY)")
        con.execute("USE a")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _qa AS {sql}")
        con.execute("USE b")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _qb AS {sql}")
        con.execute("USE memory")
        return {
            "only in A": con.execute(f"FROM (FROM _qa EXCEPT ALL FROM _qb) LIMIT {n}").fetchall(),
            "only in B": con.execute(f"FROM (FROM _qb EXCEPT ALL FROM _qa) LIMIT {n}").fetchall(),
        }
    finally:
        con.close()
