"""The ``crossmatch`` command line.

Each command is a thin wrapper: parse options, call one function in the package, translate
``crossmatch.errors`` exceptions into a message and an exit code. Heavy imports happen inside the
commands so that ``crossmatch --help`` stays fast. Every command opens the warehouse through
``crossmatch.warehouse`` (missing, locked, corrupt file, disk full: one clear message, exit 5).

Exit codes (one table for every command, ``crossmatch run`` and the nightly flow, whose final
state maps to them: see ``crossmatch.night.OUTCOMES`` and docs/operations.md):

    0  done; findings (hits) are a normal result
    2  bad command-line usage
    3  spec files invalid; validate: a rule would be skipped or blind (unless --allow-blind)
    4  input problems: a file failed (ingest); a source missing, a rule skipped, stale or
       blind (detect, run, flow: the ``Incomplete`` state)
    5  warehouse missing, locked, corrupt or the disk full
    6  the run failed: a rule in error
"""

from __future__ import annotations

import os

from crossmatch.memory import POLARS_MALLOC_CONF, tune_allocator

# polars' jemalloc reads this once, when polars loads (imported below): keep freed memory for
# reuse instead of returning it at once (see crossmatch.memory).
os.environ.setdefault("_RJEM_MALLOC_CONF", POLARS_MALLOC_CONF)

import logging
import re
import subprocess
import sys
import time
from pathlib import Path

import click
import duckdb
from rich.progress import Progress, TaskID

from crossmatch import __version__, console, contract
from crossmatch import warehouse as wh
from crossmatch.clue_commands import COMMANDS as CLUE_COMMANDS
from crossmatch.detect import run_rules
from crossmatch.detect.evaluate import evaluate as score_hits
from crossmatch.detect.evaluate import render
from crossmatch.detect.needs import check_mappings, derive_cached
from crossmatch.detect.rule_runner import ensure_kinship, identity_is_stale
from crossmatch.errors import CrossmatchError, ExitCode, WarehouseError
from crossmatch.governance.commands import COMMANDS as GOVERNANCE_COMMANDS
from crossmatch.identity.evaluate import evaluate as evaluate_identity
from crossmatch.identity.pipeline import resolve_identities
from crossmatch.ingest import ProgressEvent
from crossmatch.ingest import ingest as run_ingest
from crossmatch.ml.commands import COMMANDS as ML_COMMANDS
from crossmatch.night import NightConfig, retention, run_night
from crossmatch.night.config import home
from crossmatch.night.deploy import ensure_work_pool
from crossmatch.night.run import default_workspace
from crossmatch.publish import run_lock
from crossmatch.scale.dask import DaskPartitions, check_scheduler
from crossmatch.scale.run import run_partitioned
from crossmatch.spec import validate_all
from crossmatch.spec.rules import load_rules
from crossmatch.spec.sources import load_sources
from crossmatch.synth import generate
from crossmatch.synth.layouts import LAYOUTS

DEFAULT_WAREHOUSE = "crossmatch.duckdb"


class _Group(click.Group):
    """Translate library errors to one clear message and a documented exit code."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except CrossmatchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(int(exc.exit_code))


def _warehouse_option(help_text: str):
    return click.option(
        "--warehouse",
        type=click.Path(dir_okay=False, path_type=Path),
        default=Path(DEFAULT_WAREHOUSE),
        show_default=True,
        help=help_text,
    )


def _folder_option(flag: str, default: str, help_text: str, dest: str | None = None):
    args = (flag, dest) if dest else (flag,)
    return click.option(
        *args,
        type=click.Path(file_okay=False, path_type=Path),
        default=Path(default),
        show_default=True,
        help=help_text,
    )


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="crossmatch")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning"], case_sensitive=False),
    default="warning",
    show_default=True,
    help="Log messages to stderr from this level on; debug shows, e.g., how long each SQL "
    "statement of an ingest took.",
)
def main(log_level: str) -> None:
    """crossmatch: catch fraud and favouritism in public subsidies."""
    level = getattr(logging, log_level.upper())
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("crossmatch").setLevel(level)  # also when logging was set up before
    tune_allocator()  # every command of this process: see crossmatch.memory


@main.command()
@click.option(
    "--persons",
    type=click.IntRange(min=200),
    default=8000,
    show_default=True,
    help="Residents to generate (about; the sample is 8000).",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Same seed, same bytes.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data/sample"),
    show_default=True,
    help="Output folder (raw/ exports and truth/).",
)
@click.option(
    "--layout",
    default="default",
    show_default=True,
    help="Departments' layout to render the county in (default, monthly, workbook, utf16, "
    "township, platform); each has its mappings under sources/<layout>/ (default: sources/).",
)
def sample(persons: int, seed: int, out: Path, layout: str) -> None:
    """Generate a synthetic county: every department's export, messy, with ground truth."""
    if layout not in LAYOUTS:
        raise click.BadParameter(
            f"'{layout}' is not a layout; choose one of {', '.join(LAYOUTS)}", param_hint="--layout"
        )
    summary = generate(persons=persons, seed=seed, out=out, layout=layout)
    click.echo(summary.render())


