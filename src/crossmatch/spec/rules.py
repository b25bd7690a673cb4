"""Rule files (``rules/<id>.yaml``): parse into pure :class:`RuleSpec` models and validate them.

A rule file is metadata + parameters + one DuckDB query that returns hits in a fixed shape
(see ``HIT_COLUMNS``) + the verifier's 排除提示 + small inline examples (the rule's own test).
This module never touches data; compiling the SQL against the contract is done by
:func:`crossmatch.detect.rule_runner.compile_problems`, which :func:`validate_rules` calls.

Parameters appear in the SQL as ``{{ params.name }}`` and are rendered as typed SQL literals
(strings quoted and escaped, lists as DuckDB lists), so a parameter value can never inject SQL.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossmatch import contract
from crossmatch.spec.common import LocDict, LocList, Problems, line_of, load_yaml, nearest

CATEGORIES = ("false_claim", "duplicate", "deceased", "favouritism", "embezzlement", "procurement")
SEVERITIES = ("low", "medium", "high")
PARAM_TYPES = ("int", "float", "str", "bool", "date", "list[str]", "list[int]", "list[float]")
#: Columns every rule query must return, in this order (the hit shape, contract section 7).
HIT_COLUMNS = ("subject", "subject_name", "period", "amount", "village_code", "evidence")
TOP_KEYS = (
    "id",
    "version",
    "title",
    "category",
    "severity",
    "requires",
    "kind",
    "params",
    "sql",
    "amount_formula",
    "exclusion_hints",
    "examples",
    "description",
    "partition",
)
#: ``partition:`` values: ``period`` = the hits of payment month P are computed from the payments
#: of month P alone (``paid`` / ``dibao_paid_month`` rows of period P) and the rule's other inputs,
#: and every hit's period is such a month. A night that changed only some months' payments then
#: recomputes those months and keeps the others' hits (crossmatch.detect.reuse).
PARTITIONS = ("period",)
REQUIRED = (
    "id",
    "version",
    "title",
    "category",
    "severity",
    "requires",
    "sql",
    "amount_formula",
    "exclusion_hints",
    "examples",
)
PLACEHOLDER = re.compile(r"\{\{\s*params\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class ParamSpec:
    """A rule parameter: type, default and what it means."""

    name: str
    type: str
    default: Any
    doc: str = ""


@dataclass(frozen=True)
class Example:
    """A tiny input (table -> rows) and the hits (subject, period) the rule must return."""

    name: str
    given: dict[str, list[dict[str, Any]]]
    expect: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)
    line: int = 1


@dataclass(frozen=True)
class RuleSpec:
    """One parsed rule file. ``requires`` items are source ids; a tuple means any one of them.

    ``requires`` is only an addition: what a rule needs is derived from its SQL
    (:mod:`crossmatch.detect.needs`): every source it reads is required, except the sources of a
    declared ``{any: [a, b]}`` group, which stay alternatives."""

    id: str
    version: int
    title_zh: str
    title_en: str
    category: str
    severity: str
    requires: tuple[str | tuple[str, ...], ...]
    sql: str
    amount_formula: str
    exclusion_hints: tuple[str, ...]
    params: dict[str, ParamSpec]
    examples: tuple[Example, ...]
    kind: str = "sql"
    description: str = ""
    path: str = ""
    sql_line: int = 1
    kind_line: int = 1
    partition: str = ""  # "" or one of PARTITIONS

    def render_sql(self, overrides: dict[str, Any] | None = None) -> str:
        """The SQL with every ``{{ params.x }}`` replaced by a typed literal."""
        values = self.param_values(overrides)
        return PLACEHOLDER.sub(
            lambda m: sql_literal(values[m.group(1)], self.params[m.group(1)].type), self.sql
        )

    def param_values(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Defaults updated with ``overrides``; unknown names and wrong types raise ValueError."""
        values = {n: p.default for n, p in self.params.items()}
        for k, v in (overrides or {}).items():
            if k not in self.params:
                raise ValueError(
                    f"rule {self.id} has no parameter {k!r}; "
                    f"known: {', '.join(self.params) or '(none)'}"
                )
            err = type_error(v, self.params[k].type)
            if err:
                raise ValueError(f"rule {self.id} parameter {k}: {err}")
            values[k] = v
        return values


