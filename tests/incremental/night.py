"""A night as the flow runs it, for the tests: nothing_to_do, then ingest -> resolve -> kinship ->
detect in a build copy published at the end (``crossmatch.publish.night_build``), then the
clues synced into the review store. Also a script, so that fault tests can kill it:

    python tests/incremental/night.py RAW SOURCES RULES WAREHOUSE [--full] [--pause STAGE]

prints ``stage <name>`` (flushed) when each stage starts; ``--pause STAGE`` sleeps there for
a minute so that a test can kill the process at that stage.
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Night:
    outcome: str  # "nothing to do" / "published"
    stages: dict[str, str] = field(default_factory=dict)  # stage -> what it did
    seconds: dict[str, float] = field(default_factory=dict)
    #: the process's peak memory (MB, ru_maxrss) when each stage ended: where the peak is reached
    peak_mb: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    reused: int = 0
    #: person_mention rows resolve wrote (only the changed files' on an incremental night)
    mentions_built: int = 0
    #: links of unchanged file versions that the change reached, re-decided by resolve
    reopened: int = 0
    rules_run: int = 0


def run_night(
    raw: Path,
    sources: Path,
    rules: Path,
    wh: Path,
    *,
    full: bool = False,
    pause: str | None = None,
    say=lambda s: None,
) -> Night:
    from crossmatch import warehouse
    from crossmatch.detect.rule_runner import ensure_kinship, run_rules
    from crossmatch.identity.pipeline import resolve_identities
    from crossmatch.ingest.pipeline import ingest
    from crossmatch.publish import night_build, nothing_to_do
    from crossmatch.review import sync_warehouse
    from crossmatch.spec.sources import load_sources

    done: list[str] = []

    def stage(name: str) -> None:
        if done:  # the stage before this one ended here
            night.peak_mb[done[-1]] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        done.append(name)
        say(f"stage {name}")
        if pause == name:
            time.sleep(60)

    night = Night("published")
    t = time.perf_counter()
    stage("check")
    if not full:
        nd = nothing_to_do(raw, sources, rules, wh)
        night.seconds["check"] = time.perf_counter() - t
        if nd:
            night.outcome = "nothing to do"
            return night
    with night_build(wh) as b:
        night.seconds["copy"] = b.copy_seconds
        t = time.perf_counter()
        stage("ingest")
        summ = ingest(raw, sources, b.path)
        night.stages["ingest"] = (
            f"{sum(r.status == 'loaded' for r in summ.results)} loaded, "
            f"{sum(r.status == 'unchanged' for r in summ.results)} unchanged"
        )
        with warehouse.session(b.path) as con:
            warehouse.record_seen(con, summ.results, summ.run_id)
            night.seconds["ingest"] = time.perf_counter() - t
            t = time.perf_counter()
            stage("resolve")
            rs = resolve_identities(con, load_sources(sources), full=full)
            night.stages["resolve"] = rs.mode
            night.mentions_built = rs.mentions_built
            night.reopened = rs.reopened
            night.seconds["resolve"] = time.perf_counter() - t
            t = time.perf_counter()
            stage("kinship")
            night.stages["kinship"] = ensure_kinship(con, force=full)[0]
            night.seconds["kinship"] = time.perf_counter() - t
            t = time.perf_counter()
            stage("detect")
            res = run_rules(con, rules, full=full)
            night.run_id = res.run_id
            night.reused = sum(o.reused_from is not None for o in res.outcomes)
            night.rules_run = sum(
                o.reused_from is None and o.status in ("ok", "blind") for o in res.outcomes
            )
            by_month = [o.rule_id for o in res.outcomes if o.months_from]
            night.stages["detect"] = f"{night.rules_run} run, {night.reused} reused" + (
                f" ({len(by_month)} of the run only on the payment months that changed)"
                if by_month
                else ""
            )
            night.seconds["detect"] = time.perf_counter() - t
        stage("publish")
        t = time.perf_counter()
    night.seconds["publish"] = time.perf_counter() - t + b.publish_seconds
    t = time.perf_counter()
    stage("clues")
    sync_warehouse(wh, run_id=night.run_id, rules_dir=rules)
    night.seconds["clues"] = time.perf_counter() - t
    stage("done")
    return night


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    pause = sys.argv[sys.argv.index("--pause") + 1] if "--pause" in sys.argv else None
    if pause:
        args.remove(pause)
    n = run_night(
        *(Path(a) for a in args[:4]),
        full="--full" in sys.argv,
        pause=pause,
        say=lambda s: print(s, flush=True),
    )
    print(n.outcome, n.stages, flush=True)
