"""The partitioned detect run (``flows/partitioned.py``, i.e. ``crossmatch detect --prefect --dask
local``: the Prefect flow on a Dask LocalCluster of 2 processes, and ``crossmatch detect --dask
local`` on plain dask.distributed) gives exactly the single-machine run's hits, including cases
planted to cross partitions.

The committed sample has no hit whose persons live in two townships, so the test plants them:
in hits of every rule found by a first run, every person but the subject moves home to another
township (recipients of one account, household members, a cadre and the relative, an official
and the applicant's family), and one of each duplicate payment is paid in another township.
Both runs then read the same planted warehouse.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from crossmatch.cli import main

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample"
pytestmark = [pytest.mark.slow, pytest.mark.flows]

LATEST = (
    "SELECT * EXCLUDE (run_id) FROM hit WHERE run_id = "
    "(SELECT max_by(run_id, finished_at) FROM detect_run WHERE status = 'finished')"
)


def _cli(*args: str) -> None:
    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert res.exit_code in (0, 4), res.output


def _flow_module():
    spec = importlib.util.spec_from_file_location("partitioned", ROOT / "flows" / "partitioned.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["partitioned"] = mod
    spec.loader.exec_module(mod)
    return mod


#: Persons of a hit (from its evidence's identity links) with their home township.
HIT_HOMES = """
WITH h AS (
    SELECT rule_id, subject, period,
           unnest(from_json(json_extract(evidence, '$.rows'),
                            '[{"file": "VARCHAR", "row": "INTEGER"}]')) AS x
    FROM hit WHERE run_id = (SELECT max_by(run_id, finished_at) FROM detect_run
                             WHERE status = 'finished'))
SELECT DISTINCT h.rule_id, h.subject, h.period, il.person_id,
       substr(p.village_code, 1, 9) AS home
