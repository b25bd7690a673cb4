"""Build one township's truth (population + every department's records), then write it.

The background is built *clean* with respect to every rule of the catalogue (poor households
own no cars, officials are not in 低保 households, payments stop at death ...); the rule
scenarios are then planted by :mod:`crossmatch.synth.plant`, which records each case and trap
in ``truth/planted.csv``. Deliberately rule-looking but legitimate situations that arise
naturally (payment in the death month, an exempt motorcycle, exactly one home) are recorded
as traps too.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crossmatch.synth import names as N
from crossmatch.synth.model import (
    COUNTY,
    COUNTY_NAME,
    OTHER_REGIONS,
    XJ_REGION,
    YEAR,
    Household,
    IdAllocator,
    Person,
    Town,
    Village,
    uscc,
)

D = dt.date
JAN1 = D(YEAR, 1, 1)

# Subsidy standards: (item, region prefix, basis, monthly amount, valid_from, valid_to, band).
# band = number of covered persons (保障人数) the amount is for, the highest band open (6 = 6+);
# None = the amount applies to every household size (per person when basis is 按人). Township 002
# pays 低保 by household-size band (按户), not proportionally to size: its 1- and 2-person bands
# are above the county's per-person standard x size, its 3+ bands below.
STANDARDS: tuple[tuple[str, str, str, float, dt.date, dt.date | None, int | None], ...] = (
    ("城乡低保金", COUNTY, "按人", 530.0, D(2024, 1, 1), D(2024, 12, 31), None),
    ("城乡低保金", COUNTY, "按人", 560.0, D(2025, 1, 1), D(2025, 6, 30), None),
    ("城乡低保金", COUNTY, "按人", 600.0, D(2025, 7, 1), None, None),
    ("城乡低保金", COUNTY + "001", "按人", 720.0, D(2025, 1, 1), D(2025, 6, 30), None),
    ("城乡低保金", COUNTY + "001", "按人", 780.0, D(2025, 7, 1), None, None),
    *(
        ("城乡低保金", COUNTY + "002", "按户", amt, f, t, band)
        for f, t, amts in (
            (D(2025, 1, 1), D(2025, 6, 30), (620.0, 1250.0, 1650.0, 2000.0, 2350.0, 2650.0)),
            (D(2025, 7, 1), None, (660.0, 1330.0, 1750.0, 2120.0, 2490.0, 2800.0)),
        )
        for band, amt in enumerate(amts, start=1)
    ),
    ("特困供养金", COUNTY, "按人", 900.0, D(2024, 1, 1), None, None),
    ("高龄津贴", COUNTY, "按人", 100.0, D(2020, 1, 1), None, None),
    ("残疾人两项补贴", COUNTY, "按人", 90.0, D(2022, 1, 1), None, None),
    ("养老金", COUNTY, "按人", 183.0, D(2025, 1, 1), None, None),
)
TOP_BAND = 6  # the open band: 6 = six or more covered persons
FARMLAND_RATE = 105.0  # 元/亩, 2025
FARMLAND_MONTH = 5  # the annual farmland subsidy is paid with the May batch
#: the assistance items (classes dibao / tekun in rules/reference/item_class.csv)
ASSIST_ITEMS = ("城乡低保金", "特困供养金")
EXEMPT_VEHICLES = ("普通二轮摩托车", "轻便二轮摩托车", "三轮汽车", "残疾人专用小型自动挡载客汽车")
CARS = ("小型轿车", "小型普通客车", "小型越野客车", "轻型普通货车")
BANKS = ("来安农商银行", "中国农业银行来安支行", "中国邮政储蓄银行来安县支行")
ITEM_CODE = {
    "城乡低保金": "01", "特困供养金": "02", "高龄津贴": "03", "耕地地力保护补贴": "04",
    "残疾人两项补贴": "05", "养老金": "06",
}  # fmt: skip


def standard(item: str, village_code: str, month: int, persons: int = 1) -> float:
    """The monthly amount due to a household of ``persons`` covered persons for an item, region
    and month: the longest region prefix wins; a banded standard gives its band's amount (the
    top band open), a per-person one is multiplied by ``persons`` (0.0 when none applies)."""
    d = D(YEAR, month, 1)
    best, blen = 0.0, -1
    for it, pref, basis, amt, f, t, band in STANDARDS:
        live = f <= d and (t is None or d <= t)
        if it != item or not village_code.startswith(pref) or not live or len(pref) < blen:
            continue
        if band is not None and band != min(persons, TOP_BAND):
            continue
        due = amt * persons if basis == "按人" else amt
        if len(pref) > blen:
            best, blen = due, len(pref)
    return best


def banded(item: str, village_code: str) -> bool:
    """Whether the item's standard for this village is given by household-size band."""
    rows = [x for x in STANDARDS if x[0] == item and village_code.startswith(x[1])]
    longest = max((len(x[1]) for x in rows), default=-1)
    return any(x[6] is not None for x in rows if len(x[1]) == longest)


@dataclass(eq=False, slots=True)
class Case:
    """A 低保/特困 case: one roster row per member."""

    kind: str
    no: str
    applicant: Person
    members: list[tuple[Person, str]]
    village: Village
    handler: Person
    approver: Person
    start: dt.date
    end: dt.date | None
    factor: float  # share of the standard actually paid (差额 assistance)
    critical: bool = False
    pay_override: dict[int, float] | None = None

    def paid_months(self) -> list[int]:
        first = 1 if self.start < JAN1 else self.start.month + (self.start.day > 1)
        last = 12 if self.end is None or self.end.year > YEAR else self.end.month
        return [m for m in range(first, last + 1)] if self.start.year <= YEAR else []


