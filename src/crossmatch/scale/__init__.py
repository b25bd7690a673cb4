"""Detect beyond one machine: partitions by home region run on Dask (see docs/scale.md).

    from crossmatch.scale import run_partitioned
    result = run_partitioned(con, "rules")          # partitions one after the other, here
    print(result.table())

``flows/partitioned.py`` runs the partitions as Prefect tasks on a ``DaskTaskRunner``.
"""

from crossmatch.scale.locality import Locality, classify
from crossmatch.scale.partition import PartitionPlan, plan_partitions
from crossmatch.scale.run import (
    PartitionedResult,
    PartitionResult,
    PartitionTask,
    run_partition,
    run_partitioned,
)

__all__ = [
    "Locality",
    "PartitionPlan",
    "PartitionResult",
    "PartitionTask",
    "PartitionedResult",
    "classify",
    "plan_partitions",
    "run_partition",
    "run_partitioned",
]
