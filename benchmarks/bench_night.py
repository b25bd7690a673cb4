"""The whole night at scale: full, unchanged and one-file-changed nights, and DuckDB alone
counting and storing the same files, in one invocation.

    uv run python benchmarks/bench_night.py --persons 300000   # county cached in /work/bench
    uv run python benchmarks/bench_night.py --persons 1000000 --seed 5

The county is generated once (`crossmatch sample --persons N --seed S`) into
``/work/bench/county-<N>-s<S>`` and reused. Night 1 ("full") runs on the raw files with the
2025Q4 payment export short of its last 2% rows, into a fresh warehouse; night 2 ("unchanged")
runs again on the same files; night 3 ("changed") gets the complete 2025Q4 file (one file
changed: a quarter of payments re-exported with new rows). Each night is the same sequence the
nightly flow runs (nothing_to_do, then ingest -> resolve -> kinship -> detect in a build copy,
published by one rename, then the clues synced), each in its own process so that its peak
memory (ru_maxrss) is its own. Then DuckDB alone counts the rows of the same files, and stores
them unnormalised (``benchmarks/bench_ingest.py``'s baseline and load phases).

Prints per night and stage the seconds, peak memory, and the ratios changed/full,
unchanged (seconds), ingest/DuckDB-count and ingest/DuckDB-store; ``--check`` also compares the
changed night's results with a fresh full night on the same files (tests/incremental/compare.py).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "incremental"))
sys.path.insert(0, str(REPO / "benchmarks"))
CHANGED = Path("finance") / "一卡通发放明细_2025Q4.csv"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_night(raw: Path, wh: Path, full: bool) -> dict:
    from crossmatch.ingest.pipeline import tune_allocators
    from night import run_night

    tune_allocators()
    t = time.perf_counter()
    n = run_night(raw, REPO / "sources", REPO / "rules", wh, full=full)
    return {
        "outcome": n.outcome,
        "stages": n.stages,
        "reopened": getattr(n, "reopened", 0),
        "seconds": n.seconds,
        "stage_peak_mb": getattr(n, "peak_mb", {}),
        "total": time.perf_counter() - t,
        "peak_mb": _peak_mb(),
    }


def _child(*args: str) -> dict:
    env = {**os.environ, "_RJEM_MALLOC_CONF": "dirty_decay_ms:10000,muzzy_decay_ms:10000"}
    t = time.perf_counter()
    res = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False, env=env
    )
    if res.returncode != 0:
        sys.exit(f"{args} failed:\n{res.stderr[-3000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["wall"] = time.perf_counter() - t  # with the interpreter's start-up and imports
    return out


def _truncate(path: Path, share: float) -> int:
    lines = path.read_bytes().splitlines(keepends=True)
    n = max(1, int((len(lines) - 1) * share))
    path.write_bytes(b"".join(lines[:-n]))
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--persons", type=int, default=300_000)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--cache", type=Path, default=Path("/work/bench"))
    ap.add_argument("--work", type=Path, help="scratch folder (default: <cache>/night-<N>-s<S>)")
    ap.add_argument("--check", action="store_true", help="compare with a fresh full night")
    ap.add_argument("--night", nargs=3, metavar=("RAW", "WH", "FULL"), help=argparse.SUPPRESS)
    ap.add_argument("--phase", choices=["baseline", "load"], help=argparse.SUPPRESS)
    ap.add_argument("--raw", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--warehouse", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.night:
        print(json.dumps(one_night(Path(a.night[0]), Path(a.night[1]), a.night[2] == "1")))
        return
    if a.phase:
        import bench_ingest

        out = (
            bench_ingest.phase_baseline(a.raw)
            if a.phase == "baseline"
            else bench_ingest.phase_load(a.raw, a.warehouse)
        )
        out.pop("files", None)
        print(json.dumps(out))
        return

    county = a.cache / f"county-{a.persons}-s{a.seed}"
    if not (county / "raw").is_dir():
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "crossmatch.cli", "sample", "--persons", str(a.persons),
             "--seed", str(a.seed), "--out", str(county)],
            check=True,
        )  # fmt: skip
        print(f"generated {county} in {time.perf_counter() - t:.0f} s")
    work = a.work or a.cache / f"night-{a.persons}-s{a.seed}"
    shutil.rmtree(work, ignore_errors=True)
    raw = work / "raw"
    shutil.copytree(county / "raw", raw)
    cut = _truncate(raw / CHANGED, 0.02)
    wh = work / "w.duckdb"
    size = sum(p.stat().st_size for p in raw.rglob("*") if p.is_file())
    print(f"county {county} ({size / 1e9:.2f} GB raw); night 1 without the last {cut} rows "
          f"of {CHANGED}")  # fmt: skip

    nights = {"full": _child("--night", str(raw), str(wh), "0")}
    nights["unchanged"] = _child("--night", str(raw), str(wh), "0")
    shutil.copyfile(county / "raw" / CHANGED, raw / CHANGED)
    nights["changed"] = _child("--night", str(raw), str(wh), "0")
    base = _child("--phase", "baseline", "--raw", str(raw))
    load_wh = work / "duckdb_alone.duckdb"
    load = _child("--phase", "load", "--raw", str(raw), "--warehouse", str(load_wh))
    load_wh.unlink(missing_ok=True)
    wh_size = wh.stat().st_size

    stages = ["check", "copy", "ingest", "resolve", "kinship", "detect", "publish", "clues"]
    print(f"\n{'night':<10} {'total s':>8} {'wall s':>7} {'peak GB':>8}  " + " ".join(
        f"{s:>8}" for s in stages))  # fmt: skip
    for name, n in nights.items():
        cells = " ".join(f"{n['seconds'].get(s, 0.0):>8.1f}" for s in stages)
        print(
            f"{name:<10} {n['total']:>8.1f} {n['wall']:>7.1f} {n['peak_mb'] / 1024:>8.2f}  {cells}"
        )
    print("peak GB of the night's process when each stage ended (ru_maxrss, cumulative):")
    for name, n in nights.items():
        cells = " ".join(f"{n['stage_peak_mb'].get(s, 0.0) / 1024:>8.2f}" for s in stages)
        print(f"{name:<10} {'':>8} {'':>7} {'':>8}  {cells}")
    for name, n in nights.items():
        print(f"  {name}: {n['outcome']}; {n['stages']}; resolve re-decided "
              f"{n.get('reopened', 0)} kept links")  # fmt: skip
    full, changed = nights["full"], nights["changed"]
    ingest_s = full["seconds"]["ingest"]
    print(f"\nwarehouse {wh_size / 1e9:.2f} GB")
    print(f"DuckDB alone: count {base['seconds']:.1f} s (peak {base['peak_mb'] / 1024:.2f} GB), "
          f"store {load['seconds']:.1f} s (peak {load['peak_mb'] / 1024:.2f} GB)")  # fmt: skip
    print(f"ratios: changed/full {changed['total'] / full['total']:.2f} (target 0.2); "
          f"unchanged {nights['unchanged']['total']:.1f} s (target < 10 s); "
          f"ingest/count {ingest_s / base['seconds']:.2f}, ingest/store "
          f"{ingest_s / load['seconds']:.2f} (target 2)")  # fmt: skip
    if a.check:
        from compare import EQUAL, differences

        fresh = work / "fresh.duckdb"
        _child("--night", str(raw), str(fresh), "0")
        diff = differences(wh, fresh, EQUAL)
        print("changed night vs a fresh full night: " + ("EQUAL" if not diff else str(diff)))


if __name__ == "__main__":
    main()
