"""Which rules can run per partition, derived from each rule's SQL.

A partition (:mod:`crossmatch.scale.partition`) holds whole *linkage groups*: the connected
components of persons joined by an assistance case (``case_no``), a registered household
(``household_no``), an enterprise (``credit_code``) or a bank account (``account``), with every row
that names one of them. A rule is **local** (exact per partition) when every hit it can produce is
built from rows of one linkage group, which holds when the rule (with the building blocks of
``detect/base.sql`` it reads, followed transitively) only ever

* relates rows by an equality on a person key (``*_pid``, ``person_id``), a linkage-group key or
  lineage (``_file``/``_row``), or compares values (period, item, class ...) next to such a key;
* groups or windows by a set of columns that holds a person or linkage-group key;
* is a plain ``sql`` rule (the enrichment kinds test each unit against the whole population).

Everything else needs the **cross step** (one run over the whole warehouse), with the reason:
reading ``kin_relative`` (relatives homed in another partition), an equality on a column that is
none of the above (a village code, a work unit, an ID number, a name: rows of other partitions),
or a whole-population statistic. The column classes are the data contract's, declared below; a
column of a new rule that is in none of them makes the rule cross (the safe side).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import duckdb

from crossmatch.detect import needs as rule_needs
from crossmatch.detect import schema
from crossmatch.spec.rules import RuleSpec

#: Keys the linkage groups are built on (partition.GROUP_EDGES): equal values are in one group.
GROUP_KEYS = frozenset(
    {"case_no", "household_no", "credit_code", "supplier_credit_code", "account", "acct"}
)
#: Lineage: a row's own identity (evidence rows, identity links).
LINEAGE_KEYS = frozenset({"_file", "_row", "_source", "file", "row", "source", "c_file", "c_row"})
#: Values compared beside a person or group key (never an entity shared across persons).
VALUE_COLUMNS = frozenset(
    {
        "period",
        "pm_period",
        "month_start",
        "month_end",
        "year",
        "item",
        "class",
        "item_class",
        "case_class",
        "parent",
        "assistance_type",
        "subsidy",
        "persons",
        "band",
        "top_band",
        "region_code",
        "pm_case",
        "contract_no",
        "role",
    }
)


def _replicated_columns() -> frozenset[str]:
    """Columns of the sources that name no person (standards, contracts): every partition holds
    all their rows, so relating their own rows (a window over the standards) stays local."""
    return frozenset(
        c
        for src in schema.sources()
        if not schema.roles(src)
        for c, _t in schema.resolved_columns(src)
    )


REPLICATED_COLUMNS = _replicated_columns()
#: Tables whose rows relate a person to *another* person anywhere in the region.
LINK_TABLES = {
    "kin_relative": "reads kin_relative: relatives homed in another partition",
    "kin_edge": "reads kin_edge: relatives homed in another partition",
}
#: Rule kinds that run per partition (the others compute statistics over every unit).
LOCAL_KINDS = frozenset({"sql"})


def is_person_key(col: str) -> bool:
    return col.endswith("pid") or col == "person_id"


def _anchor(col: str) -> bool:
    return is_person_key(col) or col in GROUP_KEYS or col in LINEAGE_KEYS


@dataclass
class Locality:
    """Whether one rule runs per partition (``local``) or in the cross step, and why."""

    rule_id: str
    local: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return "partition" if self.local else "cross"


def _columns(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        if node.get("class") == "COLUMN_REF":
            out.add(str(node["column_names"][-1]))
            return
        if node.get("class") == "SUBQUERY":  # its own comparisons are walked separately
            return
        for v in node.values():
            _columns(v, out)
    elif isinstance(node, list):
        for v in node:
            _columns(v, out)


def _conjuncts(node: Any) -> list[Any]:
    if isinstance(node, dict) and node.get("type") == "CONJUNCTION_AND":
        return [c for ch in node.get("children", []) for c in _conjuncts(ch)]
    return [node]


def _equalities(cond: Any) -> list[tuple[set[str], set[str]]]:
    """Column sets on each side of every equality conjunct of a condition (column = column)."""
    out = []
    for c in _conjuncts(cond):
        if (
            isinstance(c, dict)
            and c.get("class") == "COMPARISON"
            and c.get("type")
            in (
                "COMPARE_EQUAL",
                "COMPARE_NOT_DISTINCT_FROM",
            )
        ):
            left: set[str] = set()
            right: set[str] = set()
            _columns(c.get("left"), left)
            _columns(c.get("right"), right)
            if left and right:
                out.append((left, right))
    return out


def _check_keys(keys: set[str], what: str, problems: list[str]) -> None:
    """A relation of rows on ``keys``: fine when one key anchors it (person / group / lineage),
    else every key must be a plain value or a column of a replicated source."""
    if any(_anchor(k) for k in keys):
        return
    odd = sorted(k for k in keys if k not in VALUE_COLUMNS and k not in REPLICATED_COLUMNS)
    if odd:
        problems.append(
            f"{what} on {', '.join(odd)} (not a person or linkage-group key): rows of other "
            "partitions"
        )


def _walk(node: Any, problems: list[str]) -> None:
    if isinstance(node, dict):
        if node.get("type") == "JOIN":
            keys = set(node.get("using_columns") or [])
            eqs = _equalities(node.get("condition"))
            for left, right in eqs:
                keys |= left | right
            if keys:
                _check_keys(keys, "joins", problems)
        if node.get("type") == "SELECT_NODE":
            where = node.get("where_clause")
            eqs = _equalities(where) if where else []
            # correlated subqueries / comma joins relate rows in WHERE: each equality on its own
            if eqs and not any(_anchor(k) for lr in eqs for side in lr for k in side):
                _check_keys(
                    {k for lr in eqs for side in lr for k in side}, "relates rows", problems
                )
            groups: set[str] = set()
            _columns(node.get("group_expressions"), groups)
            if groups:
                _check_keys(groups, "groups rows", problems)
        if node.get("class") == "SUBQUERY" and node.get("subquery_type") == "ANY":
            child: set[str] = set()
            _columns(node.get("child"), child)
            if child:
                _check_keys(child, "looks rows up (IN)", problems)
        if node.get("class") == "WINDOW" and node.get("partitions"):
            parts: set[str] = set()
            _columns(node.get("partitions"), parts)
            if parts:
                _check_keys(parts, "windows rows", problems)
        for v in node.values():
            _walk(v, problems)
    elif isinstance(node, list):
        for v in node:
            _walk(v, problems)


def _tree(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    tree = json.loads(row[0]) if row else {"error": True}
    if tree.get("error"):
        raise ValueError(f"cannot parse: {tree.get('error_message', '')}")
    return tree.get("statements", [])


def classify(
    specs: list[RuleSpec], needs: dict[str, rule_needs.RuleNeeds] | None = None
) -> dict[str, Locality]:
    """Per rule: local (runs per partition, exact) or cross (with the reasons), from its SQL and
    the building blocks it reads (module docstring)."""
    needs = needs if needs is not None else rule_needs.derive_cached(specs)
    base = {name: body for _kind, name, body in rule_needs.base_statements()}
    out: dict[str, Locality] = {}
    con = duckdb.connect()
    try:
        for spec in specs:
            problems: list[str] = []
            if spec.kind not in LOCAL_KINDS:
                problems.append(
                    f"kind {spec.kind}: a statistic over every unit of the whole population"
                )
            for t in sorted(needs[spec.id].columns) if spec.id in needs else ():
                if t in LINK_TABLES:
                    problems.append(LINK_TABLES[t])
            try:
                sql = spec.render_sql()
                todo = rule_needs.tables_read(con, sql, set(base))
                seen: set[str] = set()
                _walk(_tree(con, sql), problems)
                while todo:
                    b = todo.pop()
                    if b in seen:
                        continue
                    seen.add(b)
                    todo |= rule_needs.tables_read(con, base[b], set(base))
                    _walk(_tree(con, base[b]), problems)
            except (ValueError, KeyError, duckdb.Error) as exc:
                problems.append(f"SQL not analysed ({exc}): cross to be safe")
            uniq = list(dict.fromkeys(problems))
            out[spec.id] = Locality(spec.id, not uniq, uniq)
    finally:
        con.close()
    return out
