"""Age limits the county's own records break (issue 17, identity).

A role profile's age limit is an assumption about what a record's date means. A vehicle's
初次登记日期 is the vehicle's first registration: a used car's owner may have been a child then.
Where the role's rows that carry a valid ID break a limit, the limit costs what those rows
measure (``role_profile.measured_limits``), not "impossible": a unique name is linked, and a
namesake who was an adult then is no confident link. A limit the rows keep keeps its cost."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest

from crossmatch.identity import resolve, role_profile

from .county import _pcols, _write, build
from .test_role_profile import pid
from .test_support import _hukou

V1 = "341122001001"
REG = dt.date(2020, 5, 1)


def _vehicle_rows(owners: list[tuple[str, str | None, dt.date]]) -> list[dict]:
    out = []
    for k, (name, idn, reg) in enumerate(owners):
        r = {"_source": "vehicle", "_file": "police/vehicle.csv", "_file_hash": "x"}
        r |= {"_row": 2 + k, "_dup_of": None} | _pcols("owner", name, idn, idn)
        out.append(r | {"reg_date": reg})
    return out


@pytest.fixture(scope="module")
def world():
    con = duckdb.connect()
    build(con, n=300, seed=6)
    reg = con.execute(
        "SELECT person_id, person_name FROM src_hukou WHERE person_id IS NOT NULL ORDER BY _row"
    ).fetchall()
    # 欧阳锋 (one registered, born 2008: 12 when the car was first registered), 慕容复 x2
    # (one born 2005: 15 then; one born 1980)
    ids = {
        "欧阳锋": pid("20080301", 401, True),
        "慕容复/young": pid("20050301", 402, True),
        "慕容复/adult": pid("19800301", 403, True),
    }
    _hukou(con, [(k.split("/")[0], v, V1, None) for k, v in ids.items()])
    # the register: 160 owners with their IDs; for every tenth one the car was first
    # registered when the owner was 10 (a used car), else on REG
    owners: list[tuple[str, str | None, dt.date]] = []
    for k, (idn, name) in enumerate(reg[:160]):
        early = pd.Timestamp(idn[6:14]).date() + dt.timedelta(days=365 * 10)
        owners.append((name, idn, early if k % 10 == 0 and early < REG else REG))
    owners += [("欧阳锋", None, REG), ("慕容复", None, REG)]
    _write(con, "src_vehicle", _vehicle_rows(owners))
    resolve(con)
    yield con, ids, len(owners)
    con.close()


def _link(con, row: int) -> tuple[str, str, float | None]:
    return con.execute(
        "SELECT person_id, method, probability FROM identity_link "
        "WHERE source = 'vehicle' AND row = ?",
        [row],
    ).fetchall()[0]


def test_owner_too_young_at_first_registration_is_still_linked(world):
    """Before: 12 at 初次登记日期 was impossible (12 log2 units off): the only 欧阳锋 of the
    county stayed unresolved."""
    con, ids, n = world
    person, method, _ = _link(con, n)  # rows start at 2: the last but one row
    assert (person, method) == (ids["欧阳锋"], "fuzzy")


def test_adult_namesake_is_not_preferred_when_the_register_breaks_the_limit(world):
    """Before: 15 then was unusual (6 log2 units off) and the adult 慕容复 took the row (p 0.81
    here). In this register owners that young at 初次登记日期 are about as common as in the
    population, so the age says nothing: two namesakes, a coin toss, unresolved."""
    con, ids, n = world
    person, method, _ = _link(con, n + 1)
    assert method == "unresolved"
    assert person not in {ids["慕容复/young"], ids["慕容复/adult"]}


def test_measured_limits_overrule_only_what_the_rows_break(world):
    con, _, _ = world
    costs = role_profile.measured_limits(con)
    assert costs[("vehicle", "owner", "hard_min")] < role_profile.HARD - 4
    assert costs[("vehicle", "owner", "soft_min")] < role_profile.SOFT


def _tiny(rows: list[tuple[str, str, str]], extra_ids: int = 400) -> duckdb.DuckDBPyConnection:
    """A warehouse with person_mention and src_vehicle: (ID, reg_date) rows; ``extra_ids``
    more IDs (born 1950-2019) mentioned elsewhere make up the population."""
    con = duckdb.connect()
    men = [("vehicle", "v", 2 + k, "owner", idn) for k, (idn, _, _) in enumerate(rows)]
    men += [
        ("hukou", "h", 2 + k, "person", pid(f"{1950 + k % 70}0101", 300 + k // 70, True))
        for k in range(extra_ids)
    ]
    con.execute(
        "CREATE TABLE person_mention (source VARCHAR, file VARCHAR, row INTEGER, role VARCHAR, "
        "id VARCHAR)"
    )
    con.executemany("INSERT INTO person_mention VALUES (?, ?, ?, ?, ?)", men)
    con.execute("CREATE TABLE src_vehicle (_file VARCHAR, _row INTEGER, reg_date DATE)")
    con.executemany(
        "INSERT INTO src_vehicle VALUES ('v', ?, ?)",
        [(2 + k, reg) for k, (_, reg, _) in enumerate(rows)],
    )
    return con


def test_measured_limits_need_enough_breaks():
    adults = [(pid("19800101", k, True), "2020-01-01", "") for k in range(100)]
    # two owners under 14: a mistyped ID or two, not a pattern (fewer than MIN_BREAKS)
    kids = [(pid("20120101", 200 + k, True), "2020-01-01", "") for k in range(2)]
    assert role_profile.measured_limits(_tiny(adults + kids)) == {}
    # ten under 14 (9%): the limit is weighed as measured, below HARD
    kids = [(pid("20120101", 200 + k, True), "2020-01-01", "") for k in range(10)]
    costs = role_profile.measured_limits(_tiny(adults + kids))
    assert 0.0 < costs[("vehicle", "owner", "hard_min")] < role_profile.HARD
    # too few dated rows to measure anything
    assert role_profile.measured_limits(_tiny(adults[:20] + kids[:5])) == {}


def test_violations_cost_what_was_measured():
    base = {"item": None, "sex": "男", "head": None, "death": None, "held": []}
    df = pd.DataFrame(
        [
            base | {"source": "vehicle", "role": "owner", "rec_date": "2020-01-01",
                    "birth": "2008-01-01"},  # 12: below hard 14
            base | {"source": "vehicle", "role": "owner", "rec_date": "2020-01-01",
                    "birth": "2004-01-01"},  # 16: below soft 18
            base | {"source": "cadre", "role": "cadre", "rec_date": "2020-01-01",
                    "birth": "2011-01-01"},  # 9: not measured, still HARD
        ]
    )  # fmt: skip
    v = role_profile.violations(df, None)
    assert v["hard_cost"].tolist() == [role_profile.HARD, 0.0, role_profile.HARD]
    assert v["soft_cost"].tolist()[1] == role_profile.SOFT
    costs = {("vehicle", "owner", "hard_min"): 3.0, ("vehicle", "owner", "soft_min"): 0.5}
    v = role_profile.violations(df, None, costs)
    assert v["hard_cost"].tolist() == [3.0, 0.0, role_profile.HARD]
    # a limit measured below MIN_COST is no violation at all (the 16-year-old fits)
    assert not v["soft"].iat[1] and not v["hard"].iat[1]
    assert np.isclose(v["soft_cost"].iat[1], 0.0)
