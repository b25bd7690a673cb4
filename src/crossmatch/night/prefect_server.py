"""A temporary local Prefect server that dies with the process that started it.

Prefect's own temporary server (used when no ``PREFECT_API_URL`` is set) is a subprocess that
outlives a flow killed with ``kill -9``: it keeps its port and its SQLite file until someone
finds it (issue 10). :func:`temporary_server` starts ``prefect server start`` under a small
watcher (``python -m crossmatch.night.prefect_server --parent PID ...``): the watcher checks
every half second that the parent still lives, and when it is gone (killed, crashed, exited)
it stops the server's whole process group and exits. A normal exit of the ``with`` block stops
it at once.

    with temporary_server() as url:   # PREFECT_API_URL points at it inside the block
        nightly(...)

Run by hand, ``python -m crossmatch.night.prefect_server --port 4200`` serves until Ctrl-C
(or until ``--parent``'s process ends).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

OFFLINE_ENV = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ServerHandle:
    """The watcher process and the server's API URL."""

    def __init__(self, proc: subprocess.Popen, url: str, port: int):
        self.proc, self.url, self.port = proc, url, port

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # the watcher stops the server's group, then exits
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_server(
    port: int | None = None,
    *,
    services: bool = True,
    startup_timeout: float = 120.0,
    log_file: str | Path | None = None,
) -> ServerHandle:
    """Start the watcher + server, wait until ``/api/health`` answers; the handle's ``url``.

    ``services=False``: API and UI only (no scheduler): enough to run a flow, faster to start."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}/api"
    cmd = [sys.executable, "-m", "crossmatch.night.prefect_server", "--parent", str(os.getpid())]
    cmd += ["--port", str(port)] + ([] if services else ["--no-services"])
    env = {**os.environ, **{k: os.environ.get(k, v) for k, v in OFFLINE_ENV.items()}}
    env.pop("PREFECT_API_URL", None)
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    finally:
        if log_file:
            out.close()  # type: ignore[union-attr]
    handle = ServerHandle(proc, url, port)
    deadline = time.monotonic() + startup_timeout
    while not healthy(url):
        if proc.poll() is not None:
            raise RuntimeError(
                f"the temporary Prefect server exited with {proc.returncode} before answering"
                + (f"; see {log_file}" if log_file else "")
            )
        if time.monotonic() > deadline:
            handle.stop()
            raise RuntimeError(
                f"the temporary Prefect server did not answer on {url} within "
                f"{startup_timeout:.0f}s. Fix: set PREFECT_API_URL to a running server"
            )
        time.sleep(0.5)
    return handle


@contextlib.contextmanager
def temporary_server(
    port: int | None = None, *, services: bool = False, startup_timeout: float = 120.0
) -> Iterator[str]:
    """Start a server tied to this process; inside the block Prefect talks to it."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    handle = start_server(port, services=services, startup_timeout=startup_timeout)
    try:
        with temporary_settings(updates={PREFECT_API_URL: handle.url}):
            try:
                yield handle.url
            finally:
                _drain_prefect_clients()
    finally:
        handle.stop()


def _drain_prefect_clients(timeout: float = 20.0) -> None:
    """Send the run's last log lines and events while the server still answers: drained at
    interpreter exit instead, they retry against a stopped server for about a minute."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):
            service.drain_all(timeout=timeout, at_exit=False)


@contextlib.contextmanager
def server_unless_configured(**kwargs) -> Iterator[str | None]:
    """A temporary server only when no ``PREFECT_API_URL`` is configured (a real server wins)."""
    from prefect.settings import PREFECT_API_URL

    configured = PREFECT_API_URL.value()
    if configured:
        yield configured
        return
    with temporary_server(**kwargs) as url:
        yield url


# ------------------------------------------------------------------------------- the watcher


def _stop_group(child: subprocess.Popen, grace: float = 10.0) -> None:
    if child.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGTERM)
    try:
        child.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait(5)


def watch(parent: int | None, port: int, services: bool, poll: float = 0.5) -> int:
    """Run ``prefect server start`` in its own process group; stop it when ``parent`` dies,
    when this watcher is told to stop (SIGTERM / SIGINT), or return when it exits itself."""
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
    cmd += ["--port", str(port)] + ([] if services else ["--no-services"])
    env = {**os.environ, **{k: os.environ.get(k, v) for k, v in OFFLINE_ENV.items()}}
    child = subprocess.Popen(cmd, env=env, start_new_session=True)
    stop = {"why": ""}

    def on_signal(signum, _frame) -> None:
        stop["why"] = signal.Signals(signum).name

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    original_ppid = os.getppid()
    try:
        while True:
            if child.poll() is not None:
                return int(child.returncode or 0)
            if stop["why"]:
                break
            reparented = parent == original_ppid and os.getppid() != original_ppid
            if parent is not None and (reparented or not _alive(parent)):
                sys.stderr.write(f"prefect_server: parent {parent} is gone; stopping the server\n")
                break
            time.sleep(poll)
    finally:
        _stop_group(child)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parent", type=int, default=None, help="stop when this process ends")
    ap.add_argument("--port", type=int, default=4200)
    ap.add_argument("--no-services", action="store_true", help="API and UI only, no scheduler")
    a = ap.parse_args(argv)
    return watch(a.parent, a.port, services=not a.no_services)


if __name__ == "__main__":
    sys.exit(main())
