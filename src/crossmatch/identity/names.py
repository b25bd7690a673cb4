"""Chinese name keys for blocking and comparison: pinyin, look-alike classes, surname.

Why tables and ``str.translate``: ``pypinyin.lazy_pinyin`` costs ~28 s per million names, while a
char -> pinyin table built once from pypinyin's own dictionary and applied with ``str.translate``
costs well under a second (ecosystem notes). Polyphonic characters take their first reading;
both sides of a comparison use the same table, so 曾 is consistent with itself, and homophones
(王/汪, 张/章) map to the same toneless syllable, which is exactly the error we want to forgive.
"""

from __future__ import annotations

import importlib.util
import json
import unicodedata
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd


def _strip_tone(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


@lru_cache(maxsize=1)
def pinyin_table() -> dict[int, str]:
    """Code point -> toneless lower-case pinyin of the first reading (built once per process)."""
    table: dict[int, str] = {}
    for cp, readings in _pinyin_dict().items():
        first = readings.split(",")[0]
        table[cp] = _strip_tone(first).replace("ü", "v")
    table[ord("·")] = ""
    return table


def _pinyin_dict() -> dict[int, str]:
    """pypinyin's code point -> readings dictionary, read from its data file without importing
    the package (whose ``__init__`` also loads the phrase dictionary and converters: 0.3 s a
    process, for a table only this module needs); the module itself where the file is not
    there (another pypinyin layout)."""
    spec = importlib.util.find_spec("pypinyin")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "pinyin_dict.json"
        if path.is_file():
            raw = json.loads(path.read_text(encoding="utf-8"))
            return {int(k): v for k, v in raw.items()}
    # lazy: pypinyin's table costs seconds to import; loaded on the first fuzzy name
    from pypinyin.pinyin_dict import pinyin_dict

    return dict(pinyin_dict)


@lru_cache(maxsize=1)
def lookalike_table() -> dict[int, str]:
    """Code point -> representative of its look-alike group (``data/lookalike.txt``)."""
    text = resources.files("crossmatch.identity").joinpath("data/lookalike.txt").read_text("utf-8")
    table: dict[int, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        chars = line.split()
        for c in chars:
            table[ord(c)] = chars[0]
    return table


def to_pinyin(name: str | None) -> str | None:
    """Toneless pinyin without separators (``王伟`` -> ``wangwei``); None stays None."""
    if name is None:
        return None
    return name.translate(pinyin_table()).lower()


def to_lookalike(name: str | None) -> str | None:
    """Replace every character by its look-alike group representative."""
    if name is None:
        return None
    return name.translate(lookalike_table())


def name_keys(names: pd.Series) -> pd.DataFrame:
    """Vector of keys for a Series of normalised names.

    Columns: ``name_py`` (pinyin), ``name_la`` (look-alike representative string),
    ``name_lapy`` (pinyin of the look-alike string: catches a look-alike *and* a homophone),
    ``surname_py`` (pinyin of the first character; two-character compound surnames are rare
    enough that the first character is a good blocking key), ``given_py``.
    """
    py_t = pinyin_table()
    la_t = lookalike_table()
    uniq = pd.unique(names.dropna())
    py = {n: n.translate(py_t).lower() for n in uniq}
    la = {n: n.translate(la_t) for n in uniq}
    lapy = {n: la[n].translate(py_t).lower() for n in uniq}
    sur = {n: n[:1].translate(py_t).lower() for n in uniq}
    giv = {n: n[1:].translate(py_t).lower() for n in uniq}
    return pd.DataFrame(
        {
            "name_py": names.map(py),
            "name_la": names.map(la),
            "name_lapy": names.map(lapy),
            "surname_py": names.map(sur),
            "given_py": names.map(giv),
        },
        index=names.index,
    )


def char_hamming1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """True where two names have equal length and differ in exactly one character."""
    out = np.zeros(len(a), dtype=bool)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if isinstance(x, str) and isinstance(y, str) and len(x) == len(y) and x != y:
            out[i] = sum(cx != cy for cx, cy in zip(x, y, strict=True)) == 1
    return out
