"""Learn from analysts' verdicts: a calibrated classifier re-orders the open clues.

Labels come from the review store's latest verdict per clue: 属实 / 部分属实 = confirmed (1),
不属实-数据错误 / 不属实-政策允许 = false positive (0); 无法核实 is no label. Each clue is described
by its rule (one-hot), severity, amount at stake (log), months, hit rows, and the unsupervised
scores of its subject (:mod:`crossmatch.ml.score`). The classifier is scikit-learn's
HistGradientBoosting inside ``CalibratedClassifierCV`` (sigmoid below 200 labels, isotonic
above), so its output reads as a probability of being confirmed.

Never scored by its own verdict: every labelled clue's probability comes *out of fold* (a model
trained on the other folds); unlabelled clues are scored by a model trained on all labels.
Fewer than :data:`MIN_LABELS` labels (or fewer than :data:`MIN_PER_CLASS` of either class): no
training, :class:`NotEnoughLabels` says how many there are and how many it needs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, brier_score_loss
from sklearn.model_selection import StratifiedKFold

from crossmatch import warehouse as wh_mod
from crossmatch.detect.schema import existing_relations
from crossmatch.errors import CrossmatchError, ExitCode
from crossmatch.ml import features as F
from crossmatch.ml import model as M
from crossmatch.review.api import _pl
from crossmatch.review.clues import latest_run
from crossmatch.review.store import open_store, store_path

MIN_LABELS = 40
#: boosting rounds (the tests lower it: they check behaviour, not the best fit)
MAX_ITER = 150
MIN_PER_CLASS = 5
CONFIRMED = ("属实", "部分属实")
FALSE = ("不属实-数据错误", "不属实-政策允许")
SEVERITY = {"high": 2.0, "medium": 1.0, "low": 0.0}
CONTEXT_COLUMNS = ("ctx_hits", "ctx_tenure", "ctx_kin")


class NotEnoughLabels(CrossmatchError):
    """Too few verdicts to train on: the clues keep the severity / amount order."""

    exit_code = ExitCode.INPUT_PROBLEMS


def labels_from(verdict: str | None) -> float | None:
    if verdict in CONFIRMED:
        return 1.0
    if verdict in FALSE:
        return 0.0
    return None


def design(clues: pl.DataFrame, rules: list[str]) -> np.ndarray:
    """The feature matrix of clues (columns: rule one-hot, severity, log amount, months, hits,
    the subject's ensemble / robust-z / forest scores and context features: rule hits, tenure,
    kinship; 0 where missing)."""
    cols = [(clues["rule_id"] == r).cast(pl.Float64).to_numpy() for r in rules]
    sev = clues["severity"].replace_strict(SEVERITY, default=0.0, return_dtype=pl.Float64)
    cols += [
        sev.to_numpy(),
        np.log1p(clues["amount"].cast(pl.Float64).fill_null(0).clip(0, None).to_numpy()),
        clues["months"].cast(pl.Float64).fill_null(0).to_numpy(),
        clues["hits"].cast(pl.Float64).fill_null(0).to_numpy(),
    ]
    for c in ("ml_ensemble", "ml_robust_z", "ml_iforest", *CONTEXT_COLUMNS):
        v = clues[c] if c in clues.columns else pl.Series([0.0] * clues.height)
        cols.append(v.cast(pl.Float64).fill_null(0).to_numpy())
    return np.column_stack(cols) if cols else np.zeros((clues.height, 0))


def _classifier(n: int, seed: int) -> CalibratedClassifierCV:
    base = HistGradientBoostingClassifier(
        max_iter=MAX_ITER, learning_rate=0.08, max_leaf_nodes=15, l2_regularization=1.0,
        random_state=seed,
    )  # fmt: skip
    return CalibratedClassifierCV(base, method="isotonic" if n >= 200 else "sigmoid", cv=3)


def check_labels(y: np.ndarray) -> None:
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    if len(y) < MIN_LABELS or min(pos, neg) < MIN_PER_CLASS:
        raise NotEnoughLabels(
            f"{len(y)} labelled clues (属实/部分属实 {pos}, 不属实 {neg}): training needs at least "
            f"{MIN_LABELS}, with {MIN_PER_CLASS} of each. Fix: record more verdicts "
            "(`crossmatch verdict`); until then clues stay ordered by severity and amount."
        )


def out_of_fold(x: np.ndarray, y: np.ndarray, *, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Each labelled row's probability from a model that never saw its label."""
    check_labels(y)
    k = max(2, min(folds, int(min((y == 1).sum(), (y == 0).sum()))))
    oof = np.zeros(len(y))
    for tr, te in StratifiedKFold(k, shuffle=True, random_state=seed).split(x, y):
        clf = _classifier(len(tr), seed).fit(x[tr], y[tr])
        oof[te] = clf.predict_proba(x[te])[:, 1]
    return oof


def fit(x: np.ndarray, y: np.ndarray, *, seed: int = 0) -> CalibratedClassifierCV:
    check_labels(y)
    return _classifier(len(y), seed).fit(x, y)


def rule_precision(clues: pl.DataFrame) -> pl.DataFrame:
    """Per rule: clues with a verdict, confirmed, false positives, and the precision."""
    lab = clues.filter(pl.col("label").is_not_null())
    return (
        lab.group_by("rule_id")
        .agg(
            pl.len().alias("verdicts"),
            (pl.col("label") == 1).sum().alias("confirmed"),
            (pl.col("label") == 0).sum().alias("false_positive"),
        )
        .with_columns((pl.col("confirmed") / pl.col("verdicts")).alias("precision"))
        .sort("rule_id")
    )


