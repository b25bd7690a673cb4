"""crossmatch: open big-data supervision of public subsidies (惠民惠农资金大数据监督).

The public API (documented in ``docs/api.md``); each name is imported on first use, so
``import crossmatch`` stays cheap::

    import crossmatch as cm

    cm.ingest("data/sample/raw", "sources", "w.duckdb")
    with cm.session("w.duckdb") as con:
        cm.resolve(con, cm.load_sources("sources"))
        result = cm.run_rules(con, "rules")
    print(result.table())
    review = cm.Review("w.duckdb")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crossmatch.contract import Contract as Contract
    from crossmatch.contract import active as active_contract
    from crossmatch.detect.rule_runner import RunResult as RunResult
    from crossmatch.detect.rule_runner import rebuild_kinship as rebuild_kinship
    from crossmatch.detect.rule_runner import run_rules as run_rules
    from crossmatch.errors import CrossmatchError as CrossmatchError
    from crossmatch.errors import SpecError as SpecError
    from crossmatch.identity import resolve as resolve
    from crossmatch.identity.summary import ResolveSummary as ResolveSummary
    from crossmatch.ingest.pipeline import ingest as ingest
    from crossmatch.ingest.results import IngestSummary as IngestSummary
    from crossmatch.review.api import Review as Review
    from crossmatch.spec.rules import RuleSpec as RuleSpec
    from crossmatch.spec.rules import load_rules as load_rules
    from crossmatch.spec.sources import SourceSpec as SourceSpec
    from crossmatch.spec.sources import load_sources as load_sources
    from crossmatch.warehouse import connect as connect
    from crossmatch.warehouse import session as session

__version__ = "0.1.0"

#: public name -> (module, attribute)
_API: dict[str, tuple[str, str]] = {
    "Contract": ("crossmatch.contract", "Contract"),
    "active_contract": ("crossmatch.contract", "active"),
    "CrossmatchError": ("crossmatch.errors", "CrossmatchError"),
    "SpecError": ("crossmatch.errors", "SpecError"),
    "SourceSpec": ("crossmatch.spec.sources", "SourceSpec"),
    "load_sources": ("crossmatch.spec.sources", "load_sources"),
    "RuleSpec": ("crossmatch.spec.rules", "RuleSpec"),
    "load_rules": ("crossmatch.spec.rules", "load_rules"),
    "connect": ("crossmatch.warehouse", "connect"),
    "session": ("crossmatch.warehouse", "session"),
    "ingest": ("crossmatch.ingest.pipeline", "ingest"),
    "IngestSummary": ("crossmatch.ingest.results", "IngestSummary"),
    "resolve": ("crossmatch.identity", "resolve"),
    "ResolveSummary": ("crossmatch.identity.summary", "ResolveSummary"),
    "rebuild_kinship": ("crossmatch.detect.rule_runner", "rebuild_kinship"),
    "run_rules": ("crossmatch.detect.rule_runner", "run_rules"),
    "RunResult": ("crossmatch.detect.rule_runner", "RunResult"),
    "Review": ("crossmatch.review.api", "Review"),
}

__all__ = [
    "Contract",
    "CrossmatchError",
    "IngestSummary",
    "ResolveSummary",
    "Review",
    "RuleSpec",
    "RunResult",
    "SourceSpec",
    "SpecError",
    "__version__",
    "active_contract",
    "connect",
    "ingest",
    "load_rules",
    "load_sources",
    "rebuild_kinship",
    "resolve",
    "run_rules",
    "session",
]


def __getattr__(name: str) -> Any:
    if name in _API:
        module, attr = _API[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value  # the next access is a plain attribute
        return value
    raise AttributeError(f"module 'crossmatch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
