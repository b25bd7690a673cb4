"""Build expensive test inputs once: one build shared by the xdist workers of a session, kept
across sessions while the code and data it was built from are unchanged.

``cached_build(name, build)`` returns a folder holding what ``build(folder)`` wrote. The folder
lives under ``.pytest_cache/d/crossmatch-builds/<name>-<key>``, where the key hashes every file
of ``src/crossmatch``, ``sources``, ``rules``, ``data/sample``, ``uv.lock`` and the Python
version: any change to the code or data builds again (older keys of that name are removed).
The first worker builds under a file lock; the others wait and reuse the result. A failed
build leaves nothing behind. ``CROSSMATCH_TEST_CACHE=session`` keeps builds for one session
only (under pytest's base temp), e.g. to time a cold run.

The folder is shared: tests copy what they write to (``shutil.copytree`` / ``copyfile``).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INPUTS = ("src/crossmatch", "sources", "rules", "data/sample", "uv.lock")


@functools.cache
def code_key() -> str:
    """Hash of every file the builds depend on (paths and contents)."""
    h = hashlib.sha256(sys.version.encode())
    for top in INPUTS:
        base = ROOT / top
        files = [base] if base.is_file() else sorted(base.rglob("*"))
        for f in files:
            if f.is_file() and "__pycache__" not in f.parts:
                h.update(f.relative_to(ROOT).as_posix().encode())
                h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:16]


def _root(factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("CROSSMATCH_TEST_CACHE", "").lower() == "session":
        base = factory.getbasetemp()
        if os.environ.get("PYTEST_XDIST_WORKER"):
            base = base.parent  # shared by the session's workers
        return base / "crossmatch-builds"
    return ROOT / ".pytest_cache" / "d" / "crossmatch-builds"


def cached_build(
    factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]
) -> Path:
    root = _root(factory)
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{name}-{code_key()}"
    done = root / f"{name}-{code_key()}.done"  # beside it: the folder holds only the build
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if done.exists():
                return target
            for old in root.glob(f"{name}-*"):
                if old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    old.unlink()
            target.mkdir()
            try:  # built in place: a warehouse may record the paths it was built from
                build(target)
            except BaseException:
                shutil.rmtree(target, ignore_errors=True)
                raise
            done.write_text(code_key())
            return target
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
