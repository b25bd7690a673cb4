"""One night: ingest -> resolve -> kinship -> detect -> score -> clues -> report, the one
orchestration.

``crossmatch run`` and the Prefect flows (``crossmatch.night.flows``, ``flows/nightly.py``) both
call :func:`run_night`; neither has logic of its own. Hooks:

* ``workspace``: a context manager factory ``workspace(warehouse) -> ContextManager[Path]``
  yielding the warehouse file to build in (anything ``os.fspath`` accepts). Default
  :func:`in_place` builds in the warehouse itself. An atomic build (a copy, published in one
  step when the block ends, e.g. ``crossmatch.publish.night_build``) plugs in here: ingest,
  resolve, kinship, detect and score write the copy, a provisional ``night_run`` row is
  published with them, and the clues are synced and the report written after the publish,
  from the published warehouse (the review store only ever sees published runs). Notebooks
  reading the published file then never hold the night up.
* ``stage``: ``stage(name, fn) -> result`` wraps each stage's call; the flow makes each stage
  a Prefect task (one box per stage in the UI), the CLI calls ``fn()`` directly.
* ``wait_seconds``: an analyst's notebook holding the warehouse open (read-only) locks DuckDB's
  file; before each stage the run waits for it, logging who holds it, up to this long
  (then exit 5 with the holder named), instead of ending in a traceback.

The outcome (:data:`OUTCOMES`) is one table for the CLI and the flow: a missing source, a failed
file, a rule skipped / stale / blind or the score / report stage skipped / blind is
``incomplete`` (exit 4, a failed Prefect state named
``Incomplete``); a rule in error or a stage that crashed is ``failed`` (exit 6); a warehouse that
stays locked or is unreadable is ``warehouse`` (exit 5). Only a night where every source was
present and every rule ``ok`` is ``ok`` (exit 0, Completed).

``score`` (:mod:`crossmatch.ml.score`) ranks the detect run's entities with the current model
(fitting the first one when there is none, made current only once its scores are published;
option ``ml_fit="never"`` skips instead); with the model and every input unchanged it copies the
previous run's scores. ``report`` (:mod:`crossmatch.governance.report`) analyses the run's 类案,
snapshots the loop metrics and writes the HTML report beside the warehouse. Neither can lose
the night's clues: a crash in either marks the stage ``failed`` with the reason (exit 6) and
the night goes on (the build is still published, the clues still synced); a stage that could
not see everything is ``skipped`` or ``blind`` with the reason (exit 4), never ``ok``.

``dask`` (``crossmatch run --dask local|tcp://host:8786``, the flows' ``dask`` parameter): the
detect stage runs its per-partition rules as partitions on that Dask cluster
(:mod:`crossmatch.scale`), in the same build, with the same hits, statuses, reuse and exit codes;
everything else about the night is unchanged (docs/scale.md).

Every night, whatever its outcome, leaves a row in the warehouse table ``night_run``: rows per
source, rules per status with reasons, clues new / ongoing / closed, per-stage seconds and the
process's peak memory (:meth:`NightResult.summary`).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import logging
import os
import resource
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from crossmatch import contract
from crossmatch import warehouse as wh
from crossmatch.detect import run_rules
from crossmatch.detect.rule_runner import RunResult, identity_is_stale, rebuild_kinship
from crossmatch.errors import CrossmatchError, ExitCode, SpecError, WarehouseError
from crossmatch.governance.report import refresh_and_report
from crossmatch.identity.pipeline import resolve_identities
from crossmatch.ingest import ingest
from crossmatch.memory import tune_allocator
from crossmatch.ml import model as M
from crossmatch.ml.score import NoModel, score_warehouse
from crossmatch.night import retention
from crossmatch.night.config import NightConfig
from crossmatch.publish import night_build, nothing_to_do, run_lock
from crossmatch.review import sync_warehouse
from crossmatch.review.store import store_path
from crossmatch.scale.dask import DaskPartitions, check_scheduler
from crossmatch.scale.run import run_partitioned
from crossmatch.spec.sources import load_sources

log = logging.getLogger("crossmatch.night")

STAGES = ("ingest", "resolve", "kinship", "detect", "score", "clues", "report")
#: run on the published warehouse, after the build is published
AFTER_PUBLISH = ("clues", "report")
#: a crash here marks the stage failed and the night goes on (the clues are never lost)
NON_FATAL = ("score", "report")

# outcome -> (exit code, Prefect state type, Prefect state name, meaning). The one table.
OUTCOMES: dict[str, tuple[int, str, str, str]] = {
    "ok": (int(ExitCode.OK), "COMPLETED", "Completed", "every source present, every rule ok"),
    "incomplete": (
        int(ExitCode.INPUT_PROBLEMS),
        "FAILED",
        "Incomplete",
        "a source missing, a file failed, a rule or the score / report stage skipped / stale "
        "/ blind",
    ),
    "warehouse": (
        int(ExitCode.WAREHOUSE),
        "FAILED",
        "WarehouseUnavailable",
        "the warehouse stayed locked, or is missing / corrupt / the disk full",
    ),
    "spec": (int(ExitCode.SPEC_INVALID), "FAILED", "Failed", "a source or rule file is invalid"),
    "failed": (int(ExitCode.RUN_FAILED), "FAILED", "Failed", "a rule in error or a stage crashed"),
}


def outcome_table() -> str:
    """The outcome table as text (docs, ``crossmatch run --help``)."""
    return "\n".join(
        f"  {code}  {name:<10} {state_name:<21} {meaning}"
        for name, (code, _t, state_name, meaning) in OUTCOMES.items()
    )


NIGHT_RUN_DDL = """
CREATE TABLE IF NOT EXISTS night_run (
    night_id VARCHAR PRIMARY KEY,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    started_by VARCHAR,
    flow_run_id VARCHAR,
    from_stage VARCHAR,
    outcome VARCHAR,
    exit_code INTEGER,
    sources_missing INTEGER,
    files_failed INTEGER,
    rules_ok INTEGER,
    rules_skipped INTEGER,
    rules_stale INTEGER,
    rules_blind INTEGER,
    rules_error INTEGER,
    hits BIGINT,
    clues_new INTEGER,
    clues_ongoing INTEGER,
    clues_closed INTEGER,
    seconds DOUBLE,
    peak_rss_mb DOUBLE,
    summary JSON
)
"""


@dataclass
class StageReport:
    name: str
    status: str = "not run"  # ok / problems / skipped / blind / failed / not run
    seconds: float = 0.0
    text: str = ""
    problems: list[str] = field(default_factory=list)


@dataclass
class NightResult:
    """What one night did; ``summary()`` is the artifact and the ``night_run`` row."""

    night_id: str
    config: NightConfig
    from_stage: str = "ingest"
    started_at: dt.datetime = field(default_factory=dt.datetime.now)
    finished_at: dt.datetime | None = None
    stages: dict[str, StageReport] = field(default_factory=dict)
    sources: list[dict[str, Any]] = field(default_factory=list)  # rows per source
    sources_missing: list[str] = field(default_factory=list)  # "source: message"
    files_failed: list[str] = field(default_factory=list)
    rules: list[dict[str, Any]] = field(default_factory=list)  # rule_id, status, reason, hits
    detect_run_id: str = ""
    clues: dict[str, int] = field(default_factory=dict)
    ml: dict[str, Any] = field(default_factory=dict)  # model, reused_from, kinds scored
    report_path: str = ""
    retention: str = ""  # what the night's pruning of old runs did (night.retention)
    partitions: dict[str, Any] = field(default_factory=dict)  # detect on Dask: where rules ran
    error: str = ""
    error_outcome: str = ""
    peak_rss_mb: float = 0.0
    flow_run_id: str = ""
    unchanged_since: str = ""  # nothing changed: the night whose results stand (see _unchanged)

    # ---- the outcome
    def rules_with(self, status: str) -> list[dict[str, Any]]:
        return [r for r in self.rules if r["status"] == status]

    @property
    def outcome(self) -> str:
        if self.error_outcome:
            return self.error_outcome
        if self.rules_with("error") or any(s.status == "failed" for s in self.stages.values()):
            return "failed"
        if (
            self.sources_missing
            or self.files_failed
            or any(r["status"] != "ok" for r in self.rules)
            or any(s.status in ("problems", "skipped", "blind") for s in self.stages.values())
        ):
            return "incomplete"
        return "ok"

    @property
    def exit_code(self) -> int:
        return OUTCOMES[self.outcome][0]

    @property
    def hits(self) -> int:
        return sum(int(r.get("hits") or 0) for r in self.rules)

    @property
    def problems(self) -> list[str]:
        """Every reason this night is not green, one line each (the failed state's message)."""
        out = [f"source missing: {m}" for m in self.sources_missing]
        out += [f"file failed: {m}" for m in self.files_failed]
        out += [
            f"rule {r['status']}: {r['rule_id']}: {r['reason']}"
            for r in self.rules
            if r["status"] != "ok"
        ]
        for s in self.stages.values():
            if s.status in ("failed", "skipped", "blind"):
                out.append(f"stage {s.name} {s.status}: {'; '.join(s.problems)}")
        if self.error and not any(self.error in p for p in out):
            out.append(self.error)
        return out

    def headline(self) -> str:
        n = {k: len(self.rules_with(k)) for k in ("ok", "skipped", "stale", "blind", "error")}
        seconds = sum(s.seconds for s in self.stages.values())
        return (
            f"night {self.night_id}: {self.outcome} (exit {self.exit_code}); "
            f"sources missing {len(self.sources_missing)}, files failed {len(self.files_failed)}; "
            f"rules ok {n['ok']}, skipped {n['skipped']}, stale {n['stale']}, "
            f"blind {n['blind']}, error {n['error']}; hits {self.hits}; "
            + (
                "clues " + ", ".join(f"{k} {v}" for k, v in self.clues.items()) + "; "
                if self.clues
                else ""
            )
            + f"{seconds:.1f}s, peak {self.peak_rss_mb:.0f} MB"
        )

    def summary(self) -> dict[str, Any]:
        return {
            "night_id": self.night_id,
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "from_stage": self.from_stage,
            "config": {k: str(v) for k, v in asdict(self.config).items()},
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "finished_at": self.finished_at.isoformat(timespec="seconds")
            if self.finished_at
            else None,
            "stages": {
                k: {"status": s.status, "seconds": round(s.seconds, 2), "problems": s.problems}
                for k, s in self.stages.items()
            },
            "sources": self.sources,
            "sources_missing": self.sources_missing,
            "files_failed": self.files_failed,
            "rules": self.rules,
            "detect_run_id": self.detect_run_id,
            "hits": self.hits,
            "clues": self.clues,
            "ml": self.ml,
            "report": self.report_path or None,
            "retention": self.retention or None,
            "partitions": self.partitions or None,
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "problems": self.problems,
            "unchanged_since": self.unchanged_since or None,
        }

    def markdown(self) -> str:
        """The run summary for people: the Prefect artifact, ``crossmatch run``'s report."""
        lines = [f"# crossmatch night {self.night_id}", "", f"**{self.headline()}**", ""]
        if self.unchanged_since:
            lines += [
                f"Nothing changed since night {self.unchanged_since} (the same files, mappings, "
                f"rules and model): its results stand (detect run {self.detect_run_id}); "
                "nothing was rebuilt.",
                "",
            ]
        if self.problems:
            lines += ["## Not green because", ""] + [f"- {p}" for p in self.problems] + [""]
        lines += ["## Stages", "", "| stage | status | seconds | note |", "|---|---|---|---|"]
        lines += [
            f"| {s.name} | {s.status} | {s.seconds:.1f} | {self._note(s)} |"
            for s in self.stages.values()
        ]
        if self.sources:
            lines += [
                "",
                "## Rows per source",
                "",
                "| source | files | new | unchanged | failed | rows read | loaded | quarantined |",
                "|---|---|---|---|---|---|---|---|",
            ]
            lines += [
                f"| {s['source']} | {s['files']} | {s['loaded']} | {s['unchanged']} | "
                f"{s['failed']} | {s['rows']} | {s['rows_loaded']} | {s['quarantined']} |"
                for s in self.sources
            ]
        if self.rules:
            lines += [
                "",
                "## Rules",
                "",
                "| rule | status | hits | reason |",
                "|---|---|---|---|",
            ]
            lines += [
                f"| {r['rule_id']} | {r['status']} | {r['hits']} | {r['reason']} |"
                for r in self.rules
            ]
        if self.clues:
            lines += ["", "## Clues", "", ", ".join(f"{k} {v}" for k, v in self.clues.items())]
        if self.ml.get("kinds"):
            lines += ["", "## Model scores", "", f"model {self.ml['model_id']}"
                      + (" (fitted tonight)" if self.ml.get("trained") else "")
                      + (f", reused from run {self.ml['reused_from']}"
                         if self.ml.get("reused_from") else ""), "",
                      "| entity | status | scored | reason |", "|---|---|---|---|"]  # fmt: skip
            lines += [
                f"| {e} | {k['status']} | {k['entities']} | {k['reason']} |"
                for e, k in self.ml["kinds"].items()
            ]
        if self.report_path:
            lines += ["", "## Report", "", self.report_path]
        if self.retention:
            lines += ["", "## Retention", "", self.retention]
        return "\n".join(lines) + "\n"

    def _note(self, s: StageReport) -> str:
        """One line per stage in the outcome table: what it used or wrote, or why not ok."""
        if s.status in ("failed", "skipped", "blind"):
            return "; ".join(s.problems).replace("|", "/")[:300]
        if s.name == "score" and self.ml:
            reused = self.ml.get("reused_from")
            return f"model {self.ml['model_id']}" + (
                f", inputs unchanged: scores of run {reused} reused" if reused else ""
            )
        if s.name == "report" and self.report_path:
            return self.report_path
        if s.name == "detect" and self.partitions:
            return partitions_note(self.partitions).replace("|", "/")
        return ""


def partitions_note(p: dict[str, Any]) -> str:
    """One line: where a partitioned detect ran its rules (the summary's detect note)."""
    where = (
        f"{p['partitions']} partitions on {p['dask']}"
        if p["planned"]
        else f"no partition planned, no cluster started ({p['dask']}): no rule computes per "
        "partition tonight"
    )
    return (
        f"partitioned: {where}; rules per partition {len(p['local'])}, cross step "
        f"{len(p['cross'])}, inputs unchanged (hits reused) {len(p['reused'])}"
    )


# ----------------------------------------------------------------------------- hooks


@contextmanager
def in_place(warehouse: Path) -> Iterator[Path]:
    """The default workspace: build in the warehouse itself."""
    yield warehouse


def default_workspace() -> Callable[[Path], AbstractContextManager[Any]]:
    """The workspace ``crossmatch run`` and the flows use: the atomic build-and-publish
    (:func:`crossmatch.publish.night_build`: run lock, build copy, one rename)."""
    return night_build


def _direct(name: str, fn: Callable[[], Any]) -> Any:
    return fn()


def lock_holder(path: Path) -> str | None:
    """Who holds ``path`` locked (DuckDB's message, e.g. 'python3.11 (PID 4242)'), or None
    when a read-write open would succeed now. Opens and closes at once."""
    if not path.exists():
        return None
    try:
        duckdb.connect(str(path)).close()
    except duckdb.IOException as exc:
        msg = str(exc)
        if "lock" not in msg.lower():
            return None  # not a lock: the stage's own open reports it with the fix
        held = msg.split("Conflicting lock is held in", 1)
        return held[1].split(". ")[0].strip() if len(held) > 1 else msg.splitlines()[0]
    return None


def wait_unlocked(path: Path, wait_seconds: float, poll: float = 2.0) -> None:
    """Wait until the warehouse can be opened for writing, saying who holds it; a
    WarehouseError naming the holder after ``wait_seconds``."""
    deadline = time.monotonic() + wait_seconds
    said = 0.0
    while True:
        holder = lock_holder(path)
        if holder is None:
            return
        now = time.monotonic()
        if now >= deadline:
            raise WarehouseError(
                f"{path}: held open by {holder} for more than {wait_seconds:.0f}s, so the night "
                "cannot write it. Fix: close that process (an analyst's notebook: "
                "`con.close()` or restart its kernel) and run again; notebooks should open the "
                "warehouse read-only only while reading."
            )
        if now - said >= 60 or said == 0.0:
            log.warning(
                "warehouse %s is held open by %s (an analyst's notebook?); waiting for it to "
                "close (up to %.0fs more)",
                path,
                holder,
                deadline - now,
            )
            said = now or 1e-9
        time.sleep(min(poll, max(deadline - now, 0.05)))


def peak_rss_mb() -> float:
    """Peak resident memory of this process (and its finished children), in MB."""
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    scale = 1 / 1024 / 1024 if sys.platform == "darwin" else 1 / 1024  # bytes on macOS
    return max(self_kb, kids_kb) * scale


# ----------------------------------------------------------------------------- stages


def _ingest(cfg: NightConfig, path: Path, res: NightResult, opts: dict[str, Any]) -> StageReport:

    summary = ingest(
        cfg.raw,
        cfg.sources,
        path,
        workers=opts.get("workers"),
        memory_limit=opts.get("memory_limit") or "2GB",
        allow_shrink=bool(opts.get("allow_shrink")),
    )
    with wh.session(path) as con:  # data age (max_age_days) counts from the last night seen
        wh.record_seen(con, summary.results, summary.run_id)
    res.sources = summary.per_source()
    res.sources_missing = [r.message for r in summary.results if r.status == "nofile"]
    res.files_failed = [r.message for r in summary.results if r.status == "failed"]
    for m in res.sources_missing:
        log.warning("source missing tonight: %s", m)
    for m in res.files_failed:
        log.warning("file failed: %s", m)
    problems = res.sources_missing + res.files_failed
    return StageReport("ingest", "problems" if problems else "ok", text=summary.render(),
                       problems=problems)  # fmt: skip


def _resolve(cfg: NightConfig, path: Path, res: NightResult, opts: dict[str, Any]) -> StageReport:

    specs = None
    if cfg.sources.is_dir() and any(cfg.sources.glob("*.yaml")):
        specs = load_sources(cfg.sources)
    with wh.session(path, must_exist="run the ingest stage first") as con:
        summary = resolve_identities(con, specs, full=bool(opts.get("full_resolve")))
    text = summary.render()
    log.info("identity: %s", text.splitlines()[0] if text else "")
    return StageReport("resolve", "ok", text=text)


def _kinship(cfg: NightConfig, path: Path, res: NightResult, opts: dict[str, Any]) -> StageReport:

    with wh.session(path, must_exist="run the ingest and resolve stages first") as con:
        stale = identity_is_stale(con)
        if stale:  # detect will mark the rules reading kinship stale with this reason
            log.warning("kinship not rebuilt: %s", stale)
            return StageReport("kinship", "problems", text=stale, problems=[stale])
        counts = rebuild_kinship(con)
    text = ", ".join(f"{k}: {v}" for k, v in counts.items())
    log.info("kinship: %s", text)
    return StageReport("kinship", "ok", text=text)


def _detect(cfg: NightConfig, path: Path, res: NightResult, opts: dict[str, Any]) -> StageReport:

    if opts.get("dask"):
        return _detect_partitioned(cfg, path, res, opts)
    with wh.session(path, must_exist="run the ingest and resolve stages first") as con:
        out = run_rules(
            con, cfg.rules, only=opts.get("only_rules"), max_age_days=opts.get("max_age_days")
        )
    return _detect_report(res, out, out.table())


def _detect_partitioned(
    cfg: NightConfig, path: Path, res: NightResult, opts: dict[str, Any]
) -> StageReport:
    """Detect with the rules that run per partition on Dask (:mod:`crossmatch.scale`): the
    same hits, rule_run rows and fingerprints as ``run_rules``, written into the same build."""
    make = opts.get("partition_runner") or DaskPartitions
    runner = make(opts["dask"], workers=int(opts.get("dask_workers") or 2))
    with runner, wh.session(path, must_exist="run the ingest and resolve stages first") as con:
        out = run_partitioned(
            con,
            cfg.rules,
            only=opts.get("only_rules"),
            max_age_days=opts.get("max_age_days"),
            level=int(opts.get("dask_level") or 9),
            partitions=opts.get("dask_partitions"),
            submit=runner.submit,
            threads=1,
        )
    res.partitions = {
        "dask": runner.describe(),
        "cluster_started": runner.started,
        "planned": out.plan is not None,
        "partitions": out.plan.n if out.plan is not None else 0,
        "plan": out.plan_summary(),
        "local": out.ran_local,
        "cross": out.ran_cross,
        "reused": out.reused,
        "timings": {k: round(v, 2) for k, v in out.timings.items()},
    }
    log.info("detect %s", partitions_note(res.partitions))
    return _detect_report(res, out.run, out.table())


def _detect_report(res: NightResult, out: RunResult, text: str) -> StageReport:
    res.detect_run_id = out.run_id
    res.rules = [
        {
            "rule_id": o.rule_id,
            "status": o.status,
            "reason": o.reason,
            "hits": o.hits,
            "amount": round(float(o.amount), 2),
            "seconds": round(o.seconds, 2),
        }
        for o in out.outcomes
    ]
    for o in out.outcomes:
        if o.status == "error":
            log.error("rule %s in error: %s", o.rule_id, o.reason)
        elif o.status != "ok":
            log.warning("rule %s %s: %s", o.rule_id, o.status, o.reason)
    problems = [f"{o.rule_id} {o.status}: {o.reason}" for o in out.outcomes if o.status != "ok"]
    return StageReport("detect", "problems" if problems else "ok", text=text,
                       problems=problems)  # fmt: skip


def _clues(cfg: NightConfig, path: Path, res: NightResult, opts: dict[str, Any]) -> StageReport:

    sync = sync_warehouse(path, run_id=res.detect_run_id or None, rules_dir=cfg.rules)
    order = ("new", "ongoing", "reopened", "closed", "suppressed", "unchecked")
    res.clues = {k: int(sync.counts.get(k, 0)) for k in order}
    text = sync.render()
    log.info("%s", text)
    return StageReport("clues", "ok", text=text)


def _score(cfg: NightConfig, path: Path, res: NightResult, opts: dict[str, Any]) -> StageReport:
    try:
        out = score_warehouse(
            path,
            res.detect_run_id or None,
            models_of=cfg.warehouse,  # the build is a copy: models live beside the published one
            fit=opts.get("ml_fit") or "missing",
            reuse=not opts.get("full_score"),
            memory_limit=opts.get("memory_limit") or "2GB",
        )
    except NoModel as exc:
        log.warning("score skipped: %s", exc)
        return StageReport("score", "skipped", text=str(exc), problems=[str(exc)])
    res.ml = {
        "run_id": out.run_id,
        "model_id": out.model_id,
        "trained": out.trained,
        "reused_from": out.reused_from,
        "scored": out.scored,
        "kinds": {
            e: {"status": st, "reason": why, "entities": n}
            for e, (st, why, n) in out.status.items()
        },
    }
    problems = out.problems()
    status = "skipped" if not out.scored else "blind" if problems else "ok"
    text = out.render()
    log.info("%s", text.splitlines()[0])
    for p in problems:
        log.warning("score: %s", p)
    return StageReport("score", status, text=text, problems=problems)


def _report(cfg: NightConfig, path: Path, res: NightResult, opts: dict[str, Any]) -> StageReport:
    out = refresh_and_report(path, res.detect_run_id or None, rules_dir=cfg.rules)
    res.report_path = str(out.path)
    problems = [
        f"{kind}: {why}" for kind, (st, why) in sorted(out.findings.status.items()) if st != "ok"
    ]
    for p in problems:
        log.warning("report: finding %s", p)
    log.info("report: %s (%d findings)", out.path, len(out.findings.findings))
    return StageReport("report", "blind" if problems else "ok", text=out.render(),
                       problems=problems)  # fmt: skip


_STAGE_FN = {
    "ingest": _ingest,
    "resolve": _resolve,
    "kinship": _kinship,
    "detect": _detect,
    "score": _score,
    "clues": _clues,
    "report": _report,
}


def _outcome_of(exc: BaseException) -> str:

    if isinstance(exc, WarehouseError) or (
        isinstance(exc, CrossmatchError) and exc.exit_code == ExitCode.WAREHOUSE
    ):  # RunLocked: another night holds the warehouse
        return "warehouse"
    if isinstance(exc, SpecError):
        return "spec"
    if isinstance(exc, CrossmatchError) and exc.exit_code == ExitCode.INPUT_PROBLEMS:
        return "incomplete"
    return "failed"


def record_night(path: Path, res: NightResult) -> None:
    """Insert the night's row into ``night_run`` (the warehouse's history of nights)."""
    s = res.summary()
    n = {k: len(res.rules_with(k)) for k in ("ok", "skipped", "stale", "blind", "error")}
    with wh.session(path) as con:
        con.execute(NIGHT_RUN_DDL)
        con.execute(
            "INSERT OR REPLACE INTO night_run VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                res.night_id,
                res.started_at,
                res.finished_at,
                getpass.getuser(),
                res.flow_run_id or None,
                res.from_stage,
                res.outcome,
                res.exit_code,
                len(res.sources_missing),
                len(res.files_failed),
                n["ok"],
                n["skipped"],
                n["stale"],
                n["blind"],
                n["error"],
                res.hits,
                res.clues.get("new"),
                res.clues.get("ongoing"),
                res.clues.get("closed"),
                sum(st.seconds for st in res.stages.values()),
                res.peak_rss_mb,
                json.dumps(s, ensure_ascii=False, default=str),
            ],
        )


