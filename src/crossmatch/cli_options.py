"""The click options several command groups share: ``--warehouse`` and ``--rules``.

One definition, so that the default, the type and the parameter name stay the same in every
command (``crossmatch clues``, ``findings``, ``score`` ...); each group only says, in its help
text, what it reads from them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

DEFAULT_WAREHOUSE = Path("crossmatch.duckdb")
DEFAULT_RULES = Path("rules")


def warehouse_option(help: str) -> Callable[[Any], Any]:
    """``--warehouse`` (a DuckDB file, default ``crossmatch.duckdb``), passed as ``warehouse``."""
    return click.option(
        "--warehouse",
        type=click.Path(dir_okay=False, path_type=Path),
        default=DEFAULT_WAREHOUSE,
        show_default=True,
        help=help,
    )


def rules_option(help: str) -> Callable[[Any], Any]:
    """``--rules`` (a folder, default ``rules``), passed as ``rules_dir``."""
    return click.option(
        "--rules",
        "rules_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_RULES,
        show_default=True,
        help=help,
    )
