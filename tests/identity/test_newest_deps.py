"""Identity under pandas copy-on-write (the default from pandas 3): arrays taken from a frame
are read-only views there, so every array the resolver writes to must be its own copy.

The locked environment has pandas 2, so the test makes pandas 3's behaviour explicit: every
``Series.to_numpy`` / ``DataFrame.to_numpy`` result is read-only while the resolver runs. A write
into one (``ValueError: assignment destination is read-only``) fails the test, as it fails
``crossmatch resolve`` under pandas 3. CI's newest-versions job runs the same test on pandas 3.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from crossmatch.identity import resolve
from crossmatch.identity.evaluate import join_truth, pair_scores

from .county import build


@pytest.fixture
def read_only_arrays(monkeypatch):
    def wrap(orig):
        def to_numpy(self, *a, **k):
            out = orig(self, *a, **k)
            if isinstance(out, np.ndarray):
                out = out.view()
                out.flags.writeable = False
            return out

        return to_numpy

    monkeypatch.setattr(pd.Series, "to_numpy", wrap(pd.Series.to_numpy))
    monkeypatch.setattr(pd.DataFrame, "to_numpy", wrap(pd.DataFrame.to_numpy))


def test_read_only_fixture_bites(read_only_arrays):
    a = pd.Series([1, 2]).to_numpy()
    with pytest.raises(ValueError, match="read-only"):
        a[0] = 3


def test_resolve_with_read_only_frame_arrays(read_only_arrays):
    con = duckdb.connect()
    c = build(con, n=300, seed=9)
    s = resolve(con)
    assert s.fuzzy > 0  # the fuzzy path (pins written into the exclusive arrays) ran
    assert pair_scores(join_truth(con, c.truth)).f1 >= 0.98
    # a second, incremental night: the payment file exported again with every 7th row changed
    # (another account: an identical row would be no new mention)
    con.execute("UPDATE src_payment SET _file_hash = 'y'")
    con.execute(
        "UPDATE src_payment SET account = '6228' || CAST(_row AS VARCHAR) WHERE _row % 7 = 0"
    )
    s2 = resolve(con)
    assert s2.mode == "incremental" and s2.new_mentions > 0
