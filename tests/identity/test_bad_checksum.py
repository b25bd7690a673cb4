"""ID numbers with a wrong check digit (status bad_checksum) are evidence like any typo'd ID,
also on the registry's own rows: such a row is still a registered person."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from crossmatch.identity import resolve
from crossmatch.identity.evaluate import join_truth, pair_scores

from .county import build


@pytest.fixture(scope="module")
def bad_county():
    con = duckdb.connect()
    c = build(con, n=600, seed=3, bad_checks=0.08)
    s = resolve(con)
    yield con, c, s
    con.close()


def test_fixture_has_bad_check_digits(bad_county):
    con, c, _ = bad_county
    n = con.execute(
        "SELECT count(*) FROM src_hukou WHERE person_id_status = 'bad_checksum'"
    ).fetchone()[0]
    assert n >= 30
    assert (c.noise.noise == "id_checksum").sum() >= 100


def test_bad_check_digits_link_and_keep_quality(bad_county):
    con, c, _ = bad_county
    df = join_truth(con, c.truth)
    assert pair_scores(df).f1 >= 0.98
    key = set(zip(c.noise.source_file, c.noise.row, c.noise.role, strict=True))
    bad = c.noise[c.noise.noise == "id_checksum"]
    bad_keys = set(zip(bad.source_file, bad.row, bad.role, strict=True))
    # a payee or registry row whose only damage is the check digit is in its person's
    # cluster (the person id may be a P id: a registry row whose valid ID is written nowhere)
    majority = df.groupby("true")["pred"].agg(lambda s: s.value_counts().index[0])
    hit = df[[k in bad_keys for k in zip(df.file, df.row, df.role, strict=True)]]
    assert len(hit) >= 100
    assert (hit.pred == hit.true.map(majority)).all(), hit[hit.pred != hit.true.map(majority)]
    dmg = pd.Series([k in key for k in zip(df.file, df.row, df.role, strict=True)])
    assert pair_scores(df, dmg).f1 >= 0.95


def test_registry_rows_with_bad_check_digits_stay_registered(bad_county):
    """Every registered resident who was paid is a registered person (no false ghost), and no
    two registry rows are ever one person (a namesake's chain cannot join them)."""
    con, c, _ = bad_county
    df = join_truth(con, c.truth)
    reg = df[df.file == "hukou/hk.csv"]
    assert reg.pred.nunique() == len(reg)  # one person per registry row
    paid = df[(df.file == "finance/pay.csv") & ~df.true.str.startswith("GHOST")]
    person = con.execute("SELECT person_id, in_registry, id_number FROM person").df()
    st = paid.merge(person, left_on="pred", right_on="person_id", how="left")
    assert st.in_registry.fillna(False).astype(bool).all(), st[~st.in_registry.astype(bool)]
    # a bad registry row linked to its valid ID written elsewhere takes that ID as person id
    bad_reg = c.noise[(c.noise.noise == "id_checksum") & (c.noise.source_file == "hukou/hk.csv")]
    rows = reg[reg.row.isin(bad_reg.row)]
    paid_ids = set(paid.true)
    linked = rows[rows.true.isin(paid_ids)]
    assert len(linked) >= 5
    assert (linked.pred == linked.true).mean() >= 0.9


def test_ghosts_still_ghosts_with_bad_check_digits(bad_county):
    con, c, _ = bad_county
    df = join_truth(con, c.truth)
    ghosts = df[df.true.str.startswith("GHOST")]
    person = con.execute("SELECT person_id, in_registry FROM person").df()
    st = ghosts.merge(person, left_on="pred", right_on="person_id")
    assert not st.in_registry.astype(bool).any()