@main.command()
@_warehouse_option("DuckDB warehouse holding the canonical src_* tables.")
@_folder_option(
    "--sources",
    "sources",
    "Source specs whose persons: blocks name the person roles (contract roles if absent).",
    dest="sources_dir",
)
@click.option("--retrain", is_flag=True, help="Re-estimate match weights instead of reusing them.")
@click.option(
    "--full",
    is_flag=True,
    help="Resolve every mention again (default: only new or changed files' mentions).",
)
def resolve(warehouse: Path, sources_dir: Path, retrain: bool, full: bool) -> None:
    """Resolve every person-bearing record to one person (exact ID, fuzzy, or unresolved)."""
    specs = None
    contract.use(sources_dir)
    if sources_dir.is_dir() and any(sources_dir.glob("*.yaml")):
        specs = load_sources(sources_dir)
    with (
        wh.session(warehouse, must_exist="run `crossmatch ingest` first") as con,
        console.progress() as bar,
    ):
        bar.add_task("resolving identities", total=None)
        summary = resolve_identities(con, specs, retrain=retrain, full=full or retrain)
    click.echo(summary.render())


@main.command()
@_warehouse_option("A warehouse on which `crossmatch resolve` has run.")
@click.option(
    "--force", is_flag=True, help="Rebuild even when the inputs are unchanged since the last build."
)
def kinship(warehouse: Path, force: bool) -> None:
    """Build the kinship tables (kin_edge, kin_relative) from the registry, marriages and
    identity, when their inputs changed since the last build (--force: always). `detect` also
    rebuilds them whenever their inputs changed."""
    with wh.session(warehouse, must_exist="run `crossmatch ingest` and `resolve` first") as con:
        stale = identity_is_stale(con)
        if stale:
            click.echo(f"error: kinship not built: {stale}", err=True)
            sys.exit(int(ExitCode.INPUT_PROBLEMS))
        with console.progress() as bar:
            bar.add_task("kinship graph (rebuilt when its inputs changed)", total=None)
            what, counts = ensure_kinship(con, force=force)
    if what == "unchanged":
        click.echo("kinship: inputs unchanged since the last build, not rebuilt (--force does)")
    click.echo(", ".join(f"{k}: {v}" for k, v in counts.items()))


@main.command("identity-eval")
@_folder_option(
    "--truth", "data/sample/truth", "The sample's truth/ folder (records.csv, noise.csv)."
)
@_warehouse_option("A warehouse on which `crossmatch resolve` has run.")
def identity_eval(truth: Path, warehouse: Path) -> None:
    """Score the resolution against the truth: pairwise precision, recall, F1."""
    with wh.session(warehouse, read_only=True, must_exist="run `crossmatch resolve` first") as con:
        scores = evaluate_identity(con, truth)
    for label, sc in scores.items():
        click.echo(sc.render(label))


def _memory_size(value: str) -> str:
    if not re.fullmatch(r"\d+(\.\d+)?\s*([KMGT]i?B)", value.strip(), re.IGNORECASE):
        raise click.BadParameter(f"'{value}' is not a size; write it like 2GB or 1500MB.")
    return value.strip()


