"""``crossmatch score``, ``crossmatch anomalies`` and ``crossmatch train``: the ML ranker from a
terminal. ID numbers are masked unless ``--unmask``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from crossmatch import warehouse as wh_mod
from crossmatch.cli_options import warehouse_option
from crossmatch.detect.schema import existing_relations
from crossmatch.errors import ExitCode, WarehouseError
from crossmatch.review.api import mask

_WAREHOUSE = warehouse_option(
    "DuckDB warehouse (after detect); models live in <warehouse>.models/."
)


@click.command("score")
@_WAREHOUSE
@click.option("--run", "run_id", default=None, help="Detect run to score (default: the latest).")
@click.option("--retrain", is_flag=True, help="Fit a new unsupervised model on tonight's data.")
@click.option("--model", "model_id", default=None, help="Score with this model id instead.")
def score_command(warehouse: Path, run_id: str | None, retrain: bool, model_id: str | None) -> None:
    """Rank every recipient, household, village, handler and official by how unusual it is.

    Stores ml_run, ml_score and ml_reason with the run; exit 4 when an entity kind is skipped or
    blind (an input missing), 0 otherwise."""
    from crossmatch.ml.score import score_warehouse  # lazy: scikit-learn takes seconds to import

    res = score_warehouse(warehouse, run_id, retrain=retrain, model_id=model_id)
    click.echo(res.render())
    if not res.ok:
        sys.exit(int(ExitCode.INPUT_PROBLEMS))


@click.command("anomalies")
@_WAREHOUSE
@click.option(
    "--entity",
    type=click.Choice(["recipient", "household", "village", "handler", "official"]),
    multiple=True,
    help="Only this entity kind (repeatable; default: all).",
)
@click.option("--top", type=int, default=10, show_default=True, help="Entities per kind.")
@click.option("--unmask", is_flag=True, help="Show full ID numbers.")
def anomalies_command(warehouse: Path, entity: tuple[str, ...], top: int, unmask: bool) -> None:
    """List the highest-ranked entities of the last scored run, with their reasons."""
    with wh_mod.session(warehouse, read_only=True, must_exist="run `crossmatch score`") as con:
        if "ml_score" not in existing_relations(con):
            raise WarehouseError(f"{warehouse} was never scored. Fix: run `crossmatch score`.")
        run = con.execute("SELECT run_id FROM ml_run ORDER BY scored_at DESC LIMIT 1").fetchone()
        rows = con.execute(
            """
            SELECT s.entity, s.rank, s.entity_id, s.village_code, s.ensemble,
                   list(r.text ORDER BY r.k) FILTER (WHERE r.text IS NOT NULL)
            FROM ml_score s LEFT JOIN ml_reason r ON r.run_id = s.run_id
                 AND r.entity = s.entity AND r.entity_id = s.entity_id
            WHERE s.run_id = ? AND s.rank <= ? AND (len(?) = 0 OR list_contains(?, s.entity))
            GROUP BY ALL ORDER BY s.entity, s.rank
            """,
            [run[0] if run else None, top, list(entity), list(entity)],
        ).fetchall()
    for kind, rank, eid, village, ens, texts in rows:
        shown = eid if unmask else mask(eid)
        why = "；".join(texts or []) or "-"
        click.echo(f"{kind:<10} #{rank:<4} {shown:<20} {village or '':<13} 模型评分 "
                   f"{ens * 100:5.1f}  {why}")  # fmt: skip


@click.command("train")
@_WAREHOUSE
@click.option("--seed", type=int, default=0, show_default=True, help="Folds and model seed.")
def train_command(warehouse: Path, seed: int) -> None:
    """Learn from the analysts' verdicts: a calibrated classifier re-orders the clues.

    Refuses (exit 4) with fewer than 40 labelled clues; labelled clues are scored out of fold.
    Prints each rule's precision from the verdicts."""
    # lazy: scikit-learn takes seconds to import
    from crossmatch.ml.supervised import train_from_verdicts

    click.echo(train_from_verdicts(warehouse, seed=seed).render())


COMMANDS = (score_command, anomalies_command, train_command)
