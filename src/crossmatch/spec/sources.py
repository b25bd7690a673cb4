"""Source specs: one YAML file per department export under ``sources/``.

Parsing is pure (no data is read here). Every problem in every file is collected with its
``file:line`` and reported at once. See ``crossmatch.spec`` for the public API and the file format.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from crossmatch import normalize
from crossmatch.contract import LINEAGE
from crossmatch.spec.common import (
    LocDict,
    LocList,
    Problem,
    Problems,
    line_of,
    load_yaml,
    nearest,
)

FORMATS = ("csv", "xlsx", "html", "json", "parquet")
ENCODINGS = ("auto", "utf-8", "utf-8-sig", "gb18030", "gbk", "utf-16", "utf-16-le", "utf-16-be")
# How files are read and normalised, as a version: part of every mapping's digest, so a file
# whose bytes and mapping are unchanged is still read again after an upgrade that changes what
# it loads as (a reader or normaliser fix). Bump it with any such change; a warehouse ingested
# before then reloads its files once.
READER_VERSION = "2"
ORIGINS = ("column", "value", "path", "sheet", "title")  # where a field's raw value comes from
_TOP_KEYS = (
    "source",
    "description",
    "files",
    "format",
    "encoding",
    "delimiter",
    "header_row",
    "header_rows",  # 2: a group header above sub-headers (columns named `group/sub`)
    "sheet",
    "sheets",
    "where",
    "null_values",  # cell texts meaning NULL in every column (a database dump's \N)
    "duplicates_ignore",  # columns a copy of a row may differ in (a dump's ID, update time)
    "records",  # JSON: the key (dotted) of the list of records
    "fields",
    "persons",
    "join",  # assemble: parts joined by key (crossmatch.ingest.assemble)
    "unpivot",  # assemble: one row per group of columns
)
_FIELD_KEYS = (
    "column",
    "normalizer",
    "required",
    "optional",
    "description",
    "on_error",
    "max_error_share",
    "null_values",
    "value",
    "default",
    "from",
    "pattern",
    "lookup",
)
ON_ERROR = ("null", "quarantine")
_PERSON_KEYS = ("role", "name", "id", "context")
_IDENT = re.compile(r"^[a-z][a-z0-9_]*$")

LINEAGE_COLUMNS: tuple[tuple[str, str], ...] = tuple(LINEAGE)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One canonical field: which raw header(s) feed it and how it is normalised.

    ``columns`` are header aliases, first match wins (e.g. 身份证号 / 公民身份号码 / 证件号码).
    ``required``: an empty cell quarantines the row. ``optional``: the column may be absent
    from a file (the field is then NULL) instead of failing the file.
    ``on_error``: what a cell the normalizer cannot read (or out of its bounds) does:
    ``quarantine`` the row, or ``null`` (the cell becomes NULL, the row is kept, the cells are
    counted in ``ingest_field_issue`` and warned about); None = quarantine when ``required``,
    else null. ``max_error_share``: a column failing on more than this share of its non-empty
    cells in a file fails the file (default 0.5), whatever ``on_error`` says.
    ``month``: the ``date`` option for month-only values (start / end of the month).
    """

    name: str
    columns: tuple[str, ...]
    normalizer: str = "text"
    params: dict[str, Any] = field(default_factory=dict)
    required: bool = False
    optional: bool = False
    line: int = 0
    month: str = "start"
    on_error: str | None = None
    max_error_share: float = 0.5
    # stream files: a value not (only) from a column. ``origin``: column | value | path |
    # sheet | title; ``value`` the constant; ``default`` for an absent column or empty cell;
    # ``pattern`` a regex over the path / sheet name / title text (group 1, else the match)
    value: str | None = None
    default: str | None = None
    origin: str = "column"
    pattern: str | None = None
    lookup: Lookup | None = None  # assemble: the value is taken from another source

    @property
    def error_policy(self) -> str:
        """``null`` or ``quarantine``: what an unreadable cell does (``on_error`` or default)."""
        if self.on_error is not None:
            return self.on_error
        return "quarantine" if self.required else "null"

    def output_columns(self) -> list[tuple[str, str]]:
        """(column name, DuckDB type) this field produces, e.g. payee_id, payee_id_raw ..."""
        if self.lookup is not None:  # one column: the looked-up source's ``take`` field
            return [(self.name, self.lookup.take_type)]
        n = normalize.get(self.normalizer)
        return [(self.name + suffix, typ) for suffix, typ in n.outputs.items()]


# ----------------------------------------------------------------------------- assemble specs
# ``join``, ``lookup`` and ``unpivot`` (loaded by crossmatch.ingest.assemble; sources/README.md)


@dataclass(frozen=True, slots=True)
class Lookup:
    """``lookup: {source: hukou, on: {village: village}, take: village_code}``: the field's value
    is ``take`` of the row of ``source`` whose ``on`` fields equal this row's (values cleaned by
    this source's key field's normalizer on both sides). ``on`` maps this source's field to the
    other source's field; a key that is not a field of this source stands for the lookup field's
    own cleaned cell (its ``column``). Ambiguous or missing keys give NULL, counted."""

    source: str
    on: dict[str, str]
    take: str
    take_type: str = "VARCHAR"  # the take field's DuckDB type (set by parse_sources)
    line: int = 0
    lines: dict[str, int] = field(default_factory=dict)  # key -> line (source, on, take)


@dataclass(frozen=True, slots=True)
class JoinPart:
    """One ``join:`` entry: files whose rows are joined to the main rows on the ``on`` fields
    (present in both ``fields``); ``options`` holds the part's own reading options (encoding,
    header_row, sheet ... as for the main files)."""

    files: tuple[str, ...]
    on: tuple[str, ...]
    fields: tuple[FieldSpec, ...]
    options: dict[str, Any] = field(default_factory=dict)
    line: int = 0

    def output_fields(self) -> tuple[FieldSpec, ...]:
        """The part's fields that reach the assembled table (the keys come from the main)."""
        return tuple(f for f in self.fields if f.name not in self.on)


@dataclass(frozen=True, slots=True)
class GroupCell:
    """One field of one ``unpivot:`` group: a column (header aliases) or a constant value."""

    columns: tuple[str, ...] = ()
    value: str | None = None
    line: int = 0


