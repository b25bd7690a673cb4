"""`crossmatch detect` and `crossmatch evaluate` on a tiny warehouse file."""

from __future__ import annotations

import duckdb
import pytest
from click.testing import CliRunner

from crossmatch.cli import main
from crossmatch.detect import schema

from .conftest import RULES_DIR


def _warehouse(path):
    con = duckdb.connect(str(path))
    schema.load_rows(
        con, "person", [{"person_id": "A", "name": "张三", "in_registry": True}], temp=False
    )
    schema.load_rows(
        con,
        "r_death",
        [
            {
                "person_pid": "A",
                "person_id": "A",
                "person_id_raw": "A",
                "death_date": "2025-01-10",
                "_row": 2,
                "_file": "death/d.xlsx",
            }
        ],
        temp=False,
    )
    schema.load_rows(
        con,
        "r_payment",
        [
            {
                "payee_pid": "A",
                "payee_id": "A",
                "payee_name": "张三",
                "village_code": "341122001001",
                "account": "6200001",
                "item": "养老金",
                "amount": 183,
                "status": "success",
                "period": p,
                "_row": i + 2,
                "_file": "finance/q.csv",
            }
            for i, p in enumerate(["2025-01", "2025-02", "2025-03", "2025-04"])
        ],
        temp=False,
    )
    con.close()


def test_detect_then_evaluate(tmp_path):
    wh = tmp_path / "w.duckdb"
    _warehouse(wh)
    runner = CliRunner()
    res = runner.invoke(
        main,
        [
            "detect",
            "--rules",
            str(RULES_DIR),
            "--warehouse",
            str(wh),
            "--only",
            "deceased_recipient,vehicle_on_dibao",
        ],
    )
    # a skipped rule is an input problem: exit 4, not 0
    assert res.exit_code == 4, res.output
    assert "deceased_recipient" in res.output and "skipped" in res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("deceased_recipient")]
    assert lines[0].split()[1:3] == ["ok", "2"]  # 2025-03 and 2025-04

    truth = tmp_path / "truth"
    truth.mkdir()
    (truth / "planted.csv").write_text(
        "rule_id,kind,subject,period,note\n"
        "deceased_recipient,case,A,2025-03,\n"
        "deceased_recipient,case,A,2025-04,\n"
        "deceased_recipient,trap,A,2025-02,grace month\n",
        encoding="utf-8",
    )
    # every rule asked for is ok: exit 0 (hits are findings, not failures)
    res = runner.invoke(
        main,
        [
            "detect",
            "--rules",
            str(RULES_DIR),
            "--warehouse",
            str(wh),
            "--only",
            "deceased_recipient",
        ],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["evaluate", "--truth", str(truth), "--warehouse", str(wh)])
    assert res.exit_code == 0, res.output
    row = next(ln for ln in res.output.splitlines() if ln.startswith("deceased_recipient"))
    # status planted found hits recall precision traps flagged
    assert row.split()[1:] == ["ok", "2", "2", "2", "1.000", "1.000", "1", "0"]


def test_detect_without_warehouse_says_what_to_do(tmp_path):
    res = CliRunner().invoke(main, ["detect", "--warehouse", str(tmp_path / "none.duckdb")])
    assert res.exit_code == 5
    assert "run `crossmatch ingest` and `crossmatch resolve` first" in res.output


@pytest.mark.slow  # every rule against every mapping set
def test_validate_reports_each_rule_against_the_mappings(tmp_path):
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    src = tmp_path / "sources"
    shutil.copytree(root / "sources", src)
    runner = CliRunner()
    res = runner.invoke(main, ["validate", "--sources", str(src), "--rules", str(RULES_DIR)])
    assert res.exit_code == 0, res.output
    assert "deceased_recipient           ready" in res.output
    # a mapping that lacks a column a rule reads, a role named differently, a source missing
    pay = (src / "payment.yaml").read_text(encoding="utf-8")
    pay = "\n".join(ln for ln in pay.splitlines() if not ln.startswith("  status:"))
    (src / "payment.yaml").write_text(pay + "\n", encoding="utf-8")
    cad = (src / "cadre.yaml").read_text(encoding="utf-8").replace("role: cadre", "role: leader")
    (src / "cadre.yaml").write_text(cad, encoding="utf-8")
    (src / "vehicle.yaml").unlink()
    res = runner.invoke(main, ["validate", "--sources", str(src), "--rules", str(RULES_DIR)])
    assert res.exit_code == 3, res.output
    out = res.output
    assert "vehicle_on_dibao             skipped" in out and "'vehicle' has no mapping" in out
    assert "duplicate_payment            blind" in out
    assert f"{src / 'payment.yaml'}:" in out and "field `status` is not mapped" in out
    assert "no person role `person` (roles: leader)" in out
    assert "farmland_over_area           ready" in out
    res = runner.invoke(
        main, ["validate", "--sources", str(src), "--rules", str(RULES_DIR), "--allow-blind"]
    )
    assert res.exit_code == 0, res.output


def test_validate_names_a_missing_reference_table(tmp_path):
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    (rules / "reference" / "exempt_vehicle_types.csv").unlink()
    res = CliRunner().invoke(
        main, ["validate", "--sources", str(root / "sources"), "--rules", str(rules)]
    )
    assert res.exit_code == 3, res.output
    assert "exempt_vehicle_types.csv" in res.output
