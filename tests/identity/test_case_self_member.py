"""A case's applicant listed as its own member (本人) (issue 17, identity).

The member cell's ID is empty; its name is the applicant's. The household co-mention path
(``exact.link_household_comentions``) looked for the applicant's household members of that
name but left the applicant out: 赵军's member row went to his father 赵军 (a household member
through the registry's father column), and the father's payments were then measured against
the son's one-person case (false over_standard_amount clues at 30,000 persons, seed 61). The
applicant is a candidate too, because the county's own rows with both IDs show applicant and
member to be one person at times; a property's owner and co-owner never are."""

from __future__ import annotations

import duckdb
import pytest

from crossmatch.identity import resolve
from crossmatch.identity.roles import RoleRef, default_roles

from .county import _pcols, _write, build
from .test_role_profile import pid

V1, V2 = "341122001001", "341122002002"


@pytest.fixture(scope="module")
def world():
    con = duckdb.connect()
    build(con, n=300, seed=7)
    for c in ("father_name", "father_name_raw", "father_id", "father_id_raw", "father_id_status"):
        con.execute(f"ALTER TABLE src_hukou ADD COLUMN {c} VARCHAR")
    father, son = pid("19550616", 401, True), pid("19880910", 402, True)
    sole, partner = pid("19700101", 403, True), pid("19720101", 404, False)
    n0 = con.execute("SELECT max(_row) FROM src_hukou").fetchall()[0][0]
    reg = [  # (name, id, household, village, father's name and ID on the row)
        ("赵军", father, "HF", V1, None, None),
        ("赵军", son, "HS", V2, "赵军", father),  # the son's row names his father (elsewhere)
        ("钱多多", sole, "HQ", V2, None, None),
        ("孙丽丽", partner, "HQ", V2, None, None),
    ]
    for k, (name, idn, hh, v, fn, fid) in enumerate(reg):
        r = {"_source": "hukou", "_file": "hukou/hk.csv", "_file_hash": "x", "_row": n0 + 1 + k}
        r |= _pcols("person", name, idn, idn) | _pcols("father", fn, fid, fid)
        r |= {"household_no": hh, "village_code": v}
        cols = ", ".join(r)
        con.execute(
            f"INSERT INTO src_hukou ({cols}) VALUES ({', '.join('?' for _ in r)})", list(r.values())
        )
    others = con.execute(
        "SELECT person_id, person_name, village_code FROM src_hukou WHERE person_id IS NOT NULL "
        "ORDER BY _row LIMIT 60"
    ).fetchall()
    rows = []

    def case(applicant: tuple, member: tuple, village: str) -> None:
        r = {"_source": "assistance", "_file": "civil/roster.xlsx", "_file_hash": "x"}
        r |= {"_row": 2 + len(rows), "_dup_of": None}
        r |= _pcols("applicant", *applicant) | _pcols("member", *member)
        r |= {"handler_name": None, "handler_name_raw": None, "approver_name": None}
        r |= {"approver_name_raw": None, "township": None, "village_code": village}
        rows.append(r)

    # 40 one-person cases with both IDs (the applicant his own member), 20 with another member
    for idn, name, v in others[:40]:
        case((name, idn, idn), (name, idn, idn), v)
    for (a, an, v), (m, mn, _) in zip(others[40:50], others[50:60], strict=True):
        case((an, a, a), (mn, m, m), v)
    case(("赵军", son, son), ("赵军", None, None), V2)  # the son, his own member
    case(("钱多多", sole, sole), ("钱多多", None, None), V2)
    _write(con, "src_assistance", rows)
    roles = [*default_roles(), RoleRef("hukou", "father", "father_name", "father_id", {})]
    resolve(con, roles=roles)
    yield con, {"father": father, "son": son, "sole": sole}, len(rows)
    con.close()


def _member(con, row: int) -> str:
    return con.execute(
        "SELECT person_id FROM identity_link WHERE source = 'assistance' AND role = 'member' "
        "AND row = ?",
        [row],
    ).fetchall()[0][0]


def test_member_named_as_the_applicant_is_not_the_applicants_namesake_father(world):
    con, ids, n = world
    # rows start at 2: the son's case is the last but one
    assert _member(con, n) != ids["father"]
    assert _member(con, n) == ids["son"]


def test_member_named_as_the_applicant_is_the_applicant(world):
    con, ids, n = world
    assert _member(con, n + 1) == ids["sole"]
