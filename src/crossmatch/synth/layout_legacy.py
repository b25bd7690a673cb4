# ruff: noqa: E501  (header tables read best one line per column)
"""Layout ``legacy``: exports of older county systems (issue 17: counties never seen).

Classes of real exports no other layout has:

* "Excel" that is an HTML ``<table>`` saved with a ``.xls`` name (导出Excel of older web
  systems), GBK-encoded under a ``<meta charset>``, characters outside GBK as ``&#NNNNN;``:
  the payments, ``finance/惠民惠农补贴资金发放明细_2025Q1.xls`` ... (one per quarter), a title
  row, a header row, then the rows, then remark rows (制表人 / 审核人 / 导出时间) in merged
  cells. The payee is one column ``收款人(身份证号)`` = ``张三(341122...)``; IDs ending in X
  are written with a lowercase ``x`` (truth: ``id_lower_x``); the pay date is ``2025/3/5`` or
  ``20250305`` in one column.
* genuine old BIFF ``.xls`` workbooks (xlwt): the payroll (``finance/财政供养人员信息.xls``,
  dates as date cells, ``2019/3/5`` or ``20190305`` text in one column) and the land contracts
  (``agriculture/土地承包经营权信息.xls``, the representative ``张三(户主)`` when they head
  their household in the registry; a title row and remark rows under the table).
* a JSON API dump of the assistance roster (``civil/低保特困救助对象_接口导出.json``): a
  response envelope (code / msg / total / data), one object per household with the applicant
  as a nested object and a nested ``familyMembers`` array, dates as epoch milliseconds
  (Beijing midnight), amounts and sizes as numbers (a damaged amount stays a string).
* a CSV whose IDs carry a leading apostrophe (``'341122...``, the clerk's way to keep Excel
  from turning them into numbers): the elderly allowance roster, GBK, with remark rows.

Truth rows: the HTML table's ``<tr>`` ordinal (title = 1, header = 2, first data row = 3);
a BIFF sheet's row number (as xlsx); in the JSON, the ordinal of the family member in file
order (the first member of the first household is 1), every role of the default roster row at
that member. Household objects group rows by all household cells, so a case whose default rows
disagree (a damaged cell) is two objects with one certificate number, and nothing is lost.

Everything else is the default export (copied).
"""

from __future__ import annotations

import calendar
import datetime as dt
import html
import json
import re
from collections import defaultdict
from typing import Any

from crossmatch.synth.layouts import (
    HUKOU,
    PAYROLL,
    ROSTER,
    YEAR,
    OutRow,
    Render,
    _payment_tables,
    fmt_date,
    parse_amount,
    parse_date,
)

PAY_FILE = "finance/惠民惠农补贴资金发放明细_{year}Q{q}.xls"
LAND = "agriculture/土地承包经营权信息.csv"
ELDERLY = "civil/高龄津贴发放名册.csv"
JSON_FILE = "civil/低保特困救助对象_接口导出.json"
COUNTY = "来安县"
BIFF_MAX_ROWS = 65536
PAYEE = "收款人(身份证号)"
# default payment header -> legacy header (收款人姓名 / 收款人身份证号 become one column)
PAY_COLUMNS = [("批次号", "发放批次号"), ("项目名称", "补贴项目"), (PAYEE, None),
               ("银行账号", "社保卡/银行账号"), ("开户银行", "开户银行"), ("金额", "发放金额"),
               ("所属期", "所属期"), ("发放日期", "发放日期"), ("发放状态", "发放状态"),
               ("乡镇", "乡镇"), ("村", "村"), ("行政区划代码", "行政区划代码")]  # fmt: skip
CLERKS = ["王芳", "李娟", "陈静", "刘洋", "张敏"]
CHECKERS = ["赵刚", "孙伟", "周强", "吴军"]
# JSON keys: household level, then the nested member
JSON_HOUSEHOLD = [("assistanceType", "救助类别"), ("certNo", "救助证编号"),
                  ("applicant.name", "申请人姓名"), ("applicant.idCard", "申请人身份证号"),
                  ("familySize", "保障人数"), ("monthlyAmount", "月保障金额"), ("town", "乡镇(街道)"),
                  ("village", "村(社区)"), ("areaCode", "行政区划代码"), ("handler", "经办人"),
                  ("approver", "审批人"), ("startDate", "救助开始日期"), ("endDate", "救助终止日期")]  # fmt: skip
JSON_MEMBER = [("familyMembers.name", "成员姓名"), ("familyMembers.idCard", "成员身份证号"),
               ("familyMembers.relation", "与申请人关系")]  # fmt: skip


