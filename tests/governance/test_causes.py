"""The planted root causes: truth consistent with planted.csv, own random streams."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from build_cache import plain_county
from crossmatch.synth import causes as causes_mod
from crossmatch.synth import generate
from crossmatch.synth.causes import read_causes


def test_causes_truth_matches_planted_cases(gov_county: Path) -> None:
    causes = {c["kind"]: c for c in read_causes(gov_county / "truth" / "causes.csv")}
    assert set(causes) == {"death_sync_lag", "approver_kin"}
    planted = pl.read_csv(gov_county / "truth" / "planted.csv", infer_schema_length=0).fill_null("")
    lag = causes["death_sync_lag"]
    subjects = lag["subjects"].split(";")
    assert len(subjects) == int(lag["people"]) == causes_mod.LAG_PEOPLE
    rows = planted.filter(
        (pl.col("rule_id") == "deceased_recipient")
        & (pl.col("kind") == "case")
        & pl.col("subject").is_in(subjects)
    )
    # every late month of every lagged person is a planted deceased_recipient case
    assert rows.height == int(lag["months"])
    assert set(rows["subject"]) == set(subjects)
    kin = causes["approver_kin"]
    apps = kin["subjects"].split(";")
    assert len(apps) == int(kin["cases"]) == causes_mod.KIN_CASES
    got = planted.filter((pl.col("rule_id") == "approver_relative") & pl.col("subject").is_in(apps))
    assert set(got["kind"]) == {"case"} and set(got["subject"]) == set(apps)
    assert lag["township_code"] != kin["township_code"]
    # the persons of the lag township really died: persons.csv carries their death dates
    persons = pl.read_csv(gov_county / "truth" / "persons.csv", infer_schema_length=0)
    dead = persons.filter(pl.col("person_id").is_in(subjects))
    assert dead.height == len(subjects) and dead["death_date"].null_count() == 0


def test_causes_leave_earlier_townships_byte_identical(
    tmp_path: Path, tmp_path_factory, monkeypatch
) -> None:
    """The causes draw from their own streams and sit in the last two townships: every file's
    rows before the first cause township are the same as in a county without causes."""
    with_causes = plain_county(tmp_path_factory, 1200, 5)  # built once per generator version
    monkeypatch.setattr(causes_mod.Causes, "plant", lambda self, data, planter: None)
    without = tmp_path / "without"
    generate(persons=1200, seed=5, out=without)
    first_town = min(
        int(c["township_code"][6:]) for c in read_causes(with_causes / "truth" / "causes.csv")
    )
    hukou = "raw/hukou/户籍人口信息.csv"
    a = (with_causes / hukou).read_text(encoding="gb18030").splitlines()
    b = (without / hukou).read_text(encoding="gb18030").splitlines()
    earlier = [i for i, line in enumerate(b) if any(f"341122{t:03d}" in line
                                                     for t in range(1, first_town))]  # fmt: skip
    assert earlier, "the county has townships before the causes"
    last_earlier = max(earlier)
    assert a[: last_earlier + 1] == b[: last_earlier + 1]
    assert a != b  # the cause townships did change
    assert not (without / "truth" / "causes.csv").read_text(encoding="utf-8").count("\n") > 1
