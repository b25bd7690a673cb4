"""Detect reuse and identity-link probabilities (crossmatch.detect.reuse, ``LINK_DECIMALS``).

Rules see a link's probability at two decimals (``rule_runner._LinksOf``): ``min_link_probability``
is compared with that value and hit evidence quotes it. The fingerprints hash exactly that
value, so

* a probability that moves without changing its two decimals changes no result, and the hits
  are reused (whole rule, or every payment month);
* a probability that crosses a rule's threshold is not reused, and the run equals a full one;
  with a digest blind to probabilities (the naive one) the same change *is* reused and the
  stored hits differ from a full run's (so these tests can fail);
* a rule that does not read ``identity_link`` sees links only through the ``identity_links``
  quoted in its evidence: its hits are copied and quote tonight's links (``reuse.REQUOTE``),
  equal to a full run; a plain copy would quote last night's.
"""

from __future__ import annotations

import duckdb
import pytest

from crossmatch.detect import reuse, run_rules

from .conftest import RULES_DIR, build_warehouse

FILE = "farmland_subsidy/fixture.csv"
NAIVE = "file, row, role, person_id, method"  # what a digest blind to probabilities hashes


def _farmland() -> duckdb.DuckDBPyConnection:
    """李芳's two ID-less subsidy rows (9 + 4 mu, 6 contracted): row 2 linked fuzzy at 0.97
    (trusted: min_link_probability 0.95), row 3 unresolved (never trusted)."""
    pid = "341122195501020011"
    row = {"person_pid": pid, "person_id": None, "person_name": "李芳", "rate": 100, "year": 2025}
    return build_warehouse(
        {
            "r_farmland_subsidy": [{**row, "area_mu": 9.0}, {**row, "area_mu": 4.0}],
            "r_land_contract": [{"contractor_pid": pid, "area_mu": 6.0}],
            "identity_link": [
                {"source": "farmland_subsidy", "file": FILE, "row": 2, "role": "person",
                 "person_id": pid, "method": "fuzzy", "probability": 0.97},
                {"source": "farmland_subsidy", "file": FILE, "row": 3, "role": "person",
                 "person_id": pid, "method": "unresolved", "probability": None},
            ],
        }
    )  # fmt: skip


def _hits(con: duckdb.DuckDBPyConnection, run_id: str) -> list[tuple]:
    return sorted(
        con.execute(
            "SELECT rule_id, subject, period, amount, evidence::VARCHAR, clue_key FROM hit "
            "WHERE run_id = ?",
            [run_id],
        ).fetchall()
    )


def _set_p(con: duckdb.DuckDBPyConnection, file: str, row: int, p: float) -> None:
    con.execute(
        "UPDATE identity_link SET probability = ? WHERE file = ? AND row = ?", [p, file, row]
    )


def test_a_probability_moving_within_its_two_decimals_is_reused():
    con = _farmland()
    (first,) = run_rules(con, RULES_DIR, only=["farmland_over_area"]).outcomes
    assert first.hits == 1 and first.reused_from is None
    run1 = con.execute("SELECT run_id FROM detect_run").fetchone()[0]
    _set_p(con, FILE, 2, 0.9712)  # re-decided tonight: another posterior, the same 0.97
    out = run_rules(con, RULES_DIR, only=["farmland_over_area"]).outcomes[0]
    assert out.reused_from == run1
    full = run_rules(con, RULES_DIR, only=["farmland_over_area"], full=True)
    order = "SELECT run_id FROM detect_run ORDER BY started_at"
    runs = [r[0] for r in con.execute(order).fetchall()]
    assert _hits(con, runs[1]) == _hits(con, full.run_id) != []
    assert '"link_probability":0.97' in _hits(con, full.run_id)[0][4]


@pytest.mark.parametrize("naive", [False, True])
def test_a_probability_crossing_the_threshold_is_computed(monkeypatch, naive: bool):
    con = _farmland()
    run_rules(con, RULES_DIR, only=["farmland_over_area"])
    if naive:
        monkeypatch.setattr(reuse, "LINK_SEEN", NAIVE)
        run_rules(con, RULES_DIR, only=["farmland_over_area"], full=True)  # naive fingerprints
    _set_p(con, FILE, 2, 0.93)  # below min_link_probability 0.95: row 2 no longer counts
    out = run_rules(con, RULES_DIR, only=["farmland_over_area"]).outcomes[0]
    night = con.execute(
        "SELECT run_id FROM detect_run ORDER BY started_at DESC LIMIT 1"
    ).fetchone()[0]
    full = run_rules(con, RULES_DIR, only=["farmland_over_area"], full=True).run_id
    assert _hits(con, full) == []  # 4 mu trusted against 6 contracted: nothing to flag
    if naive:  # taken as unchanged: last night's hit is copied, and the comparison sees it
        assert out.reused_from is not None
        assert _hits(con, night) != _hits(con, full)
    else:
        assert out.reused_from is None
        assert _hits(con, night) == _hits(con, full)


