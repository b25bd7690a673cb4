"""Rule-file validation: every problem at once, each with file:line and a fix."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from crossmatch.spec.rules import load_rules, sql_literal, validate_rules

from .conftest import RULES_DIR

GOOD = (RULES_DIR / "ghost_recipient.yaml").read_text(encoding="utf-8")


def write(tmp_path: Path, name: str, text: str) -> Path:
    d = tmp_path / "rules"
    if not d.exists():
        shutil.copytree(RULES_DIR / "reference", d / "reference")
    (d / name).write_text(text, encoding="utf-8")
    return d


def msgs(problems) -> list[str]:
    return [str(p) for p in problems]


def test_good_file_has_no_problems(tmp_path):
    assert not validate_rules(write(tmp_path, "ghost_recipient.yaml", GOOD))


def test_structure_problems_are_all_reported_with_lines(tmp_path):
    text = (
        GOOD.replace("category: false_claim", "category: fals_claim")
        .replace("severity: high", "severity: hgh\nsevrity: high")
        .replace("requires: [payment, hukou]", "requires: [payment, hukuo]")
    )
    d = write(tmp_path, "ghost_recipient.yaml", text)
    out = msgs(validate_rules(d))
    joined = "\n".join(out)
    assert "ghost_recipient.yaml:4: category 'fals_claim'" in joined
    assert "did you mean 'false_claim'?" in joined
    assert (
        "ghost_recipient.yaml:6: unknown key 'sevrity' in rule; fix: did you mean 'severity'?"
        in joined
    )
    assert "unknown source 'hukuo' in requires; fix: did you mean 'hukou'?" in joined
    assert len(out) >= 4


def test_id_must_match_file_name(tmp_path):
    d = write(tmp_path, "ghost.yaml", GOOD)
    (p,) = validate_rules(d)
    assert str(p) == (
        f"{d / 'ghost.yaml'}:1: id 'ghost_recipient' differs from the file name; "
        "fix: rename the file to ghost_recipient.yaml or set `id: ghost`"
    )


def test_undeclared_parameter_and_bad_default(tmp_path):
    text = GOOD.replace(
        "WHERE payee_pid IS NULL", "WHERE {{ params.min_amont }} > 0 OR payee_pid IS NULL"
    ).replace(
        "requires: [payment, hukou]",
        "requires: [payment, hukou]\nparams:\n  min_amount: {type: int, default: 'x'}",
    )
    out = "\n".join(msgs(validate_rules(write(tmp_path, "ghost_recipient.yaml", text))))
    assert "parameter 'min_amount': default value 'x' is not a int" in out
    assert "SQL uses undeclared parameter 'min_amont'" in out


def test_sql_that_does_not_compile_points_into_the_sql(tmp_path):
    text = GOOD.replace("'id_raw': min(payee_id_raw)", "'id_raw': min(payee_id_rw)")
    assert "payee_id_rw" in text
    d = write(tmp_path, "ghost_recipient.yaml", text)
    (p,) = validate_rules(d)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "payee_id_rw" in t)
    assert p.line == line
    assert "SQL does not compile" in p.message and "payee_id_rw" in p.message


def test_wrong_result_shape(tmp_path):
    text = GOOD.replace("AS subject_name", "AS name")
    (p,) = validate_rules(write(tmp_path, "ghost_recipient.yaml", text))
    assert "must return ['subject', 'subject_name'" in p.message


def test_missing_reference_table_is_reported(tmp_path):
    d = write(tmp_path, "ghost_recipient.yaml", GOOD)
    (d / "reference" / "item_class.csv").unlink()
    (p,) = validate_rules(d)
    assert str(p).endswith(
        "item_class.csv:1: reference table missing; fix: create it "
        "with header `item,class` (the shared base views read it)"
    )


def test_yaml_syntax_error(tmp_path):
    (p,) = validate_rules(write(tmp_path, "ghost_recipient.yaml", GOOD + "\n  bad: [\n"))
    assert "YAML syntax error" in p.message


def test_validate_command_checks_rules(tmp_path):
    from click.testing import CliRunner

    from crossmatch.cli import main

    d = write(tmp_path, "ghost_recipient.yaml", GOOD.replace("severity: high", "severity: hi"))
    res = CliRunner().invoke(main, ["validate", "--rules", str(d)])
    assert res.exit_code == 3, res.output
    assert "ghost_recipient.yaml:5: severity 'hi'" in res.output


@pytest.mark.parametrize(
    ("value", "typ", "sql"),
    [
        ("O'Brien", "str", "'O''Brien'"),
        (["a'; DROP TABLE x; --"], "list[str]", "CAST(['a''; DROP TABLE x; --'] AS VARCHAR[])"),
        (dt.date(2025, 1, 2), "date", "DATE '2025-01-02'"),
        (True, "bool", "TRUE"),
        (3, "int", "3"),
    ],
)
def test_parameters_render_as_literals(value, typ, sql):
    assert sql_literal(value, typ) == sql


def test_override_type_is_checked():
    (spec,) = load_rules(RULES_DIR, only=["deceased_recipient"])
    with pytest.raises(ValueError, match="is not a int"):
        spec.render_sql({"grace_months": "1; DROP TABLE hit"})
