"""Normalizers: small, documented, columnar functions registered by name.

A source file (``sources/*.yaml``) names a normalizer per field (``normalizer: date``); adding a
source that uses existing normalizers needs no code. A new *kind* of value is a new function
here, registered with :func:`normalizer`. ``crossmatch.normalize.NORMALIZERS`` lists them all and
each docstring doubles as the help text (a test fails when one is undocumented).

Contract of a normalizer ``f(values: pl.Series[str], params: dict) -> Normalized``:

* the input is the raw cell text (``None`` for an empty cell); it never raises on bad data;
* ``Normalized.columns`` maps an output suffix to a Series: ``""`` is the field itself, others
  are companions (``"_raw"``, ``"_status"`` ...). So field ``payee_id`` with normalizer ``id``
  yields ``payee_id``, ``payee_id_raw``, ``payee_id_status`` ... (data contract section 4);
* ``Normalized.error`` is a String Series, null where the value is fine, else a short reason
  naming the bad value; the field's output is NULL there. What an error does is the field's
  ``on_error`` (quarantine the row, or keep it with the field NULL, counted); an empty cell is
  NULL (unless the field is ``required``).

Every normalizer also takes ``null_values`` (a field option): cells equal to one of them
(spaces around ignored) are empty, e.g. ``null_values: [至今, 现任]`` on a term end.

Why columnar: a 3-million-person county has ~30M rows. Everything is a polars expression;
only the few values needing a Python library (traditional -> simplified names) go through Python,
and then only their *distinct* values.
"""

from __future__ import annotations

import datetime as _dt
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import polars as pl

from crossmatch.idnumber import ID_CHECK_CHARS, ID_CHECK_WEIGHTS
from crossmatch.text import _DOTS, normalize_name

__all__ = ["NORMALIZERS", "Normalized", "Normalizer", "get", "normalizer", "prepare"]


@dataclass(slots=True)
class Normalized:
    """Output of a normalizer: output columns by suffix, and a per-row error (null = ok)."""

    columns: dict[str, pl.Series]
    error: pl.Series


@dataclass(frozen=True, slots=True)
class Normalizer:
    """A registered normalizer: the function, its output columns (suffix -> DuckDB type),
    the parameters it accepts (name -> description) and its help text."""

    name: str
    func: Callable[[pl.Series, Mapping[str, Any]], Normalized]
    outputs: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)
    doc: str = ""

    def __call__(self, values: pl.Series, params: Mapping[str, Any] | None = None) -> Normalized:
        params = params or {}
        values = _blank_to_null(values)
        if params.get("null_values"):
            values = _listed_to_null(values, params["null_values"])
        return self.func(values, params)


NORMALIZERS: dict[str, Normalizer] = {}


def normalizer(
    name: str, outputs: Mapping[str, str] | None = None, params: Mapping[str, str] | None = None
) -> Callable[[Callable[[pl.Series, Mapping[str, Any]], Normalized]], Normalizer]:
    """Register a normalizer under ``name`` (the docstring is its help text)."""

    def deco(func: Callable[[pl.Series, Mapping[str, Any]], Normalized]) -> Normalizer:
        doc = " ".join((func.__doc__ or "").split())
        n = Normalizer(name, func, dict(outputs or {"": "VARCHAR"}), dict(params or {}), doc)
        NORMALIZERS[name] = n
        return n

    return deco


def prepare() -> None:
    """Build the lazily loaded tables (traditional characters, zhconv's dictionary) once,
    before several threads normalise at the same time."""
    _traditional_class()
    normalize_name("張")


def get(name: str) -> Normalizer:
    """The normalizer called ``name`` (KeyError when unknown)."""
    return NORMALIZERS[name]


# ----------------------------------------------------------------------------- helpers

_WS = r"[\s\u3000\ufeff]"


def _blank_to_null(s: pl.Series) -> pl.Series:
    """Empty and whitespace-only cells become NULL (the one meaning of 'no value')."""
    s = s.cast(pl.String)
    v = pl.col("v")
    return (
        _frame(s)
        .select(
            pl.when(v.str.strip_chars(" \t\r\n\u3000\ufeff") == "")
            .then(None)
            .otherwise(v)
            .alias("v")
        )
        .to_series()
    )


def _listed_to_null(s: pl.Series, listed: Any) -> pl.Series:
    """Cells that, without surrounding spaces, are one of ``listed`` (a field's
    ``null_values``, e.g. 至今 in a term end, 无 or / for "none") become NULL: empty, not
    unreadable."""
    words = pl.Series([str(x) for x in listed], dtype=pl.String)
    v = pl.col("v")
    return (
        _frame(s)
        .select(pl.when(_strip(v).is_in(words.implode())).then(None).otherwise(v).alias("v"))
        .to_series()
    )


def _empty_null(e: pl.Expr) -> pl.Expr:
    return pl.when(e == "").then(None).otherwise(e).alias("v")


def _frame(s: pl.Series) -> pl.DataFrame:
    return pl.DataFrame({"v": s})


def _err(bad: pl.Expr, what: str) -> pl.Expr:
    """Error expression: ``cannot parse <what> '<value>'`` where ``bad`` holds."""
    return pl.when(bad).then(pl.lit(f"cannot parse {what} '") + pl.col("v") + pl.lit("'"))