def _is(v: Any, t: str) -> bool:
    if t == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "float":
        return isinstance(v, int | float) and not isinstance(v, bool)
    if t == "str":
        return isinstance(v, str)
    if t == "bool":
        return isinstance(v, bool)
    if t == "date":
        return isinstance(v, dt.date)
    if t.startswith("list["):
        return isinstance(v, list) and all(_is(x, t[5:-1]) for x in v)
    return False


def type_error(value: Any, typ: str) -> str | None:
    """None if ``value`` fits ``typ``, else a message."""
    if typ not in PARAM_TYPES:
        return f"unknown type {typ!r} (use one of {', '.join(PARAM_TYPES)})"
    if not _is(value, typ):
        return f"value {value!r} is not a {typ}"
    return None


def sql_literal(value: Any, typ: str) -> str:
    """Render a checked parameter value as a DuckDB literal (never raw text)."""
    if typ.startswith("list["):
        inner = typ[5:-1]
        items = ", ".join(sql_literal(v, inner) for v in value)
        cast = {"str": "VARCHAR", "int": "BIGINT", "float": "DOUBLE"}[inner]
        return f"CAST([{items}] AS {cast}[])"
    if typ == "str":
        return "'" + str(value).replace("'", "''") + "'"
    if typ == "bool":
        return "TRUE" if value else "FALSE"
    if typ == "date":
        return f"DATE '{value.isoformat()}'"
    if typ == "int":
        return str(int(value))
    if typ == "float":
        return repr(float(value))
    raise ValueError(typ)


def _check_header(path: Path, doc: LocDict, problems: Problems) -> None:
    """The keys every rule has: known keys, required keys, id = file name, version, title,
    category and severity."""
    problems.check_keys(path, doc, TOP_KEYS, "rule")
    for k in REQUIRED:
        if k not in doc:
            problems.add(path, doc.line, f"missing key {k!r}", f"add `{k}:` (see rules/README.md)")
    rid = doc.get("id")
    if rid is not None and rid != path.stem:
        problems.add(
            path,
            doc.key_line("id"),
            f"id {rid!r} differs from the file name",
            f"rename the file to {rid}.yaml or set `id: {path.stem}`",
        )
    if "version" in doc and not (isinstance(doc["version"], int) and doc["version"] >= 1):
        problems.add(path, doc.key_line("version"), "version must be a positive integer")
    title = doc.get("title")
    if "title" in doc and not (isinstance(title, dict) and title.get("zh") and title.get("en")):
        problems.add(
            path,
            doc.key_line("title"),
            "title needs both zh and en",
            "title: {zh: 死亡人员冒领, en: Payments to deceased persons}",
        )
    for key, allowed in (("category", CATEGORIES), ("severity", SEVERITIES)):
        if key in doc and doc[key] not in allowed:
            near = nearest(str(doc[key]), allowed)
            problems.add(
                path,
                doc.key_line(key),
                f"{key} {doc[key]!r} is not one of {', '.join(allowed)}",
                f"did you mean {near!r}?" if near else None,
            )


def _parse_requires(path: Path, doc: LocDict, problems: Problems) -> list[str | tuple[str, ...]]:
    """``requires: [payment, {any: [death, cremation, hukou]}]``: every name a contract source."""
    known_sources = contract.active().sources
    requires: list[str | tuple[str, ...]] = []
    req = doc.get("requires", [])
    if not isinstance(req, list) or not req:
        problems.add(path, doc.key_line("requires"), "requires must be a non-empty list of sources")
        req = []
    for i, item in enumerate(req):
        line = req.item_line(i) if isinstance(req, LocList) else doc.key_line("requires")
        names = item.get("any") if isinstance(item, dict) else [item]
        if not isinstance(names, list) or not names:
            problems.add(path, line, f"bad requires item {item!r}", "a source id or {any: [a, b]}")
            continue
        for s in names:
            if s not in known_sources:
                near = nearest(str(s), known_sources)
                problems.add(
                    path,
                    line,
                    f"unknown source {s!r} in requires",
                    f"did you mean {near!r}?" if near else None,
                )
        requires.append(tuple(names) if isinstance(item, dict) else names[0])
    return requires


