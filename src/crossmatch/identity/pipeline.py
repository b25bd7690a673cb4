"""Resolve every person mention in a DuckDB warehouse to one person (data contract section 5).

Plan, in the order the code runs:

1. ``person_mention``: one row per (source, file, row, role) from the canonical ``src_*`` tables.
2. Exact path (SQL): a valid or upgraded-15 ID links to that ID. Guard: a mention whose name is
   incompatible with the ID's registry name is an ID conflict (``identity_conflict``) and goes
   to the fuzzy path instead of being merged.
3. Handlers/approvers (name only) link to payroll staff of their township where unique; a
   name without an ID on a row whose other person has an ID links to that person's registry
   household member of that name where unique (:func:`link_household_comentions`).
4. Fuzzy path: mentions without a usable ID, grouped into nodes where identical attributes
   identify someone (ID candidate, account, staff township; a bare name never does), probe
   the person index (one node per ID) with the FS/EM engine (``data/persons.yaml``). Blocking
   and comparison vectors run in DuckDB. m of name/village/account come from ID-bearing
   mentions (known matches), EM estimates the rest; pairs are scored with the population
   prior (so a name alone weighs less as the county grows) and term frequencies; a probe's
   link to a person is weighed against all its candidate persons (one who had died before
   the probe's records loses weight when a living one fits). A registry row without a valid
   ID (bad check digit, missing) is a registered person of its own (:func:`_registry_anchor`).
   A village written by name counts as its code (name / code pairs of the other records).
   Analyst judgements become must/cannot links; constrained clustering never joins two
   registry IDs.
5. Person ids: the registry ID, else the valid outside ID, else a stable ``P`` id (the previous
   run's id for these mentions, or a hash of the cluster's first mention).
6. Outputs: ``identity_link``, ``person``, ``identity_explanation``, ``identity_params`` and the
   resolved views ``r_<source>`` with one ``R_pid`` column per role.

This module runs the stages in order (:func:`resolve_identities`; ``_resolve`` reads as their
table of contents); each lives in its own module: :mod:`~crossmatch.identity.mentions` (1),
:mod:`~crossmatch.identity.exact` (2-3), :mod:`~crossmatch.identity.fuzzy_model` (person
index, blocking), :mod:`~crossmatch.identity.nodes` (the node tables and judgements),
:mod:`~crossmatch.identity.scoring` and :mod:`~crossmatch.identity.clustering` (4),
:mod:`~crossmatch.identity.incremental` (what changed since the last run),
:mod:`~crossmatch.identity.publish` (5-6) and :mod:`~crossmatch.identity.analyst` (explain,
judgements). Some of their names are re-exported here for existing callers.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np

from crossmatch.identity.analyst import (  # noqa: F401
    JUDGEMENT_DDL,
    ensure_judgement_table,
    explain,
    record_judgement,
)
from crossmatch.identity.clustering import (  # noqa: F401
    _REG_ROW,
    _fuzzy_pool,
    _loc_nid,
    _record_judgement_conflicts,
    _registry_anchor,
    cluster_nodes,
    once_pairs,
)
from crossmatch.identity.exact import (
    build_id_index,
    store_comention_links,
    store_conflicts,
    store_staff_links,
)
from crossmatch.identity.fellegi_sunter import FSModel
from crossmatch.identity.fuzzy_model import (  # noqa: F401
    _KEYS,
    _M_SAMPLE,
    _U_SAMPLE_NODES,
    _build_deaths,
    _build_index,
    _candidate_id,
    _create_blocking_keys_view,
    _labelled_m,
    _load_model,
    _node_frame,
    _save_model,
    _sql_pairs,
    default_config,
)
from crossmatch.identity.incremental import (
    _can_increment,
    _previous_pids,
    _reopen,
    _signature,
    _split_new,
    _unchanged,
    reopen_handlers,
    snapshot_index,
)
from crossmatch.identity.linker import LinkageConfig
from crossmatch.identity.mentions import (  # noqa: F401
    _CTX,
    _VILLAGE_CLEAN,
    _columns,
    _sql_text,
    _store,
    _tables,
    build_mentions,
)
from crossmatch.identity.nodes import Probes, local_problem, prepare_probes
from crossmatch.identity.publish import (  # noqa: F401
    _explain_pass,
    _publish,
    _publish_explanations,
    _publish_nodes,
    _publish_persons,
    _publish_views,
    _stable_key_pid,
    record_run,
)
from crossmatch.identity.roles import RoleRef, default_roles, roles_from_specs
from crossmatch.identity.scoring import score_pairs
from crossmatch.identity.summary import ResolveSummary
from crossmatch.memory import release_memory
from crossmatch.warehouse import fetch_one

log = logging.getLogger(__name__)


def resolve_identities(
    con: duckdb.DuckDBPyConnection,
    specs: Any = None,
    *,
    roles: list[RoleRef] | None = None,
    config: LinkageConfig | None = None,
    retrain: bool = False,
    full: bool = False,
    memory_limit: str | None = "2.5GB",
) -> ResolveSummary:
    """Run identity resolution in the warehouse ``con`` and publish its tables and views.

    ``specs``: parsed source specs (their ``persons:`` blocks); default: the contract's roles.
    ``retrain``: re-estimate the FS weights even when ``identity_params`` holds earlier ones
    (by default a warehouse that has been resolved before reuses its weights, so a night's run
    links new records against the same scale and person ids stay put).
    ``full``: resolve every mention again. By default a run is *incremental* when the warehouse
    was resolved before with the same configuration, roles and judgements: mentions whose
    (source, file, file hash, row, role) were resolved keep their link, and only new mentions
    are blocked and scored, against the person index and each other.
    ``memory_limit``: DuckDB's buffer pool during the run (beyond it the county-wide joins
    spill to disk), so that a 3-million-person county stays within a small machine's memory
    next to the Python side (3M persons: peak RSS 5.8 GB at 2.5GB, 7.7 GB at 4GB, same
    time); the connection's own setting is restored afterwards. None leaves the connection
    as it is.
    """
    if memory_limit is None:
        return _resolve(con, specs, roles=roles, config=config, retrain=retrain, full=full)
    before = fetch_one(con, "SELECT current_setting('memory_limit')")[0]
    con.execute(f"SET memory_limit = '{memory_limit}'")
    try:
        return _resolve(con, specs, roles=roles, config=config, retrain=retrain, full=full)
    finally:
        con.execute(f"SET memory_limit = '{before}'")


def _resolve(
    con: duckdb.DuckDBPyConnection,
    specs: Any,
    *,
    roles: list[RoleRef] | None,
    config: LinkageConfig | None,
    retrain: bool,
    full: bool,
) -> ResolveSummary:
    """The run itself (see :func:`resolve_identities`), step by step; each step's function
    says what it reads and writes. ``s.seconds`` holds each step's time."""
    s = ResolveSummary()
    t = time.perf_counter()
    roles = roles or (roles_from_specs(specs) if specs is not None else default_roles())
    config = config or default_config()
    ensure_judgement_table(con)
    if not full and not retrain and _unchanged(con, config, roles, s):
        s.seconds["check"] = time.perf_counter() - t
        return s
    run = _index(con, roles, config, s, retrain=retrain, full=full)
    _link_exact(con, config, run, s)
    _done(s, "exact", t)
    with _step(s, "handlers"):
        store_comention_links(con)
    with _step(s, "prepare"):
        probes = prepare_probes(con, run.n_idx, run.incremental)
    with _step(s, "blocking"):
        gl, gr, levels = _block(con, config, probes)
    with _step(s, "score"):
        training = run.model is None
        problem = local_problem(con, config, probes, gl, gr, run.n_idx, training)
        del gl, gr  # in ``problem`` as positions
        scored = score_pairs(
            con, config, run.model, probes, problem, levels, run.n_idx, run.incremental
        )
        del levels  # the levels live on in ``scored.pred``
        s.candidate_pairs = scored.candidate_pairs
    with _step(s, "cluster"):
        clusters = cluster_nodes(
            con, config, scored.linker, scored.pred, problem.nid, problem.nodes["reg_id"],
            problem.nodes["ext_id"], problem.must, problem.cannot, s,
        )  # fmt: skip
    with _step(s, "publish") as t:
        _record_judgement_conflicts(con, problem.must_rows, clusters.notes, s)
        _publish_nodes(
            con, problem.nodes, problem.nid, clusters.labels, scored.pred, clusters.used,
            problem.must, run.prev_pids, run.incremental,
        )  # fmt: skip
        _explain_pass(con)
        fitted = scored.linker.model
        # the node frames live on in DuckDB now (_grp, _idmap, identity_explanation): free the
        # Python side before the county-wide joins that publish, so that the two peaks do not
        # add up (at 3 million persons: GBs)
        del probes, problem, scored, clusters
        if s.mentions >= RELEASE_MEMORY_MENTIONS:
            release_memory()
        log.info("publish: node tables stored, Python side freed: %.1f s", time.perf_counter() - t)
        _publish(con, roles, s)
        _save_model(con, fitted, config)
        record_run(con, s, run.signature)
    return s


