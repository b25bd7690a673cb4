"""Constrained clustering: connected components over strong links, never merging two persons
that carry different valid IDs (or that an analyst said are different).

Edges are taken strongest first (Kruskal order) and a merge is refused when the two components
hold different values of an *exclusive* attribute (e.g. a valid ID number) or a cannot-link pair.
So when a chain of links would join two IDs, the weakest edge on the chain is the one cut.
Must-links (analyst judgements) are applied before anything else. A must-link that would put two
different exclusive values (two registry IDs) in one person is honoured only when it says so
explicitly (an analyst who has seen the papers: one person registered twice); otherwise it is
refused. Either way the outcome is reported through ``notes`` so the caller can record it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


class _DSU:
    def __init__(self, n: int, exclusive: list[np.ndarray]):
        self.parent = np.arange(n)
        # per exclusive attribute: root -> the component's value (at most one by construction)
        self.excl: list[dict[int, object]] = [{} for _ in exclusive]
        for k, arr in enumerate(exclusive):
            d = self.excl[k]
            for i in np.flatnonzero(~_isnull(arr)):
                d[int(i)] = arr[i]
        self.cannot: dict[int, set[int]] = {}

    def find(self, x: int) -> int:
        p = self.parent
        root = x
        while p[root] != root:
            root = p[root]
        while p[x] != root:
            p[x], x = root, p[x]
        return int(root)

    def conflict(self, ra: int, rb: int) -> bool:
        for d in self.excl:
            va, vb = d.get(ra), d.get(rb)
            if va is not None and vb is not None and va != vb:
                return True
        ca, cb = self.cannot.get(ra), self.cannot.get(rb)
        # a cannot-link pair k tags both of its nodes with k: two components sharing a tag
        # would put both sides of the pair in one person
        return bool(ca and cb and ca & cb)

    def union(self, ra: int, rb: int) -> None:
        if ra == rb:
            return
        self.parent[rb] = ra
        for d in self.excl:
            if rb in d:
                vb = d.pop(rb)
                d.setdefault(ra, vb)
        if rb in self.cannot:
            self.cannot.setdefault(ra, set()).update(self.cannot.pop(rb))


def constrained_components(
    n: int,
    left: np.ndarray,
    right: np.ndarray,
    weight: np.ndarray,
    exclusive: list[np.ndarray] | None = None,
    must_link: list[tuple[int, int]] | list[tuple[int, int, bool]] | None = None,
    cannot_link: list[tuple[int, int]] | None = None,
    notes: list[tuple[int, str]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster label per node (the smallest node index of its cluster) and, per edge, whether it
    was used (True) or cut (False). Edges must already be above the link threshold.

    ``must_link``: (a, b) or (a, b, merge_exclusive). ``notes`` (if given) receives
    ``(index into must_link, "merged_exclusive" | "refused_exclusive")`` for every must-link
    whose two sides held different exclusive values.

    Why two stages: plain connected components (scipy, vectorised) settle every component that
    holds at most one value of each exclusive attribute and no judged node, which is nearly all
    of them; there every edge counts as used. Only the rest (two IDs reachable from each other,
    analyst judgements) go through the edge-by-edge Kruskal pass, whose Python loop would cost
    minutes over the millions of links of a 3-million-person county.
    """
    exclusive = exclusive or []
    must_link = must_link or []
    cannot_link = cannot_link or []
    left = np.asarray(left, dtype=np.int64)
    right = np.asarray(right, dtype=np.int64)
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    n_comp, comp = connected_components(graph, directed=False)
    bad = np.zeros(n_comp, dtype=bool)
    for arr in exclusive:
        has = np.flatnonzero(~_isnull(arr))
        if len(has) == 0:
            continue
        codes = _codes(arr[has])
        pairs = np.unique(np.column_stack([comp[has], codes]), axis=0)
        bad |= np.bincount(pairs[:, 0], minlength=n_comp) > 1
    judged = np.array([x for p in [*must_link, *cannot_link] for x in p[:2]], dtype=np.int64)
    bad[comp[judged]] = True
    label = np.full(n_comp, n, dtype=np.int64)
    np.minimum.at(label, comp, np.arange(n))
    label = label[comp]
    used = ~bad[comp[left]] if len(left) else np.zeros(0, dtype=bool)
    sub = np.flatnonzero(bad[comp])
    if len(sub):
        remap = np.full(n, -1, dtype=np.int64)
        remap[sub] = np.arange(len(sub))
        e = np.flatnonzero(bad[comp[left]])
        sub_label, sub_used = _kruskal(
            len(sub),
            remap[left[e]],
            remap[right[e]],
            weight[e],
            [np.asarray(a)[sub] for a in exclusive],
            [(int(remap[m[0]]), int(remap[m[1]]), *m[2:]) for m in must_link],
            [(int(remap[a]), int(remap[b])) for a, b in cannot_link],
            notes,
        )
        label[sub] = sub[sub_label]
        used[e] = sub_used
    return label, used


def _codes(values: np.ndarray) -> np.ndarray:
    """Integer code per value (equal values, equal codes)."""
    return pd.factorize(pd.Series(values, dtype=object))[0].astype(np.int64)


def _kruskal(
    n: int,
    left: np.ndarray,
    right: np.ndarray,
    weight: np.ndarray,
    exclusive: list[np.ndarray] | None = None,
    must_link: list[tuple[int, int]] | list[tuple[int, int, bool]] | None = None,
    cannot_link: list[tuple[int, int]] | None = None,
    notes: list[tuple[int, str]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster label per node (the smallest node index of its cluster) and, per edge, whether it
    was used (True) or cut/redundant (False). Edges must already be above the link threshold.

    ``must_link``: (a, b) or (a, b, merge_exclusive). ``notes`` (if given) receives
    ``(index into must_link, "merged_exclusive" | "refused_exclusive")`` for every must-link
    whose two sides held different exclusive values.
    """
    dsu = _DSU(n, exclusive or [])
    for k, (a, b) in enumerate(cannot_link or []):
        dsu.cannot.setdefault(int(a), set()).add(k)
        dsu.cannot.setdefault(int(b), set()).add(k)
    for k, ml in enumerate(must_link or []):
        a, b = ml[0], ml[1]
        explicit = bool(ml[2]) if len(ml) > 2 else False
        ra, rb = dsu.find(int(a)), dsu.find(int(b))
        if ra != rb and dsu.conflict(ra, rb):
            if notes is not None:
                notes.append((k, "merged_exclusive" if explicit else "refused_exclusive"))
            if not explicit:
                continue
        dsu.union(ra, rb)
    used = np.zeros(len(left), dtype=bool)
    order = np.argsort(-weight, kind="stable")
    for e in order:
        ra, rb = dsu.find(int(left[e])), dsu.find(int(right[e]))
        if ra == rb or dsu.conflict(ra, rb):
            continue
        dsu.union(ra, rb)
        used[e] = True
    roots = np.fromiter((dsu.find(i) for i in range(n)), dtype=np.int64, count=n)
    # label = smallest member, independent of union order
    label = np.full(n, n, dtype=np.int64)
    np.minimum.at(label, roots, np.arange(n))
    return label[roots], used


def _isnull(arr: np.ndarray) -> np.ndarray:
    return np.asarray(pd.isna(arr))
