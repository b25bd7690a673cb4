"""Readers: turn one raw file (CSV / .xlsx / Parquet) into batches of raw text cells.

Every reader yields polars DataFrames with the same three columns, whatever the format:

* ``_row``    Int32, the physical row a person sees in Excel or a text editor (contract
  section 2: CSV line number with the header on line 1; xlsx sheet row; Parquet record + 1);
* ``_fields`` List[String], the cells of that row (NULL for an empty cell);
* ``_line``   String, the row's raw text (CSV line; cells joined for xlsx/Parquet): used for
  exact-duplicate detection.

A row's field count may differ from the header's; the pipeline quarantines it. Readers decide
the encoding, find the header row and raise :class:`InputFileError` with the file named and
what to do when a file cannot be read at all.

Why not ``polars.read_csv``/DuckDB ``read_csv``: we need the physical line number of every row
(lineage), ragged rows kept for quarantine instead of an error or silent padding, and GB18030,
which neither reads. So CSV is decoded in large blocks with Python's codecs (C speed) and split
into lines and cells by polars string kernels; only files with quoted line breaks fall back to
Python's csv module. A line whose quoting is not RFC 4180 (``"小"二``, ``a, "b,c"``) is split
by the csv module on its own; a lone carriage return is an ordinary character (a file with
CR-only line ends is refused, saying so).

GB18030 files are decoded by ``iconv`` in a separate process when it is installed (~2.5x
faster than Python's codec, and off the main thread); whenever iconv fails or meets one of
the few characters glibc maps differently, the file is read again with Python's codec, so the
loaded text and the error messages are exactly those of the Python path.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import html
import io
import re
import shutil
import subprocess
import threading
import unicodedata
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from crossmatch.errors import InputFileError

BLOCK_BYTES = 16 * 1024 * 1024  # decode/split unit for CSV: bounds memory on huge exports
XLSX_BATCH_ROWS = 200_000
HEADER_SCAN_ROWS = 20
_BOMS = {codecs.BOM_UTF8: "utf-8-sig"}
_LONE_CR = re.compile("\r(?!\n)")


def norm_header(h: object) -> str:
    """Header comparison form: NFKC (（）-> ()), no spaces, no BOM."""
    if h is None:
        return ""
    return re.sub(r"[\s\ufeff]+", "", unicodedata.normalize("NFKC", str(h)))


class RetryWithEncoding(Exception):
    """Raised when an auto-detected UTF-8 file turns out not to be UTF-8 past the first block."""

    def __init__(self, encoding: str):
        super().__init__(encoding)
        self.encoding = encoding


class RetryWithoutIconv(RetryWithEncoding):
    """iconv could not reproduce Python's gb18030 decoding of this file (bad or truncated
    bytes, or a character the two map differently): read it again with Python's codec, which
    also words the message for bad bytes."""


# GB18030 decoding by iconv (glibc) runs in its own process at ~2.5x the speed of Python's
# codec. The two tables agree on every byte sequence except these: glibc follows GB18030-2005
# where Python keeps the 2000 mapping (private-use code points). glibc's side of each differing
# pair is below; a block holding one is re-read with Python's codec, so results never change.
# (glibc also rejects 18 four-byte sequences Python accepts: iconv fails, same fallback.)
GLIBC_DIFFERENT_CODEPOINTS = (
    0x1E3F,
    *range(0x9FB4, 0x9FBC),
    0xE7C7,
    *range(0xFE10, 0xFE1A),
    0x20087,
    0x20089,
    0x200CC,
    0x215D7,
    0x2298F,
    0x241FE,
)
_GLIBC_ONLY_SUPPLEMENTARY = tuple(
    chr(c).encode("utf-8") for c in GLIBC_DIFFERENT_CODEPOINTS if c > 0xFFFF
)


def _glibc_differs(utf8: bytes) -> bool:
    """True when iconv's UTF-8 output holds a character Python's gb18030 maps differently
    (GLIBC_DIFFERENT_CODEPOINTS, tested here byte-wise with numpy for speed)."""
    if b"\xee\x9f\x87" in utf8:  # U+E7C7
        return True
    if b"\xf0" in utf8 and any(g in utf8 for g in _GLIBC_ONLY_SUPPLEMENTARY):
        return True
    arr = np.frombuffer(utf8, dtype=np.uint8)
    if len(arr) < 3:
        return False
    mid = arr[1:-1]
    p = np.flatnonzero(mid == 0xBE)  # U+9FB4-9FBB = E9 BE B4..BB
    if len(p):
        third = arr[p + 2]
        if ((arr[p] == 0xE9) & (third >= 0xB4) & (third <= 0xBB)).any():
            return True
    p = np.flatnonzero(mid == 0xB8)  # U+1E3F = E1 B8 BF; U+FE10-FE19 = EF B8 90..99
    if len(p):
        first, third = arr[p], arr[p + 2]
        hit = ((first == 0xE1) & (third == 0xBF)) | (
            (first == 0xEF) & (third >= 0x90) & (third <= 0x99)
        )
        if hit.any():
            return True
    return False


@dataclass
class ReadInfo:
    """What a reader learnt about the file (filled while reading)."""

    encoding: str | None = None
    header_row: int = 1
    header: list[str] = field(default_factory=list)
    size: int = 0
    notes: list[str] = field(default_factory=list)
    delimiter: str = ","  # the delimiter used (CSV; detected when `auto` or when needed)
    title: str = ""  # text of the rows above the header (cells joined by spaces)
    # workbook sheets read (``sheets:``): one entry per sheet, in order; the staged ``_row`` of
    # sheet k is (k << SHEET_ROW_BITS) | physical row (see :func:`split_sheet_row`)
    parts: list[SheetPart] = field(default_factory=list)


SHEET_ROW_BITS = 20  # 1,048,576 rows: Excel's limit; sheet k's rows are staged as k << 20 | row
SHEET_ROW_MASK = (1 << SHEET_ROW_BITS) - 1


@dataclass
class SheetPart:
    """One sheet of a workbook read with ``sheets:``: its name, header and title."""

    name: str
    index: int
    header_row: int
    header: list[str]
    title: str = ""


def title_text(rows: Sequence[tuple[int, Sequence[object]]], header_row: int) -> str:
    """The title rows' text: the non-empty cells of the rows above the header."""
    out = []
    for r, cells in rows:
        if r < header_row:
            out += [str(c).strip() for c in cells if c is not None and str(c).strip()]
    return " ".join(out)


def header_score(rows: Sequence[tuple[int, list[str | None]]], aliases: set[str]) -> int:
    """How many mapped headers the best of the first rows names (0: no header found)."""
    best = 0
    for _, cells in rows[:HEADER_SCAN_ROWS]:
        best = max(best, sum(1 for c in cells if norm_header(c) in aliases))
    return best


def pick_header_row(
    rows: Sequence[tuple[int, list[str | None]]], aliases: set[str], depth: int = 1
) -> tuple[int, list[str]] | None:
    """The header: among the first rows, the one naming the most mapped headers (first wins).

    Handles a title row above the header (xlsx rosters, other counties' layouts). With
    ``depth`` 2 the header is two consecutive rows (a group header above sub-headers, see
    :func:`two_row_header`) and the row number returned is the second (the data follow it)."""
    got = _pick_header(rows, aliases, depth)
    return None if got is None else (got[0], got[1])


def _pick_header(
    rows: Sequence[tuple[int, list[str | None]]], aliases: set[str], depth: int
) -> tuple[int, list[str], int] | None:
    """(last header row, cells, first header row) of the best-scoring header, or None."""
    best: tuple[int, int, list[str], int] | None = None
    scan = list(rows[:HEADER_SCAN_ROWS])
    for k, (rownum, cells) in enumerate(scan):
        top = rownum
        if depth == 2:
            if k + 1 >= len(scan):
                break
            rownum, cells = scan[k + 1][0], two_row_header(cells, scan[k + 1][1], aliases)
        names = [norm_header(c) for c in cells]
        score = sum(1 for n in names if n in aliases)
        if score and (best is None or score > best[0]):
            best = (score, rownum, [str(c or "").strip().lstrip("\ufeff") for c in cells], top)
    return None if best is None else (best[1], best[2], best[3])


def two_row_header(
    upper: Sequence[object], lower: Sequence[object], aliases: set[str] = frozenset()
) -> list[str]:
    """One header from a two-row one (``header_rows: 2``): a group header above sub-headers.

    A merged group cell holds its text in its first column and nothing in the others, so an
    empty upper cell continues the group on its left, up to the first column whose sub-header
    is empty too (a column merged over both rows, named by its upper cell). Each column is
    named ``group/sub``; where that is not a mapped header but ``sub`` alone is, ``sub`` (so a
    mapping may name a unique sub-header alone); a column with no sub-header is its group's
    text; one with no group is its sub-header."""
    width = max(len(upper), len(lower))

    def cell(row: Sequence[object], i: int) -> str:
        v = row[i] if i < len(row) else None
        return "" if v is None else str(v).strip().lstrip("\ufeff")

    out: list[str] = []
    group = ""
    for i in range(width):
        up, sub = cell(upper, i), cell(lower, i)
        if not sub:  # merged over both rows (or an empty column): ends any group
            out.append(up)
            group = ""
            continue
        if up:
            group = up
        if not group or norm_header(group) == norm_header(sub):
            out.append(sub)
            continue
        both = f"{group}/{sub}"
        if norm_header(both) not in aliases and norm_header(sub) in aliases:
            out.append(sub)
        else:
            out.append(both)
    return out


