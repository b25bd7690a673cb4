# ruff: noqa: E501  (header tables read best one file per line)
"""The same county in other departments' layouts (issue 17): a post-pass over the default export.

``generate_layout(persons, seed, out, layout)`` generates the default county (exactly as
:func:`crossmatch.synth.generate`) into a scratch folder, then re-renders every department file
into the layout: other file splits and joins, headers, date styles (month-only and Chinese),
codes vs names, encodings (UTF-16), sheets, title rows, summary rows... and rewrites
``truth/records.csv`` and ``truth/noise.csv`` so that (source_file, row, role) point at the new
files and rows. The people, cases and traps are the same, so ``truth/planted.csv`` and
``truth/persons.csv`` are copied unchanged. Rendering keeps what the truth depends on:

* a payment export without a 发放状态 column lists made payments only (failed rows dropped);
* a month-only term or job start is written only when rounding it to whole months changes no
  overlap with an assistance case that the truth depends on; otherwise that cell keeps its day
  (counted in ``LAYOUT``);
* a village written by name stays resolvable: one table (the registry) carries the 12-digit
  codes next to the township and village names;
* damaged cells and exact duplicate rows of the default export pass through (a short CSV row
  stays short; where a two-file roster has no place for a damaged member row, the member row is
  left out, as the default ingest quarantines it: counted in ``LAYOUT``).

Every per-row choice (a name variant, a date style) is a hash of the seed, the layout and the
row's cells, so the output is deterministic and an exact duplicate row stays exact.

Layouts (``LAYOUTS``): ``default`` (today's files, byte for byte), ``monthly``, ``workbook``,
``utf16``, ``township`` (layout_township.py), ``platform`` (layout_platform.py), ``dump``
(layout_dump.py), ``legacy`` (layout_legacy.py); each has (or, for ``legacy``, is to get) a
mapping set under ``sources/<layout>/``.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xlsxwriter

__all__ = ["LAYOUTS", "generate_layout", "render"]

LAYOUTS: dict[str, str] = {
    "default": "the contract's layout (docs/data-contract.md section 2), byte for byte",
    "monthly": (
        "township offices: GB18030 CSV; payments one file per month (month only in the file "
        "name, no 所属期; January-June without 发放状态, made payments only; village names, no "
        "codes; a 合计 row); the assistance roster as a case roster (xlsx) + a member list "
        "(CSV) joined by 保障证号; villages by name (马冲村村民委员会, 清岭村3组) everywhere but "
        "the registry; month-only cadre terms (2021.03 / 2021年3月) and job starts (202103); "
        "the farmland year only in the file name"
    ),
    "workbook": (
        "county systems' workbooks: the roster one sheet per category (农村低保 / 城市低保 / "
        "特困), the payroll one sheet per post type; payments one workbook per programme, "
        "the programme only in the title row, one sheet per quarter with a 合计 row, other "
        "item and status vocabularies (农村低保金 / 城市低保金 / 特困人员供养金, 发放成功); "
        "standards as a wide table (one column per household size); enterprises and "
        "shareholders as one long (company, person, role) table with amounts like "
        "100万元人民币; property with co-owner columns"
    ),
    "utf16": (
        "exports from national systems: UTF-16 (BOM, tab-separated) text for the registry, "
        "marriages, vehicles, bank accounts and payments; other headers everywhere; sex as "
        "codes (1/2); payments as half-year files (first half without 发放状态), the item as "
        "a code (01-06), the month as 202503; cadre terms in Chinese months (2021年3月); "
        "more cosmetic identity noise (spaces, full-width digits) on payments and accounts; "
        "合计 rows under the land files"
    ),
    "township": (
        "township finance offices' hand-kept tables: payments as GB18030 CSVs, one file per "
        "township per month (finance/<乡镇>/...), a title block above a two-row header "
        "(收款人 / 补贴信息 groups), names typed with a space inside (张 三), IDs that went "
        "through Excel as floats (3.41122E+17: unreadable, counted), amounts with thousands "
        "separators, Excel serial pay dates, villages by name (the registry carries the codes "
        "and names), a 合计 row per file, and the previous month's last rows exported again at "
        "the top of the next month's file (an overlapping re-export)"
    ),
    "platform": (
        "a provincial platform's xlsx exports: the assistance roster and the payments with "
        "merged two-row headers (a group header above sub-headers) under a merged title, a "
        "证件类型 column (居民身份证 / 其他) before each ID, dates as Excel serial numbers or "
        "full-width text (２０２５年３月５日), the period as 202503"
    ),
    "dump": (
        "a data-sharing platform's database dumps (layout_dump.py): one |-delimited UTF-8 "
        "text file per table named by the table (GA_HJRK.txt ...), pinyin-initial column "
        "names (XM, GMSFHM, FFJE) explained only in 数据字典.csv beside raw/, \\N for NULL, "
        "a surrogate ID, SCBZ (删除标志) and GXSJ on every table, soft-deleted earlier "
        "versions of some payments (SCBZ=1), payment amounts in fen, codes for sex, status, "
        "item and assistance kind, dates as 19560312 / 2015-08-04 00:00:00 / 202204"
    ),
    "legacy": (
        "older county systems' exports (layout_legacy.py): payments as HTML tables saved as "
        ".xls (GBK, <meta charset>), the payee as one 姓名(身份证号) column, lowercase x, "
        "2025/3/5 and 20250305 in one column, remark rows (制表人/审核人) under the table; "
        "payroll and land contracts as BIFF .xls (date cells mixed with text dates, 张三(户主)); "
        "the assistance roster as a JSON API dump (households with nested familyMembers, "
        "epoch-millisecond dates); elderly IDs with a leading apostrophe ('341122...)"
    ),
}

YEAR = 2025
ITEM_CODES = {"城乡低保金": "01", "特困供养金": "02", "高龄津贴": "03", "耕地地力保护补贴": "04",
              "残疾人两项补贴": "05", "养老金": "06"}  # fmt: skip
_XLSX_CREATED = dt.datetime(2025, 12, 31, 9, 0, 0)
Origin = tuple[str, int, dict[str, str] | None]  # (old file, old row, role map or None = all)
OutRow = tuple[list[Any], list[Origin]]
#: An output column: (header, the input column's header or fn(cells, input row number)).
Column = tuple[str, str | Callable[[list[Any], int], Any]]


# ----------------------------------------------------------------------------- cells
_DATE_RES = (
    (re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?: 00:00:00)?$"), 1),
    (re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})$"), 1),
    (re.compile(r"^(\d{4})(\d{2})(\d{2})$"), 1),
    (re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日$"), 1),
)


def parse_date(v: Any) -> dt.date | None:
    """A default-export date cell (any of its styles, or a date) as a date; else None."""
    if isinstance(v, dt.date):
        return v
    if not isinstance(v, str):
        return None
    for rx, _ in _DATE_RES:
        m = rx.match(v.strip())
        if m:
            try:
                return dt.date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                return None
    return None


def fmt_date(d: dt.date, style: str) -> str:
    """A date (or its month) in one of the styles departments write."""
    return {
        "iso": f"{d:%Y-%m-%d}",
        "slash": f"{d.year}/{d.month}/{d.day}",
        "compact": f"{d:%Y%m%d}",
        "cn": f"{d.year}年{d.month}月{d.day}日",
        "m_dot": f"{d.year}.{d.month:02d}",
        "m_cn": f"{d.year}年{d.month}月",
        "m_compact": f"{d.year}{d.month:02d}",
    }[style]


def parse_amount(v: Any) -> float | None:
    if isinstance(v, (int, float)):
        return float(v)
    s = str(v or "").replace(",", "").replace("元", "").strip()
    try:
        return float(s)
    except ValueError:
        return None


def parse_period(v: Any) -> int | None:
    """The month of a default payment 所属期 (2025-01 / 202501 / 2025年1月)."""
    m = re.match(r"^\d{4}(?:-|年)?(\d{1,2})月?$", str(v or "").strip())
    return int(m[1]) if m else None


def month_end(d: dt.date) -> dt.date:
    nxt = dt.date(d.year + d.month // 12, d.month % 12 + 1, 1)
    return nxt - dt.timedelta(days=1)


def _overlap(a0: dt.date, a1: dt.date | None, b0: dt.date, b1: dt.date | None) -> bool:
    hi = dt.date(9999, 12, 31)
    return a0 <= (b1 or hi) and b0 <= (a1 or hi)


# ----------------------------------------------------------------------------- tables
@dataclass
class Table:
    """One default export: header and data rows (old physical row number, cells)."""

    rel: str
    header: list[str]
    rows: list[tuple[int, list[Any]]]
    title: str | None = None

    def idx(self, *names: str) -> int:
        for n in names:
            if n in self.header:
                return self.header.index(n)
        raise KeyError(f"{self.rel}: none of {names} in {self.header}")

    def has(self, name: str) -> bool:
        return name in self.header


def read_table(raw: Path, rel: str) -> Table:
    path = raw / rel
    if rel.endswith(".xlsx"):
        import fastexcel

        df = fastexcel.read_excel(str(path)).load_sheet(0, header_row=None, dtypes="string")
        rows = [[_xlsx_cell(v) for v in r] for r in df.to_polars().rows()]  # sheet row i+1
        title = None
        start = 0
        if len([v for v in rows[0] if v not in ("", None)]) == 1 and len(rows[0]) > 2:
            title, start = str(rows[0][0]), 1
        header = [str(v or "") for v in rows[start]]
        while header and header[-1] == "":
            header.pop()
        data = [(i + 1, r[: len(header)]) for i, r in enumerate(rows) if i > start]
        return Table(rel, header, data, title)
    blob = path.read_bytes()
    try:
        text = blob.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = blob.decode("gb18030")
    lines = list(csv.reader(text.splitlines()))
    return Table(rel, lines[0], [(i + 2, r) for i, r in enumerate(lines[1:])])


def _xlsx_cell(v: Any) -> Any:
    if v is None:
        return ""
    m = re.match(r"^(\d{4})-(\d{2})-(\d{2}) 00:00:00$", v)
    if m:
        return dt.date(int(m[1]), int(m[2]), int(m[3]))
    return v


# ----------------------------------------------------------------------------- renderer
@dataclass
class Render:
    """Reads the default county under ``src`` and writes the layout under ``out``."""

    src: Path
    out: Path
    seed: int
    layout: str
    moved: dict[tuple[str, int], list[tuple[str, int, dict[str, str] | None]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    renames: dict[str, dict[str, str]] = field(default_factory=dict)  # new file -> old->new header
    used: set[str] = field(default_factory=set)  # default files consumed
    extra_records: list[tuple[str, int, str, str]] = field(default_factory=list)  # new coordinates
    pending_noise: list[tuple[str, int, str, str, str]] = field(
        default_factory=list
    )  # old coordinates
    counts: Counter[str] = field(default_factory=Counter)
    _tables: dict[str, Table] = field(default_factory=dict)
    _truth: dict[tuple[str, int], list[tuple[str, str]]] | None = None
    _noise: dict[tuple[str, int, str], set[str]] | None = None

    # -------------------------------------------------------------- inputs
    def table(self, rel: str, use: bool = True) -> Table:
        """A default export; ``use``: the layout renders it (else it is copied as it is)."""
        if rel not in self._tables:
            self._tables[rel] = read_table(self.src / "raw", rel)
        if use:
            self.used.add(rel)
        return self._tables[rel]

    def files(self, prefix: str) -> list[str]:
        base = self.src / "raw"
        return sorted(
            p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file()
            and p.relative_to(base).as_posix().startswith(prefix)
        )  # fmt: skip

    @property
    def truth(self) -> dict[tuple[str, int], list[tuple[str, str]]]:
        if self._truth is None:
            t: dict[tuple[str, int], list[tuple[str, str]]] = defaultdict(list)
            with open(self.src / "truth" / "records.csv", encoding="utf-8", newline="") as fh:
                for f, r, role, pid in list(csv.reader(fh))[1:]:
                    t[(f, int(r))].append((role, pid))
            self._truth = t
        return self._truth

    @property
    def noise(self) -> dict[tuple[str, int, str], set[str]]:
        if self._noise is None:
            n: dict[tuple[str, int, str], set[str]] = defaultdict(set)
            with open(self.src / "truth" / "noise.csv", encoding="utf-8", newline="") as fh:
                for f, r, role, col, _kind in list(csv.reader(fh))[1:]:
                    n[(f, int(r), role)].add(col)
            self._noise = n
        return self._noise

    def pid(self, rel: str, row: int, role: str) -> str | None:
        for r, p in self.truth.get((rel, row), ()):
            if r == role:
                return p
        return None

    def u(self, *key: Any) -> float:
        """A uniform number in [0, 1) from the seed, the layout and ``key`` (no state)."""
        h = hashlib.sha256(f"{self.seed}|{self.layout}|{key!r}".encode()).digest()
        return int.from_bytes(h[:8], "big") / 2**64

    def choice(self, options: list[Any] | tuple[Any, ...], *key: Any) -> Any:
        return options[int(self.u(*key) * len(options))]

    # -------------------------------------------------------------- outputs
    def _record(self, rel: str, rows: list[OutRow], first: int) -> None:
        for k, (_cells, origins) in enumerate(rows):
            for f, r, roles in origins:
                self.moved[(f, r)].append((rel, first + k, roles))

    def write_csv(
        self,
        rel: str,
        header: list[str],
        rows: list[OutRow],
        *,
        encoding: str = "utf-8",
        errors: str = "strict",
        delimiter: str = ",",
        crlf: bool = False,
        renames: dict[str, str] | None = None,
        title: str | None = None,
        above: list[list[str]] | None = None,
    ) -> None:
        """``above``: rows written before ``header`` (a title block, a group header row).
        ``errors="replace"``: a character the encoding cannot hold is written as ``?``, as
        Excel's "CSV" (ANSI, GBK on a Chinese Windows) does with a name's ・ or •; each such
        cell is counted."""
        path = self.out / "raw" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if errors != "strict":
            for cells, _o in rows:
                for v in cells:
                    t = "" if v is None else _text(v)
                    if t.encode(encoding, "replace") != t.encode(encoding, "ignore"):
                        self.counts[f"cells with a character {encoding} cannot hold"] += 1
        with open(path, "w", encoding=encoding, errors=errors, newline="") as fh:
            w = csv.writer(fh, delimiter=delimiter, lineterminator="\r\n" if crlf else "\n")
            line = 1
            if title:
                w.writerow([title])
                line += 1
            for row in above or ():
                w.writerow(row)
                line += 1
            w.writerow(header)
            for cells, _o in rows:
                w.writerow(["" if v is None else _text(v) for v in cells])
        self._record(rel, rows, line + 1)
        self.renames[rel] = renames or {}
        self.counts[f"rows {rel}"] = len(rows)

    def write_xlsx(
        self,
        rel: str,
        sheets: list[tuple[str, str | None, list[str], list[OutRow]]],
        *,
        renames: dict[str, str] | None = None,
        by_sheet: bool = False,
    ) -> None:
        """A workbook; ``sheets`` = (name, title row or None, header, rows). Rows are numbered
        on their sheet; with ``by_sheet`` (a mapping that reads it with ``sheets:``) the truth's
        source_file is ``<file>#<sheet>``, as ingest's lineage for multi-sheet reads."""
        path = self.out / "raw" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        wb = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False})
        wb.set_properties({"created": _XLSX_CREATED, "author": "crossmatch synth"})
        date_fmt = wb.add_format({"num_format": "yyyy-mm-dd"})
        for name, title, header, rows in sheets:
            ws = wb.add_worksheet(name)
            line = 0
            if title:
                ws.write_string(0, 0, title)
                line = 1
            for c, h in enumerate(header):
                ws.write_string(line, c, h)
            line += 1
            for k, (cells, _o) in enumerate(rows):
                for c, v in enumerate(cells):
                    if v is None or v == "":
                        continue
                    if isinstance(v, dt.date):
                        ws.write_datetime(
                            line + k, c, dt.datetime(v.year, v.month, v.day), date_fmt
                        )
                    elif isinstance(v, (int, float)) and not isinstance(v, bool):
                        ws.write_number(line + k, c, v)
                    else:
                        ws.write_string(line + k, c, str(v))
            self._record(f"{rel}#{name}" if by_sheet else rel, rows, line + 1)
            self.counts[f"rows {rel}#{name}"] = len(rows)
        wb.close()
        for name, *_ in sheets:
            self.renames[f"{rel}#{name}" if by_sheet else rel] = renames or {}

    def copy(self, rel: str) -> None:
        """A file kept as it is (bytes and truth)."""
        t = self.table(rel)
        dst = self.out / "raw" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.src / "raw" / rel, dst)
        for r, _ in t.rows:
            self.moved[(rel, r)].append((rel, r, None))
        self.renames[rel] = {}
        self.counts[f"rows {rel}"] = len(t.rows)

    def reshape(
        self,
        t: Table,
        columns: Sequence[Column],
        *,
        keep: Callable[[list[Any]], bool] | None = None,
        roles: dict[str, str] | None = None,
        bad_col: int | None = None,
    ) -> tuple[list[str], list[OutRow], dict[str, str]]:
        """Re-render ``t``: ``columns`` = (new header, old header or fn(cells, old row)).
        A short (damaged) row stays short by as many cells; with ``bad_col`` (a target that
        cannot be short, xlsx) it gets ``#REF!`` there instead."""
        header = [h for h, _ in columns]
        renames = {src: h for h, src in columns if isinstance(src, str)}
        out: list[OutRow] = []
        for r, cells in t.rows:
            if keep is not None and not keep(cells):
                continue
            short = len(t.header) - len(cells)
            full = cells + [""] * short
            new: list[Any] = []
            for _h, src in columns:
                if isinstance(src, str):
                    new.append(full[t.header.index(src)] if src in t.header else "")
                else:
                    new.append(src(full, r))
            if short > 0:
                if bad_col is None:
                    new = new[:-short]
                else:
                    new[bad_col] = "#REF!"
            out.append((new, [(t.rel, r, roles)]))
        return header, out, renames

    # -------------------------------------------------------------- truth
    def write_truth(self) -> None:
        truth_out = self.out / "truth"
        truth_out.mkdir(parents=True, exist_ok=True)
        for name in ("persons.csv", "planted.csv", "causes.csv"):
            if (self.src / "truth" / name).exists():
                shutil.copyfile(self.src / "truth" / name, truth_out / name)
        recs: list[tuple[str, int, str, str]] = []
        for (f, r), refs in self.truth.items():
            for new_f, new_r, roles in self.moved.get((f, r), ()):
                for role, pid in refs:
                    if roles is None:
                        recs.append((new_f, new_r, role, pid))
                    elif role in roles:
                        recs.append((new_f, new_r, roles[role], pid))
        recs.extend(self.extra_records)
        noise: list[tuple[str, int, str, str, str]] = []
        with open(self.src / "truth" / "noise.csv", encoding="utf-8", newline="") as fh:
            old = [
                (f, int(r), role, col, kind) for f, r, role, col, kind in list(csv.reader(fh))[1:]
            ]
            for f, r, role, col, kind in old + self.pending_noise:
                for new_f, new_r, roles in self.moved.get((f, r), ()):
                    if roles is not None and role not in roles:
                        continue
                    new_role = role if roles is None else roles[role]
                    newcol = self.renames.get(new_f, {}).get(col, col)
                    noise.append((new_f, new_r, new_role, newcol, kind))
        with open(truth_out / "records.csv", "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["source_file", "row", "role", "person_id"])
            w.writerows(sorted(set(recs), key=lambda x: (x[0], x[1], x[2], x[3])))
        with open(truth_out / "noise.csv", "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["source_file", "row", "role", "field", "noise"])
            w.writerows(sorted(set(noise)))

    # -------------------------------------------------------------- shared facts
    _cases: Any = None

    def cases(
        self,
    ) -> tuple[
        dict[str, list[tuple[str, dt.date, dt.date | None]]], dict[str, set[str]], dict[str, str]
    ]:
        """From the default roster: village code -> case intervals (case_no, start, end),
        person -> the case numbers they are a member of, person -> case kind."""
        if self._cases is not None:
            return self._cases
        t = self.table(ROSTER, use=False)
        ic, iv, i0, i1, ik = (t.idx("救助证编号"), t.idx("行政区划代码"), t.idx("救助开始日期"),
                              t.idx("救助终止日期"), t.idx("救助类别"))  # fmt: skip
        by_v: dict[str, dict[str, tuple[str, dt.date, dt.date | None]]] = defaultdict(dict)
        member: dict[str, set[str]] = defaultdict(set)
        kind: dict[str, str] = {}
        for r, cells in t.rows:
            if len(cells) < len(t.header):
                continue
            s = parse_date(cells[i0]) or _serial(cells[i0])
            if s is None:
                continue
            e = parse_date(cells[i1])
            by_v[cells[iv]][cells[ic]] = (cells[ic], s, e)
            for role, pid in self.truth.get((t.rel, r), ()):
                if role in ("member", "applicant"):
                    member[pid].add(cells[ic])
                    kind[pid] = cells[ik]
        self._cases = ({v: list(d.values()) for v, d in by_v.items()}, member, kind)
        return self._cases

    def case_intervals(self) -> dict[str, tuple[dt.date, dt.date | None]]:
        by_v, _m, _k = self.cases()
        return {c: (s, e) for lst in by_v.values() for c, s, e in lst}

    def villages(self) -> dict[str, tuple[str, str]]:
        """Village code -> (township name, village name), from the cadre roster."""
        t = self.table(CADRE, use=False)
        it, iv, ic = t.idx("乡镇"), t.idx("村(社区)"), t.idx("行政区划代码")
        seen: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
        for _r, cells in t.rows:
            if len(cells) > ic:
                seen[cells[ic]][(cells[it], cells[iv])] += 1
        return {c: n.most_common(1)[0][0] for c, n in seen.items()}

    def village_variant(self, name: str, key: Any, groups: bool = False) -> str:
        """马冲村 -> 马冲村 / 马冲村村民委员会 / 马冲村民委员会 (/ 马冲村3组); 社区 -> 居民委员会."""
        if name.endswith("社区"):
            opts = [name, name, name + "居民委员会"]
        else:
            opts = [
                name,
                name + "村民委员会",
                name[:-1] + "村民委员会" if name.endswith("村") else name,
            ]
            if groups:
                opts = [
                    name,
                    f"{name}{1 + int(self.u('grp', key) * 9)}组",
                    f"{name}{1 + int(self.u('grp2', key) * 9)}组",
                ]
        return self.choice(opts, "village", key)


ROSTER = "civil/低保特困救助对象花名册.xlsx"
CADRE = "organization/村（社区）干部花名册.csv"
PAYROLL = "finance/财政供养人员信息.xlsx"
HUKOU = "hukou/户籍人口信息.csv"
PAYMENTS = "finance/一卡通发放明细_"


def _serial(v: Any) -> dt.date | None:
    if isinstance(v, str) and v.isdigit() and 20000 < int(v) < 60000:
        return dt.date(1899, 12, 30) + dt.timedelta(days=int(v))
    return None


def _text(v: Any) -> str:
    if isinstance(v, dt.date):
        return v.isoformat()
    return str(v)


def _wan(v: Any, suffix: str) -> Any:
    """A 万元 number as text with a unit (``100万元人民币``); damaged cells pass through."""
    x = parse_amount(v)
    return f"{x:g}{suffix}" if x is not None else v


# ----------------------------------------------------------------------------- month rounding
class MonthSafety:
    """Whether writing a date as its month only can change an overlap the truth depends on."""

    def __init__(self, r: Render) -> None:
        self.by_village, self.member, _ = r.cases()
        intervals = {c: (s, e) for lst in self.by_village.values() for c, s, e in lst}
        self.person_cases = {
            p: [intervals[c] for c in cs if c in intervals] for p, cs in self.member.items()
        }

    @staticmethod
    def _same(
        s: dt.date,
        e: dt.date | None,
        s2: dt.date,
        e2: dt.date | None,
        cases: Iterable[tuple[dt.date, dt.date | None]],
    ) -> bool:
        return all(_overlap(s, e, c0, c1) == _overlap(s2, e2, c0, c1) for c0, c1 in cases)

    def term(self, village: str, s: dt.date, e: dt.date | None) -> bool:
        s2, e2 = s.replace(day=1), month_end(e) if e else None
        return self._same(s, e, s2, e2, [(a, b) for _c, a, b in self.by_village.get(village, ())])

    def job_start(self, pid: str | None, s: dt.date, e: dt.date | None) -> bool:
        return self._same(s, e, s.replace(day=1), e, self.person_cases.get(pid or "", ()))


# ----------------------------------------------------------------------------- layouts
def _payment_tables(r: Render) -> list[Table]:
    return [r.table(f) for f in r.files(PAYMENTS)]


def _sum_row(width: int, label_col: int, amount_col: int, rows: list[OutRow]) -> OutRow:
    total = sum(parse_amount(c[amount_col]) or 0.0 for c, _ in rows if len(c) > amount_col)
    cells: list[Any] = [""] * width
    cells[label_col] = "合计"
    cells[amount_col] = f"{total:.2f}"
    return cells, []


def render_monthly(r: Render) -> None:
    for k in ("cadre terms kept to the day", "job starts kept to the day",
              "damaged roster rows left out of the member list",
              "failed payments left out (no 发放状态 column)"):  # fmt: skip
        r.counts[k] += 0  # stated in LAYOUT even when none
    vill = r.villages()
    safe = MonthSafety(r)
    gb: dict[str, Any] = {"encoding": "gb18030", "crlf": True}

    registry_with_names(r, **gb)

    def vname(t: Table, col: str, groups: bool = False) -> Callable[[list[Any], int], Any]:
        i = t.idx(col)

        def g(c: list[Any], _row: int) -> Any:
            name = c[i]
            return r.village_variant(name, tuple(map(str, c)), groups) if name else name

        return g

    # payments: one file per month; January-June without 发放状态 (made payments only)
    by_month: dict[int, list[OutRow]] = defaultdict(list)
    by_month_nostatus: dict[int, list[OutRow]] = defaultdict(list)
    for cur in _payment_tables(r):
        ip = cur.idx("所属期")
        ist = cur.idx("发放状态")
        base = [("批次号", "发放批次号"), ("项目名称", "补贴项目"), ("姓名", "收款人姓名"),
                ("身份证号", "收款人身份证号"), ("账号", "社保卡/银行账号"), ("开户行", "开户银行"),
                ("金额(元)", "发放金额"), ("发放日期", "发放日期")]  # fmt: skip
        tail: list[Column] = [("乡镇", "乡镇"), ("村", vname(cur, "村"))]
        for status in (True, False):
            cols = base + ([("发放状态", "发放状态")] if status else []) + tail
            h, rows, ren = r.reshape(cur, cols)
            for (cells, origins), (_row, old) in zip(rows, cur.rows, strict=True):
                m = parse_period(old[ip])
                if m is None:
                    continue
                if status and m > 6:
                    by_month[m].append((cells, origins))
                elif not status and m <= 6:
                    if len(old) > ist and old[ist] == "失败":
                        r.counts["failed payments left out (no 发放状态 column)"] += 1
                        continue
                    by_month_nostatus[m].append((cells, origins))
            if status:
                header_status, ren_status = h, ren
            else:
                header_plain, ren_plain = h, ren
    for m in range(1, 13):
        rows = by_month[m] if m > 6 else by_month_nostatus[m]
        header = header_status if m > 6 else header_plain
        rows = [*rows, _sum_row(len(header), 0, 6, rows)]
        r.write_csv(f"finance/一卡通发放明细_{YEAR}{m:02d}.csv", header, rows,
                    renames=ren_status if m > 6 else ren_plain, **gb)  # fmt: skip

    # assistance: case roster (xlsx, one row per case) + member list (CSV, the main file)
    cur = r.table(ROSTER)
    ia, icase = cur.idx("月保障金额"), cur.idx("救助证编号")
    case_cols: list[Column] = [("保障证号", "救助证编号"), ("救助类别", "救助类别"), ("申请人", "申请人姓名"),
                 ("申请人身份证号", "申请人身份证号"), ("保障人数", "保障人数"), ("月保障金额(元)", "月保障金额"),
                 ("乡镇(街道)", "乡镇(街道)"), ("村(社区)", vname(cur, "村(社区)")), ("经办人", "经办人"),
                 ("审批人", "审批人"), ("批准日期", lambda c, _r: _cn(c[cur.idx("救助开始日期")])),
                 ("停保日期", lambda c, _r: _cn(c[cur.idx("救助终止日期")]))]  # fmt: skip
    ch, crow, cren = r.reshape(cur, case_cols)
    member_cols = [("保障证号", "救助证编号"), ("成员姓名", "成员姓名"), ("成员身份证号", "成员身份证号"),
                   ("与申请人关系", "与申请人关系")]  # fmt: skip
    mh, mrow, mren = r.reshape(cur, member_cols)
    case_out: dict[str, OutRow] = {}
    members: list[OutRow] = []
    for (cells, _o), (mcells, morig), (_row, old) in zip(crow, mrow, cur.rows, strict=True):
        damaged = parse_amount(old[ia]) is None
        no = old[icase]
        if no not in case_out or (parse_amount(case_out[no][0][5]) is None and not damaged):
            case_out[no] = (cells, [])
        if damaged:
            r.counts["damaged roster rows left out of the member list"] += 1
            continue
        members.append((mcells, morig))
    r.write_xlsx("civil/低保对象花名册.xlsx",
                 [("Sheet1", "来安县低保、特困供养对象花名册（2025年12月）", ch, list(case_out.values()))])  # fmt: skip
    r.write_csv("civil/低保家庭成员名单.csv", mh, members, renames=mren | cren, **gb)

    # cadre roster: month-only terms where rounding changes no overlap with a village case
    cur = r.table(CADRE)
    iv = cur.idx("行政区划代码")

    def term(c: list[Any], _row: int, which: int) -> Any:
        s, e = parse_date(c[cur.idx("任职开始")]), parse_date(c[cur.idx("任职结束")])
        if s is None:
            return c[cur.idx("任职开始") if which == 0 else cur.idx("任职结束")]
        style = r.choice(("m_dot", "m_cn"), "term", tuple(c))
        if not safe.term(c[iv], s, e):
            r.counts["cadre terms kept to the day"] += which == 0
            style = "cn"
        d = s if which == 0 else e
        return fmt_date(d, style) if d else ""

    cols = [("姓名", "姓名"), ("身份证号", "身份证号"), ("乡镇", "乡镇"), ("村(社区)", vname(cur, "村(社区)")),
            ("职务", "职务"), ("任职开始", lambda c, rr: term(c, rr, 0)),
            ("任职结束", lambda c, rr: term(c, rr, 1))]  # fmt: skip
    h, rows, ren = r.reshape(cur, cols)
    r.write_csv(CADRE, h, rows, renames=ren, **gb)

    # payroll: the job start as a month (202103) where safe
    cur = r.table(PAYROLL)
    i0, i1 = cur.idx("入职日期"), cur.idx("离职日期")

    def start(c: list[Any], row: int) -> Any:
        s, e = parse_date(c[i0]), parse_date(c[i1])
        if s is None:
            return c[i0]
        if safe.job_start(r.pid(cur.rel, row, "person"), s, e):
            return fmt_date(s, "m_compact")
        r.counts["job starts kept to the day"] += 1
        return fmt_date(s, "compact")

    cols = [(h, h) for h in cur.header]
    cols[i0] = ("入职年月", start)
    cols[i1] = (
        "离职日期",
        lambda c, _r: fmt_date(parse_date(c[i1]), "compact") if parse_date(c[i1]) else c[i1],
    )
    h, rows, ren = r.reshape(cur, cols, bad_col=i0)
    r.write_xlsx(PAYROLL, [("Sheet1", None, h, rows)], renames=ren)

    # village names instead of codes
    def by_name(
        t: Table, col: str, groups: bool = False, drop: tuple[str, ...] = ()
    ) -> list[tuple[str, Any]]:
        """The village column as a name variant with its township before it; no code."""
        icode = t.idx("行政区划代码")
        out: list[tuple[str, Any]] = []
        for h in t.header:
            if h == col:
                out.append(("乡镇", lambda c, _r: vill.get(c[icode], ("", ""))[0]))
                out.append((h, vname(t, h, groups)))
            elif h != "行政区划代码" and h not in drop:
                out.append((h, h))
        return out

    cur = r.table("civil/高龄津贴发放名册.csv")
    h, rows, ren = r.reshape(cur, by_name(cur, "村(社区)"))
    r.write_csv(cur.rel, h, rows, renames=ren, **gb)
    cur = r.table("agriculture/土地承包经营权信息.csv")
    h, rows, ren = r.reshape(cur, by_name(cur, "村"))
    rows.append(_sum_row(len(h), 0, h.index("承包面积(亩)"), rows))
    r.write_csv(cur.rel, h, rows, renames=ren, **gb)
    # farmland: village groups (清岭村3组), the year only in the file name
    cur = r.table("agriculture/耕地地力保护补贴发放清册.xlsx")
    h, rows, ren = r.reshape(cur, by_name(cur, "村", groups=True, drop=("年度",)))
    r.write_xlsx(
        f"agriculture/耕地地力保护补贴发放清册{YEAR}.xlsx", [("Sheet1", None, h, rows)], renames=ren
    )


def registry_with_names(r: Render, **kw: Any) -> None:
    """The registry as the one table with codes, the township / village names next to them."""
    vill = r.villages()
    t = r.table(HUKOU)
    ic = t.idx("行政区划代码")
    cols: list[tuple[str, Any]] = [(h, h) for h in t.header]
    cols.insert(ic, ("乡镇(街道)", lambda c, _r: vill.get(c[ic], ("", ""))[0]))
    cols.insert(ic + 1, ("村(社区)", lambda c, _r: vill.get(c[ic], ("", ""))[1]))
    h, rows, ren = r.reshape(t, cols)
    r.write_csv(HUKOU, h, rows, renames=ren, **kw)


def _yyyymm(v: Any) -> Any:
    m = parse_period(v)
    return f"{YEAR}{m:02d}" if m else v


def _cn(v: Any) -> Any:
    d = parse_date(v)
    return fmt_date(d, "cn") if d else v


def render_workbook(r: Render) -> None:
    _, _member, kind_of = r.cases()
    # assistance: one sheet per category, the category only in the sheet name
    cur = r.table(ROSTER)
    ik = cur.idx("救助类别")
    sheet_of = {"农村低保": "农村低保", "城乡低保": "城市低保", "特困供养": "特困"}
    cols: list[Column] = [(h, h) for h in cur.header if h != "救助类别"]
    h, rows, ren = r.reshape(cur, cols)
    by_sheet: dict[str, list[OutRow]] = defaultdict(list)
    for row, (_n, old) in zip(rows, cur.rows, strict=True):
        by_sheet[sheet_of.get(old[ik], old[ik])].append(row)
    r.write_xlsx("civil/城乡低保特困救助对象花名册.xlsx",
                 [(s, f"来安县{s}对象花名册（2025年12月）", h, by_sheet[s]) for s in ("农村低保", "城市低保", "特困") if by_sheet[s]]
                 + [(s, None, h, v) for s, v in by_sheet.items() if s not in ("农村低保", "城市低保", "特困")],
                 renames=ren, by_sheet=True)  # fmt: skip
    # payroll: one sheet per post type
    cur = r.table(PAYROLL)
    ip = cur.idx("岗位类别")
    sheet_of = {"行政": "行政", "事业": "事业编制", "公益性岗位": "公益性岗位"}
    cols = [(h, h) for h in cur.header if h != "岗位类别"]
    h, rows, ren = r.reshape(cur, cols)
    by_sheet = defaultdict(list)
    for row, (_n, old) in zip(rows, cur.rows, strict=True):
        by_sheet[sheet_of.get(old[ip], old[ip])].append(row)
    r.write_xlsx(
        PAYROLL, [(s, None, h, v) for s, v in sorted(by_sheet.items())], renames=ren, by_sheet=True
    )

    # payments: one workbook per programme (programme in the title row only), a sheet per quarter
    item_name = {"城乡低保金": None, "特困供养金": "特困人员供养金"}
    quarters = ("一季度", "二季度", "三季度", "四季度")
    books: dict[str, dict[str, list[OutRow]]] = defaultdict(lambda: defaultdict(list))
    cols = [("批次号", "发放批次号"), ("姓名", "收款人姓名"), ("公民身份号码", "收款人身份证号"),
            ("银行账号", "社保卡/银行账号"), ("开户银行", "开户银行"), ("发放金额(元)", "发放金额"),
            ("发放年月", lambda c, _r: f"{YEAR}年{parse_period(c[7])}月" if parse_period(c[7]) else c[7]),
            ("发放日期", "发放日期"),
            ("发放结果", lambda c, _r: {"成功": "发放成功", "失败": "发放失败"}.get(c[9], c[9])),
            ("乡镇", "乡镇"), ("村", "村"), ("区划代码", "行政区划代码")]  # fmt: skip
    for cur in _payment_tables(r):
        h, rows, ren = r.reshape(cur, cols, bad_col=5)
        ii, iv = cur.idx("补贴项目"), cur.idx("村")
        for row, (n, old) in zip(rows, cur.rows, strict=True):
            item = old[ii]
            if item == "城乡低保金":
                k = kind_of.get(r.pid(cur.rel, n, "payee") or "", "")
                urban_v = k == "城乡低保" or (not k and len(old) > iv and old[iv].endswith("社区"))
                item = "城市低保金" if urban_v else "农村低保金"
            else:
                item = item_name.get(item) or item
            m = parse_period(old[7]) or 1
            books[item][quarters[(m - 1) // 3]].append(row)
    for item, sheets in sorted(books.items()):
        code = {"农村低保金": "01", "城市低保金": "07", "特困人员供养金": "02"}.get(
            item, ITEM_CODES.get(item, "99")
        )
        r.write_xlsx(
            f"finance/惠民惠农补贴发放清册{YEAR}_{code}.xlsx",
            [(q, f"来安县{YEAR}年{item}发放清册（{q}）", h, sheets[q] + [_sum_row(len(h), 0, 5, sheets[q])])
             for q in quarters if sheets.get(q)],
            renames=ren, by_sheet=True,
        )  # fmt: skip

    # standards: a wide table, one column per household size; other item vocabulary
    cur = r.table("finance/补贴标准.csv")
    ib = next(
        (
            cur.header.index(x)
            for x in ("保障人数", "家庭人口数", "档次(人)", "人数档次", "档次", "band")
            if x in cur.header
        ),
        None,
    )
    ii, ip, ibasis, ia, i0, i1 = (cur.idx("补贴项目"), cur.idx("适用区划代码"), cur.idx("计发方式"),
                                  cur.idx("标准金额"), cur.idx("生效日期"), cur.idx("失效日期"))  # fmt: skip
    bands = ("1人", "2人", "3人", "4人", "5人", "6人及以上")
    wide: dict[tuple, tuple[list[Any], list[Origin]]] = {}
    for n, c in cur.rows:
        names = {"城乡低保金": ["农村低保金", "城市低保金"], "特困供养金": ["特困人员供养金"]}.get(
            c[ii], [c[ii]]
        )
        for nm in names:
            key = (nm, c[ip], c[ibasis], c[i0], c[i1])
            if key not in wide:
                wide[key] = ([nm, c[ip], c[ibasis], *[""] * 6, c[i0], c[i1]], [])
            cells = wide[key][0]
            band_cell = re.sub(r"\D", "", str(c[ib])) if ib is not None else ""
            if not band_cell:  # one standard for every household size
                for k in range(6):
                    cells[3 + k] = c[ia]
            else:
                band = min(max(int(band_cell), 1), 6)
                cells[3 + band - 1] = c[ia]
            wide[key][1].append((cur.rel, n, None))
    r.write_xlsx("finance/补贴标准.xlsx", [("Sheet1", "来安县惠民惠农补贴标准（按保障人数）",
                 ["项目名称", "适用区域代码", "计发方式", *bands, "执行开始日期", "执行结束日期"], list(wide.values()))])  # fmt: skip

    # enterprises and shareholders: one long (company, person, role) table
    ent, sh = r.table("market/企业登记信息.csv"), r.table("market/企业股东出资信息.csv")
    holders: dict[str, list[tuple[int, list[Any]]]] = defaultdict(list)
    for n, c in sh.rows:
        holders[c[0]].append((n, c))
    firms: dict[str, list[tuple[int, list[Any]]]] = defaultdict(list)
    for n, c in ent.rows:
        firms[c[0]].append((n, c))
    header = ["统一社会信用代码", "企业名称", "登记状态", "注册资本", "成立日期", "注销日期", "人员姓名",
              "人员证件号码", "人员类型", "认缴出资额", "出资比例"]  # fmt: skip
    rows = []
    for code, lst in firms.items():
        firm = next(
            (c for _n, c in lst if len(c) == len(ent.header) and parse_amount(c[4]) is not None),
            lst[0][1],
        )
        # a firm whose only row is damaged (short): its shareholders' firm cells stay blank
        firm = firm + [""] * (len(ent.header) - len(firm))
        for n, c in lst:
            short = len(ent.header) - len(c)
            c2 = c + [""] * short
            cells = [
                c2[0],
                c2[1],
                c2[5],
                _wan(c2[4], "万元人民币"),
                c2[6],
                c2[7],
                c2[2],
                c2[3],
                "法定代表人",
                "",
                "",
            ]
            rows.append((cells[: len(cells) - short] if short else cells, [(ent.rel, n, None)]))
        for n, c in holders.pop(code, []):
            short = len(sh.header) - len(c)
            c2 = c + [""] * short
            cells = [code, firm[1], firm[5], _wan(firm[4], "万元人民币"), firm[6], firm[7],
                     c2[1], c2[2], "股东", _wan(c2[3], "万元"), c2[4]]  # fmt: skip
            rows.append((cells[: len(cells) - short] if short else cells, [(sh.rel, n, None)]))
    for code, lst in holders.items():
        for n, c in lst:
            rows.append(
                (
                    [code, "", "", "", "", "", c[1], c[2], "股东", _wan(c[3], "万元"), c[4]],
                    [(sh.rel, n, None)],
                )
            )
    r.write_csv(
        "market/市场主体登记人员信息.csv",
        header,
        rows,
        renames={
            "法定代表人": "人员姓名",
            "法定代表人证件号码": "人员证件号码",
            "股东名称": "人员姓名",
            "股东证件号码": "人员证件号码",
        },
    )

    # property: co-owner columns (a spouse, for households outside every case)
    _co_owners(r)


def _co_owners(r: Render) -> None:
    hk = r.table(HUKOU, use=False)
    ih, irel, iname, iid = (
        hk.idx("户号"),
        hk.idx("与户主关系"),
        hk.idx("姓名"),
        hk.idx("公民身份号码"),
    )
    head_hh: dict[str, str] = {}
    spouse: dict[str, tuple[str, str, str]] = {}
    for _n, c in hk.rows:
        if c[irel] == "户主":
            head_hh[c[iid]] = c[ih]
        elif c[irel] == "配偶":
            spouse[c[ih]] = (c[iname], c[iid], c[iid])
    _, member, _ = r.cases()
    cur = r.table("housing/不动产登记信息.csv")
    iu = cur.idx("规划用途")
    # co-owner columns next to the owner: the export's own (when it names co-owners) or new
    cols: list[tuple[str, Any]] = [(h, h) for h in cur.header[:2]]
    cols += [("共有人", "共有人"), ("共有人证件号码", "共有人证件号码"), ("共有情况", "")]
    cols += [(h, h) for h in cur.header[2:] if h not in ("共有人", "共有人证件号码")]
    header, rows, ren = r.reshape(cur, cols)
    for (cells, origins), (n, c) in zip(rows, cur.rows, strict=True):
        if len(cells) < 5:
            continue
        owner = r.pid(cur.rel, n, "owner") or ""
        co = spouse.get(head_hh.get(owner, ""))
        ok = (not cells[2] and co is not None and len(c) == len(cur.header) and c[iu] == "住宅"
              and owner not in member and co[2] not in member and r.u("co", tuple(c)) < 0.4)  # fmt: skip
        if ok and co:
            cells[2], cells[3] = co[0], co[1]
            r.counts["co-owner cells added"] += 1
            origins.append(("__co__", n, None))
        cells[4] = "共同共有" if cells[2] else "单独所有"
    r.write_csv(cur.rel, header, rows, renames=ren)
    # the added co-owners' truth (clean registry cells: the ID is the person)
    for k, (cells, origins) in enumerate(rows):
        if any(f == "__co__" for f, _n, _r in origins):
            r.extra_records.append((cur.rel, k + 2, "co_owner", cells[3]))


def render_utf16(r: Render) -> None:
    for k in ("cadre terms kept to the day", "failed payments left out (no 发放状态 column)"):
        r.counts[k] += 0  # stated in LAYOUT even when none
    u16: dict[str, Any] = {"encoding": "utf-16", "delimiter": "\t"}
    safe = MonthSafety(r)
    # registry: other headers, sex as a code, parent columns under other headers
    t = r.table(HUKOU)
    hk_names = {"户号": "户编号", "姓名": "人员姓名", "公民身份号码": "身份证号码", "与户主关系": "与户主关系名称",
                "性别": "性别代码", "户籍地址": "住址", "行政区划代码": "区划代码", "人员状态": "户籍状态"}  # fmt: skip
    isex, ibirth = t.idx("性别"), t.idx("出生日期")
    cols: list[tuple[str, Any]] = []
    for h in t.header:
        new = hk_names.get(h) or _parent_header(h)
        if h == "性别":
            cols.append((new, lambda c, _r: {"男": "1", "女": "2"}.get(c[isex], c[isex])))
        elif h == "出生日期":
            cols.append(
                (
                    h,
                    lambda c, _r, i=ibirth: (
                        fmt_date(parse_date(c[i]), "iso") if parse_date(c[i]) else c[i]
                    ),
                )
            )
        else:
            cols.append((new, h))
    h, rows, ren = r.reshape(t, cols)
    r.write_csv("hukou/户籍人口信息.txt", h, rows, renames=ren, **u16)
    for rel, names in (
        (
            "marriage/婚姻登记信息.csv",
            {
                "男方身份证号": "男方公民身份号码",
                "女方身份证号": "女方公民身份号码",
                "登记类别": "业务类型",
            },
        ),
        ("police/机动车登记信息.csv", {"机动车所有人": "所有人", "身份证明号码": "证件号码"}),
        ("bank/代发账户信息.csv", {"户名": "账户名称", "证件号码": "身份证号", "账号": "银行账号"}),
    ):
        cur = r.table(rel)
        cols = [(names.get(x, x), x) for x in cur.header]
        if rel.startswith("marriage"):
            cols[0] = (
                "业务类型",
                lambda c, _r: {"结婚": "结婚登记", "离婚": "离婚登记"}.get(c[0], c[0]),
            )
        h, rows, ren = r.reshape(cur, cols)
        if rel.startswith("bank"):
            _cosmetic_ids(r, rows, h.index("身份证号"), "holder", "证件号码")
        r.write_csv(rel.rsplit(".", 1)[0] + ".txt", h, rows, renames=ren, **u16)
    # payments: half-year files, item codes, first half without status
    halves: dict[str, list[OutRow]] = {"上半年": [], "下半年": []}
    header_h: dict[str, list[str]] = {}
    for cur in _payment_tables(r):
        ip, ist = cur.idx("所属期"), cur.idx("发放状态")
        for half in ("上半年", "下半年"):
            cols = [("业务流水号", "发放批次号"), ("项目代码", lambda c, _r: ITEM_CODES.get(c[1], c[1])),
                    ("姓名", "收款人姓名"), ("证件号码", "收款人身份证号"), ("账号", "社保卡/银行账号"),
                    ("开户机构", "开户银行"), ("发放金额", "发放金额"),
                    ("业务期间", lambda c, _r, ip=ip: _yyyymm(c[ip])),
                    ("到账日期", "发放日期")]  # fmt: skip
            if half == "下半年":
                cols.append(("状态", "发放状态"))
            cols += [("乡镇街道", "乡镇"), ("村社区", "村"), ("区划代码", "行政区划代码")]
            h, rows, ren = r.reshape(cur, cols)
            header_h[half] = h
            for row, (_n, old) in zip(rows, cur.rows, strict=True):
                m = parse_period(old[ip]) or 0
                if (half == "上半年") != (m <= 6):
                    continue
                if half == "上半年" and len(old) > ist and old[ist] == "失败":
                    r.counts["failed payments left out (no 发放状态 column)"] += 1
                    continue
                _cosmetic_ids(r, [row], 3, "payee", "收款人身份证号")
                halves[half].append(row)
    for half, rows in halves.items():
        r.write_csv(
            f"finance/一卡通发放明细_{YEAR}{half}.txt", header_h[half], rows, renames=ren, **u16
        )
    # cadre: Chinese month terms where safe
    cur = r.table(CADRE)
    iv, i0, i1 = cur.idx("行政区划代码"), cur.idx("任职开始"), cur.idx("任职结束")

    def term(c: list[Any], _row: int, i: int) -> Any:
        s, e = parse_date(c[i0]), parse_date(c[i1])
        if s is None:
            return c[i]
        d = parse_date(c[i])
        if not safe.term(c[iv], s, e):
            r.counts["cadre terms kept to the day"] += i == i0
            return fmt_date(d, "cn") if d else ""
        return fmt_date(d, "m_cn") if d else ""

    cols = [("干部姓名", "姓名"), ("公民身份号码", "身份证号"), ("所属乡镇", "乡镇"), ("村(社区)", "村(社区)"),
            ("区划代码", "行政区划代码"), ("现任职务", "职务"), ("任职起始年月", lambda c, rr: term(c, rr, i0)),
            ("任职终止年月", lambda c, rr: term(c, rr, i1))]  # fmt: skip
    h, rows, ren = r.reshape(cur, cols)
    r.write_csv(CADRE, h, rows, renames=ren, encoding="utf-8-sig")
    # land files: a 合计 row at the end
    for rel, col in (("agriculture/土地承包经营权信息.csv", "承包面积(亩)"),):
        cur = r.table(rel)
        h, rows, ren = r.reshape(cur, [(x, x) for x in cur.header])
        rows.append(_sum_row(len(h), 0, h.index(col), rows))
        r.write_csv(rel, h, rows, renames=ren, encoding="gb18030", crlf=True)


def _parent_header(h: str) -> str:
    """Registry parent columns under other headers (父亲公民身份号码 -> 父亲身份证号码 ...)."""
    for who in ("父亲", "母亲"):
        if h.startswith(who) and ("身份" in h or "证件" in h):
            return f"{who}身份证号码"
        if h.startswith(who) and "姓名" in h:
            return f"{who}名字"
    return h


def _cosmetic_ids(r: Render, rows: list[OutRow], col: int, role: str, old_col: str) -> None:
    """More cosmetic ID noise (a space, full-width digits) on clean ID cells; recorded."""
    fw = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")
    for cells, origins in rows:
        if len(cells) <= col or not origins:
            continue
        f, n, _roles = origins[0]
        idv = str(cells[col])
        if len(idv) != 18 or (f, n, role) in r.noise:
            continue
        u = r.u("idnoise", tuple(map(str, cells)))
        if u < 0.04:
            cells[col], kind = idv[:6] + " " + idv[6:], "id_space"
        elif u < 0.07:
            cells[col], kind = idv.translate(fw), "id_fullwidth"
        else:
            continue
        r.counts[f"extra {kind}"] += 1
        r.pending_noise.append((f, n, role, old_col, kind))


def _render_township(r: Render) -> None:
    from crossmatch.synth.layout_township import render_township

    render_township(r)


def _render_dump(r: Render) -> None:
    from crossmatch.synth.layout_dump import render_dump

    render_dump(r)


def _render_legacy(r: Render) -> None:
    from crossmatch.synth.layout_legacy import render_legacy

    render_legacy(r)


def _render_platform(r: Render) -> None:
    from crossmatch.synth.layout_platform import render_platform

    render_platform(r)


_RENDERERS: dict[str, Callable[[Render], None]] = {
    "monthly": render_monthly,
    "workbook": render_workbook,
    "utf16": render_utf16,
    "township": _render_township,
    "platform": _render_platform,
    "dump": _render_dump,
    "legacy": _render_legacy,
}


def render(layout: str, src: Path | str, out: Path | str, seed: int) -> Render:
    """Re-render the default county under ``src`` into ``layout`` under ``out`` (raw/, truth/,
    LAYOUT). Files a layout does not change are copied as they are."""
    if layout not in _RENDERERS:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    src, out = Path(src), Path(out)
    r = Render(src, out, seed, layout)
    _RENDERERS[layout](r)
    for rel in r.files(""):
        if rel not in r.used:
            r.copy(rel)
    r.write_truth()
    _write_note(r)
    return r


def _write_note(r: Render) -> None:
    lines = [f"layout: {r.layout}", f"seed: {r.seed}", f"mappings: sources/{r.layout}/", "",
             LAYOUTS[r.layout], "", "counts:"]  # fmt: skip
    lines += [f"  {k}: {v}" for k, v in sorted(r.counts.items())]
    (r.out / "LAYOUT").write_text("\n".join(lines) + "\n", encoding="utf-8")


def generate_layout(persons: int, seed: int, out: Path | str, layout: str = "default") -> Any:
    """``crossmatch sample --layout``: the county of (persons, seed) in ``layout``.

    ``default`` is :func:`crossmatch.synth.generate` itself (same bytes). Any other layout
    generates the default into a scratch folder next to ``out`` and renders it."""
    from crossmatch.synth import Summary, generate

    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    out = Path(out)
    if layout == "default":
        summary = generate(persons=persons, seed=seed, out=out, layout="default")
        note = out / "LAYOUT"
        if note.exists():
            note.unlink()
        return summary
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("raw", "truth"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    with tempfile.TemporaryDirectory(prefix=".default-", dir=out) as tmp:
        base = generate(persons=persons, seed=seed, out=tmp)
        r = render(layout, tmp, out, seed)
    summary = Summary(out, persons, seed, towns=base.towns, villages=base.villages,
                      residents=base.residents, planted=base.planted)  # fmt: skip
    raw = out / "raw"
    for f in sorted(p for p in raw.rglob("*") if p.is_file()):
        summary.rows[f.relative_to(raw).as_posix()] = sum(
            v for k, v in r.counts.items() if k.startswith("rows ") and k[5:].split("#")[0] == f.relative_to(raw).as_posix()
        )  # fmt: skip
    summary.bytes = sum(f.stat().st_size for f in raw.rglob("*") if f.is_file())
    summary.seconds = time.perf_counter() - t0
    return summary
