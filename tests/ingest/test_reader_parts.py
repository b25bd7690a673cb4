"""The readers' parts at their boundaries (crossmatch.ingest.readers.*): each module's job
checked on its own, without the pipeline."""

from __future__ import annotations

import codecs
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from crossmatch.errors import InputFileError
from crossmatch.ingest.readers import csv_cells, csv_dialect, encoding, gb18030_iconv, grid
from crossmatch.ingest.readers import headers as hdr
from crossmatch.ingest.readers.info import split_sheet_row

ALIASES = {hdr.norm_header(h) for h in ("姓名", "身份证号", "金额")}


# -- encoding


@pytest.mark.parametrize(
    ("data", "declared", "want"),
    [
        ("姓名,金额\n张三,1\n".encode(), "auto", "utf-8"),
        (codecs.BOM_UTF8 + "姓名\n".encode(), "auto", "utf-8-sig"),
        ("姓名,金额\n张三,1\n".encode("gb18030"), "auto", "gb18030"),
        ("姓名,金额\n张三,1\n".encode("utf-16-le"), "auto", "utf-16-le"),
        (codecs.BOM_UTF16_BE + "姓名\n".encode("utf-16-be"), "auto", "utf-16-be"),
        (b"name,amount\n", "gbk", "gb18030"),
    ],
)
def test_detect_encoding(data, declared, want):
    assert encoding.detect_encoding(Path("f.csv"), data, declared) == want


def test_a_declared_encoding_the_bytes_contradict_is_refused():
    with pytest.raises(InputFileError, match="declared gb18030 but the file is UTF-8"):
        encoding.detect_encoding(Path("f.csv"), "姓名\n".encode(), "gb18030")
    with pytest.raises(InputFileError, match="not UTF-8"):
        encoding.detect_encoding(Path("f.csv"), "姓名\n".encode("gb18030"), "utf-8")


def test_binary_content_is_refused():
    with pytest.raises(InputFileError, match="zip/xlsx workbook"):
        encoding.sniff_binary(Path("f.csv"), b"PK\x03\x04rest")
    with pytest.raises(InputFileError, match="binary content"):
        encoding.sniff_binary(Path("f.csv"), b"a,b\n\x00\x01\x02")
    encoding.sniff_binary(Path("f.csv"), "姓名,金额\n".encode())  # text: no error


def test_block_decoder_locates_bad_bytes_and_tolerates_a_truncated_end():
    dec = encoding.BlockDecoder(Path("f.csv"), "auto")
    notes: list[str] = []
    text = dec.decode("a\nb\n张".encode()[:-1], "utf-8", 10, True, notes)
    assert text == "a\nb\n\ufffd" and dec.replaced
    assert notes == ["the file ends inside a character at line 12 (truncated file?)"]
    bad = b"a\n" + "张".encode("gb18030") + b"\nc\n"
    with pytest.raises(InputFileError, match="line 2 is not UTF-8"):
        encoding.BlockDecoder(Path("f.csv"), "auto").decode(bad, "utf-8", 1, False, [])
    ascii_head = encoding.BlockDecoder(Path("f.csv"), "auto")
    ascii_head.head_non_ascii = False  # the first block was ASCII: GB18030 after all
    with pytest.raises(encoding.RetryWithEncoding) as exc:
        ascii_head.decode(bad, "utf-8", 1, False, [])
    assert exc.value.encoding == "gb18030"


def test_utf16_is_streamed_as_utf8(tmp_path):
    p = tmp_path / "u16.csv"
    text = "姓名,金额\n" + "张三,1\n" * 1000
    p.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    with p.open("rb") as fh:
        fh.read(2)  # the BOM
        out = encoding.Utf16ToUtf8(fh, "utf-16-le", p, 100).read()  # type: ignore[arg-type]
    assert out == text.encode()


# -- GB18030 by iconv


def test_glibc_differs_flags_the_characters_glibc_maps_otherwise():
    assert gb18030_iconv.glibc_differs("王\ufe10".encode())
    assert gb18030_iconv.glibc_differs("\ue7c7".encode())
    assert not gb18030_iconv.glibc_differs("王小二,张三\n".encode())


