"""Incremental resolution: which mentions are new or changed since the last run, whether
the model may be reused (signature), and the previous run's persons and ids.

What changed is told row by row, not file by file. A file exported again (a quarter's
payments with 2 % more rows) is a new file version, but most of its rows are rows the gone
version had. :func:`~crossmatch.identity.mentions.build_mentions` stores a digest of every
source row's content (``identity_row_digest``: every column but where the row is: file, file
hash, row number, and which row a duplicate repeats) and matches the new version's rows with
the gone version's, one to one per digest (``mentions._rows_changed``). Why that is safe:

1. A matched row has the content the gone row had (up to a collision of the 64-bit digest
   among the rows of one file: for 10^5 changed rows against 10^6 kept ones, about 10^-8),
   so the mentions built from it are the gone row's to the last column but ``row`` and
   ``file_hash``, and so is every column of the ``src_*`` row that evidence reads (role
   profile, areas, listings, household co-mentions, deaths), and so are its co-mentions
   (the other roles of the same row).
2. Everything a decision reads is a function of mentions and rows *by content*: a person-
   index row of its ID's mentions (and death rows), account owners of the ID-bearing
   mentions of the account, a candidate's role profile, listings, areas and co-mentions of
   its mentions' rows, a node of its mention's attributes, a block of the nodes' keys. What
   is keyed by the row number instead: a ``P`` id (the hash of the person's first mention
   key), an unresolved mention's own id, and the mention keys judgements and previous ids are
   stored under.
3. Hence an ID none of whose mentions is on an unmatched row (new, changed or removed) has
   the same evidence tonight as on the night its links were decided, and so has an account
   none of whose mentions is; a matched row's ID-less mention is no new node to any block.
   The reach (:func:`_reopen`) starts from the unmatched rows only: their fuzzy-path
   mentions (new and removed ones) as seeds, their IDs and accounts, and the person-index
   rows that differ (compared row by row, so an ID whose index row came out the same seeds
   nothing).
4. A row matched under the *same* row number is, for resolving, a row of a file version that
   did not change: its link moves to the new version (``mentions._carry_links``, in the
   transaction that replaces the mentions) and is kept, like any kept link, unless the
   reach re-decides it. A row matched under *another* number is resolved again (the keys
   of 2. differ), as a new mention, but is no seed.

5. What a link is decided from beyond its own evidence, county-wide, is computed over the
   whole county as a full run does, not over what the night touched:
   * a name-only staff mention (handler, approver) is linked by the role's profile learned
     from *every* staff mention's first-pass link (:func:`~crossmatch.identity.exact.
     link_handlers`), so the links are decided for all of them each night and a kept one
     that tonight's decision differs from is re-decided (:func:`reopen_handlers`, a seed of
     the reach). Learned from the night's mentions alone, the 229 re-decided approver rows
     of 李伟 (two staff of that name in the township) found no approver link to learn from
     and became an ID-less person where a full rebuild links them to the payroll's approver;
   * term frequencies (the name's weight) are counted over the nodes a full run has (the
     person index and the groups of every fuzzy-path mention, ``scoring._tf_population``),
     not over the run's own nodes (tonight's groups and the kept persons' nodes: another
     partition of the same mentions). Every link decided tonight then has, to the last bit,
     the probability a full run on the same weights gives it.

What still differs from a rebuild (see docs/nights.md, "Kept links and a rebuild's
probabilities"): a kept link keeps the probability of the night it was decided on, while a
full run recounts every name's frequency (a new node of any name changes every name's share):
on the sample, 1,892 kept links differ from ``resolve --full`` on the same weights, by at most
0.00023. Recomputing them is not a rescaling: a probability is a candidate posterior over
every candidate of the node, after penalties some of which depend on the pair's weight
(listings, areas, a dead candidate), so it means scoring the node again. A fresh warehouse
differs more: it trains the weights anew on tonight's files (``identity_params`` are trained
once and reused by design), which moves every fuzzy probability (the sample's m and u move in
the third or fourth digit); persons, links and methods are equal either way.
"""

from __future__ import annotations

import hashlib
import logging

import duckdb
import pandas as pd

from crossmatch import warehouse
from crossmatch.identity.fuzzy_model import _KEYS, _candidate_id, _node_frame
from crossmatch.identity.household import KIN_ROLES
from crossmatch.identity.linker import LinkageConfig
from crossmatch.identity.mentions import _columns, _store, _tables
from crossmatch.identity.roles import RoleRef
from crossmatch.identity.summary import ResolveSummary
from crossmatch.warehouse import fetch_one

