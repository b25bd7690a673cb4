"""Each feature on small hand-made frames: the value worked out by hand."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from crossmatch.ml import features as F

from .conftest import empty, pay


def frame(con, entity: str, run: str | None = "run1"):
    return F.compute(con, run)[entity]


def row(ef, eid: str) -> dict:
    rows = ef.frame.filter(ef.frame["entity_id"] == eid).to_dicts()
    assert rows, f"{eid} not in {ef.entity} features"
    return rows[0]


def test_recipient_features_by_hand():
    con = empty()
    con.execute("INSERT INTO person VALUES ('A', '甲', 'h1', '341122001001', TRUE, NULL), "
                "('B', '乙', 'h2', '341122001001', TRUE, NULL), "
                "('C', '丙', 'h3', '341122001002', TRUE, NULL)")  # fmt: skip
    pay(con, "A", "低保", [300.5, 310.25, 280.0, 290.75], "341122001001", account="X")
    pay(con, "B", "低保", [300] * 4, "341122001001", account="X")
    pay(con, "C", "低保", [900] * 4, "341122001001", account="X")  # paid outside its village
    pay(con, "C", "养老金", [183] * 4, "341122001002", account="Y")
    con.execute("INSERT INTO hit VALUES ('run1', 'r1', 'A', NULL), ('run1', 'r2', 'A', NULL), "
                "('old', 'r1', 'B', NULL)")  # fmt: skip
    con.execute("DROP TABLE kin_relative")
    ef = frame(con, "recipient")
    assert ef.status == "blind"  # an optional input missing: named in the reason
    assert "kin_relative" in ef.reason
    a, b, c = row(ef, "A"), row(ef, "B"), row(ef, "C")
    assert (a["amount_levels"], b["amount_levels"]) == (4, 1)
    assert a["odd_amounts"] == pytest.approx(0.75) and b["odd_amounts"] == 0
    assert b["amount_cv"] == 0 and a["amount_cv"] > 0.03
    assert c["items"] == 2 and a["items"] == 1
    # township median of the per-person mean 低保 amount: median(295.375, 300, 900) = 300
    assert c["peer_ratio"] == pytest.approx(3.0)
    assert a["account_sharers"] == 3 and c["accounts"] == 2
    assert c["paid_elsewhere"] == pytest.approx(0.5)
    assert a["rule_hits"] == 2 and b["rule_hits"] == 0  # hits of the run asked for only
    assert a["total"] == pytest.approx(1181.5)


def test_household_programmes_and_cadre_kin():
    con = empty()
    for pid, born in (("A", 1950), ("M1", 1951), ("M2", 1990), ("B", 1952)):
        con.execute("INSERT INTO person VALUES (?, ?, 'h', '341122001001', TRUE, ?)",
                    [pid, pid, dt.date(born, 3, 1)])  # fmt: skip
    for m in ("A", "M1", "M2"):
        con.execute("INSERT INTO r_assistance VALUES ('c1', 'A', '甲', ?, 3, '341122001001', "
                    "'H', 'P', DATE '2020-01-01')", [m])  # fmt: skip
    con.execute("INSERT INTO r_assistance VALUES ('c2', 'B', '乙', 'B', 1, '341122001001', 'H', "
                "'P', DATE '2024-06-01')")  # fmt: skip
    pay(con, "A", "低保", [500] * 2, "341122001001")
    pay(con, "M1", "残疾", [90] * 2, "341122001001")
    pay(con, "M1", "养老金", [183] * 2, "341122001001")
    pay(con, "M2", "残疾", [90] * 2, "341122001001")
    pay(con, "B", "低保", [500] * 2, "341122001001")
    con.execute("INSERT INTO r_cadre VALUES ('K', '341122001001')")
    con.execute("INSERT INTO kin_relative VALUES ('M2', 'K', TRUE), ('B', 'K', FALSE)")
    ef = frame(con, "household")
    a, b = row(ef, "A"), row(ef, "B")
    assert (a["programmes"], a["enrolments"]) == (3, 4)
    assert a["paid_per_member"] == pytest.approx((1000 + 180 + 366 + 180) / 3)
    assert a["cadre_kin"] == 1 and b["cadre_kin"] == 0  # a distant relative does not count
    assert a["case_tenure"] == 61  # 2020-01 .. 2025-02
    # age band 7 (70-79): A, M1, B (低保 2 of 3, 残疾 1, 养老金 1); band 3: M2 (残疾 1 of 1)
    rare = -math.log(3 / 5) - 2 * math.log(2 / 5) - math.log(2 / 3)
    assert a["rare_enrolments"] == pytest.approx(rare)
    assert b["rare_enrolments"] == pytest.approx(-math.log(3 / 5))


def test_village_item_ratio_is_against_the_age_structure():
    con = empty()
    for v in (1, 2, 3):
        for i in range(10):
            con.execute("INSERT INTO person VALUES (?, 'x', ?, ?, TRUE, DATE '1950-05-01')",
                        [f"V{v}P{i}", f"h{v}{i}", f"34112200100{v}"])  # fmt: skip
            pay(con, f"V{v}P{i}", "养老金", [100], f"34112200100{v}")
    for i in range(5):
        pay(con, f"V1P{i}", "残疾", [90] * 2, "341122001001")
    ef = frame(con, "village")
    v1, v2 = row(ef, "341122001001"), row(ef, "341122001002")
    # 残疾: 5 of the county's 30 same-age residents at 180 yuan each -> 300 expected per village
    assert v1["item_per_capita_ratio"] == pytest.approx((900 + 100) / (300 + 100))
    assert v1["item_ratio_item"] == "残疾"
    assert v1["per_capita_ratio"] == pytest.approx((190 + 1) / ((190 + 100 + 100) / 3 + 1))
    assert v2["paid_share"] == 1.0 and v2["item_per_capita_ratio"] == pytest.approx(1.0)


def test_handler_deadline_surname_and_kin():
    con = empty()
    con.execute("INSERT INTO person VALUES ('H', '王经办', 'x', '341122001001', TRUE, NULL), "
                "('G', '李经办', 'y', '341122001002', TRUE, NULL)")  # fmt: skip
    dates = ["2020-06-28", "2020-12-30", "2021-06-23", "2021-03-01"]
    for k, d in enumerate(dates):
        con.execute("INSERT INTO r_assistance VALUES (?, ?, '王某', ?, 1, '341122001001', 'H', "
                    "NULL, ?)", [f"c{k}", f"A{k}", f"A{k}", d])  # fmt: skip
    for k in range(4):
        con.execute(
            "INSERT INTO r_assistance VALUES (?, ?, ?, ?, 1, '341122001003', 'G', NULL, "
            "DATE '2020-03-03')",
            [f"g{k}", f"B{k}", "赵钱孙李"[k] + "某", f"B{k}"],
        )
    con.execute("INSERT INTO kin_relative VALUES ('H', 'A3', TRUE)")
    ef = frame(con, "handler")
    h, g = row(ef, "H"), row(ef, "G")
    # 2020-06-28 (2 days left), 2020-12-30 (1), 2021-06-23 (7): three of four within 8 days,
    # shrunk with 5 pseudo-cases at the uniform share 16/365
    assert h["deadline_share"] == pytest.approx((3 + 5 * 16 / 365) / 9, rel=1e-5)
    assert g["deadline_share"] == pytest.approx((5 * 16 / 365) / 9, rel=1e-5)
    # 王 is 4/8 of the township's cases and 4/4 of H's
    assert h["surname_lift"] == pytest.approx(2.0) and h["top_surname"] == "王"
    assert g["surname_lift"] == 1.0  # no surname with >= 3 cases: no lift
    assert h["kin_share"] == pytest.approx(1 / 9) and g["kin_share"] == 0
    assert h["own_village_share"] == 1.0 and g["own_village_share"] == 0


def test_official_relatives():
    con = empty()
    con.execute("INSERT INTO r_cadre VALUES ('K', '341122001001'), ('L', '341122001001')")
    con.execute("INSERT INTO kin_relative VALUES ('K', 'R1', TRUE), ('K', 'R2', TRUE), "
                "('L', 'R3', FALSE)")  # fmt: skip
    con.execute("INSERT INTO person VALUES ('R1', 'a', 'h', '341122001001', TRUE, NULL)")
    pay(con, "R1", "低保", [500] * 3, "341122001001")
    pay(con, "R2", "养老金", [183], "341122001001")
    pay(con, "R3", "低保", [500], "341122001001")
    con.execute("INSERT INTO r_assistance VALUES ('c', 'R1', 'a', 'R1', 1, '341122001001', 'H', "
                "'P', DATE '2020-01-01')")  # fmt: skip
    con.execute("INSERT INTO hit VALUES ('run1', 'x', 'R2', NULL)")
    ef = frame(con, "official")
    k, lo = row(ef, "K"), row(ef, "L")
    assert (k["kin_payees"], k["kin_paid"], k["kin_cases"], k["kin_hits"]) == (2, 1683, 1, 1)
    assert (lo["kin_payees"], lo["kin_paid"]) == (0, 0)  # not a close relative


def test_missing_inputs_skip_or_blind_with_the_reason():
    con = empty()
    con.execute("DROP TABLE r_payment")
    out = F.compute(con, "run1")
    assert out["recipient"].status == "skipped" and "r_payment" in out["recipient"].reason
    assert out["handler"].status == "skipped"  # tables exist but hold nothing
    assert "no entities" in out["handler"].reason


def test_every_feature_is_documented_and_renders():
    names = set()
    for f in F.FEATURES:
        assert f.doc and f.label and f.reason, f.name
        assert (f.entity, f.name) not in names
        names.add((f.entity, f.name))
        assert f.render(3.4, 1.0)
    assert len(F.FEATURES) >= 27
    assert {f.entity for f in F.FEATURES} == set(F.ENTITIES)
    ratio = F.feature("village", "per_capita_ratio").render(3.4, 1.0)
    assert ratio == "本村人均发放额为同乡镇村均值的 3.4 倍"
