"""The nightly supervision run as a Prefect flow: ingest -> resolve -> kinship -> detect.

Thin on purpose: every task is one call into ``crossmatch``; business logic lives in the package.
Only the I/O-bound ingest task retries. Each run publishes a markdown artifact with the per-source
and per-rule tables, so an operator sees a failed file or a skipped rule next morning instead of a
silent drop in hits.

Run it once on the sample county (temporary local Prefect server, no setup):

    uv run python flows/nightly.py --raw data/sample/raw --warehouse crossmatch.duckdb

Schedule it: ``prefect.yaml`` declares the ``nightly`` deployment (02:00 Asia/Shanghai).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Offline-safe defaults, set before Prefect reads its settings: no telemetry (there is no network),
# and a start-up time the temporary server needs on a 2-core machine.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from crossmatch import warehouse as wh


@dataclass
class NightlyReport:
    """What one nightly run did (returned by the flow, rendered in the artifact)."""

    ingest_table: str
    failed_files: list[str]
    identity: str
    kinship: dict[str, int]
    detect_table: str
    rules_error: list[str]
    rules_skipped: list[str]
    hits: int

    def markdown(self) -> str:
        parts = [
            "# crossmatch nightly run",
            f"**hits**: {self.hits}; **failed files**: {len(self.failed_files)}; "
            f"**rules skipped**: {len(self.rules_skipped)}; "
            f"**rules in error**: {len(self.rules_error)}",
            "## Ingest",
            "```\n" + self.ingest_table + "\n```",
            "## Identity",
            "```\n" + self.identity + "\n```",
            "## Kinship",
            ", ".join(f"{k}: {v}" for k, v in self.kinship.items()),
            "## Rules",
            "```\n" + self.detect_table + "\n```",
        ]
        return "\n\n".join(parts)


@task(retries=2, retry_delay_seconds=30)
def ingest_task(raw: str, sources: str, warehouse: str) -> tuple[str, list[str]]:
    from crossmatch.ingest.pipeline import ingest

    summary = ingest(raw, sources, warehouse)
    return summary.render(), [r.message for r in summary.failed]


@task
def resolve_task(warehouse: str, sources: str) -> str:
    from crossmatch import identity
    from crossmatch.spec import load_sources

    con = wh.connect(warehouse)
    try:
        return str(identity.resolve(con, load_sources(sources)).render())
    finally:
        con.close()


@task
def kinship_task(warehouse: str) -> dict[str, int]:
    from crossmatch import kinship

    con = wh.connect(warehouse)
    try:
        return kinship.build(con)
    finally:
        con.close()


@task
def detect_task(warehouse: str, rules: str, only: list[str] | None) -> dict[str, Any]:
    from crossmatch.detect import run_rules

    con = wh.connect(warehouse)
    try:
        res = run_rules(con, rules, only=only)
    finally:
        con.close()
    return {
        "table": res.table(),
        "error": [f"{o.rule_id}: {o.reason}" for o in res.outcomes if o.status == "error"],
        "skipped": [f"{o.rule_id}: {o.reason}" for o in res.outcomes if o.status == "skipped"],
        "hits": sum(o.hits for o in res.outcomes),
    }


@flow(name="crossmatch-nightly", log_prints=False)
def nightly(
    raw: str = "data/sample/raw",
    sources: str = "sources",
    rules: str = "rules",
    warehouse: str = "crossmatch.duckdb",
    only_rules: list[str] | None = None,
) -> NightlyReport:
    """Ingest every department's exports, resolve identities, rebuild kinship, run the rules."""
    log = get_run_logger()
    ingest_table, failed = ingest_task(raw, sources, warehouse)
    for msg in failed:
        log.warning("source problem: %s", msg)
    ident = resolve_task(warehouse, sources)
    kin = kinship_task(warehouse)
    det = detect_task(warehouse, rules, only_rules)
    for msg in det["skipped"]:
        log.warning("rule skipped: %s", msg)
    for msg in det["error"]:
        log.error("rule failed: %s", msg)
    report = NightlyReport(
        ingest_table=ingest_table,
        failed_files=failed,
        identity=ident,
        kinship=kin,
        detect_table=det["table"],
        rules_error=det["error"],
        rules_skipped=det["skipped"],
        hits=det["hits"],
    )
    create_markdown_artifact(report.markdown(), key="crossmatch-nightly", description="nightly")
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run the crossmatch nightly flow once, now.")
    ap.add_argument("--raw", default="data/sample/raw", help="folder of department exports")
    ap.add_argument("--sources", default="sources", help="source mapping files")
    ap.add_argument("--rules", default="rules", help="rule files")
    ap.add_argument("--warehouse", default="crossmatch.duckdb", help="DuckDB warehouse file")
    ap.add_argument("--only", default=None, help="comma-separated rule ids")
    a = ap.parse_args(argv)
    only = [s.strip() for s in a.only.split(",")] if a.only else None
    report = nightly(a.raw, a.sources, a.rules, str(Path(a.warehouse)), only)
    print(report.ingest_table, report.identity, report.detect_table, sep="\n\n")
    # findings are a normal result; a failed file or rule is not
    return 4 if (report.failed_files or report.rules_error) else 0


if __name__ == "__main__":
    sys.exit(main())
