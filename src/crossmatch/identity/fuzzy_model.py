"""Stage 4 of identity resolution, the fuzzy model: the person index (one node per ID),
blocking keys and candidate pairs in DuckDB, m from known (ID-bearing) matches, and the
Fellegi-Sunter weights saved and reused across nights (``identity_params``).
"""

from __future__ import annotations

import json
import logging
from importlib import resources

import duckdb
import numpy as np
import pandas as pd

from crossmatch import idnumber
from crossmatch.identity import keys as id_keys
from crossmatch.identity.fellegi_sunter import FSModel
from crossmatch.identity.linker import LinkageConfig
from crossmatch.identity.mentions import _columns, _sql_text, _store, _tables, state_token
from crossmatch.identity.names import name_keys
from crossmatch.warehouse import fetch_one, transaction

log = logging.getLogger(__name__)


def default_config() -> LinkageConfig:
    path = resources.files("crossmatch.identity").joinpath("data/persons.yaml")
    return LinkageConfig.load(str(path))


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
            JOIN {table} s ON m.source = {_sql_text(src)} AND s._file = m.file AND s._row = m.row
            WHERE m.id IS NOT NULL {where}"""
        )
    body = " UNION ALL ".join(parts) if parts else "SELECT NULL::VARCHAR AS id, NULL::DATE AS d"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _id_death AS SELECT id, min(d) AS death "
        f"FROM ({body}) x WHERE id IS NOT NULL AND d IS NOT NULL GROUP BY id"
    )


#: Bumped whenever a row of the person index (``_idx``) is computed differently.
IDX_VERSION = "1"


def _idx_sql(where: str = "", node: bool = False) -> str:
    """The person index's rows (``node`` first where ``node``, else every column but it), one
    per ID of ``_id_node`` (restricted by ``where``, a condition on ``n``), with the name keys
    of ``_nk``."""
    return f"""SELECT {"n.node, " if node else ""}n.name, k.name_py, k.name_la, k.name_lapy,
            k.surname_py, k.given_py, n.id AS idc,
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
            ON o.owner = n.id {"WHERE " + where if where else ""}"""


def _name_keys_table(con: duckdb.DuckDBPyConnection, where: str = "") -> None:
    """``_nk``: the name keys of the distinct names of ``_id_node`` (restricted by ``where``)."""
    cond = f"AND {where}" if where else ""
    names = con.execute(f"SELECT DISTINCT name FROM _id_node n WHERE name IS NOT NULL {cond}").df()[
        "name"
    ]
    nk = name_keys(names)
    nk.insert(0, "name", names)
    _store(con, "_nk", nk, temp=True)


def _build_index(con: duckdb.DuckDBPyConnection, incremental: bool = False) -> int:
    """``_idx``: the person index, one row per valid ID with its blocking keys, made in SQL.

    Why SQL: the index has one row per valid ID (3 million in a big county) while only the few
    that share a blocking key with a probe are ever compared; keeping it in DuckDB keeps memory
    bounded. Name keys come from a small table over the distinct names (``str.translate``).

    The rows are kept in ``identity_idx`` with the state of the mentions they were computed
    from; ``incremental``: where that state is the one this run's mentions were built from,
    only the rows of the IDs whose mentions or accounts changed (``_idx_changed``, recorded by
    :func:`~crossmatch.identity.id_index.update`) are computed again (each row is a function of
    its ID's mentions, death records and accounts alone).
    """
    _build_deaths(con)
    token = (
        f"{IDX_VERSION}:" + fetch_one(con, f"SELECT {state_token()}")[0]
        if _tables(con) >= {"identity_mention_file", "identity_mention_state"}
        else None
    )
    reuse = (
        incremental
        and token is not None
        and {"identity_idx", "identity_idx_state"} <= _tables(con)
        and _has(con, "_mention_prev")
        and _has(con, "_idx_changed")
        and con.execute("SELECT token FROM identity_idx_state").fetchall()
        == con.execute(f"SELECT '{IDX_VERSION}:' || token FROM _mention_prev").fetchall()
    )
    if reuse:
        changed = "n.id IN (SELECT id FROM _idx_changed)"
        _name_keys_table(con, changed)
        with transaction(con):
            con.execute("DELETE FROM identity_idx WHERE idc IN (SELECT id FROM _idx_changed)")
            con.execute(f"INSERT INTO identity_idx {_idx_sql(changed)}")
            con.execute("UPDATE identity_idx_state SET token = ?", [token])
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _idx AS SELECT n.node, x.* FROM identity_idx x "
            "JOIN _id_node n ON n.id = x.idc ORDER BY n.node"
        )
    else:
        _name_keys_table(con)
        con.execute(f"CREATE OR REPLACE TEMP TABLE _idx AS {_idx_sql(node=True)}")
        if token is not None:
            con.execute("DROP TABLE IF EXISTS identity_idx_state")
            con.execute("CREATE OR REPLACE TABLE identity_idx AS SELECT * EXCLUDE (node) FROM _idx")
            con.execute("CREATE TABLE identity_idx_state (token VARCHAR)")
            con.execute("INSERT INTO identity_idx_state VALUES (?)", [token])
    return int(fetch_one(con, "SELECT count(*) FROM _id_node")[0])


def _has(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        fetch_one(con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name])[0]
    )


def _create_blocking_keys_view(con: duckdb.DuckDBPyConnection) -> None:
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
    _create_blocking_keys_view(con)
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
    # the sample is drawn from the table, then joined: a sample of a join's output depends on
    # the order the join's threads deliver rows in (two runs on the same files trained
    # different weights); a table scan's sample does not
    sample = con.execute(
        f"""SELECT m.id, m.name, m.village_code,
            coalesce(o.owner, CASE WHEN m.account IS NOT NULL THEN 'A:' || m.account END) AS acct
        FROM (SELECT id, name, village_code, account, source, file, row, role
              FROM person_mention
              WHERE id IS NOT NULL AND source <> 'hukou' AND name IS NOT NULL
              USING SAMPLE reservoir({_M_SAMPLE} ROWS) REPEATABLE (2)) m
        LEFT JOIN _acct_owner o ON o.account = m.account
        ORDER BY m.source, m.file, m.row, m.role"""
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
