"""An ID-less row paid into an account no ID-bearing row carries (crossmatch.identity.accounts).

The FS account comparison scored such an account as a disagreement with every candidate
holding another account and as nothing against one holding none; the piece replaces that with
the county's own measurement (one ID-bearing row left out)."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from crossmatch.identity import accounts


def _county(
    n_solo: int, solo_holders: int, persons: int, holders: int
) -> duckdb.DuckDBPyConnection:
    """``n_solo`` ID-bearing bank rows whose account no other row carries, ``solo_holders`` of
    them of people who also hold an account paid on two rows; an index of ``persons`` IDs of
    which ``holders`` own an account."""
    con = duckdb.connect()
    rows = []
    for i in range(n_solo):
        pid = f"P{i:04d}"
        rows.append(("bank", "b.csv", i, "holder", pid, f"S{i}"))
        if i < solo_holders:
            rows.append(("payment", "p.csv", i, "payee", pid, f"K{i}"))
            rows.append(("bank", "b.csv", 10_000 + i, "holder", pid, f"K{i}"))
    # the ID-less probe row: account U1 is on no ID-bearing row; W1 is someone's
    rows.append(("bank", "b.csv", 99_999, "holder", None, "U1"))
    rows.append(("bank", "b.csv", 99_998, "holder", None, "W1"))
    rows.append(("payment", "p.csv", 99_997, "payee", "P0000", "W1"))
    rows.append(("payment", "p.csv", 99_996, "payee", "P0000", "W1"))
    pm = pd.DataFrame(rows, columns=["source", "file", "row", "role", "id", "account"])
    con.register("_pm", pm)
    con.execute("CREATE TABLE person_mention AS SELECT * FROM _pm")
    con.execute(
        """CREATE TEMP TABLE _acct_owner AS SELECT account, min(id) AS owner FROM person_mention
        WHERE id IS NOT NULL GROUP BY account HAVING count(DISTINCT id) = 1"""
    )
    con.execute("CREATE TEMP TABLE _acct_name_owner (account VARCHAR, name VARCHAR, owner VARCHAR)")
    idx = pd.DataFrame({"idc": [f"X{i:05d}" for i in range(persons)]})
    idx["acct"] = np.where(np.arange(persons) < holders, idx["idc"], None)
    con.register("_i", idx)
    con.execute("CREATE TEMP TABLE _idx AS SELECT * FROM _i")
    fz = pd.DataFrame({"gkey": ["g1", "g2"], "acct": ["A:U1", "P0000"]})
    con.register("_f", fz)
    con.execute("CREATE TEMP TABLE _fz AS SELECT * FROM _f")
    return con


def test_weights_are_measured_with_one_row_left_out() -> None:
    con = _county(n_solo=60, solo_holders=40, persons=1000, holders=250)
    hold, none, n, k = accounts.unknown_account_weights(con) or (0, 0, 0, 0)
    # P0000..P0039 hold K-accounts besides their own S-account (W1, on two rows, is none)
    assert (n, k) == (60, 40)
    assert hold == pytest.approx(np.log2((40.5 / 61) / 0.25))
    assert none == pytest.approx(np.log2((1 - 40.5 / 61) / 0.75))
    assert hold > 0 > none


def test_too_few_rows_measure_nothing() -> None:
    con = _county(n_solo=accounts.MIN_ROWS - 1, solo_holders=10, persons=1000, holders=250)
    assert accounts.unknown_account_weights(con) is None
    assert accounts.edge_penalty(con, np.array(["G:g1", "I:P0000"]), -3.0) is None


def test_an_unknown_account_no_longer_counts_against_a_holder() -> None:
    con = _county(n_solo=60, solo_holders=40, persons=1000, holders=250)
    hold, none, _, _ = accounts.unknown_account_weights(con) or (0, 0, 0, 0)
    # positions: 0 the probe into the unknown account, 1 the probe into P0000's account,
    # 2 a candidate holding accounts (P0001), 3 one holding none (P0050 has only his S-row,
    # whose account nobody else carries: he owns it), 4 one the county never saw with one
    nid = np.array(["G:g1", "G:g2", "I:P0001", "I:P0050", "I:Z9"], dtype=object)
    pen = accounts.edge_penalty(con, nid, -3.0)
    assert pen is not None
    probe = np.array([0, 0, 0, 1, 1])
    other = np.array([2, 3, 4, 2, 4])
    out = pen(probe, other, np.zeros(5))
    # holder: the -3 "different" given back, the measured holder weight taken instead
    assert out[0] == pytest.approx(-3.0 - hold)
    assert out[1] == pytest.approx(-3.0 - hold)  # P0050 owns S50: he holds an account
    assert out[2] == pytest.approx(-none)  # holds none: the measured none weight (a cost)
    # a probe into an account the county knows the owner of is left to the FS comparison
    assert out[3] == 0 and out[4] == 0
    assert out[0] < 0 < out[2]


def test_differ_weight_reads_the_account_comparison() -> None:
    from crossmatch.identity.fellegi_sunter import FSModel
    from crossmatch.identity.fuzzy_model import default_config

    cfg = default_config()
    model = FSModel([c.key for c in cfg.comparisons], [c.n_levels for c in cfg.comparisons])
    j = next(i for i, c in enumerate(cfg.comparisons) if c.column == "acct")
    model.m[j] = np.array([0.02, 0.98])
    model.u[j] = np.array([0.16, 0.84])
    assert accounts.differ_weight(model, "acct", cfg) == pytest.approx(-3.0)
    assert accounts.differ_weight(model, "nope", cfg) is None