def _strip(e: pl.Expr) -> pl.Expr:
    return e.str.replace_all(f"^{_WS}+|{_WS}+$", "")


# ----------------------------------------------------------------------------- text-like


@normalizer("text")
def text(s: pl.Series, params: Mapping[str, Any]) -> Normalized:
    """Free text: surrounding spaces removed, empty -> NULL. Never fails."""
    out = _frame(s).select(_empty_null(_strip(pl.col("v")))).to_series()
    return Normalized({"": out}, pl.Series("e", [None] * len(s), dtype=pl.String))


@normalizer(
    "enum",
    params={
        "map": "raw value -> canonical value (e.g. {成功: success, 失败: failed})",
        "other": "what to do with an unmapped value: keep (default, stored as is) or error",
    },
)
def enum(s: pl.Series, params: Mapping[str, Any]) -> Normalized:
    """Coded value: the raw text (trimmed, NFKC) is translated with ``map``; values not in the
    map are kept as they are, or rejected when ``other: error``."""
    mapping = {str(k): str(v) for k, v in (params.get("map") or {}).items()}
    df = _frame(s).with_columns(_strip(pl.col("v").str.normalize("NFKC")).alias("t"))
    mapped = pl.col("t").replace_strict(mapping, default=None, return_dtype=pl.String)
    strict = params.get("other", "keep") == "error"
    out = df.select(
        pl.coalesce(mapped, pl.lit(None) if strict else pl.col("t")).alias("v"),
        (
            _err(pl.col("t").is_not_null() & mapped.is_null(), "value (not in map)")
            if strict
            else pl.lit(None, pl.String)
        ).alias("e"),
    )
    return Normalized({"": out["v"]}, out["e"])


@normalizer("code")
def code(s: pl.Series, params: Mapping[str, Any]) -> Normalized:
    """Identifier-like code (account no., credit code, village code, plate): NFKC, all spaces
    and a leading apostrophe removed, a float tail ``.0`` dropped from digit strings, upper-case.
    Never fails."""
    v = _nfkc_where_needed(s)
    v = (
        _frame(v)
        .select(
            pl.col("v").str.replace_all(f"{_WS}+", "").str.strip_chars_start("'").str.to_uppercase()
        )
        .to_series()
    )
    tail = v.str.ends_with("0").fill_null(False)
    if tail.any():  # "123.0": a number that went through a float column (regex on few rows)
        idx = tail.arg_true()
        v = v.scatter(idx, v.gather(idx).str.replace(r"^([0-9]+)\.0+$", "$1"))
    out = _frame(v).select(_empty_null(pl.col("v"))).to_series()
    return Normalized({"": out}, pl.Series("e", [None] * len(s), dtype=pl.String))


def _nfkc_where_needed(s: pl.Series) -> pl.Series:
    """NFKC only for values with non-ASCII characters (NFKC leaves ASCII unchanged)."""
    mask = s.str.contains(r"[^\x00-\x7f]").fill_null(False)
    if not mask.any():
        return s
    idx = mask.arg_true()
    return s.scatter(idx, s.gather(idx).str.normalize("NFKC"))


# ----------------------------------------------------------------------------- names

_DOT_CLASS = "[" + re.escape(_DOTS) + "]+"


@lru_cache(maxsize=1)
def _traditional_class() -> str:
    """Regex class of every character zhconv would change when simplifying (built once)."""
    import zhconv.zhconv as z  # lazy: zhconv loads a dictionary; off the CLI start

    z.loaddict()
    # characters that change on their own; a name made only of other characters is left
    # alone (phrase-level rules are about words, not names, and would skip the fast path)
    chars = {
        k
        for table in ("zh2Hans", "zh2CN")
        for k, v in z.zhcdicts[table].items()
        if len(k) == 1 and v != k
    }
    body = "".join(sorted(c for c in chars if c not in "\\]^-["))
    return f"[{body}]"


@normalizer("name", outputs={"": "VARCHAR", "_raw": "VARCHAR"})
def name(s: pl.Series, params: Mapping[str, Any]) -> Normalized:
    """Person name: NFKC (full-width -> half-width), all spaces removed, traditional ->
    simplified characters, every middle-dot variant (· • ・ . －) -> '·'. The original is kept
    in ``<field>_raw``. Same result as ``crossmatch.text.normalize_name``. Never fails."""
    df = _frame(s).with_columns(
        pl.col("v")
        .str.normalize("NFKC")
        .str.replace_all(r"\s+", "")
        .str.replace_all(_DOT_CLASS, "·")
        .str.strip_chars("·")
        .alias("n")
    )
    df = df.with_columns(pl.col("n").str.contains(_traditional_class()).fill_null(False).alias("t"))
    todo = df.filter(pl.col("t"))["v"].unique().to_list()
    if todo:
        conv = {raw: normalize_name(raw) for raw in todo}
        df = df.with_columns(
            pl.when(pl.col("t"))
            .then(pl.col("v").replace_strict(conv, default=None, return_dtype=pl.String))
            .otherwise(pl.col("n"))
            .alias("n")
        )
    n = df.select(_empty_null(pl.col("n"))).to_series()
    return Normalized({"": n, "_raw": s}, pl.Series("e", [None] * len(s), dtype=pl.String))


