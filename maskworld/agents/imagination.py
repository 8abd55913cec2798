"""Imagined rollouts: B sessions started from real frames, driven by a policy, one `step_many` per step.

Design choices (issue 8; Dreamer's "learning in imagination", here with a discrete pixel world):
- Starts are real frames (F): each imagined trajectory begins from a frame the agent actually saw, or
  from a short real context (frames + the actions into them), so imagination stays near real states.
- Single-frame starts are opened in one batched pass (`start_sessions`: one tokenizer encode, one
  clean-stream commit, one render for all B) instead of B one-frame `world.session` calls; the sessions
  are the ones `world.session(prompt=frame)` would open (tested).
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
def start_sessions(world, frames_BSS3: np.ndarray, seeds) -> list:
    """B sessions, each started from one real frame (no action into it), in one batched pass.

    Same result as `[world.session(prompt=f, seed=s) for f, s in zip(frames, seeds)]`: tokenize, commit
    the tokens with the NULL action at frame 0, render them as the session's first frame.
    """
    from maskworld.world.session import Session, _split_cache
    from maskworld.world.world import as_uint8_frame

    w, dev = world, world.device
    dyn = w.dynamics
    size, g = w.meta.size, dyn.cfg.grid
    imgs = np.stack([as_uint8_frame(f, size) for f in frames_BSS3])  # (B,S,S,3)
    toks_BN = w.tokenizer.tokenize_uint8(torch.from_numpy(imgs).to(dev)).flatten(1)
    B = toks_BN.shape[0]
    null = torch.full((B,), dyn.cfg.null_action, device=dev)
    cache, _, _ = dyn.commit(toks_BN, null, torch.zeros(B, dtype=torch.long, device=dev), None)
    rendered = w.tokenizer.render_uint8(toks_BN.view(B, g, g)).cpu().numpy()
    tokens = toks_BN.view(B, g, g).cpu().numpy().astype(np.uint16)
    sessions = []
    for b, c in enumerate(_split_cache(cache, [1] * B)):
        s = Session(w, int(seeds[b]))
        s.cache, s.pos, s.tokens, s.frame = c, 1, tokens[b], rendered[b]
        sessions.append(s)
    return sessions


@torch.no_grad()
def imagine(world, act, starts: np.ndarray, horizon: int, seeds, start_actions=None) -> Rollout:
    """Roll `horizon` steps from each start.

    act: uint8 frames (B,S,S,3) -> actions (B,) (ints or a tensor); starts: (B,S,S,3) frames, or
    (B,T,S,S,3) real contexts with `start_actions` (B,T) leading into each frame (None / -1 for unknown).
    """
    starts = np.asarray(starts)
    B = len(starts)
    if starts.ndim == 4 and start_actions is None:
        sessions = start_sessions(world, starts, seeds)
    else:
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
