"""Fixture builders: tiny raw folders and source specs written by the tests themselves."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

PAYMENT_YAML = """\
source: payment
files: [finance/*.csv]
fields:
  batch_no: {column: 发放批次号, normalizer: code}
  payee_name: {column: [收款人姓名, 姓名], normalizer: name}
  payee_id: {column: [收款人身份证号, 身份证号, 公民身份号码], normalizer: id}
  amount: {column: 发放金额, normalizer: amount, required: true}
  period: {column: 所属期, normalizer: period}
  pay_date: {column: 发放日期, normalizer: date}
  status: {column: 发放状态, normalizer: enum, map: {成功: success, 失败: failed}}
persons:
  - role: payee
    name: payee_name
    id: payee_id
"""

ROSTER_YAML = """\
source: roster
files: [civil/*.xlsx]
fields:
  member_name: {column: 成员姓名, normalizer: name}
  member_id: {column: [成员身份证号, 证件号码], normalizer: id}
  monthly_amount: {column: 月保障金额, normalizer: amount}
  start_date: {column: 救助开始日期, normalizer: date}
  area_mu: {column: 面积, normalizer: area_mu, optional: true}
persons:
  - role: member
    name: member_name
    id: member_id
"""

PAY_HEADER = "发放批次号,收款人姓名,收款人身份证号,发放金额,所属期,发放日期,发放状态"
# valid IDs (checksums computed with crossmatch.idnumber)
ID_A = "341122199001011232"
ID_B15 = "341122900101123"
PAY_ROWS = [
    f'B1,张三,{ID_A},"1,200.00",2025-01,2025/1/5,成功',
    f"B1,張偉,{ID_B15},350元,2025年1月,20250105,成功",
    f'B1,张三,{ID_A},"1,200.00",2025-01,2025/1/5,成功',
    "B1,李四,11010519491231002x,0.8万元,202501,2025年1月5日,失败",
]


def write_csv(path: Path, lines: list[str], encoding: str = "utf-8", eol: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(eol.join(lines).encode(encoding) + eol.encode())
    return path


def write_xlsx(path: Path, rows: list[list[object]]) -> Path:
    """Rows of cells: str -> text cell, int/float -> number, date -> real date cell."""
    import xlsxwriter

    path.parent.mkdir(parents=True, exist_ok=True)
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet()
    fmt = wb.add_format({"num_format": "yyyy-mm-dd"})
    for r, row in enumerate(rows):
        for c, v in enumerate(row):
            if v is None:
                continue
            if isinstance(v, dt.date):
                ws.write_datetime(r, c, dt.datetime(v.year, v.month, v.day), fmt)
            elif isinstance(v, str):
                ws.write_string(r, c, v)
            else:
                ws.write_number(r, c, v)
    wb.close()
    return path


@pytest.fixture
def county(tmp_path: Path) -> Path:
    """A raw folder + sources folder with one payment CSV; returns tmp_path."""
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "payment.yaml").write_text(PAYMENT_YAML, encoding="utf-8")
    write_csv(tmp_path / "raw" / "finance" / "q1.csv", [PAY_HEADER, *PAY_ROWS])
    return tmp_path
