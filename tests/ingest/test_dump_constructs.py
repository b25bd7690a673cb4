"""A data-sharing platform's database dump (the `dump` layout, issue 17): NULL written as `\\N`
in every column (source-level `null_values:`), amounts in fen (`unit: fen`), and the hint an
ingest gives when a column is mostly a NULL marker."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest

from crossmatch import normalize, normalize_sql
from crossmatch.ingest import ingest
from crossmatch.ingest.assemble import units
from crossmatch.spec.common import Problems
from crossmatch.spec.sources import parse_source_file

from .conftest import ID_A, write_csv

ID_C = "11010519491231002X"

MAPPING = """\
source: payment
files: [caizheng/CZ_FFMX_*.txt]
{nulls}
fields:
  payee_name: {{column: SKRXM, normalizer: name}}
  payee_id: {{column: SKRSFZH, normalizer: id}}
  amount: {{column: FFJE, normalizer: amount, unit: fen, required: true}}
  pay_date: {{column: FFSJ, normalizer: date}}
  village: {{column: CM, default: 未知村}}
  status: {{column: FFZT, normalizer: enum, map: {{"1": success, "0": failed}}}}
  deleted: {{column: SCBZ, normalizer: int}}
where: "deleted IS DISTINCT FROM 1"
persons:
  - {{role: payee, name: payee_name, id: payee_id}}
"""

LINES = [
    "ID|SKRXM|SKRSFZH|FFJE|FFSJ|CM|FFZT|SCBZ",
    f"1|张三|{ID_A}|18300|2025-01-16 15:49:35|前圩村|1|0",
    "2|李四|\\N|343800|\\N|\\N|1|0",  # no ID, no pay date, no village: NULL, not text
    f"3|张三|{ID_A}|17100|2025-01-16 15:49:35|前圩村|1|1",  # a superseded (deleted) version
    f"4|王五|{ID_C}|\\N|2025-01-10 08:00:00|前圩村|0|0",  # no amount: required -> quarantine
]


def _ingest(tmp: Path, nulls: str) -> tuple[list[tuple], list[str], object]:
    write_csv(tmp / "raw/caizheng/CZ_FFMX_2025.txt", LINES)
    (tmp / "sources").mkdir(exist_ok=True)
    (tmp / "sources/payment.yaml").write_text(MAPPING.format(nulls=nulls), encoding="utf-8")
    s = ingest(tmp / "raw", tmp / "sources", tmp / "w.duckdb")
    with duckdb.connect(str(tmp / "w.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT _row, payee_name, payee_id, payee_id_status, amount, pay_date, village, "
            "status FROM src_payment ORDER BY _row"
        ).fetchall()
        reasons = [
            r[0] for r in con.execute("SELECT reason FROM quarantine ORDER BY row").fetchall()
        ]
    return rows, reasons, s.results[0]


def test_source_null_values_make_a_dump_marker_an_empty_cell(tmp_path: Path) -> None:
    rows, reasons, res = _ingest(tmp_path, "null_values: ['\\N']")
    assert res.status == "loaded", res.message
    assert (res.rows_loaded, res.rows_quarantined, res.rows_filtered) == (2, 1, 1)
    first, second = rows
    assert first[1:5] == ("张三", ID_A, "valid18", Decimal("183.00"))
    assert first[6:] == ("前圩村", "success")
    # `\N` is no name, no ID of a bad format, no unreadable date: empty; `default:` fills it
    assert second[1:] == ("李四", None, "missing", Decimal("3438.00"), None, "未知村", "success")
    assert reasons == ["FFJE: empty, but the field 'amount' is required"]
    # nothing was counted as unreadable: the marker is not a bad value
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM ingest_field_issue").fetchall()[0][0] == 0


def test_without_null_values_the_marker_is_data_and_the_hint_names_it(tmp_path: Path) -> None:
    rows, reasons, res = _ingest(tmp_path, "")
    # `\N` read as a value: an ID of a bad format and an unreadable date (nulled, counted) and
    # the village `\N` (a text field keeps it): the file loads, wrongly
    by_row = {r[0]: r for r in rows}
    assert by_row[3][3] == "bad_format" and by_row[3][6] == "\\N"
    assert any("FFJE" in r for r in reasons)  # the amount `\N` is unreadable: quarantined
    assert "null_values: ['\\N']" in res.message or any(
        "null_values: ['\\N']" in w for w in res.warnings
    ), (res.message, res.warnings)


def test_null_values_spec_errors_and_join_parts(tmp_path: Path) -> None:
    p = tmp_path / "payment.yaml"
    p.write_text(MAPPING.format(nulls="null_values: ['']"), encoding="utf-8")
    problems = Problems()
    assert parse_source_file(p, problems) is None
    assert "null_values must be a list of non-empty cell texts" in _text(problems)
    p.write_text(MAPPING.format(nulls="null_values: ['\\N', NULL]"), encoding="utf-8")
    problems = Problems()
    assert parse_source_file(p, problems) is None  # YAML: an unquoted NULL is no text at all
    assert "quote each text" in _text(problems)
    p.write_text(MAPPING.format(nulls="null_values: ['\\N', 'NULL']"), encoding="utf-8")
    problems = Problems()
    spec = parse_source_file(p, problems)
    assert spec is not None and spec.null_values == ("\\N", "NULL"), _text(problems)
    # a join part reads its files with the main's null_values (unless it declares its own)
    p = tmp_path / "assistance.yaml"
    p.write_text(JOINED.format(part=""), encoding="utf-8")
    spec = parse_source_file(p, problems)
    assert spec is not None, _text(problems)
    assert [u.null_values for u in units(spec)] == [("\\N",), ("\\N",)]
    p.write_text(JOINED.format(part="    null_values: ['NULL']"), encoding="utf-8")
    spec = parse_source_file(p, problems)
    assert spec is not None, _text(problems)
    assert [u.null_values for u in units(spec)] == [("\\N",), ("NULL",)]


JOINED = """\
source: assistance
files: [civil/members*.txt]
null_values: ['\\N']
fields:
  case_no: {{column: JZZBH, normalizer: code}}
  member_name: {{column: CYXM, normalizer: name}}
