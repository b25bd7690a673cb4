"""Household co-mentions: a record's other persons say whose relative a mention is.

A marriage record names a husband and a wife, an assistance case an applicant and its members,
a property its owner and co-owner, a registry row a person and the parents. When one of them is
known (a valid ID, or linked in the first round of the candidate posterior) and the other has
no usable ID, the other is most likely a relative of the known one: a member of the known
person's registry household, a parent or child (the registry's father / mother ID columns,
which reach across households: a married-out daughter and her parents) or a spouse (marriage
records). Among a mention's candidate persons, those relatives are *supported*; when at least
one candidate is supported, the others are weighed down (:data:`PENALTY` log2 units). Like
:mod:`crossmatch.identity.role_profile` this never creates a link by itself: it only tells
namesakes apart (six 谢芳 in the county, one of them the known husband's wife).

:func:`link_household_comentions <crossmatch.identity.exact.link_household_comentions>`
already links a missing ID on a row whose other person has a valid ID, where the household has
one member of that name; this module covers what it leaves: the other person linked only
fuzzily (both IDs missing), relatives outside the household, and members of one case on
different rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import duckdb
import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

PENALTY = 6.0  # log2 units off a candidate who is no relative when a relative fits

# sources whose persons on one row are relatives of each other (role pairs in either order);
# staff roles (handler, approver) are never relatives of the case
KIN_ROLES: dict[str, frozenset[str]] = {
    "marriage": frozenset({"husband", "wife"}),
    "assistance": frozenset({"applicant", "member"}),
    "hukou": frozenset({"person", "father", "mother"}),
    "property": frozenset({"owner", "co_owner"}),
    "proxy_filing": frozenset({"beneficiary", "agent"}),
    "relative_filing": frozenset({"cadre", "relative"}),
}
# a column grouping the rows of one household or case within a source (members of one case
# on different rows)
GROUP_COLUMN: dict[str, str] = {"assistance": "case_no"}
# two roles of one row are at times one person (a case's applicant listed as its own member,
# 本人) when at least this many rows with both IDs, and this share of them, name one ID twice
SELF_MIN_ROWS = 3
SELF_SHARE = 0.01


def self_roles_sql(where: str = "true") -> str:
    """SELECT source, role, known_role: the role pairs of one row whose two persons the
    county's own rows with both IDs show to be one person at times (:data:`SELF_MIN_ROWS`,
    :data:`SELF_SHARE`): the known person of ``known_role`` is then a candidate of the other
    role's mention himself. A property's owner and co-owner, a husband and wife never are.
    ``where``: a condition on ``a`` (the known role's mention), e.g. the sources to measure."""
    return f"""SELECT a.source, b.role, a.role AS known_role FROM person_mention a
        JOIN person_mention b ON a.source = b.source AND a.file = b.file
            AND a.row = b.row AND a.role <> b.role
        WHERE a.id IS NOT NULL AND b.id IS NOT NULL AND ({where})
        GROUP BY ALL
        HAVING count_if(a.id = b.id) >= {SELF_MIN_ROWS}
            AND count_if(a.id = b.id) >= {SELF_SHARE} * count(*)"""


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [table]
    ).fetchall()
    return {r[0] for r in rows}


