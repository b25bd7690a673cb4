"""Rules whose inputs did not change copy their previous hits instead of running again.

A rule's hits are a function of its rule file (SQL, parameters, version), the shared building
blocks (``detect/base.sql``, the rule kinds' code), the reference tables, the contract tables it
reads (derived from its SQL, :mod:`crossmatch.detect.needs`: ``r_<source>``, ``person``,
``kin_relative`` ...) and the identity links the hit evidence quotes (``identity_link`` rows of
the sources it reads). :func:`rule_fingerprints` hashes all of these, the tables by *content*
(every column of every row, as DuckDB's ``hash`` of the row: count, xor and sum), so a table
rebuilt with the same rows (identity re-run on unchanged files, kinship rebuilt from the same
inputs) keeps its fingerprint, and any change to any row or column changes it.

``detect`` records each rule's fingerprint in ``rule_input`` with the run; the next run copies
the hits of the latest finished run where the rule had the same fingerprint and ran (``ok`` or
``blind``), under the new run id. Status is always assessed afresh (a source can be stale
tonight with the same data). ``crossmatch detect --full`` runs every rule. Rules are
deterministic (evidence lists sorted, one hit per subject and period chosen by a total order),
so a copied hit equals the one a run would compute: the tests compare both.

**What of a link a rule sees.** Rules read ``identity_link`` through ``rule_runner._LinksOf``:
the links of their sources, with ``probability`` rounded to :data:`LINK_DECIMALS` (2) decimals,
the value an analyst reads in the evidence. Every use of a probability by a rule goes through
that view: ``min_link_probability`` (``link_trusted`` in ``base.sql``) is compared with the
rounded value, rule evidence that quotes ``link_probability`` quotes it, and ``_store`` adds the
rows' ``identity_links`` to the evidence from the same view. A rule's hits are therefore a
function of (file, row, role, person_id, method, rounded probability) of each link
(:data:`LINK_SEEN`), and that is what the link digests hash: a link that resolve re-decides
with a posterior moving in the fourth decimal (the county-measured weights move with a few
new rows) leaves every result, and so every digest, unchanged; a move that changes the two
decimals changes the digest, whether or not it crosses a threshold (a rule on the other side
of ``min_link_probability`` sees another value, and so does the evidence).

**Links a rule reads, links it only quotes.** ``_store`` adds to every hit's evidence the
``identity_links`` of its evidence rows (looked up in the links of the rule's sources at store
time); a copy quotes them again from tonight's links by the same SQL (:data:`REQUOTE`), so a
copied hit equals what ``_store`` would store tonight for the same rule output. What the
fingerprints must hold is then only what the rule's SQL itself reads of ``identity_link``: for
the 11 of 16 rules whose SQL does not read it (:func:`reads_links`), no link at all; for the
others, the links of the sources their joins can match (:func:`sql_link_sources`: every
reference to ``identity_link`` is joined on ``<link>.source = <t>._source``, so only links of
the sources of ``t``'s rows take part: property_on_dibao reads the property links, not the
assistance links of the households it also reads), else every source it reads. A link
re-decided tonight then costs a rule nothing unless its SQL reads it and its two decimals
moved, and the evidence quotes tonight's value either way.

**Per payment month** (rules declaring ``partition: period``, :data:`spec.rules.PARTITIONS`).
Such a rule promises that its hits of month P are a function of the payment rows of month P
(``paid`` / ``dibao_paid_month`` of period P) and of its other inputs, and that every hit's
period is a payment month. Its fingerprint is then split in two (:func:`period_inputs`):
``rest``, everything above except the payment rows (the shape of ``r_payment`` stays in it),
and one digest per payment month: the content of that month's ``r_payment`` rows (every
column, as above) and, for a rule whose SQL reads the payment links (:func:`sql_link_sources`;
none of the eleven does), of the identity links of those rows as rules see them
(:data:`LINK_SEEN`). When the whole fingerprint changed but
``rest`` equals that of a finished run R where the rule ran (``ok`` / ``blind``), the months
whose digest equals R's keep R's hits, and only the other months are computed, with ``paid``
restricted to them. Why this equals a full
run: a month whose digest is unchanged has the same payment rows and links as in R, and
every other input is the same (``rest``); by the promise its hits are the same function of the
same inputs, i.e. R's hits of that month (R's hits of month P were themselves computed, or
kept by the same argument, from exactly those inputs). A month that changed, or that R did not
have, is computed from its own rows, which by the promise gives the full run's hits of that
month; a month R had and tonight's payments lack has no hits (no payment row of that month).
A wrong promise is caught where it can be at run time: a restricted run that returns a hit
outside the months it was given is discarded and the rule runs on every month
(``rule_runner``); ``tests/incremental/test_period_reuse.py`` checks every declaring rule on
the sample month by month.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from crossmatch import warehouse
from crossmatch.detect import needs as rule_needs
from crossmatch.detect import schema

log = logging.getLogger(__name__)

#: Bumped whenever how hits are computed or stored changes outside the hashed inputs.
REUSE_VERSION = "2"

#: Decimals of ``identity_link.probability`` as rules see it (``rule_runner._LinksOf``): the
#: value ``min_link_probability`` is compared with and hit evidence quotes, what an analyst reads.
LINK_DECIMALS = 2


def link_probability(col: str = "probability") -> str:
    """SQL of a link's probability as rules see it: rounded to :data:`LINK_DECIMALS` decimals."""
    return f"round({col}, {LINK_DECIMALS})"


