# ruff: noqa: E501  (the HTML export is kept as the system writes it, one row a line)
"""A county whose systems export in older shapes (the `legacy` layout): an HTML table saved as
``.xls`` (GBK, title row, sign-off footer, name and ID in one cell), an old BIFF ``.xls``, and
a JSON API answer with nested objects and a list of members; dates as epoch milliseconds."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl

from crossmatch import normalize
from crossmatch.ingest import ingest
from crossmatch.spec.common import Problems
from crossmatch.spec.sources import parse_source_file

from .conftest import ID_A

ID_C = "11010519491231002X"

HTML = f"""<html xmlns:x="urn:schemas-microsoft-com:office:excel">
<head><meta http-equiv="Content-Type" content="text/html; charset=gbk"><title>发放明细</title></head>
<body><table border="1">
<tr><td colspan="5" align="center"><b>来安县补贴资金发放明细表（2025年第1季度）</b></td></tr>
<tr><th>序号</th><th>收款人(身份证号)</th><th>金额</th><th>所属期</th><th>备注</th></tr>
<tr><td>1</td><td style="mso-number-format:'\\@'">张三({ID_A})</td><td>183.00</td><td>2025-01</td><td>&nbsp;</td></tr>
<tr><td>2</td><td>李四</td><td>1,250.00</td><td>2025-02</td><td>A&amp;B<br>续</td></tr>
<tr><td>3</td><td>王五（{ID_C}）</td><td rowspan="2">90.00</td><td>2025-03</td><td></td></tr>
<tr><td>4</td><td>赵六({ID_A})</td><td>2025-03</td><td>x</td></tr>
<tr><td colspan="2">制表人：刘洋</td><td colspan="3">导出时间：2026-01-21</td></tr>
</table></body></html>
"""

PAYMENT = """\
source: payment
files: [finance/明细_*.xls]
fields:
  payee_name: {column: 收款人(身份证号), pattern: '^\\s*([^(（]*)', normalizer: name}
  payee_id: {column: 收款人(身份证号), pattern: '[(（]\\s*([^)）]*?)\\s*[)）]\\s*$', normalizer: id}
  amount: {column: 金额, normalizer: amount, required: true}
  period: {column: 所属期, normalizer: period}
  note: {column: 备注, optional: true}
  title: {from: title, pattern: '(\\d{4})年'}
persons:
  - {role: payee, name: payee_name, id: payee_id}
