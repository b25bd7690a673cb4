"""A generated county with the planted root causes, run through ingest, resolve and detect once
per session (the committed sample predates the causes until the lead regenerates it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

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


@pytest.fixture(scope="session")
def gov_county(tmp_path_factory) -> Path:
    """The generated county folder (raw/, truth/ with causes.csv)."""
    out = tmp_path_factory.mktemp("gov-county")
    generate(persons=PERSONS, seed=SEED, out=out)
    return out


@pytest.fixture(scope="session")
def gov_warehouse(gov_county: Path, tmp_path_factory) -> Path:
    """A detected warehouse of the county; copy it (with copy_warehouse) before writing."""
    wh = tmp_path_factory.mktemp("gov-wh") / "w.duckdb"
    pipeline(gov_county / "raw", wh)
    return wh


@pytest.fixture
def warehouse(gov_warehouse: Path, tmp_path: Path) -> Path:
    """A private copy of the detected warehouse (no review store yet)."""
    wh = tmp_path / "w.duckdb"
    shutil.copyfile(gov_warehouse, wh)
    return wh
