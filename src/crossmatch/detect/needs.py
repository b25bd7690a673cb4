"""What each rule reads, derived from its SQL (never only hand-declared).

A rule needs the contract tables and columns its query reads, directly or through the shared
building blocks of ``detect/base.sql`` (``paid``, ``dibao_case`` ...: followed to the ``r_*`` views
and columns *they* read). Derivation, without data:

1. tables: DuckDB's own parser (``json_serialize_sql``) lists every table a query reads; a building
   block is replaced by the tables its statement reads, transitively;
2. columns: every contract column of those tables whose name occurs in the SQL is a candidate; a
   candidate is *needed* when the query no longer binds without it. Each is checked by dropping
   the column from an empty contract-shaped table (the building blocks are views there, so DuckDB
   re-binds the whole chain) and asking DuckDB to DESCRIBE the rule. Exact for every construct
   DuckDB binds (aliases, CTEs, ``SELECT *``, ``USING``), no SQL parsing of our own.

Sources: every ``r_<source>`` a rule reads is required, except sources named in one of the rule's
hand-declared ``requires: [{any: [a, b]}]`` groups (alternatives: one of them suffices); a
kinship table requires ``{any: [hukou, marriage]}``; hand-declared single sources are added.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from contextlib import suppress
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from crossmatch import contract
from crossmatch.detect import schema
from crossmatch.detect.reference import create_text_table
from crossmatch.spec.rules import RuleSpec

_CREATE = re.compile(
    r"^\s*CREATE\s+OR\s+REPLACE\s+TEMP\s+(TABLE|VIEW|MACRO)\s+(\w+)(?:\s*\([^)]*\))?\s+AS\s+(.*)$",
    re.IGNORECASE | re.DOTALL,
)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
KIN_SOURCES = ("hukou", "marriage")
#: Lineage columns: every loaded row carries them, whatever the mapping says.
LINEAGE = frozenset(c for c, _ in contract.LINEAGE)


@dataclass(frozen=True)
class RuleNeeds:
    """What one rule reads. ``columns``: contract table -> columns read (sorted);
    ``references``: ``ref_*`` tables; ``requires``: source ids, a tuple meaning any one of them."""

    rule_id: str
    columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    references: tuple[str, ...] = ()
    requires: tuple[str | tuple[str, ...], ...] = ()

    def source_columns(self) -> dict[str, tuple[str, ...]]:
        """source id -> columns of ``r_<source>`` read (lineage left out)."""
        return {
            t[2:]: tuple(c for c in cols if c not in LINEAGE)
            for t, cols in self.columns.items()
            if t.startswith("r_")
        }

    def sources(self) -> set[str]:
        """Every source the rule reads (required or alternative)."""
        out: set[str] = set()
        for r in self.requires:
            out.update(r if isinstance(r, tuple) else (r,))
        return out


def _statements() -> list[str]:
    text = resources.files("crossmatch.detect").joinpath("base.sql").read_text(encoding="utf-8")
    body = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("--"))
    return [s.query.strip() for s in duckdb.extract_statements(body)]  # DuckDB's own parser


def base_statements() -> list[tuple[str, str, str]]:
    """(kind, name, body) of each statement of ``detect/base.sql`` (comments dropped)."""
    out = []
    for stmt in _statements():
        m = _CREATE.match(stmt)
        if m:
            out.append((m.group(1).upper(), m.group(2), m.group(3)))
    return out


def _walk_tables(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        if node.get("type") == "BASE_TABLE" and node.get("table_name"):
            out.add(str(node["table_name"]))
        for v in node.values():
            _walk_tables(v, out)
    elif isinstance(node, list):
        for v in node:
            _walk_tables(v, out)


def tables_read(con: duckdb.DuckDBPyConnection, sql: str, known: set[str]) -> set[str]:
    """Tables (among ``known``) a SELECT reads, from DuckDB's parse tree; CTE names are not
    tables. Falls back to the identifiers of the text when the parser refuses the query."""
    row = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    tree = json.loads(row[0]) if row else {"error": True}
    found: set[str] = set()
    if tree.get("error"):
        found = set(_IDENT.findall(sql))
    else:
        _walk_tables(tree.get("statements", []), found)
    return found & known


def _identifiers(sql: str) -> set[str]:
    sql = re.sub(r"--[^\n]*", "", sql)
    sql = re.sub(r"'(?:[^']|'')*'", "''", sql)  # string literals are not names
    return set(_IDENT.findall(sql))


class _Prober:
    """An in-memory connection with empty contract tables, the reference tables of the rules
    folder and the building blocks as views (so dropping a column re-binds everything)."""

    def __init__(self, rules_dir: str | Path | None) -> None:
        self.con = duckdb.connect()
        schema.ensure_contract_tables(self.con)
        self.refs: set[str] = set()
        if rules_dir is not None:
            for f in sorted((Path(rules_dir) / "reference").glob("*.csv")):
                try:
                    create_text_table(self.con, f"ref_{f.stem}", f)
                    self.refs.add(f"ref_{f.stem}")
                except ValueError:  # a malformed reference file: compile_problems reports it
                    pass
        self.contract = set(schema.all_tables())
        self.base: dict[str, tuple[str, set[str]]] = {}  # name -> (body, tables read)
        self.pruned: dict[tuple[str, frozenset[str]], str] = {}
        for kind, name, body in base_statements():
            if kind == "MACRO":
                continue
            known = self.contract | set(self.base) | self.refs | _refs_named(body)
            self.base[name] = (body, tables_read(self.con, body, known))
        self.order = [name for kind, name, _ in base_statements() if kind != "MACRO"]
        for stmt in _statements():
            if _CREATE.match(stmt) and _CREATE.match(stmt).group(1).upper() == "MACRO":  # type: ignore[union-attr]
                self.con.execute(stmt)
        self.views(None)
        self.types = {
            t: dict(
                self.con.execute(
                    f'SELECT column_name, column_type FROM (DESCRIBE "{t}")'
                ).fetchall()
            )
            for t in self.contract
        }

    def views(self, used: set[str] | None) -> None:
        """(Re)create the building blocks as views, each SELECT list pruned to the columns whose
        names are in ``used`` (None: unpruned): a rule reading ``dibao_case.case_no`` does not
        read ``r_assistance.handler_name`` just because ``dibao_case`` also carries it."""
        for name in self.order:
            body = self.base[name][0]
            if used is not None:
                body = self.pruned.get((name, frozenset(used))) or _prune(self.con, body, used)
            with suppress(duckdb.Error):  # a missing reference table: reference_problems says so
                self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {body}")

    def used_names(self, sql: str, read_blocks: set[str]) -> set[str]:
        """Names the rule uses, plus those its (pruned) building blocks use, dependents first."""
        used = _identifiers(sql)
        for name in reversed(self.order):
            if name in read_blocks:
                used |= _identifiers(_prune(self.con, self.base[name][0], used))
        return used

    def closure(self, sql: str) -> tuple[set[str], set[str]]:
        """(contract and reference tables read, transitively through building blocks;
        building blocks used)."""
        known = self.contract | set(self.base) | self.refs | _refs_named(sql)
        todo = tables_read(self.con, sql, known)
        seen: set[str] = set()
        out: set[str] = set()
        blocks: set[str] = set()
        while todo:
            t = todo.pop()
            if t in seen:
                continue
            seen.add(t)
            if t in self.base:
                blocks.add(t)
                todo |= self.base[t][1]
            else:
                out.add(t)
        return out, blocks

    def binds(self, sql: str) -> bool:
        try:
            self.con.execute(f"DESCRIBE {sql}")
            return True
        except duckdb.Error:
            return False

    def close(self) -> None:
        self.con.close()


def _prune(con: duckdb.DuckDBPyConnection, body: str, used: set[str]) -> str:
    """``body`` with its outer SELECT list cut to ``*`` and the columns named in ``used``."""
    row = con.execute("SELECT json_serialize_sql(?)", [body]).fetchone()
    tree: dict[str, Any] = json.loads(row[0]) if row else {"error": True}
    if tree.get("error") or len(tree.get("statements", [])) != 1:
        return body
    node = tree["statements"][0]["node"]
    if node.get("type") != "SELECT_NODE":
        return body
    keep = []
    for e in node.get("select_list", []):
        name = e.get("alias") or (e.get("column_names") or [None])[-1]
        if e.get("class") == "STAR" or name is None or name in used:
            keep.append(e)
    if not keep or len(keep) == len(node["select_list"]):
        return body
    node["select_list"] = keep
    out = con.execute("SELECT json_deserialize_sql(?)", [json.dumps(tree)]).fetchone()
    return out[0] if out and out[0] else body


def _refs_named(sql: str) -> set[str]:
    return {n for n in _IDENT.findall(sql) if n.startswith("ref_")}


def derive(specs: list[RuleSpec], rules_dir: str | Path | None = None) -> dict[str, RuleNeeds]:
    """Needs of every rule in ``specs`` (see the module docstring)."""
    if rules_dir is None and specs:
        rules_dir = Path(specs[0].path).parent
    pr = _Prober(rules_dir)
    try:
        sqls: dict[str, str] = {}
        tables: dict[str, set[str]] = {}
        needed: dict[str, dict[str, set[str]]] = {s.id: {} for s in specs}
        for spec in specs:
            sql = _rendered(spec)
            sqls[spec.id] = sql
            read, blocks = pr.closure(sql)
            tables[spec.id] = read
            names = pr.used_names(sql, blocks)
            pr.views(names)
            ok_before = pr.binds(sql)
            for t in sorted(read & pr.contract):
                for c in pr.types[t]:
                    if c not in names:
                        continue
                    if c in LINEAGE or not ok_before:  # lineage is always there
                        needed[spec.id].setdefault(t, set()).add(c)
                        continue
                    pr.con.execute(f'ALTER TABLE "{t}" DROP COLUMN "{c}"')
                    try:
                        if not pr.binds(sql):
                            needed[spec.id].setdefault(t, set()).add(c)
                    finally:
                        pr.con.execute(f'ALTER TABLE "{t}" ADD COLUMN "{c}" {pr.types[t][c]}')
        out: dict[str, RuleNeeds] = {}
        for spec in specs:
            read = tables[spec.id]
            cols = {t: tuple(sorted(needed[spec.id].get(t, set()))) for t in sorted(read)}
            cols = {t: v for t, v in cols.items() if t in pr.contract}
            refs = tuple(sorted(t for t in read if t.startswith("ref_")))
            out[spec.id] = RuleNeeds(spec.id, cols, refs, _requires(spec, cols))
        return out
    finally:
        pr.close()


def _requires(
    spec: RuleSpec, cols: dict[str, tuple[str, ...]]
) -> tuple[str | tuple[str, ...], ...]:
    groups = [r for r in spec.requires if isinstance(r, tuple)]
    alternatives = {s for g in groups for s in g}
    singles: list[str] = []
    for t in cols:
        if t.startswith("r_") and t[2:] in schema.sources() and t[2:] not in alternatives:
            singles.append(t[2:])
    for r in spec.requires:
        if isinstance(r, str) and r not in singles:
            singles.append(r)
    kin = any(t.startswith("kin_") for t in cols)
    if kin and not any(s in KIN_SOURCES for s in singles) and KIN_SOURCES not in groups:
        groups.append(KIN_SOURCES)
    return tuple(sorted(set(singles))) + tuple(groups)


_CACHE: dict[tuple, dict[str, RuleNeeds]] = {}


def _contract_text() -> str:
    return json.dumps({t: schema.contract_columns(t) for t in sorted(schema.all_tables())})


def _rendered(spec: RuleSpec) -> str:
    """The SQL :func:`derive` probes: parameters at their defaults (as written if they do not
    render)."""
    try:
        return spec.render_sql()
    except (ValueError, KeyError):
        return spec.sql


def derive_cached(
    specs: list[RuleSpec], rules_dir: str | Path | None = None
) -> dict[str, RuleNeeds]:
    """:func:`derive`, remembered per process for the same rule texts, reference files (by
    name and content, wherever the rules folder is) and contract (every table's columns and
    types, whichever mapping files they come from)."""
    if rules_dir is None and specs:
        rules_dir = Path(specs[0].path).parent  # as derive does
    ref_dir = Path(rules_dir) / "reference" if rules_dir else None
    refs = (
        tuple(
            (f.name, hashlib.sha256(f.read_bytes()).hexdigest())
            for f in sorted(ref_dir.glob("*.csv"))
        )
        if ref_dir and ref_dir.is_dir()
        else ()
    )
    key = (tuple((s.id, _rendered(s), s.requires) for s in specs), refs, _contract_text())
    if key not in _CACHE:
        _CACHE[key] = _derive_on_disk(specs, rules_dir)
    return _CACHE[key]


#: A folder where :func:`derive_cached` also keeps derived needs across processes, one
#: ``<derivation_key>.json`` per derivation (unset: per process only). The test suite sets it:
#: its many processes would otherwise each probe the same rules again (seconds each).
NEEDS_CACHE_ENV = "CROSSMATCH_NEEDS_CACHE"


def _derive_on_disk(specs: list[RuleSpec], rules_dir: str | Path | None) -> dict[str, RuleNeeds]:
    """:func:`derive`, read from / written to ``$CROSSMATCH_NEEDS_CACHE`` when it is set, under
    :func:`derivation_key` (rule texts, building blocks, this module, contract, references,
    DuckDB version): any change to those is another file. Unreadable files are derived again."""
    folder = os.environ.get(NEEDS_CACHE_ENV, "").strip()
    if not folder:
        return derive(specs, rules_dir)
    path = Path(folder) / f"{derivation_key(specs, rules_dir)}.json"
    with suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
        return _from_json(path.read_text(encoding="utf-8"))
    out = derive(specs, rules_dir)
    with suppress(OSError):  # a cache that cannot be written is only slower
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
        tmp.write_text(_to_json(out), encoding="utf-8")
        os.replace(tmp, path)  # atomic: a concurrent reader sees all of it or nothing
    return out


#: Where :func:`derive_stored` keeps derived needs in a warehouse (one row per derivation key).
NEEDS_DDL = "CREATE TABLE IF NOT EXISTS rule_needs_cache (key VARCHAR, needs JSON)"


def derivation_key(specs: list[RuleSpec], rules_dir: str | Path | None = None) -> str:
    """sha256 over everything :func:`derive` reads: each rule's id, SQL and declared requires,
    ``detect/base.sql`` and this module's code, the reference files (names and bytes), the
    contract (every table's columns and types) and the DuckDB version (whose binder decides)."""
    h = hashlib.sha256()

    for part in (
        json.dumps([(s.id, _rendered(s), s.requires) for s in specs], default=str),
        resources.files("crossmatch.detect").joinpath("base.sql").read_text(encoding="utf-8"),
        Path(__file__).read_text(encoding="utf-8"),
        _contract_text(),
        duckdb.__version__,
    ):
        h.update(part.encode() + b"\0")
    ref = Path(rules_dir) / "reference" if rules_dir else None
    for f in sorted(ref.glob("*.csv")) if ref and ref.is_dir() else []:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def _to_json(needs: dict[str, RuleNeeds]) -> str:
    return json.dumps(
        {
            k: {
                "columns": v.columns,
                "references": v.references,
                "requires": [list(r) if isinstance(r, tuple) else r for r in v.requires],
            }
            for k, v in needs.items()
        }
    )


def _from_json(text: str) -> dict[str, RuleNeeds]:
    return {
        k: RuleNeeds(
            k,
            {t: tuple(c) for t, c in v["columns"].items()},
            tuple(v["references"]),
            tuple(tuple(r) if isinstance(r, list) else r for r in v["requires"]),
        )
        for k, v in json.loads(text).items()
    }


def derive_stored(
    con: duckdb.DuckDBPyConnection, specs: list[RuleSpec], rules_dir: str | Path | None = None
) -> dict[str, RuleNeeds]:
    """:func:`derive_cached`, also remembered in the warehouse ``con`` (``rule_needs_cache``)
    under :func:`derivation_key`: a night in a new process reads the needs its rules, building
    blocks, references and contract were last derived to instead of probing every column
    (seconds). Any change to those inputs changes the key, and the needs are derived again."""
    key = derivation_key(specs, rules_dir)
    con.execute(NEEDS_DDL)
    row = con.execute(
        "SELECT needs::VARCHAR FROM rule_needs_cache WHERE key = ? LIMIT 1", [key]
    ).fetchone()
    if row:
        return _from_json(row[0])
    out = derive_cached(specs, rules_dir)
    con.execute("DELETE FROM rule_needs_cache")  # only the current key is ever read
    con.execute("INSERT INTO rule_needs_cache VALUES (?, ?)", [key, _to_json(out)])
    return out


# ---------------------------------------------------------------- needs against a mapping set


@dataclass
class RuleCheck:
    """One rule against a mapping set (``validate``) or a warehouse (``detect``): ``ready`` /
    ``blind`` (a column it reads is not provided) / ``skipped`` (a source it needs is absent)."""

    rule_id: str
    status: str = "ready"
    reasons: list[str] = field(default_factory=list)

    def line(self) -> str:
        head = f"{self.rule_id:<28} {self.status}"
        return head + ("".join(f"\n    {r}" for r in self.reasons) if self.reasons else "")


def provided_columns(spec: Any) -> set[str]:
    """Columns of ``r_<source>`` a source mapping provides: its fields' outputs, one ``R_pid``
    per person role (and ``person_pid`` for a role named after the source, as identity names the
    cadre roster's), lineage."""
    cols = {c for c, _ in spec.columns()} | set(LINEAGE)
    for p in spec.persons:
        cols.add(f"{p.role}_pid")
        if p.role == spec.id:
            cols.add("person_pid")
    return cols


def _key_line(path: Path, key: str) -> int:
    try:
        for i, ln in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if ln.startswith(f"{key}:"):
                return i
    except OSError:
        pass
    return 1


def _fix(source: str, column: str, spec: Any) -> str:
    path = Path(spec.path)
    if column.endswith("_pid"):
        role = column[: -len("_pid")]
        have = ", ".join(p.role for p in spec.persons) or "none"
        return (
            f"{path}:{_key_line(path, 'persons')}: no person role `{role}` (roles: {have}). "
            f"Fix: add `- {{role: {role}, name: {role}_name, id: {role}_id}}` under persons: "
            "(or rename the role that holds this person"
            + (f"; a role named `{source}` also counts)" if role == "person" else ")")
        )
    return (
        f"{path}:{_key_line(path, 'fields')}: field `{column}` is not mapped. Fix: add "
        f"`{column}: {{column: <header>, ...}}` under fields:, or a constant "
        f"`{column}: {{value: ...}}` when the export has no such column"
    )


def check_mappings(
    needs: dict[str, RuleNeeds],
    specs: list[Any],
    rules_dir: str | Path | None = None,
) -> list[RuleCheck]:
    """Every rule's needs against the source mappings ``specs`` (``crossmatch validate``)."""
    by_id = {s.id: s for s in specs}
    out = []
    for rid, nd in sorted(needs.items()):
        chk = RuleCheck(rid)
        for req in nd.requires:
            group = req if isinstance(req, tuple) else (req,)
            if not any(s in by_id for s in group):
                names = " / ".join(f"'{s}'" for s in group)
                chk.status = "skipped"
                chk.reasons.append(
                    f"source {names} has no mapping file. Fix: add sources/{group[0]}.yaml "
                    "mapping the department's export"
                )
        if rules_dir is not None:
            for ref in nd.references:
                f = Path(rules_dir) / "reference" / f"{ref[4:]}.csv"
                if not f.is_file():
                    chk.status = "skipped"
                    chk.reasons.append(f"{f}: reference table missing. Fix: create it")
        if chk.status == "ready":
            for src, cols in sorted(nd.source_columns().items()):
                spec = by_id.get(src)
                if spec is None:
                    continue  # an absent alternative of an any-group
                have = provided_columns(spec)
                for c in cols:
                    if c not in have:
                        chk.status = "blind"
                        chk.reasons.append(f"reads r_{src}.{c}: {_fix(src, c, spec)}")
        out.append(chk)
    return out