def _parse_params(path: Path, doc: LocDict, problems: Problems) -> dict[str, ParamSpec]:
    """``params: {name: {type, default, doc}}``, each default of its declared type."""
    params: dict[str, ParamSpec] = {}
    raw_params = doc.get("params") or {}
    if not isinstance(raw_params, dict):
        problems.add(
            path, doc.key_line("params"), "params must be a mapping name -> {type, default}"
        )
        raw_params = {}
    for name, p in raw_params.items():
        line = raw_params.key_line(name) if isinstance(raw_params, LocDict) else doc.line
        if not isinstance(p, dict) or "default" not in p or "type" not in p:
            problems.add(
                path,
                line,
                f"parameter {name!r} needs type and default",
                f"{name}: {{type: int, default: 1, doc: ...}}",
            )
            continue
        if isinstance(p, LocDict):
            problems.check_keys(path, p, ("type", "default", "doc"), f"parameter {name}")
        err = type_error(p["default"], p["type"])
        if err:
            problems.add(path, line, f"parameter {name!r}: default {err}")
            continue
        params[name] = ParamSpec(name, p["type"], p["default"], str(p.get("doc", "")))
    return params


def _check_placeholders(
    path: Path, doc: LocDict, params: dict[str, ParamSpec], kind: str, problems: Problems
) -> None:
    """Every ``{{ params.x }}`` in the SQL is declared, well formed, and (for SQL rules) every
    declared parameter is used."""
    sql = doc.get("sql") or ""
    sql_line = doc.key_line("sql")
    for m in PLACEHOLDER.finditer(sql):
        if m.group(1) not in params:
            near = nearest(m.group(1), params)
            problems.add(
                path,
                sql_line + 1 + sql[: m.start()].count("\n"),
                f"SQL uses undeclared parameter {m.group(1)!r}",
                f"did you mean {near!r}?" if near else "declare it under params:",
            )
    stray = re.sub(PLACEHOLDER, "", sql)
    if "{{" in stray:
        problems.add(
            path,
            sql_line + 1 + stray[: stray.index("{{")].count("\n"),
            "malformed placeholder",
            "write {{ params.name }}",
        )
    used = set(PLACEHOLDER.findall(sql))
    raw_params = doc.get("params") or {}
    for name in params:
        if name not in used and kind == "sql":
            problems.add(
                path,
                raw_params.key_line(name) if isinstance(raw_params, LocDict) else doc.line,
                f"parameter {name!r} is never used in the SQL",
                "remove it or use {{ params." + name + " }}",
            )


def _parse_hints(path: Path, doc: LocDict, problems: Problems) -> list[Any]:
    """``exclusion_hints`` (排除提示): a non-empty list when present."""
    hints = doc.get("exclusion_hints") or []
    if "exclusion_hints" in doc and (not isinstance(hints, list) or not hints):
        problems.add(
            path,
            doc.key_line("exclusion_hints"),
            "exclusion_hints (排除提示) must be a non-empty list of checks for the verifier",
        )
        hints = []
    return hints


def _parse_partition(path: Path, doc: LocDict, problems: Problems) -> str:
    """``partition``: empty, or one of :data:`PARTITIONS`."""
    partition = doc.get("partition") or ""
    if partition and partition not in PARTITIONS:
        problems.add(
            path,
            doc.key_line("partition"),
            f"partition {partition!r} is not one of {', '.join(PARTITIONS)}",
            "remove it, or say `partition: period` when each month's hits come from that "
            "month's payments alone",
        )
        partition = ""
    return str(partition)


def _parse_example(path: Path, i: int, ex: Any, line: int, problems: Problems) -> Example | None:
    """One ``examples:`` item: ``given`` (contract table -> rows) and ``expect`` (subjects)."""
    if not isinstance(ex, dict) or "given" not in ex or "expect" not in ex:
        problems.add(path, line, "an example needs `given:` (table -> rows) and `expect:`")
        return None
    if isinstance(ex, LocDict):
        problems.check_keys(path, ex, ("name", "given", "expect", "params"), "example")
    given = ex["given"] or {}
    if not isinstance(given, dict):
        problems.add(path, line, "`given:` must map table names to lists of rows")
        return None
    tables = contract.active().tables()
    for t, rows in given.items():
        tl = given.key_line(t) if isinstance(given, LocDict) else line
        if t not in tables and not str(t).startswith("ref_"):
            near = nearest(str(t), tables)
            problems.add(
                path,
                tl,
                f"example table {t!r} is not a contract table",
                f"did you mean {near!r}?" if near else None,
            )
        if not isinstance(rows, list):
            problems.add(path, tl, f"rows of {t!r} must be a list of mappings")
    expect = ex["expect"] or []
    if not isinstance(expect, list) or not all(
        isinstance(e, dict) and "subject" in e for e in expect
    ):
        problems.add(path, line, "`expect:` must be a list of {subject, period} (or [])")
        return None
    return Example(
        str(ex.get("name", f"example {i + 1}")),
        dict(given),
        [dict(e) for e in expect],
        dict(ex.get("params") or {}),
        line,
    )


