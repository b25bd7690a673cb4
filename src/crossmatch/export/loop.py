"""The closed loop 排查 -> 交办 -> 整改 -> 反馈 -> 办结: assign clues to units, read their
returned workbooks, move each clue through its stages, and measure the loop.

Stages of a clue in the loop (``loop_state``): ``assigned`` (交办, with unit, assignee and due
date), ``verified`` (反馈 received: a verdict), ``rectifying`` (整改: confirmed, money still to
recover or records to fix), ``closed`` (办结). A clue's ``overdue`` flag is computed from its due
date, never typed. Every transition goes to the hash-chained audit log.

The returned workbook is the assigned one with the yellow columns filled in; :func:`import_feedback`
checks every row of every file first and applies nothing unless all of them are valid.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import duckdb
import fastexcel
import polars as pl
import xlsxwriter

from crossmatch import warehouse as wh_mod
from crossmatch.detect.schema import existing_relations
from crossmatch.export.clue_list import COLUMNS, FILL_IN, _region_names, export_clues
from crossmatch.review.api import Review, mask
from crossmatch.review.clues import FALSE_POSITIVE, VERDICTS
from crossmatch.review.store import actor, audit

OPEN_STATES = ("new", "ongoing", "reopened", "unchecked")
CONFIRMED = ("属实", "部分属实")


@dataclass
class AssignResult:
    batch_id: str
    workbooks: dict[str, Path] = field(default_factory=dict)  # unit code -> file
    clues: int = 0


class FeedbackRejected(ValueError):
    """A returned workbook failed validation; ``problems`` lists every one (nothing applied)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            f"{len(problems)} problem(s); nothing was applied:\n  " + "\n  ".join(problems)
        )


def _set_stage(
    store: duckdb.DuckDBPyConnection, clue_id: str, stage: str, reason: str = ""
) -> None:
    old = store.execute("SELECT stage FROM loop_state WHERE clue_id = ?", [clue_id]).fetchone()
    if old and old[0] == stage:
        return
    store.execute(
        "INSERT INTO loop_state VALUES (?, ?, now()::TIMESTAMP, ?) ON CONFLICT (clue_id) DO UPDATE "
        "SET stage = excluded.stage, since = excluded.since, reason = excluded.reason",
        [clue_id, stage, reason],
    )
    audit(
        store,
        "stage",
        {"clue_id": clue_id, "old": old[0] if old else None, "new": stage, "reason": reason},
    )


