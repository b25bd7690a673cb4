"""Fault injection on the sample county (8,000 persons): a warehouse is built once per test
worker (ingest + resolve through the CLI) and each test gets its own copy of it and of the raw
exports, then breaks something and checks that crossmatch says so instead of reporting `ok`."""

from __future__ import annotations

import fcntl
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from crossmatch.cli import main

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample"
SOURCES = ROOT / "sources"
RULES = ROOT / "rules"


def cli(*args: str) -> tuple[int, str]:
    """Run one crossmatch command in-process; (exit code, stdout + stderr)."""
    res = CliRunner().invoke(main, list(args))
    return res.exit_code, res.output


@dataclass
class County:
    raw: Path
    wh: Path

    def ingest(self) -> tuple[int, str]:
        return cli(
            "ingest", "--raw", str(self.raw), "--sources", str(SOURCES), "--warehouse", str(self.wh)
        )

    def resolve(self) -> tuple[int, str]:
        return cli("resolve", "--sources", str(SOURCES), "--warehouse", str(self.wh))

    def detect(self, *extra: str, only: str | None = None) -> tuple[int, str]:
        sel = ("--only", only) if only else ()
        return cli("detect", "--rules", str(RULES), "--warehouse", str(self.wh), *sel, *extra)

    def statuses(self) -> dict[str, tuple[str, str]]:
        """rule -> (status, reason) of the latest finished detect run."""
        con = duckdb.connect(str(self.wh), read_only=True)
        try:
            return {
                r[0]: (r[1], r[2])
                for r in con.execute(
                    """SELECT rule_id, status, reason FROM rule_run WHERE run_id = (
                         SELECT run_id FROM detect_run WHERE status = 'finished'
                         ORDER BY finished_at DESC LIMIT 1)"""
                ).fetchall()
            }
        finally:
            con.close()

    def query(self, sql: str) -> list[tuple]:
        con = duckdb.connect(str(self.wh), read_only=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()


def _build(base: Path) -> County:
    shutil.copytree(SAMPLE / "raw", base / "raw")
    c = County(base / "raw", base / "w.duckdb")
    code, out = c.ingest()
    assert code == 0, out
    code, out = c.resolve()
    assert code == 0, out
    code, out = cli("kinship", "--warehouse", str(c.wh))
    assert code == 0, out
    code, out = c.detect()
    assert code == 0, out  # the clean county: every rule ok
    return c


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> County:
    """The sample county ingested, resolved, kinship built and detected once, shared by the
    test workers (the first one builds it under a lock, the others wait and reuse it)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    base = root / "faults-county"
    with open(root / "faults-county.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if (base / "done").exists():
                return County(base / "raw", base / "w.duckdb")
            if base.exists():
                shutil.rmtree(base)
            base.mkdir()
            c = _build(base)
            (base / "done").write_text("ok")
            return c
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
def county(built: County, tmp_path: Path) -> County:
    """A private copy of the built county (raw exports and warehouse)."""
    shutil.copytree(built.raw, tmp_path / "raw")
    shutil.copy2(built.wh, tmp_path / "w.duckdb")
    return County(tmp_path / "raw", tmp_path / "w.duckdb")
