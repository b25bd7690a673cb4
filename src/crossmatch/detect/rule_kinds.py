"""Rule kinds: how a rule's rendered SQL becomes hits. A new *kind* is code, registered by name.

Each kind takes the connection, the spec, its rendered SQL and parameter values, and must leave a
TEMP table ``_rule_hits`` whose first columns are ``HIT_COLUMNS``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from crossmatch.spec.common import Problem, Problems
from crossmatch.spec.rules import HIT_COLUMNS, RuleSpec, load_rules

KindFn = Callable[[duckdb.DuckDBPyConnection, "RuleSpec", str, dict[str, Any]], None]
KINDS: dict[str, KindFn] = {}
#: Extra columns a kind needs from the rule's SQL (checked at plan time), beyond HIT_COLUMNS.
KIND_COLUMNS: dict[str, tuple[str, ...]] = {}


def register(name: str, extra_columns: tuple[str, ...] = ()) -> Callable[[KindFn], KindFn]:
    """Register a rule kind under ``name`` (used as ``kind:`` in rule files)."""

    def deco(fn: KindFn) -> KindFn:
        KINDS[name] = fn
        KIND_COLUMNS[name] = extra_columns
        return fn

    return deco


@register("sql")
def sql_kind(
    con: duckdb.DuckDBPyConnection, spec: RuleSpec, sql: str, params: dict[str, Any]
) -> None:
    """The query's rows are the hits."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _rule_hits AS {sql}")


@register("fdr_enrichment", extra_columns=("units", "flagged_units"))
def fdr_enrichment(
    con: duckdb.DuckDBPyConnection, spec: RuleSpec, sql: str, params: dict[str, Any]
) -> None:
    """Groups (e.g. villages) whose share of flagged units is significantly above the base rate.

    The SQL returns one candidate row per group with ``units`` (e.g. recipient households) and
    ``flagged_units`` (e.g. those that are cadre relatives). The base rate is the pooled share over
    all groups; each group gets a one-sided exact (hypergeometric, i.e. Fisher) p-value for "at
    least this many flagged units", and the p-values are adjusted with Benjamini-Hochberg. A group
    fires when ``flagged_units >= min_cases`` and the adjusted p-value is ``<= fdr``. Parameters:
    ``min_cases`` (int) and ``fdr`` (float).
    """
    from scipy.stats import hypergeom  # lazy: scipy.stats costs seconds to import

    df = con.execute(sql).df()
    cols = [*spec_hit_columns(), "units", "flagged_units"]
    total = int(df["units"].sum()) if len(df) else 0
    flagged = int(df["flagged_units"].sum()) if len(df) else 0
    out = df.iloc[0:0].copy()
    if total and flagged:
        n = df["units"].astype(int).to_numpy()
        k = df["flagged_units"].astype(int).to_numpy()
        p = hypergeom.sf(k - 1, total, flagged, n)
        q = bh_adjust(p)
        df = df.assign(p_value=p, q_value=q)
        keep = (df["flagged_units"] >= int(params["min_cases"])) & (df["q_value"] <= params["fdr"])
        out = df[keep].copy()
        base = flagged / total

        def ev(row: Any) -> str:
            e = json.loads(row["evidence"]) if isinstance(row["evidence"], str) else {}
            e.update(
                {
                    "units": int(row["units"]),
                    "flagged_units": int(row["flagged_units"]),
                    "base_rate": round(base, 6),
                    "p_value": float(row["p_value"]),
                    "q_value_bh": float(row["q_value"]),
                }
            )
            return json.dumps(e, ensure_ascii=False, default=str)

        if len(out):
            out["evidence"] = out.apply(ev, axis=1)
    con.register("_fdr_out", out[cols] if len(out) else df.iloc[0:0][cols])
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _rule_hits AS "
        "SELECT * REPLACE (CAST(evidence AS JSON) AS evidence) FROM _fdr_out"
    )
    con.unregister("_fdr_out")


