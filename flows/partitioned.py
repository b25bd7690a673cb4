"""The detect stage partitioned on Dask, through Prefect's Dask task runner (prefect-dask).

Thin on purpose: the work is :func:`crossmatch.scale.run.run_partitioned` (plan, cross step,
reduce, in this process, on the warehouse) and :func:`crossmatch.scale.run.run_partition` (one
Prefect task per partition, on the Dask workers). A partition task carries its own rows and rule
files, so workers need the crossmatch package, not the warehouse file nor a shared disk.

    # a LocalCluster of 2 worker processes on this machine
    uv run python flows/partitioned.py --warehouse crossmatch.duckdb --workers 2
    # an existing cluster (`dask scheduler` + `dask worker tcp://host:8786` on each machine)
    uv run python flows/partitioned.py --warehouse crossmatch.duckdb --dask-address tcp://host:8786

The hits, rule_run rows and exit code are those of ``crossmatch detect`` on the same warehouse
(0 all rules ok, 4 a rule skipped / stale / blind, 6 a rule in error); see docs/scale.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from crossmatch import warehouse as wh
from crossmatch.scale.flow_tasks import partition_task, task_runner
from crossmatch.scale.run import run_partitioned

__all__ = ["main", "partition_task", "partitioned", "task_runner"]


@flow(name="crossmatch-partitioned", log_prints=False)
def partitioned(
    warehouse: str,
    rules: str = "rules",
    level: int = 9,
    partitions: int | None = None,
    max_age_days: float | None = None,
    threads: int | None = 1,
    full: bool = False,
) -> dict[str, Any]:
    """Detect on ``warehouse`` with local rules per partition on the flow's Dask task runner.
    A rule whose inputs are unchanged since a finished run copies its hits (``full``: none)."""
    logger = get_run_logger()
    with wh.session(
        warehouse, must_exist="run `crossmatch ingest` and `crossmatch resolve`"
    ) as con:
        res = run_partitioned(
            con,
            rules,
            level=level,
            partitions=partitions,
            max_age_days=max_age_days,
            threads=threads,
            full=full,
            submit=lambda tasks: [partition_task.submit(t) for t in tasks],
        )
    logger.info("%s", res.plan_summary())
    text = res.table()
    create_markdown_artifact(
        "# crossmatch partitioned detect\n\n```\n" + text + "\n```",
        key="crossmatch-partitioned",
        description="partitioned detect",
    )
    return {
        "run_id": res.run.run_id,
        "exit_code": res.exit_code,
        "hits": sum(o.hits for o in res.run.outcomes),
        "table": text,
        "timings": res.timings,
        "reused": res.reused,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run detect partitioned on Dask through Prefect.")
    ap.add_argument("--warehouse", default="crossmatch.duckdb", help="DuckDB warehouse file")
    ap.add_argument("--rules", default="rules", help="rule files")
    ap.add_argument(
        "--dask-address",
        default=None,
        help="scheduler of an existing Dask cluster (tcp://host:8786); default a LocalCluster",
    )
    ap.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    ap.add_argument("--level", type=int, default=9, help="region digits: 9 township, 6 county")
    ap.add_argument("--partitions", type=int, default=None, help="default: one per region")
    ap.add_argument("--max-age-days", type=float, default=None, help="older sources are stale")
    ap.add_argument("--full", action="store_true", help="run every rule (no reuse of hits)")
    a = ap.parse_args(argv)
    run = partitioned.with_options(task_runner=task_runner(a.dask_address, a.workers))
    out = run(
        str(Path(a.warehouse)),
        a.rules,
        level=a.level,
        partitions=a.partitions,
        max_age_days=a.max_age_days,
        full=a.full,
    )
    print(out["table"])
    return int(out["exit_code"])


if __name__ == "__main__":
    sys.exit(main())