"""


def test_html_table_saved_as_xls_with_combined_name_and_id(tmp_path: Path) -> None:
    f = tmp_path / "raw/finance/明细_2025Q1.xls"
    f.parent.mkdir(parents=True)
    f.write_bytes(HTML.encode("gbk"))
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources/payment.yaml").write_text(PAYMENT, encoding="utf-8")
    s = ingest(tmp_path / "raw", tmp_path / "sources", tmp_path / "w.duckdb")
    res = s.results[0]
    assert res.status == "loaded", res.message
    # 4 data rows, the 制表人/导出时间 footer skipped (not quarantined as a row without amount)
    assert (res.rows_loaded, res.rows_quarantined, res.rows_summary) == (3, 1, 1)
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT _row, payee_name, payee_id, amount, period, note, title FROM src_payment "
            "ORDER BY _row"
        ).fetchall()
        reason = con.execute("SELECT row, reason FROM quarantine").fetchall()
    assert rows == [
        (3, "张三", ID_A, Decimal("183.00"), "2025-01", None, "2025"),
        (4, "李四", None, Decimal("1250.00"), "2025-02", "A&B 续", "2025"),
        (5, "王五", ID_C, Decimal("90.00"), "2025-03", None, "2025"),
    ]
    # the rowspan leaves row 6's 金额 empty and keeps its other cells under their headers
    assert reason[0][0] == 6 and "金额" in reason[0][1]


def test_old_biff_xls_is_read(tmp_path: Path) -> None:
    import xlwt

    book = xlwt.Workbook(encoding="utf-8")
    sh = book.add_sheet("Sheet1")
    for r, row in enumerate(
        [
            ["土地承包经营权信息登记表"],
            ["合同编号", "承包方代表姓名", "承包方代表身份证号"],
            ["HT001", "劉明(户主)", ID_A],
            ["HT002", "陈杰", ID_C],
        ]
    ):
        for c, v in enumerate(row):
            sh.write(r, c, v)
    f = tmp_path / "raw/agri/承包.xls"
    f.parent.mkdir(parents=True)
    book.save(str(f))
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources/land_contract.yaml").write_text(
        "source: land_contract\nfiles: [agri/承包*.xls]\nfields:\n"
        "  contract_no: {column: 合同编号, normalizer: code}\n"
        "  contractor_name: {column: 承包方代表姓名, pattern: '^([^(（]*)', normalizer: name}\n"
        "  contractor_id: {column: 承包方代表身份证号, normalizer: id}\n"
        "persons:\n  - {role: contractor, name: contractor_name, id: contractor_id}\n",
        encoding="utf-8",
    )
    s = ingest(tmp_path / "raw", tmp_path / "sources", tmp_path / "w.duckdb")
    assert s.results[0].status == "loaded", s.results[0].message
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT _row, contract_no, contractor_name, contractor_id FROM src_land_contract "
            "ORDER BY _row"
        ).fetchall()
    assert rows == [(3, "HT001", "刘明", ID_A), (4, "HT002", "陈杰", ID_C)]


API = {
    "code": 200,
    "msg": "操作成功",
    "data": [
        {
            "certNo": "001",
            "applicant": {"name": "张三", "idCard": ID_A},
            "monthlyAmount": 5460,
            "startDate": 1503590400000,
            "endDate": None,
            "familyMembers": [
                {"name": "张三", "idCard": ID_A, "relation": "本人"},
                {"name": "王五", "idCard": ID_C, "relation": "配偶"},
            ],
        },
        {
            "certNo": "002",
            "applicant": {"name": "李四", "idCard": None},
            "monthlyAmount": 600.5,
            "startDate": 1735660800000,
            "endDate": None,
            "familyMembers": [],
        },
    ],
}


def test_json_api_answer_one_row_per_member(tmp_path: Path) -> None:
    f = tmp_path / "raw/civil/救助对象.json"
    f.parent.mkdir(parents=True)
    f.write_text(json.dumps(API, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources/assistance.yaml").write_text(
        "source: assistance\nfiles: [civil/救助对象*.json]\nrecords: data\nfields:\n"
        "  case_no: {column: certNo, normalizer: code}\n"
        "  applicant_name: {column: applicant.name, normalizer: name}\n"
        "  applicant_id: {column: applicant.idCard, normalizer: id}\n"
        "  member_name: {column: familyMembers.name, normalizer: name}\n"
        "  member_id: {column: familyMembers.idCard, normalizer: id}\n"
        "  relation_to_applicant: familyMembers.relation\n"
        "  monthly_amount: {column: monthlyAmount, normalizer: amount}\n"
        "  start_date: {column: startDate, normalizer: date}\n"
        "  end_date: {column: endDate, normalizer: date}\n"
        "persons:\n  - {role: applicant, name: applicant_name, id: applicant_id}\n"
        "  - {role: member, name: member_name, id: member_id}\n",
        encoding="utf-8",
    )
    s = ingest(tmp_path / "raw", tmp_path / "sources", tmp_path / "w.duckdb")
    assert s.results[0].status == "loaded", s.results[0].message
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT _row, case_no, applicant_name, applicant_id, member_name, member_id, "
            "relation_to_applicant, monthly_amount, CAST(start_date AS VARCHAR), end_date "
            "FROM src_assistance ORDER BY _row"
        ).fetchall()
    import datetime as dt

    assert [r[:7] for r in rows] == [
        (1, "001", "张三", ID_A, "张三", ID_A, "本人"),
        (2, "001", "张三", ID_A, "王五", ID_C, "配偶"),
        (3, "002", "李四", None, None, None, None),  # no members: the case is kept
    ]
    assert [r[7] for r in rows] == [Decimal("5460.00"), Decimal("5460.00"), Decimal("600.50")]
    # epoch milliseconds are a date in China time (2017-08-24T16:00Z = 2017-08-25 UTC+8)
    assert [r[8] for r in rows] == ["2017-08-25", "2017-08-25", "2025-01-01"]
    assert all(r[9] is None for r in rows) and dt  # JSON null: empty, not an unreadable date


def test_epoch_milliseconds_date() -> None:
    got = normalize.date(pl.Series(["1503590400000", "150359040000", "2025-01-01"]), {})
    assert got.columns[""].to_list()[0].isoformat() == "2017-08-25"
    assert got.columns[""].to_list()[1] is None  # 12 digits: not a date
    assert got.error.to_list()[1] is not None


def test_column_pattern_is_accepted_and_checked() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "payment.yaml"
        p.write_text(
            "source: payment\nfiles: [a/*.csv]\nformat: html\nfields:\n"
            "  payee_name: {column: 收款人, pattern: '^([^(]*)', normalizer: name}\n"
            "  bad: {value: x, pattern: '(a)'}\n"
            "  amount: {column: 金额, normalizer: amount}\n",
            encoding="utf-8",
        )
        problems = Problems()
        spec = parse_source_file(p, problems)
        texts = [str(x) for x in problems]
    assert spec is None
    assert len(texts) == 1 and "`pattern:` goes with `column:` or `from:" in texts[0]


def test_a_name_with_a_note_is_warned_about(tmp_path: Path) -> None:
    """Without `pattern:`, 刘明(户主) loads as it is and would match nobody: said, and counted."""
    f = tmp_path / "raw/agri/承包.csv"
    f.parent.mkdir(parents=True)
    f.write_text(
        f"姓名,身份证号\n刘明(户主),{ID_A}\n陈杰,{ID_C}\n王五（代领）,\n", encoding="utf-8"
    )
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources/land_contract.yaml").write_text(
        "source: land_contract\nfiles: [agri/承包*.csv]\nfields:\n"
        "  contractor_name: {column: 姓名, normalizer: name}\n"
        "  contractor_id: {column: 身份证号, normalizer: id}\n"
        "persons:\n  - {role: contractor, name: contractor_name, id: contractor_id}\n",
        encoding="utf-8",
    )
    s = ingest(tmp_path / "raw", tmp_path / "sources", tmp_path / "w.duckdb")
    res = s.results[0]
    assert res.status == "loaded" and res.rows_loaded == 3
    notes = [w for w in res.warnings if "note in brackets" in w]
    assert len(notes) == 1 and "2 names" in notes[0] and "pattern:" in notes[0]
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        got = con.execute(
            "SELECT field, problem, cells FROM ingest_field_issue WHERE problem = 'name_note'"
        ).fetchall()
    assert got == [("contractor_name", "name_note", 2)]
