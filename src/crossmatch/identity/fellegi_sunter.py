"""Fellegi-Sunter match weights estimated without labels (expectation-maximisation).

The way Splink does it: u probabilities (how often a level occurs among non-matches) come from
comparing random record pairs, which are almost all non-matches; m probabilities (how often a level
occurs among matches) and the match share lambda come from EM over the blocked pairs, with u held
fixed. EM runs on the distinct comparison vectors with their counts, so it costs milliseconds even
for millions of pairs. Term-frequency adjustment replaces the average u of the exact level by the
frequency of the actual value, so that agreeing on 王伟 counts for less than agreeing on 欧阳翠花.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

_EPS = 1e-6


@dataclass
class FSModel:
    """m/u per comparison level (index = level) and the prior match share among scored pairs."""

    names: list[str]
    n_levels: list[int]
    m: list[np.ndarray] = field(default_factory=list)
    u: list[np.ndarray] = field(default_factory=list)
    lam: float = 0.1
    iterations: int = 0
    # prior match probability of a *scored* pair when it differs from ``lam`` (the match share
    # among blocked pairs, which EM needs); see :meth:`set_population_prior`
    lam_prior: float | None = None
    # share of probes whose person is among the scored candidates (see set_population_prior)
    match_share: float | None = None

    def __post_init__(self) -> None:
        if not self.m:
            self.m = [_default_m(k) for k in self.n_levels]
        if not self.u:
            self.u = [np.full(k, 1.0 / k) for k in self.n_levels]

    # --- estimation -------------------------------------------------------------------------
    def estimate_u(self, g_random: np.ndarray) -> None:
        """u per level from comparison vectors of random pairs (Laplace-smoothed)."""
        for j, k in enumerate(self.n_levels):
            col = g_random[:, j]
            col = col[col >= 0]
            counts = np.bincount(col, minlength=k).astype(float) + 0.5
            self.u[j] = counts / counts.sum()

    def em(
        self,
        g: np.ndarray,
        max_iter: int = 50,
        tol: float = 1e-5,
        fixed: frozenset[int] = frozenset(),
    ) -> None:
        """Estimate m and lambda from blocked-pair comparison vectors ``g`` (n x k, -1 = null).

        ``fixed``: comparisons whose m is kept as it is (estimated elsewhere), as Splink keeps
        the m of the comparisons a training blocking rule was made of."""
        if len(g) == 0:
            return
        # distinct vectors via one int64 code per row (np.unique over rows sorts structured
        # records: seconds for a million pairs; over one integer column: milliseconds)
        base = np.int64(max(self.n_levels) + 1)
        code = np.zeros(len(g), dtype=np.int64)
        for j in range(g.shape[1]):
            code = code * base + (g[:, j].astype(np.int64) + 1)
        _, first, counts = np.unique(code, return_index=True, return_counts=True)
        uniq = g[first]
        counts = counts.astype(float)
        for it in range(max_iter):
            p = self._posterior(uniq)
            w = p * counts
            new_m = []
            for j, k in enumerate(self.n_levels):
                if j in fixed:
                    new_m.append(self.m[j])
                    continue
                col = uniq[:, j]
                ok = col >= 0
                mj = np.bincount(col[ok], weights=w[ok], minlength=k) + _EPS
                new_m.append(mj / mj.sum())
            new_lam = float(np.clip(w.sum() / counts.sum(), 1e-6, 1 - 1e-6))
            delta = max(float(np.abs(a - b).max()) for a, b in zip(new_m, self.m, strict=True))
            self.m, self.lam = new_m, new_lam
            self.iterations = it + 1
            if delta < tol:
                break
        log.info("EM converged after %d iterations, lambda=%.4f", self.iterations, self.lam)

    # --- scoring ----------------------------------------------------------------------------
    def bayes_log2(self, g: np.ndarray) -> np.ndarray:
        """Per-comparison log2 Bayes factors (n x k); null levels contribute 0."""
        out = np.zeros(g.shape, dtype=np.float64)
        for j in range(g.shape[1]):
            bf = np.log2(self.m[j] / self.u[j])
            col = g[:, j]
            ok = col >= 0
            out[ok, j] = bf[col[ok]]
        return out

    def set_population_prior(
        self, expected: float, n_possible: int, n_probes: int | None = None
    ) -> None:
        """Prior = expected matches among the blocked pairs spread over *all* possible pairs.

        Why: u comes from random pairs, so the Bayes factors measure evidence against a random
        pair; the prior they must be combined with is the chance that a random pair matches
        (Splink's ``probability_two_random_records_match``), not the match share among blocked
        pairs (blocking already selected pairs that agree on a name, and counting the name again
        on top of that share double-counts it). The population prior falls as the county grows
        (more namesakes per person), so a name-only agreement that was enough in 8,000 people
        is not enough in 3 million: the context comparisons and the term frequency decide.
        ``expected``: how many matches the blocked pairs hold (see ``Linker.train``);
        ``n_probes``: how many records looked for a match (gives :attr:`match_share`).
        """
        if n_probes:
            self.match_share = float(np.clip(expected / n_probes, 0.0, 1.0))
        self.lam_prior = float(np.clip(expected / max(n_possible, 1), 1e-12, 1 - 1e-6))
        log.info(
            "population prior: %.3g expected matches over %.3g possible pairs = %.3g (%.1f bits)",
            expected,
            float(n_possible),
            self.lam_prior,
            self.prior_log2(),
        )

    def prior_log2(self) -> float:
        lam = self.lam if self.lam_prior is None else self.lam_prior
        return float(np.log2(lam / (1 - lam)))

    def _posterior(self, g: np.ndarray) -> np.ndarray:
        # EM mixes over the blocked pairs: their own match share is the right prior here
        w = self.bayes_log2(g).sum(axis=1) + float(np.log2(self.lam / (1 - self.lam)))
        return probability(w)

    def to_dict(self) -> dict:
        return {
            "names": self.names,
            "n_levels": self.n_levels,
            "m": [x.tolist() for x in self.m],
            "u": [x.tolist() for x in self.u],
            "lam": self.lam,
            "lam_prior": self.lam_prior,
            "match_share": self.match_share,
        }

    @classmethod
    def from_dict(cls, d: dict) -> FSModel:
        return cls(
            names=list(d["names"]),
            n_levels=list(d["n_levels"]),
            m=[np.asarray(x) for x in d["m"]],
            u=[np.asarray(x) for x in d["u"]],
            lam=float(d["lam"]),
            lam_prior=None if d.get("lam_prior") is None else float(d["lam_prior"]),
            match_share=None if d.get("match_share") is None else float(d["match_share"]),
        )


def probability(weight_log2: np.ndarray) -> np.ndarray:
    """Match weight (log2 odds) -> probability, overflow-safe."""
    return 1.0 / (1.0 + np.exp2(-np.clip(weight_log2, -60, 60)))


def tf_adjustment(top_level_hit: np.ndarray, value_freq: np.ndarray, u_top: float) -> np.ndarray:
    """log2(u_top / tf(value)) for pairs agreeing exactly on a value, 0 elsewhere.

    ``value_freq`` is the share of records carrying the pair's value (so two random records share
    it with probability ~ value_freq); a common value gets a negative adjustment.
    """
    out = np.zeros(len(top_level_hit))
    f = np.maximum(value_freq[top_level_hit], 1e-9)
    out[top_level_hit] = np.log2(u_top / f)
    return out


def _default_m(k: int) -> np.ndarray:
    """Starting m: most matches agree at the top level."""
    m = np.geomspace(0.01, 1.0, k)
    m[-1] = max(m[-1], 0.7 * m.sum())
    return m / m.sum()
