"""One adapter from anything with pixels to `(frame uint8 (S,S,3), reward, terminated, truncated, info)`.

`make_env(env_id, size=64, seed=None, view="partial", **kw) -> PixelEnv` understands

- any Gymnasium id whose observation is an RGB image or that renders `rgb_array`
  (ALE ids such as `ALE/Breakout-v5` are registered via `gym.register_envs(ale_py)`);
- MiniGrid ids (`MiniGrid-FourRooms-v0`): `view="partial"` is the egocentric
  `RGBImgPartialObsWrapper` view, `view="full"` the top-down `RGBImgObsWrapper` view;
  `agent_pos` (x, y) and `agent_dir` (0..3) are recorded for the memory benchmark;
- `crafter` (old gym API, see `crafter_env.py`);
- `procgen:<game>` (gym3 API, see `procgen_env.py`).

The interface they all share, `PixelEnv`, and `resize_frame` live in `base.py`.

Design choices:
- Frames are resized to a square with PIL: BOX (area average, no aliasing) when shrinking,
  BILINEAR when growing. Non-square frames (Atari 210x160) are squashed, as in the standard
  Atari preprocessing. MiniGrid tiles are sized so its image is at least `size` (shrink only).
- Only the `info_keys` an env declares are returned in `info`, as numpy-friendly values, so the
  collector can store them aligned with frames (`info[k]` has T+1 entries).
- `raw_step(action)` steps the underlying library without resizing; `maskworld collect` times it
  to report the raw environment step rate next to its own stored-frames rate.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from maskworld.envs.base import PixelEnv, resize_frame
from maskworld.envs.crafter_env import CrafterPixelEnv
from maskworld.envs.procgen_env import ProcgenPixelEnv
from maskworld.errors import UserError

# Shown by `maskworld envs`; any other Gymnasium id that renders rgb_array works too.
KNOWN_ENVS: list[tuple[str, str]] = [
    ("ALE/Breakout-v5", "Atari Breakout (ale-py); any ALE/<Game>-v5 id works"),
    ("ALE/Pong-v5", "Atari Pong"),
    ("ALE/MsPacman-v5", "Atari Ms. Pac-Man"),
    ("MiniGrid-FourRooms-v0", "MiniGrid four rooms; --view partial (egocentric) or full; records agent_pos/agent_dir"),
    ("MiniGrid-Empty-8x8-v0", "MiniGrid empty room"),
    ("MiniGrid-DoorKey-8x8-v0", "MiniGrid door + key"),
    ("MiniGrid-Landmarks-v0", "MiniGrid four rooms with coloured landmarks, new layout per seed (revisit benchmark)"),
    ("BabyAI-GoToLocal-v0", "BabyAI: go to an object named in words; episodes carry their mission, --policy bot is the expert"),
    ("MultiAgent-Coins-v0", "2-4 agents collecting coins in one room, a joint action per step (collect --agents K)"),
    ("crafter", "Crafter open-world survival (records agent_pos)"),
    ("procgen:coinrun", "Procgen CoinRun (needs maskworld[procgen]); any procgen:<game> works"),
    ("procgen:maze", "Procgen Maze"),
    ("procgen:bigfish", "Procgen BigFish"),
]

def list_envs() -> tuple[list[tuple[str, str]], str]:
    """(curated (id, description) pairs, a note on how to spell any other id)."""
    note = (
        "Any Gymnasium id that renders rgb_array works too (e.g. ALE/<Game>-v5, MiniGrid-<Name>-v0, "
        "CarRacing-v3); Procgen games are spelled procgen:<game> "
        "(bigfish bossfight caveflyer chaser climber coinrun dodgeball fruitbot heist jumper leaper "
        "maze miner ninja plunder starpilot)."
    )
    return KNOWN_ENVS, note


class GymnasiumPixelEnv(PixelEnv):
    """Any Gymnasium env with an RGB observation or `rgb_array` rendering."""

    def __init__(self, env: Any, env_id: str, size: int, frame_from: str, action_meanings: list[str],
                 info_fns: dict[str, Callable[[dict], Any]]):
        self.env, self.env_id, self.size = env, env_id, size
        self._frame_from = frame_from  # "obs" | "obs_image" | "render"
        self.action_meanings = action_meanings
        self._info_fns = info_fns
        self.info_keys = list(info_fns)

    def _frame(self, obs: Any) -> np.ndarray:
        if self._frame_from == "obs":
            raw = obs
        elif self._frame_from == "obs_image":
            raw = obs["image"]
        else:
            raw = self.env.render()
            if raw is None:
                raise UserError(f"{self.env_id}: render() returned no image; it cannot be used as a pixel env")
        return resize_frame(raw, self.size)

    def _info(self, info: dict) -> dict:
        return {k: fn(info) for k, fn in self._info_fns.items()}

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(seed=seed)
        return self._frame(obs), self._info(info)

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(int(action))
        return self._frame(obs), float(reward), bool(terminated), bool(truncated), self._info(info)

    def raw_step(self, action: int) -> bool:
        _, _, terminated, truncated, _ = self.env.step(int(action))
        if self._frame_from == "render":
            self.env.render()  # rendering is part of producing a frame for these envs
        return bool(terminated or truncated)

    def close(self) -> None:
        self.env.close()


class MiniGridPixelEnv(GymnasiumPixelEnv):
    """MiniGrid and BabyAI: the mission text is the episode's words; BabyAI levels have an expert (the bot)."""

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        # BabyAI's level generator prints every rejected layout; a collector's log is not the place
        with contextlib.redirect_stdout(io.StringIO()):
            return super().reset(seed)

    @property
    def mission(self) -> str | None:
        text = getattr(self.env.unwrapped, "mission", None)
        return str(text) if text else None

    def expert(self):
        if not hasattr(self.env.unwrapped, "instrs"):  # only BabyAI levels carry parsed instructions
            return None
        from minigrid.utils.baby_ai_bot import BabyAIBot

        return _BotExpert(BabyAIBot(self.env.unwrapped))


