"""Confidence intervals for eval metrics: a cluster (episode) bootstrap, seeded and vectorised.

Why episodes and not frames: frames of one episode are strongly correlated (the same room, the same
policy, a rollout's drift carries over), so resampling frames would claim far more certainty than the
data holds. Resampling whole episodes (the cluster bootstrap, Davison & Hinkley 1997, sec. 3.8) keeps
every within-episode correlation and treats the episodes as the independent draws they are.

Design choices:
- Percentile intervals (Efron & Tibshirani 1993, ch. 13) from `RESAMPLES` resamples at 95 %; with
  fewer than 2 episodes there is nothing to resample and the interval is None.
- A resample is a vector of per-episode counts (multinomial), so every statistic here is a ratio
  of count-weighted sums: one matrix product for all resamples, no Python loop over resamples.
- Deterministic: the generator is seeded by the caller; the same seed gives the same intervals.
"""

from __future__ import annotations

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95


def _weights(groups: np.ndarray, seed: int, resamples: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(group index of each item (N,), resample counts (R, G)); None with fewer than 2 groups."""
    uniq, inv = np.unique(np.asarray(groups), return_inverse=True)
    if len(uniq) < 2:
        return None
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(uniq), np.full(len(uniq), 1.0 / len(uniq)), size=resamples).astype(np.float64)
    return inv, counts


def _interval(stats: np.ndarray, level: float) -> list[float] | None:
    stats = stats[np.isfinite(stats)]
    if not stats.size:
        return None
    a = (1.0 - level) / 2
    lo, hi = np.quantile(stats, [a, 1.0 - a])
    return [float(lo), float(hi)]


def mean_ci(values, groups, seed: int = 0, resamples: int = RESAMPLES, level: float = LEVEL) -> list[float] | None:
    """[lo, hi] of the pooled mean of `values` (N,) when the episodes `groups` (N,) are resampled."""
    v = np.asarray(values, np.float64).reshape(-1)
    if v.size == 0:
        return None
    w = _weights(groups, seed, resamples)
    if w is None:
        return None
    inv, counts = w
    G = counts.shape[1]
    sums, n = np.bincount(inv, v, G), np.bincount(inv, None, G)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _interval((counts @ sums) / (counts @ n), level)


def balanced_accuracy_ci(pred, true, groups, seed: int = 0, resamples: int = RESAMPLES,
                         level: float = LEVEL) -> list[float] | None:
    """[lo, hi] of the mean per-class recall (classes present in a resample) under the episode bootstrap."""
    pred, true = np.asarray(pred).reshape(-1), np.asarray(true).reshape(-1)
    if true.size == 0:
        return None
    w = _weights(groups, seed, resamples)
    if w is None:
        return None
    inv, counts = w
    G = counts.shape[1]
    recalls = []
    for c in np.unique(true):
        is_c = true == c
        hits, n = np.bincount(inv[is_c], (pred[is_c] == c).astype(np.float64), G), np.bincount(inv[is_c], None, G)
        with np.errstate(invalid="ignore", divide="ignore"):
            recalls.append((counts @ hits) / (counts @ n))  # NaN where a resample holds no item of class c
    with np.errstate(invalid="ignore"):
        stats = np.nanmean(np.stack(recalls), 0) if len(recalls) > 1 else recalls[0]
    return _interval(stats, level)
