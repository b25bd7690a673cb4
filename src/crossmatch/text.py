"""Text normalisation shared by ingestion and identity resolution (pure functions)."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Middle dots seen in minority names (维吾尔族, 藏族 ...) across systems and input methods.
_DOTS = "·•‧∙⋅・.．·‐-－—"
_DOT_RE = re.compile(f"[{re.escape(_DOTS)}]+")
_SPACE_RE = re.compile(r"\s+")


@lru_cache(maxsize=1)
def _t2s():  # zhconv loads a dictionary on first use; keep import cost off the CLI start
    import zhconv  # lazy: zhconv loads a dictionary; off the CLI start

    return zhconv


def to_simplified(s: str) -> str:
    """Traditional -> simplified Chinese (zhconv; OpenCC was seen turning 沈 into 沉)."""
    return _t2s().convert(s, "zh-cn")


def normalize_name(raw: object) -> str | None:
    """Canonical person name: NFKC (full-width -> half), no spaces, traditional -> simplified,
    every middle-dot variant -> '·'. Returns None for empty input. The original is kept by the
    caller; this is the comparison form.
    """
    if raw is None:
        return None
    s = unicodedata.normalize("NFKC", str(raw))
    s = _SPACE_RE.sub("", s)
    if not s:
        return None
    s = _DOT_RE.sub("·", s).strip("·")
    if any("\u4e00" <= c <= "\u9fff" for c in s):
        s = to_simplified(s)
    return s or None
