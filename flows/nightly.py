"""The nightly supervision run as Prefect flows, over :func:`crossmatch.night.run_night`.

Thin on purpose: the flows live in :mod:`crossmatch.night.flows` (``nightly``, ``rerun``,
``backfill``) and call the same orchestration as ``crossmatch run``; this file is the
deployment entrypoint (``prefect.yaml``: ``flows/nightly.py:nightly``) and a one-shot runner.

Run it once on the sample county (a temporary local Prefect server, stopped at the end and
also when this process is killed; a configured PREFECT_API_URL is used instead):

    uv run python flows/nightly.py --raw data/sample/raw --warehouse crossmatch.duckdb
    # detect's per-partition rules on Dask (one Prefect task per partition, prefect-dask)
    uv run python flows/nightly.py --warehouse crossmatch.duckdb --dask tcp://head:8786

The final state and the exit code follow one table (``crossmatch.night.OUTCOMES``): 0 Completed
(every source present, every rule ok); 4 ``Incomplete`` (a source missing, a file failed, a rule
skipped / stale / blind, the score or report stage skipped / blind); 5
``WarehouseUnavailable``; 6 ``Failed`` (a rule in error, a stage crashed). Schedule it: see
docs/operations.md.
"""

from __future__ import annotations

import argparse
import os
import sys

# Offline-safe defaults, set before Prefect reads its settings: no telemetry (there is no network),
# and a start-up time the temporary server needs on a 2-core machine.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from crossmatch.night.flows import backfill, exit_code_of, nightly, rerun
from crossmatch.night.run import STAGES

__all__ = ["backfill", "main", "nightly", "rerun"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run the crossmatch nightly flow once, now.")
    ap.add_argument("--raw", default=None, help="folder of department exports")
    ap.add_argument("--sources", default=None, help="source mapping files")
    ap.add_argument("--rules", default=None, help="rule files")
    ap.add_argument("--warehouse", default=None, help="DuckDB warehouse file")
    ap.add_argument("--only", default=None, help="comma-separated rule ids")
    ap.add_argument("--from-stage", default="ingest", choices=STAGES, help="rerun from here")
    ap.add_argument(
        "--max-age-days", type=float, default=35, help="older sources make their rules stale"
    )
    ap.add_argument(
        "--dask",
        default=None,
        help="detect's per-partition rules on Dask: 'local' (a LocalCluster) or tcp://host:8786",
    )
    ap.add_argument("--dask-workers", type=int, default=2, help="LocalCluster worker processes")
    a = ap.parse_args(argv)
    only = [s.strip() for s in a.only.split(",")] if a.only else None
    from crossmatch.night.prefect_server import server_unless_configured

    with server_unless_configured():
        if a.from_stage == "ingest":
            state = nightly(
                a.raw, a.sources, a.rules, a.warehouse, only, a.max_age_days,
                dask=a.dask, dask_workers=a.dask_workers, return_state=True,
            )  # fmt: skip
        else:
            state = rerun(
                a.from_stage, a.raw, a.sources, a.rules, a.warehouse, only, a.max_age_days,
                dask=a.dask, dask_workers=a.dask_workers, return_state=True,
            )  # fmt: skip
    print(f"{state.name}: {state.message}")
    return exit_code_of(state)


if __name__ == "__main__":
    sys.exit(main())
