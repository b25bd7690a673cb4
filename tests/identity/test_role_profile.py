"""Role profiles, household co-mentions, staff and transposition keys (issue 17, identity).

Unit tests at each piece's boundary (a frame of mention x candidate facts, a tiny warehouse),
then one small county where each piece decides a case that name and village alone cannot."""

from __future__ import annotations

import random

import duckdb
import numpy as np
import pandas as pd
import pytest

from crossmatch import idnumber
from crossmatch.identity import household, keys, resolve, role_profile, staff

from .county import _pcols, _write, build

V1, V2 = "341122001001", "341122002002"


def pid(birth: str, seq: int, male: bool) -> str:
    """A valid ID of the county born on ``birth`` (YYYYMMDD)."""
    s = seq * 2 + (1 if male else 0)
    first17 = f"341122{birth}{s:03d}"
    return first17 + idnumber.check_char(first17)


# --- role_profile.violations: one row per (mention, candidate) --------------------------------
def _pairs(rows: list[dict]) -> pd.DataFrame:
    base = {"item": None, "sex": "男", "head": None, "death": None, "held": []}
    return pd.DataFrame([base | r for r in rows])


def test_violations_age_sex_head_and_death():
    df = _pairs(
        [
            # 0 a cadre of 9: impossible
            {"source": "cadre", "role": "cadre", "rec_date": "2025-01-01", "birth": "2016-03-01"},
            # 1 an adult cadre: fine
            {"source": "cadre", "role": "cadre", "rec_date": "2025-01-01", "birth": "1976-03-01"},
            # 2 a payee of 16 for 城乡低保金: unusual (soft)
            {
                "source": "payment",
                "role": "payee",
                "rec_date": "2025-06-01",
                "birth": "2009-01-01",
                "item": "城乡低保金",
            },
            # 3 the same payee for an orphan's benefit: fine
            {
                "source": "payment",
                "role": "payee",
                "rec_date": "2025-06-01",
                "birth": "2009-01-01",
                "item": "孤儿基本生活费",
            },
            # 4 an elderly allowance to someone of 50: soft; 5 to someone of 78: fine (the
            # underage-allowance rule must still find it)
            {
                "source": "payment",
                "role": "payee",
                "rec_date": "2025-06-01",
                "birth": "1975-01-01",
                "item": "高龄津贴",
            },
            {
                "source": "payment",
                "role": "payee",
                "rec_date": "2025-06-01",
                "birth": "1947-01-01",
                "item": "高龄津贴",
            },
            # 6 a wife who is a man: impossible
            {"source": "marriage", "role": "wife", "rec_date": "2020-01-01", "birth": "1990-01-01"},
            # 7 a land contractor who is not the household head: soft
            {
                "source": "land_contract",
                "role": "contractor",
                "rec_date": None,
                "birth": "1990-01-01",
                "head": False,
            },
            # 8 a cremation 3 days after the recorded death: fits; 9 two years after: soft
            {
                "source": "cremation",
                "role": "person",
                "rec_date": "2025-11-17",
                "birth": "1941-01-01",
                "death": "2025-11-14",
            },
            {
                "source": "cremation",
                "role": "person",
                "rec_date": "2025-11-17",
                "birth": "1941-01-01",
                "death": "2023-11-14",
            },
            # 10 a vehicle registered a year after the owner's recorded death: soft
            {
                "source": "vehicle",
                "role": "owner",
                "rec_date": "2021-01-01",
                "birth": "1950-01-01",
                "death": "2019-12-01",
            },
            # 11 a farmland subsidy to a head who holds no land contract: soft
            {
                "source": "farmland_subsidy",
                "role": "person",
                "rec_date": "2025-07-01",
                "birth": "1960-01-01",
                "head": True,
                "held": [],
            },
            {
                "source": "farmland_subsidy",
                "role": "person",
                "rec_date": "2025-07-01",
                "birth": "1960-01-01",
                "head": True,
                "held": ["land_contract|contractor"],
            },
            # 13 an approver on no roster: impossible; 14 one on the payroll: fine
            {
                "source": "assistance",
                "role": "approver",
                "rec_date": "2024-01-01",
                "birth": "1980-01-01",
                "held": [],
            },
            {
                "source": "assistance",
                "role": "approver",
                "rec_date": "2024-01-01",
                "birth": "1980-01-01",
                "held": ["payroll|person"],
            },
            # 15 a source without a profile: never weighed
            {"source": "unknown", "role": "x", "rec_date": "2025-01-01", "birth": "2020-01-01"},
        ]
    )
    v = role_profile.violations(df, pd.Timestamp("2025-12-31"))
    hard = np.flatnonzero(v["hard"]).tolist()
    soft = np.flatnonzero(v["soft"] & ~v["hard"]).tolist()
    assert hard == [0, 6, 13]
    assert soft == [2, 4, 7, 9, 10, 11]
    assert np.flatnonzero(v["fit"]).tolist() == [8]