@register("share_enrichment", extra_columns=("units", "flagged_units"))
def share_enrichment(
    con: duckdb.DuckDBPyConnection, spec: RuleSpec, sql: str, params: dict[str, Any]
) -> None:
    """Groups (e.g. villages) where flagged units are both many and a large share.

    The SQL returns one candidate row per group with ``units`` (e.g. cases active in the year)
    and ``flagged_units`` (e.g. those a favouritism rule flags). A group fires when
    ``flagged_units >= min_cases`` and ``flagged_units / units >= min_share`` (the catalogue's
    threshold form). ``test: hypergeom`` additionally requires a one-sided exact test against
    the pooled base rate, Benjamini-Hochberg adjusted, at ``fdr`` (an option, not the default).
    """
    df = con.execute(sql).df()
    cols = [*spec_hit_columns(), "units", "flagged_units"]
    test = str(params.get("test", "none"))
    if test not in ("none", "hypergeom"):
        raise ValueError(f"{spec.id}: parameter test={test!r}; use 'none' or 'hypergeom'")
    out = df.iloc[0:0].copy()
    if len(df):
        n = df["units"].astype(int).to_numpy()
        k = df["flagged_units"].astype(int).to_numpy()
        share = k / n.clip(min=1)
        df = df.assign(share=share)
        keep = (k >= int(params["min_cases"])) & (share >= float(params["min_share"]))
        total, flagged = int(n.sum()), int(k.sum())
        if test == "hypergeom" and total and flagged:
            from scipy.stats import hypergeom  # lazy: scipy.stats costs seconds to import

            p = hypergeom.sf(k - 1, total, flagged, n)
            df = df.assign(p_value=p, q_value=bh_adjust(p))
            keep = keep & (df["q_value"].to_numpy() <= float(params.get("fdr", 0.05)))
        out = df[keep].copy()

        def ev(row: Any) -> str:
            e = json.loads(row["evidence"]) if isinstance(row["evidence"], str) else {}
            e.update(
                {
                    "units": int(row["units"]),
                    "flagged_units": int(row["flagged_units"]),
                    "share": round(float(row["share"]), 4),
                    "min_cases": int(params["min_cases"]),
                    "min_share": float(params["min_share"]),
                    "test": test,
                }
            )
            if "q_value" in row:
                e.update({"p_value": float(row["p_value"]), "q_value_bh": float(row["q_value"])})
            return json.dumps(e, ensure_ascii=False, default=str)

        if len(out):
            out["evidence"] = out.apply(ev, axis=1)
    con.register("_share_out", out[cols] if len(out) else df.iloc[0:0][cols])
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _rule_hits AS "
        "SELECT * REPLACE (CAST(evidence AS JSON) AS evidence) FROM _share_out"
    )
    con.unregister("_share_out")


def spec_hit_columns() -> list[str]:
    return list(HIT_COLUMNS)


def bh_adjust(p: Any) -> Any:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order."""
    from scipy.stats import false_discovery_control  # lazy: scipy.stats costs seconds

    p = np.asarray(p, dtype=float)
    return p if len(p) == 0 else false_discovery_control(p, method="bh")


def kind_problems(specs: Iterable[RuleSpec]) -> list[Problem]:
    """A rule naming a kind no module registered."""
    return [
        Problem(
            s.path,
            s.kind_line,
            f"unknown rule kind {s.kind!r}",
            f"use one of {', '.join(sorted(KINDS))}",
        )
        for s in specs
        if s.kind not in KINDS
    ]


def load_checked_rules(rules_dir: str | Path, only: Iterable[str] | None = None) -> list[RuleSpec]:
    """``load_rules`` plus the kind check; raises ``SpecError`` listing every problem."""
    problems = Problems()
    specs = load_rules(rules_dir, problems, only=None if only is None else list(only))
    problems.extend(kind_problems(specs))
    problems.raise_if_any()
    return specs
