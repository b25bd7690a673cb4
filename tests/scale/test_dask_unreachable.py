"""`crossmatch run --dask tcp://HOST:PORT` with nobody answering at that address: the night
fails at once (exit 6) with a message naming the address and the fix, before it ingests or
builds anything, instead of a traceback after ingest, resolve and kinship."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from crossmatch.cli import main
from crossmatch.scale.dask import DaskUnreachable, check_scheduler

ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_check_scheduler_names_the_address_and_the_fix() -> None:
    address = f"tcp://127.0.0.1:{_closed_port()}"
    with pytest.raises(DaskUnreachable, match="cannot be reached") as err:
        check_scheduler(address, timeout=2)
    assert address in str(err.value) and "without --dask" in str(err.value)
    with pytest.raises(DaskUnreachable, match="tcp://HOST:PORT"):
        check_scheduler("http://127.0.0.1:8787")
    check_scheduler("local")  # a LocalCluster needs no scheduler to exist beforehand


def test_check_scheduler_accepts_a_listening_scheduler() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        check_scheduler(f"tcp://127.0.0.1:{s.getsockname()[1]}", timeout=2)


def test_night_with_unreachable_cluster_fails_before_building(tmp_path: Path) -> None:
    wh = tmp_path / "w.duckdb"
    address = f"tcp://127.0.0.1:{_closed_port()}"
    res = CliRunner().invoke(
        main,
        ["run", "--raw", str(ROOT / "data/sample/raw"), "--warehouse", str(wh),
         "--dask", address],
    )  # fmt: skip
    assert res.exit_code == 6, res.output
    assert f"the Dask scheduler {address} cannot be reached" in res.output
    assert "Traceback" not in res.output
    assert "| ingest | not run |" in res.output  # nothing ingested, nothing built
    assert not list(tmp_path.glob("*.build*"))
