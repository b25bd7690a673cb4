"""Incremental resolution: which mentions are new or changed since the last run, whether
the model may be reused (signature), and the previous run's persons and ids.
"""

from __future__ import annotations

import hashlib

import duckdb
import pandas as pd

from crossmatch import warehouse
from crossmatch.identity.fuzzy_model import _candidate_id
from crossmatch.identity.linker import LinkageConfig
from crossmatch.identity.mentions import _columns, _tables
from crossmatch.identity.roles import RoleRef
from crossmatch.identity.summary import ResolveSummary
from crossmatch.warehouse import fetch_one

#: Bumped whenever what resolve publishes for the same inputs changes (a run of an older
#: version is then neither "unchanged" nor extended incrementally: it is recomputed).
#: 2: deterministic picks of names, villages and previous ids (no mode()/any_value()).
#: 3: support for a candidate whose death dates a death record, whose township its place names;
#:    a shareholder without an ID linked to the same-named legal representative of its company.
#: 4: ID-less rows of a file that lists each person once are not grouped (and cannot be one
#:    person); a land contract's area against the farmland subsidy's; a candidate listed
#:    already in such a file is weighed down (identity.areas, identity.listed).
#: 5: a role profile's age limit that the role's own ID-bearing rows break costs what they
#:    measure (role_profile.measured_limits), not HARD / SOFT; a row's known person is a
#:    candidate of its other role's ID-less mention where the county's rows show the two
#:    roles to be one person at times (an applicant listed as his own member, 本人).
#: 6: an ID-less row paid into an account no ID-bearing row carries no longer counts against
#:    every candidate holding another account; the county's measured weights instead
#:    (accounts.edge_penalty).
IDENTITY_VERSION = "6"


def _signature(con: duckdb.DuckDBPyConnection, config: LinkageConfig, roles: list[RoleRef]) -> str:
    """What must not change for an incremental run to be valid: config, roles, judgements."""
    j = sorted(
        map(
            repr,
            con.execute(
                "SELECT a_source, a_file, a_row, a_role, b_source, b_file, b_row, b_role, same, "
                "merge_ids FROM identity_judgement"
            ).fetchall(),
        )
    )
    text = repr((IDENTITY_VERSION, config, sorted(map(repr, roles)), j))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _can_increment(con: duckdb.DuckDBPyConnection, sig: str) -> bool:
    tables = _tables(con)
    if not {"identity_link", "identity_run", "identity_params"} <= tables:
        return False
    if not {"file_hash", "node_id"} <= _columns(con, "identity_link"):
        return False
    row = con.execute(
        "SELECT signature FROM identity_run ORDER BY run_at DESC, rowid DESC LIMIT 1"
    ).fetchone()
    return bool(row and row[0] == sig)


def _unchanged(
    con: duckdb.DuckDBPyConnection, config: LinkageConfig, roles: list[RoleRef], s: ResolveSummary
) -> bool:
    """True (and ``s`` filled from the published tables) when the last run was computed from
    exactly the file versions in the warehouse now, with this configuration, roles and
    judgements: resolving again would give the same tables, so nothing is done."""
    fp = warehouse.ingest_fingerprint(con)
    st = warehouse.stage_state(con, "resolve")
    if not fp or st is None or st[0] != fp:
        return False
    tables = _tables(con)
    if not {"identity_link", "identity_run", "person", "person_mention"} <= tables:
        return False
    row = con.execute(
        "SELECT signature FROM identity_run ORDER BY run_at DESC, rowid DESC LIMIT 1"
    ).fetchone()
    if not row or row[0] != _signature(con, config, roles):
        return False
    counts = dict(
        con.execute("SELECT method, count(*) FROM identity_link GROUP BY method").fetchall()
    )
    s.mode = "unchanged"
    s.mentions = sum(counts.values())
    s.exact = counts.get("exact", 0) + counts.get("upgraded15", 0)
    s.fuzzy = counts.get("fuzzy", 0)
    s.judgement = counts.get("judgement", 0)
    s.unresolved = counts.get("unresolved", 0)
    s.persons = fetch_one(con, "SELECT count(*) FROM person")[0]
    s.conflicts = (
        fetch_one(con, "SELECT count(*) FROM identity_conflict")[0]
        if "identity_conflict" in tables
        else 0
    )
    return True


