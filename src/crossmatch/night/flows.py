"""The Prefect flows over :func:`crossmatch.night.run_night`: ``nightly``, ``rerun``, ``backfill``.

Thin on purpose: the flow adds what only Prefect can show.

* each stage is a task (one box per stage, with its time, in the UI);
* crossmatch's own log lines (every ``crossmatch.*`` logger, from any thread) reach the run's
  log in the UI through :class:`RunLogBridge`;
* the run summary is a markdown artifact (key ``crossmatch-night``) as well as the warehouse's
  ``night_run`` row;
* the final state says what happened (:data:`crossmatch.night.OUTCOMES`): Completed only when
  every source was present and every rule ok; otherwise a Failed state named ``Incomplete``
  (exit 4), ``WarehouseUnavailable`` (5) or ``Failed`` (3, 6), whose message lists why. The
  state's data is the summary dict, so ``state.result(raise_on_failure=False)`` reads it.

``workspace`` (module variable): the context manager factory run_night builds in: the atomic
build-and-publish ``crossmatch.publish.night_build`` when installed, else the warehouse itself
(:func:`crossmatch.night.run.default_workspace`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed, State

from crossmatch.night.config import NightConfig
from crossmatch.night.run import OUTCOMES, NightResult, default_workspace, run_night
from crossmatch.scale.flow_tasks import PrefectDaskPartitions

workspace = default_workspace()


class RunLogBridge(logging.Handler):
    """Forward ``crossmatch`` log records to the flow run's logger (so to the Prefect UI).

    The run logger is captured once in the flow; records from worker threads (ingest loads
    files on two) carry the flow run id through it."""

    def __init__(
        self, run_logger: logging.Logger | logging.LoggerAdapter, level: int = logging.INFO
    ):
        super().__init__(level)
        self.run_logger = run_logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.run_logger.log(record.levelno, "%s: %s", record.name, record.getMessage())
        except Exception:  # a log line must never break the night
            self.handleError(record)


class bridged_logs:
    """``with bridged_logs(run_logger):`` crossmatch's INFO and above reach the UI."""

    def __init__(
        self, run_logger: logging.Logger | logging.LoggerAdapter, level: int = logging.INFO
    ):
        self.handler = RunLogBridge(run_logger, level)
        self.logger = logging.getLogger("crossmatch")
        self.level = level

    def __enter__(self) -> RunLogBridge:
        self.before = (self.logger.level, self.logger.propagate)
        if self.logger.getEffectiveLevel() > self.level:
            self.logger.setLevel(self.level)
        self.logger.addHandler(self.handler)
        self.logger.propagate = False  # the run logger prints them already: no double lines
        return self.handler

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.before[0])
        self.logger.propagate = self.before[1]


def _stage_task(name: str, fn: Callable[[], Any]) -> Any:
    """Run one stage as a Prefect task (a box with its time in the UI); no caching."""
    stage_task = task(name=name, cache_policy=NO_CACHE, persist_result=False)(fn)
    return stage_task()


def state_of(res: NightResult) -> State:
    """The flow's final state for a night (one outcome table with the CLI's exit codes)."""
    _code, kind, name, _meaning = OUTCOMES[res.outcome]
    data = res.summary()
    if kind == "COMPLETED":
        return Completed(message=res.headline(), data=data)
    why = "; ".join(res.problems) or res.error
    return Failed(name=name, message=f"{res.headline()} -- {why}"[:4000], data=data)


def _night(
    raw: str | None,
    sources: str | None,
    rules: str | None,
    warehouse: str | None,
    only_rules: list[str] | None,
    max_age_days: float | None,
    from_stage: str,
    wait_seconds: float,
    dask: str | None = None,
    dask_workers: int = 2,
    even_if_unchanged: bool = False,
) -> State:
    from prefect.runtime import flow_run  # lazy: prefect takes seconds to import

    log = get_run_logger()
    cfg = NightConfig.resolve(raw, sources, rules, warehouse)
    log.info("crossmatch night: %s", cfg.describe())
    with bridged_logs(log):
        res = run_night(
            cfg,
            from_stage=from_stage,
            only_rules=only_rules,
            max_age_days=max_age_days,
            workspace=workspace,
            stage=_stage_task,
            wait_seconds=wait_seconds,
            flow_run_id=str(flow_run.id or ""),
            dask=dask or None,
            dask_workers=dask_workers,
            partition_runner=PrefectDaskPartitions,
            even_if_unchanged=even_if_unchanged,
        )
    create_markdown_artifact(
        res.markdown(), key="crossmatch-night", description=res.headline()[:500]
    )
    if res.exit_code:
        log.error("%s", res.headline())
        for p in res.problems:
            log.error("not green: %s", p)
    else:
        log.info("%s", res.headline())
    return state_of(res)


