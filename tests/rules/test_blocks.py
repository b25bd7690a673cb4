"""Building blocks kept in the warehouse (crossmatch.detect.blocks): a block whose inputs did not
change is kept, a month block computes only the payment months that changed, and what is kept
always equals the blocks built from scratch on the same data."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from crossmatch.detect import blocks, reuse
from crossmatch.detect.rule_runner import prepare

from .conftest import RULES_DIR, build_warehouse

A, B, C = "341122194501010011", "341122195002020022", "341122196003030033"
MONTHS = ["2025-03", "2025-04", "2025-05", "2025-06"]


def _warehouse(path: Path) -> Path:
    """Two assistance cases (one with a registry household), their payments over four months
    (assistance and another item, one failed transfer), stored in a DuckDB file."""
    mem = build_warehouse(
        {
            "r_assistance": [
                {"case_no": "C1", "applicant_pid": A, "member_pid": A, "village_code": "1",
                 "assistance_type": "农村低保"},
                {"case_no": "C1", "applicant_pid": A, "member_pid": B, "village_code": "1",
                 "assistance_type": "农村低保"},
                {"case_no": "C2", "applicant_pid": C, "member_pid": C, "village_code": "2",
                 "assistance_type": "农村低保"},
            ],
            "r_payment": [
                {"payee_pid": pid, "payee_name": pid[-4:], "item": item, "amount": 100 + i,
                 "period": m, "status": "failed" if (pid, m) == (C, MONTHS[2]) else "success",
                 "account": f"62-{pid[-4:]}"}
                for i, m in enumerate(MONTHS)
                for pid, item in ((A, "城乡低保金"), (B, "城乡低保金"), (C, "城乡低保金"),
                                  (C, "高龄津贴"))
            ],
            "r_hukou": [
                {"household_no": "H1", "person_pid": A, "person_name": "甲", "status": "正常"},
                {"household_no": "H1", "person_pid": "X1", "person_name": "乙", "status": "正常"},
            ],
            "r_bank_account": [{"account": "62-0011", "holder_pid": A, "holder_name": "甲"}],
        }
    )  # fmt: skip
    path.unlink(missing_ok=True)
    mem.execute(f"ATTACH '{path}' AS f")
    mem.execute("COPY FROM DATABASE memory TO f")
    mem.close()
    return path


def _kept(path: Path, *, full: bool = False) -> tuple[blocks.BlockReport, dict[str, list]]:
    """A run's building blocks (kept in the warehouse, computed where their inputs changed)."""
    con = duckdb.connect(str(path))
    try:
        prepare(con, RULES_DIR, base=False)
        rep = blocks.build(
            con, lambda t: reuse.table_fingerprint(con, t), reuse.payment_months(con), full=full
        )
        return rep, _rows(con)
    finally:
        con.close()


def _fresh(path: Path, tmp: Path) -> dict[str, list]:
    """The building blocks built from scratch (TEMP tables) on a copy of the same warehouse."""
    copy = tmp / "fresh.duckdb"
    shutil.copyfile(path, copy)
    con = duckdb.connect(str(copy))
    try:
        con.execute("DROP TABLE IF EXISTS detect_block_state")
        prepare(con, RULES_DIR)
        return _rows(con)
    finally:
        con.close()


def _rows(con: duckdb.DuckDBPyConnection) -> dict[str, list]:
    return {
        name: con.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall()
        for kind, name, _b, _s in blocks.statements()
        if kind == "TABLE"
    }


def _change(path: Path, sql: str) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute(sql)
    finally:
        con.close()


@pytest.fixture
def wh(tmp_path: Path) -> Path:
    return _warehouse(tmp_path / "w.duckdb")


def test_blocks_are_kept_and_equal_a_build_from_scratch(wh: Path, tmp_path: Path):
    rep, rows = _kept(wh)
    assert set(rep.done.values()) == {"built"}
    assert rows == _fresh(wh, tmp_path)
    assert len(rows["paid"]) == 14 and len(rows["dibao_paid_month"]) == 7  # C failed in May
    rep, again = _kept(wh)
    assert rep.done["paid"] == rep.done["dibao_paid_month"] == "0 of 4 months computed"
    assert {rep.done[b] for b in rep.done if b not in blocks.MONTH_BLOCKS} == {"kept"}
    assert again == rows


