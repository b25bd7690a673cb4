"""``crossmatch clues``, ``crossmatch explain`` and ``crossmatch verdict``: the review layer
from a terminal. ID and account numbers are masked unless ``--unmask`` (audited)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from crossmatch.cli_options import rules_option, warehouse_option
from crossmatch.export import export_clues
from crossmatch.export.loop import FeedbackRejected, assign, import_feedback, ledgers, metrics
from crossmatch.review.api import Review
from crossmatch.review.clues import VERDICTS
from crossmatch.review.store import open_store, store_path, verify_audit

_WAREHOUSE = warehouse_option(
    "DuckDB warehouse; its review store is the .review.duckdb file beside it."
)
_RULES = rules_option("Folder of rule files (titles and 排除提示).")


@click.command("clues")
@_WAREHOUSE
@_RULES
@click.option("--rule", multiple=True, help="Only this rule id (repeatable).")
@click.option("--region", default=None, help="Code prefix: county (6), township (9), village (12).")
@click.option(
    "--state",
    multiple=True,
    type=click.Choice(["new", "ongoing", "reopened", "closed", "suppressed", "unchecked"]),
    help="Only clues in this state (repeatable; default: all but closed and suppressed).",
)
@click.option("--severity", type=click.Choice(["high", "medium", "low"]), default=None,
              help="Only clues of rules with this severity.")  # fmt: skip
@click.option("--min-amount", type=float, default=None, help="Only clues at stake >= this.")
@click.option("--limit", type=int, default=50, show_default=True, help="Show at most this many.")
@click.option("--sync/--no-sync", default=True, show_default=True,
              help="First record the latest detect run in the review store.")  # fmt: skip
@click.option("--unmask", is_flag=True, help="Show full ID and account numbers (audited).")
def clues_command(
    warehouse: Path,
    rules_dir: Path,
    rule: tuple[str, ...],
    region: str | None,
    state: tuple[str, ...],
    severity: str | None,
    min_amount: float | None,
    limit: int,
    sync: bool,
    unmask: bool,
) -> None:
    """List the clues (线索) of the last run: most severe and largest amount first."""
    rv = Review(warehouse, rules_dir=rules_dir)
    if sync:
        click.echo(rv.sync().render())
    df = rv.clues(
        rule=list(rule) or None,
        region=region,
        state=list(state) or None,
        severity=severity,
        min_amount=min_amount,
        unmask=unmask,
        limit=limit,
    )
    table = Table(title=f"{df.height} clue(s)")
    cols = ("clue_id", "rule_id", "severity", "state", "subject", "subject_name",
            "village_code", "period_from", "period_to", "months", "amount",
            "last_verdict")  # fmt: skip
    for c in cols:
        table.add_column(c, justify="right" if c in ("months", "amount") else "left")
    for row in df.iter_rows(named=True):
        table.add_row(*("" if row[c] is None else str(row[c]) for c in cols))
    Console(width=220).print(table)


@click.command("explain")
@click.argument("clue_id")
@_WAREHOUSE
@_RULES
@click.option("--unmask", is_flag=True, help="Show full ID and account numbers (audited).")
def explain_command(clue_id: str, warehouse: Path, rules_dir: Path, unmask: bool) -> None:
    """Explain one clue: evidence rows with lineage, identity matches, kinship, 排除提示."""
    rv = Review(warehouse, rules_dir=rules_dir)
    try:
        click.echo(str(rv.explain(clue_id, unmask=unmask)))
    except KeyError as exc:
        raise click.ClickException(
            f"{exc.args[0]}. Fix: list the clues with `crossmatch clues`."
        ) from exc


@click.command("verdict")
@click.argument("clue_id")
@click.argument("verdict", type=click.Choice(VERDICTS))
@click.option("--note", default="", help="Why (核查情况).")
@click.option("--author", default=None, help="Who (default: CROSSMATCH_USER or the login).")
@_WAREHOUSE
def verdict_command(
    clue_id: str, verdict: str, note: str, author: str | None, warehouse: Path
) -> None:
    """Record a verification verdict on a clue (append-only, audited)."""
    rv = Review(warehouse)
    try:
        rv.mark(clue_id, verdict, note=note, author=author)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from exc
    click.echo(f"{clue_id}: {verdict} recorded")


@click.command("export")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output file: .xlsx (investigators), .csv (UTF-8 BOM) or .parquet.")  # fmt: skip
@_WAREHOUSE
@_RULES
@click.option("--sources", "sources_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("sources"), show_default=True,
              help="Source mappings (department names for the evidence sheet).")  # fmt: skip
@click.option("--rule", multiple=True, help="Only this rule id (repeatable).")
@click.option("--region", default=None, help="Code prefix: county (6), township (9), village (12).")
@click.option("--state", multiple=True, help="Only clues in this state (repeatable).")
@click.option("--run", default=None, help="The clues one detect run saw (default: all open).")
@click.option("--include-closed", is_flag=True, help="Also closed and suppressed clues.")
@click.option("--unmask", is_flag=True,
              help="Write full ID and account numbers (recorded in the audit log).")  # fmt: skip
def export_command(
    out: Path,
    warehouse: Path,
    rules_dir: Path,
    sources_dir: Path,
    rule: tuple[str, ...],
    region: str | None,
    state: tuple[str, ...],
    run: str | None,
    include_closed: bool,
    unmask: bool,
) -> None:
    """Write the clue list (问题线索清单): Excel with Chinese headers, CSV or Parquet."""
    rv = Review(warehouse, rules_dir=rules_dir)
    click.echo(rv.sync().render())
    res = export_clues(
        rv, out, unmask=unmask, rule=list(rule) or None, region=region,
        state=list(state) or None, run=run, include_closed=include_closed,
        sources_dir=sources_dir,
    )  # fmt: skip
    click.echo(
        f"{res.path}: {res.rows} clue(s), {'masked' if res.masked else 'UNMASKED (audited)'}, "
        f"sha256 {res.sha256[:16]}"
    )


@click.command("assign")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Folder for one workbook per unit.")  # fmt: skip
@_WAREHOUSE
@_RULES
@click.option("--level", type=click.Choice(["township", "village"]), default="township",
              show_default=True, help="Route by township (乡镇) or village (村) code.")  # fmt: skip
@click.option("--due-days", type=int, default=30, show_default=True, help="Days to reply.")
@click.option("--rule", multiple=True, help="Only this rule id (repeatable).")
@click.option("--region", default=None, help="Only clues under this code prefix.")
@click.option("--unmask", is_flag=True, help="Full ID numbers in the workbooks (audited).")
def assign_command(
    out_dir: Path, warehouse: Path, rules_dir: Path, level: str, due_days: int,
    rule: tuple[str, ...], region: str | None, unmask: bool,
) -> None:  # fmt: skip
    """交办: route open clues to units by 属地 and write one workbook per unit."""
    rv = Review(warehouse, rules_dir=rules_dir)
    click.echo(rv.sync().render())
    res = assign(rv, out_dir, level=level, due_days=due_days, rule=list(rule) or None,
                 region=region, unmask=unmask)  # fmt: skip
    click.echo(f"batch {res.batch_id}: {res.clues} clue(s) to {len(res.workbooks)} unit(s)")
    for unit, path in sorted(res.workbooks.items()):
        click.echo(f"  {unit}  {path}")


@click.group("feedback")
def feedback_group() -> None:
    """反馈: read the workbooks the units return."""


@feedback_group.command("import")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))  # fmt: skip
@_WAREHOUSE
def feedback_import(files: tuple[Path, ...], warehouse: Path) -> None:
    """Check every returned workbook, then apply them all in one transaction (or none)."""
    try:
        counts = import_feedback(Review(warehouse), list(files))
    except FeedbackRejected as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(3) from exc
    click.echo("applied: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


@click.command("metrics")
@_WAREHOUSE
@click.option("--by", type=click.Choice(["rule_id", "unit_code"]), multiple=True,
              help="Group by rule and/or unit (default: rule).")  # fmt: skip
def metrics_command(warehouse: Path, by: tuple[str, ...]) -> None:
    """The loop's figures: verification and on-time rates, real precision, 整改完成率, amounts."""
    df = metrics(Review(warehouse), by=by or ("rule_id",))
    table = Table(title="closed-loop metrics")
    for c in df.columns:
        table.add_column(c, justify="left" if c in ("rule_id", "unit_code") else "right")
    for row in df.iter_rows():
        table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row))
    Console(width=240).print(table)