class _BotExpert:
    """minigrid's BabyAI bot behind the `act()` of a collector policy."""

    def __init__(self, bot):
        self.bot = bot

    def act(self) -> int:
        return int(self.bot.replan())


def _is_rgb_box(space: Any) -> bool:
    shape = getattr(space, "shape", None)
    return (shape is not None and len(shape) == 3 and shape[2] in (3, 4)
            and getattr(space, "dtype", None) == np.uint8)


def _make_gymnasium(env_id: str, size: int, seed: int | None, view: str, **kw: Any) -> PixelEnv:
    import gymnasium as gym

    try:  # registering is idempotent; both are hard deps, but stay usable if one is broken
        import ale_py

        gym.register_envs(ale_py)
    except ImportError:
        pass
    try:
        import minigrid

        gym.register_envs(minigrid)
    except ImportError:
        pass

    try:
        spec = gym.spec(env_id)
    except gym.error.Error as e:
        raise UserError(
            f"unknown environment id {env_id!r} ({e.__class__.__name__}); "
            "`maskworld envs` lists known ids (any Gymnasium id, crafter, procgen:<game>)"
        ) from None

    if env_id.startswith("MiniGrid") or "minigrid" in str(spec.entry_point).lower():
        return _make_minigrid(env_id, size, seed, view, **kw)

    try:
        env = gym.make(env_id, render_mode="rgb_array", **kw)
    except TypeError:
        env = gym.make(env_id, **kw)
    except gym.error.Error as e:
        raise UserError(f"{env_id}: cannot create it with render_mode='rgb_array' ({e})") from None

    meanings: list[str]
    unwrapped = env.unwrapped
    if hasattr(unwrapped, "get_action_meanings"):
        meanings = list(unwrapped.get_action_meanings())
    elif isinstance(env.action_space, gym.spaces.Discrete):
        meanings = [f"ACTION_{i}" for i in range(int(env.action_space.n))]
    else:
        env.close()
        raise UserError(f"{env_id}: action space {env.action_space} is not Discrete; maskworld needs discrete actions")

    if _is_rgb_box(env.observation_space):
        frame_from = "obs"
    else:
        frame_from = "render"
        if env.render_mode != "rgb_array":
            env.close()
            raise UserError(f"{env_id}: has no pixel observation and does not render rgb_array; it cannot be used")

    info_fns: dict[str, Callable[[dict], Any]] = {}
    is_ale = env_id.startswith("ALE/") or "ale_py" in str(spec.entry_point)
    if is_ale:
        info_fns["lives"] = lambda info: int(info.get("lives", 0))
    if getattr(unwrapped, "agent_action_meanings", None) and getattr(unwrapped, "agents", 1) > 1:
        info_fns["agents_pos"] = lambda info: np.asarray(info["agents_pos"], dtype=np.int64)
    pe = GymnasiumPixelEnv(env, env_id, size, frame_from, meanings, info_fns)
    if "agents_pos" in info_fns:  # several agents act at once: the action is a joint index
        pe.agents, pe.agent_action_meanings = int(unwrapped.agents), list(unwrapped.agent_action_meanings)
    # ALE's reset(seed=...) reloads the ROM (~0.1 s): seed once, then let its RNG run on.
    pe.reseed_each_episode = not is_ale
    try:  # fail now, at validation time, rather than in a worker
        pe.reset(seed=seed)
    except UserError:
        env.close()
        raise
    return pe


