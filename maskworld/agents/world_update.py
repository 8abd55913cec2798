"""Updating the world on the agent's real experience: the "world learns" half of the Dyna loop.

    up = WorldUpdater(world, batch=16, real_share=0.5)
    opt = torch.optim.AdamW(up.params(), lr=1e-4)
    m = up.step(replay.token_view(world), opt, rng)     # one gradient step of the dynamics; -> metrics

Design choices:
- The same objective as `maskworld train dynamics` (`dynamics_losses`: masked tokens + reward + termination,
  context corruption), so a world updated here is a world trained a little longer, on more data.
- Each batch mixes the agent's real episodes (`real_share` of the clips) with the world's own training
  data (its token cache in WORLD/_work/cache_train, when it is still there): the policy's states are
  where imagination must be right, and the old data keeps the world from forgetting the rest.
- Event oversampling as in training (`event_share`): rewarded steps the agent really took are the
  events the world most needs to imagine.
- Only the dynamics learns; the tokenizer stays frozen (the token caches stay valid). The optimiser is
  the caller's param group (one optimiser and one checkpoint for agent and world, see actor_critic).
- Worlds with memory M are refused (their batches need pose-keyed memory; not wired here yet).
- A world that is itself a Dyna product (OUT/world, no token cache of its own) uses the cache of the world it
  started from (its model card's `dyna.started_from`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from maskworld.data.event_sampler import EventClips
from maskworld.data.token_cache import TokenCache
from maskworld.errors import UserError
from maskworld.train.dynamics_train import dynamics_losses, make_batch


def world_data_cache(world) -> TokenCache | None:
    """The world's own training token cache (WORLD/_work/cache_train), or None where it was deleted."""
    if world.path is None:
        return None
    p = Path(str(world.path)) / "_work" / "cache_train"
    card = world.meta.model_card if isinstance(world.meta.model_card, dict) else {}
    origin = (card.get("dyna") or {}).get("started_from")
    if not (p / "meta.json").exists() and origin:
        p = Path(origin) / "_work" / "cache_train"
    if not (p / "meta.json").exists():
        return None
    try:
        cache = TokenCache(str(p))
    except UserError:
        return None
    cfg = world.dynamics.cfg
    if cache.grid != (cfg.grid, cfg.grid) or cache.num_actions != cfg.num_actions:
        return None
    return cache


class WorldUpdater:
    def __init__(self, world, batch: int = 16, real_share: float = 0.5, event_share: float = 0.25,
                 corrupt_max: float = 0.1):
        cfg = world.dynamics.cfg
        if cfg.has_memory:
            raise UserError("world updates from real experience are not supported for worlds with memory M yet; "
                            "pass --world-updates 0")
        if not 0.0 <= real_share <= 1.0:
            raise UserError(f"world real share {real_share} must be in [0, 1]")
        self.world, self.batch, self.real_share = world, batch, real_share
        self.event_share, self.corrupt_max = event_share, corrupt_max
        self.data = world_data_cache(world)
        self._data_clips = EventClips(self.data, cfg.window, event_share) if self.data is not None else None
        self.steps = 0
        self._real: tuple = (None, None)  # (view, its EventClips): one event scan per view (a view lives one round)

    def params(self) -> list[torch.nn.Parameter]:
        return list(self.world.dynamics.parameters())

    def _clips(self, real, rng) -> list[tuple]:
        cfg = self.world.dynamics.cfg
        T, dev = cfg.window, self.world.device
        real_ok = real is not None and len(real.lengths) and int(real.lengths.max()) >= T
        n_real = self.batch if self._data_clips is None else round(self.real_share * self.batch)
        n_real = n_real if real_ok else 0
        parts = []
        if n_real:
            if self._real[0] is not real:
                self._real = (real, EventClips(real, T, self.event_share))
            parts.append(make_batch(real, n_real, T, rng, cfg.num_actions, dev, None, self._real[1]))
        if self.batch - n_real and self._data_clips is not None:
            parts.append(make_batch(self.data, self.batch - n_real, T, rng, cfg.num_actions, dev, None, self._data_clips))
        return parts

    def step(self, real, opt: torch.optim.Optimizer, rng: np.random.Generator) -> dict:
        """One gradient step on a batch of real clips. `real`: `RealReplay.token_view(world)` (or None)."""
        parts = self._clips(real, rng)
        if not parts:
            return {}
        tok, act, rew, term = (torch.cat([p[i] for p in parts]) for i in range(4))
        dyn = self.world.dynamics
        dyn.train()
        try:
            tl, rl, dl, acc = dynamics_losses(dyn, tok, act, rew, term, self.corrupt_max)
            loss = tl + 0.5 * rl + 0.5 * dl
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(dyn.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        finally:
            dyn.eval()
        self.steps += 1
        return {"world_loss": loss.item(), "world_tok_loss": tl.item(), "world_reward_loss": rl.item(),
                "world_acc": acc.item()}
