"""Kinship graph: household-registry and marriage edges, relatives with paths, scope."""

from __future__ import annotations

import datetime as dt

import pytest

from crossmatch import kinship

from .conftest import build_warehouse


@pytest.fixture
def con():
    persons = [
        ("H", "男"),
        ("W", "女"),
        ("S", "男"),
        ("D", "女"),
        ("DL", "女"),
        ("GF", "男"),
        ("SW", "女"),
        ("X", "男"),
        ("Y", "女"),
    ]
    return build_warehouse(
        {
            "person": [{"person_id": p, "name": p, "sex": s} for p, s in persons],
            "r_hukou": [
                {"household_no": "3411220010010023", "person_pid": "H", "relation_to_head": "户主"},
                {"household_no": "3411220010010023", "person_pid": "W", "relation_to_head": "配偶"},
                {"household_no": "3411220010010023", "person_pid": "S", "relation_to_head": "子"},
                {"household_no": "3411220010010023", "person_pid": "D", "relation_to_head": "女"},
                {
                    "household_no": "3411220010010023",
                    "person_pid": "DL",
                    "relation_to_head": "儿媳",
                },
                {
                    "household_no": "3411220010010023",
                    "person_pid": "GF",
                    "relation_to_head": "父母",
                },
                {"household_no": "3411220010010099", "person_pid": "X", "relation_to_head": "户主"},
            ],
            "r_marriage": [
                {
                    "kind": "marriage",
                    "husband_pid": "X",
                    "wife_pid": "D",
                    "reg_date": "2019-05-01",
                    "_file": "marriage/婚姻登记信息.csv",
                    "_row": 23,
                },
                {
                    "kind": "marriage",
                    "husband_pid": "X",
                    "wife_pid": "Y",
                    "reg_date": "2010-01-01",
                    "_file": "marriage/婚姻登记信息.csv",
                    "_row": 24,
                },
                {
                    "kind": "divorce",
                    "husband_pid": "X",
                    "wife_pid": "Y",
                    "reg_date": "2015-01-01",
                    "_file": "marriage/婚姻登记信息.csv",
                    "_row": 25,
                },
            ],
        }
    )


def rel(con, pid, scope=kinship.CLOSE_RELATIVES):
    return {(r.pid, r.relation_cn) for r in kinship.relatives(con, pid, scope=scope)}


def test_household_relations_through_the_head(con):
    kinship.build(con)
    assert rel(con, "S") >= {("H", "父亲"), ("W", "母亲"), ("D", "姐妹")}
    assert ("DL", "配偶") in rel(con, "S")  # the only son and the only daughter-in-law
    assert rel(con, "W") >= {("S", "儿子"), ("D", "女儿"), ("DL", "儿媳"), ("H", "配偶")}
    # grandparent is not a close relative by default, but is in the graph
    assert ("GF", "祖父") not in rel(con, "S")
    assert ("GF", "祖父") in rel(con, "S", scope=["grandparent"])


def test_paths_name_the_source(con):
    kinship.build(con)
    (r,) = [r for r in kinship.relatives(con, "S") if r.pid == "W"]
    assert r.path == "母亲 via 户籍 户号 3411220010010023"
    (m,) = [r for r in kinship.relatives(con, "D") if r.pid == "X"]
    assert m.path.startswith("配偶 via 婚姻登记 2019-05-01 (marriage/婚姻登记信息.csv:23)")


def test_two_hop_child_in_law_across_sources(con):
    kinship.build(con)
    # X married H's daughter D (marriage registry) -> X is H's son-in-law, path shows both hops
    (r,) = [r for r in kinship.relatives(con, "H") if r.pid == "X"]
    assert r.relation_cn == "女婿" and r.hops == 2
    assert "户籍" in r.path and "婚姻登记" in r.path


def test_divorce_ends_the_marriage(con):
    kinship.build(con)
    edge = con.execute(
        "SELECT valid_from, valid_to FROM kin_edge WHERE a_pid = 'X' AND b_pid = 'Y'"
    ).fetchone()
    assert str(edge[0]) == "2010-01-01" and str(edge[1]) == "2015-01-01"


def test_unknown_scope_is_rejected(con):
    kinship.build(con)
    with pytest.raises(ValueError, match="unknown relation"):
        kinship.relatives(con, "S", scope=["cousin"])


def test_missing_inputs_give_empty_graph():
    con = build_warehouse({})
    assert kinship.build(con) == {"kin_edge": 0, "kin_relative": 0}


