"""Issue 10: killing the flow (kill -9 of its process) must not leave its temporary Prefect
server running. ``flows/nightly.py`` starts the server under a watcher
(``crossmatch.night.prefect_server``) that stops the server's process group when its parent
is gone. A real process tree, a real SIGKILL, mid-night."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.flows


def _procs() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, pgid, cmdline) of every process (Linux /proc)."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":  # a zombie is dead, only not yet reaped
            continue
        out[int(d.name)] = (int(fields[1]), int(fields[2]), cmd)
    return out


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _wait(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_kill_9_of_the_flow_stops_its_prefect_server(tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(ROOT / "data" / "sample" / "raw", raw)
    wh = tmp_path / "w.duckdb"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    cmd = [sys.executable, str(ROOT / "flows" / "nightly.py"), "--raw", str(raw)]
    cmd += ["--sources", str(ROOT / "sources"), "--rules", str(ROOT / "rules")]
    cmd += ["--warehouse", str(wh)]
    flow = subprocess.Popen(
        cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:

        def watcher():
            for pid, (ppid, _g, c) in _procs().items():
                if ppid == flow.pid and "crossmatch.night.prefect_server" in c:
                    return pid, int(c.split("--port ")[1].split()[0])
            assert flow.poll() is None, "the flow ended before starting its server"
            return None

        watcher_pid, port = _wait(watcher, 60, "the flow's server watcher")
        _wait(lambda: _healthy(port), 120, "the temporary server to answer")
        server = [p for p, (pp, _g, _c) in _procs().items() if pp == watcher_pid]
        assert server, "the watcher runs the server as its child"
        server_group = _procs()[server[0]][1]
        _wait(lambda: wh.exists(), 120, "the night to start writing the warehouse")
        flow.send_signal(signal.SIGKILL)
        flow.wait(10)
    finally:
        if flow.poll() is None:
            flow.kill()
            flow.wait()

    def gone():
        left = [
            p
            for p, (_pp, g, c) in _procs().items()
            if p == watcher_pid or g == server_group or f"--port {port}" in c
        ]
        return not left and not _healthy(port)

    try:
        _wait(gone, 30, "the server and its watcher to exit after the flow was killed")
    finally:  # never leave a server behind, even when the test fails
        for p, (_pp, g, _c) in _procs().items():
            if p == watcher_pid or g == server_group:
                with __import__("contextlib").suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)


def test_normal_exit_stops_the_server():
    from crossmatch.night.prefect_server import start_server

    h = start_server(services=False)
    try:
        assert _healthy(h.port)
    finally:
        h.stop()
    assert h.proc.returncode is not None
    _wait(lambda: not _healthy(h.port), 20, "the server to stop")
