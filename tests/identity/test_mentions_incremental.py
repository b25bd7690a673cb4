"""``person_mention`` kept across runs: only the mentions of new file versions are built, those
of versions gone are dropped, the others' rows stay as they are (the same rows, not rewritten),
and the table equals one built from scratch. A change of the village name -> code map builds
every mention again (a new pair may give a kept mention another code)."""

from __future__ import annotations

import duckdb
import pytest

from crossmatch.identity import id_index
from crossmatch.identity.mentions import build_mentions
from crossmatch.identity.roles import default_roles
from crossmatch.identity.summary import ResolveSummary

from .county import build

P1, P2 = "finance/p1.csv", "finance/p2.csv"


@pytest.fixture
def con():
    """The small county, its payments split into two files; one row of each names the village
    马冲村: p1's with its code (a name / code pair), p2's without (it takes the code from
    the pair)."""
    c = duckdb.connect()
    build(c, n=150, seed=11)
    c.execute("UPDATE src_payment SET _file = CASE WHEN _row % 2 = 0 THEN ? ELSE ? END", [P1, P2])
    c.execute("ALTER TABLE src_payment ADD COLUMN village VARCHAR")
    c.execute(
        "UPDATE src_payment SET village = '马冲村', village_code = 'C1' "
        "WHERE _file = ? AND _row = (SELECT min(_row) FROM src_payment WHERE _file = ?)",
        [P1, P1],
    )
    c.execute(
        "UPDATE src_payment SET village = '马冲村', village_code = NULL "
        "WHERE _file = ? AND _row = (SELECT min(_row) FROM src_payment WHERE _file = ?)",
        [P2, P2],
    )
    yield c
    c.close()


def _build(con: duckdb.DuckDBPyConnection, full: bool) -> int:
    s = ResolveSummary()
    build_mentions(con, _roles(), s, full=full)
    return s.mentions_built


def _roles():
    # the payee names its village by name as well as by code
    return [
        r if r.source != "payment" else type(r)(r.source, r.role, r.name, r.id,
                                                 {**r.context, "village": "village"})
        for r in default_roles()
    ]  # fmt: skip


def _equals_a_fresh_build(con: duckdb.DuckDBPyConnection) -> None:
    """person_mention and the ID index (kept with it) equal those built from every mention."""
    tables = ("person_mention", *id_index.TABLES)
    for t in tables:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _kept_{t} AS SELECT * FROM {t}")
    _build(con, full=True)
    for t in tables:
        for a, b in ((f"_kept_{t}", t), (t, f"_kept_{t}")):
            only = con.execute(f"SELECT count(*) FROM (FROM {a} EXCEPT ALL FROM {b})").fetchone()
            assert only[0] == 0, f"{only[0]} rows only in {a}"
        assert con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] > 0


def _identity(con: duckdb.DuckDBPyConnection, not_file: str) -> list[tuple]:
    """Row identity (rowid) of every mention outside ``not_file``."""
    return con.execute(
        "SELECT rowid, source, file, row, role FROM person_mention WHERE file <> ? ORDER BY ALL",
        [not_file],
    ).fetchall()


def _village(con: duckdb.DuckDBPyConnection, file: str) -> set[str | None]:
    return {
        r[0]
        for r in con.execute(
            "SELECT village_code FROM person_mention WHERE file = ? AND village = '马冲村'",
            [file],
        ).fetchall()
    }


