"""The nightly run: one orchestration (:func:`run_night`) for ``crossmatch run`` and the Prefect
flows; its configuration from ``CROSSMATCH_HOME`` (:class:`NightConfig`); its outcome table
(:data:`OUTCOMES`). Prefect is imported only by ``crossmatch.night.flows`` and
``crossmatch.night.prefect_server``."""

from crossmatch.night.config import NightConfig
from crossmatch.night.run import (
    OUTCOMES,
    STAGES,
    NightResult,
    StageReport,
    in_place,
    outcome_table,
    run_night,
)

__all__ = [
    "OUTCOMES",
    "STAGES",
    "NightConfig",
    "NightResult",
    "StageReport",
    "in_place",
    "outcome_table",
    "run_night",
]
