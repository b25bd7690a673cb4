"""Comparison weights are monotone in the level: a closer agreement is never weaker evidence."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crossmatch.identity.comparisons import ChineseName
from crossmatch.identity.fellegi_sunter import FSModel
from crossmatch.identity.linker import LinkageConfig, Linker
from crossmatch.identity.names import name_keys


def _model() -> FSModel:
    # m of the rare look-alike level floored at 1% while its u is tiny: unconstrained, its
    # factor (log2 0.01/1e-5 = 10) would beat exact (log2 0.95/5e-4 = 10.9) after TF
    return FSModel(
        ["name"],
        [5],
        m=[np.array([0.01, 0.01, 0.01, 0.02, 0.95])],
        u=[np.array([0.97, 0.03, 1e-6, 1e-4, 5e-4])],
    )


def _linker(names: list[str]) -> Linker:
    s = pd.Series(names)
    df = pd.concat([pd.DataFrame({"name": s}), name_keys(s)], axis=1)
    cfg = LinkageConfig(
        unique_id="node",
        comparisons=[ChineseName("name", tf=True)],
        blocking_rules=[("surname_py",)],
    )
    return Linker(df, cfg, model=_model())


def test_name_weights_monotone_in_level():
    lk = _linker(["王清"] * 5 + ["李" + str(i) for i in range(40)])
    g = np.array([[0], [1], [2], [3], [4], [-1]], dtype=np.int8)
    w = lk.score(np.zeros(6, dtype=int), np.ones(6, dtype=int), g).weights[:, 0]
    assert np.all(np.diff(w[:4]) >= 0), w
    assert w[2] == w[3] and w[5] == 0


def test_lower_level_never_outweighs_an_exact_common_name():
    """王静 (look-alike of 王清) against a probe 王清 weighs no more than 王清 = 王清 does, with
    the term-frequency adjustment of a common name included."""
    lk = _linker(["王清", "王清", "王静", "王清"] + ["李" + str(i) for i in range(40)])
    left, right = np.array([1, 2]), np.array([0, 0])  # 王清-王清 (exact), 王静-王清
    g = lk.compare(left, right)
    assert g[:, 0].tolist() == [4, 2]
    pred = lk.score(left, right, g)
    assert pred.match_weight[1] <= pred.match_weight[0]


def test_compare_once_per_distinct_values_equals_every_pair_compared():
    """``Linker.compare`` compares each distinct pair of values once and spreads the levels
    back: on repeated values, nulls and every comparison kind it equals each pair compared."""
    from crossmatch.identity.comparisons import EditDistance, Exact, FuzzyString, Geo, IdNumber

    rng = np.random.default_rng(3)
    names = pd.Series(["王清", "汪清", "王静", "王请", "李四", None, "王清清", "张伟"])
    ids = ["341122199001011234", "341122199001011243", "341122199001011235", None, "3411"]
    n = 300
    df = pd.DataFrame(
        {
            "name": names.sample(n, replace=True, random_state=1).reset_index(drop=True),
            "id": rng.choice(np.array(ids, dtype=object), n),
            "village": rng.choice(
                np.array(["341122001001", "341122001002", "341122002001", None], dtype=object), n
            ),
            "acct": rng.choice(np.array(["6217", "6218", None], dtype=object), n),
            "birth": rng.choice(np.array(["19900101", "19900110", "19091001"], dtype=object), n),
            "pinyin": rng.choice(np.array(["wang", "wagn", "wong", None], dtype=object), n),
        }
    )
    df = pd.concat([df, name_keys(df["name"].fillna(""))], axis=1)
    df.loc[df["name"].isna(), ["name_py", "name_lapy"]] = None
    cfg = LinkageConfig(
        unique_id="node",
        comparisons=[
            ChineseName("name"),
            IdNumber("id"),
            Geo("village"),
            Exact("acct"),
            EditDistance("birth"),
            FuzzyString("pinyin"),
        ],
        blocking_rules=[("acct",)],
    )
    lk = Linker(df, cfg)
    left, right = rng.integers(0, n, 5000), rng.integers(0, n, 5000)
    got = lk.compare(left, right, chunk=1700)
    ld, rd = df.iloc[left].reset_index(drop=True), df.iloc[right].reset_index(drop=True)
    for j, comp in enumerate(cfg.comparisons):
        want = comp.levels(ld, rd)
        assert (got[:, j] == want).all(), comp
        assert len(np.unique(want)) >= 3, comp  # the pairs reach several levels