# ----------------------------------------------------------------------------- ID numbers

_FW_FROM = [*"０１２３４５６７８９ｘＸ"]
_FW_TO = [*"0123456789XX"]


_ID_WEIGHT_VECTOR = np.array(ID_CHECK_WEIGHTS, dtype=np.int64)
_CACHE_MAX = 2_000_000  # distinct YYYYMMDD strings remembered; a county has ~40k
# every YYYYMMDD string seen so far and its date (NULL when not a real date in 1880..2100)
_DATES8 = pl.DataFrame(schema={"k": pl.String, "d": pl.Date})
_DATES8_LOCK = threading.Lock()


def _weighted_sum(s17: pl.Series) -> pl.Series:
    """GB 11643 weighted digit sum of 17-digit strings (NULL when not 17 ASCII digits).

    The valid strings are joined into one ASCII buffer and summed as a (rows x 17) digit
    matrix times the weights by numpy: no per-value Python, no look-up tables to rebuild."""
    ok = s17.str.contains(r"^[0-9]{17}$").fill_null(False)
    n_ok = int(ok.sum())
    if not n_ok:
        return pl.Series(s17.name, [None] * len(s17), dtype=pl.Int64)
    joined = s17.filter(ok).str.join("").item()
    digits = np.frombuffer(joined.encode("ascii"), dtype=np.uint8).reshape(n_ok, 17)
    sums = pl.Series(s17.name, (digits - 48).astype(np.int64) @ _ID_WEIGHT_VECTOR)
    if n_ok == len(s17):
        return sums
    out = pl.Series(s17.name, [None] * len(s17), dtype=pl.Int64)
    return out.scatter(ok.arg_true(), sums)


def _yyyymmdd_dates(s: pl.Series) -> pl.Series:
    """YYYYMMDD strings -> dates (NULL when not a real date in 1880..2100), parsed once per
    distinct value and remembered as a polars table (a county has ~40k birth dates, IDs
    number millions): each batch parses only values never seen and maps with one join."""
    global _DATES8
    with _DATES8_LOCK:  # ingestion normalises two files at a time, in threads
        if len(_DATES8) > _CACHE_MAX:
            _DATES8 = _DATES8.clear()
        uniq = s.drop_nulls().unique()
        new = uniq.filter(~uniq.is_in(_DATES8["k"].implode()))
        if len(new):
            keys = new.to_list()
            dates: list[_dt.date | None] = []
            for x in keys:
                d = None
                if len(x) == 8 and x.isascii() and x.isdigit():
                    try:
                        d = _dt.date(int(x[:4]), int(x[4:6]), int(x[6:]))
                    except ValueError:
                        d = None
                    if d is not None and not 1880 <= d.year <= 2100:
                        d = None
                dates.append(d)
            _DATES8 = pl.concat(
                [_DATES8, pl.DataFrame({"k": keys, "d": dates}, schema=_DATES8.schema)]
            )
        table = _DATES8
    return s.replace_strict(table["k"], table["d"], default=None, return_dtype=pl.Date)


