"""The whole night at scale: full, unchanged and one-file-changed nights, and DuckDB alone
counting and storing the same files, in one invocation.

    uv run python benchmarks/bench_night.py --persons 300000   # county cached in /work/bench
    uv run python benchmarks/bench_night.py --persons 1000000 --seed 5

The county is generated once (`crossmatch sample --persons N --seed S`) into
``/work/bench/county-<N>-s<S>`` and reused. Night 1 ("full") runs on the raw files with the
2025Q4 payment export short of its last 2% rows, into a fresh warehouse; night 2 ("unchanged")
runs again on the same files; night 3 ("changed") gets the complete 2025Q4 file (one file
changed: a quarter of payments re-exported with new rows). Each night is what an operator's
``crossmatch run`` does: the product's ``crossmatch.night.run.run_night`` with the atomic build
(``crossmatch.publish.night_build``): the unchanged-night shortcut (under the run lock, the raw
files hashed; nothing changed: last night's results stand, no stage runs), else ingest ->
resolve -> kinship -> detect -> score in a build copy published by one rename, then clues and
report. ``--harness`` runs the test harness ``tests/incremental/night.py`` instead (no score /
report, no shortcut: the figures of earlier runs). Each night runs in its own process so that
its peak memory (ru_maxrss) is its own. Then DuckDB alone counts the rows of the same files,
and stores them unnormalised (``benchmarks/bench_ingest.py``'s baseline and load phases).

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


class _RssSampler:
    """Samples this process's resident memory every ``every`` seconds in a thread: per stage
    its own peak (ru_maxrss is cumulative over the process), and where the main thread was
    when the process reached its peak: the innermost crossmatch frames of its stack, and the
    SQL statement it was running when that frame is a DuckDB call (a query's hash table,
    sort or join shows as the statement). A peak shorter than ``every`` can be missed; the
    process's ru_maxrss stays the reference for the peak itself."""

    def __init__(self, every: float = 0.05, keep: str = "crossmatch") -> None:
        import threading

        self.every = every
        self.keep = keep  # frames whose file path contains this are reported
        self.stage = "start"
        self.stage_peak: dict[str, float] = {}
        self.stage_where: dict[str, list[str]] = {}  # each stage's own peak: where
        self.peak_mb = 0.0
        self.where: list[str] = []
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._page_kb = os.sysconf("SC_PAGE_SIZE") / 1024
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def say(self, line: str) -> None:  # run_night's `say`: "stage <name>"
        self.stage = line.removeprefix("stage ")

    def _rss_mb(self) -> float:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self._page_kb / 1024

    def _stack(self) -> list[str]:
        frame = sys._current_frames().get(self._main)
        out: list[str] = []
        while frame is not None and len(out) < 6:
            code = frame.f_code
            if self.keep in code.co_filename:
                where = code.co_filename.split("crossmatch/", 1)[-1]
                line = f"{where}:{frame.f_lineno} {code.co_name}"
                sql = next(
                    (v for k, v in frame.f_locals.items() if k in ("sql", "query", "q")
                     and isinstance(v, str)), None,
                )  # fmt: skip
                if sql and not out:
                    line += "  SQL: " + " ".join(sql.split())[:300]
                out.append(line)
            frame = frame.f_back
        return out

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                mb = self._rss_mb()
            except OSError:
                continue
            if mb > self.stage_peak.get(self.stage, 0.0) + 16:  # a new peak (16 MB steps)
                self.stage_peak[self.stage] = mb
                where = [f"stage {self.stage}, {mb / 1024:.2f} GB", *self._stack()]
                self.stage_where[self.stage] = where
                if mb > self.peak_mb:
                    self.peak_mb, self.where = mb, where


