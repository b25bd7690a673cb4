"""The synthetic county's true state: townships, villages, households, persons.

Everything here is the *truth*; the department exports written by :mod:`crossmatch.synth.county`
are views of it with each department's layout and mess. One :class:`Town` (township) is built,
planted, written and dropped at a time, which keeps memory bounded at any county size.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from crossmatch.idnumber import check_char

COUNTY = "341122"
COUNTY_NAME = "安徽省滁州市来安县"  # a plausible address prefix for the synthetic county
SNAPSHOT = dt.date(2025, 12, 31)
YEAR = 2025
BIRTH_EPOCH = dt.date(1915, 1, 1)
OTHER_REGIONS = (
    "341102", "341103", "341124", "341125", "341126", "341181", "341182", "340104",
    "340322", "320322", "410526", "370826", "420117", "320106",
)  # fmt: skip
XJ_REGION = "650102"  # region code carried by residents born in Xinjiang (dotted names)
REGIONS = (COUNTY, *OTHER_REGIONS, XJ_REGION)


@dataclass(eq=False, slots=True)
class Village:
    code: str  # 12 digits
    name: str
    town: Town
    urban: bool
    households: list[Household] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class Town:
    idx: int
    code: str  # 9 digits
    name: str
    villages: list[Village] = field(default_factory=list)
    persons: list[Person] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class Household:
    no: str  # 户号, 16 digits
    village: Village
    address: str
    members: list[Person] = field(default_factory=list)
    poor: bool = False
    reserved: bool = False  # used by a planted scenario: background must not touch it

    def living(self, on: dt.date = dt.date(YEAR, 1, 1)) -> list[Person]:
        return [p for p in self.members if p.alive_on(on) and p.moved is None]


@dataclass(eq=False, slots=True)
class Person:
    pid: str
    name: str
    sex: str  # 男 / 女
    birth: dt.date
    ethnic: str
    hh: Household | None
    rel: str
    death: dt.date | None = None
    moved: dt.date | None = None  # hukou moved out (迁出)
    cancel: dt.date | None = None  # hukou cancelled for death (lags the death, or never)
    account: str = ""
    bank: str = ""
    acct_opened: dt.date | None = None
    role: str = ""  # cadre / official / teacher / ... (background exclusivity)
    busy: bool = False  # taken by a planted scenario
    ghost: bool = False
    raw_id: str = ""  # ghosts: the fabricated ID written in exports
    father: Person | None = None  # when the father is a resident of the county (any household)
    mother: Person | None = None
    parents_blank: bool = False  # the registry row leaves the parent-ID cells empty

    @property
    def village(self) -> Village:
        assert self.hh is not None
        return self.hh.village

    def alive_on(self, d: dt.date) -> bool:
        return self.death is None or self.death >= d

    def age_on(self, d: dt.date) -> int:
        return d.year - self.birth.year - ((d.month, d.day) < (self.birth.month, self.birth.day))

    def written_id(self) -> str:
        return self.raw_id if self.ghost else self.pid


class IdAllocator:
    """Unique 18-digit IDs: a bitmap over (region, birth day, sequence) keeps memory flat."""

    def __init__(self) -> None:
        self.days = (dt.date(2026, 1, 1) - BIRTH_EPOCH).days
        self.bits = bytearray(len(REGIONS) * self.days * 1000 // 8 + 1)

    def _key(self, ri: int, birth: dt.date, seq: int) -> int:
        return (ri * self.days + (birth - BIRTH_EPOCH).days) * 1000 + seq

    def take(self, region: str, birth: dt.date, male: bool, start: int) -> str:
        ri = REGIONS.index(region)
        k = start % 500
        for _ in range(500):
            seq = 2 * k + (1 if male else 0)
            key = self._key(ri, birth, seq)
            if not self.bits[key >> 3] & (1 << (key & 7)):
                self.bits[key >> 3] |= 1 << (key & 7)
                first17 = f"{region}{birth:%Y%m%d}{seq:03d}"
                return first17 + check_char(first17)
            k = (k + 1) % 500
        raise RuntimeError(f"no free ID sequence for {region} {birth}")


def uscc(rng_digits: str, kind: str = "91") -> str:
    """A unified social credit code (GB 32100) with a valid check character."""
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    weights = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    body = f"{kind}{COUNTY}{rng_digits}"[:17]
    total = sum(alphabet.index(c) * w for c, w in zip(body, weights, strict=True))
    return body + alphabet[(31 - total % 31) % 31]
