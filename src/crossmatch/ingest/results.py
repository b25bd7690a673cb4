"""What an ingest run reports: per-file results, progress events and the run's summary table.

Kept apart from ``crossmatch.ingest.pipeline`` so that the stages it drives (``assemble``) can
report into it without importing the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crossmatch.console import text_table

Progress = Callable[["ProgressEvent"], None]


@dataclass(slots=True)
class ProgressEvent:
    """Reported while ingesting: ``kind`` is start / bytes (``done`` of ``total`` bytes read) /
    phase (``note`` says what the file's load is doing now, ``total`` = its size) / done."""

    kind: str
    source: str
    file: str
    done: int = 0
    total: int = 0
    result: FileResult | None = None
    note: str = ""


@dataclass(slots=True)
class FileResult:
    """Outcome for one file (status: loaded / unchanged / failed / missing / nofile /
    skipped: a byte-identical copy of another file of the source).

    rows_read = rows_loaded + rows_quarantined + rows_filtered + rows_summary."""

    source: str
    file: str
    status: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_duplicate: int = 0
    seconds: float = 0.0
    message: str = ""
    hash: str = ""
    encoding: str | None = None
    warnings: list[str] = field(default_factory=list)  # cells nulled, bad IDs (no values)
    rows_filtered: int = 0  # loaded rows not matching the source's `where:` (dropped)
    rows_summary: int = 0  # 合计 / 总计 / 小计 rows skipped


@dataclass(slots=True)
class IngestSummary:
    """Everything one ``ingest`` did; :meth:`render` is the CLI's per-source table."""

    run_id: str
    results: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if r.status in ("failed", "nofile")]

    def per_source(self) -> list[dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        for r in self.results:
            s = rows.setdefault(
                r.source,
                {
                    "source": r.source,
                    "files": 0,
                    "loaded": 0,
                    "unchanged": 0,
                    "failed": 0,
                    "rows": 0,
                    "rows_loaded": 0,
                    "quarantined": 0,
                    "duplicates": 0,
                    "filtered": 0,
                    "summary": 0,
                    "skipped": 0,
                    "seconds": 0.0,
                },
            )
            if r.status == "skipped":
                s["skipped"] += 1
            if r.status in ("loaded", "unchanged", "failed"):
                s["files"] += 1
                s[r.status] += 1
            if r.status == "nofile":
                s["failed"] += 1
            s["rows"] += r.rows_read
            s["rows_loaded"] += r.rows_loaded
            s["quarantined"] += r.rows_quarantined
            s["duplicates"] += r.rows_duplicate
            s["filtered"] += r.rows_filtered
            s["summary"] += r.rows_summary
            s["seconds"] += r.seconds
        return list(rows.values())

    def render(self) -> str:
        head = (
            "source",
            "files",
            "new",
            "same",
            "failed",
            "rows",
            "loaded",
            "quarant.",
            "dups",
            "filtered",
            "summary",
            "copies",
            "s",
        )
        body: list[tuple[Any, ...]] = [
            (
                s["source"],
                s["files"],
                s["loaded"],
                s["unchanged"],
                s["failed"],
                s["rows"],
                s["rows_loaded"],
                s["quarantined"],
                s["duplicates"],
                s["filtered"],
                s["summary"],
                s["skipped"],
                f"{s['seconds']:.1f}",
            )
            for s in self.per_source()
        ]
        tot = [sum(int(b[i]) for b in body) for i in range(1, 12)]
        lines = [
            text_table(
                head, body, right=range(1, 13), footer=[("TOTAL", *tot, f"{self.seconds:.1f}")]
            )
        ]
        problems = [
            r
            for r in self.results
            if r.status in ("failed", "nofile", "missing", "skipped", "warning")
        ]
        if problems:
            lines.append("")
            lines += [f"{r.status.upper()}: {r.message}" for r in problems]
        warned = [
            w for r in self.results if r.status in ("loaded", "unchanged") for w in r.warnings
        ]
        if warned:
            lines.append("")
            lines += [f"WARNING: {w}" for w in warned]
        return "\n".join(lines)


__all__ = ["FileResult", "IngestSummary", "Progress", "ProgressEvent"]
