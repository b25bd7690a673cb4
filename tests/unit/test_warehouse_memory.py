"""One DuckDB memory limit for every warehouse connection (issue 16: a night fits in memory)."""

from __future__ import annotations

import duckdb
import pytest

from crossmatch import warehouse as wh
from crossmatch.errors import WarehouseError


def _as_duckdb_says(limit: str) -> str:
    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = '{limit}'")
        return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    finally:
        con.close()


def _limit(path) -> str:
    with wh.session(path) as con:
        return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]


def test_every_connection_gets_the_configured_limit(tmp_path, monkeypatch):
    monkeypatch.delenv("CROSSMATCH_MEMORY_LIMIT", raising=False)
    path = tmp_path / "w.duckdb"
    assert _limit(path) == _as_duckdb_says(wh.MEMORY_LIMIT)
    monkeypatch.setenv("CROSSMATCH_MEMORY_LIMIT", "700MB")
    assert _limit(path) == _as_duckdb_says("700MB")
    with wh.session(path, read_only=True) as con:  # the detect stage's readers too
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == (
            _as_duckdb_says("700MB")
        )


def test_none_leaves_duckdbs_default_and_a_bad_size_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "w.duckdb"
    monkeypatch.setenv("CROSSMATCH_MEMORY_LIMIT", "none")
    default = duckdb.connect().execute("SELECT current_setting('memory_limit')").fetchone()[0]
    assert _limit(path) == default
    monkeypatch.setenv("CROSSMATCH_MEMORY_LIMIT", "lots")
    with pytest.raises(WarehouseError, match="CROSSMATCH_MEMORY_LIMIT=lots"):
        wh.connect(path)


def test_temp_directory_from_the_environment(tmp_path, monkeypatch):
    spill = tmp_path / "spill"
    monkeypatch.setenv("CROSSMATCH_TEMP_DIR", str(spill))
    with wh.session(tmp_path / "w.duckdb") as con:
        assert con.execute("SELECT current_setting('temp_directory')").fetchone()[0] == str(spill)
