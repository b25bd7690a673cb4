"""The building blocks of ``detect/base.sql`` kept in the warehouse between runs.

Every ``CREATE ... TEMP TABLE`` block of ``base.sql`` (``paid``, ``dibao_case``,
``dibao_member``, ``dibao_paid_month`` ...) is a function of the tables it reads (``r_*``
views, ``ref_*`` tables, other blocks) and of ``base.sql`` itself. A detect run on a warehouse
(``rule_runner.begin_run``) keeps each block in a table ``detect_block_<name>`` with, in
``detect_block_state``, the key of the inputs it was computed from, and rules read it through
a TEMP view of that name. A block whose key is unchanged is not computed again: the same
function of the same inputs. The key hashes ``base.sql``, :data:`BLOCKS_VERSION` and the
content fingerprint of every input table (``reuse.table_fingerprint``: count, xor and sum of
the hashes of every row, every column), so any change to any row of any input changes it.

**Per payment month** (:data:`MONTH_BLOCKS`). ``paid`` and ``dibao_paid_month`` are kept per
month: their rows of month P are a function of the payments of month P (``r_payment`` rows
with ``period`` P) and of their other inputs, and every row's ``period`` is its payment's
(``paid`` is ``r_payment`` row by row; ``dibao_paid_month`` groups ``paid`` by case and
period). Their key is split in two: ``static`` (``base.sql``, the other inputs' fingerprints,
the shape of ``r_payment``) and one digest per month (that month's ``r_payment`` rows,
:func:`crossmatch.detect.reuse.payment_months`). With ``static`` unchanged, only the months
whose digest changed (or that are new) are computed again, from the payments of those months
alone, and the months gone are deleted; the other months' rows stay. This equals a build from
scratch by the property above: a month with the same rows and the same other inputs has the
same block rows. ``tests/rules/test_blocks.py`` checks it against a build from scratch after a
change in one month, in another input, and in the code.

A connection without a warehouse to keep them in (``run_example``, ``compile_problems``)
builds the blocks as TEMP tables, as before (``rule_runner.prepare``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from importlib import resources

import duckdb

from crossmatch.detect import needs as rule_needs
from crossmatch.detect import reuse, schema

log = logging.getLogger(__name__)

#: Bumped whenever how the kept blocks are computed changes outside ``base.sql``.
BLOCKS_VERSION = "1"

#: Blocks whose rows of payment month P come from the ``r_payment`` rows of period P alone
#: (module docstring): kept per month. Their ``period`` column is the payment's.
MONTH_BLOCKS = ("paid", "dibao_paid_month")
#: The table whose rows the month blocks are split by, and its month column.
MONTH_TABLE, MONTH_COLUMN = "r_payment", "period"

STATE_DDL = """
CREATE TABLE IF NOT EXISTS detect_block_state (
    block VARCHAR, part VARCHAR, key VARCHAR  -- part '' : the whole block (month blocks: static)
)
"""
_CREATE = re.compile(
    r"^\s*CREATE\s+OR\s+REPLACE\s+TEMP\s+(TABLE|VIEW|MACRO)\s+(\w+)", re.IGNORECASE
)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def stored(block: str) -> str:
    """The warehouse table that keeps ``block``."""
    return f"detect_block_{block}"


@functools.lru_cache(maxsize=1)
def statements() -> tuple[tuple[str, str, str, str], ...]:
    """(kind, name, body, statement) of every statement of ``base.sql``, in order."""
    out = []
    bodies = {n: b for _k, n, b in rule_needs.base_statements()}
    for stmt in rule_needs._statements():
        m = _CREATE.match(stmt)
        if m:
            kind, name = m.group(1).upper(), m.group(2)
            out.append((kind, name, bodies.get(name, "").strip().rstrip(";"), stmt))
        else:
            out.append(("", "", "", stmt))
    return tuple(out)


def _names(body: str) -> set[str]:
    return set(_IDENT.findall(re.sub(r"--[^\n]*", "", body)))


def block_inputs(have: set[str]) -> dict[str, set[str]]:
    """Block -> the relations among ``have`` (not blocks) it reads, through other blocks too."""
    out: dict[str, set[str]] = {}
    for kind, name, body, _ in statements():
        if kind != "TABLE":
            continue
        used = _names(body)
        ins = {u for u in used if u in have and u not in out and u != name}
        for u in used & set(out):
            ins |= out[u]
        out[name] = ins
    return out


def _month_reads(have: set[str]) -> dict[str, set[str]]:
    """Month block -> the month-partitioned relations it reads directly (``r_payment`` or an
    earlier month block)."""
    out: dict[str, set[str]] = {}
    for kind, name, body, _ in statements():
        if kind == "TABLE" and name in MONTH_BLOCKS:
            used = _names(body)
            out[name] = {u for u in used if u == MONTH_TABLE or (u in MONTH_BLOCKS and u != name)}
    return out


def _lit(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"


def _base_digest() -> str:
    h = hashlib.sha256(BLOCKS_VERSION.encode())
    h.update(resources.files("crossmatch.detect").joinpath("base.sql").read_bytes())
    return h.hexdigest()


@dataclass
class BlockReport:
    """What :func:`build` did per block: 'kept', 'built', or '<k> of <n> months computed'."""

    done: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        return ", ".join(f"{b} {d}" for b, d in self.done.items())


def _state(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str]]:
    con.execute(STATE_DDL)
    out: dict[str, dict[str, str]] = {}
    for b, part, key in con.execute("SELECT block, part, key FROM detect_block_state").fetchall():
        out.setdefault(b, {})[part] = key
    return out


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND NOT temporary "
        "AND table_name = ? AND database_name = current_database()",
        [table],
    ).fetchone()
    return bool(row and row[0])


def _save(con: duckdb.DuckDBPyConnection, block: str, parts: dict[str, str]) -> None:
    con.execute("DELETE FROM detect_block_state WHERE block = ?", [block])
    con.executemany(
        "INSERT INTO detect_block_state VALUES (?, ?, ?)", [[block, p, k] for p, k in parts.items()]
    )


def build(
    con: duckdb.DuckDBPyConnection,
    fingerprint: Callable[[str], str],
    months: dict[str | None, str] | None,
    *,
    full: bool = False,
) -> BlockReport:
    """Make every block of ``base.sql`` readable by the rules (TEMP views over the kept tables),
    computing only the blocks, and the months of the month blocks, whose inputs changed since
    they were kept (module docstring); with ``full``, every block from scratch.

    ``fingerprint(table)``: the content fingerprint of an input table (``r_*``, ``ref_*`` ...;
    the run's fingerprint scans, ``reuse.table_fingerprint`` for the others). ``months``:
    ``r_payment.period`` -> digest of that month's rows (``reuse.payment_months``); None keeps
    the month blocks whole."""
    rep = BlockReport()
    state = {} if full else _state(con)
    con.execute(STATE_DDL)
    have = schema.existing_relations(con)
    inputs = block_inputs(have)
    month_reads = _month_reads(have)
    base = _base_digest()
    fps: dict[str, str] = {}

    def fp(t: str) -> str:
        if t not in fps:
            fps[t] = fingerprint(t)
        return fps[t]

    for kind, name, body, stmt in statements():
        if kind != "TABLE":
            con.execute(stmt)  # macros
            continue
        t0 = time.perf_counter()
        by_month = name in MONTH_BLOCKS and months is not None and MONTH_TABLE in inputs[name]
        doc = {
            "base": base,
            "block": name,
            "inputs": {
                t: (shape(con, t) if by_month and t == MONTH_TABLE else fp(t))
                for t in sorted(inputs[name])
            },
        }
        key = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
        table = stored(name)
        old = state.get(name, {})
        with _transaction(con):  # the kept rows and the key they were computed from, together
            if by_month:
                assert months is not None
                want = {
                    p: hashlib.sha256(f"{key}|{d}".encode()).hexdigest()
                    for p, d in months.items()
                    if p is not None
                }
                if old.get("") == key and _exists(con, table):
                    redo = sorted(p for p, k in want.items() if old.get(p) != k)
                    gone = sorted(p for p in old if p and p not in want)
                    if redo or gone:
                        _update_months(con, name, body, redo, gone, month_reads[name])
                    rep.done[name] = f"{len(redo)} of {len(want)} months computed" + (
                        f", {len(gone)} gone" if gone else ""
                    )
                else:
                    _create(con, table, body)
                    rep.done[name] = "built"
                parts = {"": key, **want}
            elif old.get("") == key and _exists(con, table):
                rep.done[name] = "kept"
                parts = old
            else:
                _create(con, table, body)
                rep.done[name] = "built"
                parts = {"": key}
            if parts != old:
                _save(con, name, parts)
        con.execute(f'CREATE OR REPLACE TEMP VIEW "{name}" AS SELECT * FROM main."{table}"')
        rep.seconds[name] = time.perf_counter() - t0
    return rep


def shape(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """Columns and types of a relation and, for a view, its SQL ("per month": its rows are
    digested month by month; the month digests of a resolved view hash its parts, not what
    the view makes of them, ``reuse.view_scan``)."""
    cols = con.execute(f'DESCRIBE "{table}"').fetchall()
    views = con.execute(
        "SELECT sql FROM duckdb_views() WHERE view_name = ? ORDER BY temporary DESC", [table]
    ).fetchall()
    sql = hashlib.sha256(str(views[0][0]).encode()).hexdigest() if views else "table"
    return "per month:" + ",".join(f"{c[0]}:{c[1]}" for c in cols) + f"|{sql}"


def _create(con: duckdb.DuckDBPyConnection, table: str, body: str) -> None:
    con.execute(f'CREATE OR REPLACE TABLE main."{table}" AS {body}')


def _update_months(
    con: duckdb.DuckDBPyConnection,
    name: str,
    body: str,
    redo: list[str],
    gone: list[str],
    reads: set[str],
) -> None:
    """Delete the rows of months ``redo`` and ``gone`` of the kept block and insert those of
    ``redo``, computed from the month-partitioned relations it reads restricted to ``redo``
    (CTEs of the same names shadow them within the statement); in the caller's transaction."""
    sel = ", ".join(_lit(p) for p in redo) or "NULL"
    drop = ", ".join(_lit(p) for p in redo + gone)
    ctes = []
    for r in sorted(reads):
        view = reuse.resolved_view(con, r) if r not in MONTH_BLOCKS else None
        fast = reuse.restricted_view_sql(view, f"{MONTH_COLUMN} IN ({sel})") if view else None
        if fast is not None:  # the months' rows and their files' links only
            ctes.append(f'"{r}" AS ({fast})')
            continue
        src = f'main."{stored(r)}"' if r in MONTH_BLOCKS else f'"_blk_all_{r}"'
        if r not in MONTH_BLOCKS:  # a view that sees the relation itself, not the CTE
            con.execute(f'CREATE OR REPLACE TEMP VIEW "_blk_all_{r}" AS SELECT * FROM "{r}"')
        ctes.append(f'"{r}" AS (SELECT * FROM {src} WHERE {MONTH_COLUMN} IN ({sel}))')
    table = stored(name)
    con.execute(f'DELETE FROM main."{table}" WHERE {MONTH_COLUMN} IN ({drop})')
    if redo:
        con.execute(f'INSERT INTO main."{table}" WITH {", ".join(ctes)} SELECT * FROM ({body})')
    for r in reads:
        if r not in MONTH_BLOCKS:
            con.execute(f'DROP VIEW IF EXISTS temp."_blk_all_{r}"')


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        with suppress(duckdb.Error):  # a failed COMMIT has already rolled back
            con.execute("ROLLBACK")
        raise
