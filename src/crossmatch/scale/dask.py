"""Where a night's partitions run: a Dask cluster (``crossmatch run --dask ADDRESS|local``).

:class:`DaskPartitions` is the ``submit`` of :func:`crossmatch.scale.run.run_partitioned` on a
``dask.distributed`` cluster: ``local`` starts a LocalCluster of worker processes on this machine
for the night, any other value is the scheduler of an existing cluster (``tcp://head:8786``;
every worker needs the crossmatch package, nothing else: a partition carries its rows and rule
files). The cluster is started at the first partition submitted, never before, and closed (a
LocalCluster) or left alone (an existing cluster) when the ``with`` block ends: a night whose
rules all reuse their hits starts no cluster. The Prefect flows submit the same partitions as
Prefect tasks through prefect-dask's ``DaskTaskRunner`` instead
(:mod:`crossmatch.scale.flow_tasks`).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from crossmatch.errors import CrossmatchError
from crossmatch.scale.run import PartitionTask, run_partition

log = logging.getLogger(__name__)

LOCAL = "local"
#: Seconds a night waits for an existing cluster's scheduler before it gives up.
CONNECT_TIMEOUT = 10.0


class DaskUnreachable(CrossmatchError):
    """The scheduler of ``--dask tcp://HOST:PORT`` cannot be reached (exit 6, nothing built)."""


def _unreachable(address: str, why: str) -> DaskUnreachable:
    return DaskUnreachable(
        f"the Dask scheduler {address} cannot be reached ({why}). Fix: start it "
        f"(`dask scheduler --port PORT` on the head, `dask worker {address}` on each machine "
        f"with crossmatch installed) or check the address; a night without --dask gives the "
        f"same hits on this one machine."
    )


def check_scheduler(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Fail fast, before a night builds anything, when ``address`` (not ``local``) names a
    scheduler nobody answers at: a TCP connection to its host and port within ``timeout``."""
    if address == LOCAL:
        return
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls") or not parts.hostname:
        raise DaskUnreachable(
            f"--dask {address!r}: expected 'local' or a scheduler address tcp://HOST:PORT "
            f"(tls://HOST:PORT for a TLS cluster)."
        )
    t0 = time.perf_counter()
    try:
        with socket.create_connection((parts.hostname, parts.port or 8786), timeout=timeout):
            pass
    except OSError as err:
        raise _unreachable(
            address, f"{err.strerror or err} after {time.perf_counter() - t0:.1f} s"
        ) from err


def describe(address: str, workers: int) -> str:
    """How a night names where its partitions run."""
    if address == LOCAL:
        return f"Dask LocalCluster ({workers} worker processes, 1 thread each)"
    return f"Dask cluster at {address}"


def local_cluster_kwargs(workers: int) -> dict[str, Any]:
    """The night's LocalCluster: worker processes of one thread, on the loopback interface,
    no Bokeh dashboard (Dask's small HTTP endpoint still listens, on the loopback only)."""
    return {
        "n_workers": workers,
        "processes": True,
        "threads_per_worker": 1,
        "host": "127.0.0.1",
        "dashboard_address": None,
        "scheduler_kwargs": {"dashboard": False},
    }


def quiet_dask_logs() -> None:
    """Dask's INFO lines (scheduler, nanny start-up and shutdown) drown the night's own: keep
    its warnings only (Dask's own logging configuration sets the ``distributed`` logger to
    INFO on import)."""
    dl = logging.getLogger("distributed")
    if dl.getEffectiveLevel() < logging.WARNING:
        dl.setLevel(logging.WARNING)


class DaskPartitions:
    """``with DaskPartitions(address) as d: run_partitioned(con, ..., submit=d.submit)``."""

    def __init__(self, address: str, workers: int = 2) -> None:
        if not address:
            raise ValueError("a Dask address: 'local' or the scheduler's tcp://host:port")
        self.address = address
        self.workers = workers
        self.started = False
        self._cluster: Any = None
        self._client: Any = None

    def describe(self) -> str:
        return describe(self.address, self.workers)

    def __enter__(self) -> DaskPartitions:
        return self

    def _start(self) -> Any:
        # lazy: distributed takes seconds to import, and only a night with partitions needs it
        from distributed import Client, LocalCluster

        quiet_dask_logs()
        if self.address == LOCAL:
            self._cluster = LocalCluster(**local_cluster_kwargs(self.workers))
            self._client = Client(self._cluster)
        else:
            try:
                self._client = Client(self.address, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as err:  # went away since the night started
                raise _unreachable(self.address, f"{type(err).__name__}: {err}") from err
        self.started = True
        log.info("partitions on %s", self.describe())
        return self._client

    def submit(self, tasks: Sequence[PartitionTask]) -> list[Any]:
        """One Dask future per partition (``.result()`` is its :class:`PartitionResult`)."""
        if not tasks:
            return []
        client = self._client or self._start()
        return [
            client.submit(
                run_partition, t, pure=False, key=f"crossmatch-partition-{t.run_id}-{t.part}"
            )
            for t in tasks
        ]

    def __exit__(self, *exc: object) -> None:
        for thing in (self._client, self._cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception as err:  # closing must not hide the night's own outcome
                    log.warning("closing %s: %s", self.describe(), err)
        self._client = self._cluster = None