def _make_minigrid(env_id: str, size: int, seed: int | None, view: str, **kw: Any) -> PixelEnv:
    import gymnasium as gym
    from minigrid.core.actions import Actions
    from minigrid.wrappers import RGBImgObsWrapper, RGBImgPartialObsWrapper

    if view not in ("partial", "full"):
        raise UserError(f"--view must be 'partial' or 'full', not {view!r}")
    env = gym.make(env_id, render_mode="rgb_array", **kw)
    base = env.unwrapped
    if view == "partial":
        cells = base.agent_view_size
        env = RGBImgPartialObsWrapper(env, tile_size=max(1, math.ceil(size / cells)))
    else:
        cells = max(base.width, base.height)
        env = RGBImgObsWrapper(env, tile_size=max(1, math.ceil(size / cells)))
    meanings = [a.name.upper() for a in Actions]
    info_fns = {
        "agent_pos": lambda _info: np.asarray(base.agent_pos, dtype=np.int64),
        "agent_dir": lambda _info: int(base.agent_dir),
    }
    pe = MiniGridPixelEnv(env, env_id, size, "obs_image", meanings, info_fns)
    pe.view = view
    pe.reset(seed=seed)
    return pe


def make_env(env_id: str, size: int = 64, seed: int | None = None, view: str = "partial", **kw: Any) -> PixelEnv:
    """Create a pixel env. Raises `UserError` for unknown ids or envs without pixels.

    The returned env has already been reset once (with `seed`) so that bad ids fail here.
    """
    if not isinstance(size, int) or size < 8:
        raise UserError(f"--size must be an integer >= 8, not {size!r}")
    if env_id == "crafter" or env_id.startswith("crafter:"):
        return CrafterPixelEnv(size=size, seed=seed, **kw)
    if env_id.startswith("procgen:"):
        return ProcgenPixelEnv(env_id, size=size, seed=seed, **kw)
    return _make_gymnasium(env_id, size, seed, view, **kw)


def room_cells(store_meta: dict) -> int:
    """Cells per side of the room of a multi-agent env's store (its `agents_pos` are in these cells): the env's
    own `size`, read by making the env the store was collected from."""
    env = make_env(store_meta["env_id"], int(store_meta.get("size", 64)), **(store_meta.get("env_kwargs") or {}))
    try:
        room = getattr(env.env.unwrapped, "size", None)
    finally:
        env.close()
    if not isinstance(room, int):
        raise UserError(f"{store_meta['env_id']} does not say its room's size in cells (env.unwrapped.size); "
                        "per-avatar positions need it")
    return room
