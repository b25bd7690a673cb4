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
"""

from __future__ import annotations

import hashlib
import json
import logging
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from crossmatch.detect import needs as rule_needs
from crossmatch.detect import schema

log = logging.getLogger(__name__)

#: Bumped whenever how hits are computed or stored changes outside the hashed inputs.
REUSE_VERSION = "1"

RULE_INPUT_DDL = """
CREATE TABLE IF NOT EXISTS rule_input (
    run_id VARCHAR, rule_id VARCHAR, fingerprint VARCHAR, reused_from VARCHAR
)
"""


def _code_digest(rules_dir: str | Path) -> str:
    h = hashlib.sha256(REUSE_VERSION.encode())
    for name in ("base.sql", "kinds.py", "engine.py"):
        h.update(resources.files("crossmatch.detect").joinpath(name).read_bytes())
    ref = Path(rules_dir) / "reference"
    for p in sorted(ref.glob("*.csv")) if ref.is_dir() else []:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def table_fingerprint(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """Content digest of a table or view: row count, xor and sum of the rows' hashes."""
    row = con.execute(
        f'SELECT count(*), bit_xor(hash(t)), sum((hash(t) >> 11)::HUGEINT) FROM "{table}" t'
    ).fetchone()
    cols = con.execute(f'DESCRIBE "{table}"').fetchall()
    shape = ",".join(f"{c[0]}:{c[1]}" for c in cols)
    return f"{row[0] if row else 0}:{row[1] if row else 0}:{row[2] if row else 0}:{shape}"


def _link_fingerprints(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Per source, a digest of its identity_link rows (what the hit evidence quotes)."""
    if "identity_link" not in schema.existing_relations(con):
        return {}
    return {
        r[0]: f"{r[1]}:{r[2]}:{r[3]}"
        for r in con.execute(
            """SELECT source, count(*), bit_xor(h), sum((h >> 11)::HUGEINT) FROM (
                SELECT source, hash(file, row, role, person_id, method, probability) AS h
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
    code = _code_digest(rules_dir)
    have = schema.existing_relations(con)
    tables = sorted({t for nd in needs.values() for t in nd.columns if t in have})
    tfp = {t: table_fingerprint(con, t) for t in tables}
    links = _link_fingerprints(con)
    out = {}
    for spec in specs:
        nd = needs[spec.id]
        srcs = sorted(nd.sources() | {t[2:] for t in nd.columns if t.startswith("r_")})
        text = json.dumps(
            {
                "code": code,
                "rule": Path(spec.path).read_text(encoding="utf-8") if spec.path else spec.sql,
                "version": spec.version,
                "sql": spec.render_sql((params or {}).get(spec.id)),
                "params": (params or {}).get(spec.id),
                "tables": {t: tfp.get(t, "absent") for t in sorted(nd.columns)},
                "links": {s: links.get(s, "") for s in srcs},
            },
            sort_keys=True,
            default=str,
        )
        out[spec.id] = hashlib.sha256(text.encode()).hexdigest()
    return out


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
    con: duckdb.DuckDBPyConnection, rule_id: str, from_run: str, run_id: str
) -> tuple[int, float]:
    """Stage the hits ``rule_id`` had in ``from_run`` as this run's (into ``_run_hit``)."""
    con.execute(
        """INSERT INTO _run_hit SELECT * REPLACE (CAST(? AS VARCHAR) AS run_id)
        FROM hit WHERE run_id = ? AND rule_id = ?""",
        [run_id, from_run, rule_id],
    )
    row = con.execute(
        "SELECT count(*), coalesce(sum(amount), 0) FROM hit WHERE run_id = ? AND rule_id = ?",
        [from_run, rule_id],
    ).fetchone()
    n, amt = row if row else (0, 0)
    return int(n), float(amt)
