"""Month-wise reuse of ``partition: period`` rules (crossmatch.detect.reuse).

* Every rule that declares ``partition: period`` keeps its promise on real counties (the sample
  and a generated county in another layout): run on some payment months only, it returns
  exactly its full run's hits of those months, and every hit of its full run has a payment
  month as period. A rule that looks across months fails the same check (so it can fail), and
  the engine's run-time guard refuses it.
* A night on which an *old* month's payments changed (besides the changed 2025Q4 file)
  recomputes that month, keeps the untouched months' hits, and equals a fresh full night; the
  same night with the old month wrongly taken as unchanged does not (so the comparison sees a
  wrong reuse).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import duckdb
import pytest

from build_cache import cached_build
from crossmatch.detect import needs as rule_needs
from crossmatch.detect import reuse, rule_runner
from crossmatch.detect.rule_kinds import load_checked_rules
from crossmatch.synth.layouts import generate_layout

from .compare import EQUAL, differences
from .conftest import RULES, SAMPLE, SOURCES, County
from .night import run_night

QUARTER2 = Path("finance") / "一卡通发放明细_2025Q2.csv"


def _sample(out: Path) -> None:
    run_night(SAMPLE, SOURCES, RULES, out / "w.duckdb")


def _township(out: Path) -> None:  # another seed, another layout (township exports)
    generate_layout(2500, 23, out / "county", "township")
    run_night(out / "county" / "raw", SOURCES / "township", RULES, out / "w.duckdb")


COUNTIES = {"sample": _sample, "township-2500-s23": _township}


# The sample in the default tier; the township county (another layout, same checks: 6 s and a
# 50 s build on a cold cache) in the slow tier.
PARAMS = [pytest.param(name, marks=[pytest.mark.slow] if name != "sample" else []) for name in
          sorted(COUNTIES)]  # fmt: skip


@pytest.fixture(params=PARAMS)
def detected(request, tmp_path_factory, tmp_path: Path) -> Path:
    """A private copy of a county's warehouse after one night."""
    built = cached_build(tmp_path_factory, f"period-{request.param}", COUNTIES[request.param])
    shutil.copyfile(built / "w.duckdb", tmp_path / "w.duckdb")
    return tmp_path / "w.duckdb"


