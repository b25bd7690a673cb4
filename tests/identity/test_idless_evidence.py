"""Records without an ID: linked through the account and the village (by code or by name) of
their namesakes' ID-bearing rows, weighed against a namesake who had died before the record,
never forced onto anyone when nothing fits."""

from __future__ import annotations

import random

import duckdb
import pandas as pd
import pytest

from crossmatch.identity import explain, resolve

from .county import _pcols, _write, build, make_id

V1, V2 = "341122001001", "341122002002"


def vname(code: str) -> str:
    """Village names repeat across townships (马冲001村 in 一 and 二 township): only the
    township name tells them apart."""
    return f"马冲{code[-3:]}村"


def town(code: str) -> str:
    return f"{code[6:9]}镇"


@pytest.fixture(scope="module")
def world():
    """The small county plus a few controlled people; returns (con, ids, rows)."""
    con = duckdb.connect()
    build(con, n=600, seed=3)
    rng = random.Random(42)
    con.execute("ALTER TABLE src_payment ADD COLUMN village VARCHAR")
    con.execute("ALTER TABLE src_payment ADD COLUMN period VARCHAR")
    con.execute("ALTER TABLE src_payment ADD COLUMN township VARCHAR")
    # village name / code pairs: the ID-bearing payments name their village and township too
    con.execute(
        "UPDATE src_payment SET village = '马冲' || substr(village_code, 10, 3) || '村', "
        "township = substr(village_code, 7, 3) || '镇', "
        "period = '2025-0' || CAST(1 + _row % 3 AS VARCHAR)"
    )
    people = {
        "dead": ("端木伟", V1, "2025-02-10"),  # died before the payments
        "live": ("端木伟", V1, None),
        "fang1": ("端木芳", V1, None),
        "fang2": ("端木芳", V2, None),
        "qiang1": ("端木强", V1, None),
        "qiang2": ("端木强", V1, None),
        "lonely_dead": ("东方朔", V2, "2025-01-20"),
        "acct_dead": ("公孙青", V1, "2025-03-05"),
        "acct_look": ("公孙清", V1, None),  # a living look-alike neighbour
        "husband": ("端木刚", V1, None),
        "wife": ("端木丽", V1, None),  # the husband's household
        "wife_namesake": ("端木丽", V1, None),  # another household of the same village
    }
    household = {"wife": "husband"}
    ids = {k: make_id(rng) for k in people}
    n0 = con.execute("SELECT max(_row) FROM src_hukou").fetchall()[0][0]
    hk, deaths = [], []
    for i, (k, (name, v, died)) in enumerate(people.items()):
        r = {"_source": "hukou", "_file": "hukou/hk.csv", "_file_hash": "x", "_row": n0 + 1 + i}
        r |= {"_dup_of": None} | _pcols("person", name, ids[k], ids[k])
        hh = list(people).index(household.get(k, k))
        r |= {"household_no": f"HX{hh}", "village_code": v, "cancel_reason": None}
        r |= {"cancel_date": None}
        hk.append(r)
        if died:
            d = {"_source": "death", "_file": "death/d.xlsx", "_file_hash": "x", "_row": i + 2}
            d |= {"_dup_of": None} | _pcols("person", name, ids[k], ids[k])
            deaths.append(d | {"death_date": pd.Timestamp(died).date()})
    con.register("_hk", pd.DataFrame(hk))
    con.execute("INSERT INTO src_hukou BY NAME SELECT * FROM _hk")
    _write(con, "src_death", deaths)
    base = con.execute("SELECT max(_row) FROM src_payment").fetchall()[0][0]
    acct = {k: f"6217{rng.randint(10**11, 10**12 - 1)}" for k in people}
    pay = []

    def payment(key, name, idn, village, code, account, period, township=None) -> int:
        row = base + 1 + len(pay)
        r = {"_source": "payment", "_file": "finance/pay.csv", "_file_hash": "x", "_row": row}
        r |= {"_dup_of": None} | _pcols("payee", name, idn, idn)
        r |= {"village_code": code, "account": account, "village": village, "period": period}
        r |= {"township": township}
        pay.append(r)
        return row

    rows = {
        # ID-less, name + village by *name* and township (no code, no account): 端木芳 of V1,
        # not of V2 (马冲001村 is a village name of three townships)
        "fang1": payment(
            None, "端木芳", None, vname(V1) + "村民委员会", None, None, "2025-06", town(V1)
        ),
        # the same without the township: the name is no code, the two 端木芳 stay a coin toss
        "fang_notown": payment(
            None, "端木芳", None, vname(V1), None, "6228000000000003", "2025-06"
        ),
        # ID-less, after one 端木伟 died: the living namesake of the same village
        "live": payment(None, "端木伟", None, None, V1, None, "2025-06"),
        # before the death: two equal namesakes, a coin toss, left unresolved (an account
        # nobody's ID-bearing rows carry: its own node, not grouped with the row above)
        "coin": payment(None, "端木伟", None, None, V1, "6228000000000002", "2025-01"),
        # the only 东方朔 died in January: a payment after death stays his (a real clue)
        "lonely_dead": payment(None, "东方朔", None, None, V2, None, "2025-06"),
        # ID-less 端木强 with the account of one 端木强's ID-bearing rows
        "qiang1": payment(None, "端木强", None, None, None, acct["qiang1"], "2025-06"),
        # paid on after death into the dead person's own account: the dead one's
        "acct_dead": payment(None, "公孙青", None, None, V1, acct["acct_dead"], "2025-08"),
        # nobody of that name: stays unresolved (a possible ghost)
        "ghost": payment(None, "西门吹雪", None, None, V1, "6228000000000001", "2025-06"),
    }
    for k in ("qiang1", "acct_dead"):
        for m in ("2025-01", "2025-02"):
            payment(k, people[k][0], ids[k], vname(V1), V1, acct[k], m, town(V1))
    # a marriage record: the husband with his ID, the wife's ID cell empty
    mar = {"_source": "marriage", "_file": "marriage/m.csv", "_file_hash": "x", "_row": 2}
    mar |= {"_dup_of": None, "kind": "marriage"}
    mar |= _pcols("husband", "端木刚", ids["husband"], ids["husband"])
    mar |= _pcols("wife", "端木丽", None, None)
    _write(con, "src_marriage", [mar])
    rows["marriage"] = 2
    con.register("_pay", pd.DataFrame(pay))
    con.execute("INSERT INTO src_payment BY NAME SELECT * FROM _pay")
    s = resolve(con)
    yield con, ids, rows, s
    con.close()


