"""The public API: a small typed ``__all__``, imported lazily, and the package marked typed."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import crossmatch
import crossmatch.identity


def test_every_public_name_resolves_and_import_stays_cheap():
    code = (
        "import sys, crossmatch\n"
        "heavy = [m for m in ('duckdb', 'polars', 'pandas', 'scipy') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""  # nothing heavy until a name is used
    for name in crossmatch.__all__:
        assert getattr(crossmatch, name) is not None, name
    assert sorted(crossmatch.__all__) == sorted(set(crossmatch.__all__))


def test_unknown_name_is_an_attribute_error():
    try:
        crossmatch.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_resolve_is_typed():
    hints = crossmatch.identity.resolve.__annotations__  # strings (postponed evaluation)
    assert hints["return"] == "ResolveSummary"
    assert hints["con"] == "duckdb.DuckDBPyConnection"
    assert hints["specs"] == "Sequence[SourceSpec] | None"
    params = inspect.signature(crossmatch.resolve).parameters
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values())  # no **kwargs: Any


def test_package_is_marked_typed():
    assert (Path(crossmatch.__file__).parent / "py.typed").is_file()


def test_api_doc_lists_every_public_name():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text("utf-8")
    missing = [n for n in crossmatch.__all__ if n != "__version__" and f"`{n}" not in doc]
    assert not missing, missing
