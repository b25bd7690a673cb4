"""Plant rule scenarios (cases and traps) into a township's truth; see rule-catalog.md.

Every rule of the catalogue gets cases (must be found) and each of its named trap kinds (must
not be flagged), at least ``FLOOR`` of each in the whole county and about one per
``PER_PERSONS`` residents at scale. Conventions follow the catalogue and the rules in
``rules/*.yaml``: subject = the resolved person's 18-digit ID (the applicant for household
rules, the village code for relative_concentration, the supplier credit code for
supplier_official_link, the account holder for shared_account); period = the payment month
``YYYY-MM`` for payment-driven rules, empty for time-less ones.

Scenario rows are written ``critical`` (no duplicate/damaged rows, only identity noise a
correct system resolves exactly), so every planted case is derivable from the files. Case
periods are computed at the end of the township from the final payments, so they match what a
correct engine sees.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import numpy as np

from crossmatch.synth.county import (
    ASSIST_ITEMS,
    EXEMPT_VEHICLES,
    FARMLAND_MONTH,
    FARMLAND_RATE,
    JAN1,
    TOP_BAND,
    Builder,
    Case,
    Pay,
    TownData,
    banded,
    close_kin,
    standard,
    surname_of,
    uscc,
    with_surname,
)
from crossmatch.synth.model import YEAR, Household, Person, Village

D = dt.date
FLOOR = 24  # cases (and traps of each kind) per rule in the whole county, at least
PER_PERSONS = 2000  # at scale: about one planted case per rule per this many residents
MIN_CASES = 3  # relative_concentration defaults (catalogue v1.1 threshold form)
MIN_SHARE = 0.25
Row = tuple[str, str, str, str, str]


def ym(m: int) -> str:
    return f"{YEAR}-{m:02d}"


class Planter:
    """Plants every rule's scenarios, township by township."""

    def __init__(self, builder: Builder, persons: int) -> None:
        self.b = builder
        self.total = max(FLOOR, persons // PER_PERSONS)
        self.village_stats: list[tuple[str, int, int, str]] = []  # code, units, flagged, intent
        self.conc: dict[str, str] = {}  # village code -> concentration intent

    def quota(self, idx: int, total: int | None = None) -> int:
        total = self.total if total is None else total
        n = self.b.n_towns
        return total // n + (1 if idx < total % n else 0)

    # ------------------------------------------------------------------ before departments
    def prepare(self, data: TownData, rng: np.random.Generator) -> None:
        """Shape the background of concentration villages before records are made.

        A case village gets exactly five poor households (all will hold a cadre relative), so
        its excess is clearly significant; a 'clan' village gets many poor households so that
        three cadre-relative households there are *not* significant.
        """
        idx = data.town.idx
        n_case = self.quota(idx, FLOOR + 4)
        n_small = self.quota(idx, FLOOR)
        n_clan = self.quota(idx, 8)
        vs = list(data.town.villages)
        order = [vs[int(i)] for i in rng.permutation(len(vs))]
        order.sort(key=lambda v: -sum(1 for hh in v.households if hh.members[0].age_on(JAN1) >= 52))
        plan = ["conc_case"] * n_case + ["conc_small"] * n_small + ["conc_clan"] * n_clan
        for v, intent in zip(order, plan, strict=False):
            elders = [
                hh
                for hh in v.households
                if hh.members[0].age_on(JAN1) >= 52
                and hh.members[0].death is None
                and hh.members[0].moved is None
            ]
            if len(elders) < 7:
                continue
            self.conc[v.code] = intent
            if intent == "conc_case":
                for hh in v.households:
                    hh.poor = False
                for j in rng.permutation(len(elders))[:6]:
                    elders[int(j)].poor = True
            elif intent == "conc_clan":
                for hh in v.households:
                    if hh.members[0].death is None:
                        hh.poor = hh.poor or rng.random() < 0.45
                for hh in elders:
                    hh.poor = True
        # more recipient households everywhere else: a low county base rate of cadre-relative
        # households (significance needs it) and enough cases for the household rules
        for v in vs:
            if self.conc.get(v.code) != "conc_case":
                for hh in v.households:
                    if not hh.poor and rng.random() < 0.16:
                        hh.poor = True

    # ------------------------------------------------------------------ after departments
    def plant(self, data: TownData, rng: np.random.Generator) -> None:
        self.d = data
        self.rng = rng
        self.idx: dict[int, list[Pay]] = {}
        for x in data.pays:
            self.idx.setdefault(id(x.payee), []).append(x)
        self.later: list[tuple[str, str, str, Callable[[], list[str]], str]] = []
        q = self.quota(data.town.idx)
        self._cadre_relatives(q)
        self._approver_relative(q)
        self._over_standard(q)
        self._payroll(q)
        self._vehicle(q)
        self._business(q)  # before property: its pool (adult members) is the scarcer one
        self._property(q)
        self._underage(q)
        self._farmland(q)
        self._deceased(q)
        self._ghost(q)
        self._duplicate(q)
        self._shared_account(q)
        self._cadre_account(q)
        self._supplier(q)
        self._natural_traps()
        self._check_suppliers()
        self._fix_handlers()
        for rule, kind, subject, periods, note in self.later:
            for per in periods():
                data.plant(rule, kind, subject, per, note)

    def tally(self, data: TownData, cases_loaded: set[int], assist_paid: set[int]) -> None:
        """Count each village's cases as a correct system sees them (after export).

        n = the village's cases with an intact roster row (damaged rows are quarantined) whose
        interval overlaps the year (rules/relative_concentration.yaml's ``active``); r = those
        holding a cadre_relative_recipient case (an unfiled close relative of a cadre of the
        same village, in a paid month of the term, the relation holding then). That truth is
        itself checked against the files by the oracle.
        """
        crr = {s for r, k, s, _p, _n in data.planted if r == "cadre_relative_recipient"
               and k == "case"}  # fmt: skip
        units: dict[str, int] = {}
        flagged: dict[str, int] = {}
        y0, y1 = D(YEAR, 1, 1), D(YEAR, 12, 31)
        for c in data.cases:
            if id(c) not in cases_loaded or c.start > y1 or (c.end is not None and c.end < y0):
                continue
            code = c.village.code
            units[code] = units.get(code, 0) + 1
            flagged[code] = flagged.get(code, 0) + (c.applicant.pid in crr)
        for v in data.town.villages:
            if v.code in units:
                intent = self.conc.get(v.code, "background")
                self.village_stats.append((v.code, units[v.code], flagged[v.code], intent))

    def finish(self) -> list[Row]:
        """County-level labels: relative_concentration at the rule's defaults (catalogue v1.1
        threshold form): a village is a case when r >= 3 of its n active cases are cadre
        relatives and r/n >= 0.25; a trap when it has at least one such case otherwise (one or
        two; or a clan village where three are a small share). Villages without any
        cadre-relative case are neither.
        """
        rows: list[Row] = []
        for code, units, kk, intent in self.village_stats:
            note = f"{kk}/{units} active cases are cadre relatives ({intent})"
            if kk >= MIN_CASES and kk / units >= MIN_SHARE:
                rows.append(("relative_concentration", "case", code, "", note))
            elif kk >= 1:
                rows.append(("relative_concentration", "trap", code, "", note))
        return rows

    # ------------------------------------------------------------------ pickers
    def _free_cases(
        self, kind: str | None = None, min_members: int = 1, conc: bool = True
    ) -> list[Case]:
        """Background cases paid all year and not yet used (``conc=False``: outside the
        relative_concentration villages, for scenarios that add a cadre relative)."""
        out = []
        for c in self.d.cases:
            if c.critical or c.end is not None or (not conc and c.village.code in self.conc):
                continue
            if c.applicant.death is not None or len(c.members) < min_members:
                continue
            if (kind == "低保" and c.kind == "特困供养") or (
                kind == "特困" and c.kind != "特困供养"
            ):
                continue
            out.append(c)
        return out

    def _take(self, items: list[Any]) -> Any:
        if not items:
            return None
        return items.pop(int(self.rng.integers(0, len(items))))

    def _use_case(self, c: Case) -> None:
        c.critical = True
        for p, _rel in c.members:
            p.busy = True
        for pay in self._pays(c.applicant):
            if pay.item in ASSIST_ITEMS:
                pay.critical = True

    def _case_months(self, c: Case, window: Callable[[int], bool] = lambda m: True) -> list[str]:
        months = sorted(
            {
                p.month
                for p in self._pays(c.applicant)
                if p.item in ASSIST_ITEMS and p.status == "成功"
            }
        )
        return [ym(m) for m in months if window(m)]

    def _case_rows(self, rule: str, kind: str, c: Case, note: str, window: Any = None) -> None:
        w = window or (lambda m: True)
        self.later.append((rule, kind, c.applicant.pid, lambda: self._case_months(c, w), note))

    def _free_people(
        self, pred: Callable[[Person], bool] = lambda p: True, village: Village | None = None
    ) -> list[Person]:
        vs = [village] if village else self.d.town.villages
        return [
            p
            for v in vs
            for hh in v.households
            if not hh.poor
            for p in hh.members
            if not p.busy and not p.role and p.death is None and p.moved is None and pred(p)
        ]

    def _new_single(self, v: Village, sex: str, age: int) -> Person:
        """A new one-person household (a resident nobody else planted)."""
        no = f"{v.code}{len(v.households) + 1:04d}"
        hh = Household(no, v, f"{v.town.name}{v.name}{int(self.rng.integers(1, 200))}号")
        v.households.append(hh)
        p = self.b.person(self.rng, hh, "户主", sex, age)
        p.busy = True
        self.d.town.persons.append(p)
        return p

    def _payee_streams(self, item: str) -> list[Person]:
        """Living payees with twelve successful non-critical payments of an item."""
        count: dict[int, int] = {}
        who: dict[int, Person] = {}
        for pay in self.d.pays:
            if pay.item == item and pay.status == "成功" and not pay.critical:
                count[id(pay.payee)] = count.get(id(pay.payee), 0) + 1
                who[id(pay.payee)] = pay.payee
        return [
            p
            for k, p in who.items()
            if count[k] == 12 and not p.busy and p.death is None and not p.role
        ]

    def _acct(self, p: Person) -> str:
        """The person's account, its bank-file row made critical (the holder must resolve)."""
        self.b.account(p, self.rng, self.d)
        self.d.accounts = [
            (a, h, bk, o, c, crit or h is p) for a, h, bk, o, c, crit in self.d.accounts
        ]
        return p.account

    def _crit_rows(self, p: Person) -> None:
        """Make p's background rows in the cadre roster, school staff and land contracts
        critical: a scenario that picks up an existing person needs those rows resolvable
        (no ID damage where name + village do not identify the person), like its own rows."""
        d = self.d
        d.cadres = [(*x[:5], x[5] or x[0] is p) for x in d.cadres]
        d.staff = [(*x[:4], x[4] or x[0] is p) for x in d.staff]
        d.land = [(*x[:5], x[5] or x[1] is p) for x in d.land]

    def _pays(self, p: Person, item: str | None = None) -> list[Pay]:
        return [x for x in self.idx.get(id(p), []) if item is None or x.item == item]

    def _pay(self, item: str, p: Person, amount: float, month: int, **kw: Any) -> Pay:
        """A planted (critical) payment, indexed by payee."""
        x = self.b.pay(self.d, item, p, amount, month, self.rng, critical=True, **kw)
        self.idx.setdefault(id(p), []).append(x)
        return x

    def _crit(self, p: Person) -> None:
        p.busy = True
        for x in self._pays(p):
            x.critical = True

    def _paid_months(self, p: Person, item: str | None = None) -> list[str]:
        return [ym(m) for m in sorted({x.month for x in self._pays(p, item) if x.status == "成功"})]

    # ------------------------------------------------------------------ favouritism
    def _link_relative(
        self,
        c: Case,
        v_cadre: Village,
        how: str,
        post: str = "村委委员",
        term: tuple[dt.date, dt.date] | None = None,
    ) -> tuple[Person, Person]:
        """Make a new cadre who is (or was) a close relative of a member of case ``c``.

        ``child``: the cadre's hukou is in the recipient household, as the applicant's child
        (parent/child derivable from 户籍). ``spouse``: the applicant's daughter (on the roster)
        married the cadre, who lives in his own household (配偶 derivable from 婚姻登记).
        ``out_son`` / ``out_daughter``: the applicant's child with a household of their own
        (often another village's): only the registry's parent-ID columns state it.
        ``divorced``: as ``spouse``, divorced before the case's approval. ``widower``: the cadre's
        wife, the applicant's married-out daughter, died before the case's approval (the link
        through her ends with her death). Returns (cadre, the relative on the roster).
        """
        b, rng, head = self.b, self.rng, c.applicant
        hh = head.hh
        assert hh is not None
        age = max(28, min(55, head.age_on(JAN1) - int(rng.integers(24, 30))))
        sname = surname_of(head.name) if head.sex == "男" else None
        if how in ("child", "out_son", "out_daughter") and self._siblings_poor(c, v_cadre):
            how = "spouse"  # the cadre's siblings would make other cases there relatives too
        if how == "child":
            sex = "男" if rng.random() < 0.7 else "女"
            cadre = b.person(rng, hh, "子" if sex == "男" else "女", sex, age, head.name[0])
            _set_parents(cadre, head)
            self.d.town.persons.append(cadre)
            relative = head
        elif how in ("out_son", "out_daughter"):
            sex = "男" if how == "out_son" else "女"
            cadre = self._new_single(v_cadre, sex, age)
            if sname:
                cadre.name = self._unique_name(with_surname(cadre.name, sname))
            _set_parents(cadre, head)
            relative = head
        elif how == "widower":
            cadre = self._new_single(v_cadre, "男", age + int(rng.integers(0, 4)))
            wife = b.person(rng, cadre.hh, "配偶", "女", age, sname)
            self.d.town.persons.append(wife)
            _set_parents(wife, head)
            wife.busy = True
            wife.death = D(2021, 1, 1) + dt.timedelta(days=int(rng.integers(0, 900)))
            b._record_death(self.d, wife, rng, critical=True)
            dm = D(2008, 1, 1) + dt.timedelta(days=int(rng.integers(0, 10 * 365)))
            self.d.marriages.append(("结婚", cadre, wife, dm, True))
            # the case was approved after her death (still before the paid year)
            c.start = wife.death + dt.timedelta(days=int(rng.integers(30, 300)))
            relative = head
        else:  # spouse / divorced
            wife = b.person(rng, hh, "女", "女", age, head.name[0])
            _set_parents(wife, head)
            self.d.town.persons.append(wife)
            c.members.append((wife, "子女"))
            wife.busy = True
            cadre = self._new_single(v_cadre, "男", age + int(rng.integers(0, 4)))
            d = D(2008, 1, 1) + dt.timedelta(days=int(rng.integers(0, 12 * 365)))
            if how == "divorced":
                d = D(2006, 1, 1) + dt.timedelta(days=int(rng.integers(0, 8 * 365)))
                div = d + dt.timedelta(days=int(rng.integers(400, 2000)))
                self.d.marriages.append(("离婚", cadre, wife, div, True))
                c.start = max(c.start, div + dt.timedelta(days=int(rng.integers(30, 300))))
                c.start = min(c.start, D(YEAR - 1, 12, 20))
            self.d.marriages.append(("结婚", cadre, wife, d, True))
            relative = wife
        cadre.busy = True
        cadre.role = "cadre"
        if term is None:
            term = (D(2021, 3, 1) + dt.timedelta(days=int(rng.integers(0, 60))), D(2026, 3, 31))
        self.d.cadres.append((cadre, v_cadre, post, term[0], term[1], True))
        return cadre, relative

    def _siblings_poor(self, c: Case, v: Village) -> bool:
        """Whether a child of the applicant's couple lives in another poor household of v."""
        head = c.applicant
        couple = {id(head)} | {id(x) for x in (head.hh.members if head.hh else [])
                               if x.rel in ("户主", "配偶")}  # fmt: skip
        return any(
            p.hh is not None and p.hh is not head.hh and p.hh.poor and p.hh.village is v
            for p in self.d.town.persons
            if (id(p.father) in couple) or (id(p.mother) in couple)
        )

    def _new_case(self) -> Case | None:
        """A new recipient household (an elderly resident living alone, paid all year) outside
        the relative_concentration villages: scenarios whose trap needs its own case, so the
        background's cases stay for the other rules."""
        d, b, rng = self.d, self.b, self.rng
        vs = [v for v in d.town.villages if v.code not in self.conc] or d.town.villages
        v = vs[int(rng.integers(0, len(vs)))]
        p = self._new_single(v, "男" if rng.random() < 0.5 else "女", int(rng.integers(55, 78)))
        assert p.hh is not None
        p.hh.poor = True
        n0, k0 = len(d.cases), len(d.pays)
        b._assistance(d, p.hh, rng)
        if len(d.cases) == n0:
            return None
        c = d.cases[-1]
        c.end = None
        b.case_payments(d, c, rng)
        for x in d.pays[k0:]:
            self.idx.setdefault(id(x.payee), []).append(x)
        return c

    def _unique_name(self, name: str) -> str:
        """``name``, or a variant of it no resident of the township bears (same surname)."""
        names = {p.name for p in self.d.town.persons}
        while name in names:
            sex = "男" if self.rng.random() < 0.5 else "女"
            name = surname_of(name) + self.b.given(sex, self.rng)
        return name

    def _cadre_relatives(self, q: int) -> None:
        d, rng = self.d, self.rng
        hows = ("child", "spouse", "out_son", "out_daughter")
        for v in d.town.villages:
            intent = self.conc.get(v.code)
            if intent is None:
                continue
            cases = [c for c in d.cases if c.village is v and c.end is None and not c.critical]
            cases = [c for c in cases if _head(c) and c.applicant.age_on(JAN1) >= 52]
            want = {"conc_case": 6, "conc_clan": 3, "conc_small": 1 + int(rng.random() < 0.25)}[
                intent
            ]
            for c in cases[:want]:
                self._use_case(c)
                how = hows[int(rng.integers(0, len(hows)))]
                self._link_relative(c, v, how)
                self._case_rows(
                    "cadre_relative_recipient", "case", c, f"{intent}: 村干部近亲属({how})"
                )
        # traps: filed relatives; relative of another village's cadre; same surname unrelated;
        # a former cadre (term ended a whole month or more before approval); a divorced
        # son-in-law; a son-in-law whose wife (the link) died before approval
        villages = list(d.town.villages)
        pool = self._free_cases(min_members=1, conc=False)
        pool = [c for c in pool if _head(c) and c.applicant.age_on(JAN1) >= 52]
        used_v: dict[str, int] = {}

        def take_spread() -> Case | None:
            # at most two such households per village: never 3, whatever a rule counts
            while pool:
                c = self._take(pool)
                if used_v.get(c.village.code, 0) < 2:
                    used_v[c.village.code] = used_v.get(c.village.code, 0) + 1
                    return c
            return None

        for _ in range(q):
            fc = take_spread()
            if fc is None:
                break
            c = fc
            self._use_case(c)
            how = hows[int(rng.integers(0, len(hows)))]
            cadre, rel = self._link_relative(c, c.village, how)
            d.filings.append(
                (cadre, rel, "父母" if rel is c.applicant else "配偶", "城乡低保",
                 D(2021, 4, 1) + dt.timedelta(days=int(rng.integers(0, 900))))
            )  # fmt: skip
            self._case_rows("cadre_relative_recipient", "trap", c, f"已备案的村干部近亲属({how})")
        # the traps below get a case of their own (new recipient households), so the background
        # cases stay for the other rules
        for k in range(q):
            oc = self._new_case()
            if oc is None or len(villages) < 2:
                break
            c = oc
            other = [v for v in villages if v is not c.village]
            w = other[int(rng.integers(0, len(other)))]
            self._use_case(c)
            self._link_relative(c, w, ("spouse", "out_daughter")[k % 2])
            self._case_rows("cadre_relative_recipient", "trap", c, f"外村({w.code})干部的近亲属")
        for k in range(q):
            fc = self._new_case()
            if fc is None:
                break
            c = fc
            self._use_case(c)
            # the term ended on the last day of month m of the year before; approval at least
            # a whole month later (a month-granular reading of the term cannot reach it)
            m = int(rng.integers(1, 10))
            end = D(YEAR - 1, m + 1, 1) - dt.timedelta(days=1)
            c.start = D(YEAR - 1, m + 2, 1) + dt.timedelta(days=int(rng.integers(0, 25)))
            term = (D(2015, 1, 1) + dt.timedelta(days=int(rng.integers(0, 700))), end)
            how = ("out_son", "child")[k % 2]
            self._link_relative(c, c.village, how, term=term)
            note = f"前任干部(任期止于{end:%Y-%m})的近亲属, 救助批准于{c.start}"
            self._case_rows("cadre_relative_recipient", "trap", c, note)
        for how, note in (("divorced", "已离婚的前女婿(干部)"),
                          ("widower", "干部之妻(申请人之女)在批准前已故")):  # fmt: skip
            for _ in range(q):
                fc = self._new_case()
                if fc is None:
                    break
                c = fc
                self._use_case(c)
                self._link_relative(c, c.village, how)
                self._case_rows("cadre_relative_recipient", "trap", c, note)
        n = 0
        for cadre, v, *_ in list(d.cadres):
            if n >= q or v.code in self.conc:
                continue
            for c in d.cases:
                if c.village is v and not c.critical and c.applicant.name[0] == cadre.name[0]:
                    self._case_rows(
                        "cadre_relative_recipient", "trap", c, f"与村干部{cadre.name}同姓不同户"
                    )
                    n += 1
                    break

    def _approver_relative(self, q: int) -> None:
        d, b, rng = self.d, self.b, self.rng
        gov, gov_code = d.gov  # type: ignore[attr-defined]
        self.keep_officials: set[int] = set()  # cases whose handler/approver a scenario chose

        def official(c: Case, k: int, how: str) -> Person:
            """A new 民政办 official related to case ``c`` by ``how``; handler or approver."""
            head = c.applicant
            age = max(28, min(55, head.age_on(JAN1) - int(rng.integers(24, 30))))
            if how == "out_son":  # the applicant's son with his own household (parent IDs)
                off = self._new_single(c.village, "男", age)
                if head.sex == "男":
                    off.name = with_surname(off.name, surname_of(head.name))
                _set_parents(off, head)
            else:
                off = self._new_single(c.village, "男", age + 2)
            off.role = "official"
            names = {p.name for p in d.town.persons if p is not off}
            while off.name in names:  # the handler is named on the roster by name only
                off.name = surname_of(off.name) + b.given("男", rng)
            post = "民政办科员" if k % 2 == 0 else "民政办主任"
            d.payroll.append((off, gov, gov_code, post, "行政", D(2012, 9, 1), None, True))
            if k % 2 == 0:
                c.handler = off
            else:
                c.approver = off
            self.keep_officials.add(id(c))
            return off

        def daughter(c: Case, hh: Household | None, age: int, rel: str) -> Person:
            head = c.applicant
            sn = surname_of(head.name) if head.sex == "男" else None
            w = b.person(rng, hh, rel, "女", age, sn)
            d.town.persons.append(w)
            _set_parents(w, head)
            w.busy = True
            return w

        for k in range(q):
            c = self._new_case()
            if c is None:
                break
            self._use_case(c)
            head = c.applicant
            role = "经办人" if k % 2 == 0 else "审批人"
            age = max(28, min(55, head.age_on(JAN1) - int(rng.integers(24, 30))))
            if k % 3 == 2:  # a son with a household of his own: only the parent-ID columns
                off = official(c, k, "out_son")
                note = f"{role}{off.name}是申请人之子(另立户, 户籍父母身份号码)"
            else:
                wife = daughter(c, head.hh, age, "女")
                c.members.append((wife, "子女"))
                off = official(c, k, "spouse")
                dm = D(2008, 1, 1) + dt.timedelta(days=int(rng.integers(0, 12 * 365)))
                d.marriages.append(("结婚", off, wife, dm, True))
                note = f"{role}{off.name}是成员的配偶(婚姻登记)"
            d.plant("approver_relative", "case", head.pid, "", note)
        # traps: the official was the applicant's son-in-law, but divorced the daughter, or
        # she died, before the case was approved
        for k in range(q):
            c = self._new_case()
            if c is None:
                break
            self._use_case(c)
            head = c.applicant
            age = max(28, min(55, head.age_on(JAN1) - int(rng.integers(24, 30))))
            off = official(c, k, "spouse")
            role = "经办人" if k % 2 == 0 else "审批人"
            if k % 2 == 0:
                wife = daughter(c, head.hh, age, "女")
                c.members.append((wife, "子女"))
                dm = D(2006, 1, 1) + dt.timedelta(days=int(rng.integers(0, 8 * 365)))
                div = dm + dt.timedelta(days=int(rng.integers(400, 2000)))
                d.marriages.append(("结婚", off, wife, dm, True))
                d.marriages.append(("离婚", off, wife, div, True))
                c.start = div + dt.timedelta(days=int(rng.integers(30, 400)))
                note = f"{role}{off.name}与申请人之女已于批准前离婚"
            else:
                assert off.hh is not None
                wife = daughter(c, off.hh, age, "配偶")
                wife.death = D(2021, 1, 1) + dt.timedelta(days=int(rng.integers(0, 900)))
                b._record_death(d, wife, rng, critical=True)
                dm = D(2008, 1, 1) + dt.timedelta(days=int(rng.integers(0, 10 * 365)))
                d.marriages.append(("结婚", off, wife, dm, True))
                c.start = wife.death + dt.timedelta(days=int(rng.integers(30, 300)))
                note = f"{role}{off.name}之妻(申请人之女)在批准前已故"
            d.plant("approver_relative", "trap", head.pid, "", note)
        n = 0
        planted = {s for r, k, s, _p, _n in d.planted if r == "approver_relative"}
        for c in d.cases:
            if n >= 2 * q:
                break
            if c.applicant.pid in planted or c.applicant.death is not None:
                continue
            if c.handler.name[0] == c.applicant.name[0]:
                note = f"经办人{c.handler.name}与申请人同姓但无亲属关系"
                d.plant("approver_relative", "trap", c.applicant.pid, "", note)
                n += 1

    # ------------------------------------------------------------------ household means
    def _member(self, c: Case, adult: bool = True) -> Person:
        ms = [p for p, _ in c.members if not adult or 22 <= p.age_on(JAN1) <= 58]
        return ms[int(self.rng.integers(0, len(ms)))] if ms else c.applicant

    def _payroll(self, q: int) -> None:
        d, rng = self.d, self.rng
        gov, gov_code = d.gov  # type: ignore[attr-defined]
        pool = [
            c for c in self._free_cases("低保", 2)
            if any(22 <= p.age_on(JAN1) <= 58 for p, _ in c.members)
        ]  # fmt: skip
        for k in range(3 * q):
            c = self._take(pool)
            if c is None:
                break
            self._use_case(c)
            m = self._member(c)
            kind = ("case", "ended_before", "exempt")[k % 3]
            if kind == "case":
                start_m = 1 if k % 2 == 0 else int(rng.integers(2, 10))
                start = D(2019, 3, 1) if start_m == 1 else D(YEAR, start_m, 1)
                d.payroll.append((m, gov, gov_code, "科员", "行政", start, None, True))
                self._case_rows("payroll_on_dibao", "case", c, f"成员{m.name}为财政供养人员",
                                lambda mm, s=start_m: mm >= s)  # fmt: skip
            elif kind == "ended_before":
                end = c.start - dt.timedelta(days=int(rng.integers(60, 900)))
                start = end - dt.timedelta(days=int(rng.integers(400, 3000)))
                d.payroll.append((m, gov, gov_code, "科员", "行政", start, end, True))
                self._case_rows("payroll_on_dibao", "trap", c, "供养关系在救助开始前已终止")
            else:
                post = ("保洁员", "护林员", "公益性岗位-村级协管员")[k % 3]
                d.payroll.append((m, gov, gov_code, post, "公益性岗位", D(2023, 3, 1), None, True))
                self._case_rows("payroll_on_dibao", "trap", c, "公益性岗位(豁免)")

    def _vehicle(self, q: int) -> None:
        d, b, rng = self.d, self.b, self.rng
        pool = self._free_cases("低保")
        for k in range(3 * q):
            c = self._take(pool)
            if c is None:
                break
            self._use_case(c)
            m = self._member(c)
            kind = ("case", "exempt", "gone")[k % 3]
            if kind == "case":
                vt = ("小型轿车", "小型普通客车", "小型越野客车", "轻型普通货车")[k % 4]
                reg_m = 1 if k % 2 == 0 else int(rng.integers(2, 11))
                reg = D(2020, 5, 12) if reg_m == 1 else D(YEAR, reg_m, 10)
                b.add_vehicle(d, m, vt, rng, "正常", None, reg=reg, critical=True)
                self._case_rows("vehicle_on_dibao", "case", c, f"成员{m.name}名下{vt}",
                                lambda mm, s=reg_m: mm >= s)  # fmt: skip
            elif kind == "exempt":
                vt = EXEMPT_VEHICLES[k % len(EXEMPT_VEHICLES)]
                b.add_vehicle(d, m, vt, rng, "正常", None, critical=True)
                self._case_rows("vehicle_on_dibao", "trap", c, f"豁免车型{vt}")
            else:
                status = "转移" if k % 2 == 0 else "报废"
                sd = D(2022, 1, 1) + dt.timedelta(days=int(rng.integers(0, 1000)))
                b.add_vehicle(d, m, "小型轿车", rng, status, sd, critical=True)
                self._case_rows("vehicle_on_dibao", "trap", c, f"车辆已{status}({sd})")

    def _property(self, q: int) -> None:
        """Catalogue v1.1: homes count when held on the same day inside the case interval, by
        owner or co-owner (共有人); 车位 never counts; commercial or office property does."""
        d, b, rng = self.d, self.b, self.rng
        pool = self._free_cases()
        props = {id(x[0]) for x in d.properties} | {id(p) for p in d.co_owners.values()}
        pool = [c for c in pool if not any(id(p) in props for p, _ in c.members)]
        two = [c for c in pool if any(p is not c.applicant for p, _ in c.members)]
        for k in range(4 * q):
            kind = ("case", "one_home", "sold", "co_owner")[k % 4]
            variant = (k // 4) % 3
            need_two = kind in ("sold", "co_owner") or (kind == "one_home" and variant == 2)
            c = self._take(two if need_two else pool)
            if c is None:
                continue
            for lst in (pool, two):
                if c in lst:
                    lst.remove(c)
            self._use_case(c)
            others = [p for p, _ in c.members if p is not c.applicant]
            m = self._member(c, adult=False)
            if kind == "case":
                if variant == 0:
                    b.add_property(d, c.applicant, "住宅", rng, D(2010, 6, 1), None, True)
                    b.add_property(d, m, "住宅", rng, D(2019, 8, 1), None, True)
                    note = "两套住宅"
                else:
                    usage = ("商业", "办公")[variant - 1]
                    b.add_property(d, m, usage, rng, D(2018, 4, 1), None, True)
                    note = f"{usage}用房"
                self._case_rows("property_on_dibao", "case", c, note)
            elif kind == "one_home":
                if variant == 2:  # one home co-owned by two members
                    co = others[int(rng.integers(0, len(others)))]
                    b.add_property(
                        d, c.applicant, "住宅", rng, D(2009, 4, 1), None, True, co_owner=co
                    )
                    note = "一套住宅由两名成员共有"
                else:
                    b.add_property(d, c.applicant, "住宅", rng, D(2006, 3, 1), None, True)
                    note = "仅一套住宅"
                if variant == 1:
                    b.add_property(d, m, "车位", rng, D(2016, 9, 1), None, True)
                    note = "仅一套住宅加一个车位(车位不计)"
                self._case_rows("property_on_dibao", "trap", c, note)
            elif kind == "sold":
                sm = others[int(rng.integers(0, len(others)))]
                if k % 8 == 2:
                    b.add_property(d, c.applicant, "住宅", rng, D(2006, 3, 1), None, True)
                    sold = D(2023, 1, 1) + dt.timedelta(days=int(rng.integers(0, 700)))
                    b.add_property(d, sm, "住宅", rng, D(2015, 3, 1), sold, True)
                    note = f"第二套住宅已于{sold}注销"
                else:  # sold on the 5th, the next home bought on the 20th of the same month
                    mo = int(rng.integers(3, 11))
                    b.add_property(d, c.applicant, "住宅", rng, D(2008, 5, 1), D(YEAR, mo, 5), True)
                    b.add_property(d, sm, "住宅", rng, D(YEAR, mo, 20), None, True)
                    note = f"{mo}月5日售出旧房、20日购入新房(同日从未持有两套)"
                self._case_rows("property_on_dibao", "trap", c, note)
            else:  # a member co-owns an outsider's home, the applicant owns one
                outs = self._free_people(lambda p: 25 <= p.age_on(JAN1) <= 70)
                out = self._take(outs)
                if out is None:
                    continue
                out.busy = True
                co = others[int(rng.integers(0, len(others)))]
                b.add_property(d, c.applicant, "住宅", rng, D(2007, 7, 1), None, True)
                b.add_property(d, out, "住宅", rng, D(2020, 10, 1), None, True, co_owner=co)
                self._case_rows("property_on_dibao", "case", c, f"成员{co.name}为另一套住宅共有人")

    def _business(self, q: int) -> None:
        d, b, rng = self.d, self.b, self.rng
        pool = [
            c for c in self._free_cases()
            if any(22 <= p.age_on(JAN1) <= 70 for p, _ in c.members)
        ]  # fmt: skip
        for k in range(3 * q):
            c = self._take(pool)
            if c is None:
                break
            self._use_case(c)
            m = self._member(c)
            kind = ("case", "deregistered", "small")[k % 3]
            if kind == "case":
                cap = float(rng.choice([10, 20, 50, 100, 300])) * 10000
                if k % 2 == 0:
                    e = b.new_enterprise(d, m, rng, capital=cap, status="存续")
                else:  # a shareholder, not the legal representative
                    reps = self._free_people(lambda p: 25 <= p.age_on(JAN1) <= 60)
                    rep = self._take(reps) or m
                    e = b.new_enterprise(d, rep, rng, capital=cap, status="在业")
                    e.holders.append((m, round(cap * 0.3, -2)))
                e.critical = True
                self._case_rows("business_on_dibao", "case", c, f"成员{m.name}经营{e.name}")
            elif kind == "deregistered":
                dereg = D(2021, 1, 1) + dt.timedelta(days=int(rng.integers(0, 1300)))
                e = b.new_enterprise(d, m, rng, capital=500000.0, status="注销", dereg=dereg)
                e.critical = True
                self._case_rows("business_on_dibao", "trap", c, f"企业已于{dereg}注销")
            else:
                e = b.new_enterprise(
                    d, m, rng, capital=float(rng.choice([1, 3, 5])) * 10000, status="存续"
                )
                e.critical = True
                self._case_rows("business_on_dibao", "trap", c, "注册资本低于阈值")

    # ------------------------------------------------------------------ individual payments
    def _underage(self, q: int) -> None:
        d, rng = self.d, self.rng
        cands = self._free_people(lambda p: 77 <= p.age_on(D(YEAR, 12, 31)) <= 80)
        done = 0
        while done < q:
            p = self._take(cands)
            if p is None:
                break
            turn = D(p.birth.year + 80, p.birth.month, 1)
            if turn.year == YEAR and turn.month <= 2:
                continue
            self._crit(p)
            start = D(YEAR - 1, int(rng.integers(1, 13)), 1)
            d.elderly = [e for e in d.elderly if e[0] is not p] + [(p, start, True)]
            have = {x.month for x in self._pays(p, "高龄津贴")}
            for m in range(1, 13):
                if m not in have:
                    self._pay("高龄津贴", p, 100.0, m)

            def months(p: Person = p, turn: dt.date = turn) -> list[str]:
                under = [m for m in range(1, 13) if (YEAR, m) < (turn.year, turn.month)]
                return [x for x in self._paid_months(p, "高龄津贴") if int(x[5:]) in under]

            self.later.append(
                ("underage_elderly_allowance", "case", p.pid, months, "未满80周岁领取高龄津贴")
            )
            done += 1
            if turn.year == YEAR:
                d.plant(
                    "underage_elderly_allowance", "trap", p.pid, ym(turn.month), "当月年满80周岁"
                )

    def _farmland(self, q: int) -> None:
        d, rng = self.d, self.rng
        idx = [i for i, f in enumerate(d.farmland) if not f[0].busy and not f[0].role]
        picks = [idx[int(j)] for j in rng.permutation(len(idx))[: 2 * q]]
        for k, i in enumerate(picks):
            p, v, _sub, area, _crit = d.farmland[i]
            self._crit(p)
            self._crit_rows(p)
            if k % 2 == 0:
                sub = round(area * float(rng.uniform(1.3, 2.2)), 1)
                d.plant("farmland_over_area", "case", p.pid, "", f"补贴{sub}亩 > 承包{area}亩")
            else:
                sub = round(area * 1.03, 2)
                d.plant(
                    "farmland_over_area", "trap", p.pid, "", f"补贴{sub}亩在承包{area}亩的5%容差内"
                )
            d.farmland[i] = (p, v, sub, area, True)
            for x in self._pays(p, "耕地地力保护补贴"):
                x.amount = round(sub * FARMLAND_RATE, 2)

    def _ghost(self, q: int) -> None:
        d, b, rng = self.d, self.b, self.rng
        names = {p.name for p in d.town.persons}
        villages = d.town.villages
        for k in range(q):
            item = ("养老金", "高龄津贴", "残疾人两项补贴")[k % 3]
            age = int(rng.integers(82, 95)) if item == "高龄津贴" else int(rng.integers(62, 80))
            g = b.new_ghost(rng, d, "男" if k % 2 else "女", age)
            while g.name in names:
                g.name = b.surname(rng) + b.given(g.sex, rng)
            names.add(g.name)
            v = villages[int(rng.integers(0, len(villages)))]
            b.account_no += 1
            g.account = f"6230{int(rng.integers(10**10, 10**11 - 1))}{b.account_no:05d}"[:19]
            g.bank = "来安农商银行"
            d.accounts.append((g.account, g, g.bank, D(2020, 3, 2), None, True))
            amt = {"养老金": 183.0, "高龄津贴": 100.0, "残疾人两项补贴": 90.0}[item]
            first = 1 if k % 2 == 0 else int(rng.integers(2, 9))
            for m in range(first, 13):
                self._pay(item, g, amt, m, village=v)
            for m in range(first, 13):
                d.plant("ghost_recipient", "case", g.raw_id, ym(m), f"虚构人员{g.name}")
        # traps: a real payee whose name or ID is damaged on one row, but still resolves
        cands = self._payee_streams("养老金")
        for k in range(q):
            p = self._take(cands)
            if p is None:
                break
            self._crit(p)
            pay = self._pays(p, "养老金")[int(rng.integers(0, 12))]
            ok = [x for x in ("name_homophone", "name_traditional") if _changes(p.name, x)]
            pay.force = "id_typo" if k % 2 == 0 or not ok else ok[0]
            d.plant(
                "ghost_recipient", "trap", p.pid, ym(pay.month), f"{pay.force}但可解析为真实人员"
            )

    def _duplicate(self, q: int) -> None:
        d, b, rng = self.d, self.b, self.rng
        cands = self._payee_streams("养老金")
        for k in range(q):
            p = self._take(cands)
            if p is None:
                break
            self._crit(p)
            pays = self._pays(p, "养老金")
            months = sorted(int(x) for x in rng.choice(12, size=1 + k % 3, replace=False) + 1)
            for m in months:
                orig = next(x for x in pays if x.month == m)
                variant = k % 3
                if variant == 0:  # a second account, name variant
                    b.account_no += 1
                    acct = f"6217{int(rng.integers(10**10, 10**11 - 1))}{b.account_no:05d}"[:19]
                    d.accounts.append((acct, p, "中国农业银行来安支行", D(2021, 5, 6), None, True))
                    x = self._pay("养老金", p, orig.amount, m, account=acct)
                    if _changes(p.name, "name_homophone"):
                        x.force = "name_homophone"
                elif variant == 1:  # paid again in another village with the 15-digit ID
                    others = [v for v in d.town.villages if v is not p.village]
                    v2 = others[int(rng.integers(0, len(others)))]
                    x = self._pay("养老金", p, orig.amount, m, village=v2)
                    x.force = "id_15" if p.pid[6:8] == "19" else ""
                else:  # the same row re-entered in a later batch
                    x = self._pay("养老金", p, orig.amount, m)
                    x.batch = "B"
                d.plant("duplicate_payment", "case", p.pid, ym(m), "同一人同一项目同月重复发放")
        # trap: two different people with the same name in one village, both paid
        n = 0
        for v in d.town.villages:
            if n >= q:
                break
            stream = [p for p in self._payee_streams("养老金") if p.village is v]
            if len(stream) >= 2:
                a, c = stream[0], stream[1]
                c.name = a.name
                self._crit(a)
                self._crit(c)
                for who in (a, c):
                    for per in self._paid_months(who, "养老金"):
                        note = f"同村同名不同人({a.name})"
                        d.plant("duplicate_payment", "trap", who.pid, per, note)
                n += 1

    def _shared_account(self, q: int) -> None:
        d = self.d
        cands = self._payee_streams("养老金")
        by_hh: dict[str, list[Person]] = {}
        for p in cands:
            by_hh.setdefault(p.hh.no if p.hh else "", []).append(p)
        hh_keys = sorted(by_hh)
        # holders receive nothing themselves: their own household never counts as a recipient
        holders = self._free_people(lambda p: 30 <= p.age_on(JAN1) <= 60 and not self._pays(p))
        for k in range(4 * q):
            kind = ("case", "one_household", "two", "filed")[k % 4]
            h = self._take(holders)
            if h is None:
                break
            self._crit(h)
            self._acct(h)
            if kind == "one_household":
                # spouses in one household share the husband's account
                fam = next(
                    (
                        by_hh.pop(key)
                        for key in list(hh_keys)
                        if key in by_hh and len(by_hh[key]) >= 2
                    ),
                    None,
                )
                if fam is None:
                    continue
                payees = fam
                acct_owner = fam[0]
                self._acct(acct_owner)
                for p in payees:
                    self._crit(p)
                    for x in self._pays(p, "养老金"):
                        x.account, x.bank = acct_owner.account, acct_owner.bank
                d.plant("shared_account", "trap", acct_owner.pid, "", "同户成员共用账户")
                continue
            n_hh = {"case": 3 + k % 2, "two": 2, "filed": 3}[kind]
            payees = []
            for key in list(hh_keys):
                if len(payees) >= n_hh:
                    break
                if by_hh.get(key):
                    payees.append(by_hh.pop(key)[0])
            if len(payees) < n_hh:
                break
            for p in payees:
                self._crit(p)
                for x in self._pays(p, "养老金"):
                    x.account, x.bank = h.account, h.bank
                if kind == "filed":
                    d.proxies.append((p, h, h.account, D(2023, 6, 1), True))
            note = {
                "case": f"{n_hh}户受益人资金进入同一账户",
                "two": "仅两户",
                "filed": "已备案代领",
            }[kind]
            d.plant("shared_account", "case" if kind == "case" else "trap", h.pid, "", note)

    def _cadre_account(self, q: int) -> None:
        d, rng = self.d, self.rng
        # trap: payment to the account of the recipient's son/daughter who is a cadre
        n = 0
        streams = {
            id(p): item
            for item in ("高龄津贴", "残疾人两项补贴", "养老金")
            for p in self._payee_streams(item)
        }
        for cad, _v, *_ in list(d.cadres):
            if n >= q or cad.busy or cad.hh is None:
                continue
            parents = [
                p
                for p in cad.hh.members
                if id(p) in streams
                and (
                    (cad.rel == "户主" and p.rel == "父母") or (cad.rel == "子" and p.rel == "户主")
                )
            ]
            if not parents:
                continue
            p = parents[0]
            self._redirect_to_child(p, cad, streams[id(p)], "资金进入其子女(村干部)账户")
            n += 1
        # the same with the cadre's parent in another household (the parent-ID columns)
        for cad, _v, *_ in list(d.cadres):
            if n >= 2 * q or cad.busy or cad.hh is None:
                continue
            pars = [x for x in (cad.father, cad.mother) if x is not None and not x.busy]
            par = next((x for x in pars if id(x) in streams and x.hh is not cad.hh), None)
            if par is None:
                continue
            self._redirect_to_child(par, cad, streams[id(par)], "资金进入其另立户子女(村干部)账户")
            n += 1
        kin = close_kin(d)
        cadres = [x[0] for x in d.cadres if not x[0].busy and x[0].death is None]

        payees = [
            (p, item)
            for item in ("养老金", "残疾人两项补贴", "高龄津贴")
            for p in self._payee_streams(item)
        ]
        k = 0
        while k < 2 * q:
            kind = ("case", "filed")[k % 2]
            cad = self._take(cadres)
            pick = self._take(payees)
            if cad is None or pick is None:
                break
            p, item = pick
            if cad.hh is p.hh or p.busy or id(cad) in kin.get(id(p), set()):
                cadres.append(cad)
                continue
            k += 1
            self._crit(p)
            cad.busy = True
            self._crit_rows(cad)
            self._acct(cad)
            first = 1 if k % 4 < 2 else int(rng.integers(2, 10))
            for x in self._pays(p, item):
                if x.month >= first:
                    x.account, x.bank = cad.account, cad.bank
            if kind == "case":

                def months(p: Person = p, f: int = first, it: str = item) -> list[str]:
                    return [m for m in self._paid_months(p, it) if int(m[5:]) >= f]

                self.later.append(
                    ("cadre_account", "case", p.pid, months, f"{item}进入村干部{cad.name}账户")
                )
            else:
                d.proxies.append((p, cad, cad.account, D(2024, 12, 20), True))
                for m in self._paid_months(p, item):
                    if int(m[5:]) >= first:
                        d.plant("cadre_account", "trap", p.pid, m, "已备案代领")

    def _redirect_to_child(self, p: Person, cad: Person, item: str, note: str) -> None:
        """p's payments of ``item`` land in their child's (a cadre's) account: a trap."""
        self._crit(p)
        cad.busy = True
        self._crit_rows(cad)
        self._acct(cad)
        for x in self._pays(p, item):
            x.account, x.bank = cad.account, cad.bank
        for m in self._paid_months(p, item):
            self.d.plant("cadre_account", "trap", p.pid, m, note)

    def _over_standard(self, q: int) -> None:
        d, rng = self.d, self.rng
        pool = self._free_cases("低保")
        for k in range(q):
            c = self._take(pool)
            if c is None:
                break
            self._use_case(c)
            size, code = len(c.members), c.village.code
            months = [int(x) for x in sorted(rng.choice(12, size=2 + k % 4, replace=False) + 1)]
            for x in self._pays(c.applicant):
                if x.item in ASSIST_ITEMS and x.month in months:
                    if banded(x.item, code) and size < TOP_BAND:
                        # the next band's amount (one person more than covered): only the
                        # case's own band catches it, not the most generous band
                        x.amount = standard(x.item, code, x.month, size + 1)
                    else:
                        x.amount = round(standard(x.item, code, x.month, size) * 1.3, 0)
            note = "超出所在人数档标准" if banded("城乡低保金", code) else "超出标准×保障人数"
            self._case_rows("over_standard_amount", "case", c, note,
                            lambda m, ms=tuple(months): m in ms)  # fmt: skip
        # trap: full new standard from July (above the old standard, within the new one)
        pool = [c for c in self._free_cases("低保")]
        for _ in range(q):
            c = self._take(pool)
            if c is None:
                break
            self._use_case(c)
            size = len(c.members)
            for x in self._pays(c.applicant):
                if x.item in ASSIST_ITEMS:
                    x.amount = round(standard(x.item, c.village.code, x.month, size), 0)
            self._case_rows("over_standard_amount", "trap", c, "7月起按新标准发放",
                            lambda m: m >= 7)  # fmt: skip
        # trap: 4% above the standard in some months (within the 5% tolerance)
        for _ in range(max(1, q // 2)):
            c = self._take(pool)
            if c is None:
                break
            self._use_case(c)
            size = len(c.members)
            months = [int(x) for x in sorted(rng.choice(12, size=3, replace=False) + 1)]
            for x in self._pays(c.applicant):
                if x.item in ASSIST_ITEMS and x.month in months:
                    x.amount = round(standard(x.item, c.village.code, x.month, size) * 1.04, 0)
            self._case_rows("over_standard_amount", "trap", c, "超标准4%(容差5%内)",
                            lambda m, ms=tuple(months): m in ms)  # fmt: skip
        # trap: a small household in a banded township paid its full band, which is above the
        # county's per-person standard x size (a rule ignoring bands would flag it)
        small = [c for c in pool if banded("城乡低保金", c.village.code) and len(c.members) <= 2]
        for _ in range(q):
            c = self._take(small)
            if c is None:
                break
            pool.remove(c)
            self._use_case(c)
            size = len(c.members)
            for x in self._pays(c.applicant):
                if x.item in ASSIST_ITEMS:
                    x.amount = standard(x.item, c.village.code, x.month, size)
            self._case_rows("over_standard_amount", "trap", c, f"按{size}人档足额发放")
        # elderly allowance paid double for some months
        cands = self._payee_streams("高龄津贴")
        for _ in range(max(1, q // 3)):
            p = self._take(cands)
            if p is None:
                break
            self._crit(p)
            ms = [int(x) for x in rng.choice(12, size=2, replace=False) + 1]
            for x in self._pays(p, "高龄津贴"):
                if x.month in ms:
                    x.amount = 200.0
            for m in sorted(ms):
                d.plant(
                    "over_standard_amount", "case", p.pid, ym(m), "高龄津贴按200元发放(标准100元)"
                )

    def _new_school(self, principal_since: dt.date) -> tuple[str, str, Person] | None:
        """A village school (planted) with a principal from the free residents: staff roster
        row (校长) and payroll row (校长 from ``principal_since``)."""
        d, rng = self.d, self.rng
        people = self._free_people(lambda p: 35 <= p.age_on(JAN1) <= 58)
        pr = self._take(people)
        if pr is None:
            return None
        pr.busy = True
        pr.role = "teacher"
        v = pr.village
        sname = f"{v.town.name}{v.name}小学"
        k = sum(1 for x in d.schools if x[0].startswith(sname))
        sname += "" if k == 0 else f"第{k + 1}校区"
        scode = uscc(f"{int(rng.integers(10**8, 10**9))}", "12")
        d.schools.append((sname, scode))
        d.staff.append((pr, sname, scode, "校长", True))
        d.payroll.append((pr, sname, scode, "校长", "事业", principal_since, None, True))
        return sname, scode, pr

    def _kin_of(self, pr: Person, how: str) -> Person:
        """A new close relative of ``pr``: ``parent`` (a father in his own household, often
        another village: the parent-ID column) or ``child`` (a married-out daughter, ditto) or
        ``spouse`` (married, by the marriage registry)."""
        d, rng = self.d, self.rng
        age = pr.age_on(JAN1)
        if how == "parent" and (pr.father is None or pr.mother is None):
            male = pr.father is None
            x = self._new_single(
                self._other_village(pr.village), "男" if male else "女", min(92, age + 27)
            )
            if male:
                if "·" not in pr.name:
                    x.name = self._unique_name(with_surname(x.name, surname_of(pr.name)))
                pr.father = x
            else:
                pr.mother = x
            return x
        if how != "child" and pr.hh is not None:  # a spouse at home (registry + marriage)
            other = {"户主": "配偶", "配偶": "户主"}.get(pr.rel)
            x = next((p for p in pr.hh.members if p.rel == other and p.death is None
                      and p.moved is None and not p.busy and not p.role), None)  # fmt: skip
            if x is not None:
                return x
        if how == "child":
            x = self._new_single(self._other_village(pr.village), "女", max(22, age - 26))
            if pr.sex == "男":
                x.name = self._unique_name(with_surname(x.name, surname_of(pr.name)))
                x.father = pr
            else:
                x.mother = pr
            return x
        x = self._new_single(pr.village, "女" if pr.sex == "男" else "男", max(25, age - 2))
        h, w = (x, pr) if x.sex == "男" else (pr, x)
        dm = D(2000, 1, 1) + dt.timedelta(days=int(rng.integers(0, 5000)))
        d.marriages.append(("结婚", h, w, dm, True))
        return x

    def _other_village(self, v: Village) -> Village:
        vs = [w for w in self.d.town.villages if w is not v] or [v]
        return vs[int(self.rng.integers(0, len(vs)))]

    def _supplier(self, q: int) -> None:
        """Cases: the buying school's principal, or a close relative of the principal at the
        signing date, represents (or holds shares in) the supplier. Traps: a same-name
        unrelated representative; a relative of school A's principal supplying only school B;
        a former principal (post ended before the signing date)."""
        d, b, rng = self.d, self.b, self.rng
        for k in range(3 * q):
            kind = _SUPPLIER_KINDS[k % len(_SUPPLIER_KINDS)]
            since = D(2005, 9, 1) + dt.timedelta(days=int(rng.integers(0, 15 * 365)))
            if kind == "trap_former":
                # the old principal served until the end of a month before the year; the
                # new one since the next day; the contract is signed in the year
                end = D(YEAR - 1, int(rng.integers(2, 12)), 1) - dt.timedelta(days=1)
                school = self._new_school(end + dt.timedelta(days=1))
                if school is None:
                    break
                sname, scode, pr = school
                kin = close_kin(d).get(id(pr), set())
                old = self._take(self._free_people(
                    lambda p, k=kin, h=pr.hh: 45 <= p.age_on(JAN1) <= 64 and id(p) not in k
                    and p.hh is not h
                ))  # fmt: skip
                if old is None:
                    break
                old.busy, old.role = True, "official"
                d.payroll.append((old, sname, scode, "校长", "事业", since, end, True))
                rep = old if k % 20 < 10 else self._kin_of(old, "spouse")
                rep.busy = True
                e = b.new_enterprise(d, rep, rng, capital=300000.0, status="存续", kind="食品")
                note = f"前任校长{old.name}(任至{end})" + ("本人" if rep is old else "的配偶")
            else:
                school = self._new_school(since)
                if school is None:
                    break
                sname, scode, pr = school
                if kind == "self":
                    rep = pr
                    note = f"法定代表人为本校校长{pr.name}"
                elif kind in ("parent", "child", "spouse"):
                    rep = self._kin_of(pr, kind)
                    note = f"法定代表人为本校校长{pr.name}的近亲属({kind})"
                elif kind == "trap_name":
                    school_hh = {id(x[0].hh) for x in d.staff if x[2] == scode}

                    def eligible(p: Person, hhs: set[int] = school_hh) -> bool:
                        return 25 <= p.age_on(JAN1) <= 60 and id(p.hh) not in hhs

                    rep = self._take(self._free_people(eligible))
                    if rep is None:
                        continue
                    rep.name = pr.name
                    note = f"法定代表人与本校校长同名({pr.name})但非同一人"
                else:  # trap_other: a relative of this principal supplies another school only
                    rep = self._kin_of(pr, ("parent", "child", "spouse")[k % 3])
                    other = self._new_school(since)
                    if other is None:
                        break
                    sname, scode, _o = other
                    note = f"{pr.name}(另一学校校长)的近亲属只供应本校"
                rep.busy = True
                cap = 500000.0 if rep is pr else 300000.0
                e = b.new_enterprise(d, rep, rng, capital=cap, status="存续", kind="食品")
            if kind.startswith("trap"):
                # a trap must be one for real: its supplier's people may not be, by accident,
                # the buying school's principal or a close relative of theirs (a free resident
                # drawn as principal can be the representative's child); redraw the principal
                buyer = next(x[0] for x in d.staff if x[2] == scode and x[3] == "校长")
                if self._related(buyer, [rep]) and not self._redraw_principal(scode, buyer, [rep]):
                    continue
            e.critical = True
            b.add_contract(d, sname, scode, e, rng, True)
            # round amounts (a handful of distinct values, as framework contracts are)
            amt = float(rng.choice([100, 150, 200, 300, 500])) * 1000
            d.procurement[-1] = (*d.procurement[-1][:4], amt, *d.procurement[-1][5:])
            case = kind in ("self", "parent", "child", "spouse")
            d.plant("supplier_official_link", "case" if case else "trap", e.code, "", note)

    def _related(
        self, principal: Person, people: list[Person], close: dict[int, set[int]] | None = None
    ) -> bool:
        """Whether one of ``people`` is ``principal``, lives in their household or is a close
        relative of theirs by the truth (either direction, ignoring dates: stricter than the
        rule, so a trap stays a trap whatever the files state). ``close``: ``close_kin`` of
        the county, when the caller asks about many principals at once (it is not changed
        in between)."""
        close = close_kin(self.d) if close is None else close
        kin = {id(principal)} | {id(x) for x in (principal.hh.members if principal.hh else [])}
        kin |= close.get(id(principal), set())
        return any(id(x) in kin or id(principal) in close.get(id(x), set()) for x in people)

    def _redraw_principal(self, scode: str, old: Person, avoid: list[Person]) -> bool:
        """Give school ``scode`` another principal (a free resident of the same age band,
        unrelated to ``avoid``; the old one is freed). Draws from the generator only when
        called, so seeds without such an accident are unchanged."""
        d = self.d
        close = close_kin(d)  # once: the whole county's kin, for every candidate
        pool = self._free_people(
            lambda p: 35 <= p.age_on(JAN1) <= 58 and not self._related(p, avoid, close)
        )
        new = self._take(pool)
        if new is None:
            return False
        new.busy, new.role = True, "teacher"
        old.busy, old.role = False, ""
        d.staff[:] = [(new, *x[1:]) if x[0] is old and x[2] == scode else x for x in d.staff]
        d.payroll[:] = [(new, *x[1:]) if x[0] is old and x[2] == scode else x for x in d.payroll]
        return True

    def _deceased(self, q: int) -> None:
        d, b, rng = self.d, self.b, self.rng
        # a person paid both items is in both streams: list each person once, or the same
        # person could be planted twice (two death records, the second date overwriting the
        # first, so the first scenario's case months would start before the true death)
        cands = _unique(self._payee_streams("养老金") + self._payee_streams("残疾人两项补贴"))
        k = 0
        while k < 2 * q:
            p = self._take(cands)
            if p is None:
                break
            if p.busy or p.death is not None:
                continue
            self._crit(p)
            if k % 2 == 0:  # case: death record, payments continue
                dm = int(rng.integers(1, 10))
                p.death = D(YEAR, dm, int(rng.integers(1, 28)))
                b._record_death(d, p, rng, critical=True)

                def months(p: Person = p, dm: int = dm) -> list[str]:
                    return [m for m in self._paid_months(p) if int(m[5:]) >= dm + 2]

                self.later.append(("deceased_recipient", "case", p.pid, months, "死亡后继续发放"))
            else:  # trap: paid in the death month and within grace, then stopped
                dm = int(rng.integers(1, 11))
                p.death = D(YEAR, dm, int(rng.integers(1, 28)))
                b._record_death(d, p, rng, critical=True)
                d.pays = [x for x in d.pays if x.payee is not p or x.month <= dm + 1]
                self.idx[id(p)] = [x for x in self._pays(p) if x.month <= dm + 1]
                d.plant("deceased_recipient", "trap", p.pid, ym(dm), "死亡当月发放")
                d.plant("deceased_recipient", "trap", p.pid, ym(dm + 1), "宽限期内发放")
            k += 1
        # trap: a living namesake of a dead person keeps being paid
        dead = [x[0] for x in d.deaths if x[1] and x[0].death and x[0].death < D(YEAR, 6, 1)]
        living = self._payee_streams("养老金")
        for _ in range(q):
            y, x = self._take(dead), self._take(living)
            if y is None or x is None:
                break
            x.name = y.name
            self._crit(x)
            for m in self._paid_months(x):
                d.plant("deceased_recipient", "trap", x.pid, m, f"与已故{y.name}同名的在世人员")

    # ------------------------------------------------------------------ natural traps, checks
    def _natural_traps(self) -> None:
        """Legitimate rule-looking situations that arose in the background: record as traps."""
        d = self.d
        seen = 0
        for p, _in_file, _crem, _cancel in d.deaths:
            if seen >= 40 or p.busy or p.death is None or p.death.year != YEAR:
                continue
            months = {x.month for x in d.pays if x.payee is p and x.status == "成功"}
            for m in (p.death.month, p.death.month + 1):
                if m in months:
                    d.plant("deceased_recipient", "trap", p.pid, ym(m), "死亡当月或宽限期内发放")
                    seen += 1
        for p, start, crit in d.elderly:
            if not crit and start.year == YEAR:
                months = {x.month for x in d.pays if x.payee is p and x.item == "高龄津贴"}
                if start.month in months:
                    d.plant(
                        "underage_elderly_allowance",
                        "trap",
                        p.pid,
                        ym(start.month),
                        "当月年满80周岁",
                    )
        n = 0
        for p, _v, sub, area, crit in d.farmland:
            if not crit and sub == area and int(p.village.code[-3:]) % 5 == 0 and n < 10:
                d.plant(
                    "farmland_over_area", "trap", p.pid, "", "补贴面积以公顷填报,折算后等于承包面积"
                )
                n += 1
        cadre_ids = {id(x[0]) for x in d.cadres}
        n = 0
        for x in d.pays:
            if (
                n < 10
                and id(x.payee) in cadre_ids
                and x.account == x.payee.account
                and not x.critical
            ):
                d.plant("cadre_account", "trap", x.payee.pid, ym(x.month), "干部本人的合法补贴")
                n += 1

    def _fix_handlers(self) -> None:
        """A background case's handler/approver must not share a name with a relative.

        The rules match officials by name only, so a namesake among the household or its
        spouses would be an accidental hit; planted renames can create one, so re-check.
        """
        d = self.d
        planted = {s for r, k, s, _p, _n in d.planted if r == "approver_relative" and k == "case"}
        keep: set[int] = getattr(self, "keep_officials", set())
        kin = close_kin(d)
        by_id = {id(p): p for p in d.town.persons}
        for c in d.cases:
            if c.applicant.pid in planted or id(c) in keep:
                continue
            people = list(c.applicant.hh.members if c.applicant.hh else []) + [
                p for p, _ in c.members
            ]
            people += [by_id[x] for p in list(people) for x in kin.get(id(p), ()) if x in by_id]
            names = {p.name for p in people}
            if c.handler.name in names:
                ok = [h for h in d.handlers if h.name not in names]
                c.handler = ok[0] if ok else c.handler
            if c.approver.name in names:
                ok = [h for h in d.approvers if h.name not in names]
                c.approver = ok[0] if ok else c.approver

    def _check_suppliers(self) -> None:
        """Drop background contracts whose supplier is linked to the buying school's staff."""
        d = self.d
        staff_by_school: dict[str, list[Person]] = {}
        for p, _s, scode, _post, _c in d.staff:
            staff_by_school.setdefault(scode, []).append(p)
        for p, _u, code, _post, _t, _s, _e, _c in d.payroll:
            staff_by_school.setdefault(code, []).append(p)
        close = close_kin(d)
        keep = []
        for row in d.procurement:
            _no, _sn, scode, sup, _amt, _signed, crit = row
            people = [sup.rep] + [h for h, _ in sup.holders]
            linked = False
            for t in staff_by_school.get(scode, []):
                kin = {id(t)} | {id(x) for x in (t.hh.members if t.hh else [])}
                kin |= close.get(id(t), set())
                if any(id(x) in kin for x in people):
                    linked = True
            if crit or not linked:
                keep.append(row)
        d.procurement = keep


def _unique(people: list[Person]) -> list[Person]:
    """Each person once, first occurrence kept (order-stable, hence deterministic)."""
    seen: set[int] = set()
    out = []
    for p in people:
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


_SUPPLIER_KINDS = (
    "self", "trap_name", "parent", "trap_former", "child", "trap_other",
    "spouse", "trap_name", "parent", "trap_former", "child", "trap_other",
)  # fmt: skip


def _set_parents(child: Person, parent: Person) -> None:
    """``parent`` (and their spouse at home) become ``child``'s father and mother."""
    hh = parent.hh
    other = None
    if hh is not None:
        if parent.rel == "户主":
            other = next((p for p in hh.members if p.rel == "配偶"), None)
        elif parent.rel == "配偶":
            other = next((p for p in hh.members if p.rel == "户主"), None)
    for x in (parent, other):
        if x is None:
            continue
        if x.sex == "男":
            child.father = x
        else:
            child.mother = x


def _head(c: Case) -> bool:
    """The applicant is the living household head, so kin paths start from the 户主."""
    return c.applicant.rel == "户主" and c.applicant.death is None


def _changes(name: str, label: str) -> bool:
    from crossmatch.synth.names import HOMOPHONES

    if label == "name_homophone":
        return any(c in HOMOPHONES for c in name)
    if label == "name_traditional":
        import zhconv

        return zhconv.convert(name, "zh-hant") != name
    return True


__all__ = ["FARMLAND_MONTH", "Planter"]
