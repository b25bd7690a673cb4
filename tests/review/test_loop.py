"""The closed loop on the sample county: assign, fill in the returned workbooks, import, metrics;
bad workbooks rejected with every problem and nothing applied; the audit chain detects edits."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
import openpyxl
import pytest

from crossmatch.export.clue_list import COLUMNS, FILL_IN
from crossmatch.export.loop import FeedbackRejected, assign, import_feedback, metrics, reopen
from crossmatch.review import Review, store_path
from crossmatch.review.store import verify_audit

pytestmark = pytest.mark.slow  # the closed loop over the whole sample county


ROOT = Path(__file__).resolve().parents[2]
TODAY = dt.date.today().isoformat()


@pytest.fixture
def rv(sample_warehouse: Path, tmp_path: Path) -> Review:
    wh = tmp_path / "w.duckdb"
    shutil.copy(sample_warehouse, wh)
    review = Review(wh, rules_dir=ROOT / "rules")
    review.sync()
    return review


@pytest.fixture(scope="module")
def assigned(sample_warehouse: Path, tmp_path_factory) -> tuple[Review, dict[str, Path]]:
    """One review with deceased and vehicle clues assigned; rejected imports change nothing."""
    tmp = tmp_path_factory.mktemp("loop")
    wh = tmp / "w.duckdb"
    shutil.copy(sample_warehouse, wh)
    review = Review(wh, rules_dir=ROOT / "rules")
    review.sync()
    res = assign(review, tmp / "out", rule=["deceased_recipient", "vehicle_on_dibao"])
    return review, res.workbooks


def _fill(path: Path, fill) -> Path:
    """Fill a returned workbook's yellow columns: ``fill(row_index, clue_id) -> dict``."""
    wb = openpyxl.load_workbook(path)
    ws = wb["线索清单"]
    header = [c.value for c in ws[1]]
    for i in range(2, ws.max_row + 1):
        cid = ws.cell(row=i, column=1).value
        for k, v in fill(i, cid).items():
            ws.cell(row=i, column=header.index(k) + 1).value = v
    out = path.with_name("回复_" + path.name)
    wb.save(out)
    return out


def _good(i: int, cid: str) -> dict:
    base = {"核查人": "核查员" + str(i % 3), "核查日期": TODAY, "核查情况说明": "已核实"}
    if i % 4 == 0:
        return {**base, "核查结论": "不属实-数据错误", "数据已更正(是/否)": "是"}
    if i % 4 == 1:
        return {**base, "核查结论": "属实", "应追回金额(元)": 300, "已追回金额(元)": 300,
                "整改措施": "停发并追回", "问责人数": 1}  # fmt: skip
    if i % 4 == 2:
        return {**base, "核查结论": "属实", "应追回金额(元)": 500, "已追回金额(元)": 100}
    return {**base, "核查结论": "无法核实"}


def test_round_trip_assign_feedback_metrics(rv: Review, tmp_path: Path) -> None:
    res = assign(rv, tmp_path / "out", rule=["deceased_recipient", "vehicle_on_dibao"],
                 sources_dir=ROOT / "sources")  # fmt: skip
    n = rv.clues(rule=["deceased_recipient", "vehicle_on_dibao"]).height
    assert res.clues == n > 0 and len(res.workbooks) >= 2  # one workbook per township
    # assigning again routes nothing twice
    assert assign(rv, tmp_path / "out2", rule=["deceased_recipient"]).clues == 0
    returned = [_fill(p, _good) for p in res.workbooks.values()]
    counts = import_feedback(rv, returned)
    assert counts["rows"] == n
    m = metrics(rv)
    total = m.select("assigned", "verified", "confirmed", "rectified", "overdue").sum().row(0)
    assigned, verified, confirmed, rectified, overdue = total
    assert assigned == verified == n and overdue == 0
    # rows i % 4 in (1, 2) are confirmed; only i % 4 == 1 fully recovered -> rectified
    assert 0 < rectified < confirmed < verified
    assert m["amount_recovered"].sum() < m["amount_due"].sum()
    assert set(m["rule_id"]) == {"deceased_recipient", "vehicle_on_dibao"}
    # a 不属实 verdict from the unit suppresses the clue next night
    store = duckdb.connect(str(store_path(rv.warehouse)), read_only=True)
    stages = dict(store.execute("SELECT stage, count(*) FROM loop_state GROUP BY 1").fetchall())
    store.close()
    assert stages.get("rectifying", 0) > 0 and stages.get("closed", 0) > 0
    assert verify_audit(rv._store(read_only=True)) == []


