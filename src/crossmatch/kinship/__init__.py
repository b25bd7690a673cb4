"""Kinship graph between resolved persons (docs/data-contract.md section 6).

``build(con)`` derives, from every relation the registry and marriage records state,

* ``kin_edge``: one row per *direct* relation that a source states or implies, in both directions:
  household registry (户籍: everybody's relation to the head, so head<->member directly and
  member<->member through the head, e.g. the head's spouse is the mother of the head's child),
  the registry's father / mother ID columns (``r_hukou.father_pid`` / ``mother_pid``: parent and
  child in *any* household, e.g. a daughter married into another village; source
  ``hukou_parent``) and marriage registry (婚姻登记: spouse from the marriage date until a
  divorce of the same couple);
* ``kin_relative``: the relatives within two hops with a human-readable path
  (``儿子 via 户籍 户号 3411220010010023 -> 配偶 via 婚姻登记 2019-05-01 (marriage/...csv:23)``),
  ``hops`` and ``is_close`` (近亲属 by the default scope). Siblings share a parent; in-laws go
  through a spouse (spouses' parents, children's spouses).

Every relation carries a validity interval ``valid_from``..``valid_to`` (NULL = open, both ends
inclusive): a marriage from registration to divorce; an in-law relation (``AFFINAL``) only while
the person it goes through is alive (``person.death_date``), so a son-in-law whose wife died
before a date is no relative then. Blood relations through a person (siblings through a parent)
do not end with them. Rules ask "relative at date d":
``(valid_from IS NULL OR valid_from <= d) AND (valid_to IS NULL OR valid_to >= d)``.

Both are plain tables so rules can join them in SQL; ``relatives(con, pid, scope=..., on=d)`` is
the Python query. Relations are stated from ``a``'s side: *b is a's relation* (``relation_cn``
母亲 means b is a's mother). ``kin_build`` records the input fingerprint of the build;
:func:`is_stale` compares it with :func:`input_fingerprint` of the current inputs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

import duckdb

from crossmatch.contract import KINSHIP_TABLES  # noqa: F401  (re-exported: the tables kinship writes)
from crossmatch.warehouse import create_empty, existing_relations

log = logging.getLogger(__name__)

RELATIONS = (
    "spouse",
    "parent",
    "child",
    "sibling",
    "child_in_law",
    "parent_in_law",
    "grandparent",
    "grandchild",
)
#: 近亲属 by default: spouse, parents, children, siblings, children's spouses. Provinces differ,
#: so every rule that uses it takes the scope as a parameter.
CLOSE_RELATIVES: tuple[str, ...] = ("spouse", "parent", "child", "sibling", "child_in_law")
#: Relations by marriage that go through a linking person (a child for a child-in-law, a
#: spouse for a parent-in-law): they hold only while that person is alive. Blood relations
#: derived through a person (siblings through a shared parent) do not end with that person.
AFFINAL: tuple[str, ...] = ("child_in_law", "parent_in_law")
#: Bumped whenever the derivation changes, so a staleness check rebuilds older tables.
KINSHIP_VERSION = "3"

# How a registry's 与户主关系 wording maps to the member's relation *to the head*. Matched in
# order, first hit wins (so 儿媳 is a child-in-law before 儿 could make it a child).
_HEAD_REL_PATTERNS: list[tuple[str, tuple[str, ...]]] = [
    ("head", ("户主", "本人")),
    ("child_in_law", ("儿媳", "媳", "女婿", "婿")),
    ("parent_in_law", ("公公", "婆婆", "岳父", "岳母", "配偶的父", "配偶的母")),
    ("grandchild", ("孙", "外孙")),
    ("grandparent", ("祖父", "祖母", "爷爷", "奶奶", "外公", "外婆")),
    ("spouse", ("配偶", "妻", "夫", "丈夫", "老伴")),
    ("parent", ("父", "母")),
    ("child", ("子", "女", "儿")),
    ("sibling", ("兄", "弟", "姐", "妹")),
]


def _gb4761(code: int) -> str | None:
    """GB/T 4761 家庭关系代码 (two digits) -> relation to the head (None = other)."""
    if code in (1, 2):
        return "head"
    if 10 <= code <= 12:
        return "spouse"
    if code in (28, 38):  # 女婿, 儿媳
        return "child_in_law"
    if 20 <= code <= 39:
        return "child"
    if 40 <= code <= 44 or code == 49:
        return "grandchild"
    if code in (53, 54, 55, 56):  # 公公, 婆婆, 岳父, 岳母
        return "parent_in_law"
    if 50 <= code <= 59:
        return "parent"
    if 60 <= code <= 64:
        return "grandparent"
    if code in (70, 71, 73, 75, 77, 79):  # not 嫂, 弟媳, 姐夫, 妹夫
        return "sibling"
    return None


def classify_head_relation(text: str | None) -> str | None:
    """Relation of a household member to the head from the registry's wording or its
    GB/T 4761 two-digit code (None = other).

    >>> [classify_head_relation(t) for t in ("长女", "儿媳", "侄子", "姐夫", "22", "38", "孙媳妇")]
    ['child', 'child_in_law', None, None, 'child', 'child_in_law', None]
    """
    if not text:
        return None
    t = text.strip()
    if len(t) == 2 and t.isascii() and t.isdigit():
        return _gb4761(int(t))
    if any(
        x in t
        for x in (
            "孙媳",
            "孙女婿",
            "曾孙",
            "曾祖",
            "侄",
            "甥",
            "堂",
            "表",
            "其他",
            "非亲属",
            "保姆",
            "姐夫",
            "妹夫",
            "嫂",
            "弟媳",
            "弟妹",
        )
    ):
        return None
    for rel, pats in _HEAD_REL_PATTERNS:
        if any(p in t for p in pats):
            return rel
    return None


# Member<->member relations implied by both members' relations to the head: (rel of A to head,
# rel of B to head) -> what B is to A. Ambiguous pairs (child vs grandchild: child or nephew?) are
# left out on purpose; a wrong kinship edge would become a wrong favouritism clue.
_VIA_HEAD: dict[tuple[str, str], str] = {
    ("spouse", "child"): "child",
    ("child", "spouse"): "parent",
    ("spouse", "child_in_law"): "child_in_law",
    ("child_in_law", "spouse"): "parent_in_law",
    ("spouse", "grandchild"): "grandchild",
    ("grandchild", "spouse"): "grandparent",
    ("spouse", "parent"): "parent_in_law",
    ("parent", "spouse"): "child_in_law",
    ("spouse", "parent_in_law"): "parent",
    ("parent_in_law", "spouse"): "child",
    ("child", "child"): "sibling",
    ("child", "parent"): "grandparent",
    ("parent", "child"): "grandchild",
    ("parent", "sibling"): "child",
    ("sibling", "parent"): "parent",
    ("sibling", "sibling"): "sibling",
    ("parent", "parent"): "spouse",
}
# Two-hop compositions for kin_relative: (a->m, m->b) -> a->b.
_COMPOSE: dict[tuple[str, str], str] = {
    ("child", "spouse"): "child_in_law",
    ("spouse", "parent"): "parent_in_law",
    ("parent", "child"): "sibling",
    ("child", "child"): "grandchild",
    ("parent", "parent"): "grandparent",
    ("sibling", "sibling"): "sibling",
}
_INVERSE = {
    "spouse": "spouse",
    "parent": "child",
    "child": "parent",
    "sibling": "sibling",
    "child_in_law": "parent_in_law",
    "parent_in_law": "child_in_law",
    "grandparent": "grandchild",
    "grandchild": "grandparent",
}
_CN = {  # relation -> (male, female, unknown)
    "spouse": ("配偶", "配偶", "配偶"),
    "parent": ("父亲", "母亲", "父母"),
    "child": ("儿子", "女儿", "子女"),
    "sibling": ("兄弟", "姐妹", "兄弟姐妹"),
    "child_in_law": ("女婿", "儿媳", "子女的配偶"),
    "parent_in_law": ("配偶的父亲", "配偶的母亲", "配偶的父母"),
    "grandparent": ("祖父", "祖母", "祖父母"),
    "grandchild": ("孙子", "孙女", "孙子女"),
}
_MALE = "('男', 'M', 'm', '1', 'male', 'MALE')"
_FEMALE = "('女', 'F', 'f', '2', 'female', 'FEMALE')"


def _values(rows: Iterable[tuple]) -> str:
    def lit(v: object) -> str:
        return "'" + str(v).replace("'", "''") + "'"

    return ", ".join("(" + ", ".join(lit(v) for v in r) + ")" for r in rows)


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    return {d[0] for d in con.execute(f'SELECT * FROM "{table}" LIMIT 0').description}


def build(con: duckdb.DuckDBPyConnection, memory_limit: str | None = "2GB") -> dict[str, int]:
    """(Re)build ``kin_edge`` and ``kin_relative`` from ``r_hukou``, ``r_marriage`` and ``person``.

    Missing inputs are treated as empty (a county without a marriage export still gets the
    household graph; a registry without parent-ID columns still gets the relations to the
    head). Records the input fingerprint in ``kin_build`` (see :func:`is_stale`). Returns row
    counts. ``memory_limit``: DuckDB's buffer pool during the build (beyond it the relative
    joins spill to disk), restored afterwards; at 300k persons the build alone peaks at 2.4 GB
    with DuckDB's default and 2.1 GB at 2GB (+0.9 s). None leaves the connection as it is.
    A build that runs out of memory at that limit is retried at 4GB, then at the connection's
    own limit, with a warning naming the limit (a 3M-person county did not fit in 2GB).
    """
    if memory_limit is None:
        return _build(con)
    before = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]  # type: ignore[index]
    limits = [memory_limit, *(x for x in _ESCALATION if x != memory_limit)]
    # the connection's own limit last, only when it is larger than every one tried (a
    # warehouse connection's limit is 2GB: crossmatch.warehouse.MEMORY_LIMIT)
    if _size_bytes(before) > max(_size_bytes(x) for x in limits):
        limits.append(before)
    try:
        for i, limit in enumerate(limits):
            con.execute(f"SET memory_limit = '{limit}'")
            try:
                return _build(con)
            except duckdb.OutOfMemoryException as e:
                if i == len(limits) - 1:
                    raise
                # every step is CREATE OR REPLACE: building again from the start is safe
                log.warning(
                    "kinship: out of memory at memory_limit %s (%s); building again at %s",
                    limit,
                    str(e).splitlines()[0],
                    limits[i + 1],
                )
        raise AssertionError("unreachable")
    finally:
        con.execute(f"SET memory_limit = '{before}'")


#: The larger buffer pools a build that ran out of memory is retried with (then the
#: connection's own limit): a 3M-person registry's household window did not fit in 2GB.
_ESCALATION = ("4GB",)

_UNITS = {"": 1, "b": 1, "bytes": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip


def _size_bytes(text: str) -> float:
    """A DuckDB memory size (``2GB``, ``1.8 GiB``, ``953.6 MiB``) in bytes; unknown: 0."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        return 0.0
    return float(m.group(1)) * _UNITS[m.group(2).lower()]