@main.command()
@_folder_option(
    "--raw", "data/sample/raw", "Folder holding the department exports (raw/<dir>/<file>)."
)
@_folder_option("--sources", "sources", "Folder of source mapping files (sources/*.yaml).")
@_warehouse_option("DuckDB warehouse file (created when missing).")
@click.option("--only", multiple=True, help="Ingest only this source id (repeatable).")
@click.option(
    "--strict", is_flag=True, help="Exit 4 when rows were quarantined, not only when files failed."
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Files loaded at the same time (default: 2, or 1 on a single core).",
)
@click.option(
    "--memory-limit",
    default="2GB",
    show_default=True,
    callback=lambda ctx, param, value: _memory_size(value),
    help="DuckDB's memory limit while ingesting, e.g. 2GB or 1500MB; beyond it DuckDB spills "
    "to disk.",
)
@click.option(
    "--allow-shrink",
    is_flag=True,
    help="Accept a file with far fewer rows than its version in the warehouse (refused "
    "otherwise as a probably truncated export).",
)
def ingest(
    raw: Path,
    sources: Path,
    warehouse: Path,
    only: tuple[str, ...],
    strict: bool,
    workers: int | None,
    memory_limit: str,
    allow_shrink: bool,
) -> None:
    """Load every source's exports into the warehouse, with lineage and quarantine.

    Unchanged files are skipped (content hash); a changed file replaces its earlier rows in
    one transaction. Ends with a per-source table. Exit 0 when every file loaded, 4 when a
    file failed (its previous version stays) or, with --strict, rows were quarantined.
    """
    tty = sys.stderr.isatty()
    last = [time.monotonic()]
    tasks: dict[tuple[str, str], TaskID] = {}

    def task_of(bar: Progress, ev: ProgressEvent) -> TaskID:
        key = (ev.source, ev.file)
        if key not in tasks:
            tasks[key] = bar.add_task(f"{ev.source}: {ev.file}", total=ev.total or None)
        return tasks[key]

    def progress(ev: ProgressEvent) -> None:
        if ev.kind == "bytes" and ev.total:
            bar.update(task_of(bar, ev), completed=ev.done, total=ev.total)
            now = time.monotonic()
            if not tty and now - last[0] >= 10.0:  # a log: a line every 10 s
                last[0] = now
                click.echo(f"  {ev.source}: {ev.file} {100 * ev.done / ev.total:5.1f}%", err=True)
        elif ev.kind == "phase":
            bar.update(task_of(bar, ev), description=f"{ev.source}: {ev.file}: {ev.note}")
            if not tty and ev.total >= 64 << 20:  # big files: what takes the time
                click.echo(f"  {ev.source}: {ev.file}: {ev.note}", err=True)
        elif ev.kind == "done" and ev.result is not None:
            if (ev.source, ev.file) in tasks:
                bar.remove_task(tasks.pop((ev.source, ev.file)))
            r = ev.result
            if r.status == "loaded":
                click.echo(
                    f"{r.source}: {r.file}: read {r.rows_read} = loaded {r.rows_loaded} + "
                    f"quarantined {r.rows_quarantined}"
                    + (f" + filtered {r.rows_filtered}" if r.rows_filtered else "")
                    + (f" + summary rows {r.rows_summary}" if r.rows_summary else "")
                    + f" (duplicates {r.rows_duplicate}, "
                    f"{r.encoding}, {r.seconds:.1f}s)"
                )
            elif r.status == "unchanged":
                click.echo(f"{r.source}: {r.file}: unchanged, skipped")
            else:
                click.echo(f"{r.source}: {r.file}: FAILED: {r.message}")

    with console.progress() as bar:
        summary = run_ingest(
            raw,
            sources,
            warehouse,
            only=list(only) or None,
            progress=progress,
            workers=workers,
            memory_limit=memory_limit,
            allow_shrink=allow_shrink,
        )

    with wh.session(warehouse) as con:  # data age (detect --max-age-days) counts from here
        wh.record_seen(con, summary.results, summary.run_id)
    click.echo("")
    click.echo(summary.render())
    quarantined = sum(r.rows_quarantined for r in summary.results)
    if summary.failed or (strict and quarantined):
        sys.exit(int(ExitCode.INPUT_PROBLEMS))


