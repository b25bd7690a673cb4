"""Comparisons with levels, vectorised over aligned pair arrays (the Splink vocabulary, in numpy).

A comparison looks at one attribute of both records of a pair and returns a level per pair:
``-1`` when either side is null (the comparison then contributes nothing), ``0`` for "different",
and higher numbers for closer agreement. Levels are ordered from worst (0) to best, and each has a
label used in explanations. Kinds are registered by name in :data:`COMPARISON_KINDS` so a linkage
configuration can be written as data (see :mod:`crossmatch.identity.linker`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler
from rapidfuzz.process import cpdist

from crossmatch.identity.names import char_hamming1


def _obj(s: pd.Series) -> np.ndarray:
    return s.to_numpy(dtype=object, na_value=None)


def _null(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return pd.isna(a) | pd.isna(b)


def _jw(a: np.ndarray, b: np.ndarray, ok: np.ndarray) -> np.ndarray:
    out = np.zeros(len(a), dtype=np.float32)
    if ok.any():
        out[ok] = cpdist(
            list(a[ok]), list(b[ok]), scorer=JaroWinkler.normalized_similarity, workers=1
        )
    return out


def _dl(a: np.ndarray, b: np.ndarray, ok: np.ndarray) -> np.ndarray:
    out = np.full(len(a), 99, dtype=np.int32)
    if ok.any():
        out[ok] = cpdist(list(a[ok]), list(b[ok]), scorer=DamerauLevenshtein.distance, workers=1)
    return out


@dataclass(frozen=True)
class Comparison:
    """Base class: ``column`` names the attribute; ``name`` defaults to it."""

    column: str
    name: str = ""
    tf: bool = False  # term-frequency adjust the top level on this column's value
    labels: ClassVar[tuple[str, ...]] = ("different", "exact")
    # True: a level's weight is capped at every higher level's (see Linker.score); only where
    # every level occurs among true matches (not the ID: probes never carry the exact ID)
    monotone: ClassVar[bool] = False

    @property
    def key(self) -> str:
        return self.name or self.column

    @property
    def n_levels(self) -> int:
        return len(self.labels)

    def columns(self) -> list[str]:
        return [self.column]

    def levels(self, left: pd.DataFrame, right: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def _values(
        self, left: pd.DataFrame, right: pd.DataFrame
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """This column on both sides, where either is null, and where both are equal."""
        a, b = _obj(left[self.column]), _obj(right[self.column])
        null = _null(a, b)
        eq = np.zeros(len(a), dtype=bool)
        eq[~null] = a[~null] == b[~null]
        return a, b, null, eq

    def sql(self, a: str, b: str) -> str | None:
        """The same levels as a DuckDB expression over table aliases ``a`` and ``b`` (None when
        a kind has no SQL form). Why: at county scale the comparison vectors of millions of
        blocked pairs are computed inside DuckDB, multi-threaded and without a Python object
        per pair; :meth:`levels` stays the reference (tests check that both agree)."""
        return None

    def _null_sql(self, a: str, b: str, col: str | None = None) -> str:
        c = col or self.column
        return f"{a}.{c} IS NULL OR {b}.{c} IS NULL"


@dataclass(frozen=True)
class Exact(Comparison):
    """Equal or not (postcode, state, bank account)."""

    labels: ClassVar[tuple[str, ...]] = ("different", "exact")

    def levels(self, left: pd.DataFrame, right: pd.DataFrame) -> np.ndarray:
        a, b = _obj(left[self.column]), _obj(right[self.column])
        out = (a == b).astype(np.int8)
        out[_null(a, b)] = -1
        return out

    def sql(self, a: str, b: str) -> str:
        c = self.column
        return f"CASE WHEN {self._null_sql(a, b)} THEN -1 WHEN {a}.{c} = {b}.{c} THEN 1 ELSE 0 END"


@dataclass(frozen=True)
class FuzzyString(Comparison):
    """Exact, Damerau-Levenshtein <= 1, Jaro-Winkler >= t1, >= t2, else (Latin-script fields)."""

    thresholds: tuple[float, float] = (0.9, 0.8)
    labels: ClassVar[tuple[str, ...]] = ("different", "jw>=t2", "jw>=t1", "dl<=1", "exact")

    def levels(self, left: pd.DataFrame, right: pd.DataFrame) -> np.ndarray:
        a, b, null, eq = self._values(left, right)
        rest = ~null & ~eq
        dl = _dl(a, b, rest)
        jw = _jw(a, b, rest)
        out = np.zeros(len(a), dtype=np.int8)
        out[rest & (jw >= self.thresholds[1])] = 1
        out[rest & (jw >= self.thresholds[0])] = 2
        out[rest & (dl <= 1)] = 3
        out[eq] = 4
        out[null] = -1
        return out

    def sql(self, a: str, b: str) -> str:
        x, y = f"{a}.{self.column}", f"{b}.{self.column}"
        jw = f"jaro_winkler_similarity({x}, {y})"
        return (
            f"CASE WHEN {self._null_sql(a, b)} THEN -1 WHEN {x} = {y} THEN 4 "
            f"WHEN damerau_levenshtein({x}, {y}) <= 1 THEN 3 "
            f"WHEN {jw} >= {self.thresholds[0]} THEN 2 "
            f"WHEN {jw} >= {self.thresholds[1]} THEN 1 ELSE 0 END"
        )


@dataclass(frozen=True)
class EditDistance(Comparison):
    """Exact, Damerau-Levenshtein <= 1, <= 2, else (dates as digit strings, numbers)."""

    labels: ClassVar[tuple[str, ...]] = ("different", "dl<=2", "dl<=1", "exact")

    def levels(self, left: pd.DataFrame, right: pd.DataFrame) -> np.ndarray:
        a, b, null, eq = self._values(left, right)
        dl = _dl(a, b, ~null & ~eq)
        out = np.zeros(len(a), dtype=np.int8)
        out[dl <= 2] = 1
        out[dl <= 1] = 2
        out[eq] = 3
        out[null] = -1
        return out

    def sql(self, a: str, b: str) -> str:
        x, y = f"{a}.{self.column}", f"{b}.{self.column}"
        dl = f"damerau_levenshtein({x}, {y})"
        return (
            f"CASE WHEN {self._null_sql(a, b)} THEN -1 WHEN {x} = {y} THEN 3 "
            f"WHEN {dl} <= 1 THEN 2 WHEN {dl} <= 2 THEN 1 ELSE 0 END"
        )


@dataclass(frozen=True)
class ChineseName(Comparison):
    """Chinese person names, normalised (simplified, half-width, no spaces) beforehand.

    Levels: exact > same pinyin (homophone: 王/汪) > same after look-alike folding (己/已) >
    one character differs or Jaro-Winkler on pinyin >= ``jw`` > different. Needs the key columns
    made by :func:`crossmatch.identity.names.name_keys` next to ``column``.
    """

    jw: float = 0.88
    monotone: ClassVar[bool] = True
    labels: ClassVar[tuple[str, ...]] = (
        "different",
        "one char differs / pinyin similar",
        "look-alike characters",
        "same pinyin",
        "exact",
    )

    def columns(self) -> list[str]:
        return [self.column, "name_py", "name_lapy"]

    def levels(self, left: pd.DataFrame, right: pd.DataFrame) -> np.ndarray:
        a, b = _obj(left[self.column]), _obj(right[self.column])
        pa, pb = _obj(left["name_py"]), _obj(right["name_py"])
        la, lb = _obj(left["name_lapy"]), _obj(right["name_lapy"])
        null = _null(a, b)
        ok = ~null
        out = np.zeros(len(a), dtype=np.int8)
        rest = ok.copy()
        eq = np.zeros(len(a), dtype=bool)
        eq[rest] = a[rest] == b[rest]
        out[eq] = 4
        rest &= ~eq
        py = np.zeros(len(a), dtype=bool)
        py[rest] = pa[rest] == pb[rest]
        out[py] = 3
        rest &= ~py
        lk = np.zeros(len(a), dtype=bool)
        lk[rest] = la[rest] == lb[rest]
        out[lk] = 2
        rest &= ~lk
        near = np.zeros(len(a), dtype=bool)
        if rest.any():
            near[rest] = char_hamming1(a[rest], b[rest]) | (_jw(pa, pb, rest)[rest] >= self.jw)
        out[near] = 1
        out[null] = -1
        return out

    def sql(self, a: str, b: str) -> str:
        x, y = f"{a}.{self.column}", f"{b}.{self.column}"
        return (
            f"CASE WHEN {self._null_sql(a, b)} THEN -1 WHEN {x} = {y} THEN 4 "
            f"WHEN {a}.name_py = {b}.name_py THEN 3 "
            f"WHEN {a}.name_lapy = {b}.name_lapy THEN 2 "
            f"WHEN (length({x}) = length({y}) AND hamming({x}, {y}) = 1) "
            f"OR jaro_winkler_similarity({a}.name_py, {b}.name_py) >= {self.jw} THEN 1 "
            "ELSE 0 END"
        )


def _digits(a: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """18-char ID strings -> (n, 18) uint8 matrix (rows outside ``ok`` are zero)."""
    m = np.zeros((len(a), 18), dtype=np.uint8)
    if ok.any():
        s = np.array([x for x in a[ok]], dtype="S18")
        m[ok] = np.frombuffer(s.tobytes(), dtype=np.uint8).reshape(-1, 18)
    return m


@dataclass(frozen=True)
class IdNumber(Comparison):
    """18-character ID numbers, valid or not (a mistyped ID keeps most of its digits).

    Levels: exact > one substitution > adjacent transposition > same birth-date part > different.
    """

    labels: ClassVar[tuple[str, ...]] = (
        "different",
        "same birth date part",
        "adjacent transposition",
        "one substitution",
        "exact",
    )

    def levels(self, left: pd.DataFrame, right: pd.DataFrame) -> np.ndarray:
        a, b = _obj(left[self.column]), _obj(right[self.column])
        ok = ~_null(a, b)
        if ok.any():
            ok[ok] = [len(x) == 18 and len(y) == 18 for x, y in zip(a[ok], b[ok], strict=True)]
        da, db = _digits(a, ok), _digits(b, ok)
        diff = da != db
        ham = diff.sum(axis=1)
        out = np.zeros(len(a), dtype=np.int8)
        same_bd = (~diff[:, 6:14]).all(axis=1)
        out[same_bd] = 1
        # adjacent transposition: exactly two differing positions, neighbours, swapped
        two = np.flatnonzero(ok & (ham == 2))
        if len(two):
            pos = np.argmax(diff[two], axis=1)
            pos = np.minimum(pos, 16)
            swapped = (
                diff[two, pos + 1]
                & (da[two, pos] == db[two, pos + 1])
                & (da[two, pos + 1] == db[two, pos])
            )
            out[two[swapped]] = 2
        out[ok & (ham == 1)] = 3
        out[ok & (ham == 0)] = 4
        out[~ok] = -1
        return out

    def sql(self, a: str, b: str) -> str:
        x, y = f"{a}.{self.column}", f"{b}.{self.column}"
        ham = f"hamming({x}, {y})"
        return (
            f"CASE WHEN {self._null_sql(a, b)} OR length({x}) <> 18 OR length({y}) <> 18 "
            f"THEN -1 WHEN {x} = {y} THEN 4 WHEN {ham} = 1 THEN 3 "
            f"WHEN {ham} = 2 AND damerau_levenshtein({x}, {y}) = 1 THEN 2 "
            f"WHEN substr({x}, 7, 8) = substr({y}, 7, 8) THEN 1 ELSE 0 END"
        )


@dataclass(frozen=True)
class Geo(Comparison):
    """Administrative codes: same code > same prefix (village -> township) > different."""

    prefix: int = 9
    labels: ClassVar[tuple[str, ...]] = ("different", "same prefix", "exact")

    def levels(self, left: pd.DataFrame, right: pd.DataFrame) -> np.ndarray:
        a = left[self.column].astype("string")
        b = right[self.column].astype("string")
        av, bv = _obj(a), _obj(b)
        null = _null(av, bv)
        out = np.zeros(len(av), dtype=np.int8)
        pa = _obj(a.str.slice(0, self.prefix))
        pb = _obj(b.str.slice(0, self.prefix))
        ok = ~null
        same_p = np.zeros(len(av), dtype=bool)
        same_p[ok] = pa[ok] == pb[ok]
        out[same_p] = 1
        eq = np.zeros(len(av), dtype=bool)
        eq[ok] = av[ok] == bv[ok]
        out[eq] = 2
        out[null] = -1
        return out

    def sql(self, a: str, b: str) -> str:
        x, y = f"CAST({a}.{self.column} AS VARCHAR)", f"CAST({b}.{self.column} AS VARCHAR)"
        k = int(self.prefix)
        return (
            f"CASE WHEN {self._null_sql(a, b)} THEN -1 WHEN {x} = {y} THEN 2 "
            f"WHEN substr({x}, 1, {k}) = substr({y}, 1, {k}) THEN 1 ELSE 0 END"
        )


COMPARISON_KINDS: dict[str, type[Comparison]] = {
    "exact": Exact,
    "fuzzy_string": FuzzyString,
    "edit_distance": EditDistance,
    "chinese_name": ChineseName,
    "id_number": IdNumber,
    "geo": Geo,
}


def comparison_from_dict(d: dict) -> Comparison:
    """Build a comparison from data, e.g. ``{"kind": "geo", "column": "village_code"}``."""
    d = dict(d)
    kind = d.pop("kind")
    if kind not in COMPARISON_KINDS:
        raise ValueError(
            f"unknown comparison kind {kind!r}; known: {', '.join(sorted(COMPARISON_KINDS))}"
        )
    if "thresholds" in d:
        d["thresholds"] = tuple(d["thresholds"])
    return COMPARISON_KINDS[kind](**d)
