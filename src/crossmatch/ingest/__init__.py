"""Ingestion: department exports -> canonical ``src_<source>`` tables in the DuckDB warehouse.

``ingest(raw_root, sources, warehouse_path)`` loads every source's files (see
:mod:`crossmatch.ingest.pipeline` for the guarantees: lineage, quarantine, duplicates, atomic
per-file replace, unchanged files skipped); :mod:`crossmatch.ingest.readers` reads CSV
(UTF-8 / BOM / GB18030 detected), .xlsx and Parquet.
"""

from crossmatch.ingest.pipeline import FileResult, IngestSummary, ProgressEvent, ingest

__all__ = ["FileResult", "IngestSummary", "ProgressEvent", "ingest"]
