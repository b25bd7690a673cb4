"""The detect stage partitioned on Dask, as a Prefect flow (prefect-dask's Dask task runner).

Thin on purpose: the flow is :func:`crossmatch.scale.flow_tasks.partitioned` (plan, cross step
and reduce in the flow's process, on the warehouse; one Prefect task per partition on the Dask
workers), the one the CLI runs for ``crossmatch detect --dask ADDRESS --prefect``; this file is
a deployment entrypoint (``flows/partitioned.py:partitioned``) and a one-shot runner, which is
that command (one CLI, one set of options and exit codes; ``--help`` lists them):

    # a LocalCluster of 2 worker processes on this machine (the default: --dask local)
    uv run python flows/partitioned.py --warehouse crossmatch.duckdb --dask-workers 2
    # an existing cluster (`dask scheduler` + `dask worker tcp://host:8786` on each machine)
    uv run python flows/partitioned.py --warehouse crossmatch.duckdb --dask tcp://host:8786

The hits, rule_run rows and exit code are those of ``crossmatch detect`` on the same warehouse
(0 all rules ok, 4 a rule skipped / stale / blind, 6 a rule in error); see docs/scale.md.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from crossmatch.scale.flow_tasks import partition_task, partitioned, task_runner

__all__ = ["cli_args", "main", "partition_task", "partitioned", "task_runner"]


def cli_args(argv: list[str]) -> list[str]:
    """The ``crossmatch`` command this runner is: ``detect --prefect``, on a LocalCluster
    unless ``--dask`` names a cluster."""
    named = any(a == "--dask" or a.startswith("--dask=") for a in argv)
    return ["detect", "--prefect", *([] if named else ["--dask", "local"]), *argv]


def main(argv: list[str] | None = None) -> int:
    """Run once, now: ``crossmatch detect --prefect --dask ...``."""
    from crossmatch.cli import main as cli  # only the one-shot runner needs the CLI, not a worker

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=cli_args(args), prog_name="flows/partitioned.py")
    except SystemExit as stop:  # click ends with sys.exit(code)
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
