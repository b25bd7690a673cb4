"""Same counties, two revisions: are the hits and the identity figures unchanged? (issue 11)

For each revision a temporary ``git worktree`` with its own venv (``uv sync``; the uv cache
makes it fast). The counties are generated once, with one revision's ``crossmatch sample``
(the committed sample county ``data/sample`` is copied from that revision), then each revision
runs ``ingest``, ``resolve``, ``detect`` and ``identity-eval`` on the same files in its own
warehouse. Compared: the latest detect run's hits as a multiset of
(rule_id, subject, period, amount), each rule's status in that run, and the identity-eval
figures (overall and damaged: P, R, F1, records, true/predicted/correct pairs). Prints a table
per county; exits 0 when everything is equal, 1 with the differing rows otherwise, 2 when a
step fails.

    uv run python benchmarks/compare_revisions.py                 # 9a89aed vs e50729b
    uv run python benchmarks/compare_revisions.py 9a89aed HEAD --counties sample,seed11
    uv run python benchmarks/compare_revisions.py --keep /tmp/cmp  # keep worktrees and data

Counties (``--counties``, comma-separated): ``sample`` (data/sample), ``seed11`` and ``seed23``
(``--persons 8000``, default layout), ``seed11-monthly`` (the monthly layout, mapped by
``sources/monthly``). The CLI of each revision is read from its ``--help``: an option a
revision does not have (e.g. ``detect --sources`` before the contract followed the mapping
folder) is left out for that revision, and printed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_A, DEFAULT_B = "9a89aed", "e50729b"


@dataclass(frozen=True)
class County:
    name: str
    seed: int | None  # None: the committed data/sample
    layout: str = "default"

    @property
    def sources(self) -> str:
        return "sources" if self.layout == "default" else f"sources/{self.layout}"


COUNTIES = {
    "sample": County("sample", None),
    "seed11": County("seed11", 11),
    "seed23": County("seed23", 23),
    "seed11-monthly": County("seed11-monthly", 11, "monthly"),
    "seed23-monthly": County("seed23-monthly", 23, "monthly"),
}


class StepFailed(RuntimeError):
    pass


CREATED: list[Path] = []  # worktrees this run added (removed at the end unless --keep)


@dataclass
class Revision:
    label: str  # as given (e.g. 9a89aed, HEAD)
    sha: str
    tree: Path
    options: dict[str, set[str]] = field(default_factory=dict)
    dropped: set[tuple[str, str]] = field(default_factory=set)

    @property
    def exe(self) -> Path:
        return self.tree / ".venv" / "bin" / "crossmatch"

    @property
    def python(self) -> Path:
        return self.tree / ".venv" / "bin" / "python"


@dataclass
class Outcome:
    hits: Counter[tuple[str, str, str, str]]
    statuses: dict[str, str]
    identity: dict[str, dict[str, str]]
    seconds: float


def _run(cmd: list[str], cwd: Path, ok: tuple[int, ...] = (0,), env=None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if proc.returncode not in ok:
        raise StepFailed(
            f"{' '.join(map(str, cmd))} (in {cwd}) exited {proc.returncode}:\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        )
    return proc.stdout


def _git(*args: str) -> str:
    return _run(["git", *args], ROOT).strip()


def prepare(label: str, work: Path) -> Revision:
    sha = _git("rev-parse", "--verify", f"{label}^{{commit}}")
    tree = work / f"rev-{label.replace('/', '_')}-{sha[:9]}"
    if not tree.exists():
        _git("worktree", "add", "--detach", str(tree), sha)
    CREATED.append(tree)
    env = {**os.environ, "VIRTUAL_ENV": str(tree / ".venv")}
    env.pop("UV_PROJECT_ENVIRONMENT", None)
    try:
        _run(["uv", "sync", "--frozen", "--offline", "--quiet"], tree, env=env)
    except StepFailed:  # a wheel not in the cache: let uv fetch it
        _run(["uv", "sync", "--frozen", "--quiet"], tree, env=env)
    rev = Revision(label, sha, tree)
    for command in ("sample", "ingest", "resolve", "detect", "identity-eval"):
        text = _run([str(rev.exe), command, "--help"], tree)
        rev.options[command] = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text))
    return rev


def cli(rev: Revision, command: str, args: list[tuple[str, str | None]], ok=(0,)) -> str:
    """Run ``crossmatch COMMAND`` of a revision, leaving out options it does not know."""
    cmd = [str(rev.exe), command]
    for flag, value in args:
        if flag not in rev.options[command]:
            rev.dropped.add((command, flag))
            continue
        cmd.append(flag)
        if value is not None:
            cmd.append(value)
    return _run(cmd, rev.tree, ok=ok)


def generate(gen: Revision, county: County, data: Path, persons: int) -> Path:
    out = data / county.name
    if (out / "raw").is_dir() and (out / "truth").is_dir():
        return out
    if county.seed is None:
        out.mkdir(parents=True, exist_ok=True)
        for part in ("raw", "truth"):
            shutil.copytree(gen.tree / "data" / "sample" / part, out / part)
        return out
    tmp = data / f".{county.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    args: list[tuple[str, str | None]] = [
        ("--persons", str(persons)),
        ("--seed", str(county.seed)),
        ("--out", str(tmp)),
    ]
    if county.layout != "default":
        args.append(("--layout", county.layout))
    cli(gen, "sample", args)
    tmp.rename(out)
    return out


IDENTITY_LINE = re.compile(
    r"^(?P<label>\S+)\s+P (?P<P>[\d.]+)\s+R (?P<R>[\d.]+)\s+F1 (?P<F1>[\d.]+)\s+"
    r"\(records (?P<records>[\d,]+), true pairs (?P<true>[\d,]+), "
    r"predicted (?P<predicted>[\d,]+), correct (?P<correct>[\d,]+)\)"
)

DUMP_HITS = """
import csv, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
run = con.execute(
    "SELECT run_id FROM detect_run ORDER BY started_at DESC LIMIT 1").fetchone()[0]
