"""Stages 5-6 of identity resolution: person ids, ``identity_link``, ``person``,
``identity_explanation`` and the resolved views ``r_<source>``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from crossmatch import warehouse
from crossmatch.identity.clustering import _REG_ROW
from crossmatch.identity.mentions import _columns, _sql_text, _store, _tables
from crossmatch.identity.roles import RoleRef
from crossmatch.identity.summary import ResolveSummary
from crossmatch.warehouse import fetch_one, transaction


def _publish_nodes(
    con: duckdb.DuckDBPyConnection,
    nodes: pd.DataFrame,
    nid: np.ndarray,
    labels: np.ndarray,
    pred: Any,
    used: np.ndarray,
    must: list[tuple[int, int, bool]],
    prev_pids: dict[str, str],
    incremental: bool,
) -> None:
    """The Python side of publishing: person per cluster (``_grp``), ID map (``_idmap``) and
    ``identity_explanation``; :func:`_publish` then builds the rest in DuckDB alone."""
    # person id per cluster: registry ID > outside ID > previous person > previous P id > hash
    cl = pd.DataFrame(
        {
            "label": labels,
            "reg": nodes["reg_id"].to_numpy(dtype=object),
            "ext": nodes["ext_id"].to_numpy(dtype=object),
            "prev": nodes["prev_pid"].to_numpy(dtype=object),
        }
    )
    anchor = pd.DataFrame(index=pd.Index(np.unique(labels), name="label"))
    for c in ("reg", "ext", "prev"):
        # smallest value per cluster (sort + first: a groupby min on strings is per-group Python)
        first = cl.dropna(subset=[c]).sort_values(c).drop_duplicates("label")
        anchor[c] = first.set_index("label")[c]
    has_id = anchor["reg"].notna() | anchor["ext"].notna()
    # a registry row without a valid ID anchors its person but is no ID: the person takes
    # the valid ID linked to it, else a P id (see _registry_anchor)
    reg = anchor["reg"].astype(object)
    real_reg = reg.where(~reg.fillna("").str.startswith(_REG_ROW), None)
    pid = real_reg.fillna(anchor["ext"]).fillna(anchor["prev"])

    # link probability per node: best used edge touching it
    n = len(nodes)
    prob = np.zeros(n)
    ul, ur, up = pred.left[used], pred.right[used], pred.probability[used]
    np.maximum.at(prob, ul, up)
    np.maximum.at(prob, ur, up)
    judged_nodes = {x for pair in must for x in pair[:2]}
    nid_s = pd.Series(nid, dtype="string")
    is_group = nid_s.str.startswith("G:").fillna(False).to_numpy(dtype=bool)
    gi = np.flatnonzero(is_group)
    # linked: in a person with an anchor, through at least one used edge (a registry row
    # without a valid ID is its own anchor: alone, it is unresolved)
    linked = has_id.reindex(labels[gi]).to_numpy(dtype=bool) & (prob[gi] > 0)
    method = np.where(linked, "fuzzy", "unresolved").astype(object)
    method[np.isin(gi, list(judged_nodes))] = "judgement"
    gprob = np.where(method == "unresolved", np.nan, prob[gi])
    gprob[method == "judgement"] = 1.0
    grp = pd.DataFrame(
        {
            "gkey": nid_s.iloc[gi].str.slice(2).to_numpy(dtype=object),
            "label": labels[gi],
            "person_id": pd.array(pid.reindex(labels[gi]).to_numpy(dtype=object), dtype="string"),
            "method": method,
            "probability": gprob,
            "node_id": nid[gi],
        }
    )
    _store(con, "_grp", grp, temp=True)
    # clusters without an anchor: the previous run's P id of their mentions, else a hash
    _store(
        con,
        "_prevp",
        pd.DataFrame({"mstr": list(prev_pids), "prev": list(prev_pids.values())}),
        temp=True,
    )
    # the previous id most of the cluster's mentions had (a tie: the smallest, never scan order)
    free = con.execute(
        """WITH fp AS (
            SELECT g.label, f.source || '|' || f.file || '|' || CAST(f.row AS VARCHAR) || '|'
                || f.role AS mkey, p.prev
            FROM _fz f JOIN _grp g USING (gkey)
            LEFT JOIN _prevp p ON p.mstr = f.source || '|' || f.file || '|'
                || CAST(f.row AS VARCHAR) || '|' || f.role
            WHERE g.person_id IS NULL),
        pc AS (SELECT label, prev, count(*) AS c FROM fp WHERE prev IS NOT NULL
               GROUP BY label, prev)
        SELECT k.label, k.first_key, pp.prev
        FROM (SELECT label, min(mkey) AS first_key FROM fp GROUP BY label) k
        LEFT JOIN (SELECT label, first(prev ORDER BY c DESC, prev) AS prev FROM pc
                   GROUP BY label) pp USING (label)"""
    ).df()
    free["pid"] = free["prev"].where(free["prev"].notna(), free["first_key"].map(_stable_key_pid))
    _store(con, "_free", free[["label", "pid"]], temp=True)
    con.execute(
        "UPDATE _grp SET person_id = f.pid FROM _free f "
        "WHERE _grp.label = f.label AND _grp.person_id IS NULL"
    )
    lab_pid = dict(zip(free["label"], free["pid"], strict=True))

    # index nodes that took part: their cluster's person (an outside ID joined to a registry ID)
    ii = np.flatnonzero(nid_s.str.startswith("I:").fillna(False).to_numpy(dtype=bool))
    ipid = pid.reindex(labels[ii]).to_numpy(dtype=object)
    idmap = pd.DataFrame(
        {"id": nid_s.iloc[ii].str.slice(2).to_numpy(dtype=object), "person_id": ipid}
    )
    idmap = idmap[idmap["person_id"].notna() & (idmap["person_id"] != idmap["id"])]
    _store(con, "_idmap", idmap, temp=True)
    del lab_pid
    _publish_explanations(con, nodes, nid, pred, used, incremental)


def _publish(con: duckdb.DuckDBPyConnection, roles: list[RoleRef], s: ResolveSummary) -> None:
    """identity_link, person and the r_* views from the tables :func:`_publish_nodes` stored."""
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _newlink AS
        SELECT m.source, m.file, m.row, m.role, m.file_hash,
            coalesce(f.person_id, hm.person_id, h.id, im.person_id, m.id) AS person_id,
            CASE WHEN f.method IS NOT NULL THEN f.method
                 WHEN h.id IS NOT NULL THEN 'fuzzy'
                 WHEN m.id_status = 'upgraded15' THEN 'upgraded15'
                 WHEN m.id IS NOT NULL THEN 'exact'
                 ELSE 'unresolved' END AS method,
            CASE WHEN f.method IS NOT NULL THEN f.probability
                 WHEN h.id IS NOT NULL THEN h.probability
                 WHEN m.id IS NOT NULL THEN 1.0 END AS probability,
            NULL::VARCHAR AS cluster_id,
            coalesce(f.node_id, h.node_id, 'I:' || h.id, 'I:' || m.id) AS node_id
        FROM person_mention m
        SEMI JOIN _new USING (source, file, row, role)
        LEFT JOIN (SELECT z.source, z.file, z.row, z.role, g.* FROM _fz z JOIN _grp g USING (gkey))
            f USING (source, file, row, role)
        LEFT JOIN _handler_link h USING (source, file, row, role)
        LEFT JOIN _idmap hm ON hm.id = h.id
        LEFT JOIN _idmap im ON im.id = m.id"""
    )
    # mentions with neither name nor usable ID: unresolved, with a stable id of their own;
    # one person = one cluster (computed in the CREATE: an UPDATE of millions of rows is slow)
    links = """
        WITH u AS (
            SELECT source, file, row, role, file_hash, person_id, method, probability, node_id
            FROM _newlink
            {kept}),
        v AS (
            SELECT * REPLACE (
                coalesce(person_id, 'P' || upper(substr(sha1(source || '|' || file || '|'
                    || CAST(row AS VARCHAR) || '|' || role), 1, 15))) AS person_id,
                CASE WHEN person_id IS NULL THEN 'unresolved' ELSE method END AS method)
            FROM u)
        SELECT source, file, row, role, file_hash, person_id, method, probability,
            person_id AS cluster_id, node_id FROM v"""
    in_place = s.mode == "incremental" and _links_in_place(con)
    if in_place:
        # the kept links are rows of identity_link already: drop the others (mentions of file
        # versions no longer loaded) and add tonight's, instead of rewriting millions of rows
        # (links not kept: those of versions outside _kv that were not kept row by row, and
        # the kept links tonight's change reached, re-decided: incremental._reopen)
        reopened = (
            """ UNION SELECT l.rowid AS rid, l.person_id FROM identity_link l
            SEMI JOIN _reopen USING (source, file, row, role, file_hash)"""
            if "_reopen" in _tables(con)
            else ""
        )
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _gone AS SELECT l.rowid AS rid, l.person_id
            FROM identity_link l ANTI JOIN _kv USING (source, file, file_hash)
            ANTI JOIN (FROM _kept ANTI JOIN _kv USING (source, file, file_hash)) k
                USING (source, file, row, role, file_hash)"""
            + reopened
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _gone_pids AS SELECT DISTINCT person_id FROM _gone"
        )
        con.execute("DELETE FROM identity_link WHERE rowid IN (SELECT rid FROM _gone)")
        con.execute("INSERT INTO identity_link " + links.format(kept=""))
    else:
        con.execute(
            "CREATE OR REPLACE TABLE identity_link AS "
            + links.format(
                kept="UNION ALL SELECT source, file, row, role, file_hash, person_id, method, "
                "probability, node_id FROM _kept"
            )
        )
    counts = dict(
        con.execute("SELECT method, count(*) FROM identity_link GROUP BY method").fetchall()
    )
    s.exact = counts.get("exact", 0) + counts.get("upgraded15", 0)
    s.fuzzy = counts.get("fuzzy", 0)
    s.judgement = counts.get("judgement", 0)
    s.unresolved = counts.get("unresolved", 0)
    if in_place and s.mentions_kept and _persons_in_place(con):
        # only the persons whose links or ID's mentions changed can have changed: the persons
        # of the links dropped and added, and the IDs of the mentions dropped and added
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _aff AS
            SELECT person_id FROM _gone_pids
            UNION SELECT l.person_id FROM identity_link l
                SEMI JOIN _new USING (source, file, row, role)
            UNION SELECT m.id FROM person_mention m
                SEMI JOIN _new USING (source, file, row, role) WHERE m.id IS NOT NULL
            UNION SELECT id FROM _pm_gone_ids"""
        )
        s.persons_built = _publish_persons(con, only="_aff")
    else:
        s.persons_built = _publish_persons(con)
    s.persons = fetch_one(con, "SELECT count(*) FROM person")[0]
    _publish_views(con, roles)