@dataclass(eq=False, slots=True)
class Pay:
    item: str
    payee: Person
    account: str
    bank: str
    amount: float
    month: int
    village: Village
    status: str = "成功"
    day: int = 15
    critical: bool = False
    batch: str = ""
    force: str = ""  # a noise label forced on this row (planted identity traps)
    extra: bool = False  # an ML anomaly's row (synth.anomalies): written clean, drawing no noise


@dataclass(eq=False, slots=True)
class Enterprise:
    code: str
    name: str
    rep: Person
    capital: float  # yuan
    status: str
    established: dt.date
    deregistered: dt.date | None
    holders: list[tuple[Person, float]] = field(default_factory=list)  # (person, subscribed yuan)
    critical: bool = False


@dataclass
class TownData:
    """Every department's records for one township (truth side, before the mess)."""

    town: Town
    cases: list[Case] = field(default_factory=list)
    elderly: list[tuple[Person, dt.date, bool]] = field(default_factory=list)
    proxies: list[tuple[Person, Person, str, dt.date, bool]] = field(default_factory=list)
    pays: list[Pay] = field(default_factory=list)
    payroll: list[tuple] = field(default_factory=list)
    cadres: list[tuple] = field(default_factory=list)
    filings: list[tuple] = field(default_factory=list)
    properties: list[tuple] = field(default_factory=list)
    co_owners: dict[str, Person] = field(default_factory=dict)  # unit number -> 共有人
    vehicles: list[tuple] = field(default_factory=list)
    enterprises: list[Enterprise] = field(default_factory=list)
    land: list[tuple] = field(default_factory=list)
    farmland: list[tuple] = field(default_factory=list)
    accounts: list[tuple] = field(default_factory=list)
    marriages: list[tuple] = field(default_factory=list)
    deaths: list[tuple] = field(default_factory=list)  # (person, in_death_file, cremation, cancel)
    procurement: list[tuple] = field(default_factory=list)
    staff: list[tuple] = field(default_factory=list)
    handlers: list[Person] = field(default_factory=list)
    approvers: list[Person] = field(default_factory=list)
    schools: list[tuple[str, str]] = field(default_factory=list)
    planted: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    ghosts: list[Person] = field(default_factory=list)

    def plant(self, rule: str, kind: str, subject: str, period: str, note: str) -> None:
        self.planted.append((rule, kind, subject, period, note))


