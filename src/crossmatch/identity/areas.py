"""A land contract's area against the farmland subsidy's area (issue 17, identity).

A household's land contract (承包面积) and the farmland protection subsidy it is paid
(耕地地力保护补贴, 补贴面积) speak of the same land: the subsidised area is the contracted one,
or somewhat less (land taken out of farming), never much more. So an ID-less land contract of
王伟荣 in a village with two registered 王伟荣 fits the one whose subsidy (on a row with a
valid ID) is paid on 8.1 mu when the contract says 8.1 mu, and hardly the one paid on 10.0 mu;
the same holds the other way round (an ID-less subsidy row against the candidates' contracts).

How much the areas say is measured on the county's own records, as Fellegi-Sunter weights: m
per level of the ratio subsidy / contract from the pairs of rows that carry the same valid
ID, u from pairs of different IDs of one village; the weight of a probe-candidate edge is
log2(m / u) of its best-fitting pair of rows. A county where the areas do not follow each
other (or too few pairs to measure) gets no weight. Which fields are compared is data
(:data:`PAIRS`, canonical source / role / field names of the data contract).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import duckdb
import numpy as np
import pandas as pd

from crossmatch.identity.linker import MAX_SUPPORT

log = logging.getLogger(__name__)

#: (contract side, subsidy side): (canonical source, role, area field) each
PAIRS: tuple[tuple[tuple[str, str, str], tuple[str, str, str]], ...] = (
    (("land_contract", "contractor", "area_mu"), ("farmland_subsidy", "person", "area_mu")),
)
#: upper bounds of the levels of the ratio subsidy / contract (the last level: above 1)
LEVELS = (0.5, 0.75, 0.9, 0.998, 1.002)
MIN_PAIRS = 30  # same-ID pairs needed to measure m
MAX_PENALTY = 12.0  # log2 units: as much as an impossible role profile (role_profile.HARD)


def level(ratio: np.ndarray) -> np.ndarray:
    """Level per ratio subsidy / contract: 0 (< 0.5) .. 4 (equal, within 0.2%), 5 (more)."""
    r = np.asarray(ratio, dtype=float)
    return np.searchsorted(np.asarray(LEVELS), r, side="right").astype(np.int64)


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [table]
    ).fetchall()
    return {r[0] for r in rows}


def _rows(
    con: duckdb.DuckDBPyConnection, side: tuple[str, str, str], mentions: str, id_col: str = "id"
) -> str:
    """SQL: (source, file, row, role, id, village_code, area) of one side's mentions."""
    source, role, field = side
    return f"""SELECT m.source, m.file, m.row, m.role, m.{id_col} AS id, m.village_code,
            TRY_CAST(s.{field} AS DOUBLE) AS area
        FROM {mentions} m JOIN src_{source} s ON s._file = m.file AND s._row = m.row
        WHERE m.source = '{source}' AND m.role = '{role}'
            AND TRY_CAST(s.{field} AS DOUBLE) > 0"""


def weights(con: duckdb.DuckDBPyConnection, pair: tuple) -> np.ndarray | None:
    """log2(m / u) per level for one (contract, subsidy) pair of sides, or None when the
    county's records cannot measure it (missing tables, fewer than :data:`MIN_PAIRS` same-ID
    pairs) or the areas do not tell people apart (no level with m > u)."""
    (cs, _, cf), (ss, _, sf) = pair
    tables = _tables(con)
    for src, f in ((cs, cf), (ss, sf)):
        if f"src_{src}" not in tables or f not in _columns(con, f"src_{src}"):
            return None
    both = f"""WITH c AS ({_rows(con, pair[0], "person_mention")} AND m.id IS NOT NULL),
        s AS ({_rows(con, pair[1], "person_mention")} AND m.id IS NOT NULL)"""
    # level counts in DuckDB (a big county's same-village pairs run into the millions)
    lv = " + ".join(f"CASE WHEN s.area / c.area >= {b} THEN 1 ELSE 0 END" for b in LEVELS)
    k = len(LEVELS) + 1

    def counts(join: str) -> np.ndarray:
        rows = con.execute(f"{both} SELECT {lv} AS lv, count(*) FROM c JOIN s {join} GROUP BY 1")
        out = np.zeros(k)
        for lev, n in rows.fetchall():
            out[int(lev)] = n
        return out

    same = counts("USING (id)")
    if same.sum() < MIN_PAIRS:
        return None
    diff = counts("ON s.village_code = c.village_code AND s.id <> c.id")
    if diff.sum() < MIN_PAIRS:
        return None
    m = (same + 0.5) / (same.sum() + 0.5 * k)
    u = (diff + 0.5) / (diff.sum() + 0.5 * k)
    w = np.log2(m / u)
    if not (w > 0).any():
        return None
    return np.clip(w, -MAX_PENALTY, MAX_SUPPORT)


