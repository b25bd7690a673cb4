"""Layout ``platform``: a provincial platform's xlsx exports (issue 17).

The assistance roster (社会救助综合信息平台) and the one-card payments (惠民惠农财政补贴资金
"一卡通"管理平台) are exported by the province's platform as workbooks with

* a merged title row above a merged two-row header: a group header (家庭信息, 申请人,
  家庭成员, 所在地区, 审批信息; 补贴对象, 发放信息, 账户信息, 所在地) spanning its
  sub-headers, and 序号 merged over both rows (read with ``header_rows: 2``);
* a 证件类型 column before each ID: 居民身份证 for an ID-shaped cell (18 characters, or a
  legacy 15-digit number), 其他 for anything else (a mistyped number), empty with the ID;
* dates as Excel serial numbers (a number cell without a date format: ``45716``) or as
  full-width text (``２０２５年３月５日``), as the platform's text export and its users write them;
  the payment period as ``202503``;
* one payment workbook per quarter (as the default files), the roster one sheet.

A damaged (short) CSV row gets ``#REF!`` in a required cell, as in ``workbook``. Everything else
is the default export (copied).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import xlsxwriter

from crossmatch.synth.layouts import (
    _XLSX_CREATED,
    ROSTER,
    YEAR,
    OutRow,
    Render,
    Table,
    _payment_tables,
    _yyyymm,
    parse_date,
)

EPOCH = dt.date(1899, 12, 30)
FULLWIDTH = str.maketrans("0123456789-", "０１２３４５６７８９－")

# (group or None for a column merged over both rows, [(sub-header, old header or fn)])
Col = tuple[str, Any]


def id_type(v: Any) -> str:
    s = str(v or "").strip()
    if not s:
        return ""
    return "居民身份证" if re.fullmatch(r"\d{17}[\dXx]|\d{15}", s) else "其他"


def platform_date(r: Render, v: Any, key: Any) -> Any:
    """A date as the platform gives it: a serial number, full-width text or ISO text."""
    d = parse_date(v)
    if d is None:
        return v
    u = r.u("date", key)
    if u < 0.5:
        return (d - EPOCH).days
    if u < 0.75:
        return f"{d.year}年{d.month}月{d.day}日".translate(FULLWIDTH)
    return d.isoformat()


def write_grouped(
    r: Render,
    rel: str,
    sheet: str,
    title: str,
    groups: list[tuple[str | None, list[str]]],
    rows: list[OutRow],
    renames: dict[str, str],
) -> None:
    """A workbook with a merged title row and a merged two-row header (``groups``)."""
    path = r.out / "raw" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False})
    wb.set_properties({"created": _XLSX_CREATED, "author": "crossmatch synth"})
    head = wb.add_format({"bold": True, "align": "center", "valign": "vcenter", "border": 1})
    ws = wb.add_worksheet(sheet)
    width = sum(len(subs) for _g, subs in groups)
    ws.merge_range(0, 0, 0, width - 1, title, head)
    c = 0
    for g, subs in groups:
        if g is None:  # one column, merged over both header rows
            ws.merge_range(1, c, 2, c, subs[0], head)
        else:
            if len(subs) > 1:
                ws.merge_range(1, c, 1, c + len(subs) - 1, g, head)
            else:
                ws.write_string(1, c, g, head)
            for k, s in enumerate(subs):
                ws.write_string(2, c + k, s, head)
        c += len(subs)
    first = 3
    for k, (cells, _o) in enumerate(rows):
        for j, v in enumerate(cells):
            if v is None or v == "":
                continue
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                ws.write_number(first + k, j, v)
            else:
                ws.write_string(first + k, j, str(v))
    wb.close()
    r._record(rel, rows, first + 1)
    r.renames[rel] = renames
    r.counts[f"rows {rel}"] = len(rows)


def _layout(
    r: Render, t: Table, spec: list[tuple[str | None, list[Col]]], bad: str
) -> tuple[list[tuple[str | None, list[str]]], list[OutRow], dict[str, str]]:
    """Reshape ``t`` into the grouped columns; renames old header -> ``group/sub``."""
    cols: list[tuple[str, Any]] = []
    names: list[str] = []
    for g, subs in spec:
        for sub, src in subs:
            cols.append((sub, src))
            names.append(sub if g is None else f"{g}/{sub}")
    bad_col = next(i for i, (_s, src) in enumerate(cols) if src == bad)
    _h, rows, _ren = r.reshape(t, cols, bad_col=bad_col)
    renames = {src: names[i] for i, (_s, src) in enumerate(cols) if isinstance(src, str)}
    for k, (cells, _o) in enumerate(rows):
        cells[0] = k + 1
    return [(g, [s for s, _ in subs]) for g, subs in spec], rows, renames


def render_platform(r: Render) -> None:
    # the assistance roster
    t = r.table(ROSTER)
    ii = {h: t.idx(h) for h in ("申请人身份证号", "成员身份证号", "救助开始日期", "救助终止日期")}

    def date_of(h: str) -> Any:
        return lambda c, n: platform_date(r, c[ii[h]], (t.rel, n, h))

    spec: list[tuple[str | None, list[Col]]] = [
        (None, [("序号", lambda c, n: "")]),
        ("家庭信息", [("救助证编号", "救助证编号"), ("救助类别", "救助类别"),
                      ("保障人数", "保障人数"), ("月保障金额(元)", "月保障金额")]),
        ("申请人", [("姓名", "申请人姓名"),
                    ("证件类型", lambda c, n: id_type(c[ii["申请人身份证号"]])),
                    ("证件号码", "申请人身份证号")]),
        ("家庭成员", [("姓名", "成员姓名"),
                      ("证件类型", lambda c, n: id_type(c[ii["成员身份证号"]])),
                      ("证件号码", "成员身份证号"), ("与申请人关系", "与申请人关系")]),
        ("所在地区", [("乡镇(街道)", "乡镇(街道)"), ("村(社区)", "村(社区)"),
                      ("行政区划代码", "行政区划代码")]),
        ("审批信息", [("经办人", "经办人"), ("审批人", "审批人"),
                      ("批准日期", date_of("救助开始日期")),
                      ("停保日期", date_of("救助终止日期"))]),
    ]  # fmt: skip
    groups, rows, ren = _layout(r, t, spec, "月保障金额")
    write_grouped(
        r,
        "civil/社会救助综合信息平台_低保特困对象名册.xlsx",
        "导出数据",
        f"城乡低保、特困供养对象名册（导出日期：{YEAR}年12月31日）",
        groups,
        rows,
        ren,
    )

    # the payments: one workbook per quarter
    for t in _payment_tables(r):
        ip, i_id, i_d = t.idx("所属期"), t.idx("收款人身份证号"), t.idx("发放日期")
        quarter = re.search(r"(Q\d)", t.rel)
        spec = [
            (None, [("序号", lambda c, n: "")]),
            ("补贴对象", [("姓名", "收款人姓名"),
                          ("证件类型", lambda c, n, i=i_id: id_type(c[i])),
                          ("证件号码", "收款人身份证号")]),
            ("发放信息", [("补贴项目", "补贴项目"), ("发放金额(元)", "发放金额"),
                          ("所属期", lambda c, n, i=ip: _yyyymm(c[i])),
                          ("发放日期", lambda c, n, i=i_d, rel=t.rel:
                              platform_date(r, c[i], (rel, n))),
                          ("发放状态", "发放状态"), ("发放批次", "发放批次号")]),
            ("账户信息", [("社保卡/银行账号", "社保卡/银行账号"), ("开户银行", "开户银行")]),
            ("所在地", [("乡镇", "乡镇"), ("村(社区)", "村"), ("区划代码", "行政区划代码")]),
        ]  # fmt: skip
        groups, rows, ren = _layout(r, t, spec, "发放金额")
        q = quarter[1] if quarter else "Q"
        write_grouped(
            r,
            f"finance/惠民惠农一卡通平台_发放明细导出_{YEAR}{q}.xlsx",
            "发放明细",
            f"惠民惠农财政补贴资金发放明细（{YEAR}年{q[1:]}季度）",
            groups,
            rows,
            ren,
        )