def _build(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    have = existing_relations(con)
    for t in ("r_hukou", "r_marriage", "person"):
        if t not in have:
            log.warning("kinship: %s missing, treated as empty", t)
            create_empty(con, t)
    fingerprint = input_fingerprint(con)
    _lookup_tables(con)
    _household_members(con)
    _household_statements(con)
    _registry_parents(con)
    _edges(con)
    _relatives(con)
    n_edge = _count(con, "kin_edge")
    n_rel = _count(con, "kin_relative")
    con.execute(
        "CREATE OR REPLACE TABLE kin_build (built_at TIMESTAMP, version VARCHAR, "
        "fingerprint VARCHAR, edges BIGINT, relatives BIGINT)"
    )
    con.execute(
        "INSERT INTO kin_build VALUES (now(), ?, ?, ?, ?)",
        [KINSHIP_VERSION, fingerprint, n_edge, n_rel],
    )
    log.info("kinship: %d edges, %d relative pairs", n_edge, n_rel)
    return {"kin_edge": n_edge, "kin_relative": n_rel}


def _lookup_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The small lookup tables the SQL joins: head-relation texts classified, relations
    via the head, compositions, Chinese names, inverses."""
    heads = con.execute(
        "SELECT DISTINCT relation_to_head FROM r_hukou WHERE relation_to_head IS NOT NULL"
    ).fetchall()
    mapping = [(h[0], classify_head_relation(h[0]) or "other") for h in heads]
    con.execute("CREATE OR REPLACE TEMP TABLE _kin_headrel (text VARCHAR, rel VARCHAR)")
    if mapping:
        con.execute(f"INSERT INTO _kin_headrel VALUES {_values(mapping)}")
    con.execute("CREATE OR REPLACE TEMP TABLE _kin_via (ra VARCHAR, rb VARCHAR, rel VARCHAR)")
    con.execute(
        f"INSERT INTO _kin_via VALUES {_values((a, b, r) for (a, b), r in _VIA_HEAD.items())}"
    )
    con.execute("CREATE OR REPLACE TEMP TABLE _kin_comp (r1 VARCHAR, r2 VARCHAR, rel VARCHAR)")
    con.execute(
        f"INSERT INTO _kin_comp VALUES {_values((a, b, r) for (a, b), r in _COMPOSE.items())}"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _kin_cn (rel VARCHAR, m VARCHAR, f VARCHAR, u VARCHAR)"
    )
    con.execute(f"INSERT INTO _kin_cn VALUES {_values((k, *v) for k, v in _CN.items())}")
    con.execute("CREATE OR REPLACE TEMP TABLE _kin_inv (rel VARCHAR, inv VARCHAR)")
    con.execute(f"INSERT INTO _kin_inv VALUES {_values(_INVERSE.items())}")


def _household_members(con: duckdb.DuckDBPyConnection) -> None:
    """``_kin_death`` (when each person died) and ``_kin_member`` / ``_kin_inlaw``: the members
    of single-head households with relation and sex, and unambiguous child <-> child-in-law
    pairs."""
    # when each person died (the end of every relation that goes *through* them)
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _kin_death AS
        SELECT person_id AS pid, min(death_date) AS died FROM person
        WHERE death_date IS NOT NULL GROUP BY person_id
        """
    )

    # Members of households with exactly one head, with their relation to the head and sex,
    # materialised once (every pairing below reads it several times).
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _kin_member AS
        WITH first_row AS (  -- a person listed twice in one household: the first row
            -- (an aggregate, not a window: DuckDB spills it, a 3M registry's window did not fit)
            SELECT h.household_no, h.person_pid AS pid,
                   arg_min({{'rel': coalesce(m.rel, 'other'), 'file': h._file, 'row': h._row}},
                           (h._row, h._file)) AS r
            FROM r_hukou h LEFT JOIN _kin_headrel m ON m.text = h.relation_to_head
            WHERE h.person_pid IS NOT NULL AND h.household_no IS NOT NULL AND h._dup_of IS NULL
            GROUP BY h.household_no, h.person_pid
        ),
        m AS (
            SELECT household_no, pid, r.rel AS rel, r.file AS file, r.row AS row FROM first_row
        ),
        hh AS (
            SELECT household_no FROM m GROUP BY household_no
            HAVING count(*) FILTER (WHERE rel = 'head') = 1
        )
        SELECT m.*, CASE WHEN p.sex IN {_MALE} THEN 'm' WHEN p.sex IN {_FEMALE} THEN 'f' END AS sx
        FROM m SEMI JOIN hh USING (household_no)
        LEFT JOIN (SELECT person_id, min(sex) AS sex FROM person GROUP BY person_id) p
          ON p.person_id = m.pid
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _kin_inlaw AS  -- child <-> child-in-law, when unambiguous
        WITH cnt AS (
            SELECT household_no,
                   count(*) FILTER (WHERE rel = 'child_in_law') AS inlaws,
                   count(*) FILTER (WHERE rel = 'child' AND sx = 'm') AS sons,
                   count(*) FILTER (WHERE rel = 'child' AND sx = 'f') AS daughters
            FROM _kin_member GROUP BY household_no
        )
        SELECT c.household_no, c.pid AS a, l.pid AS b
        FROM _kin_member c
        JOIN _kin_member l ON l.household_no = c.household_no
        JOIN cnt n ON n.household_no = c.household_no
        WHERE c.rel = 'child' AND l.rel = 'child_in_law' AND n.inlaws = 1
          AND c.sx IS NOT NULL AND l.sx IS NOT NULL AND c.sx <> l.sx
          AND (CASE c.sx WHEN 'm' THEN n.sons ELSE n.daughters END) = 1
        """
    )


def _household_statements(con: duckdb.DuckDBPyConnection) -> None:
    """``_kin_raw``: the pairs a household states (head <-> member, member <-> member through
    the head, child <-> child-in-law)."""
    # link_pid: the person an in-law relation goes through (the head for the head's spouse and
    # the head's parents; the identified child for a child-in-law): it holds while they live
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _kin_raw AS
        WITH sexed AS (SELECT * FROM _kin_member), inlaw_pair AS (SELECT * FROM _kin_inlaw)
        -- head -> member: b is a's <rel>
        SELECT h.pid AS a_pid, x.pid AS b_pid, x.rel AS relation, 'hukou' AS source,
               x.household_no AS evidence, x.file, x.row,
               CASE WHEN x.rel = 'child_in_law' THEN il.a END AS link_pid
        FROM sexed h JOIN sexed x ON x.household_no = h.household_no AND x.pid <> h.pid
        LEFT JOIN inlaw_pair il ON il.household_no = x.household_no AND il.b = x.pid
        WHERE h.rel = 'head' AND x.rel NOT IN ('head', 'other')
        UNION ALL  -- member -> head
        SELECT x.pid, h.pid, i.inv, 'hukou', x.household_no, x.file, x.row,
               CASE WHEN x.rel = 'child_in_law' THEN il.a END
        FROM sexed h JOIN sexed x ON x.household_no = h.household_no AND x.pid <> h.pid
        JOIN _kin_inv i ON i.rel = x.rel
        LEFT JOIN inlaw_pair il ON il.household_no = x.household_no AND il.b = x.pid
        WHERE h.rel = 'head'
        UNION ALL  -- member <-> member through the head
        SELECT a.pid, b.pid, v.rel, 'hukou', a.household_no, b.file, b.row,
               CASE WHEN (a.rel, b.rel) IN (('spouse', 'parent'), ('parent', 'spouse'))
                    THEN h.pid
                    WHEN v.rel IN ('child_in_law', 'parent_in_law') THEN il.a END
        FROM sexed a JOIN sexed b ON b.household_no = a.household_no AND b.pid <> a.pid
        JOIN _kin_via v ON v.ra = a.rel AND v.rb = b.rel
        JOIN sexed h ON h.household_no = a.household_no AND h.rel = 'head'
        LEFT JOIN inlaw_pair il ON il.household_no = a.household_no
         AND il.b = CASE v.rel WHEN 'child_in_law' THEN b.pid ELSE a.pid END
        UNION ALL
        SELECT a, b, 'spouse', 'hukou', household_no, NULL, NULL, NULL FROM inlaw_pair
        UNION ALL
        SELECT b, a, 'spouse', 'hukou', household_no, NULL, NULL, NULL FROM inlaw_pair
        """
    )


