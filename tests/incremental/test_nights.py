"""Nights on the sample county: unchanged (nothing to do), one file changed (each stage does only
what the change needs, and the results equal a full rebuild's), and the stage switches that
force a full recomputation (resolve --full, kinship --force, detect --full)."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from crossmatch.publish import nothing_to_do

from .compare import EQUAL, differences, examples
from .conftest import CHANGED, NEW_ROWS, RULES, SOURCES, County

pytestmark = pytest.mark.slow  # whole nights on the sample and a generated county (~75 s)


def _one(wh: Path, sql: str):
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


#: a link's key and what it says (person, method, probability)
_LINKS = "SELECT source, file, row, role, person_id, method, probability FROM identity_link"


def _assert_equal(a: Path, b: Path, tables: dict[str, str] | None = None) -> None:
    diff = differences(a, b, tables or EQUAL)
    assert not diff, {k: (v, examples(a, b, k, 2, tables or EQUAL)) for k, v in diff.items()}


def test_unchanged_night_has_nothing_to_do(county: County):
    nd = nothing_to_do(county.raw, SOURCES, RULES, county.wh)
    assert nd, nd.reasons
    assert "nothing to do" in nd.render()
    before = county.wh.stat().st_mtime_ns
    night = county.night()
    assert night.outcome == "nothing to do"
    assert county.wh.stat().st_mtime_ns == before  # nothing written


def test_nothing_to_do_names_what_changed(county: County, tmp_path: Path):
    county.restore_changed_file()
    nd = nothing_to_do(county.raw, SOURCES, RULES, county.wh)
    assert not nd and nd.reasons == [f"{CHANGED.as_posix()}: content changed (payment)"]
    shutil.copyfile(SOURCES.parent / "data" / "sample" / "raw" / CHANGED, county.raw / CHANGED)
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    f = rules / "duplicate_payment.yaml"
    f.write_text(f.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    nd = nothing_to_do(county.raw, SOURCES, rules, county.wh)
    assert "rules or their inputs changed since the last detect run" in nd.reasons
    (county.raw / CHANGED).unlink()
    nd = nothing_to_do(county.raw, SOURCES, RULES, county.wh)
    assert any("not in" in r for r in nd.reasons)


def test_one_file_changed_equals_a_full_rebuild(county: County, tmp_path: Path, monkeypatch):
    from crossmatch.identity import publish

    in_place = []  # identity_link updated in place (kept rows stay, the others go)
    real = publish._links_in_place
    monkeypatch.setattr(
        publish, "_links_in_place", lambda con: in_place.append(real(con)) or in_place[-1]
    )
    con = duckdb.connect(str(county.wh), read_only=True)
    other = "SELECT rowid, source, file, row, role FROM person_mention WHERE file <> ? ORDER BY ALL"
    before = con.execute(other, [CHANGED.as_posix()]).fetchall()
    night1 = {r[:4]: r[4:] for r in con.execute(_LINKS).fetchall()}
    con.close()
    county.restore_changed_file()
    night = county.night()
    assert in_place == [True]
    # only the changed file's mentions were built; the other files' rows were not rewritten
    # (the same rows: a rebuilt table numbers its rows afresh)
    assert (
        night.mentions_built
        == _one(
            county.wh, f"SELECT count(*) FROM person_mention WHERE file = '{CHANGED.as_posix()}'"
        )[0][0]
        > 0
    )
    con = duckdb.connect(str(county.wh), read_only=True)
    assert con.execute(other, [CHANGED.as_posix()]).fetchall() == before
    con.close()
    assert night.outcome == "published"
    assert night.stages["ingest"] == "1 loaded, 23 unchanged"
    assert night.stages["resolve"] == "incremental"
    assert night.stages["kinship"] == "unchanged"  # payments are no kinship input
    n_new = _one(
        county.wh,
        "SELECT count(*) FROM src_payment WHERE _file = 'finance/一卡通发放明细_2025Q4.csv'",
    )[0][0]
    assert n_new >= 4000  # the whole file, 300 rows more than last night
    # a full rebuild: a fresh warehouse, every stage computed from scratch on tonight's files
    fresh = County(county.raw, tmp_path / "fresh" / "w.duckdb")
    assert fresh.night().stages["resolve"] == "full"
    _assert_equal(county.wh, fresh.wh)
    # rules that read no payment copy their hits, although resolve re-decided links
    # (night.reopened) of their sources with other probabilities: rules see two decimals
    # (reuse.LINK_DECIMALS), which those moves left unchanged
    assert night.reopened > 0
    assert night.reused >= 1
    # farmland and supplier copied whole, the eleven month-wise rules computed on the changed
    # file's months only, the three cross-month rules run whole
    assert night.stages["detect"] == (
        "14 run, 2 reused (11 of the run only on the payment months that changed)"
    )
    # and every stage forced on the same warehouse (resolve --full, kinship --force,
    # detect --full): the same results again
    forced = tmp_path / "forced" / "w.duckdb"
    forced.parent.mkdir()
    shutil.copyfile(county.wh, forced)
    f = County(county.raw, forced).night(full=True)
    assert f.stages == {
        "ingest": "0 loaded, 24 unchanged",
        "resolve": "full",
        "kinship": "rebuilt",
        "detect": "16 run, 0 reused",
    }
    _assert_equal(county.wh, forced)
    # on the same weights, every link decided tonight (new, or re-decided: a person or a
    # probability other than night 1's) has exactly the full run's probability, not only its
    # two decimals: tonight's name frequencies are counted over a full run's nodes
    # (scoring._tf_population; before, a re-decided property owner's 0.984909 came out
    # 0.985172 against the full run's 0.984920, and property_on_dibao ran on every month)
    tonight = {r[:4]: r[4:] for r in _one(county.wh, _LINKS)}
    full_run = {r[:4]: r[4:] for r in _one(forced, _LINKS)}
    decided = [k for k, v in tonight.items() if night1.get(k) != v]
    assert len(decided) > NEW_ROWS  # the new rows' links and re-decided ones that moved
    assert [k for k in decided if tonight[k] != full_run[k]] == []
    # (a kept link keeps night 1's probability: see docs/nights.md)
    # the verdict of the first night is still there, and the night after has nothing to do
    verdicts = _one(county.store, "SELECT verdict, author FROM verdict")
    assert verdicts == [("不属实-数据错误", "tester")]
    assert nothing_to_do(county.raw, SOURCES, RULES, county.wh)


def test_changed_rows_are_in_the_results(county: County):
    """The 300 new rows are resolved and counted: the hits of the payment rules change."""
    before = dict(
        _one(
            county.wh,
            """SELECT rule_id, hits FROM rule_run WHERE run_id = (SELECT run_id FROM detect_run
               WHERE status = 'finished' ORDER BY finished_at DESC LIMIT 1)""",
        )
    )
    county.restore_changed_file()
    night = county.night()
    links = _one(
        county.wh,
        "SELECT count(*) FROM identity_link WHERE file = 'finance/一卡通发放明细_2025Q4.csv'",
    )[0][0]
    rows = _one(
        county.wh,
        "SELECT count(*) FROM src_payment WHERE _file = 'finance/一卡通发放明细_2025Q4.csv'",
    )[0][0]
    assert links == rows
    after = dict(
        _one(
            county.wh,
            f"SELECT rule_id, hits FROM rule_run WHERE run_id = '{night.run_id}'",
        )
    )
    assert after != before
    assert NEW_ROWS == 300


def test_generated_county_scripted_change_equals_a_full_rebuild(tmp_path: Path):
    """Another county (generated, seed 11) and another kind of change: the cremation register
    gains 20 rows (deaths: persons, kinship validity and the death rules move)."""
    from crossmatch.synth import generate

    generate(persons=3000, seed=11, out=tmp_path / "county")
    raw = tmp_path / "raw"
    shutil.copytree(tmp_path / "county" / "raw", raw)
    cremation = raw / "death" / "火化信息.csv"
    full_bytes = cremation.read_bytes()
    lines = full_bytes.splitlines(keepends=True)
    cremation.write_bytes(b"".join(lines[:-20]))
    inc = County(raw, tmp_path / "inc" / "w.duckdb")
    assert inc.night().outcome == "published"
    cremation.write_bytes(full_bytes)  # the scripted change: tonight's export, 20 rows more
    night = inc.night()
    assert night.stages["ingest"] == "1 loaded, 23 unchanged"
    assert night.stages["resolve"] == "incremental"
    # month-wise reuse (partition: period) never keeps a month of a rule whose other inputs
    # changed: the deceased rule reads the cremation register, so every month is computed
    kept = _one(
        inc.wh,
        "SELECT count(*), count(kept_from) FROM rule_period_input WHERE rule_id = "
        f"'deceased_recipient' AND run_id = '{night.run_id}'",
    )[0]
    assert kept[0] > 0 and kept[1] == 0
    fresh = County(raw, tmp_path / "fresh" / "w.duckdb")
    fresh.night()
    _assert_equal(inc.wh, fresh.wh)
    deaths = _one(inc.wh, "SELECT count(*) FROM person WHERE death_date IS NOT NULL")[0][0]
    assert deaths > 0
