"""Resolve every person mention in a DuckDB warehouse to one person (data contract section 5).

Plan, in the order the code runs:

1. ``person_mention``: one row per (source, file, row, role) from the canonical ``src_*`` tables.
2. Exact path (SQL): a valid or upgraded-15 ID links to that ID. Guard: a mention whose name is
   incompatible with the ID's registry name is an ID conflict (``identity_conflict``) and goes
   to the fuzzy path instead of being merged.
3. Handlers/approvers (name only) link to payroll staff of their township where unique; a
   name without an ID on a row whose other person has an ID links to that person's registry
   household member of that name where unique (:func:`link_household_comentions`).
4. Fuzzy path: mentions without a usable ID, grouped into nodes where identical attributes
   identify someone (ID candidate, account, staff township; a bare name never does), probe
   the person index (one node per ID) with the FS/EM engine (``data/persons.yaml``). Blocking
   and comparison vectors run in DuckDB. m of name/village/account come from ID-bearing
   mentions (known matches), EM estimates the rest; pairs are scored with the population
   prior (so a name alone weighs less as the county grows) and term frequencies; a probe's
   link to a person is weighed against all its candidate persons (one who had died before
   the probe's records loses weight when a living one fits). A registry row without a valid
   ID (bad check digit, missing) is a registered person of its own (:func:`_registry_anchor`).
   A village written by name counts as its code (name / code pairs of the other records).
   Analyst judgements become must/cannot links; constrained clustering never joins two
   registry IDs.
5. Person ids: the registry ID, else the valid outside ID, else a stable ``P`` id (the previous
   run's id for these mentions, or a hash of the cluster's first mention).
6. Outputs: ``identity_link``, ``person``, ``identity_explanation``, ``identity_params`` and the
   resolved views ``r_<source>`` with one ``R_pid`` column per role.

This module runs the stages in order (:func:`resolve_identities`); each lives in its own module:
:mod:`~crossmatch.identity.mentions` (1), :mod:`~crossmatch.identity.exact` (2-3),
:mod:`~crossmatch.identity.fuzzy_model` and :mod:`~crossmatch.identity.clustering` (4),
:mod:`~crossmatch.identity.incremental` (what changed since the last run),
:mod:`~crossmatch.identity.publish` (5-6) and :mod:`~crossmatch.identity.analyst` (explain,
judgements). Their names are re-exported here for existing callers.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from crossmatch.identity import accounts, areas, listed, role_profile
from crossmatch.identity import household as co_mentions
from crossmatch.identity.analyst import JUDGEMENT_DDL, explain, record_judgement  # noqa: F401
from crossmatch.identity.clustering import (  # noqa: F401
    _REG_ROW,
    _fuzzy_pool,
    _loc_nid,
    _record_judgement_conflicts,
    _registry_anchor,
    once_pairs,
)
from crossmatch.identity.exact import (
    build_id_index,
    find_conflicts,
    link_handlers,
    link_household_comentions,
    link_org_comentions,
)
from crossmatch.identity.fuzzy_model import (  # noqa: F401
    _KEYS,
    _M_SAMPLE,
    _U_SAMPLE_NODES,
    _build_deaths,
    _build_index,
    _candidate_id,
    _create_blocking_keys_view,
    _labelled_m,
    _load_model,
    _node_frame,
    _save_model,
    _sql_pairs,
    default_config,
)
from crossmatch.identity.incremental import (
    _can_increment,
    _previous_persons,
    _previous_pids,
    _reopen,
    _signature,
    _split_new,
    _unchanged,
    reopen_handlers,
    snapshot_index,
)
from crossmatch.identity.linker import LinkageConfig, Linker
from crossmatch.identity.mentions import (  # noqa: F401
    _CTX,
    _VILLAGE_CLEAN,
    _columns,
    _sql_text,
    _store,
    _tables,
    build_mentions,
)
from crossmatch.identity.publish import (  # noqa: F401
    _explain_pass,
    _publish,
    _publish_explanations,
    _publish_nodes,
    _publish_persons,
    _publish_views,
    _stable_key_pid,
)
from crossmatch.identity.roles import RoleRef, default_roles, roles_from_specs
from crossmatch.identity.summary import ResolveSummary
from crossmatch.memory import release_memory
from crossmatch.warehouse import fetch_one

log = logging.getLogger(__name__)


def resolve_identities(
    con: duckdb.DuckDBPyConnection,
    specs: Any = None,
    *,
    roles: list[RoleRef] | None = None,
    config: LinkageConfig | None = None,
    retrain: bool = False,
    full: bool = False,
    memory_limit: str | None = "2.5GB",
) -> ResolveSummary:
    """Run identity resolution in the warehouse ``con`` and publish its tables and views.

    ``specs``: parsed source specs (their ``persons:`` blocks); default: the contract's roles.
    ``retrain``: re-estimate the FS weights even when ``identity_params`` holds earlier ones
    (by default a warehouse that has been resolved before reuses its weights, so a night's run
    links new records against the same scale and person ids stay put).
    ``full``: resolve every mention again. By default a run is *incremental* when the warehouse
    was resolved before with the same configuration, roles and judgements: mentions whose
    (source, file, file hash, row, role) were resolved keep their link, and only new mentions
    are blocked and scored, against the person index and each other.
    ``memory_limit``: DuckDB's buffer pool during the run (beyond it the county-wide joins
    spill to disk), so that a 3-million-person county stays within a small machine's memory
    next to the Python side (3M persons: peak RSS 5.8 GB at 2.5GB, 7.7 GB at 4GB, same
    time); the connection's own setting is restored afterwards. None leaves the connection
    as it is.
    """
    if memory_limit is None:
        return _resolve(con, specs, roles=roles, config=config, retrain=retrain, full=full)
    before = fetch_one(con, "SELECT current_setting('memory_limit')")[0]
    con.execute(f"SET memory_limit = '{memory_limit}'")
    try:
        return _resolve(con, specs, roles=roles, config=config, retrain=retrain, full=full)
    finally:
        con.execute(f"SET memory_limit = '{before}'")


def _resolve(
    con: duckdb.DuckDBPyConnection,
    specs: Any,
    *,
    roles: list[RoleRef] | None,
    config: LinkageConfig | None,
    retrain: bool,
    full: bool,
) -> ResolveSummary:
    """The run itself (see :func:`resolve_identities`)."""
    s = ResolveSummary()
    t = time.perf_counter()
    roles = roles or (roles_from_specs(specs) if specs is not None else default_roles())
    config = config or default_config()
    con.execute(JUDGEMENT_DDL)
    con.execute(
        "ALTER TABLE identity_judgement ADD COLUMN IF NOT EXISTS merge_ids BOOLEAN DEFAULT false"
    )
    if not full and not retrain and _unchanged(con, config, roles, s):
        s.seconds["check"] = time.perf_counter() - t
        return s
    # (an ID-less payroll row meets its township's handler mentions: staff.assign_townships)
    build_mentions(con, roles, s, full=full)
    s.mentions = fetch_one(con, "SELECT count(*) FROM person_mention")[0]
    model = None if retrain else _load_model(con, config)
    sig = _signature(con, config, roles)
    incremental = not full and model is not None and _can_increment(con, sig)
    s.mode = "incremental" if incremental else "full"
    _split_new(con, incremental)
    s.new_mentions = fetch_one(con, "SELECT count(*) FROM _new")[0]
    prev_pids = _previous_pids(con)
    build_id_index(con)
    # the person index first: which of its rows changed tonight decides which kept links
    # the change reaches (re-decided tonight, see incremental._reopen)
    if incremental:
        snapshot_index(con, s.mentions_kept)
    n_idx = _build_index(con, incremental=incremental and s.mentions_kept)
    # every name-only staff mention's link tonight (not only the new ones': a link depends on
    # the county's staff and on the role's profile learned from all of them, exact.link_handlers)
    staff_links = link_handlers(con)
    _store(con, "_staff_link0", staff_links, temp=True)
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _staff_link AS SELECT CAST(source AS VARCHAR) AS source,
            CAST(file AS VARCHAR) AS file, CAST(row AS INTEGER) AS row,
            CAST(role AS VARCHAR) AS role, CAST(id AS VARCHAR) AS id,
            CAST(probability AS DOUBLE) AS probability FROM _staff_link0"""
    )
    con.execute("DROP TABLE _staff_link0")
    del staff_links
    if incremental:
        reopen_handlers(con, "_staff_link")
        s.reopened = _reopen(con, config, s.mentions_kept)
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
        # judgement outcomes are recorded afresh below
        con.execute(
            "INSERT INTO identity_conflict SELECT * FROM _kept_conflict "
            "WHERE kind NOT LIKE 'judgement%'"
        )
    s.conflicts = len(conflicts)
    s.seconds["exact"] = time.perf_counter() - t
    log.info("step exact: %.1f s", s.seconds["exact"])

    t = time.perf_counter()
    # (the staff links of the mentions resolved tonight: the others keep theirs)
    handlers = con.execute(
        "SELECT * FROM _staff_link SEMI JOIN _new USING (source, file, row, role)"
    ).df()
    handlers = handlers.assign(node_id=None, linked_to=None, level=None)
    household = link_household_comentions(con)
    org = link_org_comentions(con)
    if len(org):
        # a household link first (the same person either way where both exist)
        if len(household):
            done_h = household.set_index(["source", "file", "row", "role"]).index
            org = org[~org.set_index(["source", "file", "row", "role"]).index.isin(done_h)]
        household = pd.concat([household, org], ignore_index=True)
    if len(household) and len(handlers):
        # one link per mention (the staff pass first)
        done = handlers.set_index(["source", "file", "row", "role"]).index
        household = household[
            ~household.set_index(["source", "file", "row", "role"]).index.isin(done)
        ]
    if len(household):
        handlers = pd.concat([handlers, household], ignore_index=True)
    if "comparison" not in handlers:
        handlers["comparison"] = None
    handlers = handlers.astype(
        {"node_id": object, "linked_to": object, "level": "Int64", "comparison": object}
    )
    _store(con, "_handler_link", handlers, temp=True)
    s.seconds["handlers"] = time.perf_counter() - t
    log.info("step handlers: %.1f s", s.seconds["handlers"])

    t = time.perf_counter()
    jm = con.execute(
        "SELECT a_source, a_file, a_row, a_role, b_source, b_file, b_row, b_role, same, "
        "coalesce(merge_ids, false) AS merge_ids, analyst FROM identity_judgement"
    ).df()
    judged = pd.concat(
        [
            jm[[f"{x}_source", f"{x}_file", f"{x}_row", f"{x}_role"]].set_axis(
                ["source", "file", "row", "role"], axis=1
            )
            for x in ("a", "b")
        ],
        ignore_index=True,
    ).astype({"row": "int32"})
    groups = _fuzzy_pool(con, judged)
    prev = (
        _previous_persons(con)
        if incremental
        else pd.DataFrame(columns=["reg_id", "ext_id", "prev_pid", "kept_key"])
    )
    loc = pd.concat(
        [
            groups.drop(columns="registry").assign(
                reg_id=_registry_anchor(groups), ext_id=None, prev_pid=None, is_probe=True
            ),
            prev.assign(conflict_id=None, gkey=None, is_probe=False),
        ],
        ignore_index=True,
    )
    for c in ("name", "idc", "village_code", "acct", "conflict_id", "prev_pid", "gkey", "kept_key"):
        loc[c] = loc[c].astype(object) if c in loc else None
    for c in ("death_day", "first_day"):
        loc[c] = loc[c].astype(float) if c in loc else np.nan
    loc = _node_frame(loc)
    loc.insert(0, "node", np.arange(n_idx, n_idx + len(loc), dtype=np.int64))
    _store(
        con,
        "_loc",
        loc[["node", "is_probe", *_KEYS, "reg_id", "ext_id", "prev_pid", "conflict_id"]],
        temp=True,
    )
    s.seconds["prepare"] = time.perf_counter() - t
    log.info("step prepare: %.1f s", s.seconds["prepare"])

    t = time.perf_counter()
    gl, gr, gsql = (
        _sql_pairs(con, config) if len(groups) else (np.empty(0, np.int64),) * 2 + (None,)
    )
    s.seconds["blocking"] = time.perf_counter() - t
    log.info("step blocking: %.1f s", s.seconds["blocking"])

    t = time.perf_counter()
    # judgements -> global nodes (the ID nodes they name must be loaded)
    node_of_gkey = dict(zip(loc["gkey"], loc["node"], strict=True))
    node_of_prev = dict(
        zip(loc["prev_pid"].dropna(), loc["node"][loc["prev_pid"].notna()], strict=True)
    )
    must: list[tuple[int, int, bool]] = []
    cannot: list[tuple[int, int]] = []
    must_rows: list[Any] = []

    def node_of(key: tuple[str, str, int, str]) -> int | None:
        r = con.execute(
            """SELECT f.gkey, k.person_id, m.id FROM person_mention m
            LEFT JOIN _fz f USING (source, file, row, role)
            LEFT JOIN _kept k USING (source, file, row, role)
            WHERE m.source = ? AND m.file = ? AND m.row = ? AND m.role = ?""",
            [key[0], key[1], int(key[2]), key[3]],
        ).fetchone()
        if r is None:
            return None
        gkey, kept_pid, mid = r
        if gkey is not None:
            return node_of_gkey.get(gkey)
        pid = kept_pid or mid
        if pid is None:
            return None
        if pid in node_of_prev:
            return int(node_of_prev[pid])
        hit = con.execute("SELECT node FROM _id_node WHERE id = ?", [pid]).fetchone()
        return int(hit[0]) if hit else None

    for j in jm.itertuples(index=False):
        a = node_of((j.a_source, j.a_file, j.a_row, j.a_role))
        b = node_of((j.b_source, j.b_file, j.b_row, j.b_role))
        if a is None or b is None:
            log.warning("judgement refers to a mention not in this run: %s", j)
            continue
        if j.same:
            must.append((a, b, bool(j.merge_ids)))
            must_rows.append(j)
        else:
            cannot.append((a, b))
    # two ID-less rows of a file that lists each person once are two people
    cannot += [(node_of_gkey[a], node_of_gkey[b]) for a, b in once_pairs(con)]
    judged_nodes = np.array([x for p in [*must, *cannot] for x in p[:2]], dtype=np.int64)

    # the local problem: probes, previous persons, and the index nodes they touch
    need = np.unique(np.concatenate([gl, gr, judged_nodes]))
    need = need[need < n_idx]
    training = model is None
    if training:
        sample = con.execute(
            f"SELECT node FROM _idx USING SAMPLE reservoir({_U_SAMPLE_NODES} ROWS) REPEATABLE (1)"
        ).fetchnumpy()["node"]
        need = np.union1d(need, np.asarray(sample, dtype=np.int64))
    _store(con, "_need", pd.DataFrame({"node": need}), temp=True)
    # only the columns the comparisons, clustering and publishing read (the blocking keys
    # stay in DuckDB): at 3 million persons every object column costs hundreds of MB
    keep = ["node", "is_probe", "name", "idc", "reg_id", "ext_id", "prev_pid", "conflict_id"]
    keep += [c for comp in config.comparisons for c in comp.columns()]
    keep += list(config.exclusive)
    keep += [c for c in (config.death_column, config.event_column) if c]
    keep = list(dict.fromkeys(keep))
    idx_local = con.execute(
        f"SELECT {', '.join(keep)} FROM _idx SEMI JOIN _need USING (node) ORDER BY node"
    ).df()
    nodes = pd.concat([idx_local, loc[keep]], ignore_index=True)
    nodes["_kept"] = ~nodes["is_probe"].astype(bool) & (nodes["node"] >= n_idx)
    glob = nodes["node"].to_numpy(dtype=np.int64)
    nid = np.concatenate([("I:" + idx_local["idc"]).to_numpy(dtype=object), _loc_nid(loc)]).astype(
        object
    )
    del idx_local  # its rows live on in ``nodes``

    def pos(x: np.ndarray) -> np.ndarray:
        return np.searchsorted(glob, x)

    left, right = pos(gl), pos(gr)
    must_l = [(int(pos(np.array([a]))[0]), int(pos(np.array([b]))[0]), m) for a, b, m in must]
    cannot_l = [(int(pos(np.array([a]))[0]), int(pos(np.array([b]))[0])) for a, b in cannot]
    # frequencies over the whole population, not just the loaded part: the nodes of a full
    # run (an incremental run's own nodes are another partition of the same mentions, see
    # _tf_population)
    tf: dict[str, pd.Series] = {}
    _create_blocking_keys_view(con)
    pop = _tf_population(con, judged, incremental, [c.column for c in config.comparisons if c.tf])
    for comp in config.comparisons:
        if comp.tf:
            _store(con, "_tfv", pd.DataFrame({"v": nodes[comp.column].dropna().unique()}), True)
            tfdf = con.execute(
                f"""SELECT {comp.column} AS v, count(*) / (SELECT count({comp.column})
                    FROM {pop})::DOUBLE AS f
                FROM {pop} SEMI JOIN _tfv ON {pop}.{comp.column} = _tfv.v GROUP BY ALL"""
            ).df()
            tf[comp.key] = pd.Series(tfdf["f"].to_numpy(), index=tfdf["v"])
    linker = Linker(nodes, config, model=model, tf=tf)
    if gsql is not None:
        # levels and filters already computed in DuckDB (same semantics, see _sql_pairs)
        g = gsql
    else:
        cid = nodes["conflict_id"].to_numpy(dtype=object)
        idv = nodes["idc"].to_numpy(dtype=object)
        # fuzzy-group nodes whose ID conflicted must not be linked back to that ID
        bad = ((cid[left] != None) & (cid[left] == idv[right])) | (  # noqa: E711
            (cid[right] != None) & (cid[right] == idv[left])  # noqa: E711
        )
        left, right = left[~bad], right[~bad]
        left, right = linker._filter_pairs(left, right)
        g = linker.compare(left, right)
    if training:
        rng = np.random.default_rng(config.seed)
        pool = np.flatnonzero(np.isin(glob, sample))
        n_probe = len(groups)
        if n_probe:
            k = min(n_probe, max(1, round(len(pool) * n_probe / max(n_idx, 1))))
            probes = np.flatnonzero(nodes["is_probe"].to_numpy(dtype=bool))
            pool = np.concatenate([pool, rng.choice(probes, size=k, replace=False)])
        ra = pool[rng.integers(0, len(pool), config.u_sample_pairs)]
        rb = pool[rng.integers(0, len(pool), config.u_sample_pairs)]
        keep = ra != rb
        n_probe = len(groups)
        linker.train(
            left,
            right,
            g,
            random_pairs=(ra[keep], rb[keep]),
            n_possible=n_probe * n_idx + n_probe * (n_probe - 1) // 2,
            m_known=_labelled_m(con, config),
        )
    pred = linker.score(left, right, g)
    s.candidate_pairs = len(left)
    s.seconds["score"] = time.perf_counter() - t
    log.info("step score: %.1f s", s.seconds["score"])

    t = time.perf_counter()
    cl_notes: list[tuple[int, str]] = []
    # candidates implausible for the role (age, sex, head ...), then, in a second round, those
    # who are no relative of the mention's co-mentions as the first round linked them
    roles_pen = co_mentions.combine(
        role_profile.edge_penalty(con, nid),
        areas.edge_penalty(con, nid),
        listed.edge_penalty(con, nid),
        accounts.edge_penalty(con, nid, accounts.differ_weight(linker.model, "acct", config)),
    )
    linker.edge_penalty = roles_pen
    p_first = pred.probability.copy()
    labels, used = linker.cluster(pred, must_link=must_l, cannot_link=cannot_l, notes=cl_notes)
    kin = co_mentions.support(
        con, nid, co_mentions.first_round_persons(labels, nodes["reg_id"], nodes["ext_id"])
    )
    if kin:
        pred.probability[:] = p_first
        linker.edge_penalty = co_mentions.combine(roles_pen, co_mentions.edge_penalty(nid, kin))
        cl_notes.clear()
        labels, used = linker.cluster(pred, must_link=must_l, cannot_link=cannot_l, notes=cl_notes)
    s.passed_over_dead = linker.passed_over_dead
    s.weighed_down_by_role = linker.weighed_down
    s.seconds["cluster"] = time.perf_counter() - t
    log.info("step cluster: %.1f s", s.seconds["cluster"])

    t = time.perf_counter()
    _record_judgement_conflicts(con, must_rows, cl_notes, s)
    del g, gsql, left, right, linker.df  # the levels live on in ``pred``; free memory
    _publish_nodes(con, nodes, nid, labels, pred, used, must_l, prev_pids, incremental)
    _explain_pass(con)
    fitted = linker.model
    # the node frames live on in DuckDB now (_grp, _idmap, identity_explanation): free the
    # Python side before the county-wide joins that publish, so that the two peaks do not add
    # up (at 3 million persons: GBs)
    del nodes, nid, labels, pred, used, linker, loc, groups, gl, gr, tf, conflicts, handlers, prev
    node_of_gkey.clear()
    node_of_prev.clear()
    if s.mentions >= RELEASE_MEMORY_MENTIONS:
        release_memory()
    log.info("publish: node tables stored, Python side freed: %.1f s", time.perf_counter() - t)
    _publish(con, roles, s)
    _save_model(con, fitted, config)
    con.execute(
        """CREATE TABLE IF NOT EXISTS identity_run (run_at TIMESTAMP, mode VARCHAR,
        signature VARCHAR, mentions BIGINT, new_mentions BIGINT, candidate_pairs BIGINT)"""
    )
    con.execute(
        "INSERT INTO identity_run VALUES (current_timestamp, ?, ?, ?, ?, ?)",
        [s.mode, sig, s.mentions, s.new_mentions, s.candidate_pairs],
    )
    s.seconds["publish"] = time.perf_counter() - t
    log.info("step publish: %.1f s", s.seconds["publish"])
    return s


