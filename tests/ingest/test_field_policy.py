"""Per-field error policy end to end on tiny files: an unreadable cell in a field that is not
required is NULL (row kept, counted in ingest_field_issue, warned about); in a required field
it quarantines the row; a column unreadable beyond ``max_error_share`` fails the file with a
message naming the file, the column, the share, value shapes and the fix; ID numbers with a
wrong check digit are stored and counted. No message shows an ID number or a name."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from crossmatch.ingest import ingest

from .conftest import write_csv, write_xlsx

YAML = """\
source: cadre
files: [hr/*.csv]
fields:
  name: {column: 姓名, normalizer: name}
  pid: {column: 身份证号, normalizer: id}
  village: {column: 村, normalizer: village}
  term_start: {column: 任职开始, normalizer: date}
  term_end: {column: 任职结束, normalizer: date, month: end}
  salary: {column: 月薪, normalizer: amount, required: true}
  bonus: {column: 奖金, normalizer: amount%s}
persons:
  - role: cadre
    name: name
    id: pid
"""
HEADER = "姓名,身份证号,村,任职开始,任职结束,月薪,奖金"
ID_OK = "341122199001011232"
ID_BAD = "341122199001011233"  # wrong check digit
ID_OK2 = "11010519491231002X"


def setup(root: Path, rows: list[str], bonus_opts: str = "") -> Path:
    (root / "sources").mkdir(parents=True, exist_ok=True)
    (root / "sources" / "cadre.yaml").write_text(YAML % bonus_opts, encoding="utf-8")
    write_csv(root / "raw" / "hr" / "t.csv", [HEADER, *rows])
    return root


def run(root: Path):
    summary = ingest(root / "raw", root / "sources", root / "w.duckdb")
    (r,) = summary.results
    return summary, r


def q(root: Path, sql: str):
    with duckdb.connect(str(root / "w.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


ROWS = [
    f"张三,{ID_OK},马冲村3组,2021.01,2023年6月,3000,500",
    f"李四,{ID_BAD},马冲村村民委员会,2019-03-01,,2800元,-183.00",
    f"王五,{ID_OK2},清岭,待核实,202112,3100,",
    f"赵六,{ID_OK},马冲,20200315,2022.02,叁仟,100",
]


def test_bad_cell_in_optional_field_is_null_and_counted_required_one_quarantines(tmp_path):
    root = setup(tmp_path, ROWS)
    summary, r = run(root)
    assert r.status == "loaded", r.message
    # 赵六's salary (required) is unreadable: quarantined; the bad date and the negative
    # bonus are in fields that are not required: NULL, the rows kept
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (4, 3, 1)
    got = q(
        root,
        "SELECT name, village, term_start, term_end, salary, bonus, pid_status "
        "FROM src_cadre ORDER BY _row",
    )
    assert got == [
        ("张三", "马冲村", dt.date(2021, 1, 1), dt.date(2023, 6, 30), Decimal("3000.00"),
         Decimal("500.00"), "valid18"),
        ("李四", "马冲村", dt.date(2019, 3, 1), None, Decimal("2800.00"), None, "bad_checksum"),
        ("王五", "清岭村", None, dt.date(2021, 12, 31), Decimal("3100.00"), None, "valid18"),
    ]  # fmt: skip
    assert q(root, "SELECT row, reason FROM quarantine") == [
        (5, "月薪: cannot parse amount '叁仟'")
    ]
    issues = q(
        root,
        "SELECT field, header, problem, cells, round(share, 3), example_shapes, run_id "
        "FROM ingest_field_issue ORDER BY field, problem",
    )
    assert [i[:6] for i in issues] == [
        ("bonus", "奖金", "nulled", 1, 0.333, "-999.99 ×1"),
        ("pid", "身份证号", "bad_checksum", 1, 0.333, "999999999999999999 ×1"),  # of loaded
        ("salary", "月薪", "quarantined", 1, 0.25, "字字 ×1"),
        ("term_start", "任职开始", "nulled", 1, 0.25, "字字字 ×1"),
    ]
    assert {i[6] for i in issues} == {summary.run_id}
    text = summary.render()
    warnings = [line for line in text.splitlines() if line.startswith("WARNING: ")]
    assert warnings == [
        "WARNING: hr/t.csv: column '身份证号' (field pid): 1 ID numbers with a wrong check "
        "digit (stored with status bad_checksum)",
        "WARNING: hr/t.csv: column '任职开始' (field term_start): 1 unreadable cells set to "
        "NULL, rows kept (value shapes: 字字字 ×1); see ingest_field_issue, or set "
        "`on_error: quarantine`",
        "WARNING: hr/t.csv: column '奖金' (field bonus): 1 unreadable cells set to NULL, rows "
        "kept (value shapes: -999.99 ×1); see ingest_field_issue, or set "
        "`on_error: quarantine`",
    ]
    for secret in (ID_BAD, ID_OK, "李四", "待核实", "-183.00"):
        assert secret not in text


def test_null_cell_in_a_row_quarantined_for_another_field_is_not_counted_as_nulled(tmp_path):
    root = setup(tmp_path, [*ROWS[:3], f"赵六,{ID_OK},马冲,待定,2022.02,叁仟,100"])
    _, r = run(root)
    assert (r.rows_loaded, r.rows_quarantined) == (3, 1)
    assert q(root, "SELECT cells FROM ingest_field_issue WHERE field = 'term_start'") == [(1,)]


def test_on_error_quarantine_on_an_optional_field(tmp_path):
    root = setup(tmp_path, ROWS, ", on_error: quarantine")
    _, r = run(root)
    assert (r.rows_loaded, r.rows_quarantined) == (2, 2)
    reasons = [x[0] for x in q(root, "SELECT reason FROM quarantine ORDER BY row")]
    assert reasons == [
        "奖金: amount '-183.00' below the minimum 0 (field options min / max)",
        "月薪: cannot parse amount '叁仟'",
    ]
    got = q(root, "SELECT problem, cells FROM ingest_field_issue WHERE field = 'bonus'")
    assert got == [("quarantined", 1)]


def test_bounds_are_field_options(tmp_path):
    root = setup(tmp_path, ROWS, ", min: -1000, max: 400")
    _, r = run(root)
    assert r.rows_loaded == 3
    assert q(root, "SELECT bonus FROM src_cadre ORDER BY _row") == [
        (None,),  # 500 > max 400
        (Decimal("-183.00"),),
        (None,),  # empty
    ]


def test_column_mostly_unreadable_fails_the_file_and_keeps_the_previous_version(tmp_path):
    root = setup(tmp_path, ROWS)
    _, first = run(root)
    assert first.status == "loaded"
    bad = [
        f"张{i},{ID_OK},马冲,{d},,3000,1"
        for i, d in enumerate(["03/15/2021", "12/01/2020", "01/31/2019", "2021-01-05"])
    ]
    write_csv(root / "raw" / "hr" / "t.csv", [HEADER, *bad])
    _, r = run(root)
    assert r.status == "failed"
    assert r.message == (
        "hr/t.csv: column '任职开始' (field term_start, normalizer date): 75% of its 4 non-empty "
        "cells cannot be read (3 cells; value shapes: 99/99/9999 ×3), more than "
        "max_error_share 0.5; the file is refused, its previous version (if any) stays in the "
        "warehouse. Fix: check that `column:` of field term_start in "
        f"{(root / 'sources' / 'cadre.yaml').as_posix()} names the right column and that its "
        "normalizer suits it (dates like 2024-03-05, 2024/3/5, 2024年3月5日, 20240305 or 45356 "
        "and months like 2021.01, 2021年3月 or 202103 are read (`month: end` for the last day "
        "of the month)); if the values really are bad, correct the export, or accept them as "
        "NULL with `max_error_share: 1` on the field."
    )
    # the previous version stays, with its issues
    assert q(root, "SELECT count(*) FROM src_cadre") == [(3,)]
    assert q(root, "SELECT count(*) FROM ingest_field_issue WHERE problem = 'nulled'") == [(2,)]
    status = q(root, "SELECT status, message IS NOT NULL FROM ingest_file ORDER BY loaded_at")
    assert [s[0] for s in status] == ["ok", "failed"]


def test_a_wholly_unreadable_optional_column_fails_the_file_too(tmp_path):
    rows = [f"张{i},{ID_OK},马冲,2021.01,2023年6月,3000,{v}" for i, v in enumerate("甲乙丙丁")]
    root = setup(tmp_path, rows)
    _, r = run(root)
    assert r.status == "failed"
    assert "column '奖金' (field bonus, normalizer amount): 100% of its 4 non-empty" in r.message
    assert "value shapes: 字 ×4" in r.message
    assert "甲" not in r.message and ID_OK not in r.message
    # max_error_share: 1 accepts it: every cell NULL, counted
    root2 = setup(tmp_path / "b", rows, ", max_error_share: 1")
    _, r2 = run(root2)
    assert (r2.status, r2.rows_loaded) == ("loaded", 4)
    assert q(root2, "SELECT problem, cells, share FROM ingest_field_issue") == [("nulled", 4, 1.0)]


def test_few_bad_cells_in_a_mostly_empty_column_do_not_fail_the_file(tmp_path):
    rows = [f"张{i},{ID_OK},马冲,2021.01,2023年6月,3000," for i in range(5)]
    rows[0] += "至今"
    rows[1] += "不详"
    root = setup(tmp_path, rows)
    _, r = run(root)  # 2 of 2 non-empty cells, but fewer than 3 cells: a warning
    assert (r.status, r.rows_loaded) == ("loaded", 5), r.message
    assert q(root, "SELECT cells, share FROM ingest_field_issue") == [(2, 1.0)]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_month_dates_and_places_through_both_readers(tmp_path, fmt):
    cells = [
        ["张三", ID_OK, "马冲村第3村民小组", "2021.01", "2023年6月", "3000", "1"],
        ["李四", ID_OK2, "城东社区居委会", "202103", "2024-02", "100万元人民币", "2"],
    ]
    root = setup(tmp_path, [",".join(c) for c in cells])
    if fmt == "xlsx":
        (root / "raw" / "hr" / "t.csv").unlink()
        write_xlsx(root / "raw" / "hr" / "t.xlsx", [HEADER.split(","), *cells])
        yaml = (root / "sources" / "cadre.yaml").read_text(encoding="utf-8")
        (root / "sources" / "cadre.yaml").write_text(yaml.replace("*.csv", "*.xlsx"), "utf-8")
    _, r = run(root)
    assert (r.status, r.rows_loaded) == ("loaded", 2), r.message
    assert q(root, "SELECT village, term_start, term_end, salary FROM src_cadre ORDER BY 1") == [
        ("城东社区", dt.date(2021, 3, 1), dt.date(2024, 2, 29), Decimal("1000000.00")),
        ("马冲村", dt.date(2021, 1, 1), dt.date(2023, 6, 30), Decimal("3000.00")),
    ]
    assert q(root, "SELECT count(*) FROM ingest_field_issue") == [(0,)]


def test_null_values_keep_an_open_term_empty_without_a_warning(tmp_path):
    rows = [f"张{i},{ID_OK},马冲,2021.01,至今,3000,1" for i in range(4)]
    root = setup(tmp_path, rows)
    _, r = run(root)  # 至今 is not a date: 100% unreadable, the file fails
    assert r.status == "failed" and "column '任职结束'" in r.message
    yaml = (root / "sources" / "cadre.yaml").read_text(encoding="utf-8")
    yaml = yaml.replace("month: end}", "month: end, null_values: [至今]}")
    (root / "sources" / "cadre.yaml").write_text(yaml, encoding="utf-8")
    _, r = run(root)
    assert (r.status, r.rows_loaded, r.warnings) == ("loaded", 4, [])
    assert q(root, "SELECT count(term_end) FROM src_cadre") == [(0,)]


def test_an_id_column_of_other_values_fails_the_file(tmp_path):
    rows = [f"张{i},62301234567890{i},马冲,2021.01,,3000,1" for i in range(3)]
    rows.append(f"李四,{ID_OK},马冲,2021.01,,3000,1")
    root = setup(tmp_path, rows)
    _, r = run(root)
    assert r.status == "failed"
    assert r.message.startswith(
        "hr/t.csv: column '身份证号' (field pid, normalizer id): 75% of its 4 non-empty cells "
        "are not valid ID numbers (3 cells; value shapes: 999999999999999 ×3), more than "
        "max_error_share 0.5;"
    )
    assert "62301234567890" not in r.message


def test_cli_shows_warnings_exit_0_and_a_refused_column_exit_4(tmp_path):
    from click.testing import CliRunner

    from crossmatch.cli import main

    root = setup(tmp_path, ROWS)
    args = ["ingest", "--raw", str(root / "raw"), "--sources", str(root / "sources")]
    args += ["--warehouse", str(root / "w.duckdb")]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "WARNING: hr/t.csv: column '任职开始' (field term_start): 1 unreadable" in res.output
    assert ID_BAD not in res.output and "待核实" not in res.output
    bad = [f"张{i},{ID_OK},马冲,x{i},,3000,1" for i in range(3)]
    write_csv(root / "raw" / "hr" / "t.csv", [HEADER, *bad])
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 4, res.output
    assert "FAILED: hr/t.csv: column '任职开始' (field term_start, normalizer date): 100%" in (
        res.output
    )


def test_a_new_version_replaces_the_issues_of_the_previous_one(tmp_path):
    root = setup(tmp_path, ROWS)
    run(root)
    assert q(root, "SELECT count(*) FROM ingest_field_issue") == [(4,)]
    write_csv(root / "raw" / "hr" / "t.csv", [HEADER, ROWS[0]])
    _, r = run(root)
    assert (r.status, r.warnings) == ("loaded", [])
    assert q(root, "SELECT count(*) FROM ingest_field_issue") == [(0,)]
