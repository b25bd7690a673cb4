"""Stream *files*: file-level ingestion of real export shapes (issue 17) and ingest safety
(issue 10): UTF-16, delimiters, workbook sheets, values not from a column, `where:`, summary
rows, paths outside the raw folder, copies, shrinking files, runs."""

from __future__ import annotations

import codecs
import dataclasses
import os
import stat
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import xlsxwriter
from click.testing import CliRunner

from crossmatch.cli import main
from crossmatch.errors import InputFileError, SpecError
from crossmatch.ingest import ingest
from crossmatch.spec import validate_all
from crossmatch.spec.common import Problems
from crossmatch.spec.sources import parse_source_file

from .conftest import ID_A, PAY_HEADER, PAY_ROWS, write_csv

ID_C = "11010519491231002X"


def sources(root: Path, **yamls: str) -> Path:
    d = root / "sources"
    d.mkdir(exist_ok=True)
    for name, text in yamls.items():
        (d / f"{name}.yaml").write_text(text, encoding="utf-8")
    return d


def run(root: Path, **kw):
    return ingest(root / "raw", root / "sources", root / "w.duckdb", **kw)


def q(root: Path, sql: str, params=None):
    with duckdb.connect(str(root / "w.duckdb"), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def by_file(summary):
    return {r.file: r for r in summary.results}


PAY_TAB = """\
source: payment
files: [finance/*.csv]
encoding: {enc}
delimiter: {delim}
fields:
  payee_name: {{column: 收款人姓名, normalizer: name}}
  payee_id: {{column: 收款人身份证号, normalizer: id}}
  amount: {{column: 发放金额, normalizer: amount, required: true}}
persons:
  - {{role: payee, name: payee_name, id: payee_id}}
"""
TAB_LINES = [
    "收款人姓名\t收款人身份证号\t发放金额",
    f"张三\t{ID_A}\t1,200.00",
    f"李四\t{ID_C}\t350元",
]


# ----------------------------------------------------------------------------- UTF-16


@pytest.mark.parametrize(
    ("codec", "bom", "enc", "delim"),
    [
        ("utf-16-le", codecs.BOM_UTF16_LE, "auto", "auto"),
        ("utf-16-be", codecs.BOM_UTF16_BE, "auto", "auto"),
        ("utf-16-le", b"", "auto", "auto"),  # no BOM: the zero high bytes tell
        ("utf-16-be", b"", "utf-16-be", "auto"),
        ("utf-16-le", codecs.BOM_UTF16_LE, "utf-16", "tab"),
        ("utf-16-le", codecs.BOM_UTF16_LE, "auto", "','"),  # declared comma: header says tab
    ],
)
def test_utf16_tab_separated_exports(tmp_path, codec, bom, enc, delim):
    sources(tmp_path, payment=PAY_TAB.format(enc=enc, delim=delim))
    path = tmp_path / "raw/finance/q1.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(bom + "\r\n".join(TAB_LINES).encode(codec) + "\r\n".encode(codec))
    (r,) = run(tmp_path).results
    assert r.status == "loaded", r.message
    assert (r.rows_read, r.rows_loaded, r.encoding) == (2, 2, codec)
    if delim == "','":
        assert "read as tab-separated" in r.message
    assert q(tmp_path, "SELECT _row, payee_name, payee_id, amount FROM src_payment ORDER BY 1") == [
        (2, "张三", ID_A, Decimal("1200.00")),
        (3, "李四", ID_C, Decimal("350.00")),
    ]


def test_utf8_tab_file_with_delimiter_auto_and_declared_encoding_mismatch(tmp_path):
    sources(tmp_path, payment=PAY_TAB.format(enc="auto", delim="auto"))
    write_csv(tmp_path / "raw/finance/q1.csv", TAB_LINES)
    (r,) = run(tmp_path).results
    assert (r.status, r.rows_loaded) == ("loaded", 2), r.message
    # UTF-16 bytes declared GB18030: refused, saying what the file is
    sources(tmp_path, payment=PAY_TAB.format(enc="gb18030", delim="auto"))
    path = tmp_path / "raw/finance/q1.csv"
    path.write_bytes(codecs.BOM_UTF16_LE + "\n".join(TAB_LINES).encode("utf-16-le"))
    (r,) = run(tmp_path).results
    assert r.status == "failed"
    assert "declared gb18030 but the file is UTF-16-LE" in r.message


@pytest.mark.parametrize("sep", [";", "|", ","])
def test_delimiter_auto_finds_the_header_split(tmp_path, sep):
    sources(tmp_path, payment=PAY_TAB.format(enc="auto", delim="auto"))
    lines = [ln.replace("\t", sep) for ln in TAB_LINES]
    lines[1] = lines[1].replace("1,200.00", '"1,200.00"') if sep == "," else lines[1]
    write_csv(tmp_path / "raw/finance/q1.csv", ["导出时间 2025-01-05", *lines])
    (r,) = run(tmp_path).results
    assert (r.status, r.rows_loaded, r.rows_quarantined) == ("loaded", 2, 0), r.message
    assert q(tmp_path, "SELECT sum(amount) FROM src_payment") == [(Decimal("1550.00"),)]


def test_truncated_utf16_file_fails_with_the_line(tmp_path):
    sources(tmp_path, payment=PAY_TAB.format(enc="auto", delim="auto"))
    path = tmp_path / "raw/finance/q1.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(codecs.BOM_UTF16_LE + "\n".join(TAB_LINES).encode("utf-16-le") + b"\x41")
    (r,) = run(tmp_path).results
    assert r.status == "failed"
    assert "after line 3: bytes that are not valid utf-16-le" in r.message
    assert ID_A not in r.message


def test_a_small_mixed_encoding_file_is_named_at_the_first_bad_line(county):
    rows = [r.encode("utf-8") for r in [PAY_HEADER, PAY_ROWS[0], PAY_ROWS[1], PAY_ROWS[3]]]
    bad = "B1,李四,,100,2025-01,2025/1/5,成功".encode("gb18030")
    (county / "raw/finance/q1.csv").write_bytes(b"\n".join([*rows, bad, rows[1]]) + b"\n")
    (r,) = run(county).results
    assert r.status == "failed"
    assert r.message.endswith(
        "q1.csv: mixed encodings: the file starts as UTF-8 but line 5 is not UTF-8 (invalid "
        "start byte). Fix: re-export the whole file in one encoding (UTF-8 or GB18030)."
    )


# ----------------------------------------------------------------------------- sheets


def write_book(path: Path, sheets: dict[str, list[list[object]]], hidden=()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = xlsxwriter.Workbook(str(path))
    for name, rows in sheets.items():
        ws = wb.add_worksheet(name)
        if name in hidden:
            ws.hide()
        for r, row in enumerate(rows):
            for c, v in enumerate(row):
                if v is not None:
                    ws.write(r, c, v)
    wb.close()
    return path


ROSTER = """\
source: roster
files: [civil/*.xlsx]
sheets: {sheets}
fields:
  item: {{from: sheet}}
  year: {{from: title, pattern: '(\\d{{4}})年'}}
  member_name: {{column: 姓名, normalizer: name}}
  member_id: {{column: 身份证号, normalizer: id}}
  monthly_amount: {{column: 月保障金额, normalizer: amount}}
persons:
  - {{role: member, name: member_name, id: member_id}}
"""


def test_every_sheet_of_a_workbook_is_one_file_with_sheet_lineage(tmp_path):
    sources(tmp_path, roster=ROSTER.format(sheets="all"))
    write_book(
        tmp_path / "raw/civil/花名册.xlsx",
        {
            "农村低保": [
                ["2025年农村低保花名册"],
                ["姓名", "身份证号", "月保障金额"],
                ["张三", ID_A, "300"],
                ["李四", ID_C, "300"],
            ],
            # other title rows, other column order; the same person and amount as 农村低保
            "城市低保": [
                [],  # a leading empty row: physical rows still count from 1
                ["2024年城市低保"],
                ["制表单位：民政局"],
                ["月保障金额", "姓名", "身份证号"],
                ["300", "张三", ID_A],
                ["300", "张三", ID_A],  # an exact duplicate within the sheet
            ],
            "说明": [["本表由系统导出"]],  # no mapped header: skipped, said so
        },
    )
    (r,) = run(tmp_path).results
    assert r.status == "loaded", r.message
    assert (r.rows_read, r.rows_loaded, r.rows_duplicate) == (4, 4, 1)
    assert r.message.startswith("sheets read: 农村低保, 城市低保; sheet '说明' has no row naming")
    assert q(
        tmp_path,
        "SELECT _file, _row, _dup_of, item, year, member_name, monthly_amount "
        "FROM src_roster ORDER BY _file, _row",
    ) == [
        ("civil/花名册.xlsx#农村低保", 3, None, "农村低保", "2025", "张三", Decimal("300.00")),
        ("civil/花名册.xlsx#农村低保", 4, None, "农村低保", "2025", "李四", Decimal("300.00")),
        ("civil/花名册.xlsx#城市低保", 5, None, "城市低保", "2024", "张三", Decimal("300.00")),
        ("civil/花名册.xlsx#城市低保", 6, 5, "城市低保", "2024", "张三", Decimal("300.00")),
    ]
    assert q(tmp_path, "SELECT file, status FROM ingest_file") == [("civil/花名册.xlsx", "ok")]
    # a listed sheet without a mapped column fails the whole workbook, naming the sheet
    sources(tmp_path, roster=ROSTER.format(sheets="[农村低保, 1]"))
    write_book(
        tmp_path / "raw/civil/花名册.xlsx",
        {
            "农村低保": [["姓名", "身份证号", "月保障金额"], ["张三", ID_A, "300"]],
            "城市低保": [["2024年"], ["姓名", "月保障金额"], ["张三", "300"]],
        },
    )
    (r,) = run(tmp_path).results
    assert r.status == "failed"
    assert r.message.startswith(
        "civil/花名册.xlsx#城市低保: column '身份证号' (field member_id) not found in the "
        "header row 2"
    )
    problems = validate_all({"sources": tmp_path / "sources", "raw": tmp_path / "raw"})
    got = sorted((p.line, p.message.split(". Fix")[0]) for p in problems)
    assert got == [
        (
            6,
            "civil/花名册.xlsx#农村低保: field 'year': the title rows above the header holds "
            "no text",
        ),
        (
            8,
            "field 'member_id': column '身份证号' not found in civil/花名册.xlsx#城市低保 "
            "(header row 2)",
        ),
    ]
    assert q(tmp_path, "SELECT count(*) FROM src_roster") == [(4,)]  # the last version stays


def test_one_sheet_named_in_sheet_gives_its_name_and_plain_lineage(tmp_path):
    text = ROSTER.format(sheets="x").replace("sheets: x\n", "sheet: 特困\n")
    sources(tmp_path, roster=text)
    write_book(
        tmp_path / "raw/civil/a.xlsx",
        {
            "农村低保": [["姓名", "身份证号", "月保障金额"], ["李四", ID_C, "1"]],
            "特困": [[], [], ["2023年"], ["姓名", "身份证号", "月保障金额"], ["张三", ID_A, "9"]],
        },
    )
    (r,) = run(tmp_path).results
    assert r.status == "loaded", r.message
    assert q(tmp_path, "SELECT _file, _row, item, year, member_name FROM src_roster") == [
        ("civil/a.xlsx", 5, "特困", "2023", "张三")
    ]


def test_where_over_sheets_sees_the_sheet_lineage(tmp_path):
    text = ROSTER.format(sheets="all").replace(
        "fields:", "where: \"ends_with(_file, '#特困') OR item = '城市'\"\nfields:"
    )
    sources(tmp_path, roster=text.replace("  year: {from: title, pattern: '(\\d{4})年'}\n", ""))
    rows = [["姓名", "身份证号", "月保障金额"], ["张三", ID_A, "1"], ["张三", ID_A, "1"]]
    write_book(tmp_path / "raw/civil/a.xlsx", {"农村": rows, "城市": rows, "特困": rows})
    (r,) = run(tmp_path).results
    assert (r.status, r.rows_read, r.rows_loaded, r.rows_filtered, r.rows_duplicate) == (
        "loaded",
        6,
        4,
        2,
        2,
    ), r.message
    assert q(tmp_path, "SELECT _file, _row, _dup_of FROM src_roster ORDER BY 1, 2") == [
        ("civil/a.xlsx#城市", 2, None),
        ("civil/a.xlsx#城市", 3, 2),
        ("civil/a.xlsx#特困", 2, None),
        ("civil/a.xlsx#特困", 3, 2),
    ]


def test_sheet_list_with_an_unknown_sheet_and_from_sheet_on_a_csv(tmp_path):
    sources(tmp_path, roster=ROSTER.format(sheets="[农村低保, 特困]"))
    write_book(tmp_path / "raw/civil/a.xlsx", {"农村低保": [["姓名", "身份证号", "月保障金额"]]})
    (r,) = run(tmp_path).results
    assert r.status == "failed"
    assert "no sheet '特困' in the workbook (its sheets: 农村低保)" in r.message
    (tmp_path / "raw/civil/a.xlsx").unlink()
    text = ROSTER.format(sheets="all").replace("civil/*.xlsx", "civil/*.csv")
    sources(tmp_path, roster=text.replace("sheets: all\n", ""))
    write_csv(tmp_path / "raw/civil/a.csv", ["2025年", "姓名,身份证号,月保障金额", "张三,,1"])
    (r,) = run(tmp_path).results
    assert r.status == "failed"
    assert "field 'item' takes `from: sheet`, but the file has no sheets" in r.message


# ------------------------------------------------------------------ value / default / from


PAY_VALUES = """\
source: payment
files: [finance/*.csv]
fields:
  payee_name: {column: 收款人姓名, normalizer: name}
  payee_id: {column: 收款人身份证号, normalizer: id}
  amount: {column: 发放金额, normalizer: amount, required: true}
  status: {column: 发放状态, normalizer: enum, map: {成功: success, 失败: failed}, default: 成功}
  item: {value: 城乡低保金}
  period: {from: path, pattern: '_(\\d{6})\\.csv$', normalizer: period}
  title: {from: title}
persons:
  - {role: payee, name: payee_name, id: payee_id}
"""


def test_constant_default_path_and_title_values(tmp_path):
    sources(tmp_path, payment=PAY_VALUES)
    write_csv(
        tmp_path / "raw/finance/发放_202501.csv",
        [
            "一卡通发放明细,,,",
            "收款人姓名,收款人身份证号,发放金额,发放状态",
            f"张三,{ID_A},100,",  # empty status cell: the default
            f"李四,{ID_C},100,失败",
        ],
    )
    write_csv(  # no status column at all in this half-year's export
        tmp_path / "raw/finance/发放_202507.csv",
        ["收款人姓名,收款人身份证号,发放金额", f"张三,{ID_A},100"],
    )
    res = by_file(run(tmp_path))
    assert all(r.status == "loaded" for r in res.values()), [r.message for r in res.values()]
    assert q(
        tmp_path,
        "SELECT _file, _row, status, item, period, title FROM src_payment ORDER BY _file, _row",
    ) == [
        ("finance/发放_202501.csv", 3, "success", "城乡低保金", "2025-01", "一卡通发放明细"),
        ("finance/发放_202501.csv", 4, "failed", "城乡低保金", "2025-01", "一卡通发放明细"),
        ("finance/发放_202507.csv", 2, "success", "城乡低保金", "2025-07", None),
    ]


def test_path_pattern_that_does_not_match_fails_the_file_naming_it(tmp_path):
    sources(tmp_path, payment=PAY_VALUES.replace("  title: {from: title}\n", ""))
    write_csv(tmp_path / "raw/finance/发放2025.csv", [PAY_HEADER, PAY_ROWS[0]])
    (r,) = run(tmp_path).results
    assert r.status == "failed"
    assert r.message.startswith(
        "finance/发放2025.csv: field 'period': the file path under the raw folder "
        "('finance/发放2025.csv') does not match the pattern '_(\\d{6})\\.csv$'. Fix: correct "
        "`pattern:` of field 'period'"
    )
    # validate --raw says the same at the field's line
    problems = [
        str(p) for p in validate_all({"sources": tmp_path / "sources", "raw": tmp_path / "raw"})
    ]
    assert any(":9: finance/发放2025.csv: field 'period'" in p for p in problems), problems


@pytest.mark.parametrize(
    ("field", "want"),
    [
        ("x: {value: 1, column: 发放金额}", "give one of `column:`, `value:` or `from:`"),
        ("x: {from: file}", "unknown `from: file`"),
        ("x: {from: path}", "`from: path` needs a `pattern:`"),
        ("x: {from: path, pattern: '(a)(b)'}", "has 2 groups"),
        ("x: {from: sheet, pattern: '(a'}", "is not a valid regex"),
        ("x: {value: a, default: b}", "`default:` goes with `column:` only"),
        ("x: {value: a, pattern: a}", "`pattern:` goes with `column:` or `from: path|sheet|title`"),
        (
            "x: {column: 状态, default: 完成, normalizer: enum, map: {成功: ok}, other: error}",
            "default '完成' does not pass normalizer 'enum'",
        ),
        ("x: {value: abc, normalizer: amount}", "value 'abc' does not pass normalizer 'amount'"),
    ],
)
def test_field_origin_problems_are_reported_at_their_line(tmp_path, field, want):
    text = PAY_TAB.format(enc="auto", delim="auto").replace("persons:", f"  {field}\npersons:")
    sources(tmp_path, payment=text)
    problems = [str(p) for p in validate_all({"sources": tmp_path / "sources"})]
    assert len(problems) == 1 and want in problems[0] and "payment.yaml:9:" in problems[0]


# ----------------------------------------------------------------------------- where


LONG = """\
source: {sid}
files: [market/*.csv]
where: "{where}"
fields:
  credit_code: {{column: 统一社会信用代码, normalizer: code}}
  {role}_name: {{column: 姓名, normalizer: name}}
  {role}_id: {{column: 证件号码, normalizer: id}}
  role: {{column: 角色}}
  subscribed: {{column: 认缴出资额, normalizer: amount, unit: wan}}
persons:
  - {{role: {role}, name: {role}_name, id: {role}_id}}
"""


def test_two_sources_read_one_long_table_with_where(tmp_path):
    sources(
        tmp_path,
        enterprise=LONG.format(sid="enterprise", where="role = '法定代表人'", role="legal_rep"),
        shareholder=LONG.format(
            sid="shareholder",
            where="role IN ('股东', '法定代表人') AND subscribed > 0",
            role="holder",
        ),
    )
    write_csv(
        tmp_path / "raw/market/企业人员.csv",
        [
            "统一社会信用代码,姓名,证件号码,角色,认缴出资额",
            f"91341122A,张三,{ID_A},法定代表人,50",
            f"91341122A,李四,{ID_C},股东,100",
            "91341122A,王五,,监事,",
            "91341122B,赵六,,股东,abc",  # bad amount: NULL (not required), then filtered
        ],
    )
    res = {r.source: r for r in run(tmp_path).results}
    ent, sh = res["enterprise"], res["shareholder"]
    assert (ent.rows_read, ent.rows_loaded, ent.rows_quarantined, ent.rows_filtered) == (4, 1, 0, 3)
    assert (sh.rows_read, sh.rows_loaded, sh.rows_quarantined, sh.rows_filtered) == (4, 2, 0, 2)
    assert q(tmp_path, "SELECT legal_rep_name FROM src_enterprise") == [("张三",)]
    assert q(tmp_path, "SELECT holder_name, subscribed FROM src_shareholder ORDER BY _row") == [
        ("张三", Decimal("500000.00")),
        ("李四", Decimal("1000000.00")),
    ]
    assert q(
        tmp_path,
        "SELECT source, rows_read, rows_loaded + rows_quarantined + rows_filtered + rows_summary "
        "FROM ingest_file ORDER BY source",
    ) == [("enterprise", 4, 4), ("shareholder", 4, 4)]


def test_a_where_failing_at_ingest_fails_the_file_without_quoting_values(tmp_path):
    sources(
        tmp_path,
        enterprise=LONG.format(
            sid="enterprise", where="CAST(legal_rep_name AS INTEGER) > 0", role="legal_rep"
        ),
    )
    write_csv(
        tmp_path / "raw/market/a.csv",
        ["统一社会信用代码,姓名,证件号码,角色,认缴出资额", f"9134A,张三,{ID_A},股东,1"],
    )
    (r,) = run(tmp_path).results
    assert r.status == "failed"
    assert r.message.startswith("market/a.csv: the source's `where:` condition fails on this")
    assert "张三" not in r.message


def test_where_is_checked_against_the_fields(tmp_path):
    bad = LONG.format(sid="enterprise", where="rolle = 1", role="legal_rep")
    sources(tmp_path, enterprise=bad)
    (p,) = validate_all({"sources": tmp_path / "sources"})
    assert "enterprise.yaml:3: `where:` is not a valid condition" in str(p)
    assert "rolle" in str(p)
    sources(tmp_path, enterprise=bad.replace("rolle = 1", "true; DROP TABLE quarantine"))
    (p,) = validate_all({"sources": tmp_path / "sources"})
    assert "more than one statement" in str(p) or 'syntax error at or near ";"' in str(p)


# ----------------------------------------------------------------------------- summary rows


def test_summary_rows_are_skipped_and_counted(county):
    write_csv(
        county / "raw/finance/q1.csv",
        [
            PAY_HEADER,
            PAY_ROWS[0],
            '合计,,,"2,400.00",,,',  # right number of cells
            ",本页小计,,2400",  # fewer cells
            "总 计：,,,2400,,,,,",  # more cells
            "B1,合计,,2400,2025-01,,",  # 合计 in the name column itself
            f"B1,小计,{ID_A},100,2025-01,,成功",  # an ID: a person row, not a summary
        ],
    )
    (r,) = ingest(county / "raw", county / "sources", county / "w.duckdb").results
    assert (r.rows_read, r.rows_loaded, r.rows_summary, r.rows_quarantined) == (6, 2, 4, 0)
    assert "4 summary row(s) (合计/总计/小计) skipped" in r.message
    assert q(county, "SELECT _row FROM src_payment ORDER BY _row") == [(2,), (7,)]


def test_summary_rows_of_a_source_without_persons(tmp_path):
    sources(
        tmp_path,
        standard="source: standard\nfiles: [s.csv]\nfields:\n  item: 补贴项目\n"
        "  amount: {column: 标准金额, normalizer: amount}\n",
    )
    write_csv(tmp_path / "raw/s.csv", ["补贴项目,标准金额", "高龄津贴,100", "合计,100"])
    (r,) = run(tmp_path).results
    assert (r.status, r.rows_read, r.rows_loaded, r.rows_summary) == ("loaded", 2, 1, 1)


# ----------------------------------------------------------------------------- issue 10


def test_files_outside_the_raw_folder_are_refused(county):
    spec = county / "sources/payment.yaml"
    text = spec.read_text("utf-8")
    for pattern, why in (
        ("../secret/*.csv", "climbs out of the raw folder"),
        ("/etc/*.csv", "is absolute"),
    ):
        spec.write_text(text.replace("finance/*.csv", pattern), "utf-8")
        (p,) = validate_all({"sources": county / "sources"})
        assert f"payment.yaml:2: files pattern '{pattern}' {why}" in str(p)
        with pytest.raises(SpecError, match="files pattern"):
            ingest(county / "raw", county / "sources", county / "w.duckdb")
        spec.write_text(text, "utf-8")
        good = parse_source_file(spec, Problems())
        assert good is not None
        forged = dataclasses.replace(good, files=(pattern,))  # past validation: still refused
        with pytest.raises(InputFileError, match=why):
            ingest(county / "raw", [forged], county / "w.duckdb")
    res = CliRunner().invoke(
        main,
        [
            "ingest",
            "--raw",
            str(county / "raw"),
            "--sources",
            str(county / "sources"),
            "--warehouse",
            str(county / "w2.duckdb"),
        ],
    )
    assert res.exception is None or isinstance(res.exception, SystemExit), res.output


def test_a_byte_identical_copy_is_loaded_once(county):
    src = county / "raw/finance/q1.csv"
    (county / "raw/finance/q1 - 副本.csv").write_bytes(src.read_bytes())
    res = by_file(run(county))
    assert res["finance/q1.csv"].status == "loaded"
    copy = res["finance/q1 - 副本.csv"]
    assert copy.status == "skipped"
    assert copy.message.startswith(
        "finance/q1 - 副本.csv: the same bytes as finance/q1.csv (a copy): loaded once"
    )
    assert q(county, "SELECT count(*), count(DISTINCT _file) FROM src_payment") == [(4, 1)]
    # the copy changes: now a file of its own
    write_csv(county / "raw/finance/q1 - 副本.csv", [PAY_HEADER, PAY_ROWS[1]])
    res = by_file(run(county))
    assert res["finance/q1 - 副本.csv"].status == "loaded"
    assert q(county, "SELECT count(*) FROM src_payment") == [(5,)]


def test_a_file_that_shrinks_sharply_is_refused_unless_allowed(county):
    rows = [f"B{i},张三,{ID_A},100,2025-01,2025/1/5,成功" for i in range(20)]
    write_csv(county / "raw/finance/q1.csv", [PAY_HEADER, *rows])
    run(county)
    write_csv(county / "raw/finance/q1.csv", [PAY_HEADER, *rows[:9]])
    (r,) = run(county).results
    assert r.status == "failed"
    assert r.message == (
        "finance/q1.csv: 9 data rows where the version in the warehouse has 20 (fewer than "
        "50%): a truncated export? Kept that version. Fix: check the export is complete and "
        "re-export it; if the shrink is real, run `crossmatch ingest --allow-shrink` "
        "(ingest(..., allow_shrink=True))."
    )
    assert q(county, "SELECT count(*) FROM src_payment") == [(20,)]
    write_csv(county / "raw/finance/q1.csv", [PAY_HEADER, *rows[:10]])  # 50%: accepted
    assert run(county).results[0].status == "loaded"
    write_csv(county / "raw/finance/q1.csv", [PAY_HEADER, *rows[:2]])
    res = CliRunner().invoke(
        main,
        [
            "ingest",
            "--raw",
            str(county / "raw"),
            "--sources",
            str(county / "sources"),
            "--warehouse",
            str(county / "w.duckdb"),
            "--allow-shrink",
        ],
    )
    assert res.exit_code == 0, res.output
    assert q(county, "SELECT count(*) FROM src_payment") == [(2,)]


def test_messages_never_quote_a_data_row(county):
    # header_row pointing at a data row: no cell of it in the message
    spec = county / "sources/payment.yaml"
    spec.write_text(spec.read_text("utf-8").replace("fields:", "header_row: 2\nfields:"), "utf-8")
    (r,) = run(county).results
    assert r.status == "failed"
    assert "张三" not in r.message and ID_A not in r.message and "nearest" not in r.message
    assert not q(county, "SELECT * FROM ingest_file WHERE message LIKE '%张三%'")


def test_runs_record_who_and_killed_runs_become_interrupted(county):
    run(county)
    with duckdb.connect(str(county / "w.duckdb")) as con:  # as a killed ingest leaves it
        con.execute("INSERT INTO ingest_run (run_id, status) VALUES ('killed1', 'running')")
    s = run(county)
    rows = dict(q(county, "SELECT run_id, status FROM ingest_run"))
    assert rows["killed1"] == "interrupted" and rows[s.run_id] == "ok"
    (who,) = q(county, "SELECT DISTINCT started_by FROM ingest_run WHERE run_id <> 'killed1'")
    assert who[0]
    mode = stat.S_IMODE(os.stat(county / "w.duckdb").st_mode)
    assert mode == 0o600, oct(mode)


def test_a_run_failing_midway_is_not_left_running(county, monkeypatch):
    from crossmatch.ingest import pipeline

    def boom(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "_run_files", boom)
    with pytest.raises(KeyboardInterrupt):
        run(county)
    assert q(county, "SELECT status FROM ingest_run") == [("interrupted",)]


def test_an_ingest_killed_with_sigkill_is_marked_interrupted_by_the_next(county):
    import signal
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        f"""
        import sys, time
        from crossmatch.ingest import ingest, pipeline

        def hang(*a, **kw):
            print("running", flush=True)
            time.sleep(600)

        pipeline._run_files = hang
        ingest({str(county / "raw")!r}, {str(county / "sources")!r}, {str(county / "w.duckdb")!r})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "running"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert q(county, "SELECT status FROM ingest_run") == [("running",)]
    s = run(county)
    assert dict(q(county, "SELECT run_id = ?, status FROM ingest_run", [s.run_id])) == {
        False: "interrupted",
        True: "ok",
    }