def test_a_change_in_one_month_recomputes_that_month_only(wh: Path, tmp_path: Path):
    _kept(wh)
    # a mark on the kept rows of March: rows not written again keep it
    _change(wh, f"UPDATE {blocks.stored('paid')} SET payee_name = 'kept' "
                f"WHERE period = '{MONTHS[0]}'")  # fmt: skip
    _change(wh, f"UPDATE r_payment SET amount = amount + 7 WHERE payee_pid = '{B}' "
                f"AND period = '{MONTHS[1]}'")  # fmt: skip
    rep, rows = _kept(wh)
    assert rep.done["paid"] == rep.done["dibao_paid_month"] == "1 of 4 months computed"
    assert rep.done["dibao_case"] == "kept"  # the cases read no payment
    fresh = _fresh(wh, tmp_path)
    marked = [r for r in rows["paid"] if "kept" in r]
    assert len(marked) == 4 and all(MONTHS[0] in r for r in marked)  # March carried as it was
    assert [r for r in rows["paid"] if MONTHS[0] not in r] == [
        r for r in fresh["paid"] if MONTHS[0] not in r
    ]
    assert rows["dibao_paid_month"] == fresh["dibao_paid_month"]
    _change(wh, f"UPDATE {blocks.stored('paid')} p SET payee_name = r.payee_name FROM r_payment r"
                f" WHERE r._file = p._file AND r._row = p._row")  # fmt: skip
    assert _kept(wh)[1] == _fresh(wh, tmp_path)
    # a column no block condition looks at is still the block's content (paid carries every
    # column of the payment): the month is computed again
    _change(wh, f"UPDATE r_payment SET account = '62-9999' WHERE payee_pid = '{A}' "
                f"AND period = '{MONTHS[3]}'")  # fmt: skip
    rep, rows = _kept(wh)
    assert rep.done["paid"] == "1 of 4 months computed"
    assert rows == _fresh(wh, tmp_path)


def test_a_new_and_a_gone_month(wh: Path, tmp_path: Path):
    _kept(wh)
    _change(wh, f"DELETE FROM r_payment WHERE period = '{MONTHS[0]}'; "
                f"INSERT INTO r_payment (payee_pid, item, amount, period, status, _source, _file,"
                f" _row) VALUES ('{A}', '城乡低保金', 5, '2025-07', 'success', 'payment', "
                f"'payment/q3.csv', 2)")  # fmt: skip
    rep, rows = _kept(wh)
    assert rep.done["paid"] == "1 of 4 months computed, 1 gone"
    assert rows == _fresh(wh, tmp_path)
    assert not any(r for r in rows["paid"] if MONTHS[0] in r)


def test_another_input_rebuilds_the_blocks_that_read_it(wh: Path, tmp_path: Path):
    _kept(wh)
    # C's case gains a member B: the households and their paid months change, the payments not
    _change(wh, f"INSERT INTO r_assistance (case_no, applicant_pid, member_pid, village_code, "
                f"assistance_type, _source, _file, _row) VALUES ('C2', '{C}', '{B}', '2', "
                f"'农村低保', 'assistance', 'assistance/fixture.csv', 9)")  # fmt: skip
    rep, rows = _kept(wh)
    assert rep.done["paid"] == "0 of 4 months computed"
    assert rep.done["dibao_case"] == rep.done["dibao_member"] == "built"
    assert rep.done["dibao_paid_month"] == "built"
    assert rep.done["account_holder"] == "kept"
    assert rows == _fresh(wh, tmp_path)
    # the registry: dibao_member reads it (the applicant's household)
    _change(wh, "UPDATE r_hukou SET person_name = '丙' WHERE person_pid = 'X1'")
    rep, rows = _kept(wh)
    assert rep.done["dibao_member"] == "built" and rep.done["dibao_case"] == "kept"
    assert rows == _fresh(wh, tmp_path)


def test_base_sql_or_a_reference_changed_rebuilds(wh: Path, tmp_path: Path, monkeypatch):
    _kept(wh)
    monkeypatch.setattr(blocks, "BLOCKS_VERSION", "test-other")
    rep, _ = _kept(wh)
    assert set(rep.done.values()) == {"built"}
    monkeypatch.undo()
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    ref = rules / "reference" / "item_class.csv"
    ref.write_text(ref.read_text(encoding="utf-8").replace("高龄津贴,", "高龄津贴X,"), "utf-8")
    con = duckdb.connect(str(wh))
    try:
        prepare(con, rules, base=False)
        rep = blocks.build(
            con, lambda t: reuse.table_fingerprint(con, t), reuse.payment_months(con)
        )
        assert rep.done["item_class_map"] == rep.done["paid"] == "built"
    finally:
        con.close()


def test_full_builds_everything_again(wh: Path):
    _kept(wh)
    rep, _ = _kept(wh, full=True)
    assert set(rep.done.values()) == {"built"}


def test_a_month_table_view_redefined_rebuilds(wh: Path):
    """The month digests of a resolved view hash its parts: another definition of the view
    over the same parts must still rebuild the month blocks."""
    con = duckdb.connect(str(wh))
    try:
        con.execute("ALTER TABLE r_payment RENAME TO src_payment")
        con.execute("CREATE VIEW r_payment AS SELECT * FROM src_payment")
    finally:
        con.close()
    _kept(wh)
    _change(wh, "CREATE OR REPLACE VIEW r_payment AS SELECT * REPLACE (amount * 2 AS amount) "
                "FROM src_payment")  # fmt: skip
    rep, _ = _kept(wh)
    assert rep.done["paid"] == rep.done["dibao_paid_month"] == "built"