@main.command()
@click.option(
    "--sources",
    type=click.Path(path_type=Path),
    default=Path("sources"),
    show_default=True,
    help="Folder of source mapping files.",
)
@click.option(
    "--rules",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder of rule files (default: rules/ when it exists).",
)
@click.option(
    "--raw",
    "raw",
    type=click.Path(path_type=Path),
    default=None,
    help="Also check the source files against these exports' headers.",
)
@click.option(
    "--allow-blind",
    is_flag=True,
    help="Exit 0 even when a rule would be skipped or blind with these mappings.",
)
def validate(sources: Path, rules: Path | None, raw: Path | None, allow_blind: bool) -> None:
    """Check every source (and rule) file; report all problems at once as file:line.

    With --raw, also every export against its mapping: the headers, and the first 2,000 rows'
    mapped cells (a column ingest would refuse as mostly unreadable, a NULL marker such as
    `\\N` not declared in `null_values:`).

    Then, per rule, what it needs (derived from its SQL) against the mappings in --sources:
    `ready`, `blind` (a column it reads is not mapped: which, where, the fix) or `skipped` (a
    source it needs has no mapping). Exit 3 when a rule would be skipped or blind, unless
    --allow-blind."""
    if rules is None and Path("rules").is_dir():
        rules = Path("rules")
    contract.use(sources)
    problems = validate_all({"sources": sources, "rules": rules, "raw": raw})
    for p in problems:
        click.echo(str(p))
    if problems:
        click.echo(f"{len(problems)} problem(s)", err=True)
        sys.exit(int(ExitCode.SPEC_INVALID))
    checked = ", ".join(str(x) for x in (sources, rules, raw) if x is not None)
    click.echo(f"ok: {checked}")
    degraded = 0
    if rules is not None:
        specs = load_sources(sources)
        checks = check_mappings(derive_cached(load_rules(rules), rules), specs, rules)
        click.echo("rules against the mappings in " + str(sources) + ":")
        for c in checks:
            click.echo("  " + c.line())
        degraded = sum(c.status != "ready" for c in checks)
    if degraded and not allow_blind:
        click.echo(
            f"{degraded} rule(s) would be skipped or blind; fix the mappings above "
            "(or pass --allow-blind)",
            err=True,
        )
        sys.exit(int(ExitCode.SPEC_INVALID))