def test_undated_minimum_age_checked_at_the_latest_record():
    df = _pairs(
        [{"source": "land_contract", "role": "contractor", "rec_date": None, "birth": "2015-01-01"}]
    )
    assert bool(role_profile.violations(df, pd.Timestamp("2025-06-01"))["hard"].iat[0])
    assert not role_profile.violations(df, None)["hard"].iat[0]  # no date at all: no verdict


# --- role_profile.edge_penalty: hard always, soft only against a fitting rival ---------------
@pytest.fixture()
def tiny():
    con = duckdb.connect()
    child, adult, adult2 = (
        pid("20160301", 1, True),
        pid("19700301", 2, True),
        pid("19750301", 3, True),
    )
    con.execute(
        "CREATE TABLE src_payment AS SELECT * FROM (VALUES "
        "('f', 2, '2025-06', '城乡低保金'), ('f', 3, '2025-06', '城乡低保金')) "
        "t(_file, _row, period, item)"
    )
    con.execute(
        "CREATE TABLE src_cadre AS SELECT * FROM (VALUES ('c', 2, DATE '2025-01-01')) "
        "t(_file, _row, term_start)"
    )
    con.execute(
        "CREATE TEMP TABLE _fz AS SELECT * FROM (VALUES "
        "('payment', 'f', 2, 'payee', 'g1'), ('cadre', 'c', 2, 'cadre', 'g2'), "
        "('payment', 'f', 3, 'payee', 'g3')) t(source, file, row, role, gkey)"
    )
    con.execute(
        "CREATE TABLE person_mention (source VARCHAR, file VARCHAR, row INTEGER, role VARCHAR,"
        " id VARCHAR)"
    )
    con.execute("CREATE TEMP TABLE _id_death (id VARCHAR, death DATE)")
    nid = np.array(["G:g1", "G:g2", "G:g3", f"I:{child}", f"I:{adult}", f"I:{adult2}"], object)
    yield con, nid
    con.close()


def test_edge_penalty_soft_needs_a_rival_hard_does_not(tiny):
    con, nid = tiny
    pen = role_profile.edge_penalty(con, nid)
    assert pen is not None
    # g1 (payee) has the child and an adult: the child is weighed down (soft)
    # g2 (cadre) has only the child: impossible all the same (hard)
    # g3 (payee) has only the child: a lone candidate keeps its weight (soft, no rival)
    probe = np.array([0, 0, 1, 2])
    other = np.array([3, 4, 3, 3])
    out = pen(probe, other, np.zeros(4))
    assert out.tolist() == [role_profile.SOFT, 0.0, role_profile.HARD, 0.0]


# --- household: co-mentions, kin, and the penalty ----------------------------------------------
def test_household_penalty_only_when_a_relative_is_a_candidate():
    nid = np.array(["G:w", "I:A", "I:B", "G:x", "I:C"], dtype=object)
    pen = household.edge_penalty(nid, {"w": {"A"}, "x": {"Z"}})
    out = pen(np.array([0, 0, 3]), np.array([1, 2, 4]), np.zeros(3))
    assert out.tolist() == [0.0, household.PENALTY, 0.0]
    assert household.edge_penalty(nid, {}) is None
    both = household.combine(pen, lambda p, o, w: np.ones(len(p)))
    assert both(np.array([0, 0]), np.array([1, 2]), np.zeros(2)).tolist() == [
        1.0,
        1.0 + household.PENALTY,
    ]


def test_kin_reaches_parents_outside_the_household_and_spouses():
    con = duckdb.connect()
    a, b, c, d, e = (pid("19800101", i, i % 2 == 0) for i in range(5))
    con.execute(
        "CREATE TABLE person_mention (source VARCHAR, file VARCHAR, row INTEGER, role VARCHAR, "
        "id VARCHAR)"
    )
    con.executemany(
        "INSERT INTO person_mention VALUES (?, ?, ?, ?, ?)",
        [
            ("hukou", "h", 2, "person", a),
            ("hukou", "h", 2, "father", b),  # a's father, in another household
            ("hukou", "h", 3, "person", b),
            ("hukou", "h", 4, "person", c),  # a's household
            ("marriage", "m", 2, "husband", a),
            ("marriage", "m", 2, "wife", d),
            ("hukou", "h", 5, "person", e),  # nobody's relative
        ],
    )
    con.execute(
        "CREATE TABLE src_hukou AS SELECT * FROM (VALUES ('h', 2, 'H1'), ('h', 3, 'H2'), "
        "('h', 4, 'H1'), ('h', 5, 'H3')) t(_file, _row, household_no)"
    )
    kin = household.kin_of(con, [a])
    assert set(kin["kin"]) == {b, c, d}