FROM h JOIN identity_link il ON il.file = h.x.file AND il.row = h.x.row
JOIN person p ON p.person_id = il.person_id
"""


def _plant(con: duckdb.DuckDBPyConnection, per_rule: int = 6) -> None:
    towns = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT substr(village_code, 1, 9) FROM person "
            "WHERE village_code IS NOT NULL ORDER BY 1"
        ).fetchall()
    ]
    assert len(towns) >= 2
    nxt = {t: towns[(i + 1) % len(towns)] for i, t in enumerate(towns)}
    con.execute(f"CREATE TEMP TABLE homes AS {HIT_HOMES}")
    con.execute(
        """CREATE TEMP TABLE picked AS
        SELECT * FROM homes WHERE (rule_id, subject, period) IN (
            SELECT (rule_id, subject, period) FROM (SELECT DISTINCT rule_id, subject, period
                FROM homes WHERE person_id <> subject)
            QUALIFY row_number() OVER (PARTITION BY rule_id ORDER BY subject, period) <= ?)
          AND person_id <> subject AND home IS NOT NULL""",
        [per_rule],
    )
    moves = dict(con.execute("SELECT DISTINCT person_id, home FROM picked").fetchall())
    for pid, home in moves.items():  # the rest of the village code stays: another township
        con.execute(
            "UPDATE person SET village_code = ? || substr(village_code, 10) WHERE person_id = ?",
            [nxt[home], pid],
        )
    # a person paid in two townships: the second payment of a duplicate in the next township
    dups = con.execute(
        """SELECT json_extract_string(evidence, '$.rows[1].file'),
                  CAST(json_extract(evidence, '$.rows[1].row') AS INTEGER)
           FROM hit WHERE rule_id = 'duplicate_payment' ORDER BY subject LIMIT ?""",
        [per_rule],
    ).fetchall()
    for file, row in dups:
        con.execute(
            "UPDATE src_payment SET village_code = ? || substr(village_code, 10) "
            "WHERE _file = ? AND _row = ?",
            [nxt[towns[0]], file, row],
        )
    assert moves and dups


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("scale")
    raw = tmp / "raw"
    shutil.copytree(SAMPLE / "raw", raw)
    wh = str(tmp / "w.duckdb")
    _cli("ingest", "--raw", str(raw), "--sources", str(ROOT / "sources"), "--warehouse", wh)
    _cli("resolve", "--sources", str(ROOT / "sources"), "--warehouse", wh)
    _cli("detect", "--rules", str(ROOT / "rules"), "--warehouse", wh)
    con = duckdb.connect(wh)
    try:
        _plant(con)
    finally:
        con.close()
    return Path(wh)


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_partitioned_flow_equals_single_machine(planted, harness, tmp_path, capsys):
    single = tmp_path / "single.duckdb"
    parts = tmp_path / "parts.duckdb"
    plain = tmp_path / "plain.duckdb"
    for copy in (single, parts, plain):
        shutil.copy(planted, copy)
    # --full: every rule computes (the planted warehouse has a finished run: without it, rules
    # whose inputs the planting left alone would copy that run's hits, on both sides)
    _cli("detect", "--full", "--rules", str(ROOT / "rules"), "--warehouse", str(single))

    # flows/partitioned.py is `crossmatch detect --prefect --dask local`: the flow, one Prefect
    # task per partition on a LocalCluster of 2 processes through prefect-dask
    mod = _flow_module()
    assert mod.cli_args(["--full"]) == ["detect", "--prefect", "--dask", "local", "--full"]
    capsys.readouterr()
    rc = mod.main(["--warehouse", str(parts), "--rules", str(ROOT / "rules"), "--full",
                   "--dask-workers", "2"])  # fmt: skip
    table = capsys.readouterr().out
    assert rc == 0, table
    run_id = re.search(r"^run (\S+)$", table, re.M).group(1)  # the table's first line
    assert "inputs unchanged (hits reused): 0;" in table
    # the same detect on plain dask.distributed (no Prefect): `crossmatch detect --dask local`
    res = CliRunner().invoke(
        main, ["detect", "--full", "--rules", str(ROOT / "rules"), "--warehouse", str(plain),
               "--dask", "local"], catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "partitions ran on: Dask LocalCluster (2 worker processes" in res.output

    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{single}' AS s (READ_ONLY)")
        con.execute(f"ATTACH '{parts}' AS p (READ_ONLY)")
        con.execute(f"ATTACH '{plain}' AS q (READ_ONLY)")
        hits, runs, fps = {}, {}, {}
        for db in ("s", "p", "q"):
            got = con.execute(
                LATEST.replace("hit", f"{db}.hit").replace("detect_run", f"{db}.detect_run")
            )
            hits[db] = sorted(map(repr, got.fetchall()))
            runs[db] = sorted(
                con.execute(
                    f"SELECT rule_id, status, hits, amount FROM {db}.rule_run WHERE run_id = "
                    f"(SELECT max_by(run_id, finished_at) FROM {db}.detect_run)"
                ).fetchall()
            )
            fps[db] = sorted(
                con.execute(
                    f"SELECT rule_id, fingerprint FROM {db}.rule_input WHERE run_id = "
                    f"(SELECT max_by(run_id, finished_at) FROM {db}.detect_run)"
                ).fetchall()
            )
        assert len(hits["s"]) > 1000
        # every column: subject, amount, evidence, clue key
        assert hits["p"] == hits["s"] and hits["q"] == hits["s"]
        assert runs["p"] == runs["s"] and runs["q"] == runs["s"]
        assert len(fps["s"]) == 16 and fps["p"] == fps["s"] and fps["q"] == fps["s"]
        # the planted cases are there and cross partitions: persons of one hit homed in two
        # townships, for local rules and cross-step rules alike
        con.execute("USE p")
        spans = dict(
            con.execute(
                f"SELECT rule_id, count(*) FROM (SELECT rule_id, subject, period FROM "
                f"({HIT_HOMES}) GROUP BY ALL HAVING count(DISTINCT home) > 1) GROUP BY 1"
            ).fetchall()
        )
        for rid in ("shared_account", "vehicle_on_dibao", "property_on_dibao"):
            assert spans.get(rid, 0) > 0, (rid, spans)  # run per partition
        for rid in ("cadre_relative_recipient", "approver_relative"):
            assert spans.get(rid, 0) > 0, (rid, spans)  # run in the cross step
        two_towns = con.execute(
            "SELECT count(*) FROM hit WHERE rule_id = 'duplicate_payment' AND run_id = "
            "(SELECT max_by(run_id, finished_at) FROM detect_run) AND "
            "(SELECT count(DISTINCT substr(v, 1, 9)) FROM (SELECT unnest(json_extract_string("
            "evidence, '$.items[*].villages[*]')) AS v)) > 1"
        ).fetchone()[0]
        assert two_towns > 0
    finally:
        con.close()
    assert "5 partitions" in table and "5 partitions" in res.output
    assert "rules per partition: 10 of 16; cross step: 6" in table
    # recorded like a normal detect: the next `crossmatch detect` copies the partitioned hits
    res = CliRunner().invoke(
        main, ["detect", "--rules", str(ROOT / "rules"), "--warehouse", str(parts)]
    )
    assert res.exit_code == 0, res.output
    assert res.output.count("(inputs unchanged: hits of run " + run_id) == 16, res.output
