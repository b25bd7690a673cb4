"""`header_rows: 2`: a group header (merged cells) above sub-headers, in CSV and xlsx exports
(the township and platform layouts, issue 17)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import xlsxwriter

from crossmatch.ingest import ingest
from crossmatch.ingest.readers import norm_header, two_row_header
from crossmatch.spec.common import Problems
from crossmatch.spec.sources import parse_source_file

from .conftest import ID_A, write_csv

ID_C = "11010519491231002X"

MAPPING = """\
source: payment
files: [finance/*.{ext}]
header_rows: 2
fields:
  payee_name: {{column: 收款人/姓名, normalizer: name}}
  payee_id: {{column: [收款人/公民身份号码, 公民身份号码], normalizer: id}}
  account: {{column: 账号, normalizer: code}}
  amount: {{column: 发放信息/金额(元), normalizer: amount, required: true}}
  pay_date: {{column: 发放信息/发放日期, normalizer: date}}
  year: {{from: title, pattern: '(\\d{{4}})年'}}
persons:
  - {{role: payee, name: payee_name, id: payee_id}}
"""


def _run(tmp: Path, ext: str) -> list[tuple]:
    (tmp / "sources").mkdir()
    (tmp / "sources/payment.yaml").write_text(MAPPING.format(ext=ext), encoding="utf-8")
    s = ingest(tmp / "raw", tmp / "sources", tmp / "w.duckdb")
    assert [r.status for r in s.results] == ["loaded"], [r.message for r in s.results]
    with duckdb.connect(str(tmp / "w.duckdb"), read_only=True) as con:
        return con.execute(
            "SELECT _row, payee_name, payee_id, account, amount, pay_date, year "
            "FROM src_payment ORDER BY _row"
        ).fetchall()


def test_two_row_header_names_columns_group_slash_sub() -> None:
    upper = ["序号", "收款人", None, None, "发放信息", "", "备注"]
    lower = [None, "姓名", "公民身份号码", "账号", "金额(元)", "发放日期", ""]
    assert two_row_header(upper, lower) == [
        "序号", "收款人/姓名", "收款人/公民身份号码", "收款人/账号",
        "发放信息/金额(元)", "发放信息/发放日期", "备注",
    ]  # fmt: skip
    # a sub-header the mapping names alone (and not as group/sub) keeps its short name
    assert two_row_header(upper, lower, {norm_header("账号")})[3] == "账号"
    # a column merged over both rows ends the group on its left
    assert two_row_header(["收款人", "", "状态", ""], ["姓名", "账号", "", "备注"]) == [
        "收款人/姓名", "收款人/账号", "状态", "备注",
    ]  # fmt: skip


def test_csv_with_a_title_block_and_a_two_row_header(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "raw/finance/pay.csv",
        [
            "来安县2025年惠民资金发放表,,,,,,",
            "填报单位：城关镇财政所,,,,单位：元,,",
            "序号,收款人,,,发放信息,,备注",
            ",姓名,公民身份号码,账号,金额(元),发放日期,",
            f'1,张 三,{ID_A},6217001,"1,200.00",45663,',
            f"2,李四,{ID_C},6217002,350,2025-01-06,",
            ',合计,,,"1,550.00",,',
        ],
        encoding="gb18030",
    )
    rows = _run(tmp_path, "csv")
    assert [(r[0], r[1], r[2], r[3], str(r[4]), str(r[5]), r[6]) for r in rows] == [
        (5, "张三", ID_A, "6217001", "1200.00", "2025-01-06", "2025"),
        (6, "李四", ID_C, "6217002", "350.00", "2025-01-06", "2025"),
    ]


def test_xlsx_with_merged_group_headers(tmp_path: Path) -> None:
    path = tmp_path / "raw/finance/pay.xlsx"
    path.parent.mkdir(parents=True)
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet("导出数据")
    ws.merge_range(0, 0, 0, 5, "安徽省惠民惠农财政补贴资金发放明细（2025年）")
    ws.merge_range(1, 0, 2, 0, "序号")  # merged over both header rows
    ws.merge_range(1, 1, 1, 3, "收款人")
    ws.merge_range(1, 4, 1, 5, "发放信息")
    for c, h in enumerate(["姓名", "公民身份号码", "账号", "金额(元)", "发放日期"], 1):
        ws.write_string(2, c, h)
    ws.write_row(3, 0, [1, "王五", ID_A, "6217003", 820.5, "２０２５年３月５日"])
    wb.close()
    rows = _run(tmp_path, "xlsx")
    assert [(r[0], r[1], r[2], r[3], str(r[4]), str(r[5]), r[6]) for r in rows] == [
        (4, "王五", ID_A, "6217003", "820.50", "2025-03-05", "2025")
    ]


def test_header_rows_must_be_one_or_two(tmp_path: Path) -> None:
    p = tmp_path / "payment.yaml"
    p.write_text(MAPPING.format(ext="csv").replace("header_rows: 2", "header_rows: 3"), "utf-8")
    problems = Problems()
    parse_source_file(p, problems)
    assert any("header_rows must be 1 or 2" in str(x) for x in problems.items), problems.items