def test_first_round_persons_skips_registry_row_anchors():
    labels = np.array([0, 0, 1, 1, 2])
    reg = np.array([None, "ID1", "R:abc", None, None], dtype=object)
    ext = np.array([None, None, None, "EXT", None], dtype=object)
    f = household.first_round_persons(labels, reg, ext)
    assert f(np.array([0, 2, 4])).tolist() == ["ID1", "EXT", None]


# --- keys and staff ---------------------------------------------------------------------------
def test_anagram_key_survives_a_transposition_across_parts_and_sql_agrees():
    idn = pid("19450215", 7, True)
    swapped = idn[:5] + idn[6] + idn[5] + idn[7:]  # region|birth boundary
    s = pd.Series([idn, swapped, None, "123"], dtype=object)
    py = keys.id_anagram(s)
    assert py[0] == py[1] and pd.isna(py[2]) and pd.isna(py[3])  # None or NaN (pandas 3)
    con = duckdb.connect()
    con.register("_s", pd.DataFrame({"v": s}))
    sql = con.execute(f"SELECT {keys.id_anagram_sql('v')} FROM _s").fetchall()
    assert [r[0] for r in sql] == [None if pd.isna(v) else v for v in py.tolist()]


def test_payroll_row_without_id_takes_the_township_its_unit_names():
    con = duckdb.connect()
    con.execute("CREATE TABLE src_assistance AS SELECT '城关镇' AS township UNION SELECT '新镇镇'")
    con.execute(
        "CREATE TABLE person_mention AS SELECT * FROM (VALUES "
        "('李伟', '新镇镇人民政府', NULL::VARCHAR, NULL::VARCHAR), "
        "('张三', '县财政局', NULL, NULL), ('王五', '城关镇民政办', NULL, '341122198001010011')) "
        "t(name, unit, township, id)"
    )
    assert staff.assign_townships(con) == 1
    got = con.execute("SELECT name, township FROM person_mention ORDER BY name").fetchall()
    assert dict(got) == {"李伟": "新镇镇", "张三": None, "王五": None}


