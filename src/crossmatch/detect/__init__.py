"""Rule engine: parse rule files -> plan (render + check) -> execute in DuckDB -> store hits.

Python API for flows and notebooks::

    from crossmatch.detect import run_rules
    result = run_rules(con, "rules", only=["deceased_recipient"])
    print(result.table())
"""

from crossmatch.detect.rule_runner import RuleOutcome, RunResult, run_example, run_rules

__all__ = ["RuleOutcome", "RunResult", "run_example", "run_rules"]