#: identity_link's columns, in the order :func:`_publish` writes them
_LINK_COLUMNS = [
    "source", "file", "row", "role", "file_hash", "person_id", "method", "probability",
    "cluster_id", "node_id",
]  # fmt: skip


def _links_in_place(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether an incremental run may update identity_link in place: the table has exactly the
    columns this version writes, and every kept link is as this version publishes it (a person
    id, its own cluster), so keeping its row equals writing it again."""
    cols = [r[0] for r in con.execute("DESCRIBE identity_link").fetchall()]
    if cols != _LINK_COLUMNS:
        return False
    bad = fetch_one(
        con,
        "SELECT count(*) FROM _kept WHERE person_id IS NULL "
        "OR cluster_id IS DISTINCT FROM person_id OR method IS NULL",
    )[0]
    return bad == 0


def _stable_key_pid(key: str) -> str:
    """Stable ``P`` id of a person with no ID: a hash of its first mention's key."""
    return "P" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:15].upper()


def _publish_explanations(
    con: duckdb.DuckDBPyConnection,
    nodes: pd.DataFrame,
    nid: np.ndarray,
    pred: Any,
    used: np.ndarray,
    incremental: bool,
) -> None:
    """Per linked node: the comparisons of the strongest link that put it in its person."""
    idx = np.flatnonzero(used)
    cols = ["node_id", "linked_to", "comparison", "level", "weight", "probability"]
    ex = pd.DataFrame(columns=cols)
    if len(idx):
        both = pd.DataFrame(
            {
                "node": np.concatenate([pred.left[idx], pred.right[idx]]),
                "other": np.concatenate([pred.right[idx], pred.left[idx]]),
                "e": np.concatenate([idx, idx]),
                "p": np.concatenate([pred.probability[idx], pred.probability[idx]]),
            }
        )
        best = both.sort_values(["p", "e"], ascending=[False, True]).drop_duplicates("node")
        other = best["other"].to_numpy()
        name = nodes["name"].to_numpy(dtype=object)[other]
        idc = nodes["idc"].to_numpy(dtype=object)[other]
        desc = np.array(
            [f"{a} / ID {b}" if b is not None else str(a) for a, b in zip(name, idc, strict=True)],
            dtype=object,
        )
        e = best["e"].to_numpy()
        k = len(pred.weight_names)
        nl = pred.levels.shape[1]
        # one row per node here, one per comparison in DuckDB: a long frame in pandas would
        # repeat the node's strings k times (GBs at 3 million persons)
        wide: dict[str, Any] = {
            "node_id": nid[best["node"].to_numpy()],
            "linked_to": desc,
            "probability": best["p"].to_numpy(),
        }
        for j in range(k):
            if j < nl:
                wide[f"_l{j}"] = pred.levels[e, j]
            wide[f"_w{j}"] = pred.weights[e, j]
        _store(con, "_exw", pd.DataFrame(wide), temp=True)
        del wide, desc, best, both
        names = ", ".join(_sql_text(n) for n in pred.weight_names)
        levels = ", ".join(
            f"CAST(_l{j} AS INTEGER)" if j < nl else "NULL::INTEGER" for j in range(k)
        )
        weights = ", ".join(f"_w{j}" for j in range(k))
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _ex AS SELECT node_id, linked_to,
                unnest([{names}]) AS comparison, unnest([{levels}]) AS level,
                unnest([{weights}]) AS weight, probability FROM _exw"""
        )
        con.execute("DROP TABLE _exw")
    else:
        _store(con, "_ex", ex, temp=True)
    con.execute(
        """CREATE OR REPLACE TABLE identity_explanation AS
        SELECT CAST(node_id AS VARCHAR) AS node_id, CAST(linked_to AS VARCHAR) AS linked_to,
            CAST(comparison AS VARCHAR) AS comparison, CAST(level AS INTEGER) AS level,
            CAST(weight AS DOUBLE) AS weight, CAST(probability AS DOUBLE) AS probability
        FROM _ex"""
    )
    if incremental:
        con.execute(
            "INSERT INTO identity_explanation SELECT * FROM _kept_expl "
            "WHERE node_id NOT IN (SELECT node_id FROM _ex)"
        )


def _explain_pass(con: duckdb.DuckDBPyConnection) -> None:
    """identity_explanation rows of the household and organisation links
    (:func:`link_household_comentions`, :func:`link_org_comentions`): the name's level against
    the household member or the company's officer, and the link's weight."""
    con.execute(
        """INSERT INTO identity_explanation
        SELECT node_id, linked_to, coalesce(comparison, 'household') AS comparison, 1 AS level,
            log2(probability / (1 - probability)) AS weight, probability
        FROM _handler_link WHERE node_id IS NOT NULL
        UNION ALL
        SELECT node_id, linked_to, 'name', CAST(level AS INTEGER),
            NULL::DOUBLE, probability FROM _handler_link WHERE node_id IS NOT NULL"""
    )


#: person's columns, in the order :func:`_publish_persons` writes them
_PERSON_COLUMNS = [
    "person_id", "name", "id_number", "birth_date", "sex", "household_no", "village_code",
    "in_registry", "death_date",
]  # fmt: skip


def _persons_in_place(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``person`` may be updated in place: it has exactly the columns this version
    writes, and the mentions dropped were recorded (:func:`build_mentions` kept the others)."""
    tables = _tables(con)
    if "person" not in tables or "_pm_gone_ids" not in tables:
        return False
    return [r[0] for r in con.execute("DESCRIBE person").fetchall()] == _PERSON_COLUMNS


