"""SQL fast paths of the normalizers: the common, clean case computed by DuckDB in parallel.

The Python normalizers in :mod:`crossmatch.normalize` are the definition. Ingestion runs them
only on the *distinct* values a fast path does not cover; every other cell is normalised by the
SQL below, inside DuckDB, in the same query that writes the canonical table.

A fast path is ``(ok, outputs)``: ``ok`` is a SQL predicate over the raw cell ``v``, and where it
holds, each SQL expression in ``outputs`` must equal what the Python normalizer returns for that
cell (same value, same type, no error). ``ok`` is deliberately narrow (plain ASCII digits,
CJK unified ideographs, no surrounding spaces ...): a cell it does not accept is not an error,
it just goes to Python. ``tests/ingest/test_normalize_sql.py`` checks the equality on every
distinct cell of the sample county plus hand-made awkward values, so a fast path that drifts
from its normalizer fails the tests.

DuckDB's regular expressions are RE2 (``\\x{4e00}`` for a code point); its ``strptime`` is
lenient (``%Y%m%d`` accepts ``1985123``), so every date below is guarded by an exact pattern.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from crossmatch.idnumber import ID_CHECK_WEIGHTS
from crossmatch.normalize import _traditional_class, amount_bounds

__all__ = ["FAST_PATHS", "SqlFast", "fast_path", "sql_literal"]


@dataclass(frozen=True, slots=True)
class SqlFast:
    """Where ``ok`` holds, ``outputs[suffix]`` (SQL) equals the Python normalizer's output.

    ``pre``: helper columns (name -> SQL over ``v``) that ``ok`` and ``outputs`` refer to by
    name; ingestion computes them once per distinct value instead of once per use."""

    ok: str
    outputs: dict[str, str]
    pre: dict[str, str] = field(default_factory=dict)
    per_row: bool = False  # cheap enough to run on every row rather than on distinct values

    def inlined(self) -> SqlFast:
        """The same fast path with every helper column written out in place."""
        ok, outs = self.ok, dict(self.outputs)
        for name, expr in self.pre.items():
            ok = ok.replace(name, f"({expr})")
            outs = {k: e.replace(name, f"({expr})") for k, e in outs.items()}
        return SqlFast(ok, outs, per_row=self.per_row)


FastPath = Callable[[str, Mapping[str, Any]], SqlFast]
FAST_PATHS: dict[str, FastPath] = {}


def _register(name: str) -> Callable[[FastPath], FastPath]:
    def deco(f: FastPath) -> FastPath:
        FAST_PATHS[name] = f
        return f

    return deco


def fast_path(
    normalizer: str, v: str, params: Mapping[str, Any], *, inline: bool = True
) -> SqlFast | None:
    """The fast path of ``normalizer`` over the SQL expression ``v``, or None (all Python).
    ``inline=False`` keeps the helper columns (``pre``) for the caller to compute."""
    f = FAST_PATHS.get(normalizer)
    if f is None:
        return None
    fp = f(v, params)
    if params.get("null_values"):  # a field's null_values: Python makes them NULL
        listed = ", ".join(sql_literal(str(x)) for x in params["null_values"])
        fp = SqlFast(f"({fp.ok} AND {v} NOT IN ({listed}))", fp.outputs, fp.pre, fp.per_row)
    return fp.inlined() if inline else fp


def sql_literal(s: str) -> str:
    """A SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


# characters whose NFKC form is themselves and which are neither spaces nor dots: CJK unified
# ideographs (the compatibility ideographs U+F900.. are outside this block) and ASCII
_CJK = r"\x{4e00}-\x{9fff}"
_EDGE = rf"[!-~{_CJK}]"  # a first/last character that no strip() removes


@_register("text")
def _text(v: str, params: Mapping[str, Any]) -> SqlFast:
    # Python strips Unicode spaces at both ends; a value starting and ending with a visible
    # ASCII or CJK character is returned as is
    ok = f"(regexp_matches({v}, '^{_EDGE}') AND regexp_matches({v}, '{_EDGE}$'))"
    return SqlFast(ok, {"": v}, per_row=True)


@_register("code")
def _code(v: str, params: Mapping[str, Any]) -> SqlFast:
    # ASCII letters, digits, '-', '_', '/': nothing to remove, only upper-case (no '.', so no
    # float tail; no apostrophe)
    return SqlFast(f"regexp_full_match({v}, '[0-9A-Za-z_/-]+')", {"": f"upper({v})"}, per_row=True)


@lru_cache(maxsize=1)
def _traditional_sql_class() -> str:
    return _traditional_class().replace("'", "''")


@_register("name")
def _name(v: str, params: Mapping[str, Any]) -> SqlFast:
    # only CJK unified ideographs (NFKC-stable, no spaces, no dots) and none that zhconv
    # would simplify: the name is already canonical
    ok = (
        f"(regexp_full_match({v}, '[{_CJK}]+') AND NOT regexp_matches({v}, "
        f"'{_traditional_sql_class()}'))"
    )
    return SqlFast(ok, {"": v, "_raw": v})