@dataclass
class TrainResult:
    model_id: str
    labels: int
    positives: int
    oof_ap: float
    oof_brier: float
    scored: int
    precision: pl.DataFrame = field(default_factory=pl.DataFrame)

    def render(self) -> str:
        out = [
            f"supervised model {self.model_id}: {self.labels} labels ({self.positives} confirmed)"
            f", out-of-fold AP {self.oof_ap:.3f}, Brier {self.oof_brier:.3f}; "
            f"{self.scored} clues scored",
            "rule precision from verdicts:",
        ]
        for r in self.precision.iter_rows(named=True):
            out.append(f"  {r['rule_id']:<28} {r['confirmed']:>4}/{r['verdicts']:<4} "
                       f"{r['precision']:.3f}")  # fmt: skip
        return "\n".join(out)


def clue_frame(warehouse: str | Path, store: str | Path | None = None) -> pl.DataFrame:
    """Every clue with its latest verdict's label and its subject's unsupervised scores."""
    st = open_store(store or store_path(warehouse), read_only=True)
    try:
        clues = _pl(st.execute(
            "SELECT c.clue_id, c.rule_id, c.subject, c.severity, c.state, c.amount, c.months, "
            "c.hits, v.verdict FROM clue c LEFT JOIN (SELECT clue_id, arg_max(verdict, "
            "recorded_at) AS verdict FROM verdict GROUP BY clue_id) v USING (clue_id) "
            "ORDER BY c.clue_id"
        ))  # fmt: skip
    finally:
        st.close()
    clues = clues.with_columns(
        pl.col("verdict").map_elements(labels_from, return_dtype=pl.Float64).alias("label")
    )
    with wh_mod.session(warehouse, read_only=True) as con:
        run = latest_run(con)
        if "ml_score" in existing_relations(con):
            last = con.execute("SELECT run_id FROM ml_run ORDER BY scored_at DESC LIMIT 1")
            row = last.fetchone()
            if row:
                run = row[0]
                ml = _pl(con.execute(
                    "SELECT entity_id AS subject, max(ensemble) AS ml_ensemble, "
                    "max(robust_z) AS ml_robust_z, max(iforest) AS ml_iforest FROM ml_score "
                    "WHERE run_id = ? GROUP BY entity_id", [row[0]]
                ))  # fmt: skip
                clues = clues.join(ml, on="subject", how="left")
        # the context features (rule hits, tenure, kinship): what the rules already say
        parts = []
        for ef in F.compute(con, run).values():
            cols = [c for c in F.CONTEXT if c in ef.frame.columns]
            if ef.status == "skipped" or not cols:
                continue
            parts.append(ef.frame.select(
                pl.col("entity_id").alias("subject"),
                *[pl.col(c).alias(f"ctx_{F.CONTEXT[c]}") for c in cols],
            ))  # fmt: skip
        if parts:
            ctx = pl.concat(parts, how="diagonal").group_by("subject").max()
            clues = clues.join(ctx, on="subject", how="left")
    return clues


ML_CLUE_DDL = """
CREATE TABLE IF NOT EXISTS ml_clue_score (
    model_id VARCHAR, clue_id VARCHAR, p_confirmed DOUBLE, out_of_fold BOOLEAN,
    scored_at TIMESTAMP
)
"""


def train_from_verdicts(
    warehouse: str | Path, store: str | Path | None = None, *, seed: int = 0
) -> TrainResult:
    """Train on the verdicts, score every clue (labelled ones out of fold), store the scores in
    the review store (``ml_clue_score``) and the model under ``<warehouse>.models/``."""
    clues = clue_frame(warehouse, store)
    rules = sorted(clues["rule_id"].unique().to_list())
    x = design(clues, rules)
    lab = clues["label"].is_not_null().to_numpy()
    y = clues["label"].to_numpy()[lab]
    oof = out_of_fold(x[lab], y, seed=seed)
    clf = fit(x[lab], y, seed=seed)
    p = clf.predict_proba(x)[:, 1] if len(x) else np.zeros(0)
    p[lab] = oof
    pairs = "\n".join(f"{c}|{int(v)}" for c, v in zip(clues["clue_id"].to_numpy()[lab], y,
                                                      strict=True))  # fmt: skip
    meta = {
        "features": [f"rule={r}" for r in rules] + ["severity", "log_amount", "months", "hits",
                                                    "ml_ensemble", "ml_robust_z", "ml_iforest",
                                                    *CONTEXT_COLUMNS],
        "params": {"classifier": "HistGradientBoostingClassifier", "calibration":
                   "isotonic" if len(y) >= 200 else "sigmoid", "seed": seed},
        "training_fingerprint": hashlib.sha256(pairs.encode()).hexdigest()[:16],
        "training_rows": len(y),
        "out_of_fold_ap": float(average_precision_score(y, oof)),
    }  # fmt: skip
    model = M.save(warehouse, "supervised", {"classifier": clf, "rules": rules}, meta)
    now = dt.datetime.now().replace(microsecond=0)
    out = pl.DataFrame({"model_id": model.model_id, "clue_id": clues["clue_id"],
                        "p_confirmed": p, "out_of_fold": lab, "scored_at": now})  # fmt: skip
    st = open_store(store or store_path(warehouse))
    try:
        st.execute(ML_CLUE_DDL)
        with wh_mod.transaction(st):
            st.execute("DELETE FROM ml_clue_score")
            st.register("_p", out.to_arrow())
            st.execute("INSERT INTO ml_clue_score SELECT * FROM _p")
            st.unregister("_p")
    finally:
        st.close()
    return TrainResult(model.model_id, len(y), int(y.sum()),
                       float(average_precision_score(y, oof)), float(brier_score_loss(y, oof)),
                       len(p), rule_precision(clues))  # fmt: skip