def render_legacy(r: Render) -> None:
    for k in ("payee IDs with a lowercase x", "representatives marked (户主)",
              "IDs with a leading apostrophe", "roster households split by a damaged cell"):  # fmt: skip
        r.counts[k] += 0
    _payments(r)
    _roster_json(r)
    _payroll_xls(r)
    _land_xls(r)
    _elderly_csv(r)
    _readme(r)


# ----------------------------------------------------------------------------- helpers
def _remarks(r: Render, key: Any) -> list[str]:
    return [f"制表人：{r.choice(CLERKS, 'clerk', key)}", f"审核人：{r.choice(CHECKERS, 'chk', key)}",
            f"导出时间：{YEAR + 1}-01-{5 + int(r.u('day', key) * 20):02d}"]  # fmt: skip


def _lower_x(r: Render, idv: str, origin: tuple[str, int], role: str, col: str) -> str:
    """An ID ending in X as the old system writes it (x); recorded as id_lower_x noise unless
    the default cell was already damaged."""
    if idv.endswith("X") and len(re.sub(r"\s", "", idv)) == 18:
        f, n = origin
        if (f, n, role) not in r.noise:
            r.pending_noise.append((f, n, role, col, "id_lower_x"))
        r.counts["payee IDs with a lowercase x"] += 1
        return idv[:-1] + "x"
    return idv


def _mixed_date(r: Render, v: Any, key: Any, date_cell: bool = False) -> Any:
    """One column, several hands: 2025/3/5, 20250305 (and a real date cell in a workbook)."""
    d = parse_date(v)
    if d is None:
        return v
    u = r.u("date", key)
    if date_cell and u < 0.5:
        return d
    return fmt_date(d, "slash" if u < 0.75 else "compact")


def _html_cell(v: Any, text: bool = False) -> str:
    s = html.escape("" if v is None else str(v), quote=False)
    # mso-number-format '@': Excel shows the cell as text (how these systems keep ID digits)
    return f"<td style=\"mso-number-format:'\\@'\">{s}</td>" if text else f"<td>{s}</td>"


# ----------------------------------------------------------------------------- payments
def _payments(r: Render) -> None:
    for t in _payment_tables(r):
        m = re.search(r"Q(\d)", t.rel)
        q = int(m[1]) if m else 1
        rel = PAY_FILE.format(year=YEAR, q=q)
        iname, iid = t.idx("收款人姓名"), t.idx("收款人身份证号")
        rows: list[OutRow] = []
        for n, old in t.rows:
            short = len(t.header) - len(old)
            full = old + [""] * short
            key = (t.rel, n)
            cells: list[Any] = []
            for new, src in PAY_COLUMNS:
                if src is None:
                    name = str(full[iname]).strip()
                    idv = _lower_x(r, str(full[iid]).strip(), key, "payee", PAYEE)
                    cells.append(f"{name}({idv})" if idv else name)
                elif new == "发放日期":
                    cells.append(_mixed_date(r, full[t.idx(src)], key))
                else:
                    cells.append(full[t.idx(src)])
            if short > 0:  # a damaged (short) row stays short by as many cells
                cells = cells[: max(1, len(cells) - short)]
            rows.append(([len(rows) + 1, *cells], [(t.rel, n, None)]))
        header = ["序号", *[h for h, _ in PAY_COLUMNS]]
        title = f"{COUNTY}惠民惠农补贴资金发放明细表（{YEAR}年第{q}季度）"
        _write_html_xls(r, rel, title, header, rows, _remarks(r, rel), text_cols={3, 4, 12})
        r.renames[rel] = {"收款人姓名": PAYEE, "收款人身份证号": PAYEE, "社保卡/银行账号": "银行账号",
                          "发放批次号": "批次号", "补贴项目": "项目名称", "发放金额": "金额"}  # fmt: skip