def _link(con, row: int) -> tuple[str, str, float | None]:
    return con.execute(
        "SELECT person_id, method, probability FROM identity_link "
        "WHERE source = 'payment' AND row = ?",
        [row],
    ).fetchone()


def _evidence(con, row: int) -> dict[str, int]:
    ex = explain(con, "payment", "finance/pay.csv", row, "payee")
    return dict(zip(ex.comparison, ex.level, strict=True))


def test_village_by_name_is_evidence(world):
    con, ids, rows, _ = world
    pid, method, p = _link(con, rows["fang1"])
    assert (pid, method) == (ids["fang1"], "fuzzy") and p >= 0.5
    ev = _evidence(con, rows["fang1"])
    assert ev["village_code"] == 2 and ev["name"] == 4  # the village and the name explain it
    # the mention carries the cleaned name and the code it maps to
    v, code = con.execute(
        "SELECT village, village_code FROM person_mention WHERE source = 'payment' AND row = ?",
        [rows["fang1"]],
    ).fetchone()
    assert (v, code) == (vname(V1), V1)
    pid, method, _ = _link(con, rows["fang_notown"])
    assert method == "unresolved" and pid not in ids.values()
    code = con.execute(
        "SELECT village_code FROM person_mention WHERE source = 'payment' AND row = ?",
        [rows["fang_notown"]],
    ).fetchone()[0]
    assert code is None  # an ambiguous village name gives no code (never a guess)


def test_account_links_an_idless_payment(world):
    con, ids, rows, _ = world
    pid, method, _ = _link(con, rows["qiang1"])
    assert (pid, method) == (ids["qiang1"], "fuzzy")
    ev = _evidence(con, rows["qiang1"])
    assert ev["acct"] == 1 and ev["name"] == 4
    ex = explain(con, "payment", "finance/pay.csv", rows["qiang1"], "payee")
    assert {"acct: exact", "name: exact", "village_code: missing", "prior"} <= set(ex.evidence)


def test_living_namesake_preferred_over_one_dead_before(world):
    con, ids, rows, s = world
    assert _link(con, rows["live"])[0] == ids["live"]
    assert s.passed_over_dead >= 1
    # before the death the two are equal: no coin toss
    pid, method, _ = _link(con, rows["coin"])
    assert method == "unresolved" and pid not in ids.values()


def test_dead_candidate_kept_when_no_living_one_fits(world):
    con, ids, rows, _ = world
    assert _link(con, rows["lonely_dead"])[0] == ids["lonely_dead"]
    # name, village and the dead person's own account outweigh a look-alike living neighbour
    assert _link(con, rows["acct_dead"])[0] == ids["acct_dead"]


def test_no_candidate_stays_unresolved(world):
    con, _ids, rows, _ = world
    pid, method, _ = _link(con, rows["ghost"])
    assert method == "unresolved" and pid.startswith("P")
    inreg = con.execute("SELECT in_registry FROM person WHERE person_id = ?", [pid]).fetchone()
    assert inreg == (False,)


def test_name_without_id_linked_through_the_rows_other_person(world):
    """A marriage record's wife without an ID: the husband's household member of that name,
    though a namesake lives in the same village; the explanation names the household."""
    con, ids, _, _ = world
    pid, method, p = con.execute(
        "SELECT person_id, method, probability FROM identity_link "
        "WHERE source = 'marriage' AND row = 2 AND role = 'wife'"
    ).fetchone()
    assert (pid, method, p) == (ids["wife"], "fuzzy", 0.99)
    ex = explain(con, "marriage", "marriage/m.csv", 2, "wife")
    assert list(ex.comparison) == ["household", "name"]
    assert ex.evidence.iloc[1] == "name: exact"


def test_one_link_per_mention(world):
    con, _, _, _ = world
    n, keys, mentions = con.execute(
        "SELECT count(*), count(DISTINCT (source, file, row, role)), "
        "(SELECT count(*) FROM person_mention) FROM identity_link"
    ).fetchone()
    assert n == keys == mentions
    # staff roles without an ID column are linked by the staff pass, not as household members
    m = con.execute(
        "SELECT DISTINCT node_id LIKE 'H:%' FROM identity_link "
        "WHERE role IN ('handler', 'approver')"
    ).fetchall()
    assert m in ([], [(False,)])
