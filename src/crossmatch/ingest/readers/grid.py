"""A grid of cells (a workbook sheet, an HTML table, a flattened JSON array) -> its header
found and wide batches: the part the xlsx, .xls, HTML-table and JSON readers share."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from crossmatch.errors import InputFileError
from crossmatch.ingest.readers.headers import (
    HEADER_SCAN_ROWS,
    find_header,
    no_header_error,
    title_text,
)
from crossmatch.ingest.readers.info import ReadInfo, SheetPart

XLSX_BATCH_ROWS = 200_000


@dataclass
class Sheet:
    """One grid with its header found."""

    part: SheetPart
    data: pl.DataFrame  # x0.. cells and _row, the rows below the header
    ncols: int


def sheet_from_frame(
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
) -> Sheet | str:
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
    return Sheet(part, df.filter(pl.col("_row") > hr), ncols)


def sheet_batches(sh: Sheet, place: list[int], width: int, row_base: int) -> Iterator[pl.DataFrame]:
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


def grid_frame(rows: Sequence[Sequence[object]]) -> pl.DataFrame:
    width = max((len(r) for r in rows), default=0)
    cols = {
        f"x{i}": pl.Series(
            [(None if i >= len(r) or r[i] is None else str(r[i])) for r in rows], dtype=pl.String
        )
        for i in range(width)
    }
    return pl.DataFrame(cols)


def grid_batches(
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
    got = sheet_from_frame(
        path, df, first, kind, 0, header_row, aliases or set(), must=True, header_rows=header_rows
    )
    assert not isinstance(got, str)
    info.header_row, info.header, info.title = (
        got.part.header_row,
        list(got.part.header),
        got.part.title,
    )
    info.parts = [got.part]
    yield from sheet_batches(got, list(range(len(got.part.header))), len(got.part.header), 0)
