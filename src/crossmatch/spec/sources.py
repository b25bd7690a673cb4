"""Source specs: one YAML file per department export under ``sources/``.

Parsing is pure (no data is read here). Every problem in every file is collected with its
``file:line`` and reported at once. See ``crossmatch.spec`` for the public API and the file format.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossmatch import normalize
from crossmatch.spec.common import (
    LocDict,
    LocList,
    Problem,
    Problems,
    line_of,
    load_yaml,
    nearest,
)

FORMATS = ("csv", "xlsx", "parquet")
ENCODINGS = ("auto", "utf-8", "utf-8-sig", "gb18030", "gbk", "utf-16", "utf-16-le", "utf-16-be")
ORIGINS = ("column", "value", "path", "sheet", "title")  # where a field's raw value comes from
_TOP_KEYS = (
    "source",
    "description",
    "files",
    "format",
    "encoding",
    "delimiter",
    "header_row",
    "sheet",
    "sheets",
    "where",
    "fields",
    "persons",
)
_FIELD_KEYS = (
    "column",
    "normalizer",
    "required",
    "optional",
    "description",
    "value",
    "default",
    "from",
    "pattern",
)
_PERSON_KEYS = ("role", "name", "id", "context")
_IDENT = re.compile(r"^[a-z][a-z0-9_]*$")

LINEAGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("_source", "VARCHAR"),
    ("_file", "VARCHAR"),
    ("_file_hash", "VARCHAR"),
    ("_row", "INTEGER"),
    ("_dup_of", "INTEGER"),
)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One canonical field: which raw header(s) feed it and how it is normalised.

    ``columns`` are header aliases, first match wins (e.g. 身份证号 / 公民身份号码 / 证件号码).
    ``required``: an empty cell quarantines the row. ``optional``: the column may be absent
    from a file (the field is then NULL) instead of failing the file.
    """

    name: str
    columns: tuple[str, ...]
    normalizer: str = "text"
    params: dict[str, Any] = field(default_factory=dict)
    required: bool = False
    optional: bool = False
    line: int = 0
    # stream files: a value not (only) from a column. ``origin``: column | value | path |
    # sheet | title; ``value`` the constant; ``default`` for an absent column or empty cell;
    # ``pattern`` a regex over the path / sheet name / title text (group 1, else the match)
    value: str | None = None
    default: str | None = None
    origin: str = "column"
    pattern: str | None = None

    def output_columns(self) -> list[tuple[str, str]]:
        """(column name, DuckDB type) this field produces, e.g. payee_id, payee_id_raw ..."""
        n = normalize.get(self.normalizer)
        return [(self.name + suffix, typ) for suffix, typ in n.outputs.items()]


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
    sheet: int | str = 0
    # stream files: ``sheets: all`` or a list of names / indices (None: the one ``sheet``);
    # ``where``: SQL over the canonical fields, rows not matching are dropped (counted)
    sheets: tuple[str | int, ...] | str | None = None
    where: str | None = None
    digest: str = ""  # sha256 of the YAML text; a changed spec reloads the source's files

    @property
    def table(self) -> str:
        """The canonical warehouse table, ``src_<id>``."""
        return f"src_{self.id}"

    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def columns(self) -> list[tuple[str, str]]:
        """All (column, DuckDB type) of the canonical table, lineage first."""
        out = list(LINEAGE_COLUMNS)
        for f in self.fields:
            out.extend(f.output_columns())
        return out

    def format_for(self, path: str | Path) -> str:
        """The reader format for one file: the spec's ``format`` or the file extension."""
        if self.format:
            return self.format
        ext = Path(path).suffix.lower().lstrip(".")
        return {"xls": "xlsx", "xlsm": "xlsx", "pq": "parquet", "txt": "csv"}.get(ext, ext)


def _as_str_list(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str | int) for v in value):
        return [str(v) for v in value]
    return None


def _parse_field(
    path: Path, name: Any, value: Any, line: int, problems: Problems
) -> FieldSpec | None:
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
        units = {"amount": ("yuan", "wan"), "area_mu": ("mu", "hectare", "m2")}
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
        value=const,
        default=default,
        origin=origin,
        pattern=pattern,
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
    import polars as pl

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
        if origin in ("column", "value"):
            problems.add(
                path,
                kline("pattern"),
                f"field {name!r}: `pattern:` goes with `from: path|sheet|title` only",
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
    sheet = doc.get("sheet", 0)
    if not isinstance(sheet, int | str) or isinstance(sheet, bool):
        problems.add(path, doc.key_line("sheet"), "sheet must be an index (0 = first) or a name")
        sheet = 0
    sheets = _parse_sheets(path, doc, problems)
    where = doc.get("where")
    if where is not None and (not isinstance(where, str) or not where.strip()):
        problems.add(path, doc.key_line("where"), "`where:` must be an SQL condition (text)")
        where = None
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
            fs = _parse_field(path, fname, fval, raw_fields.key_line(fname), problems)
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
    persons = _parse_persons(path, doc.get("persons"), fields, problems)
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
        sheet=sheet,
        sheets=sheets,
        where=where,
        digest=hashlib.sha256(path.read_bytes()).hexdigest(),
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
    import duckdb

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
    return specs


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
