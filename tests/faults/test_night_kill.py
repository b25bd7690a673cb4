"""kill -9 a real night process at each stage (ingest, resolve, kinship, detect, just before
publishing, while syncing clues): the published warehouse and every verdict stay intact and
readable, the next run recognises the killed run's lock as stale, removes its build file and
completes. A second run while one is running refuses at once, naming it (issue 16)."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from crossmatch.publish import RunLocked, nothing_to_do
from incremental.conftest import CHANGED, NEW_ROWS, RULES, SAMPLE, SOURCES, County, truncate_lines
from incremental.night import run_night

NIGHT = Path(__file__).resolve().parents[1] / "incremental" / "night.py"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> County:
    d = tmp_path_factory.mktemp("kill-base")
    shutil.copytree(SAMPLE, d / "raw")
    truncate_lines(d / "raw" / CHANGED, NEW_ROWS)
    c = County(d / "raw", d / "w.duckdb")
    c.night()
    from crossmatch.review import Review

    rv = Review(str(c.wh), rules_dir=RULES)
    rv.mark(rv.clues()["clue_id"][0], "属实", note="confirmed", author="tester")
    return c


@pytest.fixture
def county(base: County, tmp_path: Path) -> County:
    shutil.copytree(base.raw, tmp_path / "raw")
    for f in base.wh.parent.glob("w.*"):
        if f.suffix != ".lock":
            shutil.copyfile(f, tmp_path / f.name)
    c = County(tmp_path / "raw", tmp_path / "w.duckdb")
    c.restore_changed_file()  # tonight: a changed file, so every stage has work
    return c


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _verdicts(store: Path) -> list[tuple]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.execute("SELECT clue_id, verdict, note, author FROM verdict").fetchall()
    finally:
        con.close()


def _start(c: County, pause: str | None = None) -> subprocess.Popen:
    args = [sys.executable, str(NIGHT), str(c.raw), str(SOURCES), str(RULES), str(c.wh)]
    if pause:
        args += ["--pause", pause]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _wait_for(p: subprocess.Popen, stage: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    assert p.stdout is not None
    for line in p.stdout:
        if line.strip() == f"stage {stage}":
            return
        assert time.monotonic() < deadline, f"stage {stage} not reached"
    raise AssertionError(f"the night ended before stage {stage} (exit {p.wait()})")


@pytest.mark.parametrize(
    ("stage", "how"),
    [
        ("ingest", "mid"),
        ("resolve", "mid"),
        ("kinship", "pause"),
        ("detect", "mid"),
        ("publish", "pause"),
        ("clues", "mid"),
    ],
)
def test_kill_9_at_each_stage(county: County, stage: str, how: str, caplog):
    before, verdicts = _sha(county.wh), _verdicts(county.store)
    p = _start(county, pause=stage if how == "pause" else None)
    try:
        _wait_for(p, stage)
        time.sleep(0.3 if how == "mid" else 1.0)
        assert p.poll() is None, f"the night finished before it could be killed at {stage}"
        os.kill(p.pid, signal.SIGKILL)
        assert p.wait() == -signal.SIGKILL
    finally:
        if p.poll() is None:
            p.kill()
    # the published results: untouched before publishing, readable and complete in any case
    if stage != "clues":
        assert _sha(county.wh) == before
    con = duckdb.connect(str(county.wh), read_only=True)
    assert con.execute("SELECT count(*) FROM hit").fetchone()[0] > 0
    con.close()
    assert _verdicts(county.store) == verdicts
    assert not nothing_to_do(county.raw, SOURCES, RULES, county.wh)
    # the next run: stale lock recognised, the dead build removed, the night completes
    with caplog.at_level(logging.WARNING, logger="crossmatch.publish"):
        night = county.night()
    assert night.outcome == "published"
    if stage == "clues":  # published and unlocked already: only the sync is redone
        assert "stale run lock" not in caplog.text
    else:
        assert "stale run lock" in caplog.text and f"pid {p.pid}" in caplog.text
    assert not list(county.wh.parent.glob(".w.duckdb.night-*"))
    assert _verdicts(county.store) == verdicts
    assert nothing_to_do(county.raw, SOURCES, RULES, county.wh)


def test_second_run_refuses_naming_the_running_one(county: County):
    p = _start(county, pause="detect")
    try:
        _wait_for(p, "detect")
        t = time.monotonic()
        with pytest.raises(RunLocked) as exc:
            run_night(county.raw, SOURCES, RULES, county.wh, full=True)
        assert time.monotonic() - t < 5  # at once, not after waiting
        msg = str(exc.value)
        assert f"pid {p.pid}" in msg and "another crossmatch night is running" in msg
        assert exc.value.holder["pid"] == p.pid
    finally:
        p.kill()
        p.wait()
