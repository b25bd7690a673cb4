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

import os
import sys

# Offline-safe defaults, set before Prefect reads its settings: no telemetry (there is no network),
# and a start-up time the temporary server needs on a 2-core machine.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from crossmatch.night.flows import backfill, exit_code_of, nightly, rerun

__all__ = ["backfill", "exit_code_of", "main", "nightly", "rerun"]


def main(argv: list[str] | None = None) -> int:
    """Run once, now: this is ``crossmatch run --prefect`` (one CLI, one set of options and exit
    codes); ``--help`` lists them."""
    from crossmatch.cli import main as cli  # only the one-shot runner needs the CLI, not a worker

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=["run", "--prefect", *args], prog_name="flows/nightly.py")
    except SystemExit as stop:  # click ends with sys.exit(code)
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