@normalizer(
    "id",
    outputs={
        "": "VARCHAR",
        "_raw": "VARCHAR",
        "_status": "VARCHAR",
        "_birth_date": "DATE",
        "_sex": "VARCHAR",
        "_region": "VARCHAR",
    },
)
def id_number(s: pl.Series, params: Mapping[str, Any]) -> Normalized:
    """Resident ID number (公民身份号码, GB 11643): spaces, apostrophes and full-width digits
    cleaned, lower-case x -> X, legacy 15-digit numbers converted to 18 digits, check
    character verified. ``<field>`` is the canonical 18-digit ID or NULL; ``_status`` is
    valid18 / upgraded15 / bad_checksum / bad_date / bad_format / missing; ``_birth_date``,
    ``_sex`` (男/女) and ``_region`` (6-digit code) are derived from it. ``_raw`` keeps the
    cell. A bad ID never quarantines the row (identity resolution may still match it).
    Same result as ``crossmatch.idnumber.parse``."""
    v = pl.col("v")
    c = (
        _frame(s)
        .select(
            v.str.replace_many(_FW_FROM, _FW_TO)
            .str.strip_chars()
            .str.strip_chars_start("'")
            .str.replace_all(" ", "", literal=True)
            .str.replace_all("\u3000", "", literal=True)
            .str.to_uppercase()
            .fill_null("")
        )
        .to_series()
    )
    float_tail = c.str.ends_with(".0")  # an ID that went through a float column
    if float_tail.any():
        idx = float_tail.arg_true()
        c = c.scatter(idx, c.gather(idx).str.replace(r"^([0-9]+)\.0$", "$1"))
    df = pl.DataFrame({"c": c}).with_columns(
        pl.col("c").str.contains(r"^[0-9]{15}$").alias("is15"),
        pl.col("c").str.contains(r"^[0-9]{17}[0-9X]$").alias("is18"),
    )
    s17 = df.select(pl.when("is18").then(pl.col("c").str.slice(0, 17))).to_series()
    if df["is15"].any():  # few rows: build their 17 digits apart (when/then computes all rows)
        idx = df["is15"].arg_true()
        c15 = c.gather(idx)
        s17 = s17.scatter(idx, c15.str.slice(0, 6) + "19" + c15.str.slice(6))
    df = df.with_columns(s17.alias("s17"), _weighted_sum(s17).alias("w"))
    last = pl.col("c").str.slice(17, 1)
    last_value = pl.when(last == "X").then(10).otherwise(last.cast(pl.Int64, strict=False))
    df = df.with_columns(
        pl.when("is15")
        .then(
            pl.col("s17")
            + (pl.col("w") % 11).replace_strict(
                dict(enumerate(ID_CHECK_CHARS)), default=None, return_dtype=pl.String
            )
        )
        .when("is18")
        .then(pl.col("c"))
        .alias("s18"),
        (pl.col("is15") | (pl.col("is18") & ((pl.col("w") + last_value) % 11 == 1)))
        .fill_null(False)
        .alias("check_ok"),
    )
    s18, is15, is18 = pl.col("s18"), pl.col("is15"), pl.col("is18")
    bd18 = _yyyymmdd_dates(df["s18"].str.slice(6, 8))
    df = df.with_columns(bd18.alias("bd18"), bd18.is_not_null().alias("date_ok"))
    date_ok = pl.col("date_ok")
    status = (
        pl.when(pl.col("c") == "")
        .then(pl.lit("missing"))
        .when(is15 & date_ok)
        .then(pl.lit("upgraded15"))
        .when(is15)
        .then(pl.lit("bad_date"))
        .when(is18 & ~date_ok)
        .then(pl.lit("bad_date"))
        .when(is18 & ~pl.col("check_ok"))
        .then(pl.lit("bad_checksum"))
        .when(is18)
        .then(pl.lit("valid18"))
        .otherwise(pl.lit("bad_format"))
    )
    df = df.with_columns(status.alias("st")).with_columns(
        ((pl.col("st") == "valid18") | (pl.col("st") == "upgraded15")).alias("good")
    )
    good = pl.col("good")
    out = df.select(
        pl.when(good).then(s18).alias("id"),
        pl.col("st"),
        pl.when(good | (is18 & date_ok)).then(pl.col("bd18")).alias("bd"),
        pl.when(good)
        .then(
            pl.when(s18.str.slice(16, 1).cast(pl.Int32, strict=False) % 2 == 1)
            .then(pl.lit("男"))
            .otherwise(pl.lit("女"))
        )
        .alias("sex"),
        pl.when(good).then(s18.str.slice(0, 6)).alias("region"),
    )
    return Normalized(
        {
            "": out["id"],
            "_raw": s,
            "_status": out["st"],
            "_birth_date": out["bd"],
            "_sex": out["sex"],
            "_region": out["region"],
        },
        pl.Series("e", [None] * len(s), dtype=pl.String),
    )


# ----------------------------------------------------------------------------- dates


MONTHS = ("start", "end")


def _month_param(params: Mapping[str, Any]) -> str:
    m = str(params.get("month", "start"))
    if m not in MONTHS:
        raise ValueError(f"month must be start or end, not {m!r}")
    return m


def _date_expr(v: pl.Expr, month: str = "start") -> pl.Expr:
    """Parse the date formats seen in exports; NULL when not a date. A month-only value
    (``2021.01``, ``2021年3月``, ``202103``) gives the first (``month="start"``) or the last
    (``"end"``) day of that month."""
    v = v.str.normalize("NFKC")  # full-width digits and signs
    t = (
        _strip(v)
        .str.replace(r"[T\s]+\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$", "")
        .str.replace_all(r"[年月/.\-]", "-")
        .str.replace_all("[日号份]", "")
        .str.strip_chars("-")
        .str.replace(r"^(\d{4})(\d{2})(\d{2})$", "$1-$2-$3")
        .str.replace(r"^(\d{4})(\d{2})$", "$1-$2")  # 6 digits: a month (8 digits: a date)
    )
    parsed = (
        pl.when(t.str.contains(r"^\d{4}-\d{1,2}-\d{1,2}$"))
        .then(t)
        .otherwise(None)
        .str.to_date("%Y-%m-%d", strict=False)
    )
    first = (
        pl.when(t.str.contains(r"^\d{4}-\d{1,2}$"))
        .then(t + pl.lit("-1"))
        .otherwise(None)
        .str.to_date("%Y-%m-%d", strict=False)
    )
    in_month = first.dt.month_end() if month == "end" else first
    # Excel serial day numbers (1900 date system): 20000 = 1954-10-03 .. 73050 = 2099-12-31
    serial_txt = _strip(v).str.extract(r"^(\d{5})(?:\.\d+)?$", 1).cast(pl.Int64, strict=False)
    serial = (
        pl.when(serial_txt.is_between(20000, 73050))
        .then(pl.lit(_EXCEL_EPOCH) + pl.duration(days=serial_txt))
        .otherwise(None)
        .cast(pl.Date)
    )
    # Unix epoch milliseconds (a JSON API's dates: 1503590400000), as a date in China time
    # (UTC+8): 13 digits, 2001-09-09 .. 2286
    ms_txt = _strip(v).str.extract(r"^(\d{13})$", 1).cast(pl.Int64, strict=False)
    epoch = pl.from_epoch(ms_txt + 8 * 3600 * 1000, time_unit="ms").cast(pl.Date)
    d = pl.coalesce(parsed, in_month, serial, epoch)
    return pl.when(d.dt.year().is_between(1880, 2100)).then(d)


