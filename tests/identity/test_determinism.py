"""Resolve is a function of the files, not of the order their rows were scanned in.

A person whose mentions tie on name or village (two spellings twice each, two villages twice
each) must get the same name and village, and every mention the same person, whatever the
row order of the inputs. ``mode()`` / ``any_value()`` broke such ties by scan order."""

from __future__ import annotations

import random

import duckdb
import pandas as pd
import pytest

from crossmatch.identity import resolve

from .county import _pcols, build, make_id

V1, V2 = "341122001001", "341122002002"
OUTSIDE = make_id(random.Random(9), "340103")
ORDERS = ["_row", "_row DESC", "hash(_row)", "hash(_row + 7) DESC", "_row % 5, _row DESC"]


def _world(order: str, hukou: bool = True) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    build(con, n=150, seed=5)
    outside = OUTSIDE  # an ID the registry does not hold
    base = con.execute("SELECT max(_row) FROM src_payment").fetchall()[0][0]
    extra = []
    # the outside ID: 张伟 twice, 章伟 (a homophone) twice; village V1 twice, V2 twice
    for name, v in (("张伟", V1), ("章伟", V2), ("章伟", V1), ("张伟", V2)):
        extra.append((name, outside, v, "6217000000001"))
    # a payee without any ID: one name and account, two villages twice each
    for v in (V1, V2, V2, V1):
        extra.append(("闻人素素", None, v, "6228000000002"))
    rows = []
    for i, (name, idn, v, acct) in enumerate(extra):
        r = {"_source": "payment", "_file": "finance/pay.csv", "_file_hash": "x"}
        r |= {"_row": base + 1 + i, "_dup_of": None} | _pcols("payee", name, idn, idn)
        r |= {"village_code": v, "account": acct}
        rows.append(r)
    con.register("_x", pd.DataFrame(rows))
    con.execute("INSERT INTO src_payment BY NAME SELECT * FROM _x")
    con.unregister("_x")
    tables = [r[0] for r in con.execute("SHOW TABLES").fetchall() if r[0].startswith("src_")]
    if not hukou:
        con.execute("DROP TABLE src_hukou")
        tables.remove("src_hukou")
    # the same rows, stored (and so scanned) in another order
    for t in tables:
        con.execute(f"CREATE OR REPLACE TABLE {t} AS SELECT * FROM {t} ORDER BY {order}")
    return con


def _published(con: duckdb.DuckDBPyConnection) -> tuple[pd.DataFrame, pd.DataFrame]:
    person = con.execute("SELECT * FROM person ORDER BY person_id").df()
    link = con.execute(
        "SELECT source, file, row, role, person_id, method, round(probability, 9) AS p "
        "FROM identity_link ORDER BY source, file, row, role"
    ).df()
    return person, link


@pytest.mark.parametrize(
    ("hukou", "orders"),
    [
        # three scan orders (ascending, descending, hashed): three resolves in the default
        # tier; all five orders, with and without the register, in the slow tier
        pytest.param(True, ORDERS[:3], id="registry"),
        pytest.param(True, ORDERS, id="registry-5-orders", marks=pytest.mark.slow),
        # five more resolves (~5-10 s): the same tie-breaks without a household register
        pytest.param(False, ORDERS, id="no-registry", marks=pytest.mark.slow),
    ],
)
def test_same_tables_whatever_the_row_order(hukou: bool, orders: list[str]) -> None:
    runs = []
    for order in orders:
        con = _world(order, hukou)
        resolve(con)
        runs.append(_published(con))
        con.close()
    person0, link0 = runs[0]
    for (person, link), order in zip(runs[1:], orders[1:], strict=True):
        pd.testing.assert_frame_equal(person, person0, obj=f"person (rows by {order})")
        pd.testing.assert_frame_equal(link, link0, obj=f"identity_link (rows by {order})")
    # the tie-breaks themselves: the smallest spelling and village of a tie
    out = person0[person0["id_number"] == OUTSIDE]
    assert list(out["name"]) == ["张伟"]
    assert list(out["village_code"]) == [V1]


def test_registry_spelling_wins_over_a_more_frequent_one() -> None:
    """A person without a usable ID: the registry's spelling names them even when the
    payments write another spelling more often."""
    from crossmatch.identity.publish import _pick_sql

    con = duckdb.connect()
    con.execute(
        "CREATE TABLE m AS SELECT * FROM (VALUES ('P1', 'payment', '章伟'), "
        "('P1', 'payment', '章伟'), ('P1', 'hukou', '张伟'), ('P2', 'payment', '李娜'), "
        "('P2', 'payment', '李哪'), ('P2', 'payment', NULL), ('P3', 'payment', NULL)) "
        "t(person_id, source, name)"
    )
    got = dict(con.execute(_pick_sql("m", "name") + " ORDER BY 1").fetchall())
    assert got == {"P1": "张伟", "P2": "李哪"}
