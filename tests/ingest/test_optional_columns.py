"""An optional column the export lacks vs one it has and leaves empty (issue 17): ingestion
records which optional columns each file had (``ingest_file.optional_columns``); detect counts a
column NULL in every row as blind only when some loaded file lacked its header. A property
export with a 共有人 column that no row fills (a county without co-owners) leaves
property_on_dibao ``ok``; the same export without the column leaves it ``blind``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from crossmatch.detect import needs as rule_needs
from crossmatch.detect import rule_runner as engine
from crossmatch.ingest import ingest
from crossmatch.spec.rules import load_rules

from .conftest import write_csv

REPO = Path(__file__).resolve().parents[2]
HEAD = "权利人,证件号码,不动产单元号,坐落,规划用途,建筑面积,登记日期,注销日期"
ROWS = [
    "张鑫,341122197103225697,U1,城关镇幸福路208号,住宅,105.39,2019-06-11,",
    "刘涛,341122198505076094,U2,城关镇滨河路257号,住宅,65.02,2012-07-10,",
]


def _county(root: Path, co_owner_header: bool) -> Path:
    (root / "sources").mkdir(parents=True)
    shutil.copy(REPO / "sources" / "property.yaml", root / "sources" / "property.yaml")
    if co_owner_header:  # the header is there, no home has a co-owner
        lines = [HEAD + ",共有人,共有人证件号码", *(r + ",," for r in ROWS)]
    else:
        lines = [HEAD, *ROWS]
    write_csv(root / "raw" / "housing" / "不动产登记信息.csv", lines)
    ingest(root / "raw", root / "sources", root / "w.duckdb")
    with duckdb.connect(str(root / "w.duckdb")) as con:  # what resolve publishes: owners linked
        con.execute(
            "CREATE VIEW r_property AS SELECT *, owner_id AS owner_pid, "
            "NULL::VARCHAR AS co_owner_pid FROM src_property"
        )
    return root / "w.duckdb"


@pytest.fixture(scope="module")
def property_needs() -> dict[str, rule_needs.RuleNeeds]:
    specs = [s for s in load_rules(REPO / "rules") if s.id == "property_on_dibao"]
    return rule_needs.derive(specs, REPO / "rules")


@pytest.mark.parametrize("co_owner_header", [True, False])
def test_ingest_records_which_optional_columns_the_file_had(tmp_path, co_owner_header):
    wh = _county(tmp_path, co_owner_header)
    with duckdb.connect(str(wh), read_only=True) as con:
        (doc,) = con.execute(
            "SELECT optional_columns FROM ingest_file WHERE source = 'property'"
        ).fetchone()
    rec = json.loads(doc)
    side, other = ("present", "absent") if co_owner_header else ("absent", "present")
    assert {"co_owner_name", "co_owner_id", "co_owner_id_raw", "co_owner_pid"} <= set(rec[side])
    assert not {"co_owner_id", "co_owner_pid"} & set(rec[other])
    assert "owner_id" not in rec["present"] + rec["absent"]  # not optional: never listed


@pytest.mark.parametrize(("co_owner_header", "status"), [(True, "ok"), (False, "blind")])
def test_empty_co_owner_column_is_blind_only_when_the_export_lacks_it(
    tmp_path, property_needs, co_owner_header, status
):
    wh = _county(tmp_path, co_owner_header)
    nd = property_needs["property_on_dibao"]
    with duckdb.connect(str(wh), read_only=True) as con:
        empty = engine.empty_columns(con, property_needs)
        lacking = engine.lacking_headers(con, empty)
        loaded = {"property": {r[0] for r in con.execute('DESCRIBE "r_property"').fetchall()}}
    if co_owner_header:
        assert not {"co_owner_id", "co_owner_id_raw"} & empty.get("property", set())
    else:
        assert {"co_owner_id", "co_owner_id_raw"} <= empty["property"]
    # the other sources the rule needs are loaded and ok: only the property columns decide
    avail = {s: None for s in nd.sources()}
    loaded.update({s: set(c) for s, c in nd.source_columns().items() if s != "property"})
    got, why = engine.assess(nd, avail, loaded, empty, None)
    assert got == status, why
    if status == "blind":
        assert "r_property.co_owner_id" in why and "empty in every row" in why
    # with the ingest record: the reason says plainly that the export lacks the column
    got, why = engine.assess(nd, avail, loaded, empty, None, lacking)
    assert got == status, why
    if status == "blind":
        assert "the export has no such column" in why and "r_property.co_owner_id" in why
        assert ".csv" in why and "empty in every row" not in why
    else:
        assert lacking == {}


def test_a_file_loaded_before_the_record_keeps_the_column_blind(tmp_path, property_needs):
    """No record (a warehouse from before ``optional_columns``): the old, cautious verdict."""
    wh = _county(tmp_path, co_owner_header=True)
    with duckdb.connect(str(wh)) as con:
        con.execute("UPDATE ingest_file SET optional_columns = NULL")
        assert engine.present_optional(con, "property") == set()
        assert {"co_owner_id", "co_owner_id_raw"} <= engine.empty_columns(con, property_needs)[
            "property"
        ]


JOINED_YAML = """\
source: property
files: [housing/不动产登记信息*.csv]
fields:
  owner_name: {column: 权利人, normalizer: name}
  owner_id: {column: 证件号码, normalizer: id}
  unit_no: {column: 不动产单元号, normalizer: code}
  location: 坐落
  usage: 规划用途
  area_m2: {column: 建筑面积, normalizer: area_m2}
  reg_date: {column: 登记日期, normalizer: date}
  cancel_date: {column: 注销日期, normalizer: date}
