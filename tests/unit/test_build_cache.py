"""tests/build_cache.py keys a generated county on the generator's files only
(``module_closure``): that set must hold every crossmatch module generating a county imports,
or a change to one of them would leave a stale county in the cache."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from build_cache import ROOT, module_closure

PROBE = """
import importlib, json, pkgutil, sys
import crossmatch.synth
for m in pkgutil.iter_modules(crossmatch.synth.__path__):
    importlib.import_module("crossmatch.synth." + m.name)
print(json.dumps(sorted(m.__file__ for n, m in sys.modules.items()
                        if n.split(".")[0] == "crossmatch" and getattr(m, "__file__", None))))
"""


def test_the_generator_closure_holds_every_module_the_generator_imports() -> None:
    """At run time (imports inside functions: see the next test)."""
    res = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, check=True
    )
    imported = {Path(f).resolve().relative_to(ROOT).as_posix() for f in json.loads(res.stdout)}
    closure = set(module_closure("crossmatch.synth"))
    assert imported, res.stderr
    assert imported <= closure, sorted(imported - closure)
    assert "src/crossmatch/detect/rule_runner.py" not in closure  # the point: a narrower key


def test_relative_and_lazy_imports_are_followed(tmp_path: Path, monkeypatch) -> None:
    import build_cache

    pkg = tmp_path / "src" / "crossmatch"
    (pkg / "sub").mkdir(parents=True)
    typing_only = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import crossmatch.heavy\n"
    )
    (pkg / "__init__.py").write_text(typing_only)
    (pkg / "heavy.py").write_text("")
    (pkg / "leaf.py").write_text("")
    (pkg / "lazy.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import a\n")
    (pkg / "sub" / "a.py").write_text(
        "from ..leaf import x\ndef f():\n    import crossmatch.lazy\n"
    )
    (tmp_path / "uv.lock").write_text("")
    monkeypatch.setattr(build_cache, "ROOT", tmp_path)
    got = build_cache.module_closure.__wrapped__("crossmatch.sub")
    assert got == (
        "src/crossmatch/__init__.py",
        "src/crossmatch/lazy.py",
        "src/crossmatch/leaf.py",
        "src/crossmatch/sub/__init__.py",
        "src/crossmatch/sub/a.py",
        "uv.lock",
    )
