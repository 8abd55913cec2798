"""Held-out open-loop rollouts during dynamics training: is the world already better than copying the last frame?

Design choices:
- The probe plays the world the way a user will: a few held-out episodes, `context` real frames observed, then
  `horizon` frames imagined from the logged actions alone, through the stepping engine; PSNR of the last imagined
  frame against the real one, beside copy-last (the last real frame, unchanged) and the tokenizer's ceiling (its
  own reconstruction of the real frame). The masked-token accuracy of training says little about this: a world can
  predict most tokens and still drift into grey soup within a few frames.
- A fixed, seeded set of episodes and starts, so the numbers of one run are comparable from eval to eval; about
  `windows` clips in all, several non-overlapping ones per episode when few long episodes are held out (as in
  `maskworld eval`), so two lucky starts are not the whole reading.
- The model is evaluated in place (eval mode, no gradients) and put back into training mode by the loop.
"""

from __future__ import annotations

import numpy as np
import torch

from maskworld.data.clips import spread_starts
from maskworld.models.sampler import SamplerConfig
from maskworld.world.engine import Engine
from maskworld.world.meta import WorldMeta
from maskworld.world.session import Session
from maskworld.world.world import World


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean PSNR (dB) over frames of two uint8 stacks (N, H, W, 3)."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(1)
    return float(np.mean(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))))


class HeldoutProbe:
    """probe(model) -> {"h8_psnr", "h8_copy_last", "h8_tokenizer"} on held-out episodes (h = horizon)."""

    def __init__(self, tokenizer, store, val_ids, meta: dict, num_actions: int, context: int = 4, horizon: int = 8,
                 episodes: int = 8, seed: int = 0, sampler: SamplerConfig | None = None, render: str = "tokens",
                 windows: int = 16):
        self.tokenizer, self.context, self.horizon, self.num_actions = tokenizer, context, horizon, num_actions
        self.sampler = sampler or SamplerConfig(steps=2)
        self.meta = WorldMeta(env_id=str(meta.get("env_id", "unknown")), size=int(meta.get("size", 64)), render=render)
        rng = np.random.default_rng(seed)
        need = context + horizon
        eps = []
        for i in rng.permutation(np.asarray(val_ids)):
            if len(eps) == episodes:
                break
            ep = store.load(int(i))
            if len(ep.frames) >= need:
                eps.append(ep)
        per = max(1, -(-windows // max(len(eps), 1)))
        self.clips = []  # (frames (need, H, W, 3), actions into frames 1..need-1)
        for ep in eps:
            for s in spread_starts(len(ep.frames), need, per, rng):
                self.clips.append((ep.frames[s : s + need], np.asarray(ep.actions[s : s + need - 1])))
        self.ceiling = None

    def _action(self, a) -> int:
        """A logged action in the world's action space (a world of action-free data has the one NOOP)."""
        return int(a) if 0 <= int(a) < self.num_actions else 0

    def __bool__(self) -> bool:
        return bool(self.clips)

    @torch.no_grad()
    def __call__(self, model) -> dict:
        if not self.clips:
            return {}
        world = World(self.tokenizer, model, self.sampler, self.meta)
        eng = Engine(world, rows=len(self.clips))
        sessions = [Session(world, seed=i, engine=eng) for i in range(len(self.clips))]
        for j in range(self.context):
            acts = [None if j == 0 else self._action(a[j - 1]) for _, a in self.clips]
            eng.observe(sessions, np.stack([f[j] for f, _ in self.clips]), acts, render=False)
        for j in range(self.context, self.context + self.horizon):
            out = eng.step(sessions, [self._action(a[j - 1]) for _, a in self.clips])
        real = np.stack([f[-1] for f, _ in self.clips])
        last = np.stack([f[self.context - 1] for f, _ in self.clips])
        if self.ceiling is None:  # the tokenizer does not change during dynamics training
            toks = self.tokenizer.tokenize_uint8(torch.from_numpy(real).to(world.device))
            self.ceiling = psnr(self.tokenizer.render_uint8(toks).cpu().numpy(), real)
        h = self.horizon
        return {f"h{h}_psnr": psnr(out.frames, real), f"h{h}_copy_last": psnr(last, real), f"h{h}_tokenizer": self.ceiling}
