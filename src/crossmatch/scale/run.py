"""Partitioned detect: partition -> local rules per partition (in parallel) -> cross step -> reduce.

The result is the single-machine run's: the same ``hit`` rows (one run id), ``rule_run`` rows with
the same statuses and ``detect_run`` finished in one transaction, through the rule runner's
public run API (:func:`crossmatch.detect.rule_runner.begin_run`, ``run_rule``, ``reuse_rule``,
``record_outcome``, ``finish_run``): the same ``rule_input`` fingerprints and stage ``detect``
record too.

* **Plan** (this process, on the warehouse): each rule's status from its inputs and whether its
  inputs are unchanged since a finished run (then it copies that run's hits, recorded as reused,
  :mod:`crossmatch.detect.reuse`), exactly as ``run_rules``; locality from its SQL
  (:mod:`crossmatch.scale.locality`); linkage groups and partitions
  (:mod:`crossmatch.scale.partition`); each partition's rows as Arrow tables. Only the rules
  that compute are partitioned or cross.
* **Map**: :func:`run_partition` runs the local rules on one partition in an in-memory DuckDB. It
  needs nothing but its :class:`PartitionTask` (the rows, the rule files' text), so it runs on any
  Dask worker, no shared disk. ``submit`` decides where: the flow (``flows/partitioned.py``)
  submits one Prefect task per partition to a ``DaskTaskRunner``; without it they run here, one
  after the other.
* **Cross step** (this process, while the partitions run): the rules that cross partitions run on
  the whole warehouse.
* **Reduce**: each partition's hits whose subject it owns (the partition of the subject's node:
  a person, ``case:``, ``account:``) join the cross step's; a rule that failed in any partition
  is ``error`` with that partition's message, as a failed rule is on one machine.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa

from crossmatch.detect import reuse
from crossmatch.detect import rule_runner as engine
from crossmatch.detect.rule_runner import RuleOutcome, RunResult
from crossmatch.scale.locality import Locality, classify
from crossmatch.scale.partition import PartitionPlan, owner_node_sql, plan_partitions, route
from crossmatch.spec.rules import load_rules

log = logging.getLogger(__name__)


def _arrow(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pa.Table:
    """A query's rows as an Arrow table. Through ``execute`` (``con.sql`` refuses while an
    earlier statement's result is open); the copy it warns about is small next to the query."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return con.execute(sql, params or []).to_arrow_table()


@dataclass
class PartitionTask:
    """Everything one partition's run needs, picklable: rows, rule files, parameters."""

    part: int
    run_id: str
    rule_ids: list[str]
    rule_files: dict[str, bytes]  # path relative to the rules folder -> content
    tables: dict[str, pa.Table]
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    threads: int | None = None  # DuckDB threads in the worker (None: DuckDB's default)


@dataclass
class PartitionResult:
    part: int
    hits: pa.Table
    errors: dict[str, str]  # rule id -> first line of the error
    seconds: dict[str, float]  # rule id -> seconds in this partition
    rows: int
    wall: float


class _Future(Protocol):
    def result(self) -> PartitionResult: ...


Submit = Callable[[Sequence[PartitionTask]], Sequence[_Future]]


@dataclass
class _Done:
    value: PartitionResult

    def result(self) -> PartitionResult:
        return self.value


def serial_submit(tasks: Sequence[PartitionTask]) -> list[_Done]:
    """Run the partitions here, one after the other (no cluster)."""
    return [_Done(run_partition(t)) for t in tasks]


def rule_files(rules_dir: str | Path) -> dict[str, bytes]:
    """The rule files and reference tables of a rules folder, to ship to a worker."""
    root = Path(rules_dir)
    out = {}
    for f in sorted(root.rglob("*")):
        if f.is_file() and f.suffix in (".yaml", ".yml", ".csv"):
            out[str(f.relative_to(root))] = f.read_bytes()
    return out


def run_partition(task: PartitionTask) -> PartitionResult:
    """Run the local rules on one partition in a fresh in-memory DuckDB (worker side)."""
    t_start = time.perf_counter()
    con = duckdb.connect()
    try:
        if task.threads:
            con.execute(f"SET threads = {int(task.threads)}")
        rows = 0
        for name, tbl in task.tables.items():
            con.register("_scale_in", tbl)
            con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _scale_in')
            con.unregister("_scale_in")
            rows += tbl.num_rows
        with tempfile.TemporaryDirectory(prefix="crossmatch-part-") as tmp:
            for rel, data in task.rule_files.items():
                dest = Path(tmp) / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
            specs = load_rules(tmp, only=task.rule_ids) if task.rule_ids else []
            engine.prepare(con, tmp, build_kinship=False)
        engine.stage_tables(con)
        errors: dict[str, str] = {}
        seconds: dict[str, float] = {}
        for spec in specs:
            t0 = time.perf_counter()
            try:
                engine.run_rule(con, spec, task.run_id, task.params.get(spec.id))
            except Exception as exc:  # reported per rule, as on one machine
                log.exception("partition %d: rule %s failed", task.part, spec.id)
                errors[spec.id] = f"{type(exc).__name__}: {exc}".splitlines()[0]
                con.execute("DELETE FROM _run_hit WHERE rule_id = ?", [spec.id])
            seconds[spec.id] = time.perf_counter() - t0
        hits = _arrow(con, "SELECT * FROM _run_hit")
        return PartitionResult(
            task.part, hits, errors, seconds, rows, time.perf_counter() - t_start
        )
    finally:
        con.close()


