"""A file that lists each person once (issue 17, identity).

A vehicle register, a bank's account list, a land contract register or a case's member list
names each person on one row: in such a file a person already listed with a valid ID is hardly
the person of another, ID-less row. So an ID-less vehicle row of 马娟, with three registered
马娟 of whom two own a vehicle on rows with their IDs, is most likely the third one's.

How much being listed already says is measured per (source, role, file) on the file itself,
as a Fellegi-Sunter weight: m = the share of its valid IDs that have two rows or more (how
often the person of a row is listed again), u = the share of all valid IDs that the file lists
(how often a random namesake is listed); weight log2(m / u). Only a strong weight is used
(:data:`MIN_BITS`; weaker evidence, e.g. a marriage register where people marry twice, is
left out), and only against a candidate while another candidate of the same record is not
listed (a lone candidate is weighed as it is: someone may own two vehicles).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import duckdb
import numpy as np
import pandas as pd

from crossmatch.identity.mentions import _store, _tables, state_token
from crossmatch.warehouse import fetch_one

log = logging.getLogger(__name__)

MIN_IDS = 20  # valid IDs a file needs for its weight to be measured
ONCE_DUP_SHARE = 0.01  # a file lists each person once: at most this share of its IDs twice
MIN_BITS = 4.0  # log2 units: the weight must be at least this strong (a 16:1 likelihood ratio)
MAX_BITS = 12.0  # log2 units: as much as an impossible role profile (role_profile.HARD)


def file_weights(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per (source, role, file) with at least :data:`MIN_IDS` valid IDs: ``ids``, ``dup``
    (share of them on two rows or more), ``listed`` (share of all valid IDs it lists) and
    ``bits`` (log2(dup / listed), ``dup`` floored at half a person).

    Computed once per state of the mentions (a run asks twice: the fuzzy pool and the
    penalty): kept in a temporary table under :func:`~crossmatch.identity.mentions.state_token`
    where the mentions record their file versions."""
    token = None
    if {"identity_mention_file", "identity_mention_state"} <= _tables(con):
        token = fetch_one(con, f"SELECT {state_token()}")[0]
        if {"_fw_memo", "_fw_memo_token"} <= _tables(con) and con.execute(
            "SELECT token FROM _fw_memo_token"
        ).fetchall() == [(token,)]:
            return con.execute("SELECT * FROM _fw_memo ORDER BY source, role, file").df()
    return _file_weights(con, token)


def _file_weights(con: duckdb.DuckDBPyConnection, token: str | None) -> pd.DataFrame:
    """:func:`file_weights` computed (and kept under ``token``)."""
    df = con.execute(
        f"""WITH per AS (SELECT source, role, file, id, count(*) AS n FROM person_mention
            WHERE id IS NOT NULL GROUP BY ALL),
        total AS (SELECT count(DISTINCT id) AS n_all FROM person_mention WHERE id IS NOT NULL)
        SELECT source, role, file, count(*) AS ids,
            avg(CASE WHEN n > 1 THEN 1.0 ELSE 0.0 END) AS dup,
            count(*) / any_value(total.n_all)::DOUBLE AS listed
        FROM per, total GROUP BY source, role, file HAVING count(*) >= {MIN_IDS}
        ORDER BY source, role, file"""
    ).df()
    dup = np.maximum(df["dup"].to_numpy(dtype=float), 0.5 / df["ids"].to_numpy(dtype=float))
    df["bits"] = np.log2(dup / df["listed"].to_numpy(dtype=float))
    if token is not None:
        _store(con, "_fw_memo", df, temp=True)
        con.execute("CREATE OR REPLACE TEMP TABLE _fw_memo_token AS SELECT ? AS token", [token])
    return df


def once_files(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """(source, role, file) that list each person once, measured on the file itself: at most
    :data:`ONCE_DUP_SHARE` of its valid IDs (at least :data:`MIN_IDS`) on two rows or more.

    Why: the fuzzy pool groups ID-less rows of one source and role that share name and
    village into one node (a roster's repeated rows of one person). In a file that lists
    everyone once, two such rows are two people, namesakes of one village (two land contracts
    of two 王伟荣 of one village); one node would link both to one of them, or (a coin toss)
    to neither, and all their other records would miss them. Such rows stay nodes of their
    own (:func:`crossmatch.identity.clustering._fuzzy_pool`) and cannot be one person."""
    fw = file_weights(con)
    return fw.loc[fw["dup"] <= ONCE_DUP_SHARE, ["source", "role", "file"]].reset_index(drop=True)


def edge_penalty(
    con: duckdb.DuckDBPyConnection, nid: np.ndarray, mentions: str = "_fz"
) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None:
    """(probe positions, candidate positions, pair weights) -> log2 penalty per candidate edge:
    the file's weight (at most :data:`MAX_BITS`) for a candidate already listed with a valid ID
    in a file of the probe's rows whose weight is at least :data:`MIN_BITS` strong, when
    another candidate of the probe is not listed there; else 0. ``nid``: node id per position
    (``G:<gkey>`` probes, ``I:<id>`` ID nodes)."""
    fw = file_weights(con)
    fw = fw[fw["bits"] <= -MIN_BITS]
    if fw.empty:
        return None
    nid_s = pd.Series(nid, dtype=object).astype(str)
    kind = nid_s.str.slice(0, 2).to_numpy()
    key = nid_s.str.slice(2).to_numpy()
    # only the candidates of this run's probes (a big county's registers list millions)
    cands = pd.DataFrame({"id": pd.unique(key[kind == "I:"])})
    con.register("_ls_files", fw[["source", "role", "file", "bits"]])
    con.register("_ls_ids", cands)
    try:
        probe_files = con.execute(
            f"""SELECT DISTINCT f.gkey, f.source, f.role, f.file,
                least(-w.bits, {MAX_BITS}) AS pen
            FROM {mentions} f JOIN _ls_files w USING (source, role, file)"""
        ).df()
        listed = con.execute(
            """SELECT DISTINCT m.id, m.source, m.role, m.file FROM person_mention m
            SEMI JOIN _ls_files w USING (source, role, file) SEMI JOIN _ls_ids i USING (id)
            WHERE m.id IS NOT NULL"""
        ).df()
    finally:
        con.unregister("_ls_files")
        con.unregister("_ls_ids")
    if probe_files.empty or listed.empty:
        return None
    listed["hit"] = True
    log.info("listed once: %d file(s) weigh listed candidates down", fw["file"].nunique())

    def penalty(probe: np.ndarray, other: np.ndarray, w: np.ndarray) -> np.ndarray:
        out = np.zeros(len(probe))
        ok = np.flatnonzero((kind[probe] == "G:") & (kind[other] == "I:"))
        if len(ok) == 0:
            return out
        edges = pd.DataFrame({"e": ok, "probe": probe[ok], "gkey": key[probe[ok]]})
        edges["id"] = key[other[ok]]
        x = edges.merge(probe_files, on="gkey")
        if x.empty:
            return out
        x = x.merge(listed, on=["id", "source", "role", "file"], how="left")
        x["hit"] = x["hit"].astype("boolean").fillna(False).astype(bool)
        # per probe and file: penalise the listed candidates only when one is not listed
        free = ~x.groupby(["probe", "file"])["hit"].transform("all").to_numpy(dtype=bool)
        x["pen"] = np.where(x["hit"].to_numpy(dtype=bool) & free, x["pen"], 0.0)
        per = x.groupby("e")["pen"].max()
        out[per.index.to_numpy()] = per.to_numpy()
        return out

    return penalty