w = csv.writer(sys.stdout)
w.writerow(["#statuses"])
for row in con.execute(
        "SELECT rule_id, status FROM rule_run WHERE run_id = ? ORDER BY rule_id", [run]).fetchall():
    w.writerow(row)
w.writerow(["#hits"])
for row in con.execute(
        "SELECT rule_id, subject, coalesce(period, ''), coalesce(CAST(amount AS VARCHAR), '') "
        "FROM hit WHERE run_id = ?", [run]).fetchall():
    w.writerow(row)
"""


def pipeline(rev: Revision, county: County, raw_root: Path, out: Path) -> Outcome:
    """ingest, resolve, detect, identity-eval with one revision on one county's files."""
    out.mkdir(parents=True, exist_ok=True)
    wh = out / "crossmatch.duckdb"
    for stale in out.glob("crossmatch.duckdb*"):
        stale.unlink()
    sources = str(rev.tree / county.sources)
    warehouse = ("--warehouse", str(wh))
    t0 = time.perf_counter()
    cli(
        rev,
        "ingest",
        [("--raw", str(raw_root / "raw")), ("--sources", sources), warehouse],
        ok=(0, 4),
    )
    cli(rev, "resolve", [warehouse, ("--sources", sources)])
    cli(
        rev,
        "detect",
        [("--rules", str(rev.tree / "rules")), ("--sources", sources), warehouse, ("--full", None)],
        ok=(0, 4),
    )
    seconds = time.perf_counter() - t0
    text = cli(rev, "identity-eval", [("--truth", str(raw_root / "truth")), warehouse])
    identity = {}
    for line in text.splitlines():
        m = IDENTITY_LINE.match(line.strip())
        if m:
            identity[m["label"]] = {k: v for k, v in m.groupdict().items() if k != "label"}
    if "overall" not in identity:
        raise StepFailed(f"{rev.label}: no 'overall' line in identity-eval output:\n{text}")
    dump = _run([str(rev.python), "-c", DUMP_HITS, str(wh)], rev.tree)
    statuses: dict[str, str] = {}
    hits: Counter[tuple[str, str, str, str]] = Counter()
    section = None
    for row in csv.reader(io.StringIO(dump)):
        if row and row[0].startswith("#"):
            section = row[0]
        elif section == "#statuses":
            statuses[row[0]] = row[1]
        elif section == "#hits":
            hits[(row[0], row[1], row[2], row[3])] += 1
    return Outcome(hits, statuses, identity, seconds)