_EXCEL_EPOCH = __import__("datetime").date(1899, 12, 30)


def _fast_then_full(s: pl.Series, fast: pl.Expr, full: Callable[[pl.Expr], pl.Expr]) -> pl.Series:
    """``fast`` on every value, ``full`` only where ``fast`` gave NULL for a non-empty cell
    (polars evaluates both branches of a when/then on every row, so split by hand)."""
    out = _frame(s).select(fast.alias("v")).to_series()
    miss = out.is_null() & s.is_not_null()
    if miss.any():
        idx = miss.arg_true()
        slow = _frame(s.gather(idx)).select(full(pl.col("v")).alias("v")).to_series()
        out = out.scatter(idx, slow)
    return out


def _parse_dates(s: pl.Series, month: str = "start") -> pl.Series:
    v = pl.col("v")
    fast = pl.coalesce(
        pl.when(v.str.len_bytes() == 10).then(v).str.to_date("%Y-%m-%d", strict=False),
        pl.when(v.str.len_bytes() == 8).then(v).str.to_date("%Y%m%d", strict=False),
    )
    fast = pl.when(fast.dt.year().is_between(1880, 2100)).then(fast)
    return _fast_then_full(s, fast, lambda e: _date_expr(e, month))


@normalizer(
    "date",
    outputs={"": "DATE"},
    params={
        "month": "a month-only value (2021.01, 2021年3月, 202103) gives the first day of the "
        "month (start, default) or the last (end)"
    },
)
def date(s: pl.Series, params: Mapping[str, Any]) -> Normalized:
    """Calendar date from ``2024-03-05``, ``2024/3/5``, ``2024.3.5``, ``20240305``,
    ``2024年3月5日``, a date-time (time dropped), an xlsx date cell, or an Excel serial day
    number (e.g. ``45356``), full-width digits too. A month-only value (``2021.01``,
    ``2021.1``, ``2021-01``, ``2021/1``, ``2021年3月``, ``2021年3月份``, ``202103``) is the
    first day of the month, or its last day with ``month: end`` (e.g. a cadre term that
    ends in ``2021.03`` -> 2021-03-31). Eight digits
    are a full date, six digits a month; ``2021.10`` is October (a number cell that lost its
    trailing zero, ``2021.1``, reads as January). Thirteen digits are Unix epoch milliseconds
    (a JSON API's dates: ``1503590400000``), read as the date in China time (UTC+8). Anything
    else is an error."""
    d = _parse_dates(s, _month_param(params))
    out = (
        _frame(s)
        .with_columns(d.alias("d"))
        .select("d", _err(pl.col("v").is_not_null() & pl.col("d").is_null(), "date").alias("e"))
    )
    return Normalized({"": out["d"]}, out["e"])


@normalizer("period", outputs={"": "VARCHAR"})
def period(s: pl.Series, params: Mapping[str, Any]) -> Normalized:
    """Month ``YYYY-MM`` from ``2025-01``, ``2025/1``, ``2025.1``, ``202501``, ``2025年1月``,
    or any full date accepted by ``date`` (its month). Anything else is an error."""
    t = (
        _strip(pl.col("v"))
        .str.replace_all(r"[年/.\-]", "-")
        .str.replace_all("月份?", "")
        .str.replace(r"^(\d{4})(\d{2})$", "$1-$2")
    )
    ym = t.str.extract_groups(r"^(?<y>\d{4})-(?<m>\d{1,2})$")
    month = ym.struct.field("m").cast(pl.Int32, strict=False)
    from_month = (
        pl.when(month.is_between(1, 12))
        .then(ym.struct.field("y") + pl.lit("-") + month.cast(pl.String).str.zfill(2))
        .otherwise(None)
    )
    p = pl.coalesce(from_month, _date_expr(pl.col("v")).dt.strftime("%Y-%m"))
    out = _frame(s).select(
        p.alias("p"), _err(pl.col("v").is_not_null() & p.is_null(), "month").alias("e")
    )
    return Normalized({"": out["p"]}, out["e"])


@normalizer("year", outputs={"": "INTEGER"})
def year(s: pl.Series, params: Mapping[str, Any]) -> Normalized:
    """Year as an integer from ``2025``, ``2025年``, ``2025年度`` or ``2025.0``. Anything else
    is an error."""
    y = _strip(pl.col("v")).str.extract(r"^(\d{4})(?:年度?|\.0+)?$", 1).cast(pl.Int32, strict=False)
    out = _frame(s).select(
        y.alias("y"), _err(pl.col("v").is_not_null() & y.is_null(), "year").alias("e")
    )
    return Normalized({"": out["y"]}, out["e"])


# ----------------------------------------------------------------------------- numbers


def _numeric_text(v: pl.Expr) -> pl.Expr:
    """Cell text with thousands separators, currency signs and spaces removed (NFKC first)."""
    return v.str.normalize("NFKC").str.replace_all(r"[\s,，¥￥]", "")