@dataclass
class _Run:
    """What the first step decided about tonight's run."""

    model: FSModel | None  # the warehouse's FS weights (None: train them tonight)
    signature: str  # configuration, roles and judgements (incremental._signature)
    incremental: bool  # only tonight's new mentions are resolved; the others keep their link
    prev_pids: dict[str, str]  # the previous run's person ids (incremental._previous_pids)
    n_idx: int  # person index nodes (``_idx``): the pandas-side nodes are numbered after them


def _index(
    con: duckdb.DuckDBPyConnection,
    roles: list[RoleRef],
    config: LinkageConfig,
    s: ResolveSummary,
    *,
    retrain: bool,
    full: bool,
) -> _Run:
    """Reads the ``src_*`` tables, ``identity_params`` and the previous run's tables; writes
    ``person_mention`` (:func:`build_mentions`), ``_new`` (the mentions resolved tonight), the
    ID index (``_id_node`` ...) and the person index (``_idx``); on an incremental run first a
    snapshot of the index (which rows changed tonight decides which kept links the change
    reaches). Sets ``s.mentions``, ``s.mode``, ``s.new_mentions``."""
    build_mentions(con, roles, s, full=full)
    s.mentions = fetch_one(con, "SELECT count(*) FROM person_mention")[0]
    model = None if retrain else _load_model(con, config)
    sig = _signature(con, config, roles)
    incremental = not full and model is not None and _can_increment(con, sig)
    s.mode = "incremental" if incremental else "full"
    _split_new(con, incremental)
    s.new_mentions = fetch_one(con, "SELECT count(*) FROM _new")[0]
    prev_pids = _previous_pids(con)
    build_id_index(con)
    if incremental:
        snapshot_index(con, s.mentions_kept)
    n_idx = _build_index(con, incremental=incremental and s.mentions_kept)
    return _Run(model, sig, incremental, prev_pids, n_idx)


