"""``join``, ``lookup`` and ``unpivot`` (crossmatch.ingest.assemble) on tiny files: values,
lineage, counted ambiguities, re-assembly only when an input changed, identity keys, validate."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest

from crossmatch import normalize
from crossmatch.identity.pipeline import ResolveSummary, build_mentions
from crossmatch.identity.roles import roles_from_specs
from crossmatch.ingest import assemble, ingest
from crossmatch.spec import load_sources, validate_all

from .conftest import ID_A, write_csv, write_xlsx

ID_B = "11010519491231002X"
ID_C = "341122199001011232"


def run(root: Path, **kw):
    return ingest(root / "raw", root / "sources", root / "w.duckdb", **kw)


def q(root: Path, sql: str, params=None):
    with duckdb.connect(str(root / "w.duckdb"), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def write_spec(root: Path, name: str, text: str) -> Path:
    d = root / "sources"
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"{name}.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def by_status(summary, source: str, file: str | None = None):
    return [r for r in summary.results if r.source == source and (file is None or r.file == file)]


# ----------------------------------------------------------------------------- join

ASSIST_YAML = """\
source: assistance
files: [civil/members*.csv]
fields:
  case_no: {column: 保障证号, normalizer: code}
  member_name: {column: 成员姓名, normalizer: name}
  member_id: {column: 成员身份证号, normalizer: id}
  relation_to_applicant: 与申请人关系
join:
  - files: [civil/cases*.xlsx]
    on: [case_no]
    fields:
      case_no: {column: 保障证号, normalizer: code}
      applicant_name: {column: 申请人, normalizer: name}
      applicant_id: {column: 申请人身份证号, normalizer: id}
      start_date: {column: 开始日期, normalizer: date}
      handler_name: {column: 经办人, normalizer: name}
persons:
  - role: applicant
    name: applicant_name
    id: applicant_id
    context: {case_no: case_no}
  - role: member
    name: member_name
    id: member_id
  - role: handler
    name: handler_name
