"""Clues (线索) for analysts: findings kept across nights, verdicts, explanations.

``Review`` is the notebook API; ``sync_warehouse`` records a detect run's clues in the review
store (a DuckDB file beside the warehouse that no rebuild touches).
"""

from crossmatch.review.api import EvidenceRow, Explanation, Review, mask
from crossmatch.review.clues import (
    FALSE_POSITIVE,
    VERDICTS,
    SyncResult,
    clue_id,
    sync_run,
    sync_warehouse,
)
from crossmatch.review.store import open_store, store_path

__all__ = [
    "FALSE_POSITIVE",
    "VERDICTS",
    "EvidenceRow",
    "Explanation",
    "Review",
    "SyncResult",
    "clue_id",
    "mask",
    "open_store",
    "store_path",
    "sync_run",
    "sync_warehouse",
]