@dataclass
class PartitionedResult:
    """A partitioned run: the engine's :class:`RunResult` plus where each rule ran and timings."""

    run: RunResult
    plan: PartitionPlan | None  # None: nothing to compute per partition, so nothing planned
    locality: dict[str, Locality]
    timings: dict[str, float] = field(default_factory=dict)
    partition_walls: list[float] = field(default_factory=list)
    ran_local: list[str] = field(default_factory=list)  # rules run in every partition
    ran_cross: list[str] = field(default_factory=list)  # rules run in the cross step
    reused: list[str] = field(default_factory=list)  # rules that copied an earlier run's hits

    @property
    def exit_code(self) -> int:
        return self.run.exit_code

    def table(self) -> str:
        where = "\n".join(
            f"  {rid:<28} {loc.where:<9} {'; '.join(loc.reasons)}"
            for rid, loc in self.locality.items()
        )
        ran = (
            f"rules per partition: {len(self.ran_local)} of {len(self.locality)}; cross step: "
            f"{len(self.ran_cross)}; inputs unchanged (hits reused): {len(self.reused)}; "
            f"not run (status): "
            f"{len(self.locality) - len(self.ran_local) - len(self.ran_cross) - len(self.reused)}"
        )
        times = ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items())
        walls = ", ".join(f"{w:.2f}" for w in self.partition_walls)
        return (
            f"{self.run.table()}\n\n{self.plan_summary()}\n{ran}\n{where}\n"
            f"timings: {times}; partition wall seconds: [{walls}]"
        )

    def plan_summary(self) -> str:
        """The partitions, or why none were planned (no cluster work tonight)."""
        if self.plan is not None:
            return self.plan.summary()
        return (
            "partitions not planned: no rule computes per partition tonight (inputs unchanged: "
            f"{len(self.reused)} rule(s) reuse their hits; cross step: {len(self.ran_cross)}; "
            f"not run (status): "
            f"{len(self.locality) - len(self.ran_cross) - len(self.reused)}), so no partition "
            "was shipped"
        )