@main.command()
@_folder_option("--rules", "rules", "Folder of rule files.", dest="rules_dir")
@_folder_option(
    "--sources", "sources", "Source mapping files: their sources join the contract the rules read."
)
@click.option("--only", default=None, help="Comma-separated rule ids to run (default: all).")
@_warehouse_option("DuckDB warehouse (after ingest and resolve).")
@click.option(
    "--max-age-days",
    type=float,
    default=None,
    help="Rules reading a source whose export was last present longer ago than this are "
    "`stale` (not run).",
)
@click.option(
    "--full",
    is_flag=True,
    help="Run every rule (default: a rule whose inputs are unchanged since a finished run "
    "copies that run's hits).",
)
@click.option(
    "--dask",
    default=None,
    metavar="ADDRESS|local",
    help="Run the per-partition rules as partitions on this Dask cluster: 'local' (a "
    "LocalCluster for this run) or a scheduler's tcp://host:8786; the cross-partition rules "
    "run here. Same hits (docs/scale.md).",
)
@click.option(
    "--dask-workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Worker processes of the LocalCluster (--dask local).",
)
@click.option(
    "--level",
    type=click.Choice(["9", "6"]),
    default="9",
    show_default=True,
    help="With --dask: partition by township (9 digits of the home village code) or county (6).",
)
@click.option(
    "--partitions",
    type=click.IntRange(min=1),
    default=None,
    help="With --dask: pack the regions into this many partitions (default: one per region).",
)
@click.option(
    "--prefect",
    is_flag=True,
    help="With --dask: run it as the Prefect flow crossmatch-partitioned (PREFECT_API_URL's "
    "server, or a temporary one), one Prefect task per partition (prefect-dask).",
)
def detect(
    rules_dir: Path,
    sources: Path,
    only: str | None,
    warehouse: Path,
    max_age_days: float | None,
    full: bool,
    dask: str | None,
    dask_workers: int,
    level: str,
    partitions: int | None,
    prefect: bool,
) -> None:
    """Run the detection rules; print hits, amount, seconds and status per rule.

    Status per rule: ok, blind (ran, but a column it reads is absent or empty), stale (identity
    or a source older than the data: not run), skipped (a source it needs is not loaded or its
    last file failed: not run), error. Exit 0 when every rule is ok, 4 when one is blind, stale
    or skipped, 6 when one is in error.

    With --dask, the rules that stay within a home region run per partition on a Dask cluster
    and the others here, then the hits are reduced into the same tables; the table also says
    where each rule ran (docs/scale.md). A scheduler nobody answers at: exit 6, nothing run."""
    ids = [x.strip() for x in only.split(",") if x.strip()] if only else None
    if dask is None:
        for flag, given in (
            ("--prefect", prefect),
            ("--partitions", partitions is not None),
            ("--level", level != "9"),
        ):
            if given:
                raise click.UsageError(f"{flag} partitions detect: it needs --dask ADDRESS|local")
    else:
        check_scheduler(dask)  # fail fast, before the warehouse is touched
        code = _detect_partitioned(
            warehouse, rules_dir, sources, ids, max_age_days, full, dask, dask_workers,
            int(level), partitions, prefect,
        )  # fmt: skip
        if code:
            sys.exit(code)
        return
    contract.use(sources)
    with (
        wh.session(
            warehouse, must_exist="run `crossmatch ingest` and `crossmatch resolve` first"
        ) as con,
        console.progress() as bar,
    ):
        task = bar.add_task("rules", total=None)

        def advance(rule_id: str, done: int, total: int) -> None:
            bar.update(task, description=f"rule {rule_id}", completed=done, total=total)

        result = run_rules(
            con, rules_dir, only=ids, max_age_days=max_age_days, progress=advance, full=full
        )
    click.echo(result.table())
    if result.exit_code:
        sys.exit(result.exit_code)


def _detect_partitioned(
    warehouse: Path,
    rules_dir: Path,
    sources: Path,
    only: list[str] | None,
    max_age_days: float | None,
    full: bool,
    dask: str,
    dask_workers: int,
    level: int,
    partitions: int | None,
    prefect: bool,
) -> int:
    """``detect --dask``: :func:`crossmatch.scale.run.run_partitioned` with the partitions on
    Dask (plain ``dask.distributed``), or with ``prefect`` the flow that does the same through
    prefect-dask's task runner. Prints the table; returns the exit code."""
    if prefect:
        # lazy: prefect takes seconds to import, and only --prefect needs it
        from crossmatch.night.prefect_server import server_unless_configured
        from crossmatch.scale.flow_tasks import partitioned, task_runner

        flow = partitioned.with_options(task_runner=task_runner(dask, dask_workers))
        with server_unless_configured():
            out = flow(str(warehouse), str(rules_dir), level=level, partitions=partitions,
                       max_age_days=max_age_days, full=full, only=only,
                       sources=str(sources))  # fmt: skip
        click.echo(out["table"])
        return int(out["exit_code"])
    contract.use(sources)
    runner = DaskPartitions(dask, workers=dask_workers)
    with (
        runner,
        wh.session(
            warehouse, must_exist="run `crossmatch ingest` and `crossmatch resolve` first"
        ) as con,
        console.progress() as bar,
    ):
        bar.add_task(f"rules, partitions on {runner.describe()}", total=None)
        res = run_partitioned(
            con,
            rules_dir,
            only=only,
            max_age_days=max_age_days,
            level=level,
            partitions=partitions,
            submit=runner.submit,
            threads=1,
            full=full,
        )
    click.echo(res.table())
    where = runner.describe() if runner.started else "no cluster started"
    click.echo(f"partitions ran on: {where}")
    return res.exit_code