def run_night(
    config: NightConfig | None = None,
    *,
    from_stage: str = "ingest",
    only_rules: list[str] | None = None,
    max_age_days: float | None = 35,
    workspace: Callable[[Path], AbstractContextManager[Path]] = in_place,
    stage: Callable[[str, Callable[[], Any]], Any] = _direct,
    wait_seconds: float = 1800.0,
    flow_run_id: str = "",
    **options: Any,
) -> NightResult:
    """Run the night from ``from_stage`` on; never raises for a crossmatch problem: the
    outcome, the exit code and every reason are in the returned :class:`NightResult` (and
    its ``night_run`` row). ``options``: workers, memory_limit, allow_shrink (ingest),
    even_if_unchanged (run every stage even when nothing changed; each stage still reuses what
    it can: by default such a night takes seconds, see :func:`_unchanged`),
    full_resolve (resolve), ml_fit (score: ``missing`` fits the first model when there is none,
    ``never`` skips the stage instead), full_score (score: recompute even when unchanged),
    dask (detect: ``local`` or a scheduler address: the rules that run per partition run as
    partitions on that Dask cluster, :func:`crossmatch.scale.run.run_partitioned`), with
    dask_workers (LocalCluster processes, default 2), dask_level (region digits, default 9),
    dask_partitions (default one per region) and partition_runner (the class submitting the
    partitions, default :class:`crossmatch.scale.dask.DaskPartitions`; the flows pass
    :class:`crossmatch.scale.flow_tasks.PrefectDaskPartitions`)."""
    if from_stage not in STAGES:
        raise ValueError(f"from_stage {from_stage!r}: one of {', '.join(STAGES)}")
    tune_allocator()  # the flows' and `crossmatch run`'s process: see crossmatch.memory
    cfg = config or NightConfig.resolve()
    contract.use(cfg.sources)  # the mapping folder's sources join what the rules may read
    night_id = dt.datetime.now().strftime("%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:6]
    res = NightResult(night_id, cfg, from_stage=from_stage, flow_run_id=flow_run_id)
    opts = dict(options, only_rules=only_rules, max_age_days=max_age_days)
    log.info("night %s from %s: %s", night_id, from_stage, cfg.describe())
    todo = STAGES[STAGES.index(from_stage) :]
    for name in STAGES:
        res.stages[name] = StageReport(name)  # "not run" until it runs
    build = [n for n in todo if n not in AFTER_PUBLISH]

    def one(name: str, path: Path) -> None:
        wait_unlocked(path, wait_seconds)
        t0 = time.perf_counter()
        try:
            rep = stage(name, lambda: _STAGE_FN[name](cfg, path, res, opts))
        except BaseException as exc:
            rep = StageReport(name, "failed", problems=[_message(exc)])
            rep.seconds = time.perf_counter() - t0
            res.stages[name] = rep
            if name in NON_FATAL and isinstance(exc, Exception):  # the night goes on
                log.error("stage %s failed, the night goes on without it: %s", name,
                          _message(exc), exc_info=not isinstance(exc, CrossmatchError))  # fmt: skip
                return
            raise
        rep.seconds = time.perf_counter() - t0
        res.stages[name] = rep
        log.info("stage %s: %s in %.1fs", name, rep.status, rep.seconds)

    try:
        if opts.get("dask") and "detect" in todo:  # an absent cluster fails before any build
            check_scheduler(str(opts["dask"]))
        if from_stage == "ingest" and _unchanged(cfg, res, opts, wait_seconds):
            build = []  # nothing changed: last night's results stand, nothing is built
        with (workspace if build else in_place)(cfg.warehouse) as ws:
            path = Path(ws)
            for name in build:
                one(name, path)
            if "detect" in build and res.stages["detect"].status != "failed":
                _prune_quietly(cfg, path, res, opts)
            if path != cfg.warehouse:  # published with the results: the row never lags them
                _record_quietly(path, res, night_id)
        _publish_model(cfg, res)
        _remove_unused_models(cfg)
        # the clues and the report after the publish: the review store (beside the published
        # warehouse) only ever sees published detect runs; reading needs no write lock
        for name in AFTER_PUBLISH:
            if name in todo and not res.unchanged_since:
                one(name, cfg.warehouse)
    except Exception as exc:
        res.error, res.error_outcome = _message(exc), _outcome_of(exc)
        if not isinstance(exc, CrossmatchError):
            log.exception("night %s: a stage crashed", night_id)
        else:
            log.error("night %s: %s", night_id, res.error)
    finally:
        res.finished_at = dt.datetime.now()
        res.peak_rss_mb = peak_rss_mb()
    # the final row (clue counts, outcome) in the published warehouse; a notebook holding it
    # delays this by at most a minute, then the published provisional row stays
    try:
        wait_unlocked(cfg.warehouse, min(wait_seconds, 60.0) if not res.error_outcome else 0.0)
        _record_quietly(cfg.warehouse, res, night_id, raise_=True)
    except Exception as exc:  # the night's outcome stands; say why its row lags
        log.warning("night %s: its night_run row could not be written: %s", night_id, exc)
    log.info("%s", res.headline())
    return res


# ----------------------------------------------------------------------------- nothing changed

#: audit actions the night itself writes into the review store; any other action (a verdict,
#: an assignment, feedback, an export...) since the last report makes the report stale
_NIGHT_ACTIONS = ("sync", "findings", "report")


def _unchanged(
    cfg: NightConfig, res: NightResult, opts: dict[str, Any], wait_seconds: float
) -> bool:
    """A night that would change nothing takes seconds: fill ``res`` from the last night whose
    results stand and return True; otherwise (or with an option that forces work) False.

    Nothing changed means (:func:`crossmatch.publish.nothing_to_do`, which hashes the raw files
    and reads the published warehouse read-only): every file and mapping is the one the
    warehouse holds, none failed last time, identity, kinship and the last detect run are
    computed from them and the rules, and that run is synced into the review store. On top,
    the last complete night (from ingest) must have produced that detect run without a failed
    stage, and the current model must be the one that scored it. Then every stage would
    reproduce last night: its rule statuses, hits, missing sources and clue states stand, and
    the night says so (``unchanged_since``, stage status ``unchanged``). Two things still move
    with the calendar and are refreshed: when each source was last present (``seen:<source>``,
    data age for ``--max-age-days``: every file is present tonight), and the governance report
    when analysts recorded something (verdict, assignment, feedback...) since it was written.
    """
    if any(opts.get(k) for k in ("even_if_unchanged", "full_resolve", "full_score", "only_rules")):
        return False
    if not cfg.warehouse.exists():
        return False
    t0 = time.perf_counter()
    with run_lock(cfg.warehouse, res.night_id):
        before = _last_night_of(cfg.warehouse)
        gap = _missing_sources(before)
        nd = nothing_to_do(cfg.raw, cfg.sources, cfg.rules, cfg.warehouse, missing_before=gap)
        if not nd:
            log.info("night %s: %s", res.night_id, nd.render())
            return False
        last = _last_night_of(cfg.warehouse, str(nd.detect_run))
        why = _why_not_reuse(cfg, last)
        if why:
            log.info("night %s: nothing changed, but the night runs: %s", res.night_id, why)
            return False
        assert last is not None
        wait_unlocked(cfg.warehouse, wait_seconds)
        with wh.session(cfg.warehouse) as con:  # present tonight: data age 0; a gap ages on
            con.execute(
                "UPDATE stage_state SET finished_at = ? WHERE stage LIKE 'seen:%' "
                "AND NOT list_contains(?, substr(stage, 6))",
                [dt.datetime.now(), sorted(gap)],
            )
    # the night that last built these results (an unchanged night points further back)
    res.unchanged_since = str(last.get("unchanged_since") or last["night_id"])
    res.detect_run_id = str(nd.detect_run)
    res.rules = list(last.get("rules") or [])
    res.sources_missing = list(last.get("sources_missing") or [])
    res.sources = [
        {**s, "loaded": 0, "unchanged": s.get("files", 0), "rows": 0, "rows_loaded": 0,
         "quarantined": 0, "duplicates": 0, "seconds": 0.0}
        for s in last.get("sources") or []
    ]  # fmt: skip
    res.ml = {**(last.get("ml") or {}), "trained": False}  # fitted then, current since
    res.report_path = str(last.get("report") or "")
    res.retention = ""
    stages = last.get("stages") or {}
    for name in STAGES:
        before = (stages.get(name) or {}).get("status", "not run")
        keep = before in ("problems", "skipped", "blind")  # the same inputs: the same reason
        res.stages[name] = StageReport(
            name,
            before if keep else "unchanged",
            problems=list((stages.get(name) or {}).get("problems") or []) if keep else [],
        )
    res.clues = _open_clues(cfg.warehouse)
    res.stages["ingest"].seconds = time.perf_counter() - t0
    if _analysts_acted(cfg.warehouse):
        t1 = time.perf_counter()
        res.stages["report"] = StageReport("report")
        try:
            res.stages["report"] = _report(cfg, cfg.warehouse, res, opts)
        except Exception as exc:  # as in the full night: a report crash never loses the night
            res.stages["report"] = StageReport("report", "failed", problems=[_message(exc)])
            log.error("stage report failed: %s", _message(exc))
        res.stages["report"].seconds = time.perf_counter() - t1
    log.info(
        "night %s: nothing changed since night %s (the same files, mappings, rules and model): "
        "its results stand, detect run %s",
        res.night_id, last["night_id"], res.detect_run_id,
    )  # fmt: skip
    return True


def _last_night_of(warehouse: Path, detect_run: str | None = None) -> dict[str, Any] | None:
    """The summary of the latest night that ran from ingest (and produced ``detect_run``)."""
    with wh.session(warehouse, read_only=True) as con:
        if not wh._has_table(con, "night_run"):
            return None
        row = con.execute(
            "SELECT summary FROM night_run WHERE from_stage = 'ingest' "
            "AND (? IS NULL OR json_extract_string(summary, '$.detect_run_id') = ?) "
            "ORDER BY finished_at DESC LIMIT 1",
            [detect_run, detect_run],
        ).fetchone()
    return json.loads(row[0]) if row else None


def _missing_sources(night: dict[str, Any] | None) -> set[str]:
    """The sources whose export a night found missing ("<source>: no file matches ...")."""
    return {str(m).split(":", 1)[0] for m in (night or {}).get("sources_missing") or []}


def _why_not_reuse(cfg: NightConfig, last: dict[str, Any] | None) -> str:
    """Why last night's results cannot simply stand ('' when they can)."""
    if last is None:
        return "no complete night produced the current detect run"
    if last.get("outcome") not in ("ok", "incomplete"):
        return f"night {last.get('night_id')} ended {last.get('outcome')}"
    failed = [k for k, s in (last.get("stages") or {}).items() if s.get("status") == "failed"]
    if failed:
        return f"night {last.get('night_id')}: stage(s) {', '.join(failed)} failed"
    if any(
        (last.get("stages") or {}).get(k, {}).get("status") in ("not run", None)
        for k in ("detect", "clues")
    ):
        return f"night {last.get('night_id')} did not run every stage"
    scored_with = (last.get("ml") or {}).get("model_id")
    current = M.current_id(cfg.warehouse)
    if scored_with != current:
        run = last.get("detect_run_id")
        return f"the current model is {current}, run {run} was scored with {scored_with}"
    return ""


def _open_clues(warehouse: Path) -> dict[str, int]:
    """Tonight's clue counts when nothing changed: no clue new, closed or reopened; the open
    ones ongoing (suppressed and unchecked ones as they stand)."""
    order = ("new", "ongoing", "reopened", "closed", "suppressed", "unchecked")
    out = dict.fromkeys(order, 0)
    store = store_path(warehouse)
    if not store.exists():
        return out
    con = duckdb.connect(str(store), read_only=True)
    try:
        for state, n in con.execute("SELECT state, count(*) FROM clue GROUP BY state").fetchall():
            key = "ongoing" if state in ("new", "ongoing", "reopened") else state
            if key in ("suppressed", "unchecked", "ongoing"):
                out[key] += int(n)
    finally:
        con.close()
    return out


def _analysts_acted(warehouse: Path) -> bool:
    """Whether the review store holds something analysts did after the last report."""
    store = store_path(warehouse)
    if not store.exists():
        return False
    con = duckdb.connect(str(store), read_only=True)
    try:
        row = con.execute(
            "SELECT max(seq) FILTER (WHERE action = 'report'), "
            "max(seq) FILTER (WHERE action NOT IN ?) FROM audit",
            [list(_NIGHT_ACTIONS)],
        ).fetchone()
    finally:
        con.close()
    report, other = row or (None, None)
    return other is not None and (report is None or other > report)


def _publish_model(cfg: NightConfig, res: NightResult) -> None:
    """A model fitted tonight becomes the current one now that its scores are published (a
    night that dies before publishing leaves an unused model folder, never a CURRENT naming a
    model whose scores nobody can read)."""
    if not (res.ml.get("trained") and res.stages["score"].status != "failed"):
        return
    M.make_current(cfg.warehouse, res.ml["model_id"])
    log.info("model %s is now the current one", res.ml["model_id"])


def keep_nights(opts: dict[str, Any]) -> int:
    """Nights of hits to keep: the ``keep_nights`` option, else ``CROSSMATCH_KEEP_NIGHTS``, else
    :data:`retention.DEFAULT_KEEP_NIGHTS`."""
    value = opts.get("keep_nights") or os.environ.get("CROSSMATCH_KEEP_NIGHTS", "").strip()
    try:
        n = int(value) if value else retention.DEFAULT_KEEP_NIGHTS
    except ValueError:
        log.warning("CROSSMATCH_KEEP_NIGHTS=%r is not a number: keeping %d nights", value,
                    retention.DEFAULT_KEEP_NIGHTS)  # fmt: skip
        n = retention.DEFAULT_KEEP_NIGHTS
    return max(n, 1)


def _prune_quietly(cfg: NightConfig, path: Path, res: NightResult, opts: dict[str, Any]) -> None:
    """Delete old runs' hits and scores in the build (published with tonight's results); a
    failure is logged and the night goes on (nothing is deleted then)."""
    try:
        runs = retention.clue_runs(cfg.warehouse)
        with wh.session(path) as con:
            out = retention.prune(con, keep_nights=keep_nights(opts), clue_runs=runs,
                                  protect={res.detect_run_id} - {""})  # fmt: skip
        res.retention = out.render()
    except Exception as exc:
        res.retention = f"prune: failed, nothing deleted: {_message(exc)}"
        log.warning("night %s: %s", res.night_id, res.retention)


def _remove_unused_models(cfg: NightConfig) -> None:
    """Model folders left by nights killed between fitting and publishing (never the current
    one, never one a scored run used)."""
    try:
        with wh.session(cfg.warehouse, read_only=True) as con:
            folders = retention.unused_models(con, cfg.warehouse)
        retention.remove_models(folders)
    except Exception as exc:
        log.warning("unused model folders not removed: %s", _message(exc))


def _record_quietly(path: Path, res: NightResult, night_id: str, raise_: bool = False) -> None:
    try:
        res.finished_at = res.finished_at or dt.datetime.now()
        res.peak_rss_mb = peak_rss_mb()
        record_night(path, res)
    except Exception as exc:
        if raise_:
            raise
        log.warning("night %s: night_run row not written to %s: %s", night_id, path, exc)


def _message(exc: BaseException) -> str:
    if isinstance(exc, CrossmatchError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}".splitlines()[0]