@dataclass(frozen=True, slots=True)
class PersonRole:
    """A person role in a source (data contract section 4): which fields hold its name and ID,
    and which fields give context for identity resolution (village_code, account ...)."""

    role: str
    name: str | None
    id: str | None
    context: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A parsed, validated ``sources/<id>.yaml``."""

    id: str
    path: Path
    files: tuple[str, ...]
    fields: tuple[FieldSpec, ...]
    persons: tuple[PersonRole, ...] = ()
    description: str = ""
    format: str | None = None  # None: from each file's extension
    encoding: str = "auto"
    delimiter: str = ","
    header_row: int | None = None  # None: detect (first row matching the mapped headers)
    # rows the header spans: 2 = a group header (merged cells) above sub-headers; a column is
    # then named `group/sub` (or `sub`, or the group alone where the sub-header cell is empty)
    header_rows: int = 1
    sheet: int | str = 0
    # stream files: ``sheets: all`` or a list of names / indices (None: the one ``sheet``);
    # ``where``: SQL over the canonical fields, rows not matching are dropped (counted)
    sheets: tuple[str | int, ...] | str | None = None
    where: str | None = None
    # cell texts that mean NULL in every column of the files (``\N`` in a database dump,
    # ``NULL``): staged as empty cells, before any other step reads them
    null_values: tuple[str, ...] = ()
    # headers whose cells do not make a row different for the exact-duplicate check (a dump's
    # auto-increment key and update time): a row exported twice is still one row
    duplicates_ignore: tuple[str, ...] = ()
    records: str | None = None  # JSON: the key of the list of records (None: found)
    digest: str = ""  # sha256 of the YAML text; a changed spec reloads the source's files
    unpivot: tuple[dict[str, GroupCell], ...] = ()  # assemble: one row per group
    joins: tuple[JoinPart, ...] = ()  # assemble: parts joined to the main rows by key

    @property
    def table(self) -> str:
        """The canonical warehouse table, ``src_<id>``."""
        return f"src_{self.id}"

    def field(self, name: str) -> FieldSpec:
        for f in self.all_fields():  # join parts' fields too
            if f.name == name:
                return f
        raise KeyError(name)

    def columns(self) -> list[tuple[str, str]]:
        """All (column, DuckDB type) of the canonical table, lineage first (a joined source:
        then ``_join<k>_file``, ``_join<k>_row`` per part; its fields after the main's)."""
        out = list(LINEAGE_COLUMNS)
        for k in range(1, len(self.joins) + 1):
            out += [(f"_join{k}_file", "VARCHAR"), (f"_join{k}_row", "INTEGER")]
        for f in self.all_fields():
            out.extend(f.output_columns())
        return out

    def all_fields(self) -> tuple[FieldSpec, ...]:
        """Every field of the canonical table: the main files' and each join part's."""
        return self.fields + tuple(f for p in self.joins for f in p.output_fields())

    @property
    def assembled(self) -> bool:
        """Whether ``src_<id>`` is assembled from loaded parts (a join or a lookup)."""
        return bool(self.joins) or any(f.lookup is not None for f in self.fields)

    def format_for(self, path: str | Path) -> str:
        """The reader format for one file: the spec's ``format`` or the file extension."""
        if self.format:
            return self.format
        ext = Path(path).suffix.lower().lstrip(".")
        return {"xls": "xlsx", "xlsm": "xlsx", "pq": "parquet", "txt": "csv", "htm": "html"}.get(
            ext, ext
        )


def _as_str_list(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str | int) for v in value):
        return [str(v) for v in value]
    return None


def _parse_field(
    path: Path, name: Any, value: Any, line: int, problems: Problems, covered: bool = False
) -> FieldSpec | None:
    """One field; ``covered``: every unpivot group gives it, so it needs no ``column``."""
    if not isinstance(name, str) or not _IDENT.match(name):
        problems.add(path, line, f"field name {name!r} is not snake_case", "use e.g. `payee_name`")
        return None
    if isinstance(value, str | list):
        value = LocDict({"column": value})
        value.line, value.key_lines = line, {}
    if not isinstance(value, dict):
        problems.add(
            path,
            line,
            f"field {name!r}: expected a header name or a mapping",
            "write `field: 表头` or `field: {column: 表头, normalizer: date}`",
        )
        return None
    line = line_of(value, line)
    norm_name = value.get("normalizer", "text")
    norm = normalize.NORMALIZERS.get(str(norm_name))
    kline = value.key_line if isinstance(value, LocDict) else (lambda _k: line)
    if norm is None:
        near = nearest(str(norm_name), normalize.NORMALIZERS)
        problems.add(
            path,
            kline("normalizer"),
            f"field {name!r}: unknown normalizer {norm_name!r}",
            f"did you mean {near!r}?"
            if near
            else f"one of: {', '.join(sorted(normalize.NORMALIZERS))}",
        )
    allowed = list(_FIELD_KEYS) + (list(norm.params) if norm else [])
    if isinstance(value, LocDict):
        problems.check_keys(path, value, allowed, f"field {name!r}")
    origin, const, default, pattern = _parse_origin(path, name, value, kline, problems)
    bare = origin == "column" and "value" not in value and "from" not in value
    columns = _as_str_list(value.get("column")) if bare else []
    lookup = _parse_lookup(path, name, value, problems) if "lookup" in value else None
    if columns is None and (covered or lookup is not None) and "column" not in value:
        columns = []  # assemble: the value comes from the unpivot groups / the lookup
    if columns is None:
        problems.add(
            path,
            kline("column"),
            f"field {name!r}: 'column' must be a header name or a list of header aliases",
            "add `column: 表头` (or `column: [身份证号, 公民身份号码]`)",
        )
    params = {k: v for k, v in value.items() if norm and k in norm.params}
    if norm is not None and norm.name == "enum" and not isinstance(params.get("map"), dict):
        problems.add(
            path, kline("map"), f"field {name!r}: normalizer 'enum' needs a `map:` mapping"
        )
    if "other" in params and params["other"] not in ("keep", "error"):
        problems.add(path, kline("other"), f"field {name!r}: 'other' must be keep or error")
    if "unit" in params:
        units = {"amount": ("yuan", "wan", "fen"), "area_mu": ("mu", "hectare", "m2")}
        units["area_m2"] = units["area_mu"]
        ok = units.get(str(norm_name), ())
        if params["unit"] not in ok:
            problems.add(
                path,
                kline("unit"),
                f"field {name!r}: unknown unit {params['unit']!r}",
                f"one of: {', '.join(ok)}",
            )
    for flag in ("required", "optional"):
        if flag in value and not isinstance(value[flag], bool):
            problems.add(path, kline(flag), f"field {name!r}: '{flag}' must be true or false")
    on_error, share = _error_policy(path, name, value, kline, problems)
    if "null_values" in value:
        nulls = _as_str_list(value["null_values"])
        if nulls is None:
            problems.add(
                path,
                kline("null_values"),
                f"field {name!r}: null_values must be a list of cell texts meaning empty",
                "e.g. `null_values: [至今, 无]`",
            )
        else:
            params["null_values"] = nulls
    _check_params(path, name, params, kline, problems)
    if columns is None or norm is None:
        return None
    _check_constant(path, name, norm, params, const, default, kline, problems)
    return FieldSpec(
        name=name,
        columns=tuple(columns),
        normalizer=norm.name,
        params=params,
        required=bool(value.get("required", False)),
        optional=bool(value.get("optional", False)) or default is not None,
        line=line,
        month=str(params.get("month", "start")),
        on_error=on_error,
        max_error_share=share,
        value=const,
        default=default,
        origin=origin,
        pattern=pattern,
        lookup=lookup,
    )