def comentions(con: duckdb.DuckDBPyConnection, mentions: str = "_fz") -> pd.DataFrame:
    """Per probe mention (gkey) of a kin source: its co-mentions' valid ID (``known_id``) or
    group key (``known_gkey``, a probe itself), and whether the co-mention may be the probe's
    person himself (``self_ok``: same row, roles that are one person at times,
    :func:`self_roles_sql`). Columns gkey, known_id, known_gkey, self_ok."""
    kin_src = ", ".join(f"'{s}'" for s in sorted(KIN_ROLES))
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _self_roles AS "
        + self_roles_sql(f"a.source IN ({kin_src}) AND a.source <> 'hukou'")
    )
    parts = []
    for src, roles in KIN_ROLES.items():
        cols = _columns(con, f"src_{src}")
        if not cols:
            continue
        rl = ", ".join(f"'{r}'" for r in sorted(roles))
        parts.append(
            f"""SELECT f.gkey, b.id AS known_id, fb.gkey AS known_gkey,
                sr.source IS NOT NULL AS self_ok
            FROM {mentions} f JOIN person_mention b ON b.source = f.source AND b.file = f.file
                AND b.row = f.row AND b.role <> f.role
            LEFT JOIN {mentions} fb ON fb.source = b.source AND fb.file = b.file
                AND fb.row = b.row AND fb.role = b.role
            LEFT JOIN _self_roles sr ON sr.source = f.source AND sr.role = f.role
                AND sr.known_role = b.role
            WHERE f.source = '{src}' AND f.role IN ({rl}) AND b.role IN ({rl})"""
        )
        grp = GROUP_COLUMN.get(src)
        if grp and grp in cols:
            parts.append(
                f"""SELECT f.gkey, b.id AS known_id, fb.gkey AS known_gkey, false AS self_ok
                FROM {mentions} f
                JOIN src_{src} sf ON sf._file = f.file AND sf._row = f.row
                JOIN src_{src} sb ON sb.{grp} = sf.{grp} AND NOT (sb._file = sf._file
                    AND sb._row = sf._row)
                JOIN person_mention b ON b.source = '{src}' AND b.file = sb._file
                    AND b.row = sb._row
                LEFT JOIN {mentions} fb ON fb.source = b.source AND fb.file = b.file
                    AND fb.row = b.row AND fb.role = b.role
                WHERE f.source = '{src}' AND f.role IN ({rl}) AND b.role IN ({rl})
                    AND sf.{grp} IS NOT NULL"""
            )
    if not parts:
        return pd.DataFrame(columns=["gkey", "known_id", "known_gkey", "self_ok"])
    df = con.execute(
        "SELECT DISTINCT * FROM (" + " UNION ALL ".join(parts) + ") "
        "WHERE known_id IS NOT NULL OR known_gkey IS NOT NULL"
    ).df()
    return df[df["known_gkey"].isna() | (df["known_gkey"] != df["gkey"])]


def kin_of(con: duckdb.DuckDBPyConnection, ids: list[str]) -> pd.DataFrame:
    """(id, kin) for the given valid IDs: registry household members, parents and children
    (the registry's father / mother columns) and spouses (marriage records)."""
    if not ids:
        return pd.DataFrame(columns=["id", "kin"])
    con.register("_hh_ids", pd.DataFrame({"id": pd.Series(sorted(set(ids)), dtype=object)}))
    try:
        parts = [
            # parents and children: a registry row's person and its father / mother
            """SELECT p.id AS a, q.id AS b FROM person_mention p JOIN person_mention q
                ON q.source = 'hukou' AND q.file = p.file AND q.row = p.row
                AND q.role IN ('father', 'mother')
            WHERE p.source = 'hukou' AND p.role = 'person' AND p.id IS NOT NULL
                AND q.id IS NOT NULL""",
            """SELECT h.id, w.id FROM person_mention h JOIN person_mention w
                ON w.source = 'marriage' AND w.file = h.file AND w.row = h.row
                AND w.role = 'wife'
            WHERE h.source = 'marriage' AND h.role = 'husband' AND h.id IS NOT NULL
                AND w.id IS NOT NULL""",
        ]
        if "household_no" in _columns(con, "src_hukou"):
            parts.append(
                """WITH hh AS (SELECT DISTINCT m.id, s.household_no FROM person_mention m
                    JOIN src_hukou s ON m.source = 'hukou' AND m.role = 'person'
                        AND s._file = m.file AND s._row = m.row
                    WHERE m.id IS NOT NULL AND s.household_no IS NOT NULL)
                SELECT x.id, y.id FROM hh x JOIN hh y USING (household_no)
                WHERE x.id <> y.id"""
            )
        body = " UNION ALL ".join(f"SELECT * FROM ({p})" for p in parts)
        return con.execute(
            f"""WITH e AS ({body}), both_ways AS (
                SELECT a AS id, b AS kin FROM e UNION SELECT b, a FROM e)
            SELECT DISTINCT id, kin FROM both_ways SEMI JOIN _hh_ids USING (id)"""
        ).df()
    finally:
        con.unregister("_hh_ids")


