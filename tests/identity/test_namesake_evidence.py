"""Records without an ID whose name several registered namesakes share (issue 17, identity):
two ID-less rows of a file that lists each person once are two people, never one node; a land
contract's area against the farmland subsidy's area picks the namesake; a candidate already
listed with a valid ID in such a file (a vehicle register) is hardly the person of another row.
Evidence the records do not give leaves the row unresolved."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from crossmatch.identity import areas, listed, resolve

from .county import _pcols, _write, build
from .test_role_profile import pid
from .test_support import _hukou

V1 = "341122001001"


def _rows(source: str, file: str, role: str, people: list[tuple], extra) -> list[dict]:
    """(name, id or None, ...) -> canonical rows of ``source`` with lineage; ``extra(p)`` adds
    the source's own fields."""
    out = []
    for k, p in enumerate(people):
        r = {"_source": source, "_file": file, "_file_hash": "x", "_row": 2 + k, "_dup_of": None}
        out.append(r | _pcols(role, p[0], p[1], p[1]) | extra(p))
    return out


@pytest.fixture(scope="module")
def world():
    con = duckdb.connect()
    build(con, n=300, seed=6)
    reg = con.execute(
        "SELECT person_id, village_code FROM src_hukou WHERE person_id IS NOT NULL "
        "ORDER BY _row LIMIT 200"
    ).fetchall()
    names = dict(
        con.execute(
            "SELECT person_id, person_name FROM src_hukou WHERE person_id IS NOT NULL"
        ).fetchall()
    )
    ids = {}
    new = []
    # 欧阳青 x2 (land contracts without ID), 司马光 x2 (land contracts, no subsidy),
    # 诸葛亮 x2 (one owns a vehicle on a row with his ID), 诸葛明 x2 (neither does)
    for name, n in (("欧阳青", 2), ("司马光", 2), ("诸葛亮", 2), ("诸葛明", 2), ("公孙策", 1)):
        for j in range(n):
            idn = pid(f"19{60 + j:02d}0{1 + j}11", 300 + len(new), True)
            ids[(name, j)] = idn
            new.append((name, idn, V1, None))
    _hukou(con, new)
    rng = np.random.default_rng(1)
    # background: 60 contracts with their subsidy (the same area, or somewhat less) on rows
    # with valid IDs, so that the county's own records measure what the areas say
    contracts, subsidies = [], []
    for idn, v in reg[:60]:
        a = round(float(rng.uniform(2, 15)), 1)
        contracts.append((names[idn], idn, v, a))
        subsidies.append((names[idn], idn, v, a if rng.random() < 0.5 else round(a * 0.9, 1)))
    subsidies += [("欧阳青", ids[("欧阳青", 0)], V1, 8.1), ("欧阳青", ids[("欧阳青", 1)], V1, 10.0)]
    # 公孙策: contract 5.0 mu with his ID, an ID-less subsidy on 12.0 mu (over the area)
    contracts += [("公孙策", ids[("公孙策", 0)], V1, 5.0)]
    subsidies += [("公孙策", None, V1, 12.0)]
    contracts += [("欧阳青", None, V1, 8.1), ("欧阳青", None, V1, 11.4)]
    contracts += [("司马光", None, V1, 6.0), ("司马光", None, V1, 7.0)]
    _write(
        con,
        "src_land_contract",
        _rows(
            "land_contract",
            "agri/contract.csv",
            "contractor",
            contracts,
            lambda p: {"village_code": p[2], "area_mu": p[3]},
        ),
    )
    _write(
        con,
        "src_farmland_subsidy",
        _rows(
            "farmland_subsidy",
            "agri/subsidy.csv",
            "person",
            subsidies,
            lambda p: {"village_code": p[2], "area_mu": p[3], "year": "2025"},
        ),
    )
    # a vehicle register: 140 owners listed once each with their ID, then 诸葛亮 (ID 0) with
    # his ID, and one ID-less row each of 诸葛亮 and 诸葛明
    owners = [(names[idn], idn) for idn, _ in reg[60:200]]
    owners += [("诸葛亮", ids[("诸葛亮", 0)]), ("诸葛亮", None), ("诸葛明", None)]
    _write(
        con,
        "src_vehicle",
        _rows(
            "vehicle",
            "police/vehicle.csv",
            "owner",
            owners,
            lambda p: {"reg_date": pd.Timestamp("2020-05-01").date()},
        ),
    )
    resolve(con)
    yield con, ids, len(contracts), len(owners), len(subsidies)
    con.close()