def _link_exact(
    con: duckdb.DuckDBPyConnection, config: LinkageConfig, run: _Run, s: ResolveSummary
) -> None:
    """Writes ``_staff_link`` (every name-only staff mention's link tonight) and
    ``identity_conflict``; on an incremental run re-opens the kept links the change reaches
    (``incremental.reopen_handlers`` and ``incremental._reopen``, which read the index
    snapshot). Sets ``s.reopened`` and ``s.conflicts``."""
    store_staff_links(con)
    if run.incremental:
        reopen_handlers(con, "_staff_link")
        s.reopened = _reopen(con, config, s.mentions_kept)
    s.conflicts = store_conflicts(con, run.incremental)


def _block(
    con: duckdb.DuckDBPyConnection, config: LinkageConfig, probes: Probes
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Reads ``_loc``, ``_idx`` and the blocking keys (``fuzzy_model._sql_pairs``): the
    candidate pairs (global node numbers) and, when every comparison has a SQL form, their
    levels; no pairs when there is no probe."""
    if not probes.n_probes:
        return np.empty(0, np.int64), np.empty(0, np.int64), None
    return _sql_pairs(con, config)


@contextlib.contextmanager
def _step(s: ResolveSummary, name: str) -> Iterator[float]:
    """Times the block (it gets its start) as ``s.seconds[name]`` and logs it."""
    t = time.perf_counter()
    yield t
    _done(s, name, t)


def _done(s: ResolveSummary, name: str, t: float) -> None:
    """Records and logs the seconds since ``t`` as step ``name``."""
    s.seconds[name] = time.perf_counter() - t
    log.info("step %s: %.1f s", name, s.seconds[name])


#: A resolve of at least this many mentions hands its freed Python heap back before publishing.
#: Below it the frames are a few MB and a full collection (0.1-0.3 s in a process holding many
#: modules, e.g. a test worker) costs more than it frees.
RELEASE_MEMORY_MENTIONS = 200_000