log = logging.getLogger(__name__)

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


def snapshot_index(con: duckdb.DuckDBPyConnection, mentions_kept: bool) -> None:
    """``_idx_old``: the stored person index's rows of the IDs whose row may change tonight
    (``_idx_changed``), before :func:`~crossmatch.identity.fuzzy_model._build_index` updates
    them: :func:`_reopen` compares them with tonight's to find the persons whose evidence
    changed. Absent when there is no stored index or no record of what changed."""
    con.execute("DROP TABLE IF EXISTS _idx_old")
    tables = _tables(con)
    if "identity_idx" in tables and mentions_kept:
        con.execute(
            "CREATE TEMP TABLE _idx_old AS SELECT * FROM identity_idx "
            "WHERE idc IN (SELECT id FROM _idx_changed)"
        )


def _temp_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]).fetchall()[
            0
        ][0]
    )


#: what a mention's node is made of on the fuzzy path (``clustering._fuzzy_pool``): its name,
#: its ID candidate (an ID that conflicted with its name is none), village and account key
_NODE_ATTRS = """m.name, CASE WHEN m.id IS NULL THEN m.id_raw END AS id_raw, m.village_code,
    coalesce(o.owner, an.owner, CASE WHEN m.account IS NOT NULL THEN 'A:' || m.account END)
        AS acct"""
_NODE_JOINS = """LEFT JOIN _acct_owner o ON o.account = m.account
    LEFT JOIN _acct_name_owner an ON an.account = m.account AND an.name = m.name"""


