"""Plant rule scenarios (cases and traps) into a township's truth; see rule-catalog.md."""

from __future__ import annotations

import numpy as np

from crossmatch.synth.county import Builder, TownData


class Planter:
    def __init__(self, builder: Builder, persons: int) -> None:
        self.b = builder
        self.persons = persons

    def plant(self, data: TownData, rng: np.random.Generator) -> None:
        pass

    def finish(self) -> list[tuple[str, str, str, str, str]]:
        return []
