"""The world as a Gymnasium env: `gymnasium.make("maskworld/Dream-v0", world=PATH)`.

    import gymnasium as gym, maskworld
    env = gym.make("maskworld/Dream-v0", world="maskworld/worlds/default", render_mode="rgb_array",
                   max_episode_steps=100)
    obs, info = env.reset(seed=0)                  # (64, 64, 3) uint8: a start frame from prompts.npz
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

Design choices:
- One episode is one `Session`. The observation is the world's own frame (the tokenizer's rendering of
  the decoded tokens, also for the start frame), so an agent sees the same kind of image at every step.
- Reward is the sign head's most likely class (-1, 0, +1); `terminated` is the termination head
  (logit > 0). The dream has no clock: truncation is Gymnasium's `TimeLimit` (`max_episode_steps`).
- reset(seed) seeds the env's `np_random`, which picks the start frame and the session's own generator
  seed; so (seed, actions) fixes the whole episode, stepped alone or in `DreamVectorEnv`'s batch.
- Start frames (`start=`): "auto" = the world's prompts.npz if it has one, else imagined from nothing;
  "prompts"; "generate"; or your own image / frames (N,H,W,3) / .npz / image path to draw from.
  `reset(options={"prompt": image})` overrides it for one episode.
- A world whose reward and termination heads never saw a reward (a world learned from action-free
  video, or a model without the heads) is refused with a UserError: an agent would learn nothing.
- One `World` per (directory, device) is loaded once per process and shared: N envs (SB3's DummyVecEnv,
  `make_vec`) hold one copy of the weights. Inference never writes to it.
- The stepping is split into `_start` / `_apply` so `DreamVectorEnv` runs the same code around one
  `world.step_many` call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from maskworld import worlds
from maskworld.errors import UserError
from maskworld.models.reward_values import class_values
from maskworld.world.frames import as_uint8_frame
from maskworld.world.world import World, load_world

START_MODES = ("auto", "prompts", "generate")
_WORLDS: dict[tuple, Any] = {}


def resolve_world(world, device=None):
    """A `World`, or a world directory (str/Path; "default" = the shipped world) loaded once per process."""
    if isinstance(world, World):
        return world
    if world is None:
        raise UserError('maskworld/Dream-v0 needs a world: gym.make("maskworld/Dream-v0", world="path/to/world")')
    if not isinstance(world, (str, Path)):
        raise UserError(f"world={world!r} is neither a World nor a world directory path")
    path = worlds.locate(world)  # a directory, or a shipped world's name
    cfg = path / "world.json"
    stamp = cfg.stat().st_mtime_ns if cfg.exists() else None
    key = (str(path.resolve()), str(device), stamp)
    if key not in _WORLDS:
        _WORLDS[key] = load_world(path, device=device)  # raises a UserError naming what is wrong
    return _WORLDS[key]


def check_world_for_rl(world) -> None:
    """Refuse worlds whose reward/termination heads cannot drive an agent."""
    dyn = world.dynamics
    head_r, head_d = getattr(dyn, "reward_head", None), getattr(dyn, "term_head", None)
    classes = len(class_values(getattr(dyn.cfg, "reward_values", None)))
    if head_r is None or head_d is None or getattr(head_r, "out_features", 0) != classes or \
            getattr(head_d, "out_features", 0) != 1:
        raise UserError(
            f"world {world.path or ''} has no reward head of {classes} classes and termination head; "
            "retrain it with `maskworld train world` on environment data to use it as an RL env"
        )
    data = world.meta.model_card.get("data", {}) if isinstance(world.meta.model_card, dict) else {}
    if not world.meta.has_actions or data.get("env_id") == "video":
        raise UserError(
            f"world {world.path or ''} was learned from action-free video: its actions are latent codes and its reward "
            "and termination heads never saw a reward; train a world on `maskworld collect` data to train agents in it"
        )


def load_start_frames(world, start) -> np.ndarray | None:
    """-> uint8 frames (N,S,S,3) to draw start frames from, or None to imagine the first frame."""
    size = world.meta.size
    if isinstance(start, str) and start in START_MODES:
        if start == "generate":
            return None
        f = world.path / "prompts.npz" if world.path is not None else None
        if f is None or not f.exists():
            if start == "auto":
                return None
            raise UserError(f"world {world.path} has no prompts.npz; pass start='generate' or start=<image or frames>")
        start = f
    if isinstance(start, (str, Path)) and str(start).endswith(".npz"):
        try:
            with np.load(start) as z:
                start = z["frames"] if "frames" in z.files else z[z.files[0]]
        except Exception as e:
            raise UserError(f"cannot read start frames from {start} ({e}); expected an .npz with uint8 frames (N,H,W,3)") from e
    if isinstance(start, np.ndarray) and start.ndim == 4:
        if len(start) == 0:
            raise UserError("start frames are empty; give at least one (H,W,3) frame")
        return np.stack([as_uint8_frame(f, size) for f in start])
    if isinstance(start, str) and not Path(start).exists():
        raise UserError(f"start={start!r}: not one of {START_MODES} and not an existing image or .npz file")
    return as_uint8_frame(start, size)[None]


class DreamEnv(gym.Env):
    """A world model as a Gymnasium env: observations (S,S,3) uint8, actions Discrete(world.num_actions)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, world=None, render_mode: str | None = None, start="auto", device: str | None = None,
                 engine=None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise UserError(f"render_mode {render_mode!r} is not supported; use 'rgb_array' or None")
        self.world = resolve_world(world, device)
        check_world_for_rl(self.world)
        self.render_mode = render_mode
        self._starts = load_start_frames(self.world, start)
        s = self.world.meta.size
        self.observation_space = spaces.Box(0, 255, (s, s, 3), np.uint8)
        self.action_space = spaces.Discrete(self.world.num_actions)
        self.session = None
        self._engine = engine
        """The stepping engine whose row the episode's session is (None: the world's shared one)."""
        self._obs: np.ndarray | None = None

    # ---------------------------------------------------------------- shared with DreamVectorEnv
    def _start(self, seed: int | None, options: dict | None) -> tuple[np.ndarray, dict]:
        """Begin an episode: seed np_random, pick a start frame, open a session."""
        super().reset(seed=seed)
        prompt, index = None, -1
        if options and options.get("prompt") is not None:
            prompt = options["prompt"]
        elif self._starts is not None:
            index = int(self.np_random.integers(len(self._starts)))
            prompt = self._starts[index]
        session_seed = int(self.np_random.integers(2**31 - 1))
        self.session = None  # give the old episode's engine row back first: the new session reuses it
        self.session = self.world.session(prompt=prompt, seed=session_seed, engine=self._engine)
        self._obs = np.array(self.session.frame, dtype=np.uint8)
        return self._obs.copy(), {"prompt_index": index}

    def _check_step(self, action) -> int:
        if self.session is None:
            raise UserError("call reset() before step()")
        if isinstance(action, np.ndarray) and action.shape == ():
            action = action.item()
        return self.session.check_action(action)  # a UserError naming the valid actions

    def _apply(self, frame: np.ndarray, reward: float, done: bool):
        self._obs = np.array(frame, dtype=np.uint8)
        return self._obs.copy(), float(reward), bool(done), False, {}

    # ---------------------------------------------------------------- Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        return self._start(seed, options)

    def step(self, action):
        a = self._check_step(action)
        frame, reward, done = self.session.engine.step([self.session], [a])[0]
        return self._apply(frame, reward, done)

    def render(self):
        if self.render_mode == "rgb_array":
            return None if self._obs is None else self._obs.copy()
        return None

    def close(self):
        self.session = None
