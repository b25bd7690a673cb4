"""How long a warehouse keeps each night's hits and scores.

Every night writes its detect run's hits (copied ones too) and its ML scores under its own
``run_id``: without a limit the ``hit``, ``ml_score`` and ``ml_reason`` tables grow by a whole
county's findings per night. :func:`prune` keeps

* the latest ``keep_nights`` finished detect runs,
* every run some clue was last seen in (the review store's ``clue.last_run``: explaining or
  exporting a clue reads the hits of that run, closed clues included),
* the run(s) named in ``protect`` (tonight's),

and deletes the hit rows and the ML score, reason and input rows of every other run. The small
history tables stay (``detect_run``, ``rule_run``, ``ml_run``, ``night_run``: what ran, when,
with how many hits); a pruned detect run's status becomes ``pruned``, so neither detect nor
score reuse can copy from rows that are gone (reuse looks only at ``finished`` runs and at
``ml_input``). ``prune_log`` records each pruning.

When the review store cannot be read (locked by a writer, damaged), nothing is pruned and the
result says why: pruning without knowing which runs the clues point at could delete the
evidence of a clue an investigator is working on.

:func:`unused_models` lists model folders under ``<warehouse>.models/`` that no scored run
refers to and no ``CURRENT-*`` names: left by a night killed between fitting and publishing.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from crossmatch.ml import model as M
from crossmatch.review.store import open_store, store_path
from crossmatch.warehouse import existing_relations, transaction

log = logging.getLogger(__name__)

#: nights whose hits a warehouse keeps by default (about two months of nightly runs)
DEFAULT_KEEP_NIGHTS = 60

PRUNE_LOG_DDL = """
CREATE TABLE IF NOT EXISTS prune_log (
    pruned_at TIMESTAMP, keep_nights INTEGER, runs INTEGER, hit_rows BIGINT, ml_rows BIGINT,
    run_ids VARCHAR[]
)
"""


@dataclass
class PruneResult:
    keep_nights: int
    dry_run: bool = False
    kept: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    protected: int = 0  # runs kept only because a clue points at them
    hit_rows: int = 0
    ml_rows: int = 0
    skipped: str = ""  # why nothing was pruned

    def render(self) -> str:
        if self.skipped:
            return f"prune: skipped: {self.skipped}"
        verb = "would delete" if self.dry_run else "deleted"
        if not self.pruned:
            return (
                f"prune: nothing to delete ({len(self.kept)} run(s) kept: the latest "
                f"{self.keep_nights} and {self.protected} that clues point at)"
            )
        return (
            f"prune: {verb} {self.hit_rows:,} hit rows and {self.ml_rows:,} score rows of "
            f"{len(self.pruned)} run(s); kept {len(self.kept)} (the latest {self.keep_nights} "
            f"and {self.protected} that clues point at)"
        )


def clue_runs(warehouse: str | Path) -> set[str] | None:
    """Runs the review store's clues were last seen in; ``set()`` when there is no store yet,
    None when it exists but cannot be read."""
    path = store_path(warehouse)
    if not path.exists():
        return set()
    try:
        store = open_store(path, read_only=True, wait=5.0)
    except Exception as exc:  # locked or damaged: the caller must not prune blind
        log.warning("prune: the review store %s cannot be read: %s", path, exc)
        return None
    try:
        if "clue" not in existing_relations(store):
            return set()
        rows = store.execute("SELECT DISTINCT last_run FROM clue WHERE last_run IS NOT NULL")
        return {r[0] for r in rows.fetchall()}
    finally:
        store.close()


def prune(
    con: duckdb.DuckDBPyConnection,
    *,
    keep_nights: int,
    clue_runs: set[str] | None,
    protect: set[str] | frozenset[str] = frozenset(),
    dry_run: bool = False,
) -> PruneResult:
    """Delete the hits and ML scores of runs beyond the latest ``keep_nights`` (module docs).
    ``clue_runs`` None (the store could not be read) prunes nothing."""
    if keep_nights < 1:
        raise ValueError(f"keep_nights must be at least 1, not {keep_nights}")
    res = PruneResult(keep_nights, dry_run)
    if clue_runs is None:
        res.skipped = "the review store could not be read, so which runs clues point at is unknown"
        return res
    tables = existing_relations(con)
    if not {"detect_run", "hit"} <= tables:
        res.skipped = "no detect run yet"
        return res
    runs = [
        (r[0], r[1])
        for r in con.execute(
            "SELECT run_id, status FROM detect_run WHERE status <> 'pruned' "
            "ORDER BY finished_at DESC NULLS LAST, started_at DESC, run_id DESC"
        ).fetchall()
    ]
    latest = [r for r, st in runs if st == "finished"][:keep_nights]
    keep = set(latest) | set(protect) | (clue_runs & {r for r, _ in runs})
    res.protected = len(keep - set(latest) - set(protect))
    res.kept = [r for r, _ in runs if r in keep]
    res.pruned = [r for r, _ in runs if r not in keep]
    if not res.pruned:
        return res
    con.execute("CREATE OR REPLACE TEMP TABLE _prune_runs (run_id VARCHAR)")
    con.executemany("INSERT INTO _prune_runs VALUES (?)", [[r] for r in res.pruned])
    sel = "run_id IN (SELECT run_id FROM _prune_runs)"
    res.hit_rows = con.execute(f"SELECT count(*) FROM hit WHERE {sel}").fetchone()[0]
    ml_tables = [t for t in ("ml_score", "ml_reason") if t in tables]
    res.ml_rows = sum(
        con.execute(f"SELECT count(*) FROM {t} WHERE {sel}").fetchone()[0] for t in ml_tables
    )
    if dry_run:
        return res
    with transaction(con):
        con.execute(f"DELETE FROM hit WHERE {sel}")
        for t in [*ml_tables, *(["ml_input"] if "ml_input" in tables else [])]:
            con.execute(f"DELETE FROM {t} WHERE {sel}")
        con.execute(f"UPDATE detect_run SET status = 'pruned' WHERE {sel}")
        con.execute(PRUNE_LOG_DDL)
        con.execute(
            "INSERT INTO prune_log VALUES (?, ?, ?, ?, ?, ?)",
            [dt.datetime.now().replace(microsecond=0), keep_nights, len(res.pruned),
             res.hit_rows, res.ml_rows, res.pruned],
        )  # fmt: skip
    log.info("%s", res.render())
    return res


def unused_models(con: duckdb.DuckDBPyConnection, warehouse: str | Path) -> list[Path]:
    """Unsupervised model folders no ``ml_run`` row refers to and no ``CURRENT-*`` names."""
    root = M.models_dir(warehouse)
    if not root.is_dir():
        return []
    used = {p.read_text().strip() for p in root.glob("CURRENT-*")}
    if "ml_run" in existing_relations(con):
        used |= {r[0] for r in con.execute("SELECT DISTINCT model_id FROM ml_run").fetchall()}
    out = []
    for d in sorted(root.iterdir()):
        meta = d / "model.json"
        if not d.is_dir() or d.name in used or not meta.exists():
            continue
        try:  # supervised models are named by the review store's clue scores: left alone
            if json.loads(meta.read_text()).get("kind") == "unsupervised":
                out.append(d)
        except (OSError, ValueError):
            continue
    return out


def remove_models(folders: list[Path]) -> None:
    for d in folders:
        shutil.rmtree(d)
        log.info("prune: removed unused model folder %s", d)
