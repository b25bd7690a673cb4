"""Derived rule needs kept on disk (``$CROSSMATCH_NEEDS_CACHE``): a new process reads what an
earlier one derived for the same rules, building blocks, references and contract, and derives
again when any of them changes (the test suite sets the folder: every xdist worker and every CLI
subprocess would otherwise probe the same rules again, seconds each)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from crossmatch import contract
from crossmatch.detect import needs as rule_needs
from crossmatch.detect.rule_kinds import load_checked_rules

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "rules"
SOME = ["deceased_recipient"]  # one rule: each derivation probes its columns


@pytest.fixture
def calls(monkeypatch, tmp_path: Path) -> list[object]:
    """Derivations made, with the disk cache in ``tmp_path / "needs"`` and an empty
    per-process cache (a new process)."""
    made: list[object] = []
    real = rule_needs.derive
    monkeypatch.setenv(rule_needs.NEEDS_CACHE_ENV, str(tmp_path / "needs"))
    monkeypatch.setattr(rule_needs, "_CACHE", {})
    monkeypatch.setattr(rule_needs, "derive", lambda *a: made.append(a) or real(*a))
    return made


def new_process(monkeypatch) -> None:
    monkeypatch.setattr(rule_needs, "_CACHE", {})


def edit_rule(rules: Path) -> None:
    """deceased_recipient now also reads the payment's bank."""
    f = rules / "deceased_recipient.yaml"
    text = f.read_text(encoding="utf-8")
    assert "p.item)," in text
    f.write_text(text.replace("p.item),", "p.item || p.bank),"), encoding="utf-8")


def test_a_new_process_reads_the_needs_another_derived(calls, monkeypatch, tmp_path):
    first = rule_needs.derive_cached(load_checked_rules(RULES_DIR, only=SOME), RULES_DIR)
    assert len(calls) == 1
    files = sorted((tmp_path / "needs").glob("*.json"))
    assert [f.stem for f in files] == [
        rule_needs.derivation_key(load_checked_rules(RULES_DIR, only=SOME), RULES_DIR)
    ]
    new_process(monkeypatch)
    again = rule_needs.derive_cached(load_checked_rules(RULES_DIR, only=SOME), RULES_DIR)
    assert len(calls) == 1 and again == first
    assert again == rule_needs.derive(load_checked_rules(RULES_DIR, only=SOME), RULES_DIR)


def test_a_changed_rule_is_derived_again(calls, monkeypatch, tmp_path):
    before = rule_needs.derive_cached(load_checked_rules(RULES_DIR, only=SOME), RULES_DIR)
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    new_process(monkeypatch)
    same = rule_needs.derive_cached(load_checked_rules(rules, only=SOME), rules)
    assert len(calls) == 1 and same == before  # the same texts elsewhere: read from disk
    edit_rule(rules)
    new_process(monkeypatch)
    got = rule_needs.derive_cached(load_checked_rules(rules, only=SOME), rules)
    assert len(calls) == 2 and len(list((tmp_path / "needs").glob("*.json"))) == 2
    assert "bank" in got["deceased_recipient"].columns["r_payment"]
    assert "bank" not in before["deceased_recipient"].columns["r_payment"]


def test_a_changed_reference_file_is_derived_again(calls, monkeypatch, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    rule_needs.derive_cached(load_checked_rules(rules, only=SOME), rules)
    ref = rules / "reference" / "exempt_posts.csv"
    ref.write_text(ref.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    new_process(monkeypatch)
    rule_needs.derive_cached(load_checked_rules(rules, only=SOME), rules)
    assert len(calls) == 2


def test_a_changed_source_spec_is_derived_again(calls, monkeypatch, tmp_path):
    """The payment mapping loses its bank column: a rule reading it no longer needs it (a stale
    file would still say it does)."""
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    edit_rule(rules)
    with_bank = rule_needs.derive_cached(load_checked_rules(rules, only=SOME), rules)
    assert "bank" in with_bank["deceased_recipient"].columns["r_payment"]
    sources = tmp_path / "sources"
    shutil.copytree(contract.DEFAULT_SOURCES_DIR, sources)
    pay = sources / "payment.yaml"
    lines = pay.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [ln for ln in lines if not ln.strip().startswith("bank:")]
    assert len(kept) == len(lines) - 1
    pay.write_text("".join(kept), encoding="utf-8")
    monkeypatch.setattr(contract, "DEFAULT_SOURCES_DIR", sources)
    new_process(monkeypatch)
    without = rule_needs.derive_cached(load_checked_rules(rules, only=SOME), rules)
    assert len(calls) == 2
    assert "bank" not in without["deceased_recipient"].columns.get("r_payment", ())


def test_an_unreadable_file_is_derived_again(calls, monkeypatch, tmp_path):
    specs = load_checked_rules(RULES_DIR, only=SOME)
    first = rule_needs.derive_cached(specs, RULES_DIR)
    (f,) = (tmp_path / "needs").glob("*.json")
    f.write_text('{"deceased_recipient": ', encoding="utf-8")  # cut short
    new_process(monkeypatch)
    assert rule_needs.derive_cached(specs, RULES_DIR) == first
    assert len(calls) == 2
    assert rule_needs._from_json(f.read_text(encoding="utf-8")) == first  # written again


def test_unset_means_per_process_only(calls, monkeypatch, tmp_path):
    monkeypatch.delenv(rule_needs.NEEDS_CACHE_ENV)
    rule_needs.derive_cached(load_checked_rules(RULES_DIR, only=SOME), RULES_DIR)
    new_process(monkeypatch)
    rule_needs.derive_cached(load_checked_rules(RULES_DIR, only=SOME), RULES_DIR)
    assert len(calls) == 2 and not (tmp_path / "needs").exists()
