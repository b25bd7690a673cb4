"""Partitioned detect (Prefect + Dask) against single-machine detect on the same warehouse.

Three runs on copies of one resolved warehouse, in the same invocation:

1. ``single``: ``run_rules`` (what ``crossmatch detect`` does);
2. ``partitioned, in process``: ``run_partitioned`` with the partitions run one after the other
   here (the cost of partitioning itself, no cluster);
3. ``partitioned, Dask``: the flow ``flows/partitioned.py`` on a LocalCluster of ``--workers``
   processes (or ``--dask-address``), end to end: Prefect's temporary server, cluster start-up,
   shipping the partitions.

Checks that the three give the same hits (every column but the run id) and prints the wall
times, the ratios and where the partitioned time goes.

    uv run python benchmarks/bench_partitioned.py --scale-from /tmp/sample.duckdb --persons 60000
    uv run python benchmarks/bench_partitioned.py --warehouse W --dask-address tcp://host:8786
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_detect import replicate  # noqa: E402
from crossmatch import warehouse as wh  # noqa: E402
from crossmatch.detect import rule_runner as engine  # noqa: E402
from crossmatch.detect import run_rules  # noqa: E402
from crossmatch.scale.run import run_partitioned  # noqa: E402

LATEST = (
    "SELECT * EXCLUDE (run_id) FROM {db}.hit WHERE run_id = "
    "(SELECT max_by(run_id, finished_at) FROM {db}.detect_run WHERE status = 'finished')"
)


def _flow():
    spec = importlib.util.spec_from_file_location("partitioned", ROOT / "flows" / "partitioned.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["partitioned"] = mod
    spec.loader.exec_module(mod)
    return mod


def _same_hits(a: Path, b: Path) -> tuple[int, int, int]:
    """(hits in a, hits in b, rows in one and not the other)."""
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{a}' AS a (READ_ONLY)")
        con.execute(f"ATTACH '{b}' AS b (READ_ONLY)")
        qa, qb = LATEST.format(db="a"), LATEST.format(db="b")
        row = con.execute(
            f"SELECT (SELECT count(*) FROM ({qa})), (SELECT count(*) FROM ({qb})), "
            f"(SELECT count(*) FROM (({qa}) EXCEPT ALL ({qb}))) + "
            f"(SELECT count(*) FROM (({qb}) EXCEPT ALL ({qa})))"
        ).fetchone()
        return int(row[0]), int(row[1]), int(row[2])
    finally:
        con.close()


def _fresh_stages(src: Path, dst: Path) -> None:
    """A replicated warehouse has the source's ingest records: give it the source's identity
    stage (else every rule is stale) and build its kinship once, before the copies are taken
    (else each run would rebuild it and time that instead of the rules)."""
    con = duckdb.connect(str(dst))
    try:
        con.execute(f"ATTACH '{src}' AS s (READ_ONLY)")
        con.execute(wh.STAGE_DDL)
        con.execute("INSERT INTO stage_state SELECT * FROM s.stage_state")
        con.execute("DETACH s")
        engine.rebuild_kinship(con)
    finally:
        con.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--warehouse", type=Path, help="existing resolved warehouse (copied)")
    g.add_argument("--scale-from", type=Path, help="small resolved warehouse to replicate")
    ap.add_argument("--persons", type=int, default=60_000)
    ap.add_argument("--rules", type=Path, default=ROOT / "rules")
    ap.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    ap.add_argument("--dask-address", default=None, help="an existing Dask scheduler instead")
    ap.add_argument("--level", type=int, default=9, help="region digits (9 township, 6 county)")
    ap.add_argument("--partitions", type=int, default=None)
    ap.add_argument("--tmp", type=Path, default=None, help="scratch folder (default: a temp dir)")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="bench-part-", dir=a.tmp))
    try:
        base = tmp / "base.duckdb"
        if a.scale_from:
            copies = replicate(a.scale_from, base, a.persons, None, "4GB")
            print(f"replicated {a.scale_from} x{copies}")
            _fresh_stages(a.scale_from, base)
        else:
            shutil.copy(a.warehouse, base)
        con = duckdb.connect(str(base), read_only=True)
        persons = con.execute("SELECT count(*) FROM person").fetchone()[0]
        con.close()
        paths = {k: tmp / f"{k}.duckdb" for k in ("single", "serial", "dask")}
        for p in paths.values():
            shutil.copy(base, p)

        t0 = time.perf_counter()
        con = duckdb.connect(str(paths["single"]))
        single = run_rules(con, a.rules, full=True)  # compute, never reuse
        con.close()
        t_single = time.perf_counter() - t0

        t0 = time.perf_counter()
        con = duckdb.connect(str(paths["serial"]))
        serial = run_partitioned(con, a.rules, level=a.level, partitions=a.partitions, full=True)
        con.close()
        t_serial = time.perf_counter() - t0

        mod = _flow()
        flow = mod.partitioned.with_options(task_runner=mod.task_runner(a.dask_address, a.workers))
        t0 = time.perf_counter()
        out = flow(
            str(paths["dask"]), str(a.rules), level=a.level, partitions=a.partitions, full=True
        )
        t_dask = time.perf_counter() - t0

        eq_serial = _same_hits(paths["single"], paths["serial"])
        eq_dask = _same_hits(paths["single"], paths["dask"])
        where = "LocalCluster" if not a.dask_address else a.dask_address
        print(f"\npersons {persons}; {serial.plan_summary()}")
        print(
            f"rules per partition {len(serial.ran_local)} of {len(serial.locality)}, "
            f"cross step {len(serial.ran_cross)}"
        )
        print(f"{'run':<34} {'seconds':>8} {'ratio':>6} {'hits':>7}  equal to single")
        print(
            f"{'single machine (run_rules)':<34} {t_single:>8.2f} {1:>6.2f} "
            f"{sum(o.hits for o in single.outcomes):>7}"
        )
        print(
            f"{'partitioned, in process':<34} {t_serial:>8.2f} {t_serial / t_single:>6.2f} "
            f"{eq_serial[1]:>7}  {eq_serial[2] == 0} ({eq_serial[2]} rows differ)"
        )
        print(
            f"{'partitioned, Dask ' + where:<34} {t_dask:>8.2f} {t_dask / t_single:>6.2f} "
            f"{eq_dask[1]:>7}  {eq_dask[2] == 0} ({eq_dask[2]} rows differ)"
        )
        print("in-process stages: " + ", ".join(f"{k} {v:.2f}s" for k, v in serial.timings.items()))
        print("Dask stages:       " + ", ".join(f"{k} {v:.2f}s" for k, v in out["timings"].items()))
        walls = serial.partition_walls
        print(
            f"partition seconds (in process): {', '.join(f'{w:.2f}' for w in walls)}; "
            f"slowest {max(walls, default=0):.2f}, sum {sum(walls):.2f}"
        )
        statuses = sorted({o.status for o in single.outcomes})
        print(f"rule statuses (single machine): {statuses}")
        if not eq_serial[0]:
            print("no hits at all: the comparison says nothing (are the rules stale?)")
            return 1
        return 0 if eq_serial[2] == 0 and eq_dask[2] == 0 else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
