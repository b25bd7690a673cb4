"""Lines of a CSV block -> cells, and each row's field count (the pipeline quarantines a
row whose count differs from the header's).

Two paths over one block of whole lines (UTF-8 bytes):

* :meth:`LineSplitter.scan` + :meth:`LineSplitter.fast_cells`: line boundaries, quotes and
  field counts from numpy over the bytes (no per-line strings), cells by polars' CSV parser;
* :meth:`LineSplitter.lines` + :meth:`LineSplitter.cells`: the general path, lines as
  strings (polars string kernels), used when polars refuses the block.

On both, a line whose quoting is not RFC 4180 (``"小"二``, ``a, "b,c"``) or that holds a
carriage return is split by Python's csv module on its own (:meth:`LineSplitter.parse_line`,
the reference); such a line ending inside a quoted value (a record spanning lines) raises
:class:`NeedsCsvModule` (the whole file is then read by the csv module)."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from crossmatch.errors import InputFileError
from crossmatch.ingest.readers.headers import HEADER_SCAN_ROWS


class NeedsCsvModule(Exception):
    """A value contains a line break inside quotes: use the csv-module path."""


@dataclass
class BlockScan:
    """What numpy found in one block of whole lines (see :meth:`LineSplitter.scan`)."""

    utf8: bytes
    first_line: int  # physical line number of the block's first line
    starts: np.ndarray  # byte range of each line (``ends``: its LF, or the block's end)
    ends: np.ndarray
    irr: list[int]  # lines read by the csv module (irregular quoting, inner CR)
    parsed: list[tuple[list[str], bool]]  # their cells (and whether complete)
    nf: np.ndarray  # field count of each line
    content: np.ndarray  # bytes of each line that are not blanks or delimiters

    @property
    def n(self) -> int:
        return len(self.ends)

    def text(self, i: int) -> str:
        return self.utf8[self.starts[i] : self.ends[i]].decode("utf-8").rstrip("\r")


class LineSplitter:
    """Splits the lines of one CSV file (its ``delimiter``) into cells; ``path`` names the
    file in messages."""

    def __init__(self, path: Path, delimiter: str):
        self.path, self.delimiter = path, delimiter
        d = re.escape(delimiter)
        self._cell_re = f'{d}(?:"(?:[^"]|"")*"|[^{d}]*)'
        x = f"\\U{ord(delimiter):08X}"  # the delimiter for polars' (Rust) regex
        cell = f'(?:[^"{x}]*|"(?:[^"]|"")*")'
        self._rfc_re = f"^{cell}(?:{x}{cell})*$"  # a line whose quoting is RFC 4180

    # -- one line, by the csv module (the reference)
    def parse_line(self, line: str, row: int) -> tuple[list[str], bool]:
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

    def count_stripped(self, line: str, row: int) -> int:
        """Cells of ``line`` once trailing delimiters and blanks are removed."""
        return len(self.parse_line(line.rstrip(" \t" + self.delimiter), row)[0])

    # -- the fast path
    def scan(self, utf8: bytes, first_line: int) -> BlockScan | None:
        """Line boundaries and field counts by numpy over the bytes (no per-line strings).
        Irregularly quoted lines (see :meth:`parse_line`) and lines with an inner CR are
        parsed by the csv module. None when the general path must be used (a delimiter of
        more than one byte, an empty block)."""
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
            irr_mask = irregular_lines(arr, qpos, starts, ends, delim[0])
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
        parsed = [self.parse_line(text(i), first_line + i) for i in irr]
        # a quoted value spans lines; except on the file's last line with no line end after
        # it: the csv module reads that value to the end of the file, as line by line
        open_tail = not utf8.endswith(b"\n")
        for i, (_, complete) in zip(irr, parsed, strict=True):
            if not complete and not (open_tail and i == n - 1):
                raise NeedsCsvModule
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

        return BlockScan(utf8, first_line, starts, ends, irr, parsed, nf, content)

    def head_rows(self, scan: BlockScan) -> list[tuple[int, list[str]]]:
        """(line, cells) of the block's first lines, for the header search."""
        return [
            (scan.first_line + i, self.parse_line(scan.text(i), scan.first_line + i)[0])
            for i in range(min(scan.n, HEADER_SCAN_ROWS))
        ]

    def fast_cells(self, scan: BlockScan, width: int) -> pl.DataFrame | None:
        """Wide batch of a scanned block: c0..c{width-1} by polars' CSV parser (the irregular
        lines blanked for it, their csv-module cells put back), _row, _nf, _raw_line (the
        line when its field count is not the header's); blank lines dropped. None when
        polars refuses the block."""
        utf8, first_line, starts, ends = scan.utf8, scan.first_line, scan.starts, scan.ends
        irr, parsed, nf, n = scan.irr, scan.parsed, scan.nf, scan.n
        text, content = scan.text, scan.content
        if irr:  # polars may refuse these lines or split them differently: spaces instead
            buf = bytearray(utf8)
            view = np.frombuffer(buf, dtype=np.uint8)
            for s, e in zip(starts[irr].tolist(), ends[irr].tolist(), strict=True):
                view[s:e] = 32
            data: bytes | bytearray = buf
        else:
            data = utf8
        cells = self.polars_cells(data, width)
        if cells is None or len(cells) != n:
            return None
        if irr:
            cells = scatter_cells(cells, irr, [f for f, _ in parsed], width)
        raw: list[str | None] = [None] * n
        for i in np.flatnonzero(nf != width).tolist():
            line = text(i)
            if nf[i] > width:  # trailing empty cells beyond the header are harmless
                nf[i] = max(self.count_stripped(line, first_line + i), width)
            if nf[i] != width:
                raw[i] = line
        df = cells.with_columns(
            pl.int_range(first_line, first_line + n, dtype=pl.Int32).alias("_row"),
            pl.Series("_nf", nf, dtype=pl.Int32),
            pl.Series("_raw_line", raw, dtype=pl.String),
        )
        return df.filter(pl.Series(content > 0))

    def polars_cells(self, data: bytes | bytearray, width: int) -> pl.DataFrame | None:
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

    # -- the general path
    def lines(self, utf8: bytes) -> pl.Series:
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

    def _count_fields(self, e: pl.Expr, quoted: bool) -> pl.Expr:
        if not quoted:
            return e.str.count_matches(self.delimiter, literal=True) + 1
        return (pl.lit(self.delimiter) + e).str.extract_all(self._cell_re).list.len()

    def irregular(self, lines: pl.DataFrame, open_tail: bool) -> dict[int, list[str]]:
        """Position in ``lines`` -> csv-module cells, for the lines whose quoting is not
        RFC 4180 (see :meth:`parse_line`); raises NeedsCsvModule when such a line ends
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
            fields, complete = self.parse_line(line.rstrip("\r"), r)
            if not complete and not (open_tail and i == len(lines) - 1):
                raise NeedsCsvModule
            out[i] = fields
        return out

    def cells(
        self, utf8: bytes, lines: pl.DataFrame, irr: dict[int, list[str]], width: int
    ) -> pl.DataFrame:
        """Wide batch: _row, _line, _nf (field count), c0..c{width-1} (polars' CSV parser;
        the csv module for the irregular lines ``irr``)."""
        if len(self.delimiter.encode("utf-8")) != 1:  # polars needs a one-byte separator
            return widen(self.split(lines, irr), width, self.delimiter)
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
        cells = self.polars_cells(data, width)
        if cells is None or len(cells) != len(lines):  # the list path is always right
            return widen(self.split(lines, irr), width, self.delimiter)
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
                    k = max(self.count_stripped(df["_line"][i].rstrip("\r"), rows[i]), width)
                nfs.append(k)
            df = df.with_columns(df["_nf"].clone().scatter(list(irr), nfs))
            cells = scatter_cells(cells, list(irr), list(irr.values()), width)
        return pl.concat([df, cells], how="horizontal")

    def split(self, df: pl.DataFrame, irr: dict[int, list[str]] | None = None) -> pl.DataFrame:
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


def irregular_lines(
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


def scatter_cells(
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
