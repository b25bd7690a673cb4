"""The two ways a CSV is staged load the same warehouse.

DuckDB stages a clean CSV itself (``raw_staging.stage_csv``); anything it cannot stage exactly
raises
``NotStageable`` and the Python readers read the file instead. :func:`ingest_both` ingests a raw
folder twice, normally (a spy records which files DuckDB staged) and with ``stage_csv`` forced
to raise (every CSV through the readers), and compares the two warehouses: every ``src_*``
table and ``quarantine`` as multisets of rows (all columns), and ``ingest_file`` per file.

Speed (a file costs ~0.1 s per path, whatever its size): every case lives in one raw folder
ingested once per path (module fixture), and the row-level cases share one file, each case
on its own lines; each test compares its own file, or its own lines of the shared file."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from build_cache import INPUTS, cached_build
from crossmatch.ingest import ingest, raw_staging

from .conftest import ID_A, PAY_HEADER, PAY_ROWS, PAYMENT_YAML

REPO = Path(__file__).resolve().parents[2]
SAMPLE_RAW = REPO / "data/sample/raw"
HAS_ICONV = shutil.which("iconv") is not None
STAGED = "staged"
FALLBACK = "NotStageable"  # any reason (stage_csv words it)

# a failed file's hash is recorded only if the background hash finished before the failure
# (pipeline: racy), so it is not compared for failed files
FILE_COLS = (
    "source, file, status, CASE WHEN status = 'failed' THEN NULL ELSE hash END AS hash, "
    "encoding, header_row, rows_read, rows_loaded, rows_quarantined, rows_duplicate, message"
)

_CONS: dict[Path, duckdb.DuckDBPyConnection] = {}


def _rows(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    """Query a finished warehouse (read-only connections kept open: opening one costs more
    than the queries)."""
    if db not in _CONS:
        _CONS[db] = duckdb.connect(str(db), read_only=True)
    return _CONS[db].execute(sql, params or []).fetchall()


@pytest.fixture(autouse=True, scope="module")
def _close_connections():
    yield
    while _CONS:
        _CONS.popitem()[1].close()


def _tables(db: Path) -> list[str]:
    return sorted(
        t
        for (t,) in _rows(db, "SELECT table_name FROM information_schema.tables")
        if t.startswith("src_") or t == "quarantine"
    )


def _diff(name: str, duck: Counter, py: Counter) -> str:
    only_duck = sorted((duck - py).elements(), key=repr)
    only_py = sorted((py - duck).elements(), key=repr)
    lines = [f"{name} differs:"]
    lines += [f"  DuckDB path only:  {r!r}" for r in only_duck[:10]]
    lines += [f"  readers path only: {r!r}" for r in only_py[:10]]
    return "\n".join(lines)


@dataclass
class Both:
    """The two warehouses of one raw folder and what ``stage_csv`` did in the normal run:
    ``seen`` maps file (relative to raw) -> "staged" or "NotStageable: <reason>"; a file
    absent from it never reached ``stage_csv`` (``csv_head`` sent it to the readers)."""

    duck: Path
    py: Path
    seen: dict[str, str]

    def assert_same_rows(self, file: str | None = None, lines: range | None = None) -> None:
        """Every ``src_*`` table and ``quarantine`` hold the same rows (of ``file`` only,
        and of its physical ``lines`` only, when given)."""
        assert _tables(self.duck) == _tables(self.py)
        for t in _tables(self.duck):
            f, r = ("file", '"row"') if t == "quarantine" else ("_file", "_row")
            cond, params = ["true"], []
            if file:
                cond.append(f"{f} = ?")
                params.append(file)
            if lines:
                cond.append(f"{r} BETWEEN ? AND ?")
                params += [lines.start, lines.stop - 1]
            sql = f'SELECT * FROM "{t}" WHERE {" AND ".join(cond)}'
            duck = Counter(_rows(self.duck, sql, params))
            py = Counter(_rows(self.py, sql, params))
            assert duck == py, _diff(t, duck, py)

    def assert_same_files(self, file: str | None = None, *, loaded: bool = True) -> None:
        """``ingest_file`` agrees (status, encoding, header row, counts, message)."""
        where, params = (" WHERE file = ?", [file]) if file else ("", [])
        sql = f"SELECT {FILE_COLS} FROM ingest_file{where} ORDER BY source, file"
        files = _rows(self.duck, sql, params)
        assert files == _rows(self.py, sql, params)
        assert files, f"{file}: not ingested"
        if loaded:
            assert [f for f in files if f[2] != "ok"] == []

    def assert_same(self, file: str | None = None, *, loaded: bool = True) -> None:
        self.assert_same_rows(file)
        self.assert_same_files(file, loaded=loaded)


def outcome(both: Both, rel: str) -> str | None:
    """staged / NotStageable / None (stage_csv never called) for ``rel`` in the normal run."""
    got = both.seen.get(rel)
    return got.split(":")[0] if got else None


def ingest_both(root: Path, sources: Path | None = None, *, check: bool = True) -> Both:
    """Ingest ``root/raw`` into ``root/duck.duckdb`` normally and into ``root/py.duckdb``
    with every CSV forced through the Python readers; with ``check``, assert the two
    warehouses are identical and every file loaded."""
    raw, sources = root / "raw", sources or root / "sources"
    seen: dict[str, str] = {}
    real = raw_staging.stage_csv

    def spy(con, path, *args, **kwargs):
        rel = Path(path).relative_to(raw).as_posix()
        try:
            n = real(con, path, *args, **kwargs)
        except raw_staging.NotStageable as exc:
            seen[rel] = f"NotStageable: {exc}"
            raise
        seen[rel] = STAGED
        return n

    forced_files: set[str] = set()

    def forced(con, path, *args, **kwargs):
        forced_files.add(Path(path).relative_to(raw).as_posix())
        raise raw_staging.NotStageable("forced")

    both = Both(root / "duck.duckdb", root / "py.duckdb", seen)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(raw_staging, "stage_csv", spy)
        ingest(raw, sources, both.duck)
        mp.setattr(raw_staging, "stage_csv", forced)
        ingest(raw, sources, both.py)
    # the same files reached stage_csv in both runs (the patch really took effect)
    assert forced_files == set(seen)
    if check:
        both.assert_same()
    return both


def text(*lines: str, eol: str = "\n", end: bool = True, enc: str = "utf-8") -> bytes:
    return (eol.join(lines) + (eol if end else "")).encode(enc)


def row(
    batch: str = "B1",
    name: str = "张三",
    pid: str = ID_A,
    amount: str = "350",
    period: str = "2025-01",
    date: str = "2025/1/5",
    status: str = "成功",
    sep: str = ",",
) -> str:
    return sep.join((batch, name, pid, amount, period, date, status))


H = PAY_HEADER
R0, R1, R2, R3 = PAY_ROWS
MANY = [row(f"M{i}") for i in range(30)]  # pushes a line past csv_head's first 20 lines
ODD_GB = row("B2", name="王\ue78d", pid="", amount="1")  # A6D9: Python U+E78D, glibc U+FE10
TAB_H = H.replace(",", "\t")

# Row-level cases: all in SHARED_FILE (LF, UTF-8), each on its own lines. Batch codes are
# unique per case so that no row duplicates another case's row.
ROW_CASES: dict[str, list[str]] = {
    "quoted_delimiters": [
        row("Q1", amount='"1,200.00"'),
        row("Q2", name='"张,三"', amount='"2,000"'),
        row('"Q3"', status='"成功"'),
    ],
    "escaped_quotes": [
        row("E1", name='"张""三"', amount='"1,200.00"'),
        row("E2", name='"""李四"""', amount='"""5"""'),
        row('"E""3"', amount='"1,""2"'),
        row("E4", name='"王五"', status='"成""功"'),
    ],
    "empty_quoted_cells": [
        row("EQ1", name='""', period='""', status='""'),
        row('""', pid='""', date='""'),
        row("EQ3", name='""', amount='"1,200"'),
    ],
    "blank_lines": ["", "   ", ",,,,,,", " , ,\t,", "", ",,,", "\t", "  ,", row("BL1"), "", ""],
    "blank_looking_lines": ['"",""', "\u3000", '""', "\xa0,", row("BL2")],
    "trailing_cells_beyond_header": [
        row("T1") + ",",
        row("T2") + ",,",
        row("T3") + ",x",
        row("T4") + ", ,",
        row("T5", amount='"1,200.00"') + ",",
        row("T6") + ',""',
        row("T7") + ",,x,",
        row("T8") + ",\t",
    ],
    "short_rows": [f"S1,张三,{ID_A}", "S2", 'S3,"a,b"', row("S4")[: -len(",成功")]],
    "duplicates": [
        row("D1"),
        row("D1"),
        row("D2", amount="abc"),  # quarantined, and duplicated
        row("D2", amount="abc"),
        "D3,short",
        "D3,short",
        row("D4", amount='"1,200.00"'),
        row("D1"),
        row("D4", amount='"1,200.00"'),
        row("D2", amount="abc"),
    ],
    "required_field_empty": [row("R1", amount=""), row("R2", amount="  "), row("R3", amount="\t")],
    "unparseable_values": [
        row("P1", amount="abc"),
        row("P2", date="2025-13-45"),
        row("P3", period="xx"),
        row("P4", pid="123"),
        row("P5", amount="1.2.3", date="tomorrow"),
        row("P6", status="未知"),
    ],
    "whitespace_cells": [
        row("W1", name="  ", pid=" ", period="\t"),
        row(" W2 ", name=" 张三 ", amount=" 350 ", status=" 成功"),
        row("\u3000W3", name="\u3000李四\u3000"),
        row("W4", name='" 王五 "', amount='" 1,200 "'),
    ],
}
SHARED_FILE = "finance/rows.csv"
SHARED: list[str] = [H]
CASE_LINES: dict[str, range] = {}
for _name, _lines in ROW_CASES.items():
    CASE_LINES[_name] = range(len(SHARED) + 1, len(SHARED) + 1 + len(_lines))
    SHARED += _lines

# File-level cases: file content, and what stage_csv does with it in the normal run
# (None: never called)
FILE_CASES: dict[str, tuple[bytes, str | None]] = {
    "crlf": (text(H, *PAY_ROWS, "", row("B2", amount='"1,000"'), eol="\r\n"), STAGED),
    "mixed_line_ends": (
        (H + "\r\n" + R0 + "\n" + R1 + "\r\n" + "\n" + R3 + "\n" + row("B2") + "\r\n").encode(),
        STAGED,
    ),
    "utf8_bom_crlf": (b"\xef\xbb\xbf" + text(H, *PAY_ROWS, eol="\r\n"), STAGED),
    "utf8_bom_on_a_title_row": (
        b"\xef\xbb\xbf" + text("2025年第一季度一卡通发放明细,,,,,,", "", H, *PAY_ROWS),
        STAGED,
    ),
    # a first line with more cells than the header (polars used to refuse the block)
    "title_row_longer_than_the_header": (text("一卡通发放明细,,,,,,,,,,", H, *PAY_ROWS), STAGED),
    "title_row_and_quoted_header": (
        text("一卡通发放明细（财政局）", ",".join(f'"{h}"' for h in H.split(",")), *PAY_ROWS),
        STAGED,
    ),
    "header_with_trailing_cells": (
        text(H + ",,", R1 + ",,", R3, row("B2") + ",,,", R0 + ",x"),
        STAGED,
    ),
    "no_trailing_newline": (text(H, *PAY_ROWS, end=False), STAGED),
    "no_trailing_newline_crlf_quoted_last": (
        text(H, R1, row(amount='"1,200"'), eol="\r\n", end=False),
        STAGED,
    ),
    "no_trailing_newline_blank_last": (text(H, R1, "  ", end=False), STAGED),
    # irregular quoting (a quote inside a cell): the readers' handling is the reference
    "quote_inside_unquoted_cell": (
        text(H, row(name='张"三"'), row(name='王"小"二'), row('U"3"', name='a"b"c'), R1),
        FALLBACK,
    ),
    # the csv module's reading (polars refuses `"小"二`): 小二, 1,200 and 张"三丰
    "quoted_cell_then_text": (
        text(
            H,
            row(name='"小"二'),
            row(amount='"1,2"00'),
            row(name='"张""三"丰'),
            R1,
            row(name="小二"),  # the same cells as line 2: an exact duplicate
        ),
        FALLBACK,
    ),
    # see test_space_before_a_quote_does_not_shift_cells
    "space_before_quote": (text(H, row(amount=' "1,200"'), row(name=' "张三"'), R1), FALLBACK),
    # irregular lines past csv_head's first lines, one with an odd number of quotes (a
    # literal quote: a record of its own, not a value spanning lines), one with a lone CR
    "irregular_quotes_later": (
        text(
            H,
            *MANY,
            row(name='张"三'),
            row(name='"李"四', status="成\r功"),
            row(amount='"1,2"00') + ",",
            row(amount='"1,2"00') + ',"x"y',
            R1,
        ),
        FALLBACK,
    ),
    # the last line opens a quote and has no line end: read as the csv module does (the
    # value runs to the end of the file: 2 cells, a shape quarantine), not refused as a
    # value spanning lines past the first block
    "unclosed_quote_on_the_last_line": (text(H, R1, row(name='"张三'), end=False), None),
    # empty cells are NULL in the stage whichever path, quoted or not
    "empty_quoted_required_cell": (text(H, row(amount='""'), R1), STAGED),
    # exact duplicates: same shape and same cells (trailing empty cells do not count)
    "duplicate_with_trailing_empty_cell": (text(H, R1, R1 + ","), STAGED),
    "duplicate_quoted_and_unquoted": (
        text(H, row(), row(batch='"B1"'), row(name='"张三"')),
        STAGED,
    ),
    # fallbacks: the readers load these (exactly as in the forced run)
    "control_bytes": (text(H, R1, row(name="张\x01三"), row("B2", name="李\x02四")), FALLBACK),
    "lone_cr_past_the_head": (
        text(H, *MANY, row(name="张\r三"), R1 + "\r\r", R3),
        FALLBACK,
    ),
    # csv_head sees the odd quotes in the first lines: straight to the readers
    "quoted_line_break_top": (text(H, row(name='"张\n三"'), R1, R3), None),
    "quoted_line_break_later_crlf": (
        text(H, *MANY, row(name='"张\r\n三"'), R1, eol="\r\n"),
        FALLBACK,
    ),
    "truncated_inside_a_character": (text(H, R1, R3).rstrip(b"\n")[:-2], None),
}
if HAS_ICONV:
    FILE_CASES["gb18030"] = (
        text(H, *PAY_ROWS, row(name='"王,五"'), "", row(name=" 赵六"), enc="gb18030"),
        STAGED,
    )
    FILE_CASES["gb18030_crlf_title"] = (
        text("一卡通发放明细", H, *PAY_ROWS, eol="\r\n", enc="gb18030"),
        STAGED,
    )
    FILE_CASES["gb18030_glibc_maps_differently"] = (
        text(H, *PAY_ROWS, ODD_GB, enc="gb18030"),
        FALLBACK,
    )

# the same spec with a tab delimiter (files *.txt), source `paytab`
TAB_YAML = PAYMENT_YAML.replace("source: payment", "source: paytab").replace(
    "files: [finance/*.csv]", 'files: [finance/*.txt]\ndelimiter: "\\t"'
)
TAB_CASES: dict[str, tuple[bytes, str | None]] = {
    "tab_delimiter": (
        text(
            TAB_H,
            row(amount="1,200.00", sep="\t"),  # a comma is plain text here
            row(name='"张\t三"', amount='"1,200"', sep="\t"),
            row(name='"李""四"', sep="\t"),
            "\t\t\t",
            "",
            "  \t ",
            row("B2", sep="\t") + "\t",
            row("B3", sep="\t") + "\tx",
            "B4\t王五",
            row(name="  ", sep="\t"),
            row(name='"王五"', amount="", sep="\t"),
            row(sep="\t"),
            row(sep="\t"),
            "B5" + "\t" * 6,  # fewer content bytes than tabs: not a blank line
            "王五\t\t\t\t\t\t\t\t\t",
        ),
        STAGED,
    ),
    "tab_delimiter_crlf_bom": (
        b"\xef\xbb\xbf" + text(TAB_H, *(r.replace(",", "\t") for r in (R1, R3)), eol="\r\n"),
        STAGED,
    ),
}


def _build_folder(root: Path) -> None:
    (root / "sources").mkdir()
    (root / "sources/payment.yaml").write_text(PAYMENT_YAML, encoding="utf-8")
    (root / "sources/paytab.yaml").write_text(TAB_YAML, encoding="utf-8")
    (root / "raw/finance").mkdir(parents=True)
    (root / "raw" / SHARED_FILE).write_bytes(text(*SHARED))
    for name, (content, _) in FILE_CASES.items():
        (root / f"raw/finance/{name}.csv").write_bytes(content)
    for name, (content, _) in TAB_CASES.items():
        (root / f"raw/finance/{name}.txt").write_bytes(content)
    both = ingest_both(root, check=False)
    (root / "seen.json").write_text(json.dumps(both.seen), encoding="utf-8")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Both:
    """Every case in one raw folder, ingested both ways (compared by the tests); read only.
    Built once per version of the code and of this file's cases (tests/build_cache.py: ~7 s
    per run otherwise), once per iconv availability (the readers' GB18030 path uses it)."""
    inputs = (*INPUTS, "tests/ingest/test_stage_paths.py", "tests/ingest/conftest.py")
    name = f"stage-paths-iconv{int(HAS_ICONV)}"
    root = cached_build(tmp_path_factory, name, _build_folder, inputs)
    seen = json.loads((root / "seen.json").read_text(encoding="utf-8"))
    return Both(root / "duck.duckdb", root / "py.duckdb", seen)


@pytest.mark.parametrize("name", list(ROW_CASES))
def test_row_case_loads_the_same_both_ways(folder, name):
    lines = CASE_LINES[name]
    folder.assert_same_rows(SHARED_FILE, lines)
    n = _rows(
        folder.duck,
        "SELECT (SELECT count(*) FROM src_payment WHERE _file = $1 AND _row BETWEEN $2 AND $3)"
        ' + (SELECT count(*) FROM quarantine WHERE file = $1 AND "row" BETWEEN $2 AND $3)',
        [SHARED_FILE, lines.start, lines.stop - 1],
    )[0][0]
    assert n == len([x for x in ROW_CASES[name] if x.strip(" \t,")])  # no line lost


def test_shared_file_counts_the_same_and_staged_by_duckdb(folder):
    folder.assert_same_files(SHARED_FILE)
    assert folder.seen.get(SHARED_FILE) == STAGED


@pytest.mark.parametrize("name", list(FILE_CASES))
def test_file_case_loads_the_same_both_ways(folder, name):
    rel = f"finance/{name}.csv"
    folder.assert_same(rel)
    assert outcome(folder, rel) == FILE_CASES[name][1], folder.seen.get(rel)


@pytest.mark.parametrize("name", list(TAB_CASES))
def test_tab_delimited_case_loads_the_same_both_ways(folder, name):
    rel = f"finance/{name}.txt"
    folder.assert_same(rel)
    assert outcome(folder, rel) == TAB_CASES[name][1], folder.seen.get(rel)


def test_every_case_was_ingested(folder):
    n = _rows(folder.duck, "SELECT count(*) FROM ingest_file")[0][0]
    assert n == 1 + len(FILE_CASES) + len(TAB_CASES)
    for t in ("src_payment", "src_paytab", "quarantine"):
        assert _rows(folder.duck, f"SELECT count(*) FROM {t}")[0][0] > 0


def test_glibc_character_loaded_as_python_decodes_it(folder):
    if not HAS_ICONV:
        pytest.skip("no iconv on this machine")
    sql = "SELECT payee_name_raw FROM src_payment WHERE _file = ? AND _row = 6"
    got = _rows(folder.duck, sql, ["finance/gb18030_glibc_maps_differently.csv"])
    assert got == [("王\ue78d",)]


def _loaded(both: Both, file: str, col: str) -> dict[int, str]:
    """``_row`` -> ``col`` of the rows of ``file`` loaded by the readers (forced run)."""
    sql = f"SELECT _row, {col} FROM src_payment WHERE _file = ?"
    return dict(_rows(both.py, sql, [file]))


def _quarantined(both: Both, file: str) -> dict[int, str]:
    sql = 'SELECT "row", reason FROM quarantine WHERE file = ?'
    return dict(_rows(both.py, sql, [file]))


def test_space_before_a_quote_does_not_shift_cells(folder):
    """`B1,张三,<id>, "1,200",...`: a quote after a space opens no quoted value (csv module,
    DuckDB's split): 8 cells, a shape quarantine (the readers used to count 7 cells by quote
    parity but take polars' cells, split at the comma, losing 成功)."""
    file = "finance/space_before_quote.csv"
    assert [r[:16] for r in _quarantined(folder, file).values()] == ["row has 8 cells "]
    assert _loaded(folder, file, "payee_name_raw") == {3: ' "张三"', 4: "張偉"}


def test_irregular_quotes_read_as_the_csv_module(folder):
    """A quote inside or after a quoted cell: the csv module's reading, line by line, with
    exact row numbers (polars used to refuse the file); the rest of the file as before."""
    file = "finance/quoted_cell_then_text.csv"
    assert _loaded(folder, file, "payee_name_raw") == {
        2: "小二",
        3: "张三",
        4: '张"三丰',
        5: "張偉",
        6: "小二",
    }
    assert _loaded(folder, file, "amount")[3] == Decimal("1200")
    assert _quarantined(folder, file) == {}
    dup = "SELECT rows_duplicate FROM ingest_file WHERE file = ?"
    assert _rows(folder.py, dup, [file]) == [(1,)]  # line 6 = line 2, however quoted


def test_irregular_quotes_past_the_first_lines(folder):
    """An odd number of quotes (a literal quote: not a value spanning lines), a lone CR and
    cells beyond the header, on irregular lines among regular ones."""
    file = "finance/irregular_quotes_later.csv"
    names = _loaded(folder, file, "payee_name_raw")
    assert len(names) == 30 + 4
    assert (names[32], names[33], names[36]) == ('张"三', "李四", "張偉")
    assert _loaded(folder, file, "amount")[34] == Decimal("1200")  # a trailing empty cell
    assert {r: q[:16] for r, q in _quarantined(folder, file).items()} == {35: "row has 8 cells "}


def test_unclosed_quote_on_the_last_line(folder):
    file = "finance/unclosed_quote_on_the_last_line.csv"
    assert {r: q[:16] for r, q in _quarantined(folder, file).items()} == {3: "row has 2 cells "}


@pytest.mark.parametrize(
    "content",
    [
        text(H, R1, row(name="张\r三"), R3),  # a lone CR in csv_head's first lines
        text(H, R1, R3, eol="\r"),  # old Mac line ends: every CR is lone
    ],
    ids=["lone_cr_in_the_head", "cr_only_line_ends"],
)
def test_lone_carriage_return_in_the_first_lines(tmp_path, content):
    """Own folder, because ``ingest`` itself used to raise csv.Error on these (the readers
    parsed the first lines with the csv module, which refuses a lone CR). csv_head still
    gives up on them, so stage_csv is never called; the readers load a stray CR as a
    character, and refuse a file with CR-only line ends, saying so; the other files load."""
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources/payment.yaml").write_text(PAYMENT_YAML, encoding="utf-8")
    (tmp_path / "raw/finance").mkdir(parents=True)
    (tmp_path / "raw/finance/q1.csv").write_bytes(content)
    (tmp_path / "raw/finance/q2.csv").write_bytes(text(H, R1, R3))
    both = ingest_both(tmp_path, check=False)
    both.assert_same(loaded=False)
    assert both.seen == {"finance/q2.csv": STAGED}
    sql = "SELECT file, status, message FROM ingest_file ORDER BY file"
    (_, status, message), q2 = _rows(both.duck, sql)
    assert q2 == ("finance/q2.csv", "ok", "")
    if b"\n" in content:
        assert status == "ok"
    else:
        assert status == "failed"
        assert message.endswith(
            "q1.csv: the header row (line 1) holds a carriage return (CR) that ends no line: "
            "the file seems to use old Mac line ends (CR only), which cannot be read. Fix: "
            "re-export it with CRLF (Windows) or LF line ends."
        )


@pytest.mark.skipif(not SAMPLE_RAW.is_dir(), reason="sample county not generated")
@pytest.mark.slow  # the sample county ingested twice
def test_sample_county_both_ways(tmp_path):
    """The sample county's 24 files: identical warehouses; DuckDB staged every CSV."""
    (tmp_path / "raw").symlink_to(SAMPLE_RAW, target_is_directory=True)
    both = ingest_both(tmp_path, REPO / "sources")
    files = sorted(p.relative_to(SAMPLE_RAW).as_posix() for p in SAMPLE_RAW.rglob("*.*"))
    assert len(files) == 24
    assert both.seen == {f: STAGED for f in files if f.endswith(".csv")}