AMOUNT_MIN, AMOUNT_MAX = 0.0, 1e11
# ``unit:`` of an ``amount`` field: what a bare number is worth in yuan
AMOUNT_UNIT_FACTORS = {"yuan": 1.0, "wan": 10_000.0, "fen": 0.01}
_AMOUNT_UNITS = {"亿元": 10**8, "亿": 10**8, "万元": 10_000, "万": 10_000, "元": 1, "圆": 1}
_CURRENCY = r"(?:人民币|(?i:rmb|cny))"
_AMOUNT_RE = (
    rf"^{_CURRENCY}?(?<n>[+-]?(?:\d+\.?\d*|\.\d+))(?<u>亿元|亿|万元|万|元|圆)?"
    rf"(?:{_CURRENCY}|整|\({_CURRENCY}\))*$"
)


def _num(x: float) -> str:
    """``100,000,000,000`` / ``-10.5``: a bound as people write it (no exponent)."""
    return f"{x:,.2f}".rstrip("0").rstrip(".")


def amount_bounds(params: Mapping[str, Any]) -> tuple[float, float]:
    """The plausibility bounds (yuan) of an ``amount`` field: ``min`` / ``max`` or defaults."""
    lo = params.get("min", AMOUNT_MIN)
    hi = params.get("max", AMOUNT_MAX)
    return float(lo), float(hi)


@normalizer(
    "amount",
    outputs={"": "DECIMAL(18,2)"},
    params={
        "unit": "unit of a bare number: yuan (default), wan (万元, e.g. 注册资本(万元)) or fen "
        "(分, e.g. a payment platform's 发放金额 18300 = 183.00 yuan)",
        "min": "smallest plausible amount in yuan (default 0: a negative amount is an error)",
        "max": "largest plausible amount in yuan (default 1e11); beyond it is an error",
    },
)
def amount(s: pl.Series, params: Mapping[str, Any]) -> Normalized:
    """Money in yuan as DECIMAL(18,2): ``1,200.00``, ``350元``, ``0.8万元`` (= 8000),
    ``￥50``, ``100万`` (= 1,000,000), ``100万元人民币``, ``人民币100万元``, ``1,000.00元``,
    ``5000元整``, ``1.2亿元``. Around the number only a currency word (``人民币``, ``RMB``,
    ``CNY``, ``(人民币)``, ``整``) is accepted: ``100万美元`` or ``约100`` are errors. A unit
    written in the cell (元, 万/万元, 亿/亿元) wins over the field's ``unit``, which only says
    what a bare number means (``unit: wan``: ``50`` = 500,000 yuan; ``50万元`` is still 50万;
    ``unit: fen``: ``18300`` = 183.00 yuan, and a bare number with a fraction of a fen such as
    ``183.5`` is an error: such a column is in yuan, not fen). Plausibility bounds ``min``
    (default 0) and ``max`` (default 1e11 yuan): a value outside them (``-183.00``,
    ``999999999999.99``) is an error, like an unreadable one."""
    unit_name = str(params.get("unit", "yuan"))
    factor = AMOUNT_UNIT_FACTORS[unit_name]
    lo, hi = amount_bounds(params)
    t = _numeric_text(pl.col("v"))
    parts = t.str.extract_groups(_AMOUNT_RE)
    text_n = parts.struct.field("n")
    num = text_n.cast(pl.Decimal(24, 4), strict=False)
    cell_unit = parts.struct.field("u").replace_strict(
        _AMOUNT_UNITS, default=None, return_dtype=pl.Int64
    )
    fraction = pl.lit(False)
    if unit_name == "fen":  # a bare number is in fen: whole fen (``18300``, ``18300.00``) only
        bare = cell_unit.is_null()
        fraction = bare & text_n.str.contains(r"\.\d*[1-9]").fill_null(False)
        value = (
            pl.when(fraction)
            .then(None)
            .when(bare)
            .then(num / 100)
            .otherwise(num * cell_unit)
            .cast(pl.Decimal(18, 2), strict=False)
        )
    else:
        value = (num * cell_unit.fill_null(int(factor))).cast(pl.Decimal(18, 2), strict=False)
    f = pl.col("a").cast(pl.Float64)
    out = (
        _frame(s)
        .with_columns(value.alias("a"), fraction.alias("frac"))
        .with_columns(
            pl.when(pl.col("frac"))
            .then(pl.lit("amount '") + pl.col("v") + pl.lit("' is not a whole number of fen"))
            .when(pl.col("a").is_not_null() & (f < lo))
            .then(pl.lit("amount '") + pl.col("v") + pl.lit(f"' below the minimum {_num(lo)}"))
            .when(pl.col("a").is_not_null() & (f > hi))
            .then(pl.lit("amount '") + pl.col("v") + pl.lit(f"' above the maximum {_num(hi)}"))
            .alias("range")
        )
        .select(
            pl.when(pl.col("range").is_null()).then(pl.col("a")).alias("a"),
            pl.coalesce(
                pl.when(pl.col("frac"))
                .then(pl.col("range") + pl.lit(" (unit: fen; is the column in yuan?)"))
                .otherwise(pl.col("range") + pl.lit(" (field options min / max)")),
                _err(pl.col("v").is_not_null() & pl.col("a").is_null(), "amount"),
            ).alias("e"),
        )
    )
    return Normalized({"": out["a"]}, out["e"])


