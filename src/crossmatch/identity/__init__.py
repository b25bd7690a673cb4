"""Identity resolution: every person-bearing record -> one person, with method and probability.

Public entry points (imported lazily so that importing the package stays cheap):
``resolve(con, specs=None, ...)`` builds ``person_mention``, ``identity_link``, ``person``, the
explanation and judgement tables and the resolved views ``r_<source>`` in a DuckDB warehouse;
``explain(con, source, file, row, role)`` returns the weight each comparison contributed;
``record_judgement(con, ...)`` stores an analyst's same/different verdict;
``evaluate(con, truth_dir)`` scores the resolution against a sample county's truth.
"""

from __future__ import annotations

from typing import Any

__all__ = ["evaluate", "explain", "record_judgement", "resolve"]


def resolve(con: Any, specs: Any = None, **kwargs: Any) -> Any:
    """Resolve every person mention in warehouse ``con``; see
    :func:`crossmatch.identity.pipeline.resolve_identities`."""
    from crossmatch.identity.pipeline import resolve_identities

    return resolve_identities(con, specs, **kwargs)


def __getattr__(name: str) -> Any:
    if name in ("explain", "record_judgement"):
        from crossmatch.identity import pipeline

        return getattr(pipeline, name)
    if name == "evaluate":
        from crossmatch.identity.evaluate import evaluate

        return evaluate
    raise AttributeError(name)
