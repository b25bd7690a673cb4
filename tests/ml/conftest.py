"""Small hand-made warehouses for the ML tests: a few tables, rows written out by hand or by a
seeded loop, so each feature's expected value can be worked out on paper."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

DDL = """
CREATE TABLE person (person_id VARCHAR, name VARCHAR, household_no VARCHAR,
                     village_code VARCHAR, in_registry BOOLEAN, birth_date DATE);
CREATE TABLE r_payment (payee_pid VARCHAR, item VARCHAR, amount DECIMAL(18,2), period VARCHAR,
                        account VARCHAR, village_code VARCHAR, status VARCHAR);
CREATE TABLE r_assistance (case_no VARCHAR, applicant_pid VARCHAR, applicant_name VARCHAR,
                           member_pid VARCHAR, household_size BIGINT, village_code VARCHAR,
                           handler_pid VARCHAR, approver_pid VARCHAR, start_date DATE);
CREATE TABLE kin_relative (person_pid VARCHAR, relative_pid VARCHAR, is_close BOOLEAN);
CREATE TABLE r_cadre (cadre_pid VARCHAR, village_code VARCHAR);
CREATE TABLE hit (run_id VARCHAR, rule_id VARCHAR, subject VARCHAR, village_code VARCHAR);
CREATE TABLE rule_run (run_id VARCHAR, rule_id VARCHAR, status VARCHAR, started_at TIMESTAMP);
"""


def empty(con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
    con = con or duckdb.connect()
    con.execute(DDL)
    return con


def pay(con, pid, item, amounts, village, account=None, start_month=1):
    rows = [
        (pid, item, a, f"2025-{start_month + i:02d}", account or f"A{pid}", village, "success")
        for i, a in enumerate(amounts)
    ]
    if isinstance(con, list):  # collecting rows for one bulk insert
        con.extend(rows)
        return
    con.executemany("INSERT INTO r_payment VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


def _bulk(con, table: str, rows: list[tuple]) -> None:
    if rows:
        cols = len(rows[0])
        frame = pa.table({f"c{i}": [r[i] for r in rows] for i in range(cols)})
        con.register("_bulk", frame)
        con.execute(f"INSERT INTO {table} SELECT * FROM _bulk")
        con.unregister("_bulk")


def county(con: duckdb.DuckDBPyConnection, seed: int = 1) -> dict[str, str]:
    """A seeded county: 3 townships x 5 villages x 30 persons, ordinary payments and cases,
    plus one planted outlier per kind; returns {kind: planted entity id}."""
    rng = np.random.default_rng(seed)
    n = 0
    people: list[tuple] = []
    pays: list[tuple] = []
    cases: list[tuple] = []
    names = "赵钱孙李周吴郑"
    for t in range(1, 4):
        town = f"341122{t:03d}"
        hs = [f"H{t}{k}" for k in range(3)]
        people += [(h, f"王{k}", f"HH{h}", f"{town}001", True, None) for k, h in enumerate(hs)]
        for v in range(1, 6):
            vc = f"{town}{v:03d}"
            for i in range(30):
                n += 1
                pid = f"P{n:05d}"
                born = dt.date(1940, 1, 1) + dt.timedelta(days=n * 97 % 20000)
                people.append((pid, names[i % 7] + "某", f"HH{n // 3}", vc, True, born))
                if i % 3 == 0:
                    pay(pays, pid, "养老金", [183] * 12, vc)
                if i % 10 == 0:
                    pay(pays, pid, "城乡低保金", [500] * 12, vc)
                    day = dt.date(2015, 1, 1) + dt.timedelta(days=int(rng.integers(0, 3000)))
                    cases.append((f"C{n}", pid, names[i % 7] + "某", pid, 1, vc,
                                  hs[int(rng.integers(0, 3))], hs[0], day))  # fmt: skip
    # planted: irregular amounts, a rich village, a bunching handler
    pay(pays, "P00002", "城乡低保金", [round(300 + 17.37 * k, 2) for k in range(12)],
        "341122001001")  # fmt: skip
    for i in range(25):
        pay(pays, f"P{30 + i:05d}", "残疾人两项补贴", [90] * 12, "341122001002")
    for k in range(8):
        pid = f"P{200 + k:05d}"
        cases.append((f"D{k}", pid, "王某", pid, 1, "341122002003", "H21", "H20",
                      dt.date(2016 + k, 12, 28)))  # fmt: skip
    _bulk(con, "person", people)
    _bulk(con, "r_payment", pays)
    _bulk(con, "r_assistance", cases)
    con.execute("INSERT INTO rule_run VALUES ('run1', 'r', 'ok', now())")
    return {"recipient": "P00002", "village": "341122001002", "handler": "H21"}


@pytest.fixture
def county_warehouse(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    wh = tmp_path / "w.duckdb"
    con = duckdb.connect(str(wh))
    empty(con)
    planted = county(con)
    con.close()
    return wh, planted
