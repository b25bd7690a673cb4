"""Real processes: kill -9 in the middle of detect; a warehouse locked by another process,
corrupt or missing; a disk that fills up. Each gives a clear message and exit code 5, or leaves
the previous results as the latest (issue 10, Low but visible)."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import RULES, SOURCES, County, cli

pytestmark = pytest.mark.slow  # real processes on a generated county


LOCKED = "another crossmatch process holds it open"


def _crossmatch(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "crossmatch.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def _slow_rules(tmp: Path) -> Path:
    """The rules plus one that takes minutes (a scalar sub-query over billions of numbers)."""
    rules = tmp / "rules"
    shutil.copytree(RULES, rules)
    text = (rules / "duplicate_payment.yaml").read_text(encoding="utf-8")
    text = text.replace("id: duplicate_payment", "id: zz_slow_probe")
    text = text.replace(
        "  GROUP BY payee_pid, period\n",
        "  GROUP BY payee_pid, period\n"
        "  HAVING (SELECT count(*) FROM range(40000000000) t(x) WHERE hash(x) % 7 = 0) >= 0\n",
    )
    assert "40000000000" in text
    (rules / "zz_slow_probe.yaml").write_text(text, encoding="utf-8")
    return rules


def test_kill_9_during_detect_keeps_the_previous_run(county: County, tmp_path: Path):
    before = county.query(
        "SELECT run_id FROM detect_run WHERE status = 'finished' ORDER BY finished_at DESC"
    )[0][0]
    n_hits = county.query("SELECT count(*) FROM hit")[0][0]
    n_rule_runs = county.query("SELECT count(*), max(started_at) FROM rule_run")[0]
    rules = _slow_rules(tmp_path)
    p = _crossmatch(
        "--log-level", "info", "detect", "--rules", str(rules), "--warehouse", str(county.wh),
        "--only", "vehicle_on_dibao,zz_slow_probe",
    )  # fmt: skip
    deadline = time.monotonic() + 120
    assert p.stderr is not None
    for line in p.stderr:  # wait until the first rule is done and the slow one runs
        if "rule vehicle_on_dibao:" in line or time.monotonic() > deadline:
            break
    time.sleep(1.0)
    assert p.poll() is None, "detect ended before it could be killed"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL
    # the latest finished run, its hits and rule rows are those of before
    assert (
        county.query(
            "SELECT run_id FROM detect_run WHERE status = 'finished' ORDER BY finished_at DESC"
        )[0][0]
        == before
    )
    assert county.query("SELECT count(*) FROM hit")[0][0] == n_hits
    assert county.query("SELECT count(*), max(started_at) FROM rule_run")[0] == n_rule_runs
    # the killed run is visible as never finished, and the warehouse works afterwards
    assert county.query("SELECT count(*) FROM detect_run WHERE status = 'running'")[0][0] == 1
    code, out = county.detect(only="vehicle_on_dibao")
    assert code == 0, out


@pytest.fixture
def held(county: County):
    """Another process holding the warehouse open for writing."""
    p = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True);"
         " time.sleep(120)", str(county.wh)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    yield county
    p.kill()
    p.wait()


def test_locked_warehouse_clear_message_in_every_command(held: County, tmp_path: Path):
    wh = str(held.wh)
    truth = Path(__file__).resolve().parents[2] / "data" / "sample" / "truth"
    for args in (
        ("detect", "--rules", str(RULES), "--warehouse", wh),
        ("resolve", "--sources", str(SOURCES), "--warehouse", wh),
        ("kinship", "--warehouse", wh),
        ("evaluate", "--truth", str(truth), "--warehouse", wh),
        ("identity-eval", "--truth", str(truth), "--warehouse", wh),
    ):
        code, out = cli(*args)
        assert code == 5, (args, out)
        assert LOCKED in out and "Traceback" not in out, (args, out)


def test_corrupt_and_missing_warehouse(tmp_path: Path):
    bad = tmp_path / "w.duckdb"
    bad.write_bytes(os.urandom(50_000))
    for cmd in ("detect", "resolve", "kinship", "evaluate", "identity-eval"):
        code, out = cli(cmd, "--warehouse", str(bad))
        assert code == 5 and "not a readable crossmatch warehouse" in out, (cmd, out)
        code, out = cli(cmd, "--warehouse", str(tmp_path / "none.duckdb"))
        assert code == 5 and "warehouse not found" in out, (cmd, out)
    assert not (tmp_path / "none.duckdb").exists()


def test_disk_full_during_detect(county: County):
    """The warehouse may not grow (RLIMIT_FSIZE: writes fail as on a full disk)."""
    before = county.query("SELECT count(*) FROM hit")[0][0]

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))

    p = _crossmatch(
        "detect", "--rules", str(RULES), "--warehouse", str(county.wh),
        "--only", "deceased_recipient,duplicate_payment", preexec_fn=limit,
    )  # fmt: skip
    out, err = p.communicate(timeout=300)
    assert p.returncode == 5, (out, err)
    assert "disk is full" in err and "Traceback" not in err, err
    assert county.query("SELECT count(*) FROM hit")[0][0] == before


def test_kill_9_during_resolve_then_detect_is_stale(county: County):
    """A nightly run killed during resolve: the data changed, identity did not finish."""
    q1 = county.raw / "finance" / "一卡通发放明细_2025Q1.csv"
    lines = q1.read_bytes().split(b"\n")
    body = [ln for ln in lines[1:] if ln.strip()]
    q1.write_bytes(b"\n".join([lines[0], *reversed(body)]) + b"\n")
    code, out = county.ingest()
    assert code == 0, out
    p = _crossmatch("resolve", "--sources", str(SOURCES), "--warehouse", str(county.wh))
    time.sleep(2.0)
    if p.poll() is None:
        os.kill(p.pid, signal.SIGKILL)
    p.wait()
    code, out = county.detect(only="deceased_recipient,duplicate_payment")
    if p.returncode == 0:  # resolve won the race on an idle machine: then everything is fresh
        assert code == 0, out
        return
    assert code == 4, out
    st = county.statuses()
    assert {s for s, _ in st.values()} == {"stale"}, st