@pytest.mark.skipif(shutil.which("iconv") is None, reason="no iconv on this machine")
def test_iconv_stream_converts_and_reports_failure(tmp_path):
    exe = shutil.which("iconv")
    assert exe
    good = tmp_path / "g.csv"
    good.write_bytes("姓名\n张三\n".encode("gb18030") * 100)
    with gb18030_iconv.IconvStream(exe, good, good.stat().st_size) as conv:
        out = conv.stdout.read()
        conv.at_eof()
        assert conv.consumed() == good.stat().st_size
    assert out == "姓名\n张三\n".encode() * 100
    bad = tmp_path / "b.csv"
    bad.write_bytes("姓名\n".encode("gb18030") + b"\x81\x20\n")
    with gb18030_iconv.IconvStream(exe, bad, bad.stat().st_size) as conv:
        conv.stdout.read()
        with pytest.raises(gb18030_iconv.RetryWithoutIconv):
            conv.at_eof()


# -- headers


def test_take_header_finds_the_header_below_a_title():
    rows = [
        (1, ["2025年 花名册", None]),
        (2, ["序号", "姓名", "身份证号"]),
        (3, ["1", "张三", "x"]),
    ]
    assert hdr.take_header(Path("f"), rows, ALIASES, None) == (
        2,
        ["序号", "姓名", "身份证号"],
        "2025年 花名册",
    )
    assert hdr.take_header(Path("f"), rows, ALIASES, 3)[0] == 3  # header_row given: kept
    with pytest.raises(InputFileError, match="past the end"):
        hdr.take_header(Path("f"), rows, ALIASES, 9)


def test_take_header_two_rows_and_refusals():
    rows = [(1, ["申请人", None, "金额"]), (2, ["姓名", "身份证号", None])]
    hr, cells, _ = hdr.take_header(Path("f"), rows, ALIASES, None, depth=2)
    assert (hr, cells) == (2, ["姓名", "身份证号", "金额"])
    with pytest.raises(InputFileError, match="no header row found in the first 20 rows"):
        hdr.take_header(Path("f"), [(1, ["a", "b"])], ALIASES, None)
    with pytest.raises(InputFileError, match="old Mac line ends"):
        hdr.take_header(Path("f"), [(1, ["姓名", "金额\r1"])], ALIASES, None)


# -- CSV dialect


