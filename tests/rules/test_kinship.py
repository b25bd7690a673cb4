"""Kinship graph: household-registry and marriage edges, relatives with paths, scope."""

from __future__ import annotations

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
        ("", None),
    ],
)
def test_classify_head_relation(text, rel_):
    assert kinship.classify_head_relation(text) == rel_
