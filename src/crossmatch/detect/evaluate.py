"""Compare stored hits with a synthetic county's planted truth (``truth/planted.csv``).

Per rule: planted cases, cases found, recall, precision (share of hits that are planted cases)
and traps flagged (planted traps that a hit fires on; must be 0). Hits are matched on
(subject, period); a truth row with an empty period matches a hit on the same subject in any
period and vice versa (time-less rules).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import duckdb

from crossmatch.console import text_table
from crossmatch.errors import InputFileError


@dataclass
class RuleScore:
    rule_id: str
    planted: int
    found: int
    hits: int
    true_hits: int
    traps: int
    traps_flagged: int
    status: str = "ok"
    reason: str = ""  # the rule run's reason (why it was blind / skipped / stale)
    missed: tuple[tuple[str, str], ...] = ()
    false_hits: tuple[tuple[str, str], ...] = ()
    flagged_traps: tuple[tuple[str, str], ...] = ()

    @property
    def recall(self) -> float | None:
        return self.found / self.planted if self.planted else None

    @property
    def precision(self) -> float | None:
        return self.true_hits / self.hits if self.hits else None


def read_planted(truth_dir: str | Path) -> list[dict[str, str]]:
    path = Path(truth_dir) / "planted.csv"
    if not path.exists():
        raise InputFileError(
            f"{path} not found; pass --truth <sample>/truth (generate one with `crossmatch sample`)"
        )
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    need = {"rule_id", "kind", "subject", "period"}
    if rows and not need <= set(rows[0]):
        raise InputFileError(f"{path}: header must contain {sorted(need)}")
    return rows


def _match(keys: set[tuple[str, str]], subject: str, period: str) -> bool:
    if (subject, period) in keys:
        return True
    return any(s == subject and (p == "" or period == "") for s, p in keys)


def evaluate(con: duckdb.DuckDBPyConnection, truth_dir: str | Path) -> list[RuleScore]:
    """Score the latest successful run of each rule against the planted truth."""
    planted = read_planted(truth_dir)
    runs = con.execute(
        """
        SELECT rule_id, arg_max(run_id, started_at) AS run_id, arg_max(status, started_at),
               arg_max(coalesce(reason, ''), started_at)
        FROM rule_run GROUP BY rule_id
        """
    ).fetchall()
    latest = {r[0]: (r[1], r[2], r[3]) for r in runs}
    rules = sorted(set(latest) | {p["rule_id"] for p in planted})
    scores = []
    for rid in rules:
        run_id, status, reason = latest.get(rid, (None, "not run", ""))
        hits = set()
        if run_id:
            hits = {
                (s, p or "")
                for s, p in con.execute(
                    "SELECT subject, period FROM hit WHERE rule_id = ? AND run_id = ?",
                    [rid, run_id],
                ).fetchall()
            }
        cases = {
            (p["subject"], p["period"] or "")
            for p in planted
            if p["rule_id"] == rid and p["kind"] == "case"
        }
        traps = {
            (p["subject"], p["period"] or "")
            for p in planted
            if p["rule_id"] == rid and p["kind"] == "trap"
        }
        found = {c for c in cases if _match(hits, *c)}
        true_hits = {h for h in hits if _match(cases, *h)}
        flagged = {t for t in traps if _match(hits, *t)}
        scores.append(
            RuleScore(
                rid,
                len(cases),
                len(found),
                len(hits),
                len(true_hits),
                len(traps),
                len(flagged),
                status,
                reason,
                tuple(sorted(cases - found)),
                tuple(sorted(hits - true_hits)),
                tuple(sorted(flagged)),
            )
        )
    return scores


def render(scores: list[RuleScore]) -> str:
    """Per rule: status, planted, found, hits, recall, precision, traps, traps flagged."""

    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    head = ("rule", "status", "planted", "found", "hits", "recall", "precision", "traps", "flagged")
    rows = [
        (
            s.rule_id,
            s.status,
            s.planted,
            s.found,
            s.hits,
            f(s.recall),
            f(s.precision),
            s.traps,
            s.traps_flagged,
        )
        for s in scores
    ]
    return text_table(head, rows, right=range(2, 9))
