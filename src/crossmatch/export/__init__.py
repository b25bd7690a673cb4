"""Clue lists (问题线索清单) leaving the warehouse: Excel for investigators, CSV and Parquet."""

from crossmatch.export.clue_list import COLUMNS, FILL_IN, ExportResult, build_frame, export_clues

__all__ = ["COLUMNS", "FILL_IN", "ExportResult", "build_frame", "export_clues"]