def _registry_parents(con: duckdb.DuckDBPyConnection) -> None:
    """``_kin_parent``: the registry's father / mother ID columns, where the export has them."""
    hcols = _columns(con, "r_hukou")
    father = "h.father_pid" if "father_pid" in hcols else "NULL::VARCHAR"
    mother = "h.mother_pid" if "mother_pid" in hcols else "NULL::VARCHAR"
    # the registry's father / mother ID columns: a parent in any household
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _kin_parent AS
        SELECT DISTINCT h.person_pid AS child, p.parent, p.col, h._file AS file, h._row AS row
        FROM r_hukou h,
             LATERAL (SELECT {father} AS parent, '父亲公民身份号码' AS col
                      UNION ALL SELECT {mother}, '母亲公民身份号码') p
        WHERE h.person_pid IS NOT NULL AND h._dup_of IS NULL AND p.parent IS NOT NULL
          AND p.parent <> h.person_pid
        """
    )


def _edges(con: duckdb.DuckDBPyConnection) -> None:
    """``kin_edge``: every statement of a relation (household, registry parent columns,
    marriage spells ended by a divorce), with its validity and evidence."""
    con.execute(
        f"""
        CREATE OR REPLACE TABLE kin_edge AS
        WITH mar AS (
            SELECT husband_pid AS h, wife_pid AS w, reg_date, _file AS file, _row AS row
            FROM r_marriage
            WHERE (kind IN ('marriage', 'remarriage') OR contains(kind, '结婚')
                   OR contains(kind, '复婚'))
              AND NOT contains(kind, '离婚') AND husband_pid IS NOT NULL
              AND wife_pid IS NOT NULL AND _dup_of IS NULL
        ),
        div AS (
            SELECT husband_pid AS h, wife_pid AS w, reg_date
            FROM r_marriage WHERE (kind = 'divorce' OR contains(kind, '离婚')) AND _dup_of IS NULL
        ),
        spells AS (
            SELECT m.*, (SELECT min(d.reg_date) FROM div d
                         WHERE d.h = m.h AND d.w = m.w AND d.reg_date >= m.reg_date) AS ended
            FROM mar m
        ),
        raw AS (
            SELECT r.a_pid, r.b_pid, r.relation, r.source, r.evidence, NULL::DATE AS valid_from,
                   d.died AS valid_to, r.file, r.row, r.link_pid
            FROM _kin_raw r LEFT JOIN _kin_death d ON d.pid = r.link_pid
            UNION ALL
            SELECT child, parent, 'parent', 'hukou_parent', col || ' ' || file || ':' || row,
                   NULL, NULL, file, row, NULL FROM _kin_parent
            UNION ALL
            SELECT parent, child, 'child', 'hukou_parent', col || ' ' || file || ':' || row,
                   NULL, NULL, file, row, NULL FROM _kin_parent
            UNION ALL
            SELECT h, w, 'spouse', 'marriage', file || ':' || row, reg_date, ended, file, row,
                   NULL
            FROM spells
            UNION ALL
            SELECT w, h, 'spouse', 'marriage', file || ':' || row, reg_date, ended, file, row,
                   NULL
            FROM spells
        )
        -- no dedupe needed: within a household each ordered pair is stated once, and two
        -- statements of a pair (two households, or registry and marriage) are two edges
        SELECT r.a_pid, r.b_pid, r.relation,
               CASE WHEN p.sex IN {_MALE} THEN c.m WHEN p.sex IN {_FEMALE} THEN c.f
                    ELSE c.u END AS relation_cn,
               r.source, r.evidence, r.valid_from, r.valid_to, r.file, r.row, r.link_pid
        FROM raw r JOIN _kin_cn c ON c.rel = r.relation
        LEFT JOIN (SELECT person_id, min(sex) AS sex FROM person GROUP BY person_id) p
          ON p.person_id = r.b_pid
        """
    )


def _relatives(con: duckdb.DuckDBPyConnection) -> None:
    """``kin_relative``: one- and two-statement relatives with a readable path."""
    close = ", ".join(f"'{r}'" for r in CLOSE_RELATIVES)
    affinal = ", ".join(f"'{r}'" for r in AFFINAL)
    con.execute(
        f"""
        CREATE OR REPLACE TABLE kin_relative AS
        WITH e AS (
            SELECT *, relation_cn || ' via ' ||
                   CASE source WHEN 'hukou' THEN '户籍 户号 ' || evidence
                   WHEN 'hukou_parent' THEN '户籍 ' || evidence
                   ELSE '婚姻登记 ' || coalesce(CAST(valid_from AS VARCHAR), '?') || ' ('
                        || evidence || ')' END
                   || CASE WHEN valid_to IS NOT NULL THEN ' [至 ' || valid_to || ']' ELSE '' END
                   AS step
            FROM kin_edge
            WHERE valid_to IS NULL OR valid_to >= coalesce(valid_from, DATE '1900-01-01')
        ),
        direct AS (  -- every statement is kept: a pair proven twice shows both paths
            SELECT a_pid, b_pid, relation, relation_cn, step AS path, valid_from, valid_to
            FROM e
        ),
        two AS (  -- relations only two statements prove (e.g. son's wife from the marriages)
            SELECT e1.a_pid, e2.b_pid, c.rel AS relation,
                   CASE WHEN p.sex IN {_MALE} THEN n.m WHEN p.sex IN {_FEMALE} THEN n.f
                        ELSE n.u END AS relation_cn,
                   e1.step || ' -> ' || e2.step
                   || CASE WHEN c.rel IN ({affinal}) AND d.died IS NOT NULL
                           THEN ' [经由者卒于 ' || d.died || ']'
                           ELSE '' END AS path,
                   greatest(e1.valid_from, e2.valid_from) AS valid_from,
                   -- an in-law relation goes through a person: it ends when they die
                   least(e1.valid_to, e2.valid_to,
                         CASE WHEN c.rel IN ({affinal}) THEN d.died END) AS valid_to
            FROM e e1 JOIN e e2 ON e2.a_pid = e1.b_pid AND e2.b_pid <> e1.a_pid
            JOIN _kin_comp c ON c.r1 = e1.relation AND c.r2 = e2.relation
            JOIN _kin_cn n ON n.rel = c.rel
            LEFT JOIN (SELECT person_id, min(sex) AS sex FROM person GROUP BY person_id) p
              ON p.person_id = e2.b_pid
            LEFT JOIN _kin_death d ON d.pid = e1.b_pid
            -- two hops inside one household add nothing: the head's relations already give
            -- every unambiguous pair there (and must not re-derive the ambiguous ones)
            WHERE NOT (e1.source = 'hukou' AND e2.source = 'hukou' AND e1.evidence = e2.evidence)
              AND NOT EXISTS (SELECT 1 FROM e d WHERE d.a_pid = e1.a_pid AND d.b_pid = e2.b_pid
                                                  AND d.relation = c.rel
                                                  AND d.valid_from IS NULL AND d.valid_to IS NULL)
        ),
        two_u AS (  -- one row per pair, relation and validity interval (the first path)
            SELECT a_pid, b_pid, relation, arg_min(relation_cn, path) AS relation_cn,
                   min(path) AS path, valid_from, valid_to
            FROM two
            WHERE valid_to IS NULL OR valid_to >= coalesce(valid_from, DATE '1900-01-01')
            GROUP BY a_pid, b_pid, relation, valid_from, valid_to
        )
        SELECT a_pid AS person_pid, b_pid AS relative_pid, relation, relation_cn, path,
               hops, relation IN ({close}) AS is_close, valid_from, valid_to
        FROM (SELECT *, 1 AS hops FROM direct UNION ALL SELECT *, 2 AS hops FROM two_u)
        """
    )


#: What a build depends on, per input: the columns hashed (order-independent) for
#: :func:`input_fingerprint`. A column absent from an input is left out.
_INPUTS: dict[str, tuple[str, ...]] = {
    "r_hukou": ("household_no", "person_pid", "relation_to_head", "father_pid", "mother_pid",
                "_file", "_row", "_dup_of"),
    "r_marriage": ("kind", "husband_pid", "wife_pid", "reg_date", "_file", "_row", "_dup_of"),
    "person": ("person_id", "sex", "death_date"),
}  # fmt: skip


def input_fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    """A digest of everything kinship is computed from (the inputs' rows and this code's
    version). Equal fingerprints mean a rebuild would give the same tables; a staleness check
    compares it with the one recorded in ``kin_build`` (:func:`is_stale`)."""
    have = existing_relations(con)
    parts = [KINSHIP_VERSION]
    for table, cols in _INPUTS.items():
        if table not in have:
            parts.append(f"{table}:absent")
            continue
        present = [c for c in cols if c in _columns(con, table)]
        expr = "hash(" + ", ".join(f'"{c}"' for c in present) + ")" if present else "0"
        row = con.execute(f'SELECT count(*), bit_xor({expr}) FROM "{table}"').fetchone()
        parts.append(f"{table}:{present}:{row[0] if row else 0}:{row[1] if row else None}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def built_fingerprint(con: duckdb.DuckDBPyConnection) -> str | None:
    """The input fingerprint the current kinship tables were built from (None: never built)."""
    if "kin_build" not in existing_relations(con):
        return None
    row = con.execute("SELECT fingerprint FROM kin_build ORDER BY built_at DESC LIMIT 1").fetchone()
    return row[0] if row else None


def is_stale(con: duckdb.DuckDBPyConnection) -> bool:
    """True when the kinship tables are missing or were built from other inputs than now."""
    return built_fingerprint(con) != input_fingerprint(con)


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class Relative:
    """One relative of a person, with the path that proves the relation and when it holds."""

    pid: str
    name: str | None
    relation: str
    relation_cn: str
    path: str
    hops: int
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None


def relatives(
    con: duckdb.DuckDBPyConnection,
    pid: str,
    scope: Iterable[str] = CLOSE_RELATIVES,
    on: dt.date | None = None,
) -> list[Relative]:
    """Relatives of ``pid`` whose relation is in ``scope`` (default 近亲属), with their paths;
    ``on``: only relations that hold on that date (a marriage not yet dissolved, an in-law
    whose linking person is still alive).

    The same in SQL: ``SELECT * FROM kin_relative WHERE person_pid = ? AND relation IN (...)
    AND (valid_from IS NULL OR valid_from <= d) AND (valid_to IS NULL OR valid_to >= d)``.
    """
    scope = list(scope)
    unknown = sorted(set(scope) - set(RELATIONS))
    if unknown:
        raise ValueError(f"unknown relation(s) {unknown}; use some of {list(RELATIONS)}")
    rows = con.execute(
        """
        SELECT k.relative_pid, p.name, k.relation, k.relation_cn, k.path, k.hops,
               k.valid_from, k.valid_to
        FROM kin_relative k
        LEFT JOIN (SELECT person_id, min(name) AS name FROM person GROUP BY person_id) p
          ON p.person_id = k.relative_pid
        WHERE k.person_pid = ? AND list_contains(?, k.relation)
          AND (?::DATE IS NULL OR ((k.valid_from IS NULL OR k.valid_from <= ?::DATE)
                                   AND (k.valid_to IS NULL OR k.valid_to >= ?::DATE)))
        ORDER BY k.hops, k.relation, k.relative_pid, k.path
        """,
        [pid, scope, on, on, on],
    ).fetchall()
    return [Relative(*r) for r in rows]