def test_only_the_changed_files_mentions_are_built(con):
    total = _build(con, full=False)  # nothing stored yet: every mention
    assert total == con.execute("SELECT count(*) FROM person_mention").fetchone()[0] > 0
    assert _village(con, P2) == {"C1"}
    assert _build(con, full=False) == 0  # same file versions: nothing built
    before = _identity(con, P1)
    # tonight's export of p1: another version, one row fewer
    con.execute("UPDATE src_payment SET _file_hash = 'y' WHERE _file = ?", [P1])
    con.execute("DELETE FROM src_payment WHERE _file = ? AND _row = 10", [P1])
    # and a payee with an ID and an account no other row has (new rows of the ID index)
    con.execute(
        "INSERT INTO src_payment SELECT * REPLACE (100001 AS _row, "
        "'110101199001011234' AS payee_id, '6217000000000001' AS account) FROM src_payment "
        "WHERE _file = ? AND _row = (SELECT max(_row) FROM src_payment WHERE _file = ?)",
        [P1, P1],
    )
    n_p1 = con.execute("SELECT count(*) FROM src_payment WHERE _file = ?", [P1]).fetchone()[0]
    built = _build(con, full=False)
    assert built == n_p1 < total
    assert _identity(con, P1) == before  # the other files' rows were not rewritten
    assert con.execute(
        "SELECT count(*), count(DISTINCT file_hash) FROM person_mention WHERE file = ?", [P1]
    ).fetchone() == (n_p1, 1)
    _equals_a_fresh_build(con)
    assert (
        con.execute(
            "SELECT count(*) FROM identity_id_node WHERE id = '110101199001011234'"
        ).fetchone()[0]
        == 1
    )
    # a full build writes every row again (and the identity check would see it)
    assert _build(con, full=True) == total


def test_a_file_gone_drops_its_mentions(con):
    _build(con, full=False)
    con.execute("DELETE FROM src_shareholder")
    assert _build(con, full=False) == 0
    assert not con.execute("SELECT 1 FROM person_mention WHERE source = 'shareholder'").fetchall()
    _equals_a_fresh_build(con)


def test_a_changed_village_map_builds_every_mention(con):
    total = _build(con, full=False)
    # p1's new version codes 马冲村 otherwise: p2's kept mention must take the new code
    con.execute(
        "UPDATE src_payment SET _file_hash = 'y', village_code = 'C2' "
        "WHERE _file = ? AND village = '马冲村'",
        [P1],
    )
    con.execute("UPDATE src_payment SET _file_hash = 'y' WHERE _file = ?", [P1])
    assert _build(con, full=False) == total
    assert _village(con, P2) == {"C2"}
    _equals_a_fresh_build(con)


def test_other_township_names_build_every_mention(con):
    total = _build(con, full=False)
    con.execute("UPDATE src_assistance SET township = township || '镇'")
    con.execute("UPDATE src_assistance SET _file_hash = 'y'")
    assert _build(con, full=False) == total  # the township names are part of the signature
    _equals_a_fresh_build(con)


def test_an_incremental_resolve_publishes_only_the_affected_persons(con):
    """A new version of one payment file (one row removed): the persons of the links that
    changed (the removed row's) are published again, every other person's row kept (the
    rows the new version has as they were, same content and number, keep their links:
    mentions._carry_links); ``person`` equals the one published from scratch from the same
    links."""
    from crossmatch.identity import publish
    from crossmatch.identity.pipeline import resolve_identities

    first = resolve_identities(con, roles=_roles())
    assert first.persons_built == first.persons > 0
    con.execute("UPDATE src_payment SET _file_hash = 'y' WHERE _file = ?", [P1])
    con.execute("DELETE FROM src_payment WHERE _file = ? AND _row = 10", [P1])
    payees = {
        r[0]
        for r in con.execute(
            "SELECT DISTINCT person_id FROM identity_link WHERE file = ? AND row = 10", [P1]
        ).fetchall()
    }
    assert payees
    row_of = dict(con.execute("SELECT person_id, rowid FROM person").fetchall())
    s = resolve_identities(con, roles=_roles())
    assert s.mode == "incremental" and s.mentions_kept
    assert 0 < s.persons_built < s.persons
    rebuilt = {r[0] for r in con.execute("SELECT person_id FROM _aff").fetchall()}
    assert payees <= rebuilt
    kept = con.execute(
        "SELECT person_id, rowid FROM person WHERE person_id NOT IN (FROM _aff)"
    ).fetchall()
    assert kept and all(row_of[p] == r for p, r in kept)  # the same rows, not rewritten
    con.execute("CREATE OR REPLACE TEMP TABLE _in_place AS SELECT * FROM person")
    publish._publish_persons(con)  # every person, from the same links
    for a, b in (("_in_place", "person"), ("person", "_in_place")):
        only = con.execute(f"SELECT count(*) FROM (FROM {a} EXCEPT ALL FROM {b})").fetchone()[0]
        assert only == 0, f"{only} persons only in {a}"
    assert len(kept) == s.persons - s.persons_built