@pytest.mark.parametrize(
    ("text", "rel_"),
    [
        ("户主", "head"),
        ("配偶", "spouse"),
        ("子", "child"),
        ("长女", "child"),
        ("儿媳", "child_in_law"),
        ("女婿", "child_in_law"),
        ("父母", "parent"),
        ("孙子女", "grandchild"),
        ("兄弟姐妹", "sibling"),
        ("姐夫", None),
        ("侄子", None),
        ("孙媳妇", None),
        ("曾孙子", None),
        ("01", "head"),
        ("12", "spouse"),
        ("23", "child"),
        ("28", "child_in_law"),
        ("41", "grandchild"),
        ("51", "parent"),
        ("55", "parent_in_law"),
        ("72", None),
        ("99", None),
        ("", None),
    ],
)
def test_classify_head_relation(text, rel_):
    assert kinship.classify_head_relation(text) == rel_


# ------------------------------------------------------------------ parent IDs and validity
D = dt.date


@pytest.fixture
def cross():
    """A (a widow) with her married-out daughter B (in her husband C's household) and her son
    S (his own household): only the parent-ID columns link them. B was married to X from 2001
    to her divorce in 2009. G's daughter GD (C2's wife) died on 2022-03-01."""
    people = [
        ("A", "女", None),
        ("B", "女", None),
        ("S", "男", None),
        ("C", "男", None),
        ("G", "男", None),
        ("GD", "女", "2022-03-01"),
        ("C2", "男", None),
        ("X", "男", None),
    ]
    hukou = [
        {"household_no": "H1", "person_pid": "A", "relation_to_head": "户主"},
        # B married out into C's household; only her mother-ID column ties her to A
        {"household_no": "H2", "person_pid": "C", "relation_to_head": "户主"},
        {"household_no": "H2", "person_pid": "B", "relation_to_head": "配偶", "mother_pid": "A"},
        # S split off his own household in another village
        {"household_no": "H3", "person_pid": "S", "relation_to_head": "户主", "mother_pid": "A"},
        # G's daughter GD lived with her husband C2 and died in 2022
        {"household_no": "H4", "person_pid": "G", "relation_to_head": "户主"},
        {"household_no": "H5", "person_pid": "C2", "relation_to_head": "户主"},
        {"household_no": "H5", "person_pid": "GD", "relation_to_head": "配偶", "father_pid": "G"},
        {"household_no": "H6", "person_pid": "X", "relation_to_head": "户主"},
    ]
    marriage = [
        {"kind": "marriage", "husband_pid": "X", "wife_pid": "B", "reg_date": "2001-01-01"},
        {"kind": "divorce", "husband_pid": "X", "wife_pid": "B", "reg_date": "2009-06-30"},
    ]
    return build_warehouse(
        {
            "person": [
                {"person_id": p, "name": p, "sex": s, "death_date": d} for p, s, d in people
            ],
            "r_hukou": hukou,
            "r_marriage": marriage,
        }
    )


def test_parent_ids_link_households(cross):
    kinship.build(cross)
    assert ("A", "母亲") in rel(cross, "B") and ("A", "母亲") in rel(cross, "S")
    assert ("B", "女儿") in rel(cross, "A") and ("S", "儿子") in rel(cross, "A")
    # siblings share a parent, across households
    assert ("S", "兄弟") in rel(cross, "B") and ("B", "姐妹") in rel(cross, "S")
    (r,) = [r for r in kinship.relatives(cross, "B") if r.pid == "A"]
    assert "母亲公民身份号码" in r.path and r.hops == 1
    # B's husband in the registry household: A is his mother-in-law through B
    assert ("A", "配偶的母亲") in rel(cross, "C", scope=["parent_in_law"])
    assert ("C", "女婿") in rel(cross, "A")


def test_relation_through_a_deceased_person_ends_with_them(cross):
    kinship.build(cross)
    # C2 was G's son-in-law through GD, who died on 2022-03-01
    assert ("C2", "女婿") in rel(cross, "G")
    assert {r.pid for r in kinship.relatives(cross, "G", on=D(2021, 12, 31))} >= {"C2"}
    assert "C2" not in {r.pid for r in kinship.relatives(cross, "G", on=D(2022, 3, 2))}
    (r,) = [r for r in kinship.relatives(cross, "G") if r.pid == "C2"]
    assert str(r.valid_to) == "2022-03-01" and "卒于" in r.path
    # blood relations through a person do not end with them: B and S stay siblings
    assert "S" in {r.pid for r in kinship.relatives(cross, "B", on=D(2030, 1, 1))}


def test_divorce_ends_the_in_laws_too(cross):
    kinship.build(cross)
    on = {r.pid for r in kinship.relatives(cross, "A", on=D(2005, 1, 1))}
    after = {r.pid for r in kinship.relatives(cross, "A", on=D(2010, 1, 1))}
    assert "X" in on and "X" not in after  # A's son-in-law X only while married to B
    assert "C" in after


