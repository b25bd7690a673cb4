"""Benchmark the synthetic county generator: wall time, peak memory, rows and bytes per size.

Each size runs in its own child process, so the peak resident set size (``ru_maxrss`` from
``os.wait4``) is that run's alone. Usage::

    uv run python benchmarks/bench_generate.py 30000 300000 3000000 --out /tmp/bench

Prints one line per size and a Markdown table at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = """
import json, sys
from crossmatch.synth import generate
s = generate(persons=int(sys.argv[1]), seed=int(sys.argv[2]), out=sys.argv[3])
print(json.dumps({"rows": s.total_rows, "bytes": s.bytes, "residents": s.residents,
                  "towns": s.towns, "villages": s.villages, "seconds": s.seconds,
                  "planted": sum(s.planted.values())}))
"""


def run(persons: int, seed: int, out: Path) -> dict[str, float]:
    """Generate one county in a child process; return its figures and peak RSS."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(persons), str(seed), str(out)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"generation of {persons} persons failed (exit {proc.returncode})")
    fig = json.loads(output.strip().splitlines()[-1])
    truth = sum(f.stat().st_size for f in (out / "truth").rglob("*") if f.is_file())
    fig.update(persons=persons, wall=wall, peak_mb=usage.ru_maxrss / 1024, truth_bytes=truth)
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", nargs="*", type=int, default=[30_000, 300_000])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=None, help="scratch folder (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the generated counties")
    args = ap.parse_args()
    base = args.out or Path(tempfile.mkdtemp(prefix="crossmatch-bench-"))
    results = []
    for n in args.sizes:
        out = base / f"county_{n}"
        fig = run(n, args.seed, out)
        results.append(fig)
        print(
            f"{n:>10,} persons: {fig['rows']:>12,} raw rows, {fig['bytes'] / 1e6:8.1f} MB raw, "
            f"{fig['truth_bytes'] / 1e6:8.1f} MB truth, {fig['wall']:8.1f} s, "
            f"peak RSS {fig['peak_mb']:7.0f} MB",
            flush=True,
        )
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    head = "| persons | towns | villages | raw rows | raw MB | truth MB | seconds | peak RSS MB |"
    print("\n" + head)
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for f in results:
        print(
            f"| {f['persons']:,} | {f['towns']} | {f['villages']} | {f['rows']:,} | "
            f"{f['bytes'] / 1e6:.0f} | {f['truth_bytes'] / 1e6:.0f} | {f['wall']:.0f} | "
            f"{f['peak_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