@_register("id")
def _id(v: str, params: Mapping[str, Any]) -> SqlFast:
    # an 18-character ID in canonical form (digits, upper-case X) whose check character and
    # birth date are right: status valid18, the rest derived from it
    hi, lo, birth = "_pre_id_hi", "_pre_id_lo", "_pre_id_birth"
    terms = [f"(({hi} // {10 ** (8 - i)}) % 10) * {w}" for i, w in enumerate(ID_CHECK_WEIGHTS[:9])]
    terms += [f"(({lo} // {10 ** (7 - i)}) % 10) * {w}" for i, w in enumerate(ID_CHECK_WEIGHTS[9:])]
    last = f"(CASE WHEN {v}[18] = 'X' THEN 10 ELSE ascii({v}[18]) - 48 END)"
    ok = (
        f"(regexp_full_match({v}, '[0-9]{{17}}[0-9X]') AND ({' + '.join(terms)} + {last}) % 11 = 1"
        f" AND year({birth}) BETWEEN 1880 AND 2100)"
    )
    return SqlFast(
        ok,
        {
            "": v,
            "_raw": v,
            "_status": "'valid18'",
            "_birth_date": f"CAST({birth} AS DATE)",
            "_sex": f"(CASE WHEN (ascii({v}[17]) - 48) % 2 = 1 THEN '男' ELSE '女' END)",
            "_region": f"{v}[1:6]",
        },
        pre={
            hi: f"TRY_CAST({v}[1:9] AS INTEGER)",
            lo: f"TRY_CAST({v}[10:17] AS INTEGER)",
            birth: f"TRY_STRPTIME({v}[7:14], '%Y%m%d')",
        },
    )


@_register("date")
def _date(v: str, params: Mapping[str, Any]) -> SqlFast:
    # a full date (ISO or 8 digits) or a month (YYYY-MM or 6 digits): first or last day
    iso = f"regexp_full_match({v}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}')"
    compact = f"regexp_full_match({v}, '[0-9]{{8}}')"
    month = f"regexp_full_match({v}, '[0-9]{{4}}-?(0[1-9]|1[0-2])')"
    first = f"make_date(CAST({v}[1:4] AS INTEGER), CAST({v}[-2:] AS INTEGER), 1)"
    in_month = f"last_day({first})" if params.get("month", "start") == "end" else first
    d = (
        f"(CASE WHEN {iso} THEN TRY_STRPTIME({v}, '%Y-%m-%d') "
        f"WHEN {compact} THEN TRY_STRPTIME({v}, '%Y%m%d') "
        f"WHEN {month} THEN CAST({in_month} AS TIMESTAMP) END)"
    )
    return SqlFast(f"(year({d}) BETWEEN 1880 AND 2100)", {"": f"CAST({d} AS DATE)"})


@_register("period")
def _period(v: str, params: Mapping[str, Any]) -> SqlFast:
    ok = f"regexp_full_match({v}, '[0-9]{{4}}-?(0[1-9]|1[0-2])')"
    return SqlFast(ok, {"": f"({v}[1:4] || '-' || {v}[-2:])"})


@_register("amount")
def _amount(v: str, params: Mapping[str, Any]) -> SqlFast:
    # a plain number with at most two decimals, digits optionally grouped by commas (1,250.00):
    # exact in DECIMAL(18,2) at either unit, within the field's plausibility bounds (see
    # crossmatch.normalize.amount)

    unit = str(params.get("unit", "yuan"))
    lo, hi = amount_bounds(params)
    value = f"CAST(replace({v}, ',', '') AS DECIMAL(18,2))"
    digits = "([0-9]{1,12}|[0-9]{1,3}(,[0-9]{3}){1,3})(\\.[0-9]{1,2})?"
    if unit == "wan":
        value = f"CAST({value} * 10000 AS DECIMAL(18,2))"
    elif unit == "fen":  # whole fen only (a fraction of a fen is an error in Python)
        value = f"CAST({value} / 100 AS DECIMAL(18,2))"
        digits = "([0-9]{1,14}|[0-9]{1,3}(,[0-9]{3}){1,4})(\\.0{1,2})?"
    # CASE evaluates the bounds only where the pattern holds (AND would cast every value)
    ok = (
        f"(CASE WHEN regexp_full_match({v}, '{digits}') THEN CAST({value} AS DOUBLE) "
        f"BETWEEN {lo!r} AND {hi!r} ELSE false END)"
    )
    return SqlFast(ok, {"": value})


@_register("int")
def _int(v: str, params: Mapping[str, Any]) -> SqlFast:
    return SqlFast(f"regexp_full_match({v}, '[0-9]{{1,15}}')", {"": f"CAST({v} AS BIGINT)"})


@_register("enum")
def _enum(v: str, params: Mapping[str, Any]) -> SqlFast:
    mapping = {str(k): str(x) for k, x in (params.get("map") or {}).items()}
    plain = f"[{_CJK}0-9A-Za-z]+"
    # a key of the map written plainly (no spaces, NFKC-stable) maps directly
    keys = [k for k in mapping if _is_plain(k)]
    whens = " ".join(f"WHEN {sql_literal(k)} THEN {sql_literal(mapping[k])}" for k in keys)
    mapped = f"(CASE {v} {whens} ELSE {v} END)" if keys else v
    if params.get("other", "keep") == "error":
        listed = ", ".join(sql_literal(k) for k in keys) or "NULL"
        return SqlFast(f"({v} IN ({listed}))", {"": mapped})
    # keep: any other plain value is stored as it is
    return SqlFast(f"regexp_full_match({v}, '{plain}')", {"": mapped})


def _is_plain(s: str) -> bool:
    return bool(s) and all((c.isascii() and c.isalnum()) or "\u4e00" <= c <= "\u9fff" for c in s)