@click.command("audit-verify")
@_WAREHOUSE
def audit_verify(warehouse: Path) -> None:
    """Check the review store's audit log is untampered (its sha256 chain is intact)."""
    store = open_store(store_path(warehouse), read_only=True)
    try:
        problems = verify_audit(store)
        n = store.execute("SELECT count(*) FROM audit").fetchone()
    finally:
        store.close()
    if problems:
        click.echo("\n".join(problems), err=True)
        raise SystemExit(3)
    click.echo(f"audit log intact: {n[0] if n else 0} row(s)")


@click.command("ledgers")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The workbook to write, e.g. 四张清单.xlsx.")  # fmt: skip
@_WAREHOUSE
@_RULES
@click.option("--unmask", is_flag=True, help="Full ID numbers (audited).")
def ledgers_command(out: Path, warehouse: Path, rules_dir: Path, unmask: bool) -> None:
    """四张清单: 重点问题, 整改措施, 问责处理, 整改成效, each item with its 销号 status."""
    path = ledgers(Review(warehouse, rules_dir=rules_dir), out, unmask=unmask)
    click.echo(f"{path}: 四张清单 written")


COMMANDS = (
    clues_command, explain_command, verdict_command, export_command, assign_command,
    feedback_group, metrics_command, audit_verify, ledgers_command,
)  # fmt: skip
