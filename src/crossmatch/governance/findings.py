"""类案分析: root causes measured from the warehouse, one :class:`Finding` per loophole.

A clue is about one person; a finding is about the system that let a batch of similar clues
happen, and names the department that owns the loophole. Kinds:

``death_sync_lag``      per township: deceased payees whose payments went on past the grace
                        month and then stopped (the death reached the payer late), with the
                        months from 死亡日期 to the cremation record, the registry cancellation
                        and the last payment, and what the lag cost; against the other townships
``approver_kin``        per township and official (经办人 / 审批人): cases of the official's own
                        close relatives the official handled or approved (no recusal)
``approval_check``      per asset rule (car, home, company, payroll): clues whose asset already
                        existed when the case was approved (the check was not run at approval)
                        against those where it came later (the check is not repeated)
``concentration``       villages, approvers and handlers whose clues per unit (paid persons,
                        cases) stand far above their peers' pooled rate
``identity_weakness``   per paying department: payment rows whose ID fails its checksum or is
                        missing, payees in no registry, accounts shared across households

Every finding carries its figures (cases, people, months, amount), its clue ids (线索编号, from
the review store) and, once stored with :func:`store_findings`, a trend over runs. A kind whose
rule did not run ``ok`` or whose tables are missing is reported ``blind`` / ``stale`` with the
reason in :attr:`FindingSet.status`, never as "no finding".
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from crossmatch import warehouse
from crossmatch.detect.schema import existing_relations
from crossmatch.export.clue_list import _region_names
from crossmatch.review.store import audit

HERE = Path(__file__).resolve().parent
ASSET_RULES = {
    "vehicle_on_dibao": ("vehicles", "reg_date", "车辆"),
    "property_on_dibao": ("properties", "reg_date", "房产"),
    "business_on_dibao": ("enterprises", "established", "企业"),
    "payroll_on_dibao": ("members", "start_date", "财政供养岗位"),
}
PAID = "_dup_of IS NULL AND (status IS NULL OR status = 'success')"

FINDING_DDL = """
CREATE TABLE IF NOT EXISTS finding (
    run_id VARCHAR,
    finding_id VARCHAR,
    kind VARCHAR,
    title VARCHAR,
    department VARCHAR,
    region_code VARCHAR,
    region VARCHAR,
    who VARCHAR,
    people INTEGER,
    cases INTEGER,
    months INTEGER,
    amount DECIMAL(18,2),
    value DOUBLE,
    peer_value DOUBLE,
    clue_ids JSON,
    detail JSON,
    computed_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS finding_status (
    run_id VARCHAR,
    kind VARCHAR,
    status VARCHAR,
    reason VARCHAR
);
"""


@dataclass
class Params:
    """Thresholds of the analysis (all editable from the CLI)."""

    grace_months: int = 1
    lag_min_people: int = 3
    lag_ratio: float = 3.0  # township rate >= ratio x the other townships' rate
    kin_min_cases: int = 2
    conc_min_clues: int = 5
    conc_ratio: float = 3.0


@dataclass
class Finding:
    """One root cause with its figures."""

    finding_id: str
    kind: str
    title: str
    department: str
    region_code: str
    region: str
    who: str
    people: int
    cases: int
    months: int
    amount: float
    value: float
    peer_value: float
    cause: str
    fix: str
    clue_ids: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)
    trend: list[dict[str, Any]] = field(default_factory=list)

    def figures(self) -> str:
        parts = []
        if self.detail.get("bad_id_rows"):
            # identity_weakness: the department's payment rows with a missing or invalid ID are
            # a figure of their own (they need not come with any clue)
            parts.append(
                f"身份证号缺失或校验不通过 {self.detail['bad_id_rows']} 行"
                f"(金额 {self.detail.get('bad_id_amount', 0.0):,.2f} 元)"
            )
        if self.cases:
            parts.append(f"{self.cases} 件")
        if self.people:
            parts.append(f"{self.people} 人")
        if self.months:
            parts.append(f"{self.months} 个月")
        if self.amount or not parts:
            parts.append(f"涉及金额 {self.amount:,.2f} 元")
        return "，".join(parts)


@dataclass
class FindingSet:
    run_id: str
    findings: list[Finding] = field(default_factory=list)
    status: dict[str, tuple[str, str]] = field(default_factory=dict)  # kind -> (status, reason)

    def by_kind(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    def render(self) -> str:
        lines = [f"类案分析 run {self.run_id}: {len(self.findings)} finding(s)"]
        for kind, (st, why) in sorted(self.status.items()):
            lines.append(f"  {kind:<18} {st:<7} {why}")
        for f in self.findings:
            lines.append(
                f"- [{f.finding_id}] {f.title} — {f.department} {f.region}"
                f"{' ' + f.who if f.who else ''}: {f.figures()}; 线索 {len(f.clue_ids)} 条"
            )
        return "\n".join(lines)


# ---------------------------------------------------------------------- helpers
def load_departments(path: str | Path | None = None) -> dict[str, str]:
    """Item class -> owning department (``departments.csv`` beside this module)."""
    p = Path(path) if path else HERE / "departments.csv"
    with open(p, encoding="utf-8", newline="") as fh:
        rows = csv.DictReader(line for line in fh if not line.startswith("#"))
        return {r["class"]: r["department"] for r in rows}


def load_item_classes(rules_dir: str | Path) -> dict[str, str]:
    p = Path(rules_dir) / "reference" / "item_class.csv"
    if not p.exists():
        return {}
    with open(p, encoding="utf-8", newline="") as fh:
        rows = csv.DictReader(line for line in fh if not line.startswith("#"))
        return {r["item"]: r["class"] for r in rows}


def scalar(con: duckdb.DuckDBPyConnection, sql: str, args: list[Any] | None = None) -> Any:
    """The first column of the first row (None when there is no row)."""
    row = con.execute(sql, args or []).fetchone()
    return row[0] if row else None


def _j(v: Any) -> Any:
    return json.loads(v) if isinstance(v, str) else (v or {})


def _money(v: Any) -> float:
    return round(float(v or 0), 2)


def _month_no(period: str) -> int:
    return int(period[:4]) * 12 + int(period[5:7])


def _date(v: Any) -> dt.date | None:
    if v is None or v == "":
        return None
    if isinstance(v, dt.date):
        return v
    try:
        return dt.date.fromisoformat(str(v)[:10])
    except ValueError:
        return None


class _Ctx:
    """What every analysis needs: the run's hits, rule statuses, names, clue ids."""

    def __init__(
        self,
        wh: duckdb.DuckDBPyConnection,
        run_id: str,
        clue_ids: dict[tuple[str, str], str],
        rules_dir: str | Path,
        params: Params,
    ) -> None:
        self.wh, self.run_id, self.clue_ids, self.p = wh, run_id, clue_ids, params
        self.tables = existing_relations(wh)
        self.status = {
            r[0]: (r[1], r[2] or "")
            for r in wh.execute(
                "SELECT rule_id, status, reason FROM rule_run WHERE run_id = ?", [run_id]
            ).fetchall()
        }
        names = _region_names(wh)
        self.town_names: dict[str, str] = {}
        self.village_names: dict[str, str] = {}
        for code, (town, village) in names.items():
            if town:
                self.town_names.setdefault(code[:9], town)
            if village:
                self.village_names[code] = village
        self.item_class = load_item_classes(rules_dir)
        self.depts = load_departments()

    def hits(self, rule_id: str) -> list[tuple[str, str, float, str, dict[str, Any]]]:
        rows = self.wh.execute(
            "SELECT subject, coalesce(period, ''), amount, coalesce(village_code, ''), "
            "evidence::VARCHAR FROM hit WHERE run_id = ? AND rule_id = ? AND subject IS NOT NULL "
            "ORDER BY subject, period",
            [self.run_id, rule_id],
        ).fetchall()
        return [(r[0], r[1], _money(r[2]), r[3], _j(r[4])) for r in rows]

    def rule_ok(self, rule_id: str) -> tuple[bool, str]:
        st = self.status.get(rule_id)
        if st is None:
            return False, f"rule {rule_id} did not run in {self.run_id}"
        if st[0] != "ok":
            return False, f"rule {rule_id} is {st[0]} in {self.run_id}: {st[1]}"
        return True, ""

    def clue(self, rule_id: str, subject: str) -> str | None:
        return self.clue_ids.get((rule_id, subject))

    def town(self, code: str) -> str:
        return self.town_names.get(code[:9], code[:9])

    def department_of(self, items: list[str]) -> str:
        depts = sorted({self.depts.get(self.item_class.get(i, ""), "") for i in items} - {""})
        return "、".join(depts) or "未知部门"


# ---------------------------------------------------------------------- death_sync_lag
def _death_sync_lag(c: _Ctx, out: FindingSet) -> None:
    ok, why = c.rule_ok("deceased_recipient")
    if not ok:
        out.status["death_sync_lag"] = ("stale", why)
        return
    need = {"r_payment", "r_death", "r_cremation", "r_hukou"}
    if not need <= c.tables:
        out.status["death_sync_lag"] = ("blind", f"missing {sorted(need - c.tables)}")
        return
    wh = c.wh
    data_end = scalar(wh, f"SELECT max(period) FROM r_payment WHERE {PAID}")
    # every deceased person's death date, as the rule takes it (earliest of the three
    # registers), and when each register recorded it
    deaths = {
        r[0]: (r[1], r[2], r[3])
        for r in wh.execute(
            """
            WITH d AS (SELECT person_pid pid, min(death_date) dd FROM r_death
                       WHERE person_pid IS NOT NULL AND _dup_of IS NULL GROUP BY 1),
                 cr AS (SELECT person_pid pid, min(cremation_date) cd FROM r_cremation
                        WHERE person_pid IS NOT NULL AND _dup_of IS NULL GROUP BY 1),
                 hk AS (SELECT person_pid pid, min(cancel_date) kd FROM r_hukou
                        WHERE person_pid IS NOT NULL AND _dup_of IS NULL
                          AND cancel_reason IN ('死亡', 'death') GROUP BY 1)
            SELECT pid, max(dd), max(cd), max(kd) FROM (
                SELECT pid, dd, NULL::DATE cd, NULL::DATE kd FROM d
                UNION ALL SELECT pid, NULL, cd, NULL FROM cr
                UNION ALL SELECT pid, NULL, NULL, kd FROM hk) GROUP BY pid
            """
        ).fetchall()
    }
    last_paid: dict[str, tuple[str, str]] = {}
    for pid, per, vc in wh.execute(
        f"SELECT payee_pid, max(period), arg_max(village_code, period) FROM r_payment "
        f"WHERE {PAID} AND payee_pid IS NOT NULL GROUP BY 1"
    ).fetchall():
        last_paid[pid] = (per, vc or "")
    # denominator: deceased payees per township (paid at all in the data)
    deceased_payees: dict[str, int] = defaultdict(int)
    for pid, (dd, cd, kd) in deaths.items():
        first = min(x for x in (dd, cd, kd) if x is not None)
        if pid in last_paid and last_paid[pid][0] >= f"{first:%Y-%m}":
            deceased_payees[last_paid[pid][1][:9]] += 1
    per_person: dict[str, dict[str, Any]] = {}
    for subject, period, amount, vc, ev in c.hits("deceased_recipient"):
        p = per_person.setdefault(
            subject,
            {"months": set(), "amount": 0.0, "vc": vc, "death": ev.get("death_date"),
             "items": set()},
        )  # fmt: skip
        p["months"].add(period)
        p["amount"] += amount
        p["items"].update(ev.get("items") or [])
    by_town: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    never: dict[str, int] = defaultdict(int)
    for pid, p in per_person.items():
        last = last_paid.get(pid, ("", ""))[0]
        town = (p["vc"] or last_paid.get(pid, ("", ""))[1])[:9]
        if last and data_end and last < data_end:
            by_town[town].append((pid, p))
        else:
            never[town] += 1
    total_late = sum(len(v) for v in by_town.values())
    total_dec = sum(deceased_payees.values())
    for town in sorted(by_town):
        late = by_town[town]
        n_dec = max(deceased_payees.get(town, 0), len(late))
        rate = len(late) / n_dec if n_dec else 0.0
        peer_dec = total_dec - deceased_payees.get(town, 0)
        peer_rate = (total_late - len(late)) / peer_dec if peer_dec > 0 else 0.0
        if len(late) < c.p.lag_min_people or (peer_rate > 0 and rate < c.p.lag_ratio * peer_rate):
            continue
        lags, crem, cancel, items = [], [], [], set()
        for pid, p in late:
            dd = _date(p["death"])
            _reg, d_crem, d_cancel = deaths.get(pid, (None, None, None))
            last = last_paid[pid][0]
            if dd:
                lags.append(_month_no(last) - (dd.year * 12 + dd.month))
                if d_crem:
                    crem.append((d_crem - dd).days)
                if d_cancel:
                    cancel.append((d_cancel - dd).days)
            items |= p["items"]
        months = sum(len(p["months"]) for _, p in late)
        amount = round(sum(p["amount"] for _, p in late), 2)
        by_dept = _paid_by_department(c, [(pid, sorted(p["months"])) for pid, p in late])
        dept = max(by_dept, key=lambda k: by_dept[k]) if by_dept else c.department_of(sorted(items))
        name = c.town(town)
        med = statistics.median(lags) if lags else 0
        out.findings.append(
            Finding(
                finding_id=f"death_sync_lag:{town}",
                kind="death_sync_lag",
                title="死亡信息同步滞后导致死亡人员继续领取补贴",
                department=dept,
                region_code=town,
                region=name,
                who="",
                people=len(late),
                cases=len(late),
                months=months,
                amount=amount,
                value=round(rate, 4),
                peer_value=round(peer_rate, 4),
                cause=(
                    f"{name}死亡人员从死亡到停发中位 {med:g} 个月(死亡日期至火化记录中位 "
                    f"{statistics.median(crem) if crem else '-'} 天, 至户籍注销中位 "
                    f"{statistics.median(cancel) if cancel else '-'} 天): 死亡信息未及时推送至"
                    "发放部门, 停发依赖户籍注销"
                ),
                fix=(
                    "建立卫健、公安、殡葬与发放部门的死亡信息按月比对机制, 发放前比对死亡登记和"
                    "火化记录; 对已死亡人员及时停发并追回多发资金"
                ),
                clue_ids=sorted(
                    x for x in (c.clue("deceased_recipient", pid) for pid, _ in late) if x
                ),
                detail={
                    "subjects": sorted(pid for pid, _ in late),
                    "deceased_payees": n_dec,
                    "lag_months": sorted(lags),
                    "median_lag_months": med,
                    "median_days_to_cremation": statistics.median(crem) if crem else None,
                    "median_days_to_cancel": statistics.median(cancel) if cancel else None,
                    "never_stopped_in_township": never.get(town, 0),
                    "items": sorted(items),
                    "amount_by_department": by_dept,
                    "data_end": data_end,
                },
            )
        )
    out.status["death_sync_lag"] = ("ok", f"{len(per_person)} deceased payees paid past grace")


def _paid_by_department(c: _Ctx, months: list[tuple[str, list[str]]]) -> dict[str, float]:
    """What the payers paid these persons in these months, per owning department."""
    out: dict[str, float] = defaultdict(float)
    pairs = [(pid, m) for pid, ms in months for m in ms]
    if not pairs:
        return {}
    rows = c.wh.execute(
        f"SELECT item, sum(amount) FROM r_payment WHERE {PAID} AND (payee_pid, period) IN "
        f"(SELECT (unnest(?), unnest(?))) GROUP BY 1",
        [[p for p, _ in pairs], [m for _, m in pairs]],
    ).fetchall()
    for item, amount in rows:
        out[c.department_of([item])] += _money(amount)
    return {k: round(v, 2) for k, v in sorted(out.items())}


# ---------------------------------------------------------------------- approver_kin
def _approver_kin(c: _Ctx, out: FindingSet) -> None:
    ok, why = c.rule_ok("approver_relative")
    if not ok:
        out.status["approver_kin"] = ("stale", why)
        return
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for subject, _period, amount, vc, ev in c.hits("approver_relative"):
        seen_roles = set()
        for o in ev.get("officials") or []:
            key = (vc[:9], o.get("role") or "", o.get("name") or "")
            if key in seen_roles:
                continue
            seen_roles.add(key)
            g = groups.setdefault(key, {"cases": {}, "relations": set()})
            g["cases"][ev.get("case_no") or subject] = (subject, amount)
            g["relations"].add(str(o.get("relation") or ""))
    counts = [len(g["cases"]) for g in groups.values()]
    members: dict[str, set[str]] = defaultdict(set)
    if "r_assistance" in c.tables:
        for case_no, pid in c.wh.execute(
            "SELECT case_no, coalesce(member_pid, member_name) FROM r_assistance "
            "WHERE _dup_of IS NULL"
        ).fetchall():
            if pid:
                members[case_no].add(pid)
    for (town, role, name), g in sorted(groups.items()):
        n = len(g["cases"])
        if n < c.p.kin_min_cases:
            continue
        others = list(counts)
        others.remove(n)
        peer = statistics.median(others) if others else 0.0
        role_cn = "审批人" if role == "approver" else "经办人"
        amount = round(sum(a for _s, a in g["cases"].values()), 2)
        people = sum(len(members.get(cn, set())) or 1 for cn in g["cases"])
        out.findings.append(
            Finding(
                finding_id=f"approver_kin:{town}:{role}:{name}",
                kind="approver_kin",
                title=f"{role_cn}审批本人近亲属救助申请未回避",
                department="民政局",
                region_code=town,
                region=c.town(town),
                who=f"{role_cn}{name}",
                people=people,
                cases=n,
                months=0,
                amount=amount,
                value=float(n),
                peer_value=float(peer),
                cause=(
                    f"{c.town(town)}{role_cn}{name}经办/审批本人近亲属"
                    f"({'、'.join(sorted(g['relations']))})的救助申请 {n} 件: 回避制度未落实, "
                    "审批系统未核验申请人与经办审批人员的亲属关系"
                ),
                fix=(
                    "落实经办审批人员近亲属备案和回避制度; 审批系统对申请家庭成员与经办、审批人员"
                    "进行亲属关系自动比对, 命中即转他人审批; 对已审批案件逐件复核"
                ),
                clue_ids=sorted(
                    x for x in (c.clue("approver_relative", s) for s, _a in g["cases"].values())
                    if x
                ),
                detail={"case_nos": sorted(g["cases"]),
                        "subjects": sorted(s for s, _a in g["cases"].values()),
                        "relations": sorted(g["relations"]), "role": role, "name": name},
            )
        )  # fmt: skip
    out.status["approver_kin"] = ("ok", f"{len(groups)} officials with relatives' cases")


# ---------------------------------------------------------------------- approval_check
def _approval_check(c: _Ctx, out: FindingSet) -> None:
    if "r_assistance" not in c.tables:
        out.status["approval_check"] = ("blind", "no r_assistance (case approval dates)")
        return
    starts = {
        r[0]: r[1]
        for r in c.wh.execute(
            "SELECT case_no, min(start_date) FROM r_assistance WHERE _dup_of IS NULL GROUP BY 1"
        ).fetchall()
    }
    notes = []
    for rule, (key, date_key, label) in ASSET_RULES.items():
        ok, why = c.rule_ok(rule)
        if not ok:
            notes.append(why)
            continue
        split: dict[str, dict[str, Any]] = {
            "at_approval": {"clues": set(), "people": set(), "months": 0, "amount": 0.0,
                            "towns": defaultdict(int)},
            "later": {"clues": set(), "people": set(), "months": 0, "amount": 0.0,
                      "towns": defaultdict(int)},
        }  # fmt: skip
        unknown = 0
        for subject, _period, amount, vc, ev in c.hits(rule):
            start = _date(starts.get(ev.get("case_no")))
            dates = [d for d in (_date(a.get(date_key)) for a in ev.get(key) or []) if d]
            if start is None or not dates:
                unknown += 1
                continue
            side = split["at_approval" if min(dates) <= start else "later"]
            side["clues"].add(subject)
            side["people"].add(subject)
            side["months"] += 1
            side["amount"] += amount
            side["towns"][vc[:9]] += 1
        a, b = split["at_approval"], split["later"]
        if not a["clues"] and not b["clues"]:
            continue
        total = len(a["clues"]) + len(b["clues"])
        for side_name, side, title, cause, fix in (
            ("at_approval", a, f"低保审批时未核查家庭成员名下{label}",
             f"{label}在救助审批前已登记, 审批时未与{label}登记信息比对",
             f"审批前必须比对{label}登记信息, 比对结果留痕入档"),
            ("later", b, f"低保对象{label}变化后未动态复核",
             f"{label}在审批后才取得, 未开展定期复核",
             f"每年至少一次与{label}登记信息批量比对, 有变化的及时调整或停发"),
        ):  # fmt: skip
            if not side["clues"]:
                continue
            share = len(side["clues"]) / total
            out.findings.append(
                Finding(
                    finding_id=f"approval_check:{rule}:{side_name}",
                    kind="approval_check",
                    title=title,
                    department="民政局",
                    region_code="",
                    region="全县",
                    who=rule,
                    people=len(side["people"]),
                    cases=len(side["clues"]),
                    months=side["months"],
                    amount=round(side["amount"], 2),
                    value=round(share, 4),
                    peer_value=round(1 - share, 4),
                    cause=cause,
                    fix=fix,
                    clue_ids=sorted(x for x in (c.clue(rule, s) for s in side["clues"]) if x),
                    detail={"rule": rule, "split": side_name, "unknown_dates": unknown,
                            "by_township": dict(sorted(side["towns"].items()))},
                )
            )  # fmt: skip
    # a rule that did not run ok leaves its share of the picture unknown: say so
    out.status["approval_check"] = (
        ("stale", "; ".join(notes)) if notes else ("ok", "asset rules ran ok")
    )


# ---------------------------------------------------------------------- concentration
def _concentration(c: _Ctx, out: FindingSet) -> None:
    rows = c.wh.execute(
        "SELECT rule_id, subject, coalesce(village_code, ''), sum(amount), "
        "count(DISTINCT NULLIF(period, '')) FROM hit WHERE run_id = ? AND subject IS NOT NULL "
        "AND rule_id <> 'relative_concentration' GROUP BY 1, 2, 3",
        [c.run_id],
    ).fetchall()
    by_village: dict[str, list[tuple[str, str, float, int]]] = defaultdict(list)
    for rule, subject, vc, amount, months in rows:
        if len(vc) == 12:
            by_village[vc].append((rule, subject, _money(amount), months or 0))
    official_of: dict[str, dict[str, str]] = {"approver": {}, "handler": {}}
    units: dict[str, int] = defaultdict(int)  # cases per official, paid persons per village
    if "r_assistance" in c.tables:
        for pid, town, approver, handler in c.wh.execute(
            # an applicant with several cases: the latest case's township and officials
            # (then by case number and names), the same pick on every run
            "SELECT applicant_pid, left(village_code, 9), approver_name, handler_name FROM "
            "(SELECT *, row_number() OVER (PARTITION BY applicant_pid ORDER BY start_date DESC "
            "NULLS LAST, case_no, village_code, approver_name, handler_name) AS rn "
            "FROM r_assistance WHERE _dup_of IS NULL AND applicant_pid IS NOT NULL) WHERE rn = 1"
        ).fetchall():
            for role, name in (("approver", approver), ("handler", handler)):
                if name:
                    official_of[role][pid] = f"{role}|{town}|{name}"
                    units[f"{role}|{town}|{name}"] += 1
    if "r_payment" in c.tables:
        for vc, n in c.wh.execute(
            f"SELECT village_code, count(DISTINCT payee_pid) FROM r_payment WHERE {PAID} "
            "AND village_code IS NOT NULL GROUP BY 1"
        ).fetchall():
            units[vc] = n
    by_official: dict[str, dict[str, list[tuple[str, str, float, int]]]] = {
        "approver": defaultdict(list), "handler": defaultdict(list)}  # fmt: skip
    for rule, subject, _vc, amount, months in rows:
        for role, of in official_of.items():
            if subject in of:
                by_official[role][of[subject]].append((rule, subject, _money(amount), months or 0))
    for dim, groups in (
        ("village", by_village),
        ("approver", by_official["approver"]),
        ("handler", by_official["handler"]),
    ):
        # clues per unit (cases approved, paid persons of the village) against the pooled
        # rate of the peers: a busy approver is not a suspicious one
        counts = {k: len({(r, s) for r, s, _a, _m in v}) for k, v in groups.items()}
        total_n = sum(counts.values())
        total_u = sum(units.get(k, 0) for k in counts)
        for key, clues in sorted(groups.items()):
            n = counts[key]
            u = units.get(key, 0)
            if n < c.p.conc_min_clues or u == 0 or total_u - u <= 0:
                continue
            rate = n / u
            peer = (total_n - n) / (total_u - u)
            if rate < c.p.conc_ratio * peer:
                continue
            if dim == "village":
                region_code, who = key, c.village_names.get(key, key)
            else:
                _role, region_code, who = key.split("|", 2)
                who = f"{'审批人' if dim == 'approver' else '经办人'}{who}"
            rules = sorted({r for r, _s, _a, _m in clues})
            out.findings.append(
                Finding(
                    finding_id=f"concentration:{dim}:{key}",
                    kind="concentration",
                    title=(
                        "村级问题线索集中" if dim == "village" else f"{who[:3]}经手问题线索集中"
                    ),
                    department=c.town(region_code) if dim == "village" else "民政局",
                    region_code=region_code[:9],
                    region=c.town(region_code),
                    who=who,
                    people=len({s for _r, s, _a, _m in clues}),
                    cases=n,
                    months=sum(m for _r, _s, _a, m in clues),
                    amount=round(sum(a for _r, _s, a, _m in clues), 2),
                    value=round(rate, 4),
                    peer_value=round(peer, 4),
                    cause=(
                        f"{who}线索 {n} 条, 每{'名受益人' if dim == 'village' else '件'} "
                        f"{rate:.2f} 条, 同级 {peer:.2f} 条: 涉及 {', '.join(rules)}"
                    ),
                    fix=(
                        "对该单位(人员)经办的全部救助对象开展专项复核, "
                        "检查审核把关和民主评议、公示程序"
                    ),
                    clue_ids=sorted(x for x in (c.clue(r, s) for r, s, _a, _m in clues) if x),
                    detail={"dimension": dim, "rules": rules},
                )
            )  # fmt: skip
    out.status["concentration"] = (
        "ok",
        f"{len(by_village)} villages, {len(by_official['approver'])} approvers, "
        f"{len(by_official['handler'])} handlers",
    )


# ---------------------------------------------------------------------- identity_weakness
def _identity_weakness(c: _Ctx, out: FindingSet) -> None:
    if "r_payment" not in c.tables:
        out.status["identity_weakness"] = ("blind", "no r_payment")
        return
    per: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"bad_id_rows": 0, "bad_id_amount": 0.0, "ghost": set(), "shared": set(),
                 "amount": 0.0, "people": set(), "months": 0}
    )  # fmt: skip
    for item, _status, n, amount in c.wh.execute(
        f"SELECT item, payee_id_status, count(*), sum(amount) FROM r_payment WHERE {PAID} "
        "AND payee_id_status IN ('bad_checksum', 'missing', 'bad_date') GROUP BY 1, 2"
    ).fetchall():
        d = per[c.department_of([item])]
        d["bad_id_rows"] += n
        d["bad_id_amount"] += _money(amount)
    for rule, key in (("ghost_recipient", "ghost"), ("shared_account", "shared")):
        if not c.rule_ok(rule)[0]:
            continue
        for subject, _period, amount, _vc, ev in c.hits(rule):
            items = ev.get("items") or ["低保金"]
            d = per[c.department_of(items)]
            d[key].add(subject)
            d["people"].add(subject)
            d["amount"] += amount
            d["months"] += 1 if _period else 0
    for dept, d in sorted(per.items()):
        n = len(d["ghost"]) + len(d["shared"])
        if n == 0 and d["bad_id_rows"] == 0:
            continue
        clue_ids = [c.clue("ghost_recipient", s) for s in d["ghost"]]
        clue_ids += [c.clue("shared_account", s) for s in d["shared"]]
        out.findings.append(
            Finding(
                finding_id=f"identity_weakness:{dept}",
                kind="identity_weakness",
                title="发放数据身份信息与账户管理薄弱",
                department=dept,
                region_code="",
                region="全县",
                who="",
                people=len(d["people"]),
                cases=n,
                months=d["months"],
                amount=round(d["amount"], 2),
                value=float(d["bad_id_rows"]),
                peer_value=0.0,
                cause=(
                    f"发放明细中身份证号缺失或校验不通过 {d['bad_id_rows']} 行"
                    f"(金额 {d['bad_id_amount']:,.2f} 元), 查无此人 {len(d['ghost'])} 人, "
                    f"多户共用账户 {len(d['shared'])} 个: 录入时未做身份核验和账户实名比对"
                ),
                fix="发放系统录入时校验身份证号码并与户籍比对; 代发账户实名核验, 一户一账户",
                clue_ids=sorted(x for x in clue_ids if x),
                detail={"bad_id_rows": d["bad_id_rows"],
                        "bad_id_amount": round(d["bad_id_amount"], 2),
                        "ghost": len(d["ghost"]), "shared_accounts": len(d["shared"])},
            )
        )  # fmt: skip
    out.status["identity_weakness"] = ("ok", f"{len(per)} departments")


