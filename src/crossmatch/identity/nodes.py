"""Stage 4a of identity resolution: the node tables the fuzzy path scores and clusters.

A *node* is one candidate person: the person index's rows (``_idx``, numbered ``0 .. n_idx-1``)
and, after them, the pandas-side nodes (``_loc``): one per fuzzy-path group of tonight's
mentions (a *probe*) and, on an incremental run, one per kept person's attribute set.
:func:`prepare_probes` builds the pandas-side nodes; :func:`local_problem` loads the index
nodes the candidate pairs and judgements touch and puts pairs and judgements in positions of
that one frame.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from crossmatch.identity.clustering import _fuzzy_pool, _loc_nid, _registry_anchor, once_pairs
from crossmatch.identity.fuzzy_model import _KEYS, _U_SAMPLE_NODES, _node_frame
from crossmatch.identity.incremental import _previous_persons
from crossmatch.identity.linker import LinkageConfig
from crossmatch.identity.mentions import _store

log = logging.getLogger(__name__)

_MENTION = ["source", "file", "row", "role"]


@dataclass
class Probes:
    """Tonight's pandas-side nodes and the analysts' judgements they are constrained by."""

    judgements: pd.DataFrame  # identity_judgement: a_*/b_* mention keys, same, merge_ids, analyst
    judged: pd.DataFrame  # every mention a judgement names (source, file, row, role)
    loc: pd.DataFrame  # the pandas-side nodes, numbered from n_idx on (column ``node``)
    n_probes: int  # how many of them are fuzzy-path groups (probes); the rest are kept persons


@dataclass
class LocalProblem:
    """What scoring and clustering see: the loaded nodes, the candidate pairs and the
    judgements, in row positions of ``nodes``."""

    nodes: pd.DataFrame  # index nodes touched, then the pandas-side nodes; sorted by ``node``
    nid: np.ndarray  # stable node id per row: ``I:`` + ID, ``G:`` + group key, ``K:`` + kept key
    glob: np.ndarray  # global node number per row
    left: np.ndarray  # candidate pairs, positions
    right: np.ndarray
    must: list[tuple[int, int, bool]]  # same-person judgements (positions, merge_ids)
    cannot: list[tuple[int, int]]  # different-person judgements and once-listed namesakes
    must_rows: list[Any]  # the judgement row behind each ``must`` entry
    sample: np.ndarray | None  # index nodes sampled for training the weights, else None


def read_judgements(con: duckdb.DuckDBPyConnection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reads ``identity_judgement``; returns the judgements and every mention they name."""
    jm = con.execute(
        "SELECT a_source, a_file, a_row, a_role, b_source, b_file, b_row, b_role, same, "
        "coalesce(merge_ids, false) AS merge_ids, analyst FROM identity_judgement"
    ).df()
    judged = pd.concat(
        [
            jm[[f"{x}_source", f"{x}_file", f"{x}_row", f"{x}_role"]].set_axis(_MENTION, axis=1)
            for x in ("a", "b")
        ],
        ignore_index=True,
    ).astype({"row": "int32"})
    return jm, judged


def prepare_probes(con: duckdb.DuckDBPyConnection, n_idx: int, incremental: bool) -> Probes:
    """Reads ``identity_judgement``, the fuzzy-path mentions (``clustering._fuzzy_pool``:
    writes ``_fz``) and, on an incremental run, the kept persons
    (``incremental._previous_persons``); writes the temp table ``_loc``: the pandas-side nodes,
    numbered from ``n_idx`` on, with their blocking keys and anchors."""
    jm, judged = read_judgements(con)
    groups = _fuzzy_pool(con, judged)
    prev = (
        _previous_persons(con)
        if incremental
        else pd.DataFrame(columns=["reg_id", "ext_id", "prev_pid", "kept_key"])
    )
    loc = pd.concat(
        [
            groups.drop(columns="registry").assign(
                reg_id=_registry_anchor(groups), ext_id=None, prev_pid=None, is_probe=True
            ),
            prev.assign(conflict_id=None, gkey=None, is_probe=False),
        ],
        ignore_index=True,
    )
    for c in ("name", "idc", "village_code", "acct", "conflict_id", "prev_pid", "gkey", "kept_key"):
        loc[c] = loc[c].astype(object) if c in loc else None
    for c in ("death_day", "first_day"):
        loc[c] = loc[c].astype(float) if c in loc else np.nan
    loc = _node_frame(loc)
    loc.insert(0, "node", np.arange(n_idx, n_idx + len(loc), dtype=np.int64))
    _store(
        con,
        "_loc",
        loc[["node", "is_probe", *_KEYS, "reg_id", "ext_id", "prev_pid", "conflict_id"]],
        temp=True,
    )
    return Probes(jm, judged, loc, len(groups))


