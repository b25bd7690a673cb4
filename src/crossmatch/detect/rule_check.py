"""The full check of rule files: structure (``crossmatch.spec.rules``), rule kinds registered
here in ``crossmatch.detect``, and every rule's SQL compiled against the contract tables.

Registered as the ``rules`` validator of ``crossmatch.spec.validate_all`` (the spec layer
imports it by name, never by an import statement: spec stays below detect).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crossmatch.detect.rule_kinds import kind_problems
from crossmatch.detect.rule_runner import compile_problems
from crossmatch.spec import register_validator
from crossmatch.spec.common import Problem, Problems
from crossmatch.spec.rules import load_rules


def validate_rules(rules_dir: str | Path, *, compile_sql: bool = True) -> Problems:
    """All problems of all rule files at once: structure, parameters, kinds, then (if the
    structure is sound) referenced tables/columns and SQL compilation against empty contract
    tables."""
    problems = Problems()
    specs = load_rules(rules_dir, problems)
    kinds = kind_problems(specs)
    problems.extend(kinds)
    if compile_sql and specs and not kinds:
        problems.extend(compile_problems(specs))
    return problems


def _validator(paths: Mapping[str, Any]) -> list[Problem]:
    d = paths.get("rules")
    return [] if d is None else list(validate_rules(d))


register_validator("rules", _validator)