def _split_new(con: duckdb.DuckDBPyConnection, incremental: bool) -> None:
    """``_kept``: previous links of mentions whose (source, file, file hash, row, role) were
    resolved before (they keep their link); ``_new``: every other mention (resolved now)."""
    if incremental:
        # a file version whose links and mentions are the same rows (count and a hash of
        # their keys) keeps every link without a row-by-row join of millions of rows; the
        # others (new versions, or links and mentions that disagree) are joined row by row
        per = """SELECT source, file, file_hash, count(*) AS n, sum(hash(row, role)) AS h
            FROM {} WHERE file_hash IS NOT NULL GROUP BY ALL"""
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _kv AS SELECT source, file, file_hash
            FROM ({per.format("identity_link")}) l
            JOIN ({per.format("person_mention")}) m USING (source, file, file_hash, n, h)"""
        )
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _kept AS
            SELECT l.* FROM identity_link l SEMI JOIN _kv USING (source, file, file_hash)
            UNION ALL
            SELECT l.* FROM (FROM identity_link ANTI JOIN _kv USING (source, file, file_hash)) l
            JOIN (SELECT source, file, row, role, file_hash FROM person_mention
                  ANTI JOIN _kv USING (source, file, file_hash)) m
              ON l.source = m.source AND l.file = m.file AND l.row = m.row AND l.role = m.role
             AND l.file_hash = m.file_hash"""
        )
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _kept_conflict AS
            SELECT c.* FROM identity_conflict c SEMI JOIN _kept USING (source, file, row, role)"""
        )
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _kept_expl AS
            SELECT e.* FROM identity_explanation e SEMI JOIN _kept USING (node_id)"""
        )
    else:
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _kept AS SELECT source, file, row, role, file_hash,
                NULL::VARCHAR AS person_id, NULL::VARCHAR AS method, NULL::DOUBLE AS probability,
                NULL::VARCHAR AS cluster_id, NULL::VARCHAR AS node_id
            FROM person_mention LIMIT 0"""
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _kv (source VARCHAR, file VARCHAR, file_hash VARCHAR)"
        )
    # (every mention of a version in _kv has its link in _kept)
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _new AS SELECT source, file, row, role
        FROM person_mention m ANTI JOIN _kept USING (source, file, row, role)
        WHERE NOT EXISTS (SELECT 1 FROM _kv v WHERE v.source = m.source
            AND v.file = m.file AND v.file_hash = m.file_hash)"""
    )


def _previous_persons(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Index nodes for the kept mentions that were linked without an ID (fuzzy, judgement,
    unresolved), one per distinct attribute set, anchored to the person they were linked to.

    Why: tonight's new mentions must be able to reach a person through the evidence earlier
    nights used (a name-only shareholder reached its ID through an ID-less payment with the
    same name and account), and to join a person that has no ID at all (``P`` ids). The anchor
    goes in the exclusive column of its kind, so a kept node and its ID node agree.
    """
    df = con.execute(
        """SELECT k.person_id, m.name, m.id_raw, m.village_code,
            coalesce(o.owner, CASE WHEN m.account IS NOT NULL THEN 'A:' || m.account END) AS acct,
            bool_or(n.in_registry) AS in_registry
        FROM _kept k JOIN person_mention m USING (source, file, row, role)
        LEFT JOIN _acct_owner o ON o.account = m.account
        LEFT JOIN _id_node n ON n.id = k.person_id
        WHERE k.method IN ('fuzzy', 'judgement', 'unresolved') AND m.name IS NOT NULL
        GROUP BY k.person_id, m.name, m.id_raw, m.village_code, 5"""
    ).df()
    df["idc"] = _candidate_id(df["id_raw"])
    reg = df["in_registry"].fillna(False).astype(bool)
    known = df["in_registry"].notna()
    df["reg_id"] = df["person_id"].where(known & reg)
    df["ext_id"] = df["person_id"].where(known & ~reg)
    df["prev_pid"] = df["person_id"].where(~known)
    df["kept_key"] = (
        df["person_id"] + "|" + df.index.astype(str)
    )  # node id suffix; only needs to be unique within the run
    return df.drop(columns=["id_raw", "in_registry", "person_id"])


def _previous_pids(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """mention key -> P id from the previous run (before identity_link is replaced)."""
    tables = _tables(con)
    if "identity_link" not in tables:
        return {}
    rows = con.execute(
        "SELECT source || '|' || file || '|' || CAST(row AS VARCHAR) || '|' || role, person_id "
        "FROM identity_link WHERE person_id LIKE 'P%'"
    ).fetchall()
    return dict(rows)
