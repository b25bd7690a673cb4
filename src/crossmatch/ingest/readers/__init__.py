"""Readers: turn one raw file (CSV / .xlsx / .xls / HTML table / JSON / Parquet) into
batches of raw text cells.

Every reader yields polars DataFrames of the same shape, whatever the format: ``_row``
(Int32, the physical row a person sees in Excel or a text editor, contract section 2: CSV
line number with the header on line 1; sheet row; Parquet record + 1), the cells (wide
batches ``c0..c{width-1}``, String, NULL for an empty cell, with ``_nf`` the row's field
count; Parquet yields the list ``_fields``) and ``_line``, the row's raw text (cells joined
for grids) used for exact-duplicate detection. A row's field count may differ from the
header's; the pipeline quarantines it. Readers decide the encoding, find the header row and
raise :class:`InputFileError` with the file named and what to do when a file cannot be read.

Why not ``polars.read_csv``/DuckDB ``read_csv`` alone: we need the physical line number of
every row (lineage), ragged rows kept for quarantine instead of an error or silent padding,
and GB18030, which neither reads. Plain CSVs are staged by DuckDB after :func:`csv_head` read
their head (see ``raw_staging.stage_csv``); everything else comes through here.

Where each job lives:

=====================  ======================================================================
module                 job
=====================  ======================================================================
``info``               :class:`ReadInfo` (what a reader learnt), sheet row numbering
``headers``            finding the header row (one or two rows), title rows, "no header" text
``encoding``           binary refusal, UTF-8 / GB18030 / UTF-16 detection, block decoding
``gb18030_iconv``      GB18030 by ``iconv`` in its own process, checked against Python's codec
``csv_dialect``        the delimiter; :func:`csv_head` for DuckDB staging
``csv_cells``          lines -> cells and field counts (numpy + polars; csv module for odd lines)
``csv_reader``         :class:`CsvReader`, the block loop tying the above together
``file_kind``          what a file's first bytes say it is
``grid``               a grid of cells (sheet, HTML table, JSON) -> header + wide batches
``excel``              .xlsx / .xls workbooks, one sheet or several (``sheets:``)
``html_table``         HTML tables saved as ``.xls`` by web systems
``json_records``       JSON exports (records, nested objects, one exploded list)
``parquet``            Parquet files
=====================  ======================================================================

Converting the text cells to typed values is not a reader's job: see ``raw_staging`` and
:mod:`crossmatch.normalize`.
"""

from crossmatch.ingest.readers.csv_cells import widen
from crossmatch.ingest.readers.csv_dialect import csv_head, resolve_delimiter
from crossmatch.ingest.readers.csv_reader import CsvReader, read_csv_batches
from crossmatch.ingest.readers.encoding import RetryWithEncoding, detect_encoding
from crossmatch.ingest.readers.excel import read_xlsx_batches
from crossmatch.ingest.readers.file_kind import OLE_SIGNATURE, sniff_kind
from crossmatch.ingest.readers.gb18030_iconv import GLIBC_DIFFERENT_CODEPOINTS, RetryWithoutIconv
from crossmatch.ingest.readers.headers import (
    HEADER_SCAN_ROWS,
    find_header,
    norm_header,
    pick_header_row,
    two_row_header,
)
from crossmatch.ingest.readers.html_table import html_table_rows, read_html_batches
from crossmatch.ingest.readers.info import (
    SHEET_ROW_BITS,
    SHEET_ROW_MASK,
    ReadInfo,
    SheetPart,
    split_sheet_row,
)
from crossmatch.ingest.readers.json_records import read_json_batches
from crossmatch.ingest.readers.parquet import read_parquet_batches

__all__ = [
    "GLIBC_DIFFERENT_CODEPOINTS",
    "HEADER_SCAN_ROWS",
    "OLE_SIGNATURE",
    "SHEET_ROW_BITS",
    "SHEET_ROW_MASK",
    "CsvReader",
    "ReadInfo",
    "RetryWithEncoding",
    "RetryWithoutIconv",
    "SheetPart",
    "csv_head",
    "detect_encoding",
    "find_header",
    "html_table_rows",
    "norm_header",
    "pick_header_row",
    "read_csv_batches",
    "read_html_batches",
    "read_json_batches",
    "read_parquet_batches",
    "read_xlsx_batches",
    "resolve_delimiter",
    "sniff_kind",
    "split_sheet_row",
    "two_row_header",
    "widen",
]
