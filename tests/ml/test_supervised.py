"""Learning from verdicts: refusal under 40 labels, out-of-fold scores, rule precision."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import average_precision_score

from crossmatch.ml import supervised as S


@pytest.fixture(autouse=True)
def _few_rounds(monkeypatch):
    monkeypatch.setattr(S, "MAX_ITER", 30)


def test_refuses_under_40_labels_and_says_so():
    x = np.random.default_rng(0).normal(size=(39, 3))
    y = np.array([0, 1] * 19 + [1], dtype=float)
    with pytest.raises(S.NotEnoughLabels, match=r"39 labelled clues .*at least 40"):
        S.out_of_fold(x, y)
    with pytest.raises(S.NotEnoughLabels, match="5 of each"):
        S.fit(np.zeros((60, 3)), np.array([1.0] * 57 + [0.0] * 3))


def test_out_of_fold_never_scores_a_clue_with_its_own_verdict():
    # pure noise: a model scoring its own training rows memorises them, out of fold it cannot
    rng = np.random.default_rng(1)
    x = rng.normal(size=(160, 6))
    y = (rng.random(160) < 0.3).astype(float)
    inside = S.fit(x, y).predict_proba(x)[:, 1]
    oof = S.out_of_fold(x, y)
    assert average_precision_score(y, inside) > 0.45
    assert average_precision_score(y, oof) < 0.45
    assert ((oof >= 0) & (oof <= 1)).all()


def test_out_of_fold_learns_a_real_signal():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(160, 4))
    y = (x[:, 0] + 0.3 * rng.normal(size=160) > 0.5).astype(float)
    assert average_precision_score(y, S.out_of_fold(x, y)) > 0.85


def test_rule_precision_from_verdicts():
    clues = pl.DataFrame({
        "rule_id": ["a", "a", "a", "b", "b"],
        "label": [1.0, 0.0, 1.0, None, 0.0],
    })  # fmt: skip
    p = S.rule_precision(clues).to_dicts()
    assert p[0] == {"rule_id": "a", "verdicts": 3, "confirmed": 2, "false_positive": 1,
                    "precision": pytest.approx(2 / 3)}  # fmt: skip
    assert p[1]["verdicts"] == 1 and p[1]["precision"] == 0.0
    assert [S.labels_from(v) for v in ("属实", "部分属实", "不属实-政策允许", "无法核实")] == [
        1.0, 1.0, 0.0, None]  # fmt: skip