join:
  - files: [civil/cases*.txt]
    on: [case_no]
{part}
    fields:
      case_no: {{column: JZZBH, normalizer: code}}
      applicant_name: {{column: SQRXM, normalizer: name}}
"""


def _text(problems: Problems) -> str:
    return "\n".join(str(x) for x in problems)


@pytest.mark.parametrize(
    ("cell", "yuan", "error"),
    [
        ("18300", Decimal("183.00"), None),
        ("18300.00", Decimal("183.00"), None),
        ("1,830,000", Decimal("18300.00"), None),
        ("0", Decimal("0.00"), None),
        ("183元", Decimal("183.00"), None),  # a unit in the cell wins
        (
            "183.5",
            None,
            "amount '183.5' is not a whole number of fen (unit: fen; is the column in yuan?)",
        ),
        (
            "183.50",
            None,
            "amount '183.50' is not a whole number of fen (unit: fen; is the column in yuan?)",
        ),
        ("-100", None, "amount '-100' below the minimum 0 (field options min / max)"),
    ],
)
def test_amount_unit_fen(cell: str, yuan: Decimal | None, error: str | None) -> None:
    res = normalize.get("amount")(pl.Series([cell], dtype=pl.String), {"unit": "fen"})
    assert res.columns[""].to_list() == [yuan]
    assert res.error.to_list() == [error]
    fast = normalize_sql.fast_path("amount", "v", {"unit": "fen"})
    assert fast is not None
    ok, out = duckdb.execute(
        f"SELECT {fast.ok}, CASE WHEN {fast.ok} THEN {fast.outputs['']} END FROM (SELECT ? AS v)",
        [cell],
    ).fetchall()[0]
    if ok:  # the SQL fast path agrees with Python wherever it accepts the cell
        assert error is None and out == yuan


def test_unit_fen_is_known_to_the_spec(tmp_path: Path) -> None:
    p = tmp_path / "payment.yaml"
    p.write_text(MAPPING.format(nulls="").replace("unit: fen", "unit: jiao"), encoding="utf-8")
    problems = Problems()
    assert parse_source_file(p, problems) is None
    assert "unknown unit 'jiao'" in _text(problems) and "fen" in _text(problems)


def test_validate_raw_reports_an_undeclared_null_marker_and_an_unreadable_column(
    tmp_path: Path,
) -> None:
    """`validate --raw` normalises the first rows: what ingest would refuse or load wrongly is
    said before the night, at the mapping's line, with the fix."""
    from crossmatch.spec import validate_all

    write_csv(tmp_path / "raw/caizheng/CZ_FFMX_2025.txt", LINES)
    (tmp_path / "sources").mkdir()
    yaml_path = tmp_path / "sources/payment.yaml"
    yaml_path.write_text(MAPPING.format(nulls=""), encoding="utf-8")
    paths = {"sources": tmp_path / "sources", "raw": tmp_path / "raw"}
    found = [str(p) for p in validate_all(paths)]
    assert len(found) == 1, found
    assert "mapped columns hold `\\N`" in found[0] and "add `null_values: ['\\N']`" in found[0]
    yaml_path.write_text(MAPPING.format(nulls="null_values: ['\\N']"), encoding="utf-8")
    assert [str(p) for p in validate_all(paths)] == []
    # a date column mapped as an amount: ingest would refuse the file; validate says so
    yaml_path.write_text(
        MAPPING.format(nulls="null_values: ['\\N']").replace(
            "column: FFSJ, normalizer: date", "column: FFSJ, normalizer: amount"
        ),
        encoding="utf-8",
    )
    found = [str(p) for p in validate_all(paths)]
    assert len(found) == 1 and "field 'pay_date'" in found[0], found
    assert "cannot be read by normalizer amount" in found[0] and "ingest would refuse" in found[0]