def _link(con, source: str, row: int) -> tuple[str, str]:
    return con.execute(
        "SELECT person_id, method FROM identity_link WHERE source = ? AND row = ?",
        [source, row],
    ).fetchall()[0]


def test_land_contract_area_picks_the_namesake_whose_subsidy_it_pays(world):
    con, ids, n, _, _ = world
    # rows n-2 .. n+1 (rows start at 2): 欧阳青 8.1, 欧阳青 11.4, 司马光 6.0, 司马光 7.0
    assert _link(con, "land_contract", n - 2) == (ids[("欧阳青", 0)], "fuzzy")
    assert _link(con, "land_contract", n - 1) == (ids[("欧阳青", 1)], "fuzzy")


def test_two_idless_contracts_of_namesakes_are_two_people_even_unresolved(world):
    con, ids, n, _, _ = world
    a, b = _link(con, "land_contract", n), _link(con, "land_contract", n + 1)
    assert a[1] == b[1] == "unresolved"
    assert a[0] != b[0]
    assert {a[0], b[0]}.isdisjoint({ids[("司马光", 0)], ids[("司马光", 1)]})


def test_vehicle_row_is_not_the_namesake_already_listed_with_his_id(world):
    con, ids, _, n, _ = world
    assert _link(con, "vehicle", n) == (ids[("诸葛亮", 1)], "fuzzy")


def test_vehicle_row_of_two_unlisted_namesakes_stays_unresolved(world):
    con, ids, _, n, _ = world
    person, method = _link(con, "vehicle", n + 1)
    assert method == "unresolved"
    assert person not in {ids[("诸葛明", 0)], ids[("诸葛明", 1)]}


def test_over_area_subsidy_keeps_its_only_person(world):
    """A subsidy paid on more than the contract is what farmland_over_area looks for: with no
    other candidate fitting better, the misfit costs nothing (the rule trusts links >= 0.95)."""
    con, ids, _, _, n = world
    assert con.execute(
        "SELECT person_id, probability >= 0.95 FROM identity_link "
        "WHERE source = 'farmland_subsidy' AND row = ?",
        [n + 1],
    ).fetchall() == [(ids[("公孙策", 0)], True)]


def test_area_levels():
    # 10.8 mu paid on a contract of 10.7 is no equal area
    r = np.array([0.3, 0.6, 0.8, 0.95, 1.0, 1.001, 10.8 / 10.7, 1.2])
    assert list(areas.level(r)) == [0, 1, 2, 3, 4, 4, 5, 5]


def test_listed_penalty_needs_an_unlisted_rival():
    """A lone candidate listed already is weighed as it is (someone may own two vehicles);
    with an unlisted rival, the listed one loses the file's measured weight."""
    con = duckdb.connect()
    rows = [("vehicle", "v.csv", 2 + k, "owner", f"ID{k:04d}", "x") for k in range(200)]
    rows += [("hukou", "h.csv", 2 + k, "person", f"ID{k:04d}", "x") for k in range(1000)]
    rows += [("vehicle", "v.csv", 99, "owner", None, "A")]
    rows += [("vehicle", "v.csv", 100, "owner", None, "B")]
    con.execute(
        "CREATE TABLE person_mention (source VARCHAR, file VARCHAR, row INTEGER, role VARCHAR, "
        "id VARCHAR, name VARCHAR)"
    )
    con.executemany("INSERT INTO person_mention VALUES (?, ?, ?, ?, ?, ?)", rows)
    con.execute(
        "CREATE TABLE _fz AS SELECT *, 'g' || CAST(row AS VARCHAR) AS gkey FROM person_mention "
        "WHERE id IS NULL"
    )
    fw = listed.file_weights(con).set_index("file")
    # 200 of 1000 IDs listed, none twice (floored at half a person): log2((0.5 / 200) / 0.2)
    bits = np.log2(0.0025 / 0.2)
    assert fw.loc["v.csv", "bits"] == pytest.approx(bits)
    nid = np.array(["G:g99", "G:g100", "I:ID0001", "I:ID0300", "I:ID0002"], dtype=object)
    pen = listed.edge_penalty(con, nid)
    assert pen is not None
    # probe g99: ID0001 (listed) and ID0300 (not) -> only ID0001 weighed down
    out = pen(np.array([0, 0]), np.array([2, 3]), np.zeros(2))
    assert out[0] == pytest.approx(-bits) and out[1] == 0.0
    # probe g100: ID0001 and ID0002, both listed -> neither
    assert list(pen(np.array([1, 1]), np.array([2, 4]), np.zeros(2))) == [0.0, 0.0]
