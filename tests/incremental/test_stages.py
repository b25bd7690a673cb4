"""Each stage on its own: skips when its inputs are unchanged, says so, and recomputes when
forced; detect's copied hits equal the ones a run computes."""

from __future__ import annotations

import duckdb
from click.testing import CliRunner

from crossmatch.cli import main

from .conftest import RULES, SOURCES, County


def _cli(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.output


def _hits(wh, run_id: str | None = None) -> list[tuple]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        run = (
            run_id
            or con.execute(
                "SELECT run_id FROM detect_run WHERE status = 'finished' "
                "ORDER BY finished_at DESC LIMIT 1"
            ).fetchone()[0]
        )
        return sorted(
            con.execute(
                "SELECT * EXCLUDE (run_id, evidence), evidence::VARCHAR FROM hit WHERE run_id = ?",
                [run],
            ).fetchall()
        )
    finally:
        con.close()


def test_resolve_skips_unchanged_inputs(county: County):
    code, out = _cli("resolve", "--sources", str(SOURCES), "--warehouse", str(county.wh))
    assert code == 0 and out.startswith("unchanged: the same file versions"), out
    code, out = _cli("resolve", "--sources", str(SOURCES), "--warehouse", str(county.wh), "--full")
    assert code == 0 and out.startswith("full run"), out


def test_kinship_skips_unchanged_inputs_unless_forced(county: County):
    code, out = _cli("kinship", "--warehouse", str(county.wh))
    assert code == 0 and "not rebuilt" in out, out
    con = duckdb.connect(str(county.wh))
    con.execute("DELETE FROM kin_relative WHERE hops = 2")  # damage: only a rebuild repairs it
    n = con.execute("SELECT count(*) FROM kin_relative").fetchone()[0]
    con.close()
    code, out = _cli("kinship", "--warehouse", str(county.wh), "--force")
    assert code == 0 and "not rebuilt" not in out, out
    con = duckdb.connect(str(county.wh), read_only=True)
    assert con.execute("SELECT count(*) FROM kin_relative").fetchone()[0] > n
    con.close()


def test_detect_copies_hits_of_unchanged_rules_and_full_recomputes(county: County):
    wh = str(county.wh)
    code, out = _cli("detect", "--rules", str(RULES), "--warehouse", wh)
    assert code in (0, 4), out
    assert out.count("inputs unchanged: hits of run") == 16, out
    reused = _hits(county.wh)
    code, out = _cli("detect", "--rules", str(RULES), "--warehouse", wh, "--full")
    assert "inputs unchanged" not in out, out
    assert _hits(county.wh) == reused  # byte for byte, evidence included


def test_a_changed_input_reruns_exactly_the_rules_that_read_it(county: County):
    con = duckdb.connect(str(county.wh))
    # one vehicle registration changes owner's plate: only rules reading r_vehicle re-run
    first = "(SELECT min(_row) FROM src_vehicle)"
    con.execute(f"UPDATE src_vehicle SET plate = plate || 'X' WHERE _row = {first}")
    con.close()
    from crossmatch.detect.engine import run_rules
    from crossmatch.detect.needs import derive_cached
    from crossmatch.spec.rules import load_rules

    specs = load_rules(RULES)
    reads = {
        s.id
        for s, nd in ((s, derive_cached(specs, RULES)[s.id]) for s in specs)
        if "r_vehicle" in nd.columns
    }
    assert reads, "some rule reads the vehicle register"
    con = duckdb.connect(str(county.wh))
    try:
        res = run_rules(con, RULES)
    finally:
        con.close()
    ran = {o.rule_id for o in res.outcomes if o.reused_from is None and o.status in ("ok", "blind")}
    assert ran == reads