ANALYSES = {
    "death_sync_lag": _death_sync_lag,
    "approver_kin": _approver_kin,
    "approval_check": _approval_check,
    "concentration": _concentration,
    "identity_weakness": _identity_weakness,
}


def analyse(
    wh: duckdb.DuckDBPyConnection,
    run_id: str,
    *,
    clue_ids: dict[tuple[str, str], str] | None = None,
    rules_dir: str | Path = "rules",
    params: Params | None = None,
) -> FindingSet:
    """Every finding of run ``run_id`` (the warehouse connection is only read)."""
    ctx = _Ctx(wh, run_id, clue_ids or {}, rules_dir, params or Params())
    out = FindingSet(run_id)
    if "hit" not in ctx.tables or not ctx.status:
        for kind in ANALYSES:
            out.status[kind] = ("skipped", f"run {run_id} has no detect results")
        return out
    for fn in ANALYSES.values():
        fn(ctx, out)
    return out


# ---------------------------------------------------------------------- the store
def clue_id_map(store: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], str]:
    return {(r[0], r[1]): r[2] for r in
            store.execute("SELECT rule_id, subject, clue_id FROM clue").fetchall()}  # fmt: skip


def store_findings(store: duckdb.DuckDBPyConnection, fs: FindingSet) -> bool:
    """Record a run's findings in the review store once (False when already there)."""
    store.execute(FINDING_DDL)
    if store.execute("SELECT 1 FROM finding_status WHERE run_id = ?", [fs.run_id]).fetchone():
        return False
    now = dt.datetime.now().replace(microsecond=0)
    with warehouse.transaction(store):
        for f in fs.findings:
            store.execute(
                "INSERT INTO finding VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [fs.run_id, f.finding_id, f.kind, f.title, f.department, f.region_code,
                 f.region, f.who, f.people, f.cases, f.months, Decimal(f"{f.amount:.2f}"),
                 f.value, f.peer_value, json.dumps(f.clue_ids, ensure_ascii=False),
                 json.dumps({**f.detail, "cause": f.cause, "fix": f.fix}, ensure_ascii=False,
                            default=str), now],
            )  # fmt: skip
        for kind, (st, why) in fs.status.items():
            store.execute(
                "INSERT INTO finding_status VALUES (?, ?, ?, ?)", [fs.run_id, kind, st, why]
            )
        audit(store, "findings", {"run_id": fs.run_id, "findings": len(fs.findings)})
    return True


