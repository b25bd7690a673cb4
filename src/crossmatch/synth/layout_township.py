"""Layout ``township``: township finance offices' hand-kept payment tables (issue 17).

Each township's 财政所 keeps its own monthly 发放表 in Excel and sends it as a GB18030 CSV:
``finance/<乡镇>/<乡镇>惠民惠农补贴资金发放表_2025年03月.csv``. Each file has

* a title block (the table's name, then 填报单位 ... 单位：元) above a two-row header: the
  groups 收款人 (姓名, 身份证号, 一卡通账号, 开户银行) and 补贴信息 (批次号, 项目名称,
  金额(元), 所属期, 发放日期), with 序号 / 发放状态 / 村(社区) merged over both rows;
* names typed with a space inside (``张 三``, as clerks align two-character names);
* IDs that went through an Excel number column (``3.41122E+17``): unreadable, so ingest
  stores them ``bad_format`` and counts them; identity may still place the row by name,
  account and village, never by a wrong ID. Recorded in ``truth/noise.csv`` as ``id_float``,
  and never on the rows of a planted case's or trap's subject (a scenario row is critical);
* amounts with thousands separators (``1,260.00``), Excel serial pay dates (``45716``), the
  period as ``2025年3月``;
* villages by name only (``马冲村村民委员会`` ...); the registry carries the 12-digit codes
  next to the township and village names, as in ``monthly``;
* a 合计 row closing every file;
* an overlapping re-export: about 1% of a month's successful rows are exported again at the
  top of the next month's file of the same township, cell for cell (same 所属期, batch and
  date). They are the same payments, so ingest marks them ``_dup_of`` (``crossfile``) and
  ``duplicate_payment`` must not count them.

Everything else is the default export (copied).
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections import defaultdict
from typing import Any

from crossmatch.synth.layouts import (
    YEAR,
    OutRow,
    Render,
    _payment_tables,
    _sum_row,
    parse_amount,
    parse_date,
    parse_period,
    registry_with_names,
)

OVERLAP = 0.01  # share of a month's rows exported again in the next month's file
FLOAT_IDS = 0.03  # share of eligible ID cells that went through an Excel number column
SPACED_NAMES = 0.05

UPPER = ["序号", "收款人", "", "", "", "补贴信息", "", "", "", "", "发放状态", "村(社区)"]
LOWER = ["", "姓名", "身份证号", "一卡通账号", "开户银行", "批次号", "项目名称", "金额(元)",
         "所属期", "发放日期", "", ""]  # fmt: skip
# the header as ingest names it (group/sub), for the truth's noise columns
NAMES = ["序号", "收款人/姓名", "收款人/身份证号", "收款人/一卡通账号", "收款人/开户银行",
         "补贴信息/批次号", "补贴信息/项目名称", "补贴信息/金额(元)", "补贴信息/所属期",
         "补贴信息/发放日期", "发放状态", "村(社区)"]  # fmt: skip
OLD = {"收款人姓名": 1, "收款人身份证号": 2, "社保卡/银行账号": 3, "开户银行": 4,
       "发放批次号": 5, "补贴项目": 6, "发放金额": 7, "所属期": 8, "发放日期": 9,
       "发放状态": 10, "村": 11}  # fmt: skip
EPOCH = dt.date(1899, 12, 30)


def excel_float(idv: str) -> str:
    """An 18-digit ID as Excel shows it in a General number column: ``3.41122E+17``."""
    return f"{float(idv):.5E}"


def spaced(name: str) -> str:
    """A name typed with a space after the surname (``张 三``, ``欧阳 明``: one-character
    surnames only; two-character ones are rare and ambiguous)."""
    if "·" in name or len(name) < 2:
        return name
    return name[0] + " " + name[1:]


def _protected(r: Render) -> set[str]:
    """Subjects of planted cases and traps: their rows keep readable IDs (critical rows)."""
    with open(r.src / "truth" / "planted.csv", encoding="utf-8", newline="") as fh:
        return {row["subject"] for row in csv.DictReader(fh)}


def render_township(r: Render) -> None:
    for k in ("id_float cells", "names with a space", "rows exported again next month"):
        r.counts[k] += 0
    gb: dict[str, Any] = {"encoding": "gb18030", "crlf": True}
    registry_with_names(r, **gb)
    vill = r.villages()
    protected = _protected(r)
    # accounts paid to more than one person (shared accounts): their rows stay readable
    holders: dict[str, set[str]] = defaultdict(set)
    tables = _payment_tables(r)
    for t in tables:
        ia = t.idx("社保卡/银行账号")
        for n, c in t.rows:
            if len(c) > ia:
                holders[c[ia]].add(r.pid(t.rel, n, "payee") or "?")
    shared = {a for a, ps in holders.items() if len(ps) > 1}

    files: dict[tuple[str, int], list[OutRow]] = defaultdict(list)
    last_town = ""
    for t in tables:
        idx = {h: t.idx(h) for h in OLD}
        itown, icode = t.idx("乡镇"), t.idx("行政区划代码")
        for n, old in t.rows:
            short = len(t.header) - len(old)
            full = old + [""] * short
            town = full[itown] or vill.get(full[icode], ("", ""))[0] or last_town
            last_town = town
            m = parse_period(full[idx["所属期"]])
            if m is None:  # a damaged period (quarantined anyway): file it by its pay date
                d = parse_date(full[idx["发放日期"]])
                m = d.month if d and d.year == YEAR else 1
            cells: list[Any] = [""] * len(UPPER)
            for h, j in OLD.items():
                cells[j] = full[idx[h]]
            key = tuple(map(str, old))
            pid = r.pid(t.rel, n, "payee")
            name = cells[1]
            if name and r.u("space", key) < SPACED_NAMES and spaced(name) != name:
                cells[1] = spaced(name)
                r.counts["names with a space"] += 1
                r.pending_noise.append((t.rel, n, "payee", "收款人姓名", "name_space"))
            idv = str(cells[2])
            if (
                re.fullmatch(r"\d{18}", idv)
                and (t.rel, n, "payee") not in r.noise
                and pid not in protected
                and idv not in protected
                and cells[3] not in shared
                and not short
                and r.u("float", key) < FLOAT_IDS
            ):
                cells[2] = excel_float(idv)
                r.counts["id_float cells"] += 1
                r.pending_noise.append((t.rel, n, "payee", "收款人身份证号", "id_float"))
            a = parse_amount(cells[7])
            if a is not None and re.fullmatch(r"-?[\d.]+", str(cells[7]).strip()):
                cells[7] = f"{a:,.2f}"
            p = parse_period(cells[8])
            if p is not None:
                cells[8] = f"{YEAR}年{p}月"
            d = parse_date(cells[9])
            if d is not None:
                cells[9] = str((d - EPOCH).days)
            if cells[11]:
                cells[11] = r.village_variant(cells[11], key)
            if short:
                cells = cells[:-short]
            files[(town, m)].append((cells, [(t.rel, n, None)]))

    for (town, m), rows in sorted(files.items()):
        again: list[OutRow] = []
        for cells, origins in files.get((town, m - 1), []) if m > 1 else []:
            clean = not any((f, n, "payee") in r.noise for f, n, _ in origins)
            full = len(cells) == len(UPPER) and cells[10] == "成功"
            if clean and full and r.u("again", tuple(map(str, cells))) < OVERLAP:
                again.append((list(cells), list(origins)))
        r.counts["rows exported again next month"] += len(again)
        body = again + rows
        for k, (cells, _o) in enumerate(body):
            cells[0] = str(k + 1)
        body.append(_sum_row(len(UPPER), 0, 7, body))
        total = body[-1][0]
        total[7] = f"{float(total[7]):,.2f}"
        rel = f"finance/{town}/{town}惠民惠农补贴资金发放表_{YEAR}年{m:02d}月.csv"
        title = [f"{town}{YEAR}年{m}月惠民惠农补贴资金发放表"] + [""] * (len(UPPER) - 1)
        unit = [f"填报单位：{town}财政所（盖章）"] + [""] * (len(UPPER) - 2) + ["单位：元"]
        r.write_csv(
            rel,
            LOWER,
            body,
            above=[title, unit, UPPER],
            renames={old: NAMES[j] for old, j in OLD.items()},
            **gb,
        )