def test_resolve_delimiter_reads_a_tab_file_mapped_as_csv(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("姓名\t身份证号\t金额\n张三\t1\t2\n", encoding="utf-8")
    d, note = csv_dialect.resolve_delimiter(p, "auto", ",", None, ALIASES)
    assert d == "\t" and note and "read as tab-separated" in note
    assert csv_dialect.resolve_delimiter(p, "auto", "auto", None, ALIASES) == ("\t", None)


def test_csv_head_reads_a_plain_head_and_declines_an_odd_one(tmp_path):
    p = tmp_path / "h.csv"
    p.write_bytes("花名册\n姓名,身份证号,金额\n张三,1,2\n".encode("gb18030"))
    info = csv_dialect.csv_head(p, aliases=ALIASES)
    assert info is not None
    assert (info.encoding, info.header_row, info.header, info.title, info.delimiter) == (
        "gb18030",
        2,
        ["姓名", "身份证号", "金额"],
        "花名册",
        ",",
    )
    p.write_text('姓名,身份证号,金额\n"张\n三",1,2\n', encoding="utf-8")  # quoted line break
    assert csv_dialect.csv_head(p, aliases=ALIASES) is None


# -- cells


BLOCK = (
    "姓名,身份证号,金额\n"
    '张三,"1,2",3\n'  # a quoted delimiter
    '"小"二,4,5\n'  # irregular quoting: the csv module's reading
    "李四,6\n"  # short: 2 fields
    "王五,7,8,,\n"  # trailing empty cells: still 3
    " , ,\n"  # blank
    "赵六,9,10,11\n"  # long: 4 fields
).encode()


def _fast(sp: csv_cells.LineSplitter, data: bytes) -> pl.DataFrame:
    scan = sp.scan(data, 1)
    assert scan is not None
    assert sp.head_rows(scan)[0] == (1, ["姓名", "身份证号", "金额"])
    out = sp.fast_cells(scan, 3)
    assert out is not None
    return out


def test_fast_and_general_paths_split_alike():
    sp = csv_cells.LineSplitter(Path("f.csv"), ",")
    fast = _fast(sp, BLOCK).filter(pl.col("_row") > 1)
    lines = sp.lines(BLOCK)
    df = pl.DataFrame({"_row": pl.Series(range(1, len(lines) + 1), dtype=pl.Int32), "_line": lines})
    irr = sp.irregular(df, open_tail=False)
    assert list(irr) == [2]
    general = sp.cells(BLOCK, df, irr, 3)
    general = general.filter(pl.col("_line").str.strip_chars(" \t\r,") != "", pl.col("_row") > 1)
    cols = ["_row", "_nf", "c0", "c1", "c2"]
    assert fast.select(cols).equals(general.select(cols))
    assert fast.select(cols).rows() == [
        (2, 3, "张三", "1,2", "3"),
        (3, 3, "小二", "4", "5"),
        (4, 2, "李四", "6", None),
        (5, 3, "王五", "7", "8"),
        (7, 4, "赵六", "9", "10"),
    ]
    assert fast["_raw_line"].to_list() == [None, None, "李四,6", None, "赵六,9,10,11"]


def test_parse_line_and_records_spanning_lines():
    sp = csv_cells.LineSplitter(Path("f.csv"), ",")
    assert sp.parse_line('a,"b,c"', 1) == (["a", "b,c"], True)
    assert sp.parse_line('a,"b\rc"', 1) == (["a", "b\rc"], True)  # a lone CR is a character
    assert sp.parse_line('a,"b', 1)[1] is False
    with pytest.raises(csv_cells.NeedsCsvModule):
        sp.scan('姓名,金额\n张三,"1\n2"\n'.encode(), 1)


def test_irregular_lines_marks_only_non_rfc_quoting():
    data = b'a,"b",c\n"x"y,z\n"p""q",r\n'
    arr = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(arr == 10)
    starts = np.concatenate(([0], ends[:-1] + 1))
    mask = csv_cells.irregular_lines(arr, np.flatnonzero(arr == 34), starts, ends, ord(","))
    assert mask is not None and mask.tolist() == [False, True, False]


def test_widen_counts_fields_without_trailing_empties():
    df = pl.DataFrame(
        {"_row": [2, 3], "_fields": [["a", "b", "", " "], ["a"]], "_line": ["a,b,, ", "a"]},
        schema={"_row": pl.Int32, "_fields": pl.List(pl.String), "_line": pl.String},
    )
    out = csv_cells.widen(df, 2)
    assert out.select("_nf", "c0", "c1").rows() == [(2, "a", "b"), (1, "a", None)]


# -- grids (sheets, HTML tables, JSON)


def test_sheet_from_frame_and_batches():
    frame = pl.DataFrame(
        {
            "a": ["县花名册", "姓名", "张三", None],
            "b": [None, "金额", "1", None],
            "c": [None, None, "x", None],
        }
    )
    sh = grid.sheet_from_frame(Path("b.xlsx"), frame, 3, "S1", 0, None, ALIASES, must=True)
    assert isinstance(sh, grid.Sheet)
    assert (sh.part.header_row, sh.part.header, sh.part.title) == (4, ["姓名", "金额"], "县花名册")
    (b,) = list(grid.sheet_batches(sh, [0, 1], 2, 1 << 20))
    # a value past the header's last column: 3 fields (quarantined); the empty row dropped
    assert b.select("_row", "_nf", "c0", "c1").rows() == [((1 << 20) | 5, 3, "张三", "1")]
    assert split_sheet_row(b["_row"][0]) == (1, 5)
    skipped = grid.sheet_from_frame(
        Path("b.xlsx"), frame.head(1), 1, "S2", 1, None, ALIASES, must=False
    )
    assert skipped == "sheet 'S2' has no row naming the mapped headers"


def test_control_bytes_counts_what_sniff_binary_refuses():
    import random

    rnd = random.Random(5)
    for _ in range(50):
        data = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 400)))
        assert encoding.control_bytes(data) == sum(b < 9 or 13 < b < 32 for b in data)
