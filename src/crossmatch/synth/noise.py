"""Identity noise: how names and ID numbers get damaged between a person and an export.

Each function returns the (possibly) damaged value and the noise label written to
``truth/noise.csv`` (empty string when the value is intact). Rates are per cell and can be
scaled per source: the household registry is the clean anchor, payment files are the
dirtiest. ``critical`` cells (rows that carry a planted case or trap) only get noise that a
correct system can still resolve exactly (15-digit IDs, lower-case x, full-width digits,
spaces), so that every planted case stays derivable from the files.
"""

from __future__ import annotations

import numpy as np
import zhconv

from crossmatch.idnumber import to15
from crossmatch.synth.names import DOT_VARIANTS, HOMOPHONES, LOOKALIKES

# Base per-cell rates (before the per-source multiplier).
ID_RATES: tuple[tuple[str, float], ...] = (
    ("id_missing", 0.035),
    ("id_typo", 0.012),
    ("id_transpose", 0.008),
    ("id_15", 0.010),
    ("id_fullwidth", 0.004),
    ("id_space", 0.006),
)
LOWER_X_RATE = 0.30  # share of IDs ending in X written with a lower-case x
NAME_RATES: tuple[tuple[str, float], ...] = (
    ("name_homophone", 0.010),
    ("name_lookalike", 0.005),
    ("name_traditional", 0.008),
    ("name_fullwidth", 0.003),
    ("name_space", 0.010),
)
DOT_RATE = 0.35  # share of dotted minority names written with another dot character
SAFE_ID_NOISE = frozenset({"id_15", "id_fullwidth", "id_space", "id_lower_x"})

_FW_DIGITS = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")


class Noiser:
    """Applies identity noise with one random generator (deterministic for a seed)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self._id_labels = [k for k, _ in ID_RATES]
        self._id_cum = np.cumsum([r for _, r in ID_RATES])
        self._name_labels = [k for k, _ in NAME_RATES]
        self._name_cum = np.cumsum([r for _, r in NAME_RATES])

    def id(self, true_id: str, scale: float = 1.0, critical: bool = False) -> tuple[str, str]:
        """Return the written ID cell and its noise label."""
        if scale <= 0:
            return true_id, ""
        u = self.rng.random() / scale
        label = ""
        if u < self._id_cum[-1]:
            label = self._id_labels[int(np.searchsorted(self._id_cum, u, side="right"))]
        if label and critical and label not in SAFE_ID_NOISE:
            label = ""
        if label == "id_15" and true_id[6:8] != "19":
            label = ""
        if not label:
            if true_id.endswith("X") and self.rng.random() < LOWER_X_RATE:
                return true_id[:-1] + "x", "id_lower_x"
            return true_id, ""
        return self._apply_id(true_id, label), label

    def _apply_id(self, s: str, label: str) -> str:
        r = self.rng
        if label == "id_missing":
            return ""
        if label == "id_typo":
            i = int(r.integers(0, 17))
            d = (int(s[i]) + int(r.integers(1, 10))) % 10
            return s[:i] + str(d) + s[i + 1 :]
        if label == "id_transpose":
            cands = [i for i in range(17) if s[i] != s[i + 1] and i + 1 < 17]
            if not cands:
                return s[:16] + s[17] + s[16]
            i = cands[int(r.integers(0, len(cands)))]
            return s[:i] + s[i + 1] + s[i] + s[i + 2 :]
        if label == "id_15":
            return to15(s)
        if label == "id_fullwidth":
            return s.translate(_FW_DIGITS)
        if label == "id_space":
            i = int(r.choice([6, 14]))
            return s[:i] + " " + s[i:]
        raise ValueError(label)

    def name(self, name: str, scale: float = 1.0) -> tuple[str, str]:
        """Return the written name cell and its noise label."""
        if scale <= 0:
            return name, ""
        if "·" in name:
            if self.rng.random() < DOT_RATE:
                dot = DOT_VARIANTS[1 + int(self.rng.integers(0, len(DOT_VARIANTS) - 1))]
                return name.replace("·", dot), "name_dot"
            return name, ""
        u = self.rng.random() / scale
        if u >= self._name_cum[-1]:
            return name, ""
        label = self._name_labels[int(np.searchsorted(self._name_cum, u, side="right"))]
        out = self._apply_name(name, label)
        return (out, label) if out != name else (name, "")

    def _apply_name(self, s: str, label: str) -> str:
        r = self.rng
        if label in ("name_homophone", "name_lookalike"):
            table = HOMOPHONES if label == "name_homophone" else LOOKALIKES
            idx = [i for i, c in enumerate(s) if c in table]
            if not idx:
                return s
            i = idx[int(r.integers(0, len(idx)))]
            return s[:i] + table[s[i]] + s[i + 1 :]
        if label == "name_traditional":
            return zhconv.convert(s, "zh-hant")
        if label == "name_fullwidth":
            return s + "\u3000" if r.random() < 0.5 else "\u3000" + s
        if label == "name_space":
            return s[0] + " " + s[1:] if len(s) > 1 else s + " "
        raise ValueError(label)