@main.command()
@_folder_option(
    "--truth", "data/sample/truth", "Folder with planted.csv (the sample county's ground truth)."
)
@_warehouse_option("DuckDB warehouse holding the hits of `crossmatch detect`.")
@click.option("--details", is_flag=True, help="Also list missed cases, false hits, flagged traps.")
def evaluate(truth: Path, warehouse: Path, details: bool) -> None:
    """Score the latest hits per rule against planted truth: recall, precision, traps flagged."""
    with wh.session(warehouse, read_only=True, must_exist="run `crossmatch detect` first") as con:
        try:
            scores = score_hits(con, truth)
        except duckdb.CatalogException as exc:
            raise WarehouseError(
                f"{warehouse} has no hits yet. Fix: run `crossmatch detect`"
            ) from exc
    click.echo(render(scores))
    if details:
        for s in scores:
            for label, items in (
                ("missed", s.missed),
                ("false hit", s.false_hits),
                ("trap flagged", s.flagged_traps),
            ):
                for subj, period in items[:20]:
                    click.echo(f"  {s.rule_id}: {label}: {subj} {period}")


@main.command("run")
@click.option("--raw", default=None, help="Department exports [CROSSMATCH_HOME/data/sample/raw].")
@click.option("--sources", default=None, help="Source mapping files [CROSSMATCH_HOME/sources].")
@click.option("--rules", default=None, help="Rule files [CROSSMATCH_HOME/rules].")
@click.option("--warehouse", default=None, help="Warehouse [CROSSMATCH_HOME/crossmatch.duckdb].")
@click.option(
    "--from-stage",
    type=click.Choice(["ingest", "resolve", "kinship", "detect", "score", "clues", "report"]),
    default="ingest",
    show_default=True,
    help="Start here, reusing the warehouse's earlier stages (e.g. detect after a rule fix).",
)
@click.option("--only", default=None, help="Comma-separated rule ids (default: all).")
@click.option(
    "--max-age-days",
    type=float,
    default=35,
    show_default=True,
    help="A source last present longer ago makes its rules stale.",
)
@click.option(
    "--wait",
    "wait_seconds",
    type=float,
    default=1800,
    show_default=True,
    help="Seconds to wait for a process (an analyst's notebook) holding the warehouse open.",
)
@click.option(
    "--prefect",
    is_flag=True,
    help="Run it as the Prefect flow (PREFECT_API_URL's server, or a temporary one): stage "
    "tasks, logs and the summary artifact in the Prefect UI.",
)
@click.option(
    "--dask",
    default=None,
    metavar="ADDRESS|local",
    help="Detect's per-partition rules run as partitions on this Dask cluster: 'local' (a "
    "LocalCluster for the night) or a scheduler's tcp://host:8786. Same results, same build "
    "and publish (docs/scale.md).",
)
@click.option(
    "--dask-workers",
    type=int,
    default=2,
    show_default=True,
    help="Worker processes of the LocalCluster (--dask local).",
)
@click.option(
    "--even-if-unchanged",
    is_flag=True,
    help="Run every stage even when nothing changed since the last night (by default such a "
    "night keeps the last night's results and takes seconds).",
)
def run(
    raw: str | None,
    sources: str | None,
    rules: str | None,
    warehouse: str | None,
    from_stage: str,
    only: str | None,
    max_age_days: float,
    wait_seconds: float,
    prefect: bool,
    dask: str | None,
    dask_workers: int,
    even_if_unchanged: bool,
) -> None:
    """The whole night: ingest -> resolve -> kinship -> detect -> score -> clues -> report.

    Relative paths are taken from CROSSMATCH_HOME (default: the current folder). Every night
    leaves a row in the warehouse's night_run table. Exit codes (the flow's final state):

    \b
      0  ok          Completed             every source present, every rule ok
      4  incomplete  Incomplete            a source missing, a file failed, a rule
                                           skipped / stale / blind, score or report
                                           skipped / blind
      5  warehouse   WarehouseUnavailable  locked beyond --wait, missing, corrupt, disk full
      3  spec        Failed                a source or rule file invalid
      6  failed      Failed                a rule in error or a stage crashed
    """
    ids = [x.strip() for x in only.split(",") if x.strip()] if only else None
    if prefect:
        # lazy: prefect takes seconds to import, and only --prefect needs it
        from crossmatch.night.flows import exit_code_of, nightly, rerun
        from crossmatch.night.prefect_server import server_unless_configured

        with server_unless_configured():
            if from_stage == "ingest":
                state = nightly(raw, sources, rules, warehouse, ids, max_age_days, wait_seconds,
                                dask, dask_workers, even_if_unchanged,
                                return_state=True)  # fmt: skip
            else:
                state = rerun(from_stage, raw, sources, rules, warehouse, ids, max_age_days,
                              wait_seconds, dask, dask_workers, return_state=True)  # fmt: skip
        click.echo(f"{state.name}: {state.message}")
        code = exit_code_of(state)
    else:
        night_log = logging.getLogger("crossmatch.night")
        if night_log.getEffectiveLevel() > logging.INFO:  # stage progress, without the details
            night_log.setLevel(logging.INFO)
        res = run_night(
            NightConfig.resolve(raw, sources, rules, warehouse),
            from_stage=from_stage,
            only_rules=ids,
            max_age_days=max_age_days,
            wait_seconds=wait_seconds,
            workspace=default_workspace(),
            dask=dask,
            dask_workers=dask_workers,
            even_if_unchanged=even_if_unchanged,
        )
        click.echo(res.markdown())
        code = res.exit_code
    if code:
        sys.exit(code)