def _reopen(con: duckdb.DuckDBPyConnection, config: LinkageConfig, mentions_kept: bool) -> int:
    """Re-decide tonight the kept links that tonight's change can reach: move them from
    ``_kept`` to ``_new`` (and into ``_reopen``, whose links publishing replaces). Returns
    how many.

    Why: a mention without an ID is decided among its candidates (the persons and other
    ID-less mentions that share a blocking key with it) on their evidence (name, village,
    account, death, ID). A file version that did not change keeps its mentions, but a kept
    ``unresolved`` or ``fuzzy`` decision is only as good as the candidates it was made among:
    a new file can bring the evidence that picks one of two namesakes (an ID-bearing row with
    the mention's account), a new rival (a second registered namesake in its village), or
    ID-less mentions of the same person. A full run sees all of that; so must tonight's.

    Reached, and so re-decided (every mention with the same node attributes together, since
    such mentions are one node of the fuzzy path):
    * kept fuzzy / unresolved mentions sharing a blocking key of the configuration with a
      *seed*: a mention of a new, changed or removed row (not a row a re-exported file has
      as before, ``_row_same``: see the module docstring) that goes to the fuzzy path (no
      ID, or an ID under another name), or a person-index row that changed (old and new: a
      new ID, a name, village, account, registry status or death that changed, an ID gone);
    * those linked to an ID with a mention on a new, changed or removed row (``_row_chg_id``:
      its evidence changed: beyond its person-index row, its role profile, listings, areas
      and household co-mentions come from its mentions; at 300,000 persons leaving this out
      left 姚芳's two ID-less payments unresolved where a full run links them);
    * those paid into an account whose owner changed (``_acct_moved``, id_index.update) or
      that such a row names (``_row_chg_acct``).
    Exact links (by a valid ID) and judgements stay kept. Without a record of the IDs that
    changed (the mentions were built again), every kept fuzzy / unresolved link is reopened.

    Cost: the kept ID-less nodes and the seeds get their blocking keys (the same Python as
    ``_previous_persons``) and are joined per blocking rule in DuckDB; only what is reached
    is scored again.
    """
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _ro_k AS
        SELECT k.source, k.file, k.row, k.role, k.file_hash, k.person_id, m.account,
            {_NODE_ATTRS}
        FROM _kept k JOIN person_mention m USING (source, file, row, role)
        {_NODE_JOINS}
        WHERE k.method IN ('fuzzy', 'unresolved') AND m.name IS NOT NULL"""
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _reopen (source VARCHAR, file VARCHAR, row INTEGER, "
        "role VARCHAR, file_hash VARCHAR)"
    )
    if not mentions_kept:
        # (``_idx_changed`` and ``_pm_gone`` are this run's only when the mentions were kept)
        con.execute("INSERT INTO _reopen SELECT source, file, row, role, file_hash FROM _ro_k")
    else:
        _reached(con, config)
    n = int(con.execute("SELECT count(*) FROM _reopen").fetchall()[0][0])
    if n:
        con.execute(
            "DELETE FROM _kept k WHERE EXISTS (SELECT 1 FROM _reopen r WHERE "
            "r.source = k.source AND r.file = k.file AND r.row = k.row "
            "AND r.role = k.role)"
        )
        con.execute("INSERT INTO _new SELECT source, file, row, role FROM _reopen")
    if _temp_exists(con, "_reopen_h"):
        # the staff mentions :func:`reopen_handlers` moved already (seeds of the reach above)
        con.execute("INSERT INTO _reopen SELECT * FROM _reopen_h")
        n += fetch_one(con, "SELECT count(*) FROM _reopen_h")[0]
        con.execute("DROP TABLE _reopen_h")
    if n:
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _kept_conflict AS
            SELECT c.* FROM identity_conflict c SEMI JOIN _kept USING (source, file, row, role)"""
        )
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _kept_expl AS
            SELECT e.* FROM identity_explanation e SEMI JOIN _kept USING (node_id)"""
        )
    for t in ("_ro_k", "_ro_kn", "_ro_seed", "_ro_hit"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    return n


def reopen_handlers(con: duckdb.DuckDBPyConnection, decisions: str) -> int:
    """Re-decide tonight the kept links of name-only staff mentions (handlers, approvers)
    whose link tonight's staff decision differs from: move them from ``_kept`` to ``_new``
    (and into ``_reopen_h``, which :func:`_reopen` adds to ``_reopen``). Returns how many.

    ``decisions`` (source, file, row, role, id, probability): tonight's link of every name-only
    staff mention of the county (:func:`~crossmatch.identity.exact.link_handlers`). Why not
    only the new ones: such a link depends on the county's staff (payroll rows, registry
    names) and on the profile of the role learned from every other staff mention's link, so a
    new payroll row, a re-decided handler or another file's approvers can change the link of
    a mention whose own row did not change, and a full rebuild decides every one of them
    afresh. Compared: a kept handler link is a ``fuzzy`` link to node ``I:<id>`` with the
    decision's probability; a kept mention with a decision it does not have, or a kept
    handler link without a decision tonight (the mention goes to the fuzzy path), differs.
    Such mentions enter or leave the fuzzy path, so they are seeds of the reach like any
    new mention (they are in ``_new`` when :func:`_reached` runs)."""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _reopen_h AS
        SELECT k.source, k.file, k.row, k.role, k.file_hash FROM _kept k
        JOIN person_mention m USING (source, file, row, role)
        LEFT JOIN {decisions} d USING (source, file, row, role)
        WHERE m.id IS NULL AND m.id_raw IS NULL AND m.township IS NOT NULL
            AND m.name IS NOT NULL
            AND CASE WHEN d.id IS NOT NULL
                THEN NOT (k.method = 'fuzzy' AND k.node_id IS NOT DISTINCT FROM 'I:' || d.id
                          AND k.probability IS NOT DISTINCT FROM d.probability)
                ELSE k.method = 'fuzzy' AND k.node_id LIKE 'I:%' END"""
    )
    n = int(fetch_one(con, "SELECT count(*) FROM _reopen_h")[0])
    if n:
        con.execute(
            "DELETE FROM _kept k WHERE EXISTS (SELECT 1 FROM _reopen_h r WHERE "
            "r.source = k.source AND r.file = k.file AND r.row = k.row AND r.role = k.role)"
        )
        con.execute("INSERT INTO _new SELECT source, file, row, role FROM _reopen_h")
    log.info("staff links: %d kept links re-decided (tonight's staff decision differs)", n)
    return n


