"""The spec loader parses with libyaml when it is installed (``_FastLoader``) and falls back to
the pure-Python parser for files libyaml refuses; both must give the same values and lines."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from crossmatch.spec import common
from crossmatch.spec.common import Problems

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted([*ROOT.glob("rules/*.yaml"), *ROOT.glob("sources/**/*.yaml")])


def _same(a, b, where: str) -> None:
    assert type(a) is type(b), where
    for attr in ("line", "key_lines", "item_lines"):
        assert getattr(a, attr, None) == getattr(b, attr, None), (where, attr)
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.skipif(common._FastLoader is None, reason="PyYAML built without libyaml")
def test_fast_loader_equals_the_pure_one_on_every_spec():
    assert len(SPECS) > 50
    for f in SPECS:
        text = f.read_text(encoding="utf-8")
        _same(yaml.load(text, Loader=common._FastLoader), yaml.load(text, Loader=common._Loader),
              f.name)  # fmt: skip


def test_duplicate_keys_and_syntax_errors_keep_their_lines(tmp_path: Path):
    f = tmp_path / "r.yaml"
    f.write_text("id: a\nsql: x\nid: b\nlist:\n  - 1\n  - 2\n", encoding="utf-8")
    doc = common.load_yaml(f, Problems())
    assert doc["id"] == "a" and doc.key_lines[("__dup__", "id")] == 3
    assert doc["list"].item_lines == [5, 6]
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: a\nsql: [1, 2\n", encoding="utf-8")
    problems = Problems()
    assert common.load_yaml(bad, problems) is None
    (p,) = problems.items
    assert p.message.startswith("YAML syntax error") and p.line == 3
