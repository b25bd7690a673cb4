"""Benchmark the rule catalogue (and the kinship build) at county scale.

Two ways to get a big warehouse:

* ``--warehouse W`` : an existing resolved warehouse (e.g. a generated 3M-person county after
  ``crossmatch ingest`` + ``crossmatch resolve``); it is copied, never modified.
* ``--scale-from S --persons N`` : replicate a small resolved warehouse S (the sample county)
  until it holds about N persons. Every identifier (person ids, households, cases, accounts,
  village codes, credit codes ...) gets a per-copy suffix, so copies never join with each other
  and every rule sees N/|S| independent counties' worth of rows with the sample's distributions.

Prints per-rule seconds, hits and status, the kinship build time and the total, and the figure
the issue asks for: the whole catalogue under 3 minutes on this machine.

    uv run python benchmarks/bench_detect.py --scale-from /tmp/sample.duckdb --persons 3000000
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from crossmatch import kinship
from crossmatch.detect import run_rules

ID_COLUMNS = {
    "household_no",
    "case_no",
    "account",
    "village_code",
    "credit_code",
    "unit_no",
    "plate",
    "contract_no",
    "school_code",
    "buyer_code",
    "unit_code",
    "supplier_credit_code",
    "person_id",
    "id_number",
    "batch_no",
    "cluster_id",
    "region_prefix_never",
}


def _is_id(col: str) -> bool:
    return col in ID_COLUMNS or col.endswith("_pid") or col.endswith("_id")


def replicate(src: Path, dst: Path, persons: int, threads: int | None, memory: str) -> int:
    """Build ``dst`` from ``src`` replicated to about ``persons`` persons; returns copies."""
    con = duckdb.connect(str(dst))
    con.execute(f"SET memory_limit = '{memory}'")
    if threads:
        con.execute(f"SET threads = {threads}")
    con.execute(f"ATTACH '{src}' AS s (READ_ONLY)")
    n = con.execute("SELECT count(*) FROM s.person").fetchone()[0]
    copies = max(1, math.ceil(persons / n))
    tables = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = 's' "
            "AND (table_name LIKE 'r\\_%' ESCAPE '\\' OR table_name IN "
            "('person', 'identity_link', 'src_subsidy_standard', 'src_procurement'))"
        ).fetchall()
    ]
    for t in tables:
        cols = con.execute(f'DESCRIBE s."{t}"').fetchall()
        exprs = []
        for c, typ, *_ in cols:
            if typ == "VARCHAR" and _is_id(c) and t != "src_subsidy_standard":
                exprs.append(f'CASE WHEN k = 0 THEN "{c}" ELSE "{c}" || \'~\' || k END AS "{c}"')
            elif c in ("_row", "row"):
                exprs.append(f'"{c}" + k * 1000000 AS "{c}"')
            else:
                exprs.append(f'"{c}"')
        n_copies = 1 if t == "src_subsidy_standard" else copies
        con.execute(
            f'CREATE TABLE "{t}" AS SELECT {", ".join(exprs)} '
            f'FROM s."{t}", range({n_copies}) AS r(k)'
        )
    con.execute("CREATE TABLE ingest_file AS SELECT * FROM s.ingest_file")
    con.execute("DETACH s")
    con.close()
    return copies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--warehouse", type=Path, help="existing resolved warehouse (copied)")
    g.add_argument("--scale-from", type=Path, help="small resolved warehouse to replicate")
    ap.add_argument("--persons", type=int, default=3_000_000)
    ap.add_argument("--rules", type=Path, default=Path("rules"))
    ap.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all)")
    ap.add_argument(
        "--memory-limit", default="4GB", help="DuckDB memory_limit (spills to disk beyond)"
    )
    ap.add_argument("--keep", type=Path, default=None, help="keep the bench warehouse here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("crossmatch.detect.schema").setLevel(logging.ERROR)

    work = Path(tempfile.mkdtemp(prefix="bench_detect_"))
    db = args.keep or work / "bench.duckdb"
    try:
        t0 = time.perf_counter()
        if args.warehouse:
            shutil.copy(args.warehouse, db)
            print(f"copied {args.warehouse} in {time.perf_counter() - t0:.1f}s")
        else:
            copies = replicate(args.scale_from, db, args.persons, args.threads, args.memory_limit)
            print(f"replicated {args.scale_from} x{copies} in {time.perf_counter() - t0:.1f}s")
        con = duckdb.connect(str(db))
        con.execute(f"SET memory_limit = '{args.memory_limit}'")
        con.execute(f"SET temp_directory = '{work / 'spill'}'")
        if args.threads:
            con.execute(f"SET threads = {args.threads}")
        for t in ("person", "r_payment", "r_hukou", "r_assistance"):
            with contextlib.suppress(duckdb.Error):
                print(f"  {t:<14} {con.execute(f'SELECT count(*) FROM {t}').fetchone()[0]:>12,}")
        t1, c1 = time.perf_counter(), time.process_time()
        counts = kinship.build(con)
        t_kin, c_kin = time.perf_counter() - t1, time.process_time() - c1
        print(
            f"kinship.build: {t_kin:.1f}s wall, {c_kin:.1f}s CPU ({counts['kin_edge']:,} edges, "
            f"{counts['kin_relative']:,} relative pairs)"
        )
        t2, c2 = time.perf_counter(), time.process_time()
        res = run_rules(con, args.rules)
        t_rules, c_rules = time.perf_counter() - t2, time.process_time() - c2
        print(res.table())
        print(
            f"\ncatalogue: {t_rules:.1f}s wall, {c_rules:.1f}s CPU (all threads) incl. "
            f"preparation; with kinship build: {t_rules + t_kin:.1f}s wall; "
            f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of this process: {peak:,.0f} MB (DuckDB memory_limit {args.memory_limit})")
        print(f"target: catalogue < 180s wall -> {'OK' if t_rules < 180 else 'SLOW'}")
        con.close()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
