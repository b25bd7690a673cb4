"""The ``crossmatch`` command line.

Each command is a thin wrapper: parse options, call one function in the package, translate
``crossmatch.errors`` exceptions into a message and an exit code (see :class:`ExitCode`).
Heavy imports happen inside the commands so that ``crossmatch --help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from crossmatch import __version__
from crossmatch.errors import CrossmatchError

DEFAULT_WAREHOUSE = "crossmatch.duckdb"


class _Group(click.Group):
    """Translate library errors to one clear message and a documented exit code."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except CrossmatchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(int(exc.exit_code))


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="crossmatch")
def main() -> None:
    """crossmatch: catch fraud and favouritism in public subsidies."""


@main.command()
@click.option("--persons", type=int, default=8000, show_default=True, help="Residents to generate.")
@click.option("--seed", type=int, default=7, show_default=True, help="Same seed, same bytes.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data/sample"),
    show_default=True,
    help="Output folder (raw/ exports and truth/).",
)
def sample(persons: int, seed: int, out: Path) -> None:
    """Generate a synthetic county: every department's export, messy, with ground truth."""
    from crossmatch.synth import generate

    summary = generate(persons=persons, seed=seed, out=out)
    click.echo(summary.render())


@main.command()
@click.option(
    "--warehouse",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(DEFAULT_WAREHOUSE),
    show_default=True,
    help="DuckDB warehouse holding the canonical src_* tables.",
)
@click.option(
    "--sources",
    "sources_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("sources"),
    show_default=True,
    help="Source specs whose persons: blocks name the person roles (contract roles if absent).",
)
@click.option("--retrain", is_flag=True, help="Re-estimate match weights instead of reusing them.")
def resolve(warehouse: Path, sources_dir: Path, retrain: bool) -> None:
    """Resolve every person-bearing record to one person (exact ID, fuzzy, or unresolved)."""
    import duckdb

    from crossmatch.errors import WarehouseError
    from crossmatch.identity.pipeline import resolve_identities

    if not warehouse.exists():
        raise WarehouseError(f"{warehouse}: no such warehouse; run `crossmatch ingest` first")
    specs = None
    if sources_dir.is_dir() and any(sources_dir.glob("*.yaml")):
        from crossmatch.spec.sources import load_sources

        specs = load_sources(sources_dir)
    with duckdb.connect(str(warehouse)) as con:
        summary = resolve_identities(con, specs, retrain=retrain)
    click.echo(summary.render())


@main.command("identity-eval")
@click.option(
    "--truth",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data/sample/truth"),
    show_default=True,
    help="The sample's truth/ folder (records.csv, noise.csv).",
)
@click.option(
    "--warehouse",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(DEFAULT_WAREHOUSE),
    show_default=True,
    help="A warehouse on which `crossmatch resolve` has run.",
)
def identity_eval(truth: Path, warehouse: Path) -> None:
    """Score the resolution against the truth: pairwise precision, recall, F1."""
    import duckdb

    from crossmatch.errors import WarehouseError
    from crossmatch.identity.evaluate import evaluate

    if not warehouse.exists():
        raise WarehouseError(f"{warehouse}: no such warehouse; run `crossmatch resolve` first")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        scores = evaluate(con, truth)
    for label, sc in scores.items():
        click.echo(sc.render(label))


if __name__ == "__main__":  # pragma: no cover
    main()