def _reached(con: duckdb.DuckDBPyConnection, config: LinkageConfig) -> None:
    """Fill ``_reopen`` with the kept links of ``_ro_k`` the change reaches (see _reopen)."""
    keys = list(dict.fromkeys(c for cols, _cap in config.rules() for c in cols))
    keys = [k for k in keys if k in _KEYS]
    # the kept nodes and the new fuzzy-path nodes, one row per distinct attribute set
    kept = con.execute("SELECT DISTINCT name, id_raw, village_code, acct FROM _ro_k").df()
    # (a row of a new file version that the gone version had too, the same content under
    # any row number, ``_row_same``, brings nothing new: a seed is a new or changed row's
    # mention, or a removed or changed row's, ``_row_gone``)
    fuzzy_path = "m.name IS NOT NULL AND (m.id IS NULL OR n.name IS DISTINCT FROM m.name)"
    new = con.execute(
        f"""SELECT DISTINCT * FROM (
            SELECT {_NODE_ATTRS} FROM person_mention m
            SEMI JOIN _new USING (source, file, row, role)
            ANTI JOIN _row_same s USING (source, file, row)
            LEFT JOIN _id_node n ON n.id = m.id
            {_NODE_JOINS}
            WHERE {fuzzy_path}
            UNION ALL
            SELECT {_NODE_ATTRS} FROM _row_gone m
            LEFT JOIN _id_node n ON n.id = m.id
            {_NODE_JOINS}
            WHERE {fuzzy_path})"""
    ).df()

    def frame(df: pd.DataFrame) -> pd.DataFrame:
        df = df.assign(idc=_candidate_id(df["id_raw"]) if len(df) else None)
        for c in ("reg_id", "ext_id", "prev_pid", "conflict_id"):
            df[c] = None
        return _node_frame(df)

    if kept.empty:
        return
    kn = frame(kept)
    kn["kk"] = range(len(kn))
    cols = ["kk", "name", "id_raw", "village_code", "acct", *[k for k in keys if k != "name"]]
    # (pandas may type an all-None column as float: cast every key to text)
    _store_text(con, "_ro_kn", kn[cols], keep="kk")
    seeds = [frame(new)[keys]] if len(new) else []
    sel = ", ".join(f"CAST({k} AS VARCHAR) AS {k}" for k in keys)
    changed_rows = con.execute(
        f"""SELECT {sel} FROM (
            (SELECT * EXCLUDE (node) FROM _idx WHERE idc IN (SELECT id FROM _idx_changed)
             EXCEPT SELECT * FROM _idx_old)
            UNION ALL
            (SELECT * FROM _idx_old EXCEPT
             SELECT * EXCLUDE (node) FROM _idx WHERE idc IN (SELECT id FROM _idx_changed)))"""
        if _temp_exists(con, "_idx_old")
        else f"SELECT {sel} FROM _idx WHERE idc IN (SELECT id FROM _idx_changed)"
    ).df()
    seeds.append(changed_rows[keys])
    seed = pd.concat(seeds, ignore_index=True)[keys]
    _store_text(con, "_ro_seed", seed)
    _block_hits(con, config, keys, "_ro_hit")
    n_block = fetch_one(con, "SELECT count(*) FROM _ro_hit")[0]
    # the kept mentions of the IDs whose evidence changed (a mention of theirs on a row new,
    # changed or gone), and of the accounts that moved or that such a row names
    con.execute(
        """INSERT INTO _ro_hit SELECT DISTINCT n.kk FROM _ro_kn n SEMI JOIN (
            SELECT name, id_raw, village_code, acct FROM _ro_k
            WHERE person_id IN (SELECT id FROM _row_chg_id)
                OR account IN (SELECT account FROM _acct_moved)
                OR account IN (SELECT account FROM _row_chg_acct)) a
            ON a.name = n.name AND a.id_raw IS NOT DISTINCT FROM n.id_raw
            AND a.village_code IS NOT DISTINCT FROM n.village_code
            AND a.acct IS NOT DISTINCT FROM n.acct
        WHERE n.kk NOT IN (SELECT kk FROM _ro_hit)"""
    )
    n_direct = fetch_one(con, "SELECT count(*) FROM _ro_hit")[0]
    # and, in turn, the kept co-mentions of a node re-decided (the other persons of its row,
    # the other rows of its assistance case): a full run weighs a candidate by the relatives
    # of the co-mentions as it links them (household.support), and reads only the co-mentions
    # it decides; a kept one would give no support where a full run's gives some
    con.execute("CREATE OR REPLACE TEMP TABLE _ro_front AS SELECT kk FROM _ro_hit")
    case = (
        """UNION SELECT b._file AS file, b._row AS row FROM src_assistance a
            JOIN src_assistance b ON a.case_no = b.case_no
            WHERE a.case_no IS NOT NULL
                AND (a._file, a._row) IN (SELECT file, row FROM _ro_rows
                                          WHERE source = 'assistance')"""
        if "case_no" in _columns(con, "src_assistance")
        else ""
    )
    for _ in range(_MAX_ROUNDS):
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _ro_rows AS SELECT DISTINCT k.source, k.file, k.row
            FROM _ro_k k JOIN _ro_kn n ON n.name = k.name
                AND n.id_raw IS NOT DISTINCT FROM k.id_raw
                AND n.village_code IS NOT DISTINCT FROM k.village_code
                AND n.acct IS NOT DISTINCT FROM k.acct
            SEMI JOIN _ro_front f ON f.kk = n.kk
            WHERE k.source IN ({_KIN_SOURCES})"""
        )
        if case:
            con.execute(
                "INSERT INTO _ro_rows SELECT DISTINCT 'assistance', file, row FROM ("
                + case[len("UNION ") :]
                + ")"
            )
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _ro_front AS SELECT DISTINCT n.kk
            FROM _ro_k k SEMI JOIN _ro_rows r USING (source, file, row)
            JOIN _ro_kn n ON n.name = k.name AND n.id_raw IS NOT DISTINCT FROM k.id_raw
                AND n.village_code IS NOT DISTINCT FROM k.village_code
                AND n.acct IS NOT DISTINCT FROM k.acct
            WHERE n.kk NOT IN (SELECT kk FROM _ro_hit)"""
        )
        if not fetch_one(con, "SELECT count(*) FROM _ro_front")[0]:
            break
        con.execute("INSERT INTO _ro_hit SELECT kk FROM _ro_front")
    for t in ("_ro_front", "_ro_rows"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    log.info(
        "reach: %d seeds; kept nodes reached: %d by a seed's block, %d more by a changed ID or "
        "account, %d more as co-mentions (of %d kept ID-less nodes)",
        len(seed), n_block, n_direct - n_block,
        fetch_one(con, "SELECT count(*) FROM _ro_hit")[0] - n_direct, len(kn),
    )  # fmt: skip
    # every kept mention of a reached node attribute set (one node of the fuzzy path)
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _ro_attr AS
        SELECT name, id_raw, village_code, acct FROM _ro_kn SEMI JOIN _ro_hit USING (kk)"""
    )
    con.execute(
        """INSERT INTO _reopen SELECT k.source, k.file, k.row, k.role, k.file_hash
        FROM _ro_k k SEMI JOIN _ro_attr a ON a.name = k.name
            AND a.id_raw IS NOT DISTINCT FROM k.id_raw
            AND a.village_code IS NOT DISTINCT FROM k.village_code
            AND a.acct IS NOT DISTINCT FROM k.acct"""
    )
    con.execute("DROP TABLE _ro_attr")


#: rounds of "a kept co-mention of a re-decided node is re-decided too"
_MAX_ROUNDS = 5
#: sources whose co-mentions are evidence (household.KIN_ROLES)
_KIN_SOURCES = ", ".join(f"'{s}'" for s in sorted(KIN_ROLES))


def _block_hits(
    con: duckdb.DuckDBPyConnection, config: LinkageConfig, keys: list[str], out: str
) -> None:
    """``out`` (kk): the kept nodes of ``_ro_kn`` that share a block of the configuration's
    blocking rules with a node of ``_ro_seed``."""
    hits = []
    for rule, cap in config.rules():
        rc = [c for c in rule if c in keys]
        if len(rc) != len(rule):
            continue
        on = " AND ".join(f"k.{c} = s.{c}" for c in rc)
        kc = ", ".join(f"k.{c}" for c in rc)
        cl = ", ".join(rc)
        xon = " AND ".join(f"CAST(x.{c} AS VARCHAR) = b.{c}" for c in rc)
        # a block the person index alone fills beyond the rule's cap gives no pairs in any run
        # (a full run counts the ID-less nodes too: so it skips at least these)
        hits.append(
            f"""SELECT h.kk FROM (SELECT DISTINCT k.kk, {kc} FROM _ro_kn k JOIN _ro_seed s
                ON {on}) h
            SEMI JOIN (SELECT b.* FROM (SELECT DISTINCT {kc} FROM _ro_kn k JOIN _ro_seed s
                    ON {on}) b LEFT JOIN _idx x ON {xon}
                GROUP BY ALL HAVING count(x.node) <= {int(cap)}) ok USING ({cl})"""
        )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {out} AS SELECT DISTINCT kk FROM ("
        + " UNION ALL ".join(hits)
        + ")"
    )


def _store_text(
    con: duckdb.DuckDBPyConnection, name: str, df: pd.DataFrame, keep: str | None = None
) -> None:
    """``df`` as temp table ``name``, every column but ``keep`` as VARCHAR (an all-missing
    column would otherwise be stored as a number; the blocking joins compare text)."""
    _store(con, name + "_0", df, temp=True)
    cols = ", ".join(c if c == keep else f"CAST({c} AS VARCHAR) AS {c}" for c in df.columns)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {cols} FROM {name}_0")
    con.execute(f"DROP TABLE {name}_0")


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