join:
  - files: [housing/共有情况*.csv]
    on: [unit_no]
    fields:
      unit_no: {column: 不动产单元号, normalizer: code}
      co_owner_name: {column: 共有人, normalizer: name, optional: true}
      co_owner_id: {column: 共有人证件号码, normalizer: id, optional: true}
persons:
  - {role: owner, name: owner_name, id: owner_id}
  - {role: co_owner, name: co_owner_name, id: co_owner_id}
"""


def _joined_county(root: Path, co_owner_header: bool) -> Path:
    """The property register as two files: the units, and a co-ownership list by unit."""
    (root / "sources").mkdir(parents=True)
    (root / "sources" / "property.yaml").write_text(JOINED_YAML, encoding="utf-8")
    write_csv(root / "raw" / "housing" / "不动产登记信息.csv", [HEAD, *ROWS])
    part = ["不动产单元号,共有性质" + (",共有人,共有人证件号码" if co_owner_header else "")]
    part += [f"U{k},单独所有" + (",," if co_owner_header else "") for k in (1, 2)]
    write_csv(root / "raw" / "housing" / "共有情况.csv", part)
    ingest(root / "raw", root / "sources", root / "w.duckdb")
    with duckdb.connect(str(root / "w.duckdb")) as con:
        con.execute(
            "CREATE VIEW r_property AS SELECT *, owner_id AS owner_pid, "
            "NULL::VARCHAR AS co_owner_pid FROM src_property"
        )
    return root / "w.duckdb"


@pytest.mark.parametrize(("co_owner_header", "status"), [(True, "ok"), (False, "blind")])
def test_an_optional_column_of_a_join_part_counts_the_parts_files(
    tmp_path, property_needs, co_owner_header, status
):
    """A source of two files (``join:``): the co-owner columns come from the part's file, so
    that file's header decides, not the main file's (which never maps them)."""
    wh = _joined_county(tmp_path, co_owner_header)
    nd = property_needs["property_on_dibao"]
    with duckdb.connect(str(wh), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM src_property").fetchone() == (2,)
        empty = engine.empty_columns(con, property_needs)
        lacking = engine.lacking_headers(con, empty)
        loaded = {"property": {r[0] for r in con.execute('DESCRIBE "r_property"').fetchall()}}
    avail = {s: None for s in nd.sources()}
    loaded.update({s: set(c) for s, c in nd.source_columns().items() if s != "property"})
    got, why = engine.assess(nd, avail, loaded, empty, None, lacking)
    assert got == status, why
    if status == "blind":
        assert "the export has no such column" in why and "共有情况.csv" in why
    else:
        assert not {"co_owner_id", "co_owner_id_raw"} & empty.get("property", set())
