"""Which frames an evaluation reads: rollout windows and teacher-forced steps of held-out episodes.

Design choices:
- Open-loop rollouts start at a seeded random offset (reset frames of many games look alike) and run to the
  longest horizon of HORIZONS the episode allows. A split of few, long episodes (CoinRun: 2 of 1,000 steps) gives
  several non-overlapping windows per episode, about ROLLOUT_WINDOWS in all (`data.clips.spread_starts`), so one
  lucky start is not the whole reading; a window knows its episode, and intervals resample episodes, never windows.
- Teacher-forced next-frame (and inverse-dynamics) pairs are decoded at seeded steps spread over each episode, at
  least NEXT_FRAME_MAX per episode and about NEXT_FRAME_TOTAL in all.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from maskworld.data.clips import spread_starts

HORIZONS = (1, 2, 4, 8, 16, 32)
NEXT_FRAME_MAX = 32  # teacher-forced next-frame decodes per episode at least (rewards/ends use the whole episode)
NEXT_FRAME_TOTAL = 640  # ... and about this many in all, so a split of few long episodes still gives enough pairs
ROLLOUT_WINDOWS = 20  # open-loop rollouts in all: a split of 2 long episodes still gives ~20 (rollout_plan)


def next_frame_steps(episodes, seed: int) -> list[np.ndarray]:
    """Per episode, the seeded steps t >= 1 whose next frame is decoded: max(NEXT_FRAME_MAX, NEXT_FRAME_TOTAL /
    episodes) of them spread over the whole episode (its first steps alone would be the reset frames, which
    look alike), or every step of a shorter one."""
    rng = np.random.default_rng(seed + 5)
    k = max(NEXT_FRAME_MAX, -(-NEXT_FRAME_TOTAL // max(len(episodes), 1)))
    out = []
    for ep in episodes:
        steps = np.arange(1, len(ep.frames))
        out.append(steps if len(steps) <= k else np.sort(rng.choice(steps, k, replace=False)))
    return out


def rollout_plan(episodes, context: int, seed: int, windows: int = 1):
    """Seeded rollout windows: each episode gives the longest horizon it allows and, when fewer episodes than
    `windows` are held out and they are long, several non-overlapping windows (one per equal part of the episode)
    so that about `windows` rollouts are measured in all -> (slices, horizons). A slice knows its episode (`ep`,
    the index into `episodes`) and first frame (`start`): intervals resample episodes, never windows."""
    rng = np.random.default_rng(seed + 1)
    per = max(1, -(-int(windows) // max(len(episodes), 1)))
    slices, hs = [], []
    for e, ep in enumerate(episodes):
        n = len(ep.frames)
        h = max(x for x in HORIZONS if context + x <= n)
        for s in spread_starts(n, context + h, per, rng):
            slices.append(SimpleNamespace(frames=ep.frames[s : s + context + h], actions=ep.actions[s : s + context + h - 1],
                                          ep=e, start=s))
            hs.append(h)
    return slices, np.array(hs)


def first_per_episode(slices) -> list[int]:
    """Index of each episode's first window: pictures show different episodes before a second window of one."""
    seen: dict[int, int] = {}
    for i, sl in enumerate(slices):
        seen.setdefault(sl.ep, i)
    return list(seen.values())


def episodes_of(slices, es) -> list[int]:
    """The episode of each slice in `es`: the groups an episode bootstrap resamples."""
    return [slices[e].ep for e in es]


def logged_actions(slices, context: int, horizon: int) -> np.ndarray:
    """(windows, horizon) the recorded actions into each window's imagined frames (unknown -1 as 0, padded with 0)."""
    acts = np.zeros((len(slices), horizon), np.int64)
    for e, sl in enumerate(slices):
        a = np.asarray(sl.actions[context - 1 : context - 1 + horizon])
        acts[e, : len(a)] = np.maximum(a, 0)
    return acts
