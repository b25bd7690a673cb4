"""The morning-review notebook executes top to bottom against a warehouse built in the test."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow  # executes the notebook on the sample county (about 25 s)


ROOT = Path(__file__).resolve().parents[2]


def test_morning_review_notebook_executes(sample_warehouse: Path, tmp_path: Path) -> None:
    wh = tmp_path / "w.duckdb"
    shutil.copy(sample_warehouse, wh)
    nb = nbformat.read(ROOT / "notebooks" / "morning_review.ipynb", as_version=4)
    env = {"CROSSMATCH_WAREHOUSE": str(wh), "CROSSMATCH_RULES": str(ROOT / "rules")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={
            "metadata": {"path": str(tmp_path)}}).execute()  # fmt: skip
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]  # fmt: skip
    assert not errors
    # the verdicts it recorded are in the store beside the warehouse
    assert (tmp_path / "w.review.duckdb").exists()
