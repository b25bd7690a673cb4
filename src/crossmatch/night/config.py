"""Where a night's files are: one place, read from ``CROSSMATCH_HOME``.

A Prefect worker runs the flow in its own folder; with relative defaults (``data/sample/raw``,
``sources``, ``rules``, ``crossmatch.duckdb``) it would find nothing. :meth:`NightConfig.resolve`
anchors every relative path at the project home: ``CROSSMATCH_HOME`` when set, else the current
folder. ``CROSSMATCH_RAW``, ``CROSSMATCH_SOURCES``, ``CROSSMATCH_RULES`` and
``CROSSMATCH_WAREHOUSE`` override single paths (an operator keeps the warehouse on another disk).
Explicit arguments win over the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULTS = {
    "raw": "data/sample/raw",
    "sources": "sources",
    "rules": "rules",
    "warehouse": "crossmatch.duckdb",
}


def home() -> Path:
    """The project home: ``CROSSMATCH_HOME`` if set (must be a folder), else the current folder."""
    env = os.environ.get("CROSSMATCH_HOME", "").strip()
    if not env:
        return Path.cwd()
    p = Path(env).expanduser()
    if not p.is_dir():
        from crossmatch.errors import InputFileError

        raise InputFileError(
            f"CROSSMATCH_HOME={env}: not a folder. Fix: set it to the crossmatch project folder "
            "(the one holding sources/ and rules/), or unset it to use the current folder."
        )
    return p.resolve()


@dataclass(frozen=True)
class NightConfig:
    """Absolute paths of one night's inputs and output."""

    home: Path
    raw: Path
    sources: Path
    rules: Path
    warehouse: Path

    @classmethod
    def resolve(
        cls,
        raw: str | Path | None = None,
        sources: str | Path | None = None,
        rules: str | Path | None = None,
        warehouse: str | Path | None = None,
    ) -> NightConfig:
        base = home()
        given = {"raw": raw, "sources": sources, "rules": rules, "warehouse": warehouse}
        out: dict[str, Path] = {}
        for key, value in given.items():
            if value is None or str(value) == "":
                value = os.environ.get(f"CROSSMATCH_{key.upper()}") or DEFAULTS[key]
            p = Path(value).expanduser()
            out[key] = p if p.is_absolute() else (base / p)
        return cls(home=base, **out)

    def describe(self) -> str:
        return (
            f"home {self.home}; raw {self.raw}; sources {self.sources}; rules {self.rules}; "
            f"warehouse {self.warehouse}"
        )