def _check_constant(
    path: Path,
    name: str,
    norm: normalize.Normalizer,
    params: dict[str, Any],
    const: str | None,
    default: str | None,
    kline: Any,
    problems: Problems,
) -> None:
    """A ``value:`` / ``default:`` must pass the field's normalizer (else every row it fills
    would be quarantined)."""
    for key, v in (("value", const), ("default", default)):
        if v is None:
            continue
        try:
            err = norm(pl.Series("v", [v], dtype=pl.String), params).error[0]
        except Exception as exc:  # a normalizer refusing its parameters: reported elsewhere
            err = f"{type(exc).__name__}"
        if err is not None:
            problems.add(
                path,
                kline(key),
                f"field {name!r}: {key} {v!r} does not pass normalizer {norm.name!r} ({err})",
                "write the value as the export would (e.g. a key of `map:` for enum)",
            )


def _parse_origin(
    path: Path, name: str, value: Mapping[str, Any], kline: Any, problems: Problems
) -> tuple[str, str | None, str | None, str | None]:
    """(origin, value, default, pattern) of a field: ``value:`` a constant, ``from:`` path /
    sheet / title (with an optional ``pattern:``), else a ``column:`` with an optional
    ``default:`` (an absent column or an empty cell takes it)."""
    scalar = (str, int, float)
    const = value.get("value")
    default = value.get("default")
    src = value.get("from")
    pattern = value.get("pattern")
    origin = "column"
    given = [k for k in ("column", "value", "from") if k in value]
    if len(given) > 1:
        problems.add(
            path,
            kline(given[1]),
            f"field {name!r}: give one of `column:`, `value:` or `from:`, "
            f"not {' and '.join(given)}",
        )
    if "value" in value:
        origin = "value"
        if not isinstance(const, scalar) or isinstance(const, bool):
            problems.add(
                path,
                kline("value"),
                f"field {name!r}: 'value' must be text or a number",
                "quote it, e.g. `value: '成功'`",
            )
            const = None
    elif "from" in value:
        if src not in ORIGINS[2:]:
            problems.add(
                path,
                kline("from"),
                f"field {name!r}: unknown `from: {src}`",
                "one of: path (the file path under the raw folder), sheet (the xlsx sheet "
                "name), title (the title rows above the header)",
            )
        else:
            origin = str(src)
    if default is not None and (not isinstance(default, scalar) or isinstance(default, bool)):
        problems.add(path, kline("default"), f"field {name!r}: 'default' must be text or a number")
        default = None
    if default is not None and origin != "column":
        problems.add(path, kline("default"), f"field {name!r}: `default:` goes with `column:` only")
    if pattern is not None:
        if origin == "value":
            problems.add(
                path,
                kline("pattern"),
                f"field {name!r}: `pattern:` goes with `column:` or `from: path|sheet|title`, "
                f"not with `value:`",
            )
        elif not isinstance(pattern, str):
            problems.add(path, kline("pattern"), f"field {name!r}: 'pattern' must be a regex text")
            pattern = None
        else:
            try:
                rx = re.compile(pattern)
            except re.error as exc:
                problems.add(
                    path,
                    kline("pattern"),
                    f"field {name!r}: pattern {pattern!r} is not a valid regex ({exc})",
                    "quote it in single quotes, e.g. `pattern: '_(\\d{6})\\.csv$'`",
                )
            else:
                if rx.groups > 1:
                    problems.add(
                        path,
                        kline("pattern"),
                        f"field {name!r}: pattern {pattern!r} has {rx.groups} groups",
                        "use one group (its text is the value), or (?:...) for the others",
                    )
    if origin == "path" and pattern is None and "pattern" not in value:
        problems.add(
            path,
            kline("from"),
            f"field {name!r}: `from: path` needs a `pattern:` (the group is the value)",
            "e.g. `pattern: '_(\\d{6})\\.csv$'`",
        )
    return (
        origin,
        None if const is None else str(const),
        None if default is None else str(default),
        None if pattern is None else str(pattern),
    )


def _yaml_on(d: LocDict) -> LocDict:
    """YAML 1.1 reads an unquoted ``on:`` key as the boolean true: give it back its name."""
    if True in d and "on" not in d:
        d["on"] = d.pop(True)
        d.key_lines["on"] = d.key_lines.get(True, d.line)
    return d


