"""Resolve every person mention in a DuckDB warehouse to one person (data contract section 5).

Plan, in the order the code runs:

1. ``person_mention``: one row per (source, file, row, role) from the canonical ``src_*`` tables.
2. Exact path (SQL): a valid or upgraded-15 ID links to that ID. Guard: a mention whose name is
   incompatible with the ID's registry name is an ID conflict (``identity_conflict``) and goes
   to the fuzzy path instead of being merged.
3. Handlers/approvers (name only) link to payroll staff of their township where unique.
4. Fuzzy path: mentions without a usable ID, grouped by identical attributes into nodes, probe
   the person index (one node per ID) with the FS/EM engine (``data/persons.yaml``); analyst
   judgements become must/cannot links; constrained clustering never joins two registry IDs.
5. Person ids: the registry ID, else the valid outside ID, else a stable ``P`` id (the previous
   run's id for these mentions, or a hash of the cluster's first mention).
6. Outputs: ``identity_link``, ``person``, ``identity_explanation``, ``identity_params`` and the
   resolved views ``r_<source>`` with one ``R_pid`` column per role.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from crossmatch import idnumber
from crossmatch.errors import WarehouseError
from crossmatch.identity.comparisons import ChineseName
from crossmatch.identity.engine import LinkageConfig, Linker
from crossmatch.identity.fs import FSModel
from crossmatch.identity.names import name_keys
from crossmatch.identity.roles import RoleRef, default_roles, roles_from_specs

log = logging.getLogger(__name__)

JUDGEMENT_DDL = """
CREATE TABLE IF NOT EXISTS identity_judgement (
    a_source VARCHAR, a_file VARCHAR, a_row INTEGER, a_role VARCHAR,
    b_source VARCHAR, b_file VARCHAR, b_row INTEGER, b_role VARCHAR,
    same BOOLEAN, analyst VARCHAR, note VARCHAR, created_at TIMESTAMP DEFAULT current_timestamp
)"""

_CTX = ("village_code", "account", "township", "unit")


@dataclass
class ResolveSummary:
    """What a run did, for the CLI and the flow's logs."""

    mentions: int = 0
    exact: int = 0
    fuzzy: int = 0
    judgement: int = 0
    unresolved: int = 0
    conflicts: int = 0
    persons: int = 0
    candidate_pairs: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [
            f"mentions {self.mentions:,}: exact {self.exact:,}, fuzzy {self.fuzzy:,}, "
            f"judgement {self.judgement:,}, unresolved {self.unresolved:,}",
            f"persons {self.persons:,}; ID conflicts {self.conflicts:,}; "
            f"candidate pairs {self.candidate_pairs:,}",
            "time: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.seconds.items()),
        ]
        lines += [f"skipped: {s}" for s in self.skipped]
        return "\n".join(lines)


def default_config() -> LinkageConfig:
    path = resources.files("crossmatch.identity").joinpath("data/persons.yaml")
    return LinkageConfig.load(str(path))


# --- 1. mentions ----------------------------------------------------------------------------
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
    con.register("_df_in", df)
    try:
        kind = "TEMP TABLE" if temp else "TABLE"
        con.execute(f"CREATE OR REPLACE {kind} {name} AS SELECT * FROM _df_in")
    finally:
        con.unregister("_df_in")


def _q(s: str) -> str:
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
        parts.append(
            f"""SELECT {_q(r.source)} AS source, _file AS file, _row AS row, {_q(r.role)} AS role,
                {col(r.name)} AS name, {col(f"{r.name}_raw" if r.name else None)} AS name_raw,
                {col(idc)} AS id, {col(f"{idc}_raw" if idc else None)} AS id_raw,
                {col(f"{idc}_status" if idc else None)} AS id_status,
                {ctx["village_code"]} AS village_code, {ctx["account"]} AS account,
                {ctx["township"]} AS township, {ctx["unit"]} AS unit
            FROM {r.table}"""
        )
    if not parts:
        raise WarehouseError(
            "no person-bearing src_* table found in the warehouse; run `crossmatch ingest` first"
        )
    con.execute(
        "CREATE OR REPLACE TABLE person_mention AS SELECT *, "
        "CASE WHEN id IS NOT NULL THEN strptime(substr(id, 7, 8), '%Y%m%d')::DATE END "
        "AS birth_date, "
        "CASE WHEN id IS NOT NULL THEN "
        "CASE WHEN CAST(substr(id, 17, 1) AS INTEGER) % 2 = 1 THEN '男' ELSE '女' END END AS sex "
        "FROM (" + " UNION ALL ".join(parts) + ") "
        "WHERE name IS NOT NULL OR id IS NOT NULL OR id_raw IS NOT NULL"
    )


