"""Stages 2-3 of identity resolution: exact links. A valid (or upgraded 15-digit) ID links
to that ID unless the name is incompatible (``identity_conflict``); handlers and approvers
link to payroll staff of their township where unique; a name without an ID links to the
registry household member of that name on the same row where unique.
"""

from __future__ import annotations

import hashlib

import duckdb
import numpy as np
import pandas as pd

from crossmatch.identity import household, id_index
from crossmatch.identity.comparisons import ChineseName
from crossmatch.identity.mentions import _columns, _store, _tables
from crossmatch.identity.names import name_keys


def build_id_index(con: duckdb.DuckDBPyConnection) -> None:
    """``_id_node``: one row per valid ID, its best name/village and whether it is registered;
    ``_acct_owner`` / ``_acct_name_owner``: the owners of accounts. From the tables
    :mod:`~crossmatch.identity.id_index` keeps with the mentions (built or updated with
    ``person_mention``), else computed here from every mention."""
    if id_index.TABLES[0] in _tables(con):
        node, owner, name_owner = (f"SELECT * FROM {t}" for t in id_index.TABLES)
    else:
        node = id_index.id_node_sql()
        owner = id_index.acct_owner_sql()
        name_owner = id_index.acct_name_owner_sql()
    con.execute(f"CREATE OR REPLACE TEMP TABLE _id_node AS {node}")
    # node number = position in ID order (the in-memory linker works on positions)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _id_node AS "
        "SELECT (row_number() OVER (ORDER BY id) - 1)::BIGINT AS node, * FROM _id_node"
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE _acct_owner AS {owner}")
    # a shared account: the owner of the same name (crossmatch.identity.accounts)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _acct_name_owner AS {name_owner}")


