"""A failed file: the rules that read its source are skipped, including those whose hand-declared
requirements forgot it (over_standard_amount reads the case roster through dibao_member)."""

from __future__ import annotations

import pytest

from .conftest import County

pytestmark = pytest.mark.slow  # real processes on a generated county


ROSTER = "civil/低保特困救助对象花名册.xlsx"


def test_failed_roster_file_skips_the_rules_that_read_it(county: County):
    (county.raw / ROSTER).write_bytes(b"PK\x03\x04 not really a workbook")
    code, out = county.ingest()
    assert code == 4, out  # the file failed; its previous version stays loaded
    code, out = county.detect(
        only="over_standard_amount,payroll_on_dibao,vehicle_on_dibao,deceased_recipient,"
        "duplicate_payment"
    )
    assert code == 4, out
    st = county.statuses()
    for rule in ("over_standard_amount", "payroll_on_dibao", "vehicle_on_dibao"):
        assert st[rule][0] == "skipped", (rule, st[rule])
        assert "assistance" in st[rule][1] and ROSTER in st[rule][1]
    # rules that do not read the roster still run
    assert st["deceased_recipient"][0] == "ok"
    assert st["duplicate_payment"][0] == "ok"


def test_two_clean_runs_store_identical_hits(county: County):
    code, out = county.detect()  # the second clean run (the first built the county)
    assert code == 0, out
    rows = county.query(
        """WITH r AS (SELECT run_id, row_number() OVER (ORDER BY finished_at) AS n
                      FROM detect_run WHERE status = 'finished' AND rules = 16)
           SELECT r.n, count(*), count(DISTINCT (h.rule_id, h.subject, h.period,
                  h.subject_name, h.village_code, h.amount, CAST(h.evidence AS VARCHAR)))
           FROM hit h JOIN r USING (run_id) GROUP BY r.n ORDER BY r.n"""
    )
    assert len(rows) == 2 and rows[0][1] == rows[1][1]
    diff = county.query(
        """WITH r AS (SELECT run_id, row_number() OVER (ORDER BY finished_at) AS n
                      FROM detect_run WHERE status = 'finished' AND rules = 16),
           h AS (SELECT r.n, rule_id, subject, period, subject_name, village_code, amount,
                        CAST(evidence AS VARCHAR) AS ev FROM hit JOIN r USING (run_id))
           SELECT rule_id, count(*) FROM (
               (SELECT * EXCLUDE (n) FROM h WHERE n = 1 EXCEPT SELECT * EXCLUDE (n) FROM h
                WHERE n = 2)
               UNION ALL
               (SELECT * EXCLUDE (n) FROM h WHERE n = 2 EXCEPT SELECT * EXCLUDE (n) FROM h
                WHERE n = 1)) GROUP BY rule_id ORDER BY rule_id"""
    )
    assert diff == [], diff


def test_clean_run_gives_no_contract_drift_warning(county: County, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="crossmatch"):
        code, out = county.detect(only="cadre_account,over_standard_amount,supplier_official_link")
    assert code == 0, out
    drift = [r for r in caplog.records if "contract drift" in r.getMessage()]
    assert not [r for r in drift if r.levelno >= logging.WARNING], [r.getMessage() for r in drift]
