"""Planted root causes (类案的成因): systemic loopholes behind groups of similar clues.

The rule scenarios of :mod:`crossmatch.synth.plant` are single cases. A root cause is what lets
many of them happen in one place, and is what a 纪检监察建议 is about. Two are planted, each in
one township, with their figures written to ``truth/causes.csv``:

``death_sync_lag``  in one township the death register reaches the payer months late: seven
                    (new, elderly) pension payees die, are cremated within days, but their
                    payments only stop once the household registry finally cancels them (2-5
                    months past the grace month). Elsewhere payments stop in the death month
                    or within grace, or (single planted cases) never stop at all.
``approver_kin``    one 民政办 approver in one township approves three 低保/特困 cases of his own
                    relatives: his father's, his mother's (separate households) and his
                    father-in-law's (the approver's wife is a member of that case).

The causes draw from their own random streams (``builder.rng(97, town)``), never from the
planter's or the background's, and are planted in the last two townships (the exporter's
format stream is county-wide, so every row written before the first cause township is
byte-identical to a county generated without causes). Every planted payment month and case is
also a ``deceased_recipient`` / ``approver_relative`` case in ``truth/planted.csv``.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from crossmatch.synth.county import ASSIST_ITEMS, JAN1, Case, TownData, surname_of
from crossmatch.synth.model import YEAR, Person

if TYPE_CHECKING:
    from crossmatch.synth.county import Builder
    from crossmatch.synth.plant import Planter

D = dt.date
LAG_PEOPLE = 7
KIN_CASES = 3
PENSION = 183.0  # 城乡居民基础养老金 per month (the county's standard)
SALT = 97  # the causes' own random streams: builder.rng(SALT, town)
CAUSE_COLUMNS = (
    "cause_id", "kind", "township_code", "township", "department", "who", "people", "cases",
    "months", "amount", "subjects", "note",
)  # fmt: skip


def _ym(m: int) -> str:
    return f"{YEAR}-{m:02d}"


@dataclass
class Cause:
    """One planted root cause and the figures a correct 类案分析 must reproduce."""

    cause_id: str
    kind: str
    township_code: str
    township: str
    department: str
    who: str
    people: int
    cases: int
    months: int
    amount: float
    subjects: list[str] = field(default_factory=list)
    note: str = ""

    def row(self) -> list[str]:
        return [
            self.cause_id, self.kind, self.township_code, self.township, self.department,
            self.who, str(self.people), str(self.cases), str(self.months),
            f"{self.amount:.2f}", ";".join(sorted(self.subjects)), self.note,
        ]  # fmt: skip


class Causes:
    """Plants the root causes township by township (after the rule scenarios)."""

    def __init__(self, builder: Builder) -> None:
        self.b = builder
        n = builder.n_towns
        self.lag_town = n - 1
        self.kin_town = n - 2 if n >= 2 else n - 1
        self.causes: list[Cause] = []

    def plant(self, data: TownData, planter: Planter) -> None:
        idx = data.town.idx
        if idx not in (self.lag_town, self.kin_town):
            return
        rng = self.b.rng(SALT, idx)
        saved = planter.rng
        planter.rng = rng  # planter helpers (new households, names) draw from the cause stream
        try:
            if idx == self.lag_town:
                self._death_sync_lag(data, planter, rng)
            if idx == self.kin_town:
                self._approver_kin(data, planter, rng)
        finally:
            planter.rng = saved

    # ------------------------------------------------------------------ death_sync_lag
    def _death_sync_lag(self, d: TownData, planter: Planter, rng: np.random.Generator) -> None:
        """Seven new elderly pension payees of the township (so the cause does not depend on
        what the rule scenarios left over) die in months 1-5 and are paid 2-5 months past
        grace, until the registry's late cancellation reaches the payer."""
        vs = [v for v in d.town.villages if v.code not in planter.conc] or d.town.villages
        people: list[Person] = []
        months = 0
        amount = 0.0
        lags: list[int] = []
        for _ in range(LAG_PEOPLE):
            v = vs[int(rng.integers(0, len(vs)))]
            p = planter._new_single(v, "男" if rng.random() < 0.5 else "女",
                                    int(rng.integers(62, 78)))  # fmt: skip
            dm = int(rng.integers(1, 6))
            k = int(rng.integers(2, 6))  # months paid past the grace month
            last = dm + 1 + k
            planter._acct(p)
            for m in range(1, last + 1):
                planter._pay("养老金", p, PENSION, m)
            p.death = D(YEAR, dm, int(rng.integers(1, 28)))
            crem = p.death + dt.timedelta(days=int(rng.integers(1, 4)))
            # the registry cancels the person only now; the payer stops after it
            cancel = D(YEAR, last, int(rng.integers(1, 28)))
            p.cancel = cancel
            d.deaths.append((p, True, crem, cancel))
            for m in range(dm + 2, last + 1):
                paid = [x.amount for x in planter._pays(p) if x.month == m and x.status == "成功"]
                d.plant("deceased_recipient", "case", p.pid, _ym(m), "死亡信息同步滞后")
                months += 1
                amount += sum(paid)
            people.append(p)
            lags.append(last - dm)
        self.causes.append(
            Cause(
                "C1", "death_sync_lag", d.town.code, d.town.name, "人社局", "", len(people),
                0, months, round(amount, 2), [p.pid for p in people],
                f"死亡登记迟报: 死亡至停发 {min(lags)}-{max(lags)} 个月",
            )
        )  # fmt: skip

    # ------------------------------------------------------------------ approver_kin
    def _approver_kin(self, d: TownData, planter: Planter, rng: np.random.Generator) -> None:
        from crossmatch.synth.plant import _set_parents

        b = self.b
        gov, gov_code = d.gov  # type: ignore[attr-defined]
        vs = [v for v in d.town.villages if v.code not in planter.conc] or d.town.villages

        def new_case(sex: str, age: int) -> Case | None:
            v = vs[int(rng.integers(0, len(vs)))]
            p = planter._new_single(v, sex, age)
            assert p.hh is not None
            p.hh.poor = True
            n0, k0 = len(d.cases), len(d.pays)
            b._assistance(d, p.hh, rng)
            if len(d.cases) == n0:
                return None
            c = d.cases[-1]
            c.end = None
            if c.start.year >= YEAR:  # approved before the year: paid all of it
                c.start = D(YEAR - 1 - int(rng.integers(0, 5)), int(rng.integers(1, 13)), 1)
            b.case_payments(d, c, rng)
            for x in d.pays[k0:]:
                planter.idx.setdefault(id(x.payee), []).append(x)
            planter._use_case(c)
            return c

        father = new_case("男", int(rng.integers(72, 80)))
        mother = new_case("女", int(rng.integers(68, 76)))
        in_law = new_case("男", int(rng.integers(70, 79)))
        cases = [c for c in (father, mother, in_law) if c is not None]
        if len(cases) < KIN_CASES:
            raise RuntimeError("approver_kin: could not make three cases")
        assert father and mother and in_law
        age = max(30, min(55, father.applicant.age_on(JAN1) - int(rng.integers(25, 30))))
        off = planter._new_single(father.village, "男", age)
        names = {p.name for p in d.town.persons}
        off.name = surname_of(father.applicant.name) + b.given("男", rng)  # the father's son
        while off.name in names:  # the roster names the approver by name only: make it unique
            off.name = surname_of(father.applicant.name) + b.given("男", rng)
        off.role = "official"
        _set_parents(off, father.applicant)
        _set_parents(off, mother.applicant)
        d.payroll.append((off, gov, gov_code, "民政办主任", "行政", D(2010, 3, 1), None, True))
        head = in_law.applicant
        wife = b.person(rng, head.hh, "女", "女", max(28, age - 3))
        d.town.persons.append(wife)
        _set_parents(wife, head)
        wife.busy = True
        in_law.members.append((wife, "子女"))
        married = D(2000, 1, 1) + dt.timedelta(days=int(rng.integers(0, 10 * 365)))
        d.marriages.append(("结婚", off, wife, married, True))
        notes = {id(father): "审批人是申请人之子", id(mother): "审批人是申请人之子",
                 id(in_law): "审批人是申请人之女婿(婚姻登记)"}  # fmt: skip
        amount = 0.0
        people = 0
        for c in cases:
            c.approver = off
            d.plant("approver_relative", "case", c.applicant.pid, "", notes[id(c)])
            amount += sum(x.amount for x in planter._pays(c.applicant)
                          if x.item in ASSIST_ITEMS and x.status == "成功")  # fmt: skip
            people += len(c.members)
        self.causes.append(
            Cause(
                "C2", "approver_kin", d.town.code, d.town.name, "民政局", off.name, people,
                len(cases), 0, round(amount, 2), [c.applicant.pid for c in cases],
                f"{gov}民政办主任{off.name}审批本人近亲属的救助申请, 未回避",
            )
        )  # fmt: skip

    def write(self, path: Path) -> None:
        with open(path, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(CAUSE_COLUMNS)
            for c in sorted(self.causes, key=lambda c: c.cause_id):
                w.writerow(c.row())


def read_causes(path: str | Path) -> list[dict[str, str]]:
    """``truth/causes.csv`` as a list of dicts (empty when the county has none)."""
    p = Path(path)
    if not p.exists():
        return []
    with open(p, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))