def _dead_payee() -> duckdb.DuckDBPyConnection:
    """A dead person paid in two months; the May row is ID-less, linked fuzzy at 0.8123 (the
    hit evidence quotes the links of its rows)."""
    pay = {"item": "城乡低保金", "amount": 500, "status": "success", "account": "6200001",
           "village_code": "341122001001", "payee_pid": "A", "payee_name": "张三",
           "_file": "finance/q2.csv"}  # fmt: skip
    link = {"source": "payment", "file": "finance/q2.csv", "role": "payee", "person_id": "A"}
    return build_warehouse(
        {
            "person": [
                {"person_id": "A", "name": "张三", "death_date": "2025-01-10", "in_registry": True}
            ],
            "r_payment": [
                {**pay, "period": "2025-05", "_row": 7, "payee_id": None},
                {**pay, "period": "2025-06", "_row": 8},
            ],
            "r_death": [
                {
                    "person_pid": "A",
                    "person_id": "A",
                    "person_id_raw": "A",
                    "death_date": "2025-01-10",
                }
            ],
            "identity_link": [
                {**link, "row": 7, "method": "fuzzy", "probability": 0.8123},
                {**link, "row": 8, "method": "exact", "probability": 1.0},
            ],
        }
    )


@pytest.mark.parametrize("naive", [False, True])
def test_copied_hits_quote_tonights_links(monkeypatch, naive: bool):
    """deceased_recipient does not read identity_link: its hits see links only through the
    ``identity_links`` its evidence quotes, so its fingerprints hold no link and a copy quotes
    tonight's links (reuse.REQUOTE). The May link re-decided at 0.8251 (0.83): the hits are
    copied, quote 0.83, and equal a full run; a plain copy (naive) quotes a stale 0.81."""
    rule = "deceased_recipient"
    con = _dead_payee()
    if naive:
        real = reuse._stage_copy
        monkeypatch.setattr(reuse, "_stage_copy", lambda c, s, a, rq: real(c, s, a, False))
    (first,) = run_rules(con, RULES_DIR, only=[rule]).outcomes
    assert first.hits == 2
    _set_p(con, "finance/q2.csv", 7, 0.8251)
    (out,) = run_rules(con, RULES_DIR, only=[rule]).outcomes
    assert out.reused_from is not None  # nothing the rule computes from changed
    night = con.execute(
        "SELECT run_id FROM detect_run ORDER BY started_at DESC LIMIT 1"
    ).fetchone()[0]
    full = run_rules(con, RULES_DIR, only=[rule], full=True).run_id
    may = [h for h in _hits(con, full) if h[2] == "2025-05"]
    assert len(may) == 1 and '"probability":0.83' in may[0][4]
    if naive:
        assert _hits(con, night) != _hits(con, full)
    else:
        assert _hits(con, night) == _hits(con, full)


def test_the_links_a_rule_sql_can_read():
    """``reuse.sql_link_sources``: the sources whose links can match a rule's joins on
    ``<link>.source = <t>._source``; None (every source it reads counts) when a reference to
    identity_link is not so joined."""
    from pathlib import Path as P

    from crossmatch.detect.rule_kinds import load_checked_rules

    con = duckdb.connect()
    got = {
        s.id: reuse.sql_link_sources(con, s.render_sql())
        for s in load_checked_rules(P(RULES_DIR))
        if "identity_link" in s.render_sql()
    }
    assert got == {
        "business_on_dibao": ["enterprise", "shareholder"],
        "farmland_over_area": ["farmland_subsidy"],
        "property_on_dibao": ["property"],
        "shared_account": ["payment"],  # through the building block paid
        "vehicle_on_dibao": ["vehicle"],
    }
    unknown = [
        "SELECT * FROM identity_link WHERE method = 'fuzzy'",
        "SELECT * FROM r_vehicle v JOIN identity_link il ON il.source = v._source OR il.row = 1",
        "WITH x AS (SELECT * FROM r_vehicle) SELECT * FROM x JOIN identity_link il "
        "ON il.source = x._source",
        "SELECT * FROM r_vehicle v JOIN identity_link il ON il.source = v._source "
        "JOIN identity_link l2 ON l2.file = v._file",
    ]
    assert [reuse.sql_link_sources(con, q) for q in unknown] == [None] * 4


@pytest.mark.parametrize("naive", [False, True])
def test_a_link_the_rule_only_quotes_is_quoted_afresh(monkeypatch, naive: bool):
    """farmland_over_area joins identity_link on the subsidy rows only; a land-contract row it
    quotes in its evidence has its link re-decided (0.90 -> 0.70): the hits are copied and
    quote 0.7, as a full run does (a plain copy, naive, quotes 0.9)."""
    if naive:
        real = reuse._stage_copy
        monkeypatch.setattr(reuse, "_stage_copy", lambda c, s, a, rq: real(c, s, a, False))
    con = _farmland()
    con.execute(
        "INSERT INTO identity_link (source, file, row, role, person_id, method, probability) "
        "VALUES ('land_contract', 'land_contract/fixture.csv', 2, 'contractor', "
        "'341122195501020011', 'fuzzy', 0.9)"
    )
    run_rules(con, RULES_DIR, only=["farmland_over_area"])
    _set_p(con, "land_contract/fixture.csv", 2, 0.7)
    (out,) = run_rules(con, RULES_DIR, only=["farmland_over_area"]).outcomes
    assert out.reused_from is not None
    night = con.execute(
        "SELECT run_id FROM detect_run ORDER BY started_at DESC LIMIT 1"
    ).fetchone()[0]
    full = run_rules(con, RULES_DIR, only=["farmland_over_area"], full=True).run_id
    (hit,) = _hits(con, full)
    assert '"probability":0.7' in hit[4]
    assert (_hits(con, night) == _hits(con, full)) is not naive
