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
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
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
from crossmatch.identity import accounts, role_profile, staff
from crossmatch.identity import household as co_mentions
from crossmatch.identity import keys as id_keys
from crossmatch.identity.comparisons import ChineseName
from crossmatch.identity.engine import LinkageConfig, Linker
from crossmatch.identity.fs import FSModel
from crossmatch.identity.names import name_keys
from crossmatch.identity.roles import RoleRef, default_roles, roles_from_specs
from crossmatch.warehouse import fetch_one

log = logging.getLogger(__name__)

JUDGEMENT_DDL = """
CREATE TABLE IF NOT EXISTS identity_judgement (
    a_source VARCHAR, a_file VARCHAR, a_row INTEGER, a_role VARCHAR,
    b_source VARCHAR, b_file VARCHAR, b_row INTEGER, b_role VARCHAR,
    same BOOLEAN, analyst VARCHAR, note VARCHAR, created_at TIMESTAMP DEFAULT current_timestamp
)"""

# context keys a role may give (RoleRef.context): village_code, village (a village *name*:
# mapped to its code through the name / code pairs other records give), account, township
# (a township name: staff of that township), unit (employer), date (the record's date or
# month, e.g. a payment's period: a candidate who had died before it is unlikely)
_CTX = ("village_code", "village", "account", "township", "unit", "date")


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
    mode: str = "full"
    new_mentions: int = 0
    passed_over_dead: int = 0  # candidate links weighed down: dead before the record, a living fit
    weighed_down_by_role: int = 0  # candidate links weighed down: implausible for the role
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def render(self) -> str:
        head = (
            "unchanged: the same file versions, configuration and judgements as the last "
            "run; nothing resolved (--full resolves again)"
            if self.mode == "unchanged"
            else f"{self.mode} run: {self.new_mentions:,} new or changed mentions resolved, "
            f"{self.mentions - self.new_mentions:,} kept their link"
        )
        lines = [
            head,
            f"mentions {self.mentions:,}: exact {self.exact:,}, fuzzy {self.fuzzy:,}, "
            f"judgement {self.judgement:,}, unresolved {self.unresolved:,}",
            f"persons {self.persons:,}; ID conflicts {self.conflicts:,}; "
            f"candidate pairs {self.candidate_pairs:,}; candidates weighed down as dead before "
            f"the record {self.passed_over_dead:,}, as implausible for the role "
            f"{self.weighed_down_by_role:,}",
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
    # DuckDB refuses register() while an earlier execute() has unread rows (a fetchone());
    # a new statement closes that result
    con.execute("SELECT 1").fetchall()
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
        # the row's township name (contract field `township`), to tell two villages of one
        # name apart; only read where the role names its village by name
        town = (
            "CAST(NULLIF(trim(CAST(township AS VARCHAR)), '') AS VARCHAR)"
            if context.get("village") and "township" in cols
            else "CAST(NULL AS VARCHAR)"
        )
        fh = "CAST(_file_hash AS VARCHAR)" if "_file_hash" in cols else "CAST(NULL AS VARCHAR)"
        parts.append(
            f"""SELECT {_q(r.source)} AS source, _file AS file, _row AS row, {_q(r.role)} AS role,
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


# --- 2. exact path ----------------------------------------------------------------------------
def build_id_index(con: duckdb.DuckDBPyConnection) -> None:
    """``_id_node``: one row per valid ID, its best name/village and whether it is registered."""
    # registry IDs take the registry's name and village; only the IDs outside the registry
    # need the (costly) most frequent name over their mentions
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _id_node AS
        WITH reg AS (
            SELECT id, arg_min(name, row) AS name, arg_min(village_code, row) AS village_code
            FROM person_mention WHERE id IS NOT NULL AND source = 'hukou' GROUP BY id)
        SELECT id, name, village_code, true AS in_registry FROM reg
        UNION ALL
        SELECT id, mode(name) AS name, mode(village_code) AS village_code, false AS in_registry
        FROM person_mention m WHERE id IS NOT NULL AND source <> 'hukou'
            AND NOT EXISTS (SELECT 1 FROM reg WHERE reg.id = m.id)
        GROUP BY id"""
    )
    # node number = position in ID order (the in-memory linker works on positions)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _id_node AS "
        "SELECT (row_number() OVER (ORDER BY id) - 1)::BIGINT AS node, * FROM _id_node"
    )
    # account -> owner, where the owner is unambiguous among ID-bearing mentions
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _acct_owner AS
        SELECT account, min(id) AS owner FROM person_mention
        WHERE account IS NOT NULL AND id IS NOT NULL
        GROUP BY account HAVING count(DISTINCT id) = 1"""
    )
    # a shared account: the owner of the same name (crossmatch.identity.accounts)
    con.execute("CREATE OR REPLACE TEMP TABLE _acct_name_owner AS " + accounts.name_owner_sql())


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


# --- 3. handlers -------------------------------------------------------------------------------
def link_handlers(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Name-only staff mentions (a township context, no ID) -> payroll staff of that township.

    Candidates are payroll persons whose unit name contains the township name. A unique
    exact-name match links with probability 0.99, a unique same-pinyin match with 0.9.
    Why a second pass: a township government easily has two clerks called 王伟, one the
    handler, the other the approver. What kind of staff does a role's work (unit kind, i.e. the
    unit name without the township, and post: 人民政府/民政办科员 for handlers) is *learned*
    from the first pass's unique links, and an ambiguous name is retried among staff of that
    profile only (probability 0.9 / 0.85). Still ambiguous or absent: left to the fuzzy path.
    """
    empty = pd.DataFrame(columns=["source", "file", "row", "role", "id", "probability"])
    h = con.execute(
        """SELECT source, file, row, role, name, township FROM person_mention
        SEMI JOIN _new USING (source, file, row, role)
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
    """
    empty = pd.DataFrame(columns=["source", "file", "row", "role", "id", "probability"])
    if "household_no" not in _columns(con, "src_hukou"):
        return empty
    cand = con.execute(
        """WITH hh AS (
            SELECT m.id, any_value(s.household_no) AS household_no FROM person_mention m
            JOIN src_hukou s ON m.source = 'hukou' AND s._file = m.file AND s._row = m.row
            WHERE m.id IS NOT NULL AND s.household_no IS NOT NULL GROUP BY m.id),
        p AS (
            SELECT DISTINCT b.source, b.file, b.row, b.role, b.name, a.id AS known
            FROM person_mention b
            SEMI JOIN _new USING (source, file, row, role)
            JOIN person_mention a ON a.source = b.source AND a.file = b.file
                AND a.row = b.row AND a.role <> b.role
            WHERE b.id IS NULL AND b.id_raw IS NULL AND b.id_status = 'missing'
                AND b.name IS NOT NULL AND a.id IS NOT NULL AND b.source <> 'hukou')
        SELECT p.source, p.file, p.row, p.role, p.name, n.id, n.name AS cand_name
        FROM p JOIN hh h1 ON h1.id = p.known
        JOIN hh h2 ON h2.household_no = h1.household_no AND h2.id <> p.known
        JOIN _id_node n ON n.id = h2.id AND n.in_registry
        WHERE n.name IS NOT NULL"""
    ).df()
    if cand.empty:
        return empty
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
    out = cand[n_ids == 1].drop_duplicates(key)
    out = out.assign(probability=np.where(out["level"] == 4, 0.99, 0.95))
    # a node of its own per mention, so that its explanation is its own (see _explain_pass)
    out["node_id"] = "H:" + (
        out["source"] + "|" + out["file"] + "|" + out["row"].astype(str) + "|" + out["role"]
    ).map(lambda k: hashlib.sha1(k.encode("utf-8")).hexdigest()[:16])
    out["linked_to"] = out["cand_name"] + " / ID " + out["id"]
    out["level"] = out["level"].astype(int)
    cols = [*key, "id", "probability", "node_id", "linked_to", "level"]
    return out[cols].reset_index(drop=True)


# --- 4. fuzzy path ------------------------------------------------------------------------------
_KEYS = (
    "name", "name_py", "name_la", "name_lapy", "surname_py", "given_py", "idc", "birth",
    "id_s1", "id_s2", "id_s3", id_keys.COLUMN, "village_code", "township", "acct",
)  # fmt: skip
_U_SAMPLE_NODES = 20_000


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


def _node_frame(nodes: pd.DataFrame) -> pd.DataFrame:
    """Add the key columns the config blocks and compares on (pandas side: probes and
    previous persons; the ID index gets the same columns in SQL, see :func:`_build_index`)."""
    nodes = nodes.reset_index(drop=True)
    keys = name_keys(nodes["name"])
    nodes = pd.concat([nodes, keys], axis=1)
    idc = nodes["idc"].astype("string")
    birth = idc.str.slice(6, 14)
    ok_birth = birth.str.fullmatch(r"(19|20)\d{6}").fillna(False)
    nodes["birth"] = birth.where(ok_birth)
    # the ID without one of its three parts (region, birth date, sequence + check): one
    # mistyped or transposed digit leaves at least one of the three intact
    nodes["id_s1"] = idc.str.slice(0, 14)
    nodes["id_s2"] = idc.str.slice(0, 6) + idc.str.slice(14, 18)
    nodes["id_s3"] = idc.str.slice(6, 18)
    nodes[id_keys.COLUMN] = id_keys.id_anagram(nodes["idc"])  # transpositions across the parts
    nodes["township"] = nodes["village_code"].astype("string").str.slice(0, 9)
    nodes["township"] = nodes["township"].where(nodes["township"].str.len() == 9)
    for c in (*_KEYS, "reg_id", "ext_id", "prev_pid", "conflict_id"):
        nodes[c] = nodes[c].astype(object).where(nodes[c].notna(), None)
    return nodes


def _build_deaths(con: duckdb.DuckDBPyConnection) -> None:
    """``_id_death``: per valid ID, the earliest death the death, cremation and registry
    (cancelled for death) records state for it (the same sources as ``person.death_date``)."""
    tables = _tables(con)
    parts = []
    for src, table, expr, where in (
        ("death", "src_death", "death_date", ""),
        ("cremation", "src_cremation", "cremation_date", ""),
        ("hukou", "src_hukou", "cancel_date", "AND s.cancel_reason = '死亡'"),
    ):
        cols = _columns(con, table) if table in tables else set()
        if expr not in cols or (where and "cancel_reason" not in cols):
            continue
        parts.append(
            f"""SELECT m.id, TRY_CAST(s.{expr} AS DATE) AS d FROM person_mention m
            JOIN {table} s ON m.source = {_q(src)} AND s._file = m.file AND s._row = m.row
            WHERE m.id IS NOT NULL {where}"""
        )
    body = " UNION ALL ".join(parts) if parts else "SELECT NULL::VARCHAR AS id, NULL::DATE AS d"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _id_death AS SELECT id, min(d) AS death "
        f"FROM ({body}) x WHERE id IS NOT NULL AND d IS NOT NULL GROUP BY id"
    )


