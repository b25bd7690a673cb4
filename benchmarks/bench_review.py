"""How fast the review layer answers on a large warehouse (issue 12: explain well under a second).

    uv run python benchmarks/bench_review.py --warehouse W [--store S] [--per-rule 3]

Syncs the latest detect run into a fresh review store (timed), then explains ``--per-rule``
clues of every rule and lists the top 50. Baseline in the same run: DuckDB alone fetching the same
clue's hit rows from the warehouse (the least any explanation must do); the ratio is reported.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from crossmatch.review import Review


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warehouse", required=True, type=Path)
    ap.add_argument("--store", type=Path, default=None, help="review store (default: a temp file)")
    ap.add_argument("--per-rule", type=int, default=3)
    a = ap.parse_args()
    store = a.store or Path(tempfile.mkdtemp()) / "bench.review.duckdb"
    rv = Review(a.warehouse, store=store)
    t = time.perf_counter()
    res = rv.sync()
    sync_s = time.perf_counter() - t
    clues = rv.clues(unmask=True)
    con = duckdb.connect(str(a.warehouse), read_only=True)
    persons = con.execute("SELECT count(*) FROM person").fetchone()[0]
    hits = con.execute("SELECT count(*) FROM hit WHERE run_id = ?", [rv.latest_run()]).fetchone()[0]
    ours, base = [], []
    for rule in sorted(set(clues["rule_id"])):
        part = clues.filter(clues["rule_id"] == rule).head(a.per_rule)
        for cid, subject, run in zip(
            part["clue_id"], part["subject"], part["last_run"], strict=True
        ):
            t = time.perf_counter()
            rv.explain(cid)
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            con.execute(
                "SELECT evidence FROM hit WHERE run_id = ? AND rule_id = ? AND subject = ?",
                [run, rule, subject],
            ).fetchall()
            base.append(time.perf_counter() - t)
    con.close()
    t = time.perf_counter()
    rv.clues(limit=50)
    top_s = time.perf_counter() - t
    print(
        f"warehouse {a.warehouse}: {persons:,} persons, {hits:,} hit rows -> {clues.height:,} clues"
    )
    print(f"sync            {sync_s:7.2f} s   ({res.render()})")
    print(f"list top 50     {top_s:7.3f} s")
    print(
        f"explain         median {statistics.median(ours):.3f} s, max {max(ours):.3f} s "
        f"over {len(ours)} clues"
    )
    print(
        f"baseline        DuckDB fetching the hit rows: median {statistics.median(base):.4f} s "
        f"(ratio {statistics.median(ours) / max(statistics.median(base), 1e-9):.0f}x)"
    )


if __name__ == "__main__":
    main()
