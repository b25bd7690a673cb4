"""The nightly supervision run as a Prefect flow: ingest -> resolve -> kinship -> detect -> clues.

Thin on purpose: every task is one call into ``crossmatch``; business logic lives in the package.
Only the I/O-bound ingest task retries. Each run publishes a markdown artifact with the per-source
and per-rule tables, so an operator sees a failed file or a skipped rule next morning instead of a
silent drop in hits.

Stale stages never feed the rules: the flow always runs resolve after ingest, rebuilds kinship,
and detect runs with a maximum data age (``max_age_days``, default 35): a department whose export
has not been present for longer makes its rules ``stale``. The exit code is the CLI's (see
``crossmatch.cli``): 0 all rules ok, 4 a file failed or a rule skipped / stale / blind, 6 a rule in
error.

Run it once on the sample county (temporary local Prefect server, no setup):

    uv run python flows/nightly.py --raw data/sample/raw --warehouse crossmatch.duckdb

Schedule it: ``prefect.yaml`` declares the ``nightly`` deployment (02:00 Asia/Shanghai).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Offline-safe defaults, set before Prefect reads its settings: no telemetry (there is no network),
# and a start-up time the temporary server needs on a 2-core machine.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from crossmatch import contract
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
    rules_stale: list[str] = field(default_factory=list)
    rules_blind: list[str] = field(default_factory=list)
    clues: str = ""
    exit_code: int = 0

    def markdown(self) -> str:
        parts = [
            "# crossmatch nightly run",
            f"**hits**: {self.hits}; **failed files**: {len(self.failed_files)}; "
            f"**rules skipped**: {len(self.rules_skipped)}; "
            f"**rules stale**: {len(self.rules_stale)}; **rules blind**: {len(self.rules_blind)}; "
            f"**rules in error**: {len(self.rules_error)}",
            "## Ingest",
            "```\n" + self.ingest_table + "\n```",
            "## Identity",
            "```\n" + self.identity + "\n```",
            "## Kinship",
            ", ".join(f"{k}: {v}" for k, v in self.kinship.items()),
            "## Rules",
            "```\n" + self.detect_table + "\n```",
            "## Clues",
            self.clues,
        ]
        return "\n\n".join(parts)


@task(retries=2, retry_delay_seconds=30)
def ingest_task(raw: str, sources: str, warehouse: str) -> tuple[str, list[str]]:
    from crossmatch.ingest.pipeline import ingest

    summary = ingest(raw, sources, warehouse)
    with wh.session(warehouse) as con:  # data age counts from the last night an export was seen
        wh.record_seen(con, summary.results, summary.run_id)
    return summary.render(), [r.message for r in summary.failed]


@task
def resolve_task(warehouse: str, sources: str) -> str:
    from crossmatch import identity
    from crossmatch.spec import load_sources

    with wh.session(warehouse) as con:
        return str(identity.resolve(con, load_sources(sources)).render())


@task
def kinship_task(warehouse: str) -> dict[str, int]:
    from crossmatch.detect.rule_runner import rebuild_kinship

    with wh.session(warehouse) as con:
        return rebuild_kinship(con)


@task
def detect_task(
    warehouse: str, rules: str, only: list[str] | None, max_age_days: float | None
) -> dict[str, Any]:
    from crossmatch.detect import run_rules

    with wh.session(warehouse) as con:
        res = run_rules(con, rules, only=only, max_age_days=max_age_days)

    def of(status: str) -> list[str]:
        return [f"{o.rule_id}: {o.reason}" for o in res.outcomes if o.status == status]

    return {
        "table": res.table(),
        "error": of("error"),
        "skipped": of("skipped"),
        "stale": of("stale"),
        "blind": of("blind"),
        "hits": sum(o.hits for o in res.outcomes),
        "exit_code": res.exit_code,
        "run_id": res.run_id,
    }


@task
def clues_task(warehouse: str, rules: str, run_id: str) -> str:
    """Record the night's clues in the review store (new / ongoing / closed / ...)."""
    from crossmatch.review import sync_warehouse

    return sync_warehouse(warehouse, run_id=run_id, rules_dir=rules).render()


@flow(name="crossmatch-nightly", log_prints=False)
def nightly(
    raw: str = "data/sample/raw",
    sources: str = "sources",
    rules: str = "rules",
    warehouse: str = "crossmatch.duckdb",
    only_rules: list[str] | None = None,
    max_age_days: float | None = 35,
) -> NightlyReport:
    """Ingest every department's exports, resolve identities, rebuild kinship, run the rules."""
    from crossmatch.errors import ExitCode

    log = get_run_logger()
    contract.use(sources)  # the mapping folder's sources join what the rules may read
    ingest_table, failed = ingest_task(raw, sources, warehouse)
    for msg in failed:
        log.warning("source problem: %s", msg)
    ident = resolve_task(warehouse, sources)
    kin = kinship_task(warehouse)
    det = detect_task(warehouse, rules, only_rules, max_age_days)
    for kind in ("skipped", "stale", "blind"):
        for msg in det[kind]:
            log.warning("rule %s: %s", kind, msg)
    for msg in det["error"]:
        log.error("rule failed: %s", msg)
    clues = clues_task(warehouse, rules, det["run_id"])
    log.info("%s", clues)
    report = NightlyReport(
        ingest_table=ingest_table,
        failed_files=failed,
        identity=ident,
        kinship=kin,
        detect_table=det["table"],
        rules_error=det["error"],
        rules_skipped=det["skipped"],
        hits=det["hits"],
        rules_stale=det["stale"],
        rules_blind=det["blind"],
        clues=clues,
        exit_code=max(
            det["exit_code"],
            int(ExitCode.INPUT_PROBLEMS) if failed else int(ExitCode.OK),
        ),
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
    ap.add_argument(
        "--max-age-days", type=float, default=35, help="older sources make their rules stale"
    )
    a = ap.parse_args(argv)
    only = [s.strip() for s in a.only.split(",")] if a.only else None
    report = nightly(a.raw, a.sources, a.rules, str(Path(a.warehouse)), only, a.max_age_days)
    print(report.ingest_table, report.identity, report.detect_table, report.clues, sep="\n\n")
    # the CLI's exit codes: findings are a normal result; a failed file, a rule not ok is not
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