def _build_index(con: duckdb.DuckDBPyConnection) -> int:
    """``_idx``: the person index, one row per valid ID with its blocking keys, made in SQL.

    Why SQL: the index has one row per valid ID (3 million in a big county) while only the few
    that share a blocking key with a probe are ever compared; keeping it in DuckDB keeps memory
    bounded. Name keys come from a small table over the distinct names (``str.translate``).
    """
    _build_deaths(con)
    names = con.execute("SELECT DISTINCT name FROM _id_node WHERE name IS NOT NULL").df()["name"]
    nk = name_keys(names)
    nk.insert(0, "name", names)
    _store(con, "_nk", nk, temp=True)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _idx AS
        SELECT n.node, n.name, k.name_py, k.name_la, k.name_lapy, k.surname_py, k.given_py,
            n.id AS idc,
            CASE WHEN regexp_full_match(substr(n.id, 7, 8), '(19|20)\\d{{6}}')
                THEN substr(n.id, 7, 8) END AS birth,
            substr(n.id, 1, 14) AS id_s1, substr(n.id, 1, 6) || substr(n.id, 15, 4) AS id_s2,
            substr(n.id, 7, 12) AS id_s3, {id_keys.id_anagram_sql("n.id")} AS {id_keys.COLUMN},
            n.village_code,
            CASE WHEN length(n.village_code) >= 9 THEN substr(n.village_code, 1, 9) END
                AS township,
            CASE WHEN o.owner IS NOT NULL THEN n.id END AS acct,
            CASE WHEN n.in_registry THEN n.id END AS reg_id,
            CASE WHEN NOT n.in_registry THEN n.id END AS ext_id,
            NULL::VARCHAR AS prev_pid, NULL::VARCHAR AS conflict_id, false AS is_probe,
            date_diff('day', DATE '1970-01-01', dd.death)::DOUBLE AS death_day,
            NULL::DOUBLE AS first_day
        FROM _id_node n LEFT JOIN _nk k USING (name)
        LEFT JOIN _id_death dd ON dd.id = n.id
        LEFT JOIN (SELECT owner FROM _acct_owner UNION SELECT owner FROM _acct_name_owner) o
            ON o.owner = n.id"""
    )
    return int(fetch_one(con, "SELECT count(*) FROM _id_node")[0])


def _allk_view(con: duckdb.DuckDBPyConnection) -> None:
    """``_allk``: every node's blocking keys (index + local). Blocking reads it, and so do the
    name frequencies, even on a night with no new mention to block (then only the latter)."""
    cols = ", ".join(
        f"CAST({c} AS VARCHAR) AS {c}" for c in (*_KEYS, "reg_id", "ext_id", "conflict_id")
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW _allk AS
        SELECT node, is_probe, {cols} FROM _idx
        UNION ALL SELECT node, is_probe, {cols} FROM _loc"""
    )


