"""What the reward and termination heads take from the data: the reward's classes, and the prior correction for
event oversampling (a label-shift correction).

    set_reward_values(cfg, train_cache, init_state)       # before training: the classes (models/reward_values.py)
    shifts = head_prior(train_cache, window=cfg.window, num_actions=cfg.num_actions, share=0.25)
    set_head_prior(model.cfg, train_cache, share, seed)   # the dynamics stage's last step

Why: event oversampling (maskworld.data.event_sampler) shows the heads rewards and terminations
`share / base rate` times more often than the data holds them. A head trained by cross-entropy learns
the posterior under its training prior, p_train(y | x) ∝ p(x | y) p_train(y); at inference the frames
come at the data's prior, so the head over-fires. Bayes' rule undoes it: adding
log p_data(y) - log p_train(y) to the logits gives the posterior under the data's prior (Saerens,
Latinne & Decaestecker 2002, "Adjusting the outputs of a classifier to new a priori probabilities";
the logit-adjustment form of Menon et al. 2021). For the sigmoid termination head the same correction is
the difference of log-odds. The shifts live in DynamicsConfig (`reward_logit_shift`, `term_logit_shift`)
and the model adds them in `commit`, so every consumer of the heads (eval, dream agents) sees them.

Design choices:
- p_data: every real transition of the training cache (the distribution a world meets when it replays
  or imagines the game). p_train: estimated by drawing training batches exactly as training does
  (`EventClips` with the run's share) and counting the head targets, which are on every real
  transition of every clip (maskworld.train.dynamics_train.dynamics_losses). Sampling through the
  same sampler keeps the estimate right if the sampler changes.
- No oversampling (share 0) means no shift: the heads saw the data's prior up to window-edge effects.
- Classes absent from the data get no shift (the head never saw them either); counts get a 0.5
  pseudo-count so a class seen rarely in the sampled batches has a finite log.
"""

from __future__ import annotations

import numpy as np

from maskworld.data.event_sampler import EventClips
from maskworld.models.reward_values import MAX_VALUES, class_values, reward_class_np, reward_values_for
from maskworld.train import dist

def _real(actions_in: np.ndarray, num_actions: int) -> np.ndarray:
    """Frames produced by a transition, as the losses see them: make_batch maps actions outside
    [0, num_actions] to NULL (= num_actions), and the heads train where the action is not NULL."""
    a = np.asarray(actions_in)
    return (a >= 0) & (a < num_actions)


def _counts(rewards: np.ndarray, terminated: np.ndarray, values=None) -> tuple[np.ndarray, float, float]:
    """(reward class counts (classes,), terminations, transitions); values: the head's class values (None: sign)."""
    cls = reward_class_np(rewards, values)
    k = len(class_values(values))
    return np.bincount(cls, minlength=k).astype(np.float64), float(np.sum(terminated)), float(len(cls))


def data_prior_counts(cache, num_actions: int, values=None) -> tuple[np.ndarray, float, float]:
    """Head-target counts over every real transition of the cache's (this rank's) episodes."""
    rows = np.concatenate([np.arange(o, o + n) for o, n in zip(cache.offsets, cache.lengths)]) if len(cache.offsets) else \
        np.zeros(0, np.int64)
    ok = _real(cache.actions_in[rows], num_actions)
    return _counts(cache.rewards_in[rows][ok], cache.terminated_in[rows][ok], values)


def train_prior_counts(cache, window: int, num_actions: int, share: float, batches: int = 200, batch: int = 64,
                       seed: int = 0, values=None) -> tuple[np.ndarray, float, float]:
    """Head-target counts over `batches` training batches drawn as training draws them (own generator:
    the training run's batches are untouched)."""
    clips, rng = EventClips(cache, window, share), np.random.default_rng(seed + 7919)
    rc, tc, n = np.zeros(len(class_values(values))), 0.0, 0.0
    for _ in range(batches):
        b = clips.sample(batch, rng)
        ok = _real(b["actions_in"], num_actions)
        r, t, k = _counts(b["rewards_in"][ok], b["terminated_in"][ok], values)
        rc, tc, n = rc + r, tc + t, n + k
    return rc, tc, n


def _log_odds(k: float, n: float) -> float:
    k = min(max(k, 0.5), n - 0.5)  # pseudo-counts: finite for a class (almost) never drawn
    return float(np.log(k) - np.log(n - k))


def head_prior(cache, window: int, num_actions: int, share: float, batches: int = 200, batch: int = 64,
               seed: int = 0, values=None) -> dict:
    """-> {reward_logit_shift [classes], term_logit_shift, data_prior, train_prior} (shift = log p_data - log p_train);
    values: the reward head's class values (DynamicsConfig.reward_values; None: sign classes)."""
    K = len(class_values(values))
    d_r, d_t, d_n = data_prior_counts(cache, num_actions, values)
    out = {"reward_logit_shift": [0.0] * K, "term_logit_shift": 0.0,
           "data_prior": {"reward": (d_r / max(d_n, 1.0)).tolist(), "termination": d_t / max(d_n, 1.0)}}
    out["train_prior"] = out["data_prior"]
    if share <= 0 or d_n == 0:
        return out
    t_r, t_t, t_n = train_prior_counts(cache, window, num_actions, share, batches, batch, seed, values)
    if t_n == 0:
        return out
    out["train_prior"] = {"reward": (t_r / t_n).tolist(), "termination": t_t / t_n}
    p_d = (d_r + 0.5) / (d_n + 0.5 * K)
    p_t = (t_r + 0.5) / (t_n + 0.5 * K)
    out["reward_logit_shift"] = [float(np.log(p_d[c]) - np.log(p_t[c])) if d_r[c] > 0 else 0.0 for c in range(K)]
    if d_t > 0:
        out["term_logit_shift"] = _log_odds(d_t, d_n) - _log_odds(t_t, t_n)
    return out


def set_head_prior(cfg, cache, share: float, seed: int = 0) -> dict:
    """Write the prior shifts of a run with event `share` into a DynamicsConfig (in place); -> head_prior's dict."""
    p = head_prior(cache, cfg.window, cfg.num_actions, share, seed=seed, values=cfg.reward_values)
    cfg.reward_logit_shift = p["reward_logit_shift"] if any(p["reward_logit_shift"]) else None
    cfg.term_logit_shift = p["term_logit_shift"]
    return p


def set_reward_values(cfg, cache, init_state: dict | None) -> None:
    """The reward classes: the data's reward values where they are few, else the sign (models/reward_values.py).
    A world continued (init_state) keeps its classes, unless it had the sign classes and the data has values: then
    its reward head starts afresh with them (the rest of its weights are kept). Ranks of a rank split read rank 0's
    (a value only another rank saw is read as the nearest class)."""
    if init_state is not None and cfg.reward_values:
        return
    v = reward_values_for(cache.rewards_in) or []
    packed = dist.broadcast_floats([float(len(v))] + v + [0.0] * (MAX_VALUES - len(v)))  # one length on every rank
    n = int(packed[0])
    if not n:
        return
    cfg.reward_values, cfg.reward_classes = packed[1:1 + n], n
    if init_state is None:
        dist.print0(f"[dynamics] reward head: one class per reward value of the data {cfg.reward_values} (not just its sign)")
        return
    cfg.reward_logit_shift = None
    for k in [k for k in init_state if k.startswith("reward_head.")]:
        del init_state[k]
    dist.print0(f"[dynamics] the --init world's reward head read the reward's sign; this data pays {cfg.reward_values}: "
                "its reward head starts afresh with one class per value")