def find_conflicts(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Mentions whose valid ID belongs to a clearly different name (not a spelling variant)."""
    cand = con.execute(
        """SELECT m.source, m.file, m.row, m.role, m.id, m.name AS m_name, n.name AS n_name
        FROM person_mention m JOIN _id_node n USING (id)
        SEMI JOIN _new USING (source, file, row, role)
        WHERE m.name IS NOT NULL AND n.name IS NOT NULL AND m.name <> n.name"""
    ).df()
    if cand.empty:
        return cand.assign(kind=[], detail=[])
    lk = name_keys(cand["m_name"])
    rk = name_keys(cand["n_name"])
    left = pd.DataFrame({"name": cand["m_name"], "name_py": lk.name_py, "name_lapy": lk.name_lapy})
    right = pd.DataFrame({"name": cand["n_name"], "name_py": rk.name_py, "name_lapy": rk.name_lapy})
    lv = ChineseName("name").levels(left, right)
    out = cand[lv == 0].copy()
    out["kind"] = "name"
    out["detail"] = "ID " + out["id"] + " is registered to " + out["n_name"]
    return out


def link_handlers(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Name-only staff mentions (a township context, no ID) -> payroll staff of that township,
    for *every* such mention of the county (not only tonight's new ones: see below).

    Candidates are payroll persons whose unit name contains the township name. A unique
    exact-name match links with probability 0.99, a unique same-pinyin match with 0.9.
    Why a second pass: a township government easily has two clerks called 王伟, one the
    handler, the other the approver. What kind of staff does a role's work (unit kind, i.e. the
    unit name without the township, and post: 人民政府/民政办科员 for handlers) is *learned*
    from the first pass's unique links, and an ambiguous name is retried among staff of that
    profile only (probability 0.9 / 0.85). Still ambiguous or absent: left to the fuzzy path.

    Why every mention, on an incremental night too: the profile of a role is learned from the
    unique links of the whole county, so a mention's link depends on every other staff
    mention. Learned from tonight's new mentions alone (as it was), an incremental night that
    re-decided the 229 approver rows of 李伟 (two staff of that name in the township) had no
    first-pass link of the approver role to learn from and left them to the fuzzy path (an
    ID-less person), where a full rebuild linked them to the approver on the payroll. The
    caller keeps the links of the mentions it resolves and re-decides a kept mention whose
    link tonight's decision differs from (:func:`crossmatch.identity.incremental.reopen_handlers`).
    """
    empty = pd.DataFrame(columns=["source", "file", "row", "role", "id", "probability"])
    h = con.execute(
        """SELECT source, file, row, role, name, township FROM person_mention
        WHERE id IS NULL AND id_raw IS NULL AND township IS NOT NULL AND name IS NOT NULL"""
    ).df()
    post = (
        "p.post"
        if "src_payroll" in _tables(con) and "post" in _columns(con, "src_payroll")
        else "NULL::VARCHAR"
    )
    join = (
        "LEFT JOIN src_payroll p ON p._file = m.file AND p._row = m.row"
        if post != "NULL::VARCHAR"
        else ""
    )
    # a staff member goes by the payroll's name and by the registry's (a payroll row may
    # spell the name otherwise: the handler column then writes the registry's)
    staff = con.execute(
        f"""WITH p AS (SELECT m.id, m.name, m.unit, {post} AS post FROM person_mention m {join}
            WHERE m.source = 'payroll' AND m.id IS NOT NULL AND m.unit IS NOT NULL)
        SELECT DISTINCT * FROM (SELECT * FROM p UNION ALL
            SELECT p.id, n.name, p.unit, p.post FROM p JOIN _id_node n USING (id)
            WHERE n.in_registry AND n.name IS NOT NULL)"""
    ).df()
    if h.empty or staff.empty:
        return empty
    staff["name_py"] = name_keys(staff["name"])["name_py"]
    h["name_py"] = name_keys(h["name"])["name_py"]
    groups = []
    for (name, py, town, role), grp in h.groupby(
        ["name", "name_py", "township", "role"], dropna=False
    ):
        local = staff[staff["unit"].str.contains(str(town), regex=False)]
        local = local.assign(
            profile=local["unit"].str.replace(str(town), "", regex=False)
            + "|"
            + local["post"].fillna("")
        )
        groups.append((role, grp, local[local["name"] == name], local[local["name_py"] == py]))

    def unique(hit: pd.DataFrame) -> str | None:
        ids = hit["id"].unique()
        return str(ids[0]) if len(ids) == 1 else None

    out, ambiguous, linked_profiles = [], [], []
    for role, grp, exact, same_py in groups:
        pick, prob = unique(exact), 0.99
        if pick is None and exact.empty:
            pick, prob = unique(same_py), 0.9
        if pick is not None:
            hit = exact if prob == 0.99 else same_py
            linked_profiles.append(
                pd.DataFrame({"role": role, "profile": hit["profile"].iloc[:1], "n": len(grp)})
            )
            out.append(grp[["source", "file", "row", "role"]].assign(id=pick, probability=prob))
        else:
            ambiguous.append((role, grp, exact, same_py))
    if ambiguous and linked_profiles:
        prof = pd.concat(linked_profiles).groupby(["role", "profile"])["n"].sum()
        share = prof / prof.groupby(level="role").transform("sum")
        typical = {r: set(share.loc[r].index[share.loc[r] >= 0.05]) for r in prof.index.levels[0]}
        for role, grp, exact, same_py in ambiguous:
            ok = typical.get(role, set())
            pick, prob = unique(exact[exact["profile"].isin(ok)]), 0.9
            if pick is None and exact.empty:
                pick, prob = unique(same_py[same_py["profile"].isin(ok)]), 0.85
            if pick is not None:
                out.append(grp[["source", "file", "row", "role"]].assign(id=pick, probability=prob))
    if not out:
        return empty
    return pd.concat(out, ignore_index=True)


def link_household_comentions(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """A name without an ID on a row whose other person has a valid ID -> that person's
    registry household member of that name, where there is exactly one.

    Why: a marriage record (husband with ID, wife's ID cell empty), an assistance roster
    (applicant with ID, member without) name two people of one household. The name alone is
    no evidence in a county with many namesakes, but within the known person's household a
    compatible name (exact 0.99; same pinyin or look-alike 0.95) is. Only roles that have an
    ID column whose cell is empty (status ``missing``): a mistyped ID is evidence of its own,
    for the fuzzy path, and name-only staff roles (handler, approver) are linked by
    :func:`link_handlers`. Not unique, or no household member of that name: left to the fuzzy
    path.

    The known person is a candidate too where the two roles of a row are at times one person
    on the county's own rows (:func:`crossmatch.identity.household.self_roles_sql`): a
    case's applicant listed as its own member
    (本人). Without it, the applicant 赵军's own member row went to his father 赵军 (a
    household member through the registry's father column), and the father's payments were
    measured against the son's one-person case: 12 false over_standard_amount clues at 30,000
    persons. A co-owner or a wife (roles never one person on ID-bearing rows) never is.
    """
    empty = pd.DataFrame(columns=["source", "file", "row", "role", "id", "probability"])
    if "household_no" not in _columns(con, "src_hukou"):
        return empty
    cand = con.execute(
        f"""WITH hh AS (
            -- every household the registry puts the ID in (not one picked by scan order)
            SELECT DISTINCT m.id, s.household_no FROM person_mention m
            JOIN src_hukou s ON m.source = 'hukou' AND s._file = m.file AND s._row = m.row
            WHERE m.id IS NOT NULL AND s.household_no IS NOT NULL),
        p AS (
            SELECT DISTINCT b.source, b.file, b.row, b.role, b.name, a.id AS known,
                a.role AS known_role
            FROM person_mention b
            SEMI JOIN _new USING (source, file, row, role)
            JOIN person_mention a ON a.source = b.source AND a.file = b.file
                AND a.row = b.row AND a.role <> b.role
            WHERE b.id IS NULL AND b.id_raw IS NULL AND b.id_status = 'missing'
                AND b.name IS NOT NULL AND a.id IS NOT NULL AND b.source <> 'hukou'),
        self_roles AS (
            -- (source, role, known role) whose two persons are one on some ID-bearing rows
            {household.self_roles_sql("a.source IN (SELECT DISTINCT source FROM p)")})
        SELECT p.source, p.file, p.row, p.role, p.name, n.id, n.name AS cand_name
        FROM p JOIN hh h1 ON h1.id = p.known
        JOIN hh h2 ON h2.household_no = h1.household_no AND h2.id <> p.known
        JOIN _id_node n ON n.id = h2.id AND n.in_registry
        WHERE n.name IS NOT NULL
        UNION
        SELECT p.source, p.file, p.row, p.role, p.name, n.id, n.name AS cand_name
        FROM p SEMI JOIN self_roles r USING (source, role, known_role)
        JOIN _id_node n ON n.id = p.known
        WHERE n.name IS NOT NULL"""
    ).df()
    if cand.empty:
        return empty
    return _name_linked(cand, "household")


#: Roles of one organisation across sources: (source, role, the organisation's key column). A
#: company's shareholder and its legal representative are the same person where the names
#: agree (a small company's 法定代表人 is mostly one of its shareholders).
ORG_ROLES: tuple[tuple[str, str, str], ...] = (
    ("enterprise", "legal_rep", "credit_code"),
    ("shareholder", "holder", "credit_code"),
)


def link_org_comentions(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """A name without an ID in one organisation role -> the valid ID of the same name in
    another role of the same organisation (:data:`ORG_ROLES`), where exactly one such ID is.

    Why: a shareholder row of a company whose legal representative row has a valid ID and the
    same name (exact 0.99; same pinyin or look-alike 0.95) is that person: the registry may
    hold many namesakes, the company one. Only an empty ID cell (status ``missing``); two IDs
    of that name in the company: left to the fuzzy path."""
    empty = pd.DataFrame(columns=["source", "file", "row", "role", "id", "probability"])
    tables = _tables(con)
    parts = []
    for src, role, key in ORG_ROLES:
        if f"src_{src}" not in tables or key not in _columns(con, f"src_{src}"):
            continue
        parts.append(
            f"""SELECT m.source, m.file, m.row, m.role, m.name, m.id, m.id_raw, m.id_status,
                CAST(s.{key} AS VARCHAR) AS org
            FROM person_mention m JOIN src_{src} s ON s._file = m.file AND s._row = m.row
            WHERE m.source = '{src}' AND m.role = '{role}' AND s.{key} IS NOT NULL"""
        )
    if len(parts) < 1:
        return empty
    con.execute("CREATE OR REPLACE TEMP TABLE _org_m AS " + " UNION ALL ".join(parts))
    cand = con.execute(
        """SELECT b.source, b.file, b.row, b.role, b.name, a.id, a.name AS cand_name
        FROM _org_m b SEMI JOIN _new USING (source, file, row, role)
        JOIN _org_m a ON a.org = b.org AND NOT (a.source = b.source AND a.file = b.file
            AND a.row = b.row AND a.role = b.role)
        WHERE b.id IS NULL AND b.id_raw IS NULL AND b.id_status = 'missing'
            AND b.name IS NOT NULL AND a.id IS NOT NULL AND a.name IS NOT NULL"""
    ).df()
    if cand.empty:
        return empty
    return _name_linked(cand, "company")


def _name_linked(cand: pd.DataFrame, evidence: str) -> pd.DataFrame:
    """Candidates (mention key, name, id, cand_name) -> the mentions with exactly one ID of a
    compatible name (exact 0.99, same pinyin or look-alike 0.95), one node each."""
    lk, rk = name_keys(cand["name"]), name_keys(cand["cand_name"])
    left = pd.DataFrame({"name": cand["name"], "name_py": lk.name_py, "name_lapy": lk.name_lapy})
    right = pd.DataFrame(
        {"name": cand["cand_name"], "name_py": rk.name_py, "name_lapy": rk.name_lapy}
    )
    lv = ChineseName("name").levels(left, right)
    cand = cand.assign(level=lv)
    cand = cand[cand["level"] >= 2]
    key = ["source", "file", "row", "role"]
    n_ids = cand.groupby(key)["id"].transform("nunique")
    out = cand[n_ids == 1].sort_values([*key, "id"]).drop_duplicates(key)
    out = out.assign(probability=np.where(out["level"] == 4, 0.99, 0.95))
    # a node of its own per mention, so that its explanation is its own (see _explain_pass)
    out["node_id"] = "H:" + (
        out["source"] + "|" + out["file"] + "|" + out["row"].astype(str) + "|" + out["role"]
    ).map(lambda k: hashlib.sha1(k.encode("utf-8")).hexdigest()[:16])
    out["linked_to"] = out["cand_name"] + " / ID " + out["id"]
    out["level"] = out["level"].astype(int)
    out["comparison"] = evidence
    cols = [*key, "id", "probability", "node_id", "linked_to", "level", "comparison"]
    return out[cols].reset_index(drop=True)


# --------------------------------------------------------------- the exact stage's run tables

_KEY = ["source", "file", "row", "role"]


def store_staff_links(con: duckdb.DuckDBPyConnection) -> None:
    """Reads ``person_mention`` and the staff tables (:func:`link_handlers`); writes the temp
    table ``_staff_link`` (source, file, row, role, id, probability): every name-only staff
    mention's link tonight, not only the new ones' (a link depends on the county's staff and on
    the role's profile learned from all of them)."""
    staff_links = link_handlers(con)
    _store(con, "_staff_link0", staff_links, temp=True)
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _staff_link AS SELECT CAST(source AS VARCHAR) AS source,
            CAST(file AS VARCHAR) AS file, CAST(row AS INTEGER) AS row,
            CAST(role AS VARCHAR) AS role, CAST(id AS VARCHAR) AS id,
            CAST(probability AS DOUBLE) AS probability FROM _staff_link0"""
    )
    con.execute("DROP TABLE _staff_link0")


def store_conflicts(con: duckdb.DuckDBPyConnection, incremental: bool) -> int:
    """Reads ``person_mention`` and the ID index (:func:`find_conflicts`), on an incremental
    run also ``_kept_conflict``; writes ``identity_conflict`` (tonight's ID conflicts, plus the
    kept mentions' conflicts but for judgement outcomes, which are recorded afresh after
    clustering). Returns the number of tonight's conflicts."""
    conflicts = find_conflicts(con)
    conflicts = conflicts.rename(columns={"m_name": "name", "n_name": "registry_name"})[
        ["source", "file", "row", "role", "id", "name", "registry_name", "kind", "detail"]
    ]
    _store(con, "_conflict", conflicts, temp=True)
    con.execute(
        """CREATE OR REPLACE TABLE identity_conflict AS SELECT CAST(source AS VARCHAR) AS source,
            CAST(file AS VARCHAR) AS file, CAST(row AS INTEGER) AS row,
            CAST(role AS VARCHAR) AS role, CAST(id AS VARCHAR) AS id,
            CAST(name AS VARCHAR) AS name, CAST(registry_name AS VARCHAR) AS registry_name,
            CAST(kind AS VARCHAR) AS kind, CAST(detail AS VARCHAR) AS detail FROM _conflict"""
    )
    if incremental:
        con.execute(
            "INSERT INTO identity_conflict SELECT * FROM _kept_conflict "
            "WHERE kind NOT LIKE 'judgement%'"
        )
    return len(conflicts)


def store_comention_links(con: duckdb.DuckDBPyConnection) -> None:
    """Reads ``_staff_link``, ``_new`` and the co-mentions of tonight's mentions
    (:func:`link_household_comentions`, :func:`link_org_comentions`); writes the temp table
    ``_handler_link``: the links found outside the fuzzy path for the mentions resolved
    tonight, one per mention: a staff link first, then a household link, then a company one
    (the others keep theirs)."""
    handlers = con.execute(
        "SELECT * FROM _staff_link SEMI JOIN _new USING (source, file, row, role)"
    ).df()
    handlers = handlers.assign(node_id=None, linked_to=None, level=None)
    household_links = link_household_comentions(con)
    org = link_org_comentions(con)
    if len(org):
        # a household link first (the same person either way where both exist)
        if len(household_links):
            done_h = household_links.set_index(_KEY).index
            org = org[~org.set_index(_KEY).index.isin(done_h)]
        household_links = pd.concat([household_links, org], ignore_index=True)
    if len(household_links) and len(handlers):
        # one link per mention (the staff pass first)
        done = handlers.set_index(_KEY).index
        household_links = household_links[~household_links.set_index(_KEY).index.isin(done)]
    if len(household_links):
        handlers = pd.concat([handlers, household_links], ignore_index=True)
    if "comparison" not in handlers:
        handlers["comparison"] = None
    handlers = handlers.astype(
        {"node_id": object, "linked_to": object, "level": "Int64", "comparison": object}
    )
    _store(con, "_handler_link", handlers, temp=True)