def run_partitioned(
    con: duckdb.DuckDBPyConnection,
    rules_dir: str | Path = "rules",
    only: list[str] | None = None,
    *,
    params: dict[str, dict[str, Any]] | None = None,
    level: int = 9,
    partitions: int | None = None,
    run_id: str | None = None,
    max_age_days: float | None = None,
    submit: Submit | None = None,
    threads: int | None = None,
    full: bool = False,
) -> PartitionedResult:
    """Run the rules partitioned (module docstring) and publish the hits as ``run_rules`` does:
    a rule whose inputs are unchanged since a finished run copies its hits (none when ``full``),
    the others run per partition or in the cross step."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    plan = engine.begin_run(
        con, rules_dir, only, params=params, run_id=run_id, max_age_days=max_age_days, full=full
    )
    locality = classify(plan.specs, plan.needs)
    local = [s for s in plan.specs if plan.executes(s.id) and locality[s.id].local]
    cross = [s for s in plan.specs if plan.executes(s.id) and not locality[s.id].local]
    reused = [s for s in plan.specs if plan.reuses(s.id)]
    timings["begin"] = time.perf_counter() - t0

    # plan and ship partitions only when a rule computes per partition: a night whose local
    # rules all reuse their hits (or are not run) scans nothing for groups and ships nothing
    t0 = time.perf_counter()
    pplan: PartitionPlan | None = None
    tasks: list[PartitionTask] = []
    if local:
        pplan = plan_partitions(con, level=level, partitions=partitions)
        tables = {"identity_link", "person"}
        for s in local:
            tables |= {t for t in plan.needs[s.id].columns if t.startswith("r_")}
        sliced = route(con, pplan, tables)
        files = rule_files(rules_dir)
        tasks = [
            PartitionTask(
                k, plan.run_id, [s.id for s in local], files, sliced[k], params or {}, threads
            )
            for k in sorted(sliced)
        ]
        log.info("%s", pplan.summary())
    else:
        log.info("no rule computes per partition: partitions not planned")
    timings["partition"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    futures = (submit or serial_submit)(tasks)
    timings["submit"] = time.perf_counter() - t0

    # the cross step and the reused rules' hits, here, while the partitions run
    t0 = time.perf_counter()
    outcomes: dict[str, RuleOutcome] = {}
    started: dict[str, dt.datetime] = {}
    for spec in plan.specs:
        status, why = plan.status[spec.id]
        outcomes[spec.id] = RuleOutcome(spec.id, spec.version, status, why)
        started[spec.id] = dt.datetime.now()
    for spec in reused:
        out = outcomes[spec.id]
        t_rule = time.perf_counter()
        out.reused_from = plan.reuses(spec.id)
        out.hits, out.amount = engine.reuse_rule(con, plan, spec)
        out.seconds = time.perf_counter() - t_rule
    for spec in cross:
        out = outcomes[spec.id]
        t_rule = time.perf_counter()
        try:
            out.hits, out.amount = engine.run_rule(
                con, spec, plan.run_id, plan.params.get(spec.id),
                reuse.link_sources(plan.needs[spec.id]),
            )  # fmt: skip
        except Exception as exc:
            log.exception("rule %s failed", spec.id)
            out.status, out.reason = "error", f"{type(exc).__name__}: {exc}".splitlines()[0]
            out.hits, out.amount = 0, 0.0
            con.execute("DELETE FROM _run_hit WHERE rule_id = ?", [spec.id])
        out.seconds = time.perf_counter() - t_rule
    timings["cross"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    results: list[PartitionResult] = []
    failed: dict[int, str] = {}
    for task, fut in zip(tasks, futures, strict=True):
        try:
            results.append(fut.result())
        except Exception as exc:  # a lost worker: every local rule of the run is in error
            log.exception("partition %d failed", task.part)
            failed[task.part] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    timings["wait"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    _reduce(con, results)
    for spec in local:
        out = outcomes[spec.id]
        errs = [f"partition {r.part}: {r.errors[spec.id]}" for r in results if spec.id in r.errors]
        errs += [f"partition {k} failed: {msg}" for k, msg in failed.items()]
        out.seconds = sum(r.seconds.get(spec.id, 0.0) for r in results)
        if errs:
            out.status, out.reason = "error", "; ".join(errs)
            con.execute("DELETE FROM _run_hit WHERE rule_id = ?", [spec.id])
            continue
        row = con.execute(
            "SELECT count(*), coalesce(sum(amount), 0) FROM _run_hit WHERE rule_id = ?", [spec.id]
        ).fetchone()
        out.hits, out.amount = (int(row[0]), float(row[1])) if row else (0, 0.0)
    result = RunResult(plan.run_id, prepare_seconds=plan.prepare_seconds)
    for spec in plan.specs:
        engine.record_outcome(con, plan, outcomes[spec.id], started[spec.id])
        result.outcomes.append(outcomes[spec.id])
    engine.finish_run(con, plan, result.outcomes)
    timings["reduce"] = time.perf_counter() - t0
    return PartitionedResult(
        result,
        pplan,
        locality,
        timings,
        [r.wall for r in sorted(results, key=lambda r: r.part)],
        [s.id for s in local],
        [s.id for s in cross],
        [s.id for s in reused],
    )


def _reduce(con: duckdb.DuckDBPyConnection, results: list[PartitionResult]) -> None:
    """Append to ``_run_hit`` each partition's hits whose subject it owns. A subject no partition
    owns (not a node: cannot happen for a local rule's person, case or account) is kept once,
    from the lowest partition, and logged."""
    if not results:
        return
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _scale_hits AS "
        "SELECT 0::BIGINT AS part, * FROM _run_hit LIMIT 0"
    )
    for r in results:
        if r.hits.num_rows:
            con.register("_scale_in", r.hits)
            con.execute(f"INSERT INTO _scale_hits SELECT {int(r.part)}, * FROM _scale_in")
            con.unregister("_scale_in")
    owner = owner_node_sql("h.subject")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _scale_owned AS
        SELECT h.*, n.part AS owner FROM _scale_hits h
        LEFT JOIN _scale_node n ON n.node = {owner}
        """
    )
    orphans = con.execute("SELECT count(*) FROM _scale_owned WHERE owner IS NULL").fetchone()
    if orphans and orphans[0]:
        log.warning("%d partition hit(s) with a subject no partition owns: kept once", orphans[0])
    con.execute(
        """
        INSERT INTO _run_hit
        SELECT * EXCLUDE (part, owner) FROM _scale_owned
        WHERE part = owner
           OR (owner IS NULL AND part = (SELECT min(o.part) FROM _scale_owned o
                                         WHERE o.owner IS NULL AND o.rule_id = _scale_owned.rule_id
                                           AND o.subject = _scale_owned.subject
                                           AND o.period = _scale_owned.period))
        ORDER BY rule_id, subject, period
        """
    )
    for t in ("_scale_hits", "_scale_owned"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
