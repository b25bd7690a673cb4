"""Finding the header row among a file's first rows (any format): the row, or two rows
(``header_rows: 2``), naming the most mapped headers; the title rows above it; the messages
when there is none.

Rows come in as ``(physical row, cells)`` pairs, whatever read them (CSV lines split by the
csv module, sheet rows, HTML table rows)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from crossmatch.errors import InputFileError

HEADER_SCAN_ROWS = 20
LONE_CR = re.compile("\r(?!\n)")


def norm_header(h: object) -> str:
    """Header comparison form: NFKC (（）-> ()), no spaces, no BOM."""
    if h is None:
        return ""
    return re.sub(r"[\s\ufeff]+", "", unicodedata.normalize("NFKC", str(h)))


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


def no_header_error(
    path: Path, rows: Sequence[tuple[int, Sequence[object]]], aliases: set[str]
) -> InputFileError:
    first = rows[0][1] if rows else []
    if any(LONE_CR.search(str(c)) for _, cells in rows for c in cells if c):
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


def take_header(
    path: Path,
    rows: Sequence[tuple[int, list]],
    aliases: set[str],
    header_row: int | None,
    depth: int = 1,
) -> tuple[int, list[str], str]:
    """(last header row, header cells, title) of a text file's first rows; raises
    InputFileError when there is no header, or when the header row holds a lone carriage
    return (a file with old Mac line ends, which cannot be read)."""
    picked = find_header(path, rows, aliases, header_row, depth)
    if picked is None:
        raise no_header_error(path, rows, aliases)
    hr, cells, top = picked
    if any(LONE_CR.search(str(c)) for r, row in rows if r == hr for c in row if c):
        raise InputFileError(
            f"{path}: the header row (line {hr}) holds a carriage return (CR) that ends "
            f"no line: the file seems to use old Mac line ends (CR only), which cannot be "
            f"read. Fix: re-export it with CRLF (Windows) or LF line ends."
        )
    return hr, cells, title_text(rows, top)
