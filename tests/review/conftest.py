"""One sample-county warehouse for the review tests (ingest, resolve, detect once per session)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from crossmatch.cli import main

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample"


def run_cli(*args: str) -> None:
    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert res.exit_code in (0, 4), res.output  # 4: some rows quarantined (the sample is messy)


@pytest.fixture(scope="session")
def sample_warehouse(tmp_path_factory) -> Path:
    """A detected sample warehouse; copy it before writing to it."""
    tmp = tmp_path_factory.mktemp("review-base")
    raw = tmp / "raw"
    shutil.copytree(SAMPLE / "raw", raw)
    wh = str(tmp / "w.duckdb")
    run_cli("ingest", "--raw", str(raw), "--sources", str(ROOT / "sources"), "--warehouse", wh)
    run_cli("resolve", "--sources", str(ROOT / "sources"), "--warehouse", wh)
    run_cli("detect", "--rules", str(ROOT / "rules"), "--warehouse", wh)
    return Path(wh)