def attach_trends(store: duckdb.DuckDBPyConnection, fs: FindingSet) -> None:
    """Each finding's figures in every stored run (synced order), for the trend."""
    store.execute(FINDING_DDL)
    runs = [r[0] for r in store.execute(
        "SELECT run_id FROM review_run ORDER BY synced_at, run_id").fetchall()]  # fmt: skip
    rows = store.execute(
        "SELECT run_id, finding_id, people, cases, months, amount::DOUBLE FROM finding"
    ).fetchall()
    got = {(r[0], r[1]): r for r in rows}
    analysed = {
        r[0] for r in store.execute("SELECT DISTINCT run_id FROM finding_status").fetchall()
    }
    for f in fs.findings:
        f.trend = []
        for run in runs:
            if run not in analysed and run != fs.run_id:
                continue
            r = got.get((run, f.finding_id))
            if run == fs.run_id and r is None:
                r = (run, f.finding_id, f.people, f.cases, f.months, f.amount)
            f.trend.append({"run_id": run, "people": r[2] if r else 0,
                            "cases": r[3] if r else 0, "months": r[4] if r else 0,
                            "amount": round(r[5], 2) if r else 0.0})  # fmt: skip


def as_dict(f: Finding) -> dict[str, Any]:
    return asdict(f)