def one_night(raw: Path, wh: Path, full: bool, harness: bool = False) -> dict:
    """One night in this process: by default the product's night, what ``crossmatch run``
    runs (:func:`crossmatch.night.run.run_night` with the atomic build ``night_build``: the
    unchanged-night shortcut, ingest -> resolve -> kinship -> detect -> score in a build copy,
    published by one rename, then clues and report); with ``harness`` the test harness
    ``tests/incremental/night.py`` (no score / report, no shortcut)."""
    from crossmatch.memory import tune_allocator

    tune_allocator()  # as `crossmatch run` and crossmatch.night.run_night do
    if harness:
        from night import run_night

        t = time.perf_counter()
        with _RssSampler() as rss:
            n = run_night(raw, REPO / "sources", REPO / "rules", wh, full=full, say=rss.say)
        return {
            "path": "harness",
            "outcome": n.outcome,
            "stages": n.stages,
            "reopened": getattr(n, "reopened", 0),
            "seconds": n.seconds,
            "stage_peak_mb": getattr(n, "peak_mb", {}),
            "stage_own_peak_mb": rss.stage_peak,
            "peak_where": rss.where,
            "stage_peak_where": rss.stage_where,
            "total": time.perf_counter() - t,
            "peak_mb": _peak_mb(),
        }
    from contextlib import contextmanager

    from crossmatch.night import NightConfig, run_night
    from crossmatch.publish import night_build

    builds: list = []
    ends: dict[str, float] = {}

    @contextmanager
    def workspace(warehouse: Path):  # crossmatch run's night_build, its copy / publish timed
        with night_build(warehouse) as b:
            builds.append(b)
            yield b

    t = time.perf_counter()
    with _RssSampler() as rss:

        def stage(name: str, fn):  # run_night's stage hook: the sampler's stage, its peak
            rss.say(name)
            try:
                return fn()
            finally:
                ends[name] = _peak_mb()
                rss.say("between")

        opts = {"even_if_unchanged": True, "full_resolve": True, "full_score": True} if full else {}
        res = run_night(
            NightConfig.resolve(raw, REPO / "sources", REPO / "rules", wh),
            workspace=workspace,
            stage=stage,
            wait_seconds=60.0,
            **opts,
        )
    seconds = {k: r.seconds for k, r in res.stages.items() if r.status != "not run"}
    if res.unchanged_since:  # the shortcut: its time is the check (hashing, reading last night)
        seconds = {"check": res.stages["ingest"].seconds, "report": res.stages["report"].seconds}
    if builds:
        seconds["copy"] = builds[0].copy_seconds
        seconds["publish"] = builds[0].publish_seconds
    return {
        "path": "product",
        "outcome": "nothing to do" if res.unchanged_since else res.outcome,
        "exit_code": res.exit_code,
        "stages": {k: r.status for k, r in res.stages.items()},
        "error": res.error,
        "seconds": seconds,
        "stage_peak_mb": ends,
        "stage_own_peak_mb": rss.stage_peak,
        "peak_where": rss.where,
        "stage_peak_where": rss.stage_where,
        "total": time.perf_counter() - t,
        "peak_mb": _peak_mb(),
    }


