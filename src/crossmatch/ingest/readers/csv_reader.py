"""CSV -> batches of raw text cells: the block loop (:class:`CsvReader`) that ties together
the encoding (:mod:`.encoding`, :mod:`.gb18030_iconv`), the delimiter (:mod:`.csv_dialect`),
the header (:mod:`.headers`) and the cells (:mod:`.csv_cells`).

The file is decoded in blocks of :data:`BLOCK_BYTES` of whole lines; a file with a quoted
value spanning lines in its first block is read whole by Python's csv module instead
(:meth:`CsvReader.slow_batches`, via :func:`read_csv_batches`)."""

from __future__ import annotations

import codecs
import csv
import io
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl

from crossmatch.errors import InputFileError
from crossmatch.ingest.readers.csv_cells import LineSplitter, NeedsCsvModule
from crossmatch.ingest.readers.csv_dialect import resolve_delimiter
from crossmatch.ingest.readers.encoding import (
    BlockDecoder,
    Utf16ToUtf8,
    detect_encoding,
    sniff_binary,
)
from crossmatch.ingest.readers.gb18030_iconv import IconvStream, RetryWithoutIconv, glibc_differs
from crossmatch.ingest.readers.headers import HEADER_SCAN_ROWS, take_header
from crossmatch.ingest.readers.info import ReadInfo

BLOCK_BYTES = 16 * 1024 * 1024  # decode/split unit for CSV: bounds memory on huge exports


class CsvReader:
    """Block-wise CSV reader (see the package docstring)."""

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
        self.decoder = BlockDecoder(path, encoding)
        self.splitter = LineSplitter(path, delimiter)

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
            self.decoder.head_non_ascii = not head.isascii()
            self.info.encoding = enc
            self.info.delimiter = self.delimiter
            if self.delimiter_note and self.delimiter_note not in self.info.notes:
                self.info.notes.append(self.delimiter_note)
            if enc.startswith("utf-16"):  # transcoded to UTF-8 on the fly, then as usual
                fh.seek(0)
                u8 = Utf16ToUtf8(fh, enc, self.path, BLOCK_BYTES)  # type: ignore[arg-type]
                yield from self._blocks(u8, "utf-8", size)  # type: ignore[arg-type]
                return
            exe = shutil.which("iconv") if enc == "gb18030" and self.use_iconv else None
            if exe:
                yield from self._iconv_blocks(exe, size)
                return
            fh.seek(0)
            yield from self._blocks(fh, enc, size)

    def _iconv_blocks(self, exe: str, size: int) -> Iterator[pl.DataFrame]:
        """GB18030 -> UTF-8 by iconv in its own process; any failure or differing character
        raises RetryWithoutIconv."""
        with IconvStream(exe, self.path, size) as conv:
            yield from self._blocks(
                conv.stdout,  # type: ignore[arg-type]
                "utf-8",
                size,
                transcoded=(conv.consumed, conv.at_eof),
            )

    # -- internals
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
                if glibc_differs(data):
                    raise RetryWithoutIconv("gb18030")
                utf8 = data[3:] if next_line == 1 and data.startswith(codecs.BOM_UTF8) else data
            else:
                text = self.decoder.decode(data, enc, next_line, final, self.info.notes)
                if next_line == 1 and text.startswith("\ufeff"):
                    text = text[1:]
                if enc.startswith("utf-8") and not self.decoder.replaced:
                    utf8 = data[3:] if next_line == 1 and data.startswith(codecs.BOM_UTF8) else data
                else:
                    utf8 = text.encode("utf-8")
                del text
            fast = None
            scan = self.splitter.scan(utf8, next_line)
            if scan is not None:
                if not header_done:
                    self._set_header(self.splitter.head_rows(scan))
                fast = self.splitter.fast_cells(scan, len(self.info.header))
            if fast is not None and scan is not None:
                df, n_lines = fast, scan.n
            else:  # the general path: lines as strings, then cells
                lines = self.splitter.lines(utf8)
                n_lines = len(lines)
                df = pl.DataFrame(
                    {
                        "_row": pl.int_range(next_line, next_line + n_lines, eager=True).cast(
                            pl.Int32
                        ),
                        "_line": lines,
                    }
                )
                irr = self.splitter.irregular(df, open_tail=not utf8.endswith(b"\n"))
                if not header_done:
                    self._take_header_lines(df)
                df = self.splitter.cells(utf8, df, irr, len(self.info.header))
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

    def _set_header(self, rows: list[tuple[int, list]]) -> None:
        hr, cells, title = take_header(
            self.path, rows, self.aliases, self.header_row, self.header_rows
        )
        self.info.header_row, self.info.header, self.info.title = hr, cells, title

    def _take_header_lines(self, df: pl.DataFrame) -> None:
        head = df.head(HEADER_SCAN_ROWS)
        rows = [
            (r, self.splitter.parse_line(line.rstrip("\r"), r)[0])
            for r, line in zip(head["_row"].to_list(), head["_line"].to_list(), strict=True)
        ]
        self._set_header(rows)

    def _take_header(self, df: pl.DataFrame) -> pl.DataFrame:
        head = df.head(HEADER_SCAN_ROWS)
        rows = list(zip(head["_row"].to_list(), head["_fields"].to_list(), strict=True))
        self._set_header(rows)
        return df.filter(pl.col("_row") > self.info.header_row)

    def slow_batches(self) -> Iterator[pl.DataFrame]:
        """Python csv module path for files with quoted line breaks (rare, slower)."""
        enc = self.info.encoding or "utf-8"
        raw = self.path.read_bytes()
        self.info.size = len(raw)
        text = self.decoder.decode(raw, enc, 1, True, self.info.notes)
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


def read_csv_batches(reader: CsvReader) -> Iterator[pl.DataFrame]:
    """Batches of ``reader``, switching to the csv-module path when a record spans lines.

    Raises NeedsCsvModule-free; the caller may still get RetryWithEncoding (restart)."""
    gen = reader.batches()
    try:
        first = next(gen, None)
    except NeedsCsvModule:
        yield from reader.slow_batches()
        return
    if first is None:
        return
    yield first
    try:
        yield from gen
    except NeedsCsvModule as exc:
        raise InputFileError(
            f"{reader.path}: a quoted value spans several lines after the first "
            f"{BLOCK_BYTES // (1 << 20)} MB; this layout is not supported in large files. "
            f"Fix: re-export without line breaks inside cells."
        ) from exc
