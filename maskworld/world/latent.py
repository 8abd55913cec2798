"""Latent actions of a world: code statistics, and the map from a game's real actions to latent codes.

A world trained on action-free video is conditioned on the latent-action model's K codes. Players
can press 1..K directly, but a game's own keys are nicer: with a small labelled set (a few hundred
transitions with the real action known) each real action is mapped to the latent code the LAM most
often infers for it. Its accuracy on held-out labelled transitions says how well the latent space
lines up with the real controls (several real actions may share a code: CoinRun's LEFT and
DOWN_LEFT move alike, and a jump in mid-air does nothing).

All arrays follow the token cache's alignment: index n holds the action INTO frame n; NULL (>= the
number of actions) on first frames.
"""

from __future__ import annotations

import numpy as np


def code_stats(latent_in: np.ndarray, num_codes: int, min_share: float = 0.01) -> dict:
    """Code usage of labelled transitions: a code is "in use" when it labels >= 1 % of them."""
    lat = np.asarray(latent_in)
    lat = lat[(lat >= 0) & (lat < num_codes)]
    counts = np.bincount(lat, minlength=num_codes).astype(np.float64)
    share = counts / max(counts.sum(), 1.0)
    nz = share[share > 0]
    return {"codes_used": int((share >= min_share).sum()), "share": [round(float(x), 4) for x in share],
            "perplexity": float(np.exp(-(nz * np.log(nz)).sum())) if nz.size else 0.0, "transitions": int(counts.sum())}


def fit_action_map(real_in: np.ndarray, lat_in: np.ndarray, num_real: int, num_codes: int, transitions: int,
                   seed: int = 0) -> dict:
    """Map each real action to its most frequent latent code, from `transitions` random labelled transitions.

    Real actions never seen in the sample get the most frequent code overall."""
    real_in, lat_in = np.asarray(real_in), np.asarray(lat_in)
    ok = np.flatnonzero((real_in >= 0) & (real_in < num_real) & (lat_in >= 0) & (lat_in < num_codes))
    if ok.size == 0:
        raise ValueError("no labelled transitions to fit the real->latent action map")
    pick = np.random.default_rng(seed).choice(ok, size=min(transitions, ok.size), replace=False)
    counts = np.zeros((num_real, num_codes), np.int64)
    np.add.at(counts, (real_in[pick], lat_in[pick]), 1)
    share = counts.sum(0) / counts.sum()
    # Ties (few samples per action) go to the more frequent code; unseen actions get the most frequent one.
    to_latent = [int((c + 0.5 * share).argmax()) for c in counts]
    return {"to_latent": to_latent, "fit_transitions": int(pick.size), "counts": counts.tolist(),
            "unseen_actions": [a for a in range(num_real) if counts[a].sum() == 0]}


def map_accuracy(to_latent: list[int], real_in: np.ndarray, lat_in: np.ndarray, num_real: int, num_codes: int) -> dict:
    """Share of labelled transitions whose mapped code equals the LAM's inferred code, beside the
    share of the most frequent code (what mapping every action to one code would score)."""
    real_in, lat_in = np.asarray(real_in), np.asarray(lat_in)
    idx = np.flatnonzero((real_in >= 0) & (real_in < num_real) & (lat_in >= 0) & (lat_in < num_codes))
    if idx.size == 0:
        return {"accuracy": None, "majority": None, "transitions": 0}
    pred = np.asarray(to_latent)[real_in[idx]]
    true = lat_in[idx]
    return {"accuracy": float((pred == true).mean()), "majority": float(np.bincount(true).max() / true.size),
            "transitions": int(idx.size)}
