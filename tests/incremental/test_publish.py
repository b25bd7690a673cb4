"""The run lock and the build/publish step on small warehouses (no county needed)."""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from pathlib import Path

import duckdb
import pytest

from crossmatch.publish import RunLocked, acquire_lock, lock_path, night_build


def _make(wh: Path, value: int) -> None:
    con = duckdb.connect(str(wh))
    con.execute("CREATE OR REPLACE TABLE t AS SELECT ? AS v", [value])
    con.close()


def _value(wh: Path) -> int:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute("SELECT v FROM t").fetchone()[0]
    finally:
        con.close()


def test_build_is_published_in_one_step(tmp_path: Path):
    wh = tmp_path / "w.duckdb"
    _make(wh, 1)
    reader = duckdb.connect(str(wh), read_only=True)  # an analyst's notebook, open all night
    with night_build(wh) as b:
        assert b.path != wh and b.path.exists()
        con = duckdb.connect(str(b.path))
        con.execute("UPDATE t SET v = 2")
        con.close()
        assert _value(wh) == 1  # nothing visible before the end
        assert json.loads(lock_path(wh).read_text())["run_id"] == b.run_id
    assert reader.execute("SELECT v FROM t").fetchone()[0] == 1  # its snapshot stays readable
    reader.close()  # (in one process DuckDB shares an open file: the next open sees the new)
    assert _value(wh) == 2
    assert not list(tmp_path.glob(".w.duckdb.night-*"))
    assert lock_path(wh).read_text() == ""  # released: empty, nothing stale


def test_failed_build_publishes_nothing(tmp_path: Path):
    wh = tmp_path / "w.duckdb"
    _make(wh, 1)
    with pytest.raises(RuntimeError), night_build(wh) as b:
        _make(b.path, 5)
        raise RuntimeError("a stage failed")
    assert _value(wh) == 1
    assert not list(tmp_path.glob(".w.duckdb.night-*"))


def test_first_night_creates_the_warehouse_in_a_workspace(tmp_path: Path):
    wh = tmp_path / "pub" / "w.duckdb"
    with night_build(wh, workspace=tmp_path / "work") as b:
        assert b.path.parent == tmp_path / "work"
        _make(b.path, 7)
    assert _value(wh) == 7


def _hold(wh: str, ready) -> None:
    acquire_lock(wh, "night-A")
    ready.set()
    time.sleep(60)


def test_second_run_refuses_at_once_naming_the_holder(tmp_path: Path):
    """The holder is another process: forked from this one (the lock is taken with flock on a
    file it opens itself), so it does not pay a fresh interpreter's imports."""
    wh = tmp_path / "w.duckdb"
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    p = ctx.Process(target=_hold, args=(str(wh), ready), daemon=True)
    p.start()
    try:
        assert ready.wait(60), "the holder did not take the lock"
        with pytest.raises(RunLocked) as exc, night_build(wh):
            pass
        # refused while the holder still holds it: it did not wait for the holder to finish
        assert p.is_alive()
        assert f"pid {p.pid}" in str(exc.value) and "run night-A" in str(exc.value)
    finally:
        p.kill()
        p.join()
    # killed: the kernel released its lock; the file still names it: a stale lock, taken over
    lock = acquire_lock(wh, "night-B")
    try:
        assert lock.stale is not None and lock.stale["pid"] == p.pid
    finally:
        lock.release()


def test_stale_lock_is_reported(tmp_path: Path, caplog):
    wh = tmp_path / "w.duckdb"
    holder = {"pid": 999999, "host": "elsewhere", "started": "2026-12-01T02:00:00", "run_id": "x"}
    lock_path(wh).write_text(json.dumps(holder))
    with caplog.at_level(logging.WARNING, logger="crossmatch.publish"), night_build(wh) as b:
        _make(b.path, 3)
        assert b.stale_lock == holder
    assert "stale run lock" in caplog.text and "pid 999999 on host elsewhere" in caplog.text
    assert _value(wh) == 3


def test_dead_build_files_are_removed(tmp_path: Path):
    wh = tmp_path / "w.duckdb"
    _make(wh, 1)
    dead = tmp_path / ".w.duckdb.night-20261201T020000-abc.duckdb"
    dead.write_bytes(b"half a build")
    with night_build(wh) as b:
        assert dead.name in b.removed_builds
    assert not dead.exists()
