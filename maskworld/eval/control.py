"""Controllability, Genie's delta-PSNR: how much the world's frames depend on the actions it is given.

Design choice (Genie, Bruce et al. 2024): PSNR at t = 4 of an open-loop rollout with the logged (or inferred)
actions minus the same sessions' rollout with random actions; an action-blind world scores exactly 0. Per episode,
so it gets an episode-bootstrap interval like every headline metric.

Beside it, the action spread: how far apart the frames are that the world draws at t = 4 when each action is held
from the same context with the same sampling noise, next to how far apart two samplings of the logged actions are
(the seed spread). In a game whose actions show in a few pixels (a small avatar among moving sprites), delta-PSNR
sits near 0 for a world that does respond, and the pair says whether what the actions change stands above what
sampling changes; an action-blind world's action spread is exactly 0.
"""

from __future__ import annotations

import numpy as np

from maskworld.eval.metrics import psnr_per_frame
from maskworld.eval.plan import episodes_of, logged_actions
from maskworld.eval.rollout import open_loop
from maskworld.eval.uncertainty import mean_ci

DELTA_T = 4  # Genie's delta-PSNR is read at the 4th imagined frame
SPREAD_ACTIONS = 8  # held actions compared by the action spread (a sample of them where the game has more)


def _mean(x) -> float | None:
    x = np.asarray(x, dtype=np.float64)
    return float(x.mean()) if x.size else None


def delta_psnr_per_episode(world, slices, hs, gen, context: int, seed: int, probs=None) -> tuple[np.ndarray, list]:
    """Genie's delta-PSNR at t = 4, per rollout window long enough: PSNR of the rollout with the logged (or inferred)
    actions minus the rollout of the same sessions with random actions, drawn uniformly or from `probs`.
    -> (differences, their windows)."""
    es = [e for e in range(len(slices)) if hs[e] >= DELTA_T]
    if not es:
        return np.zeros(0), []
    rng = np.random.default_rng(seed + 2)
    A = world.num_actions
    rnd = rng.choice(A, size=(len(slices), DELTA_T), p=probs) if probs is not None else rng.integers(0, A, (len(slices), DELTA_T))
    gen_rnd = open_loop(world, slices, context, DELTA_T, seed, actions_override=rnd)
    gt = np.stack([slices[e].frames[context + DELTA_T - 1] for e in es])
    return psnr_per_frame(gen[es, DELTA_T - 1], gt).astype(np.float64) - psnr_per_frame(gen_rnd[es, DELTA_T - 1], gt), es


def delta_psnr_metrics(world, slices, hs, gen, context: int, seed: int, probs=None, key: str = "control.delta_psnr") -> dict:
    """{key, key.ci, key.episodes, key.windows}: delta-PSNR with its episode-bootstrap interval (slices of one
    episode, `slice.ep`, are resampled together)."""
    d, es = delta_psnr_per_episode(world, slices, hs, gen, context, seed, probs)
    groups = episodes_of(slices, es)
    return {key: _mean(d), f"{key}.ci": mean_ci(d, groups, seed=seed + 2), f"{key}.episodes": len(set(groups)),
            f"{key}.windows": len(es)}


def delta_psnr(world, slices, hs, gen, context: int, seed: int, probs=None) -> float | None:
    """Genie's delta-PSNR at t = 4 (the mean of `delta_psnr_per_episode`; None when no episode is long enough)."""
    return _mean(delta_psnr_per_episode(world, slices, hs, gen, context, seed, probs)[0])


def action_spread_metrics(world, slices, hs, gen, context: int, seed: int) -> dict:
    """{control.action_spread, control.seed_spread} (mean |difference| in levels of 255 at t = 4, with episode
    intervals): between rollouts holding each of up to SPREAD_ACTIONS actions (same context, same sampling seeds),
    and between `gen` (logged actions) and a resampling of it with other seeds."""
    es = [e for e in range(len(slices)) if hs[e] >= DELTA_T]
    keys = ("control.action_spread", "control.seed_spread")
    if not es or world.num_actions < 2:
        return {k: None for k in keys}
    rng = np.random.default_rng(seed + 5)
    A = world.num_actions
    acts = np.arange(A) if A <= SPREAD_ACTIONS else np.sort(rng.choice(A, SPREAD_ACTIONS, replace=False))
    sub = [slices[e] for e in es]
    held = np.stack([open_loop(world, sub, context, DELTA_T, seed, actions_override=np.full((len(sub), DELTA_T), a))
                     [:, -1].astype(np.float32) for a in acts])  # (K, E, H, W, C)
    pairs = [(i, k) for i in range(len(acts)) for k in range(i + 1, len(acts))]
    act = np.mean([np.abs(held[i] - held[k]).mean((1, 2, 3)) for i, k in pairs], 0)  # (E,)
    other = open_loop(world, sub, context, DELTA_T, seed + 10_000, actions_override=logged_actions(sub, context, DELTA_T))
    other = other[:, -1].astype(np.float32)
    same = np.abs(other - gen[es, DELTA_T - 1].astype(np.float32)).mean((1, 2, 3))
    groups = episodes_of(slices, es)
    return {"control.action_spread": _mean(act), "control.action_spread.ci": mean_ci(act, groups, seed=seed + 5),
            "control.seed_spread": _mean(same), "control.seed_spread.ci": mean_ci(same, groups, seed=seed + 6)}
