"""The partitions as Prefect tasks on prefect-dask's ``DaskTaskRunner`` (one task run per
partition in the Prefect UI): the detect-only flow :func:`partitioned` (``crossmatch detect
--dask ADDRESS --prefect``, ``flows/partitioned.py``) and the nightly flow with ``dask`` set.

:class:`PrefectDaskPartitions` has the interface of :class:`crossmatch.scale.dask.DaskPartitions`
(a ``with`` block, ``submit``, ``started``, ``describe``) and must be used inside a flow run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from prefect_dask import DaskTaskRunner

from crossmatch import contract
from crossmatch import warehouse as wh
from crossmatch.scale.dask import LOCAL, describe, local_cluster_kwargs
from crossmatch.scale.run import PartitionResult, PartitionTask, run_partition, run_partitioned


# The partition's rows travel as the task's argument: never hash them for a cache key.
@task(name="partition", cache_policy=NONE, persist_result=False)
def partition_task(part: PartitionTask) -> PartitionResult:
    return run_partition(part)


def task_runner(address: str | None, workers: int = 2) -> DaskTaskRunner:
    """An existing cluster at ``address``, else (None or ``local``) a LocalCluster of
    ``workers`` processes."""
    if address and address != LOCAL:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs=local_cluster_kwargs(workers))


class PrefectDaskPartitions:
    """Partitions submitted as Prefect tasks through a ``DaskTaskRunner`` started at the first
    partition (a night with nothing to compute per partition starts no cluster)."""

    def __init__(self, address: str, workers: int = 2) -> None:
        self.address = address
        self.workers = workers
        self.started = False
        self._runner: DaskTaskRunner | None = None

    def describe(self) -> str:
        return describe(self.address, self.workers) + " through Prefect's DaskTaskRunner"

    def __enter__(self) -> PrefectDaskPartitions:
        return self

    def submit(self, tasks: Sequence[PartitionTask]) -> list[Any]:
        if not tasks:
            return []
        if self._runner is None:
            self._runner = task_runner(self.address, self.workers).__enter__()
            self.started = True
        return [self._runner.submit(partition_task, {"part": t}) for t in tasks]

    def __exit__(self, *exc: Any) -> None:
        if self._runner is not None:
            self._runner.__exit__(*exc)
            self._runner = None


@flow(name="crossmatch-partitioned", log_prints=False)
def partitioned(
    warehouse: str,
    rules: str = "rules",
    level: int = 9,
    partitions: int | None = None,
    max_age_days: float | None = None,
    threads: int | None = 1,
    full: bool = False,
    only: list[str] | None = None,
    sources: str | None = None,
) -> dict[str, Any]:
    """Detect on ``warehouse`` with local rules per partition on the flow's Dask task runner
    (``partitioned.with_options(task_runner=task_runner(address, workers))``). A rule whose
    inputs are unchanged since a finished run copies its hits (``full``: none). ``sources``:
    the mapping folder whose sources join the contract the rules read, as ``crossmatch
    detect --sources``."""
    logger = get_run_logger()
    contract.use(sources)
    with wh.session(
        warehouse, must_exist="run `crossmatch ingest` and `crossmatch resolve`"
    ) as con:
        res = run_partitioned(
            con,
            rules,
            only=only,
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
