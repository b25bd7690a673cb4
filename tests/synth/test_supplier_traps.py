"""supplier_official_link traps are traps by the truth: no trap supplier's representative or
shareholder is, by accident, the buying school's principal or a close relative of theirs
(seed 23 drew the representative's son as the other school's principal; rule-catalog v1.1
makes that a real link, so the truth, not the rule, was wrong)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossmatch.synth import generate
from crossmatch.synth import plant as P
from crossmatch.synth.county import close_kin


def _related_traps(monkeypatch: pytest.MonkeyPatch, tmp: Path, seed: int) -> tuple[list, int]:
    found: list[tuple[str, str]] = []
    redraws = [0]
    check, redraw = P.Planter._check_suppliers, P.Planter._redraw_principal

    def audit(self: P.Planter) -> None:
        d = self.d
        close = close_kin(d)
        traps = {
            s for r, k, s, _p, _n in d.planted if r == "supplier_official_link" and k == "trap"
        }
        for _no, _sn, scode, sup, _amt, signed, _crit in d.procurement:
            if sup.code not in traps:
                continue
            heads = [x[0] for x in d.staff if x[2] == scode and x[3] == "校长"]
            heads += [x[0] for x in d.payroll if x[2] == scode and x[3] == "校长"
                      and x[5] <= signed and (x[6] is None or x[6] >= signed)]  # fmt: skip
            people = [sup.rep] + [h for h, _ in sup.holders]
            for t in heads:
                kin = {id(t)} | {id(x) for x in (t.hh.members if t.hh else [])}
                kin |= close.get(id(t), set())
                if any(id(x) in kin for x in people):
                    found.append((sup.code, t.pid))
        check(self)

    def counted(self: P.Planter, *a: object) -> bool:
        redraws[0] += 1
        return redraw(self, *a)

    monkeypatch.setattr(P.Planter, "_check_suppliers", audit)
    monkeypatch.setattr(P.Planter, "_redraw_principal", counted)
    generate(persons=8000, seed=seed, out=tmp / str(seed))
    return found, redraws[0]


@pytest.mark.slow  # generates a whole 8,000-person county (~8 s); the redraw runs only here
def test_seed23_trap_principal_is_redrawn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    found, redraws = _related_traps(monkeypatch, tmp_path, 23)
    assert found == []
    assert redraws == 1  # the one accident of seed 23 (a trap_other) was redrawn


@pytest.mark.slow  # generates a whole 8,000-person county (~8 s);
# every county the default tier generates runs the same _check_suppliers, unaudited
def test_seed11_needs_no_redraw(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    found, redraws = _related_traps(monkeypatch, tmp_path, 11)
    assert found == [] and redraws == 0


def test_a_trap_on_a_cases_key_is_no_trap(tmp_path: Path) -> None:
    """Hits are keyed (rule, subject, period): a background failed-then-resent pension (a
    duplicate_payment trap) in the month a planted case repeats the payment for real is a
    case only (3,000 persons, seed 11 had one)."""
    from crossmatch.synth import Summary, _write_planted

    rows = [("duplicate_payment", "case", "A", "2025-02", "同月重复"),
            ("duplicate_payment", "trap", "A", "2025-02", "失败后重发"),
            ("duplicate_payment", "trap", "A", "2025-03", "失败后重发")]  # fmt: skip
    summary = Summary(tmp_path, 200, 1)
    _write_planted(tmp_path / "planted.csv", rows, summary)
    lines = (tmp_path / "planted.csv").read_text(encoding="utf-8").splitlines()
    assert lines[1:] == ["duplicate_payment,case,A,2025-02,同月重复",
                         "duplicate_payment,trap,A,2025-03,失败后重发"]  # fmt: skip
    assert summary.planted == {("duplicate_payment", "case"): 1, ("duplicate_payment", "trap"): 1}