#: SQL of what a rule can see of one identity link (its hits depend on nothing else of it).
LINK_SEEN = f"file, row, role, person_id, method, {link_probability()}"

RULE_INPUT_DDL = """
CREATE TABLE IF NOT EXISTS rule_input (
    run_id VARCHAR, rule_id VARCHAR, fingerprint VARCHAR, reused_from VARCHAR
)
"""


def _code_digest(rules_dir: str | Path) -> str:
    h = hashlib.sha256(REUSE_VERSION.encode())
    for name in ("base.sql", "rule_kinds.py", "rule_runner.py", "reference.py"):
        h.update(resources.files("crossmatch.detect").joinpath(name).read_bytes())
    ref = Path(rules_dir) / "reference"
    for p in sorted(ref.glob("*.csv")) if ref.is_dir() else []:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def table_fingerprint(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """Content digest of a table or view: row count, xor and sum of the rows' hashes."""
    return table_scan(con, table)[0]


def table_scan(
    con: duckdb.DuckDBPyConnection, table: str, count: list[str] | tuple[str, ...] = ()
) -> tuple[str, dict[str, int]]:
    """(:func:`table_fingerprint`, {"": rows, column: rows where it is not NULL} for the
    columns in ``count``) in one scan of the table (the engine's empty-column check,
    ``rule_runner.empty_columns``, reads the counts instead of scanning again)."""
    extra = "".join(f', count("{c}")' for c in count)
    row = con.execute(
        f'SELECT count(*), bit_xor(hash(t)), sum((hash(t) >> 11)::HUGEINT){extra} FROM "{table}" t'
    ).fetchone()
    cols = con.execute(f'DESCRIBE "{table}"').fetchall()
    shape = ",".join(f"{c[0]}:{c[1]}" for c in cols)
    fp = f"{row[0] if row else 0}:{row[1] if row else 0}:{row[2] if row else 0}:{shape}"
    counts = {"": int(row[0]) if row else 0}
    counts.update({c: int(row[3 + i]) if row else 0 for i, c in enumerate(count)})
    return fp, counts


#: The table whose rows ``partition: period`` rules split by month, its source and period column.
PERIOD_TABLE, PERIOD_SOURCE = "r_payment", "payment"

RULE_PERIOD_DDL = """
CREATE TABLE IF NOT EXISTS rule_period_input (
    run_id VARCHAR, rule_id VARCHAR, rest VARCHAR, period VARCHAR, digest VARCHAR,
    kept_from VARCHAR  -- the run whose hits of this month were copied; NULL: computed
);
ALTER TABLE rule_period_input ADD COLUMN IF NOT EXISTS kept_from VARCHAR;
"""


def _period_groups(
    con: duckdb.DuckDBPyConnection, count: list[str] | tuple[str, ...] = ()
) -> list[tuple]:
    """Per ``r_payment.period``: row count, xor and sum of the rows' hashes (as
    :func:`table_fingerprint`), a digest of the payment identity links of those rows, and the
    rows where each column of ``count`` is not NULL."""
    extra = "".join(f', count(r."_c{i}")' for i in range(len(count)))
    picked = "".join(f', t."{c}" AS "_c{i}"' for i, c in enumerate(count))
    return con.execute(
        f"""
        WITH l AS (
            SELECT file, row, count(*) AS n,
                   bit_xor(hash({LINK_SEEN})) AS x,
                   sum((hash({LINK_SEEN}) >> 11)::HUGEINT) AS s
            FROM identity_link WHERE source = '{PERIOD_SOURCE}' GROUP BY file, row
        ),
        r AS (SELECT t.period AS _p, hash(t) AS h, t._file AS _f, t._row AS _r{picked}
              FROM "{PERIOD_TABLE}" t)
        SELECT r._p, count(*), bit_xor(r.h), sum((r.h >> 11)::HUGEINT),
               sum(coalesce(l.n, 0)), bit_xor(hash(l.x, l.s, r._f, r._r)){extra}
        FROM r LEFT JOIN l ON l.file = r._f AND l.row = r._r
        GROUP BY r._p
        """
    ).fetchall()


def _link_fingerprints(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Per source, a digest of its identity_link rows (what the hit evidence quotes)."""
    if "identity_link" not in schema.existing_relations(con):
        return {}
    return {
        r[0]: f"{r[1]}:{r[2]}:{r[3]}"
        for r in con.execute(
            f"""SELECT source, count(*), bit_xor(h), sum((h >> 11)::HUGEINT) FROM (
                SELECT source, hash({LINK_SEEN}) AS h
                FROM identity_link) GROUP BY source"""
        ).fetchall()
    }


def rule_fingerprints(
    con: duckdb.DuckDBPyConnection,
    specs: list[Any],
    needs: dict[str, rule_needs.RuleNeeds],
    rules_dir: str | Path,
    params: dict[str, dict[str, Any]] | None = None,
) -> dict[str, str]:
    """rule id -> fingerprint of everything its hits are computed from (module docstring).
    Call after the run's preparation (kinship fresh, stand-ins and base tables in place)."""
    return period_inputs(con, specs, needs, rules_dir, params)[0]


def link_sources(nd: rule_needs.RuleNeeds) -> list[str]:
    """The sources whose identity links a rule's hits depend on: the sources it reads. A rule
    that reads ``identity_link`` sees only those sources' links when it runs
    (``rule_runner._LinksOf``), so its fingerprint holds those sources' links (``links``), not
    the whole table: a changed payment file does not re-run a rule on land records."""
    return sorted(nd.sources() | {t[2:] for t in nd.columns if t.startswith("r_")})


def reads_links(nd: rule_needs.RuleNeeds) -> bool:
    """Whether the rule's SQL reads ``identity_link`` itself (a threshold on the probability,
    the link's method in its evidence). A rule that does not sees links only through the
    ``identity_links`` that ``_store`` adds to its evidence, which a copy quotes afresh
    (:data:`REQUOTE`): its fingerprints hold no link (module docstring)."""
    return "identity_link" in nd.columns


def _nodes(node: Any) -> Any:
    """Every dict of a DuckDB parse tree (json_serialize_sql), depth first."""
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _nodes(v)
    elif isinstance(node, list):
        for v in node:
            yield from _nodes(v)


def _conjuncts(cond: Any) -> list[dict]:
    if isinstance(cond, dict) and cond.get("type") == "CONJUNCTION_AND":
        return [c for ch in cond.get("children", []) for c in _conjuncts(ch)]
    return [cond] if isinstance(cond, dict) else []


def _block_sources() -> dict[str, set[str]]:
    """Building block of ``base.sql`` -> the sources of the ``r_*`` tables it reads (through
    other blocks too): the ``_source`` values its rows can carry."""
    out: dict[str, set[str]] = {}
    for kind, name, body in rule_needs.base_statements():
        if kind != "TABLE":
            continue
        used = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", re.sub(r"--[^\n]*", "", body)))
        srcs = {u[2:] for u in used if u.startswith("r_")}
        for u in used & set(out):
            srcs |= out[u]
        out[name] = srcs
    return out


def _join_scope(join: dict) -> dict[str, str]:
    """alias -> table name of the relations of a join tree (what its condition can name); a
    subquery or a table function maps to '' (unknown rows)."""
    out: dict[str, str] = {}

    def walk(t: Any) -> None:
        if not isinstance(t, dict):
            return
        if t.get("type") == "JOIN":
            walk(t.get("left"))
            walk(t.get("right"))
        elif t.get("type") == "BASE_TABLE":
            out[t.get("alias") or t.get("table_name", "")] = t.get("table_name", "")
        elif t.get("alias"):
            out[t["alias"]] = ""

    walk(join)
    return out


def sql_link_sources(con: duckdb.DuckDBPyConnection, sql: str) -> list[str] | None:
    """The sources whose identity links a rule's SQL can read, when every reference to
    ``identity_link`` in it is a join whose condition has the conjunct
    ``<link>.source = <t>._source`` with ``t`` an ``r_<source>`` table or a building block:
    only links of the sources of ``t``'s rows can then match (the other links take no part in
    the result, whatever they are). None when the SQL has a reference not so joined (then all
    the links of the sources it reads count, :func:`link_sources`)."""
    row = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    tree = json.loads(row[0]) if row else {"error": True}
    if tree.get("error"):
        return None
    nodes = list(_nodes(tree.get("statements", [])))
    refs = sum(
        n.get("type") == "BASE_TABLE" and n.get("table_name") == "identity_link" for n in nodes
    )
    blocks = _block_sources()
    found: set[str] = set()
    joined = 0
    for n in nodes:
        if n.get("type") != "JOIN":
            continue
        scope = _join_scope(n)  # alias -> relation, as the join condition sees them
        for side in ("left", "right"):
            t = n.get(side) or {}
            if t.get("type") != "BASE_TABLE" or t.get("table_name") != "identity_link":
                continue
            il = t.get("alias") or "identity_link"
            srcs: set[str] | None = None
            for c in _conjuncts(n.get("condition")):
                if c.get("type") != "COMPARE_EQUAL":
                    continue
                ends = [c.get("left") or {}, c.get("right") or {}]
                names = [e.get("column_names") if e.get("class") == "COLUMN_REF" else None
                         for e in ends]  # fmt: skip
                for a, b in (names, names[::-1]):
                    if a == [il, "source"] and b and len(b) == 2 and b[1] == "_source":
                        tn = scope.get(b[0])
                        if tn is not None and tn.startswith("r_"):
                            srcs = (srcs or set()) | {tn[2:]}
                        elif tn is not None and tn in blocks:
                            srcs = (srcs or set()) | blocks[tn]
                        else:  # a CTE, a subquery: the sources of its rows are not known here
                            return None
            if srcs is None:
                return None
            found |= srcs
            joined += 1
    return sorted(found) if joined == refs else None


def partitioned(spec: Any, nd: rule_needs.RuleNeeds) -> bool:
    """Whether the rule's hits are kept per payment month (``partition: period``, and it reads
    payments)."""
    return getattr(spec, "partition", "") == "period" and PERIOD_TABLE in nd.columns


def period_inputs(
    con: duckdb.DuckDBPyConnection,
    specs: list[Any],
    needs: dict[str, rule_needs.RuleNeeds],
    rules_dir: str | Path,
    params: dict[str, dict[str, Any]] | None = None,
    counts: dict[str, dict[str, int]] | None = None,
) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str | None, str]]]:
    """(fingerprints, rests, months): every rule's whole fingerprint (:func:`rule_fingerprints`);
    for the ``partition: period`` rules the digest of everything but the payment rows (``rest``);
    and per such rule and payment month (``r_payment.period``) the digest of the month's rows,
    with their links for a rule that reads ``identity_link`` (module docstring). ``r_payment``
    is read once: its whole-table fingerprint is combined from the months' (count, xor and sum
    add up). ``counts``: table -> {column: ...} whose non-NULL rows to count in the same scans;
    the entry of each table scanned is replaced by :func:`table_scan`'s counts."""
    code = _code_digest(rules_dir)
    have = schema.existing_relations(con)
    tables = sorted({t for nd in needs.values() for t in nd.columns if t in have})
    split = PERIOD_TABLE in tables and any(partitioned(s, needs[s.id]) for s in specs)
    by_rows: dict[str | None, str] = {}  # month -> its payment rows
    with_links: dict[str | None, str] = {}  # month -> its payment rows and their links
    # identity_link: per source, in ``links`` (the rule runs on its sources' links only)
    want = {t: list(c) for t, c in (counts or {}).items()}
    tfp = {}
    for t in tables:
        if not (split and t == PERIOD_TABLE) and t != "identity_link":
            tfp[t], got = table_scan(con, t, want.get(t, ()))
            if counts is not None and t in want:
                counts[t] = got
    if "identity_link" in tables:
        tfp["identity_link"] = "per source"
    shape = ""
    if split:
        pcols = want.get(PERIOD_TABLE, [])
        groups = _period_groups(con, pcols)
        cols = con.execute(f'DESCRIBE "{PERIOD_TABLE}"').fetchall()
        shape = ",".join(f"{c[0]}:{c[1]}" for c in cols)
        n, x, sm = 0, 0, 0
        nonnull = [0] * len(pcols)
        for p, cnt, xor, tot, ln, lx, *nn in groups:
            n, x, sm = n + cnt, x ^ int(xor or 0), sm + int(tot or 0)
            nonnull = [a + int(b or 0) for a, b in zip(nonnull, nn, strict=True)]
            by_rows[p] = f"{cnt}:{xor}:{tot}"
            with_links[p] = f"{cnt}:{xor}:{tot}:{ln}:{lx}"
        tfp[PERIOD_TABLE] = f"{n}:{x if n else 0}:{sm if n else 0}:{shape}"
        if counts is not None and PERIOD_TABLE in want:
            counts[PERIOD_TABLE] = {"": n, **dict(zip(pcols, nonnull, strict=True))}
    links = _link_fingerprints(con)
    out: dict[str, str] = {}
    rests: dict[str, str] = {}
    months: dict[str, dict[str | None, str]] = {}
    for spec in specs:
        nd = needs[spec.id]
        linked = reads_links(nd)
        # the links its SQL can read (the others it only quotes: quoted afresh on a copy)
        seen = (sql_link_sources(con, spec.render_sql((params or {}).get(spec.id))) if linked
                else []) or []  # fmt: skip
        if linked and not seen:
            seen = link_sources(nd)
        doc = {
            "code": code,
            "rule": Path(spec.path).read_text(encoding="utf-8") if spec.path else spec.sql,
            "version": spec.version,
            "sql": spec.render_sql((params or {}).get(spec.id)),
            "params": (params or {}).get(spec.id),
            "tables": {t: tfp.get(t, "absent") for t in sorted(nd.columns)},
            # links a rule only quotes in its evidence are quoted afresh on a copy (REQUOTE)
            "links": {s: links.get(s, "") for s in seen} if linked else "quoted afresh",
        }
        text = json.dumps(doc, sort_keys=True, default=str)
        out[spec.id] = hashlib.sha256(text.encode()).hexdigest()
        if split and partitioned(spec, nd):
            # everything but the payment rows and their links: those are the months' digests
            doc["tables"] = {**doc["tables"], PERIOD_TABLE: f"per month:{shape}"}
            reads_payment_links = linked and PERIOD_SOURCE in seen
            if reads_payment_links:
                doc["links"] = {**doc["links"], PERIOD_SOURCE: "per month"}
            doc["partition"] = "period"
            rests[spec.id] = hashlib.sha256(
                json.dumps(doc, sort_keys=True, default=str).encode()
            ).hexdigest()
            months[spec.id] = with_links if reads_payment_links else by_rows
    return out, rests, months