def find_header(
    path: Path,
    rows: Sequence[tuple[int, list]],
    aliases: set[str],
    header_row: int | None,
    depth: int = 1,
) -> tuple[int, list[str], int] | None:
    """(last header row, header cells, first header row): ``header_row`` (the first row of the
    header) when given, else found by :func:`pick_header_row`; None when not found."""
    if header_row is None:
        return _pick_header(rows, aliases, depth)
    at = [k for k, (r, _c) in enumerate(rows) if r == header_row]
    if not at or at[0] + depth - 1 >= len(rows):
        raise InputFileError(f"{path}: header_row {header_row} is past the end of the file.")
    k = at[0]
    if depth == 2:
        cells = two_row_header(rows[k][1], rows[k + 1][1], aliases)
        return rows[k + 1][0], cells, header_row
    return header_row, [str(c or "").strip() for c in rows[k][1]], header_row


# ----------------------------------------------------------------------------- CSV


def sniff_binary(path: Path, head: bytes) -> None:
    """Refuse files that are not text, saying what they look like."""
    name = path.name
    if head.startswith(b"PK\x03\x04"):
        raise InputFileError(
            f"{path}: not a CSV text file: it is a zip/xlsx workbook. "
            f"Fix: export it as CSV, or set `format: xlsx` in the source file."
        )
    if utf16_kind(head):
        return
    sample = head[:65536]
    if b"\x00" in sample or (
        sample and sum(b < 9 or 13 < b < 32 for b in sample) / len(sample) > 0.01
    ):
        raise InputFileError(
            f"{path}: not a CSV text file (binary content in the first bytes). "
            f"Fix: check the file is the right export; re-export {name} as CSV."
        )


def utf16_kind(head: bytes) -> str | None:
    """``utf-16-le`` / ``utf-16-be`` when the bytes are UTF-16 (a BOM, or without one the
    zero high bytes of mostly-ASCII text: tabs, digits, line ends), else None."""
    if head.startswith(codecs.BOM_UTF16_LE) and not head.startswith(b"\xff\xfe\x00\x00"):
        return "utf-16-le"
    if head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be"
    sample = head[:4096]
    if len(sample) < 8:
        return None
    even, odd = sample[0::2], sample[1::2]
    ze, zo = even.count(0) / len(even), odd.count(0) / len(odd)
    if zo > 0.3 and ze < 0.05:
        return "utf-16-le"
    if ze > 0.3 and zo < 0.05:
        return "utf-16-be"
    return None


def detect_encoding(path: Path, head: bytes, declared: str) -> str:
    """The codec for a CSV: BOM, else UTF-8 if the first block decodes, else GB18030.

    UTF-16 (a BOM, or the zero bytes of UTF-16 text) gives ``utf-16-le`` / ``utf-16-be``.

    A GBK/GB18030 file must never load as mojibake: valid UTF-8 Chinese text is practically
    never valid GB18030 text meant otherwise, so 'UTF-8 first' is safe; a declared
    encoding that contradicts the bytes is an error, not a guess."""
    u16 = utf16_kind(head)
    if declared.startswith("utf-16"):
        if u16 is None:
            raise InputFileError(
                f"{path}: declared {declared} but the bytes are not UTF-16. Fix: set "
                f"`encoding: auto` in the source file."
            )
        has_bom16 = head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
        return u16 if has_bom16 or declared == "utf-16" else declared
    if u16 is not None:
        if declared != "auto":
            raise InputFileError(
                f"{path}: declared {declared} but the file is {u16.upper()}. Fix: set "
                f"`encoding: auto` (or {u16}) in the source file."
            )
        return u16
    has_bom = head.startswith(codecs.BOM_UTF8)
    utf8_ok = _utf8_prefix_ok(head)
    non_ascii = any(b >= 0x80 for b in head[:65536])
    if declared == "auto":
        if has_bom:
            return "utf-8-sig"
        if not utf8_ok:
            _refuse_mixed(path, head)
        return "utf-8" if utf8_ok else "gb18030"
    if declared in ("utf-8", "utf-8-sig"):
        if not (utf8_ok or has_bom):
            raise InputFileError(
                f"{path}: declared {declared} but the bytes are not UTF-8 (it looks like "
                f"GB18030/GBK). Fix: set `encoding: auto` (or gb18030) in the source file."
            )
        return "utf-8-sig" if has_bom else "utf-8"
    # gb18030 / gbk declared
    if has_bom or (utf8_ok and non_ascii):
        raise InputFileError(
            f"{path}: declared {declared} but the file is UTF-8"
            f"{' with BOM' if has_bom else ''}; reading it as {declared} would garble every "
            f"Chinese character. Fix: set `encoding: auto` in the source file."
        )
    return "gb18030"  # superset of GBK: GBK lacks some name characters


_CJK = re.compile("[\u3400-\u9fff]")


def _refuse_mixed(path: Path, head: bytes) -> None:
    """A head that is UTF-8 Chinese text up to some line and not UTF-8 from there on is a
    mixed file: say so at that line (read as GB18030 it would fail, or garble, at line 1).
    Two CJK characters of valid UTF-8 first: GB18030 text practically never yields them."""
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = head[: exc.start].decode("utf-8", errors="replace")
        if len(_CJK.findall(before)) >= 2:
            line = head.count(b"\n", 0, exc.start) + 1
            raise InputFileError(
                f"{path}: mixed encodings: the file starts as UTF-8 but line {line} is not "
                f"UTF-8 ({exc.reason}). Fix: re-export the whole file in one encoding (UTF-8 "
                f"or GB18030)."
            ) from exc


def _utf8_prefix_ok(head: bytes) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


DELIMITERS = (",", "\t", ";", "|")
_DELIM_NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "|"}


