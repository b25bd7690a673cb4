"""crossmatch.memory: the allocator settings are applied once, with the documented values, and
are no-ops off glibc. A fake libc stands in for the real one, so the test worker's own heap is
never retuned."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from crossmatch import cli, memory


class FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("malloc_trim", pad))
        return 1


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(memory, "_tuned", False)


def test_tune_sets_both_thresholds_once(monkeypatch, fresh):
    libc = FakeLibc()
    monkeypatch.setattr(memory, "glibc", lambda: libc)
    assert memory.tune_allocator() is True
    assert libc.calls == [
        ("mallopt", -3, 1 << 30),  # M_MMAP_THRESHOLD: 1 GB
        ("mallopt", -1, 1 << 31),  # M_TRIM_THRESHOLD: 2 GB
    ]
    assert memory.tune_allocator() is True  # once per process
    assert len(libc.calls) == 2


def test_release_collects_and_trims(monkeypatch):
    libc = FakeLibc()
    collected = []
    monkeypatch.setattr(memory, "glibc", lambda: libc)
    monkeypatch.setattr(memory.gc, "collect", lambda: collected.append(1) or 0)
    memory.release_memory()
    assert collected == [1]
    assert libc.calls == [("malloc_trim", 0)]


def test_no_op_off_glibc(monkeypatch, fresh):
    def no_confstr(name: str) -> str:
        raise ValueError(f"unrecognized configuration name {name}")  # as on macOS or musl

    def no_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("no C library may be loaded off glibc")

    monkeypatch.setattr(memory.os, "confstr", no_confstr)
    monkeypatch.setattr(memory.ctypes, "CDLL", no_load)
    assert memory.glibc() is None
    assert memory.tune_allocator() is False
    assert memory._tuned is False
    memory.release_memory()  # still collects, never raises


def test_no_op_without_confstr(monkeypatch, fresh):
    monkeypatch.delattr(memory.os, "confstr")  # Windows
    assert memory.glibc() is None
    assert memory.tune_allocator() is False


def test_libc_without_mallopt_is_left_alone(monkeypatch, fresh):
    monkeypatch.setattr(memory, "glibc", lambda: object())
    assert memory.tune_allocator() is False
    memory.release_memory()


@pytest.mark.skipif(
    not hasattr(os, "confstr") or not sys.platform.startswith("linux"), reason="glibc only"
)
def test_real_glibc_in_a_fresh_process():
    """The real calls, in a process of their own (they retune the whole process)."""
    code = (
        "from crossmatch import memory; import os\n"
        "glibc = bool(os.confstr('CS_GNU_LIBC_VERSION') or '')\n"
        "assert memory.tune_allocator() is glibc\n"
        "memory.release_memory()\n"
        "print('ok', glibc)\n"
    )
    try:
        os.confstr("CS_GNU_LIBC_VERSION")
    except ValueError:
        pytest.skip("not glibc")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")


def test_every_cli_command_tunes_the_allocator(monkeypatch):
    """The CLI's group callback applies the settings before any command runs (here a
    command's help, which runs nothing else)."""
    calls = []
    monkeypatch.setattr(cli, "tune_allocator", lambda: calls.append(1) or True)
    out = CliRunner().invoke(cli.main, ["resolve", "--help"])
    assert out.exit_code == 0, out.output
    assert calls == [1]