def _parse_lookup(path: Path, name: str, value: LocDict, problems: Problems) -> Lookup | None:
    """``lookup: {source: S, on: {this_field: other_field, ...}, take: other_field}``
    (``on: [f, g]`` is short for ``{f: f, g: g}``); cross-source checks in parse_sources."""
    raw = value.get("lookup")
    line = value.key_line("lookup") if isinstance(value, LocDict) else line_of(value)
    example = "write `lookup: {source: hukou, on: {village: village}, take: village_code}`"
    if not isinstance(raw, LocDict):
        problems.add(path, line, f"field {name!r}: 'lookup' must be a mapping", example)
        return None
    raw = _yaml_on(raw)
    problems.check_keys(path, raw, ("source", "on", "take"), f"lookup of field {name!r}")
    src, take, on = raw.get("source"), raw.get("take"), raw.get("on")
    ok = True
    for key, val in (("source", src), ("take", take)):
        if not isinstance(val, str) or not _IDENT.match(val):
            problems.add(
                path,
                raw.key_line(key),
                f"field {name!r}: lookup needs `{key}:` (snake_case)",
                example,
            )
            ok = False
    if isinstance(on, list) and on and all(isinstance(k, str) for k in on):
        on = {k: k for k in on}
    if (
        not isinstance(on, dict)
        or not on
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in on.items())
    ):
        problems.add(
            path,
            raw.key_line("on"),
            f"field {name!r}: lookup `on:` must map this source's field(s) to the other "
            "source's field(s)",
            "write e.g. `on: {village: village}` or `on: {township: township, village: village}`",
        )
        ok = False
    if not ok:
        return None
    lines = {k: raw.key_line(k) for k in ("source", "on", "take")}
    return Lookup(str(src), dict(on), str(take), line=line, lines=lines)


_PART_KEYS = (
    "files",
    "on",
    "fields",
    "format",
    "encoding",
    "delimiter",
    "header_row",
    "header_rows",
    "sheet",
    "sheets",
    "null_values",
    "description",
)


def _parse_header_rows(path: Path, doc: LocDict, problems: Problems) -> int:
    """``header_rows: 1 | 2`` (default 1): 2 = a group header row above the sub-headers."""
    hr = doc.get("header_rows", 1)
    if isinstance(hr, bool) or hr not in (1, 2):
        problems.add(
            path,
            doc.key_line("header_rows"),
            f"header_rows must be 1 or 2, not {hr!r}",
            "2 reads a group header above sub-headers; columns are named `group/sub`",
        )
        return 1
    return int(hr)


def _parse_read_options(path: Path, doc: LocDict, problems: Problems) -> dict[str, Any]:
    """The reading options of a join part (same syntax and defaults as the main file's)."""
    out: dict[str, Any] = {}
    if "format" in doc:
        if doc["format"] not in FORMATS:
            problems.add(
                path,
                doc.key_line("format"),
                f"unknown format {doc['format']!r}",
                f"one of: {', '.join(FORMATS)}",
            )
        out["format"] = doc["format"]
    if "encoding" in doc:
        enc = str(doc["encoding"]).lower()
        if enc not in ENCODINGS:
            problems.add(
                path,
                doc.key_line("encoding"),
                f"unknown encoding {enc!r}",
                f"one of: {', '.join(ENCODINGS)}",
            )
        out["encoding"] = enc
    if "delimiter" in doc:
        d = doc["delimiter"]
        if not isinstance(d, str) or len(d) != 1 or d in '"\r\n':
            problems.add(path, doc.key_line("delimiter"), "delimiter must be one character")
        out["delimiter"] = d
    if "header_row" in doc:
        hr = doc["header_row"]
        if hr == "auto":
            out["header_row"] = None
        elif isinstance(hr, int) and not isinstance(hr, bool) and hr >= 1:
            out["header_row"] = hr
        else:
            problems.add(
                path,
                doc.key_line("header_row"),
                f"header_row must be auto or a row number >= 1, not {hr!r}",
            )
    if "header_rows" in doc:
        out["header_rows"] = _parse_header_rows(path, doc, problems)
    if "sheet" in doc:
        sh = doc["sheet"]
        if not isinstance(sh, int | str) or isinstance(sh, bool):
            problems.add(
                path, doc.key_line("sheet"), "sheet must be an index (0 = first) or a name"
            )
        out["sheet"] = sh
    if "sheets" in doc:  # the files stream's option: passed on as written
        out["sheets"] = doc["sheets"]
    if "null_values" in doc:
        out["null_values"] = _parse_null_markers(path, doc, problems)
    return out


def _parse_null_markers(path: Path, doc: LocDict, problems: Problems) -> tuple[str, ...]:
    """File-level ``null_values: ['\\N']``: cell texts meaning NULL in every column."""
    raw = doc.get("null_values")
    if raw is None or (isinstance(raw, list) and any(x is None for x in raw)):
        problems.add(
            path,
            doc.key_line("null_values"),
            "null_values: YAML reads an unquoted NULL / null / ~ as no value at all",
            "quote each text, e.g. `null_values: ['\\N', 'NULL']`",
        )
        return ()
    nulls = _as_str_list(raw)
    if nulls is None or any(not n.strip() for n in nulls):
        problems.add(
            path,
            doc.key_line("null_values"),
            "null_values must be a list of non-empty cell texts meaning NULL in every column",
            "e.g. `null_values: ['\\N', 'NULL']` (single quotes keep the backslash)",
        )
        return ()
    return tuple(n.strip() for n in nulls)


