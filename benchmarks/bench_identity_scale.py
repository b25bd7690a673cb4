"""Identity resolution at county scale: wall time and peak memory per size, and the growth.

For each ingested warehouse given (e.g. 30k, 300k and 3M persons), copies it, runs a full
``resolve`` in a child process (so that peak RSS is that run's alone), optionally an incremental
second run after adding one new file version, and prints a table plus the growth ratio between
consecutive sizes. The counties are made outside the test suite, e.g.::

    uv run crossmatch sample --persons 300000 --seed 1 --out /tmp/county300k
    uv run crossmatch ingest --raw /tmp/county300k/raw --warehouse /tmp/county300k.duckdb
    uv run --group bench python benchmarks/bench_identity_scale.py \\
        /tmp/county30k.duckdb /tmp/county300k.duckdb /tmp/county3m.duckdb --incremental \\
        --truth /tmp/county30k/truth --truth /tmp/county300k/truth --truth /tmp/county3m/truth

Peak RSS is the child's ``ru_maxrss`` (DuckDB's native memory included).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = r"""
import json, logging, resource, sys, time
import duckdb
from crossmatch.identity import resolve
def _rss(record):
    # current and peak RSS on every log line: which step makes the peak
    with open("/proc/self/status") as f:
        cur = next((int(x.split()[1]) for x in f if x.startswith("VmRSS:")), 0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    record.rss = f"[rss {cur / 1024:.0f} MB, peak {peak / 1024:.0f} MB]"
    return True
_h = logging.StreamHandler(sys.stderr)
_h.addFilter(_rss)
_h.setFormatter(logging.Formatter("%(asctime)s %(message)s %(rss)s"))
logging.basicConfig(level=logging.INFO, handlers=[_h])
con = duckdb.connect(sys.argv[1])
con.execute("SET enable_progress_bar = false")
mode = sys.argv[2]
if mode == "incremental":
    # tonight's new file: a copy of 1% of the payments under a new file name and hash
    con.execute(
        "INSERT INTO src_payment SELECT * REPLACE ('finance/new_night.csv' AS _file, "
        "'night2' AS _file_hash) FROM src_payment USING SAMPLE 1 PERCENT (bernoulli, 7)"
    )
t = time.perf_counter()
limit = json.loads(sys.argv[3])
s = resolve(con, full=(mode == "full"), **({} if limit is None else {"memory_limit": limit}))
secs = time.perf_counter() - t
print(json.dumps({"mode": s.mode, "seconds": secs, "mentions": s.mentions,
    "new": s.new_mentions, "pairs": s.candidate_pairs, "persons": s.persons,
    "steps": s.seconds,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(warehouse: Path, mode: str, memory_limit: str | None = None) -> dict:
    """Resolve in a child process; its log lines are passed on as they come (a 3M run takes
    minutes, and progress per step is what one watches)."""
    # one merged stream, read as it comes: a separate stdout pipe that nobody drains while
    # stderr is read can fill up and block the child (DuckDB writes progress to stdout)
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(warehouse), mode, json.dumps(memory_limit)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    tail: list[str] = []
    result = None
    for line in proc.stdout:
        tail = [*tail[-40:], line]
        if line.startswith("{"):
            result = json.loads(line)
        else:
            logging.info("    %s", line.rstrip())
    if proc.wait() != 0 or result is None:
        raise SystemExit(f"{warehouse} ({mode}) failed (exit {proc.returncode}):\n{''.join(tail)}")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("warehouses", nargs="+", type=Path, help="ingested warehouses, small first")
    ap.add_argument("--incremental", action="store_true", help="also time a second night")
    ap.add_argument("--keep", action="store_true", help="keep the resolved copies")
    ap.add_argument(
        "--truth",
        type=Path,
        action="append",
        default=[],
        help="truth/ folder of each warehouse, in the same order: score the full run "
        "(pairwise P/R/F1 overall and on damaged records, as `crossmatch identity-eval`)",
    )
    ap.add_argument(
        "--memory-limit",
        default=None,
        help="DuckDB memory_limit for the resolve (default: resolve's own default)",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.truth and len(args.truth) != len(args.warehouses):
        ap.error("give one --truth per warehouse (same order), or none")
    rows = []
    for k, wh in enumerate(args.warehouses):
        tmp = Path(tempfile.mkdtemp(prefix="idscale"))
        copy = tmp / wh.name
        shutil.copy(wh, copy)
        t = time.perf_counter()
        r = run(copy, "full", args.memory_limit)
        r["label"], r["wall"] = wh.stem, time.perf_counter() - t
        if args.truth:
            import duckdb

            from crossmatch.identity.evaluate import evaluate

            t = time.perf_counter()
            with duckdb.connect(str(copy), read_only=True) as con:
                r["quality"] = evaluate(con, args.truth[k])
            r["eval_seconds"] = time.perf_counter() - t
        if args.incremental:
            inc = run(copy, "incremental", args.memory_limit)
            r["inc_seconds"], r["inc_new"], r["inc_rss_mb"] = (
                inc["seconds"],
                inc["new"],
                inc["rss_mb"],
            )
            r["inc_mode"] = inc["mode"]
        rows.append(r)
        print(
            f"{r['label']:<14} mentions {r['mentions']:>11,}  pairs {r['pairs']:>11,}  "
            f"resolve {r['seconds']:7.1f} s  peak RSS {r['rss_mb']:7.0f} MB"
            + (
                f"  | {r['inc_mode']} night: {r['inc_new']:,} new mentions in "
                f"{r['inc_seconds']:.1f} s ({r['inc_rss_mb']:.0f} MB)"
                if args.incremental
                else ""
            ),
            flush=True,
        )
        print("    steps: " + ", ".join(f"{k} {v:.1f}s" for k, v in r["steps"].items()))
        for label, sc in r.get("quality", {}).items():
            print("    " + sc.render(label))
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    for a, b in itertools.pairwise(rows):
        print(
            f"growth {a['label']} -> {b['label']}: mentions x{b['mentions'] / a['mentions']:.1f}, "
            f"time x{b['seconds'] / a['seconds']:.1f}, peak RSS x{b['rss_mb'] / a['rss_mb']:.1f}, "
            f"pairs x{b['pairs'] / max(a['pairs'], 1):.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
