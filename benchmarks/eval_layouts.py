"""Rule and identity quality on the same county rendered in every departments' layout (issue 17).

For each (layout, seed): ``crossmatch sample --layout L --seed S --persons N``, then
``crossmatch validate`` / ``ingest`` / ``resolve`` / ``detect`` with ``sources/<layout>/``
(``sources/`` for ``default``), then scores the hits against ``truth/planted.csv`` (per rule
recall, precision, traps flagged) and the identity links against ``truth/records.csv`` (pairwise
F1 overall and on damaged records). Prints one table per layout and a summary; exits 1 when any
target misses: per-rule recall >= 0.98, precision >= 0.95, no trap flagged, identity F1 >= 0.995
(overall and damaged), or when a step fails.

    uv run python benchmarks/eval_layouts.py --layouts all --seeds 11,23,37 --persons 8000
    uv run python benchmarks/eval_layouts.py --layouts monthly --seeds 11 --persons 1500 \
        --keep /tmp/ev
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECALL, PRECISION, IDENTITY_F1 = 0.98, 0.95, 0.995


@dataclass
class Run:
    layout: str
    seed: int
    steps: dict[str, str] = field(default_factory=dict)  # step -> "ok" or the error tail
    rules: list = field(default_factory=list)  # crossmatch.detect.evaluate.RuleScore
    identity: dict = field(default_factory=dict)  # label -> PairScores
    seconds: float = 0.0
    misses: list[str] = field(default_factory=list)


def _step(run: Run, name: str, args: list[str], cwd: Path) -> bool:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "crossmatch.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    ok = proc.returncode == 0
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
    run.steps[name] = "ok" if ok else f"exit {proc.returncode}: " + " | ".join(tail)[:300]
    run.steps[name + "_s"] = f"{time.perf_counter() - t0:.1f}"
    return ok


def evaluate_one(
    layout: str, seed: int, persons: int, work: Path, rules: Path = ROOT / "rules"
) -> Run:
    import duckdb

    from crossmatch.detect.evaluate import evaluate as score_rules
    from crossmatch.identity.evaluate import evaluate as score_identity

    run = Run(layout, seed)
    t0 = time.perf_counter()
    county = work / f"{layout}-{seed}"
    wh = county / "crossmatch.duckdb"
    sources = ROOT / "sources" if layout == "default" else ROOT / "sources" / layout
    raw, truth = county / "raw", county / "truth"
    gen = ["sample", "--layout", layout, "--seed", str(seed), "--persons", str(persons),
           "--out", str(county)]  # fmt: skip
    if not _step(run, "sample", gen, ROOT):
        run.misses.append("sample failed")
        return run
    _step(run, "validate", ["validate", "--sources", str(sources), "--rules", str(rules),
                            "--raw", str(raw)], ROOT)  # fmt: skip
    ingest_ok = _step(run, "ingest", ["ingest", "--raw", str(raw), "--sources", str(sources),
                                      "--warehouse", str(wh)], ROOT)  # fmt: skip
    if not wh.exists():
        run.misses.append("ingest produced no warehouse")
        return run
    del ingest_ok  # a failed file still leaves the others loaded: go on and measure
    if _step(run, "resolve", ["resolve", "--warehouse", str(wh), "--sources", str(sources)], ROOT):
        _step(run, "detect", ["detect", "--warehouse", str(wh), "--rules", str(rules)],
              ROOT)  # fmt: skip
    with duckdb.connect(str(wh), read_only=True) as con:
        try:
            run.rules = score_rules(con, truth)
        except Exception as exc:  # no hit table: detect did not run
            run.steps["score_rules"] = f"{type(exc).__name__}: {exc}"[:300]
        try:
            run.identity = score_identity(con, truth)
        except Exception as exc:
            run.steps["score_identity"] = f"{type(exc).__name__}: {exc}"[:300]
    run.seconds = time.perf_counter() - t0
    _targets(run)
    return run


def _targets(run: Run) -> None:
    for step in ("validate", "ingest", "resolve", "detect"):
        if run.steps.get(step, "missing") != "ok":
            run.misses.append(f"{step}: {run.steps.get(step, 'not run')}")
    if not run.rules:
        run.misses.append("no rule scores")
    for s in run.rules:
        if s.traps_flagged:
            run.misses.append(f"{s.rule_id}: {s.traps_flagged} trap(s) flagged")
        if s.status != "ok":  # blind / skipped / stale / error: the engine said so, with why
            seen = f"; found {s.found}/{s.planted} with what it could see" if s.planted else ""
            run.misses.append(f"{s.rule_id}: {s.status} ({s.reason[:200] or 'no reason'}){seen}")
            continue
        if s.planted and (s.recall or 0.0) < RECALL:
            run.misses.append(f"{s.rule_id}: recall {s.recall or 0:.3f} ({s.found}/{s.planted})")
        if s.hits and (s.precision or 0.0) < PRECISION:
            run.misses.append(f"{s.rule_id}: precision {s.precision:.3f}")
    if not run.identity:
        run.misses.append("no identity scores")
    for label, sc in run.identity.items():
        if sc.f1 < IDENTITY_F1:
            run.misses.append(f"identity {label}: F1 {sc.f1:.4f}")


def micro(rules: list) -> tuple[float, float, int, int]:
    """(micro recall, micro precision) over the rules that ran ``ok`` (a blind, skipped, stale
    or failed rule is reported by its status, not scored as recall 0), traps flagged (all
    rules), rules not ``ok``."""
    ok = [s for s in rules if s.status == "ok"]
    planted, found = sum(s.planted for s in ok), sum(s.found for s in ok)
    hits, true_hits = sum(s.hits for s in ok), sum(s.true_hits for s in ok)
    return (
        found / planted if planted else float("nan"),
        true_hits / hits if hits else float("nan"),
        sum(s.traps_flagged for s in rules),
        len(rules) - len(ok),
    )


def render(run: Run) -> str:
    lines = [f"== layout {run.layout}, seed {run.seed} ({run.seconds:.0f} s)"]
    for step in ("sample", "validate", "ingest", "resolve", "detect"):
        if step in run.steps:
            lines.append(f"  {step:<9} {run.steps[step]}  ({run.steps.get(step + '_s', '?')} s)")
    if run.rules:
        lines.append(f"  {'rule':<28} {'planted':>7} {'found':>6} {'hits':>6} {'recall':>7} "
                     f"{'prec':>6} {'traps':>6} {'flagged':>7}  status")  # fmt: skip
        for s in run.rules:
            rc = f"{s.recall:.3f}" if s.recall is not None else "-"
            pr = f"{s.precision:.3f}" if s.precision is not None else "-"
            lines.append(f"  {s.rule_id:<28} {s.planted:>7} {s.found:>6} {s.hits:>6} {rc:>7} "
                         f"{pr:>6} {s.traps:>6} {s.traps_flagged:>7}  {s.status}")  # fmt: skip
    if run.rules:
        rec, pre, traps, not_ok = micro(run.rules)
        lines.append(f"  micro (rules ok): recall {rec:.4f}  precision {pre:.4f}  traps flagged "
                     f"{traps}  rules not ok {not_ok}")  # fmt: skip
    for label, sc in run.identity.items():
        lines.append("  identity " + sc.render(label))
    lines.append(f"  targets: {'MET' if not run.misses else f'{len(run.misses)} missed'}")
    lines += [f"    - {m}" for m in run.misses[:25]]
    return "\n".join(lines)


def _f1s(run: Run) -> tuple[float, float]:
    """(identity F1 overall, on damaged records)."""
    f1 = {k: v.f1 for k, v in run.identity.items()}
    overall = next(iter(f1.values()), float("nan"))
    return overall, next((v for k, v in f1.items() if "damag" in k), float("nan"))


def main(argv: list[str] | None = None) -> int:
    from crossmatch.synth.layouts import LAYOUTS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--layouts", default="all", help="all (every layout), or comma-separated layout names"
    )
    ap.add_argument("--seeds", default="11,23,37", help="comma-separated seeds")
    ap.add_argument("--persons", type=int, default=8000)
    ap.add_argument("--keep", type=Path, default=None, help="keep the counties and warehouses here")
    ap.add_argument("--rules", type=Path, default=ROOT / "rules", help="rule folder")
    args = ap.parse_args(argv)
    # "all" is every layout (dump included); it may stand in a list ("all,dump")
    names = [x.strip() for x in args.layouts.split(",") if x.strip()]
    layouts = list(dict.fromkeys(y for x in names for y in (LAYOUTS if x == "all" else [x])))
    unknown = [x for x in layouts if x not in LAYOUTS]
    if unknown:
        ap.error(f"unknown layout(s) {unknown}; known: {', '.join(LAYOUTS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    work = args.keep or Path(tempfile.mkdtemp(prefix="eval-layouts-"))
    work.mkdir(parents=True, exist_ok=True)
    runs: list[Run] = []
    try:
        for layout in layouts:
            for seed in seeds:
                run = evaluate_one(layout, seed, args.persons, work, args.rules.resolve())
                runs.append(run)
                print(render(run), flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(
        "\n== summary (targets: recall >= 0.98, precision >= 0.95, no trap, identity F1 >= 0.995)"
    )
    print(f"  {'layout':<10} {'seed':>5} {'rules met':>10} {'not ok':>6} {'min recall':>10} "
          f"{'min prec':>9} {'micro R':>8} {'micro P':>8} {'traps':>6} {'F1':>7} {'F1 dmg':>7}"
          "  result")  # fmt: skip
    for r in runs:
        ok = [s for s in r.rules if s.status == "ok"]
        ok_rules = sum(
            1 for s in ok
            if (not s.planted or (s.recall or 0) >= RECALL)
            and (not s.hits or (s.precision or 0) >= PRECISION) and not s.traps_flagged
        )  # fmt: skip
        rec = min((s.recall for s in ok if s.recall is not None), default=float("nan"))
        pre = min((s.precision for s in ok if s.precision is not None), default=float("nan"))
        mrec, mpre, traps, not_ok = micro(r.rules)
        overall, damaged = _f1s(r)
        print(f"  {r.layout:<10} {r.seed:>5} {ok_rules:>4}/{len(r.rules):<5} {not_ok:>6} "
              f"{rec:>10.3f} {pre:>9.3f} {mrec:>8.4f} {mpre:>8.4f} {traps:>6} {overall:>7.4f} "
              f"{damaged:>7.4f}  {'MET' if not r.misses else 'MISSED'}")  # fmt: skip
    print("\n== per layout (all seeds pooled; micro over the rules that ran ok)")
    print(f"  {'layout':<10} {'micro R':>8} {'micro P':>8} {'traps':>6} {'F1 min':>7} "
          f"{'F1dmg min':>9}  rules not ok (status)")  # fmt: skip
    for layout in dict.fromkeys(r.layout for r in runs):
        rs = [r for r in runs if r.layout == layout]
        pooled = [s for r in rs for s in r.rules]
        mrec, mpre, traps, _ = micro(pooled)
        f1s = [_f1s(r) for r in rs]
        not_ok = sorted({f"{s.rule_id} ({s.status})" for s in pooled if s.status != "ok"})
        print(f"  {layout:<10} {mrec:>8.4f} {mpre:>8.4f} {traps:>6} "
              f"{min(f[0] for f in f1s):>7.4f} {min(f[1] for f in f1s):>9.4f}  "
              f"{', '.join(not_ok) or '-'}")  # fmt: skip
    return 0 if runs and all(not r.misses for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
