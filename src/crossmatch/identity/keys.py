"""Blocking keys of ID candidates that survive a transposed pair of digits.

The three partial-ID keys of the person index (``id_s1`` region + birth date, ``id_s2``
region + sequence, ``id_s3`` birth date + sequence) survive one mistyped digit, and a
transposition inside one part. A transposition *across* two parts (``341122|1945`` typed
``341121|2945``: the region's last digit swapped with the century) changes two parts at once,
and one of them in every key: such a mention was never compared with its person. The
anagram key (the ID's characters sorted) is the same for any transposition anywhere; with 18
characters it is nearly unique in a county, so it blocks alone. Pandas and SQL forms agree
(tested).
"""

from __future__ import annotations

import pandas as pd

COLUMN = "id_an"


def id_anagram(idc: pd.Series) -> pd.Series:
    """The 18-character ID candidate's characters sorted (None where there is none)."""
    return idc.map(
        lambda s: "".join(sorted(s)) if isinstance(s, str) and len(s) == 18 else None
    ).astype(object)


def id_anagram_sql(col: str) -> str:
    """The same in DuckDB SQL."""
    return (
        f"CASE WHEN length({col}) = 18 THEN "
        f"array_to_string(list_sort(string_split({col}, '')), '') END"
    )