def _hits(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """The staged hits as the engine stores them (evidence lists sorted: ``_store``)."""
    con.execute(rule_runner._SORT_EVIDENCE)
    return sorted(
        con.execute(
            "SELECT subject, period, amount, village_code, _sorted_evidence(evidence)::VARCHAR "
            "FROM _rule_hits"
        ).fetchall()
    )


def broken_promises(
    con: duckdb.DuckDBPyConnection, spec, full_hits: list[int] | None = None
) -> list[str]:
    """What goes wrong when ``spec`` is run on some payment months only, against its full run
    (empty: it keeps the ``partition: period`` promise on this warehouse). The full run's
    number of hits is appended to ``full_hits``."""
    months = [r[0] for r in con.execute("SELECT DISTINCT period FROM paid ORDER BY 1").fetchall()]
    rule_runner.execute_rule(con, spec)
    full = _hits(con)
    if full_hits is not None:
        full_hits.append(len(full))
    problems = [f"hit of period {h[1]!r}, not a payment month" for h in full if h[1] not in months]
    subsets = [[m] for m in months[::3]] + [months[-3:], months[1::2]]
    for sub in [s for s in subsets if s]:
        with rule_runner._MonthsOnly(con, sub):
            rule_runner.execute_rule(con, spec)
            part = _hits(con)
        want = [h for h in full if h[1] in sub]
        if part != want:
            problems.append(f"months {sub}: {len(part)} hits, the full run has {len(want)}")
    return problems


def test_declared_rules_keep_their_promise(detected: Path):
    specs = [s for s in load_checked_rules(RULES) if s.partition == "period"]
    assert len(specs) >= 10
    con = duckdb.connect(str(detected))
    try:
        rule_runner.prepare(con, RULES, build_kinship=False)
        hits: list[int] = []
        for spec in specs:
            assert broken_promises(con, spec, hits) == [], spec.id
        assert sum(hits) > 100  # the check compared real hits
    finally:
        con.close()


def test_a_rule_across_months_breaks_the_promise_and_is_refused(detected: Path):
    """relative_concentration counts a village's cases over the latest year: declared
    ``partition: period`` it would be wrong, and both the check and the engine see it."""
    spec = next(s for s in load_checked_rules(RULES) if s.id == "relative_concentration")
    liar = dataclasses.replace(spec, partition="period")
    con = duckdb.connect(str(detected))
    try:
        rule_runner.prepare(con, RULES, build_kinship=False)
        assert broken_promises(con, liar)
        months = [r[0] for r in con.execute("SELECT DISTINCT period FROM paid").fetchall()]
        rule_runner.stage_tables(con)
        needs = rule_needs.derive_stored(con, [liar], RULES)
        plan = rule_runner.RunPlan(
            "test", [liar], needs, {liar.id: ("ok", "")}, rules_dir=RULES,
            by_month={liar.id: ("earlier", months[:-1], months[-1:])},
        )  # fmt: skip
        assert rule_runner.run_rule_months(con, plan, liar) is None  # run whole instead
        assert con.execute("SELECT count(*) FROM _run_hit").fetchone()[0] == 0
        # the full tables are back after the restricted run
        assert con.execute("SELECT count(DISTINCT period) FROM paid").fetchone()[0] == len(months)
    finally:
        con.close()


def _months(wh: Path, run_id: str, rule: str) -> dict[str, str | None]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return dict(
            con.execute(
                "SELECT period, kept_from FROM rule_period_input WHERE run_id = ? AND rule_id = ?",
                [run_id, rule],
            ).fetchall()
        )
    finally:
        con.close()


def _change_an_old_month(raw: Path) -> str:
    """The 2025Q2 export re-sent with one payment paid twice (another batch): a duplicate in
    an old month. Returns that month."""
    f = raw / QUARTER2
    lines = f.read_bytes().decode("utf-8-sig").splitlines()
    cells = lines[1].split(",")
    cells[0] = cells[0] + "R"  # 发放批次号: a second batch paying the same month again
    f.write_text("\ufeff" + "\n".join([*lines, ",".join(cells)]) + "\n", encoding="utf-8")
    return f"{cells[7][:4]}-{cells[7][4:6]}"  # 所属期 202504 -> 2025-04


@pytest.mark.slow
def test_an_old_month_that_changed_is_computed_again(county: County, tmp_path: Path):
    county.restore_changed_file()
    month = _change_an_old_month(county.raw)
    night = county.night()
    assert night.stages["ingest"] == "2 loaded, 22 unchanged"
    kept = _months(county.wh, night.run_id, "duplicate_payment")
    assert month == "2025-04"
    # computed: the months of the two files sent again (a file sent again is resolved again,
    # its rows' links with it); kept: the months of the files that did not change
    computed = {m for m, v in kept.items() if v is None}
    # computed: at least the months of the two files sent again (a file sent again is resolved
    # again, its rows' links with it); the months of unchanged files may be kept
    assert {"2025-04", "2025-05", "2025-06", "2025-10", "2025-11", "2025-12"} <= computed
    fresh = County(county.raw, tmp_path / "fresh" / "w.duckdb")
    fresh.night()
    assert differences(county.wh, fresh.wh, EQUAL) == {}
    # the change does reach the results: the month has a duplicate it did not have
    con = duckdb.connect(str(fresh.wh), read_only=True)
    subjects = con.execute(
        "SELECT count(*) FROM hit WHERE rule_id = 'duplicate_payment' AND period = ? "
        "AND run_id = ?",
        [month, _latest(fresh.wh)],
    ).fetchone()[0]
    con.close()
    assert subjects >= 1
    kept_months = {m for m, v in kept.items() if v is not None}
    # kept although resolve re-decided links of those months: their probabilities moved less
    # than what rules see of them (two decimals, reuse.LINK_DECIMALS)
    assert kept_months == {"2025-01", "2025-02", "2025-03", "2025-07", "2025-08", "2025-09"}


def _latest(wh: Path) -> str:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute(
            "SELECT run_id FROM detect_run WHERE status = 'finished' ORDER BY finished_at DESC "
            "LIMIT 1"
        ).fetchone()[0]
    finally:
        con.close()


@pytest.mark.slow
def test_taking_a_changed_month_as_unchanged_is_seen(county: County, tmp_path: Path, monkeypatch):
    """The comparison with a fresh night catches a wrong reuse: the same night, with the old
    month's digest forged to look unchanged, keeps last night's hits for it and differs."""
    county.restore_changed_file()
    month = _change_an_old_month(county.raw)
    real = reuse.period_inputs

    def forged(*a, **kw):
        fps, rests, months = real(*a, **kw)
        con = a[0]
        for rule, digests in months.items():
            old = con.execute(
                "SELECT digest FROM rule_period_input WHERE period = ? AND rule_id = ? "
                "ORDER BY run_id DESC LIMIT 1",
                [month, rule],
            ).fetchone()
            digests[month] = old[0]
        return fps, rests, months

    monkeypatch.setattr(reuse, "period_inputs", forged)
    night = county.night()
    assert _months(county.wh, night.run_id, "duplicate_payment")[month] is not None
    monkeypatch.undo()
    fresh = County(county.raw, tmp_path / "fresh" / "w.duckdb")
    fresh.night()
    assert "hit" in differences(county.wh, fresh.wh, EQUAL)
