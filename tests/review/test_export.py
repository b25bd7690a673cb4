"""Clue lists read back as an investigator's Excel would: text IDs, masking, sheets, audit."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import openpyxl
import polars as pl
import pytest
from click.testing import CliRunner

from crossmatch.cli import main
from crossmatch.export import COLUMNS, FILL_IN, export_clues
from crossmatch.review import Review, store_path

pytestmark = pytest.mark.slow  # clue lists of the whole sample county


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rv(sample_warehouse: Path, tmp_path_factory) -> Review:
    wh = tmp_path_factory.mktemp("export") / "w.duckdb"
    shutil.copy(sample_warehouse, wh)
    review = Review(wh, rules_dir=ROOT / "rules")
    review.sync()
    return review


def test_xlsx_masked_by_default(rv: Review, tmp_path: Path) -> None:
    out = tmp_path / "清单.xlsx"
    res = export_clues(rv, out, rule=["deceased_recipient"], sources_dir=ROOT / "sources")
    assert res.masked and res.rows == rv.clues(rule="deceased_recipient").height > 0
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == ["线索清单", "汇总", "证据", "说明"]
    ws = wb["线索清单"]
    header = [c.value for c in ws[1]]
    assert header == list(COLUMNS.values()) + list(FILL_IN)
    assert ws.freeze_panes == "B2" and ws.auto_filter.ref
    ids = [ws.cell(row=i, column=header.index("对象证件号/代码") + 1).value
           for i in range(2, ws.max_row + 1)]  # fmt: skip
    assert all(isinstance(v, str) and "********" in v and len(v) == 18 for v in ids)
    # no full ID anywhere in the workbook
    for sheet in wb:
        for row in sheet.iter_rows(values_only=True):
            for v in row:
                if isinstance(v, str):
                    assert not any(len(t) == 18 and t[:17].isdigit() for t in v.split()), v
    ev = wb["证据"]
    assert ev.max_row > res.rows  # at least one evidence row per clue
    assert any(c.value == "身份证号精确匹配" for c in ev["G"])


def test_xlsx_unmasked_keeps_18_digit_text_and_is_audited(rv: Review, tmp_path: Path) -> None:
    out = tmp_path / "full.xlsx"
    res = export_clues(rv, out, rule=["ghost_recipient"], unmask=True)
    ws = openpyxl.load_workbook(out)["线索清单"]
    header = [c.value for c in ws[1]]
    ids = [ws.cell(row=i, column=header.index("对象证件号/代码") + 1).value
           for i in range(2, ws.max_row + 1)]  # fmt: skip
    assert set(ids) == set(rv.clues(rule="ghost_recipient", unmask=True)["subject"])
    id_like = [v for v in ids if v[:17].isdigit()]
    assert id_like and all(isinstance(v, str) and len(v) == 18 for v in id_like)
    con = duckdb.connect(str(store_path(rv.warehouse)), read_only=True)
    rows = con.execute(
        "SELECT detail FROM audit WHERE action = 'export' ORDER BY \"at\""
    ).fetchall()
    con.close()
    assert any('"masked": false' in r[0] and res.sha256 in r[0] for r in rows)


def test_csv_has_bom_and_parquet_machine_columns(rv: Review, tmp_path: Path) -> None:
    csv_out = tmp_path / "c.csv"
    export_clues(rv, csv_out)
    raw = csv_out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    header = raw[3:].split(b"\n", 1)[0].decode()
    for col in ("clue_id", "rule_id", "subject_id", "period_from", "period_to", "amount"):
        assert col in header.split(",")
    pq = tmp_path / "c.parquet"
    export_clues(rv, pq)
    df = pl.read_parquet(pq)
    assert df.height == rv.clues().height
    assert not df["subject_id"].str.contains(r"^\d{17}[\dXx]$").any()
    assert df["subject_id"].str.contains(r"\*{6,}").sum() > df.height // 2


def test_export_cli(rv: Review, tmp_path: Path) -> None:
    out = tmp_path / "x.xlsx"
    res = CliRunner().invoke(
        main,
        ["export", "--out", str(out), "--warehouse", str(rv.warehouse),
         "--rules", str(ROOT / "rules"), "--rule", "vehicle_on_dibao"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "masked" in res.output and out.exists()
