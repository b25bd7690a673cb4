"""Stage 4b of identity resolution: the pool of fuzzy nodes, registry anchors for
registered persons without a valid ID, and analyst judgements as must/cannot links before
the constrained clustering (:mod:`crossmatch.identity.cluster`), and the clustering of a
resolve in two rounds (:func:`cluster_nodes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from crossmatch.identity import accounts, areas, listed, role_profile
from crossmatch.identity import household as co_mentions
from crossmatch.identity.fuzzy_model import _candidate_id
from crossmatch.identity.linker import LinkageConfig, Linker, Prediction
from crossmatch.identity.mentions import _store
from crossmatch.identity.summary import ResolveSummary
from crossmatch.warehouse import fetch_one


def _fuzzy_pool(
    con: duckdb.DuckDBPyConnection,
    judged: pd.DataFrame,
    scope: str | None = "_new",
    out: str = "_fz",
    handlers: str = "_handler_link",
) -> pd.DataFrame:
    """``_fz`` (``out``): new mentions (those of table ``scope``; None: every mention) with no
    usable ID (or an ID conflict) not linked as handlers (table ``handlers``), each with its
    group key; returns one row per group (identical attributes = one node)."""
    _store(con, "_judged", judged, temp=True)
    within = f"SEMI JOIN {scope} USING (source, file, row, role)" if scope else ""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {out}0 AS
        SELECT m.source, m.file, m.row, m.role, m.name, m.id_raw, m.village_code,
            m.township AS township_name, m.village AS village_name, c.id AS conflict_id,
            m.event_month,
            coalesce(o.owner, an.owner,
                CASE WHEN m.account IS NOT NULL THEN 'A:' || m.account END) AS acct,
            j.source IS NOT NULL AS judged
        FROM person_mention m
        {within}
        LEFT JOIN identity_conflict c USING (source, file, row, role)
        LEFT JOIN {handlers} h USING (source, file, row, role)
        LEFT JOIN _acct_owner o ON o.account = m.account
        LEFT JOIN _acct_name_owner an ON an.account = m.account AND an.name = m.name
        LEFT JOIN (SELECT DISTINCT * FROM _judged) j USING (source, file, row, role)
        WHERE (m.id IS NULL OR c.id IS NOT NULL) AND h.id IS NULL AND m.name IS NOT NULL"""
    )
    raw = con.execute(f"SELECT DISTINCT id_raw FROM {out}0 WHERE id_raw IS NOT NULL").df()
    raw["idc"] = _candidate_id(raw["id_raw"])
    _store(con, "_idc", raw, temp=True)
    # Identical attributes make one node only when they identify someone: an ID candidate, an
    # account or a staff township. A bare name identifies nobody (a county of 300,000 has
    # thousands of 王伟): each name-only mention is its own node, and name + village groups
    # only within one source and role (one roster's repeated rows), never two rows of one
    # file that lists each person once (:func:`crossmatch.identity.listed.once_files`: two
    # land contracts of two namesakes of one village are two people). A judged mention is
    # its own node so that the judgement applies to it alone.
    _store(con, "_once_file", listed.once_files(con), temp=True)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {out}1 AS
        SELECT f.*, i.idc AS idc0,
            CASE WHEN o.file IS NOT NULL AND i.idc IS NULL AND f.acct IS NULL
                AND count(*) OVER (PARTITION BY f.source, f.role, f.file, f.name,
                    f.village_code, f.village_name, f.township_name,
                    i.idc IS NULL AND f.acct IS NULL) > 1
                THEN concat_ws('|', f.source, f.role, f.file, f.name, coalesce(f.village_code, '~'),
                    coalesce(f.village_name, '~'), coalesce(f.township_name, '~')) END AS once_key
        FROM {out}0 f LEFT JOIN _idc i USING (id_raw)
        LEFT JOIN _once_file o USING (source, role, file)"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {out} AS
        SELECT f.* EXCLUDE (idc0), CASE WHEN f.conflict_id IS NULL THEN f.idc0 END AS idc,
            substr(md5(concat_ws('\x1f', coalesce(f.name, '~'),
                coalesce(CASE WHEN f.conflict_id IS NULL THEN f.idc0 END, '~'),
                coalesce(f.village_code, '~'), coalesce(f.acct, '~'),
                coalesce(f.township_name, '~'), coalesce(f.conflict_id, '~'),
                CASE WHEN f.judged OR f.once_key IS NOT NULL OR (f.idc0 IS NULL AND f.acct IS NULL
                        AND f.village_code IS NULL AND f.township_name IS NULL)
                    THEN f.source || '|' || f.file || '|' || CAST(f.row AS VARCHAR) || '|' || f.role
                    -- a staff township (handler, approver, an ID-less payroll row) groups
                    -- across roles: one clerk of one township
                    WHEN f.idc0 IS NULL AND f.acct IS NULL AND f.village_code IS NULL
                        AND f.village_name IS NULL AND f.township_name IS NOT NULL THEN '~'
                    WHEN f.idc0 IS NULL AND f.acct IS NULL THEN f.source || '|' || f.role
                    ELSE '~' END)), 1, 16) AS gkey
        FROM {out}1 f"""
    )
    # ``registry``: the node holds a registry row (an ID with a bad check digit, or none);
    # it is a registered person of its own, see :func:`_registry_anchor`
    return con.execute(
        # the key hashes these values, so a group holds one of each; min(), not any_value(),
        # so that a hash collision could not make the pick depend on scan order either
        f"""SELECT gkey, min(name) AS name, min(idc) AS idc,
            min(village_code) AS village_code, min(acct) AS acct,
            min(conflict_id) AS conflict_id, bool_or(source = 'hukou') AS registry,
            date_diff('day', DATE '1970-01-01', min(event_month))::DOUBLE AS first_day
        FROM {out} GROUP BY gkey ORDER BY gkey"""
    ).df()


def once_pairs(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """Group keys of two ID-less rows of one file that lists each person once, with the same
    name and village (:func:`crossmatch.identity.listed.once_files`): two people, a
    cannot-link for clustering (two namesakes neither of whom the evidence picks must not end
    up one person either)."""
    return [
        (a, b)
        for a, b in con.execute(
            """SELECT DISTINCT a.gkey, b.gkey FROM _fz a JOIN _fz b
                ON a.once_key = b.once_key AND a.gkey < b.gkey
            ORDER BY ALL"""
        ).fetchall()
    ]


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
    reg = groups["registry"].fillna(False).astype(bool).to_numpy()
    anchors = [_REG_ROW + str(g) if r else None for g, r in zip(groups["gkey"], reg, strict=True)]
    # object dtype: None (not NaN, as a pandas 3 string column would give) for "no anchor"
    return pd.Series(anchors, index=groups.index, dtype=object)


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


@dataclass
class Clusters:
    """The outcome of clustering the local problem's nodes."""

    labels: np.ndarray  # cluster label per node (row position)
    used: np.ndarray  # per scored pair: used as a link
    notes: list[tuple[int, str]]  # (must-link index, what happened) for judgements across IDs


