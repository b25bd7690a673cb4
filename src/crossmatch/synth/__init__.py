"""Synthetic county generator: every department's export, messy, with known truth.

``generate(persons=, seed=, out=)`` writes ``out/raw/<source>/<file>`` and ``out/truth/``
(see docs/data-contract.md sections 1-3) and the planted root causes in
``out/truth/causes.csv`` (:mod:`crossmatch.synth.causes`). It builds one township at a time
and appends to open files, so memory stays bounded at any county size; the same seed gives
the same bytes.
"""

from __future__ import annotations

import csv
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from crossmatch.synth.anomalies import AnomalyPlanter
from crossmatch.synth.causes import Causes
from crossmatch.synth.county import Builder
from crossmatch.synth.export import Exporter
from crossmatch.synth.plant import Planter

__all__ = ["Summary", "generate"]


@dataclass
class Summary:
    """What a generation run wrote, for the CLI and the benchmark."""

    out: Path
    persons: int
    seed: int
    towns: int = 0
    villages: int = 0
    residents: int = 0
    seconds: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)
    planted: dict[tuple[str, str], int] = field(default_factory=dict)
    bytes: int = 0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def render(self) -> str:
        lines = [
            f"synthetic county written to {self.out} (seed {self.seed}): {self.towns} townships, "
            f"{self.villages} villages, {self.residents:,} registry persons",
            f"{self.total_rows:,} raw rows in {len(self.rows)} files, "
            f"{self.bytes / 1e6:.1f} MB, {self.seconds:.1f} s",
        ]
        for f, n in self.rows.items():
            lines.append(f"  {n:>10,}  raw/{f}")
        rules = sorted({r for r, _ in self.planted})
        if rules:
            lines.append("planted (cases / traps):")
            for r in rules:
                lines.append(
                    f"  {r:<28} {self.planted.get((r, 'case'), 0):>5} / "
                    f"{self.planted.get((r, 'trap'), 0):>5}"
                )
        return "\n".join(lines)


def generate(persons: int, seed: int, out: Path | str, layout: str = "default") -> Summary:
    """Generate a county of about ``persons`` residents into ``out`` (replacing raw/, truth/).

    ``layout`` other than ``default`` renders the same county in another departments' layout
    (:mod:`crossmatch.synth.layouts`, mappings under ``sources/<layout>/``)."""
    if layout != "default":
        from crossmatch.synth.layouts import generate_layout

        return generate_layout(persons, seed, out, layout)
    if persons < 200:
        raise ValueError(f"persons={persons}: a county needs at least 200 residents")
    t0 = time.perf_counter()
    out = Path(out)
    for sub in ("raw", "truth"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    builder = Builder(seed, persons)
    exporter = Exporter(out, seed)
    planter = Planter(builder, persons)
    causes = Causes(builder)
    anomalies = AnomalyPlanter(seed, builder.n_towns)
    summary = Summary(out, persons, seed, towns=builder.n_towns, villages=builder.n_villages)
    planted_rows: list[tuple[str, str, str, str, str]] = []
    try:
        for idx in range(builder.n_towns):
            data, _rng = builder.town(
                idx, prepare=lambda d, i=idx: planter.prepare(d, builder.rng(3, i))
            )
            planter.plant(data, builder.rng(2, idx))
            causes.plant(data, planter)
            anomalies.plant(data)  # its own generator: the rule scenarios' bytes do not move
            exporter.write_town(data)
            planter.tally(data, exporter.cases_loaded, exporter.assist_paid)
            summary.residents += len(data.town.persons)
            planted_rows.extend(data.planted)
        planted_rows.extend(planter.finish())
        exporter.write_standards()
    finally:
        exporter.close()
    _write_planted(out / "truth" / "planted.csv", planted_rows, summary)
    causes.write(out / "truth" / "causes.csv")
    anomalies.write(out / "truth" / "anomalies.csv")
    for name, sink in exporter.sinks.items():
        summary.rows[sink.rel] = sink.rows
        del name
    summary.bytes = sum(f.stat().st_size for f in (out / "raw").rglob("*") if f.is_file())
    summary.seconds = time.perf_counter() - t0
    return summary


def _write_planted(
    path: Path, rows: list[tuple[str, str, str, str, str]], summary: Summary
) -> None:
    seen: set[tuple[str, str, str, str]] = set()
    # a hit is keyed (rule, subject, period): a trap on the key of a case (a background
    # failed-then-resent pension in the month a duplicate_payment case repeats it for real)
    # is no trap, the case's hit is right
    cases = {(r[0], r[2], r[3]) for r in rows if r[1] == "case"}
    rows = [r for r in rows if r[1] != "trap" or (r[0], r[2], r[3]) not in cases]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["rule_id", "kind", "subject", "period", "note"])
        for r in sorted(rows):
            key = r[:4]
            if key in seen:
                continue
            seen.add(key)
            w.writerow(r)
            summary.planted[(r[0], r[1])] = summary.planted.get((r[0], r[1]), 0) + 1
