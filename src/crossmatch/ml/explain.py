"""Why an entity ranks high, in words an analyst reads (本村人均发放额为同乡镇村均值的 3.4 倍).

The reasons are the features with the largest one-sided robust z (how many robust standard
deviations above the peers' median), each rendered with its :class:`Feature` template from the
entity's value and the peers' median. Features at or below the median never appear.
"""

from __future__ import annotations

import numpy as np

from crossmatch.ml.detectors import Fitted, zscores
from crossmatch.ml.features import Feature

MIN_Z = 2.0  # below this a feature is not unusual enough to be named


def reasons(
    f: Fitted,
    feats: list[Feature],
    x: np.ndarray,
    *,
    top: int = 3,
    context: list[dict[str, str]] | None = None,
) -> list[list[tuple[str, float, float, float, str]]]:
    """Per row of ``x``: up to ``top`` (feature, value, peer median, z, text), largest z first."""
    z = zscores(f, x)
    order = np.argsort(-z, axis=1, kind="mergesort")[:, :top]
    out: list[list[tuple[str, float, float, float, str]]] = []
    names = [ft.name for ft in feats]
    for i in range(len(x)):
        row = []
        for j in order[i]:
            if z[i, j] < MIN_Z:
                break
            value, peer = float(x[i, j]), float(f.median[j])
            text = feats[j].render(value, peer)
            ctx = context[i] if context else {}
            if names[j] == "item_per_capita_ratio" and ctx.get("item"):
                text = text.replace("某项目", f"{ctx['item']}")
            if names[j] == "surname_lift" and ctx.get("surname"):
                text = text.replace("某一姓氏", f"{ctx['surname']}姓")
            row.append((names[j], value, peer, float(z[i, j]), text))
        out.append(row)
    return out