def _write_html_xls(
    r: Render,
    rel: str,
    title: str,
    header: list[str],
    rows: list[OutRow],
    remarks: list[str],
    text_cols: set[int],
) -> None:
    width = len(header)
    out = ['<html xmlns:o="urn:schemas-microsoft-com:office:office" '
           'xmlns:x="urn:schemas-microsoft-com:office:excel">',
           '<head><meta http-equiv="Content-Type" content="text/html; charset=gbk">',
           f"<title>{html.escape(title)}</title></head>", "<body>", '<table border="1">',
           f'<tr><td colspan="{width}" align="center"><b>{html.escape(title)}</b></td></tr>',
           "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]  # fmt: skip
    for cells, _o in rows:
        out.append("<tr>" + "".join(_html_cell(v, k in text_cols) for k, v in enumerate(cells))
                   + "</tr>")  # fmt: skip
    span = max(1, width // len(remarks))
    out.append("<tr>" + "".join(f'<td colspan="{span}">{html.escape(x)}</td>' for x in remarks)
               + "</tr>")  # fmt: skip
    out += ["</table>", "</body>", "</html>"]
    path = r.out / "raw" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("\r\n".join(out).encode("gbk", errors="xmlcharrefreplace"))
    r._record(rel, rows, 3)
    r.counts[f"rows {rel}"] = len(rows)


# ----------------------------------------------------------------------------- roster (JSON)
def _epoch_ms(v: Any) -> Any:
    if v is None or v == "":
        return None
    d = parse_date(v)
    if d is None:
        return v  # a damaged cell passes as text
    return (calendar.timegm(d.timetuple()) - 8 * 3600) * 1000


def _number(v: Any) -> Any:
    if v is None or v == "":
        return None
    x = parse_amount(v)
    if x is None or not re.fullmatch(r"-?\d+(\.\d+)?", str(v).strip()):
        return v  # damaged / decorated amounts stay as the clerk typed them
    return int(x) if x == int(x) else x


def _roster_json(r: Render) -> None:
    t = r.table(ROSTER)
    hh_idx = [t.idx(old) for _k, old in JSON_HOUSEHOLD]
    mem_idx = [t.idx(old) for _k, old in JSON_MEMBER]
    households: dict[tuple[Any, ...], dict[str, Any]] = {}
    by_cert: dict[str, set[tuple[Any, ...]]] = defaultdict(set)
    order: list[tuple[tuple[Any, ...], int]] = []  # (household key, default row) in file order
    for n, old in t.rows:
        full = old + [""] * (len(t.header) - len(old))
        key = tuple(str(full[i]) for i in hh_idx)
        if key not in households:
            obj: dict[str, Any] = {}
            for (k, _old), i in zip(JSON_HOUSEHOLD, hh_idx, strict=True):
                v: Any = full[i]
                if k in ("startDate", "endDate"):
                    v = _epoch_ms(v)
                elif k in ("familySize", "monthlyAmount"):
                    v = _number(v)
                elif v == "":
                    v = None
                if "." in k:
                    outer, inner = k.split(".")
                    obj.setdefault(outer, {})[inner] = v
                else:
                    obj[k] = v
            obj["familyMembers"] = []
            households[key] = obj
            by_cert[str(full[hh_idx[1]])].add(key)
        households[key]["familyMembers"].append(
            {
                k.split(".")[1]: (full[i] if full[i] != "" else None)
                for (k, _o), i in zip(JSON_MEMBER, mem_idx, strict=True)
            }
        )
        order.append((key, n))
    r.counts["roster households split by a damaged cell"] = sum(
        len(v) - 1 for v in by_cert.values()
    )
    # member ordinal in file order: households in first-seen order, members in row order
    ordinal: dict[int, int] = {}
    members_of: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for hh, n in order:
        members_of[hh].append(n)
    for hh in households:
        for n in members_of[hh]:
            ordinal[n] = len(ordinal) + 1
    for n, _cells in t.rows:
        r.moved[(t.rel, n)].append((JSON_FILE, ordinal[n], None))
    r.renames[JSON_FILE] = {old: jp for jp, old in JSON_HOUSEHOLD + JSON_MEMBER}
    r.counts[f"rows {JSON_FILE}"] = len(ordinal)
    doc = {"code": 200, "msg": "操作成功", "total": len(households),
           "data": list(households.values())}  # fmt: skip
    path = r.out / "raw" / JSON_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, ensure_ascii=False, default=str), encoding="utf-8")


# ----------------------------------------------------------------------------- BIFF .xls
def _write_biff(
    r: Render,
    rel: str,
    title: str | None,
    header: list[str],
    rows: list[OutRow],
    remarks: list[str] | None,
) -> None:
    import xlwt

    extra = (1 if title else 0) + 1 + (2 if remarks else 0)
    if len(rows) + extra > BIFF_MAX_ROWS:
        raise ValueError(f"{rel}: {len(rows)} rows do not fit one BIFF sheet ({BIFF_MAX_ROWS})")
    wb = xlwt.Workbook(encoding="utf-8")
    ws = wb.add_sheet("Sheet1")
    date_style = xlwt.easyxf(num_format_str="yyyy-mm-dd")
    line = 0
    if title:
        ws.write_merge(0, 0, 0, len(header) - 1, title)
        line = 1
    for c, h in enumerate(header):
        ws.write(line, c, h)
    line += 1
    for k, (cells, _o) in enumerate(rows):
        for c, v in enumerate(cells):
            if v is None or v == "":
                continue
            if isinstance(v, dt.date):
                ws.write(line + k, c, dt.datetime(v.year, v.month, v.day), date_style)
            else:
                ws.write(line + k, c, str(v))
    if remarks:
        at = line + len(rows) + 1  # one empty row, then the signatures
        for k, x in enumerate(remarks):
            ws.write(at, k * 2, x)
    path = r.out / "raw" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(str(path))
    r._record(rel, rows, line + 1)
    r.counts[f"rows {rel}"] = len(rows)