def previous_months(
    con: duckdb.DuckDBPyConnection, rule_id: str, rest: str
) -> tuple[str, dict[str | None, str]] | None:
    """(run, its month digests) of the latest finished run where ``rule_id`` ran (``ok`` /
    ``blind``) from the same ``rest`` (everything but the payment rows), else None."""
    con.execute(RULE_PERIOD_DDL)
    row = con.execute(
        """SELECT arg_max(d.run_id, d.finished_at)
        FROM rule_period_input i
        JOIN detect_run d ON d.run_id = i.run_id AND d.status = 'finished'
        JOIN rule_run r ON r.run_id = i.run_id AND r.rule_id = i.rule_id
                       AND r.status IN ('ok', 'blind')
        WHERE i.rule_id = ? AND i.rest = ?""",
        [rule_id, rest],
    ).fetchone()
    if not row or row[0] is None:
        return None
    months = con.execute(
        "SELECT period, digest FROM rule_period_input WHERE run_id = ? AND rule_id = ?",
        [row[0], rule_id],
    ).fetchall()
    return row[0], {p: d for p, d in months}


#: The copied hits (``_copied``) with the ``identity_links`` of their evidence quoted from the
#: links as they are now, exactly as ``rule_runner._store`` quotes them (the same join on the
#: evidence rows, run inside ``_LinksOf`` of the rule's sources, with ``_sorted_evidence``
#: defined). A rule's own evidence never has an ``identity_links`` key (``_store`` adds it), so
#: replacing that key of the stored evidence and sorting as ``_store`` does gives what
#: ``_store`` gives on the same hit. A hit whose links quote the same (the sorted list, as
#: text, equals the stored one) keeps its stored evidence as it is: the merge and sort would
#: give it back unchanged (checked byte for byte on every hit of the sample and of the 300k
#: county), and they are what costs (JSON rewritten per hit).
REQUOTE = """
INSERT INTO _run_hit
WITH h AS (SELECT row_number() OVER () AS hid, * FROM _copied),
r AS (
    SELECT hid, unnest(from_json(json_extract(evidence, '$.rows'),
                                 '[{"file": "VARCHAR", "row": "INTEGER"}]')) AS x
    FROM h
),
l AS (
    SELECT r.hid,
           list(DISTINCT {'file': il.file, 'row': il.row, 'role': il.role,
                          'person_id': il.person_id, 'method': il.method,
                          'probability': il.probability}) AS links
    FROM r JOIN identity_link il ON il.file = r.x.file AND il.row = r.x.row
    GROUP BY r.hid
),
q AS (
    SELECT h.*, to_json(list_sort(CAST(to_json(coalesce(l.links, [])) AS JSON[]))) AS quoted
    FROM h LEFT JOIN l USING (hid)
)
SELECT q.* EXCLUDE (hid, quoted) REPLACE (
    CASE WHEN json_extract(q.evidence, '$.identity_links')::VARCHAR = q.quoted::VARCHAR
         THEN q.evidence
         ELSE _sorted_evidence(json_merge_patch(q.evidence,
                                                to_json({'identity_links': q.quoted})))
    END AS evidence)
FROM q ORDER BY hid
"""