# --- a small county: each piece decides a case --------------------------------------------------
@pytest.fixture(scope="module")
def world():
    con = duckdb.connect()
    build(con, n=600, seed=5)
    # all-NULL columns of the small county (no approver there) take text
    for t, c in con.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE replace(data_type, '\"', '') = 'NULL'"
    ).fetchall():
        con.execute(f"ALTER TABLE {t} ALTER {c} TYPE VARCHAR")
    rng = random.Random(7)
    for t, cols in (
        ("src_hukou", ["relation_to_head"]),
        ("src_payment", ["item", "period"]),
        ("src_assistance", ["start_date"]),
    ):
        for c in cols:
            con.execute(f"ALTER TABLE {t} ADD COLUMN {c} VARCHAR")
    con.execute("UPDATE src_payment SET item = '城乡低保金', period = '2025-03'")
    con.execute("UPDATE src_hukou SET relation_to_head = '户主'")
    people = {
        # key: (name, birth, male, village, household)
        "ping_old": ("端木萍", "19491120", False, V1, "HA"),
        "ping_child": ("端木萍", "20090310", False, V1, "HB"),
        "payer": ("端木华", "19700101", True, V2, "HC"),
        "cadre_child": ("端木明", "20160101", True, V2, "HD"),
        "husband": ("公孙刚", "19830101", True, V1, "HE"),
        "wife": ("东方丽", "19850101", False, V1, "HE"),
        "wife_namesake": ("东方丽", "19860101", False, V2, "HF"),
        "approver": ("端木飞", "19750101", True, V2, "HG"),
        "clerk": ("端木清", "19800101", False, V1, "HH"),
        "transposed": ("端木雪", "19450215", False, V2, "HI"),
    }
    ids = {k: pid(b, 100 + i, m) for i, (k, (_n, b, m, _v, _h)) in enumerate(people.items())}
    n0 = con.execute("SELECT max(_row) FROM src_hukou").fetchall()[0][0]
    hk = []
    for i, (k, (name, _b, _m, v, hh)) in enumerate(people.items()):
        r = {"_source": "hukou", "_file": "hukou/hk.csv", "_file_hash": "x", "_row": n0 + 1 + i}
        r |= {"_dup_of": None} | _pcols("person", name, ids[k], ids[k])
        r |= {"household_no": hh, "village_code": v, "cancel_reason": None, "cancel_date": None}
        r |= {"relation_to_head": "配偶" if k == "wife" else "户主"}
        hk.append(r)
    # twelve more 端木雪: the name alone blocks nobody (a block over its cap), only the ID can
    for j in range(12):
        other = pid(f"19{50 + j}0601", 300 + j, False)
        r = {"_source": "hukou", "_file": "hukou/hk.csv", "_file_hash": "x", "_row": n0 + 50 + j}
        r |= {"_dup_of": None} | _pcols("person", "端木雪", other, other)
        r |= {"household_no": f"HN{j}", "village_code": V1, "cancel_reason": None}
        hk.append(r | {"cancel_date": None, "relation_to_head": "户主"})
    con.register("_hk", pd.DataFrame(hk))
    con.execute("INSERT INTO src_hukou BY NAME SELECT * FROM _hk")

    base = con.execute("SELECT max(_row) FROM src_payment").fetchall()[0][0]
    acct = f"6217{rng.randint(10**11, 10**12 - 1)}"
    pay = []

    def payment(name, idn, code, period) -> int:
        row = base + 1 + len(pay)
        r = {"_source": "payment", "_file": "finance/pay.csv", "_file_hash": "x", "_row": row}
        r |= {"_dup_of": None} | _pcols("payee", name, idn, idn)
        r |= {"village_code": code, "account": acct, "item": "城乡低保金", "period": period}
        pay.append(r)
        return row

    for m in ("2025-01", "2025-02"):
        payment("端木华", ids["payer"], V2, m)  # the account's owner
    rows = {"ping": [payment("端木萍", None, V1, m) for m in ("2025-04", "2025-05")]}
    con.register("_pay", pd.DataFrame(pay))
    con.execute("INSERT INTO src_payment BY NAME SELECT * FROM _pay")

    cadre = {"_source": "cadre", "_file": "org/cadre.csv", "_file_hash": "x", "_row": 2}
    cadre |= {"_dup_of": None} | _pcols("person", "端木明", None, None)
    cadre |= {"village_code": V2, "term_start": pd.Timestamp("2024-01-01").date()}
    _write(con, "src_cadre", [cadre])

    mar = {"_source": "marriage", "_file": "marriage/m.csv", "_file_hash": "x", "_row": 2}
    mar |= {"_dup_of": None, "kind": "结婚", "reg_date": pd.Timestamp("2010-05-01").date()}
    mar |= _pcols("husband", "公孙刚", None, None) | _pcols("wife", "东方丽", None, None)
    _write(con, "src_marriage", [mar])

    # the approver 端木飞 is on no roster; the clerk 端木清's payroll row has no ID
    arow = con.execute("SELECT max(_row) FROM src_assistance").fetchall()[0][0]
    asg = []
    for j in range(3):
        r = {"_source": "assistance", "_file": "civil/roster.xlsx", "_file_hash": "x"}
        r |= {"_row": arow + 1 + j, "_dup_of": None}
        r |= _pcols("applicant", None, None, None) | _pcols("member", None, None, None)
        r |= {"handler_name": "端木清", "handler_name_raw": "端木清"}
        r |= {"approver_name": "端木飞", "approver_name_raw": "端木飞"}
        r |= {"township": "一镇", "village_code": V1, "start_date": "2024-03-01"}
        asg.append(r)
    con.register("_as", pd.DataFrame(asg))
    con.execute("INSERT INTO src_assistance BY NAME SELECT * FROM _as")
    prow = con.execute("SELECT max(_row) FROM src_payroll").fetchall()[0][0]
    pr = {"_source": "payroll", "_file": "finance/payroll.xlsx", "_file_hash": "x"}
    pr |= {"_row": prow + 1, "_dup_of": None, "unit_name": "一镇民政办"}
    pr |= _pcols("person", "端木清", None, None)
    con.register("_pr", pd.DataFrame([pr]))
    con.execute("INSERT INTO src_payroll BY NAME SELECT * FROM _pr")

    # a shareholder whose ID has the region's last digit and the century swapped
    t = ids["transposed"]
    raw = t[:5] + t[6] + t[5] + t[7:]
    srow = con.execute("SELECT max(_row) FROM src_shareholder").fetchall()[0][0]
    sh = {"_source": "shareholder", "_file": "market/sh.csv", "_file_hash": "x"}
    sh |= {"_row": srow + 1, "_dup_of": None, "credit_code": "91341122MA99999999"}
    sh |= _pcols("holder", "端木雪", None, raw)
    con.register("_sh", pd.DataFrame([sh]))
    con.execute("INSERT INTO src_shareholder BY NAME SELECT * FROM _sh")
    rows |= {"assist": [arow + 1 + j for j in range(3)], "payroll": prow + 1, "share": srow + 1}
    s = resolve(con)
    yield con, ids, rows, s
    con.close()


