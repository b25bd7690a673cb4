"""Evidence that points *to* a candidate (not only away from the others), on records without
an ID: a cremation record and the one namesake whose death the registry dates just before it;
a company's shareholder and its legal representative of the same name. Neither may decide
between two candidates the evidence fits equally."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from crossmatch.identity import resolve

from .county import _pcols, _write, build
from .test_role_profile import pid

V1, V2, V3 = "341122001001", "341122002002", "341122003003"


def _hukou(con, rows: list[tuple[str, str, str, str | None]]) -> None:
    """(name, id, village, death date or None) -> registry rows (own households)."""
    n0 = con.execute("SELECT max(_row) FROM src_hukou").fetchall()[0][0]
    hk = []
    for i, (name, idn, v, died) in enumerate(rows):
        r = {"_source": "hukou", "_file": "hukou/hk.csv", "_file_hash": "x", "_row": n0 + 1 + i}
        r |= {"_dup_of": None} | _pcols("person", name, idn, idn)
        r |= {"household_no": f"HS{i}", "village_code": v}
        r |= {"cancel_reason": "死亡" if died else None}
        r |= {"cancel_date": pd.Timestamp(died).date() if died else None}
        hk.append(r)
    con.register("_hk", pd.DataFrame(hk))
    con.execute("INSERT INTO src_hukou BY NAME SELECT * FROM _hk")
    con.unregister("_hk")


@pytest.fixture(scope="module")
def world():
    con = duckdb.connect()
    build(con, n=300, seed=8)
    for t, c in con.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE replace(data_type, '\"', '') = 'NULL'"
    ).fetchall():
        con.execute(f"ALTER TABLE {t} ALTER {c} TYPE {'DATE' if c.endswith('date') else 'VARCHAR'}")
    ids = {}
    reg = []
    # 司徒青 x8, one
    # died 2024-03-01; 司徒红 x3, two died within days of each other;
    # 司徒兰 x3, none dead
    for name, n, deaths in (
        ("司徒青", 8, {0: "2024-03-01"}),
        ("司徒红", 3, {0: "2024-05-02", 1: "2024-05-06"}),
        ("司徒兰", 3, {}),
        ("慕容伟", 4, {}),
    ):
        for j in range(n):
            idn = pid(f"19{40 + j:02d}{1 + j % 12:02d}15", 400 + len(reg), name != "司徒红")
            ids[(name, j)] = idn
            reg.append((name, idn, (V1, V2, V3)[j % 3], deaths.get(j)))
    _hukou(con, reg)
    crem = []
    for i, (name, day) in enumerate(
        (("司徒青", "2024-03-03"), ("司徒红", "2024-05-08"), ("司徒兰", "2024-07-01"))
    ):
        r = {"_source": "cremation", "_file": "death/crem.csv", "_file_hash": "x", "_row": 2 + i}
        r |= {"_dup_of": None} | _pcols("person", name, None, None)
        crem.append(r | {"cremation_date": pd.Timestamp(day).date(), "funeral_home": "殡仪馆"})
    _write(con, "src_cremation", crem)
    # company A: legal rep 慕容伟 (ID 0), shareholder 慕容伟 without ID -> that person;
    # company B: legal rep 慕容伟 (ID 1) and a shareholder 慕容伟 (ID 2): an ID-less
    # 慕容伟 there could be either
    ent = []
    for i, (code, j) in enumerate((("91341122MAAAAAAAA1", 0), ("91341122MABBBBBBB2", 1))):
        r = {"_source": "enterprise", "_file": "market/ent.csv", "_file_hash": "x", "_row": 2 + i}
        r |= {"_dup_of": None, "credit_code": code, "name": f"公司{i}"}
        r |= _pcols("legal_rep", "慕容伟", ids[("慕容伟", j)], ids[("慕容伟", j)])
        ent.append(r)
    _write(con, "src_enterprise", ent)
    srow = con.execute("SELECT max(_row) FROM src_shareholder").fetchall()[0][0]
    sh = []
    for k, (code, idn) in enumerate(
        (
            ("91341122MAAAAAAAA1", None),
            ("91341122MABBBBBBB2", ids[("慕容伟", 2)]),
            ("91341122MABBBBBBB2", None),
        )
    ):
        r = {"_source": "shareholder", "_file": "market/sh.csv", "_file_hash": "x"}
        r |= {"_row": srow + 1 + k, "_dup_of": None, "credit_code": code}
        sh.append(r | _pcols("holder", "慕容伟", idn, idn))
    con.register("_sh", pd.DataFrame(sh))
    con.execute("INSERT INTO src_shareholder BY NAME SELECT * FROM _sh")
    resolve(con)
    yield con, ids, srow
    con.close()


def _link(con, source: str, row: int, role: str) -> tuple[str, str]:
    return con.execute(
        "SELECT person_id, method FROM identity_link WHERE source = ? AND row = ? AND role = ?",
        [source, row, role],
    ).fetchall()[0]


def test_cremation_links_to_the_namesake_whose_death_it_follows(world):
    con, ids, _ = world
    assert _link(con, "cremation", 2, "person") == (ids[("司徒青", 0)], "fuzzy")


def test_two_namesakes_dead_in_the_window_stay_apart(world):
    con, ids, _ = world
    person, method = _link(con, "cremation", 3, "person")
    assert method == "unresolved"
    assert person not in {ids[("司徒红", j)] for j in range(3)}


def test_no_death_no_link(world):
    con, ids, _ = world
    person, method = _link(con, "cremation", 4, "person")
    assert method == "unresolved"
    assert person not in {ids[("司徒兰", j)] for j in range(3)}


def test_shareholder_is_the_companys_legal_rep_of_that_name(world):
    con, ids, srow = world
    person, _method = _link(con, "shareholder", srow + 1, "holder")
    assert person == ids[("慕容伟", 0)]
    expl = con.execute(
        "SELECT e.comparison FROM identity_link l JOIN identity_explanation e USING (node_id) "
        "WHERE l.source = 'shareholder' AND l.row = ?",
        [srow + 1],
    ).fetchall()
    assert ("company",) in expl


def test_two_ids_of_the_name_in_the_company_decide_nothing(world):
    con, ids, srow = world
    person, _ = _link(con, "shareholder", srow + 3, "holder")
    assert person not in {ids[("慕容伟", 0)], ids[("慕容伟", 1)]}
