"""N dream envs stepped in one batched forward pass: a `gymnasium.vector.VectorEnv`.

    envs = gym.make_vec("maskworld/Dream-v0", num_envs=64, world="maskworld/worlds/default", max_episode_steps=100)
    obs, info = envs.reset(seed=0)                       # (64, 64, 64, 3) uint8
    obs, rew, term, trunc, info = envs.step(envs.action_space.sample())

Design choices:
- Each sub-env is a `DreamEnv` (its own np_random and session generator); a step gathers every live
  session and calls `Engine.step` once, so env i sees exactly what `DreamEnv` would alone with the
  same seed and actions (tested), and N envs cost one batched MaskGIT decode instead of N.
- `reset(seed=s)` seeds sub-env i with s + i (Gymnasium's convention); a list gives one seed each.
- `max_episode_steps` truncates inside the vector env (Gymnasium's TimeLimit counts the same way:
  truncated once the episode has taken that many steps, whether or not it also terminated).
- Autoreset (`autoreset_mode`, also in `metadata["autoreset_mode"]`, https://farama.org/Vector-Autoreset-Mode):
  * NEXT_STEP (Gymnasium's default): the step after an episode ended resets that sub-env, ignores its
    action and returns the new first frame with reward 0, terminated = truncated = False.
  * SAME_STEP: an ending sub-env is reset at once; the step returns the new first frame, the ending
    frame is in `info["final_obs"][i]` (and `info["final_info"]`). Every step is then a real transition,
    which suits imagined rollouts.
  * DISABLED: stepping an ended sub-env is an error; reset it with `reset(options={"reset_mask": m})`.
- The sub-envs' sessions are rows of one stepping engine of the vector env's own (`world/engine.py`): a step is
  one batched forward pass over the live rows, which work in place on one KV cache (nothing is stacked or
  copied per step), and a reset gives its row back before the next episode's session claims one.
- Resets are per sub-env (a prompt is tokenized and committed one session at a time); they are rare next
  to steps, and batching them would reach into the session's internals.
"""

from __future__ import annotations

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from maskworld.agents.dream_env import DreamEnv, resolve_world
from maskworld.world.engine import Engine
from maskworld.errors import UserError


class DreamVectorEnv(VectorEnv):
    def __init__(self, num_envs: int = 1, world=None, max_episode_steps: int | None = None,
                 autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP, render_mode: str | None = None,
                 start="auto", device: str | None = None):
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise UserError(f"num_envs must be a positive integer, not {num_envs!r}")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise UserError(f"max_episode_steps must be >= 1 (or None), not {max_episode_steps}")
        try:
            self.autoreset_mode = AutoresetMode(autoreset_mode)
        except ValueError:
            raise UserError(f"autoreset_mode {autoreset_mode!r} is not one of {[m.value for m in AutoresetMode]}") from None
        w = resolve_world(world, device)
        self.engine = Engine(w, rows=int(num_envs))
        self.envs = [DreamEnv(w, render_mode=render_mode, start=start, engine=self.engine) for _ in range(int(num_envs))]
        self.world, self.num_envs, self.render_mode = w, int(num_envs), render_mode
        self.max_episode_steps = max_episode_steps
        self.metadata = {**DreamEnv.metadata, "autoreset_mode": self.autoreset_mode}
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        s = self.single_observation_space.shape
        self._obs = np.zeros((self.num_envs, *s), np.uint8)
        self._elapsed = np.zeros(self.num_envs, np.int64)
        self._needs_reset = np.ones(self.num_envs, bool)  # an episode ended (or never began)

    # ---------------------------------------------------------------- reset
    def reset(self, *, seed=None, options: dict | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        mask = np.ones(self.num_envs, bool) if mask is None else np.asarray(mask, bool)
        if mask.shape != (self.num_envs,):
            raise UserError(f"reset_mask has shape {mask.shape}; expected ({self.num_envs},)")
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise UserError(f"{len(seeds)} seeds for {self.num_envs} envs")
        infos: dict = {}
        for i in np.flatnonzero(mask):
            self._obs[i], info = self.envs[i]._start(seeds[i], options)
            self._elapsed[i], self._needs_reset[i] = 0, False
            infos = self._add_info(infos, info, i)
        return self._obs.copy(), infos

    # ---------------------------------------------------------------- step
    def step(self, actions):
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,):
            raise UserError(f"actions have shape {actions.shape}; expected ({self.num_envs},), one per env")
        rewards = np.zeros(self.num_envs, np.float64)
        terms = np.zeros(self.num_envs, bool)
        truncs = np.zeros(self.num_envs, bool)
        infos: dict = {}
        live = []
        for i, env in enumerate(self.envs):
            if self._needs_reset[i]:
                if self.autoreset_mode == AutoresetMode.NEXT_STEP and env.session is not None:
                    self._obs[i], info = env._start(None, None)  # action ignored this step
                    self._elapsed[i], self._needs_reset[i] = 0, False
                    infos = self._add_info(infos, info, i)
                    continue
                raise UserError(f"env {i} needs reset() before step() (autoreset_mode {self.autoreset_mode.value})")
            live.append(i)
        acts = [self.envs[i]._check_step(actions[i]) for i in live]
        sessions = [self.envs[i].session for i in live]
        results = self.engine.step(sessions, acts) if sessions else []
        for i, (frame, reward, done) in zip(live, results):
            obs, rewards[i], terms[i], _, info = self.envs[i]._apply(frame, reward, done)
            self._elapsed[i] += 1
            truncs[i] = self.max_episode_steps is not None and self._elapsed[i] >= self.max_episode_steps
            ended = terms[i] or truncs[i]
            if ended and self.autoreset_mode == AutoresetMode.SAME_STEP:
                infos = self._add_info(infos, {"final_obs": obs, "final_info": info}, i)
                obs, info = self.envs[i]._start(None, None)
                self._elapsed[i] = 0
            else:
                self._needs_reset[i] = ended
            self._obs[i] = obs
            infos = self._add_info(infos, info, i)
        return self._obs.copy(), rewards, terms, truncs, infos

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return tuple(env.render() for env in self.envs)

    def close_extras(self, **kwargs):
        for env in self.envs:
            env.close()


