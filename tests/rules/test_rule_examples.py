"""Every rule file is valid, and each of its inline examples gives exactly the expected hits."""

from __future__ import annotations

from decimal import Decimal

import pytest

from crossmatch.detect.rule_check import validate_rules
from crossmatch.detect.rule_runner import run_example
from crossmatch.spec.rules import load_rules, rule_files

from .conftest import RULES_DIR

SPECS = load_rules(RULES_DIR)
CASES = [pytest.param(s, e, id=f"{s.id}:{i + 1}") for s in SPECS for i, e in enumerate(s.examples)]


def test_rule_files_validate():
    problems = validate_rules(RULES_DIR)
    assert not problems, "\n".join(map(str, problems))


def test_every_file_is_loaded():
    assert {p.stem for p in rule_files(RULES_DIR)} == {s.id for s in SPECS}


@pytest.mark.parametrize(("spec", "example"), CASES)
def test_inline_example(spec, example):
    hits = run_example(spec, example)
    got = {(h["subject"], h["period"]) for h in hits}
    want = {(str(e["subject"]), str(e.get("period", ""))) for e in example.expect}
    assert got == want, f"{spec.path}:{example.line}: {example.name}"
    by_key = {(h["subject"], h["period"]): h for h in hits}
    for e in example.expect:
        if "amount" in e:
            h = by_key[(str(e["subject"]), str(e.get("period", "")))]
            assert h["amount"] == Decimal(str(e["amount"])), f"{example.name}: amount"
        if "village_code" in e:
            h = by_key[(str(e["subject"]), str(e.get("period", "")))]
            assert h["village_code"] == e["village_code"], f"{example.name}: village_code"
