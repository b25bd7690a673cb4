"""Pairwise precision/recall/F1 of a resolution against the sample county's truth.

Two records form a true pair when the truth gives them the same person, a predicted pair when
``identity_link`` does. Counting is done on the contingency table of (predicted, true) clusters,
so it costs one group-by instead of enumerating pairs. "Damaged" metrics count only pairs with at
least one damaged record (``truth/noise.csv``: missing/mistyped ID, altered name ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from crossmatch.errors import InputFileError
from crossmatch.warehouse import fetch_one


@dataclass(frozen=True)
class PairScores:
    precision: float
    recall: float
    f1: float
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    records: int

    def render(self, label: str) -> str:
        return (
            f"{label:<10} P {self.precision:.4f}  R {self.recall:.4f}  F1 {self.f1:.4f}  "
            f"(records {self.records:,}, true pairs {self.true_pairs:,}, "
            f"predicted {self.predicted_pairs:,}, correct {self.correct_pairs:,})"
        )


# Noise that normalisation undoes exactly: such a record is not "damaged" for the metrics.
COSMETIC_NOISE = (
    "id_lower_x",
    "id_15",
    "id_fullwidth",
    "id_space",
    "name_traditional",
    "name_fullwidth",
    "name_space",
    "name_dot",
)


def _c2(n: pd.Series) -> int:
    return int((n * (n - 1) // 2).sum())


def pair_scores(df: pd.DataFrame, damaged: pd.Series | None = None) -> PairScores:
    """``df`` has columns ``pred`` and ``true`` (cluster labels per record)."""
    if damaged is None:
        tp = _c2(df.groupby(["pred", "true"]).size())
        pp = _c2(df.groupby("pred").size())
        tt = _c2(df.groupby("true").size())
    else:
        d = df.assign(dmg=damaged.to_numpy(dtype=bool))

        def pairs_with_damage(keys: list[str]) -> int:
            g = d.groupby(keys)["dmg"].agg(["size", "sum"])
            return _c2(g["size"]) - _c2(g["size"] - g["sum"])

        tp = pairs_with_damage(["pred", "true"])
        pp = pairs_with_damage(["pred"])
        tt = pairs_with_damage(["true"])
    p = tp / pp if pp else 1.0
    r = tp / tt if tt else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return PairScores(p, r, f1, tt, pp, tp, len(df) if damaged is None else int(damaged.sum()))


def join_truth(con: duckdb.DuckDBPyConnection, truth: pd.DataFrame) -> pd.DataFrame:
    """Attach the predicted person to every truth record (file, row, role).

    Truth uses role ``person`` for single-person rows; when a (file, row) has one mention the
    role is not needed to match. A truth record the warehouse never loaded (quarantined row)
    becomes its own singleton prediction, so it counts against recall rather than vanishing.
    """
    pred = con.execute("SELECT file, row, role, person_id FROM identity_link").df()
    n_roles = pred.groupby(["file", "row"]).size().rename("n")
    pred = pred.join(n_roles, on=["file", "row"])
    t = truth.rename(columns={"source_file": "file", "person_id": "true"})
    t["row"] = t["row"].astype(int)
    by_role = t.merge(pred, on=["file", "row", "role"], how="left")
    single = pred[pred["n"] == 1].drop(columns=["role", "n"])
    fill = t.merge(single, on=["file", "row"], how="left")["person_id"]
    by_role["person_id"] = by_role["person_id"].fillna(
        pd.Series(fill.to_numpy(), index=by_role.index)
    )
    missing = by_role["person_id"].isna()
    by_role.loc[missing, "person_id"] = (
        "MISSING:"
        + by_role.loc[missing, "file"]
        + ":"
        + by_role.loc[missing, "row"].astype(str)
        + ":"
        + by_role.loc[missing, "role"]
    )
    return by_role.rename(columns={"person_id": "pred"})


def evaluate(con: duckdb.DuckDBPyConnection, truth_dir: str | Path) -> dict[str, PairScores]:
    """Scores ``overall`` and ``damaged`` for a resolved warehouse.

    Computed in DuckDB straight from the CSV files (same counting as :func:`join_truth` and
    :func:`pair_scores`): a 3-million-person county's truth has 18 million records, too many
    for pandas string frames in bounded memory.
    """
    truth_dir = Path(truth_dir)
    rec_path = truth_dir / "records.csv"
    if not rec_path.exists():
        raise InputFileError(
            f"{rec_path}: not found; point --truth at a sample's truth/ folder "
            "(made by `crossmatch sample`)"
        )
    cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {_csv(rec_path)}").fetchall()]
    need = {"source_file", "row", "role", "person_id"}
    if not need <= set(cols):
        raise InputFileError(f"{rec_path}: needs columns {sorted(need)}, has {cols}")
    noise_path = truth_dir / "noise.csv"
    cosmetic = ", ".join(f"'{n}'" for n in COSMETIC_NOISE)
    dmg_sql = (
        f"""SELECT DISTINCT source_file AS file, CAST("row" AS INTEGER) AS "row", role
        FROM {_csv(noise_path)} WHERE noise NOT IN ({cosmetic})"""
        if noise_path.exists()
        else 'SELECT NULL::VARCHAR AS file, NULL::INTEGER AS "row", NULL::VARCHAR AS role '
        "WHERE false"
    )
    base = f"""
    WITH t AS (SELECT source_file AS file, CAST("row" AS INTEGER) AS "row", role,
                      person_id AS tru FROM {_csv(rec_path)}),
    p AS (SELECT file, "row", role, person_id,
                 count(*) OVER (PARTITION BY file, "row") AS n FROM identity_link),
    d AS ({dmg_sql}),
    j AS (SELECT t.tru, coalesce(p.person_id, s.person_id,
                 'MISSING:' || t.file || ':' || CAST(t."row" AS VARCHAR) || ':' || t.role) AS pred,
                 d.file IS NOT NULL AS dmg
          FROM t LEFT JOIN p USING (file, "row", role)
          LEFT JOIN (SELECT file, "row", person_id FROM p WHERE n = 1) s
            ON s.file = t.file AND s."row" = t."row"
          LEFT JOIN d ON d.file = t.file AND d."row" = t."row" AND d.role = t.role)"""

    def counts(keys: str) -> tuple[int, int]:
        row = fetch_one(
            con,
            base
            + f""" SELECT sum(n * (n - 1) // 2),
                sum(n * (n - 1) // 2 - (n - k) * (n - k - 1) // 2)
            FROM (SELECT count(*)::HUGEINT AS n, sum(dmg::INTEGER)::HUGEINT AS k
                  FROM j GROUP BY {keys})""",
        )
        return int(row[0] or 0), int(row[1] or 0)

    tp, tp_d = counts("pred, tru")
    pp, pp_d = counts("pred")
    tt, tt_d = counts("tru")
    n, n_d = fetch_one(con, base + " SELECT count(*), sum(dmg::INTEGER) FROM j")
    out = {"overall": _scores(tp, pp, tt, int(n))}
    if noise_path.exists():
        out["damaged"] = _scores(tp_d, pp_d, tt_d, int(n_d or 0))
    return out


def _csv(path: Path) -> str:
    p = str(path).replace("'", "''")
    return f"read_csv('{p}', all_varchar = true, header = true)"


def _scores(tp: int, pp: int, tt: int, records: int) -> PairScores:
    p = tp / pp if pp else 1.0
    r = tp / tt if tt else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return PairScores(p, r, f1, tt, pp, tp, records)


def error_breakdown(con: duckdb.DuckDBPyConnection, truth_dir: str | Path) -> pd.DataFrame:
    """Per damaged record (one row per noise cell): how it fared, to find *why* quality drops.

    ``outcome``: ``ok`` (in the predicted cluster that holds most of its true person's records),
    ``wrong`` (in a cluster dominated by another true person: a false link) or ``missed`` (split
    off: a singleton or a cluster of its own). With ``source``, ``role``, ``noise`` and the
    ``method`` of its link, a group-by tells which noise kind, source and role lose quality.
    """
    truth_dir = Path(truth_dir)
    truth = pd.read_csv(truth_dir / "records.csv", dtype=str, keep_default_na=False)
    df = join_truth(con, truth)
    noise = pd.read_csv(truth_dir / "noise.csv", dtype=str, keep_default_na=False)
    noise = noise[~noise["noise"].isin(COSMETIC_NOISE)].rename(columns={"source_file": "file"})
    noise["row"] = noise["row"].astype(int)
    size = df.groupby(["true", "pred"]).size().rename("n").reset_index()
    home = size.sort_values("n", ascending=False).drop_duplicates("true").set_index("true")["pred"]
    owner = size.sort_values("n", ascending=False).drop_duplicates("pred").set_index("pred")["true"]
    df["home"] = df["true"].map(home)
    df["owner"] = df["pred"].map(owner)
    df["outcome"] = np.where(
        df["pred"] == df["home"], "ok", np.where(df["owner"] != df["true"], "wrong", "missed")
    )
    meth = con.execute("SELECT file, row, role, method FROM identity_link").df()
    out = noise.merge(df, on=["file", "row", "role"], how="left").merge(
        meth, on=["file", "row", "role"], how="left"
    )
    out["source"] = out["file"].str.split("/").str[0]
    return out
