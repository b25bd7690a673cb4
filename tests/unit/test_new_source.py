"""A new department source and a rule reading it are two YAML files, no Python.

In a temporary folder: ``sources/pension.yaml`` (a department the shipped contract does not
know), ``rules/pension_over_cap.yaml`` reading ``r_pension``, one raw CSV. Then the CLI's
validate, ingest, resolve and detect give exactly the planted hit.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from crossmatch import contract
from crossmatch.cli import main
from crossmatch.idnumber import check_char

ROOT = Path(__file__).resolve().parents[2]

PENSION_SOURCE = """\
source: pension
description: "城乡居民养老保险待遇发放 (人社局): one row per pensioner and month"
files: [hrss/养老金发放*.csv]
fields:
  person_name: {column: 姓名, normalizer: name}
  person_id: {column: 身份证号, normalizer: id}
  village_code: {column: 行政区划代码, normalizer: code}
  monthly_amount: {column: 月养老金, normalizer: amount, required: true}
  period: {column: 发放年月, normalizer: period}
persons:
  - role: person
    name: person_name
    id: person_id
    context: {village_code: village_code}
"""

PENSION_RULE = """\
id: pension_over_cap
version: 1
title: {zh: 养老金超标准发放, en: Pension paid above the cap}
category: false_claim
severity: medium
description: A monthly pension above the county's cap.
requires: [pension]
params:
  cap:
    type: float
    default: 1000.0
    doc: the highest monthly pension in the county (yuan)
sql: |
  SELECT person_pid AS subject, any_value(person_name) AS subject_name, period,
         sum(monthly_amount) - {{ params.cap }} AS amount, any_value(village_code) AS village_code,
         {'rows': list({'source': _source, 'file': _file, 'row': _row, 'role': 'person'})}
             AS evidence
  FROM r_pension
  WHERE monthly_amount > {{ params.cap }}
  GROUP BY person_pid, period
amount_formula: monthly pension minus the cap
exclusion_hints:
  - 核实是否含补发的以前月份待遇
examples:
  - name: above the cap fires
    given:
      r_pension:
        - {person_pid: A, person_name: 张三, monthly_amount: 1500, period: 2025-03}
        - {person_pid: B, person_name: 李四, monthly_amount: 800, period: 2025-03}
    expect:
      - {subject: A, period: 2025-03, amount: 500}
"""

# Valid GB 11643 ID numbers (checksums computed by crossmatch.idnumber in the assertion below).
RAW = """\
姓名,身份证号,行政区划代码,月养老金,发放年月
张三,{a},341122001,1500.00,2025-03
李四,{b},341122001,800.00,2025-03
张三,{a},341122001,900.00,2025-04
"""


@pytest.fixture
def county(tmp_path):
    def ident(body: str) -> str:
        return body + check_char(body)

    a, b = ident("34112219500101001"), ident("34112219520202002")
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "pension.yaml").write_text(PENSION_SOURCE, "utf-8")
    # a rules folder carries the shared reference tables (item classes) the base views read
    shutil.copytree(ROOT / "rules" / "reference", tmp_path / "rules" / "reference")
    (tmp_path / "rules" / "pension_over_cap.yaml").write_text(PENSION_RULE, "utf-8")
    (tmp_path / "raw" / "hrss").mkdir(parents=True)
    (tmp_path / "raw" / "hrss" / "养老金发放2025.csv").write_text(
        textwrap.dedent(RAW.format(a=a, b=b)), "utf-8"
    )
    yield tmp_path, a
    contract.reset()


def _cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, list(args))
    return res.exit_code, res.output


def test_unknown_source_is_refused_without_its_mapping(county):
    tmp, _ = county
    contract.reset()
    code, out = _cli("validate", "--sources", str(tmp / "nowhere"), "--rules", str(tmp / "rules"))
    assert code == 3
    assert "unknown source 'pension'" in out


def test_a_new_source_and_a_rule_reading_it_need_no_python(county):
    tmp, a = county
    src, rules, raw, wh = tmp / "sources", tmp / "rules", tmp / "raw", tmp / "w.duckdb"
    code, out = _cli("validate", "--sources", str(src), "--rules", str(rules), "--raw", str(raw))
    assert code == 0, out
    assert "pension_over_cap" in out and "ready" in out
    code, out = _cli("ingest", "--raw", str(raw), "--sources", str(src), "--warehouse", str(wh))
    assert code == 0, out
    code, out = _cli("resolve", "--sources", str(src), "--warehouse", str(wh))
    assert code == 0, out
    code, out = _cli("detect", "--rules", str(rules), "--sources", str(src), "--warehouse", str(wh))
    assert code == 0, out
    con = duckdb.connect(str(wh), read_only=True)
    hits = con.execute(
        "SELECT h.rule_id, p.id_number, h.period, h.amount FROM hit h "
        "JOIN person p ON p.person_id = h.subject"
    ).fetchall()
    status = con.execute("SELECT rule_id, status FROM rule_run").fetchall()
    con.close()
    assert status == [("pension_over_cap", "ok")]
    assert [(r, i, p, float(m)) for r, i, p, m in hits] == [
        ("pension_over_cap", a, "2025-03", 500.0)
    ]
