"""Procgen (Cobbe 2020) behind the `PixelEnv` interface, via `procgen.ProcgenGym3Env(num=1)`.

Design choices:
- gym3 envs reset themselves: after the step that ends an episode, `observe()` already shows the
  next episode's first frame. The terminal frame itself is never shown, so the last frame of a
  stored procgen episode repeats the frame before it (documented; the `terminated` flag is exact).
  The next `reset()` then starts from the frame gym3 already produced, at no cost.
- Procgen cannot distinguish time-outs from deaths; every end is `terminated=True`.
- A new seed means rebuilding the env (~0.3 s), so `reseed_each_episode` is False: the collector
  seeds each worker once and later levels come from the env's own RNG (deterministic per seed).
- Defaults: `distribution_mode="easy"`, `start_level=0`, `num_levels=0` (unlimited levels).
- Action names: the 15 key combos, vertical key first (`UP_RIGHT`, `DOWN_LEFT`), `NOOP` for none.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np

from maskworld.envs.base import PixelEnv, resize_frame
from maskworld.errors import UserError

PROCGEN_INSTALL = 'pip install "maskworld[procgen]"'


def _import_procgen():
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # procgen imports old gym, which prints a notice
            import procgen
            from procgen import env as procgen_env
    except ImportError:
        raise UserError(f"Procgen is not installed; install it with: {PROCGEN_INSTALL}") from None
    return procgen, procgen_env


def combo_name(combo: tuple[str, ...]) -> str:
    if not combo:
        return "NOOP"
    order = {"UP": 0, "DOWN": 0, "LEFT": 1, "RIGHT": 1}
    return "_".join(sorted(combo, key=lambda k: order.get(k, 2)))


class ProcgenPixelEnv(PixelEnv):
    info_keys = ("level_seed",)
    reseed_each_episode = False

    def __init__(self, env_id: str, size: int = 64, seed: int | None = None,
                 distribution_mode: str = "easy", start_level: int = 0, num_levels: int = 0, **kw: Any):
        _, penv = _import_procgen()
        game = env_id.split(":", 1)[1]
        if game not in penv.ENV_NAMES:
            raise UserError(f"unknown environment id {env_id!r}: procgen games are {', '.join(penv.ENV_NAMES)}; "
                            "`maskworld envs` lists known ids")
        self.env_id, self.size, self.game = env_id, size, game
        self._kw = dict(distribution_mode=distribution_mode, start_level=int(start_level),
                        num_levels=int(num_levels), **kw)
        self._rng = np.random.default_rng(seed)
        self._env = None
        self._fresh = False  # True when the env shows the first frame of an episode not yet handed out
        self._last = None
        self.action_meanings = [combo_name(c) for c in penv.ProcgenGym3Env.get_combos(None)]
        self.reset(seed=seed)

    def _build(self, seed: int) -> None:
        _, penv = _import_procgen()
        if self._env is not None:
            self._env.close()
        try:
            self._env = penv.ProcgenGym3Env(num=1, env_name=self.game, rand_seed=int(seed) % (2**31 - 1), **self._kw)
        except (AssertionError, TypeError) as e:
            raise UserError(f"{self.env_id}: bad procgen option ({e})") from None
        self._fresh = True

    def _observe(self, with_info: bool = False) -> tuple[np.ndarray, float, bool, dict]:
        rew, ob, first = self._env.observe()
        if with_info or first[0]:  # the level seed only changes when a new episode starts
            self._level_seed = int(self._env.get_info()[0].get("level_seed", -1))
        frame = resize_frame(ob["rgb"][0], self.size)
        return frame, float(rew[0]), bool(first[0]), {"level_seed": self._level_seed}

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None or not self._fresh:
            self._build(int(self._rng.integers(2**31 - 1)) if seed is None else seed)
        frame, _, _, info = self._observe(with_info=True)
        self._fresh = False
        self._last = (frame, info)
        return frame, info

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._env.act(np.array([int(action)], dtype=np.int32))
        frame, reward, first, info = self._observe()
        if first:  # the episode ended; the frame shown belongs to the next one (see module doc)
            self._fresh = True
            frame, info = self._last
            return frame.copy(), reward, True, False, dict(info)
        self._last = (frame, info)
        return frame, reward, False, False, info

    def raw_step(self, action: int) -> bool:
        self._env.act(np.array([int(action)], dtype=np.int32))
        _, _, first = self._env.observe()
        self._fresh = bool(first[0])
        return bool(first[0])

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
