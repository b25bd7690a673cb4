# ruff: noqa: E501  (the per-source layout tables read best one source per line)
"""Write a township's records as each department exports them (docs/data-contract.md section 2).

Each source has its own layout, encoding, date and amount style and identity-noise level. The
household registry is the clean anchor (no identity noise); the payment files are the dirtiest.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from crossmatch.synth.county import ASSIST_ITEMS, FARMLAND_RATE, STANDARDS, TownData
from crossmatch.synth.io import PersonRef, Sink, Truth
from crossmatch.synth.model import COUNTY_NAME, YEAR, Person
from crossmatch.synth.noise import Noiser

D = dt.date


def fmt_date(d: dt.date | None, style: str) -> str:
    """A date in one of the styles departments use."""
    if d is None:
        return ""
    if style == "iso":
        return d.isoformat()
    if style == "slash":
        return f"{d.year}/{d.month}/{d.day}"
    if style == "compact":
        return f"{d:%Y%m%d}"
    if style == "cn":
        return f"{d.year}年{d.month}月{d.day}日"
    raise ValueError(style)


def fmt_amount(x: float, style: str) -> str:
    if style == "plain":
        return f"{x:.2f}"
    if style == "comma":
        return f"{x:,.2f}"
    if style == "yuan":
        return f"{x:g}元"
    raise ValueError(style)


# source -> (file, encoding, title, crlf, id noise scale, name noise scale, bad columns)
LAYOUT: dict[str, tuple[str, str, str | None, bool, float, float, tuple[int, ...]]] = {
    "hukou": ("hukou/户籍人口信息.csv", "gb18030", None, True, 0.0, 0.0, ()),
    "death": ("death/死亡人口信息.xlsx", "", None, False, 0.5, 1.0, ()),
    "cremation": ("death/火化信息.csv", "utf-8-sig", None, False, 1.0, 1.0, ()),
    "marriage": ("marriage/婚姻登记信息.csv", "utf-8", None, False, 0.4, 1.0, (5,)),
    "assistance": ("civil/低保特困救助对象花名册.xlsx", "", "来安县城乡低保、特困供养对象花名册（2025年12月）", False, 0.8, 1.0, (8,)),
    "elderly": ("civil/高龄津贴发放名册.csv", "gb18030", None, True, 0.8, 1.0, (6,)),
    "proxy_filing": ("civil/代领代管备案.csv", "utf-8", None, False, 0.4, 1.0, ()),
    "payroll": ("finance/财政供养人员信息.xlsx", "", None, False, 0.3, 0.8, ()),
    "cadre": ("organization/村（社区）干部花名册.csv", "gb18030", None, True, 0.5, 1.0, ()),
    "relative_filing": ("organization/村干部近亲属享受民生资金备案表.csv", "utf-8", None, False, 0.4, 1.0, ()),
    "property": ("housing/不动产登记信息.csv", "utf-8", None, False, 0.5, 1.0, (5,)),
    "vehicle": ("police/机动车登记信息.csv", "gb18030", None, True, 0.5, 1.0, (5,)),
    "enterprise": ("market/企业登记信息.csv", "utf-8", None, False, 0.3, 1.0, (4,)),
    "shareholder": ("market/企业股东出资信息.csv", "utf-8", None, False, 0.8, 1.0, ()),
    "land_contract": ("agriculture/土地承包经营权信息.csv", "gb18030", None, True, 1.0, 1.0, (6,)),
    "farmland_subsidy": ("agriculture/耕地地力保护补贴发放清册.xlsx", "", None, False, 1.0, 1.0, ()),
    "bank_account": ("bank/代发账户信息.csv", "utf-8", None, False, 0.3, 0.8, ()),
    "subsidy_standard": ("finance/补贴标准.csv", "utf-8", None, False, 0.0, 0.0, ()),
    "procurement": ("education/学校食堂采购合同.csv", "utf-8", None, False, 0.0, 0.0, ()),
    "school_staff": ("education/学校教职工信息.csv", "utf-8", None, False, 0.5, 1.0, ()),
}  # fmt: skip
PAYMENT_FILES = {  # quarter -> (file, encoding, period style)
    1: ("finance/一卡通发放明细_2025Q1.csv", "utf-8", "dash"),
    2: ("finance/一卡通发放明细_2025Q2.csv", "utf-8-sig", "compact"),
    3: ("finance/一卡通发放明细_2025Q3.csv", "utf-8", "cn"),
    4: ("finance/一卡通发放明细_2025Q4.csv", "gb18030", "dash"),
}
VILLAGE_CONTEXT = frozenset(
    {"payment", "assistance", "elderly", "cadre", "land_contract", "farmland_subsidy"}
)  # sources whose rows carry the village code
PAYMENT_ID_SCALE = 1.4  # ~7-8% of payment rows carry no usable ID
HEADERS: dict[str, list[str]] = {
    "hukou": ["户号", "姓名", "公民身份号码", "与户主关系", "性别", "民族", "出生日期", "户籍地址", "行政区划代码", "人员状态", "注销原因", "注销日期", "父亲公民身份号码", "母亲公民身份号码"],
    "death": ["姓名", "身份证号", "死亡日期", "死亡原因", "数据来源单位"],
    "cremation": ["逝者姓名", "证件号码", "火化日期", "殡仪馆"],
    "marriage": ["登记类别", "男方姓名", "男方身份证号", "女方姓名", "女方身份证号", "登记日期", "登记机关"],
    "assistance": ["救助类别", "救助证编号", "申请人姓名", "申请人身份证号", "成员姓名", "成员身份证号", "与申请人关系", "保障人数", "月保障金额", "乡镇(街道)", "村(社区)", "行政区划代码", "经办人", "审批人", "救助开始日期", "救助终止日期"],
    "elderly": ["姓名", "身份证号", "性别", "年龄", "村(社区)", "行政区划代码", "月津贴标准", "开始享受年月"],
    "proxy_filing": ["受益人姓名", "受益人身份证号", "代领人姓名", "代领人身份证号", "代领账号", "备案日期"],
    "payment": ["发放批次号", "补贴项目", "收款人姓名", "收款人身份证号", "社保卡/银行账号", "开户银行", "发放金额", "所属期", "发放日期", "发放状态", "乡镇", "村", "行政区划代码"],
    "payroll": ["姓名", "身份证号码", "工作单位", "单位统一社会信用代码", "岗位", "岗位类别", "入职日期", "离职日期"],
    "cadre": ["姓名", "身份证号", "乡镇", "村(社区)", "行政区划代码", "职务", "任职开始", "任职结束"],
    "relative_filing": ["干部姓名", "干部身份证号", "亲属姓名", "亲属身份证号", "与干部关系", "享受项目", "备案日期"],
    "property": ["权利人", "证件号码", "不动产单元号", "坐落", "规划用途", "建筑面积", "登记日期", "注销日期", "共有人", "共有人证件号码"],
    "vehicle": ["机动车所有人", "身份证明号码", "号牌号码", "车辆类型", "使用性质", "初次登记日期", "机动车状态", "状态变更日期"],
    "enterprise": ["统一社会信用代码", "企业名称", "法定代表人", "法定代表人证件号码", "注册资本(万元)", "登记状态", "成立日期", "注销日期"],
    "shareholder": ["统一社会信用代码", "股东名称", "股东证件号码", "认缴出资额(万元)", "出资比例"],
    "land_contract": ["合同编号", "承包方代表姓名", "承包方代表身份证号", "村", "行政区划代码", "承包地块数", "承包面积(亩)"],
    "farmland_subsidy": ["姓名", "身份证号", "村", "行政区划代码", "补贴面积(亩)", "补贴标准(元/亩)", "补贴金额", "年度"],
    "bank_account": ["账号", "户名", "证件号码", "开户行", "开户日期", "销户日期"],
    "subsidy_standard": ["补贴项目", "适用区划代码", "计发方式", "保障人数", "标准金额", "生效日期", "失效日期"],
    "procurement": ["合同编号", "采购单位", "采购单位代码", "供应商名称", "供应商统一社会信用代码", "合同金额", "签订日期"],
    "school_staff": ["姓名", "身份证号", "学校名称", "学校代码", "职务"],
}  # fmt: skip
STANDARD_LABELS = {"特困供养金": "特困人员供养金"}  # the standards file's own item names
SOURCE_FILES = {k: v[0] for k, v in LAYOUT.items()} | {
    f"payment_Q{q}": f[0] for q, f in PAYMENT_FILES.items()
}


class Exporter:
    """Owns every open raw file and the truth writers for one generation run."""

    def __init__(self, out: Path, seed: int) -> None:
        self.raw = out / "raw"
        self.truth = Truth(out / "truth")
        self.truth.open()
        self.seed = seed
        self.kin_rng = self._rng(21)  # which registry rows leave the parent IDs empty
        self.sinks: dict[str, Sink] = {}
        for i, (src, (rel, enc, title, crlf, *_rest, bad)) in enumerate(LAYOUT.items()):
            date_cols = {"death": (2,), "assistance": (14, 15)}.get(src, ())
            dup = 0.0 if src in ("subsidy_standard", "hukou") else 0.003
            self.sinks[src] = Sink(
                self.raw, rel, HEADERS[src], self.truth, self._rng(10, i),
                encoding=enc or "utf-8", title=title, crlf=crlf, bad_cols=bad,
                date_cols=date_cols, dup_rate=dup,
            )  # fmt: skip
        for q, (rel, enc, _p) in PAYMENT_FILES.items():
            self.sinks[f"payment_Q{q}"] = Sink(
                self.raw, rel, HEADERS["payment"], self.truth, self._rng(11, q),
                encoding=enc, bad_cols=(6, 8),
            )  # fmt: skip
        self.noise = Noiser(self._rng(12))
        self.fmt_rng = self._rng(13)
        self.ambiguous: set[tuple[str, str]] = set()  # (village, name) held by several people
        self.persons_fh = open(out / "truth" / "persons.csv", "w", encoding="utf-8", newline="")  # noqa: SIM115
        self.persons_w = csv.writer(self.persons_fh, lineterminator="\n")
        self.persons_w.writerow(
            ["person_id", "name", "sex", "birth_date", "household_id", "village_code",
             "in_registry", "death_date"]
        )  # fmt: skip

    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, *key])))

    def close(self) -> None:
        for s in self.sinks.values():
            s.close()
        self.truth.close()
        self.persons_fh.close()

    # ------------------------------------------------------------------ helpers
    def _p(
        self,
        src: str,
        role: str,
        p: Person,
        name_col: str,
        id_col: str,
        critical: bool,
        force: str = "",
    ) -> tuple[str, str, PersonRef]:
        """Noisy name and ID cells for a person in a source, and the truth reference."""
        if force.startswith("id_"):
            idv = self.noise._apply_id(p.written_id(), force)
            return p.name, idv, (role, p.pid, name_col, "", id_col, force)
        if force.startswith("name_"):
            name = self.noise._apply_name(p.name, force)
            return name, p.written_id(), (role, p.pid, name_col, force, id_col, "")
        lay = LAYOUT.get(src)
        iscale, nscale = (PAYMENT_ID_SCALE, 1.5) if lay is None else (lay[4], lay[5])
        # A planted row may still lose its ID when the row names the village and name +
        # village identify the person alone; elsewhere only resolvable noise.
        safe_only = critical and (
            src not in VILLAGE_CONTEXT
            or p.ghost
            or p.hh is None
            or (p.hh.village.code, p.name) in self.ambiguous
        )
        idv, inoise = self.noise.id(p.written_id(), iscale, safe_only)
        if inoise in ("id_missing", "id_typo", "id_transpose") or (critical and inoise):
            name, nnoise = (p.name, "") if critical else self.noise.name(p.name, 0.0)
        else:
            name, nnoise = self.noise.name(p.name, nscale)
        if critical and nnoise and inoise:
            name, nnoise = p.name, ""
        return name, idv, (role, p.pid, name_col, nnoise, id_col, inoise)

    def _alt(self, primary: str, rate: float = 0.03) -> str:
        """A file's date style, with a few rows in another style (the files are hand-edited)."""
        if self.fmt_rng.random() < rate:
            return ("iso", "slash", "compact", "cn")[int(self.fmt_rng.integers(0, 4))]
        return primary

    # ------------------------------------------------------------------ writing
    def write_town(self, data: TownData) -> None:
        t = data.town
        s = self.sinks
        seen: Counter[tuple[str, str]] = Counter(
            (v.code, p.name) for v in t.villages for hh in v.households for p in hh.members
        )
        self.ambiguous = {k for k, n in seen.items() if n > 1}
        # what a careful ingest loads of this town (damaged rows are quarantined): cases with
        # at least one intact roster row, payees with an intact successful assistance payment;
        # relative_concentration's labels count recipient households from these
        self.cases_loaded: set[int] = set()
        self.assist_paid: set[int] = set()
        for v in t.villages:
            for hh in v.households:
                for p in hh.members:
                    self._hukou(p)
        for p, in_file, crem, _cancel in data.deaths:
            if in_file:
                name, idv, ref = self._p("death", "person", p, "姓名", "身份证号", True)
                cause = ("疾病", "自然死亡", "意外", "疾病", "自然死亡")[
                    int(self.fmt_rng.integers(0, 5))
                ]
                unit = ("县卫健委", "县公安局", "县殡葬管理所")[int(self.fmt_rng.integers(0, 3))]
                s["death"].write([name, idv, p.death, cause, unit], [ref], mess=False)
            if crem is not None:
                name, idv, ref = self._p("cremation", "person", p, "逝者姓名", "证件号码", False)
                s["cremation"].write([name, idv, fmt_date(crem, "slash"), "来安县殡仪馆"], [ref])
        for kind, h, w, d, crit in data.marriages:
            hn, hi, r1 = self._p("marriage", "husband", h, "男方姓名", "男方身份证号", crit)
            wn, wi, r2 = self._p("marriage", "wife", w, "女方姓名", "女方身份证号", crit)
            office = "来安县民政局婚姻登记处"
            s["marriage"].write(
                [kind, hn, hi, wn, wi, fmt_date(d, self._alt("cn")), office],
                [r1, r2],
                mess=not crit,
            )
        for case in data.cases:
            self._case(case)
        for p, start, crit in data.elderly:
            name, idv, ref = self._p("elderly", "person", p, "姓名", "身份证号", crit)
            ym = (
                f"{start.year}-{start.month:02d}"
                if self.fmt_rng.random() < 0.7
                else f"{start.year}年{start.month}月"
            )
            age = p.age_on(D(YEAR, 12, 31))
            s["elderly"].write(
                [name, idv, p.sex, age, p.village.name, p.village.code, "100", ym],
                [ref],
                mess=not crit,
            )
        for ben, agent, acct, d, _crit in data.proxies:
            bn, bi, r1 = self._p(
                "proxy_filing", "beneficiary", ben, "受益人姓名", "受益人身份证号", True
            )
            an, ai, r2 = self._p(
                "proxy_filing", "agent", agent, "代领人姓名", "代领人身份证号", True
            )
            s["proxy_filing"].write(
                [bn, bi, an, ai, acct, fmt_date(d, "iso")], [r1, r2], mess=False
            )
        self._payments(data)
        for p, unit, code, post, ptype, start, end, crit in data.payroll:
            name, idv, ref = self._p("payroll", "person", p, "姓名", "身份证号码", crit)
            st = fmt_date(start, "slash") if self.fmt_rng.random() < 0.3 else start
            s["payroll"].write([name, idv, unit, code, post, ptype, st, end], [ref], mess=not crit)
        for p, v, post, start, end, crit in data.cadres:
            name, idv, ref = self._p("cadre", "cadre", p, "姓名", "身份证号", crit)
            row = [
                name,
                idv,
                v.town.name,
                v.name,
                v.code,
                post,
                fmt_date(start, "iso"),
                fmt_date(end, "iso"),
            ]
            s["cadre"].write(row, [ref], mess=not crit)
        for cadre, rel, relation, item, d in data.filings:
            cn, ci, r1 = self._p(
                "relative_filing", "cadre", cadre, "干部姓名", "干部身份证号", True
            )
            rn, ri, r2 = self._p(
                "relative_filing", "relative", rel, "亲属姓名", "亲属身份证号", True
            )
            s["relative_filing"].write(
                [cn, ci, rn, ri, relation, item, fmt_date(d, "compact")], [r1, r2], mess=False
            )
        for owner, unit, loc, usage, area, reg, cancel, crit in data.properties:
            n, i, ref = self._p("property", "owner", owner, "权利人", "证件号码", crit)
            refs, co, cn, ci = [ref], data.co_owners.get(unit), "", ""
            if co is not None:  # 共有人: optional columns, empty for sole ownership
                cn, ci, r2 = self._p("property", "co_owner", co, "共有人", "共有人证件号码", crit)
                refs.append(r2)
            row = [
                n,
                i,
                unit,
                loc,
                usage,
                f"{area:.2f}",
                fmt_date(reg, self._alt("iso")),
                fmt_date(cancel, "iso"),
                cn,
                ci,
            ]
            s["property"].write(row, refs, mess=not crit)
        for owner, plate, vt, use, reg, status, sdate, crit in data.vehicles:
            n, i, ref = self._p("vehicle", "owner", owner, "机动车所有人", "身份证明号码", crit)
            row = [
                n,
                i,
                plate,
                vt,
                use,
                fmt_date(reg, self._alt("slash")),
                status,
                fmt_date(sdate, "slash"),
            ]
            s["vehicle"].write(row, [ref], mess=not crit)
        for e in data.enterprises:
            n, i, ref = self._p(
                "enterprise", "legal_rep", e.rep, "法定代表人", "法定代表人证件号码", e.critical
            )
            cap = e.capital / 10000
            capc = f"{cap:g}" if self.fmt_rng.random() < 0.8 else f"{cap:.4f}"
            row = [
                e.code,
                e.name,
                n,
                i,
                capc,
                e.status,
                fmt_date(e.established, "iso"),
                fmt_date(e.deregistered, "iso"),
            ]
            s["enterprise"].write(row, [ref], mess=not e.critical)
            for h, sub in e.holders:
                hn, hi, r2 = self._p(
                    "shareholder", "holder", h, "股东名称", "股东证件号码", e.critical
                )
                share = f"{sub / e.capital * 100:.2f}%"
                s["shareholder"].write(
                    [e.code, hn, hi, f"{sub / 10000:g}", share], [r2], mess=not e.critical
                )
        for no, p, v, plots, area, crit in data.land:
            n, i, ref = self._p(
                "land_contract", "contractor", p, "承包方代表姓名", "承包方代表身份证号", crit
            )
            s["land_contract"].write(
                [no, n, i, v.name, v.code, plots, f"{area:.2f}"], [ref], mess=not crit
            )
        for p, v, sub, _area, crit in data.farmland:
            n, i, ref = self._p("farmland_subsidy", "person", p, "姓名", "身份证号", crit)
            hectare = int(v.code[-3:]) % 5 == 0  # some villages report 公顷
            cell: Any = f"{sub / 15:.4f}公顷" if hectare else sub
            row = [n, i, v.name, v.code, cell, FARMLAND_RATE, round(sub * FARMLAND_RATE, 2), YEAR]
            s["farmland_subsidy"].write(row, [ref], mess=not crit)
        for acct, holder, bank, opened, closed, crit in data.accounts:
            n, i, ref = self._p("bank_account", "holder", holder, "户名", "证件号码", crit)
            s["bank_account"].write(
                [acct, n, i, bank, fmt_date(opened, "iso"), fmt_date(closed, "iso")],
                [ref],
                mess=not crit,
            )
        for no, sname, scode, sup, amt, signed, crit in data.procurement:
            row = [
                no,
                sname,
                scode,
                sup.name,
                sup.code,
                fmt_amount(amt, "comma"),
                fmt_date(signed, "cn"),
            ]
            s["procurement"].write(row, [], mess=not crit)
        for p, sname, scode, post, crit in data.staff:
            n, i, ref = self._p("school_staff", "person", p, "姓名", "身份证号", crit)
            s["school_staff"].write([n, i, sname, scode, post], [ref], mess=not crit)
        for g in data.ghosts:
            self.persons_w.writerow([g.pid, g.name, g.sex, g.birth.isoformat(), "", "", 0, ""])

    def _hukou(self, p: Person) -> None:
        assert p.hh is not None
        v = p.hh.village
        status, reason, cdate = "正常", "", None
        if p.moved is not None:
            status, reason, cdate = "注销", "迁出", p.moved
        else:
            if p.cancel is not None:
                status, reason, cdate = "注销", "死亡", p.cancel
        row = [p.hh.no, p.name, p.pid, p.rel, p.sex, p.ethnic, fmt_date(p.birth, "compact"),
               p.hh.address, v.code, status, reason, fmt_date(cdate, "iso")]  # fmt: skip
        refs: list[PersonRef] = [("person", p.pid, "姓名", "", "公民身份号码", "")]
        # parent IDs (only parents resident in the county are known): mostly filled, some
        # cells left empty as in real registries, never for a planted scenario's people
        planted = p.busy or any(x is not None and x.busy for x in (p.father, p.mother))
        blank = p.parents_blank or (not planted and self.kin_rng.random() < 0.1)
        for role, par, col in (("father", p.father, "父亲公民身份号码"),
                               ("mother", p.mother, "母亲公民身份号码")):  # fmt: skip
            if par is None or blank:
                row.append("")
            else:
                row.append(par.pid)
                refs.append((role, par.pid, "", "", col, ""))
        self.sinks["hukou"].write(row, refs, mess=False)
        self.persons_w.writerow([p.pid, p.name, p.sex, p.birth.isoformat(), p.hh.no, v.code, 1,
                                 p.death.isoformat() if p.death else ""])  # fmt: skip

    def _case(self, c: Any) -> None:
        size = len(c.members)
        item = "特困供养金" if c.kind == "特困供养" else "城乡低保金"
        from crossmatch.synth.county import standard

        amount = round(standard(item, c.village.code, 12, size) * c.factor, 0)
        if c.pay_override:
            amount = c.pay_override[max(c.pay_override)]
        an, ai, ra = self._p(
            "assistance", "applicant", c.applicant, "申请人姓名", "申请人身份证号", c.critical
        )
        for p, rel in c.members:
            mn, mi, rm = self._p("assistance", "member", p, "成员姓名", "成员身份证号", c.critical)
            refs = [ra, rm]
            hn = c.handler.name
            refs.append(("handler", c.handler.pid, "经办人", "", "", ""))
            refs.append(("approver", c.approver.pid, "审批人", "", "", ""))
            row = [c.kind, c.no, an, ai, mn, mi, rel, size, amount, c.village.town.name,
                   c.village.name, c.village.code, hn, c.approver.name, c.start, c.end]  # fmt: skip
            if not c.critical and self.fmt_rng.random() < 0.05:
                row[14] = (c.start - D(1899, 12, 30)).days  # an Excel serial without a date format
            self.sinks["assistance"].write(row, refs, mess=not c.critical)
            if not self.sinks["assistance"].last_bad:
                self.cases_loaded.add(id(c))

    def _payments(self, data: TownData) -> None:
        t = data.town
        pays = sorted(
            enumerate(data.pays),
            key=lambda ip: (ip[1].month, ip[1].item, ip[1].village.code, ip[0]),
        )
        for _, pay in pays:
            q = (pay.month - 1) // 3 + 1
            _rel, _enc, pstyle = PAYMENT_FILES[q]
            src = f"payment_Q{q}"
            if pay.extra:  # drawing from the shared generators would change every later file
                n, i = pay.payee.name, pay.payee.written_id()
                ref = ("payee", pay.payee.pid, "收款人姓名", "", "收款人身份证号", "")
            else:
                n, i, ref = self._p(
                    "payment", "payee", pay.payee, "收款人姓名", "收款人身份证号", pay.critical,
                    pay.force,
                )  # fmt: skip
            from crossmatch.synth.county import ITEM_CODE

            batch = f"LA{YEAR}{pay.month:02d}{t.idx + 1:03d}{ITEM_CODE[pay.item]}{pay.batch}"
            period = {"dash": f"{YEAR}-{pay.month:02d}", "compact": f"{YEAR}{pay.month:02d}",
                      "cn": f"{YEAR}年{pay.month}月"}[pstyle]  # fmt: skip
            u = 0.0 if pay.extra else self.fmt_rng.random()
            amt = fmt_amount(pay.amount, "comma" if u < 0.85 else ("yuan" if u < 0.95 else "plain"))
            pd = fmt_date(D(YEAR, pay.month, pay.day), "slash")
            v = pay.village
            row = [batch, pay.item, n, i, pay.account, pay.bank, amt, period, pd, pay.status,
                   v.town.name, v.name, v.code]  # fmt: skip
            sink = self.sinks[src]
            sink.write(
                row,
                [ref],
                mess=not pay.critical and pay.status == "成功" and not pay.batch and not pay.extra,
            )
            if pay.status == "成功" and pay.item in ASSIST_ITEMS and not sink.last_bad:
                self.assist_paid.add(id(pay.payee))
            if sink.last_dup and not sink.last_bad:
                data.plant("duplicate_payment", "trap", pay.payee.written_id() if pay.payee.ghost
                           else pay.payee.pid, f"{YEAR}-{pay.month:02d}", "导出文件完全重复行")  # fmt: skip

    def write_standards(self) -> None:
        """The finance bureau's standards table. Its item names are its own vocabulary, not the
        payment export's: the rules match them by item class (rules/reference/item_class.csv):
        特困人员供养金 is the payments' 特困供养金; township 002's banded table is for 农村低保
        (rural cases, paid as 城乡低保金)."""
        for item, pref, basis, amt, f, t, band in STANDARDS:
            item = "农村低保金" if band is not None else STANDARD_LABELS.get(item, item)
            cell = "" if band is None else f"{band}人"  # the top band (TOP_BAND) is open: 6 = 6+
            self.sinks["subsidy_standard"].write(
                [item, pref, basis, cell, f"{amt:.2f}", fmt_date(f, "iso"), fmt_date(t, "iso")],
                [],
                mess=False,
            )


__all__ = ["COUNTY_NAME", "Exporter", "fmt_amount", "fmt_date"]
