"""The ID index kept with the mentions it is computed from: per valid ID its name, village and
whether it is registered (``identity_id_node``), and the owners of accounts
(``identity_acct_owner``, ``identity_acct_name_owner``, :mod:`~crossmatch.identity.accounts`).

Each row is a function of the mentions of one ID (or one account) alone, so when only some
file versions changed, :func:`update` recomputes the rows of the IDs and accounts those
versions' mentions (old and new) carry, and keeps the others as they are: the tables equal the
ones :func:`build` makes from every mention. :func:`build_mentions
<crossmatch.identity.mentions.build_mentions>` calls them in the same transaction as it writes
``person_mention``, so the two never disagree; the exact stage reads them
(:func:`~crossmatch.identity.exact.build_id_index`).
"""

from __future__ import annotations

import duckdb

from crossmatch.identity import accounts

TABLES = ("identity_id_node", "identity_acct_owner", "identity_acct_name_owner")


def id_node_sql(where: str = "") -> str:
    """One row per valid ID of ``person_mention`` (restricted by ``where``, a condition on
    ``m``): registry IDs take the registry's name and village (first row by file and row);
    IDs outside the registry the most frequent name and village over their mentions, a tie to
    the smallest (mode() would break it by scan order: two runs over the same files could name
    the ID differently)."""
    cond = f"AND {where}" if where else ""
    return f"""WITH reg AS (
            SELECT id, arg_min(name, (file, row)) AS name,
                arg_min(village_code, (file, row)) AS village_code
            FROM person_mention m WHERE id IS NOT NULL AND source = 'hukou' {cond} GROUP BY id),
        o AS (SELECT id, name, village_code FROM person_mention m
              WHERE id IS NOT NULL AND source <> 'hukou' {cond}
                AND NOT EXISTS (SELECT 1 FROM reg WHERE reg.id = m.id)),
        onm AS (SELECT id, first(name ORDER BY c DESC, name) AS name FROM (
                    SELECT id, name, count(*) AS c FROM o WHERE name IS NOT NULL
                    GROUP BY id, name) GROUP BY id),
        ovl AS (SELECT id, first(village_code ORDER BY c DESC, village_code) AS village_code
                FROM (SELECT id, village_code, count(*) AS c FROM o
                      WHERE village_code IS NOT NULL GROUP BY id, village_code) GROUP BY id)
        SELECT id, name, village_code, true AS in_registry FROM reg
        UNION ALL
        SELECT i.id, onm.name, ovl.village_code, false AS in_registry
        FROM (SELECT DISTINCT id FROM o) i LEFT JOIN onm USING (id) LEFT JOIN ovl USING (id)"""


def acct_owner_sql(where: str = "") -> str:
    """account -> owner, where the owner is unambiguous among ID-bearing mentions."""
    cond = f"AND {where}" if where else ""
    return f"""SELECT account, min(id) AS owner FROM person_mention m
        WHERE account IS NOT NULL AND id IS NOT NULL {cond}
        GROUP BY account HAVING count(DISTINCT id) = 1"""


def acct_name_owner_sql(where: str = "") -> str:
    """(account, name) -> owner: a shared account's owner of the same name."""
    if not where:
        return accounts.name_owner_sql()
    return accounts.name_owner_sql(f"(SELECT * FROM person_mention m WHERE {where})")


def build(con: duckdb.DuckDBPyConnection) -> None:
    """The three tables from every mention."""
    con.execute(f"CREATE OR REPLACE TABLE identity_id_node AS {id_node_sql()}")
    con.execute(f"CREATE OR REPLACE TABLE identity_acct_owner AS {acct_owner_sql()}")
    con.execute(f"CREATE OR REPLACE TABLE identity_acct_name_owner AS {acct_name_owner_sql()}")


def update(con: duckdb.DuckDBPyConnection, changed: str) -> None:
    """Recompute the rows of the IDs and accounts in table ``changed`` (columns ``id``,
    ``account``: those of the mentions added and dropped), from ``person_mention`` as it is
    now. Call inside the transaction that changed ``person_mention``."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _chg_id AS SELECT DISTINCT id FROM {changed} "
        "WHERE id IS NOT NULL"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _chg_acct AS SELECT DISTINCT account FROM {changed} "
        "WHERE account IS NOT NULL"
    )
    by_id = "m.id IN (SELECT id FROM _chg_id)"
    by_acct = "m.account IN (SELECT account FROM _chg_acct)"
    owners = """SELECT owner FROM identity_acct_owner
            WHERE account IN (SELECT account FROM _chg_acct)
        UNION SELECT owner FROM identity_acct_name_owner
            WHERE account IN (SELECT account FROM _chg_acct)"""
    # the IDs whose person-index row may change (fuzzy_model._build_index): the changed IDs
    # and the owners of the changed accounts, before and after
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _idx_changed AS SELECT id FROM _chg_id UNION {owners}"
    )
    # the changed accounts' owners before, to tell the accounts whose owner moved
    # (``_acct_moved``: identity.incremental re-decides the ID-less rows paid into them)
    moved = """SELECT account, NULL::VARCHAR AS name, owner FROM identity_acct_owner
            WHERE account IN (SELECT account FROM _chg_acct)
        UNION ALL SELECT account, name, owner FROM identity_acct_name_owner
            WHERE account IN (SELECT account FROM _chg_acct)"""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _acct_before AS {moved}")
    con.execute("DELETE FROM identity_id_node WHERE id IN (SELECT id FROM _chg_id)")
    con.execute(f"INSERT INTO identity_id_node {id_node_sql(by_id)}")
    con.execute("DELETE FROM identity_acct_owner WHERE account IN (SELECT account FROM _chg_acct)")
    con.execute(f"INSERT INTO identity_acct_owner {acct_owner_sql(by_acct)}")
    con.execute(
        "DELETE FROM identity_acct_name_owner WHERE account IN (SELECT account FROM _chg_acct)"
    )
    con.execute(f"INSERT INTO identity_acct_name_owner {acct_name_owner_sql(by_acct)}")
    con.execute(f"INSERT INTO _idx_changed {owners}")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _acct_moved AS SELECT DISTINCT account FROM (
            (FROM _acct_before EXCEPT ALL ({moved}))
            UNION ALL (({moved}) EXCEPT ALL FROM _acct_before))"""
    )
    con.execute("DROP TABLE _acct_before")
    con.execute("DROP TABLE _chg_id")
    con.execute("DROP TABLE _chg_acct")
