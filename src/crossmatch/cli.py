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
@click.option("--persons", type=int, default=5000, show_default=True, help="Residents to generate.")
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


if __name__ == "__main__":  # pragma: no cover
    main()
