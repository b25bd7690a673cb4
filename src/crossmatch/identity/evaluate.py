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
    """Scores ``overall`` and ``damaged`` (and ``unmatched`` count) for a resolved warehouse."""
    truth_dir = Path(truth_dir)
    rec_path = truth_dir / "records.csv"
    if not rec_path.exists():
        raise InputFileError(
            f"{rec_path}: not found; point --truth at a sample's truth/ folder "
            "(made by `crossmatch sample`)"
        )
    truth = pd.read_csv(rec_path, dtype=str, keep_default_na=False)
    need = {"source_file", "row", "role", "person_id"}
    if not need <= set(truth.columns):
        raise InputFileError(f"{rec_path}: needs columns {sorted(need)}, has {list(truth.columns)}")
    df = join_truth(con, truth)
    out = {"overall": pair_scores(df)}
    noise_path = truth_dir / "noise.csv"
    if noise_path.exists():
        noise = pd.read_csv(noise_path, dtype=str, keep_default_na=False)
        noise = noise[~noise["noise"].isin(COSMETIC_NOISE)]
        key = set(zip(noise["source_file"], noise["row"].astype(int), noise["role"], strict=True))
        dmg = pd.Series(
            [k in key for k in zip(df["file"], df["row"], df["role"], strict=True)], index=df.index
        )
        out["damaged"] = pair_scores(df, dmg)
    return out


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