def _parse_joins(
    path: Path, raw: Any, main: dict[str, FieldSpec], problems: Problems
) -> list[JoinPart]:
    """``join: [{files: [...], on: [key], fields: {...}, encoding: ...}, ...]``."""
    if raw is None:
        return []
    example = (
        "write `join: [{files: [civil/花名册*.xlsx], on: [case_no], fields: {case_no: 保障证号}}]`"
    )
    if not isinstance(raw, LocList) or not raw:
        problems.add(path, line_of(raw), "'join' must be a list of parts", example)
        return []
    parts: list[JoinPart] = []
    taken: dict[str, str] = {n: "the main `fields:`" for n in main}
    for i, item in enumerate(raw):
        where = f"join part {i + 1}"
        line = raw.item_line(i)
        if not isinstance(item, LocDict):
            problems.add(path, line, f"{where} must be a mapping with files, on, fields", example)
            continue
        item = _yaml_on(item)
        problems.check_keys(path, item, _PART_KEYS, where)
        files = _as_str_list(item.get("files"))
        if files is None:
            problems.add(
                path, item.key_line("files"), f"{where}: missing `files:` (glob(s))", example
            )
        for pat in files or []:  # a part's glob stays inside the raw folder
            if (
                pat.startswith(("/", "\\"))
                or re.match(r"^[A-Za-z]:", pat)
                or ".." in re.split(r"[/\\]", pat)
            ):
                problems.add(
                    path,
                    item.key_line("files"),
                    f"{where}: files pattern {pat!r} leaves the raw folder",
                    "write a glob relative to the raw folder, e.g. `civil/花名册*.xlsx`",
                )
        on = _as_str_list(item.get("on"))
        if on is None:
            problems.add(
                path,
                item.key_line("on"),
                f"{where}: missing `on:` (the key field(s))",
                "write e.g. `on: [case_no]`",
            )
        raw_fields = item.get("fields")
        fields: dict[str, FieldSpec] = {}
        if not isinstance(raw_fields, LocDict) or not raw_fields:
            problems.add(
                path,
                item.key_line("fields"),
                f"{where}: missing `fields:`",
                "add the part's fields, its key field(s) included",
            )
        else:
            for fname, fval in raw_fields.items():
                fs = _parse_field(path, fname, fval, raw_fields.key_line(fname), problems)
                if fs is None:
                    continue
                if fs.lookup is not None:
                    problems.add(
                        path,
                        fs.line,
                        f"{where}: field {fs.name!r}: a lookup belongs in the main `fields:`",
                        "move the field to the main `fields:` "
                        "(it may use this part's fields in `on:`)",
                    )
                fields[fs.name] = fs
        for key in on or []:
            kline = item.key_line("on")
            if key not in main:
                near = nearest(key, main)
                problems.add(
                    path,
                    kline,
                    f"{where}: key {key!r} is not a field of the main `fields:`",
                    f"did you mean {near!r}?"
                    if near
                    else "the key must be mapped in both the main fields and the part",
                )
            if fields and key not in fields:
                problems.add(
                    path,
                    kline,
                    f"{where}: key {key!r} is not one of the part's fields",
                    f"add `{key}: <the part's header>` to the part's `fields:`",
                )
        for fs in fields.values():
            if fs.name in (on or []):
                continue
            if fs.name in taken:
                problems.add(
                    path,
                    fs.line,
                    f"{where}: field {fs.name!r} is already defined by {taken[fs.name]}",
                    "rename it, or list it in `on:` if it is a key",
                )
            taken[fs.name] = where
        opts = _parse_read_options(path, item, problems)
        if files is None or on is None or not fields:
            continue
        parts.append(JoinPart(tuple(files), tuple(on), tuple(fields.values()), opts, line))
    return parts


def _parse_unpivot(path: Path, raw: Any, problems: Problems) -> list[dict[str, GroupCell]]:
    """``unpivot: [{field: 列, other: {value: '1'}}, ...]``: field names checked by the caller."""
    if raw is None:
        return []
    example = (
        "write `unpivot: [{amount: 1人, band: {value: '1'}}, {amount: 2人, band: {value: '2'}}]`"
    )
    if not isinstance(raw, LocList) or not raw:
        problems.add(path, line_of(raw), "'unpivot' must be a list of groups", example)
        return []
    if len(raw) > 99:
        problems.add(
            path,
            raw.line,
            f"unpivot has {len(raw)} groups; at most 99",
            "split the source into two mapping files over the same files",
        )
    groups: list[dict[str, GroupCell]] = []
    for i, item in enumerate(raw):
        line = raw.item_line(i)
        if not isinstance(item, LocDict) or not item:
            problems.add(path, line, f"unpivot group {i + 1} must map fields to columns", example)
            continue
        group: dict[str, GroupCell] = {}
        for fname, cell in item.items():
            cline = item.key_line(fname)
            cols = _as_str_list(cell)
            if cols is None and isinstance(cell, LocDict):
                problems.check_keys(path, cell, ("column", "value"), f"unpivot group {i + 1}")
                if "value" in cell and "column" not in cell:
                    v = cell["value"]
                    if isinstance(v, str | int | float) and not isinstance(v, bool):
                        group[str(fname)] = GroupCell(value=str(v), line=cline)
                        continue
                cols = _as_str_list(cell.get("column"))
            if cols is None:
                problems.add(
                    path,
                    cline,
                    f"unpivot group {i + 1}: field {fname!r} needs a "
                    "header name, `{column: 表头}` or `{value: constant}`",
                    example,
                )
                continue
            group[str(fname)] = GroupCell(columns=tuple(cols), line=cline)
        groups.append(group)
    return groups


def _error_policy(
    path: Path, name: str, value: Mapping[str, Any], kline: Any, problems: Problems
) -> tuple[str | None, float]:
    """``on_error`` (None when not given) and ``max_error_share`` of a field, checked.
    YAML reads a bare ``on_error: null`` as None: the key being there means the policy null."""
    on_error: str | None = None
    if "on_error" in value:
        raw = value["on_error"]
        on_error = "null" if raw is None else str(raw)
        if on_error not in ON_ERROR:
            problems.add(
                path,
                kline("on_error"),
                f"field {name!r}: on_error must be null or quarantine, not {raw!r}",
                "write `on_error: null` (cell -> NULL, counted) or `on_error: quarantine`",
            )
            on_error = None
        elif on_error == "null" and value.get("required") is True:
            problems.add(
                path,
                kline("on_error"),
                f"field {name!r}: on_error: null contradicts required: true (an unreadable "
                "cell would leave the required field empty)",
                "drop `on_error:` (a required field quarantines the row) or `required: true`",
            )
    share = 0.5
    if "max_error_share" in value:
        raw = value["max_error_share"]
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw <= 1:
            problems.add(
                path,
                kline("max_error_share"),
                f"field {name!r}: max_error_share must be a number from 0 to 1, not {raw!r}",
                "e.g. `max_error_share: 0.5` (1 never fails the file)",
            )
        else:
            share = float(raw)
    return on_error, share


def _check_params(
    path: Path, name: str, params: Mapping[str, Any], kline: Any, problems: Problems
) -> None:
    """The options of the date (month) and amount (min / max) normalizers."""
    if "month" in params and params["month"] not in normalize.MONTHS:
        problems.add(
            path,
            kline("month"),
            f"field {name!r}: month must be start or end, not {params['month']!r}",
            "`month: start` (first day of a month-only value) or `month: end` (its last day)",
        )
    bounds: dict[str, float] = {}
    for key in ("min", "max"):
        if key not in params:
            continue
        raw = params[key]
        try:  # YAML reads `1e11` (no dot) as text
            num = float(raw) if isinstance(raw, int | float | str) and raw is not True else None
        except ValueError:
            num = None
        if raw is False or num is None or not abs(num) <= 1e15:
            problems.add(
                path,
                kline(key),
                f"field {name!r}: {key} must be a number of yuan (at most 1e15 in size), "
                f"not {raw!r}",
                f"e.g. `{key}: {0 if key == 'min' else 1e11:g}`",
            )
        else:
            bounds[key] = num
    if "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
        problems.add(path, kline("min"), f"field {name!r}: min is greater than max")


