"""The committed sample county ingests cleanly: only truly bad rows quarantined, row numbers
agree with the generator's ground truth."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from crossmatch.ingest import ingest

REPO = Path(__file__).resolve().parents[2]
RAW = REPO / "data/sample/raw"
TRUTH = REPO / "data/sample/truth/records.csv"

pytestmark = [
    pytest.mark.skipif(not RAW.is_dir(), reason="sample county not generated"),
    pytest.mark.slow,  # the whole sample county ingested
]


@pytest.fixture(scope="module")
def sample_wh(tmp_path_factory) -> Path:
    wh = tmp_path_factory.mktemp("sample") / "w.duckdb"
    summary = ingest(RAW, REPO / "sources", wh)
    assert not summary.failed, [r.message for r in summary.failed]
    return wh


def test_every_row_loaded_or_quarantined(sample_wh):
    with duckdb.connect(str(sample_wh), read_only=True) as con:
        bad = con.sql(
            "SELECT file FROM ingest_file WHERE rows_read <> rows_loaded + rows_quarantined"
        ).fetchall()
        read, quarantined = con.execute(
            "SELECT sum(rows_read), sum(rows_quarantined) FROM ingest_file WHERE status = 'ok'"
        ).fetchone()
    assert bad == []
    assert quarantined <= read * 0.003  # the generator damages ~0.1% of rows on purpose


def test_row_numbers_match_ground_truth(sample_wh):
    if not TRUTH.exists():
        pytest.skip("no truth/records.csv")
    with duckdb.connect(str(sample_wh), read_only=True) as con:
        con.execute(f"CREATE TEMP TABLE t AS SELECT * FROM read_csv('{TRUTH}', all_varchar=true)")
        for table, role in [
            ("src_payment", "payee"),
            ("src_assistance", "member"),
            ("src_hukou", "person"),
            ("src_marriage", "wife"),
        ]:
            n, same = con.execute(
                f"SELECT count(*), count(*) FILTER (WHERE s.{role}_id = t.person_id) "
                f"FROM {table} s JOIN t ON t.source_file = s._file AND t.row::INT = s._row "
                f"AND t.role = '{role}' WHERE s.{role}_id_status = 'valid18' "
                "AND t.person_id NOT LIKE 'GHOST-%'"  # fabricated payees carry made-up IDs
            ).fetchone()
            assert n > 0 and same == n, table