def test_duplicates_ignore_finds_a_row_exported_twice_under_a_new_key(tmp_path: Path) -> None:
    """A dump's auto-increment key (ID) and update time (GXSJ) make a row exported twice look
    new; `duplicates_ignore: [ID, GXSJ]` compares the other cells (rows 2 and 3 differ in FFJE:
    no duplicate)."""
    lines = [
        "ID|SKRXM|SKRSFZH|FFJE|GXSJ",
        f"7|张三|{ID_A}|18300|2025-12-31 22:54:05",
        f"8|张三|{ID_A}|18300|2025-12-31 23:37:14",
        f"9|张三|{ID_A}|18400|2025-12-31 23:37:14",
    ]
    write_csv(tmp_path / "raw/caizheng/CZ_FFMX_2025.txt", lines)
    (tmp_path / "sources").mkdir()
    mapping = (
        "source: payment\nfiles: [caizheng/CZ_FFMX_*.txt]\n{dup}fields:\n"
        "  payee_name: {{column: SKRXM, normalizer: name}}\n"
        "  payee_id: {{column: SKRSFZH, normalizer: id}}\n"
        "  amount: {{column: FFJE, normalizer: amount, unit: fen}}\n"
    )
    spec = tmp_path / "sources/payment.yaml"
    dups = {}
    for dup in ("", "duplicates_ignore: [ID, GXSJ]\n"):
        spec.write_text(mapping.format(dup=dup), encoding="utf-8")
        (tmp_path / "w.duckdb").unlink(missing_ok=True)
        s = ingest(tmp_path / "raw", tmp_path / "sources", tmp_path / "w.duckdb")
        assert s.results[0].status == "loaded", s.results[0].message
        with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
            dups[dup] = con.execute(
                "SELECT _row, _dup_of FROM src_payment ORDER BY _row"
            ).fetchall()
    assert dups[""] == [(2, None), (3, None), (4, None)]
    assert dups["duplicates_ignore: [ID, GXSJ]\n"] == [(2, None), (3, 2), (4, None)]
    # validate --raw names a listed column the file lacks
    from crossmatch.spec import validate_all

    spec.write_text(mapping.format(dup="duplicates_ignore: [ID, GXJS]\n"), encoding="utf-8")
    found = [
        str(p) for p in validate_all({"sources": tmp_path / "sources", "raw": tmp_path / "raw"})
    ]
    assert len(found) == 1 and "duplicates_ignore: column 'GXJS' not found" in found[0], found


def test_a_column_mostly_null_marker_is_refused_with_the_null_values_fix(tmp_path: Path) -> None:
    lines = ["ID|XM|SFZHM|LZRQ"] + [f"{i}|张三{i}|\\N|\\N" for i in range(1, 6)]
    write_csv(tmp_path / "raw/caizheng/CZ_CZGYRY.txt", lines)
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources/payroll.yaml").write_text(
        "source: payroll\nfiles: [caizheng/CZ_CZGYRY.txt]\nfields:\n"
        "  person_name: {column: XM, normalizer: name}\n"
        "  end_date: {column: LZRQ, normalizer: date}\n",
        encoding="utf-8",
    )
    res = ingest(tmp_path / "raw", tmp_path / "sources", tmp_path / "w.duckdb").results[0]
    assert res.status == "failed"
    assert "value shapes: \\N ×5" in res.message, res.message
    assert "add `null_values: ['\\N']` at the top of" in res.message
    assert "max_error_share: 1" not in res.message  # the wrong fix for a NULL marker