def cluster_nodes(
    con: duckdb.DuckDBPyConnection,
    config: LinkageConfig,
    linker: Linker,
    pred: Prediction,
    nid: np.ndarray,
    reg_id: pd.Series,
    ext_id: pd.Series,
    must: list[tuple[int, int, bool]],
    cannot: list[tuple[int, int]],
    s: ResolveSummary,
) -> Clusters:
    """Reads what the evidence modules read for the nodes ``nid`` (role profiles, areas,
    once-listed files, accounts, co-mentions); sets ``linker.edge_penalty`` and writes
    ``s.passed_over_dead`` and ``s.weighed_down_by_role``. Candidates implausible for the role
    (age, sex, head ...) are weighed down; then, in a second round, those who are no relative
    of the mention's co-mentions as the first round linked them (``pred.probability`` is
    reset to the first round's scores for it)."""
    notes: list[tuple[int, str]] = []
    roles_pen = co_mentions.combine(
        role_profile.edge_penalty(con, nid),
        areas.edge_penalty(con, nid),
        listed.edge_penalty(con, nid),
        accounts.edge_penalty(con, nid, accounts.differ_weight(linker.model, "acct", config)),
    )
    linker.edge_penalty = roles_pen
    p_first = pred.probability.copy()
    labels, used = linker.cluster(pred, must_link=must, cannot_link=cannot, notes=notes)
    kin = co_mentions.support(con, nid, co_mentions.first_round_persons(labels, reg_id, ext_id))
    if kin:
        pred.probability[:] = p_first
        linker.edge_penalty = co_mentions.combine(roles_pen, co_mentions.edge_penalty(nid, kin))
        notes.clear()
        labels, used = linker.cluster(pred, must_link=must, cannot_link=cannot, notes=notes)
    s.passed_over_dead = linker.passed_over_dead
    s.weighed_down_by_role = linker.weighed_down
    return Clusters(labels, used, notes)
