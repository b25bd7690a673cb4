"""An incremental night re-decides the ID-less mentions a change can reach.

A mention without an ID that an earlier night left ``unresolved`` (its candidates were
namesakes nobody could tell apart) or linked ``fuzzy`` (it had one candidate) is kept from
night to night only while nothing its decision depends on changes. A new file that brings the
evidence (an ID-bearing row with the mention's account) or a rival (a second registered
namesake in its village) must re-decide it: the incremental run then equals a full run over
the same mentions, and the persons of the links that moved are published again.
"""

from __future__ import annotations

import random

import duckdb
import pandas as pd
import pytest

from crossmatch.identity import resolve

from .county import _pcols, build, make_id

V1, V2 = "341122001001", "341122002002"
ACCT = "6228000000009001"  # nobody's ID-bearing rows carry it on night 1


def _hukou(con, rows: list[tuple[str, str, str]], file: str, first_row: int) -> None:
    out = []
    for i, (name, idn, village) in enumerate(rows):
        r = {"_source": "hukou", "_file": file, "_file_hash": "h-" + file, "_row": first_row + i}
        r |= {"_dup_of": None} | _pcols("person", name, idn, idn)
        r |= {"household_no": f"HR{first_row + i}", "village_code": village}
        r |= {"cancel_reason": None, "cancel_date": None}
        out.append(r)
    con.register("_hk_rows", pd.DataFrame(out))
    con.execute("INSERT INTO src_hukou BY NAME SELECT * FROM _hk_rows")
    con.unregister("_hk_rows")


def _payments(con, rows: list[tuple[str, str | None, str | None, str | None]], file: str) -> None:
    """(name, id, village code, account) rows of one payment file (a file version of its own)."""
    out = []
    for i, (name, idn, village, account) in enumerate(rows):
        r = {"_source": "payment", "_file": file, "_file_hash": "h-" + file, "_row": i + 2}
        r |= {"_dup_of": None} | _pcols("payee", name, idn, idn)
        r |= {"village_code": village, "account": account}
        out.append(r)
    con.register("_pay_rows", pd.DataFrame(out))
    con.execute("INSERT INTO src_payment BY NAME SELECT * FROM _pay_rows")
    con.unregister("_pay_rows")


def _links(con) -> pd.DataFrame:
    return con.execute(
        "SELECT source, file, row, role, file_hash, person_id, method FROM identity_link "
        "ORDER BY source, file, row, role"
    ).df()


def _persons(con) -> pd.DataFrame:
    return con.execute("SELECT * FROM person ORDER BY person_id").df()


def _link(con, file: str, row: int = 2) -> tuple[str, str]:
    return con.execute(
        "SELECT person_id, method FROM identity_link WHERE source = 'payment' AND file = ? "
        "AND row = ? AND role = 'payee'",
        [file, row],
    ).fetchall()[0]


def _assert_equals_full(con) -> None:
    """The incremental run's links and persons equal a full run's over the same mentions
    (same warehouse, same weights, every mention resolved again)."""
    links, persons = _links(con), _persons(con)
    resolve(con, full=True)
    full_links, full_persons = _links(con), _persons(con)
    diff = links.merge(full_links, how="outer", indicator=True)
    diff = diff[diff["_merge"] != "both"]
    assert diff.empty, f"links differ from a full run:\n{diff.to_string()}"
    pd.testing.assert_frame_equal(persons, full_persons)


@pytest.fixture
def county():
    con = duckdb.connect()
    build(con, n=300, seed=5)
    rng = random.Random(77)
    ids = {k: make_id(rng) for k in ("fang1", "fang2", "qiang1", "qiang2")}
    # two registered 端木芳 in two villages; one registered 端木强
    _hukou(
        con,
        [("端木芳", ids["fang1"], V1), ("端木芳", ids["fang2"], V2), ("端木强", ids["qiang1"], V1)],
        "hukou/hk.csv",
        first_row=10_000,
    )
    yield con, ids
    con.close()


def test_new_evidence_resolves_a_kept_unresolved_mention(county):
    con, ids = county
    # night 1: an ID-less 端木芳 paid into an account nobody's ID-bearing rows carry: two
    # equal namesakes, left unresolved
    _payments(con, [("端木芳", None, None, ACCT)], "finance/q2.csv")
    assert resolve(con).mode == "full"
    pid, method = _link(con, "finance/q2.csv")
    assert method == "unresolved" and pid not in ids.values()
    # night 2: a new file pays fang1, with her ID, into that account: the account is hers now
    _payments(con, [("端木芳", ids["fang1"], V1, ACCT)], "finance/q4.csv")
    s = resolve(con)
    assert s.mode == "incremental"
    assert _link(con, "finance/q2.csv") == (ids["fang1"], "fuzzy")
    # the kept-but-reopened mention is counted, and its old person is gone
    assert s.reopened >= 1
    assert con.execute("SELECT count(*) FROM person WHERE person_id = ?", [pid]).fetchall() == [
        (0,)
    ]
    _assert_equals_full(con)


def test_a_new_rival_unlinks_a_kept_fuzzy_mention(county):
    con, ids = county
    # night 1: an ID-less 端木强 of V1, and one registered 端木强 there: linked to him
    _payments(con, [("端木强", None, V1, None)], "finance/q2.csv")
    resolve(con)
    assert _link(con, "finance/q2.csv") == (ids["qiang1"], "fuzzy")
    # night 2: the registry's new file registers a second 端木强 in V1: a coin toss now
    _hukou(con, [("端木强", ids["qiang2"], V1)], "hukou/hk2.csv", first_row=2)
    s = resolve(con)
    assert s.mode == "incremental"
    pid, method = _link(con, "finance/q2.csv")
    assert method == "unresolved" and pid not in ids.values()
    _assert_equals_full(con)


