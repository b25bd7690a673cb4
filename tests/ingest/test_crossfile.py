"""Duplicates across the files of one source (issue 10): an overlapping re-export counts once,
deterministically, and the marks follow the files as they change."""

from __future__ import annotations

from pathlib import Path

import duckdb

from crossmatch.ingest import ingest

from .conftest import ID_A, PAY_HEADER, PAYMENT_YAML, write_csv

ID_D = "341122198503150017"
Q1 = [
    f"B1,张三,{ID_A},1200.00,2025-01,2025-01-05,成功",
    f"B1,王五,{ID_D},300.00,2025-01,2025-01-05,成功",
    f"B2,王五,{ID_D},300.00,2025-02,2025-02-05,成功",
]


def _setup(root: Path) -> None:
    (root / "sources").mkdir(parents=True, exist_ok=True)
    (root / "sources" / "payment.yaml").write_text(PAYMENT_YAML, encoding="utf-8")
    write_csv(root / "raw" / "finance" / "q1.csv", [PAY_HEADER, *Q1])


def _run(root: Path):
    return ingest(root / "raw", root / "sources", root / "w.duckdb")


def _live(root: Path) -> list[tuple]:
    with duckdb.connect(str(root / "w.duckdb"), read_only=True) as con:
        return con.execute(
            "SELECT _file, _row, _dup_of FROM src_payment ORDER BY _file, _row"
        ).fetchall()


def _marks(root: Path) -> list[tuple]:
    with duckdb.connect(str(root / "w.duckdb"), read_only=True) as con:
        return con.execute(
            'SELECT file, "row", of_file, of_row FROM ingest_duplicate ORDER BY file, "row"'
        ).fetchall()


def test_an_overlapping_export_is_counted_once_and_named(tmp_path):
    _setup(tmp_path)
    # a half-year re-export repeating two Q1 rows (other formatting, same values) plus a new row
    write_csv(
        tmp_path / "raw" / "finance" / "q1_q2.csv",
        [
            PAY_HEADER,
            f'B1,张三,{ID_A},"1,200.00",2025年1月,2025/1/5,成功',
            f"B2,王五,{ID_D},300.00,2025-02,2025-02-05,成功",
            f"B3,王五,{ID_D},300.00,2025-04,2025-04-05,成功",
        ],
    )
    summary = _run(tmp_path)
    # q1.csv sorts before q1_q2.csv: the later file's repeated rows are the duplicates
    assert _marks(tmp_path) == [
        ("finance/q1_q2.csv", 2, "finance/q1.csv", 2),  # _row: the line, header = 1
        ("finance/q1_q2.csv", 3, "finance/q1.csv", 4),
    ]
    live = [r for r in _live(tmp_path) if r[2] is None]
    assert len(live) == 4  # 3 of q1 + the new April row
    text = summary.render()
    assert "finance/q1_q2.csv: 2 rows repeat rows of finance/q1.csv" in text
    assert ID_A not in text and "张三" not in text  # files and counts, never values
    by_file = {r.file: r for r in summary.results}
    assert by_file["finance/q1_q2.csv"].rows_duplicate == 2


def test_rows_differing_in_one_field_are_not_duplicates(tmp_path):
    _setup(tmp_path)
    write_csv(
        tmp_path / "raw" / "finance" / "q2.csv",
        [PAY_HEADER, f"B1,张三,{ID_A},1200.00,2025-01,2025-01-05,失败"],  # another status
    )
    _run(tmp_path)
    assert _marks(tmp_path) == []


def test_marks_follow_a_replaced_file_and_are_stable_across_runs(tmp_path):
    _setup(tmp_path)
    overlap = tmp_path / "raw" / "finance" / "q1_again.csv"
    write_csv(overlap, [PAY_HEADER, Q1[0]])
    _run(tmp_path)
    first = _marks(tmp_path)
    assert first == [("finance/q1_again.csv", 2, "finance/q1.csv", 2)]
    _run(tmp_path)  # nothing changed: the same marks
    assert _marks(tmp_path) == first
    # the overlap file is corrected: its row now differs, the mark goes
    write_csv(overlap, [PAY_HEADER, f"B9,张三,{ID_A},1200.00,2025-03,2025-03-05,成功"])
    _run(tmp_path)
    assert _marks(tmp_path) == []
    assert all(d is None for _, _, d in _live(tmp_path))


def test_within_file_duplicates_keep_their_own_mark(tmp_path):
    _setup(tmp_path)
    write_csv(
        tmp_path / "raw" / "finance" / "q1.csv", [PAY_HEADER, Q1[0], Q1[0], Q1[1]]
    )  # an exact repeated line inside one file
    write_csv(tmp_path / "raw" / "finance" / "q9.csv", [PAY_HEADER, Q1[0]])
    _run(tmp_path)
    live = _live(tmp_path)
    assert ("finance/q1.csv", 3, 2) in live  # the within-file mark (staging)
    assert _marks(tmp_path) == [("finance/q9.csv", 2, "finance/q1.csv", 2)]
    assert sum(d is None for _, _, d in live) == 2
