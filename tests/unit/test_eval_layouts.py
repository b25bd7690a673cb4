"""benchmarks/eval_layouts.py scoring: a rule the engine reports blind / skipped is reported with
its status and reason, not as a recall miss, and is left out of the micro figures."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

from crossmatch.detect.evaluate import RuleScore

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "eval_layouts.py"


def _module():
    spec = importlib.util.spec_from_file_location("eval_layouts", SCRIPT)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["eval_layouts"] = mod  # dataclasses look their module up while building
    spec.loader.exec_module(mod)
    return mod


def _score(rule: str, planted: int, found: int, hits: int, true_hits: int, **kw) -> RuleScore:
    kw.setdefault("traps_flagged", 0)
    return RuleScore(rule, planted, found, hits, true_hits, kw.pop("traps", 10), **kw)


def test_blind_rule_is_reported_as_blind_not_as_recall_zero():
    ev = _module()
    run = ev.Run("default", 11)
    run.steps = {s: "ok" for s in ("validate", "ingest", "resolve", "detect")}
    run.rules = [
        _score("a_rule", 100, 99, 100, 99, traps_flagged=0),
        _score("b_rule", 50, 40, 45, 45, traps_flagged=1),
        _score(
            "property_on_dibao",
            20,
            0,
            0,
            0,
            traps_flagged=0,
            status="blind",
            reason="r_property.co_owner_id empty in every row",
        ),
    ]
    ev._targets(run)
    text = "\n".join(run.misses)
    assert "property_on_dibao: blind (r_property.co_owner_id empty in every row)" in text
    assert "found 0/20" in text
    assert "property_on_dibao: recall" not in text
    assert "b_rule: recall 0.800 (40/50)" in text and "b_rule: 1 trap(s) flagged" in text
    assert "a_rule" not in text  # 0.99 recall, 0.99 precision: met
    rec, pre, traps, not_ok = ev.micro(run.rules)
    assert math.isclose(rec, 139 / 150) and math.isclose(pre, 144 / 145)
    assert traps == 1 and not_ok == 1
    assert "micro (rules ok): recall 0.9267  precision 0.9931" in ev.render(run)


def test_micro_of_nothing_is_nan_not_perfect():
    ev = _module()
    rec, pre, traps, not_ok = ev.micro([_score("x", 3, 0, 0, 0, status="skipped")])
    assert math.isnan(rec) and math.isnan(pre) and not_ok == 1 and traps == 0
