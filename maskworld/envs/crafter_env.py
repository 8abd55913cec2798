"""Crafter (Hafner 2021) behind the `PixelEnv` interface.

Crafter speaks the old gym API (`reset() -> obs`, `step -> (obs, reward, done, info)`) and takes
its seed in the constructor; building an env costs ~1 s (textures), so a new seed is applied by
resetting crafter's own seed/episode counters instead of rebuilding. `done` is split into
`terminated` (the player died: `info["discount"] == 0`) and `truncated` (the length limit).
Crafter renders directly at the requested size, so no resize is needed.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np

from maskworld.envs.base import PixelEnv, resize_frame
from maskworld.errors import UserError


class CrafterPixelEnv(PixelEnv):
    info_keys = ("agent_pos",)

    def __init__(self, size: int = 64, seed: int | None = None, length: int = 10000, **kw: Any):
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # crafter may import old gym, which nags
                import crafter
        except ImportError:
            raise UserError('crafter is not installed: pip install crafter') from None
        self.env_id, self.size = "crafter", size
        self._env = crafter.Env(size=(size, size), length=length, seed=0 if seed is None else seed, **kw)
        self.action_meanings = list(crafter.constants.actions)
        self.reset(seed=seed)

    def _pos(self) -> np.ndarray:
        return np.asarray(self._env._player.pos, dtype=np.int64)

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            # crafter seeds episode k of an env with hash((seed, k)); restart that sequence.
            self._env._seed, self._env._episode = int(seed), 0
        obs = self._env.reset()
        return resize_frame(obs, self.size), {"agent_pos": self._pos()}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, done, info = self._env.step(int(action))
        terminated = bool(done and info.get("discount", 1.0) == 0.0)
        truncated = bool(done and not terminated)
        return resize_frame(obs, self.size), float(reward), terminated, truncated, {"agent_pos": self._pos()}

    def raw_step(self, action: int) -> bool:
        _, _, done, _ = self._env.step(int(action))
        return bool(done)
