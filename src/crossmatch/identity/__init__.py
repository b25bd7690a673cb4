"""Identity resolution: every person-bearing record -> one person, with method and probability.

Public entry points (imported lazily so that importing the package stays cheap):
``resolve(con, specs=None, ...)`` builds ``person_mention``, ``identity_link``, ``person``, the
explanation and judgement tables and the resolved views ``r_<source>`` in a DuckDB warehouse;
``explain(con, source, file, row, role)`` returns the weight each comparison contributed;
``record_judgement(con, ...)`` stores an analyst's same/different verdict;
``evaluate(con, truth_dir)`` scores the resolution against a sample county's truth.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb

    from crossmatch.identity.analyst import explain as explain
    from crossmatch.identity.analyst import record_judgement as record_judgement
    from crossmatch.identity.evaluate import evaluate as evaluate
    from crossmatch.identity.linker import LinkageConfig
    from crossmatch.identity.roles import RoleRef
    from crossmatch.identity.summary import ResolveSummary
    from crossmatch.spec.sources import SourceSpec

__all__ = ["evaluate", "explain", "record_judgement", "resolve"]

_LAZY = {
    "explain": "crossmatch.identity.analyst",
    "record_judgement": "crossmatch.identity.analyst",
    "evaluate": "crossmatch.identity.evaluate",
}


def resolve(
    con: duckdb.DuckDBPyConnection,
    specs: Sequence[SourceSpec] | None = None,
    *,
    roles: list[RoleRef] | None = None,
    config: LinkageConfig | None = None,
    retrain: bool = False,
    full: bool = False,
    memory_limit: str | None = "2.5GB",
) -> ResolveSummary:
    """Resolve every person mention in warehouse ``con`` (the source specs' ``persons:`` roles;
    default: the contract's) and publish ``person``, ``identity_link`` and the ``r_<source>``
    views; see :func:`crossmatch.identity.pipeline.resolve_identities`."""
    pipeline = importlib.import_module("crossmatch.identity.pipeline")
    return pipeline.resolve_identities(
        con,
        specs,
        roles=roles,
        config=config,
        retrain=retrain,
        full=full,
        memory_limit=memory_limit,
    )


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'crossmatch.identity' has no attribute {name!r}")