def support(
    con: duckdb.DuckDBPyConnection,
    nid: np.ndarray,
    person_of_node: Callable[[np.ndarray], np.ndarray],
    mentions: str = "_fz",
) -> dict[str, set[str]]:
    """Per probe group key: the valid IDs of its co-mentions' relatives. ``person_of_node``
    maps node positions to the registry / outside ID their first-round cluster holds (None)."""
    cm = comentions(con, mentions)
    if cm.empty:
        return {}
    pos = {k[2:]: i for i, k in enumerate(nid) if isinstance(k, str) and k.startswith("G:")}
    kg = cm["known_gkey"].map(pos)
    has = kg.notna().to_numpy()
    via = np.full(len(cm), None, dtype=object)
    if has.any():
        via[has] = person_of_node(kg[has].to_numpy(dtype=np.int64))
    cm = cm.assign(known=cm["known_id"].astype(object).where(cm["known_id"].notna(), via))
    cm = cm[cm["known"].notna()]
    if cm.empty:
        return {}
    kin = kin_of(con, cm["known"].astype(str).tolist())
    m = cm.merge(kin, left_on="known", right_on="id")
    out: dict[str, set[str]] = {}
    for g, k in zip(m["gkey"], m["kin"], strict=True):
        out.setdefault(g, set()).add(k)
    # the co-mention himself, where the two roles are one person at times (an applicant
    # listed as his own member): as much a candidate as his relatives
    own = cm[cm["self_ok"].fillna(False).astype(bool)]
    for g, k in zip(own["gkey"], own["known"].astype(str), strict=True):
        out.setdefault(g, set()).add(k)
    return out


def edge_penalty(
    nid: np.ndarray, supported: dict[str, set[str]]
) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None:
    """(probe, candidate, weight) -> :data:`PENALTY` for a candidate that is no relative of the
    probe's co-mentions, where another candidate of the probe is one; else 0."""
    if not supported:
        return None
    nid_s = np.asarray(nid, dtype=object)

    def penalty(probe: np.ndarray, other: np.ndarray, w: np.ndarray) -> np.ndarray:
        out = np.zeros(len(probe))
        if len(probe) == 0:
            return out
        pk = nid_s[probe]
        ok = np.array([isinstance(k, str) and k[2:] in supported for k in pk])
        idx = np.flatnonzero(ok)
        if len(idx) == 0:
            return out
        ck = nid_s[other[idx]]
        rel = np.array(
            [
                isinstance(c, str) and c.startswith("I:") and c[2:] in supported[p[2:]]
                for p, c in zip(pk[idx], ck, strict=True)
            ]
        )
        any_rel = pd.Series(rel).groupby(probe[idx]).transform("any").to_numpy(dtype=bool)
        out[idx[any_rel & ~rel]] = PENALTY
        return out

    return penalty


def combine(
    *fns: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None,
) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None:
    """Several edge penalties as one (their sum)."""
    live = [f for f in fns if f is not None]
    if not live:
        return None

    def total(probe: np.ndarray, other: np.ndarray, w: np.ndarray) -> np.ndarray:
        return np.sum([f(probe, other, w) for f in live], axis=0)

    return total


def first_round_persons(
    labels: np.ndarray, reg: np.ndarray, ext: np.ndarray
) -> Callable[[np.ndarray], np.ndarray]:
    """Node positions -> the valid ID (registry, else outside) of their cluster, or None.
    ``reg`` / ``ext``: per node its registry / outside ID column (``R:`` row anchors are no
    IDs)."""
    cl = pd.DataFrame({"label": labels, "reg": reg, "ext": ext})
    cl["reg"] = cl["reg"].where(~cl["reg"].astype(str).str.startswith("R:"), None)
    cl["id"] = cl["reg"].where(cl["reg"].notna(), cl["ext"])
    first = cl.dropna(subset=["id"]).sort_values("id").drop_duplicates("label")
    by_label = dict(zip(first["label"], first["id"], strict=True))

    def person(pos: np.ndarray) -> np.ndarray:
        return np.array([by_label.get(int(x)) for x in labels[pos]], dtype=object)

    return person