def _sides(con: duckdb.DuckDBPyConnection, mentions: str) -> list[tuple]:
    """Per measured pair and direction: (probe areas by gkey, candidate areas by ID among
    ``_ar_ids``, whether the probe is the contract side, the weights per level)."""
    parts = []
    for pair in PAIRS:
        w = weights(con, pair)
        if w is None:
            continue
        for probe_side, cand_side, probe_is_contract in ((0, 1, True), (1, 0, False)):
            p = con.execute(
                "SELECT DISTINCT f.gkey, x.area "
                f"FROM ({_rows(con, pair[probe_side], mentions, 'gkey')}) x "
                f"JOIN {mentions} f USING (source, file, row, role)"
            ).df()
            c = con.execute(
                f"SELECT DISTINCT id, area FROM ({_rows(con, pair[cand_side], 'person_mention')})"
                " SEMI JOIN _ar_ids USING (id) WHERE id IS NOT NULL"
            ).df()
            if p.empty or c.empty:
                continue
            parts.append((p, c, probe_is_contract, w))
    return parts


def edge_penalty(
    con: duckdb.DuckDBPyConnection, nid: np.ndarray, mentions: str = "_fz"
) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None:
    """(probe positions, candidate positions, pair weights) -> log2 penalty per candidate edge
    (negative: support): minus the area weight of the best-fitting pair of the probe's rows of
    one side and the candidate's rows (valid ID) of the other; a negative weight (a misfit)
    only while another candidate of the probe fits (positive weight). Edges without areas on
    both sides get 0. ``nid``: node id per position (``G:<gkey>`` probes, ``I:<id>`` ID
    nodes)."""
    nid_s = pd.Series(nid, dtype=object).astype(str)
    kind = nid_s.str.slice(0, 2).to_numpy()
    key = nid_s.str.slice(2).to_numpy()
    # only the candidates of this run's probes (a big county has millions of subsidy rows)
    con.register("_ar_ids", pd.DataFrame({"id": pd.unique(key[kind == "I:"])}))
    try:
        parts = _sides(con, mentions)
    finally:
        con.unregister("_ar_ids")
    if not parts:
        return None
    log.info("area evidence: %d side(s) measured", len(parts))

    def penalty(probe: np.ndarray, other: np.ndarray, pw: np.ndarray) -> np.ndarray:
        out = np.zeros(len(probe))
        ok = np.flatnonzero((kind[probe] == "G:") & (kind[other] == "I:"))
        if len(ok) == 0:
            return out
        edges = pd.DataFrame({"e": ok, "gkey": key[probe[ok]], "id": key[other[ok]]})
        scored = []
        for p, c, probe_is_contract, w in parts:
            x = edges.merge(p, on="gkey").merge(c, on="id", suffixes=("_p", "_c"))
            if x.empty:
                continue
            contract = np.where(probe_is_contract, x["area_p"], x["area_c"])
            subsidy = np.where(probe_is_contract, x["area_c"], x["area_p"])
            scored.append(pd.DataFrame({"e": x["e"], "w": w[level(subsidy / contract)]}))
        if scored:
            # the best-fitting pair of rows (a subsidy paid over several years, a node of
            # several rows)
            best = pd.concat(scored).groupby("e")["w"].max()
            e, w = best.index.to_numpy(), best.to_numpy()
            # a misfit costs only while another candidate of the record fits: a subsidy
            # paid on more than its person's contract is what farmland_over_area looks for,
            # and must not lose its only plausible person
            fits = pd.Series(w > 0).groupby(probe[e]).transform("any").to_numpy(dtype=bool)
            w = np.where((w < 0) & ~fits, 0.0, w)
            out[e] = -w
        return out

    return penalty