def resolve_delimiter(
    path: Path, encoding: str, declared: str, header_row: int | None, aliases: set[str]
) -> tuple[str, str | None]:
    """The delimiter to read a CSV with, and a note when it is not the declared one.

    ``auto``: the one of comma, tab, semicolon, | whose split of the first lines names the most
    mapped headers (comma on a tie; with no header found, the most frequent one in line 1). A
    declared delimiter is kept unless the header does not split on it while another one
    finds it (a tab-separated export mapped as CSV)."""
    fallback = "," if declared == "auto" else declared
    try:
        with path.open("rb") as fh:
            head = fh.read(1 << 16)
        enc = detect_encoding(path, head, encoding)
    except (OSError, InputFileError):
        return fallback, None  # the reader words the problem
    text = head.decode(enc, errors="replace").lstrip("\ufeff")
    lines = [ln.rstrip("\r") for ln in text.split("\n")[:HEADER_SCAN_ROWS]]

    def score(d: str) -> int:
        try:
            rows = list(enumerate(csv.reader(lines, delimiter=d), 1))
        except csv.Error:
            return 0
        if header_row is not None:
            rows = [r for r in rows if r[0] == header_row]
        return header_score(rows, aliases)

    if declared != "auto":
        if not aliases or score(declared) > 0:
            return declared, None
        others = [d for d in DELIMITERS if d != declared]
        scores = {d: score(d) for d in others}
        best = max(others, key=lambda d: scores[d])
        if scores[best] > 0:
            return best, (
                f"the header does not split on the declared delimiter "
                f"({_DELIM_NAMES.get(declared, declared)}): read as {_DELIM_NAMES[best]}-separated"
            )
        return declared, None
    scores = {d: score(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: scores[d])
    if scores[best] == 0:
        first = lines[0] if lines else ""
        best = max(DELIMITERS, key=first.count) if any(d in first for d in DELIMITERS) else ","
    return best, None


class _Utf16ToUtf8(io.RawIOBase):
    """A UTF-16 file read as UTF-8 bytes (streamed, so the block reader splits lines on
    ``\n`` bytes as for any UTF-8 file)."""

    def __init__(self, fh: io.BufferedReader, encoding: str, path: Path):
        self.fh, self.enc, self.path = fh, encoding, path
        self.dec = codecs.getincrementaldecoder(encoding)("strict")
        self.buf = b""
        self.lines = 1
        self.eof = False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:  # type: ignore[override]
        while (n < 0 or len(self.buf) < n) and not self.eof:
            chunk = self.fh.read(BLOCK_BYTES)
            self.eof = not chunk
            try:
                text = self.dec.decode(chunk, final=self.eof)
            except UnicodeDecodeError as exc:
                raise InputFileError(
                    f"{self.path}: after line {self.lines}: bytes that are not valid "
                    f"{self.enc} ({exc.reason}; a truncated or damaged file?). Fix: re-export "
                    f"the file (as UTF-8, GB18030 or UTF-16 with its BOM)."
                ) from exc
            self.lines += text.count("\n")
            self.buf += text.encode("utf-8")
        if n < 0:
            out, self.buf = self.buf, b""
        else:
            out, self.buf = self.buf[:n], self.buf[n:]
        return out


def _line_of_byte(data: bytes, pos: int, first_line: int) -> int:
    return first_line + data.count(b"\n", 0, pos)


class CsvReader:
    """Block-wise CSV reader (see module docstring)."""

    def __init__(
        self,
        path: Path,
        *,
        encoding: str = "auto",
        delimiter: str = ",",
        header_row: int | None = None,
        aliases: set[str] | None = None,
        on_progress: Callable[[int], None] | None = None,
        use_iconv: bool = True,
        header_rows: int = 1,
    ):
        self.path = path
        self.use_iconv = use_iconv
        self.declared = encoding
        self.header_row = header_row
        self.header_rows = header_rows
        self.aliases = aliases or set()
        delimiter, self.delimiter_note = resolve_delimiter(
            path, encoding, delimiter, header_row, self.aliases
        )
        self.delimiter = delimiter
        self.on_progress = on_progress
        self.info = ReadInfo(delimiter=delimiter)
        self._replaced = False
        self._head_non_ascii = True
        d = re.escape(delimiter)
        self._cell_re = f'{d}(?:"(?:[^"]|"")*"|[^{d}]*)'
        x = f"\\U{ord(delimiter):08X}"  # the delimiter for polars' (Rust) regex
        cell = f'(?:[^"{x}]*|"(?:[^"]|"")*")'
        self._rfc_re = f"^{cell}(?:{x}{cell})*$"  # a line whose quoting is RFC 4180

    # -- public
    def batches(self) -> Iterator[pl.DataFrame]:
        """Yield batches of rows after the header; fills ``self.info`` as it goes."""
        size = self.path.stat().st_size
        self.info.size = size
        with self.path.open("rb") as fh:
            head = fh.read(min(BLOCK_BYTES, 1 << 20))
            if not head:
                raise InputFileError(
                    f"{self.path}: the file is empty (0 bytes). "
                    f"Fix: re-export it from the department system; the previous version "
                    f"(if any) stays in the warehouse."
                )
            sniff_binary(self.path, head)
            enc = detect_encoding(self.path, head, self.declared)
            self._head_non_ascii = any(b >= 0x80 for b in head)
            self.info.encoding = enc
            self.info.delimiter = self.delimiter
            if self.delimiter_note and self.delimiter_note not in self.info.notes:
                self.info.notes.append(self.delimiter_note)
            if enc.startswith("utf-16"):  # transcoded to UTF-8 on the fly, then as usual
                fh.seek(0)
                yield from self._blocks(_Utf16ToUtf8(fh, enc, self.path), "utf-8", size)  # type: ignore[arg-type]
                return
            exe = shutil.which("iconv") if enc == "gb18030" and self.use_iconv else None
            if exe:
                yield from self._iconv_blocks(exe, size)
                return
            fh.seek(0)
            yield from self._blocks(fh, enc, size)

    def _iconv_blocks(self, exe: str, size: int) -> Iterator[pl.DataFrame]:
        """GB18030 -> UTF-8 by iconv in its own process (fed by a thread that counts the
        bytes for progress); any failure or differing character raises RetryWithoutIconv."""
        proc = subprocess.Popen(
            [exe, "-f", "GB18030", "-t", "UTF-8"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert proc.stdin is not None and proc.stdout is not None
        stdin, fed = proc.stdin, [0]

        def feed() -> None:
            try:
                with self.path.open("rb") as src:
                    while chunk := src.read(1 << 22):
                        stdin.write(chunk)
                        fed[0] += len(chunk)
            except OSError:  # iconv stopped (bad bytes) or the file vanished: seen at EOF
                fed[0] = -1
            finally:
                with contextlib.suppress(OSError):
                    stdin.close()

        feeder = threading.Thread(target=feed, name="iconv-feed", daemon=True)
        feeder.start()

        def at_eof() -> None:
            feeder.join()
            if proc.wait() != 0 or fed[0] != size:
                raise RetryWithoutIconv("gb18030")

        try:
            yield from self._blocks(
                proc.stdout,  # type: ignore[arg-type]
                "utf-8",
                size,
                transcoded=(lambda: max(fed[0], 0), at_eof),
            )
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()
            proc.wait()
            feeder.join()

    # -- internals
    def _decode(self, data: bytes, enc: str, first_line: int, final: bool) -> str:
        try:
            return data.decode(enc)
        except UnicodeDecodeError as exc:
            line = _line_of_byte(data, exc.start, first_line)
            if final and exc.start >= len(data.rstrip(b"\r\n")) - 4:
                self.info.notes.append(
                    f"the file ends inside a character at line {line} (truncated file?)"
                )
                self._replaced = True
                return data.decode(enc, errors="replace")
            if self.declared == "auto" and enc.startswith("utf-8"):
                if not self._head_non_ascii:
                    raise RetryWithEncoding("gb18030") from exc
                raise InputFileError(
                    f"{self.path}: mixed encodings: the file starts as UTF-8 but line {line} "
                    f"is not UTF-8 ({exc.reason}). Fix: re-export the whole file in one "
                    f"encoding (UTF-8 or GB18030)."
                ) from exc
            raise InputFileError(
                f"{self.path}: line {line}: bytes that are not valid {enc} "
                f"({exc.reason}); the file is in another encoding or damaged. Fix: re-export "
                f"it as UTF-8 or GB18030, or set `encoding:` in the source file."
            ) from exc

    def _blocks(
        self,
        fh: io.BufferedReader,
        enc: str,
        size: int,
        transcoded: tuple[Callable[[], int], Callable[[], None]] | None = None,
    ) -> Iterator[pl.DataFrame]:
        """Blocks of whole lines -> wide batches. ``transcoded`` = (bytes of the file consumed,
        end-of-input check) when ``fh`` is iconv's UTF-8 output rather than the file."""
        carry = b""
        next_line = 1
        header_done = False
        done = 0
        while True:
            chunk = fh.read(BLOCK_BYTES)
            final = not chunk
            if final and transcoded is not None:
                transcoded[1]()  # before the last block: a failed iconv must not be parsed
            data = carry + chunk
            if not final:
                cut = data.rfind(b"\n")
                if cut < 0:
                    carry = data
                    continue
                carry, data = data[cut + 1 :], data[: cut + 1]
            else:
                carry = b""
            if not data:
                break
            if transcoded is not None:  # iconv's output: valid UTF-8 by construction
                if _glibc_differs(data):
                    raise RetryWithoutIconv("gb18030")
                utf8 = data[3:] if next_line == 1 and data.startswith(codecs.BOM_UTF8) else data
            else:
                text = self._decode(data, enc, next_line, final)
                if next_line == 1 and text.startswith("\ufeff"):
                    text = text[1:]
                if enc.startswith("utf-8") and not self._replaced:
                    utf8 = data[3:] if next_line == 1 and data.startswith(codecs.BOM_UTF8) else data
                else:
                    utf8 = text.encode("utf-8")
                del text
            fast = self._fast_block(utf8, next_line, header_done)
            if fast is not None:
                df, n_lines = fast
            else:  # the general path: lines as strings, then cells
                lines = self._lines(utf8)
                n_lines = len(lines)
                df = pl.DataFrame(
                    {
                        "_row": pl.int_range(next_line, next_line + n_lines, eager=True).cast(
                            pl.Int32
                        ),
                        "_line": lines,
                    }
                )
                irr = self._irregular(df, open_tail=not utf8.endswith(b"\n"))
                if not header_done:
                    self._take_header_lines(df)
                df = self._cells(utf8, df, irr)
                blank = pl.col("_line").str.strip_chars(" \t\r" + self.delimiter) == ""
                df = df.filter(~blank)
            header_done = True
            next_line += n_lines
            df = df.filter(pl.col("_row") > self.info.header_row)
            done = transcoded[0]() if transcoded is not None else done + len(data)
            if self.on_progress:
                self.on_progress(done)
            if len(df):
                yield df
            if final:
                break
        if not header_done:
            raise InputFileError(f"{self.path}: no header row found.")

    def _fast_block(
        self, utf8: bytes, first_line: int, header_done: bool
    ) -> tuple[pl.DataFrame, int] | None:
        """Cells by polars' CSV parser; line boundaries and field counts from numpy over the
        bytes (no per-line strings). Irregularly quoted lines (see :meth:`_parse_line`) are
        blanked for polars and parsed by the csv module. Returns None when the general path
        must be used."""
        delim = self.delimiter.encode("utf-8")
        if len(delim) != 1 or not utf8:
            return None
        arr = np.frombuffer(utf8, dtype=np.uint8)
        ends = np.flatnonzero(arr == 10)
        if not utf8.endswith(b"\n"):
            ends = np.append(ends, len(arr))
        starts = np.concatenate(([0], ends[:-1] + 1))
        n = len(ends)

        def per_line(pos: np.ndarray) -> np.ndarray:
            return np.searchsorted(pos, ends) - np.searchsorted(pos, starts)

        def text(i: int) -> str:
            return utf8[starts[i] : ends[i]].decode("utf-8").rstrip("\r")

        qpos = np.flatnonzero(arr == 34)
        irr: list[int] = []
        if len(qpos):
            irr_mask = _irregular_lines(arr, qpos, starts, ends, delim[0])
            if irr_mask is not None:
                irr = np.flatnonzero(irr_mask).tolist()
                qpos = qpos[~irr_mask[np.searchsorted(ends, qpos)]]
        # a CR inside a line (not one ending it): polars would cut it from its cell; the csv
        # module reads it as text, like every irregular line
        crpos = np.flatnonzero(arr == 13)
        if len(crpos):
            cr_line = np.searchsorted(ends, crpos)
            maybe = np.unique(cr_line[crpos + 1 != ends[cr_line]])  # not right before a LF
            inner = [i for i in maybe.tolist() if "\r" in text(i)]  # not `\r\r\n` either
            if inner:
                irr = sorted(set(irr) | set(inner))
        parsed = [self._parse_line(text(i), first_line + i) for i in irr]
        # a quoted value spans lines; except on the file's last line with no line end after
        # it: the csv module reads that value to the end of the file, as line by line
        open_tail = not utf8.endswith(b"\n")
        for i, (_, complete) in zip(irr, parsed, strict=True):
            if not complete and not (open_tail and i == n - 1):
                raise _NeedsCsvModule
        dpos = np.flatnonzero(arr == delim[0])
        # a blank line holds nothing but delimiters, spaces and line-end bytes (counted per
        # line: the positions of these few bytes, never of every content byte)
        blanks = (arr == 32) | (arr == 9) | (arr == 13)
        if delim[0] in (32, 9, 13):  # a tab delimiter is a blank: count it once
            filler = per_line(np.flatnonzero(blanks))
        else:
            filler = per_line(dpos) + per_line(np.flatnonzero(blanks))
        content = (ends - starts) - filler
        if len(qpos):
            # every other line holds regular quoting, hence an even number of quotes: the
            # parity of all quotes before a delimiter tells whether it sits inside a quoted
            # value, no per-line parsing
            dpos = dpos[np.searchsorted(qpos, dpos) % 2 == 0]
        nf = per_line(dpos) + 1
        for i, (fields, _) in zip(irr, parsed, strict=True):
            nf[i] = len(fields)

        if not header_done:
            head = [text(i) for i in range(min(n, HEADER_SCAN_ROWS))]
            self._pick_header(
                [
                    (first_line + i, self._parse_line(t, first_line + i)[0])
                    for i, t in enumerate(head)
                ]
            )
        width = len(self.info.header)
        if irr:  # polars may refuse these lines or split them differently: spaces instead
            buf = bytearray(utf8)
            view = np.frombuffer(buf, dtype=np.uint8)
            for s, e in zip(starts[irr].tolist(), ends[irr].tolist(), strict=True):
                view[s:e] = 32
            data: bytes | bytearray = buf
        else:
            data = utf8
        cells = self._polars_cells(data, width)
        if cells is None or len(cells) != n:
            return None
        if irr:
            cells = _scatter_cells(cells, irr, [f for f, _ in parsed], width)
        raw: list[str | None] = [None] * n
        for i in np.flatnonzero(nf != width).tolist():
            line = text(i)
            if nf[i] > width:  # trailing empty cells beyond the header are harmless
                nf[i] = max(self._count_stripped(line, first_line + i), width)
            if nf[i] != width:
                raw[i] = line
        df = cells.with_columns(
            pl.int_range(first_line, first_line + n, dtype=pl.Int32).alias("_row"),
            pl.Series("_nf", nf, dtype=pl.Int32),
            pl.Series("_raw_line", raw, dtype=pl.String),
        )
        return df.filter(pl.Series(content > 0)), n

    def _polars_cells(self, data: bytes | bytearray, width: int) -> pl.DataFrame | None:
        """c0..c{width-1} of every line by polars' CSV parser (ragged lines cut or padded);
        None if polars refuses the block (the caller then splits the lines itself)."""
        try:
            return pl.read_csv(
                io.BytesIO(data),
                has_header=False,
                separator=self.delimiter,
                quote_char='"',
                schema={f"c{i}": pl.String for i in range(width)},
                truncate_ragged_lines=True,
                missing_columns="insert",
                extra_columns="ignore",  # a long first line would raise otherwise
                raise_if_empty=False,
            )
        except pl.exceptions.PolarsError:
            return None

    def _parse_line(self, line: str, row: int) -> tuple[list[str], bool]:
        """The cells of one physical line by Python's csv module, and whether the line is a
        complete record (False: it ends inside a quoted value, continued on the next line).

        The reference for lines whose quoting is not RFC 4180 (``"小"二`` -> 小二, ``"1,2"00``
        -> 1,200, ``a "b,c"`` -> two cells: a quote not at the start of a cell is a
        character). A lone carriage return is an ordinary character (the csv module would
        raise); never raises csv.Error."""
        ph = ""
        if "\r" in line:
            ph = next(chr(c) for c in range(0xE000, 0x110000) if chr(c) not in line)
            line = line.replace("\r", ph)
        try:
            recs = list(csv.reader([line, ""], delimiter=self.delimiter))
        except csv.Error as exc:  # a cell longer than csv.field_size_limit()
            raise InputFileError(
                f"{self.path}: line {row}: cannot split the line into cells ({exc}). Fix: "
                f"check the quotes on that line (a missing quote makes one cell swallow the "
                f"rest of the line) and re-export the file."
            ) from exc
        fields = recs[0] if recs else []
        if ph:
            fields = [f.replace(ph, "\r") for f in fields]
        return fields, len(recs) == 2

    def _count_stripped(self, line: str, row: int) -> int:
        """Cells of ``line`` once trailing delimiters and blanks are removed."""
        return len(self._parse_line(line.rstrip(" \t" + self.delimiter), row)[0])

    def _lines(self, utf8: bytes) -> pl.Series:
        """Physical lines of a block (polars' reader with no quoting and an unused separator
        is ~5x faster than splitting a Python string; blank lines are kept)."""
        if b"\x1f" not in utf8:
            s = pl.read_csv(
                io.BytesIO(utf8),
                has_header=False,
                separator="\x1f",
                quote_char=None,
                schema={"_line": pl.String},
                raise_if_empty=False,
            )["_line"]
            if len(s) == utf8.count(b"\n") + (0 if utf8.endswith(b"\n") else 1):
                return s.fill_null("").str.strip_suffix("\r")
        text = utf8.decode("utf-8")
        s = pl.Series("_line", [text]).str.split("\n").explode()
        if text.endswith("\n"):
            s = s.slice(0, len(s) - 1)
        return s.str.strip_suffix("\r")

    def _take_header_lines(self, df: pl.DataFrame) -> None:
        head = df.head(HEADER_SCAN_ROWS)
        rows = [
            (r, self._parse_line(line.rstrip("\r"), r)[0])
            for r, line in zip(head["_row"].to_list(), head["_line"].to_list(), strict=True)
        ]
        self._pick_header(rows)

    def _pick_header(self, rows: list[tuple[int, list]]) -> None:
        picked = find_header(self.path, rows, self.aliases, self.header_row, self.header_rows)
        if picked is None:
            raise no_header_error(self.path, rows, self.aliases)
        hr, cells, top = picked
        if any(_LONE_CR.search(str(c)) for r, row in rows if r == hr for c in row if c):
            raise InputFileError(
                f"{self.path}: the header row (line {hr}) holds a carriage return (CR) that ends "
                f"no line: the file seems to use old Mac line ends (CR only), which cannot be "
                f"read. Fix: re-export it with CRLF (Windows) or LF line ends."
            )
        self.info.header_row, self.info.header = hr, cells
        self.info.title = title_text(rows, top)

    def _count_fields(self, e: pl.Expr, quoted: bool) -> pl.Expr:
        if not quoted:
            return e.str.count_matches(self.delimiter, literal=True) + 1
        return (pl.lit(self.delimiter) + e).str.extract_all(self._cell_re).list.len()

    def _irregular(self, lines: pl.DataFrame, open_tail: bool) -> dict[int, list[str]]:
        """Position in ``lines`` -> csv-module cells, for the lines whose quoting is not
        RFC 4180 (see :meth:`_parse_line`); raises _NeedsCsvModule when such a line ends
        inside a quoted value (a record spanning lines), unless it is the last line and
        ``open_tail`` (the file's last line, with no line end after it)."""
        odd = (
            lines.with_row_index("_i")
            .filter(
                (
                    pl.col("_line").str.contains('"', literal=True)
                    & ~pl.col("_line").str.contains(self._rfc_re)
                )
                | pl.col("_line").str.strip_chars_end("\r").str.contains("\r", literal=True)
            )
            .select("_i", "_row", "_line")
        )
        out: dict[int, list[str]] = {}
        for i, r, line in odd.iter_rows():
            fields, complete = self._parse_line(line.rstrip("\r"), r)
            if not complete and not (open_tail and i == len(lines) - 1):
                raise _NeedsCsvModule
            out[i] = fields
        return out

    def _cells(self, utf8: bytes, lines: pl.DataFrame, irr: dict[int, list[str]]) -> pl.DataFrame:
        """Wide batch: _row, _line, _nf (field count), c0..c{width-1} (polars' CSV parser;
        the csv module for the irregular lines ``irr``)."""
        width = len(self.info.header)
        if len(self.delimiter.encode("utf-8")) != 1:  # polars needs a one-byte separator
            return widen(self._split(lines, irr), width, self.delimiter)
        data = utf8
        if irr:  # polars may refuse these lines or split them differently: empty lines
            idx = pl.Series(list(irr), dtype=pl.UInt32)
            joined = lines.with_row_index("_i").select(
                pl.when(pl.col("_i").is_in(idx.implode()))
                .then(pl.lit(""))
                .otherwise(pl.col("_line"))
                .str.join("\n")
            )
            data = (joined.item() + "\n").encode("utf-8")
        cells = self._polars_cells(data, width)
        if cells is None or len(cells) != len(lines):  # the list path is always right
            return widen(self._split(lines, irr), width, self.delimiter)
        q = pl.col("_line").str.contains('"', literal=True)
        stripped = pl.col("_line").str.strip_chars_end(" \t" + self.delimiter)
        nf = (
            pl.when(q)
            .then(self._count_fields(pl.col("_line"), True))
            .otherwise(self._count_fields(pl.col("_line"), False))
        )
        nf_stripped = (
            pl.when(q)
            .then(self._count_fields(stripped, True))
            .otherwise(self._count_fields(stripped, False))
        )
        has_q = lines.select(q.any()).item()
        if not has_q:
            nf, nf_stripped = (
                self._count_fields(pl.col("_line"), False),
                self._count_fields(stripped, False),
            )
        df = lines.with_columns(nf.cast(pl.Int32).alias("_nf"))
        # trailing empty cells beyond the header are harmless (Excel-made CSVs have them)
        long = pl.col("_nf") > width
        df = df.with_columns(
            pl.when(long)
            .then(pl.max_horizontal(nf_stripped.cast(pl.Int32), pl.lit(width, pl.Int32)))
            .otherwise(pl.col("_nf"))
            .alias("_nf")
        )
        if irr:
            rows = df["_row"]
            nfs = []
            for i, fields in irr.items():
                k = len(fields)
                if k > width:
                    k = max(self._count_stripped(df["_line"][i].rstrip("\r"), rows[i]), width)
                nfs.append(k)
            df = df.with_columns(df["_nf"].clone().scatter(list(irr), nfs))
            cells = _scatter_cells(cells, list(irr), list(irr.values()), width)
        return pl.concat([df, cells], how="horizontal")

    def _split(self, df: pl.DataFrame, irr: dict[int, list[str]] | None = None) -> pl.DataFrame:
        """Cells of each line: a plain split, a quote-aware regex for quoted lines and the
        given csv-module cells for the irregularly quoted lines ``irr``."""
        quoted = pl.col("_line").str.contains('"', literal=True)
        df = df.with_row_index("_i").with_columns(quoted.alias("_q"))
        plain = df.filter(~pl.col("_q")).select(
            "_row", pl.col("_line").str.split(self.delimiter).alias("_fields"), "_line"
        )
        parts = [plain]
        if irr:
            idx = pl.Series(list(irr), dtype=pl.UInt32).implode()
            odd = df.filter(pl.col("_i").is_in(idx)).sort("_i")
            parts.append(
                odd.select(
                    "_row",
                    pl.Series("_fields", [irr[i] for i in sorted(irr)], pl.List(pl.String)),
                    "_line",
                )
            )
            df = df.filter(~pl.col("_i").is_in(idx))
        q = df.filter(pl.col("_q"))
        if len(q):
            unquoted = pl.element().str.slice(1)
            dequote = (
                pl.when(unquoted.str.starts_with('"') & unquoted.str.ends_with('"'))
                .then(unquoted.str.slice(1).str.strip_suffix('"').str.replace_all('""', '"'))
                .otherwise(unquoted)
            )
            cells = (pl.lit(self.delimiter) + pl.col("_line")).str.extract_all(self._cell_re)
            parts.append(q.select("_row", cells.list.eval(dequote).alias("_fields"), "_line"))
        if len(parts) == 1:
            return plain
        return pl.concat(parts).sort("_row")

    def _take_header(self, df: pl.DataFrame) -> pl.DataFrame:
        head = df.head(HEADER_SCAN_ROWS)
        rows = list(zip(head["_row"].to_list(), head["_fields"].to_list(), strict=True))
        self._pick_header(rows)
        return df.filter(pl.col("_row") > self.info.header_row)

    def slow_batches(self) -> Iterator[pl.DataFrame]:
        """Python csv module path for files with quoted line breaks (rare, slower)."""
        enc = self.info.encoding or "utf-8"
        raw = self.path.read_bytes()
        self.info.size = len(raw)
        text = self._decode(raw, enc, 1, True)
        if text.startswith("\ufeff"):
            text = text[1:]
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter)
        rows: list[tuple[int, list[str], str]] = []
        start = 1
        try:
            for rec in reader:
                rows.append((start, rec, self.delimiter.join(rec)))
                start = reader.line_num + 1
        except csv.Error as exc:  # a cell longer than csv.field_size_limit()
            raise InputFileError(
                f"{self.path}: line {start}: cannot split the file into cells ({exc}). Fix: "
                f"check the quotes from that line on (a missing quote makes one cell swallow "
                f"the rest of the file) and re-export the file."
            ) from exc
        df = pl.DataFrame(
            {
                "_row": [r[0] for r in rows],
                "_fields": [r[1] for r in rows],
                "_line": [r[2] for r in rows],
            },
            schema={"_row": pl.Int32, "_fields": pl.List(pl.String), "_line": pl.String},
        )
        df = self._take_header(df)
        df = df.filter(
            pl.col("_line").str.replace_all(f"[\\s{re.escape(self.delimiter)}]", "") != ""
        )
        if len(df):
            yield df


def csv_head(
    path: Path,
    *,
    encoding: str = "auto",
    delimiter: str = ",",
    header_row: int | None = None,
    aliases: set[str] | None = None,
    header_rows: int = 1,
) -> ReadInfo | None:
    """Encoding and header row of a CSV from its first megabyte, for DuckDB to read the rest.

    None whenever anything is unusual (empty, binary, undecodable head, no header found,
    quoted line breaks near the top ...): :class:`CsvReader` then reads the file and words
    the problem exactly as before."""
    try:
        with path.open("rb") as fh:
            head = fh.read(1 << 20)
            more = bool(fh.read(1))
        if not head:
            return None
        sniff_binary(path, head)
        enc = detect_encoding(path, head, encoding)
        if enc.startswith("utf-16"):  # DuckDB reads UTF-8 only: the readers transcode it
            return None
        cut = head.rfind(b"\n") if more else len(head)
        if cut < 0:
            return None
        text = head[:cut].decode(enc)
        lines = [ln.rstrip("\r") for ln in text.lstrip("\ufeff").split("\n")[:HEADER_SCAN_ROWS]]
        if any(ln.count('"') % 2 for ln in lines):
            return None
        r = CsvReader(
            path,
            encoding=encoding,
            delimiter=delimiter,
            header_row=header_row,
            aliases=aliases,
            header_rows=header_rows,
        )
        r._pick_header([(i + 1, c) for i, c in enumerate(csv.reader(lines, delimiter=r.delimiter))])
    except (InputFileError, UnicodeDecodeError, OSError, csv.Error):
        return None
    r.info.encoding = enc
    if r.delimiter_note:
        r.info.notes.append(r.delimiter_note)
    return r.info


class _NeedsCsvModule(Exception):
    """A value contains a line break inside quotes: use the csv-module path."""


def _irregular_lines(
    arr: np.ndarray, qpos: np.ndarray, starts: np.ndarray, ends: np.ndarray, delim: int
) -> np.ndarray | None:
    """Per line of a block (``starts``/``ends``: its byte range, ``qpos``: the positions of
    all quotes): True when its quoting is not RFC 4180, i.e. not every cell is either
    free of quotes or wholly quoted with inner quotes doubled; None when every line is
    regular. Vectorised over the quotes only: in a line with an even number of quotes,
    quote 0, 2, 4 ... opens and 1, 3, 5 ... closes; an opening quote must start a cell (or
    follow a closing quote: ``""`` inside a value), a closing quote must end one (or precede
    an opening quote); CRs ending the line do not count. An odd number is irregular."""
    qline = np.searchsorted(ends, qpos)  # the line of each quote
    first = np.searchsorted(qpos, starts)  # index of each line's first quote
    odd = (np.searchsorted(qpos, ends) - first) % 2 == 1
    opening = (np.arange(len(qpos)) - first[qline]) % 2 == 0
    line_end = ends[qline]
    prev = arr[qpos - 1]  # arr[-1] for a quote at byte 0: the line start decides then
    nxt = arr[np.minimum(qpos + 1, len(arr) - 1)]
    ok_open = (qpos == starts[qline]) | (prev == delim) | (prev == 34)
    ok_close = (
        (qpos + 1 == line_end)
        | (nxt == delim)
        | (nxt == 34)
        | ((nxt == 13) & (qpos + 2 == line_end))
    )
    bad = np.where(opening, ~ok_open, ~ok_close)
    if bad.any():
        for k in np.flatnonzero(bad & ~opening & (nxt == 13)).tolist():  # `"x"\r\r\n`
            if (arr[qpos[k] + 1 : line_end[k]] == 13).all():
                bad[k] = False
    if not bad.any() and not odd.any():
        return None
    odd[qline[bad]] = True
    return odd


def _scatter_cells(
    cells: pl.DataFrame, idx: list[int], rows: list[list[str]], width: int
) -> pl.DataFrame:
    """``cells`` (c0..c{width-1}) with the lines at positions ``idx`` set to ``rows`` (cut or
    padded to the width; an empty cell NULL, as polars reads an unquoted empty cell)."""
    out = []
    for j in range(width):
        s = cells.get_column(f"c{j}").clone()
        s.scatter(idx, [r[j] if j < len(r) and r[j] != "" else None for r in rows])
        out.append(s)
    return cells.with_columns(out)


def widen(df: pl.DataFrame, width: int, delimiter: str = ",") -> pl.DataFrame:
    """List batch (_row, _fields, _line) -> wide batch (_row, _line, _nf, c0..)."""
    trimmed = pl.col("_fields").list.eval(pl.element().fill_null("").str.strip_chars(" \t"))
    # effective count: trailing empty cells beyond the header do not count
    last_nonempty = trimmed.list.eval(pl.int_range(pl.len()).filter(pl.element() != "")).list.max()
    n = pl.col("_fields").list.len()
    eff = pl.when(n > width).then(pl.max_horizontal(last_nonempty.fill_null(-1) + 1, pl.lit(width)))
    return df.select(
        "_row",
        "_line",
        eff.otherwise(n).cast(pl.Int32).alias("_nf"),
        *[pl.col("_fields").list.get(i, null_on_oob=True).alias(f"c{i}") for i in range(width)],
    )


def no_header_error(
    path: Path, rows: Sequence[tuple[int, Sequence[object]]], aliases: set[str]
) -> InputFileError:
    first = rows[0][1] if rows else []
    if any(_LONE_CR.search(str(c)) for _, cells in rows for c in cells if c):
        return InputFileError(
            f"{path}: no header row found: the first lines hold carriage returns (CR) that "
            f"end no line, so the file seems to use old Mac line ends (CR only), which cannot "
            f"be read. Fix: re-export it with CRLF (Windows) or LF line ends."
        )
    # the cells are never shown: a first row may be data (a name, an ID number)
    filled = sum(1 for c in first if c is not None and str(c).strip())
    expect = ", ".join(sorted(aliases)[:6])
    return InputFileError(
        f"{path}: no header row found in the first {HEADER_SCAN_ROWS} rows (row 1 has "
        f"{filled} non-empty cell(s), none a mapped header; expected headers such as "
        f"{expect}). Fix: check the file is the right export and readable (encoding, "
        f"delimiter), or set `header_row:`/`column:` in the source file."
    )


def read_csv_batches(reader: CsvReader) -> Iterator[pl.DataFrame]:
    """Batches of ``reader``, switching to the csv-module path when a record spans lines.

    Raises _NeedsCsvModule-free; the caller may still get RetryWithEncoding (restart)."""
    gen = reader.batches()
    try:
        first = next(gen, None)
    except _NeedsCsvModule:
        yield from reader.slow_batches()
        return
    if first is None:
        return
    yield first
    try:
        yield from gen
    except _NeedsCsvModule as exc:
        raise InputFileError(
            f"{reader.path}: a quoted value spans several lines after the first "
            f"{BLOCK_BYTES // (1 << 20)} MB; this layout is not supported in large files. "
            f"Fix: re-export without line breaks inside cells."
        ) from exc


# ----------------------------------------------------------------------------- xlsx


def _sheet_xml_paths(z: zipfile.ZipFile) -> dict[str, str]:
    """Sheet name -> worksheet XML part, from the workbook and its relationships."""
    try:
        wb = z.read("xl/workbook.xml").decode("utf-8", errors="replace")
        rels = z.read("xl/_rels/workbook.xml.rels").decode("utf-8", errors="replace")
    except KeyError:
        return {}
    targets = {}
    for m in re.finditer(r"<Relationship\b[^>]*>", rels):
        tag = m.group(0)
        rid = re.search(r'\bId="([^"]+)"', tag)
        tgt = re.search(r'\bTarget="([^"]+)"', tag)
        if rid and tgt:
            t = tgt.group(1).lstrip("/")
            targets[rid.group(1)] = t if t.startswith("xl/") else "xl/" + t
    out = {}
    for m in re.finditer(r"<(?:\w+:)?sheet\b[^>]*>", wb):
        tag = m.group(0)
        name = re.search(r'\bname="([^"]*)"', tag)
        rid = re.search(r'\b\w+:id="([^"]+)"', tag)
        if name and rid and rid.group(1) in targets:
            out[html.unescape(name.group(1))] = targets[rid.group(1)]
    return out


def _xlsx_first_rows(path: Path, sheet: int | str, names: Sequence[str] = ()) -> int:
    """Physical row of the first non-empty row (calamine drops leading empty rows)."""
    try:
        with zipfile.ZipFile(path) as z:
            by_name = _sheet_xml_paths(z)
            wanted = names[sheet] if isinstance(sheet, int) and sheet < len(names) else sheet
            name = by_name.get(str(wanted), "")
            if not name:
                parts = sorted(
                    n for n in z.namelist() if re.match(r"xl/worksheets/sheet\d+\.xml$", n)
                )
                if isinstance(sheet, int) and sheet < len(parts):
                    target = f"xl/worksheets/sheet{sheet + 1}.xml"
                    name = target if target in parts else parts[sheet]
                else:
                    name = parts[0] if parts else ""
            if not name:
                return 1
            with z.open(name) as fh:
                head = fh.read(1 << 20).decode("utf-8", errors="replace")
    except (zipfile.BadZipFile, OSError, KeyError):
        return 1
    for m in re.finditer(r"<row\b[^>]*?\br=\"(\d+)\"[^>]*?(/>|>(.*?)</row>)", head, re.S):
        body = m.group(3) or ""
        if "<v>" in body or "<v " in body or "<is>" in body or "<t>" in body:
            return int(m.group(1))
    return 1


@dataclass
class _Sheet:
    part: SheetPart
    data: pl.DataFrame  # x0.. cells and _row, the rows below the header
    ncols: int


def _open_workbook(path: Path, info: ReadInfo) -> tuple[bytes, object]:
    import fastexcel  # lazy: only for xlsx files

    raw = path.read_bytes()
    info.size = len(raw)
    if not raw:
        raise InputFileError(f"{path}: the file is empty (0 bytes). Fix: re-export it.")
    if not raw.startswith((b"PK\x03\x04", OLE_SIGNATURE)):
        kind = sniff_kind(raw[:4096])
        fix = {
            "html": "it is an HTML table saved with an Excel name: set `format: html` in the "
            "source file",
            "json": "it is JSON text: set `format: json` in the source file",
        }.get(kind or "", "re-export it as .xlsx (a CSV renamed .xlsx: set `format: csv`)")
        raise InputFileError(
            f"{path}: not an Excel workbook (neither an .xlsx zip nor an old BIFF .xls). "
            f"Fix: {fix}."
        )
    try:
        return raw, fastexcel.read_excel(raw)
    except Exception as exc:  # fastexcel raises its own error types
        raise InputFileError(
            f"{path}: cannot read the workbook ({type(exc).__name__}). "
            f"Fix: open and re-save it in Excel/WPS as .xlsx."
        ) from exc


def _read_sheet(
    path: Path,
    book: Any,
    sheet: int | str,
    index: int,
    header_row: int | None,
    aliases: set[str],
    *,
    must: bool,
    multi: bool = False,
    header_rows: int = 1,
) -> _Sheet | str:
    """One sheet with its header found; a reason (str) when it is skipped (``must`` False:
    an empty sheet or one without the mapped headers, under ``sheets: all``)."""
    names = list(book.sheet_names)
    label = names[sheet] if isinstance(sheet, int) and 0 <= sheet < len(names) else str(sheet)
    try:
        sh = book.load_sheet(sheet, header_row=None, dtypes="string")
        df = sh.to_polars()
    except Exception as exc:  # fastexcel raises its own error types
        raise InputFileError(
            f"{path}: cannot read sheet {label!r} ({type(exc).__name__}). Fix: check "
            f"`sheet:`/`sheets:` in the source file (sheets: {', '.join(names)}), or open and "
            f"re-save the workbook in Excel/WPS as .xlsx."
        ) from exc
    if df.height == 0 or not df.columns:
        if not must:
            return f"sheet {label!r} is empty"
        raise InputFileError(f"{path}: sheet {label!r} is empty. Fix: re-export the roster.")
    first = _xlsx_first_rows(path, sheet, names)
    return _sheet_from_frame(
        path,
        df,
        first,
        label,
        index,
        header_row,
        aliases,
        must=must,
        multi=multi,
        header_rows=header_rows,
    )


def _sheet_from_frame(
    path: Path,
    df: pl.DataFrame,
    first: int,
    label: str,
    index: int,
    header_row: int | None,
    aliases: set[str],
    *,
    must: bool,
    multi: bool = False,
    header_rows: int = 1,
) -> _Sheet | str:
    """A grid of cells (any column names, first row = physical row ``first``) with its header
    found: the common part of the xlsx, .xls, HTML-table and JSON readers."""
    ncols = len(df.columns)
    df = df.select([pl.col(c).cast(pl.String).alias(f"x{i}") for i, c in enumerate(df.columns)])
    df = df.with_columns(pl.int_range(first, first + df.height, dtype=pl.Int32).alias("_row"))
    rows = [(int(r[-1]), list(r[:-1])) for r in df.head(HEADER_SCAN_ROWS).rows()]
    where = f" (sheet {label!r})" if multi else ""
    if header_row is not None and not any(r[0] == header_row for r in rows):
        raise InputFileError(f"{path}: header_row {header_row} is not in sheet {label!r}.")
    picked = find_header(path, rows, aliases, header_row, header_rows)
    if picked is None:
        if not must:
            return f"sheet {label!r} has no row naming the mapped headers"
        err = no_header_error(path, rows, aliases)
        raise InputFileError(str(err).replace(f"{path}:", f"{path}{where}:", 1))
    hr, cells, top = picked
    while cells and not cells[-1]:  # trailing empty header cells come from formatting only
        cells.pop()
    part = SheetPart(label, index, hr, cells, title_text(rows, top))
    return _Sheet(part, df.filter(pl.col("_row") > hr), ncols)


def read_xlsx_batches(
    path: Path,
    info: ReadInfo,
    *,
    sheet: int | str = 0,
    sheets: Sequence[int | str] | str | None = None,
    header_row: int | None = None,
    aliases: set[str] | None = None,
    header_rows: int = 1,
) -> Iterator[pl.DataFrame]:
    """Read a workbook sheet (calamine via fastexcel: ~20x openpyxl), all cells as text.

    ``sheets`` (``all`` or names / indices) reads several sheets as one file: each has its own
    title rows and header; the header is the union of theirs (in order of appearance), each
    sheet's cells are placed under it, and its rows are staged as ``k << SHEET_ROW_BITS | row``
    (k = the sheet's position in ``info.parts``)."""
    _raw, book = _open_workbook(path, info)
    aliases = aliases or set()
    names = list(book.sheet_names)  # type: ignore[attr-defined]
    if sheets is None:
        wanted: list[int | str] = [sheet]
        must = True
    elif sheets == "all":
        wanted, must = list(range(len(names))), False
    else:
        wanted, must = list(sheets), True
        unknown = [w for w in wanted if (w not in names if isinstance(w, str) else w >= len(names))]
        if unknown:
            raise InputFileError(
                f"{path}: no sheet {', '.join(map(repr, unknown))} in the workbook (its sheets: "
                f"{', '.join(names)}). Fix: correct `sheets:` in the source file."
            )
    read: list[_Sheet] = []
    for w in wanted:
        got = _read_sheet(
            path,
            book,
            w,
            len(read),
            header_row,
            aliases,
            must=must,
            multi=sheets is not None,
            header_rows=header_rows,
        )
        if isinstance(got, str):
            info.notes.append(got + ": skipped")
        else:
            read.append(got)
    if not read:
        raise InputFileError(
            f"{path}: no sheet holds the mapped headers (sheets: {', '.join(names)}). Fix: "
            f"check the file is the right export, or correct `sheets:`/`column:`."
        )
    if sheets is not None and len(read) > (1 << (31 - SHEET_ROW_BITS)) - 1:
        raise InputFileError(f"{path}: more than 2047 sheets; split the workbook.")
    # the union header: every sheet's headers, matched by their comparison form
    header: list[str] = []
    pos: dict[str, int] = {}
    for sh in read:
        for h in sh.part.header:
            k = norm_header(h)
            if k and k not in pos:
                pos[k] = len(header)
                header.append(h)
            elif not k:
                header.append(h)
    if sheets is None:  # one sheet: its header as it is (empty header cells keep their place)
        header = list(read[0].part.header)
    info.header_row, info.header, info.encoding = read[0].part.header_row, header, "xlsx"
    info.title = read[0].part.title
    info.parts = [sh.part for sh in read]  # several only with ``sheets:``
    if sheets is not None:
        info.notes.insert(0, f"sheets read: {', '.join(sh.part.name for sh in read)}")
    width = len(header)
    for k, sh in enumerate(read):
        own = sh.part.header
        if sheets is None:
            place = list(range(len(own)))
        else:
            place, blanks = [], 0
            for h in own:
                key = norm_header(h)
                if key:
                    place.append(pos[key])
                else:  # an empty header cell: its own column in the union, in order
                    idx = [i for i, x in enumerate(header) if not norm_header(x)][blanks:]
                    blanks += 1
                    place.append(idx[0] if idx else width)
        yield from _sheet_batches(sh, place, width, k << SHEET_ROW_BITS if sheets else 0)


def _sheet_batches(
    sh: _Sheet, place: list[int], width: int, row_base: int
) -> Iterator[pl.DataFrame]:
    """Wide batches of one sheet: its cell j goes to column ``place[j]`` of the union."""
    own_w, ncols = len(sh.part.header), sh.ncols
    xs = [f"x{i}" for i in range(ncols)]
    filled = [pl.col(x).fill_null("") for x in xs]
    # a value beyond the header's last column makes the row ragged (quarantined, not cut);
    # a whole row counts as the union's width (its own width + what lies beyond it)
    nf: pl.Expr = pl.lit(width, pl.Int32)
    for j in range(own_w, ncols):
        nonempty = pl.col(xs[j]).str.strip_chars().fill_null("") != ""
        nf = pl.when(nonempty).then(pl.lit(width + j + 1 - own_w, pl.Int32)).otherwise(nf)
    src = {p: j for j, p in enumerate(place)}
    cols = [
        (pl.col(xs[src[i]]) if i in src and src[i] < ncols else pl.lit(None, pl.String)).alias(
            f"c{i}"
        )
        for i in range(width)
    ]
    data = sh.data
    for off in range(0, data.height, XLSX_BATCH_ROWS):
        b = data.slice(off, XLSX_BATCH_ROWS).select(
            (pl.col("_row") + row_base).cast(pl.Int32).alias("_row"),
            pl.concat_str(filled, separator="\x1f").alias("_line"),
            nf.alias("_nf"),
            *cols,
        )
        b = b.filter(pl.col("_line").str.strip_chars(" \t\r\n\x1f\u3000") != "")
        if len(b):
            yield b


def split_sheet_row(row: int) -> tuple[int, int]:
    """(sheet position in ``ReadInfo.parts``, physical row) of a staged ``_row``."""
    return row >> SHEET_ROW_BITS, row & SHEET_ROW_MASK


# ----------------------------------------------------------------------------- Parquet


def read_parquet_batches(path: Path, info: ReadInfo) -> Iterator[pl.DataFrame]:
    """Parquet: columns are the header; row = record number + 1 (record 1 on 'row 2')."""
    info.size = path.stat().st_size
    try:
        df = pl.read_parquet(path)
    except Exception as exc:
        raise InputFileError(
            f"{path}: cannot read as Parquet ({type(exc).__name__}: {exc}). Fix: re-export it."
        ) from exc
    info.header, info.header_row, info.encoding = list(df.columns), 1, "parquet"
    cols = [pl.col(c).cast(pl.String) for c in df.columns]
    out = df.select(
        pl.int_range(2, df.height + 2).cast(pl.Int32).alias("_row"),
        pl.concat_list(cols).alias("_fields"),
        pl.concat_str([c.fill_null("") for c in cols], separator="\x1f").alias("_line"),
    )
    for off in range(0, out.height, XLSX_BATCH_ROWS):
        yield out.slice(off, XLSX_BATCH_ROWS)


# ----------------------------------------------------------------------------- old .xls, HTML, JSON

OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # an old BIFF .xls (OLE2 compound file)
_META_CHARSET = re.compile(rb"""<meta[^>]*charset\s*=\s*["']?([A-Za-z0-9_\-]+)""", re.I)


def sniff_kind(head: bytes) -> str | None:
    """What a file's first bytes look like: ``xlsx`` (zip), ``xls`` (BIFF/OLE2), ``html`` (an
    HTML table, often saved as ``.xls`` by web systems), ``json``; None for anything else."""
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith(OLE_SIGNATURE):
        return "xls"
    text = head.lstrip(codecs.BOM_UTF8).lstrip()
    low = text[:512].lower()
    if low.startswith((b"<html", b"<!doctype html", b"<table", b"<?xml")) and (
        b"<table" in head.lower() or b"<html" in low
    ):
        return "html"
    if text[:1] in (b"{", b"["):
        return "json"
    return None


def _html_text(raw: bytes, declared: str) -> tuple[str, str]:
    """Decode an HTML export: the declared encoding, else its <meta charset>, a BOM, UTF-8,
    GB18030 (``gbk``/``gb2312`` are read as GB18030, their superset)."""
    if declared != "auto":
        enc = declared
    elif raw.startswith(codecs.BOM_UTF8):
        enc = "utf-8-sig"
    else:
        m = _META_CHARSET.search(raw[:4096])
        enc = m.group(1).decode("ascii").lower() if m else ""
        if not enc:
            try:
                raw.decode("utf-8")
                enc = "utf-8"
            except UnicodeDecodeError:
                enc = "gb18030"
    if enc.replace("-", "").replace("_", "") in ("gbk", "gb2312", "cp936", "gb18030"):
        enc = "gb18030"
    try:
        return raw.decode(enc), enc
    except (LookupError, UnicodeDecodeError) as exc:
        raise InputFileError(
            f"HTML table: cannot decode as {enc} ({type(exc).__name__}). Fix: set `encoding:` "
            f"in the source file."
        ) from exc


def html_table_rows(text: str) -> list[list[str | None]]:
    """The rows (``<tr>``) of the HTML tables in document order, cells as text (entities
    decoded, ``<br>`` -> space, spaces trimmed; empty -> None). A cell with ``colspan=n`` is
    followed by n-1 empty cells and a cell with ``rowspan=n`` repeats as empty in the n-1 rows
    below, so every cell stays under its header."""
    from html.parser import HTMLParser  # lazy: stdlib, only for HTML exports

    rows: list[list[str | None]] = []

    class _P(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.row: list[tuple[str, int, int]] | None = None
            self.cell: list[str] | None = None
            self.span = (1, 1)
            self.pending: dict[int, int] = {}  # column -> rows still covered by a rowspan
            self.spans: list[tuple[str, int, int]] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "tr":
                self._end_row()
                self.row = []
            elif tag in ("td", "th"):
                self._end_cell()
                if self.row is None:
                    self.row = []
                a = {k: (v or "") for k, v in attrs}

                def num(k: str) -> int:
                    try:
                        return max(1, min(int(a.get(k, "1") or 1), 1000))
                    except ValueError:
                        return 1

                self.cell, self.span = [], (num("colspan"), num("rowspan"))
            elif tag == "br" and self.cell is not None:
                self.cell.append(" ")

        def handle_endtag(self, tag: str) -> None:
            if tag in ("td", "th"):
                self._end_cell()
            elif tag in ("tr", "table"):
                self._end_row()

        def handle_data(self, data: str) -> None:
            if self.cell is not None:
                self.cell.append(data)

        def _end_cell(self) -> None:
            if self.cell is not None and self.row is not None:
                self.row.append(("".join(self.cell), *self.span))
            self.cell = None

        def _end_row(self) -> None:
            self._end_cell()
            if self.row is None:
                return
            out: list[str | None] = []
            col = 0
            below: dict[int, int] = {}
            cells = list(self.row)
            while cells or any(c >= col for c in self.pending):
                if self.pending.get(col, 0) > 0:  # covered by a rowspan from above
                    self.pending[col] -= 1
                    out.append(None)
                    col += 1
                    continue
                if not cells:
                    break
                txt, cs, rs = cells.pop(0)
                t = re.sub(r"\s+", " ", txt).strip()
                for k in range(cs):
                    out.append((t or None) if k == 0 else None)
                    if rs > 1:
                        below[col + k] = rs - 1
                col += cs
            self.pending = {c: n for c, n in self.pending.items() if n > 0}
            self.pending.update(below)
            rows.append(out)
            self.row = None

    p = _P()
    p.feed(text)
    p.close()
    p._end_row()
    return rows


def _grid_frame(rows: Sequence[Sequence[object]]) -> pl.DataFrame:
    width = max((len(r) for r in rows), default=0)
    cols = {
        f"x{i}": pl.Series(
            [(None if i >= len(r) or r[i] is None else str(r[i])) for r in rows], dtype=pl.String
        )
        for i in range(width)
    }
    return pl.DataFrame(cols)


def _grid_batches(
    path: Path,
    info: ReadInfo,
    df: pl.DataFrame,
    first: int,
    kind: str,
    header_row: int | None,
    aliases: set[str] | None,
    header_rows: int,
) -> Iterator[pl.DataFrame]:
    """Batches of one grid (an HTML table, a flattened JSON array) read like one sheet."""
    if df.height == 0 or not df.columns:
        raise InputFileError(f"{path}: no rows in the {kind}. Fix: re-export the file.")
    got = _sheet_from_frame(
        path, df, first, kind, 0, header_row, aliases or set(), must=True, header_rows=header_rows
    )
    assert not isinstance(got, str)
    info.header_row, info.header, info.title = (
        got.part.header_row,
        list(got.part.header),
        got.part.title,
    )
    info.parts = [got.part]
    yield from _sheet_batches(got, list(range(len(got.part.header))), len(got.part.header), 0)


def read_html_batches(
    path: Path,
    info: ReadInfo,
    *,
    encoding: str = "auto",
    header_row: int | None = None,
    aliases: set[str] | None = None,
    header_rows: int = 1,
) -> Iterator[pl.DataFrame]:
    """An HTML table (what many web systems save as ``.xls``): ``_row`` is the table row
    (``<tr>``) number, the row Excel shows when it opens the file; the rows above the header
    are the title."""
    raw = path.read_bytes()
    info.size = len(raw)
    if not raw.strip():
        raise InputFileError(f"{path}: the file is empty. Fix: re-export it.")
    try:
        text, enc = _html_text(raw, encoding)
    except InputFileError as exc:
        raise InputFileError(f"{path}: {exc}") from exc
    rows = html_table_rows(text)
    if not rows:
        raise InputFileError(
            f"{path}: no HTML table rows (<tr>) in the file. Fix: check it is the right export."
        )
    info.encoding = f"html/{enc}"
    yield from _grid_batches(
        path, info, _grid_frame(rows), 1, "HTML table", header_row, aliases, header_rows
    )


def _json_records(doc: Any, records: str | None, path: Path) -> list[Any]:
    if records:
        node = doc
        for key in records.split("."):
            if not isinstance(node, dict) or key not in node:
                keys = ", ".join(map(str, doc)) if isinstance(doc, dict) else "none, it is a list"
                raise InputFileError(
                    f"{path}: no key {records!r} in the JSON (top-level keys: {keys}). Fix: "
                    f"correct `records:` in the source file."
                )
            node = node[key]
    elif isinstance(doc, dict):  # an API envelope {"code": 200, "data": [...]}: its one list
        lists = [k for k, v in doc.items() if isinstance(v, list)]
        if len(lists) != 1:
            raise InputFileError(
                f"{path}: the JSON is an object with {len(lists)} lists "
                f"({', '.join(lists) or 'none'}). Fix: name the list of records with "
                f"`records: <key>` in the source file."
            )
        node = doc[lists[0]]
    else:
        node = doc
    if not isinstance(node, list):
        raise InputFileError(
            f"{path}: the JSON records ({records or 'top level'}) are not a list. Fix: set "
            f"`records:` to the key of the list of records."
        )
    return node


def _json_cell(v: Any) -> str | None:
    import json  # lazy: stdlib

    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    if isinstance(v, dict | list):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def _flatten(obj: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{prefix}{k}.", out)
        return
    out[prefix[:-1]] = obj


def read_json_batches(
    path: Path,
    info: ReadInfo,
    *,
    records: str | None = None,
    aliases: set[str] | None = None,
) -> Iterator[pl.DataFrame]:
    """A JSON export (an API's answer): a list of records, or an object holding one
    (``records:`` names its key, dotted for a nested one). Nested objects give dotted column
    names (``applicant.name``); a list of objects that the mapping names a column through
    (``familyMembers.name``) is exploded, one row per element, with the record's other
    columns repeated (a record with an empty list gives one row with those columns empty).
    ``_row`` is the row's ordinal in file order (1-based): with a list exploded, the first
    element of the first record is 1, its second 2, ..."""
    import json  # lazy: stdlib

    raw = path.read_bytes()
    info.size = len(raw)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("gb18030", errors="strict")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}). "
            f"Fix: re-export the file."
        ) from exc
    recs = _json_records(doc, records, path)
    wanted = {norm_header(a) for a in (aliases or set())}
    flat: list[dict[str, Any]] = []
    for r in recs:
        d: dict[str, Any] = {}
        _flatten(r if isinstance(r, dict) else {"value": r}, "", d)
        flat.append(d)
    # the lists of objects the mapping reaches into
    explode = sorted(
        {
            k
            for d in flat
            for k, v in d.items()
            if isinstance(v, list)
            and any(isinstance(e, dict) for e in v)
            and any(w.startswith(norm_header(k) + ".") for w in wanted)
        }
    )
    if len(explode) > 1:
        raise InputFileError(
            f"{path}: the mapping reads through {len(explode)} lists of objects "
            f"({', '.join(explode)}); one row per element works for one list only. Fix: map "
            f"each list in its own source file."
        )
    header: list[str] = []
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    for d in flat:
        base = {k: v for k, v in d.items() if not explode or k != explode[0]}
        elems = d.get(explode[0]) if explode else None
        if explode and isinstance(elems, list) and elems:
            for e in elems:
                row = dict(base)
                sub: dict[str, Any] = {}
                _flatten(e if isinstance(e, dict) else {"value": e}, f"{explode[0]}.", sub)
                row.update(sub)
                rows.append(row)
        else:
            rows.append(base)
    numbers = list(range(1, len(rows) + 1))
    for row in rows:
        for k in row:
            if k not in seen:
                seen.add(k)
                header.append(k)
    if not rows:
        raise InputFileError(f"{path}: the JSON holds no records. Fix: re-export the file.")
    cols = {h: pl.Series([_json_cell(r.get(h)) for r in rows], dtype=pl.String) for h in header}
    info.header, info.header_row, info.encoding = header, 0, "json"
    df = pl.DataFrame(cols)
    out = df.select(
        pl.Series("_row", numbers, dtype=pl.Int32),
        pl.concat_str([pl.col(h).fill_null("") for h in header], separator="\x1f").alias("_line"),
        pl.lit(len(header), pl.Int32).alias("_nf"),
        *[pl.col(h).alias(f"c{i}") for i, h in enumerate(header)],
    )
    for off in range(0, out.height, XLSX_BATCH_ROWS):
        yield out.slice(off, XLSX_BATCH_ROWS)
