"""The detectors rank a planted outlier first; the ensemble; percentile ranks."""

from __future__ import annotations

import numpy as np
import pytest

from crossmatch.ml import detectors as D


def data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(10, 1, size=(300, 4))
    x[17] = [10, 10, 25, 10]  # far out on one feature
    return x


@pytest.mark.parametrize("det", D.DETECTORS)
def test_each_detector_ranks_the_outlier_first(det):
    x = data()
    s = D.score(D.fit(x, list("abcd")), x)[det]
    assert int(np.argmax(s)) == 17


def test_robust_z_is_one_sided_and_ignores_a_constant_feature():
    x = data()
    x[:, 0] = 5.0  # MAD, IQR and std all 0: scale 1, z 0 everywhere
    x[3, 1] = -50  # far *below*: not suspicious by orientation
    f = D.fit(x, list("abcd"))
    z = D.zscores(f, x)
    assert z.min() == 0 and z[:, 0].max() == 0 and z[3, 1] == 0
    assert z[17, 2] == D.Z_CLIP  # 15 robust deviations, capped


def test_fit_is_reproducible_and_needs_no_forest_when_tiny():
    x = data()
    a = D.score(D.fit(x, list("abcd"), seed=3), x)
    b = D.score(D.fit(x, list("abcd"), seed=3), x)
    for k in D.DETECTORS:
        assert np.array_equal(a[k], b[k])
    tiny = D.fit(x[:5], list("abcd"))
    assert tiny.forest is None
    s = D.score(tiny, x[:5])
    assert np.array_equal(s["iforest"], s["robust_z"])


def test_percentile_rank_ties_share_their_mean_rank():
    r = D.percentile_rank(np.array([1.0, 3.0, 3.0, 2.0]))
    assert r.tolist() == [0.25, 0.875, 0.875, 0.5]