def _tf_population(
    con: duckdb.DuckDBPyConnection, judged: pd.DataFrame, incremental: bool, columns: list[str]
) -> str:
    """The table whose values term frequencies are counted over: the nodes a *full* run on
    tonight's mentions has, the person index and one node per fuzzy-path group of every
    mention (``_allk`` in a full run).

    Why not ``_allk`` on an incremental night: its local nodes are tonight's new groups and
    one node per kept person's attribute set (``_previous_persons``), another partition of
    the same mentions, so a name's count and the count of named nodes differ from a full
    run's (at 300,000 persons: 0.72 % more named nodes), and so did the name's weight of
    every link re-decided tonight. A property owner's link came out 0.985172 where the rebuild
    has 0.984920 and night 1 had 0.984909: its two decimals moved (0.99 against 0.98) and
    property_on_dibao ran on every month. Here the groups are formed from every mention by
    the same SQL as a full run's (``clustering._fuzzy_pool``), with the mentions that a full
    run links outside the fuzzy path left out as it leaves them out: tonight's staff links of
    every mention (``_staff_link``), tonight's household and company links of the mentions
    resolved tonight, and the kept such links (a ``fuzzy`` link of a node other than a
    group's) of the others."""
    if not incremental:
        return "_allk"
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _hl_full AS
        SELECT source, file, row, role, id FROM _staff_link
        UNION ALL SELECT source, file, row, role, CAST(id AS VARCHAR) FROM _handler_link
        UNION ALL SELECT source, file, row, role, person_id FROM _kept
            WHERE method = 'fuzzy' AND node_id NOT LIKE 'G:%'"""
    )
    full = _fuzzy_pool(con, judged, scope=None, out="_fzfull", handlers="_hl_full")
    for t in ("_fzfull", "_fzfull0", "_fzfull1", "_hl_full"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    keep = [c for c in columns if c in full.columns]
    full = full[keep]
    _store(con, "_tf_groups", full, temp=True)
    cols = ", ".join(f"CAST({c} AS VARCHAR) AS {c}" for c in keep)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _tf_pop AS SELECT {cols} FROM _idx
        UNION ALL SELECT {cols} FROM _tf_groups"""
    )
    con.execute("DROP TABLE _tf_groups")
    return "_tf_pop"


#: A resolve of at least this many mentions hands its freed Python heap back before publishing.
#: Below it the frames are a few MB and a full collection (0.1-0.3 s in a process holding many
#: modules, e.g. a test worker) costs more than it frees.
RELEASE_MEMORY_MENTIONS = 200_000