def test_an_unrelated_change_keeps_the_kept_links(county):
    con, _ids = county
    _payments(con, [("端木芳", None, None, ACCT), ("端木强", None, V1, None)], "finance/q2.csv")
    resolve(con)
    before = _links(con)
    rows = con.execute("SELECT rowid FROM identity_link WHERE file = 'finance/q2.csv'").fetchall()
    # night 2: a payment of someone else entirely (no name, block or account in common)
    _payments(con, [("欧阳修", None, V2, "6228000000009999")], "finance/q4.csv")
    s = resolve(con)
    assert s.mode == "incremental" and s.reopened == 0
    after = _links(con)
    assert after[after["file"] != "finance/q4.csv"].reset_index(drop=True).equals(before)
    # kept in place: the same rows, not written again
    assert (
        con.execute("SELECT rowid FROM identity_link WHERE file = 'finance/q2.csv'").fetchall()
        == rows
    )
    _assert_equals_full(con)


def _reexport(con, rows, file: str, version: str, first_row: int) -> None:
    """The file ``file`` exported again (``version``: its content hash): its rows replaced by
    ``rows`` (name, id, village code, account), numbered from ``first_row``."""
    con.execute("DELETE FROM src_payment WHERE _file = ?", [file])
    _payments(con, rows, file)
    con.execute(
        "UPDATE src_payment SET _file_hash = ?, _row = _row - 2 + ? WHERE _file = ?",
        [version, first_row, file],
    )


def test_a_reexported_file_reaches_only_what_its_new_rows_change(county):
    """A file exported again with the same rows (other row numbers, one new row of someone
    else) changes nothing a kept decision was made on: the kept links of the IDs it pays stay
    kept. Before row digests every ID of the file counted as changed and its kept ID-less
    links were re-decided."""
    con, ids = county
    q3 = [
        ("端木芳", ids["fang1"], V1, ACCT),
        ("端木强", ids["qiang1"], V1, "6228000000009002"),
    ]
    # night 1: fang1 paid with her ID into ACCT, and an ID-less 端木芳 into ACCT: linked to her
    _payments(con, q3, "finance/q3.csv")
    _payments(con, [("端木芳", None, None, ACCT)], "finance/q2.csv")
    resolve(con)
    assert _link(con, "finance/q2.csv") == (ids["fang1"], "fuzzy")
    # night 2: q3 re-exported: a new first row of someone else, the same rows after it
    _reexport(con, [("欧阳修", None, V2, "6228000000009999"), *q3], "finance/q3.csv", "v2", 2)
    s = resolve(con)
    assert s.mode == "incremental"
    assert s.reopened == 0
    assert _link(con, "finance/q2.csv") == (ids["fang1"], "fuzzy")
    assert _link(con, "finance/q3.csv", row=3) == (ids["fang1"], "exact")
    _assert_equals_full(con)


def test_a_reexported_file_whose_row_changed_reaches_its_id(county):
    """The same re-export with fang1's row changed (another account): her evidence changed,
    so the kept ID-less link to her is re-decided (and still equals a full run)."""
    con, ids = county
    q3 = [
        ("端木芳", ids["fang1"], V1, ACCT),
        ("端木强", ids["qiang1"], V1, "6228000000009002"),
    ]
    _payments(con, q3, "finance/q3.csv")
    _payments(con, [("端木芳", None, None, ACCT)], "finance/q2.csv")
    resolve(con)
    assert _link(con, "finance/q2.csv") == (ids["fang1"], "fuzzy")
    q3[0] = ("端木芳", ids["fang1"], V1, "6228000000009003")
    _reexport(con, [("欧阳修", None, V2, "6228000000009999"), *q3], "finance/q3.csv", "v2", 2)
    s = resolve(con)
    assert s.mode == "incremental"
    assert s.reopened >= 1
    _assert_equals_full(con)


def test_a_file_exported_again_with_rows_appended_keeps_its_rows_links(county):
    """Exported again with one row appended: its unchanged rows (same content, same number)
    keep their links under the new version, so only the appended row is resolved."""
    con, ids = county
    q3 = [
        ("端木芳", ids["fang1"], V1, ACCT),
        ("端木芳", None, None, ACCT),
        ("端木强", None, V1, None),
    ]
    _payments(con, q3, "finance/q3.csv")
    resolve(con)
    before = _links(con).drop(columns="file_hash")
    assert _link(con, "finance/q3.csv", row=3) == (ids["fang1"], "fuzzy")
    _reexport(con, [*q3, ("欧阳修", None, V2, "6228000000009999")], "finance/q3.csv", "v2", 2)
    s = resolve(con)
    assert s.mode == "incremental"
    assert s.new_mentions == 1 and s.reopened == 0
    after = _links(con)
    assert set(after.loc[after["file"] == "finance/q3.csv", "file_hash"]) == {"v2"}
    kept = after[(after["file"] != "finance/q3.csv") | (after["row"] < 5)]
    assert kept.drop(columns="file_hash").reset_index(drop=True).equals(before)
    _assert_equals_full(con)
