"""A schema-agnostic probabilistic linker: blocking -> comparisons -> FS/EM -> clustering.

Configured by data (:meth:`LinkageConfig.from_dict`), so the same engine runs on the county's
person mentions and on a standard benchmark such as FEBRL4. Records are rows of a pandas
DataFrame; the engine works on row positions and returns pairs and cluster labels.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from crossmatch.identity.cluster import constrained_components
from crossmatch.identity.comparisons import Comparison, comparison_from_dict
from crossmatch.identity.fellegi_sunter import FSModel, probability

log = logging.getLogger(__name__)

#: Most log2 units an edge's support may add (about a thousandfold): evidence, not proof.
MAX_SUPPORT = 10.0
#: Candidate edges weighed per ``edge_penalty`` call (whole probes: a slice may be longer by
#: its last probe's edges); the frames a penalty builds per edge are as big as one slice.
PENALTY_CHUNK_EDGES = 500_000


@dataclass
class LinkageConfig:
    """What to compare and how to find candidate pairs.

    - ``blocking_rules``: each rule is a tuple of columns that must all be equal (and non-null)
      for a pair to be scored; the candidate set is the union over rules.
    - ``probe_column``: optional boolean column; only rows where it is True are the left side of
      a pair (e.g. mentions without a valid ID probing the person index, or dataset A probing B).
    - ``source_column``: when set, pairs within one source are skipped (link-only).
    - ``exclusive``: columns a cluster may hold at most one distinct non-null value of.
    - ``threshold``: match probability at or above which a pair becomes a link.
    """

    unique_id: str
    comparisons: list[Comparison]
    blocking_rules: list[tuple[str, ...] | dict]
    exclusive: tuple[str, ...] = ()
    probe_column: str | None = None
    source_column: str | None = None
    threshold: float = 0.5
    # "blocked": score with the match share among blocked pairs (fine when nearly every blocked
    # pair is a match, as in FEBRL4); "population": with the chance that a random pair matches
    # (see :meth:`FSModel.set_population_prior`), right when blocking keeps many namesakes
    prior: str = "blocked"
    # a probe whose two best candidates carrying an exclusive value (e.g. two registered persons
    # both called 王伟 in the same village) are within this many log2 units links to neither:
    # a coin toss between two people is not a link (0 disables)
    ambiguity_margin: float = 0.0
    # True: a non-anchored node's link to a person (a node carrying an exclusive value) is
    # judged against all the persons it could be, see :meth:`Linker._pin_to_persons`
    # (replaces ambiguity_margin)
    candidate_posterior: bool = False
    # per node: the day (days since 1970-01-01) the person died, and the first day a probe's
    # records speak of (e.g. its earliest payment month); with both, a candidate who had died
    # before a probe's records is passed over when a living candidate fits on its own
    # (see :meth:`Linker._pin_to_persons`)
    death_column: str | None = None
    event_column: str | None = None
    # log2 units a candidate dead before the probe's records loses when a living one fits
    dead_penalty: float = 8.0
    max_block_size: int = 1000
    u_sample_pairs: int = 300_000
    seed: int = 1
    em_iterations: int = 50

    def rules(self) -> list[tuple[tuple[str, ...], int]]:
        """(columns, block size cap) per blocking rule; a rule may be a dict with its own cap."""
        out = []
        for r in self.blocking_rules:
            if isinstance(r, dict):
                out.append((tuple(r["columns"]), int(r.get("max_block_size", self.max_block_size))))
            else:
                out.append((tuple(r), self.max_block_size))
        return out

    @classmethod
    def load(cls, path: str | Path) -> LinkageConfig:
        """Read a YAML configuration (``data/persons.yaml``, ``data/febrl4.yaml``)."""
        return cls.from_dict(yaml.safe_load(Path(path).read_text("utf-8")))

    @classmethod
    def from_dict(cls, d: dict) -> LinkageConfig:
        d = dict(d)
        d["comparisons"] = [
            c if isinstance(c, Comparison) else comparison_from_dict(c) for c in d["comparisons"]
        ]
        d["blocking_rules"] = [
            dict(r) if isinstance(r, dict) else tuple(r) for r in d["blocking_rules"]
        ]
        d["exclusive"] = tuple(d.get("exclusive", ()))
        return cls(**d)


@dataclass
class Prediction:
    """Scored candidate pairs (row positions) with per-comparison levels and log2 weights."""

    left: np.ndarray
    right: np.ndarray
    levels: np.ndarray  # n x k int8
    weights: np.ndarray  # n x (k + n_tf) float: per comparison, then term-frequency terms
    weight_names: list[str]
    match_weight: np.ndarray
    probability: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame({"left": self.left, "right": self.right})
        for j, n in enumerate(self.weight_names):
            df[f"w_{n}"] = self.weights[:, j]
        df["match_weight"] = self.match_weight
        df["probability"] = self.probability
        return df


class Linker:
    """Fit FS weights on ``df`` and link its rows. ``df`` must have a default RangeIndex."""

    def __init__(
        self,
        df: pd.DataFrame,
        config: LinkageConfig,
        model: FSModel | None = None,
        tf: dict[str, pd.Series] | None = None,
    ):
        """``tf``: value -> share per term-frequency comparison key, when ``df`` is only the part
        of a larger population that takes part in the pairs (the warehouse resolver loads just
        the index nodes its probes were blocked with, but frequencies must be population-wide).
        """
        plain = isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1
        # no copy when the index is already 0..n-1 (a 3M-person county's nodes are GBs)
        self.df = df if plain else df.reset_index(drop=True)
        self.config = config
        comps = config.comparisons
        self.model = model or FSModel([c.key for c in comps], [c.n_levels for c in comps])
        self._tf: dict[str, pd.Series] = dict(tf or {})
        for c in comps:
            if c.tf and c.key not in self._tf:
                vc = self.df[c.column].value_counts(normalize=True, dropna=True)
                self._tf[c.key] = vc
        self.timings: dict[str, float] = {}
        # candidate edges weighed down as dead before the probe's records (last clustering)
        self.passed_over_dead = 0
        # optional (probe positions, candidate positions, pair weights) -> log2 units to take
        # off each probe-candidate edge before the candidate posterior (e.g. the candidate is
        # implausible for the mention's role: crossmatch.identity.role_profile); a negative
        # value is support (the record's date or place points to the candidate), at most
        # MAX_SUPPORT
        self.edge_penalty: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None
        self.weighed_down = 0  # candidate edges the edge_penalty weighed down (last clustering)
        # edges per edge_penalty call (whole probes each; see _penalty_by_probe)
        self.penalty_chunk_edges = PENALTY_CHUNK_EDGES
        self.supported = 0  # candidate edges it weighed up (negative penalty: support)

    # --- candidate pairs ----------------------------------------------------------------------
    def candidate_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        t0 = time.perf_counter()
        cfg = self.config
        n = len(self.df)
        probe = (
            self.df[cfg.probe_column].to_numpy(dtype=bool)
            if cfg.probe_column
            else np.ones(n, dtype=bool)
        )
        keys: list[np.ndarray] = []
        for rule, cap in cfg.rules():
            sub = self.df[list(rule)]
            ok = sub.notna().all(axis=1).to_numpy()
            if not ok.any():
                continue
            gid = np.full(n, -1, dtype=np.int64)
            gid[ok] = sub[ok].groupby(list(rule), sort=False, dropna=True).ngroup().to_numpy()
            sizes = np.bincount(gid[ok])
            big = sizes > cap
            if big.any():
                log.info(
                    "blocking rule %s: %d oversized blocks skipped (largest %d rows)",
                    "+".join(rule),
                    int(big.sum()),
                    int(sizes.max()),
                )
                ok &= ~np.isin(gid, np.flatnonzero(big))
            pos = np.flatnonzero(ok)
            left = pd.DataFrame({"g": gid[pos[probe[pos]]], "l": pos[probe[pos]]})
            right = pd.DataFrame({"g": gid[pos], "r": pos})
            m = left.merge(right, on="g")
            lp, rp = m["l"].to_numpy(), m["r"].to_numpy()
            keep = lp != rp
            # a probe-probe pair appears twice; keep one orientation
            keep &= ~(probe[rp] & (rp < lp))
            lp, rp = lp[keep], rp[keep]
            keys.append(np.minimum(lp, rp) * n + np.maximum(lp, rp))
        if not keys:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        allk = np.unique(np.concatenate(keys))
        left, right = allk // n, allk % n
        left, right = self._filter_pairs(left, right)
        self.timings["blocking"] = time.perf_counter() - t0
        log.info("%d candidate pairs", len(left))
        return left, right

    def _filter_pairs(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        keep = np.ones(len(left), dtype=bool)
        if cfg.source_column:
            s = self.df[cfg.source_column].to_numpy()
            keep &= s[left] != s[right]
        for col in cfg.exclusive:
            v = self.df[col].to_numpy(dtype=object, na_value=None)
            a, b = v[left], v[right]
            both = ~(pd.isna(a) | pd.isna(b))
            keep &= ~(both & (a != b))
        return left[keep], right[keep]

    # --- comparisons and weights ------------------------------------------------------------
    def compare(self, left: np.ndarray, right: np.ndarray, chunk: int = 1_000_000) -> np.ndarray:
        """Comparison levels (n x k int8), in chunks so that memory stays bounded on big runs
        (the aligned object columns of a chunk are the only per-pair Python objects alive).

        A comparison's level is a function of the two records' values in its columns only, so
        each distinct pair of values is compared once and the levels are spread back to every
        pair holding it: the 300,000 random pairs u is estimated from repeat a small county's
        few hundred names and villages many times over (seconds per resolve, now a fraction)."""
        g = np.empty((len(left), len(self.config.comparisons)), dtype=np.int8)
        for j, comp in enumerate(self.config.comparisons):
            cols = comp.columns()
            codes, first = _value_codes(self.df, cols)
            base = self.df[cols]
            n_codes = np.int64(len(first))
            for lo in range(0, len(left), chunk):
                hi = min(lo + chunk, len(left))
                key = codes[left[lo:hi]] * n_codes + codes[right[lo:hi]]
                uniq, inv = np.unique(key, return_inverse=True)
                ld = base.iloc[first[uniq // n_codes]].reset_index(drop=True)
                rd = base.iloc[first[uniq % n_codes]].reset_index(drop=True)
                g[lo:hi, j] = comp.levels(ld, rd)[inv.reshape(-1)]
        return g

    def _expected_matches(self, left: np.ndarray, right: np.ndarray, g: np.ndarray) -> float:
        """Matches among the blocked pairs: the EM posteriors summed per probe, at most one
        per probe (a mention is one person). Why capped: when most blocked pairs share a name,
        EM's posteriors are near 1 for every namesake, and the plain sum would grow with the
        blocks (the prior would then depend on how generous blocking is, not on the data)."""
        if len(left) == 0:
            return 0.0
        p = self.model._posterior(g)
        if self.config.probe_column:
            probe = self.df[self.config.probe_column].to_numpy(dtype=bool)
            side = np.where(probe[right], right, left)
        else:
            side = np.maximum(left, right)
        per = np.bincount(side, weights=p, minlength=len(self.df))
        return float(np.minimum(per, 1.0).sum())

    def possible_pairs(self) -> int:
        """How many pairs blocking chooses from: probe x every row (probe pairs once)."""
        n = len(self.df)
        p = int(self.df[self.config.probe_column].sum()) if self.config.probe_column else n
        return p * (n - p) + p * (p - 1) // 2

    def random_pairs(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.config.seed)
        n = len(self.df)
        a = rng.integers(0, n, size=k)
        b = rng.integers(0, n, size=k)
        keep = a != b
        a, b = a[keep], b[keep]
        if self.config.source_column:
            s = self.df[self.config.source_column].to_numpy()
            keep = s[a] != s[b]
            a, b = a[keep], b[keep]
        return a, b

    def train(
        self,
        left: np.ndarray,
        right: np.ndarray,
        g: np.ndarray | None = None,
        random_pairs: tuple[np.ndarray, np.ndarray] | None = None,
        n_possible: int | None = None,
        m_known: dict[int, np.ndarray] | None = None,
    ) -> FSModel:
        """u from random pairs, then m and lambda by EM over the blocked pairs.

        ``random_pairs``: row positions to estimate u from, when ``df`` is not a uniform sample
        of the population (default: uniform pairs over ``df``).
        """
        t0 = time.perf_counter()
        ra, rb = random_pairs or self.random_pairs(self.config.u_sample_pairs)
        self.model.estimate_u(self.compare(ra, rb))
        if g is None:
            g = self.compare(left, right)
        for j, m in (m_known or {}).items():
            self.model.m[j] = np.asarray(m, dtype=float)
        self.model.em(g, max_iter=self.config.em_iterations, fixed=frozenset(m_known or {}))
        if self.config.prior == "population":
            n_probes = (
                int(self.df[self.config.probe_column].sum())
                if self.config.probe_column
                else len(self.df)
            )
            self.model.set_population_prior(
                self._expected_matches(left, right, g),
                n_possible or self.possible_pairs(),
                n_probes,
            )
        self.timings["training"] = time.perf_counter() - t0
        return self.model

    def score(self, left: np.ndarray, right: np.ndarray, g: np.ndarray) -> Prediction:
        w = self.model.bayes_log2(g)
        for j, comp in enumerate(self.config.comparisons):
            if not comp.monotone:
                continue
            # a closer agreement is never weaker evidence: m of a rare level is floored while
            # its u can be tiny, and a look-alike name would otherwise outweigh an exact one
            bf = np.log2(self.model.m[j] / self.model.u[j])
            capped = np.minimum.accumulate(bf[::-1])[::-1]
            ok = g[:, j] >= 0
            w[ok, j] = capped[g[ok, j]]
        names = list(self.model.names)
        extra = []
        for j, comp in enumerate(self.config.comparisons):
            if not comp.tf:
                continue
            top = g[:, j] == comp.n_levels - 1
            vals = self.df[comp.column].to_numpy(dtype=object)[left]
            freq = pd.Series(vals).map(self._tf[comp.key]).fillna(0).to_numpy(dtype=float)
            adj = np.zeros(len(left))
            u_top = float(self.model.u[j][-1])
            adj[top] = np.log2(u_top / np.maximum(freq[top], 1e-9))
            # the TF term refines the average exact-level weight, it must not flip its sign
            adj[top] = np.maximum(adj[top], -w[top, j] + 1.0)
            # a lower level is no stronger than an exact agreement on the more common of the
            # two values would be (a look-alike of 王伟 weighs no more than 王伟 = 王伟)
            low = (g[:, j] >= 0) & ~top
            if low.any():
                rvals = self.df[comp.column].to_numpy(dtype=object)[right]
                rfreq = pd.Series(rvals).map(self._tf[comp.key]).fillna(0).to_numpy(dtype=float)
                fmax = np.maximum(freq, rfreq)[low]
                w_top = float(np.log2(self.model.m[j][-1] / self.model.u[j][-1]))
                cap = w_top + np.minimum(np.log2(u_top / np.maximum(fmax, 1e-9)), 0.0)
                w[low, j] = np.minimum(w[low, j], np.maximum(cap, 1.0))
            extra.append(adj)
            names.append(f"tf_{comp.key}")
        if extra:
            w = np.column_stack([w, *extra])
        mw = w.sum(axis=1) + self.model.prior_log2()
        return Prediction(left, right, g, w, names, mw, probability(mw))

    def predict(self, train: bool = True) -> Prediction:
        left, right = self.candidate_pairs()
        t0 = time.perf_counter()
        g = self.compare(left, right)
        self.timings["comparing"] = time.perf_counter() - t0
        if train:
            self.train(left, right, g)
        pred = self.score(left, right, g)
        pred.timings = dict(self.timings)
        return pred

    def _anchors(self) -> tuple[np.ndarray, np.ndarray]:
        """Per node: ``"col=value"`` of its first exclusive value (or None), and whether it
        counts as a rival person (anchored and not a node kept from an earlier night)."""
        anchor = np.full(len(self.df), None, dtype=object)
        for c in reversed(self.config.exclusive):
            v = self.df[c].to_numpy(dtype=object, na_value=None)
            has = ~pd.isna(v)
            anchor[has] = [f"{c}={x}" for x in v[has]]
        anchored = anchor != None  # noqa: E711
        if "_kept" in self.df:
            # mentions linked on an earlier night stand for the evidence they are, like the
            # probes of a full run: they do not count as rival persons
            anchored &= ~self.df["_kept"].to_numpy(dtype=bool)
        return anchor, anchored

    def _none_weight(self) -> float:
        """Weight of "none of the candidates" next to the candidates' odds O_i.

        With the population prior, O_i = (pi / N) x BF_i, and "none" collects the probes
        whose person is not in the index (1 - pi) and those whose match blocking missed
        (about 1%). Without an estimate of pi (other priors): 1, the odds form."""
        share = self.model.match_share
        if self.config.prior != "population" or share is None:
            return 1.0
        return float(np.clip(1.0 - share, 0.01, 1.0) + 0.01)

    def _pin_to_persons(
        self, pred: Prediction, sel: np.ndarray, excl: list[np.ndarray]
    ) -> np.ndarray:
        """Decide each non-anchored node's person among *all* its candidate persons.

        Why: the pair weight says how likely this one pair matches, but a probe called 王东波
        in a village where one 王东波 is registered and another lives in the next village has
        two candidates, and at most one is right. With per-pair odds O_i (population prior
        included) the probability that candidate i is the one is O_i / (z + sum_j O_j), z the
        weight of "none of them" (:meth:`_none_weight`). That probability replaces the pair's
        on every node-to-person edge. Then the node is *pinned* for clustering: to the person
        it links to (it takes that exclusive value), or, when it is probably one of its
        candidates but none reaches the threshold, to a marker of that candidate set, so that
        no chain through another probe can carry it into any of those persons (a coin toss
        between two people is not a link). Modifies ``pred.probability`` and ``excl`` in
        place; returns the new edge selection.
        """
        anchor, anchored = self._anchors()
        idx = np.flatnonzero(anchored[pred.left] != anchored[pred.right])
        if len(idx) == 0:
            return sel
        akey, members = self._candidate_persons(pred, sel, anchor, anchored)
        l_anch = anchored[pred.left[idx]]
        probe = np.where(l_anch, pred.right[idx], pred.left[idx])
        other = np.where(l_anch, pred.left[idx], pred.right[idx])
        e = pd.DataFrame({"e": idx, "probe": probe, "a": akey[other], "w": pred.match_weight[idx]})
        sel = sel.copy()
        dead = self._dead_before(probe, other, e["w"].to_numpy())
        if dead.any():
            e.loc[dead, "w"] -= self.config.dead_penalty
        if self.edge_penalty is not None:
            # negative: support (evidence pointing to the candidate, at most MAX_SUPPORT)
            pen = np.maximum(self._penalty_by_probe(probe, other, e["w"].to_numpy()), -MAX_SUPPORT)
            self.weighed_down = int((pen > 0).sum())
            self.supported = int((pen < 0).sum())
            e["w"] -= pen
        best = e.groupby(["probe", "a"], sort=False)["w"].max().reset_index()
        best["o"] = np.exp2(np.clip(best["w"].to_numpy(), -60, 60))
        tot = best.groupby("probe")["o"].transform("sum")
        best["p"] = best["o"] / (self._none_weight() + tot)
        e = e.merge(best[["probe", "a", "p"]], on=["probe", "a"], how="left")
        thr = self.config.threshold
        pred.probability[e["e"].to_numpy()] = e["p"].to_numpy()
        sel[e["e"].to_numpy()] = e["p"].to_numpy() >= thr
        # pins
        top = best.sort_values("p", ascending=False).drop_duplicates("probe")
        linked = top[top["p"] >= thr]
        cols = list(self.config.exclusive)
        for key, pr in zip(linked["a"], linked["probe"], strict=True):
            for k in members.get(key, (key,)):
                c, v = k.split("=", 1)
                excl[cols.index(c)][pr] = v
        mass = best.groupby("probe")["p"].sum()
        unsure = mass.index[(mass >= 0.5).to_numpy()].difference(linked["probe"])
        if len(unsure):
            cand = best[best["probe"].isin(unsure) & (best["p"] >= 0.05)]
            marker = cand.sort_values("a").groupby("probe")["a"].agg(lambda x: "|".join(x))
            for pr, m in marker.items():
                excl[0][pr] = "ambiguous:" + m
        return sel

    def _penalty_by_probe(self, probe: np.ndarray, other: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``edge_penalty`` over the edges, a slice of whole probes at a time (about
        :data:`PENALTY_CHUNK_EDGES` edges each), scattered back in the edges' order.

        Why: a penalty weighs each edge against the other candidates of its probe only (every
        one groups by probe), so slicing at probe boundaries gives the same penalties, while the
        frames it builds per edge (a mention's profile rows joined to a candidate's facts,
        object columns) are as big as one slice instead of the county's every edge (at a million
        persons the single call peaked at 6 GB)."""
        assert self.edge_penalty is not None
        n = len(probe)
        chunk = max(int(self.penalty_chunk_edges), 1)
        if n <= chunk:
            return np.asarray(self.edge_penalty(probe, other, w), dtype=float)
        order = np.argsort(probe, kind="stable")
        sp = probe[order]
        out = np.empty(n, dtype=float)
        lo = 0
        while lo < n:
            hi = min(lo + chunk, n)
            if hi < n:  # the last probe of the slice whole
                hi = int(np.searchsorted(sp, sp[hi - 1], side="right"))
            at = order[lo:hi]
            out[at] = self.edge_penalty(probe[at], other[at], w[at])
            lo = hi
        return out

    def _dead_before(self, probe: np.ndarray, other: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Per probe-candidate edge: this candidate had died before the probe's records while
        a living candidate of the same probe fits on its own (pair weight at the link
        threshold or above). Such a candidate's weight loses ``dead_penalty`` log2 units.

        Why: an ID-less payment to 王伟 in the month after one 王伟 died, when another 王伟
        fits as well, is most likely the living one's; linked to the dead namesake it would
        make two false clues (a payment after death, and a living payee left out). Why a
        penalty, not a veto: a payment that goes on after death into the dead person's own
        account (name, village and account agree) is what the deceased-recipient rule looks
        for, and a look-alike living neighbour must not take it. Without a living candidate
        that fits, the dead one is weighed as it is."""
        cfg = self.config
        n = len(probe)
        if not (cfg.death_column and cfg.event_column) or n == 0:
            return np.zeros(n, dtype=bool)
        if cfg.death_column not in self.df or cfg.event_column not in self.df:
            return np.zeros(n, dtype=bool)
        death = self.df[cfg.death_column].to_numpy(dtype=float, na_value=np.nan)
        event = self.df[cfg.event_column].to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            dead = death[other] < event[probe]
        if not dead.any():
            return dead
        thr = min(max(self.config.threshold, 1e-9), 1 - 1e-9)
        fits = ~dead & (w >= np.log2(thr / (1 - thr)))
        live = pd.Series(fits).groupby(probe).transform("any").to_numpy(dtype=bool)
        out = dead & live
        self.passed_over_dead = int(out.sum())
        return out

    def _candidate_persons(
        self, pred: Prediction, sel: np.ndarray, anchor: np.ndarray, anchored: np.ndarray
    ) -> tuple[np.ndarray, dict[str, tuple[str, ...]]]:
        """Per node, the key of the candidate person it stands for, and the anchors of each
        key that joins two nodes.

        Why: one person may be two anchored nodes linked to each other, e.g. a registry row
        whose ID has a bad check digit (anchored by its row) and its valid ID written in
        other sources (an outside ID). Counted as two candidates, they would split a probe's
        probability between them and the probe would link to neither. Two anchored nodes
        with anchors of *different* exclusive columns joined by a selected edge are one
        candidate (each node with its best such partner only, so a candidate never holds two
        values of one column); a probe linked to it is pinned to both anchors."""
        akey = anchor.copy()
        members: dict[str, tuple[str, ...]] = {}
        aa = np.flatnonzero(sel & anchored[pred.left] & anchored[pred.right])
        if len(aa) == 0:
            return akey, members
        cols = list(self.config.exclusive)
        rank = {c: i for i, c in enumerate(cols)}

        def col_rank(nodes: np.ndarray) -> np.ndarray:
            return np.array([rank[str(a).split("=", 1)[0]] for a in anchor[nodes]], dtype=int)

        lo, hi = pred.left[aa], pred.right[aa]
        rl, rh = col_rank(lo), col_rank(hi)
        keep = rl != rh
        first = np.where(rl < rh, lo, hi)[keep]  # the node anchored on the earlier column
        second = np.where(rl < rh, hi, lo)[keep]
        pairs = pd.DataFrame({"x": first, "y": second, "w": pred.match_weight[aa][keep]})
        pairs = pairs.sort_values(["w", "x", "y"], ascending=[False, True, True])
        pairs = pairs.drop_duplicates("x").drop_duplicates("y")
        pairs = pairs[~pairs["y"].isin(pairs["x"])]
        for x, y in zip(pairs["x"], pairs["y"], strict=True):
            akey[y] = anchor[x]
            members[anchor[x]] = (anchor[x], anchor[y])
        return akey, members

    def _ambiguous(self, pred: Prediction, sel: np.ndarray) -> np.ndarray:
        """Edges from a non-anchored node to anchored nodes where the best two *different*
        anchors (several nodes may carry the same person) are too close to call. A boolean
        ``_kept`` column in ``df`` marks nodes that are anchored but not rivals."""
        anchor, anchored = self._anchors()
        idx = np.flatnonzero(sel & (anchored[pred.left] != anchored[pred.right]))
        if len(idx) == 0:
            return np.zeros(len(sel), dtype=bool)
        l_anch = anchored[pred.left[idx]]
        probe = np.where(l_anch, pred.right[idx], pred.left[idx])
        other = np.where(l_anch, pred.left[idx], pred.right[idx])
        e = pd.DataFrame(
            {"e": idx, "probe": probe, "a": anchor[other], "w": pred.match_weight[idx]}
        )
        best = e.groupby(["probe", "a"], sort=False)["w"].max().reset_index()
        best = best.sort_values(["probe", "w"], ascending=[True, False])
        first = best.groupby("probe")["w"].first()
        second = best.groupby("probe")["w"].nth(1)
        second = pd.Series(second.to_numpy(), index=best.loc[second.index, "probe"].to_numpy())
        gap = first - second.reindex(first.index).fillna(-np.inf)
        amb_probe = gap.index[(gap < self.config.ambiguity_margin).to_numpy()]
        out = np.zeros(len(sel), dtype=bool)
        out[e.loc[e["probe"].isin(amb_probe), "e"].to_numpy()] = True
        return out

    def cluster(
        self,
        pred: Prediction,
        must_link: list[tuple[int, int]] | list[tuple[int, int, bool]] | None = None,
        cannot_link: list[tuple[int, int]] | None = None,
        notes: list[tuple[int, str]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Cluster label per row and, per predicted pair, whether it was used as a link.

        ``must_link`` entries may carry a third item, True to let that judgement join two
        different exclusive values (two registry IDs); ``notes`` receives what happened to
        such judgements (see :func:`constrained_components`)."""
        sel = pred.probability >= self.config.threshold
        # copies: _pin_to_persons writes pins into them, and pandas 3 (copy-on-write) hands out
        # read-only views of a frame's columns
        excl = [
            np.array(self.df[c].to_numpy(dtype=object, na_value=None), dtype=object, copy=True)
            for c in self.config.exclusive
        ]
        if self.config.candidate_posterior and self.config.exclusive:
            sel = self._pin_to_persons(pred, sel, excl)
        elif self.config.ambiguity_margin > 0 and self.config.exclusive:
            sel &= ~self._ambiguous(pred, sel)
        labels, used_sel = constrained_components(
            len(self.df),
            pred.left[sel],
            pred.right[sel],
            pred.match_weight[sel],
            excl,
            must_link,
            cannot_link,
            notes,
        )
        used = np.zeros(len(pred.left), dtype=bool)
        used[np.flatnonzero(sel)[used_sel]] = True
        return labels, used


def _value_codes(df: pd.DataFrame, cols: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """One integer per row, equal where the rows hold equal values in ``cols`` (every null
    alike), and the position of a row holding each code's values."""
    code: np.ndarray | None = None
    for c in cols:
        k, _ = pd.factorize(df[c], use_na_sentinel=False)
        k = k.astype(np.int64)
        code = k if code is None else pd.factorize(code * (int(k.max(initial=0)) + 1) + k)[0]
    if code is None:
        return np.zeros(len(df), dtype=np.int64), np.zeros(1, dtype=np.int64)
    _, first = np.unique(code, return_index=True)
    return code.astype(np.int64), first.astype(np.int64)
