"""The anomaly model's score of an entity, as review and the clue-list export show it
(模型评分 / 模型提示): read from the ``ml_score`` / ``ml_reason`` tables that
:func:`crossmatch.ml.score.score_warehouse` writes (reading them needs no scikit-learn).
"""

from __future__ import annotations

import duckdb

from crossmatch.detect.schema import existing_relations


def entity_scores(
    con: duckdb.DuckDBPyConnection, entity_ids: list[str], run_id: str | None = None
) -> dict[str, dict]:
    """Latest (or ``run_id``'s) ensemble score, rank and reasons of the given entities, any
    kind: {entity_id: {"score": 0-100, "entity": kind, "rank": n, "reasons": [text, ...]}}.
    Empty when the warehouse was never scored."""
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