def test_home_support_is_computed_again_only_when_its_inputs_change(con, monkeypatch):
    """The home-township support (county-wide) is kept under a key of the file versions of the
    property and registry sources: a night where only payments changed reuses it."""
    from crossmatch.identity import role_profile
    from crossmatch.identity.pipeline import resolve_identities

    calls = []
    real = role_profile._home_support
    monkeypatch.setattr(role_profile, "_home_support", lambda *a: calls.append(1) or real(*a))
    resolve_identities(con, roles=_roles())
    assert len(calls) == 1
    value = con.execute("SELECT value FROM identity_support_cache").fetchall()
    # (rows renumbered: resolved again, with the candidates' role evidence; a row kept as
    # it was, same content and number, would keep its link and need no evidence at all)
    con.execute("UPDATE src_payment SET _file_hash = 'y', _row = _row + 1000 WHERE _file = ?", [P1])
    resolve_identities(con, roles=_roles())
    assert len(calls) == 1  # payments are no input of it
    con.execute("UPDATE src_hukou SET _file_hash = 'y'")
    con.execute("UPDATE src_payment SET _file_hash = 'z', _row = _row + 1000 WHERE _file = ?", [P1])
    resolve_identities(con, roles=_roles())
    assert len(calls) == 2  # the registry (home addresses) is
    assert con.execute("SELECT value FROM identity_support_cache").fetchall() == value


def test_the_person_index_is_updated_for_the_changed_ids_only(con):
    """identity_idx (the person index's rows, kept across runs) after an incremental resolve:
    the rows of IDs whose mentions and accounts did not change are the same rows, and the
    table equals the one computed from every ID."""
    from crossmatch.identity import fuzzy_model
    from crossmatch.identity.pipeline import resolve_identities

    resolve_identities(con, roles=_roles())
    row_of = dict(con.execute("SELECT idc, rowid FROM identity_idx").fetchall())
    con.execute("UPDATE src_payment SET _file_hash = 'y' WHERE _file = ?", [P1])
    con.execute(
        "INSERT INTO src_payment SELECT * REPLACE (100001 AS _row, "
        "'110101199001011234' AS payee_id, '6217000000000001' AS account) FROM src_payment "
        "WHERE _file = ? AND _row = (SELECT max(_row) FROM src_payment WHERE _file = ?)",
        [P1, P1],
    )
    s = resolve_identities(con, roles=_roles())
    assert s.mode == "incremental" and s.mentions_kept
    changed = {r[0] for r in con.execute("SELECT id FROM _idx_changed").fetchall()}
    assert "110101199001011234" in changed and 0 < len(changed) < len(row_of)
    kept = con.execute(
        "SELECT idc, rowid FROM identity_idx WHERE idc NOT IN (SELECT id FROM _idx_changed)"
    ).fetchall()
    assert kept and all(row_of[i] == r for i, r in kept)  # not rewritten
    con.execute("CREATE OR REPLACE TEMP TABLE _idx_in_place AS SELECT * FROM _idx")
    fuzzy_model._build_index(con)  # every ID
    for a, b in (("_idx_in_place", "_idx"), ("_idx", "_idx_in_place")):
        only = con.execute(f"SELECT count(*) FROM (FROM {a} EXCEPT ALL FROM {b})").fetchone()[0]
        assert only == 0, f"{only} index rows only in {a}"
