"""Source specs: the public API, and every problem reported at once with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossmatch.errors import SpecError
from crossmatch.spec import load_sources, validate_all

from .conftest import PAYMENT_YAML

REPO = Path(__file__).resolve().parents[2]


def test_load_sources_api(county):
    (spec,) = load_sources(county / "sources")
    assert spec.id == "payment" and spec.table == "src_payment"
    assert spec.field("payee_id").columns == ("收款人身份证号", "身份证号", "公民身份号码")
    (role,) = spec.persons
    assert (role.role, role.name, role.id) == ("payee", "payee_name", "payee_id")
    cols = dict(spec.columns())
    assert list(cols)[:5] == ["_source", "_file", "_file_hash", "_row", "_dup_of"]
    assert cols["payee_id_status"] == "VARCHAR" and cols["amount"] == "DECIMAL(18,2)"
    assert cols["payee_name_raw"] == "VARCHAR" and cols["pay_date"] == "DATE"


def test_every_problem_reported_with_file_and_line(tmp_path):
    bad = """\
source: payment
files: [finance/*.csv]
encodng: gbk
fields:
  payee_name: {column: 收款人姓名, normalizer: nmae}
  payee_id: {column: 收款人身份证号, normalizer: id, unit: wan}
  amount: {normalizer: amount}
persons:
  - role: payee
    name: payee_nam
    id: payee_id
"""
    (tmp_path / "payment.yaml").write_text(bad, encoding="utf-8")
    problems = [str(p) for p in validate_all({"sources": tmp_path})]
    f = (tmp_path / "payment.yaml").as_posix()
    assert problems == [
        f"{f}:3: unknown key 'encodng' in source file; fix: did you mean 'encoding'?",
        f"{f}:5: field 'payee_name': unknown normalizer 'nmae'; fix: did you mean 'name'?",
        f"{f}:6: unknown key 'unit' in field 'payee_id'; fix: allowed keys: column, normalizer,"
        " required, optional, description" + problems[2].split("description", 1)[-1],
        f"{f}:7: field 'amount': 'column' must be a header name or a list of header aliases;"
        " fix: add `column: 表头` (or `column: [身份证号, 公民身份号码]`)",
        f"{f}:10: person role 'payee': name refers to unknown field 'payee_nam';"
        " fix: did you mean 'payee_id'?",
    ]


def test_load_sources_raises_one_error_listing_all(tmp_path):
    (tmp_path / "a.yaml").write_text("source: b\nfiles: x.csv\nfields: {x: X}\n", "utf-8")
    (tmp_path / "c.yaml").write_text("source: c\nfields: [\n", "utf-8")
    with pytest.raises(SpecError) as exc:
        load_sources(tmp_path)
    assert len(exc.value.problems) == 2
    assert exc.value.problems[0].endswith(
        "a.yaml:1: source id 'b' differs from the file name 'a.yaml'; "
        "fix: rename the file to b.yaml or set `source: a`"
    )
    assert "c.yaml:3: YAML syntax error" in exc.value.problems[1]


def test_person_role_field_must_use_matching_normalizer(tmp_path):
    text = PAYMENT_YAML.replace(
        "payee_name: {column: [收款人姓名, 姓名], normalizer: name}",
        "payee_name: [收款人姓名, 姓名]",
    )
    (tmp_path / "payment.yaml").write_text(text, "utf-8")
    (p,) = validate_all({"sources": tmp_path})
    assert str(p).endswith(
        "payment.yaml:13: person role 'payee': field 'payee_name' must use normalizer 'name'"
        " (it uses 'text'); fix: add `normalizer: name` to field 'payee_name'"
    )


def test_missing_column_reports_nearest_header_in_the_file(county):
    text = PAYMENT_YAML.replace("column: 发放金额", "column: 发放金额(元)")
    (county / "sources" / "payment.yaml").write_text(text, "utf-8")
    problems = validate_all({"sources": county / "sources", "raw": county / "raw"})
    assert [str(p).split("sources/", 1)[1] for p in problems] == [
        "payment.yaml:7: field 'amount': column '发放金额(元)' not found in finance/q1.csv "
        "(header row 1); fix: the nearest header is '发放金额': add it to `column:`"
    ]


def test_repository_sources_are_valid_and_declare_persons():
    specs = load_sources(REPO / "sources")
    assert len(specs) == 21
    no_person = {"subsidy_standard", "procurement"}
    for s in specs:
        assert bool(s.persons) == (s.id not in no_person), s.id
        for r in s.persons:
            if r.id:
                assert s.field(r.id).normalizer == "id"
            if r.name:
                assert s.field(r.name).normalizer == "name"


def test_validate_all_runs_registered_validators(tmp_path, monkeypatch):
    from crossmatch import spec
    from crossmatch.spec.common import Problem

    monkeypatch.setattr(spec, "_VALIDATORS", dict(spec._VALIDATORS))
    spec.register_validator("fake", lambda paths: [Problem("a.yaml", 2, f"saw {paths['x']}")])
    problems = spec.validate_all({"x": tmp_path, "sources": None})
    assert [str(p) for p in problems] == [f"a.yaml:2: saw {tmp_path}"]
