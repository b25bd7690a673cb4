"""Partitioned detect on a tiny two-township warehouse (fast, in process): the same hits as
run_rules, with cases whose persons live in both townships."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import ClassVar

import duckdb
import pytest
from click.testing import CliRunner

from crossmatch import cli
from crossmatch.detect import run_rules
from crossmatch.scale.locality import classify
from crossmatch.scale.partition import plan_partitions
from crossmatch.scale.run import run_partitioned, serial_submit
from crossmatch.spec.rules import load_rules
from rules.conftest import build_warehouse  # one fixture builder for rule and scale tests

RULES_DIR = Path(__file__).resolve().parents[2] / "rules"


T1, T2 = "341122001", "341122002"
PEOPLE = {  # pid -> (home village, household)
    "A": (T1 + "001", "H1"),
    "B": (T2 + "001", "H2"),
    "C": (T2 + "002", "H3"),
    "D": (T2 + "004", "H4"),
    "E": (T1 + "003", "H5"),
    "F": (T2 + "003", "H6"),
}
ONLY = ["duplicate_payment", "shared_account", "deceased_recipient", "cadre_account"]


def _pay(pid, period, village, account, amount=100):
    return {
        "payee_pid": pid,
        "payee_name": pid,
        "item": "养老金",
        "period": period,
        "amount": amount,
        "village_code": village,
        "account": account,
        "status": "成功",
    }


def _tables() -> dict[str, list[dict]]:
    pay = [
        # A paid twice for one month: once in each township
        _pay("A", "2025-03", T1 + "001", "ACC-A"),
        _pay("A", "2025-03", T2 + "001", "ACC-A2"),
        # one account, three households in two townships
        _pay("A", "2025-04", T1 + "001", "ACC-X"),
        _pay("B", "2025-04", T2 + "001", "ACC-X"),
        _pay("C", "2025-04", T2 + "002", "ACC-X"),
        # D died in January, still paid in May
        _pay("D", "2025-05", T2 + "004", "ACC-D"),
        # F paid into the account of E, a village cadre in the other township
        _pay("F", "2025-05", T2 + "003", "ACC-E"),
    ]
    return {
        "person": [
            {
                "person_id": p,
                "name": p,
                "id_number": p,
                "village_code": v,
                "household_no": h,
                "in_registry": True,
            }
            for p, (v, h) in PEOPLE.items()
        ],
        "r_hukou": [
            {"person_pid": p, "household_no": h, "village_code": v, "status": "正常"}
            for p, (v, h) in PEOPLE.items()
        ],
        "r_payment": pay,
        "r_proxy_filing": [{"beneficiary_pid": "Y", "agent_pid": "Z", "account": "ACC-Y"}],
        "r_death": [{"person_pid": "D", "death_date": "2025-01-10"}],
        "r_bank_account": [{"account": "ACC-E", "holder_pid": "E", "holder_name": "E"}],
        "r_cadre": [
            {"person_pid": "E", "person_name": "E", "village_code": T1 + "003", "post": "村委委员"}
        ],
    }


def _hits(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return sorted(
        map(
            repr,
            con.execute(
                "SELECT * EXCLUDE (run_id) FROM hit ORDER BY rule_id, subject, period"
            ).fetchall(),
        )
    )


@pytest.mark.parametrize(
    "partitions",
    # one per region (the default) and more partitions than regions (one left empty); a single
    # partition (nothing crosses) is the slow tier's
    [None, pytest.param(1, marks=pytest.mark.slow), 3],
)
def test_partitioned_equals_run_rules(partitions):
    single = build_warehouse(_tables())
    run_rules(single, RULES_DIR, only=ONLY)
    parts = build_warehouse(_tables())
    res = run_partitioned(parts, RULES_DIR, only=ONLY, partitions=partitions)
    assert _hits(parts) == _hits(single)
    got = {o.rule_id: o.hits for o in res.run.outcomes}
    # every planted case is found, each once
    assert got == {r: 1 for r in ONLY}, res.table()
    assert res.locality["cadre_account"].local is False
    assert res.locality["shared_account"].local is True
    assert res.plan.n == (partitions or 2)


def test_groups_keep_an_account_whole():
    con = build_warehouse(_tables())
    plan = plan_partitions(con)
    assert plan.n == 2 and sorted(plan.regions) == [T1, T2]
    part = dict(con.execute("SELECT node, part FROM _scale_node").fetchall())
    # A (township 1), B and C (township 2) share ACC-X: one group, in A's township
    assert (
        part["p:A"] == part["p:B"] == part["p:C"] == part["a:ACCX"]
    )  # norm_account drops the dash
    # F (township 2) is paid into ACC-E, which E (township 1) holds: one group too
    assert part["p:E"] == part["p:F"] == part["p:A"]
    # D, alone in township 2, is in the other partition
    assert part["p:D"] != part["p:A"]


def test_locality_of_the_rules():
    loc = classify(load_rules(RULES_DIR))
    local = {r for r, v in loc.items() if v.local}
    assert local == {
        "business_on_dibao",
        "deceased_recipient",
        "duplicate_payment",
        "farmland_over_area",
        "over_standard_amount",
        "payroll_on_dibao",
        "property_on_dibao",
        "shared_account",
        "underage_elderly_allowance",
        "vehicle_on_dibao",
    }
    assert "kin_relative" in " ".join(loc["cadre_relative_recipient"].reasons)
    assert "payee_id" in " ".join(loc["ghost_recipient"].reasons)


def _rule_rows(con: duckdb.DuckDBPyConnection, run_id: str) -> list[tuple]:
    return con.execute(
        "SELECT rule_id, status, reason, hits, amount FROM rule_run WHERE run_id = ? ORDER BY 1",
        [run_id],
    ).fetchall()


@pytest.mark.slow  # every rule over five detect runs (~5-10 s); test_partitioned_equals_run_rules
# and test_full_runs_every_rule keep partitioned detect in the default tier
def test_partitioned_run_is_recorded_like_run_rules():
    """Every rule (most skipped or blind on this warehouse): the same rule_run rows, statuses and
    reasons, fingerprints and stage ``detect`` as run_rules; the next run, partitioned or not,
    copies the hits of the partitioned run, and a rule run on changed inputs runs again."""
    from crossmatch import warehouse

    single = build_warehouse(_tables())
    a = run_rules(single, RULES_DIR)
    parts = build_warehouse(_tables())
    res = run_partitioned(parts, RULES_DIR)
    b = res.run
    statuses = {o.status for o in b.outcomes}
    assert {"ok", "blind", "skipped"} <= statuses, statuses
    assert _rule_rows(parts, b.run_id) == _rule_rows(single, a.run_id)
    assert _hits(parts) == _hits(single)
    assert res.ran_local and res.ran_cross and not res.reused
    fp = "SELECT rule_id, fingerprint, reused_from FROM rule_input WHERE run_id = ? ORDER BY 1"
    assert parts.execute(fp, [b.run_id]).fetchall() == single.execute(fp, [a.run_id]).fetchall()
    assert parts.execute(fp, [b.run_id]).fetchall()  # the ok and blind rules
    assert warehouse.stage_state(parts, "detect")[:2] == (
        warehouse.stage_state(single, "detect")[0],
        b.run_id,
    )
    status = parts.execute("SELECT status FROM detect_run WHERE run_id = ?", [b.run_id]).fetchone()
    assert status == ("finished",)

    # unchanged inputs: the next partitioned run runs nothing and copies the hits
    parts.execute("DROP TABLE IF EXISTS _scale_node")
    again = run_partitioned(parts, RULES_DIR, submit=_no_cluster)
    assert not again.ran_local and not again.ran_cross
    # nothing computes per partition: no groups planned, nothing shipped, and it says so
    assert again.plan is None and again.partition_walls == []
    assert "_scale_node" not in {
        r[0] for r in parts.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    }
    assert "partitions not planned: no rule computes per partition tonight" in again.table()
    ran = {o.rule_id for o in b.outcomes if o.status in ("ok", "blind")}
    assert set(again.reused) == ran
    assert {o.rule_id: o.reused_from for o in again.run.outcomes if o.reused_from} == {
        r: b.run_id for r in ran
    }
    assert _rule_rows(parts, again.run.run_id) == _rule_rows(parts, b.run_id)
    latest = "SELECT * EXCLUDE (run_id) FROM hit WHERE run_id = ? ORDER BY rule_id, subject"
    assert (
        parts.execute(latest, [again.run.run_id]).fetchall()
        == parts.execute(latest, [b.run_id]).fetchall()
    )
    # and run_rules reuses the partitioned run's hits (same fingerprints)
    one = run_rules(parts, RULES_DIR)
    assert {o.rule_id for o in one.outcomes if o.reused_from} == ran

    # a changed death register: the rule reading it runs again, the others copy their hits
    for con in (parts, single):
        con.execute("UPDATE r_death SET death_date = '2025-02-10' WHERE person_pid = 'D'")
    changed = run_partitioned(parts, RULES_DIR)
    assert changed.ran_local == ["deceased_recipient"] and not changed.ran_cross
    assert set(changed.reused) == ran - {"deceased_recipient"}
    a2 = run_rules(single, RULES_DIR, full=True)
    rows = "SELECT * EXCLUDE (run_id) FROM hit WHERE run_id = ? ORDER BY rule_id, subject, period"
    assert (
        parts.execute(rows, [changed.run.run_id]).fetchall()
        == single.execute(rows, [a2.run_id]).fetchall()
    )
    assert (
        "2025-02-10"
        in parts.execute(
            "SELECT evidence FROM hit WHERE run_id = ? AND rule_id = 'deceased_recipient'",
            [changed.run.run_id],
        ).fetchone()[0]
    )


def _no_cluster(tasks):
    """A submit that must not be handed work (a night where every rule reuses its hits)."""
    assert not tasks, "partitions shipped although no rule computes"
    return []


def test_full_runs_every_rule():
    parts = build_warehouse(_tables())
    run_partitioned(parts, RULES_DIR, only=ONLY)
    res = run_partitioned(parts, RULES_DIR, only=ONLY, full=True)
    assert not res.reused and sorted(res.ran_local + res.ran_cross) == sorted(ONLY)
    assert all(o.reused_from is None for o in res.run.outcomes)


class _SerialPartitions:
    """``crossmatch.scale.dask.DaskPartitions``' interface with the partitions run here, one
    after the other: the CLI's ``detect --dask`` wiring without starting a cluster (a real
    LocalCluster and the Prefect flow: tests/scale/test_exact.py, slow tier)."""

    made: ClassVar[list[_SerialPartitions]] = []

    def __init__(self, address: str, workers: int = 2) -> None:
        self.address, self.workers, self.started, self.closed = address, workers, False, False
        self.made.append(self)

    def describe(self) -> str:
        return f"in-process stand-in for {self.address} ({self.workers} workers)"

    def __enter__(self) -> _SerialPartitions:
        return self

    def submit(self, tasks):
        self.started = self.started or bool(tasks)
        return serial_submit(tasks)

    def __exit__(self, *exc) -> None:
        self.closed = True


def _warehouse_file(path: Path) -> Path:
    con = build_warehouse(_tables())
    con.execute(f"ATTACH '{path}' AS f")
    con.execute("COPY FROM DATABASE memory TO f")
    con.close()
    return path


def test_detect_cli_dask_runs_the_partitioned_detect(tmp_path, monkeypatch):
    """``crossmatch detect --dask local --dask-workers 3 --partitions 3``: run_partitioned with
    the options given, the partitions submitted to the cluster runner, closed at the end; the
    same hits as run_rules, and a second run copies them without starting a cluster."""
    monkeypatch.setattr(cli, "DaskPartitions", _SerialPartitions)
    _SerialPartitions.made.clear()
    path = _warehouse_file(tmp_path / "w.duckdb")
    args = ["detect", "--rules", str(RULES_DIR), "--warehouse", str(path), "--only",
            ",".join(ONLY), "--dask", "local", "--dask-workers", "3",
            "--partitions", "3"]  # fmt: skip
    res = CliRunner().invoke(cli.main, args, catch_exceptions=False)
    # exit 4 as `crossmatch detect`: the hand-made tables leave columns each rule reads empty
    assert res.exit_code == 4, res.output
    rows = [ln.split()[:3] for ln in res.output.split("\n\n")[0].splitlines()]
    assert [r for r in rows if r[:1] in ([x] for x in ONLY)] == [
        [r, "blind", "1"] for r in sorted(ONLY)
    ], res.output
    assert "3 partitions" in res.output
    assert "rules per partition: 3 of 4; cross step: 1;" in res.output
    assert "partitions ran on: in-process stand-in for local (3 workers)" in res.output
    (runner,) = _SerialPartitions.made
    assert runner.started and runner.closed
    single = build_warehouse(_tables())
    run_rules(single, RULES_DIR, only=ONLY)
    con = duckdb.connect(str(path))
    try:
        assert _hits(con) == _hits(single)
    finally:
        con.close()

    again = CliRunner().invoke(cli.main, args, catch_exceptions=False)
    assert again.exit_code == 4, again.output
    assert again.output.count("(inputs unchanged: hits of run") == len(ONLY)
    assert "partitions not planned" in again.output
    assert "partitions ran on: no cluster started" in again.output
    assert not _SerialPartitions.made[-1].started


@pytest.mark.parametrize("flag", [["--prefect"], ["--partitions", "2"], ["--level", "6"]])
def test_detect_cli_partition_options_need_dask(tmp_path, flag):
    path = _warehouse_file(tmp_path / "w.duckdb")
    res = CliRunner().invoke(cli.main, ["detect", "--warehouse", str(path), *flag])
    assert res.exit_code == 2, res.output
    assert f"{flag[0]} partitions detect: it needs --dask ADDRESS|local" in res.output


def test_detect_cli_unreachable_scheduler_fails_before_the_warehouse(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "none.duckdb"
    res = CliRunner().invoke(
        cli.main, ["detect", "--warehouse", str(path), "--dask", f"tcp://127.0.0.1:{port}"]
    )
    assert res.exit_code == 6, res.output
    assert f"the Dask scheduler tcp://127.0.0.1:{port} cannot be reached" in res.output
    assert not path.exists()