_AREA_UNITS = {  # -> factor to 亩
    "亩": 1.0,
    "公顷": 15.0,
    "ha": 15.0,
    "平方米": 1 / 666.6666666666666,
    "㎡": 1 / 666.6666666666666,
    "m2": 1 / 666.6666666666666,
    "m²": 1 / 666.6666666666666,
}
_AREA_PARAM_UNITS = {"mu": 1.0, "hectare": 15.0, "m2": 1 / 666.6666666666666}


def _area(s: pl.Series, default_factor: float, to_unit: float) -> Normalized:
    t = _numeric_text(pl.col("v")).str.to_lowercase()
    unit_re = "|".join(re.escape(u) for u in sorted(_AREA_UNITS, key=len, reverse=True))
    parts = t.str.extract_groups(rf"^(?<n>[+-]?(?:\d+\.?\d*|\.\d+))(?<u>{unit_re})?$")
    num = parts.struct.field("n").cast(pl.Float64, strict=False)
    factor = (
        parts.struct.field("u")
        .replace_strict(_AREA_UNITS, default=None, return_dtype=pl.Float64)
        .fill_null(default_factor)
    )
    value = (num * factor / to_unit).round(6)
    out = _frame(s).select(
        value.alias("a"), _err(pl.col("v").is_not_null() & value.is_null(), "area").alias("e")
    )
    return Normalized({"": out["a"]}, out["e"])


@normalizer(
    "area_mu",
    outputs={"": "DOUBLE"},
    params={"unit": "unit of a bare number: mu (default), hectare or m2"},
)
def area_mu(s: pl.Series, params: Mapping[str, Any]) -> Normalized:
    """Land area in 亩 (DOUBLE): ``3.5``, ``3.5亩``, ``0.8公顷`` (= 12 亩), ``2000平方米``.
    A unit written in the cell wins over the field's ``unit``. Anything else is an error."""
    return _area(s, _AREA_PARAM_UNITS[str(params.get("unit", "mu"))], 1.0)


@normalizer(
    "area_m2",
    outputs={"": "DOUBLE"},
    params={"unit": "unit of a bare number: m2 (default), mu or hectare"},
)
def area_m2(s: pl.Series, params: Mapping[str, Any]) -> Normalized:
    """Floor area in square metres (DOUBLE): ``89.5``, ``89.5平方米``, ``89.5㎡``; a cell in
    亩 or 公顷 is converted. Anything else is an error."""
    m2 = _AREA_PARAM_UNITS["m2"]
    return _area(s, _AREA_PARAM_UNITS[str(params.get("unit", "m2"))], m2)


@normalizer("int", outputs={"": "BIGINT"})
def integer(s: pl.Series, params: Mapping[str, Any]) -> Normalized:
    """Whole number from ``3``, ``3.0``, ``1,200`` or a count with a unit word (``3人``,
    ``2块``, ``80岁``). Anything else is an error."""
    t = _numeric_text(pl.col("v")).str.replace(r"[人口户块个岁宗处辆份]$", "")
    n = t.str.extract(r"^([+-]?\d+)(?:\.0+)?$", 1).cast(pl.Int64, strict=False)
    out = _frame(s).select(
        n.alias("n"), _err(pl.col("v").is_not_null() & n.is_null(), "whole number").alias("e")
    )
    return Normalized({"": out["n"]}, out["e"])


@normalizer("number", outputs={"": "DOUBLE"})
def number(s: pl.Series, params: Mapping[str, Any]) -> Normalized:
    """Decimal number (DOUBLE) from ``12.5`` or ``1,200.5``. Anything else is an error."""
    t = _numeric_text(pl.col("v"))
    n = pl.when(t.str.contains(r"^[+-]?(\d+\.?\d*|\.\d+)$")).then(t).cast(pl.Float64, strict=False)
    out = _frame(s).select(
        n.alias("n"), _err(pl.col("v").is_not_null() & n.is_null(), "number").alias("e")
    )
    return Normalized({"": out["n"]}, out["e"])


@normalizer("ratio", outputs={"": "DOUBLE"})
def ratio(s: pl.Series, params: Mapping[str, Any]) -> Normalized:
    """Share as a fraction 0..1 (DOUBLE): ``30%`` -> 0.3, ``0.3`` -> 0.3; a bare number above 1
    is read as percent (``30`` -> 0.3). Anything else is an error."""
    t = _numeric_text(pl.col("v"))
    pct = t.str.ends_with("%") | t.str.ends_with("％")
    n = t.str.replace(r"[%％]$", "")
    n = pl.when(n.str.contains(r"^[+-]?(\d+\.?\d*|\.\d+)$")).then(n).cast(pl.Float64, strict=False)
    value = pl.when(pct | (n > 1)).then(n / 100).otherwise(n).round(8)
    out = _frame(s).select(
        value.alias("n"), _err(pl.col("v").is_not_null() & value.is_null(), "share").alias("e")
    )
    return Normalized({"": out["n"]}, out["e"])


# ----------------------------------------------------------------------------- places

_CN_NUM = "0-9一二三四五六七八九十百零〇两"
_TAIL_NOTE = r"\([^()]*\)$"  # a parenthesised note at the end, e.g. 马冲村(原清岭村)
_GROUP = rf"第?[{_CN_NUM}]+(?:村民小组|小组|组|生产队|队|社)$"
_VILLAGE_COMMITTEE = r"村?(?:村民委员会|村委会|村委)$"
_RESIDENTS_COMMITTEE = r"(?:社区)?(?:居民委员会|居委会)$"
_TOWNSHIP_PREFIX = r"^.{2,}?(?:街道办事处|街道|镇|乡)(.{2,})$"
# what a cleaned village-level name may end with; anything else gets 村
_VILLAGE_ENDS = r"(?:村|社区|嘎查|场|镇|乡|街道|办事处|组|队|[0-9A-Za-z])$"


