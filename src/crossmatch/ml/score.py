"""Score a warehouse's entities with the current unsupervised model, stored with the run.

Tables written in the warehouse (rows of a run are replaced when it is scored again):

``ml_run``     one row per (run, entity kind): model, status (ok / blind / skipped) and why,
               entities scored, seconds
``ml_score``   one row per entity: each detector's score, the ensemble, its rank in the kind
``ml_reason``  up to three reasons per entity, in Chinese, with the value, peers' median and z
``ml_input``   one row per scored run: the model, the fingerprint of what the scores were
               computed from, and the run whose scores were copied (``reused_from``) if any

``score_warehouse`` is the one call for the nightly flow (after detect): it scores the detect
run's entities with the model named in ``<warehouse>.models/CURRENT-unsupervised``, fitting and
saving a new one when there is none, when the feature definitions changed, or on ``retrain``.
The night (``crossmatch.night.run``) scores a build copy of the warehouse, so it names where the
models live (``models_of``: the published warehouse), fits no model unless told
(``fit="missing"``) and then leaves ``CURRENT`` alone (it is set after publishing), and passes
``reuse=True``: when the model and the fingerprint of every input the features read (the
tables' content and the detect run's hits) equal those of a run scored before, that run's
scores and reasons are copied under the new run id instead of recomputed. A kind with fewer
than :data:`MIN_ENTITIES` entities is ``skipped``: too few to rank against peers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from crossmatch import warehouse as wh_mod
from crossmatch.detect.reuse import table_fingerprint
from crossmatch.detect.schema import existing_relations
from crossmatch.ml import detectors as D
from crossmatch.ml import explain as X
from crossmatch.ml import features as F
from crossmatch.ml import model as M
from crossmatch.review.clues import latest_run
from crossmatch.review.model_scores import entity_scores  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

#: reasons are stored for the top of each kind: at least this many entities ...
REASONS_MIN = 200
#: ... or one in this many, whichever is more (what an analyst will read)
REASONS_SHARE = 20
#: fewer entities of a kind than this: too few peers to rank against (and no forest), skipped
MIN_ENTITIES = 8

DDL = """
CREATE TABLE IF NOT EXISTS ml_run (
    run_id VARCHAR, model_id VARCHAR, entity VARCHAR, status VARCHAR, reason VARCHAR,
    entities INTEGER, seconds DOUBLE, scored_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS ml_score (
    run_id VARCHAR, model_id VARCHAR, entity VARCHAR, entity_id VARCHAR, village_code VARCHAR,
    robust_z DOUBLE, iforest DOUBLE, ensemble DOUBLE, rank INTEGER
);
CREATE TABLE IF NOT EXISTS ml_input (
    run_id VARCHAR, model_id VARCHAR, fingerprint VARCHAR, reused_from VARCHAR,
    scored_at TIMESTAMP
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
    #: the run whose scores were copied (inputs and model unchanged), else ""
    reused_from: str = ""
    fingerprint: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.status) and all(s == "ok" for s, _, _ in self.status.values())

    @property
    def scored(self) -> int:
        return sum(n for _, _, n in self.status.values())

    def problems(self) -> list[str]:
        """One line per entity kind not ``ok``: kind, status, reason."""
        return [f"{e} {s}: {r}" for e, (s, r, _) in self.status.items() if s != "ok"]

    def render(self) -> str:
        trained = " (trained now)" if self.trained else ""
        reused = (
            f", inputs unchanged: scores of run {self.reused_from} reused"
            if self.reused_from
            else ""
        )
        lines = [
            f"ml: run {self.run_id}, model {self.model_id}{trained}{reused}, {self.seconds:.1f} s"
        ]
        for entity, (status, reason, n) in self.status.items():
            why = f"  ({reason})" if reason else ""
            lines.append(f"  {entity:<10} {status:<8} {n:>8} scored{why}")
        return "\n".join(lines)


def _latest_run(con) -> str | None:

    return latest_run(con)


def _context(entity: str, df: pl.DataFrame) -> list[dict[str, str]] | None:
    if entity == "village" and "item_ratio_item" in df.columns:
        return [{"item": v or ""} for v in df["item_ratio_item"].to_list()]
    if entity == "handler" and "top_surname" in df.columns:
        return [{"surname": v or ""} for v in df["top_surname"].to_list()]
    return None


def fit_model(
    warehouse: str | Path, frames: dict[str, pl.DataFrame], seed: int = 0, *, current: bool = True
) -> M.Model:
    """Fit the unsupervised detectors on every entity kind's features and save the artefact
    (under ``<warehouse>.models/``; ``current``: make it the one nights score with)."""
    fitted = {}
    for entity, df in frames.items():
        if df.height >= MIN_ENTITIES:
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
    return M.save(warehouse, "unsupervised", fitted, meta, current=current)


#: the tables the features read (besides the detect run's hits)
def _input_tables() -> list[str]:
    return sorted(set().union(*F.REQUIRED.values()) | (set(F.OPTIONAL) - {"hit"}))


def score_inputs(con, run_id: str | None) -> str:
    """Fingerprint of everything the features are computed from: their definitions, the
    content of every table they read (or its absence) and the (subject, village) of the detect
    run's hits (the run id itself excluded, so an unchanged night's copied hits match)."""
    have = existing_relations(con)
    parts = [M.feature_digest(), str(MIN_ENTITIES)]
    for t in _input_tables():
        parts.append(f"{t}={table_fingerprint(con, t) if t in have else 'absent'}")
    if run_id is None:
        parts.append("hit=no run")
    elif "hit" not in have:
        parts.append("hit=absent")
    else:
        row = con.execute(
            "SELECT count(*), bit_xor(hash(subject, village_code)), "
            "sum((hash(subject, village_code) >> 11)::HUGEINT) FROM hit WHERE run_id = ?",
            [run_id],
        ).fetchone()
        parts.append(f"hit={row}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _previous(con, fingerprint: str, model_id: str) -> str | None:
    """The latest run scored (or copied) from the same inputs with the same model."""
    if not {"ml_input", "ml_run"} <= existing_relations(con):
        return None
    row = con.execute(
        "SELECT i.run_id FROM ml_input i WHERE i.fingerprint = ? AND i.model_id = ? "
        "AND EXISTS (SELECT 1 FROM ml_run r WHERE r.run_id = i.run_id AND r.model_id = ?) "
        "ORDER BY i.scored_at DESC LIMIT 1",
        [fingerprint, model_id, model_id],
    ).fetchone()
    return row[0] if row else None


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
    models_of: str | Path | None = None,
    fit: str = "always",
    reuse: bool = False,
) -> ScoreResult:
    """Score the entities of ``detect_run`` (default: the latest) and store the result.

    The nightly flow calls this after detect. A kind whose inputs are missing is ``skipped``
    (no table) or ``blind`` (an optional input missing) with the reason in ``ml_run``.

    ``models_of``: the warehouse whose ``.models/`` folder holds the models (default:
    ``warehouse``; the night scores a build copy of the published one). ``fit``: ``always``
    fits and saves a model (made current) when there is none usable; ``missing`` fits one
    likewise but leaves ``CURRENT`` to the caller; ``never`` raises :class:`NoModel` instead.
    ``reuse``: copy the scores of an earlier run with the same model and inputs."""
    t0 = time.perf_counter()
    models_of = models_of or warehouse
    with wh_mod.session(warehouse, must_exist="run `crossmatch ingest` first") as con:
        if memory_limit:  # beyond it DuckDB spills to disk
            con.execute(f"SET memory_limit = '{memory_limit}'")
        run_id = detect_run or _latest_run(con)
        run = run_id or "(no detect run)"
        # model.json first: an unchanged night copies scores without loading the forests
        model = None if retrain else M.load(models_of, model_id, fitted=False)
        if model is not None and model.meta.get("feature_digest") != M.feature_digest():
            log.info("model %s was fitted on other feature definitions: refitting",
                     model.model_id)  # fmt: skip
            model = None
        fingerprint = score_inputs(con, run_id) if reuse else ""
        prev = _previous(con, fingerprint, model.model_id) if reuse and model else None
        if prev is not None and model is not None:
            res = _copy_scores(con, prev, run, model.model_id, fingerprint)
            res.seconds = time.perf_counter() - t0
            log.info("%s", res.render())
            return res
        if model is not None:
            model = M.load(models_of, model.model_id)
        ef = F.compute(con, run_id)
        for entity, x in ef.items():
            if x.status != "skipped" and x.frame.height < MIN_ENTITIES:
                x.status = "skipped"
                x.reason = (
                    f"only {x.frame.height} {entity}(s): too few to rank against peers "
                    f"(at least {MIN_ENTITIES})"
                )
        frames = {e: x.frame for e, x in ef.items() if x.status != "skipped"}
        trained = False
        if model is None:
            if model_id is not None:
                raise FileNotFoundError(f"no model {model_id} under {M.models_dir(models_of)}")
            if fit == "never":
                raise NoModel(
                    f"no usable model under {M.models_dir(models_of)} (CURRENT-unsupervised "
                    "missing, or fitted on other feature definitions). Fix: `crossmatch score "
                    f"--warehouse {models_of} --retrain` fits one."
                )
            if not frames:
                raise NoModel(
                    "no model yet and no entity kind with enough rows to fit one: "
                    + "; ".join(f"{e}: {x.reason}" for e, x in ef.items())
                )
            model = fit_model(models_of, frames, current=fit == "always")
            trained = True
        scores, reasons = score_frames(model, frames)
        res = ScoreResult(run, model.model_id, trained, fingerprint=fingerprint)
        now = dt.datetime.now().replace(microsecond=0)
        with _replacing(con, run):
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
            con.execute(
                "INSERT INTO ml_input VALUES (?, ?, ?, NULL, ?)",
                [run, model.model_id, fingerprint or None, now],
            )
    res.seconds = time.perf_counter() - t0
    log.info("%s", res.render())
    return res


@contextmanager
def _replacing(con, run: str) -> Iterator[None]:
    """One transaction replacing every ``ml_*`` row of ``run`` (rolled back on any error)."""
    con.execute(DDL)
    with wh_mod.transaction(con):
        for t in ("ml_run", "ml_score", "ml_reason", "ml_input"):
            con.execute(f"DELETE FROM {t} WHERE run_id = ?", [run])
        yield


class NoModel(Exception):
    """No model to score with, and the caller said not to fit one (or nothing to fit on)."""


def _copy_scores(con, prev: str, run: str, model_id: str, fingerprint: str) -> ScoreResult:
    """Copy run ``prev``'s scores, reasons and statuses under ``run`` (same inputs, same model)."""
    res = ScoreResult(run, model_id, False, reused_from=prev, fingerprint=fingerprint)
    rows = con.execute(
        "SELECT entity, status, reason, entities FROM ml_run WHERE run_id = ? AND model_id = ? "
        "ORDER BY rowid",
        [prev, model_id],
    ).fetchall()
    if prev == run:  # this very run was scored from the same inputs: nothing to write
        res.status = {e: (s, r or "", n) for e, s, r, n in rows}
        return res
    now = dt.datetime.now().replace(microsecond=0)
    with _replacing(con, run):
        con.execute(
            "INSERT INTO ml_score SELECT ?, model_id, entity, entity_id, village_code, robust_z, "
            "iforest, ensemble, rank FROM ml_score WHERE run_id = ?",
            [run, prev],
        )
        con.execute(
            "INSERT INTO ml_reason SELECT ?, entity, entity_id, k, feature, value, peer, z, text "
            "FROM ml_reason WHERE run_id = ?",
            [run, prev],
        )
        for e, s, r, n in rows:
            con.execute(
                "INSERT INTO ml_run VALUES (?, ?, ?, ?, ?, ?, 0.0, ?)",
                [run, model_id, e, s, r, n, now],
            )
            res.status[e] = (s, r or "", n)
        con.execute("INSERT INTO ml_input VALUES (?, ?, ?, ?, ?)",
                    [run, model_id, fingerprint, prev, now])  # fmt: skip
    return res