def _payroll_xls(r: Render) -> None:
    t = r.table(PAYROLL)
    i0, i1 = t.idx("入职日期"), t.idx("离职日期")
    cols: list[tuple[str, Any]] = [(h, h) for h in t.header]
    cols[i0] = ("入职日期", lambda c, n: _mixed_date(r, c[i0], (t.rel, n, 0), date_cell=True))
    cols[i1] = ("离职日期", lambda c, n: _mixed_date(r, c[i1], (t.rel, n, 1), date_cell=True))
    h, rows, ren = r.reshape(t, cols, bad_col=i0)
    rel = PAYROLL.rsplit(".", 1)[0] + ".xls"
    _write_biff(r, rel, None, h, rows, None)
    r.renames[rel] = ren


def _land_xls(r: Render) -> None:
    hk = r.table(HUKOU, use=False)
    heads = {c[hk.idx("公民身份号码")] for _n, c in hk.rows
             if len(c) == len(hk.header) and c[hk.idx("与户主关系")] == "户主"}  # fmt: skip
    t = r.table(LAND)
    iname = t.idx("承包方代表姓名")

    def rep(c: list[Any], n: int) -> Any:
        pid = r.pid(t.rel, n, "contractor") or r.pid(t.rel, n, "representative")
        if c[iname] and pid in heads and r.u("head", t.rel, n) < 0.6:
            r.counts["representatives marked (户主)"] += 1
            return f"{c[iname]}(户主)"
        return c[iname]

    cols: list[tuple[str, Any]] = [(h, h) for h in t.header]
    cols[iname] = ("承包方代表姓名", rep)
    h, rows, ren = r.reshape(t, cols, bad_col=len(t.header) - 1)
    rel = LAND.rsplit(".", 1)[0] + ".xls"
    _write_biff(r, rel, f"{COUNTY}农村土地承包经营权信息登记表", h, rows, _remarks(r, rel))
    r.renames[rel] = ren


# ----------------------------------------------------------------------------- apostrophes
def _elderly_csv(r: Render) -> None:
    t = r.table(ELDERLY)
    iid = t.idx("身份证号")

    def tick(c: list[Any], _n: int) -> Any:
        v = str(c[iid])
        if re.fullmatch(r"\d{15}|\d{17}[\dXx]", v.strip()):
            r.counts["IDs with a leading apostrophe"] += 1
            return "'" + v
        return v

    cols: list[tuple[str, Any]] = [(h, h) for h in t.header]
    cols[iid] = ("身份证号", tick)
    h, rows, ren = r.reshape(t, cols)
    rows.append(([], []))
    rows.append((_remarks(r, ELDERLY), []))
    r.write_csv(ELDERLY, h, rows, renames=ren, encoding="gbk", errors="replace", crlf=True)
    r.counts[f"rows {ELDERLY}"] -= 2


def _readme(r: Render) -> None:
    """What a department sends along: which system each file came from (no field meanings
    beyond what the systems' own documents say)."""
    pay = PAY_FILE.format(year=YEAR, q="N")
    text = f"""数据导出说明
==========

raw/ 下为各单位报送的原始导出文件，未经整理：

- {pay}：惠民惠农补贴资金管理系统，“导出Excel”按钮导出，每季度一个文件。
- {PAYROLL.rsplit(".", 1)[0]}.xls：财政供养人员管理系统（旧版）导出。
- {LAND.rsplit(".", 1)[0]}.xls：农村土地承包经营权确权登记系统导出。
- {ELDERLY}：民政局高龄津贴经办人员手工整理（Excel 另存为 CSV）。
- {JSON_FILE}：社会救助信息系统接口（/api/salvation/family/list）返回结果，原样保存。
  接口字段：assistanceType 救助类别；certNo 救助证编号；applicant 申请人（name 姓名、idCard
  身份证号）；familySize 保障人数；monthlyAmount 月保障金额（元）；town 乡镇（街道）；
  village 村（社区）；areaCode 行政区划代码；handler 经办人；approver 审批人；startDate /
  endDate 救助开始 / 终止日期（毫秒时间戳）；familyMembers 家庭成员（name 姓名、idCard
  身份证号、relation 与申请人关系）。
- 其余文件为各单位常规导出（CSV / xlsx）。
"""
    (r.out / "导出说明.txt").write_text(text, encoding="utf-8")


__all__ = ["JSON_FILE", "PAY_FILE", "render_legacy"]
