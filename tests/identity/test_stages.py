"""Identity resolution stage by stage: each stage module's output, checked at its boundary.

mentions -> exact -> fuzzy model -> clustering -> incremental -> publish -> analyst API, on the
small controlled county of ``county.py`` (fast: a few hundred persons).
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from crossmatch import contract
from crossmatch.identity import analyst, clustering, exact, fuzzy_model, incremental, publish
from crossmatch.identity.mentions import build_mentions
from crossmatch.identity.pipeline import resolve_identities
from crossmatch.identity.roles import default_roles
from crossmatch.identity.summary import ResolveSummary

from .county import build


@pytest.fixture(scope="module")
def mentions():
    con = duckdb.connect()
    build(con, n=150, seed=11)
    s = ResolveSummary()
    build_mentions(con, default_roles(), s)
    yield con, s
    con.close()


@pytest.fixture(scope="module")
def resolved():
    con = duckdb.connect()
    build(con, n=150, seed=11)
    summary = resolve_identities(con)
    yield con, summary
    con.close()


def test_mentions_one_row_per_source_row_and_role(mentions):
    con, s = mentions
    n, distinct = con.execute(
        "SELECT count(*), count(DISTINCT (source, file, row, role)) FROM person_mention"
    ).fetchone()
    assert n == distinct > 0
    # a role whose table is absent is reported skipped, with the reason
    assert all("not in the warehouse" in why for why in s.skipped)
    cols = {r[0] for r in con.execute("DESCRIBE person_mention").fetchall()}
    assert {"source", "file", "row", "role", "name", "id", "id_raw", "id_status"} <= cols
    # every role the contract gives an ID column to, present in the county, has mentions
    roles = {(r.source, r.role) for r in default_roles()}
    got = set(con.execute("SELECT DISTINCT source, role FROM person_mention").fetchall())
    assert got and got <= roles


def test_exact_index_holds_each_valid_id_once_and_conflicts_come_from_it(mentions):
    con, _ = mentions
    incremental._split_new(con, False)  # a full run: every mention is new
    assert (
        con.execute("SELECT count(*) FROM _new").fetchone()[0]
        == (con.execute("SELECT count(*) FROM person_mention").fetchone()[0])
    )
    exact.build_id_index(con)
    n, distinct = con.execute("SELECT count(*), count(DISTINCT id) FROM _id_node").fetchone()
    valid = con.execute(
        "SELECT count(DISTINCT id) FROM person_mention "
        "WHERE id IS NOT NULL AND id_status IN ('valid18', 'upgraded15')"
    ).fetchone()[0]
    assert n == distinct == valid
    conflicts = exact.find_conflicts(con)
    assert isinstance(conflicts, pd.DataFrame)
    if len(conflicts):
        ids = {r[0] for r in con.execute("SELECT id FROM _id_node").fetchall()}
        assert set(conflicts["id"]) <= ids


def test_fuzzy_model_is_saved_and_reused(resolved):
    con, _ = resolved
    config = fuzzy_model.default_config()
    model = fuzzy_model._load_model(con, config)
    assert model is not None and model.names == [c.key for c in config.comparisons]
    fuzzy_model._save_model(con, model, config)
    again = fuzzy_model._load_model(con, config)
    assert all(np.allclose(a, b) for a, b in zip(model.m, again.m, strict=True))
    assert all(np.allclose(a, b) for a, b in zip(model.u, again.u, strict=True))


def test_clustering_anchors_only_registry_rows():
    groups = pd.DataFrame({"gkey": ["a", "b", "c"], "registry": [True, None, False]})
    anchors = clustering._registry_anchor(groups)
    got = [None if pd.isna(v) else v for v in anchors.tolist()]  # None or NaN (pandas 3)
    assert got == [clustering._REG_ROW + "a", None, None]


def test_incremental_after_a_run_and_not_after_a_config_change(resolved):
    con, _ = resolved
    config = fuzzy_model.default_config()
    sig = incremental._signature(con, config, default_roles())
    assert incremental._can_increment(con, sig)
    assert not incremental._can_increment(con, sig + "-changed")
    assert incremental._previous_pids(con)  # the ids the next run keeps


def test_publish_gives_every_mention_a_link_and_every_view_its_pid_columns(resolved):
    con, summary = resolved
    links, mentions = con.execute(
        "SELECT (SELECT count(*) FROM identity_link), (SELECT count(*) FROM person_mention)"
    ).fetchone()
    assert links == mentions == summary.mentions
    views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
    for r in default_roles():
        if f"src_{r.source}" in {t[0] for t in con.execute("SHOW TABLES").fetchall()}:
            assert f"r_{r.source}" in views
            cols = {c[0] for c in con.execute(f"DESCRIBE r_{r.source}").fetchall()}
            assert f"{r.role}_pid" in cols
    assert (
        publish._stable_key_pid("x") == publish._stable_key_pid("x") != publish._stable_key_pid("y")
    )
    # the person table has the contract's columns
    have = {c[0] for c in con.execute("DESCRIBE person").fetchall()}
    assert {c for c, _ in contract.STAGE_TABLES["person"]} <= have


def test_analyst_explains_an_exact_link_by_its_id_and_records_a_judgement(resolved):
    con, _ = resolved
    a, b = con.execute(
        "SELECT (source, file, row, role) FROM identity_link WHERE method = 'exact' "
        "ORDER BY ALL LIMIT 2"
    ).fetchall()
    assert analyst.explain(con, *a[0]).empty  # the ID is the reason: no comparison weights
    analyst.record_judgement(con, tuple(a[0]), tuple(b[0]), same=False, analyst="t")
    rows = con.execute(
        "SELECT a_source, a_file, a_row, a_role, same, analyst FROM identity_judgement"
    ).fetchall()
    assert rows == [(*a[0], False, "t")]