def _parse_persons(
    path: Path, raw: Any, fields: dict[str, FieldSpec], problems: Problems
) -> list[PersonRole]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.add(path, line_of(raw), "'persons' must be a list of roles")
        return []
    roles: list[PersonRole] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        line = raw.item_line(i) if isinstance(raw, LocList) else line_of(raw)
        if not isinstance(item, LocDict):
            problems.add(path, line, "a person role must be a mapping with role, name, id")
            continue
        problems.check_keys(path, item, _PERSON_KEYS, "person role")
        role = item.get("role")
        if not isinstance(role, str) or not _IDENT.match(role):
            problems.add(path, item.key_line("role"), "person role needs `role: <snake_case>`")
            continue
        if role in seen:
            problems.add(path, item.key_line("role"), f"person role {role!r} declared twice")
        seen.add(role)
        for key, want in (("name", "name"), ("id", "id")):
            ref = item.get(key)
            if ref is None:
                continue
            f = fields.get(str(ref))
            if f is None:
                near = nearest(str(ref), fields)
                problems.add(
                    path,
                    item.key_line(key),
                    f"person role {role!r}: {key} refers to unknown field {ref!r}",
                    f"did you mean {near!r}?" if near else None,
                )
            elif f.normalizer != want:
                problems.add(
                    path,
                    item.key_line(key),
                    f"person role {role!r}: field {ref!r} must use normalizer {want!r}"
                    f" (it uses {f.normalizer!r})",
                    f"add `normalizer: {want}` to field {ref!r}",
                )
        if item.get("name") is None and item.get("id") is None:
            problems.add(path, item.line, f"person role {role!r} needs a name or an id field")
        ctx = item.get("context") or {}
        if not isinstance(ctx, dict):
            problems.add(path, item.key_line("context"), "'context' must map key -> field")
            ctx = {}
        for k, ref in ctx.items():
            if str(ref) not in fields:
                near = nearest(str(ref), fields)
                problems.add(
                    path,
                    ctx.key_line(k) if isinstance(ctx, LocDict) else item.line,
                    f"person role {role!r}: context {k!r} refers to unknown field {ref!r}",
                    f"did you mean {near!r}?" if near else None,
                )
        roles.append(
            PersonRole(
                role=role,
                name=None if item.get("name") is None else str(item["name"]),
                id=None if item.get("id") is None else str(item["id"]),
                context={str(k): str(v) for k, v in ctx.items()},
            )
        )
    return roles


def parse_source_file(path: str | Path, problems: Problems) -> SourceSpec | None:
    """Parse and validate one source YAML; problems are added, never raised."""
    path = Path(path)
    before = len(problems)
    doc = load_yaml(path, problems)
    if doc is None:
        if len(problems) == before:
            problems.add(path, 1, "empty source file", "see sources/README.md for the format")
        return None
    if not isinstance(doc, LocDict):
        problems.add(path, 1, "a source file must be a YAML mapping")
        return None
    problems.check_keys(path, doc, _TOP_KEYS, "source file")
    sid = doc.get("source")
    if not isinstance(sid, str) or not _IDENT.match(sid):
        problems.add(
            path,
            doc.key_line("source"),
            "missing or invalid `source:` id",
            f"add `source: {path.stem}` (snake_case)",
        )
        sid = None
    elif sid != path.stem:
        problems.add(
            path,
            doc.key_line("source"),
            f"source id {sid!r} differs from the file name {path.name!r}",
            f"rename the file to {sid}.yaml or set `source: {path.stem}`",
        )
    files = _as_str_list(doc.get("files"))
    if files is None:
        problems.add(
            path,
            doc.key_line("files"),
            "missing `files:` (glob(s) under the raw folder)",
            "add e.g. `files: [finance/一卡通发放明细_*.csv]`",
        )
    else:
        for pat in files:
            why = unsafe_pattern(pat)
            if why:
                problems.add(
                    path,
                    doc.key_line("files"),
                    f"files pattern {pat!r} {why}",
                    "write a glob relative to the raw folder, e.g. `finance/*.csv`",
                )
                files = None
    records = doc.get("records")
    if records is not None and (not isinstance(records, str) or not records.strip()):
        problems.add(
            path,
            doc.key_line("records"),
            "records must be the key of the JSON list of records",
            "e.g. `records: data` (dotted for a nested key: `records: result.rows`)",
        )
        records = None
    fmt = doc.get("format")
    if fmt is not None and fmt not in FORMATS:
        problems.add(
            path, doc.key_line("format"), f"unknown format {fmt!r}", f"one of: {', '.join(FORMATS)}"
        )
    enc = str(doc.get("encoding", "auto")).lower()
    if enc not in ENCODINGS:
        problems.add(
            path,
            doc.key_line("encoding"),
            f"unknown encoding {enc!r}",
            f"one of: {', '.join(ENCODINGS)} (auto detects UTF-8, UTF-8 BOM, UTF-16 and GB18030)",
        )
    delim = doc.get("delimiter", ",")
    delim = {"tab": "\t", "\\t": "\t"}.get(delim, delim) if isinstance(delim, str) else delim
    if delim != "auto" and (not isinstance(delim, str) or len(delim) != 1 or delim in '"\r\n'):
        problems.add(
            path,
            doc.key_line("delimiter"),
            "delimiter must be one character, `tab` or `auto`",
            "auto detects comma, tab, semicolon or | from the header",
        )
        delim = ","
    hr = doc.get("header_row", "auto")
    header_row: int | None = None
    if hr != "auto":
        if isinstance(hr, int) and not isinstance(hr, bool) and hr >= 1:
            header_row = hr
        else:
            problems.add(
                path,
                doc.key_line("header_row"),
                f"header_row must be auto or a row number >= 1, not {hr!r}",
            )
    header_rows = _parse_header_rows(path, doc, problems)
    sheet = doc.get("sheet", 0)
    if not isinstance(sheet, int | str) or isinstance(sheet, bool):
        problems.add(path, doc.key_line("sheet"), "sheet must be an index (0 = first) or a name")
        sheet = 0
    sheets = _parse_sheets(path, doc, problems)
    where = doc.get("where")
    if where is not None and (not isinstance(where, str) or not where.strip()):
        problems.add(path, doc.key_line("where"), "`where:` must be an SQL condition (text)")
        where = None
    null_markers = _parse_null_markers(path, doc, problems) if "null_values" in doc else ()
    dup_ignore: tuple[str, ...] = ()
    if "duplicates_ignore" in doc:
        listed = _as_str_list(doc["duplicates_ignore"])
        if listed is None:
            problems.add(
                path,
                doc.key_line("duplicates_ignore"),
                "duplicates_ignore must be a list of header names",
                "e.g. `duplicates_ignore: [ID, GXSJ]` (an auto-increment key, an update time)",
            )
        else:
            dup_ignore = tuple(listed)
    groups = _parse_unpivot(path, doc.get("unpivot"), problems)
    if groups and doc.get("sheets") is not None:  # both number rows: not combined (yet)
        problems.add(
            path,
            doc.key_line("unpivot"),
            "unpivot cannot be combined with `sheets:` (both renumber the rows)",
            "write one mapping file per sheet with `sheet: <name>`",
        )
    covered = set.intersection(*(set(g) for g in groups)) if groups else set()
    raw_fields = doc.get("fields")
    fields: dict[str, FieldSpec] = {}
    if not isinstance(raw_fields, LocDict) or not raw_fields:
        problems.add(
            path,
            doc.key_line("fields"),
            "missing `fields:` (canonical field -> raw header)",
            "add e.g. `fields: {payee_name: {column: 收款人姓名, normalizer: name}}`",
        )
    else:
        for fname, fval in raw_fields.items():
            line = raw_fields.key_line(fname)
            fs = _parse_field(path, fname, fval, line, problems, fname in covered)
            if fs is not None:
                fields[fs.name] = fs
        produced: dict[str, str] = {}
        for fs in fields.values():
            for col, _typ in fs.output_columns():
                if col in produced:
                    problems.add(
                        path,
                        fs.line,
                        f"field {fs.name!r} produces column {col!r}, already produced by"
                        f" field {produced[col]!r}",
                        "rename one of the fields",
                    )
                produced[col] = fs.name
    joins = _parse_joins(path, doc.get("join"), fields, problems)
    declared = [str(k) for k in raw_fields] if isinstance(raw_fields, dict) else []
    _check_assembly(path, fields, joins, groups, problems, declared)
    every = {**fields, **{f.name: f for p in joins for f in p.output_fields()}}
    persons = _parse_persons(path, doc.get("persons"), every, problems)
    if where is not None and fields and len(problems) == before:
        _check_where(path, doc.key_line("where"), where, list(fields.values()), problems)
    if len(problems) > before or sid is None or files is None:
        return None
    return SourceSpec(
        id=sid,
        path=path,
        files=tuple(files),
        fields=tuple(fields.values()),
        persons=tuple(persons),
        description=str(doc.get("description", "") or ""),
        format=fmt,
        encoding=enc,
        delimiter=delim,
        header_row=header_row,
        header_rows=header_rows,
        sheet=sheet,
        sheets=sheets,
        where=where,
        null_values=null_markers,
        duplicates_ignore=dup_ignore,
        records=records,
        digest=hashlib.sha256(READER_VERSION.encode() + b"\0" + path.read_bytes()).hexdigest(),
        unpivot=tuple(groups),
        joins=tuple(joins),
    )


