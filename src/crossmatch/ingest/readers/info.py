"""What a reader learnt about a file (:class:`ReadInfo`), and how a workbook's sheets are
told apart in the staged row numbers (:data:`SHEET_ROW_BITS`, :func:`split_sheet_row`)."""

from __future__ import annotations

from dataclasses import dataclass, field

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


def split_sheet_row(row: int) -> tuple[int, int]:
    """(sheet position in ``ReadInfo.parts``, physical row) of a staged ``_row``."""
    return row >> SHEET_ROW_BITS, row & SHEET_ROW_MASK