def _parse_examples(path: Path, doc: LocDict, problems: Problems) -> list[Example]:
    """``examples:``, a non-empty list when present; the valid ones."""
    raw_ex = doc.get("examples") or []
    if "examples" in doc and (not isinstance(raw_ex, list) or not raw_ex):
        problems.add(path, doc.key_line("examples"), "examples must be a non-empty list")
        raw_ex = []
    examples: list[Example] = []
    for i, ex in enumerate(raw_ex):
        line = raw_ex.item_line(i) if isinstance(raw_ex, LocList) else doc.line
        parsed = _parse_example(path, i, ex, line, problems)
        if parsed is not None:
            examples.append(parsed)
    return examples


def _parse_one(path: Path, problems: Problems) -> RuleSpec | None:
    doc = load_yaml(path, problems)
    if doc is None:
        return None
    if not isinstance(doc, LocDict):
        problems.add(path, line_of(doc), "a rule file must be a mapping of keys (id, sql, ...)")
        return None
    n0 = len(problems)
    _check_header(path, doc, problems)
    kind = doc.get("kind", "sql")  # checked against the registered kinds by crossmatch.detect
    requires = _parse_requires(path, doc, problems)
    params = _parse_params(path, doc, problems)
    _check_placeholders(path, doc, params, kind, problems)
    hints = _parse_hints(path, doc, problems)
    partition = _parse_partition(path, doc, problems)
    examples = _parse_examples(path, doc, problems)
    title = doc.get("title")
    if len(problems) > n0 or not isinstance(title, dict):
        return None
    return RuleSpec(
        id=str(doc.get("id")),
        version=doc["version"],
        title_zh=title["zh"],
        title_en=title["en"],
        category=doc["category"],
        severity=doc["severity"],
        requires=tuple(requires),
        sql=doc.get("sql") or "",
        amount_formula=str(doc["amount_formula"]),
        exclusion_hints=tuple(map(str, hints)),
        params=params,
        examples=tuple(examples),
        kind=kind,
        kind_line=doc.key_line("kind") if "kind" in doc else doc.line,
        description=str(doc.get("description", "")),
        path=str(path),
        sql_line=doc.key_line("sql"),
        partition=partition,
    )


def rule_files(rules_dir: str | Path) -> list[Path]:
    """Rule files are found on disk: every ``*.yaml`` directly under ``rules_dir``."""
    return sorted(Path(rules_dir).glob("*.yaml"))


def load_rules(
    rules_dir: str | Path, problems: Problems | None = None, only: list[str] | None = None
) -> list[RuleSpec]:
    """Parse every rule file; problems are collected (raised at the end if ``problems`` is None)."""
    own = problems is None
    problems = Problems() if problems is None else problems
    files = rule_files(rules_dir)
    if not files:
        problems.add(Path(rules_dir), 1, "no rule files found", "put one <id>.yaml per rule here")
    if only:
        stems = {f.stem for f in files}
        for o in only:
            if o not in stems:
                near = nearest(o, stems)
                problems.add(
                    Path(rules_dir),
                    1,
                    f"no rule {o!r}",
                    f"did you mean {near!r}?" if near else None,
                )
        files = [f for f in files if f.stem in set(only)]
    specs = [s for f in files if (s := _parse_one(f, problems)) is not None]
    if own:
        problems.raise_if_any()
    return specs


def rule_file_problems(rules_dir: str | Path) -> Problems:
    """All structural problems of all rule files at once (keys, metadata, parameters, examples'
    tables). The full check, with rule kinds and SQL compiled against the contract, is
    ``crossmatch.detect.rule_check.validate_rules``."""
    problems = Problems()
    load_rules(rules_dir, problems)
    return problems
