"""Text tables and progress displays, with rich (one look for every command's output).

:func:`text_table` renders rows as plain text (no colour, no trailing spaces), so the same
table reads well in a terminal, a log file, the Prefect UI and a test's assertion.
:func:`progress` shows a live progress display on an interactive stderr and nothing otherwise
(a night's log stays clean).
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table


def text_table(
    head: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    right: Iterable[int] = (),
    footer: Iterable[Sequence[Any]] = (),
    title: str | None = None,
) -> str:
    """``rows`` under ``head`` as a plain-text table; columns in ``right`` right-aligned;
    ``footer`` rows (totals) below a rule."""
    align = set(right)
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        title=title,
        title_justify="left",
        show_footer=False,
    )
    for i, h in enumerate(head):
        table.add_column(h, justify="right" if i in align else "left", no_wrap=True)
    for r in rows:
        table.add_row(*(str(v) for v in r))
    footer = list(footer)
    if footer:
        table.add_section()
        for r in footer:
            table.add_row(*(str(v) for v in r))
    buf = io.StringIO()
    Console(file=buf, width=1000, color_system=None, emoji=False, highlight=False).print(table)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()).strip("\n")


@contextmanager
def progress(*, enabled: bool | None = None) -> Iterator[Progress]:
    """A rich progress display on stderr (disabled when stderr is not a terminal): add one task
    per stage (``p.add_task(description, total=n)``; ``total=None`` shows a spinner)."""
    on = sys.stderr.isatty() if enabled is None else enabled
    console = Console(stderr=True)
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not on,
    ) as p:
        yield p
