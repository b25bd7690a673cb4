"""A sample county after one published night, built once per test worker: the sample's raw
exports with the last 300 rows of the 2025Q4 payment file missing (so that the next night has
a file with 300 new rows), a night run on them, and one analyst verdict in the review store.
Each test gets its own copy (raw folder, warehouse, review store)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from .night import run_night

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "raw"
SOURCES = ROOT / "sources"
RULES = ROOT / "rules"
CHANGED = Path("finance") / "一卡通发放明细_2025Q4.csv"
NEW_ROWS = 300


@dataclass
class County:
    raw: Path
    wh: Path

    @property
    def store(self) -> Path:
        return self.wh.with_name(self.wh.stem + ".review.duckdb")

    def night(self, **kw):
        return run_night(self.raw, SOURCES, RULES, self.wh, **kw)

    def restore_changed_file(self) -> None:
        """Tonight's export of the 2025Q4 payments: the full file (300 rows more)."""
        shutil.copyfile(SAMPLE / CHANGED, self.raw / CHANGED)


def truncate_lines(path: Path, n: int) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-n]))


@pytest.fixture(scope="session")
def _published(tmp_path_factory: pytest.TempPathFactory) -> County:
    base = tmp_path_factory.mktemp("incr-base")
    raw = base / "raw"
    shutil.copytree(SAMPLE, raw)
    truncate_lines(raw / CHANGED, NEW_ROWS)
    c = County(raw, base / "w.duckdb")
    c.night()
    from crossmatch.review import Review

    rv = Review(str(c.wh), rules_dir=RULES)
    clue = rv.clues()["clue_id"][0]
    rv.mark(clue, "不属实-数据错误", note="checked on site", author="tester")
    return c


@pytest.fixture
def county(_published: County, tmp_path: Path) -> County:
    shutil.copytree(_published.raw, tmp_path / "raw")
    for f in _published.wh.parent.glob("w.*"):
        if f.suffix != ".lock":
            shutil.copyfile(f, tmp_path / f.name)
    return County(tmp_path / "raw", tmp_path / "w.duckdb")