class Builder:
    """Builds townships one at a time from a county-wide seed."""

    def __init__(self, seed: int, persons: int) -> None:
        self.seed = seed
        self.persons = persons
        self.ids = IdAllocator()
        ppv = min(1500, max(100, persons // 120))
        self.n_villages = max(8, round(persons / ppv))
        self.n_towns = max(3, -(-self.n_villages // 16))
        rng = self.rng(0)
        w = rng.uniform(0.6, 1.4, self.n_villages)
        self.village_sizes = np.maximum(20, np.round(w / w.sum() * persons)).astype(int)
        self.town_names = _unique_names(rng, self.n_towns, _TOWN_A, _TOWN_B, ("镇", "乡"))
        self.town_names[0] = "城关镇"
        self._s_cum = np.cumsum([w for _, w in N.SURNAMES])
        self._s_cum /= self._s_cum[-1]
        self._m_cum = _zipf_cum(len(N.COMMON_MALE))
        self._f_cum = _zipf_cum(len(N.COMMON_FEMALE))
        self.ghost_no = 0
        self.account_no = 0

    def rng(self, *key: int) -> np.random.Generator:
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, *key])))

    # ---------------------------------------------------------------- population
    def town(self, idx: int, prepare: Any = None) -> tuple[TownData, np.random.Generator]:
        """Build township ``idx`` (0-based): population and background department records.

        ``prepare(data)`` runs after the population exists and before any department record
        is made, so a planting plan can shape the background (e.g. which households are poor).
        """
        rng = self.rng(1, idx)
        code = f"{COUNTY}{idx + 1:03d}"
        town = Town(idx, code, self.town_names[idx])
        vids = [v for v in range(self.n_villages) if v % self.n_towns == idx]
        vnames = _unique_names(rng, len(vids), _VIL_A, _VIL_B, ("村",))
        for j, vi in enumerate(vids):
            urban = idx == 0 and j < 3
            name = vnames[j][:-1] + "社区" if urban else vnames[j]
            v = Village(f"{code}{j + 1:03d}", name, town, urban)
            town.villages.append(v)
            self._populate(v, int(self.village_sizes[vi]), rng)
        self._parents_elsewhere(town, self.rng(4, idx))
        data = TownData(town)
        self._life_events(data, rng)
        if prepare is not None:
            prepare(data)
        self._departments(data, rng)
        return data, rng

    def surname(self, rng: np.random.Generator) -> str:
        return N.SURNAMES[int(np.searchsorted(self._s_cum, rng.random()))][0]

    def given(self, sex: str, rng: np.random.Generator) -> str:
        male = sex == "男"
        if rng.random() < 0.45:
            cum, pool = (self._m_cum, N.COMMON_MALE) if male else (self._f_cum, N.COMMON_FEMALE)
            return pool[int(np.searchsorted(cum, rng.random()))]
        a, b = (N.MALE_CHARS, N.MALE_CHARS2) if male else (N.FEMALE_CHARS, N.FEMALE_CHARS2)
        if rng.random() < 0.3:
            return b[int(rng.integers(0, len(b)))]
        return a[int(rng.integers(0, len(a)))] + b[int(rng.integers(0, len(b)))]

    def person(
        self,
        rng: np.random.Generator,
        hh: Household | None,
        rel: str,
        sex: str,
        age: int,
        surname: str | None = None,
        ethnic: str = "汉族",
    ) -> Person:
        year = YEAR - age
        birth = D(year, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365)))
        if ethnic == "维吾尔族":
            ms = N.MINORITY_GIVEN_M if sex == "男" else N.MINORITY_GIVEN_F
            name = ms[int(rng.integers(0, len(ms)))] + "·"
            name += N.MINORITY_FATHER[int(rng.integers(0, len(N.MINORITY_FATHER)))]
            region = XJ_REGION
        else:
            name = (surname or self.surname(rng)) + self.given(sex, rng)
            region = (
                COUNTY
                if rng.random() < 0.85
                else OTHER_REGIONS[int(rng.integers(0, len(OTHER_REGIONS)))]
            )
        pid = self.ids.take(region, birth, sex == "男", int(rng.integers(0, 500)))
        p = Person(pid, name, sex, birth, ethnic, hh, rel)
        if hh is not None:
            hh.members.append(p)
        return p

    def _populate(self, v: Village, target: int, rng: np.random.Generator) -> None:
        clans = [self.surname(rng) for _ in range(3)]
        count = 0
        while count < target:
            no = f"{v.code}{len(v.households) + 1:04d}"
            addr = f"{COUNTY_NAME}{v.town.name}{v.name}{int(rng.integers(1, 200))}号"
            hh = Household(no, v, addr)
            v.households.append(hh)
            u = rng.random()
            ethnic = _pick_ethnic(rng)

            def sn() -> str:
                return clans[int(rng.integers(0, 3))] if rng.random() < 0.35 else self.surname(rng)

            fam = sn()
            P = self.person
            if u < 0.12:  # single person
                age = int(rng.integers(60, 96)) if rng.random() < 0.7 else int(rng.integers(25, 60))
                P(rng, hh, "户主", "男" if rng.random() < 0.5 else "女", age, fam, ethnic)
            elif u < 0.30:  # elderly couple
                a = int(rng.integers(55, 89))
                P(rng, hh, "户主", "男", a, fam, ethnic)
                P(rng, hh, "配偶", "女", max(45, a - int(rng.integers(0, 6))), sn(), ethnic)
            elif u < 0.72:  # nuclear family
                a = int(rng.integers(26, 59))
                h = P(rng, hh, "户主", "男", a, fam, ethnic)
                w = P(rng, hh, "配偶", "女", max(20, a - int(rng.integers(-2, 6))), sn(), ethnic)
                for _ in range(int(rng.choice([1, 2, 3], p=[0.4, 0.45, 0.15]))):
                    ca = a - int(rng.integers(22, 35))
                    if ca >= 0:
                        s = "男" if rng.random() < 0.52 else "女"
                        k = P(rng, hh, "子" if s == "男" else "女", s, ca, fam, ethnic)
                        k.father, k.mother = h, w
            elif u < 0.88:  # three generations
                a = int(rng.integers(48, 73))
                h = P(rng, hh, "户主", "男", a, fam, ethnic)
                w = P(rng, hh, "配偶", "女", a - int(rng.integers(0, 5)), sn(), ethnic)
                sa = a - int(rng.integers(22, 30))
                son = P(rng, hh, "子", "男", sa, fam, ethnic)
                son.father, son.mother = h, w
                dil = P(rng, hh, "儿媳", "女", max(18, sa - int(rng.integers(-1, 4))), sn(), ethnic)
                for _ in range(int(rng.integers(1, 3))):
                    ga = sa - int(rng.integers(20, 31))
                    if ga >= 0:
                        s = "男" if rng.random() < 0.52 else "女"
                        g = P(rng, hh, "孙子女", s, ga, fam, ethnic)
                        g.father, g.mother = son, dil
            else:  # with the head's parents
                a = int(rng.integers(28, 51))
                h = P(rng, hh, "户主", "男", a, fam, ethnic)
                w = P(rng, hh, "配偶", "女", max(20, a - int(rng.integers(-2, 5))), sn(), ethnic)
                for _ in range(int(rng.integers(0, 3))):
                    ca = a - int(rng.integers(22, 35))
                    if ca >= 0:
                        s = "男" if rng.random() < 0.52 else "女"
                        k = P(rng, hh, "子" if s == "男" else "女", s, ca, fam, ethnic)
                        k.father, k.mother = h, w
                fa = min(100, a + int(rng.integers(22, 33)))
                if rng.random() < 0.8:
                    h.father = P(rng, hh, "父母", "男", fa, fam, ethnic)
                h.mother = P(rng, hh, "父母", "女", fa - int(rng.integers(0, 5)), sn(), ethnic)
            v.town.persons.extend(hh.members)
            count += len(hh.members)

    def _parents_elsewhere(self, town: Town, rng: np.random.Generator) -> None:
        """Parents living in another household of the township (often another village).

        Married-out daughters (a wife whose parents are an elderly couple elsewhere) and sons
        who split off their own household: only the registry's parent-ID columns state these
        relations. A daughter takes her father's surname; a son's father takes the son's (the
        father's household is an elderly couple without children at home, so nobody else's
        name depends on it).
        """
        couples: list[tuple[Person, Person]] = []
        for v in town.villages:
            for hh in v.households:
                m = hh.members
                if len(m) == 2 and m[1].rel == "配偶" and "·" not in m[0].name + m[1].name:
                    couples.append((m[0], m[1]))
        if not couples:
            return
        locked: set[int] = set()  # fathers whose surname a son already fixed
        for v in town.villages:
            for hh in v.households:
                for p in hh.members[:2]:
                    if p.father is not None or p.mother is not None or "·" in p.name:
                        continue
                    age = p.age_on(JAN1)
                    if not 20 <= age <= 62:
                        continue
                    daughter = p.rel == "配偶" and p.sex == "女"
                    son = p.rel == "户主" and p.sex == "男"
                    if not ((daughter and rng.random() < 0.4) or (son and rng.random() < 0.3)):
                        continue
                    for _ in range(12):
                        f, m = couples[int(rng.integers(0, len(couples)))]
                        if f.hh is hh or not 22 <= f.age_on(JAN1) - age <= 40:
                            continue
                        if not 20 <= m.age_on(JAN1) - age <= 42:
                            continue
                        if son and id(f) in locked and surname_of(f.name) != surname_of(p.name):
                            continue
                        if son:
                            f.name = with_surname(f.name, surname_of(p.name))
                            locked.add(id(f))
                        else:
                            p.name = with_surname(p.name, surname_of(f.name))
                        p.father, p.mother = f, m
                        break

    def _life_events(self, data: TownData, rng: np.random.Generator) -> None:
        """Deaths (2019-2025), moves out, marriages and divorces, poverty."""
        town = data.town
        for p in town.persons:
            age = p.age_on(JAN1)
            q = _mortality(age)
            u = rng.random()
            if u < q * 6 and age >= 40:  # died 2019-2024: a cancelled registry row
                p.death = D(2019, 1, 1) + dt.timedelta(days=int(rng.integers(0, 6 * 365)))
            elif u < q * 7:
                p.death = JAN1 + dt.timedelta(days=int(rng.integers(0, 365)))
            elif 18 <= age <= 40 and rng.random() < 0.015:
                p.moved = D(2018, 1, 1) + dt.timedelta(days=int(rng.integers(0, 8 * 365)))
            if p.death is not None and p.death < p.birth:
                p.death = None
        for p in town.persons:
            if p.death is not None:
                self._record_death(data, p, rng)
        for v in town.villages:
            for hh in v.households:
                self._marriages(data, hh, rng)
                living = hh.living()
                if not living:
                    continue
                old = max(p.age_on(JAN1) for p in living)
                pr = 0.16 + (0.08 if old >= 70 else 0) + (0.05 if len(living) == 1 else 0)
                hh.poor = rng.random() < pr
        self._divorces(data, rng)

    def _record_death(
        self, data: TownData, p: Person, rng: np.random.Generator, critical: bool = False
    ) -> None:
        assert p.death is not None
        if critical and any(x[0] is p for x in data.deaths):
            # one person, one death: a second record would overwrite the first date
            raise ValueError(f"{p.pid} already has a death record (planted twice?)")
        in_file = critical or rng.random() < 0.9
        crem = (
            p.death + dt.timedelta(days=int(rng.integers(1, 4)))
            if (not critical and rng.random() < 0.75)
            else None
        )
        cdate = p.death + dt.timedelta(days=int(rng.integers(3, 120)))
        lagged = (not critical and rng.random() < 0.15) or cdate > D(YEAR, 12, 31)
        cancel = None if lagged else cdate
        if not in_file and crem is None and cancel is None:
            in_file = True
        p.cancel = cancel
        data.deaths.append((p, in_file, crem, cancel))

    def _marriages(self, data: TownData, hh: Household, rng: np.random.Generator) -> None:
        by_rel: dict[str, list[Person]] = {}
        for p in hh.members:
            by_rel.setdefault(p.rel, []).append(p)
        pairs = []
        head = hh.members[0]
        if "配偶" in by_rel:
            h, w = (head, by_rel["配偶"][0]) if head.sex == "男" else (by_rel["配偶"][0], head)
            pairs.append((h, w))
        if "儿媳" in by_rel and "子" in by_rel:
            pairs.append((by_rel["子"][0], by_rel["儿媳"][0]))
        parents = by_rel.get("父母", [])
        if len(parents) == 2:
            pairs.append((parents[0], parents[1]))
        for h, w in pairs:
            d = h.birth.replace(day=1, month=1) + dt.timedelta(
                days=int(rng.integers(22 * 365, 28 * 365))
            )
            if D(1996, 1, 1) <= d <= D(YEAR, 12, 31) and rng.random() < 0.9:
                data.marriages.append(("结婚", h, w, d, False))

    def _divorces(self, data: TownData, rng: np.random.Generator) -> None:
        singles = [
            hh.members[0]
            for v in data.town.villages
            for hh in v.households
            if len(hh.members) == 1
            and not hh.poor
            and 30 <= hh.members[0].age_on(JAN1) <= 60
            and hh.members[0].death is None
        ]
        men = [p for p in singles if p.sex == "男"]
        women = [p for p in singles if p.sex == "女"]
        for h, w in zip(men[::3], women[::3], strict=False):
            d1 = D(2005, 1, 1) + dt.timedelta(days=int(rng.integers(0, 10 * 365)))
            d2 = d1 + dt.timedelta(days=int(rng.integers(365, 8 * 365)))
            data.marriages.append(("结婚", h, w, d1, False))
            data.marriages.append(("离婚", h, w, d2, False))

    # ---------------------------------------------------------------- departments
    def _departments(self, data: TownData, rng: np.random.Generator) -> None:
        town = data.town
        villages = town.villages
        self._officials(data, rng)
        kin = close_kin(data)
        for v in villages:
            self._cadres(data, v, rng, kin)
        for v in villages:
            for hh in v.households:
                if hh.poor:
                    self._assistance(data, hh, rng)
                else:
                    self._assets(data, hh, rng)
                self._land(data, hh, rng)
        self._enterprises(data, rng)
        self._schools(data, rng)
        self._person_payments(data, rng)

    def account(self, p: Person, rng: np.random.Generator, data: TownData) -> str:
        """The person's 社保卡/一卡通 account (opened once, listed in the bank file)."""
        if not p.account:
            self.account_no += 1
            bank = BANKS[int(rng.integers(0, len(BANKS)))]
            p.account = f"6230{int(rng.integers(10**10, 10**11 - 1))}{self.account_no:05d}"[:19]
            p.bank = bank
            p.acct_opened = D(2012, 1, 1) + dt.timedelta(days=int(rng.integers(0, 12 * 365)))
            data.accounts.append((p.account, p, bank, p.acct_opened, None, False))
        return p.account

    def _officials(self, data: TownData, rng: np.random.Generator) -> None:
        """Township government (incl. 民政办 handlers/approvers), health centre, 公益性岗位."""
        town = data.town
        gov = f"{town.name}人民政府"
        gov_code = uscc(f"{int(rng.integers(10**8, 10**9))}", "11")
        candidates = [
            p
            for v in town.villages
            for hh in v.households
            if not hh.poor
            for p in hh.members
            if 24 <= p.age_on(JAN1) <= 58 and p.death is None and p.moved is None
        ]
        order = rng.permutation(len(candidates))
        n = max(6, len(candidates) // 40)
        picked = [candidates[i] for i in order[:n]]
        hc = f"{town.name}卫生院"
        hc_code = uscc(f"{int(rng.integers(10**8, 10**9))}", "12")
        for i, p in enumerate(picked):
            p.role = "official"
            start = D(1995, 1, 1) + dt.timedelta(days=int(rng.integers(0, 28 * 365)))
            start = max(start, D(p.birth.year + 22, 7, 1))
            if i < 3:
                post, unit, code, ptype = "民政办科员", gov, gov_code, "行政"
                data.handlers.append(p)
            elif i < 5:
                post = "民政办主任" if i == 3 else "副镇长"
                unit, code, ptype = gov, gov_code, "行政"
                data.approvers.append(p)
            elif i % 3 == 0:
                post, unit, code, ptype = "医生", hc, hc_code, "事业"
            else:
                post, unit, code, ptype = "科员", gov, gov_code, "行政"
            end = None
            if i >= 5 and rng.random() < 0.06:
                end = D(2018, 1, 1) + dt.timedelta(days=int(rng.integers(0, 7 * 365)))
            data.payroll.append((p, unit, code, post, ptype, start, end, False))
        data.gov = (gov, gov_code)  # type: ignore[attr-defined]

    def _cadres(
        self, data: TownData, v: Village, rng: np.random.Generator, kin: dict[int, set[int]]
    ) -> None:
        # a relative in a poor household of the village would be an unplanted favouritism case
        poor = {id(p) for hh in v.households if hh.poor for p in hh.members}
        cands = [
            p
            for hh in v.households
            if not hh.poor
            for p in hh.members
            if 30 <= p.age_on(JAN1) <= 64 and p.death is None and p.moved is None and not p.role
            and not kin.get(id(p), set()) & poor
        ]  # fmt: skip
        posts = ["党支部书记兼主任", "副主任", "村委委员", "报账员", "妇联主席", "监委会主任"]
        order = rng.permutation(len(cands))
        for post, i in zip(posts, order, strict=False):
            p = cands[int(i)]
            p.role = "cadre"
            start = D(2021, 3, 1) + dt.timedelta(days=int(rng.integers(0, 60)))
            end = D(2026, 3, 31)
            data.cadres.append((p, v, post, start, end, False))

    def _assistance(self, data: TownData, hh: Household, rng: np.random.Generator) -> None:
        living = [p for p in hh.living(D(YEAR - 1, 12, 1)) if not p.role]
        if not living or hh.reserved:
            return
        head = living[0]  # the head, or the eldest survivor when the head has died
        kind = (
            "特困供养"
            if len(living) == 1 and head.age_on(JAN1) >= 60
            else ("城乡低保" if hh.village.urban else "农村低保")
        )
        start = D(2014, 1, 1) + dt.timedelta(days=int(rng.integers(0, 11 * 365)))
        end = None
        if rng.random() < 0.05:
            end = D(YEAR, int(rng.integers(2, 12)), 28)
        if head.death is not None and head.death.year == YEAR:
            end = head.death
        elif head.death is not None:
            return
        members = [(p, _rel_to(head, p)) for p in living]
        names = {p.name for p in hh.members}
        handlers = [h for h in data.handlers if h.name not in names] or data.handlers
        approvers = [h for h in data.approvers if h.name not in names] or data.approvers
        case = Case(
            kind,
            f"{hh.village.code[-6:]}{len(data.cases) + 1:04d}{int(rng.integers(10, 99))}",
            head,
            members,
            hh.village,
            handlers[int(rng.integers(0, len(handlers)))],
            approvers[int(rng.integers(0, len(approvers)))],
            start,
            end,
            float(rng.choice([1.0, 0.9, 0.8, 0.7, 0.6])),
        )
        data.cases.append(case)
        if rng.random() < 0.3:  # a legitimate home: the 'exactly one home' trap material
            self.add_property(data, head, "住宅", rng, D(2005, 1, 1), None)
        if rng.random() < 0.12:  # exempt vehicle
            vt = EXEMPT_VEHICLES[int(rng.integers(0, len(EXEMPT_VEHICLES)))]
            self.add_vehicle(data, head, vt, rng, "正常", None)

    def _assets(self, data: TownData, hh: Household, rng: np.random.Generator) -> None:
        adults = [p for p in hh.living() if p.age_on(JAN1) >= 20]
        if not adults:
            return
        head = adults[0]
        if rng.random() < 0.75:
            self.add_property(data, head, "住宅", rng, None, None)
        if rng.random() < 0.18:
            sold = (
                D(2016, 1, 1) + dt.timedelta(days=int(rng.integers(0, 3000)))
                if rng.random() < 0.3
                else None
            )
            self.add_property(data, head, "住宅", rng, None, sold)
        if rng.random() < 0.05:
            self.add_property(data, head, "商业", rng, None, None)
        for p in adults[:2]:
            if rng.random() < 0.3:
                vt = CARS[int(rng.integers(0, len(CARS)))]
                self.add_vehicle(data, p, vt, rng, "正常", None)

    def add_property(
        self,
        data: TownData,
        owner: Person,
        usage: str,
        rng: np.random.Generator,
        reg: dt.date | None,
        cancel: dt.date | None,
        critical: bool = False,
        co_owner: Person | None = None,
    ) -> str:
        reg = reg or D(2003, 1, 1) + dt.timedelta(days=int(rng.integers(0, 21 * 365)))
        if cancel is not None and cancel <= reg:
            reg = cancel - dt.timedelta(days=int(rng.integers(400, 3000)))
        zone = f"{int(rng.integers(100, 999))}GB{int(rng.integers(10**4, 10**5))}"
        unit = f"{COUNTY}{zone}F{len(data.properties) + 1:08d}"
        street = ("幸福路", "建设路", "人民路", "滨河路", "新城花园")[int(rng.integers(0, 5))]
        loc = f"{owner.village.town.name}{street}{int(rng.integers(1, 300))}号"
        area = round(float(rng.uniform(60, 160) if usage == "住宅" else rng.uniform(20, 300)), 2)
        data.properties.append((owner, unit, loc, usage, area, reg, cancel, critical))
        if co_owner is not None:
            data.co_owners[unit] = co_owner
        return unit

    def add_vehicle(
        self,
        data: TownData,
        owner: Person,
        vtype: str,
        rng: np.random.Generator,
        status: str,
        status_date: dt.date | None,
        reg: dt.date | None = None,
        critical: bool = False,
    ) -> None:
        letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
        plate = "皖M" + "".join(
            letters[int(rng.integers(0, 24))] if k == 0 else str(int(rng.integers(0, 10)))
            for k in range(5)
        )
        reg = reg or D(2008, 1, 1) + dt.timedelta(days=int(rng.integers(0, 16 * 365)))
        if status_date is not None and status_date <= reg:
            reg = status_date - dt.timedelta(days=int(rng.integers(200, 2000)))
        use = "货运" if "货车" in vtype else "非营运"
        data.vehicles.append((owner, plate, vtype, use, reg, status, status_date, critical))

    def _land(self, data: TownData, hh: Household, rng: np.random.Generator) -> None:
        if hh.village.urban or not hh.members:
            return
        head = hh.members[0]
        if (head.death is not None and head.death < JAN1) or head.moved is not None:
            return
        area = round(float(rng.uniform(2.0, 15.0)), 1)
        no = f"{hh.village.code}JA{len(data.land) + 1:05d}"
        data.land.append((no, head, hh.village, int(rng.integers(1, 8)), area, False))
        if head.death is not None:
            return
        sub = area if rng.random() < 0.4 else round(area * float(rng.uniform(0.8, 1.0)), 1)
        data.farmland.append((head, hh.village, sub, area, False))

    def _enterprises(self, data: TownData, rng: np.random.Generator) -> None:
        town = data.town
        owners = [
            p
            for v in town.villages
            for hh in v.households
            if not hh.poor
            for p in hh.members
            if 25 <= p.age_on(JAN1) <= 65 and p.death is None and p.moved is None
        ]
        n = max(4, len(owners) // 30)
        order = rng.permutation(len(owners))
        for k in range(n):
            rep = owners[int(order[k % len(owners)])]
            ent = self.new_enterprise(data, rep, rng)
            for _ in range(int(rng.integers(0, 3))):
                h = owners[int(rng.integers(0, len(owners)))]
                ent.holders.append((h, round(ent.capital * float(rng.uniform(0.1, 0.4)), -2)))

    def new_enterprise(
        self,
        data: TownData,
        rep: Person,
        rng: np.random.Generator,
        capital: float | None = None,
        status: str | None = None,
        dereg: dt.date | None = None,
        kind: str | None = None,
    ) -> Enterprise:
        town = data.town
        code = uscc(f"{int(rng.integers(10**8, 10**9))}")
        words = ("农业", "商贸", "建材", "食品", "养殖", "物流", "农资", "餐饮服务")
        kind = kind or words[int(rng.integers(0, len(words)))]
        shop = _SHOP[int(rng.integers(0, len(_SHOP)))]
        name = f"来安县{town.name[:2]}{rep.name[0]}{shop}{kind}有限公司"
        capital = capital or float(rng.choice([3, 5, 10, 20, 50, 100, 200, 500])) * 10000
        est = D(2008, 1, 1) + dt.timedelta(days=int(rng.integers(0, 16 * 365)))
        if status is None:
            u = rng.random()
            status = (
                "注销" if u < 0.1 else ("吊销" if u < 0.13 else ("存续" if u < 0.6 else "在业"))
            )
            if status == "注销":
                dereg = est + dt.timedelta(days=int(rng.integers(300, 3000)))
        if dereg is not None and dereg <= est:
            est = dereg - dt.timedelta(days=int(rng.integers(400, 3000)))
        ent = Enterprise(code, name, rep, capital, status, est, dereg)
        ent.holders.append((rep, round(capital * 0.6, -2)))
        data.enterprises.append(ent)
        return ent

    def _schools(self, data: TownData, rng: np.random.Generator) -> None:
        """Schools, their staff (on the payroll) and school-meal procurement contracts."""
        town = data.town
        cands = [
            p
            for v in town.villages
            for hh in v.households
            if not hh.poor
            for p in hh.members
            if 24 <= p.age_on(JAN1) <= 58 and p.death is None and p.moved is None and not p.role
        ]
        order = list(rng.permutation(len(cands)))
        suppliers = [
            e for e in data.enterprises if e.status in ("存续", "在业") and e.rep.role == ""
        ]
        for sname in (f"{town.name}中心小学", f"{town.name}初级中学"):
            scode = uscc(f"{int(rng.integers(10**8, 10**9))}", "12")
            data.schools.append((sname, scode))
            n = max(4, len(cands) // 60)
            for k in range(n):
                if not order:
                    break
                p = cands[int(order.pop())]
                p.role = "teacher"
                post = ("校长", "副校长", "总务主任")[k] if k < 3 else "教师"
                data.staff.append((p, sname, scode, post, False))
                start = max(
                    D(1995, 1, 1) + dt.timedelta(days=int(rng.integers(0, 28 * 365))),
                    D(p.birth.year + 22, 9, 1),
                )
                data.payroll.append((p, sname, scode, post, "事业", start, None, False))
            for _ in range(int(rng.integers(1, 3))):
                if not suppliers:
                    break
                sup = suppliers[int(rng.integers(0, len(suppliers)))]
                self.add_contract(data, sname, scode, sup, rng, False)

    def add_contract(
        self,
        data: TownData,
        sname: str,
        scode: str,
        sup: Enterprise,
        rng: np.random.Generator,
        critical: bool,
    ) -> None:
        no = f"LAJY-CG-{YEAR}-{data.town.idx + 1:03d}{len(data.procurement) + 1:03d}"
        amt = float(rng.integers(50, 2000)) * 1000
        signed = D(YEAR, 1, 1) + dt.timedelta(days=int(rng.integers(0, 330)))
        data.procurement.append((no, sname, scode, sup, amt, signed, critical))

    def _person_payments(self, data: TownData, rng: np.random.Generator) -> None:
        """Assistance, elderly allowance, pension, disability and farmland payments."""
        for case in data.cases:
            self.case_payments(data, case, rng)
        for v in data.town.villages:
            for hh in v.households:
                for p in hh.members:
                    if p.moved is not None or (p.death is not None and p.death < JAN1):
                        continue
                    age = p.age_on(D(YEAR, 12, 31))
                    last = _last_paid(p, rng)
                    if age >= 80 and not p.busy:
                        turn = D(p.birth.year + 80, p.birth.month, 1)
                        if rng.random() < 0.95:
                            data.elderly.append((p, max(turn, D(2010, 1, 1)), False))
                            first = 1 if turn.year < YEAR else turn.month
                            for m in range(first, last + 1):
                                self.pay(data, "高龄津贴", p, 100.0, m, rng)
                    if age >= 60 and p.role not in ("official", "teacher") and rng.random() < 0.55:
                        sixty = D(p.birth.year + 60, p.birth.month, 1)
                        first = 1 if sixty.year < YEAR else min(12, sixty.month + 1)
                        if sixty.year <= YEAR and not (sixty.year == YEAR and sixty.month == 12):
                            for m in range(first, last + 1):
                                self.pay(data, "养老金", p, 183.0, m, rng)
                    if 16 <= age < 80 and rng.random() < 0.015 and p.role == "":
                        for m in range(1, last + 1):
                            self.pay(data, "残疾人两项补贴", p, 90.0, m, rng)
        for p, _v, sub, _area, _c in data.farmland:
            self.pay(
                data, "耕地地力保护补贴", p, round(sub * FARMLAND_RATE, 2), FARMLAND_MONTH, rng
            )

    def case_payments(self, data: TownData, case: Case, rng: np.random.Generator) -> None:
        item = "特困供养金" if case.kind == "特困供养" else "城乡低保金"
        size = len(case.members)
        last = _last_paid(case.applicant, rng) if case.applicant.death else 12
        for m in case.paid_months():
            if m > last:
                break
            if case.pay_override and m in case.pay_override:
                amt = case.pay_override[m]
            else:
                amt = round(standard(item, case.village.code, m, size) * case.factor, 0)
            self.pay(data, item, case.applicant, amt, m, rng, critical=case.critical)

    def pay(
        self,
        data: TownData,
        item: str,
        p: Person,
        amount: float,
        month: int,
        rng: np.random.Generator,
        *,
        account: str | None = None,
        critical: bool = False,
        status: str = "成功",
        village: Village | None = None,
    ) -> Pay:
        acct = account or self.account(p, rng, data)
        bank = p.bank or BANKS[0]
        pay = Pay(
            item, p, acct, bank, amount, month, village or p.village, status,
            int(rng.integers(8, 21)), critical,
        )  # fmt: skip
        data.pays.append(pay)
        if not critical and status == "成功" and rng.random() < 0.002:
            # a failed transfer re-sent later in the month: a duplicate_payment trap
            pay.status = "失败"
            again = Pay(
                item, p, acct, bank, amount, month, pay.village, "成功",
                min(28, pay.day + int(rng.integers(3, 8))), False, "R",
            )  # fmt: skip
            data.pays.append(again)
            data.plant("duplicate_payment", "trap", p.pid, f"{YEAR}-{month:02d}", "失败后重发")
        return pay

    def new_ghost(self, rng: np.random.Generator, data: TownData, sex: str, age: int) -> Person:
        """A fabricated payee: a valid-looking ID that belongs to nobody in the registry."""
        self.ghost_no += 1
        g = self.person(rng, None, "", sex, age)
        g.ghost = True
        g.raw_id, g.pid = g.pid, f"GHOST-{self.ghost_no:06d}"
        data.ghosts.append(g)
        return g


def close_kin(data: TownData) -> dict[int, set[int]]:
    """Every person's close relatives by the truth (``id(person)`` -> ids), ignoring dates.

    A superset of what the files state: spouses (household and marriage registry, divorced
    too), parents and children (any household), siblings (a shared parent), children's spouses
    and spouses' parents. The background uses it to stay clean of accidental favouritism hits.
    """
    spouse: dict[int, set[Person]] = {}
    children: dict[int, set[Person]] = {}

    def wed(a: Person, b: Person) -> None:
        spouse.setdefault(id(a), set()).add(b)
        spouse.setdefault(id(b), set()).add(a)

    for v in data.town.villages:
        for hh in v.households:
            by: dict[str, list[Person]] = {}
            for p in hh.members:
                by.setdefault(p.rel, []).append(p)
            head = hh.members[0] if hh.members else None
            if head is not None and by.get("配偶"):
                wed(head, by["配偶"][0])
            if len(by.get("父母", [])) == 2:
                wed(*by["父母"])
            if by.get("子") and by.get("儿媳"):
                wed(by["子"][0], by["儿媳"][0])
    for _k, h, w, _d, _c in data.marriages:
        wed(h, w)
    for p in data.town.persons:
        for par in (p.father, p.mother):
            if par is not None:
                children.setdefault(id(par), set()).add(p)
    out: dict[int, set[int]] = {}
    for p in data.town.persons:
        parents = {x for x in (p.father, p.mother) if x is not None}
        sp = spouse.get(id(p), set())
        kids = children.get(id(p), set())
        kin = set(sp) | parents | kids
        kin |= {s for par in parents for s in children.get(id(par), set())}
        kin |= {x for k in kids for x in spouse.get(id(k), set())}
        kin |= {x for s in sp for x in (s.father, s.mother) if x is not None}
        kin.discard(p)
        out[id(p)] = {id(x) for x in kin}
    return out


def surname_of(name: str) -> str:
    """The surname of a Han name (two characters for the compound surnames in use)."""
    return name[:2] if any(name.startswith(s) for s, _w in N.SURNAMES if len(s) > 1) else name[:1]


def with_surname(name: str, surname: str) -> str:
    """The name with its surname replaced."""
    return surname + name[len(surname_of(name)) :]


def _last_paid(p: Person, rng: np.random.Generator) -> int:
    """Last month paid: death month, or one month later (within grace) for some."""
    if p.death is None or p.death.year > YEAR:
        return 12
    if p.death.year < YEAR:
        return 0
    return min(12, p.death.month + (1 if rng.random() < 0.3 else 0))


def _rel_to(head: Person, p: Person) -> str:
    if p is head:
        return "本人"
    return {"配偶": "配偶", "子": "子女", "女": "子女", "父母": "父母", "儿媳": "儿媳",
            "孙子女": "孙子女", "户主": "其他"}.get(p.rel, "其他")  # fmt: skip


def _mortality(age: int) -> float:
    for lim, q in ((1, 0.004), (40, 0.001), (60, 0.004), (70, 0.012), (80, 0.035), (90, 0.09)):
        if age < lim:
            return q
    return 0.2


def _pick_ethnic(rng: np.random.Generator) -> str:
    u = rng.random()
    acc = 0.0
    for e, w in N.ETHNICITIES:
        acc += w
        if u < acc:
            return e
    return "汉族"


def _zipf_cum(n: int) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** 0.8
    c = np.cumsum(w)
    return c / c[-1]


_TOWN_A = "新水张半雷大施舜汊杨独三双永石"
_TOWN_B = "安集桥山郢塔湖堰镇店河庙"
_VIL_A = "东西南北前后上下大小新老高低长黄青白红"
_VIL_B = "王李张刘陈杨庄湾桥岗集店河圩塘庙营寨洼坡郢岭"
_SHOP = ("鑫", "瑞", "兴", "丰", "盛", "华", "达", "隆", "源", "润")


def _unique_names(
    rng: np.random.Generator, n: int, a: str, b: str, suffixes: tuple[str, ...]
) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        name = a[int(rng.integers(0, len(a)))] + b[int(rng.integers(0, len(b)))]
        if len(seen) > len(a) * len(b) * 0.8:
            name += str(len(out))
        if name in seen:
            continue
        seen.add(name)
        out.append(name + suffixes[int(rng.integers(0, len(suffixes)))])
    return out