def _publish_persons(con: duckdb.DuckDBPyConnection, only: str | None = None) -> int:
    """``person`` from identity_link, the ID index, the mentions and the death records; only
    the persons listed in table ``only`` (column ``person_id``) when given, the others' rows
    kept as they are (every column of a person is computed from its own links alone).
    Returns the number of person rows written."""
    tables = _tables(con)
    links = "identity_link"
    if only is not None:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _aff_link AS "
            f"SELECT * FROM identity_link SEMI JOIN {only} USING (person_id)"
        )
        links = "_aff_link"
    deaths = []
    if "src_death" in tables and "death_date" in _columns(con, "src_death"):
        deaths.append(
            f"SELECT l.person_id, d.death_date AS d FROM src_death d JOIN {links} l "
            "ON l.source='death' AND l.file=d._file AND l.row=d._row"
        )
    if "src_cremation" in tables and "cremation_date" in _columns(con, "src_cremation"):
        deaths.append(
            f"SELECT l.person_id, d.cremation_date FROM src_cremation d JOIN {links} l "
            "ON l.source='cremation' AND l.file=d._file AND l.row=d._row"
        )
    hcols = _columns(con, "src_hukou")
    if {"cancel_reason", "cancel_date"} <= hcols:
        deaths.append(
            f"SELECT l.person_id, h.cancel_date FROM src_hukou h JOIN {links} l "
            "ON l.source='hukou' AND l.file=h._file AND l.row=h._row "
            "WHERE h.cancel_reason = '死亡'"
        )
    death_sql = (
        " UNION ALL ".join(deaths)
        if deaths
        else "SELECT NULL::VARCHAR AS person_id, NULL::DATE AS d"
    )
    hh = "h.household_no" if "household_no" in hcols else "NULL::VARCHAR"
    query = (
        f"""WITH dd AS (SELECT person_id, min(d) AS death_date FROM ({death_sql}) x(person_id, d)
                    GROUP BY person_id),
        reg AS (SELECT l.person_id, min({hh}) AS household_no FROM {links} l
                JOIN src_hukou h ON l.source = 'hukou' AND l.file = h._file AND l.row = h._row
                GROUP BY l.person_id),
        -- persons without an ID node: name and village from their mentions (a small set;
        -- persons with an ID take them from the ID index, birth date and sex from the ID)
        fm AS (SELECT l.person_id, m.source, m.name, m.village_code, m.birth_date, m.sex
               FROM {links} l JOIN person_mention m USING (source, file, row, role)
               WHERE NOT EXISTS (SELECT 1 FROM _id_node n WHERE n.id = l.person_id)),
        free AS (SELECT person_id, min(birth_date) AS birth_date, min(sex) AS sex
                 FROM fm GROUP BY person_id),
        -- a deterministic pick (never scan order): the registry's spelling, else the most
        -- frequent, else the smallest; the same for the village
        fname AS ({_pick_sql("fm", "name")}),
        fvill AS ({_pick_sql("fm", "village_code")}),
        p AS (SELECT DISTINCT person_id FROM {links}),
        -- registered: a registry row is linked to the person, whether or not that row's ID
        -- was usable (a bad check digit on the registry row leaves the person registered)
        hk AS (SELECT DISTINCT person_id FROM {links} WHERE source = 'hukou')
        SELECT p.person_id,
            coalesce(n.name, fn.name) AS name,
            n.id AS id_number,
            CASE WHEN n.id IS NOT NULL
                THEN try_strptime(substr(n.id, 7, 8), '%Y%m%d')::DATE ELSE f.birth_date END
                AS birth_date,
            CASE WHEN n.id IS NOT NULL THEN
                CASE WHEN try_cast(substr(n.id, 17, 1) AS INTEGER) % 2 = 1 THEN '男' ELSE '女' END
                ELSE f.sex END AS sex,
            reg.household_no,
            coalesce(n.village_code, fv.village_code) AS village_code,
            coalesce(n.in_registry, false) OR hk.person_id IS NOT NULL AS in_registry,
            dd.death_date
        FROM p LEFT JOIN _id_node n ON n.id = p.person_id
        LEFT JOIN free f ON f.person_id = p.person_id
        LEFT JOIN fname fn ON fn.person_id = p.person_id
        LEFT JOIN fvill fv ON fv.person_id = p.person_id
        LEFT JOIN reg ON reg.person_id = p.person_id
        LEFT JOIN dd ON dd.person_id = p.person_id
        LEFT JOIN hk ON hk.person_id = p.person_id"""
        if "src_hukou" in tables
        else f"""WITH fm AS (
               SELECT l.person_id, m.source, m.name, m.village_code, m.birth_date, m.sex
               FROM {links} l JOIN person_mention m USING (source, file, row, role)),
        fname AS ({_pick_sql("fm", "name")}),
        fvill AS ({_pick_sql("fm", "village_code")})
        SELECT f.person_id, fn.name, n.id AS id_number,
            min(f.birth_date) AS birth_date, min(f.sex) AS sex, NULL::VARCHAR AS household_no,
            fv.village_code, false AS in_registry, NULL::DATE AS death_date
        FROM fm f LEFT JOIN _id_node n ON n.id = f.person_id
        LEFT JOIN fname fn ON fn.person_id = f.person_id
        LEFT JOIN fvill fv ON fv.person_id = f.person_id
        GROUP BY f.person_id, n.id, fn.name, fv.village_code"""
    )
    if only is None:
        con.execute(f"CREATE OR REPLACE TABLE person AS {query}")
        return int(fetch_one(con, "SELECT count(*) FROM person")[0])
    con.execute(f"CREATE OR REPLACE TEMP TABLE _aff_person AS {query}")
    with transaction(con):
        con.execute(f"DELETE FROM person WHERE person_id IN (SELECT person_id FROM {only})")
        con.execute("INSERT INTO person SELECT * FROM _aff_person")
    n = int(fetch_one(con, "SELECT count(*) FROM _aff_person")[0])
    con.execute("DROP TABLE _aff_person")
    con.execute("DROP TABLE _aff_link")
    return n