"""

MEMBERS = [
    "保障证号,成员姓名,成员身份证号,与申请人关系",
    f"A01,张三,{ID_A},本人",  # row 2
    "A01,张小三,,子女",  # row 3
    f"B02,李四,{ID_B},本人",  # row 4
    "C03,王五,,本人",  # row 5: case missing from the roster
    "D04,赵六,,本人",  # row 6: case twice in the roster (different applicants)
    ",钱七,,本人",  # row 7: no case number
]


def cases(applicant_b: str = "李四") -> list[list[object]]:
    return [
        ["低保对象花名册"],  # title row
        ["保障证号", "申请人", "申请人身份证号", "开始日期", "经办人"],
        ["A01", "张三", ID_A, dt.date(2024, 3, 1), "周经办"],  # row 3
        ["B02", applicant_b, ID_B, "2024年5月1日", "周经办"],  # row 4
        ["D04", "赵六", None, "2024-01-01", "周经办"],  # row 5
        ["D04", "赵陆", None, "2024-01-01", "周经办"],  # row 6: same key, other applicant
        ["E05", "孙八", None, "2024-01-01", "周经办"],  # row 7: no member
        ["A01", "张三", ID_A, dt.date(2024, 3, 1), "周经办"],  # row 8: exact duplicate of 3
    ]


@pytest.fixture
def joined(tmp_path: Path) -> Path:
    write_spec(tmp_path, "assistance", ASSIST_YAML)
    write_csv(tmp_path / "raw" / "civil" / "members.csv", MEMBERS)
    write_xlsx(tmp_path / "raw" / "civil" / "cases.xlsx", cases())
    return tmp_path


def test_join_left_joins_the_part_with_lineage_and_counts_what_it_cannot_join(joined):
    s = run(joined)
    assert [r.status for r in by_status(s, "assistance")] == ["loaded"] + ["warning"] * 4
    assert [r.status for r in by_status(s, "assistance.join1")] == ["loaded"]
    rows = q(
        joined,
        "SELECT _file, _row, _join1_file, _join1_row, case_no, member_name, applicant_name, "
        "applicant_id, start_date, handler_name FROM src_assistance ORDER BY _row",
    )
    x = "civil/cases.xlsx"
    assert rows == [
        ("civil/members.csv", 2, x, 3, "A01", "张三", "张三", ID_A, dt.date(2024, 3, 1), "周经办"),
        (
            "civil/members.csv",
            3,
            x,
            3,
            "A01",
            "张小三",
            "张三",
            ID_A,
            dt.date(2024, 3, 1),
            "周经办",
        ),
        ("civil/members.csv", 4, x, 4, "B02", "李四", "李四", ID_B, dt.date(2024, 5, 1), "周经办"),
        ("civil/members.csv", 5, None, None, "C03", "王五", None, None, None, None),
        ("civil/members.csv", 6, None, None, "D04", "赵六", None, None, None, None),
        ("civil/members.csv", 7, None, None, None, "钱七", None, None, None, None),
    ]
    (run_row,) = q(
        joined,
        "SELECT status, rows_out, join_missing, join_ambiguous, part_unmatched, "
        "part_duplicate_keys, lookup_missing, lookup_ambiguous FROM assemble_run",
    )
    assert run_row == ("ok", 6, 2, 1, 1, 2, 0, 0)
    issues = q(joined, "SELECT kind, file, row FROM assemble_issue ORDER BY kind, file, row")
    assert issues == [
        ("join_ambiguous", "civil/members.csv", 6),
        ("join_missing", "civil/members.csv", 5),
        ("join_missing", "civil/members.csv", 7),
        ("part_duplicate_key", x, 5),
        ("part_duplicate_key", x, 6),
        ("part_unmatched", x, 7),
    ]
    (warn,) = [r for r in s.results if "no part row" in r.message]
    assert "2 main row(s) have no part row" in warn.message
    assert "civil/members.csv rows 5, 7" in warn.message
    assert "assemble_issue" in warn.message and "Fix:" in warn.message
    assert not re.search(r"\d{15,18}|张|李|赵|孙", warn.message)  # no ID, no name
    assert "WARNING" in s.render()


def test_join_row_hash_covers_the_part_and_persons_are_mentions_at_the_main_row(joined):
    run(joined)
    (main_hash,) = q(joined, "SELECT hash FROM ingest_file WHERE source = 'assistance'")[0]
    hashes = {h for (h,) in q(joined, "SELECT DISTINCT _file_hash FROM src_assistance")}
    assert len(hashes) == 1 and main_hash not in hashes
    specs = load_sources(joined / "sources")
    with duckdb.connect(str(joined / "w.duckdb")) as con:
        build_mentions(con, roles_from_specs(specs), ResolveSummary())
        got = con.execute(
            "SELECT file, row, role, name, id FROM person_mention WHERE role = 'applicant' "
            "ORDER BY row"
        ).fetchall()
        dupes = con.execute(
            "SELECT count(*) FROM (SELECT source, file, row, role FROM person_mention "
            "GROUP BY ALL HAVING count(*) > 1)"
        ).fetchall()[0][0]
    assert got == [
        ("civil/members.csv", 2, "applicant", "张三", ID_A),
        ("civil/members.csv", 3, "applicant", "张三", ID_A),
        ("civil/members.csv", 4, "applicant", "李四", ID_B),
    ]
    assert dupes == 0


def test_unchanged_night_does_not_reassemble_a_changed_part_alone_does(joined):
    run(joined)
    s2 = run(joined)
    assert {r.status for r in s2.results} == {"unchanged"}
    assert q(joined, "SELECT count(*) FROM assemble_run") == [(1,)]
    before = {h for (h,) in q(joined, "SELECT DISTINCT _file_hash FROM src_assistance")}
    write_xlsx(joined / "raw" / "civil" / "cases.xlsx", cases(applicant_b="李肆"))
    s3 = run(joined)
    assert [r.status for r in by_status(s3, "assistance.join1")] == ["loaded"]
    assert [r.status for r in by_status(s3, "assistance", "civil/members.csv")] == ["unchanged"]
    assert q(joined, "SELECT count(*) FROM assemble_run") == [(2,)]
    assert q(joined, "SELECT applicant_name FROM src_assistance WHERE _row = 4") == [("李肆",)]
    after = {h for (h,) in q(joined, "SELECT DISTINCT _file_hash FROM src_assistance")}
    assert before.isdisjoint(after)  # identity re-resolves the rows whose part changed


def test_a_second_part_file_and_a_failed_part_file(joined):
    write_xlsx(
        joined / "raw" / "civil" / "cases_2.xlsx",
        [
            ["保障证号", "申请人", "申请人身份证号", "开始日期", "经办人"],
            ["C03", "王五", None, None, "吴"],
        ],
    )
    run(joined)
    assert q(
        joined, "SELECT applicant_name, _join1_file, _join1_row FROM src_assistance WHERE _row = 5"
    ) == [("王五", "civil/cases_2.xlsx", 2)]
    # a part file without the key column fails; the version loaded before stays
    write_xlsx(joined / "raw" / "civil" / "cases_2.xlsx", [["编号", "申请人"], ["C03", "王五"]])
    s = run(joined)
    (bad,) = by_status(s, "assistance.join1", "civil/cases_2.xlsx")
    assert bad.status == "failed" and "保障证号" in bad.message
    assert q(joined, "SELECT applicant_name FROM src_assistance WHERE _row = 5") == [("王五",)]


def test_a_changed_mapping_reassembles_and_a_removed_join_loads_plainly(joined):
    run(joined)
    spec = joined / "sources" / "assistance.yaml"
    spec.write_text(
        ASSIST_YAML.replace(
            "  handler_name: {column: 经办人", "  handler_name: {column: 经办人, optional: true"
        ),
        encoding="utf-8",
    )
    run(joined)
    assert q(joined, "SELECT count(*) FROM assemble_run") == [(2,)]
    plain = ASSIST_YAML.split("join:")[0] + "persons:\n  - role: member\n    name: member_name\n"
    spec.write_text(plain, encoding="utf-8")
    s = run(joined)
    assert [r.status for r in s.results] == ["loaded"]
    cols = [
        c
        for (c,) in q(
            joined,
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'src_assistance'",
        )
    ]
    assert "applicant_name" not in cols and "_join1_file" not in cols
    assert q(joined, "SELECT count(*) FROM src_assistance") == [(6,)]


# ----------------------------------------------------------------------------- lookup


@pytest.fixture
def village_normalizer():
    """A stand-in for the *fields* stream's village cleaner (马冲村村民委员会 / 马冲村3组 ->
    马冲村), registered for the test only."""

    def clean(s: pl.Series, params) -> normalize.Normalized:
        v = s.str.strip_chars().str.replace(r"(村民委员会|民委员会|委员会|\d+组)$", "")
        v = pl.when(v.str.ends_with("村") | v.is_null()).then(v).otherwise(v + "村")
        out = pl.select(v.alias("v"))["v"] if isinstance(v, pl.Expr) else v
        return normalize.Normalized({"": out}, pl.Series([None] * len(s), dtype=pl.String))

    name = "t_village"
    normalize.normalizer(name)(clean)
    yield name
    normalize.NORMALIZERS.pop(name, None)


HUKOU_YAML = """\
source: hukou
files: [hukou/*.csv]
fields:
  person_name: {column: 姓名, normalizer: name}
  person_id: {column: 身份证号, normalizer: id}
  township: 乡镇
  village: {column: 村, normalizer: NORM}
  village_code: {column: 行政区划代码, normalizer: code}
persons:
  - role: person
    name: person_name
    id: person_id
"""

PAY_YAML = """\
source: payment
files: [finance/*.csv]
fields:
  payee_name: {column: 姓名, normalizer: name}
  amount: {column: 金额, normalizer: amount}
  township: 乡镇
  village: {column: 村, normalizer: NORM}
  village_code:
    column: 村
    normalizer: NORM
    lookup: {source: hukou, on: {village: village}, take: village_code}
  town_village_code: {lookup: {source: hukou, on: [township, village], take: village_code}}
persons:
  - role: payee
    name: payee_name
    context: {village_code: village_code}
"""

HUKOU = [
    "姓名,身份证号,乡镇,村,行政区划代码",
    "甲,,城关镇,马冲村,341122001001",
    "乙,,城关镇,马冲村村民委员会,341122001001",
    "丙,,城关镇,清岭村,341122001002",
    "丁,,大桥镇,清岭村,341122002001",  # 清岭村 in two townships: ambiguous by name alone
    "戊,,大桥镇,新河村,",
]
PAY = [
    "姓名,金额,乡镇,村",
    "张三,100,城关镇,马冲村3组",  # row 2 -> 341122001001
    "李四,100,城关镇,清岭村",  # row 3: ambiguous by village, unique by township + village
    "王五,100,大桥镇,不存在村",  # row 4: missing
    "赵六,100,大桥镇,",  # row 5: no key
    "钱七,100,大桥镇,新河村",  # row 6: only an empty code: missing
]


@pytest.fixture
def looked(tmp_path: Path, village_normalizer: str) -> Path:
    write_spec(tmp_path, "hukou", HUKOU_YAML.replace("NORM", village_normalizer))
    write_spec(tmp_path, "payment", PAY_YAML.replace("NORM", village_normalizer))
    write_csv(tmp_path / "raw" / "hukou" / "h.csv", HUKOU)
    write_csv(tmp_path / "raw" / "finance" / "p.csv", PAY)
    return tmp_path


def test_lookup_takes_the_code_of_the_cleaned_key_never_guesses(looked):
    s = run(looked)
    assert [r.status for r in by_status(s, "payment")] == ["loaded"] + ["warning"] * 3
    assert by_status(s, "hukou")[0].status == "loaded"  # a plain source: no assembly
    rows = q(
        looked,
        "SELECT _row, village, village_code, town_village_code FROM src_payment ORDER BY _row",
    )
    assert rows == [
        (2, "马冲村", "341122001001", "341122001001"),
        (3, "清岭村", None, "341122001002"),
        (4, "不存在村", None, None),
        (5, None, None, None),
        (6, "新河村", None, None),
    ]
    (counts,) = q(looked, "SELECT lookup_missing, lookup_ambiguous FROM assemble_run")
    assert counts == (4, 1)  # village_code: rows 4, 6; town_village_code: rows 4, 6; ambiguous 3
    (warn,) = [r for r in s.results if "two or more" in r.message]
    assert "field village_code (lookup in hukou): 1 row(s)" in warn.message
    assert "two or more values" in warn.message and "add a key field" in warn.message


def test_lookup_reruns_when_the_looked_up_source_changes_only(looked):
    run(looked)
    s = run(looked)
    assert {r.status for r in s.results} == {"unchanged"}
    write_csv(looked / "raw" / "hukou" / "h.csv", [*HUKOU, "己,,大桥镇,不存在村,341122002009"])
    s = run(looked)
    assert by_status(s, "payment", "finance/p.csv")[0].status == "unchanged"
    assert q(looked, "SELECT village_code FROM src_payment WHERE _row = 4") == [("341122002009",)]
    assert q(looked, "SELECT count(*) FROM assemble_run") == [(2,)]


def test_a_looked_up_source_ingested_alone_reassembles_its_dependents(looked):
    run(looked)
    write_csv(looked / "raw" / "hukou" / "h.csv", [*HUKOU, "己,,大桥镇,不存在村,341122002009"])
    s = run(looked, only=["hukou"])
    assert [(r.source, r.status) for r in s.results][:1] == [("hukou", "loaded")]
    assert q(looked, "SELECT village_code FROM src_payment WHERE _row = 4") == [("341122002009",)]


def test_lookup_through_a_join_part_field(tmp_path, village_normalizer):
    write_spec(tmp_path, "hukou", HUKOU_YAML.replace("NORM", village_normalizer))
    write_csv(tmp_path / "raw" / "hukou" / "h.csv", HUKOU)
    yaml = ASSIST_YAML.replace(
        "      handler_name: {column: 经办人, normalizer: name}\n",
        f"      handler_name: {{column: 经办人, normalizer: name}}\n"
        f"      village: {{column: 村, normalizer: {village_normalizer}}}\n",
    ).replace(
        "  relation_to_applicant: 与申请人关系\n",
        "  relation_to_applicant: 与申请人关系\n  village_code: {lookup: {source: hukou, "
        "on: [village], take: village_code}}\n",
    )
    write_spec(tmp_path, "assistance", yaml)
    write_csv(tmp_path / "raw" / "civil" / "members.csv", [*MEMBERS[:3], MEMBERS[5]])
    rows = [[*r, "马冲村1组"] for r in cases()[1:3]]
    rows[0][-1] = "村"
    # case D04 twice, in two villages: its member gets no village, so no code (never a guess)
    rows += [[*cases()[4], "马冲村"], [*cases()[5], "清岭村"]]
    write_xlsx(tmp_path / "raw" / "civil" / "cases.xlsx", rows)
    run(tmp_path)
    assert q(tmp_path, "SELECT _row, village, village_code FROM src_assistance ORDER BY 1") == [
        (2, "马冲村", "341122001001"),
        (3, "马冲村", "341122001001"),
        (4, None, None),
    ]


# ----------------------------------------------------------------------------- unpivot

STD_YAML = """\
source: subsidy_standard
files: [finance/*.csv]
fields:
  item: 补贴项目
  region_prefix: {column: 区划, normalizer: code}
  band: {normalizer: int}
  amount: {normalizer: amount, required: true}
unpivot:
  - {amount: 1人, band: {value: '1'}}
  - {amount: 2人, band: {value: '2'}}
  - {amount: [6人及以上, 6人以上], band: {value: '6'}}
"""


def test_unpivot_one_row_per_group_empty_groups_skipped_rows_encoded(tmp_path):
    write_spec(tmp_path, "subsidy_standard", STD_YAML)
    write_csv(
        tmp_path / "raw" / "finance" / "std.csv",
        [
            "补贴项目,区划,1人,2人,6人以上",
            "农村低保金,341122,500,900,2400",  # row 2
            "城市低保金,341122,600,,",  # row 3: 2 and 6+ empty -> no row
            "特困供养金,341122,abc,800,2000",  # row 4: bad amount in group 1
            "合计,1,2",  # row 5: a summary row (skipped and counted, whatever its shape)
            *(f"项目{i},341122,{i},," for i in range(6, 150)),
            "特困供养金,1,2",  # row 150: wrong shape
        ],
    )
    s = run(tmp_path)
    (r,) = s.results
    assert r.status == "loaded", r.message
    rows = q(
        tmp_path,
        "SELECT _row, item, band, amount FROM src_subsidy_standard WHERE _row < 600 ORDER BY _row",
    )
    assert rows == [
        (201, "农村低保金", 1, Decimal("500.00")),
        (202, "农村低保金", 2, Decimal("900.00")),
        (203, "农村低保金", 6, Decimal("2400.00")),
        (301, "城市低保金", 1, Decimal("600.00")),
        (402, "特困供养金", 2, Decimal("800.00")),
        (403, "特困供养金", 6, Decimal("2000.00")),
    ]
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (8 + 145, 6 + 144, 2)
    assert r.rows_summary == 1
    assert q(tmp_path, "SELECT max(_row) FROM src_subsidy_standard") == [(14901,)]
    quar = q(tmp_path, 'SELECT "row", reason FROM quarantine ORDER BY "row"')
    assert [x[0] for x in quar] == [4, 150]
    assert "1人" in quar[0][1] or "amount" in quar[0][1]
    assert "cells but the header has 5" in quar[1][1]


def test_unpivot_missing_group_column_fails_the_file_with_the_fix(tmp_path):
    write_spec(tmp_path, "subsidy_standard", STD_YAML)
    write_csv(tmp_path / "raw" / "finance" / "std.csv", ["补贴项目,区划,1人,6人以上", "x,1,2,3"])
    (r,) = run(tmp_path).results
    assert r.status == "failed"
    assert "column '2人' (group 2, field amount)" in r.message and "Fix:" in r.message


PROPERTY_YAML = """\
source: property
files: [housing/*.csv]
fields:
  unit_no: 不动产单元号
  owner_name: {column: 权利人, normalizer: name}
  owner_id: {column: 证件号码, normalizer: id}
unpivot:
  - {owner_name: 权利人, owner_id: 证件号码}
  - {owner_name: 共有人, owner_id: 共有人证件号码}
persons:
  - role: owner
    name: owner_name
    id: owner_id
"""


def test_unpivot_co_owners_keep_identity_keys_unique(tmp_path):
    write_spec(tmp_path, "property", PROPERTY_YAML)
    write_csv(
        tmp_path / "raw" / "housing" / "p.csv",
        [
            "不动产单元号,权利人,证件号码,共有人,共有人证件号码",
            f"U1,张三,{ID_A},李四,{ID_B}",
            f"U2,王五,{ID_C},,",
        ],
    )
    (r,) = run(tmp_path).results
    assert r.status == "loaded", r.message
    assert q(tmp_path, "SELECT _row, unit_no, owner_name FROM src_property ORDER BY 1") == [
        (201, "U1", "张三"),
        (202, "U1", "李四"),
        (301, "U2", "王五"),
    ]
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        build_mentions(con, roles_from_specs(load_sources(tmp_path / "sources")), ResolveSummary())
        keys = con.execute("SELECT file, row, role, id FROM person_mention ORDER BY row").fetchall()
    assert [k[1] for k in keys] == [201, 202, 301] and keys[1][3] == ID_B


def test_plan_units_and_dependency_order(tmp_path, village_normalizer):
    write_spec(tmp_path, "hukou", HUKOU_YAML.replace("NORM", village_normalizer))
    write_spec(tmp_path, "payment", PAY_YAML.replace("NORM", village_normalizer))
    write_spec(tmp_path, "assistance", ASSIST_YAML)
    p = assemble.plan(load_sources(tmp_path / "sources"))
    assert [(u.id, u.table) for u in p.units] == [
        ("assistance", "_asm_assistance__main"),
        ("assistance.join1", "_asm_assistance__join1"),
        ("hukou", "src_hukou"),
        ("payment", "_asm_payment__main"),
    ]
    assert [s.id for s in p.assembled] == ["assistance", "payment"]
    specs = load_sources(tmp_path / "sources")
    by_id = {s.id: s for s in specs}
    assert assemble.input_sources(by_id["assistance"], specs) == ["assistance", "assistance.join1"]
    assert assemble.input_sources(by_id["payment"], specs) == ["hukou", "payment"]
    assert assemble.input_sources(by_id["hukou"], specs) == ["hukou"]
    part = next(u for u in p.units if u.id == "assistance.join1")
    assert (part.unpivot, part.joins, part.header_row, part.delimiter) == ((), (), None, ",")
    pay = next(u for u in p.units if u.id == "payment")
    assert [f.name for f in pay.fields] == [
        "payee_name",
        "amount",
        "township",
        "village",
        "village_code",
    ]
    spec = next(s for s in load_sources(tmp_path / "sources") if s.id == "payment")
    assert ("village_code", "VARCHAR") in spec.columns()


# ----------------------------------------------------------------------------- validate


def problems(root: Path) -> list[str]:
    return [str(p) for p in validate_all({"sources": root / "sources"})]


def test_validate_lookup_errors_name_the_line_and_the_fix(tmp_path):
    write_spec(tmp_path, "hukou", HUKOU_YAML.replace("NORM", "text"))
    pay = PAY_YAML.replace("NORM", "text")
    pay = pay.replace("village], take: village_code", "village], take: vilage_code")
    pay = pay.replace("on: [township, village]", "on: {township: twonship, village: village}")
    pay = pay.replace(
        "source: hukou, on: {village: village}", "source: hukuo, on: {village: village}"
    )
    write_spec(tmp_path, "payment", pay)
    f = (tmp_path / "sources" / "payment.yaml").as_posix()
    got = problems(tmp_path)
    assert (
        f"{f}:11: field 'village_code': lookup source 'hukuo' not found in the sources "
        "folder; fix: did you mean 'hukou'?" in got
    )
    assert any(
        p.startswith(f"{f}:12: field 'town_village_code': lookup key 'township' -> 'twonship'")
        and "did you mean 'township'?" in p
        for p in got
    ), got
    assert any(
        p.startswith(
            f"{f}:12: field 'town_village_code': lookup take 'vilage_code' is not a "
            "field of source 'hukou'"
        )
        and "did you mean 'village_code'?" in p
        for p in got
    ), got


def test_validate_take_and_cycles(tmp_path):
    write_spec(
        tmp_path,
        "a",
        "source: a\nfiles: [a.csv]\nfields:\n  k: K\n  v: {lookup: "
        "{source: b, on: [k], take: v}}\n",
    )
    write_spec(
        tmp_path,
        "b",
        "source: b\nfiles: [b.csv]\nfields:\n  k: K\n  v: {lookup: "
        "{source: a, on: [k], take: w}}\n",
    )
    got = problems(tmp_path)
    assert any("lookup take 'w' is not a field of source 'a'" in p for p in got), got
    assert any("lookup cycle: " in p for p in got), got
    write_spec(tmp_path, "b", "source: b\nfiles: [b.csv]\nfields:\n  k: K\n  v: V\n")
    assert problems(tmp_path) == []
    write_spec(
        tmp_path,
        "b",
        "source: b\nfiles: [b.csv]\nfields:\n  k: K\n  v: {lookup: "
        "{source: b, on: [k], take: k}}\n",
    )
    assert any("lookup cycle: b -> b" in p for p in problems(tmp_path))
    write_spec(
        tmp_path,
        "b",
        "source: b\nfiles: [b.csv]\nfields:\n  k: K\n  v: {required: true, lookup: "
        "{source: a, on: [k], take: k}}\n",
    )
    assert any("a lookup field cannot be `required`" in p for p in problems(tmp_path))


def test_validate_join_and_unpivot_errors(tmp_path):
    bad = ASSIST_YAML.replace("    on: [case_no]", "    on: [case_num]").replace(
        "      applicant_name: {column: 申请人, normalizer: name}",
        "      applicant_name: {column: 申请人, normalizer: name}\n      member_name: 成员",
    )
    write_spec(tmp_path, "assistance", bad)
    f = (tmp_path / "sources" / "assistance.yaml").as_posix()
    got = problems(tmp_path)
    assert any(
        p.startswith(f"{f}:10: join part 1: key 'case_num' is not a field of the main")
        and "did you mean 'case_no'?" in p
        for p in got
    ), got
    assert any("key 'case_num' is not one of the part's fields" in p for p in got), got
    assert any(
        ":14: join part 1: field 'member_name' is already defined by the main" in p for p in got
    ), got
    std = STD_YAML.replace("band: {value: '2'}", "bnad: {value: '2'}").replace(
        "  amount: {normalizer: amount, required: true}\n",
        "  amount: {normalizer: amount}\n  extra: {normalizer: int}\n",
    )
    write_spec(tmp_path, "subsidy_standard", std)
    got = problems(tmp_path)
    s = (tmp_path / "sources" / "subsidy_standard.yaml").as_posix()
    assert any(
        p.startswith(f"{s}:11: unpivot group 2: 'bnad' is not a field")
        and "did you mean 'band'?" in p
        for p in got
    ), got
    assert any(p.startswith(f"{s}:8: field 'extra': 'column' must be") for p in got), got
    assert any(p.startswith(f"{s}:6: field 'band': 'column' must be") for p in got), got


def test_validate_raw_checks_the_join_part_headers(joined):
    write_xlsx(joined / "raw" / "civil" / "cases.xlsx", [["保障证号", "申请人姓名"], ["A01", "x"]])
    got = [str(p) for p in validate_all({"sources": joined / "sources", "raw": joined / "raw"})]
    f = (joined / "sources" / "assistance.yaml").as_posix()
    assert any(
        p.startswith(
            f"{f}:13: field 'applicant_name': column '申请人' not found in civil/cases.xlsx"
        )
        and "申请人姓名" in p
        for p in got
    ), got


def test_looked_up_source_not_loaded_warns_and_gives_null(looked):
    s = run(looked, only=["payment"])
    msgs = [r.message for r in s.results if r.status == "warning"]
    assert any("src_hukou" in m and "Fix: ingest source 'hukou'" in m for m in msgs), msgs
    assert q(looked, "SELECT count(village_code) FROM src_payment") == [(0,)]
    s = run(looked)  # hukou now loads: payment re-assembles though its file is unchanged
    assert by_status(s, "payment", "finance/p.csv")[0].status == "unchanged"
    assert q(looked, "SELECT count(village_code) FROM src_payment") == [(1,)]


def test_a_failed_assembly_fails_the_run_and_keeps_the_previous_rows(joined, monkeypatch):
    run(joined)
    write_csv(joined / "raw" / "civil" / "members.csv", MEMBERS[:2])

    def boom(*a, **k):
        raise duckdb.InvalidInputException("simulated")

    monkeypatch.setattr(assemble, "_part_keyed", boom)
    s = run(joined)
    (bad,) = [r for r in s.results if r.file == "(assembly)"]
    assert bad.status == "failed" and "previous rows stay" in bad.message
    assert s.failed == [bad]
    assert q(joined, "SELECT count(*) FROM src_assistance") == [(6,)]
    monkeypatch.undo()
    run(joined)  # the next run assembles (the failed one recorded no fingerprint)
    assert q(joined, "SELECT count(*) FROM src_assistance") == [(1,)]


def test_validate_raw_checks_the_unpivot_group_columns(tmp_path):
    write_spec(tmp_path, "subsidy_standard", STD_YAML)
    write_csv(
        tmp_path / "raw" / "finance" / "std.csv", ["补贴项目,区划,1人,两人,6人以上", "x,1,2,3,4"]
    )
    got = [str(p) for p in validate_all({"sources": tmp_path / "sources", "raw": tmp_path / "raw"})]
    f = (tmp_path / "sources" / "subsidy_standard.yaml").as_posix()
    assert got == [
        f"{f}:10: unpivot group 2: column '2人' (field amount) not found in finance/std.csv "
        "(header row 1); fix: the nearest unmapped header is '两人': add it to the group"
    ]


SAMPLE_ROSTER = Path(__file__).parents[2] / "data/sample/raw/civil/低保特困救助对象花名册.xlsx"
CASE_COLS = ["救助证编号", "救助类别", "申请人姓名", "申请人身份证号", "保障人数", "月保障金额"]
CASE_COLS += ["经办人", "审批人", "救助开始日期", "救助终止日期"]
MEMBER_COLS = ["救助证编号", "成员姓名", "成员身份证号", "与申请人关系", "乡镇(街道)", "村(社区)"]
MEMBER_COLS += ["行政区划代码"]


def test_the_sample_roster_split_in_two_files_and_joined_loads_the_same_rows(tmp_path):
    """The sample's one-file roster, split into a member list and a case roster (one row per
    case), joined back: every canonical column of every row equals the one-file load."""
    repo = Path(__file__).parents[2]
    df = pl.read_excel(SAMPLE_ROSTER, read_options={"header_row": 1}, infer_schema_length=0)
    raw = tmp_path / "raw" / "civil"
    raw.mkdir(parents=True)
    df.select(MEMBER_COLS).write_csv(raw / "members.csv")
    cases_ = df.select(CASE_COLS).unique(subset=["救助证编号"], keep="first", maintain_order=True)
    cases_.write_excel(raw / "cases.xlsx")
    main = "\n".join(f"  {x}" for x in MEMBER_FIELDS)
    part = "\n".join(f"      {x}" for x in CASE_FIELDS)
    yaml = (
        f"source: assistance\nfiles: [civil/members.csv]\nfields:\n{main}\njoin:\n"
        f"  - files: [civil/cases.xlsx]\n    on: [case_no]\n    fields:\n{part}\n"
    )
    write_spec(tmp_path, "assistance", yaml)
    run(tmp_path)
    (one,) = ingest(
        repo / "data/sample/raw", repo / "sources", tmp_path / "one.duckdb", only=["assistance"]
    ).results
    assert one.status == "loaded"
    with duckdb.connect(str(tmp_path / "one.duckdb"), read_only=True) as con:
        cols = [
            c
            for (c,) in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = "
                "'src_assistance' AND NOT starts_with(column_name, '_') ORDER BY ordinal_position"
            ).fetchall()
        ]
        sel = ", ".join(f'"{c}"' for c in cols)
        want = con.execute(f"SELECT _row - 1, {sel} FROM src_assistance ORDER BY 1").fetchall()
    got = q(tmp_path, f"SELECT _row, {sel} FROM src_assistance ORDER BY 1")
    assert len(want) > 2000 and got == want
    assert q(tmp_path, "SELECT join_missing, join_ambiguous FROM assemble_run") == [(0, 0)]


MEMBER_FIELDS = [
    "case_no: {column: 救助证编号, normalizer: code}",
    "member_name: {column: 成员姓名, normalizer: name}",
    "member_id: {column: 成员身份证号, normalizer: id}",
    "relation_to_applicant: 与申请人关系",
    "township: 乡镇(街道)",
    "village: 村(社区)",
    "village_code: {column: 行政区划代码, normalizer: code}",
]
CASE_FIELDS = [
    "case_no: {column: 救助证编号, normalizer: code}",
    "assistance_type: 救助类别",
    "applicant_name: {column: 申请人姓名, normalizer: name}",
    "applicant_id: {column: 申请人身份证号, normalizer: id}",
    "household_size: {column: 保障人数, normalizer: int}",
    "monthly_amount: {column: 月保障金额, normalizer: amount}",
    "handler_name: {column: 经办人, normalizer: name}",
    "approver_name: {column: 审批人, normalizer: name}",
    "start_date: {column: 救助开始日期, normalizer: date}",
    "end_date: {column: 救助终止日期, normalizer: date}",
]


def test_a_part_reads_with_its_own_options_not_the_mains(tmp_path):
    write_spec(
        tmp_path,
        "roster",
        "source: roster\nfiles: [m.csv]\ndelimiter: ';'\nfields:\n  case_no: 编号\n  name: 姓名\n"
        "join:\n  - files: [c.csv]\n    on: [case_no]\n    header_row: 2\n    fields:\n"
        "      case_no: 编号\n      amount: {column: 金额, normalizer: amount}\n",
    )
    write_csv(tmp_path / "raw" / "m.csv", ["编号;姓名", "A;甲", "B;乙"])
    write_csv(tmp_path / "raw" / "c.csv", ["案件清单,", "编号,金额", "A,100元", "B,1.5万元"])
    run(tmp_path)
    assert q(tmp_path, "SELECT _row, name, amount, _join1_row FROM src_roster ORDER BY 1") == [
        (2, "甲", Decimal("100.00"), 3),
        (3, "乙", Decimal("15000.00"), 4),
    ]


def test_validate_unpivot_with_sheets_is_refused(tmp_path):
    write_spec(tmp_path, "subsidy_standard", STD_YAML.replace("fields:", "sheets: all\nfields:"))
    got = problems(tmp_path)
    assert any("unpivot cannot be combined with `sheets:`" in p for p in got), got


@pytest.mark.parametrize("pattern", ["../secret/*.csv", "/etc/*.csv", "civil/../../x.csv"])
def test_validate_join_part_glob_must_stay_in_the_raw_folder(tmp_path, pattern):
    write_spec(tmp_path, "assistance", ASSIST_YAML.replace("[civil/cases*.xlsx]", f"['{pattern}']"))
    got = problems(tmp_path)
    assert any("leaves the raw folder" in p and ":9: join part 1" in p for p in got), got