def assign(
    review: Review,
    out_dir: str | Path,
    *,
    level: str = "township",
    due_days: int = 30,
    assignees: dict[str, str] | None = None,
    rule: list[str] | None = None,
    region: str | None = None,
    unmask: bool = False,
    sources_dir: str | Path = "sources",
) -> AssignResult:
    """Route open, not yet assigned clues to units by 属地 and write one workbook per unit.

    ``level`` township: the 9-digit township code of the clue's village (village-less clues go
    to the county unit ``000000000``); ``assignees`` maps a unit code to a person.
    """
    if level not in ("township", "village"):
        raise ValueError("level: township or village")
    width = 9 if level == "township" else 12
    clues = review.clues(state=list(OPEN_STATES), rule=rule, region=region, unmask=True)
    store = review._store()
    try:
        done = {r[0] for r in store.execute("SELECT clue_id FROM assignment").fetchall()}
    finally:
        store.close()
    clues = clues.filter(~pl.col("clue_id").is_in(list(done)))
    con = wh_mod.connect(review.warehouse, read_only=True)
    try:
        names = _region_names(con)
    finally:
        con.close()
    clues = clues.with_columns(
        pl.col("village_code").fill_null("").str.slice(0, width).alias("unit_code")
    ).with_columns(
        pl.when(pl.col("unit_code").str.len_chars() < width)
        .then(pl.lit("0" * width))
        .otherwise(pl.col("unit_code"))
        .alias("unit_code")
    )
    now = dt.datetime.now().replace(microsecond=0)
    batch = now.strftime("JB%Y%m%d%H%M%S")
    due = (now + dt.timedelta(days=due_days)).date()
    res = AssignResult(batch)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[list[Any]] = []
    for unit in sorted(clues["unit_code"].unique().to_list()):
        part = clues.filter(pl.col("unit_code") == unit)
        unit_name = _unit_name(unit, names, level)
        path = out / f"交办_{batch}_{unit}_{unit_name}.xlsx"
        export_clues(
            review,
            path,
            unmask=unmask,
            clue_ids=part["clue_id"].to_list(),
            sources_dir=sources_dir,
            include_closed=True,
            extra_note=f"交办批次 {batch}；承办单位 {unit_name}({unit})；办理期限 {due}",
        )
        res.workbooks[unit] = path
        who = (assignees or {}).get(unit, "")
        rows += [[cid, batch, unit, unit_name, who, now, due, path.name] for cid in part["clue_id"]]
    store = review._store()
    try:
        with wh_mod.transaction(store):
            if rows:
                store.executemany("INSERT INTO assignment VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            for r in rows:
                _set_stage(store, r[0], "assigned", f"batch {batch} -> {r[3]}")
            detail = {"batch_id": batch, "clues": len(rows), "units": len(res.workbooks)}
            audit(store, "assign", detail)
    finally:
        store.close()
    res.clues = len(rows)
    return res


def _unit_name(unit: str, names: dict[str, tuple[str | None, str | None]], level: str) -> str:
    if set(unit) == {"0"}:
        return "县级"
    for code, (town, village) in names.items():
        if code.startswith(unit):
            return (town if level == "township" else village) or unit
    return unit


# ------------------------------------------------------------------ feedback
_FILL = {h: i for i, h in enumerate(FILL_IN)}


def _num(v: Any) -> Decimal | None:
    if v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() == "":
        return None
    try:
        return Decimal(str(v).replace(",", "").replace("元", "").strip())
    except InvalidOperation as exc:
        raise ValueError(f"{v!r} is not a number") from exc


def _date(v: Any) -> dt.date | None:
    if v is None or str(v).strip() == "":
        return None
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    m = re.match(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?$", str(v).strip())
    if not m:
        raise ValueError(f"{v!r} is not a date (write 2026-01-31)")
    return dt.date(int(m[1]), int(m[2]), int(m[3]))


def _read_rows(path: Path) -> pl.DataFrame:
    reader = fastexcel.read_excel(str(path))
    if "线索清单" not in reader.sheet_names:
        raise ValueError("no sheet 线索清单 (was the workbook's first sheet renamed?)")
    sheet = reader.load_sheet_by_name("线索清单", dtypes="string")
    return sheet.to_polars()


def import_feedback(review: Review, files: list[str | Path]) -> dict[str, int]:
    """Validate every returned workbook, then apply all of them in one transaction.

    Raises :class:`FeedbackRejected` listing every problem (file, sheet, row, the fix) when any
    row of any file is invalid; nothing is applied then.
    """
    problems: list[str] = []
    store = review._store(read_only=True)
    try:
        assigned = {
            r[0]: {"batch": r[1], "unit": r[2], "assigned_at": r[3]}
            for r in store.execute(
                "SELECT clue_id, arg_max(batch_id, assigned_at), arg_max(unit_code, assigned_at),"
                " max(assigned_at) FROM assignment GROUP BY clue_id"
            ).fetchall()
        }
        clue_info = {
            r[0]: {"subject": r[1], "amount": r[2]}
            for r in store.execute("SELECT clue_id, subject, amount FROM clue").fetchall()
        }
    finally:
        store.close()
    handlers = _case_handlers(review, [c["subject"] for c in clue_info.values()])
    today = dt.date.today()
    parsed: list[dict[str, Any]] = []
    for f in files:
        path = Path(f)
        where0 = f"{path.name}: sheet 线索清单"
        try:
            df = _read_rows(path)
        except Exception as exc:  # an unreadable file is one problem, not a traceback
            problems.append(
                f"{path.name}: cannot read it ({exc}). Fix: return the workbook as sent."
            )
            continue
        missing = [h for h in (COLUMNS["clue_id"], *FILL_IN) if h not in df.columns]
        if missing:
            problems.append(f"{where0}: columns {missing} are missing. Fix: keep the sent layout.")
            continue
        for i, rec in enumerate(df.iter_rows(named=True), start=2):
            where = f"{where0} row {i}"
            cid = (rec.get(COLUMNS["clue_id"]) or "").strip()
            if not cid:
                problems.append(f"{where}: 线索编号 is empty. Fix: do not edit column A.")
                continue
            if cid not in assigned:
                problems.append(
                    f"{where}: 线索编号 {cid} was never assigned (unknown or altered). "
                    "Fix: do not edit column A; add no rows."
                )
                continue
            verdict = (rec.get("核查结论") or "").strip()
            if not verdict:
                problems.append(f"{where}: 核查结论 is empty. Fix: one of {' / '.join(VERDICTS)}.")
                continue
            if verdict not in VERDICTS:
                problems.append(
                    f"{where}: 核查结论 {verdict!r} is not one of {' / '.join(VERDICTS)}."
                )
                continue
            row: dict[str, Any] = {"clue_id": cid, "verdict": verdict, "file": path.name, "row": i,
                                   "batch": assigned[cid]["batch"]}  # fmt: skip
            row["reason"] = (rec.get("核查情况说明") or "").strip()
            row["verifier"] = (rec.get("核查人") or "").strip()
            row["measures"] = (rec.get("整改措施") or "").strip()
            if not row["verifier"]:
                problems.append(f"{where}: 核查人 is empty. Fix: the verifier's name.")
            try:
                row["verified_on"] = _date(rec.get("核查日期"))
                if row["verified_on"] is None:
                    problems.append(f"{where}: 核查日期 is empty. Fix: write e.g. {today}.")
                elif row["verified_on"] > today:
                    problems.append(f"{where}: 核查日期 {row['verified_on']} is in the future.")
                elif row["verified_on"] < assigned[cid]["assigned_at"].date():
                    problems.append(
                        f"{where}: 核查日期 {row['verified_on']} is before the clue "
                        f"was assigned ({assigned[cid]['assigned_at'].date()})."
                    )
            except ValueError as exc:
                problems.append(f"{where}: 核查日期 {exc}")
            nums: dict[str, Any] = {}
            for col, key in (("停发金额(元)", "stopped"), ("应追回金额(元)", "due"),
                             ("已追回金额(元)", "recovered"), ("问责人数", "acc"),
                             ("处分人数", "sanctions")):  # fmt: skip
                try:
                    nums[key] = _num(rec.get(col))
                except ValueError as exc:
                    problems.append(f"{where}: {col} {exc}. Fix: a plain number.")
                    nums[key] = None
                if nums[key] is not None and nums[key] < 0:
                    problems.append(f"{where}: {col} is negative.")
            for key in ("acc", "sanctions"):
                if nums[key] is not None and nums[key] != int(nums[key]):
                    problems.append(f"{where}: a count of people must be a whole number.")
            if nums["recovered"] is not None and (nums["due"] or 0) < nums["recovered"]:
                problems.append(
                    f"{where}: 已追回金额 {nums['recovered']} exceeds 应追回金额 "
                    f"{nums['due'] or 0}. Fix: the amounts must add up."
                )
            if verdict in FALSE_POSITIVE and (nums["due"] or 0) > 0:
                problems.append(f"{where}: 应追回金额 given for a 不属实 verdict.")
            corrected = (rec.get("数据已更正(是/否)") or "").strip()
            if corrected not in ("", "是", "否"):
                problems.append(f"{where}: 数据已更正 must be 是 or 否.")
            row.update(nums, corrected=corrected == "是")
            subject = clue_info.get(cid, {}).get("subject")
            if row["verifier"] and row["verifier"] in handlers.get(subject, set()):
                problems.append(
                    f"{where}: 核查人 handled this person's assistance case (经办人/"
                    "审批人): a conflict of interest. Fix: another verifier."
                )
            parsed.append(row)
    if problems:
        raise FeedbackRejected(problems)
    counts: dict[str, int] = {"rows": len(parsed)}
    store = review._store()
    try:
        with wh_mod.transaction(store):
            now = dt.datetime.now().replace(microsecond=0)
            for r in parsed:
                store.execute(
                    "INSERT INTO feedback VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        r["clue_id"],
                        r["batch"],
                        r["verdict"],
                        r["reason"],
                        r["verifier"],
                        r["verified_on"],
                        r["measures"],
                        r["stopped"],
                        r["due"],
                        r["recovered"],
                        r["corrected"],
                        None if r["acc"] is None else int(r["acc"]),
                        None if r["sanctions"] is None else int(r["sanctions"]),
                        r["file"],
                        r["row"],
                        now,
                    ],
                )
                store.execute(
                    "INSERT INTO verdict VALUES (?, ?, ?, ?, ?, "
                    "(SELECT fingerprint FROM clue WHERE clue_id = ?), "
                    "(SELECT evidence_summary FROM clue WHERE clue_id = ?))",
                    [
                        r["clue_id"],
                        r["verdict"],
                        r["reason"],
                        r["verifier"],
                        now,
                        r["clue_id"],
                        r["clue_id"],
                    ],
                )
                stage = _stage_after(r)
                _set_stage(store, r["clue_id"], stage, f"feedback {r['file']} row {r['row']}")
                counts[stage] = counts.get(stage, 0) + 1
            audit(store, "feedback", {"files": [Path(f).name for f in files], **counts})
    finally:
        store.close()
    return counts


def _stage_after(r: dict[str, Any]) -> str:
    """verified -> rectifying -> closed, from what the unit reported."""
    if r["verdict"] not in CONFIRMED:
        return "closed"  # 不属实 or 无法核实: verified, nothing to rectify
    due = r["due"] or Decimal(0)
    recovered = r["recovered"] or Decimal(0)
    if due > 0 and recovered < due:
        return "rectifying"
    if r["measures"] or due > 0 or r["corrected"]:
        return "closed"
    return "verified"


def _case_handlers(review: Review, subjects: list[str]) -> dict[str, set[str]]:
    """subject pid -> names of the handlers and approvers of that person's assistance cases."""
    con = wh_mod.connect(review.warehouse, read_only=True)
    try:
        tables = existing_relations(con)
        if "r_assistance" not in tables:
            return {}
        cols = {c[0] for c in con.execute("DESCRIBE r_assistance").fetchall()}
        need = {"member_pid", "applicant_pid", "handler_name", "approver_name"}
        if not need <= cols:
            return {}
        rows = con.execute(
            """
            SELECT pid, list(DISTINCT n) FROM (
                SELECT unnest([member_pid, applicant_pid]) AS pid,
                       unnest([handler_name, approver_name, handler_name, approver_name]) AS n
                FROM r_assistance)
            WHERE pid IN (SELECT unnest(?)) AND n IS NOT NULL GROUP BY pid
            """,
            [subjects],
        ).fetchall()
    finally:
        con.close()
    return {r[0]: set(r[1]) for r in rows}


# ------------------------------------------------------------------ metrics
def metrics(review: Review, by: tuple[str, ...] = ("rule_id",)) -> pl.DataFrame:
    """The loop's figures per ``by`` (rule_id, unit_code, ...): assigned, verified, on time,
    confirmed share (the rule's real precision), 整改完成率, amounts, overdue."""
    store = review._store(read_only=True)
    try:
        df = pl.from_arrow(
            store.sql(
                """
                WITH a AS (
                    SELECT clue_id, arg_max(unit_code, assigned_at) AS unit_code,
                           max(assigned_at) AS assigned_at, arg_max(due_at, assigned_at) AS due_at
                    FROM assignment GROUP BY clue_id),
                f AS (
                    SELECT clue_id, arg_max(verdict, imported_at) AS verdict,
                           arg_max(verified_on, imported_at) AS verified_on,
                           arg_max(amount_due, imported_at) AS due,
                           arg_max(amount_recovered, imported_at) AS recovered
                    FROM feedback GROUP BY clue_id)
                SELECT c.rule_id, a.unit_code, c.amount, f.verdict, f.verified_on, a.due_at,
                       f.due, f.recovered, s.stage
                FROM a JOIN clue c USING (clue_id) LEFT JOIN f USING (clue_id)
                LEFT JOIN loop_state s USING (clue_id)
                """
            ).to_arrow_table()
        )
    finally:
        store.close()
    assert isinstance(df, pl.DataFrame)
    today = dt.date.today()
    verified = pl.col("verdict").is_not_null()
    confirmed = pl.col("verdict").is_in(list(CONFIRMED))
    out = df.group_by(list(by)).agg(
        pl.len().alias("assigned"),
        verified.sum().alias("verified"),
        (verified & (pl.col("verified_on") <= pl.col("due_at"))).sum().alias("on_time"),
        confirmed.sum().alias("confirmed"),
        (confirmed & (pl.col("stage") == "closed")).sum().alias("rectified"),
        (~verified & (pl.col("due_at") < today)).sum().alias("overdue"),
        pl.col("amount").cast(pl.Float64).sum().alias("amount_at_stake"),
        pl.col("due").cast(pl.Float64).sum().alias("amount_due"),
        pl.col("recovered").cast(pl.Float64).sum().alias("amount_recovered"),
    )
    return out.with_columns(
        (pl.col("verified") / pl.col("assigned")).alias("verification_rate"),
        (pl.col("on_time") / pl.col("verified")).alias("on_time_rate"),
        (pl.col("confirmed") / pl.col("verified")).alias("precision"),
        (pl.col("rectified") / pl.col("confirmed")).alias("rectification_rate"),
    ).sort(list(by))


def reopen(review: Review, clue_id: str, reason: str) -> None:
    """Reopen a clue in the loop (back to assigned), with the reason, audited."""
    if not reason.strip():
        raise ValueError("a reopen needs a reason")
    store = review._store()
    try:
        with wh_mod.transaction(store):
            _set_stage(store, clue_id, "assigned", f"reopened by {actor()}: {reason}")
    finally:
        store.close()


# ------------------------------------------------------------------ 四张清单
LEDGERS = ("重点问题清单", "整改措施清单", "问责处理清单", "整改成效清单")


def ledgers(review: Review, out: str | Path, *, unmask: bool = False) -> Path:
    """The four ledgers the loop is managed with (四张清单), one sheet each, as one workbook.

    A problem is a rule (问题类型) in a township; it is struck off (已销号) when every assigned
    clue of it is closed (办结).
    """
    store = review._store(read_only=True)
    try:
        base = pl.from_arrow(
            store.sql(
                """
                WITH a AS (SELECT clue_id, arg_max(unit_code, assigned_at) AS unit_code,
                                  arg_max(unit_name, assigned_at) AS unit_name,
                                  arg_max(due_at, assigned_at) AS due_at
                           FROM assignment GROUP BY clue_id),
                f AS (SELECT clue_id, arg_max(verdict, imported_at) AS verdict,
                             arg_max(measures, imported_at) AS measures,
                             arg_max(payments_stopped, imported_at) AS stopped,
                             arg_max(amount_due, imported_at) AS due,
                             arg_max(amount_recovered, imported_at) AS recovered,
                             arg_max(data_corrected, imported_at) AS corrected,
                             arg_max(accountability, imported_at) AS acc,
                             arg_max(sanctions, imported_at) AS sanctions,
                             arg_max(verifier, imported_at) AS verifier
                      FROM feedback GROUP BY clue_id)
                SELECT c.clue_id, c.rule_id, c.subject, c.subject_name,
                       c.amount::DOUBLE AS amount, a.unit_code, a.unit_name, a.due_at,
                       f.* EXCLUDE (clue_id),
                       coalesce(s.stage, 'assigned') AS stage
                FROM a JOIN clue c USING (clue_id) LEFT JOIN f USING (clue_id)
                LEFT JOIN loop_state s USING (clue_id)
                ORDER BY c.rule_id, a.unit_code, c.clue_id
                """
            ).to_arrow_table()
        )
    finally:
        store.close()
    assert isinstance(base, pl.DataFrame)
    titles = {k: v.title_zh for k, v in review.rules.items()}
    base = base.with_columns(
        pl.col("rule_id").replace_strict(titles, default=pl.col("rule_id")).alias("problem"),
        pl.col("verdict").is_in(list(CONFIRMED)).fill_null(False).alias("confirmed"),
    )
    problems = (
        base.group_by("problem", "rule_id", "unit_code", "unit_name")
        .agg(
            pl.len().alias("clues"),
            pl.col("amount").sum().alias("amount"),
            pl.col("confirmed").sum().alias("confirmed"),
            (pl.col("stage") == "closed").sum().alias("closed"),
            pl.col("due_at").max().alias("due_at"),
            pl.col("measures").drop_nulls().unique().sort().str.join("；").alias("measures"),
            pl.col("recovered").cast(pl.Float64).sum().alias("recovered"),
            pl.col("stopped").cast(pl.Float64).sum().alias("stopped"),
            pl.col("corrected").fill_null(False).sum().alias("corrected"),
        )
        .with_columns(
            pl.when(pl.col("closed") == pl.col("clues"))
            .then(pl.lit("已销号"))
            .otherwise(pl.lit("未销号"))
            .alias("status")
        )
        .sort("rule_id", "unit_code")
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    wb = xlsxwriter.Workbook(str(out))
    head = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True})
    money = wb.add_format({"num_format": "#,##0.00"})

    def sheet(name: str, headers: list[str], rows: list[list[Any]], widths: list[int]) -> None:
        ws = wb.add_worksheet(name)
        for j, h in enumerate(headers):
            ws.write_string(0, j, h, head)
            ws.set_column(j, j, widths[j] if j < len(widths) else 12)
        for i, r in enumerate(rows, start=1):
            for j, v in enumerate(r):
                if v is None:
                    continue
                if isinstance(v, float):
                    ws.write_number(i, j, v, money)
                elif isinstance(v, int):
                    ws.write_number(i, j, v)
                else:
                    ws.write_string(i, j, str(v))
        ws.freeze_panes(1, 0)
        ws.autofilter(0, 0, max(len(rows), 1), len(headers) - 1)

    p = problems.iter_rows(named=True)
    sheet(
        LEDGERS[0],
        ["问题类型", "承办单位", "属地代码", "线索数", "涉及金额(元)", "属实线索", "已办结", "销号状态"],  # noqa: E501
        [[r["problem"], r["unit_name"], r["unit_code"], r["clues"], r["amount"] or 0.0,
          r["confirmed"], r["closed"], r["status"]] for r in p],
        [22, 12, 12, 8, 14, 10, 8, 10],
    )  # fmt: skip
    sheet(
        LEDGERS[1],
        ["问题类型", "承办单位", "整改措施", "整改期限", "销号状态"],
        [[r["problem"], r["unit_name"], r["measures"] or "(待反馈)",
          r["due_at"].isoformat() if r["due_at"] else None, r["status"]]
         for r in problems.iter_rows(named=True)],
        [22, 12, 50, 12, 10],
    )  # fmt: skip
    acc = base.filter(pl.col("confirmed"))
    sheet(
        LEDGERS[2],
        ["线索编号", "问题类型", "承办单位", "对象", "证件号", "核查结论", "问责人数", "处分人数", "状态"],  # noqa: E501
        [[r["clue_id"], r["problem"], r["unit_name"], r["subject_name"],
          r["subject"] if unmask else mask(r["subject"]), r["verdict"], r["acc"] or 0,
          r["sanctions"] or 0, "已销号" if r["stage"] == "closed" else "未销号"]
         for r in acc.iter_rows(named=True)],
        [24, 22, 12, 10, 20, 10, 8, 8, 8],
    )  # fmt: skip
    sheet(
        LEDGERS[3],
        ["问题类型", "承办单位", "停发金额(元)", "追回金额(元)", "更正数据(条)", "制度措施", "销号状态"],  # noqa: E501
        [[r["problem"], r["unit_name"], r["stopped"] or 0.0, r["recovered"] or 0.0,
          int(r["corrected"]), r["measures"] or "", r["status"]]
         for r in problems.iter_rows(named=True)],
        [22, 12, 14, 14, 12, 50, 10],
    )  # fmt: skip
    wb.close()
    store = review._store()
    try:
        audit(
            store, "ledgers", {"file": str(out), "problems": problems.height, "masked": not unmask}
        )
    finally:
        store.close()
    return out
