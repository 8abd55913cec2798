"""Imagined rollouts: B sessions started from real frames, driven by a policy, one engine step per step.

Design choices (Dreamer's "learning in imagination", here with a discrete pixel world):
- Starts are real frames (F): each imagined trajectory begins from a frame the agent actually saw, or
  from a short real context (frames + the actions into them), so imagination stays near real states.
- The rollout's B sessions are the rows of one engine of their own (`world/engine.py`), so every pass works
  on a view of one KV cache. Single-frame starts are observed in one batched pass (`start_sessions`); the
  sessions are the ones `world.session(prompt=frame)` would open (tested).
- The world is sampled, not differentiated: the policy gets a score-function (REINFORCE) gradient, as
  DreamerV3 does for discrete actions.
- Episodes end inside imagination: `continues[t]` is the termination head's probability that the episode
  goes on (0 / 1 with heads="argmax"); later steps are still computed (the batch stays rectangular) but
  carry the weight `alive` = the product of the continues before them.
- Reward and continue are expectations under the heads by default (see `imagine`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from maskworld.world.engine import HEADS, Engine
from maskworld.world.frames import as_uint8_frame
from maskworld.world.session import Session


@dataclass
class Rollout:
    obs: np.ndarray
    """(H+1, B, S, S, 3) uint8: the start frame, then every imagined frame."""
    actions: torch.Tensor
    """(H, B) long."""
    rewards: torch.Tensor
    """(H, B) float: the reward head's expected value (or its most likely class's value): the game's reward values
    where the world's head has them, else the sign in [-1, 1] (models/reward_values.py)."""
    continues: torch.Tensor
    """(H, B) float: the probability the episode goes on after the step (or 0/1)."""

    @property
    def alive(self) -> torch.Tensor:
        """(H, B): the probability the episode had not ended before step t (the weight of step t)."""
        c = torch.cat([torch.ones_like(self.continues[:1]), self.continues[:-1]], 0)
        return torch.cumprod(c, 0)


@torch.no_grad()
def start_sessions(world, frames_BSS3: np.ndarray, seeds, engine: Engine | None = None) -> list[Session]:
    """B sessions, each started from one real frame (no action into it), observed in one batched pass.

    The sessions `world.session(prompt=f, seed=s)` would open, in rows of `engine` (default: a new engine of
    B rows, so the batch's rows are consecutive and every pass works on a view of the cache)."""
    size = world.meta.size
    imgs = np.stack([as_uint8_frame(f, size) for f in frames_BSS3])  # (B,S,S,3)
    eng = engine or Engine(world, rows=len(imgs))
    sessions = [Session(world, int(s), engine=eng) for s in seeds]
    eng.observe(sessions, imgs, [None] * len(sessions))
    return sessions


@torch.no_grad()
def imagine(world, act, starts: np.ndarray, horizon: int, seeds, start_actions=None, heads: str = "expected",
            sampler=None) -> Rollout:
    """Roll `horizon` steps from each start: one batched engine step (MaskGIT decode + commit) per step.

    act: uint8 frames (B,S,S,3) -> actions (B,) (ints or a tensor); starts: (B,S,S,3) frames, or
    (B,T,S,S,3) real contexts with `start_actions` (B,T) leading into each frame (None / -1 for unknown).
    heads: "expected" = the reward's expected value and continue 1 - p(end) from the heads' probabilities
    (DreamerV3 weighs imagined steps by the predicted continue probability); "argmax" = the likeliest class's value and
    the thresholded end, what `world.step_many` / Dream-v0 return. The expectation keeps a partial signal
    where the argmax loses it: a rare event the world imagines imperfectly (MiniGrid's goal entry, 118
    times in 30k transitions) often gets p(+1) well below 1/2, which argmax rounds to 0.
    seeds[b] seeds rollout b's sampling generator, as a session with that seed would.
    sampler: a SamplerConfig to decode with instead of the world's (e.g. fewer MaskGIT steps).
    """
    if heads not in HEADS:
        raise ValueError(f"heads must be one of {HEADS}, not {heads!r}")
    starts = np.asarray(starts)
    B = len(starts)
    eng = Engine(world, rows=B)
    if starts.ndim == 4 and start_actions is None:
        sessions = start_sessions(world, starts, seeds, eng)
    else:
        sessions = []
        for b in range(B):
            acts = None
            if start_actions is not None:
                acts = [None if a is None or int(a) < 0 else int(a) for a in start_actions[b]]
            sessions.append(world.session(prompt=np.asarray(starts[b]), seed=int(seeds[b]), actions=acts, engine=eng))
    obs = [np.stack([s.frame for s in sessions])]
    actions, rewards, continues = [], [], []
    for _ in range(horizon):
        a = act(obs[-1])
        a_B = torch.as_tensor(np.asarray(a.tolist() if hasattr(a, "tolist") else a, dtype=np.int64))
        out = eng.step(sessions, a_B.tolist(), heads=heads, sampler=sampler)
        obs.append(out.frames)
        actions.append(a_B)
        rewards.append(torch.from_numpy(out.reward))
        continues.append(torch.from_numpy(out.continues))
    return Rollout(np.stack(obs), torch.stack(actions).long(), torch.stack(rewards).float(), torch.stack(continues).float())