# --- 2. exact path ----------------------------------------------------------------------------
def build_id_index(con: duckdb.DuckDBPyConnection) -> None:
    """``_id_node``: one row per valid ID, its best name/village and whether it is registered."""
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _id_node AS
        SELECT id,
            coalesce(arg_min(name, CASE WHEN source = 'hukou' THEN 0 ELSE 1 END)
                FILTER (WHERE source = 'hukou'), mode(name)) AS name,
            coalesce(arg_min(village_code, 0) FILTER (WHERE source = 'hukou'),
                mode(village_code)) AS village_code,
            bool_or(source = 'hukou') AS in_registry
        FROM person_mention WHERE id IS NOT NULL GROUP BY id"""
    )
    # account -> owner, where the owner is unambiguous among ID-bearing mentions
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _acct_owner AS
        SELECT account, min(id) AS owner FROM person_mention
        WHERE account IS NOT NULL AND id IS NOT NULL
        GROUP BY account HAVING count(DISTINCT id) = 1"""
    )


def find_conflicts(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Mentions whose valid ID belongs to a clearly different name (not a spelling variant)."""
    cand = con.execute(
        """SELECT m.source, m.file, m.row, m.role, m.id, m.name AS m_name, n.name AS n_name
        FROM person_mention m JOIN _id_node n USING (id)
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


# --- 3. handlers -------------------------------------------------------------------------------
def link_handlers(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Name-only staff mentions (a township context, no ID) -> payroll staff of that township.

    Unique exact-name match among payroll persons whose unit name contains the township name:
    probability 0.99; unique same-pinyin match: 0.9. Ambiguous or absent: left to the fuzzy path.
    """
    h = con.execute(
        """SELECT source, file, row, role, name, township FROM person_mention
        WHERE id IS NULL AND id_raw IS NULL AND township IS NOT NULL AND name IS NOT NULL"""
    ).df()
    staff = con.execute(
        """SELECT DISTINCT id, name, unit FROM person_mention
        WHERE source = 'payroll' AND id IS NOT NULL AND unit IS NOT NULL"""
    ).df()
    if h.empty or staff.empty:
        return pd.DataFrame(columns=["source", "file", "row", "role", "id", "probability"])
    staff["name_py"] = name_keys(staff["name"])["name_py"]
    h["name_py"] = name_keys(h["name"])["name_py"]
    out = []
    for (name, py, town), grp in h.groupby(["name", "name_py", "township"], dropna=False):
        local = staff[staff["unit"].str.contains(str(town), regex=False)]
        hit = local[local["name"] == name]
        prob = 0.99
        if hit["id"].nunique() != 1:
            hit = local[local["name_py"] == py]
            prob = 0.9
        if hit["id"].nunique() == 1:
            out.append(
                grp[["source", "file", "row", "role"]].assign(
                    id=hit["id"].iloc[0], probability=prob
                )
            )
    if not out:
        return pd.DataFrame(columns=["source", "file", "row", "role", "id", "probability"])
    return pd.concat(out, ignore_index=True)


# --- 4. fuzzy path ------------------------------------------------------------------------------
def _candidate_id(raw: pd.Series) -> pd.Series:
    """The cleaned 18-character string of an invalid ID (bad checksum/date), else None."""

    def one(x: object) -> str | None:
        if x is None or (isinstance(x, float) and np.isnan(x)):
            return None
        s = idnumber.clean(x)
        if len(s) == 18 and s[:17].isdigit():
            return s
        if len(s) == 15 and s.isdigit():
            return s[:6] + "19" + s[6:] + "?"
        return None

    return raw.map(one)


def _node_frame(ids: pd.DataFrame, fz: pd.DataFrame) -> pd.DataFrame:
    """Stack ID nodes and fuzzy-group nodes with the key columns the config blocks on."""
    nodes = pd.concat([ids, fz], ignore_index=True)
    nodes["node"] = np.arange(len(nodes))
    keys = name_keys(nodes["name"])
    nodes = pd.concat([nodes, keys], axis=1)
    idc = nodes["idc"].astype("string")
    birth = idc.str.slice(6, 14)
    ok_birth = birth.str.fullmatch(r"(19|20)\d{6}").fillna(False)
    nodes["birth"] = birth.where(ok_birth)
    nodes["id_s1"] = idc.str.slice(0, 12)
    nodes["id_s2"] = idc.str.slice(0, 6) + idc.str.slice(12, 18)
    nodes["id_s3"] = idc.str.slice(6, 18)
    nodes["township"] = nodes["village_code"].astype("string").str.slice(0, 9)
    nodes["township"] = nodes["township"].where(nodes["township"].str.len() == 9)
    for c in ("birth", "id_s1", "id_s2", "id_s3", "township"):
        nodes[c] = nodes[c].astype(object).where(nodes[c].notna(), None)
    nodes["is_probe"] = nodes["reg_id"].isna()
    return nodes


def _stable_pid(keys: list[str]) -> str:
    return "P" + hashlib.sha1(min(keys).encode("utf-8")).hexdigest()[:15].upper()


def resolve_identities(
    con: duckdb.DuckDBPyConnection,
    specs: Any = None,
    *,
    roles: list[RoleRef] | None = None,
    config: LinkageConfig | None = None,
    retrain: bool = False,
) -> ResolveSummary:
    """Run identity resolution in the warehouse ``con`` and publish its tables and views.

    ``specs``: parsed source specs (their ``persons:`` blocks); default: the contract's roles.
    ``retrain``: re-estimate the FS weights even when ``identity_params`` holds earlier ones
    (by default a warehouse that has been resolved before reuses its weights, so a night's run
    links new records against the same scale and person ids stay put).
    """
    s = ResolveSummary()
    t = time.perf_counter()
    roles = roles or (roles_from_specs(specs) if specs is not None else default_roles())
    config = config or default_config()
    con.execute(JUDGEMENT_DDL)
    build_mentions(con, roles, s)
    s.mentions = con.execute("SELECT count(*) FROM person_mention").fetchone()[0]
    build_id_index(con)
    conflicts = find_conflicts(con)
    s.conflicts = len(conflicts)
    _store(
        con,
        "identity_conflict",
        conflicts.rename(columns={"m_name": "name", "n_name": "registry_name"})[
            ["source", "file", "row", "role", "id", "name", "registry_name", "kind", "detail"]
        ],
    )
    s.seconds["exact"] = time.perf_counter() - t

    t = time.perf_counter()
    handlers = link_handlers(con)
    _store(con, "_handler_link", handlers, temp=True)
    s.seconds["handlers"] = time.perf_counter() - t

    t = time.perf_counter()
    # the fuzzy pool: no usable ID, or an ID conflict; handler links already made are left out
    fz = con.execute(
        """SELECT m.source, m.file, m.row, m.role, m.name, m.id_raw, m.village_code,
            m.account, m.township AS township_name, c.id AS conflict_id,
            coalesce(o.owner, CASE WHEN m.account IS NOT NULL THEN 'A:' || m.account END) AS acct
        FROM person_mention m
        LEFT JOIN identity_conflict c USING (source, file, row, role)
        LEFT JOIN _handler_link h USING (source, file, row, role)
        LEFT JOIN _acct_owner o ON o.account = m.account
        WHERE (m.id IS NULL OR c.id IS NOT NULL) AND h.id IS NULL AND m.name IS NOT NULL"""
    ).df()
    fz["idc"] = _candidate_id(fz["id_raw"])
    fz.loc[fz["conflict_id"].notna(), "idc"] = None
    jmentions = con.execute(
        "SELECT a_source, a_file, a_row, a_role, b_source, b_file, b_row, b_role, same "
        "FROM identity_judgement"
    ).df()
    judged = set()
    for side in ("a", "b"):
        judged |= set(
            zip(
                jmentions[f"{side}_source"],
                jmentions[f"{side}_file"],
                jmentions[f"{side}_row"],
                jmentions[f"{side}_role"],
                strict=True,
            )
        )
    fz["mkey"] = list(zip(fz["source"], fz["file"], fz["row"], fz["role"], strict=True))
    gcols = ["name", "idc", "village_code", "acct", "township_name", "conflict_id"]
    gkey = fz[gcols].astype(str).agg("\x1f".join, axis=1)
    # a judged mention is its own node so that the judgement applies to it alone
    solo = fz["mkey"].isin(judged)
    gkey = gkey.where(~solo, "solo\x1f" + fz["mkey"].astype(str))
    fz["group"] = pd.factorize(gkey)[0]
    groups = fz.drop_duplicates("group")[["group", *gcols]].reset_index(drop=True)
    # ID-judged mentions with a valid ID (must/cannot against them) join as their ID's node
    ids = con.execute(
        """SELECT n.id, n.name, n.village_code, n.in_registry,
            (SELECT min(owner) FROM _acct_owner o WHERE o.owner = n.id) AS acct
        FROM _id_node n"""
    ).df()
    id_nodes = pd.DataFrame(
        {
            "name": ids["name"],
            "idc": ids["id"],
            "village_code": ids["village_code"],
            "acct": ids["acct"],
            "reg_id": ids["id"].where(ids["in_registry"]),
            "ext_id": ids["id"].where(~ids["in_registry"]),
            "group": -1,
        }
    )
    g_nodes = pd.DataFrame(
        {
            "name": groups["name"],
            "idc": groups["idc"],
            "village_code": groups["village_code"],
            "acct": groups["acct"],
            "reg_id": None,
            "ext_id": None,
            "group": groups["group"],
            "conflict_id": groups["conflict_id"],
        }
    )
    nodes = _node_frame(id_nodes, g_nodes)
    n_id = len(id_nodes)
    # fuzzy-group nodes whose ID conflicted must not be linked back to that ID
    nodes["conflict_id"] = (
        nodes["conflict_id"].astype(object).where(nodes["conflict_id"].notna(), None)
    )
    s.seconds["prepare"] = time.perf_counter() - t

    t = time.perf_counter()
    model = None if retrain else _load_model(con, config)
    linker = Linker(nodes, config, model=model)
    left, right = linker.candidate_pairs()
    cid = nodes["conflict_id"].to_numpy(dtype=object)
    idv = nodes["idc"].to_numpy(dtype=object)
    bad = ((cid[left] != None) & (cid[left] == idv[right])) | (  # noqa: E711
        (cid[right] != None) & (cid[right] == idv[left])  # noqa: E711
    )
    left, right = left[~bad], right[~bad]
    g = linker.compare(left, right)
    if model is None:
        linker.train(left, right, g)
    pred = linker.score(left, right, g)
    s.candidate_pairs = len(left)
    s.seconds["score"] = time.perf_counter() - t

    t = time.perf_counter()
    node_of_group = dict(zip(nodes["group"].iloc[n_id:], nodes["node"].iloc[n_id:], strict=True))
    node_of_id = dict(zip(ids["id"], range(n_id), strict=True))
    fz["node"] = fz["group"].map(node_of_group)

    def node_of(src: str, file: str, row: int, role: str) -> int | None:
        hit = fz.loc[fz["mkey"] == (src, file, row, role), "node"]
        if len(hit):
            return int(hit.iloc[0])
        r = con.execute(
            "SELECT id FROM person_mention WHERE source=? AND file=? AND row=? AND role=?",
            [src, file, int(row), role],
        ).fetchone()
        return node_of_id.get(r[0]) if r and r[0] else None

    must, cannot = [], []
    for j in jmentions.itertuples(index=False):
        a = node_of(j.a_source, j.a_file, j.a_row, j.a_role)
        b = node_of(j.b_source, j.b_file, j.b_row, j.b_role)
        if a is None or b is None:
            log.warning("judgement refers to a mention not in this run: %s", j)
            continue
        (must if j.same else cannot).append((a, b))
    labels, used = linker.cluster(pred, must_link=must, cannot_link=cannot)
    s.seconds["cluster"] = time.perf_counter() - t

    t = time.perf_counter()
    _publish(con, nodes, n_id, fz, labels, pred, used, must, roles, s)
    _save_model(con, linker.model, config)
    s.seconds["publish"] = time.perf_counter() - t
    return s


def _publish(
    con: duckdb.DuckDBPyConnection,
    nodes: pd.DataFrame,
    n_id: int,
    fz: pd.DataFrame,
    labels: np.ndarray,
    pred: Any,
    used: np.ndarray,
    must: list[tuple[int, int]],
    roles: list[RoleRef],
    s: ResolveSummary,
) -> None:
    # person id per cluster: registry ID > outside ID > previous P id > hash
    reg = nodes["reg_id"].to_numpy(dtype=object)
    ext = nodes["ext_id"].to_numpy(dtype=object)
    cl = pd.DataFrame({"label": labels, "reg": reg, "ext": ext})
    anchor = cl.groupby("label").agg(reg=("reg", "first"), ext=("ext", "first"))
    pid = anchor["reg"].fillna(anchor["ext"])

    fz["label"] = labels[fz["node"].to_numpy()]
    fz["mstr"] = fz["source"] + "|" + fz["file"] + "|" + fz["row"].astype(str) + "|" + fz["role"]
    need = fz[fz["label"].map(pid).isna()]
    prev = _previous_pids(con)
    new_pid: dict[int, str] = {}
    if len(need):
        for lab, grp in need.groupby("label"):
            old = grp["mstr"].map(prev).dropna()
            new_pid[int(lab)] = old.mode().iloc[0] if len(old) else _stable_pid(list(grp["mstr"]))
    pid = pid.copy()
    for k, v in new_pid.items():
        pid.loc[k] = v

    # link probability per node: best used edge touching it
    prob = np.zeros(len(nodes))
    ul, ur, up = pred.left[used], pred.right[used], pred.probability[used]
    np.maximum.at(prob, ul, up)
    np.maximum.at(prob, ur, up)
    judged_nodes = {x for pair in must for x in pair}

    has_anchor = pd.Series(labels).map(anchor["reg"].fillna(anchor["ext"]).notna()).to_numpy()
    node_idx = fz["node"].to_numpy()
    method = np.where(has_anchor[node_idx], "fuzzy", "unresolved").astype(object)
    method[np.isin(node_idx, list(judged_nodes))] = "judgement"
    fz["person_id"] = fz["label"].map(pid)
    fz["method"] = method
    fz["probability"] = np.where(method == "unresolved", np.nan, prob[node_idx])
    fz.loc[fz["method"] == "judgement", "probability"] = 1.0
    fz["cluster_id"] = fz["label"]
    fz["node_id"] = node_idx

    idmap = pd.DataFrame(
        {
            "id": nodes["idc"].iloc[:n_id].to_numpy(),
            "person_id": pid.reindex(labels[:n_id]).to_numpy(),
            "cluster_id": labels[:n_id],
            "node_id": np.arange(n_id),
        }
    )
    fzl = fz[
        [
            "source",
            "file",
            "row",
            "role",
            "person_id",
            "method",
            "probability",
            "cluster_id",
            "node_id",
        ]
    ]
    _store(con, "_idmap", idmap, temp=True)
    _store(con, "_fzl", fzl, temp=True)
    con.execute(
        """CREATE OR REPLACE TABLE identity_link AS
        SELECT m.source, m.file, m.row, m.role,
            coalesce(f.person_id, hm.person_id, im.person_id) AS person_id,
            CASE WHEN f.method IS NOT NULL THEN f.method
                 WHEN h.id IS NOT NULL THEN 'fuzzy'
                 WHEN m.id_status = 'upgraded15' THEN 'upgraded15'
                 WHEN m.id IS NOT NULL THEN 'exact'
                 ELSE 'unresolved' END AS method,
            CASE WHEN f.method IS NOT NULL THEN f.probability
                 WHEN h.id IS NOT NULL THEN h.probability
                 WHEN m.id IS NOT NULL THEN 1.0 END AS probability,
            coalesce(f.cluster_id, hm.cluster_id, im.cluster_id) AS cluster_id,
            coalesce(f.node_id, hm.node_id, im.node_id) AS node_id
        FROM person_mention m
        LEFT JOIN _fzl f USING (source, file, row, role)
        LEFT JOIN _handler_link h USING (source, file, row, role)
        LEFT JOIN _idmap hm ON hm.id = h.id
        LEFT JOIN _idmap im ON im.id = m.id"""
    )
    # mentions with neither name nor usable ID: unresolved, with a stable id of their own
    con.execute(
        """UPDATE identity_link SET person_id = 'P' || upper(substr(sha1(
            source || '|' || file || '|' || CAST(row AS VARCHAR) || '|' || role), 1, 15)),
            method = 'unresolved'
        WHERE person_id IS NULL"""
    )
    counts = dict(
        con.execute("SELECT method, count(*) FROM identity_link GROUP BY method").fetchall()
    )
    s.exact = counts.get("exact", 0) + counts.get("upgraded15", 0)
    s.fuzzy = counts.get("fuzzy", 0)
    s.judgement = counts.get("judgement", 0)
    s.unresolved = counts.get("unresolved", 0)

    _publish_explanations(con, nodes, pred, used)
    _publish_persons(con)
    s.persons = con.execute("SELECT count(*) FROM person").fetchone()[0]
    _publish_views(con, roles)


def _publish_explanations(
    con: duckdb.DuckDBPyConnection, nodes: pd.DataFrame, pred: Any, used: np.ndarray
) -> None:
    """Per fuzzy node: the comparisons of the strongest link that put it in its person."""
    idx = np.flatnonzero(used)
    rows = []
    if len(idx):
        both = pd.DataFrame(
            {
                "node": np.concatenate([pred.left[idx], pred.right[idx]]),
                "other": np.concatenate([pred.right[idx], pred.left[idx]]),
                "e": np.concatenate([idx, idx]),
                "p": np.concatenate([pred.probability[idx], pred.probability[idx]]),
            }
        )
        best = both.sort_values("p", ascending=False).drop_duplicates("node")
        for r in best.itertuples(index=False):
            e = int(r.e)
            other = nodes.iloc[int(r.other)]
            desc = (
                f"{other['name']} / ID {other['idc']}"
                if other["idc"] is not None
                else str(other["name"])
            )
            for j, name in enumerate(pred.weight_names):
                lvl = int(pred.levels[e, j]) if j < pred.levels.shape[1] else None
                rows.append((int(r.node), desc, name, lvl, float(pred.weights[e, j]), float(r.p)))
    ex = pd.DataFrame(
        rows, columns=["node_id", "linked_to", "comparison", "level", "weight", "probability"]
    )
    _store(con, "identity_explanation", ex)


def _publish_persons(con: duckdb.DuckDBPyConnection) -> None:
    tables = _tables(con)
    deaths = []
    if "src_death" in tables and "death_date" in _columns(con, "src_death"):
        deaths.append(
            "SELECT l.person_id, d.death_date AS d FROM src_death d JOIN identity_link l "
            "ON l.source='death' AND l.file=d._file AND l.row=d._row"
        )
    if "src_cremation" in tables and "cremation_date" in _columns(con, "src_cremation"):
        deaths.append(
            "SELECT l.person_id, d.cremation_date FROM src_cremation d JOIN identity_link l "
            "ON l.source='cremation' AND l.file=d._file AND l.row=d._row"
        )
    hcols = _columns(con, "src_hukou")
    if {"cancel_reason", "cancel_date"} <= hcols:
        deaths.append(
            "SELECT l.person_id, h.cancel_date FROM src_hukou h JOIN identity_link l "
            "ON l.source='hukou' AND l.file=h._file AND l.row=h._row "
            "WHERE h.cancel_reason = '死亡'"
        )
    death_sql = (
        " UNION ALL ".join(deaths)
        if deaths
        else "SELECT NULL::VARCHAR AS person_id, NULL::DATE AS d"
    )
    hh = "h.household_no" if "household_no" in hcols else "NULL::VARCHAR"
    con.execute(
        f"""CREATE OR REPLACE TABLE person AS
        WITH dd AS (SELECT person_id, min(d) AS death_date FROM ({death_sql}) x(person_id, d)
                    GROUP BY person_id),
        reg AS (SELECT l.person_id, min({hh}) AS household_no FROM identity_link l
                JOIN src_hukou h ON l.source = 'hukou' AND l.file = h._file AND l.row = h._row
                GROUP BY l.person_id)
        SELECT l.person_id,
            coalesce(n.name, mode(m.name)) AS name,
            n.id AS id_number,
            coalesce(min(m.birth_date), NULL) AS birth_date,
            min(m.sex) AS sex,
            min(reg.household_no) AS household_no,
            coalesce(n.village_code, mode(m.village_code)) AS village_code,
            coalesce(bool_or(n.in_registry), false) AS in_registry,
            min(dd.death_date) AS death_date
        FROM identity_link l JOIN person_mention m USING (source, file, row, role)
        LEFT JOIN _id_node n ON n.id = l.person_id
        LEFT JOIN reg ON reg.person_id = l.person_id
        LEFT JOIN dd ON dd.person_id = l.person_id
        GROUP BY l.person_id, n.name, n.id, n.village_code"""
    ) if "src_hukou" in tables else con.execute(
        """CREATE OR REPLACE TABLE person AS
        SELECT l.person_id, mode(m.name) AS name, n.id AS id_number,
            min(m.birth_date) AS birth_date, min(m.sex) AS sex, NULL::VARCHAR AS household_no,
            mode(m.village_code) AS village_code,
            false AS in_registry, NULL::DATE AS death_date
        FROM identity_link l JOIN person_mention m USING (source, file, row, role)
        LEFT JOIN _id_node n ON n.id = l.person_id GROUP BY l.person_id, n.id"""
    )


def _publish_views(con: duckdb.DuckDBPyConnection, roles: list[RoleRef]) -> None:
    by_source: dict[str, list[str]] = {}
    for r in roles:
        if _columns(con, r.table):
            by_source.setdefault(r.source, []).append(r.role)
    for src, rls in by_source.items():
        sel = ", ".join(f"l{i}.person_id AS {role}_pid" for i, role in enumerate(rls))
        joins = " ".join(
            f"LEFT JOIN identity_link l{i} ON l{i}.source = {_q(src)} AND l{i}.file = s._file "
            f"AND l{i}.row = s._row AND l{i}.role = {_q(role)}"
            for i, role in enumerate(rls)
        )
        con.execute(f"CREATE OR REPLACE VIEW r_{src} AS SELECT s.*, {sel} FROM src_{src} s {joins}")


# --- persistence of weights and ids -------------------------------------------------------
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


def _load_model(con: duckdb.DuckDBPyConnection, config: LinkageConfig) -> FSModel | None:
    tables = _tables(con)
    if "identity_params" not in tables:
        return None
    row = con.execute("SELECT model FROM identity_params ORDER BY saved_at DESC LIMIT 1").fetchone()
    if not row:
        return None
    model = FSModel.from_dict(json.loads(row[0]))
    if model.names != [c.key for c in config.comparisons]:
        return None
    return model


def _save_model(con: duckdb.DuckDBPyConnection, model: FSModel, config: LinkageConfig) -> None:
    con.execute("CREATE TABLE IF NOT EXISTS identity_params (saved_at TIMESTAMP, model VARCHAR)")
    con.execute(
        "INSERT INTO identity_params VALUES (current_timestamp, ?)", [json.dumps(model.to_dict())]
    )


# --- analyst API ---------------------------------------------------------------------------
def explain(
    con: duckdb.DuckDBPyConnection, source: str, file: str, row: int, role: str
) -> pd.DataFrame:
    """Why a record was linked: one row per comparison with its level and log2 weight
    (Splink's waterfall), plus the prior. Empty for exact-ID links (the ID is the reason)."""
    df = con.execute(
        """SELECT l.person_id, l.method, e.linked_to, e.comparison, e.level, e.weight,
            e.probability
        FROM identity_link l JOIN identity_explanation e USING (node_id)
        WHERE l.source = ? AND l.file = ? AND l.row = ? AND l.role = ?
          AND l.method IN ('fuzzy', 'judgement')""",
        [source, file, int(row), role],
    ).df()
    if df.empty:
        return df
    model = _load_model(con, default_config())
    prior = model.prior_log2() if model else float("nan")
    head = df.iloc[[0]].assign(comparison="prior", level=-1, weight=prior)
    return pd.concat([head, df], ignore_index=True)


def record_judgement(
    con: duckdb.DuckDBPyConnection,
    a: tuple[str, str, int, str],
    b: tuple[str, str, int, str],
    same: bool,
    analyst: str = "",
    note: str = "",
) -> None:
    """Store that mentions ``a`` and ``b`` (source, file, row, role) are / are not one person.

    Every later :func:`resolve_identities` honours it: a must-link joins them (even across two
    IDs: the analyst has seen the papers), a cannot-link keeps them apart.
    """
    con.execute(JUDGEMENT_DDL)
    con.execute(
        "INSERT INTO identity_judgement VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, current_timestamp)",
        [*a[:2], int(a[2]), a[3], *b[:2], int(b[2]), b[3], bool(same), analyst, note],
    )