def compare(county: County, a: Revision, b: Revision, oa: Outcome, ob: Outcome, show: int) -> int:
    """Print the county's table and the differing rows; return how many rows differ."""
    print(f"\n== {county.name} (layout {county.layout}) ==")
    rules = sorted(set(oa.statuses) | set(ob.statuses) | {k[0] for k in oa.hits + ob.hits})
    per_a = Counter(k[0] for k in oa.hits.elements())
    per_b = Counter(k[0] for k in ob.hits.elements())
    amount_a: dict[str, float] = {}
    amount_b: dict[str, float] = {}
    for hits, amounts in ((oa.hits, amount_a), (ob.hits, amount_b)):
        for (rule, _s, _p, amt), n in hits.items():
            amounts[rule] = amounts.get(rule, 0.0) + n * (float(amt) if amt else 0.0)
    la, lb = a.label[:12], b.label[:12]
    head = f"{'rule':<34} {'status ' + la:>20} {'status ' + lb:>20} {'hits ' + la:>17} "
    head += f"{'hits ' + lb:>17} {'same':>5}"
    print(head)
    differing = 0
    for rule in rules:
        only_a = {k: n for k, n in (oa.hits - ob.hits).items() if k[0] == rule}
        only_b = {k: n for k, n in (ob.hits - oa.hits).items() if k[0] == rule}
        same = not only_a and not only_b and oa.statuses.get(rule) == ob.statuses.get(rule)
        print(
            f"{rule:<34} {oa.statuses.get(rule, '-'):>20} {ob.statuses.get(rule, '-'):>20} "
            f"{per_a[rule]:>17,} {per_b[rule]:>17,} {'yes' if same else 'NO':>5}"
        )
        if not same:
            differing += sum(only_a.values()) + sum(only_b.values()) or 1
            for label, rows in ((a.label, only_a), (b.label, only_b)):
                for k, n in sorted(rows.items())[:show]:
                    print(f"    only in {label}: {k}" + (f" x{n}" if n > 1 else ""))
                if len(rows) > show:
                    print(f"    ... {len(rows) - show} more only in {label}")
    total_a, total_b = sum(oa.hits.values()), sum(ob.hits.values())
    print(
        f"{'total':<34} {'':>20} {'':>20} {total_a:>17,} {total_b:>17,} "
        f"{'yes' if oa.hits == ob.hits else 'NO':>5}"
    )
    print(
        f"amount: {sum(amount_a.values()):,.2f} vs {sum(amount_b.values()):,.2f}; "
        f"pipeline seconds {oa.seconds:.0f} vs {ob.seconds:.0f}"
    )
    for label in sorted(set(oa.identity) | set(ob.identity)):
        fa, fb = oa.identity.get(label), ob.identity.get(label)
        same = fa == fb
        differing += 0 if same else 1

        def fmt(f):
            if f is None:
                return "-"
            return (
                f"P {f['P']} R {f['R']} F1 {f['F1']} (records {f['records']}, true "
                f"{f['true']}, predicted {f['predicted']}, correct {f['correct']})"
            )

        print(f"identity {label:<8} {la}: {fmt(fa)}")
        print(f"identity {label:<8} {lb}: {fmt(fb)}  {'same' if same else 'DIFFERENT'}")
    return differing


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rev_a", nargs="?", default=DEFAULT_A)
    p.add_argument("rev_b", nargs="?", default=DEFAULT_B)
    p.add_argument("--counties", default="sample,seed11,seed23,seed11-monthly")
    p.add_argument("--persons", type=int, default=8000)
    p.add_argument(
        "--generate-with",
        choices=("a", "b"),
        default="a",
        help="Whose `crossmatch sample` renders the counties (default: the older, a).",
    )
    p.add_argument("--keep", type=Path, default=None, help="Keep worktrees and data here.")
    p.add_argument("--show", type=int, default=10, help="Differing rows shown per rule.")
    p.add_argument("--json", type=Path, default=None, help="Also write the figures as JSON.")
    args = p.parse_args(argv)
    unknown = [c for c in args.counties.split(",") if c not in COUNTIES]
    if unknown:
        p.error(f"unknown county {unknown}; choose from {', '.join(COUNTIES)}")
    counties = [COUNTIES[c] for c in args.counties.split(",")]
    work = args.keep or Path(tempfile.mkdtemp(prefix="crossmatch-cmp-"))
    work.mkdir(parents=True, exist_ok=True)
    revs: list[Revision] = []
    code = 0
    report: dict = {}
    try:
        for label in (args.rev_a, args.rev_b):
            t0 = time.perf_counter()
            rev = prepare(label, work)
            revs.append(rev)
            print(f"{label}: {rev.sha[:9]} in {rev.tree} ({time.perf_counter() - t0:.0f} s)")
        a, b = revs
        gen = a if args.generate_with == "a" else b
        total = 0
        for county in counties:
            raw = generate(gen, county, work / "data", args.persons)
            oa = pipeline(a, county, raw, work / "out" / a.sha[:9] / county.name)
            ob = pipeline(b, county, raw, work / "out" / b.sha[:9] / county.name)
            n = compare(county, a, b, oa, ob, args.show)
            total += n
            report[county.name] = {
                "differing": n,
                "hits": [sum(oa.hits.values()), sum(ob.hits.values())],
                "identity": [oa.identity, ob.identity],
            }
        for rev in revs:
            for command, flag in sorted(rev.dropped):
                print(f"note: {rev.label} has no `{command} {flag}`; left out")
        print(
            f"\n{len(counties)} counties, generated by {gen.label}: "
            + ("hits and identity figures equal" if total == 0 else f"{total} differing rows")
        )
        code = 0 if total == 0 else 1
    except StepFailed as exc:
        print(f"step failed: {exc}", file=sys.stderr)
        code = 2
    finally:
        if args.json:
            args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
        if args.keep is None:
            for tree in CREATED:
                _git("worktree", "remove", "--force", str(tree))
            shutil.rmtree(work, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
