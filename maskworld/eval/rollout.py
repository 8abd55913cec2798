"""Open-loop rollouts of a world against held-out episodes.

The world is given `context` real frames (with the actions between them), then imagines the next
`horizon` frames from the logged actions alone. Many episodes roll out together, the rows of one
stepping engine.
"""

from __future__ import annotations

import numpy as np

from maskworld.world.engine import Engine
from maskworld.world.session import Session


def open_loop(world, episodes, context: int, horizon: int, seed: int = 0, actions_override=None,
              return_tokens: bool = False, every_tokens: bool = False):
    """episodes: list of Episode with >= context + horizon frames.

    Returns generated frames (E, horizon, H, W, 3) uint8; frame i follows action
    episode.actions[context - 1 + i]. `actions_override` (E, horizon) replaces the logged actions
    (used for random-action controllability). return_tokens: also the last imagined frame's tokens (E, h, w),
    what the world drew before the decoder spread it into pixels; every_tokens: every imagined frame's instead
    (E, horizon, h, w).
    """
    eng = Engine(world, rows=len(episodes))
    sessions = []
    for e, ep in enumerate(episodes):
        acts = [None] + [int(a) if a >= 0 else None for a in ep.actions[: context - 1]]
        s = Session(world, seed=seed + e, engine=eng)
        for f, a in zip(ep.frames[:context], acts):
            s.observe(f, a)
        sessions.append(s)
    out = np.zeros((len(episodes), horizon) + episodes[0].frames.shape[1:], np.uint8)
    steps = []
    for i in range(horizon):
        if actions_override is not None:
            acts = [int(a) for a in actions_override[:, i]]
        else:
            acts = [max(int(ep.actions[context - 1 + i]), 0) for ep in episodes]
        out[:, i] = eng.step(sessions, acts).frames
        if every_tokens:
            steps.append(np.stack([s.tokens for s in sessions]).astype(np.int64))
    if every_tokens:
        return out, np.stack(steps, 1)
    if return_tokens:
        return out, np.stack([s.tokens for s in sessions]).astype(np.int64)
    return out