def _child(*args: str) -> dict:
    from crossmatch.memory import POLARS_MALLOC_CONF

    env = {**os.environ, "_RJEM_MALLOC_CONF": POLARS_MALLOC_CONF}  # as the CLI sets it
    t = time.perf_counter()
    res = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False, env=env
    )
    if res.returncode != 0:
        sys.exit(f"{args} failed:\n{res.stderr[-3000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["wall"] = time.perf_counter() - t  # with the interpreter's start-up and imports
    return out


def _utf8(path: Path) -> bool:
    """Whether the file's first 4 MB decode as UTF-8 (the exports are UTF-8 or GB18030)."""
    with path.open("rb") as fh:
        head = fh.read(1 << 22)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start > len(head) - 4  # a character cut by the 4 MB boundary
    return True


def phase_store_decoded(raw: Path, wh: Path) -> dict:
    """DuckDB alone storing every file unnormalised, *with* its rows: as ``bench_ingest``'s
    load phase (CSV as VARCHAR, xlsx through calamine as text), but a CSV that is not UTF-8
    (GB18030) is first converted by iconv into a temporary file (DuckDB's CSV reader decodes
    UTF-8, UTF-16 and Latin-1 only: the plain load phase stores none of such a file's rows,
    every line is an error it ignores). Rows stored are counted per file."""
    import tempfile

    import duckdb

    import bench_ingest

    con = duckdb.connect(str(wh))
    cpu0 = bench_ingest._cpu_s()
    t0 = time.perf_counter()
    rows: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-store-") as td:
        for i, f in enumerate(bench_ingest._files(raw)):
            ext = f.suffix.lower()
            if ext == ".csv":
                src = f
                if not _utf8(f):
                    src = Path(td) / "utf8.csv"
                    with f.open("rb") as a, src.open("wb") as b:
                        subprocess.run(["iconv", "-f", "GB18030", "-t", "UTF-8"], stdin=a,
                                       stdout=b, check=True)  # fmt: skip
                con.execute(
                    f"CREATE TABLE t{i} AS SELECT * FROM read_csv(?, all_varchar = true, "
                    "header = true, ignore_errors = true, null_padding = true, "
                    "strict_mode = false)",
                    [str(src)],
                ).fetchall()
            elif ext == ".xlsx":
                import fastexcel

                sheet = fastexcel.read_excel(str(f)).load_sheet(0, header_row=None, dtypes="string")
                con.register("_x", sheet.to_arrow())
                con.execute(f"CREATE TABLE t{i} AS SELECT * FROM _x").fetchall()
                con.unregister("_x")
            else:
                continue
            rows[f.relative_to(raw).as_posix()] = con.execute(
                f"SELECT count(*) FROM t{i}"
            ).fetchall()[0][0]
    con.close()
    return {
        "seconds": time.perf_counter() - t0,
        "cpu": bench_ingest._cpu_s() - cpu0,
        "peak_mb": _peak_mb(),
        "rows": sum(rows.values()),
        "files_without_rows": sorted(k for k, v in rows.items() if not v),
    }


def _truncate(path: Path, share: float) -> int:
    lines = path.read_bytes().splitlines(keepends=True)
    n = max(1, int((len(lines) - 1) * share))
    path.write_bytes(b"".join(lines[:-n]))
    return n


STAGES = ["check", "copy", "ingest", "resolve", "kinship", "detect", "score", "publish", "clues",
          "report"]  # fmt: skip


def run_size(
    persons: int,
    seed: int,
    cache: Path,
    work: Path | None,
    check: bool,
    nights_wanted: tuple[str, ...] = ("full", "unchanged", "changed"),
    harness: bool = False,
) -> dict:
    """Full, unchanged and changed nights and DuckDB alone at one county size; prints the
    size's tables and returns its figures (also written to ``<work>/result.json``)."""
    county = cache / f"county-{persons}-s{seed}"
    if not (county / "raw").is_dir():
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "crossmatch.cli", "sample", "--persons", str(persons),
             "--seed", str(seed), "--out", str(county)],
            check=True,
        )  # fmt: skip
        print(f"generated {county} in {time.perf_counter() - t:.0f} s")
    work = work or cache / f"night-{persons}-s{seed}"
    shutil.rmtree(work, ignore_errors=True)
    raw = work / "raw"
    shutil.copytree(county / "raw", raw)
    cut = _truncate(raw / CHANGED, 0.02)
    wh = work / "w.duckdb"
    size = sum(p.stat().st_size for p in raw.rglob("*") if p.is_file())
    print(f"county {county} ({size / 1e9:.2f} GB raw); night 1 without the last {cut} rows "
          f"of {CHANGED}", flush=True)  # fmt: skip

    # the cheap and the comparable first, the changed night last (the longest at 3M); the
    # figures so far are in <work>/result.json after every step, so a run stopped during the
    # changed night keeps the rest. DuckDB alone reads the files the full night ingested.
    hflag = ("--harness",) if harness else ()
    result: dict = {"persons": persons, "seed": seed, "raw_gb": size / 1e9, "nights": {},
                    "path": "harness" if harness else "product"}  # fmt: skip
    out = work / "result.json"
    nights = result["nights"]

    def save() -> None:
        result["load_average"] = os.getloadavg()[0]
        out.write_text(json.dumps(result, indent=1))

    wanted = [n for n in ("full", "unchanged", "changed") if n in nights_wanted]
    for name in [n for n in wanted if n != "changed"]:
        nights[name] = _child("--night", str(raw), str(wh), "0", *hflag)
        save()
    base = result["duckdb_count"] = _child("--phase", "baseline", "--raw", str(raw))
    save()
    load_wh = work / "duckdb_alone.duckdb"
    load = result["duckdb_store"] = _child(
        "--phase", "load", "--raw", str(raw), "--warehouse", str(load_wh)
    )
    load_wh.unlink(missing_ok=True)
    save()
    dec = result["duckdb_store_decoded"] = _child(
        "--phase", "store_decoded", "--raw", str(raw), "--warehouse", str(load_wh)
    )
    load_wh.unlink(missing_ok=True)
    save()
    if "changed" in wanted:
        shutil.copyfile(county / "raw" / CHANGED, raw / CHANGED)
        nights["changed"] = _child("--night", str(raw), str(wh), "0", *hflag)
    wh_size = wh.stat().st_size
    result["warehouse_gb"] = wh_size / 1e9
    save()

    stages = STAGES
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
    print("peak GB during each stage (resident memory sampled every 50 ms):")
    for name, n in nights.items():
        own = n.get("stage_own_peak_mb", {})
        cells = " ".join(f"{own.get(s, 0.0) / 1024:>8.2f}" for s in stages)
        print(f"{name:<10} {'':>8} {'':>7} {'':>8}  {cells}")
    for name, n in nights.items():
        print(f"  {name}: {n['outcome']}; {n['stages']}; resolve re-decided "
              f"{n.get('reopened', 0)} kept links")  # fmt: skip
    for name, n in nights.items():
        if n.get("peak_where"):
            print(f"  {name} night's peak: " + "\n      ".join(n["peak_where"]))
        for stage, where in (n.get("stage_peak_where") or {}).items():
            if stage in ("resolve", "kinship", "detect", "ingest") and where != n["peak_where"]:
                print(f"    {stage}'s own peak: " + "\n      ".join(where[:4]))
    full = nights["full"]
    ingest_s = full["seconds"]["ingest"]
    print(f"\nwarehouse {wh_size / 1e9:.2f} GB")
    print(f"DuckDB alone: count {base['seconds']:.1f} s (peak {base['peak_mb'] / 1024:.2f} GB), "
          f"store {load['seconds']:.1f} s (peak {load['peak_mb'] / 1024:.2f} GB), store with "
          f"the GB18030 files decoded by iconv {dec['seconds']:.1f} s ({dec['rows']:,} rows; "
          f"peak {dec['peak_mb'] / 1024:.2f} GB)")  # fmt: skip
    ratios = [
        f"unchanged {nights['unchanged']['total']:.1f} s (target < 10 s)"
        if "unchanged" in nights
        else "",
        f"changed/full {nights['changed']['total'] / full['total']:.2f} (target 0.2)"
        if "changed" in nights
        else "",
        f"ingest/count {ingest_s / base['seconds']:.2f}",
        f"ingest/store {ingest_s / load['seconds']:.2f}",
        f"ingest/store decoded {ingest_s / dec['seconds']:.2f} (target 2)",
    ]
    print("ratios: " + "; ".join(r for r in ratios if r), flush=True)
    if dec["files_without_rows"]:
        print(f"  (files of which DuckDB stored no row even decoded: {dec['files_without_rows']})")
    if check:
        from compare import EQUAL, differences

        fresh = work / "fresh.duckdb"
        _child("--night", str(raw), str(fresh), "0", *hflag)
        diff = differences(wh, fresh, EQUAL)
        print("changed night vs a fresh full night: " + ("EQUAL" if not diff else str(diff)))
        result["check"] = "EQUAL" if not diff else str(diff)
    save()
    print(f"figures in {work / 'result.json'}")
    return result


