"""Stage 4c of identity resolution: weigh the candidate pairs of the local problem
(:class:`~crossmatch.identity.nodes.LocalProblem`) with the Fellegi-Sunter model, training it
first when the warehouse has no weights yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from crossmatch.identity.clustering import _fuzzy_pool
from crossmatch.identity.fellegi_sunter import FSModel
from crossmatch.identity.fuzzy_model import _create_blocking_keys_view, _labelled_m
from crossmatch.identity.linker import LinkageConfig, Linker, Prediction
from crossmatch.identity.mentions import _store
from crossmatch.identity.nodes import LocalProblem, Probes


@dataclass
class Scored:
    """The linker (its fitted model, and the nodes it clusters) and its scored pairs."""

    linker: Linker
    pred: Prediction
    candidate_pairs: int  # pairs scored, after the pandas-side filters


def term_frequencies(
    con: duckdb.DuckDBPyConnection,
    config: LinkageConfig,
    nodes: pd.DataFrame,
    judged: pd.DataFrame,
    incremental: bool,
) -> dict[str, pd.Series]:
    """Reads the blocking keys and the population of :func:`_tf_population`; writes the view
    ``_blocking_keys`` and the temp table ``_tfv``. Returns value -> share per
    term-frequency comparison, for the values ``nodes`` hold: frequencies over the whole
    population, not just the loaded part (the nodes of a full run)."""
    tf: dict[str, pd.Series] = {}
    _create_blocking_keys_view(con)
    pop = _tf_population(con, judged, incremental, [c.column for c in config.comparisons if c.tf])
    for comp in config.comparisons:
        if comp.tf:
            _store(con, "_tfv", pd.DataFrame({"v": nodes[comp.column].dropna().unique()}), True)
            tfdf = con.execute(
                f"""SELECT {comp.column} AS v, count(*) / (SELECT count({comp.column})
                    FROM {pop})::DOUBLE AS f
                FROM {pop} SEMI JOIN _tfv ON {pop}.{comp.column} = _tfv.v GROUP BY ALL"""
            ).df()
            tf[comp.key] = pd.Series(tfdf["f"].to_numpy(), index=tfdf["v"])
    return tf


def _tf_population(
    con: duckdb.DuckDBPyConnection, judged: pd.DataFrame, incremental: bool, columns: list[str]
) -> str:
    """The table whose values term frequencies are counted over: the nodes a *full* run on
    tonight's mentions has, the person index and one node per fuzzy-path group of every
    mention (``_allk`` in a full run).

    Why not ``_allk`` on an incremental night: its local nodes are tonight's new groups and
    one node per kept person's attribute set (``_previous_persons``), another partition of
    the same mentions, so a name's count and the count of named nodes differ from a full
    run's (at 300,000 persons: 0.72 % more named nodes), and so did the name's weight of
    every link re-decided tonight. A property owner's link came out 0.985172 where the rebuild
    has 0.984920 and night 1 had 0.984909: its two decimals moved (0.99 against 0.98) and
    property_on_dibao ran on every month. Here the groups are formed from every mention by
    the same SQL as a full run's (``clustering._fuzzy_pool``), with the mentions that a full
    run links outside the fuzzy path left out as it leaves them out: tonight's staff links of
    every mention (``_staff_link``), tonight's household and company links of the mentions
    resolved tonight, and the kept such links (a ``fuzzy`` link of a node other than a
    group's) of the others."""
    if not incremental:
        return "_allk"
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _hl_full AS
        SELECT source, file, row, role, id FROM _staff_link
        UNION ALL SELECT source, file, row, role, CAST(id AS VARCHAR) FROM _handler_link
        UNION ALL SELECT source, file, row, role, person_id FROM _kept
            WHERE method = 'fuzzy' AND node_id NOT LIKE 'G:%'"""
    )
    full = _fuzzy_pool(con, judged, scope=None, out="_fzfull", handlers="_hl_full")
    for t in ("_fzfull", "_fzfull0", "_fzfull1", "_hl_full"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    keep = [c for c in columns if c in full.columns]
    full = full[keep]
    _store(con, "_tf_groups", full, temp=True)
    cols = ", ".join(f"CAST({c} AS VARCHAR) AS {c}" for c in keep)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _tf_pop AS SELECT {cols} FROM _idx
        UNION ALL SELECT {cols} FROM _tf_groups"""
    )
    con.execute("DROP TABLE _tf_groups")
    return "_tf_pop"


def _python_levels(
    linker: Linker, nodes: pd.DataFrame, left: np.ndarray, right: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Filters and comparison levels in Python, when blocking found no pairs in DuckDB:
    returns the pairs kept and their levels. A fuzzy-group node whose ID conflicted must not
    be linked back to that ID."""
    cid = nodes["conflict_id"].to_numpy(dtype=object)
    idv = nodes["idc"].to_numpy(dtype=object)
    bad = ((cid[left] != None) & (cid[left] == idv[right])) | (  # noqa: E711
        (cid[right] != None) & (cid[right] == idv[left])  # noqa: E711
    )
    left, right = left[~bad], right[~bad]
    left, right = linker._filter_pairs(left, right)
    return left, right, linker.compare(left, right)


def _train(
    con: duckdb.DuckDBPyConnection,
    config: LinkageConfig,
    linker: Linker,
    problem: LocalProblem,
    n_probes: int,
    n_idx: int,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Reads the known matches (``fuzzy_model._labelled_m``); fits ``linker.model`` by EM on
    the candidate pairs and random pairs of the sampled index nodes and some probes."""
    left, right, g = pairs
    assert problem.sample is not None  # local_problem samples when training
    rng = np.random.default_rng(config.seed)
    pool = np.flatnonzero(np.isin(problem.glob, problem.sample))
    if n_probes:
        k = min(n_probes, max(1, round(len(pool) * n_probes / max(n_idx, 1))))
        probes = np.flatnonzero(problem.nodes["is_probe"].to_numpy(dtype=bool))
        pool = np.concatenate([pool, rng.choice(probes, size=k, replace=False)])
    ra = pool[rng.integers(0, len(pool), config.u_sample_pairs)]
    rb = pool[rng.integers(0, len(pool), config.u_sample_pairs)]
    keep = ra != rb
    linker.train(
        left,
        right,
        g,
        random_pairs=(ra[keep], rb[keep]),
        n_possible=n_probes * n_idx + n_probes * (n_probes - 1) // 2,
        m_known=_labelled_m(con, config),
    )


def score_pairs(
    con: duckdb.DuckDBPyConnection,
    config: LinkageConfig,
    model: FSModel | None,
    probes: Probes,
    problem: LocalProblem,
    levels: np.ndarray | None,
    n_idx: int,
    incremental: bool,
) -> Scored:
    """Reads what :func:`term_frequencies` and, without a ``model``, :func:`_train` read.
    ``levels``: the candidate pairs' comparison levels computed in DuckDB by the blocking
    (``fuzzy_model._sql_pairs``), None when it found no pairs. Returns the linker over
    ``problem.nodes`` with its model (trained here when ``model`` is None) and the pairs'
    probabilities."""
    tf = term_frequencies(con, config, problem.nodes, probes.judged, incremental)
    linker = Linker(problem.nodes, config, model=model, tf=tf)
    left, right = problem.left, problem.right
    if levels is not None:
        # levels and filters already computed in DuckDB (same semantics, see _sql_pairs)
        g = levels
    else:
        left, right, g = _python_levels(linker, problem.nodes, left, right)
    if model is None:
        _train(con, config, linker, problem, probes.n_probes, n_idx, (left, right, g))
    return Scored(linker, linker.score(left, right, g), len(left))