class _NodeOf:
    """The global node of a mention: its fuzzy group's, else its kept person's, else its ID's."""

    def __init__(self, con: duckdb.DuckDBPyConnection, loc: pd.DataFrame) -> None:
        self.con = con
        self.of_gkey = dict(zip(loc["gkey"], loc["node"], strict=True))
        self.of_prev = dict(
            zip(loc["prev_pid"].dropna(), loc["node"][loc["prev_pid"].notna()], strict=True)
        )

    def __call__(self, key: tuple[str, str, int, str]) -> int | None:
        r = self.con.execute(
            """SELECT f.gkey, k.person_id, m.id FROM person_mention m
            LEFT JOIN _fz f USING (source, file, row, role)
            LEFT JOIN _kept k USING (source, file, row, role)
            WHERE m.source = ? AND m.file = ? AND m.row = ? AND m.role = ?""",
            [key[0], key[1], int(key[2]), key[3]],
        ).fetchone()
        if r is None:
            return None
        gkey, kept_pid, mid = r
        if gkey is not None:
            return self.of_gkey.get(gkey)
        pid = kept_pid or mid
        if pid is None:
            return None
        if pid in self.of_prev:
            return int(self.of_prev[pid])
        hit = self.con.execute("SELECT node FROM _id_node WHERE id = ?", [pid]).fetchone()
        return int(hit[0]) if hit else None


def judgement_links(
    con: duckdb.DuckDBPyConnection, probes: Probes
) -> tuple[list[tuple[int, int, bool]], list[tuple[int, int]], list[Any]]:
    """Reads ``person_mention``, ``_fz``, ``_kept`` and ``_id_node``; returns the must-links
    (global nodes, merge_ids), the cannot-links and the judgement row of each must-link. The
    ID nodes a judgement names must be loaded; two ID-less rows of a file that lists each
    person once are two people (``clustering.once_pairs``)."""
    node_of = _NodeOf(con, probes.loc)
    must: list[tuple[int, int, bool]] = []
    cannot: list[tuple[int, int]] = []
    must_rows: list[Any] = []
    for j in probes.judgements.itertuples(index=False):
        a = node_of((j.a_source, j.a_file, j.a_row, j.a_role))
        b = node_of((j.b_source, j.b_file, j.b_row, j.b_role))
        if a is None or b is None:
            log.warning("judgement refers to a mention not in this run: %s", j)
            continue
        if j.same:
            must.append((a, b, bool(j.merge_ids)))
            must_rows.append(j)
        else:
            cannot.append((a, b))
    cannot += [(node_of.of_gkey[a], node_of.of_gkey[b]) for a, b in once_pairs(con)]
    return must, cannot, must_rows


def _columns_loaded(config: LinkageConfig) -> list[str]:
    """Only the columns the comparisons, clustering and publishing read (the blocking keys
    stay in DuckDB): at 3 million persons every object column costs hundreds of MB."""
    keep = ["node", "is_probe", "name", "idc", "reg_id", "ext_id", "prev_pid", "conflict_id"]
    keep += [c for comp in config.comparisons for c in comp.columns()]
    keep += list(config.exclusive)
    keep += [c for c in (config.death_column, config.event_column) if c]
    return list(dict.fromkeys(keep))


def local_problem(
    con: duckdb.DuckDBPyConnection,
    config: LinkageConfig,
    probes: Probes,
    gl: np.ndarray,
    gr: np.ndarray,
    n_idx: int,
    training: bool,
) -> LocalProblem:
    """Reads ``_idx`` (the index nodes the pairs ``gl``/``gr`` and the judgements touch, plus,
    when ``training``, a repeatable sample of them) and the tables of :func:`judgement_links`;
    writes the temp table ``_need`` (the index nodes loaded). Returns the local problem:
    probes, previous persons and the index nodes they touch, in positions."""
    must, cannot, must_rows = judgement_links(con, probes)
    judged_nodes = np.array([x for p in [*must, *cannot] for x in p[:2]], dtype=np.int64)
    need = np.unique(np.concatenate([gl, gr, judged_nodes]))
    need = need[need < n_idx]
    sample = None
    if training:
        sample = con.execute(
            f"SELECT node FROM _idx USING SAMPLE reservoir({_U_SAMPLE_NODES} ROWS) REPEATABLE (1)"
        ).fetchnumpy()["node"]
        need = np.union1d(need, np.asarray(sample, dtype=np.int64))
    _store(con, "_need", pd.DataFrame({"node": need}), temp=True)
    keep = _columns_loaded(config)
    idx_local = con.execute(
        f"SELECT {', '.join(keep)} FROM _idx SEMI JOIN _need USING (node) ORDER BY node"
    ).df()
    loc = probes.loc
    nodes = pd.concat([idx_local, loc[keep]], ignore_index=True)
    nodes["_kept"] = ~nodes["is_probe"].astype(bool) & (nodes["node"] >= n_idx)
    glob = nodes["node"].to_numpy(dtype=np.int64)
    nid = np.concatenate([("I:" + idx_local["idc"]).to_numpy(dtype=object), _loc_nid(loc)]).astype(
        object
    )
    del idx_local  # its rows live on in ``nodes``

    def pos(x: int) -> int:
        return int(np.searchsorted(glob, np.array([x]))[0])

    return LocalProblem(
        nodes=nodes,
        nid=nid,
        glob=glob,
        left=np.searchsorted(glob, gl),
        right=np.searchsorted(glob, gr),
        must=[(pos(a), pos(b), m) for a, b, m in must],
        cannot=[(pos(a), pos(b)) for a, b in cannot],
        must_rows=must_rows,
        sample=sample,
    )
