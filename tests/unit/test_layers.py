"""The stages import one way only (spec <- ingest <- identity <- kinship <- detect <- review
<- export), checked by import-linter with the contracts in pyproject.toml."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
LINT = Path(sys.executable).parent / "lint-imports"  # import-linter's CLI (dev dependency)


def lint_imports(config: Path) -> subprocess.CompletedProcess:
    """Run import-linter in its own process (in-process it reconfigures logging)."""
    return subprocess.run(
        [str(LINT), "--config", str(config), "--no-cache"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def test_layers_point_one_way():
    res = lint_imports(PYPROJECT)
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_layer_pointing_back_fails(tmp_path):
    """The same check with detect placed *below* kinship must fail: kinship's stage is read by
    detect, so the reversed order has an import pointing back (the check is live)."""
    text = PYPROJECT.read_text("utf-8")
    cfg = text[text.index("[tool.importlinter]") :]
    cfg = re.sub(
        r'\n\[\[tool\.importlinter\.contracts\]\]\nname = "The synthetic.*', "", cfg, flags=re.S
    )
    swapped = cfg.replace(
        '"crossmatch.detect",\n    "crossmatch.kinship",',
        '"crossmatch.kinship",\n    "crossmatch.detect",',
    )
    assert swapped != cfg
    (tmp_path / "pyproject.toml").write_text(swapped, "utf-8")
    res = lint_imports(tmp_path / "pyproject.toml")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "crossmatch.detect is not allowed to import crossmatch.kinship" in res.stdout


def test_imports_sit_at_module_tops():
    """Imports inside functions hide cycles; the few left are marked ``# lazy: <reason>`` (a
    dependency that costs seconds to import: on the line, or on a comment line above a block of
    imports) or are the public API's lazy attributes."""
    allowed = {"crossmatch/__init__.py", "crossmatch/identity/__init__.py"}
    found = []
    for p in sorted((ROOT / "src" / "crossmatch").rglob("*.py")):
        rel = p.relative_to(ROOT / "src").as_posix()
        if rel in allowed or rel.startswith("crossmatch/synth/"):
            continue
        in_doc = False
        lazy = False  # a `# lazy:` line covers the imports right below it
        for n, line in enumerate(p.read_text("utf-8").splitlines(), 1):
            if line.count('"""') % 2:
                in_doc = not in_doc
                continue
            is_import = re.match(r"^\s+(import \w|from \S+ import )", line)
            if line.lstrip().startswith("#"):
                lazy = "# lazy:" in line
                continue
            lazy = lazy and bool(is_import)
            if in_doc or lazy or "# lazy:" in line:
                continue
            if is_import and not _type_checking(p, n):
                found.append(f"{rel}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


def _type_checking(path: Path, lineno: int) -> bool:
    lines = path.read_text("utf-8").splitlines()[: lineno - 1]
    for line in reversed(lines):
        if line and not line[0].isspace():
            return line.startswith("if TYPE_CHECKING")
    return False
