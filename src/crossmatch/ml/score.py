"""Score a warehouse's entities with the current unsupervised model, stored with the run.

Tables written in the warehouse (rows of a run are replaced when it is scored again):

``ml_run``     one row per (run, entity kind): model, status (ok / blind / skipped) and why,
               entities scored, seconds
``ml_score``   one row per entity: each detector's score, the ensemble, its rank in the kind
``ml_reason``  up to three reasons per entity, in Chinese, with the value, peers' median and z

``score_warehouse`` is the one call for the nightly flow (after detect): it scores the detect
run's entities with the model named in ``<warehouse>.models/CURRENT-unsupervised``, fitting and
saving a new one when there is none, when the feature definitions changed, or on ``retrain``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from crossmatch import warehouse as wh_mod
from crossmatch.ml import detectors as D
from crossmatch.ml import explain as X
from crossmatch.ml import features as F
from crossmatch.ml import model as M

log = logging.getLogger(__name__)

#: reasons are stored for the top of each kind: at least this many entities ...
REASONS_MIN = 200
#: ... or one in this many, whichever is more (what an analyst will read)
REASONS_SHARE = 20

DDL = """
CREATE TABLE IF NOT EXISTS ml_run (
    run_id VARCHAR, model_id VARCHAR, entity VARCHAR, status VARCHAR, reason VARCHAR,
    entities INTEGER, seconds DOUBLE, scored_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS ml_score (
    run_id VARCHAR, model_id VARCHAR, entity VARCHAR, entity_id VARCHAR, village_code VARCHAR,
    robust_z DOUBLE, iforest DOUBLE, ensemble DOUBLE, rank INTEGER
);
CREATE TABLE IF NOT EXISTS ml_reason (
    run_id VARCHAR, entity VARCHAR, entity_id VARCHAR, k INTEGER, feature VARCHAR,
    value DOUBLE, peer DOUBLE, z DOUBLE, text VARCHAR
);
"""


@dataclass
class ScoreResult:
    run_id: str
    model_id: str
    trained: bool
    status: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(s == "ok" for s, _, _ in self.status.values())

    def render(self) -> str:
        trained = " (trained now)" if self.trained else ""
        lines = [f"ml: run {self.run_id}, model {self.model_id}{trained}, {self.seconds:.1f} s"]
        for entity, (status, reason, n) in self.status.items():
            why = f"  ({reason})" if reason else ""
            lines.append(f"  {entity:<10} {status:<8} {n:>8} scored{why}")
        return "\n".join(lines)


def _latest_run(con) -> str | None:
    from crossmatch.review.clues import latest_run

    return latest_run(con)


def _context(entity: str, df: pl.DataFrame) -> list[dict[str, str]] | None:
    if entity == "village" and "item_ratio_item" in df.columns:
        return [{"item": v or ""} for v in df["item_ratio_item"].to_list()]
    if entity == "handler" and "top_surname" in df.columns:
        return [{"surname": v or ""} for v in df["top_surname"].to_list()]
    return None


def fit_model(warehouse: str | Path, frames: dict[str, pl.DataFrame], seed: int = 0) -> M.Model:
    """Fit the unsupervised detectors on every entity kind's features and save the artefact."""
    fitted = {}
    for entity, df in frames.items():
        if df.height:
            names = [f.name for f in F.features_of(entity, "detect")]
            fitted[entity] = D.fit(df.select(names).to_numpy(), names, seed=seed)
    meta = {
        "features": {e: f.features for e, f in fitted.items()},
        "context_features": {e: [f.name for f in F.features_of(e, "context")] for e in fitted},
        "params": {e: f.params for e, f in fitted.items()},
        "training_fingerprint": M.frame_fingerprint(frames),
        "training_rows": {e: frames[e].height for e in fitted},
        "detectors": list(D.DETECTORS),
    }
    return M.save(warehouse, "unsupervised", fitted, meta)


def score_frames(model: M.Model, frames: dict[str, pl.DataFrame]):
    """(scores, reasons) frames of every entity kind the model knows."""
    scores, reasons = [], []
    for entity, df in frames.items():
        f = model.fitted.get(entity)
        if f is None or not df.height:
            continue
        x = df.select(f.features).to_numpy()
        s = D.score(f, x)
        order = np.argsort(-s["ensemble"], kind="mergesort")
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(1, len(order) + 1)
        scores.append(pl.DataFrame({
            "entity": entity, "entity_id": df["entity_id"], "village_code": df["village_code"],
            "robust_z": s["robust_z"], "iforest": s["iforest"], "ensemble": s["ensemble"],
            "rank": rank,
        }))  # fmt: skip
        feats = [F.feature(entity, n) for n in f.features]
        # reasons only for the top of each kind: what an analyst will read
        top = order[: max(REASONS_MIN, len(order) // REASONS_SHARE)]
        ctx = _context(entity, df)
        rs = X.reasons(f, feats, x[top], context=[ctx[i] for i in top] if ctx else None)
        ids = df["entity_id"].to_list()
        for i, row in zip(top, rs, strict=True):
            for k, (name, value, peer, z, text) in enumerate(row, start=1):
                reasons.append((entity, ids[i], k, name, value, peer, z, text))
    sc = pl.concat(scores) if scores else pl.DataFrame()
    rcols = ("entity", "entity_id", "k", "feature", "value", "peer", "z", "text")
    rs_df = pl.DataFrame(reasons, schema=list(rcols), orient="row") if reasons else pl.DataFrame(
        schema={c: (pl.Int64 if c == "k" else pl.Float64 if c in ("value", "peer", "z")
                    else pl.String) for c in rcols})  # fmt: skip
    return sc, rs_df


def score_warehouse(
    warehouse: str | Path,
    detect_run: str | None = None,
    *,
    retrain: bool = False,
    model_id: str | None = None,
    memory_limit: str | None = None,
) -> ScoreResult:
    """Score the entities of ``detect_run`` (default: the latest) and store the result.

    The nightly flow calls this after detect. A kind whose inputs are missing is ``skipped``
    (no table) or ``blind`` (an optional input missing) with the reason in ``ml_run``."""
    t0 = time.perf_counter()
    with wh_mod.session(warehouse, must_exist="run `crossmatch ingest` first") as con:
        if memory_limit:  # beyond it DuckDB spills to disk
            con.execute(f"SET memory_limit = '{memory_limit}'")
        run_id = detect_run or _latest_run(con)
        ef = F.compute(con, run_id)
        frames = {e: x.frame for e, x in ef.items() if x.status != "skipped"}
        model = None if retrain else M.load(warehouse, model_id)
        trained = False
        if model is not None and model.meta.get("feature_digest") != M.feature_digest():
            log.info("model %s was fitted on other feature definitions: refitting",
                     model.model_id)  # fmt: skip
            model = None
        if model is None:
            if model_id is not None:
                raise FileNotFoundError(f"no model {model_id} under {M.models_dir(warehouse)}")
            model = fit_model(warehouse, frames)
            trained = True
        scores, reasons = score_frames(model, frames)
        run = run_id or "(no detect run)"
        res = ScoreResult(run, model.model_id, trained)
        now = dt.datetime.now().replace(microsecond=0)
        con.execute(DDL)
        con.execute("BEGIN TRANSACTION")
        try:
            for t in ("ml_run", "ml_score", "ml_reason"):
                con.execute(f"DELETE FROM {t} WHERE run_id = ?", [run])
            if scores.height:
                con.register("_s", scores.with_columns(
                    pl.lit(run).alias("run_id"), pl.lit(model.model_id).alias("model_id")
                ).to_arrow())  # fmt: skip
                con.execute(
                    "INSERT INTO ml_score SELECT run_id, model_id, entity, entity_id, "
                    "village_code, robust_z, iforest, ensemble, rank FROM _s"
                )
                con.unregister("_s")
            if reasons.height:
                con.register("_r", reasons.with_columns(pl.lit(run).alias("run_id")).to_arrow())
                con.execute(
                    "INSERT INTO ml_reason SELECT run_id, entity, entity_id, k, feature, value, "
                    "peer, z, text FROM _r"
                )
                con.unregister("_r")
            secs = time.perf_counter() - t0
            for entity, x in ef.items():
                n = int((scores["entity"] == entity).sum()) if scores.height else 0
                status, reason = x.status, x.reason
                if status != "skipped" and entity not in model.fitted:
                    status, reason = "skipped", f"model {model.model_id} has no {entity} part"
                res.status[entity] = (status, reason, n)
                con.execute(
                    "INSERT INTO ml_run VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [run, model.model_id, entity, status, reason, n, secs, now],
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    res.seconds = time.perf_counter() - t0
    log.info("%s", res.render())
    return res


def entity_scores(con, entity_ids: list[str], run_id: str | None = None) -> dict[str, dict]:
    """Latest (or ``run_id``'s) ensemble score, rank and reasons of the given entities, any
    kind: {entity_id: {"score": 0-100, "entity": kind, "rank": n, "reasons": [text, ...]}}.
    Empty when the warehouse was never scored."""
    from crossmatch.detect.schema import existing_relations

    if "ml_score" not in existing_relations(con) or not entity_ids:
        return {}
    if run_id is None:
        last = con.execute("SELECT run_id FROM ml_run ORDER BY scored_at DESC LIMIT 1").fetchone()
    run = run_id or (last[0] if last else None)
    if run is None:
        return {}
    rows = con.execute(
        """
        SELECT s.entity_id, s.entity, s.ensemble, s.rank,
               list(r.text ORDER BY r.k) FILTER (WHERE r.text IS NOT NULL)
        FROM ml_score s LEFT JOIN ml_reason r
          ON r.run_id = s.run_id AND r.entity = s.entity AND r.entity_id = s.entity_id
        WHERE s.run_id = ? AND s.entity_id IN (SELECT unnest(?))
        GROUP BY ALL
        """,
        [run, list(entity_ids)],
    ).fetchall()
    out: dict[str, dict] = {}
    for eid, entity, ens, rank, texts in rows:
        cur = out.get(eid)
        if cur is None or ens * 100 > cur["score"]:  # the kind where it stands out most
            out[eid] = {"score": round(ens * 100, 1), "entity": entity, "rank": rank,
                        "reasons": texts or []}  # fmt: skip
    return out
