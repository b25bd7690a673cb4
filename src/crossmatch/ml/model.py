"""A model is a versioned artefact under ``<warehouse>.models/<model_id>/``.

``model.json`` says what it is: the kind (``unsupervised`` or ``supervised``), the features per
entity kind and the digest of their SQL, the detectors' parameters, the training-data
fingerprint (sha256 of the feature rows it was fitted on), the library versions and the date.
``fitted.joblib`` holds the fitted state (medians, scales, forests; or the classifier).
``CURRENT`` names the model the nightly run scores with. A score is reproducible from the
artefact: load it, recompute the features, :func:`crossmatch.ml.detectors.score` gives the same
numbers (the forests have fixed seeds), which :func:`reproduce` checks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import polars as pl

from crossmatch.ml import features as F


def models_dir(warehouse: str | Path) -> Path:
    """``crossmatch.duckdb`` -> ``crossmatch.duckdb.models/``."""
    p = Path(warehouse)
    return p.with_name(p.name + ".models")


def feature_digest() -> str:
    """sha256 of every feature's definition and the base queries (a changed feature, a new
    model)."""
    text = json.dumps(
        {"base": F.BASE, "features": [(f.entity, f.name, f.sql) for f in F.FEATURES],
         "deadline": [F.DEADLINE_MONTHS, F.DEADLINE_DAYS, F.SHRINK]},
        sort_keys=True, ensure_ascii=False,
    )  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def frame_fingerprint(frames: dict[str, pl.DataFrame]) -> str:
    """sha256 of the training rows (entity kinds in order, rows sorted by entity id)."""
    h = hashlib.sha256()
    for entity in sorted(frames):
        df = frames[entity]
        if df.height:
            h.update(entity.encode())
            h.update(df.sort("entity_id").write_csv().encode())
    return h.hexdigest()[:16]


def versions() -> dict[str, str]:
    out = {}
    for pkg in ("crossmatch", "scikit-learn", "numpy", "duckdb", "polars", "joblib"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "?"
    return out


@dataclass
class Model:
    """A loaded (or freshly fitted) model artefact."""

    model_id: str
    meta: dict[str, Any]
    fitted: dict[str, Any]
    path: Path | None = None


def save(warehouse: str | Path, kind: str, fitted: dict[str, Any], meta: dict[str, Any],
         *, current: bool = True) -> Model:  # fmt: skip
    """Write the artefact; ``current`` makes it the one the nightly run scores with."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    fp = meta.get("training_fingerprint", "")
    model_id = f"{kind[:5]}-{now:%Y%m%dT%H%M%S}-{fp[:8]}"
    d = models_dir(warehouse) / model_id
    d.mkdir(parents=True, exist_ok=True)
    meta = {"model_id": model_id, "kind": kind, "created": now.isoformat(),
            "feature_digest": feature_digest(), "versions": versions(), **meta}  # fmt: skip
    joblib.dump(fitted, d / "fitted.joblib")
    (d / "model.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2, default=str))
    if current:
        (models_dir(warehouse) / f"CURRENT-{kind}").write_text(model_id + "\n")
    return Model(model_id, meta, fitted, d)


def current_id(warehouse: str | Path, kind: str = "unsupervised") -> str | None:
    """The id named in ``CURRENT-<kind>``, or None."""
    cur = models_dir(warehouse) / f"CURRENT-{kind}"
    return cur.read_text().strip() or None if cur.exists() else None


def make_current(warehouse: str | Path, model_id: str, kind: str = "unsupervised") -> None:
    """Name ``model_id`` in ``CURRENT-<kind>`` (written aside, then renamed: never half a name).
    The night calls this after publishing the scores the model made."""
    root = models_dir(warehouse)
    if not (root / model_id / "model.json").exists():
        raise FileNotFoundError(f"no model {model_id} under {root}")
    tmp = root / f".CURRENT-{kind}.tmp"
    tmp.write_text(model_id + "\n")
    os.replace(tmp, root / f"CURRENT-{kind}")


def load(
    warehouse: str | Path,
    model_id: str | None = None,
    kind: str = "unsupervised",
    *,
    fitted: bool = True,
):
    """The model ``model_id`` (default: the current one of ``kind``), or None when none.
    ``fitted=False``: only its ``model.json`` (``fitted`` empty; the forests take a while)."""
    root = models_dir(warehouse)
    if model_id is None:
        cur = root / f"CURRENT-{kind}"
        if not cur.exists():
            return None
        model_id = cur.read_text().strip()
    d = root / model_id
    if not (d / "model.json").exists():
        return None
    meta = json.loads((d / "model.json").read_text())
    return Model(model_id, meta, joblib.load(d / "fitted.joblib") if fitted else {}, d)


def reproduce(model: Model, frames: dict[str, pl.DataFrame], stored: pl.DataFrame) -> float:
    """Largest absolute difference between ``stored`` scores (entity, entity_id, ensemble,
    robust_z, iforest) and a rescoring of ``frames`` with ``model``: 0.0 when reproducible."""
    from crossmatch.ml import detectors as D  # lazy: scikit-learn takes seconds to import

    worst = 0.0
    for entity, f in model.fitted.items():
        df = frames.get(entity)
        if df is None or not df.height:
            continue
        s = D.score(f, df.select(f.features).to_numpy())
        mine = stored.filter(pl.col("entity") == entity).sort("entity_id")
        ordered = df.select("entity_id").with_row_index("i").join(
            mine, on="entity_id", how="inner").sort("entity_id")  # fmt: skip
        idx = ordered["i"].to_numpy()
        for det in ("robust_z", "iforest", "ensemble"):
            diff = np.abs(s[det][idx] - ordered[det].to_numpy())
            worst = max(worst, float(diff.max()) if diff.size else 0.0)
    return worst
