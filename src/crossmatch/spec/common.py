"""Shared helpers for spec files: YAML with line numbers, and problem collection.

Spec files (``sources/*.yaml``, ``rules/*.yaml``) are validated *completely* before anything
runs, and every problem is reported at once with its ``file:line`` so an analyst can fix a file
in one pass instead of re-running after each error.

Usage for a new kind of spec file (the rule files reuse this)::

    from crossmatch.spec.common import Problems, load_yaml, line_of

    problems = Problems()
    doc = load_yaml(path, problems)          # LocDict/LocList with .line, or None on syntax errors
    if doc is not None:
        if "id" not in doc:
            problems.add(path, doc.line, "missing key 'id'", fix="add `id: <rule id>`")
        problems.check_keys(path, doc, allowed={"id", "sql"}, where="rule")
    problems.raise_if_any()                  # SpecError listing every problem

Mappings load as :class:`LocDict` (``.line`` = line of the mapping, ``.key_line(k)`` = line of a
key), sequences as :class:`LocList` (``.line``, ``.item_line(i)``). Lines are 1-based.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rapidfuzz import process

from crossmatch.errors import SpecError


class LocDict(dict):
    """A dict that remembers where it and each of its keys were written."""

    line: int = 0
    key_lines: dict[Any, int]

    def key_line(self, key: Any) -> int:
        """Line of ``key`` (falls back to the mapping's own line)."""
        return self.key_lines.get(key, self.line)


class LocList(list):
    """A list that remembers where it and each item were written."""

    line: int = 0
    item_lines: list[int]

    def item_line(self, i: int) -> int:
        return self.item_lines[i] if i < len(self.item_lines) else self.line


def line_of(obj: Any, default: int = 1) -> int:
    """Line of a loaded mapping/sequence, or ``default`` for scalars."""
    return getattr(obj, "line", default) or default


class _Loader(yaml.SafeLoader):
    """SafeLoader that builds LocDict/LocList with 1-based line numbers."""


#: The same loader on libyaml's parser (C: about 10x faster on the rule and source specs; the
#: constructors and the implicit resolver stay the Python ones, so values are the same). A file
#: it refuses is parsed again with :class:`_Loader`, whose error messages the problems quote.
_FastLoader: type | None = (
    type("_FastLoader", (yaml.CSafeLoader,), {})
    if getattr(yaml, "__with_libyaml__", False)
    else None
)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LocDict:
    loader.flatten_mapping(node)
    d = LocDict()
    d.line = node.start_mark.line + 1
    d.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            key = str(key)
        if key in d:
            # duplicate keys silently override in PyYAML; we keep the first and flag it later
            d.key_lines.setdefault(("__dup__", key), key_node.start_mark.line + 1)
            continue
        d[key] = loader.construct_object(value_node, deep=True)
        d.key_lines[key] = key_node.start_mark.line + 1
    return d


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LocList:
    lst = LocList(loader.construct_object(child, deep=True) for child in node.value)
    lst.line = node.start_mark.line + 1
    lst.item_lines = [child.start_mark.line + 1 for child in node.value]
    return lst


for _ld in (_Loader, _FastLoader):
    if _ld is not None:
        _ld.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
        _ld.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem in one spec file; ``str()`` gives ``file:line: message (fix: ...)``."""

    file: str
    line: int
    message: str
    fix: str | None = None

    def __str__(self) -> str:
        s = f"{self.file}:{self.line}: {self.message}"
        return f"{s}; fix: {self.fix}" if self.fix else s


class Problems:
    """Collects problems across files; raise them all at once with :meth:`raise_if_any`."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, file: str | Path, line: int, message: str, fix: str | None = None) -> None:
        self.items.append(Problem(str(file), int(line or 1), message, fix))

    def extend(self, problems: Iterable[Problem]) -> None:
        self.items.extend(problems)

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __iter__(self):
        return iter(self.items)

    def check_keys(self, file: str | Path, d: LocDict, allowed: Iterable[str], where: str) -> None:
        """Flag unknown and duplicate keys of mapping ``d``, suggesting the nearest allowed one."""
        allowed = list(allowed)
        for key in d:
            if key not in allowed:
                near = nearest(str(key), allowed, cutoff=70.0)
                self.add(
                    file,
                    d.key_line(key),
                    f"unknown key {key!r} in {where}",
                    f"did you mean {near!r}?" if near else f"allowed keys: {', '.join(allowed)}",
                )
        for k, line in d.key_lines.items():
            if isinstance(k, tuple) and len(k) == 2 and k[0] == "__dup__":
                self.add(file, line, f"duplicate key {k[1]!r} in {where}", "remove one of them")

    def raise_if_any(self) -> None:
        if self.items:
            raise SpecError([str(p) for p in self.items])


def nearest(word: str, choices: Iterable[str], cutoff: float = 50.0) -> str | None:
    """The choice most similar to ``word`` (rapidfuzz WRatio), or None when nothing is close."""
    choices = [c for c in choices if c]
    if not choices:
        return None
    hit = process.extractOne(word, choices, score_cutoff=cutoff)
    return hit[0] if hit else None


def load_yaml(path: str | Path, problems: Problems) -> Any:
    """Parse a YAML file with line numbers; syntax errors become problems (returns None)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        problems.add(path, 1, f"not UTF-8 text ({exc.reason})", "save the file as UTF-8")
        return None
    except OSError as exc:
        problems.add(path, 1, f"cannot read file: {exc.strerror or exc}")
        return None
    if _FastLoader is not None:
        try:
            return yaml.load(text, Loader=_FastLoader)
        except yaml.YAMLError:
            pass  # reported below, with the pure-Python parser's message and line
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problems.add(path, line, f"YAML syntax error: {exc.problem or exc}")
        return None
    except yaml.YAMLError as exc:
        problems.add(path, 1, f"YAML error: {exc}")
        return None