def unsafe_pattern(pattern: str) -> str | None:
    """Why a ``files:`` glob could read outside the raw folder (absolute, ``..``), or None."""
    p = pattern.replace("\\", "/")
    if p.startswith("/") or re.match(r"^[A-Za-z]:", p) or p.startswith("~"):
        return "is absolute: it must stay inside the raw folder"
    if ".." in p.split("/"):
        return "climbs out of the raw folder (`..`)"
    return None


def _parse_sheets(
    path: Path, doc: LocDict, problems: Problems
) -> tuple[str | int, ...] | str | None:
    raw = doc.get("sheets")
    if raw is None:
        return None
    if raw == "all":
        return "all"
    items = raw if isinstance(raw, list) else [raw]
    if not items or not all(
        isinstance(x, str | int) and not isinstance(x, bool) and x != "all" for x in items
    ):
        problems.add(
            path,
            doc.key_line("sheets"),
            "`sheets:` must be `all` or a list of sheet names / indices (0 = first)",
            "e.g. `sheets: all` or `sheets: [农村低保, 城市低保]`",
        )
        return None
    if "sheet" in doc:
        problems.add(path, doc.key_line("sheet"), "give `sheet:` or `sheets:`, not both")
    return tuple(items)


def _check_where(
    path: Path, line: int, where: str, fields: list[FieldSpec], problems: Problems
) -> None:
    """``where:`` must be one SQL condition over the canonical columns (checked by DuckDB
    against an empty table of the source's columns: unknown columns, syntax, types)."""
    cols = list(LINEAGE_COLUMNS)
    for f in fields:
        cols.extend(f.output_columns())
    try:
        stmts = duckdb.extract_statements(f"SELECT 1 FROM t WHERE ({where})")
    except duckdb.Error as exc:
        stmts, err = [], str(exc).splitlines()[0]
    else:
        err = "" if len(stmts) == 1 else "more than one statement"
    if not err:
        con = duckdb.connect()
        try:
            body = ", ".join('"' + c.replace('"', '""') + f'" {t}' for c, t in cols)
            con.execute(f"CREATE TABLE t ({body})")
            con.execute(f"SELECT count(*) FROM t WHERE ({where})").fetchall()
        except duckdb.Error as exc:
            err = str(exc).splitlines()[0]
        finally:
            con.close()
    if err:
        problems.add(
            path,
            line,
            f"`where:` is not a valid condition over this source's fields ({err})",
            "write SQL over the canonical field names, e.g. `where: \"role = '股东'\"`",
        )


