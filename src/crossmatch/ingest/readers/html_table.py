"""HTML tables (what many web systems save as ``.xls``): decoded, ``<tr>`` rows with
colspan / rowspan laid out so that every cell stays under its header."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from crossmatch.errors import InputFileError
from crossmatch.ingest.readers.grid import grid_batches, grid_frame
from crossmatch.ingest.readers.info import ReadInfo

_META_CHARSET = re.compile(rb"""<meta[^>]*charset\s*=\s*["']?([A-Za-z0-9_\-]+)""", re.I)


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
    yield from grid_batches(
        path, info, grid_frame(rows), 1, "HTML table", header_row, aliases, header_rows
    )
