"""Who holds an account: evidence for the ID-less rows paid into it.

The person index knows an account's owner where every ID-bearing row that carries it names one
ID. A shared account (a cadre's account receiving several villagers' payments, the
shared_account and cadre_account patterns) has several, so an ID-less payment into it had no
account evidence at all: 陈华's payment into 陈华's own account (which also received 刘国林's
payments) stayed unresolved, a false ghost clue. :func:`name_owner_sql` keeps, per account
*and name*, the one ID whose rows carry both: the ID-less row of that name paid into that
account is most likely that person's (the account's owner on ID-bearing rows is evidence).

An account that *no* ID-bearing row carries (its owner is unknown) is another matter. The FS
comparison of accounts (``acct``, exact) scores it as a disagreement with every candidate who
holds some other account, and as nothing against a candidate who holds none: an unknown
account made every account holder less likely, though people hold several accounts. Seed 11's
ID-less bank row of 张生 went to a namesake aged 7, and seed 67's of 朱红 (a second account of
hers) to a namesake holding none, at p 0.80. :func:`edge_penalty` replaces that comparison, for
such a probe, with what the county measures: how often an ID-bearing row whose account no
other ID-bearing row carries (the same situation, one row left out) belongs to a person who
holds another account, against how often a person of the index does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import duckdb
import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: fewest ID-bearing rows with an account of their own (carried by no other ID-bearing row)
#: to measure from; below it the piece stays out (the FS comparison is left as it is)
MIN_ROWS = 30
#: most log2 units either level may weigh
MAX_BITS = 4.0


def name_owner_sql(mentions: str = "person_mention") -> str:
    """SELECT account, name, owner: per account and name, the one valid ID whose ID-bearing
    rows carry both (none where two IDs of that name share the account)."""
    return f"""SELECT account, name, min(id) AS owner FROM {mentions}
        WHERE account IS NOT NULL AND id IS NOT NULL AND name IS NOT NULL
        GROUP BY account, name HAVING count(DISTINCT id) = 1"""


def _owners_sql() -> str:
    return (
        "SELECT account, owner FROM _acct_owner UNION SELECT account, owner FROM _acct_name_owner"
    )


def unknown_account_weights(
    con: duckdb.DuckDBPyConnection, index: str = "_idx"
) -> tuple[float, float, int, int] | None:
    """(log2 weight for a candidate who holds an account, for one who holds none, rows
    measured, of them held by a holder), for a row paid into an account of unknown owner.

    m: among ID-bearing rows whose account no other ID-bearing row carries (left out, the row
    is what an ID-less row into an unknown account is), the share whose person holds another
    account (``(k + 1/2) / (n + 1)``); u: the share of the index's persons holding an account.
    None below :data:`MIN_ROWS` rows. Needs ``_acct_owner`` and ``_acct_name_owner``."""
    n, k = con.execute(
        f"""WITH m AS (SELECT DISTINCT source, file, row, role, id, account FROM person_mention
                WHERE id IS NOT NULL AND account IS NOT NULL),
            solo AS (SELECT min(id) AS id, account FROM m GROUP BY account HAVING count(*) = 1),
            own AS ({_owners_sql()})
        SELECT count(*), count(*) FILTER (WHERE EXISTS (
            SELECT 1 FROM own WHERE own.owner = solo.id AND own.account <> solo.account))
        FROM solo"""
    ).fetchone() or (0, 0)
    if n < MIN_ROWS:
        return None
    total, holders = con.execute(
        f"SELECT count(*), count(acct) FROM {index} WHERE idc IS NOT NULL"
    ).fetchone() or (0, 0)
    if not total or holders in (0, total):
        return None
    hm = (k + 0.5) / (n + 1)
    hu = holders / total
    hold = float(np.clip(np.log2(hm / hu), -MAX_BITS, MAX_BITS))
    none = float(np.clip(np.log2((1 - hm) / (1 - hu)), -MAX_BITS, MAX_BITS))
    return hold, none, int(n), int(k)


def differ_weight(model: object, column: str = "acct", config: object = None) -> float | None:
    """The FS weight (log2) of the account comparison's "different" level (level 0), or None
    when the model has no comparison over ``column``."""
    comps = getattr(config, "comparisons", None) or []
    for j, comp in enumerate(comps):
        if getattr(comp, "column", None) == column and comp.n_levels == 2:
            m, u = model.m[j], model.u[j]  # type: ignore[attr-defined]
            return float(np.log2(max(float(m[0]), 1e-12) / max(float(u[0]), 1e-12)))
    return None


def edge_penalty(
    con: duckdb.DuckDBPyConnection,
    nid: np.ndarray,
    w_differ: float | None,
    mentions: str = "_fz",
    index: str = "_idx",
) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None:
    """(probe positions, candidate positions, pair weights) -> log2 penalty per candidate edge:
    for a probe paid into an account no ID-bearing row carries (``acct`` = ``A:<account>``),
    an ID candidate who holds an account gets back the comparison's "different" weight
    ``w_differ`` and takes the measured holder weight instead; one who holds none takes the
    measured none weight (:func:`unknown_account_weights`). Other edges: 0. ``nid``: node id
    per position (``G:<gkey>`` probes, ``I:<id>`` ID nodes)."""
    if w_differ is None:
        return None
    ws = unknown_account_weights(con, index)
    if ws is None:
        return None
    hold, none, n, k = ws
    nid_s = pd.Series(nid, dtype=object).astype(str)
    kind = nid_s.str.slice(0, 2).to_numpy()
    key = nid_s.str.slice(2).to_numpy()
    probes = con.execute(
        f"""SELECT DISTINCT f.gkey FROM {mentions} f
        WHERE f.acct LIKE 'A:%' AND substr(f.acct, 3) NOT IN (
            SELECT account FROM person_mention WHERE id IS NOT NULL AND account IS NOT NULL)"""
    ).df()
    if probes.empty:
        return None
    unknown = set(probes["gkey"].astype(str))
    cands = pd.DataFrame({"id": pd.unique(key[kind == "I:"])})
    con.register("_ua_ids", cands)
    try:
        holders = set(
            con.execute(
                f"SELECT DISTINCT owner FROM ({_owners_sql()}) SEMI JOIN _ua_ids i ON i.id = owner"
            ).df()["owner"]
        )
    finally:
        con.unregister("_ua_ids")
    log.info(
        "unknown accounts: %d probe group(s); %d of %d rows measured hold another account: "
        "holder %+.2f, none %+.2f log2 (instead of %+.2f / 0)",
        len(unknown), k, n, hold, none, w_differ,
    )  # fmt: skip

    def penalty(probe: np.ndarray, other: np.ndarray, w: np.ndarray) -> np.ndarray:
        out = np.zeros(len(probe))
        ok = (kind[probe] == "G:") & (kind[other] == "I:")
        ok &= np.fromiter((x in unknown for x in key[probe]), bool, len(probe))
        idx = np.flatnonzero(ok)
        if len(idx) == 0:
            return out
        held = np.fromiter((x in holders for x in key[other[idx]]), bool, len(idx))
        out[idx] = np.where(held, w_differ - hold, -none)
        return out

    return penalty