@main.command("deploy")
@click.option("--pool", default="crossmatch", show_default=True, help="Process work pool name.")
def deploy(pool: str) -> None:
    """Deploy prefect.yaml's flows to the Prefect server at PREFECT_API_URL: create the process
    work pool if missing, then `prefect deploy --all` in the project home (CROSSMATCH_HOME,
    else the current folder). Then start a worker: `prefect worker start --pool crossmatch`."""
    from prefect.settings import PREFECT_API_URL  # lazy: prefect takes seconds to import

    if not PREFECT_API_URL.value():
        click.echo(
            "error: PREFECT_API_URL is not set. Fix: start a server (`prefect server start`) "
            "and `prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api`",
            err=True,
        )
        sys.exit(int(ExitCode.USAGE))
    root = home()
    if not (root / "prefect.yaml").is_file():
        click.echo(f"error: {root}: no prefect.yaml. Fix: set CROSSMATCH_HOME", err=True)
        sys.exit(int(ExitCode.USAGE))
    created = ensure_work_pool(pool)
    click.echo(f"work pool {pool}: {'created' if created else 'exists'}")
    rc = subprocess.call(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"], cwd=root
    )
    if rc:
        sys.exit(int(ExitCode.RUN_FAILED))


@main.command("prune")
@_warehouse_option("The warehouse (DuckDB file).")
@click.option(
    "--keep-nights",
    type=click.IntRange(min=1),
    default=retention.DEFAULT_KEEP_NIGHTS,
    show_default=True,
    help="Keep the hits and scores of this many latest nights (and every run a clue points at).",
)
@click.option("--dry-run", is_flag=True, help="Say what would be deleted, delete nothing.")
def prune(warehouse: Path, keep_nights: int, dry_run: bool) -> None:
    """Delete old nights' hits and model scores; also unused model folders.

    The night does this itself (CROSSMATCH_KEEP_NIGHTS, default 60). Kept always: the latest
    --keep-nights finished detect runs and every run a clue in the review store was last seen
    in (its evidence). The history tables (detect_run, rule_run, ml_run, night_run) stay.
    Refuses while a night runs on the warehouse."""
    runs = retention.clue_runs(warehouse)
    with (
        run_lock(warehouse, "prune"),
        wh.session(warehouse, must_exist="run `crossmatch run` first") as con,
    ):
        out = retention.prune(con, keep_nights=keep_nights, clue_runs=runs, dry_run=dry_run)
        models = retention.unused_models(con, warehouse)
    click.echo(out.render())
    if models:
        verb = "would remove" if dry_run else "removed"
        click.echo(f"prune: {verb} {len(models)} unused model folder(s): "
                   + ", ".join(m.name for m in models))  # fmt: skip
        if not dry_run:
            retention.remove_models(models)
    if out.skipped and runs is None:
        sys.exit(int(ExitCode.WAREHOUSE))


# the review, model and governance commands live beside the code they drive
for _cmd in (*CLUE_COMMANDS, *ML_COMMANDS, *GOVERNANCE_COMMANDS):
    main.add_command(_cmd)

if __name__ == "__main__":  # pragma: no cover
    main()
