"""The planted ML anomalies: truth written, and every file they do not live in byte-identical."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from build_cache import plain_county
from crossmatch.synth import anomalies, generate

#: the only files the anomalies may change (payments, the assistance roster, and the truth
#: files that index their rows)
ALLOWED = {
    "raw/civil/低保特困救助对象花名册.xlsx",
    "truth/anomalies.csv",
    "truth/noise.csv",
    "truth/records.csv",
    *(f"raw/finance/一卡通发放明细_2025Q{q}.csv" for q in range(1, 5)),
}


def digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*") if p.is_file()
    }  # fmt: skip


def test_anomalies_leave_every_other_file_byte_identical(tmp_path, tmp_path_factory, monkeypatch):
    # 1,200 persons plant every kind 3,000 did (irregular amounts, rich villages, handler
    # surnames); that a seed gives the same bytes, anomalies included, is
    # tests/synth/test_generator.py::test_same_seed_same_bytes_and_other_seed_differs
    with_ = plain_county(tmp_path_factory, 1200, 5)  # built once per generator version
    monkeypatch.setattr(anomalies.AnomalyPlanter, "plant", lambda self, data: None)
    generate(persons=1200, seed=5, out=tmp_path / "without")
    a, b = digests(with_), digests(tmp_path / "without")
    changed = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
    assert changed <= ALLOWED, changed - ALLOWED
    assert "truth/planted.csv" not in changed and "raw/bank/代发账户信息.csv" not in changed
    assert any(k.startswith("raw/finance/") for k in changed)
    with open(with_ / "truth" / "anomalies.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    kinds = {r["kind"] for r in rows}
    assert {"irregular_amount", "rich_village"} <= kinds
    assert {r["entity"] for r in rows} <= {"village", "handler", "recipient", "household"}
