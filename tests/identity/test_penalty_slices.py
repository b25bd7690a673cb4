"""Edge penalties weighed a slice of whole probes at a time (issue 16: a night's memory).

The candidate posterior weighs every probe-candidate edge by the edge penalties (role profile,
areas, listed, accounts, household); each groups by probe only, so the linker hands them the
edges in slices of whole probes: the same penalties, with frames as big as one slice."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crossmatch.identity.comparisons import Exact
from crossmatch.identity.linker import LinkageConfig, Linker, Prediction


def _linker_and_pred(seed: int = 3) -> tuple[pd.DataFrame, LinkageConfig, Prediction]:
    rng = np.random.default_rng(seed)
    n_persons, n_probes = 30, 60
    df = pd.DataFrame(
        {
            "name": ["王伟"] * (n_persons + n_probes),
            "reg_id": [f"P{i}" for i in range(n_persons)] + [None] * n_probes,
            "is_probe": [False] * n_persons + [True] * n_probes,
        }
    )
    left, right = [], []
    for p in range(n_persons, n_persons + n_probes):
        for c in rng.choice(n_persons, size=int(rng.integers(1, 6)), replace=False):
            # either orientation, as the resolver's pairs come
            left.append(int(c) if rng.random() < 0.5 else p)
            right.append(p if left[-1] != p else int(c))
    left_a, right_a = np.array(left), np.array(right)
    mw = rng.normal(4.0, 3.0, len(left_a))
    pred = Prediction(
        left_a, right_a, np.zeros((len(left_a), 1), np.int8), mw[:, None], ["name"], mw,
        1 / (1 + np.exp2(-mw)),
    )  # fmt: skip
    cfg = LinkageConfig(
        unique_id="node",
        comparisons=[Exact("name")],
        blocking_rules=[("name",)],
        exclusive=("reg_id",),
        probe_column="is_probe",
        candidate_posterior=True,
    )
    return df, cfg, pred


def _rival_penalty(calls: list[tuple[np.ndarray, np.ndarray]]):
    """Like the role profile's soft violations: an odd candidate costs 6 log2 units only when
    another candidate of the same probe is even (a rival that fits)."""

    def penalty(probe: np.ndarray, other: np.ndarray, w: np.ndarray) -> np.ndarray:
        calls.append((probe.copy(), other.copy()))
        odd = other % 2 == 1
        rival = pd.Series(~odd).groupby(probe).transform("any").to_numpy(dtype=bool)
        return np.where(odd & rival, 6.0, 0.0) - np.where(~odd, 0.5, 0.0)

    return penalty


def test_penalties_in_slices_of_whole_probes_decide_the_same():
    df, cfg, pred = _linker_and_pred()
    out = {}
    calls: dict[int, list] = {}
    for chunk in (10**9, 7):
        lk = Linker(df, cfg)
        calls[chunk] = []
        lk.edge_penalty = _rival_penalty(calls[chunk])
        lk.penalty_chunk_edges = chunk
        p = Prediction(pred.left, pred.right, pred.levels, pred.weights, pred.weight_names,
                       pred.match_weight, pred.probability.copy())  # fmt: skip
        labels, used = lk.cluster(p)
        out[chunk] = (labels, used, p.probability, lk.weighed_down, lk.supported)
    whole, sliced = out[10**9], out[7]
    assert len(calls[10**9]) == 1 and len(calls[7]) > 5
    for a, b in zip(whole, sliced, strict=True):
        np.testing.assert_array_equal(a, b)
    assert whole[3] > 0 and whole[4] > 0  # the penalty did weigh edges down and up
    # each slice holds whole probes, at most one probe's edges beyond the slice size
    seen: set[int] = set()
    for probe, _ in calls[7]:
        mine = set(probe.tolist())
        assert not (mine & seen)
        seen |= mine
        assert len(probe) < 7 + 5
    assert sum(len(p) for p, _ in calls[7]) == len(calls[10**9][0][0])