def _stage_copy(con: duckdb.DuckDBPyConnection, select: str, args: list, requote: bool) -> None:
    if not requote:
        con.execute(f"INSERT INTO _run_hit {select}", args)
        return
    con.execute(f"CREATE OR REPLACE TEMP TABLE _copied AS {select}", args)
    con.execute(REQUOTE)
    con.execute("DROP TABLE _copied")


def copy_month_hits(
    con: duckdb.DuckDBPyConnection,
    rule_id: str,
    from_run: str,
    run_id: str,
    months: list[str],
    *,
    requote: bool = False,
) -> None:
    """Stage the hits ``rule_id`` had in ``from_run`` for ``months`` as this run's (with
    ``requote``, their evidence's links quoted afresh: :data:`REQUOTE`)."""
    con.execute("CREATE OR REPLACE TEMP TABLE _keep_month (period VARCHAR)")
    if months:
        con.executemany("INSERT INTO _keep_month VALUES (?)", [[m] for m in months])
    _stage_copy(
        con,
        """SELECT * REPLACE (CAST(? AS VARCHAR) AS run_id)
        FROM hit WHERE run_id = ? AND rule_id = ?
          AND period IN (SELECT period FROM _keep_month)""",
        [run_id, from_run, rule_id],
        requote,
    )