@flow(name="crossmatch-nightly", log_prints=False)
def nightly(
    raw: str | None = None,
    sources: str | None = None,
    rules: str | None = None,
    warehouse: str | None = None,
    only_rules: list[str] | None = None,
    max_age_days: float | None = 35,
    wait_seconds: float = 1800,
    dask: str | None = None,
    dask_workers: int = 2,
    even_if_unchanged: bool = False,
) -> State:
    """Ingest every department's exports, resolve identities, rebuild kinship, run the rules,
    score the entities (ML), record the clues, write the governance report. Paths: relative
    to CROSSMATCH_HOME (default: the worker's folder). ``dask``: ``local`` or a Dask
    scheduler's address: detect's per-partition rules run there, one Prefect task per
    partition through prefect-dask's DaskTaskRunner (docs/scale.md). When nothing changed
    since the last night, its results stand and the run takes seconds (no stage task runs);
    ``even_if_unchanged`` runs every stage anyway."""
    return _night(raw, sources, rules, warehouse, only_rules, max_age_days, "ingest", wait_seconds,
                  dask, dask_workers, even_if_unchanged)  # fmt: skip


@flow(name="crossmatch-rerun", log_prints=False)
def rerun(
    from_stage: str = "detect",
    raw: str | None = None,
    sources: str | None = None,
    rules: str | None = None,
    warehouse: str | None = None,
    only_rules: list[str] | None = None,
    max_age_days: float | None = 35,
    wait_seconds: float = 1800,
    dask: str | None = None,
    dask_workers: int = 2,
) -> State:
    """Run the night again from one stage on (``detect`` after a rule fix, ``resolve`` after
    a judgement...): the earlier stages' results in the warehouse are reused, and a stage whose
    inputs are newer than them makes its rules ``stale``, never ``ok``."""
    return _night(raw, sources, rules, warehouse, only_rules, max_age_days, from_stage,
                  wait_seconds, dask, dask_workers)  # fmt: skip


@flow(name="crossmatch-backfill", log_prints=False)
def backfill(
    raws: list[str],
    sources: str | None = None,
    rules: str | None = None,
    warehouse: str | None = None,
    max_age_days: float | None = None,
    wait_seconds: float = 1800,
) -> State:
    """Catch up missed nights: one full night per raw folder (each a dated copy of the
    exports, e.g. ``archive/2026-12-01``), oldest first, so the review store sees every night's
    clues in order. Fails (naming the nights) when any night was not green."""
    log = get_run_logger()
    outcomes: list[dict[str, Any]] = []
    for raw in raws:
        st = nightly.with_options(flow_run_name=f"backfill {raw}")(
            raw, sources, rules, warehouse, None, max_age_days, wait_seconds, return_state=True
        )
        summary = st.result(raise_on_failure=False)
        outcome = summary.get("outcome") if isinstance(summary, dict) else st.name
        outcomes.append({"raw": raw, "state": st.name, "outcome": outcome})
        log.info("backfill %s: %s", raw, st.name)
    bad = [o for o in outcomes if o["state"] != "Completed"]
    text = ", ".join(f"{o['raw']}: {o['state']}" for o in outcomes)
    if bad:
        return Failed(name="Incomplete", message=f"backfill: {text}", data=outcomes)
    return Completed(message=f"backfill: {text}", data=outcomes)


def exit_code_of(state: State) -> int:
    """The CLI exit code of a finished night's state (the state data's ``exit_code``; a
    crashed or cancelled run: 6)."""
    try:
        data = state.result(raise_on_failure=False)
    except Exception:
        data = None
    if isinstance(data, dict) and "exit_code" in data:
        return int(data["exit_code"])
    return 0 if state.is_completed() else 6