def paired_envs(world, num_envs: int, seed: int = 0):
    """A `DreamVectorEnv` and `num_envs` single `DreamEnv`s on the same world, reset with the same seeds."""
    vec = DreamVectorEnv(num_envs, world=world)
    singles = [DreamEnv(world) for _ in range(num_envs)]
    vec.reset(seed=seed)
    for i, env in enumerate(singles):
        env.reset(seed=seed + i)
    return vec, singles


def bench_vector_env(world, num_envs: int = 64, iters: int = 5, warmup: int | None = None, seed: int = 0) -> dict:
    """Frames/s of `DreamVectorEnv` (one `step_many` per step) vs `num_envs` single `DreamEnv`s stepped one
    at a time, measured in the same run: rounds alternate (one vector step, then one step of every single
    env) so load drift on a shared machine hits both alike. Both start from the same seeds and take the
    same random actions. `warmup` steps (default: window - 1) first fill every session's context window,
    the steady state of play. Medians; a flat dict (`maskworld bench` style keys)."""
    import time

    import torch

    w = resolve_world(world)
    window = w.dynamics.cfg.window
    warmup = window - 1 if warmup is None else warmup
    vec, singles = paired_envs(w, num_envs, seed)
    rng = np.random.default_rng(seed)
    sync = torch.cuda.synchronize if w.device.type == "cuda" else (lambda: None)

    def vec_step(a):
        sync()
        t0 = time.perf_counter()
        vec.step(a)
        sync()
        return time.perf_counter() - t0

    def single_round(a):
        sync()
        t0 = time.perf_counter()
        for env, ai in zip(singles, a):
            env.step(ai)
        sync()
        return time.perf_counter() - t0

    t_vec, t_single = [], []
    for k in range(warmup + iters):
        a = rng.integers(0, w.num_actions, num_envs)
        tv, ts = vec_step(a), single_round(a)
        if k >= warmup:
            t_vec.append(tv)
            t_single.append(ts)
    mv, ms = float(np.median(t_vec)), float(np.median(t_single))
    return {
        "dream.num_envs": num_envs, "dream.iters": iters, "dream.warmup_steps": warmup, "dream.window": window,
        "dream.sampler_steps": w.sampler.steps, "dream.device": str(w.device), "dream.threads": torch.get_num_threads(),
        "dream.vector.ms_per_step": 1000 * mv, "dream.vector.fps": num_envs / mv,
        "dream.single.ms_per_step": 1000 * ms / num_envs, "dream.single.fps": num_envs / ms,
        "dream.speedup": ms / mv,
    }
