"""``crossmatch findings``, ``crossmatch suggest ...`` and ``crossmatch report``: 以案促治 from a
terminal. Every write goes to the review store beside the warehouse, audited."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from crossmatch.cli_options import rules_option, warehouse_option
from crossmatch.governance import docx, suggestions
from crossmatch.governance.findings import Params
from crossmatch.governance.report import refresh, refresh_and_report
from crossmatch.governance.suggestions import ensure
from crossmatch.review.store import open_store, store_path

_WAREHOUSE = warehouse_option(
    "DuckDB warehouse; findings and suggestions live in the .review.duckdb file beside it."
)
_RULES = rules_option(
    "Folder of rule files (its reference/item_class.csv maps items to departments)."
)


class _Refused(click.ClickException):
    """A suggestion command that cannot be carried out: bad usage, exit 2 (cli.py's table)."""

    exit_code = 2


_RUN = click.option("--run", "run_id", default=None, help="Detect run id (default: the latest).")


def _date(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date (write 2026-03-31)") from exc


def _store(warehouse: Path):

    con = open_store(store_path(warehouse))
    ensure(con)
    return con


@click.command("findings")
@_WAREHOUSE
@_RULES
@_RUN
@click.option("--lag-min-people", default=3, show_default=True,
              help="death_sync_lag: fewest late-stopped dead payees per township.")  # fmt: skip
@click.option("--lag-ratio", default=3.0, show_default=True,
              help="death_sync_lag: township rate over the others' rate, at least.")  # fmt: skip
@click.option("--kin-min-cases", default=2, show_default=True,
              help="approver_kin: fewest relatives' cases of one official.")  # fmt: skip
def findings_command(
    warehouse: Path,
    rules_dir: Path,
    run_id: str | None,
    lag_min_people: int,
    lag_ratio: float,
    kin_min_cases: int,
) -> None:
    """类案分析: sync the run's clues and measure the root causes behind them (death-record lag
    per township, officials approving relatives, missing approval-time checks, concentration,
    identity and account weaknesses per department), each with figures, clue ids and trend.
    Exit 4 when an analysis is blind, stale or skipped (the reason is printed)."""
    fs = refresh(
        warehouse,
        run_id,
        rules_dir=rules_dir,
        params=Params(
            lag_min_people=lag_min_people, lag_ratio=lag_ratio, kin_min_cases=kin_min_cases
        ),
    )
    click.echo(fs.render())
    for f in fs.findings:
        if len(f.trend) > 1:
            click.echo(
                f"  trend {f.finding_id}: "
                + " -> ".join(str(t["people"] or t["cases"]) for t in f.trend)
            )
    if any(st != "ok" for st, _ in fs.status.values()):
        sys.exit(4)


@click.group("suggest")
def suggest_group() -> None:
    """纪检监察建议 and their follow-up: issue one on a finding (with its Word draft), record the
    department's reply and follow-up visits, measure its effect in a later run, list them with
    整改完成率 and 制度健全度."""


@suggest_group.command("issue")
@_WAREHOUSE
@click.argument("finding_id")
@click.option("--deadline", required=True, help="整改期限, e.g. 2026-03-31.")
@click.option("--issued-on", default=None, help="Issue date (default today).")
@_RUN
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the 建议书 .docx (default: beside the warehouse).")  # fmt: skip
@click.option("--template", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="An edited 建议书 template (.docx with Jinja tags).")  # fmt: skip
def suggest_issue(
    warehouse: Path,
    finding_id: str,
    deadline: str,
    issued_on: str | None,
    run_id: str | None,
    out: Path | None,
    template: Path | None,
) -> None:
    """Issue a 纪检监察建议 on FINDING_ID (from `crossmatch findings`) and write its draft."""
    store = _store(warehouse)
    try:
        try:
            sid = suggestions.issue(
                store, finding_id, deadline=_date(deadline) or dt.date.today(),
                issued_on=_date(issued_on), run_id=run_id,
            )  # fmt: skip
        except suggestions.SuggestionError as exc:
            raise _Refused(str(exc)) from exc
        item = next(s for s in suggestions.suggestions(store) if s["suggestion_id"] == sid)
        path = out or warehouse.with_name(f"{sid}_纪检监察建议书.docx")
        docx.render(item, path, template=template)
        suggestions.record_docx(store, sid, str(path))
    finally:
        store.close()
    click.echo(f"{sid} issued to {item['department']}, deadline {item['deadline']}: {path}")


@suggest_group.command("reply")
@_WAREHOUSE
@click.argument("suggestion_id")
@click.option("--text", required=True, help="The department's reply (what it did).")
@click.option("--fix", default="", help="The rule, policy or system change it made (制度措施).")
@click.option("--done", is_flag=True, help="The department reports the rectification finished.")
@click.option("--date", "on_date", default=None, help="Reply date (default today).")
def suggest_reply(
    warehouse: Path, suggestion_id: str, text: str, fix: str, done: bool, on_date: str | None
) -> None:
    """Record the department's reply to a suggestion (appended, audited)."""
    store = _store(warehouse)
    try:
        suggestions.reply(store, suggestion_id, text, on_date=_date(on_date), fix=fix, done=done)
    except suggestions.SuggestionError as exc:
        raise _Refused(str(exc)) from exc
    finally:
        store.close()
    click.echo(f"{suggestion_id}: reply recorded")


@suggest_group.command("visit")
@_WAREHOUSE
@click.argument("suggestion_id")
@click.option("--findings", "text", required=True, help="What the follow-up visit found.")
@click.option("--date", "on_date", default=None, help="Visit date (default today).")
@click.option("--rectified/--not-rectified", default=None,
              help="Whether the visit saw the problem rectified.")  # fmt: skip
def suggest_visit(
    warehouse: Path, suggestion_id: str, text: str, on_date: str | None, rectified: bool | None
) -> None:
    """Record a follow-up visit (跟踪回访) on a suggestion (appended, audited)."""
    store = _store(warehouse)
    try:
        suggestions.visit(store, suggestion_id, text, on_date=_date(on_date), rectified=rectified)
    except suggestions.SuggestionError as exc:
        raise _Refused(str(exc)) from exc
    finally:
        store.close()
    click.echo(f"{suggestion_id}: visit recorded")


@suggest_group.command("effect")
@_WAREHOUSE
@click.argument("suggestion_id")
@_RUN
@click.option("--min-drop", default=0.5, show_default=True,
              help="Share the finding's people (or cases) must fall by to count.")  # fmt: skip
def suggest_effect(
    warehouse: Path, suggestion_id: str, run_id: str | None, min_drop: float
) -> None:
    """Measure a suggestion's effect in a later analysed run (default: the latest)."""
    store = _store(warehouse)
    try:
        if run_id is None:
            row = store.execute(
                "SELECT s.run_id FROM finding_status s JOIN review_run r USING (run_id) "
                "ORDER BY r.synced_at DESC LIMIT 1"
            ).fetchone()
            if row is None:
                raise _Refused("no analysed run. Fix: run `crossmatch findings`.")
            run_id = row[0]
        try:
            eff = suggestions.measure_effect(store, suggestion_id, run_id, min_drop=min_drop)
        except suggestions.SuggestionError as exc:
            raise _Refused(str(exc)) from exc
    finally:
        store.close()
    click.echo(eff.render())


@suggest_group.command("list")
@_WAREHOUSE
def suggest_list(warehouse: Path) -> None:
    """Every suggestion with its status, and the loop's 整改完成率 and 制度健全度."""
    store = _store(warehouse)
    try:
        items = suggestions.suggestions(store)
        m = suggestions.metrics(store)
    finally:
        store.close()
    for s in items:
        click.echo(
            f"{s['suggestion_id']}  {s['department']}  {s['title']}  期限 {s['deadline']}  "
            f"{s['status']}{' 逾期' if s['overdue'] else ''}  成效 {s['effect']}"
        )

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.0%}"

    click.echo(
        f"建议 {m['issued']} 件, 整改完成 {m['completed']} 件, 逾期 {m['overdue']} 件; "
        f"整改完成率 {pct(m['rectification_rate'])}, 制度健全度 "
        f"{pct(m['institutional_soundness'])} ({m['root_causes_fixed']}/{m['root_causes']})"
    )


@click.command("report")
@_WAREHOUSE
@_RULES
@_RUN
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="HTML file to write (default: <warehouse>.report_<run>.html).")  # fmt: skip
def report_command(warehouse: Path, rules_dir: Path, run_id: str | None, out: Path | None) -> None:
    """Write the run's self-contained HTML report (charts embedded, opens without network):
    clues by rule, township and month, 类案 findings, suggestions and their status, loop
    metrics and their trend. Analyses the run first if needed."""
    res = refresh_and_report(warehouse, run_id, rules_dir=rules_dir, out=out)
    click.echo(res.render())


COMMANDS = (findings_command, suggest_group, report_command)
