"""Anomalies that no rule names, planted for the ML ranker (issue 14), with their truth.

The rule scenarios of :mod:`crossmatch.synth.plant` are what the catalogue already knows. These
are the patterns only a ranking can surface; each is legitimate-looking row by row, so no rule
fires on it, and only the comparison with peers gives it away:

``rich_village``     a village whose per-capita payments sit far above its township's other
                     villages: most of its working-age residents draw 残疾人两项补贴 and every
                     resident over 60 draws 养老金 (each payment at the standard, so
                     ``over_standard_amount`` stays quiet)
``handler_deadline`` a case handler (经办人) whose approvals bunch in the last ten days before
                     30 June / 31 December (批准日期 moved within the same year, before 2025, so
                     the paid months do not change)
``handler_surname``  a case handler whose cases go mostly to applicants of one surname (never
                     a close relative of the handler, so ``approver_relative`` stays quiet)
``irregular_amount`` a 低保/特困 recipient paid a different, odd amount every month, always below
                     the standard
``every_programme``  a 低保 household enrolled in every programme it could draw at once
                     (assistance, 残疾人两项补贴 for its working-age members, 养老金 for its
                     elders)

The planter draws from its **own** random generator (``SeedSequence([seed, 97, town])``), takes
only people who already hold an account and never goes through :meth:`Builder.pay` (which draws
from the town's generator and may plant a rule trap), so for a given seed only the files the
anomalies live in change (the payment files and the assistance roster); every other raw file
and ``truth/planted.csv`` stay byte-identical. The truth is ``truth/anomalies.csv``:
``kind, entity, subject, village_code, note`` with ``entity`` one of ``village`` (subject: the
12-digit code), ``handler`` (the handler's ID number), ``recipient`` (ID number) and
``household`` (the case applicant's ID number).
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np

from crossmatch.synth.county import (
    ASSIST_ITEMS,
    JAN1,
    YEAR,
    Case,
    Pay,
    TownData,
    close_kin,
    standard,
    surname_of,
)
from crossmatch.synth.model import Person

#: columns of truth/anomalies.csv
COLUMNS = ("kind", "entity", "subject", "village_code", "note")
Row = tuple[str, str, str, str, str]


def _months_alive(p: Person) -> list[int]:
    """Months of the year the person is alive, resident and paid nothing yet would be legal."""
    if p.moved is not None:
        return []
    if p.death is not None:
        return []  # the dead are deceased_recipient's business: never pay them here
    return list(range(1, 13))


class AnomalyPlanter:
    """Plants the anomalies of one county, township by township (see the module docstring)."""

    def __init__(self, seed: int, n_towns: int) -> None:
        self.seed = seed
        self.n_towns = n_towns
        self.rows: list[Row] = []
        self.accounts: dict[int, str] = {}

    def rng(self, idx: int) -> np.random.Generator:
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, 97, idx])))

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _free(p: Person) -> bool:
        return not p.busy and not p.role and not p.ghost and p.hh is not None

    @staticmethod
    def _items(data: TownData) -> dict[int, set[str]]:
        out: dict[int, set[str]] = {}
        for pay in data.pays:
            out.setdefault(id(pay.payee), set()).add(pay.item)
        return out

    def _add(
        self, data: TownData, item: str, p: Person, amount: float, rng: np.random.Generator
    ) -> None:
        # someone paid nothing so far has no 一卡通 account: open one here, numbered apart from
        # the builder's (whose counter the bank file and every later town depend on)
        acct = p.account or self.accounts.setdefault(
            id(p), f"6217{int(rng.integers(10**14, 10**15 - 1))}"
        )
        for m in _months_alive(p):
            data.pays.append(
                Pay(item, p, acct, p.bank or "来安农商银行", amount, m, p.village, "成功",
                    int(rng.integers(8, 21)), extra=True)
            )  # fmt: skip

    @staticmethod
    def _free_cases(data: TownData) -> list[Case]:
        return [
            c for c in data.cases
            if not c.critical and c.end is None and c.applicant.death is None
            and not any(p.busy for p, _ in c.members)
        ]  # fmt: skip

    # ------------------------------------------------------------------ per town
    def plant(self, data: TownData) -> None:
        """Plant this township's anomalies (after the rule planter, before the export)."""
        rng = self.rng(data.town.idx)
        # accounts opened here are keyed by id(person): valid within this township only (an
        # earlier township's freed person may share an id with one of this township's)
        self.accounts.clear()
        items = self._items(data)
        used: set[int] = set()
        rich = self._rich_village(data, rng, items) if data.town.idx % 2 == 0 else None
        if data.town.idx % 2 == 0:
            self._handler(data, rng, "deadline" if data.town.idx % 4 == 0 else "surname", used)
        else:
            self._handler(data, rng, "surname" if data.town.idx % 4 == 1 else "deadline", used)
        cases = [c for c in self._free_cases(data) if rich is None or c.village is not rich]
        order = [cases[int(i)] for i in rng.permutation(len(cases))]
        n_irr = n_all = 0
        for c in order:
            if id(c) in used:
                continue
            if n_irr < 3 and self._irregular(data, c, rng):
                used.add(id(c))
                n_irr += 1
            elif n_all < 2 and self._every_programme(data, c, rng, items):
                used.add(id(c))
                n_all += 1
            if n_irr >= 3 and n_all >= 2:
                break
        if n_irr < 3:  # small counties: the rule planter took every case, use a pension instead
            self._irregular_pension(data, rng, 3 - n_irr, rich)

    def _rich_village(self, data: TownData, rng: np.random.Generator, items: dict[int, set[str]]):
        villages = [v for v in data.town.villages if len(v.households) >= 10]
        if len(villages) < 3:
            return None
        v = villages[int(rng.integers(0, len(villages)))]
        added = 0
        for hh in v.households:
            for p in hh.members:
                if not self._free(p) or p.death is not None or p.moved is not None:
                    continue
                age = p.age_on(dt.date(YEAR, 12, 31))
                have = items.get(id(p), set())
                if 18 <= age < 80 and "残疾人两项补贴" not in have and rng.random() < 0.7:
                    self._add(data, "残疾人两项补贴", p, 90.0, rng)
                    added += 1
                if age >= 61 and "养老金" not in have:
                    self._add(data, "养老金", p, 183.0, rng)
                    added += 1
        if added < 5:
            return None
        note = f"{v.name}: {added} 人次新增残疾人两项补贴/养老金，人均发放额远高于同乡镇其他村"
        self.rows.append(("rich_village", "village", v.code, v.code, note))
        return v

    def _handler(self, data: TownData, rng: np.random.Generator, how: str, used: set[int]) -> None:
        if len(data.handlers) < 2:
            return
        kin = close_kin(data)
        h = data.handlers[int(rng.integers(0, len(data.handlers)))]
        others = [x for x in data.handlers if x is not h]

        def locked(c: Case) -> bool:
            # a planted approver_relative case (its handler or approver is a member's close
            # relative) keeps its handler, and h never handles a relative's case
            ids = {id(p) for p, _ in c.members}
            return bool(
                ids & (kin.get(id(c.handler), set()) | kin.get(id(c.approver), set())
                       | kin.get(id(h), set()) | {id(h)})
            )  # fmt: skip

        def move_away(c: Case) -> None:
            free = [x for x in others if not {id(p) for p, _ in c.members} & kin.get(id(x), set())]
            if free:
                c.handler = free[int(rng.integers(0, len(free)))]

        cases = [c for c in data.cases if not locked(c)]
        if how == "deadline":
            # approval dates move only on background cases (planted ones keep every interval)
            mine = [c for c in cases if not c.critical and JAN1 > c.start >= dt.date(2000, 1, 1)]
            if len(mine) < 6:
                return
            for c in cases:
                if c.handler is h and c.critical:
                    move_away(c)
            for c in mine:
                c.handler = h
                if rng.random() < 0.85:
                    end = dt.date(c.start.year, 6, 30) if rng.random() < 0.5 else dt.date(
                        c.start.year, 12, 31)  # fmt: skip
                    c.start = end - dt.timedelta(days=int(rng.integers(0, 8)))
            note = f"经办人{h.name}经办的{len(mine)}件低保/特困审批集中在6月底、12月底前8天"
        else:
            by: dict[str, list[Case]] = {}
            for c in cases:
                by.setdefault(surname_of(c.applicant.name), []).append(c)
            own = surname_of(h.name)
            surname = own if len(by.get(own, [])) >= 6 else max(by, key=lambda s: len(by[s]))
            same = by.get(surname, [])
            if len(same) < 6:
                return
            for c in cases:
                if surname_of(c.applicant.name) == surname:
                    c.handler = h
                elif c.handler is h and rng.random() < 0.85:
                    move_away(c)
            note = f"经办人{h.name}经办的案件多为{surname}姓申请人({len(same)}件)"
        self.rows.append((f"handler_{how}", "handler", h.pid, h.village.code, note))

    def _irregular(self, data: TownData, c: Case, rng: np.random.Generator) -> bool:
        pays = [
            p for p in data.pays
            if p.payee is c.applicant and p.item in ASSIST_ITEMS and p.status == "成功"
        ]  # fmt: skip
        if len(pays) < 8:
            return False
        for p in pays:
            cap = standard(p.item, c.village.code, p.month, len(c.members)) * c.factor
            p.amount = round(min(p.amount, cap) * float(rng.uniform(0.35, 0.97)), 2)
        note = f"{c.applicant.name}: {len(pays)} 个月发放额各不相同且非整数"
        self.rows.append(("irregular_amount", "recipient", c.applicant.pid, c.village.code, note))
        return True

    def _irregular_pension(self, data: TownData, rng: np.random.Generator, n: int, rich) -> None:
        by: dict[int, list[Pay]] = {}
        for pay in data.pays:
            if (pay.item == "养老金" and pay.status == "成功" and not pay.critical
                    and not pay.extra and pay.village is not rich):  # fmt: skip
                by.setdefault(id(pay.payee), []).append(pay)
        people = [ps for ps in by.values() if len(ps) >= 8 and self._free(ps[0].payee)]
        for j in rng.permutation(len(people))[:n]:
            pays = people[int(j)]
            for pay in pays:
                pay.amount = round(pay.amount * float(rng.uniform(0.35, 0.97)), 2)
            p = pays[0].payee
            note = f"{p.name}: {len(pays)} 个月养老金发放额各不相同且非整数"
            self.rows.append(("irregular_amount", "recipient", p.pid, p.village.code, note))

    def _every_programme(
        self, data: TownData, c: Case, rng: np.random.Generator, items: dict[int, set[str]]
    ) -> bool:
        members = [p for p, _ in c.members if self._free(p) and p.death is None]
        ages = {id(p): p.age_on(dt.date(YEAR, 12, 31)) for p in members}
        workers = [p for p in members if 18 <= ages[id(p)] < 80]
        elders = [p for p in members if ages[id(p)] >= 61]
        if len(members) < 2 or not workers:
            return False
        added = 0
        for p in workers:
            if "残疾人两项补贴" not in items.get(id(p), set()):
                self._add(data, "残疾人两项补贴", p, 90.0, rng)
                added += 1
        for p in elders:
            if "养老金" not in items.get(id(p), set()):
                self._add(data, "养老金", p, 183.0, rng)
                added += 1
        if added < 2:
            return False
        note = f"{c.applicant.name}户: 低保、残疾人两项补贴、养老金同时享受({added} 项新增)"
        self.rows.append(("every_programme", "household", c.applicant.pid, c.village.code, note))
        return True

    # ------------------------------------------------------------------ truth
    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(COLUMNS)
            for r in sorted(set(self.rows)):
                w.writerow(r)