def _sql_pairs(
    con: duckdb.DuckDBPyConnection, config: LinkageConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Candidate pairs (global node numbers) by the config's blocking rules, in DuckDB, and
    their comparison levels (n x k int8) when every comparison has a SQL form (else None).

    Same semantics as :meth:`Linker.candidate_pairs` with probes on the left: a block whose key
    is shared by more than the rule's cap (counted over the whole population) is skipped.
    With levels, the pairs are also filtered in SQL the way :meth:`Linker._filter_pairs` and
    the ID-conflict guard do (two different exclusive values; a conflicted ID's own node).
    """
    _allk_view(con)
    parts: list[str] = []
    for rule, cap in config.rules():
        rc = list(rule)
        sel = ", ".join(rc)
        nn = " AND ".join(f"{c} IS NOT NULL" for c in rc)
        parts.append(
            f"""SELECT p.node AS l, a.node AS r, {len(parts)} AS rule
            FROM (SELECT node, {sel} FROM _allk WHERE is_probe AND {nn}) p
            JOIN (SELECT {", ".join(f"a.{c}" for c in rc)} FROM _allk a
                  SEMI JOIN (SELECT DISTINCT {sel} FROM _allk WHERE is_probe AND {nn}) q
                  ON {" AND ".join(f"a.{c} = q.{c}" for c in rc)}
                  GROUP BY ALL HAVING count(*) <= {int(cap)}) ok
              ON {" AND ".join(f"p.{c} = ok.{c}" for c in rc)}
            JOIN _allk a ON {" AND ".join(f"a.{c} = p.{c}" for c in rc)}
            WHERE p.node <> a.node AND NOT (a.is_probe AND a.node < p.node)"""
        )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _pairs AS SELECT least(l, r) AS l, greatest(l, r) AS r, rule "
        "FROM (" + " UNION ALL ".join(parts) + ")"
    )
    if log.isEnabledFor(logging.INFO):
        for rule, n in con.execute(
            "SELECT rule, count(*) FROM _pairs GROUP BY rule ORDER BY 1"
        ).fetchall():
            log.info("blocking rule %s: %d pairs", "+".join(config.rules()[rule][0]), n)
    exprs = [c.sql("a", "b") for c in config.comparisons]
    if config.source_column or any(e is None for e in exprs):
        res = con.execute("SELECT DISTINCT l, r FROM _pairs ORDER BY l, r").fetchnumpy()
        return np.asarray(res["l"], dtype=np.int64), np.asarray(res["r"], dtype=np.int64), None
    where = [f"NOT coalesce(a.{c} <> b.{c}, false)" for c in config.exclusive]
    where += [
        "NOT coalesce(a.conflict_id = b.idc, false)",
        "NOT coalesce(b.conflict_id = a.idc, false)",
    ]
    levels = ", ".join(f"CAST({e} AS TINYINT) AS g{j}" for j, e in enumerate(exprs))
    con.execute("CREATE OR REPLACE TEMP TABLE _pairs_u AS SELECT DISTINCT l, r FROM _pairs")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _allk_t AS SELECT * FROM _allk WHERE node IN "
        "(SELECT l FROM _pairs_u UNION SELECT r FROM _pairs_u)"
    )
    res = con.execute(
        f"""SELECT p.l, p.r, {levels} FROM _pairs_u p
        JOIN _allk_t a ON a.node = p.l JOIN _allk_t b ON b.node = p.r
        WHERE {" AND ".join(where)} ORDER BY p.l, p.r"""
    ).fetchnumpy()
    g = (
        np.column_stack([np.asarray(res[f"g{j}"], dtype=np.int8) for j in range(len(exprs))])
        if len(res["l"])
        else np.empty((0, len(exprs)), dtype=np.int8)
    )
    return np.asarray(res["l"], dtype=np.int64), np.asarray(res["r"], dtype=np.int64), g


_M_SAMPLE = 200_000


def _labelled_m(con: duckdb.DuckDBPyConnection, config: LinkageConfig) -> dict[int, np.ndarray]:
    """m per comparison (all but the ID's) from mentions whose valid ID names their person.

    Why: EM over blocked pairs cannot separate matches from namesakes here. Blocking on names
    fills the pairs with people who share a name, and the mixture EM finds is "the name agrees"
    (lambda near 1, m of the village = its distribution among namesakes). The records that
    carry a valid ID are matches we know without any truth file: a payment row's name, village
    and account set against its registry entry show how often a real match agrees on each.
    Those m are held fixed, and EM estimates the rest (the damaged-ID comparison) and lambda.
    """
    cols = {c for comp in config.comparisons for c in comp.columns()}
    sample = con.execute(
        f"""SELECT m.id, m.name, m.village_code,
            coalesce(o.owner, CASE WHEN m.account IS NOT NULL THEN 'A:' || m.account END) AS acct
        FROM person_mention m LEFT JOIN _acct_owner o ON o.account = m.account
        WHERE m.id IS NOT NULL AND m.source <> 'hukou' AND m.name IS NOT NULL
        USING SAMPLE reservoir({_M_SAMPLE} ROWS) REPEATABLE (2)"""
    ).df()
    if len(sample) < 100:
        return {}
    keys = name_keys(sample["name"])
    sample = pd.concat([sample, keys], axis=1)
    sample["idc"] = None
    sample["township"] = sample["village_code"].astype("string").str.slice(0, 9)
    _store(con, "_msample", sample, temp=True)
    out: dict[int, np.ndarray] = {}
    for j, comp in enumerate(config.comparisons):
        expr = comp.sql("a", "b")
        if expr is None or comp.column == "idc" or not set(comp.columns()) <= cols:
            continue
        lv = con.execute(
            f"""SELECT {expr} AS g, count(*) AS n FROM _msample a
            JOIN _idx b ON b.idc = a.id GROUP BY 1"""
        ).df()
        lv = lv[lv["g"] >= 0]
        if lv["n"].sum() < 100:
            continue
        m = np.bincount(lv["g"].astype(int), weights=lv["n"], minlength=comp.n_levels)
        # a 1% floor per level: the ID-bearing records are cleaner than the ones we link
        # (their ID was copied right, so perhaps the rest too); no level may become proof
        # against a match on its own
        m = np.maximum(m / m.sum(), 0.01)
        out[j] = m / m.sum()
        log.info("m from ID-bearing mentions, %s: %s", comp.key, np.round(out[j], 4).tolist())
    return out


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
    text = repr((config, sorted(map(repr, roles)), j))
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
    from crossmatch import warehouse

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
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _kept AS
            SELECT l.* FROM identity_link l JOIN person_mention m
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
        """CREATE OR REPLACE TEMP TABLE _new AS SELECT source, file, row, role
        FROM person_mention ANTI JOIN _kept USING (source, file, row, role)"""
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
        """SELECT any_value(k.person_id) AS person_id, m.name, m.id_raw, m.village_code,
            coalesce(o.owner, CASE WHEN m.account IS NOT NULL THEN 'A:' || m.account END) AS acct,
            any_value(n.in_registry) AS in_registry
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


def _fuzzy_pool(con: duckdb.DuckDBPyConnection, judged: pd.DataFrame) -> pd.DataFrame:
    """``_fz``: new mentions with no usable ID (or an ID conflict) not linked as handlers, each
    with its group key; returns one row per group (identical attributes = one node)."""
    _store(con, "_judged", judged, temp=True)
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _fz0 AS
        SELECT m.source, m.file, m.row, m.role, m.name, m.id_raw, m.village_code,
            m.township AS township_name, m.village AS village_name, c.id AS conflict_id,
            m.event_month,
            coalesce(o.owner, an.owner,
                CASE WHEN m.account IS NOT NULL THEN 'A:' || m.account END) AS acct,
            j.source IS NOT NULL AS judged
        FROM person_mention m
        SEMI JOIN _new USING (source, file, row, role)
        LEFT JOIN identity_conflict c USING (source, file, row, role)
        LEFT JOIN _handler_link h USING (source, file, row, role)
        LEFT JOIN _acct_owner o ON o.account = m.account
        LEFT JOIN _acct_name_owner an ON an.account = m.account AND an.name = m.name
        LEFT JOIN (SELECT DISTINCT * FROM _judged) j USING (source, file, row, role)
        WHERE (m.id IS NULL OR c.id IS NOT NULL) AND h.id IS NULL AND m.name IS NOT NULL"""
    )
    raw = con.execute("SELECT DISTINCT id_raw FROM _fz0 WHERE id_raw IS NOT NULL").df()
    raw["idc"] = _candidate_id(raw["id_raw"])
    _store(con, "_idc", raw, temp=True)
    # Identical attributes make one node only when they identify someone: an ID candidate, an
    # account or a staff township. A bare name identifies nobody (a county of 300,000 has
    # thousands of 王伟): each name-only mention is its own node, and name + village groups
    # only within one source and role (one roster's repeated rows). A judged mention is its
    # own node so that the judgement applies to it alone.
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _fz AS
        SELECT f.*, CASE WHEN f.conflict_id IS NULL THEN i.idc END AS idc,
            substr(md5(concat_ws('\x1f', coalesce(f.name, '~'),
                coalesce(CASE WHEN f.conflict_id IS NULL THEN i.idc END, '~'),
                coalesce(f.village_code, '~'), coalesce(f.acct, '~'),
                coalesce(f.township_name, '~'), coalesce(f.conflict_id, '~'),
                CASE WHEN f.judged OR (i.idc IS NULL AND f.acct IS NULL
                        AND f.village_code IS NULL AND f.township_name IS NULL)
                    THEN f.source || '|' || f.file || '|' || CAST(f.row AS VARCHAR) || '|' || f.role
                    -- a staff township (handler, approver, an ID-less payroll row) groups
                    -- across roles: one clerk of one township
                    WHEN i.idc IS NULL AND f.acct IS NULL AND f.village_code IS NULL
                        AND f.village_name IS NULL AND f.township_name IS NOT NULL THEN '~'
                    WHEN i.idc IS NULL AND f.acct IS NULL THEN f.source || '|' || f.role
                    ELSE '~' END)), 1, 16) AS gkey
        FROM _fz0 f LEFT JOIN _idc i USING (id_raw)"""
    )
    # ``registry``: the node holds a registry row (an ID with a bad check digit, or none);
    # it is a registered person of its own, see :func:`_registry_anchor`
    return con.execute(
        """SELECT gkey, any_value(name) AS name, any_value(idc) AS idc,
            any_value(village_code) AS village_code, any_value(acct) AS acct,
            any_value(conflict_id) AS conflict_id, bool_or(source = 'hukou') AS registry,
            date_diff('day', DATE '1970-01-01', min(event_month))::DOUBLE AS first_day
        FROM _fz GROUP BY gkey ORDER BY gkey"""
    ).df()


_REG_ROW = "R:"  # prefix of the registry anchor of a registry row without a valid ID


def _registry_anchor(groups: pd.DataFrame) -> pd.Series:
    """``reg_id`` of the probe nodes: a registry row whose ID is unusable (bad check digit,
    missing) is still a registered person, so its node carries a registry anchor of its own.

    Why: without it such a row is a plain probe. It links to its own valid ID where another
    source wrote it (an outside ID then, since no registry row carries it), and a probe of a
    namesake in the same village could chain that outside ID to the namesake's registry ID
    (a cluster may hold one registry and one outside ID): two registered people merged, and
    the person lost its registry status (5% bad check digits: hundreds of false ghost clues).
    With an anchor it never joins another registry row, and candidate probes weigh it as a
    person of the registry like any other."""
    reg = groups["registry"].fillna(False).astype(bool)
    return (_REG_ROW + groups["gkey"].astype(str)).where(reg, None)


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
    build_mentions(con, roles, s)
    staff.assign_townships(con)  # an ID-less payroll row meets its township's handler mentions
    s.mentions = fetch_one(con, "SELECT count(*) FROM person_mention")[0]
    model = None if retrain else _load_model(con, config)
    sig = _signature(con, config, roles)
    incremental = not full and model is not None and _can_increment(con, sig)
    s.mode = "incremental" if incremental else "full"
    _split_new(con, incremental)
    s.new_mentions = fetch_one(con, "SELECT count(*) FROM _new")[0]
    prev_pids = _previous_pids(con)
    build_id_index(con)
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
    handlers = link_handlers(con).assign(node_id=None, linked_to=None, level=None)
    household = link_household_comentions(con)
    if len(household) and len(handlers):
        # one link per mention (the staff pass first)
        done = handlers.set_index(["source", "file", "row", "role"]).index
        household = household[
            ~household.set_index(["source", "file", "row", "role"]).index.isin(done)
        ]
    if len(household):
        handlers = pd.concat([handlers, household], ignore_index=True)
    handlers = handlers.astype({"node_id": object, "linked_to": object, "level": "Int64"})
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
    n_idx = _build_index(con)
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
    # frequencies over the whole population, not just the loaded part
    tf: dict[str, pd.Series] = {}
    _allk_view(con)
    for comp in config.comparisons:
        if comp.tf:
            _store(con, "_tfv", pd.DataFrame({"v": nodes[comp.column].dropna().unique()}), True)
            tfdf = con.execute(
                f"""SELECT {comp.column} AS v, count(*) / (SELECT count({comp.column})
                    FROM _allk)::DOUBLE AS f
                FROM _allk SEMI JOIN _tfv ON _allk.{comp.column} = _tfv.v GROUP BY ALL"""
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
    roles_pen = role_profile.edge_penalty(con, nid)
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
    _release_memory()
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


def _loc_nid(loc: pd.DataFrame) -> np.ndarray:
    """Stable node ids of the pandas-side nodes: ``G:`` + group key, ``P:`` + previous id."""
    g = "G:" + loc["gkey"].astype("string")
    p = "K:" + loc["kept_key"].astype("string")
    return g.fillna(p).to_numpy(dtype=object)


def _record_judgement_conflicts(
    con: duckdb.DuckDBPyConnection,
    must_rows: list[Any],
    notes: list[tuple[int, str]],
    s: ResolveSummary,
) -> None:
    """A same-person judgement across two registry IDs: merged only when it says ``merge_ids``
    (one person registered twice), refused otherwise; both are recorded in identity_conflict."""
    rows = []
    for k, what in notes:
        j = must_rows[k]
        params = [j.a_source, j.a_file, int(j.a_row), j.a_role]
        params += [j.b_source, j.b_file, int(j.b_row), j.b_role]
        ids = fetch_one(
            con,
            "SELECT (SELECT id FROM person_mention WHERE source=? AND file=? AND row=? AND role=?),"
            " (SELECT id FROM person_mention WHERE source=? AND file=? AND row=? AND role=?)",
            params,
        )
        who = f"analyst {j.analyst!r}" if j.analyst else "an analyst"
        if what == "merged_exclusive":
            kind = "judgement_merge"
            detail = (
                f"{who} judged this the same person as {j.b_source}/{j.b_file} row {j.b_row} "
                f"({j.b_role}) with merge_ids: IDs {ids[0]} and {ids[1]} are one person"
            )
        else:
            kind = "judgement_refused"
            detail = (
                f"{who} judged this the same person as {j.b_source}/{j.b_file} row {j.b_row} "
                f"({j.b_role}), but that joins two different IDs ({ids[0]}, {ids[1]}); "
                "not merged. Record the judgement with merge_ids=True if one person was "
                "registered twice"
            )
        rows.append(
            (j.a_source, j.a_file, int(j.a_row), j.a_role, ids[0], None, ids[1], kind, detail)
        )
    if rows:
        con.executemany("INSERT INTO identity_conflict VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        s.conflicts += len(rows)


def _release_memory() -> None:
    """Collect and hand freed heap back to the OS (glibc keeps freed small blocks otherwise)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)


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
    free = con.execute(
        """SELECT g.label, min(f.source || '|' || f.file || '|' || CAST(f.row AS VARCHAR) || '|'
                || f.role) AS first_key, mode(p.prev) AS prev
        FROM _fz f JOIN _grp g USING (gkey)
        LEFT JOIN _prevp p ON p.mstr = f.source || '|' || f.file || '|' || CAST(f.row AS VARCHAR)
            || '|' || f.role
        WHERE g.person_id IS NULL GROUP BY g.label"""
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
    con.execute(
        """CREATE OR REPLACE TABLE identity_link AS
        WITH u AS (
            SELECT source, file, row, role, file_hash, person_id, method, probability, node_id
            FROM _newlink
            UNION ALL SELECT source, file, row, role, file_hash, person_id, method, probability,
                node_id FROM _kept),
        v AS (
            SELECT * REPLACE (
                coalesce(person_id, 'P' || upper(substr(sha1(source || '|' || file || '|'
                    || CAST(row AS VARCHAR) || '|' || role), 1, 15))) AS person_id,
                CASE WHEN person_id IS NULL THEN 'unresolved' ELSE method END AS method)
            FROM u)
        SELECT source, file, row, role, file_hash, person_id, method, probability,
            person_id AS cluster_id, node_id FROM v"""
    )
    counts = dict(
        con.execute("SELECT method, count(*) FROM identity_link GROUP BY method").fetchall()
    )
    s.exact = counts.get("exact", 0) + counts.get("upgraded15", 0)
    s.fuzzy = counts.get("fuzzy", 0)
    s.judgement = counts.get("judgement", 0)
    s.unresolved = counts.get("unresolved", 0)
    _publish_persons(con)
    s.persons = fetch_one(con, "SELECT count(*) FROM person")[0]
    _publish_views(con, roles)


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
        names = ", ".join(_q(n) for n in pred.weight_names)
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
    """identity_explanation rows of the household links (:func:`link_household_comentions`):
    the name's level against the household member, and the link's weight."""
    con.execute(
        """INSERT INTO identity_explanation
        SELECT node_id, linked_to, 'household' AS comparison, 1 AS level,
            log2(probability / (1 - probability)) AS weight, probability
        FROM _handler_link WHERE node_id IS NOT NULL
        UNION ALL
        SELECT node_id, linked_to, 'name', CAST(level AS INTEGER),
            NULL::DOUBLE, probability FROM _handler_link WHERE node_id IS NOT NULL"""
    )


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
                GROUP BY l.person_id),
        -- persons without an ID node: name and village from their mentions (a small set;
        -- persons with an ID take them from the ID index, birth date and sex from the ID)
        free AS (SELECT l.person_id, mode(m.name) AS name, mode(m.village_code) AS village_code,
                     min(m.birth_date) AS birth_date, min(m.sex) AS sex
                 FROM identity_link l JOIN person_mention m USING (source, file, row, role)
                 WHERE NOT EXISTS (SELECT 1 FROM _id_node n WHERE n.id = l.person_id)
                 GROUP BY l.person_id),
        p AS (SELECT DISTINCT person_id FROM identity_link),
        -- registered: a registry row is linked to the person, whether or not that row's ID
        -- was usable (a bad check digit on the registry row leaves the person registered)
        hk AS (SELECT DISTINCT person_id FROM identity_link WHERE source = 'hukou')
        SELECT p.person_id,
            coalesce(n.name, f.name) AS name,
            n.id AS id_number,
            CASE WHEN n.id IS NOT NULL
                THEN try_strptime(substr(n.id, 7, 8), '%Y%m%d')::DATE ELSE f.birth_date END
                AS birth_date,
            CASE WHEN n.id IS NOT NULL THEN
                CASE WHEN try_cast(substr(n.id, 17, 1) AS INTEGER) % 2 = 1 THEN '男' ELSE '女' END
                ELSE f.sex END AS sex,
            reg.household_no,
            coalesce(n.village_code, f.village_code) AS village_code,
            coalesce(n.in_registry, false) OR hk.person_id IS NOT NULL AS in_registry,
            dd.death_date
        FROM p LEFT JOIN _id_node n ON n.id = p.person_id
        LEFT JOIN free f ON f.person_id = p.person_id
        LEFT JOIN reg ON reg.person_id = p.person_id
        LEFT JOIN dd ON dd.person_id = p.person_id
        LEFT JOIN hk ON hk.person_id = p.person_id"""
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
    """``r_<source>`` = ``src_<source>`` + one ``R_pid`` per role, joined by file, row *and file
    hash* (a row of a file version identity has not seen gets no person: never an old file's).
    Sources without person roles get a plain view. Records stage ``resolve`` with the ingest
    fingerprint it was computed from (detect refuses to run on identity older than the data)."""
    from crossmatch import warehouse

    by_source: dict[str, list[str]] = {}
    for r in roles:
        if _columns(con, r.table):
            by_source.setdefault(r.source, []).append(r.role)
    for src, rls in by_source.items():
        sel = ", ".join(f"l{i}.person_id AS {role}_pid" for i, role in enumerate(rls))
        joins = " ".join(
            f"LEFT JOIN identity_link l{i} ON l{i}.source = {_q(src)} AND l{i}.file = s._file "
            f"AND l{i}.row = s._row AND l{i}.file_hash = s._file_hash AND l{i}.role = {_q(role)}"
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
    """Why a record was linked: one row per comparison with its level, what that level means
    (``evidence``: e.g. ``acct: exact`` = the account is the candidate's, ``village_code:
    exact``, ``name: same pinyin``, ``idc: one substitution``; ``missing`` where the record or
    the candidate lacks the field) and its log2 weight (Splink's waterfall), plus the prior.
    Empty for exact-ID links (the ID is the reason)."""
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
    config = default_config()
    model = _load_model(con, config)
    prior = model.prior_log2() if model else float("nan")
    labels = {c.key: c.labels for c in config.comparisons}

    def evidence(comp: str, level: Any) -> str:
        if comp.startswith("tf_"):
            return f"{comp[3:]}: how common the value is"
        if comp == "household":
            return "household: the name is a household member of the row's other person"
        if comp not in labels or pd.isna(level):
            return comp
        lv = int(level)
        return f"{comp}: {labels[comp][lv] if 0 <= lv < len(labels[comp]) else 'missing'}"

    df["evidence"] = [evidence(c, lv) for c, lv in zip(df["comparison"], df["level"], strict=True)]
    if (df["comparison"] == "household").any():
        return df  # a household link: no prior, the household is the reason
    head = df.iloc[[0]].assign(comparison="prior", level=-1, weight=prior, evidence="prior")
    return pd.concat([head, df], ignore_index=True)


def record_judgement(
    con: duckdb.DuckDBPyConnection,
    a: tuple[str, str, int, str],
    b: tuple[str, str, int, str],
    same: bool,
    analyst: str = "",
    note: str = "",
    merge_ids: bool = False,
) -> None:
    """Store that mentions ``a`` and ``b`` (source, file, row, role) are / are not one person.

    Every later :func:`resolve_identities` honours it: a must-link joins them, a cannot-link
    keeps them apart. A must-link between two different valid IDs (one person registered
    twice) is only applied with ``merge_ids=True``, the analyst having seen the papers; without
    it the run refuses the merge. Either outcome is recorded in ``identity_conflict``.
    """
    con.execute(JUDGEMENT_DDL)
    con.execute(
        "ALTER TABLE identity_judgement ADD COLUMN IF NOT EXISTS merge_ids BOOLEAN DEFAULT false"
    )
    params = [*a[:2], int(a[2]), a[3], *b[:2], int(b[2]), b[3], bool(same), analyst, note]
    params.append(bool(merge_ids))
    con.execute(
        "INSERT INTO identity_judgement (a_source, a_file, a_row, a_role, b_source, b_file, "
        "b_row, b_role, same, analyst, note, created_at, merge_ids) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, current_timestamp, ?)",
        params,
    )
