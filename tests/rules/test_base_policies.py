"""Building blocks (detect/base.sql): stated policies for absent columns, item classes as data,
reference CSVs that are data and never SQL, and the generator's banded standards."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import duckdb

from crossmatch.detect import run_rules
from crossmatch.detect.reference import create_text_table
from crossmatch.detect.rule_runner import prepare

from .conftest import RULES_DIR, build_warehouse

ID = "341122194501010011"


def _case_with_payroll(
    item: str | list[str], status: str | None = "success"
) -> duckdb.DuckDBPyConnection:
    """A case whose member S is on the payroll, paid ``item`` in 2025-03 (a list of items: one
    per month from 2025-03 on)."""
    items = [item] if isinstance(item, str) else item
    return build_warehouse(
        {
            "r_assistance": [
                {"case_no": "C1", "applicant_pid": ID, "member_pid": ID, "village_code": "1"},
                {"case_no": "C1", "applicant_pid": ID, "member_pid": "S", "village_code": "1"},
            ],
            "r_payment": [
                {
                    "payee_pid": ID,
                    "item": it,
                    "amount": 600,
                    "period": f"2025-{3 + i:02d}",
                    "status": status,
                }
                for i, it in enumerate(items)
            ],
            "r_payroll": [{"person_pid": "S", "post_type": "行政", "start_date": "2020-01-01"}],
            # the registry is loaded (the rule reads the applicant's registry household too)
            "r_hukou": [{"household_no": "H9", "person_pid": "X", "status": "正常"}],
        }
    )


VOCABULARY = ["农村低保金", "城市最低生活保障金", "特困人员供养金", "城乡低保金"]


def test_every_assistance_vocabulary_makes_a_paid_month():
    """One month paid under each name of assistance (one detect run): each month is a hit."""
    con = _case_with_payroll(VOCABULARY)
    res = run_rules(con, RULES_DIR, only=["payroll_on_dibao"])
    assert res.outcomes[0].hits == len(VOCABULARY)
    months = con.execute(
        "SELECT period FROM hit WHERE rule_id = 'payroll_on_dibao' ORDER BY period"
    ).fetchall()
    paid = {f"2025-{3 + i:02d}": it for i, it in enumerate(VOCABULARY)}
    assert {m for (m,) in months} == set(paid), {
        paid[m] for m in set(paid) - {m for (m,) in months}
    }


def test_payment_without_status_is_made_failed_is_not():
    assert run_rules(_case_with_payroll("城乡低保金", None), RULES_DIR,
                     only=["payroll_on_dibao"]).outcomes[0].hits == 1  # fmt: skip
    assert run_rules(_case_with_payroll("城乡低保金", "failed"), RULES_DIR,
                     only=["payroll_on_dibao"]).outcomes[0].hits == 0  # fmt: skip


def test_unknown_item_is_reported_not_silently_dropped(caplog):
    con = _case_with_payroll("敬老院供养补助")
    con.execute(
        "INSERT INTO r_payment (payee_pid, payee_name, item, amount, period, status, _file, _row)"
        " VALUES (?, '张三', NULL, 10, '2025-03', 'success', 'finance/q.csv', 9)",
        [ID],
    )
    with caplog.at_level(logging.WARNING, logger="crossmatch"):
        res = run_rules(con, RULES_DIR, only=["payroll_on_dibao"])
    assert res.outcomes[0].hits == 0  # not assistance: no paid month
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "item (补贴项目) '敬老院供养补助'" in text
    assert "Fix: add a line `敬老院供养补助,<class>,` to rules/reference/item_class.csv" in text
    assert "payment/fixture.csv:2" in text  # where: file and row
    assert "1 row(s) (first finance/q.csv:9) have no item" in text
    assert ID not in text and "张三" not in text  # never an ID number or a name


def test_item_listed_twice_with_two_classes_is_reported(tmp_path: Path, caplog):
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    with (rules / "reference" / "item_class.csv").open("a", encoding="utf-8") as fh:
        fh.write("高龄津贴,dibao,a mistake\n")
    con = build_warehouse({})
    with caplog.at_level(logging.WARNING, logger="crossmatch"):
        prepare(con, rules)
    assert "item '高龄津贴' is listed with 2 different classes" in caplog.text
    assert (
        con.execute("SELECT count(*) FROM item_class_map WHERE item = '高龄津贴'").fetchone()[0]
        == 1
    )


def test_case_persons_from_roster_when_size_absent():
    con = build_warehouse(
        {
            "r_assistance": [
                {"case_no": "C1", "applicant_pid": "A", "member_pid": "A",
                 "assistance_type": "农村低保"},
                {"case_no": "C1", "applicant_pid": "A", "member_pid": "B"},
                {"case_no": "C1", "applicant_pid": "A", "member_pid": "C"},
                {"case_no": "C2", "applicant_pid": "D", "member_pid": "E", "household_size": 4},
            ]
        }
    )  # fmt: skip
    prepare(con, RULES_DIR)
    got = con.execute("SELECT case_no, persons, case_class FROM dibao_case ORDER BY 1").fetchall()
    # C2: the declared 保障人数 wins; C1: the three people listed (applicant among them)
    assert got == [("C1", 3, "dibao_rural"), ("C2", 4, None)]


def test_paid_month_window_is_the_part_inside_the_case():
    con = build_warehouse(
        {
            "r_assistance": [
                {"case_no": "C1", "applicant_pid": "A", "member_pid": "A",
                 "start_date": "2025-03-10", "end_date": "2025-05-20"}
            ],
            "r_payment": [
                {"payee_pid": "A", "item": "城乡低保金", "amount": 1, "period": p}
                for p in ("2025-03", "2025-04", "2025-05", "2025-08")
            ],
        }
    )  # fmt: skip
    prepare(con, RULES_DIR)
    got = con.execute(
        "SELECT period, strftime(win_start, '%m-%d'), strftime(win_end, '%m-%d') "
        "FROM dibao_paid_month ORDER BY period"
    ).fetchall()
    assert got == [
        ("2025-03", "03-10", "03-31"),
        ("2025-04", "04-01", "04-30"),
        ("2025-05", "05-01", "05-20"),
        ("2025-08", "08-01", "08-31"),  # paid after the case ended: the whole month
    ]


def test_crafted_reference_header_is_a_column_name_not_sql(tmp_path: Path):
    con = duckdb.connect()
    con.execute("CREATE TABLE hit (x INTEGER)")
    f = tmp_path / "evil.csv"
    evil = 'pattern" VARCHAR); DROP TABLE hit; CREATE TEMP TABLE "x'
    f.write_text(f'"{evil.replace(chr(34), chr(34) * 2)}",note\nA,b\n', encoding="utf-8")
    create_text_table(con, 'ref_"evil', f)
    assert con.execute("SELECT count(*) FROM hit").fetchone() == (0,)  # still there
    cols = [r[0] for r in con.execute('DESCRIBE "ref_""evil"').fetchall()]
    assert cols == [evil, "note"]
    assert con.execute('SELECT * FROM "ref_""evil"').fetchall() == [("A", "b")]


def test_generator_standards_are_banded_and_not_proportional():
    from crossmatch.synth.county import COUNTY, STANDARDS, TOP_BAND, banded, standard

    t2 = COUNTY + "002001"
    assert banded("城乡低保金", t2) and not banded("城乡低保金", COUNTY + "003001")
    bands = [standard("城乡低保金", t2, 3, n) for n in range(1, 9)]
    assert bands[TOP_BAND - 1 :] == [bands[TOP_BAND - 1]] * 3  # 6, 7, 8 persons: the open band
    per_person = [standard("城乡低保金", COUNTY + "003001", 3, n) for n in (1, 2, 3)]
    assert per_person == [560.0, 1120.0, 1680.0]
    assert bands[0] > per_person[0] and bands[2] < per_person[2]  # not proportional
    assert standard("城乡低保金", t2, 7, 2) > standard("城乡低保金", t2, 6, 2)  # July raise
    assert any(s[6] is not None for s in STANDARDS)


def test_payment_export_without_status_column_loads_and_counts_as_paid(tmp_path: Path):
    """The mapping in sources/payment.yaml: a quarter exported without 发放状态 loads (status
    NULL), and base.sql counts those rows as made payments (never "no payment")."""
    from crossmatch.ingest import ingest

    repo = RULES_DIR.parent
    src = tmp_path / "sources"
    src.mkdir()
    shutil.copy(repo / "sources" / "payment.yaml", src / "payment.yaml")
    raw = tmp_path / "raw" / "finance"
    raw.mkdir(parents=True)
    (raw / "一卡通发放明细_2025Q3.csv").write_text(
        "补贴项目,收款人姓名,收款人身份证号,社保卡/银行账号,发放金额,所属期\n"
        f"农村低保金,张三,{ID},6217001,600.00,2025-07\n",
        encoding="utf-8",
    )
    (raw / "一卡通发放明细_2025Q4.csv").write_text(
        "补贴项目,收款人姓名,收款人身份证号,社保卡/银行账号,发放金额,所属期,发放状态\n"
        f"农村低保金,张三,{ID},6217001,600.00,2025-10,失败\n",
        encoding="utf-8",
    )
    wh = tmp_path / "w.duckdb"
    summary = ingest(tmp_path / "raw", src, wh)
    assert all(r.rows_loaded == 1 for r in summary.results), summary.results
    con = duckdb.connect(str(wh))
    con.execute("CREATE TEMP VIEW r_payment AS SELECT *, payee_id AS payee_pid FROM src_payment")
    prepare(con, RULES_DIR)
    got = con.execute("SELECT period, status, item_class FROM paid").fetchall()
    assert got == [("2025-07", None, "dibao_rural")]  # the failed October transfer is not paid
