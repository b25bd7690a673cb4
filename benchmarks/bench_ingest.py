"""Ingestion speed and memory against DuckDB alone reading the same files, in one invocation.

    uv run python benchmarks/bench_ingest.py                      # 3M-person county (~30M rows)
    uv run python benchmarks/bench_ingest.py --persons 50000      # quick look

The county is generated with `crossmatch sample --persons N --seed 1 --out DIR` when DIR/raw
is missing. Each phase runs in its own subprocess so that its peak memory (ru_maxrss) is its own:

* baseline: DuckDB counts the rows of every CSV (`read_csv`, all VARCHAR, ignore_errors: it
  cannot decode GB18030 but still splits those files) and Parquet file; .xlsx via calamine
  (fastexcel), since DuckDB's excel extension cannot be installed offline;
* ingest: `crossmatch.ingest.ingest` into a fresh warehouse (decode, split, normalise,
  quarantine, duplicates, lineage, insert; two files at a time, DuckDB using both cores);
* re-ingest: the same again (every file unchanged: hashes only);
* load (reference): DuckDB alone storing every file unnormalised in a DuckDB file (CSV as
  VARCHAR, xlsx through calamine as text): the cost of writing the rows at all.

Prints per-file rows and seconds, both totals, the ratio (target <= 2), rows per second and
peak memory (target < 4 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _cpu_s() -> float:
    """CPU seconds of this phase, its own and its children's (iconv decodes GB18030 files in
    a child process): steadier than wall time on a shared machine."""
    me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _files(raw: Path) -> list[Path]:
    return sorted(p for p in raw.rglob("*") if p.is_file())


def phase_load(raw: Path, wh: Path) -> dict:
    """DuckDB alone *storing* every file unnormalised in a DuckDB file: CSV as VARCHAR
    (`read_csv`, no GB18030 decoding), xlsx read by calamine (as ingest does) and stored as
    text. What writing the rows costs before any normalisation, lineage or quarantine."""
    import duckdb

    con = duckdb.connect(str(wh))
    cpu0 = _cpu_s()
    t0 = time.perf_counter()
    for i, p in enumerate(_files(raw)):
        if p.suffix.lower() == ".csv":
            con.execute(
                f"CREATE TABLE t{i} AS SELECT * FROM read_csv(?, all_varchar = true, "
                "header = true, ignore_errors = true, null_padding = true, strict_mode = false)",
                [str(p)],
            )
        elif p.suffix.lower() == ".xlsx":
            import fastexcel

            sheet = fastexcel.read_excel(str(p)).load_sheet(0, header_row=None, dtypes="string")
            con.register("_x", sheet.to_arrow())
            con.execute(f"CREATE TABLE t{i} AS SELECT * FROM _x")
            con.unregister("_x")
    con.close()
    return {"seconds": time.perf_counter() - t0, "cpu": _cpu_s() - cpu0, "peak_mb": _peak_mb()}


def phase_baseline(raw: Path) -> dict:
    import duckdb

    con = duckdb.connect()
    out = {}
    cpu0 = _cpu_s()
    t0 = time.perf_counter()
    for p in _files(raw):
        t = time.perf_counter()
        ext = p.suffix.lower()
        if ext == ".csv":
            # GB18030 bytes are not valid UTF-8; DuckDB cannot decode them, but counting rows
            # with ignore_errors still parses every line (the count matches ours)
            n = con.execute(
                "SELECT count(*) FROM read_csv(?, all_varchar = true, header = true, "
                "ignore_errors = true, null_padding = true, strict_mode = false)",
                [str(p)],
            ).fetchone()[0]
        elif ext == ".parquet":
            n = con.execute("SELECT count(*) FROM read_parquet(?)", [str(p)]).fetchone()[0]
        elif ext == ".xlsx":
            import fastexcel

            n = fastexcel.read_excel(str(p)).load_sheet(0, header_row=None).height
        else:
            continue
        out[p.relative_to(raw).as_posix()] = {"rows": int(n), "s": time.perf_counter() - t}
    return {
        "files": out,
        "seconds": time.perf_counter() - t0,
        "cpu": _cpu_s() - cpu0,
        "peak_mb": _peak_mb(),
    }


def phase_ingest(raw: Path, sources: Path, wh: Path) -> dict:
    from crossmatch.ingest import ingest
    from crossmatch.memory import tune_allocator

    tune_allocator()  # as `crossmatch ingest` does
    cpu0 = _cpu_s()
    t0 = time.perf_counter()
    s = ingest(raw, sources, wh)
    files = {
        r.file: {
            "rows": r.rows_read,
            "loaded": r.rows_loaded,
            "quarantined": r.rows_quarantined,
            "status": r.status,
            "s": r.seconds,
        }
        for r in s.results
    }
    return {
        "files": files,
        "seconds": time.perf_counter() - t0,
        "cpu": _cpu_s() - cpu0,
        "peak_mb": _peak_mb(),
        "failed": [r.message for r in s.failed],
    }


def _child(phase: str, *args: str) -> dict:
    cmd = [sys.executable, __file__, "--phase", phase, *args]
    from crossmatch.memory import POLARS_MALLOC_CONF

    # as `crossmatch ingest` does (see crossmatch.memory)
    env = {**os.environ, "_RJEM_MALLOC_CONF": POLARS_MALLOC_CONF}
    res = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if res.returncode != 0:
        sys.exit(f"phase {phase} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--persons", type=int, default=3_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--county", type=Path, help="county folder (default /tmp/county<N>)")
    ap.add_argument("--sources", type=Path, default=REPO / "sources")
    ap.add_argument("--phase", choices=["baseline", "ingest", "load"], help=argparse.SUPPRESS)
    ap.add_argument("--warehouse", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    county = a.county or Path(tempfile.gettempdir()) / f"county{a.persons}"
    raw = county / "raw"
    if a.phase == "baseline":
        print(json.dumps(phase_baseline(raw)))
        return
    if a.phase == "ingest":
        print(json.dumps(phase_ingest(raw, a.sources, a.warehouse)))
        return
    if a.phase == "load":
        print(json.dumps(phase_load(raw, a.warehouse)))
        return

    if not raw.is_dir():
        print(f"generating {county} ({a.persons} persons, seed {a.seed}) ...", flush=True)
        t = time.perf_counter()
        subprocess.run(
            [
                "crossmatch",
                "sample",
                "--persons",
                str(a.persons),
                "--seed",
                str(a.seed),
                "--out",
                str(county),
            ],
            check=True,
        )
        print(f"  generated in {time.perf_counter() - t:.0f}s")
    total_bytes = 0
    for p in _files(raw):  # warm the page cache so both phases read from memory
        with p.open("rb") as fh:
            while chunk := fh.read(1 << 24):
                total_bytes += len(chunk)
    with tempfile.TemporaryDirectory() as td:
        wh = Path(td) / "bench.duckdb"
        args = ["--county", str(county), "--sources", str(a.sources), "--warehouse", str(wh)]
        base = _child("baseline", *args)
        ing = _child("ingest", *args)
        again = _child("ingest", *args)
        wh_mb = wh.stat().st_size / 1e6
        load = _child("load", *args[:-1], str(Path(td) / "load.duckdb"))

    print(f"\ncounty {county}: {len(base['files'])} files, {total_bytes / 1e6:.0f} MB")
    print(
        f"{'file':50} {'duckdb rows':>11} {'our rows':>10} {'duckdb s':>9} {'ingest s':>9} "
        f"{'quarant.':>9}"
    )
    for f, b in base["files"].items():
        i = ing["files"].get(f, {})
        print(
            f"{f:50} {b['rows']:>11} {i.get('rows', 0):>10} {b['s']:>9.2f} "
            f"{i.get('s', float('nan')):>9.2f} {i.get('quarantined', 0):>9}"
        )
    print(
        "(duckdb rows: counted with ignore_errors; DuckDB cannot decode GB18030 and skips lines"
        " it finds invalid, xlsx rows include title/header rows)"
    )
    rows = sum(v["rows"] for v in ing["files"].values())
    ratio = ing["seconds"] / base["seconds"]
    print(
        f"\nDuckDB alone (count rows): {base['seconds']:.1f} s (CPU {base['cpu']:.1f} s), peak"
        f" {base['peak_mb']:.0f} MB"
        f"\ncrossmatch ingest:         {ing['seconds']:.1f} s (CPU {ing['cpu']:.1f} s), peak"
        f" {ing['peak_mb']:.0f} MB, {rows / ing['seconds']:,.0f} rows/s ({rows:,} rows,"
        f" warehouse {wh_mb:.0f} MB)"
        f"\nratio ingest / DuckDB:     {ratio:.2f}  (target <= 2; CPU ratio"
        f" {ing['cpu'] / base['cpu']:.2f}; load average {os.getloadavg()[0]:.1f})"
        f"\nre-ingest, all unchanged:  {again['seconds']:.1f} s"
        f"\nreference, DuckDB alone storing every file unnormalised (CSV as VARCHAR without"
        f" GB18030 decoding, xlsx as text): {load['seconds']:.1f} s (CPU {load['cpu']:.1f} s),"
        f" {load['seconds'] / base['seconds']:.2f} x the count; ingest / that"
        f" {ing['seconds'] / load['seconds']:.2f}"
    )
    if ing["failed"]:
        print("FAILED files:\n  " + "\n  ".join(ing["failed"]))


if __name__ == "__main__":
    main()