def _place_text(v: pl.Expr) -> pl.Expr:
    """NFKC, every space removed, a trailing parenthesised note removed."""
    return v.str.normalize("NFKC").str.replace_all(r"\s+", "").str.replace(_TAIL_NOTE, "")


@normalizer("village")
def village(s: pl.Series, params: Mapping[str, Any]) -> Normalized:
    """Village (or urban community) name as ``<name>村`` / ``<name>社区``, so the same place
    written by different departments matches: NFKC and spaces removed; a trailing note in
    brackets dropped (``马冲村(原清岭村)``); the committee words become the place
    (``马冲村村民委员会``, ``马冲村民委员会``, ``马冲村委会``, ``马冲村委`` -> ``马冲村``;
    ``城东社区居委会``, ``城东社区居民委员会``, ``城东居委会`` -> ``城东社区``); a villager group
    is dropped (``马冲村3组``, ``马冲村三组``, ``马冲村第3村民小组``, ``马冲村二队`` ->
    ``马冲村``); a leading county / township part of at least two characters is dropped
    (``来安镇马冲村``, ``城关街道办事处马冲村`` -> ``马冲村``); a bare name gets ``村``
    (``马冲`` -> ``马冲村``), unless it already ends with 村, 社区, 嘎查, 场 (农场 / 林场), or is a
    township (镇 / 乡 / 街道), a group without a number (``马冲组``) or a code: kept as
    written. Never fails; empty -> NULL."""
    t = (
        _place_text(pl.col("v"))
        .str.replace(_VILLAGE_COMMITTEE, "村")
        .str.replace(_RESIDENTS_COMMITTEE, "社区")
        .str.replace(_GROUP, "")
        .str.replace(_VILLAGE_COMMITTEE, "村")  # 马冲村委会3组
    )
    t = t.str.replace(_TOWNSHIP_PREFIX, "$1")
    t = pl.when(t.str.contains(_VILLAGE_ENDS) | (t == "")).then(t).otherwise(t + pl.lit("村"))
    out = _frame(s).select(_empty_null(t)).to_series()
    return Normalized({"": out}, pl.Series("e", [None] * len(s), dtype=pl.String))


@normalizer("township")
def township(s: pl.Series, params: Mapping[str, Any]) -> Normalized:
    """Township-level name (镇 / 乡 / 街道): NFKC and spaces removed, a trailing note in
    brackets dropped, the government words removed (``来安镇人民政府``, ``来安镇政府`` ->
    ``来安镇``; ``城关街道办事处``, ``城关街道办``, ``城关办事处`` -> ``城关街道``). Never fails;
    empty -> NULL."""
    t = (
        _place_text(pl.col("v"))
        .str.replace(r"(?:人民政府|政府)$", "")
        .str.replace(r"(?:街道)?(?:办事处|办)$", "街道")
    )
    out = _frame(s).select(_empty_null(t)).to_series()
    return Normalized({"": out}, pl.Series("e", [None] * len(s), dtype=pl.String))


# ----------------------------------------------------------------------------- value shapes

# unit characters that say how a value is written: kept in a shape right after a digit
_SHAPE_KEEP = set("年月日号时分秒元万亿圆整组队社")
# texts exports write for "no value" (a database dump's \N, NULL ...): shown as themselves in
# value shapes (they are no data), and named in the ingest's hint to declare `null_values:`
NULL_MARKERS = ("\\N", "NULL", "null", "Null", "(null)", "<NULL>", "<null>", "None", "NaN")


def value_shape(value: str | None, limit: int = 24) -> str:
    """How a cell is written, without what it says, for messages and logs: ASCII and
    full-width digits -> ``9``, letters -> ``A``, CJK characters -> ``字`` except a unit
    right after a number (年 月 日 元 万 组 ...), other characters kept; cut at ``limit``.
    ``2021.01.05`` -> ``9999.99.99``, ``2021年3月`` -> ``9999年9月``, ``100万元`` ->
    ``999万元``, an ID number -> ``99999999999999999A``, a name -> ``字字``. Never shows an ID
    number or a name (a name has no digit, so none of its characters is kept). A NULL marker
    (``\\N``, ``NULL`` ...: ``NULL_MARKERS``) is shown as it is."""
    if value is None:
        return "(empty)"
    if value.strip() in NULL_MARKERS:
        return value.strip()
    out = []
    for c in value:
        if c.isdigit():
            out.append("9")
        elif c.isascii() and c.isalpha():
            out.append("A")
        elif c in _SHAPE_KEEP and out and (out[-1] == "9" or out[-1] in _SHAPE_KEEP):
            out.append(c)
        elif c.isalpha():  # CJK and other letters
            out.append("字")
        elif c.isspace():
            out.append("␣")
        else:
            out.append(c)
    text = "".join(out)
    return text if len(text) <= limit else text[:limit] + "…"