def _check_assembly(
    path: Path,
    fields: dict[str, FieldSpec],
    joins: list[JoinPart],
    groups: list[dict[str, GroupCell]],
    problems: Problems,
    declared: list[str],
) -> None:
    """Checks within one file: unpivot fields, lookup keys (cross-source: parse_sources).
    ``declared``: every name under ``fields:`` (a field with its own error is not re-flagged)."""
    for i, group in enumerate(groups):
        for fname, cell in group.items():
            if fname not in fields and fname in declared:
                continue
            if fname not in fields:
                near = nearest(fname, declared)
                problems.add(
                    path,
                    cell.line,
                    f"unpivot group {i + 1}: {fname!r} is not a field of `fields:`",
                    f"did you mean {near!r}?"
                    if near
                    else f"declare `{fname}:` in `fields:` "
                    "(with its normalizer; `column:` may be left out when every group gives it)",
                )
            elif fields[fname].lookup is not None:
                problems.add(
                    path,
                    cell.line,
                    f"unpivot group {i + 1}: {fname!r} is a lookup field",
                    "unpivot the lookup's key field instead",
                )
    known = {**fields, **{f.name: f for p in joins for f in p.output_fields()}}
    for fs in fields.values():
        lk = fs.lookup
        if lk is None:
            continue
        if fs.required:
            problems.add(
                path,
                fs.line,
                f"field {fs.name!r}: a lookup field cannot be `required` (a missing or ambiguous "
                "key gives NULL, counted and warned)",
                "remove `required: true` (mark the key field required instead)",
            )
        own = [k for k in lk.on if k not in known]
        if own and not fs.columns:
            near = nearest(own[0], known)
            problems.add(
                path,
                lk.lines.get("on", lk.line),
                f"field {fs.name!r}: lookup key {own[0]!r} is not a field of this source",
                f"did you mean {near!r}?"
                if near
                else "name a field of this source, or give "
                "the field its own `column:` (then the key stands for its cleaned cell)",
            )
        elif len(own) > 1:
            problems.add(
                path,
                lk.lines.get("on", lk.line),
                f"field {fs.name!r}: lookup keys {own} are not fields of this source (only one "
                "key may stand for the field's own cell)",
                "map the other keys in `fields:`",
            )
        for k in lk.on:
            if k in known and known[k].lookup is not None:
                problems.add(
                    path,
                    lk.lines.get("on", lk.line),
                    f"field {fs.name!r}: lookup key {k!r} is itself a lookup field",
                    "use the field the other lookup reads",
                )


def source_files(directory: str | Path) -> list[Path]:
    """The source YAML files in ``directory`` (sorted; files starting with '_' are skipped)."""
    d = Path(directory)
    return sorted(p for p in [*d.glob("*.yaml"), *d.glob("*.yml")] if not p.name.startswith("_"))


def parse_sources(directory: str | Path, problems: Problems) -> list[SourceSpec]:
    """Parse every source file in ``directory``, adding problems (no raise)."""
    d = Path(directory)
    if not d.is_dir():
        problems.add(d, 1, "sources folder not found", "pass --sources DIR")
        return []
    specs: list[SourceSpec] = []
    seen: dict[str, Path] = {}
    for path in source_files(d):
        spec = parse_source_file(path, problems)
        if spec is None:
            continue
        if spec.id in seen:
            problems.add(path, 1, f"source id {spec.id!r} also defined in {seen[spec.id]}")
            continue
        seen[spec.id] = path
        specs.append(spec)
    return _check_lookups(specs, problems)


def _check_lookups(specs: list[SourceSpec], problems: Problems) -> list[SourceSpec]:
    """Cross-source lookup checks (source exists, ``on``/``take`` fields exist, no cycle); sets
    each lookup's ``take_type``. Returns the specs (with the types set)."""
    by_id = {s.id: s for s in specs}
    deps: dict[str, set[str]] = {s.id: set() for s in specs}
    out: list[SourceSpec] = []
    for spec in specs:
        new_fields = []
        for fs in spec.fields:
            lk = fs.lookup
            if lk is None:
                new_fields.append(fs)
                continue
            other = by_id.get(lk.source)
            if other is None:
                near = nearest(lk.source, by_id)
                problems.add(
                    spec.path,
                    lk.lines.get("source", lk.line),
                    f"field {fs.name!r}: lookup source {lk.source!r} not found in the "
                    "sources folder",
                    f"did you mean {near!r}?" if near else "add its mapping file",
                )
                new_fields.append(fs)
                continue
            deps[spec.id].add(other.id)
            theirs = {f.name: f for f in other.all_fields()}
            for mine, their in lk.on.items():
                if their not in theirs:
                    near = nearest(their, theirs)
                    problems.add(
                        spec.path,
                        lk.lines.get("on", lk.line),
                        f"field {fs.name!r}: lookup key {mine!r} -> {their!r}: "
                        f"{their!r} is not a field of source {other.id!r}",
                        f"did you mean {near!r}?"
                        if near
                        else f"name a field of {other.path.as_posix()}",
                    )
            take = theirs.get(lk.take)
            if take is None:
                near = nearest(lk.take, theirs)
                problems.add(
                    spec.path,
                    lk.lines.get("take", lk.line),
                    f"field {fs.name!r}: lookup take {lk.take!r} is not a field of "
                    f"source {other.id!r}",
                    f"did you mean {near!r}?"
                    if near
                    else f"name a field of {other.path.as_posix()}",
                )
                new_fields.append(fs)
                continue
            typ = dict(take.output_columns()).get(take.name, "VARCHAR")
            new_fields.append(replace(fs, lookup=replace(lk, take_type=typ)))
        out.append(replace(spec, fields=tuple(new_fields)))
    # cycles: a source must be assembled after the sources it looks up
    state: dict[str, int] = {}

    def visit(sid: str, trail: list[str]) -> None:
        state[sid] = 1
        for dep in sorted(deps.get(sid, ())):
            if state.get(dep) == 1:
                cyc = [*trail[trail.index(dep) :], dep] if dep in trail else [sid, dep]
                problems.add(
                    by_id[sid].path,
                    1,
                    "lookup cycle: " + " -> ".join(cyc),
                    "a source cannot look up a source that looks it up; remove one lookup",
                )
            elif dep not in state and dep in deps:
                visit(dep, [*trail, dep])
        state[sid] = 2

    for sid in sorted(deps):
        if sid not in state:
            visit(sid, [sid])
    return out


def load_sources(directory: str | Path = "sources") -> list[SourceSpec]:
    """Load and validate every ``sources/*.yaml``; raises SpecError listing all problems."""
    problems = Problems()
    specs = parse_sources(directory, problems)
    problems.raise_if_any()
    return specs


def validate_sources(paths: Mapping[str, Any]) -> list[Problem]:
    """Registered validator: problems in the source files of ``paths['sources']``."""
    d = paths.get("sources")
    if d is None:
        return []
    problems = Problems()
    parse_sources(d, problems)
    return list(problems)
