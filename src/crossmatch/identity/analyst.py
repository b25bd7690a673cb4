"""The analyst API of identity: why a record was linked (:func:`explain`) and same/different
judgements (:func:`record_judgement`) that the next resolution obeys.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

from crossmatch.identity.fuzzy_model import _load_model, default_config

JUDGEMENT_DDL = """
CREATE TABLE IF NOT EXISTS identity_judgement (
    a_source VARCHAR, a_file VARCHAR, a_row INTEGER, a_role VARCHAR,
    b_source VARCHAR, b_file VARCHAR, b_row INTEGER, b_role VARCHAR,
    same BOOLEAN, analyst VARCHAR, note VARCHAR, created_at TIMESTAMP DEFAULT current_timestamp
)"""


def ensure_judgement_table(con: duckdb.DuckDBPyConnection) -> None:
    """Creates ``identity_judgement`` when missing, and its ``merge_ids`` column in a warehouse
    judged before that column existed."""
    con.execute(JUDGEMENT_DDL)
    con.execute(
        "ALTER TABLE identity_judgement ADD COLUMN IF NOT EXISTS merge_ids BOOLEAN DEFAULT false"
    )


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
    ensure_judgement_table(con)
    params = [*a[:2], int(a[2]), a[3], *b[:2], int(b[2]), b[3], bool(same), analyst, note]
    params.append(bool(merge_ids))
    con.execute(
        "INSERT INTO identity_judgement (a_source, a_file, a_row, a_role, b_source, b_file, "
        "b_row, b_role, same, analyst, note, created_at, merge_ids) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, current_timestamp, ?)",
        params,
    )