def _pid(con, source: str, row: int, role: str) -> tuple[str, str]:
    return con.execute(
        "SELECT person_id, method FROM identity_link WHERE source = ? AND row = ? AND role = ?",
        [source, row, role],
    ).fetchone()


def test_idless_payments_not_linked_to_a_child_namesake(world):
    """Two ID-less payments to 端木萍 paid into a third person's account: the woman of 75,
    never the girl of 16 (the seed-11 吴萍 mislink, a false shared_account trap)."""
    con, ids, rows, s = world
    for r in rows["ping"]:
        assert _pid(con, "payment", r, "payee") == (ids["ping_old"], "fuzzy")
    assert s.weighed_down_by_role >= 1


def test_a_child_is_no_cadre_even_when_alone(world):
    con, ids, _, _ = world
    person, method = _pid(con, "cadre", 2, "person")
    assert method == "unresolved" and person != ids["cadre_child"]


def test_wife_linked_through_a_husband_linked_only_fuzzily(world):
    con, ids, _, _ = world
    assert _pid(con, "marriage", 2, "husband") == (ids["husband"], "fuzzy")
    assert _pid(con, "marriage", 2, "wife") == (ids["wife"], "fuzzy")


def test_approver_on_no_roster_stays_name_only(world):
    con, ids, rows, _ = world
    got = {_pid(con, "assistance", r, "approver") for r in rows["assist"]}
    assert len(got) == 1
    person, method = got.pop()
    assert method == "unresolved" and person != ids["approver"]


def test_idless_payroll_row_is_the_townships_handler(world):
    con, _, rows, _ = world
    handlers = {_pid(con, "assistance", r, "handler")[0] for r in rows["assist"]}
    assert handlers == {_pid(con, "payroll", rows["payroll"], "person")[0]}


def test_id_transposed_across_its_parts_is_linked(world):
    con, ids, rows, _ = world
    assert _pid(con, "shareholder", rows["share"], "holder") == (ids["transposed"], "fuzzy")


def test_property_location_against_the_registry_address():
    towns = ["施店镇", "石镇乡", "城关镇", "城关"]
    got = role_profile.township_in(
        pd.Series(
            ["施店镇新城花园192号", "安徽省来安县石镇乡西陈村", "城关镇幸福路1号", "某路", None]
        ),
        towns,
    )
    got = [None if pd.isna(v) else v for v in got.tolist()]  # None or NaN (pandas 3)
    assert got == ["施店镇", "石镇乡", "城关镇", None, None]
    df = _pairs(
        [
            {"source": "property", "role": "owner", "rec_date": "2014-01-05",
             "birth": "1996-11-15", "place": "施店镇", "home": "施店镇"},
            {"source": "property", "role": "owner", "rec_date": "2014-01-05",
             "birth": "1975-09-10", "place": "施店镇", "home": "石镇乡"},
            {"source": "property", "role": "owner", "rec_date": "2014-01-05",
             "birth": "1975-09-10", "place": None, "home": "石镇乡"},
        ]
    )  # fmt: skip
    v = role_profile.violations(df, None)
    # a minor of 17 may own a home; a home in another township than one's registry is unusual
    assert v["soft"].tolist() == [False, True, False] and not v["hard"].any()


def test_edge_penalty_in_slices_of_profile_rows_is_the_same(tiny, monkeypatch):
    """The penalty builds its (profile row x candidate) frame a slice of whole probes at a
    time (PAIR_CHUNK rows): the same penalties at a slice of one row."""
    con, nid = tiny
    probe = np.array([0, 1, 0, 2, 0])
    other = np.array([3, 3, 4, 3, 5])
    whole = role_profile.edge_penalty(con, nid)(probe, other, np.zeros(5))
    monkeypatch.setattr(role_profile, "PAIR_CHUNK", 1)
    sliced = role_profile.edge_penalty(con, nid)(probe, other, np.zeros(5))
    assert sliced.tolist() == whole.tolist()
    assert whole.tolist() == [role_profile.SOFT, role_profile.HARD, 0.0, 0.0, 0.0]