def test_a_registry_without_parent_columns_still_builds():
    con = build_warehouse(
        {
            "person": [{"person_id": "H", "sex": "男"}, {"person_id": "S", "sex": "男"}],
            "r_hukou": [
                {"household_no": "H1", "person_pid": "H", "relation_to_head": "户主"},
                {"household_no": "H1", "person_pid": "S", "relation_to_head": "子"},
            ],
        }
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _h AS SELECT * EXCLUDE (father_pid, mother_pid) FROM r_hukou"
    )
    con.execute("DROP TABLE r_hukou")
    con.execute("CREATE TABLE r_hukou AS SELECT * FROM _h")
    assert kinship.build(con)["kin_edge"] == 2
    assert ("H", "父亲") in rel(con, "S")


def test_fingerprint_tracks_the_inputs(cross):
    assert kinship.is_stale(cross)  # never built
    kinship.build(cross)
    assert not kinship.is_stale(cross)
    assert kinship.built_fingerprint(cross) == kinship.input_fingerprint(cross)
    cross.execute("UPDATE r_marriage SET reg_date = DATE '2008-01-01' WHERE kind = 'divorce'")
    assert kinship.is_stale(cross)
    kinship.build(cross)
    assert not kinship.is_stale(cross)
    cross.execute("UPDATE person SET death_date = DATE '2023-01-01' WHERE person_id = 'GD'")
    assert kinship.is_stale(cross)


def test_registration_kinds_in_other_wordings():
    con = build_warehouse(
        {
            "person": [{"person_id": "M", "sex": "男"}, {"person_id": "F", "sex": "女"}],
            "r_marriage": [
                {"kind": "结婚登记", "husband_pid": "M", "wife_pid": "F", "reg_date": "2001-01-01"},
                {"kind": "离婚登记", "husband_pid": "M", "wife_pid": "F", "reg_date": "2005-01-01"},
                {"kind": "复婚", "husband_pid": "M", "wife_pid": "F", "reg_date": "2010-01-01"},
            ],
        }
    )
    kinship.build(con)
    assert "F" in {r.pid for r in kinship.relatives(con, "M", on=D(2003, 1, 1))}
    assert "F" not in {r.pid for r in kinship.relatives(con, "M", on=D(2007, 1, 1))}
    assert "F" in {r.pid for r in kinship.relatives(con, "M", on=D(2020, 1, 1))}


def test_a_build_out_of_memory_is_retried_with_a_larger_limit(con, monkeypatch, caplog):
    """A registry whose household window does not fit in 2GB (a 3M-person county did not)
    is built again at 4GB with a warning, and the connection's limit is restored."""
    import duckdb

    kinship.build(con)
    expected = {
        t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
        for t in ("kin_edge", "kin_relative")
    }
    con.execute("SET memory_limit = '3GB'")
    seen = []
    real = kinship._build

    def tight(c):
        seen.append(c.execute("SELECT current_setting('memory_limit')").fetchone()[0])
        if len(seen) == 1:
            c.execute("CREATE OR REPLACE TABLE kin_edge AS SELECT 1 AS half_built")
            raise duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block")
        return real(c)

    monkeypatch.setattr(kinship, "_build", tight)
    with caplog.at_level("WARNING", logger="crossmatch.kinship"):
        kinship.build(con)
    assert seen == ["1.8 GiB", "3.7 GiB"]  # 2GB, then 4GB (DuckDB shows GiB)
    assert "building again at 4GB" in caplog.text
    assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] in (
        "2.6 GiB",
        "2.7 GiB",
    )  # as shown, rounded
    for t, rows in expected.items():  # the half-built table of the failed attempt is replaced
        assert con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() == rows


def test_a_build_out_of_memory_at_every_limit_raises(con, monkeypatch):
    import duckdb

    def never(c):
        raise duckdb.OutOfMemoryException("Out of Memory Error")

    monkeypatch.setattr(kinship, "_build", never)
    with pytest.raises(duckdb.OutOfMemoryException):
        kinship.build(con)


def test_the_connections_own_limit_is_retried_only_when_larger(con, monkeypatch):
    """A warehouse connection's limit is 2GB (crossmatch.warehouse.MEMORY_LIMIT): a build out
    of memory at 4GB is not retried at it; a connection given more is retried at its limit."""
    import duckdb

    seen: list[float] = []

    def never(c):
        limit = c.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        seen.append(round(kinship._size_bytes(limit) / 2**30, 1))
        raise duckdb.OutOfMemoryException("Out of Memory Error")

    monkeypatch.setattr(kinship, "_build", never)
    con.execute("SET memory_limit = '2GB'")
    with pytest.raises(duckdb.OutOfMemoryException):
        kinship.build(con)
    assert seen == [1.8, 3.7]  # 2GB, 4GB (in GiB)
    seen.clear()
    con.execute("SET memory_limit = '6GB'")
    with pytest.raises(duckdb.OutOfMemoryException):
        kinship.build(con)
    assert seen == [1.8, 3.7, 5.5]  # DuckDB shows 6GB as 5.5 GiB
    assert kinship._size_bytes("1500MB") == 1.5e9 and kinship._size_bytes("?") == 0.0
