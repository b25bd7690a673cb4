"""Build expensive test inputs once: one build shared by the xdist workers of a session, kept
across sessions while the code and data it was built from are unchanged.

``cached_build(name, build)`` returns a folder holding what ``build(folder)`` wrote. The folder
lives under ``.pytest_cache/d/crossmatch-builds/<name>-<key>``, where the key hashes every file
of ``src/crossmatch``, ``sources``, ``rules``, ``data/sample``, ``uv.lock`` and the Python
version: any change to the code or data builds again (older keys of that name are removed).
A build that only runs part of the code names it: ``inputs=module_closure("crossmatch.synth")``
keys a generated county on the generator's own files (and every crossmatch module they import,
found statically), so a change to detect or identity does not generate it again.
The first worker builds under a file lock; the others wait and reuse the result. A failed
build leaves nothing behind. ``CROSSMATCH_TEST_CACHE=session`` keeps builds for one session
only (under pytest's base temp), e.g. to time a cold run.

The folder is shared: tests copy what they write to (``shutil.copytree`` / ``copyfile``).
"""

from __future__ import annotations

import ast
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
def code_key(inputs: tuple[str, ...] = INPUTS) -> str:
    """Hash of every file the builds depend on (paths and contents)."""
    h = hashlib.sha256(sys.version.encode())
    for top in inputs:
        base = ROOT / top
        files = [base] if base.is_file() else sorted(base.rglob("*"))
        for f in files:
            if f.is_file() and "__pycache__" not in f.parts:
                h.update(f.relative_to(ROOT).as_posix().encode())
                h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:16]


def _module_file(name: str) -> Path | None:
    base = ROOT / "src" / Path(*name.split("."))
    for f in (base / "__init__.py", base.with_suffix(".py")):
        if f.is_file():
            return f
    return None


def _runtime_nodes(tree: ast.AST):
    """Every node but those under ``if TYPE_CHECKING:`` (imports for annotations only)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo += node.orelse
            continue
        todo += ast.iter_child_nodes(node)


@functools.cache
def module_closure(*packages: str) -> tuple[str, ...]:
    """The files of ``packages`` (every module of a package) and of every ``crossmatch``
    module they import, at any depth, including imports inside functions, and the
    ``__init__.py`` of every package on the way (relative to the repository), plus uv.lock.
    Imports under ``if TYPE_CHECKING:`` do not count: they never run."""
    todo = list(packages)
    seen: set[Path] = set()
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
            f = _module_file(".".join(parts[:i]))
            if f is None or f in seen:
                continue
            seen.add(f)
            files = sorted(f.parent.glob("*.py")) if name in packages and i == len(parts) else []
            for g in [f, *files]:
                seen.add(g)
                mod = ".".join(g.relative_to(ROOT / "src").with_suffix("").parts)
                pkg = mod.removesuffix(".__init__")
                for node in _runtime_nodes(ast.parse(g.read_text(encoding="utf-8"))):
                    if isinstance(node, ast.Import):
                        todo += [a.name for a in node.names]
                    elif isinstance(node, ast.ImportFrom):
                        if node.level:  # relative: from the module's package
                            up = pkg if g.name == "__init__.py" else pkg.rsplit(".", 1)[0]
                            for _ in range(node.level - 1):
                                up = up.rsplit(".", 1)[0]
                            src = f"{up}.{node.module}" if node.module else up
                        else:
                            src = node.module or ""
                        todo.append(src)
                        todo += [f"{src}.{a.name}" for a in node.names]  # submodules
            todo = [t for t in todo if t == "crossmatch" or t.startswith("crossmatch.")]
    rel = sorted(f.relative_to(ROOT).as_posix() for f in seen)
    return (*rel, "uv.lock")


def _root(factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("CROSSMATCH_TEST_CACHE", "").lower() == "session":
        base = factory.getbasetemp()
        if os.environ.get("PYTEST_XDIST_WORKER"):
            base = base.parent  # shared by the session's workers
        return base / "crossmatch-builds"
    return ROOT / ".pytest_cache" / "d" / "crossmatch-builds"


def cached_build(
    factory: pytest.TempPathFactory,
    name: str,
    build: Callable[[Path], object],
    inputs: tuple[str, ...] = INPUTS,
) -> Path:
    root = _root(factory)
    root.mkdir(parents=True, exist_ok=True)
    key = code_key(inputs)
    target = root / f"{name}-{key}"
    done = root / f"{name}-{key}.done"  # beside it: the folder holds only the build
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
            done.write_text(key)
            return target
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def plain_county(factory: pytest.TempPathFactory, persons: int, seed: int) -> Path:
    """``crossmatch.synth.generate(persons, seed)`` as it is, built once per generator version
    (read it, never write). Tests that compare it with a county generated with one part of the
    generator switched off share it instead of generating it again."""
    from crossmatch.synth import generate

    return cached_build(
        factory,
        f"plain-{persons}-{seed}",
        lambda out: generate(persons=persons, seed=seed, out=out),
        module_closure("crossmatch.synth"),
    )