def _pick_sql(rel: str, col: str, key: str = "person_id") -> str:
    """SQL: one ``col`` per ``key`` of relation ``rel`` (which has a ``source`` column), picked
    deterministically: a value the household registry states first, then the most frequent,
    then the smallest. ``mode()`` would break ties by scan order, so two runs over the same
    files could name a person differently."""
    return (
        f"SELECT {key}, first({col} ORDER BY reg DESC, c DESC, {col}) AS {col} FROM ("
        f"SELECT {key}, {col}, bool_or(source = 'hukou') AS reg, count(*) AS c FROM {rel} "
        f"WHERE {col} IS NOT NULL GROUP BY {key}, {col}) GROUP BY {key}"
    )


def _publish_views(con: duckdb.DuckDBPyConnection, roles: list[RoleRef]) -> None:
    """``r_<source>`` = ``src_<source>`` + one ``R_pid`` per role, joined by file, row *and file
    hash* (a row of a file version identity has not seen gets no person: never an old file's).
    Sources without person roles get a plain view. Records stage ``resolve`` with the ingest
    fingerprint it was computed from (detect refuses to run on identity older than the data)."""
    by_source: dict[str, list[str]] = {}
    for r in roles:
        if _columns(con, r.table):
            by_source.setdefault(r.source, []).append(r.role)
    for src, rls in by_source.items():
        sel = ", ".join(f"l{i}.person_id AS {role}_pid" for i, role in enumerate(rls))
        joins = " ".join(
            f"LEFT JOIN identity_link l{i} ON l{i}.source = {_sql_text(src)} "
            f"AND l{i}.file = s._file AND l{i}.row = s._row AND l{i}.file_hash = s._file_hash "
            f"AND l{i}.role = {_sql_text(role)}"
            for i, role in enumerate(rls)
        )
        con.execute(f"CREATE OR REPLACE VIEW r_{src} AS SELECT s.*, {sel} FROM src_{src} s {joins}")
    for (table,) in con.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'main' AND table_name LIKE 'src\\_%' ESCAPE '\\'"
    ).fetchall():
        src = table[4:]
        if src not in by_source and src.isidentifier():
            con.execute(f'CREATE OR REPLACE VIEW "r_{src}" AS SELECT * FROM "{table}"')
    warehouse.record_stage(con, "resolve", warehouse.ingest_fingerprint(con))


def record_run(con: duckdb.DuckDBPyConnection, s: ResolveSummary, signature: str) -> None:
    """Writes one ``identity_run`` row (creating the table): the run's mode, the configuration
    signature the next run compares against (``incremental._can_increment``) and its counts."""
    con.execute(
        """CREATE TABLE IF NOT EXISTS identity_run (run_at TIMESTAMP, mode VARCHAR,
        signature VARCHAR, mentions BIGINT, new_mentions BIGINT, candidate_pairs BIGINT)"""
    )
    con.execute(
        "INSERT INTO identity_run VALUES (current_timestamp, ?, ?, ?, ?, ?)",
        [s.mode, signature, s.mentions, s.new_mentions, s.candidate_pairs],
    )
