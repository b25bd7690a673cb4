"""Fingerprints of the resolved views taken from their parts (reuse.resolved_view): the
stored table and the links the view reads, never joined. Every change the view's rows show
changes the fingerprint; what the view does not read does not; a view of any other form is
scanned row by row as before."""

from __future__ import annotations

import duckdb
import pytest

from crossmatch.detect import reuse

VIEW = """CREATE OR REPLACE VIEW r_payment AS SELECT s.*, l0.person_id AS payee_pid
FROM src_payment s LEFT JOIN identity_link l0 ON l0.source = 'payment' AND l0.file = s._file
AND l0.row = s._row AND l0.file_hash = s._file_hash AND l0.role = 'payee'"""


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute(
        """CREATE TABLE src_payment AS SELECT * FROM (VALUES
           ('payment', 'q1.csv', 'h1', 2, NULL::INTEGER, '2025-01', 100, '甲'),
           ('payment', 'q1.csv', 'h1', 3, NULL, '2025-02', 200, '乙'),
           ('payment', 'q2.csv', 'h2', 2, NULL, '2025-04', 300, '丙'))
           t(_source, _file, _file_hash, _row, _dup_of, period, amount, payee_name)"""
    )
    c.execute(
        """CREATE TABLE identity_link AS SELECT * FROM (VALUES
           ('payment', 'q1.csv', 2, 'payee', 'h1', 'P1', 'exact', 1.0),
           ('payment', 'q1.csv', 3, 'payee', 'h1', 'P2', 'fuzzy', 0.912),
           ('payment', 'q2.csv', 2, 'payee', 'h2', 'P3', 'exact', 1.0),
           ('hukou', 'h.csv', 2, 'person', 'hh', 'P1', 'exact', 1.0))
           t(source, file, row, role, file_hash, person_id, method, probability)"""
    )
    c.execute(VIEW)
    return c


def _fp(con: duckdb.DuckDBPyConnection) -> tuple[str, dict]:
    view = reuse.resolved_view(con, "r_payment")
    assert view is not None and view.source == "payment" and view.table == "src_payment"
    fp = reuse.view_scan(con, "r_payment", view)[0]
    months = {p: d for p, _n, _x, d, _c in reuse._view_months(con, view)}
    return fp, months


@pytest.mark.parametrize(
    ("change", "months_changed"),
    [
        # the view's rows change: the link gives another person
        ("UPDATE identity_link SET person_id = 'P9' WHERE file = 'q2.csv'", {"2025-04"}),
        # the link no longer joins (another file version): the row loses its person
        ("UPDATE identity_link SET file_hash = 'hx' WHERE file = 'q2.csv'", {"2025-04"}),
        # a payment row changes (a column no rule may read is still the view's)
        ("UPDATE src_payment SET payee_name = '丁' WHERE _row = 3", {"2025-02"}),
        # a link added to a row: the row appears twice in the view
        (
            "INSERT INTO identity_link VALUES "
            "('payment', 'q2.csv', 2, 'payee', 'h2', 'P4', 'fuzzy', 0.5)",
            {"2025-04"},
        ),
    ],
)
def test_a_change_the_view_shows_is_seen(con, change: str, months_changed: set[str]):
    rows = con.execute("SELECT * FROM r_payment ORDER BY ALL").fetchall()
    fp, months = _fp(con)
    con.execute(change)
    assert con.execute("SELECT * FROM r_payment ORDER BY ALL").fetchall() != rows
    fp2, months2 = _fp(con)
    assert fp2 != fp
    # the months of the file whose links changed (or of the row), not the others
    assert {p for p in months if months[p] != months2.get(p)} == months_changed


def test_what_the_view_does_not_read_changes_nothing(con):
    fp, months = _fp(con)
    con.execute("UPDATE identity_link SET probability = 0.5 WHERE method = 'fuzzy'")
    con.execute("UPDATE identity_link SET person_id = 'P8' WHERE source = 'hukou'")
    assert _fp(con) == (fp, months)


def test_the_view_sql_is_part_of_the_fingerprint(con):
    fp, _ = _fp(con)
    con.execute(VIEW.replace("'payee'", "'agent'"))
    assert _fp(con)[0] != fp


@pytest.mark.parametrize(
    "sql",
    [
        VIEW + " WHERE s.amount > 0",  # filtered rows
        VIEW.replace("l0.source = 'payment' AND ", ""),  # links of every source
        VIEW.replace("SELECT s.*", "SELECT *"),  # every link column
        "CREATE OR REPLACE VIEW r_payment AS SELECT s.*, p.name AS payee_pid FROM src_payment s "
        "LEFT JOIN person p ON p.person_id = s.payee_name",  # another table
        "CREATE OR REPLACE VIEW r_payment AS SELECT * FROM src_payment "
        "UNION ALL SELECT * FROM src_payment",
    ],
)
def test_any_other_view_is_scanned_row_by_row(con, sql: str):
    con.execute("CREATE TABLE person (person_id VARCHAR, name VARCHAR)")
    con.execute(sql)
    assert reuse.resolved_view(con, "r_payment") is None


def test_counts_of_the_empty_column_check(con):
    """The non-NULL counts the empty-column check reads: the table's columns counted, a column
    the links give counted 1 when some row has it, 0 when none does (as a scan of the view)."""
    view = reuse.resolved_view(con, "r_payment")
    assert view is not None
    fp, got = reuse.view_scan(con, "r_payment", view, ["amount", "payee_pid"])
    assert got == {"": 3, "amount": 3, "payee_pid": 1}
    con.execute("UPDATE identity_link SET person_id = NULL WHERE source = 'payment'")
    assert con.execute("SELECT count(payee_pid) FROM r_payment").fetchone() == (0,)
    fp2, got = reuse.view_scan(con, "r_payment", view, ["amount", "payee_pid"])
    assert got == {"": 3, "amount": 3, "payee_pid": 0}
    assert fp2 != fp


def test_restricted_view_gives_the_rows_of_a_filter(con):
    """The months' rows of a resolved view computed from those rows and their files' links
    only (how a kept month block is computed again) are the view's rows of those months."""
    view = reuse.resolved_view(con, "r_payment")
    assert view is not None
    con.execute("INSERT INTO identity_link VALUES "
                "('payment', 'q2.csv', 2, 'payee', 'h2', 'P4', 'fuzzy', 0.5)")  # fmt: skip
    for where in ("period IN ('2025-01', '2025-04')", "period IN ('2025-02')", "amount > 1000"):
        sql = reuse.restricted_view_sql(view, where)
        assert sql is not None and "identity_link WHERE file IN" in sql
        want = con.execute(f"SELECT * FROM r_payment WHERE {where} ORDER BY ALL").fetchall()
        assert con.execute(f"SELECT * FROM ({sql}) ORDER BY ALL").fetchall() == want


def test_payment_months_as_a_run_takes_them(con):
    """The month digests the building blocks are keyed by, with or without a month-wise rule
    in the run, are the same (a run of one cross-month rule keeps the months)."""
    view = reuse.resolved_view(con, "r_payment")
    assert view is not None
    got = reuse.payment_months(con)
    assert got == {p: f"{n}:{x}:{d}" for p, n, x, d, _ in reuse._view_months(con, view)}
    assert got is not None and set(got) == {"2025-01", "2025-02", "2025-04"}
