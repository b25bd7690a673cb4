"""Chinese resident ID numbers (公民身份号码, GB 11643-1999).

Pure functions shared by the generator, the ingest normalizers and identity resolution.
An 18-digit number is 6 digits of region code, 8 of birth date (YYYYMMDD), 3 of sequence
(odd = male, even = female) and one check character (0-9 or X). Legacy 15-digit numbers
have a 2-digit year and no check character.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

#: GB 11643 check-character weights of the first 17 digits and the character per remainder mod 11.
ID_CHECK_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK_CHARS = "10X98765432"


def check_char(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits."""
    total = sum(int(c) * w for c, w in zip(first17, ID_CHECK_WEIGHTS, strict=True))
    return ID_CHECK_CHARS[total % 11]


def is_valid18(idn: str) -> bool:
    """True when ``idn`` is 18 characters, digits + check, with a real birth date."""
    if len(idn) != 18 or not idn[:17].isdigit() or idn[17] not in "0123456789X":
        return False
    if check_char(idn[:17]) != idn[17]:
        return False
    return _date_ok(idn[6:14])


def _date_ok(yyyymmdd: str) -> bool:
    try:
        d = _dt.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return False
    return 1880 <= d.year <= 2100


def upgrade15(idn15: str) -> str | None:
    """Convert a legacy 15-digit ID to 18 digits (century 19 assumed), or None if malformed."""
    if len(idn15) != 15 or not idn15.isdigit():
        return None
    first17 = idn15[:6] + "19" + idn15[6:]
    if not _date_ok(first17[6:14]):
        return None
    return first17 + check_char(first17)


def to15(idn18: str) -> str:
    """The legacy 15-digit form of an 18-digit ID born in the 1900s (used by the generator)."""
    return idn18[:6] + idn18[8:17]


@dataclass(frozen=True, slots=True)
class ParsedID:
    """Outcome of :func:`parse`: the canonical form (or None) and why."""

    raw: str | None
    canonical: str | None  # valid 18-digit form, upper-case X
    status: str  # valid18 | upgraded15 | bad_checksum | bad_date | bad_format | missing
    candidate: str | None = None  # cleaned 18-char string even when invalid (useful for fuzzy ID)

    @property
    def birth_date(self) -> _dt.date | None:
        s = self.canonical or self.candidate
        if not s or len(s) != 18 or not s[6:14].isdigit() or not _date_ok(s[6:14]):
            return None
        return _dt.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))

    @property
    def sex(self) -> str | None:
        s = self.canonical
        if not s:
            return None
        return "男" if int(s[16]) % 2 == 1 else "女"

    @property
    def region(self) -> str | None:
        return self.canonical[:6] if self.canonical else None


_FULLWIDTH = str.maketrans("０１２３４５６７８９ｘＸ", "0123456789XX")


def clean(raw: object) -> str:
    """Strip spaces, full-width digits, apostrophes Excel users prepend; upper-case x."""
    if raw is None:
        return ""
    s = str(raw).translate(_FULLWIDTH).strip().lstrip("'").replace(" ", "").replace("\u3000", "")
    if s.endswith(".0") and s[:-2].isdigit():  # a number that went through a float column
        s = s[:-2]
    return s.upper()


def parse(raw: object) -> ParsedID:
    """Parse a raw ID cell into a :class:`ParsedID`; never raises."""
    s = clean(raw)
    rs = None if raw is None else str(raw)
    if not s:
        return ParsedID(rs, None, "missing")
    if len(s) == 15 and s.isdigit():
        up = upgrade15(s)
        return ParsedID(rs, up, "upgraded15") if up else ParsedID(rs, None, "bad_date", None)
    if len(s) == 18 and s[:17].isdigit() and s[17] in "0123456789X":
        if not _date_ok(s[6:14]):
            return ParsedID(rs, None, "bad_date", s)
        if check_char(s[:17]) != s[17]:
            return ParsedID(rs, None, "bad_checksum", s)
        return ParsedID(rs, s, "valid18", s)
    return ParsedID(rs, None, "bad_format")