def previous_runs(con: duckdb.DuckDBPyConnection, fingerprints: dict[str, str]) -> dict[str, str]:
    """rule id -> the latest finished run whose hits for that rule were computed from the same
    fingerprint (the rule ran there: ok or blind)."""
    con.execute(RULE_INPUT_DDL)
    if not fingerprints:
        return {}
    con.execute("CREATE OR REPLACE TEMP TABLE _want_fp (rule_id VARCHAR, fingerprint VARCHAR)")
    con.executemany("INSERT INTO _want_fp VALUES (?, ?)", list(fingerprints.items()))
    rows = con.execute(
        """SELECT w.rule_id, arg_max(d.run_id, d.finished_at)
        FROM _want_fp w
        JOIN rule_input i ON i.rule_id = w.rule_id AND i.fingerprint = w.fingerprint
        JOIN detect_run d ON d.run_id = i.run_id AND d.status = 'finished'
        JOIN rule_run r ON r.run_id = i.run_id AND r.rule_id = w.rule_id
                       AND r.status IN ('ok', 'blind')
        GROUP BY w.rule_id"""
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def copy_hits(
    con: duckdb.DuckDBPyConnection,
    rule_id: str,
    from_run: str,
    run_id: str,
    *,
    requote: bool = False,
) -> tuple[int, float]:
    """Stage the hits ``rule_id`` had in ``from_run`` as this run's (into ``_run_hit``; with
    ``requote``, their evidence's links quoted afresh: :data:`REQUOTE`)."""
    _stage_copy(
        con,
        """SELECT * REPLACE (CAST(? AS VARCHAR) AS run_id)
        FROM hit WHERE run_id = ? AND rule_id = ?""",
        [run_id, from_run, rule_id],
        requote,
    )
    row = con.execute(
        "SELECT count(*), coalesce(sum(amount), 0) FROM hit WHERE run_id = ? AND rule_id = ?",
        [from_run, rule_id],
    ).fetchone()
    n, amt = row if row else (0, 0)
    return int(n), float(amt)


def rules_digest(rules_dir: str | Path) -> str:
    """sha256 over the rule files and reference tables (names and bytes)."""
    root = Path(rules_dir)
    h = hashlib.sha256()
    for p in sorted([*root.glob("*.yaml"), *root.glob("*.yml"), *root.glob("reference/*.csv")]):
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def detect_inputs(con: duckdb.DuckDBPyConnection, rules: str | Path) -> str:
    """What a whole detect run is computed from: the rules (files and references) and the
    identity and kinship its inputs were resolved into (recorded as stage ``detect``)."""
    res = warehouse.stage_state(con, "resolve")
    kin = warehouse.stage_state(con, "kinship")
    text = "|".join(
        [
            rules_digest(rules),
            warehouse.ingest_fingerprint(con),
            res[0] if res else "",
            kin[0] if kin else "",
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()
