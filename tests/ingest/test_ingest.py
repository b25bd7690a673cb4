"""Ingestion end to end on fixture files: formats, encodings, lineage, quarantine, duplicates,
re-ingest, atomic replace, and every bad-input case of the issue with its exact message."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest

from crossmatch.ingest import ingest, pipeline
from crossmatch.ingest.readers import csv_reader

from .conftest import ID_A, PAY_HEADER, PAY_ROWS, ROSTER_YAML, write_csv, write_xlsx


def run(root: Path, **kw):
    return ingest(root / "raw", root / "sources", root / "w.duckdb", **kw)


def q(root: Path, sql: str, params=None):
    with duckdb.connect(str(root / "w.duckdb"), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def only(summary, status=None):
    (r,) = summary.results
    if status:
        assert r.status == status, r.message
    return r


def test_rows_lineage_normalised_values_and_counts(county):
    r = only(run(county), "loaded")
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined, r.rows_duplicate) == (4, 4, 0, 1)
    rows = q(
        county,
        "SELECT _source, _file, _row, _dup_of, payee_name, payee_name_raw, payee_id, "
        "payee_id_status, amount, period, pay_date, status FROM src_payment ORDER BY _row",
    )
    assert rows[0] == (
        "payment",
        "finance/q1.csv",
        2,
        None,
        "张三",
        "张三",
        ID_A,
        "valid18",
        Decimal("1200.00"),
        "2025-01",
        dt.date(2025, 1, 5),
        "success",
    )
    assert rows[1][4:8] == ("张伟", "張偉", ID_A, "upgraded15")
    assert rows[2][2:4] == (4, 2)  # exact duplicate of row 2: kept and marked
    assert rows[3][6:] == (
        "11010519491231002X",
        "valid18",
        Decimal("8000.00"),
        "2025-01",
        dt.date(2025, 1, 5),
        "failed",
    )
    (h,) = q(county, "SELECT DISTINCT _file_hash FROM src_payment")[0]
    assert q(
        county,
        "SELECT hash, rows_read, rows_loaded, rows_quarantined, rows_duplicate, "
        "status FROM ingest_file",
    ) == [(h, 4, 4, 0, 1, "ok")]


@pytest.mark.parametrize(
    ("encoding", "eol", "declared"),
    [
        ("utf-8", "\n", "auto"),
        ("utf-8-sig", "\r\n", "auto"),
        ("gb18030", "\r\n", "auto"),
        ("gbk", "\n", "auto"),
        ("gb18030", "\n", "gb18030"),
        ("utf-8-sig", "\n", "utf-8"),
    ],
)
def test_encodings_are_detected_never_mojibake(county, encoding, eol, declared):
    write_csv(county / "raw/finance/q1.csv", [PAY_HEADER, *PAY_ROWS], encoding, eol)
    if declared != "auto":
        spec = county / "sources/payment.yaml"
        spec.write_text(spec.read_text("utf-8") + f"encoding: {declared}\n", "utf-8")
    r = only(run(county), "loaded")
    assert r.rows_loaded == 4
    names = [x[0] for x in q(county, "SELECT payee_name_raw FROM src_payment ORDER BY _row")]
    assert names == ["张三", "張偉", "张三", "李四"]


def test_malformed_rows_go_to_quarantine_with_reason_raw_and_lineage(county):
    write_csv(
        county / "raw/finance/q1.csv",
        [
            PAY_HEADER,
            PAY_ROWS[0],
            f"B1,王五,{ID_A},壹佰元,2025-01,2025/1/5,成功",
            f"B1,赵六,{ID_A},100,2025-01,2025-13-45,成功",
            f"B1,孙七,{ID_A},100,2025-01",
            f"B1,周八,{ID_A},,2025-01,2025/1/5,成功",
            "",
            PAY_ROWS[1],
        ],
    )
    r = only(run(county), "loaded")
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (6, 3, 3)
    rows = q(county, "SELECT source, file, row, reason, raw FROM quarantine ORDER BY row")
    assert [x[:4] for x in rows] == [
        ("payment", "finance/q1.csv", 3, "发放金额: cannot parse amount '壹佰元'"),
        (
            "payment",
            "finance/q1.csv",
            5,
            "row has 5 cells but the header has 7 (truncated "
            "file, or a delimiter inside an unquoted value, or a value past the last column?)",
        ),
        ("payment", "finance/q1.csv", 6, "发放金额: empty, but the field 'amount' is required"),
    ]
    assert json.loads(rows[0][4])["收款人姓名"] == "王五"
    assert json.loads(rows[1][4]) == {"line": f"B1,孙七,{ID_A},100,2025-01"}
    # the bad date is in a field that is not required: NULL, the row kept (on_error: null)
    assert q(county, "SELECT _row, pay_date FROM src_payment ORDER BY 1") == [
        (2, dt.date(2025, 1, 5)),
        (4, None),
        (8, dt.date(2025, 1, 5)),
    ]


def test_quoted_line_break_uses_physical_line_numbers(county):
    write_csv(
        county / "raw/finance/q1.csv",
        [PAY_HEADER, f'B1,"张\n三",{ID_A},100,2025-01,2025/1/5,成功', PAY_ROWS[1]],
    )
    only(run(county), "loaded")
    assert q(county, "SELECT _row, payee_name FROM src_payment ORDER BY 1") == [
        (2, "张三"),
        (4, "张伟"),
    ]


def test_xlsx_title_row_date_cells_serials_text_numbers_and_units(tmp_path):
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources/roster.yaml").write_text(ROSTER_YAML, "utf-8")
    write_xlsx(
        tmp_path / "raw/civil/花名册.xlsx",
        [
            ["来安县低保对象花名册（2025年12月）"],
            ["成员姓名", "成员身份证号", "月保障金额", "救助开始日期", "面积"],
            ["张三", ID_A, 530, dt.date(2020, 2, 15), "0.8公顷"],
            ["李四", "341122900101123", "0.8万元", 45356, 3.5],
            [None, None, None, None, None],
            ["王五", ID_A, "1,200.00", "2024年3月5日", None],
        ],
    )
    r = only(run(tmp_path), "loaded")
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (3, 3, 0)
    assert q(
        tmp_path,
        "SELECT _row, member_name, member_id, monthly_amount, start_date, area_mu "
        "FROM src_roster ORDER BY 1",
    ) == [
        (3, "张三", ID_A, Decimal("530.00"), dt.date(2020, 2, 15), 12.0),
        (4, "李四", ID_A, Decimal("8000.00"), dt.date(2024, 3, 5), 3.5),
        (6, "王五", ID_A, Decimal("1200.00"), dt.date(2024, 3, 5), None),
    ]


def test_parquet(tmp_path):
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources/roster.yaml").write_text(
        ROSTER_YAML.replace("civil/*.xlsx", "civil/*.parquet"), "utf-8"
    )
    (tmp_path / "raw/civil").mkdir(parents=True)
    pl.DataFrame(
        {
            "成员姓名": ["张三"],
            "证件号码": [ID_A],
            "月保障金额": [530.5],
            "救助开始日期": [dt.date(2020, 2, 15)],
        }
    ).write_parquet(tmp_path / "raw/civil/r.parquet")
    only(run(tmp_path), "loaded")
    assert q(tmp_path, "SELECT _row, member_id, monthly_amount, start_date FROM src_roster") == [
        (2, ID_A, Decimal("530.50"), dt.date(2020, 2, 15))
    ]


def test_unchanged_file_does_nothing_changed_file_replaces(county):
    only(run(county), "loaded")
    before = q(county, "SELECT count(*) FROM ingest_file")
    assert only(run(county), "unchanged").rows_read == 0
    assert q(county, "SELECT count(*) FROM ingest_file") == before
    write_csv(county / "raw/finance/q1.csv", [PAY_HEADER, PAY_ROWS[1]])
    r = only(run(county), "loaded")
    assert q(county, "SELECT _row, payee_name, _file_hash FROM src_payment") == [
        (2, "张伟", r.hash)
    ]
    assert q(county, "SELECT status, rows_loaded FROM ingest_file ORDER BY loaded_at") == [
        ("replaced", 4),
        ("ok", 1),
    ]


def test_changed_spec_reloads_unchanged_file(county):
    only(run(county), "loaded")
    spec = county / "sources/payment.yaml"
    spec.write_text(spec.read_text("utf-8").replace("batch_no:", "batch:"), "utf-8")
    only(run(county), "loaded")
    assert q(county, "SELECT count(batch) FROM src_payment") == [(4,)]


def test_upgraded_reader_reloads_unchanged_file(county, monkeypatch):
    """Same bytes, same mapping, but a crossmatch whose readers changed: the file is read again
    (a file an older reader got wrong must not stay wrong as 'unchanged')."""
    from crossmatch.spec import sources as spec_sources

    only(run(county), "loaded")
    assert only(run(county), "unchanged").rows_read == 0
    monkeypatch.setattr(spec_sources, "READER_VERSION", spec_sources.READER_VERSION + "-next")
    assert only(run(county), "loaded").rows_read > 0
    assert only(run(county), "unchanged").rows_read == 0


# ----------------------------------------------------------------------------- bad input


def fail_msg(root: Path) -> str:
    r = only(run(root), "failed")
    return r.message


def test_missing_required_column(county):
    write_csv(
        county / "raw/finance/q1.csv", [PAY_HEADER.replace("发放金额", "发放金额(元)"), *PAY_ROWS]
    )
    assert fail_msg(county) == (
        "finance/q1.csv: column '发放金额' (field amount) not found in the header row 1 "
        "(nearest header in the file: '发放金额(元)'). Fix: add the file's header name to "
        f"`column:` in {(county / 'sources/payment.yaml').as_posix()} (a list of aliases is "
        "allowed), or mark the field `optional: true`."
    )


def test_empty_file(county):
    (county / "raw/finance/q1.csv").write_bytes(b"")
    assert fail_msg(county) == (
        f"{county / 'raw/finance/q1.csv'}: the file is empty (0 bytes). Fix: re-export it "
        "from the department system; the previous version (if any) stays in the warehouse."
    )


def test_header_only_file_is_an_empty_version_but_never_wipes_data(county):
    only(run(county), "loaded")
    write_csv(county / "raw/finance/q1.csv", [PAY_HEADER])
    assert fail_msg(county) == (
        "finance/q1.csv: header only, no data rows, while the version in the warehouse has 4 "
        "rows; kept that version. Fix: re-export the file with its data (to really empty it, "
        "delete its rows from src_payment)."
    )
    assert q(county, "SELECT count(*) FROM src_payment") == [(4,)]
    # a new, empty register is fine (CRLF: not a byte copy of q1, which would be skipped)
    write_csv(county / "raw/finance/q2.csv", [PAY_HEADER], eol="\r\n")
    res = {r.file: r for r in run(county).results}
    assert res["finance/q2.csv"].status == "loaded"
    assert res["finance/q2.csv"].message == "header only: 0 data rows"


def test_truncated_file_keeps_good_rows_quarantines_the_cut_one(county):
    data = ("\n".join([PAY_HEADER, *PAY_ROWS]) + "\n").encode("gb18030")
    cut = data[: data.rindex("李四".encode("gb18030")) + 3]  # ends inside 四
    (county / "raw/finance/q1.csv").write_bytes(cut)
    r = only(run(county), "loaded")
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (4, 3, 1)
    assert r.message == "the file ends inside a character at line 5 (truncated file?)"
    assert q(county, "SELECT row, reason FROM quarantine") == [
        (
            5,
            "row has 2 cells but the header has 7 (truncated file, or a delimiter inside an "
            "unquoted value, or a value past the last column?)",
        )
    ]


def test_wrong_declared_encoding(county):
    write_csv(county / "raw/finance/q1.csv", [PAY_HEADER, *PAY_ROWS], "gb18030")
    spec = county / "sources/payment.yaml"
    spec.write_text(spec.read_text("utf-8") + "encoding: utf-8\n", "utf-8")
    assert fail_msg(county) == (
        f"{county / 'raw/finance/q1.csv'}: declared utf-8 but the bytes are not UTF-8 (it "
        "looks like GB18030/GBK). Fix: set `encoding: auto` (or gb18030) in the source file."
    )
    write_csv(county / "raw/finance/q1.csv", [PAY_HEADER, *PAY_ROWS], "utf-8")
    spec.write_text(spec.read_text("utf-8").replace("utf-8", "gb18030"), "utf-8")
    assert fail_msg(county) == (
        f"{county / 'raw/finance/q1.csv'}: declared gb18030 but the file is UTF-8; reading it "
        "as gb18030 would garble every Chinese character. Fix: set `encoding: auto` in the "
        "source file."
    )


def test_undecodable_bytes_name_the_line(county):
    good = ("\n".join([PAY_HEADER, *PAY_ROWS]) + "\n").encode("gb18030")
    (county / "raw/finance/q1.csv").write_bytes(good + b"B2,\x81\x20bad,1,1,1,1,1\n" + good)
    assert fail_msg(county) == (
        f"{county / 'raw/finance/q1.csv'}: line 6: bytes that are not valid gb18030 (illegal "
        "multibyte sequence); the file is in another encoding or damaged. Fix: re-export it as "
        "UTF-8 or GB18030, or set `encoding:` in the source file."
    )


def test_binary_garbage_named_csv(county):
    (county / "raw/finance/q1.csv").write_bytes(bytes(range(256)) * 10)
    assert fail_msg(county) == (
        f"{county / 'raw/finance/q1.csv'}: not a CSV text file (binary content in the first "
        "bytes). Fix: check the file is the right export; re-export q1.csv as CSV."
    )


def test_xlsx_renamed_csv(county):
    write_xlsx(county / "raw/finance/q1.csv", [["发放批次号"], ["B1"]])
    assert fail_msg(county) == (
        f"{county / 'raw/finance/q1.csv'}: not a CSV text file: it is a zip/xlsx workbook. "
        "Fix: export it as CSV, or set `format: xlsx` in the source file."
    )


def test_csv_renamed_xlsx(tmp_path):
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources/roster.yaml").write_text(ROSTER_YAML, "utf-8")
    write_csv(tmp_path / "raw/civil/r.xlsx", ["成员姓名", "张三"])
    assert fail_msg(tmp_path) == (
        f"{tmp_path / 'raw/civil/r.xlsx'}: not an Excel workbook (neither an .xlsx zip nor an "
        "old BIFF .xls). Fix: re-export it as .xlsx (a CSV renamed .xlsx: set `format: csv`)."
    )


def test_json_renamed_xlsx_says_format_json(tmp_path):
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources/roster.yaml").write_text(ROSTER_YAML, "utf-8")
    write_csv(tmp_path / "raw/civil/r.xlsx", ['[{"成员姓名": "张三"}]'])
    assert fail_msg(tmp_path).endswith(
        "Fix: it is JSON text: set `format: json` in the source file."
    )


def test_no_header_row_found(county):
    # the first row is data (a name, an ID number): it must not reach the message
    write_csv(county / "raw/finance/q1.csv", [f"张三丰,{ID_A},3", "1,2,3"])
    msg = fail_msg(county)
    assert msg.startswith(
        f"{county / 'raw/finance/q1.csv'}: no header row found in the first 20 rows (row 1 "
        "has 3 non-empty cell(s), none a mapped header; expected headers such as "
    )
    assert "张三丰" not in msg and ID_A not in msg


def test_file_disappearing_mid_run(county, monkeypatch):
    only(run(county), "loaded")
    write_csv(county / "raw/finance/q1.csv", [PAY_HEADER, PAY_ROWS[0]])
    real = pipeline.ingest_file

    def vanish(con, spec, raw_root, path, *a, **kw):
        path.unlink()
        return real(con, spec, raw_root, path, *a, **kw)

    monkeypatch.setattr(pipeline, "ingest_file", vanish)
    assert fail_msg(county) == (
        "finance/q1.csv: the file disappeared during the run (listed, then gone). Fix: let "
        "the export finish copying, then run ingest again; its previous version (if any) "
        "stays in the warehouse."
    )
    assert q(county, "SELECT count(*) FROM src_payment") == [(4,)]


def test_failure_mid_file_rolls_back_previous_version_intact(county, monkeypatch):
    only(run(county), "loaded")
    big = [PAY_HEADER] + [PAY_ROWS[i % 4].replace("B1", f"B{i}") for i in range(50)]
    write_csv(county / "raw/finance/q1.csv", big)
    real = pipeline.raw_staging.normalise

    def explode(con, *a, **kw):
        real(con, *a, **kw)  # the new rows are written, then the disk fails
        assert con.execute("SELECT count(*) FROM src_payment").fetchall() != [(4,)]
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(pipeline.raw_staging, "normalise", explode)
    assert fail_msg(county) == (
        "finance/q1.csv: cannot read the file (Input/output error). Fix: check it exists and "
        "is readable, then run ingest again."
    )
    assert q(county, "SELECT count(*), min(_row), max(_row) FROM src_payment") == [(4, 2, 5)]
    assert q(county, "SELECT status FROM ingest_file ORDER BY loaded_at") == [("ok",), ("failed",)]


def test_other_sources_still_load(county):
    (county / "sources/roster.yaml").write_text(ROSTER_YAML, "utf-8")
    (county / "raw/civil").mkdir()
    (county / "raw/civil/r.xlsx").write_bytes(b"\x00garbage")
    s = run(county)
    status = {r.source: r.status for r in s.results}
    assert status == {"payment": "loaded", "roster": "failed"}
    assert [r.source for r in s.failed] == ["roster"]
    assert "FAILED: " in s.render() and "TOTAL" in s.render()


def test_source_without_files_is_reported(county):
    (county / "sources/roster.yaml").write_text(ROSTER_YAML, "utf-8")
    s = run(county)
    (nofile,) = [r for r in s.results if r.status == "nofile"]
    assert nofile.message == (
        f"roster: no file matches civil/*.xlsx under {county / 'raw'}. Fix: add the export, "
        f"or correct `files:` in {(county / 'sources/roster.yaml').as_posix()}."
    )


def test_extra_cells_empty_are_fine_nonempty_are_quarantined(county, tmp_path):
    write_csv(
        county / "raw/finance/q1.csv", [PAY_HEADER + ",,", PAY_ROWS[0] + ",,", PAY_ROWS[1] + ",x"]
    )
    r = only(run(county), "loaded")
    assert (r.rows_loaded, r.rows_quarantined) == (1, 1)
    (tmp_path / "x/sources").mkdir(parents=True)
    (tmp_path / "x/sources/roster.yaml").write_text(ROSTER_YAML, "utf-8")
    write_xlsx(
        tmp_path / "x/raw/civil/r.xlsx",
        [
            ["成员姓名", "成员身份证号", "月保障金额", "救助开始日期"],
            ["张三", ID_A, 530, "2020-02-15"],
            ["李四", ID_A, 530, "2020-02-15", None, "备注"],
        ],
    )
    r = only(run(tmp_path / "x"), "loaded")
    assert (r.rows_loaded, r.rows_quarantined) == (1, 1)
    assert q(tmp_path / "x", "SELECT row, reason FROM quarantine") == [
        (
            3,
            "row has 6 cells but the header has 4 (truncated file, or a delimiter inside an "
            "unquoted value, or a value past the last column?)",
        )
    ]


def test_duplicates_found_across_batches(county, monkeypatch):
    rows = [PAY_ROWS[i % 2].replace("B1", f"B{i % 7}") for i in range(60)]
    write_csv(county / "raw/finance/q1.csv", [PAY_HEADER, *rows])
    monkeypatch.setattr(csv_reader, "BLOCK_BYTES", 300)  # a batch every few lines
    r = only(run(county), "loaded")
    assert (r.rows_loaded, r.rows_duplicate) == (60, 46)
    got = dict(q(county, "SELECT _row, _dup_of FROM src_payment"))
    first: dict[str, int] = {}
    for i, line in enumerate(rows, start=2):
        first.setdefault(line, i)
        assert got[i] == (None if first[line] == i else first[line]), i


def _reader_frames(path: Path, use_iconv: bool) -> pl.DataFrame:
    from crossmatch.ingest import readers

    aliases = {readers.norm_header(h) for h in PAY_HEADER.split(",")}
    r = readers.CsvReader(path, aliases=aliases, use_iconv=use_iconv)
    return pl.concat(list(readers.read_csv_batches(r)))


@pytest.mark.skipif(shutil.which("iconv") is None, reason="no iconv on this machine")
def test_gb18030_by_iconv_same_as_python_codec(county):
    """iconv (the fast GB18030 path) yields the same batches as Python's codec; a character
    the two tables map differently (A6D9: Python U+E78D, glibc U+FE10) falls back to Python."""
    from crossmatch.ingest import readers

    path = write_csv(county / "raw/finance/q1.csv", [PAY_HEADER, *PAY_ROWS] * 50, "gb18030")
    assert _reader_frames(path, True).equals(_reader_frames(path, False))
    odd = "B2,王\ue78d,,1,2025-01,2025/1/5,成功"
    assert b"\xa6\xd9" in odd.encode("gb18030")
    write_csv(path, [PAY_HEADER, *PAY_ROWS, odd], "gb18030")
    with pytest.raises(readers.RetryWithoutIconv):
        _reader_frames(path, True)
    r = only(run(county), "loaded")
    assert (r.rows_read, r.rows_loaded, r.encoding) == (5, 5, "gb18030")
    assert q(county, "SELECT payee_name_raw FROM src_payment WHERE _row = 6") == [("王\ue78d",)]


def test_a_file_loaded_on_a_callers_connection_leaves_no_temporary_tables(county):
    """ingest_file on a long-lived connection (the flow's, a notebook's): the stage, the line
    table and the per-field maps are dropped after the file, loaded or failed."""
    from crossmatch import warehouse
    from crossmatch.spec import load_sources

    (spec,) = load_sources(county / "sources")
    con = warehouse.connect(county / "w.duckdb")
    pipeline.ensure_schema(con)
    warehouse.ensure_table(con, spec.table, spec.columns())
    path = county / "raw/finance/q1.csv"
    r = pipeline.ingest_file(con, spec, county / "raw", path, "run1")
    assert r.status == "loaded" and r.rows_loaded == 4
    path.write_bytes(b"\x00garbage")
    assert pipeline.ingest_file(con, spec, county / "raw", path, "run2").status == "failed"
    temp = con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
    assert temp == []
    con.close()


def test_progress_reports_start_phase_and_done_for_every_loaded_file(county):
    events: list = []
    run(county, progress=events.append)
    kinds = [(e.kind, e.file) for e in events if e.kind in ("start", "phase", "done")]
    assert kinds == [
        ("start", "finance/q1.csv"),
        ("phase", "finance/q1.csv"),
        ("done", "finance/q1.csv"),
    ]
    phase = next(e for e in events if e.kind == "phase")
    assert phase.note == "4 rows read, normalising and writing" and phase.total > 0


def test_a_carriage_return_inside_a_cell_is_kept_not_dropped(county):
    """A stray CR inside a line (an Excel cell with a line break, exported badly) is text of
    its cell, as Python's csv module reads it: never silently cut (polars drops it before a
    delimiter)."""
    write_csv(
        county / "raw/finance/q1.csv",
        [PAY_HEADER, f"B1,张三\r,{ID_A},100,2025-01,2025/1/5,成功", PAY_ROWS[3]],
    )
    r = only(run(county), "loaded")
    assert (r.rows_read, r.rows_loaded) == (2, 2)
    rows = q(county, "SELECT _row, payee_name, payee_name_raw FROM src_payment ORDER BY _row")
    assert rows == [(2, "张三", "张三\r"), (3, "李四", "李四")]


def test_big_file_plan_loads_the_same_as_the_small_file_plan(tmp_path, monkeypatch):
    """From BIG_FILE_ROWS on, a fast path's helper columns are materialised per distinct value
    instead of written out in place: both plans must load the same rows (sample county). The
    only fast path with helper columns is ``id``'s: the register, the bank's accounts and one
    quarter's payments (with rows quarantined) hold every kind of ID the sample writes; the
    other quarters add rows, no other plan."""
    import duckdb

    from crossmatch.ingest import ingest, raw_staging

    sample = Path(__file__).parents[2] / "data/sample/raw"
    sources = Path(__file__).parents[2] / "sources"
    raw = tmp_path / "raw"
    files = ("hukou/户籍人口信息.csv", "bank/代发账户信息.csv", "finance/一卡通发放明细_2025Q3.csv")
    for rel in files:
        (raw / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sample / rel, raw / rel)
    only = ["hukou", "bank_account", "payment"]
    ingest(raw, sources, tmp_path / "small.duckdb", only=only)
    monkeypatch.setattr(raw_staging, "BIG_FILE_ROWS", 0)
    ingest(raw, sources, tmp_path / "big.duckdb", only=only)
    con = duckdb.connect()
    con.execute(f"ATTACH '{tmp_path / 'small.duckdb'}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{tmp_path / 'big.duckdb'}' AS b (READ_ONLY)")
    for t in ("src_hukou", "src_payment", "src_bank_account", "quarantine"):
        n = con.execute(f"SELECT count(*) FROM a.{t}").fetchall()[0][0]
        assert n > 0, t
        for x, y in (("a", "b"), ("b", "a")):
            diff = con.execute(
                f"SELECT count(*) FROM (SELECT * FROM {x}.{t} EXCEPT ALL SELECT * FROM {y}.{t})"
            ).fetchall()[0][0]
            assert diff == 0, (t, x)
