"""Stale stages: identity older than the data, kinship older than its inputs, a source missing
tonight. Each of these reported every rule `ok` before (issue 10, High)."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from .conftest import County

pytestmark = pytest.mark.slow  # real processes on a generated county

Q1 = "finance/一卡通发放明细_2025Q1.csv"
MARRIAGE = "marriage/婚姻登记信息.csv"


def _shuffle_rows(path) -> None:
    """Same rows, other order: every (file, row) now holds another payment's person."""
    lines = path.read_bytes().split(b"\n")
    head, body = lines[0], [ln for ln in lines[1:] if ln.strip()]
    path.write_bytes(b"\n".join([head, *reversed(body)]) + b"\n")


SOME = "deceased_recipient,duplicate_payment,ghost_recipient"


def test_clean_county_every_rule_ok(built: County):
    st = built.statuses()
    assert len(st) == 16 and {s for s, _ in st.values()} == {"ok"}, st


def test_ingest_then_detect_without_resolve_is_stale(county: County):
    _shuffle_rows(county.raw / Q1)
    code, out = county.ingest()
    assert code == 0, out
    # new rows never attach to the persons of the old file version (join by file hash)
    linked = county.query(f"SELECT count(payee_pid), count(*) FROM r_payment WHERE _file = '{Q1}'")[
        0
    ]
    assert linked[1] > 0 and linked[0] == 0
    code, out = county.detect(only=SOME)
    assert code == 4, out
    st = county.statuses()
    assert st["deceased_recipient"][0] == "stale"
    assert "crossmatch resolve" in st["deceased_recipient"][1]
    assert all(s == "stale" for s, _ in st.values()), st
    # resolve brings everything back
    code, out = county.resolve()
    assert code == 0, out
    code, out = county.detect(only=SOME)
    assert code == 0, out
    assert {s for s, _ in county.statuses().values()} == {"ok"}


def test_marriage_change_rebuilds_kinship(county: County):
    n_before = county.query("SELECT count(*) FROM kin_edge WHERE source = 'marriage'")[0][0]
    path = county.raw / MARRIAGE
    lines = path.read_bytes().split(b"\n")
    body = [ln for ln in lines[1:] if ln.strip()]
    keep = body[: len(body) * 9 // 10]  # a tenth of the marriages gone
    path.write_bytes(b"\n".join([lines[0], *keep]) + b"\n")
    for step in (county.ingest, county.resolve):
        code, out = step()
        assert code == 0, out
    code, out = county.detect(only="cadre_relative_recipient")
    assert code == 0, out
    n_after = county.query("SELECT count(*) FROM kin_edge WHERE source = 'marriage'")[0][0]
    assert n_after < n_before
    # what detect used is exactly what a fresh build gives now
    con = duckdb.connect(str(county.wh))
    try:
        used = con.execute("SELECT count(*) FROM kin_relative").fetchone()[0]
        from crossmatch import kinship

        kinship.build(con)
        fresh = con.execute("SELECT count(*) FROM kin_relative").fetchone()[0]
    finally:
        con.close()
    assert used == fresh


def test_kinship_command_records_its_inputs(county: County):
    from .conftest import cli

    code, out = cli("kinship", "--warehouse", str(county.wh))
    assert code == 0, out
    assert "kin_edge" in out or "kin_relative" in out
    assert county.query("SELECT count(*) FROM stage_state WHERE stage = 'kinship'")[0][0] == 1


def test_source_missing_tonight_is_stale_with_max_age(county: County):
    # the police export is not delivered tonight; its rows from an earlier night stay
    import shutil

    shutil.rmtree(county.raw / "police")
    code, out = county.ingest()
    assert code != 0 and "police" in out  # ingest says the file is missing
    # ... and the last night it was present is 40 days ago
    old = dt.datetime.now() - dt.timedelta(days=40)
    con = duckdb.connect(str(county.wh))
    try:
        con.execute("UPDATE ingest_file SET loaded_at = ? WHERE source = 'vehicle'", [old])
        con.execute("UPDATE stage_state SET finished_at = ? WHERE stage = 'seen:vehicle'", [old])
    finally:
        con.close()
    code, out = county.detect("--max-age-days", "35", only="vehicle_on_dibao,deceased_recipient")
    assert code == 4, out
    st = county.statuses()
    assert st["vehicle_on_dibao"][0] == "stale"
    assert "vehicle" in st["vehicle_on_dibao"][1]
    assert st["deceased_recipient"][0] == "ok"
