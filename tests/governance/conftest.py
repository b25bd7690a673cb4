"""A generated county with the planted root causes, run through ingest, resolve and detect once
per session (the committed sample predates the causes until the lead regenerates it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from build_cache import cached_build
from crossmatch.cli import main
from crossmatch.synth import generate

ROOT = Path(__file__).resolve().parents[2]
PERSONS = 8000  # the sample's size and seed: asset rules need a county this big to fire
SEED = 7


def run_cli(*args: str) -> str:
    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert res.exit_code in (0, 4), res.output  # 4: some rows quarantined (the county is messy)
    return res.output


def pipeline(raw: Path, wh: Path) -> None:
    src, rules = str(ROOT / "sources"), str(ROOT / "rules")
    run_cli("ingest", "--raw", str(raw), "--sources", src, "--warehouse", str(wh))
    run_cli("resolve", "--sources", src, "--warehouse", str(wh))
    run_cli("detect", "--rules", rules, "--warehouse", str(wh))


def _build(out: Path) -> None:
    generate(persons=PERSONS, seed=SEED, out=out / "county")
    pipeline(out / "county" / "raw", out / "w.duckdb")


@pytest.fixture(scope="session")
def _gov_build(tmp_path_factory) -> Path:
    """The county generated and detected once (tests/build_cache.py: shared by the workers,
    kept while the code and data are unchanged)."""
    return cached_build(tmp_path_factory, "gov-county", _build)


@pytest.fixture(scope="session")
def gov_county(_gov_build: Path) -> Path:
    """The generated county folder (raw/, truth/ with causes.csv); read it, never write."""
    return _gov_build / "county"


@pytest.fixture(scope="session")
def gov_warehouse(_gov_build: Path) -> Path:
    """A detected warehouse of the county; copy it (with copy_warehouse) before writing."""
    return _gov_build / "w.duckdb"


@pytest.fixture
def warehouse(gov_warehouse: Path, tmp_path: Path) -> Path:
    """A private copy of the detected warehouse (no review store yet)."""
    wh = tmp_path / "w.duckdb"
    shutil.copyfile(gov_warehouse, wh)
    return wh
