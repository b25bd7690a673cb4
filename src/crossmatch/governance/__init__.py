"""From clues to governance (以案促治): 类案 root causes, 纪检监察建议 and their follow-up, and
the leadership report. See docs/governance.md.

>>> from crossmatch.governance import refresh_and_report
>>> refresh_and_report("crossmatch.duckdb")      # after detect: findings, metrics, HTML report
"""

from crossmatch.governance.findings import Finding, FindingSet, Params, analyse
from crossmatch.governance.report import ReportResult, refresh, refresh_and_report, write_report

__all__ = [
    "Finding",
    "FindingSet",
    "Params",
    "ReportResult",
    "analyse",
    "refresh",
    "refresh_and_report",
    "write_report",
]