def growth_table(results: list[dict]) -> str:
    """The growth curve: one row per county size, the three nights, the stages of the full
    night, peaks and the ratios (targets of issue 16 in the header). A night or a DuckDB phase
    a run did not reach shows as ``-``."""

    def cell(value: float | None, width: int, digits: int = 1) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"

    head = (
        f"{'persons':>9} {'full s':>7} {'peak GB':>7} {'ingest':>7} {'resolve':>7} "
        f"{'kinship':>7} {'detect':>7} {'publish':>7} {'unch. s':>7} {'chg s':>6} "
        f"{'chg GB':>6} {'chg/full':>8} {'store s':>7} {'ing/store':>9} {'dec. s':>7} "
        f"{'ing/dec':>7}"
    )
    lines = [
        "growth curve (targets at 3M: full < 180 s and < 4 GB, unchanged < 10 s, changed/full"
        " < 0.2, ingest/store < 2; store: DuckDB alone storing the files, dec.: the same with"
        " the GB18030 files decoded by iconv first)",
        head,
    ]
    for r in sorted(results, key=lambda r: r["persons"]):
        f = r["nights"]["full"]
        u, c = r["nights"].get("unchanged"), r["nights"].get("changed")
        sec = f["seconds"]
        ing = sec.get("ingest", 0.0)
        store = (r.get("duckdb_store") or {}).get("seconds")
        dec = (r.get("duckdb_store_decoded") or {}).get("seconds")
        lines.append(
            f"{r['persons']:>9} {f['total']:>7.1f} {f['peak_mb'] / 1024:>7.2f} "
            f"{ing:>7.1f} {sec.get('resolve', 0):>7.1f} "
            f"{sec.get('kinship', 0):>7.1f} {sec.get('detect', 0):>7.1f} "
            f"{sec.get('publish', 0):>7.1f} {cell(u and u['total'], 7)} "
            f"{cell(c and c['total'], 6)} {cell(c and c['peak_mb'] / 1024, 6, 2)} "
            f"{cell(c and c['total'] / f['total'], 8, 2)} {cell(store, 7)} "
            f"{cell(store and ing / store, 9, 2)} {cell(dec, 7)} {cell(dec and ing / dec, 7, 2)}"
        )
    for r in sorted(results, key=lambda r: r["persons"]):
        where = r["nights"]["full"].get("peak_where") or []
        if where:
            lines.append(f"{r['persons']:>9} full night's peak: " + "; ".join(where[:3]))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--persons", type=int, default=300_000)
    ap.add_argument(
        "--sizes",
        help="comma-separated county sizes, one after the other, then the growth curve "
        "(e.g. 300000,1000000,3000000)",
    )
    ap.add_argument(
        "--table",
        nargs="+",
        type=Path,
        metavar="RESULT_JSON",
        help="print the growth curve of earlier runs (their <work>/result.json) and exit",
    )
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--cache", type=Path, default=Path("/work/bench"))
    ap.add_argument("--work", type=Path, help="scratch folder (default: <cache>/night-<N>-s<S>)")
    ap.add_argument("--check", action="store_true", help="compare with a fresh full night")
    ap.add_argument(
        "--nights",
        default="full,unchanged,changed",
        help="which nights to run (the full night always runs; default: all three)",
    )
    ap.add_argument(
        "--harness",
        action="store_true",
        help="run each night through the test harness tests/incremental/night.py (no score / "
        "report, no unchanged-night shortcut) instead of crossmatch run's run_night",
    )
    ap.add_argument("--night", nargs=3, metavar=("RAW", "WH", "FULL"), help=argparse.SUPPRESS)
    ap.add_argument(
        "--phase", choices=["baseline", "load", "store_decoded"], help=argparse.SUPPRESS
    )
    ap.add_argument("--raw", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--warehouse", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.night:
        print(json.dumps(one_night(Path(a.night[0]), Path(a.night[1]), a.night[2] == "1",
                                   harness=a.harness)))  # fmt: skip
        return
    if a.phase == "store_decoded":
        print(json.dumps(phase_store_decoded(a.raw, a.warehouse)))
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
    if a.table:
        print(growth_table([json.loads(p.read_text()) for p in a.table]))
        return
    nights = ("full", *(n.strip() for n in a.nights.split(",") if n.strip() != "full"))
    if unknown := set(nights) - {"full", "unchanged", "changed"}:
        ap.error(f"--nights: unknown {sorted(unknown)} (full, unchanged, changed)")
    if a.sizes:
        sizes = [int(x) for x in a.sizes.split(",") if x.strip()]
        if a.work and len(sizes) > 1:
            ap.error("--work names one scratch folder: give it with one size only")
        results = []
        for n in sizes:
            print(f"\n=== {n} persons ===", flush=True)
            results.append(run_size(n, a.seed, a.cache, a.work, a.check, nights, a.harness))
        print("\n" + growth_table(results))
        return
    run_size(a.persons, a.seed, a.cache, a.work, a.check, nights, a.harness)


if __name__ == "__main__":
    main()
