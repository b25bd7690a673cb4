"""Excel workbooks (.xlsx, and old .xls: calamine via fastexcel, ~20x openpyxl), all cells
as text: one sheet, or several read as one file (``sheets:``)."""

from __future__ import annotations

import html
import re
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from crossmatch.errors import InputFileError
from crossmatch.ingest.readers.file_kind import OLE_SIGNATURE, sniff_kind
from crossmatch.ingest.readers.grid import Sheet, sheet_batches, sheet_from_frame
from crossmatch.ingest.readers.headers import norm_header
from crossmatch.ingest.readers.info import SHEET_ROW_BITS, ReadInfo


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
) -> Sheet | str:
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
    return sheet_from_frame(
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
    read: list[Sheet] = []
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
        yield from sheet_batches(sh, place, width, k << SHEET_ROW_BITS if sheets else 0)
