"""Imagined rollouts: B sessions started from real frames, driven by a policy, one `step_many` per step.

Design choices (issue 8; Dreamer's "learning in imagination", here with a discrete pixel world):
- Starts are real frames (F): each imagined trajectory begins from a frame the agent actually saw, or
  from a short real context (frames + the actions into them), so imagination stays near real states.
- The world is sampled, not differentiated: the policy gets a score-function (REINFORCE) gradient, as
  DreamerV3 does for discrete actions.
- Episodes end inside imagination: `continues[t] = 0` once the termination head fires; later steps are
  still computed (the batch stays rectangular) but carry zero weight (`alive`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Rollout:
    obs: np.ndarray
    """(H+1, B, S, S, 3) uint8: the start frame, then every imagined frame."""
    actions: torch.Tensor
    """(H, B) long."""
    rewards: torch.Tensor
    """(H, B) float: the reward head's sign class, -1/0/+1."""
    continues: torch.Tensor
    """(H, B) float: 0 where the step ended the episode."""

    @property
    def alive(self) -> torch.Tensor:
        """(H, B): 1 while the episode had not ended before step t (the weight of step t)."""
        c = torch.cat([torch.ones_like(self.continues[:1]), self.continues[:-1]], 0)
        return torch.cumprod(c, 0)


@torch.no_grad()
def imagine(world, act, starts: np.ndarray, horizon: int, seeds, start_actions=None) -> Rollout:
    """Roll `horizon` steps from each start.

    act: uint8 frames (B,S,S,3) -> actions (B,) (ints or a tensor); starts: (B,S,S,3) frames, or
    (B,T,S,S,3) real contexts with `start_actions` (B,T) leading into each frame (None / -1 for unknown).
    """
    B = len(starts)
    sessions = []
    for b in range(B):
        acts = None
        if start_actions is not None:
            acts = [None if a is None or int(a) < 0 else int(a) for a in start_actions[b]]
        sessions.append(world.session(prompt=np.asarray(starts[b]), seed=int(seeds[b]), actions=acts))
    obs = [np.stack([s.frame for s in sessions])]
    actions, rewards, continues = [], [], []
    for _ in range(horizon):
        a = act(obs[-1])
        a = [int(x) for x in (a.tolist() if hasattr(a, "tolist") else a)]
        out = world.step_many(sessions, a)
        obs.append(np.stack([f for f, _, _ in out]))
        actions.append(a)
        rewards.append([r for _, r, _ in out])
        continues.append([0.0 if d else 1.0 for _, _, d in out])
    return Rollout(np.stack(obs), torch.tensor(actions, dtype=torch.long), torch.tensor(rewards, dtype=torch.float32),
                   torch.tensor(continues, dtype=torch.float32))
