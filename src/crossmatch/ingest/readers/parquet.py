"""Parquet: the columns are the header, row = record number + 1 (record 1 on 'row 2')."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl

from crossmatch.errors import InputFileError
from crossmatch.ingest.readers.grid import XLSX_BATCH_ROWS
from crossmatch.ingest.readers.info import ReadInfo


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