@pytest.mark.parametrize(
    ("case", "fill", "message"),
    [
        ("empty verdict", lambda i, c: {"核查人": "甲", "核查日期": TODAY}, "核查结论 is empty"),
        ("bad verdict", lambda i, c: {"核查结论": "对", "核查人": "甲", "核查日期": TODAY},
         "is not one of"),
        ("future date", lambda i, c: {"核查结论": "属实", "核查人": "甲", "核查日期": "2999-01-01"},
         "in the future"),
        ("bad date", lambda i, c: {"核查结论": "属实", "核查人": "甲", "核查日期": "昨天"},
         "is not a date"),
        ("amounts", lambda i, c: {"核查结论": "属实", "核查人": "甲", "核查日期": TODAY,
                                  "应追回金额(元)": 100, "已追回金额(元)": 200}, "exceeds"),
        ("altered id", lambda i, c: {COLUMNS["clue_id"]: c + "X", "核查结论": "属实",
                                     "核查人": "甲", "核查日期": TODAY}, "never assigned"),
    ],
)  # fmt: skip
def test_bad_feedback_rejected_and_nothing_applied(assigned, case, fill, message) -> None:
    rv, workbooks = assigned
    path = next(iter(workbooks.values()))
    bad = _fill(path, fill)
    with pytest.raises(FeedbackRejected) as err:
        import_feedback(rv, [bad])
    assert message in str(err.value)
    assert "row 2" in str(err.value) and bad.name in str(err.value)
    store = duckdb.connect(str(store_path(rv.warehouse)), read_only=True)
    assert store.execute("SELECT count(*) FROM feedback").fetchone()[0] == 0
    assert store.execute("SELECT count(*) FROM verdict").fetchone()[0] == 0
    store.close()


def test_verifier_who_handled_the_case_is_refused(assigned) -> None:
    rv, workbooks = assigned
    con = duckdb.connect(str(rv.warehouse), read_only=True)
    subject, handler = con.execute(
        "SELECT member_pid, handler_name FROM r_assistance WHERE member_pid IN "
        "(SELECT subject FROM hit WHERE rule_id = 'vehicle_on_dibao') LIMIT 1"
    ).fetchone()
    con.close()
    target = rv.clues(rule="vehicle_on_dibao", unmask=True).filter(
        rv.clues(rule="vehicle_on_dibao", unmask=True)["subject"] == subject
    )["clue_id"][0]

    def fill(i: int, cid: str) -> dict:
        who = handler if cid == target else "无关核查员"
        return {"核查结论": "属实", "核查人": who, "核查日期": TODAY}

    files = [_fill(p, fill) for p in workbooks.values()]
    with pytest.raises(FeedbackRejected, match="conflict of interest"):
        import_feedback(rv, files)


def test_audit_tamper_check_and_reopen(rv: Review, tmp_path: Path) -> None:
    res = assign(rv, tmp_path / "out", rule=["ghost_recipient"])
    assert res.clues > 0
    cid = rv.clues(rule="ghost_recipient")["clue_id"][0]
    with pytest.raises(ValueError):
        reopen(rv, cid, " ")
    reopen(rv, cid, "新线索材料")
    store = duckdb.connect(str(store_path(rv.warehouse)))
    assert verify_audit(store) == []
    store.execute("UPDATE audit SET actor = 'someone else' WHERE seq = 2")
    problems = verify_audit(store)
    store.close()
    assert problems and "row 2" in problems[0]


def test_fill_in_columns_are_in_the_assigned_workbook(rv: Review, tmp_path: Path) -> None:
    res = assign(rv, tmp_path / "out", rule=["shared_account"])
    ws = openpyxl.load_workbook(next(iter(res.workbooks.values())))["线索清单"]
    header = [c.value for c in ws[1]]
    assert header[-len(FILL_IN) :] == list(FILL_IN)


def test_four_ledgers_workbook(rv: Review, tmp_path: Path) -> None:
    from crossmatch.export.loop import LEDGERS, ledgers

    res = assign(rv, tmp_path / "out", rule=["deceased_recipient"])
    import_feedback(rv, [_fill(p, _good) for p in res.workbooks.values()])
    out = ledgers(rv, tmp_path / "四张清单.xlsx")
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == list(LEDGERS)
    problems = list(wb["重点问题清单"].iter_rows(min_row=2, values_only=True))
    assert sum(r[3] for r in problems) == res.clues
    assert {r[7] for r in problems} <= {"已销号", "未销号"}
    accountability = list(wb["问责处理清单"].iter_rows(min_row=2, values_only=True))
    assert accountability and all("********" in r[4] for r in accountability)
    effects = list(wb["整改成效清单"].iter_rows(min_row=2, values_only=True))
    assert sum(r[3] for r in effects) > 0  # money recovered
