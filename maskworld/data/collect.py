"""Collect episodes from an environment into an episode store, with several envs in parallel.

    maskworld collect --env ALE/Breakout-v5 --steps 100000 --out data/breakout --num-envs 2

Design choices:
- **Workers, whole episodes.** Each of `--num-envs` worker processes owns one env (made by
  `maskworld.envs.make_env`, frames resized in the worker) and sends complete episodes through a
  queue; the parent only stores them. Whole episodes (not vector-env steps with auto-reset) keep
  episode boundaries trivial and the parent idle most of the time. `--num-envs 1` runs inline.
- **Exact step budget.** `--steps N` is the number of transitions in the store. The steps still
  missing are split evenly among workers; a worker's last episode is cut at its budget and
  marked `truncated`.
- **Seeds.** Episode k of partition i of n (`--shard i/n`) has global index g = k*n + i and env
  seed `SeedSequence([seed, g])`; the policy RNG is seeded with (seed, g) too. Partitions never
  share a g, so `--shard 0/2` and `--shard 1/2` make disjoint episodes that `maskworld data
  merge` joins. Worker w of K takes k = k0 + w, k0 + w + K, ... Where a new seed means a
  rebuild (procgen ~0.3 s, ALE reloads its ROM ~0.1 s: `env.reseed_each_episode` is False) only
  each worker's first episode is seeded; later ones follow from the env's own RNG (the manifest
  records `seed: null` for them), which is still deterministic per (seed, shard, num-envs).
- **Stored in order.** Each worker has its own queue and the parent takes episodes from them in turn (k0, k0 + 1,
  ...), not as they arrive, so a store's episode ids, and the train/held-out split drawn from them
  (`store.split_ids`), are the same every time one command runs: two collections by the same command hold the
  same held-out episodes, and a world trained on one is evaluated on episodes it never saw. (Stored as they
  arrived, the faster worker's episodes would take lower ids, and a second collection would put training episodes
  into the held-out split.) A worker runs at most a few episodes ahead of its turn (its queue's size), so memory
  stays bounded.
- **Resume.** Rerunning the same command on the same `--out` counts the stored transitions,
  collects only what is missing, and starts at k0 = 1 + the largest k stored, so seeds are fresh.
  A different env/size/view/policy/seed/shard on an existing store is refused.
- **Honest speed.** Before collecting, a single env is stepped raw (no resize, no storage) for
  ~0.5 s; the end report gives stored frames/s over the whole run and the ratio to that raw rate.
- **Crash safety** comes from the store (atomic shards + manifest); workers die with the parent
  (PR_SET_PDEATHSIG on Linux, plus a parent-pid check).

Policies (`--policy`): `maskworld/data/policies.py`.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_mod
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maskworld.data.policies import Policy, choose_policy, make_policy, parse_policy
from maskworld.data.store import MANIFEST, Episode, EpisodeStore, StoreWriter
from maskworld.envs import make_env
from maskworld.errors import UserError
from maskworld.progress import Progress
from maskworld.version import __version__ as version


@dataclass
class CollectConfig:
    env_id: str
    """Environment id (see `maskworld envs`)."""
    steps: int
    """Transitions the store should hold when done (resume collects only the missing ones)."""
    out: str
    """Store directory."""
    policy: str = "random"
    """random | sticky | explore | bot, or a mix such as bot:0.7,explore:0.3 (see module docstring)."""
    num_envs: int = 1
    """Worker processes, one env each."""
    seed: int = 0
    size: int = 64
    view: str = "partial"
    """MiniGrid only: partial (egocentric) or full."""
    max_episode_steps: int | None = None
    """Cut episodes at this many steps (truncated=True)."""
    shard: tuple[int, int] = (0, 1)
    """(i, n): this run makes partition i of n of the episode seeds."""
    episodes_per_shard: int = 64
    frames_per_shard: int = 4096
    progress: bool = True
    bench_seconds: float = 0.5
    """Duration of the raw single-env step-rate measurement."""
    env_kwargs: dict = field(default_factory=dict)
    command: str = ""


# ---------------------------------------------------------------- seeds and episodes


def episode_seed(seed: int, g: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(g)]).generate_state(1)[0] & 0x7FFFFFFF)


def run_episode(env: Any, policy: Policy, budget: int, max_steps: int | None, seed: int | None) -> Episode:
    """Roll out one episode of at most min(budget, max_steps) transitions."""

    frame, info = env.reset(seed=seed)
    policy.start(env)
    keys = env.info_keys
    frames, actions, rewards, terms, truncs = [frame], [], [], [], []
    infos = {k: [info[k]] for k in keys}
    limit = budget if max_steps is None else min(budget, max_steps)
    while len(actions) < limit:
        a = policy.act()
        frame, r, term, trunc, info = env.step(a)
        policy.saw(not np.array_equal(frame, frames[-1]))
        frames.append(frame)
        actions.append(a)
        rewards.append(r)
        terms.append(term)
        if not (term or trunc) and len(actions) >= limit:
            trunc = True  # cut by --max-episode-steps or by the step budget
        truncs.append(trunc)
        for k in keys:
            infos[k].append(info[k])
        if term or trunc:
            break
    return Episode.from_lists(frames, actions, rewards, terms, truncs, infos)


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _produce(wid: int, cfg: CollectConfig, k0: int, budget: int, env: Any = None):
    """Worker body as a generator of messages: ("ready", wid, when), ("ep", wid, episode, record), ("done", wid).

    `when` is `time.monotonic()` (one clock for every process of the machine): the parent reads a worker's
    messages only in its turn, so it needs to be told when the worker was ready.

    `env`: an env already made (inline mode reuses the parent's, crafter takes ~1 s to build).
    """

    n_shards, i_shard = cfg.shard[1], cfg.shard[0]
    mix = parse_policy(cfg.policy)
    k = k0 + wid
    first = True
    try:
        while budget > 0:
            g = k * n_shards + i_shard
            seed = episode_seed(cfg.seed, g)
            just_made = False
            if env is None:
                env = make_env(cfg.env_id, cfg.size, seed=seed, view=cfg.view, **cfg.env_kwargs)
                just_made = True
            if first:
                yield ("ready", wid, time.monotonic())
            reset_seed = seed if (env.reseed_each_episode or first) else None
            first = False
            rng = np.random.default_rng([cfg.seed, g])
            name = choose_policy(mix, rng)
            policy = make_policy(name, env, rng)
            # make_env already reset with this seed; for envs where reseeding is a rebuild (ALE ROM
            # reload, procgen), continue from that state instead of paying for it twice.
            skip = just_made and not env.reseed_each_episode
            ep = run_episode(env, policy, budget, cfg.max_episode_steps, None if skip else reset_seed)
            budget -= len(ep)
            record = {"k": k, "seed_index": g, "seed": reset_seed}
            if len(mix) > 1:
                record["policy"] = name
            if env.mission is not None:
                record["mission"] = env.mission
            yield ("ep", wid, ep, record)
            k += cfg.num_envs
    finally:
        if env is not None:
            env.close()
    if first:
        yield ("ready", wid, time.monotonic())
    yield ("done", wid)


def _worker(wid: int, cfg: CollectConfig, k0: int, budget: int, q: Any, parent: int) -> None:
    """Process body: send each message of `_produce` to the parent's queue."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    try:
        for msg in _produce(wid, cfg, k0, budget):
            if os.getppid() != parent:  # parent gone (and no PDEATHSIG): stop quietly
                return
            q.put(msg)
    except UserError as e:
        q.put(("error", wid, True, str(e)))
    except BaseException as e:  # report, don't leave the parent waiting
        import traceback

        q.put(("error", wid, False, f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))


class _InlineQueue:
    """Queue stand-in for a single env: the producer runs inside the parent, one episode at a time."""

    def __init__(self, cfg: CollectConfig, k0: int, budget: int, env: Any = None):
        self.gen = _produce(0, cfg, k0, budget, env)

    def get(self, timeout: float | None = None) -> Any:
        return next(self.gen)


# ---------------------------------------------------------------- the command


def measure_raw_rate(env: Any, seconds: float, seed: int) -> float:
    """Raw single-env steps/s: `env.raw_step` with uniform random actions, resets not timed.

    The first 50 steps are not timed either: renderers fill caches then (MiniGrid tiles), which
    would understate the raw rate and flatter the ratio.
    """
    rng = np.random.default_rng(seed)
    for _ in range(50):
        if env.raw_step(int(rng.integers(env.num_actions))):
            env.reset()
    steps, spent = 0, 0.0
    while spent < seconds or steps < 50:
        t = time.perf_counter()
        done = env.raw_step(int(rng.integers(env.num_actions)))
        spent += time.perf_counter() - t
        steps += 1
        if done:
            env.reset()
    return steps / spent


def _meta(cfg: CollectConfig, env: Any) -> dict:
    return {
        "env_id": cfg.env_id, "size": cfg.size, "view": env.view,
        "action_meanings": list(env.action_meanings), "num_actions": env.num_actions,
        "has_actions": True, "info_keys": list(env.info_keys), "has_text": env.mission is not None,
        **({"agents": env.agents, "agent_action_meanings": list(env.agent_action_meanings)} if env.agents > 1 else {}),
        "policy": cfg.policy, "seed": cfg.seed, "shard": f"{cfg.shard[0]}/{cfg.shard[1]}",
        "max_episode_steps": cfg.max_episode_steps, "env_kwargs": cfg.env_kwargs,
        "command": cfg.command, "source": "collect", "maskworld_version": version,
    }


def _check_resume(out: str, meta: dict) -> None:
    old = EpisodeStore(out).meta
    for k in ("env_id", "size", "view", "policy", "seed", "shard", "max_episode_steps", "action_meanings"):
        if k == "view" and meta.get(k) is None:  # views apply to MiniGrid only
            continue
        if old.get(k) != meta.get(k):
            raise UserError(f"{out} already holds data collected with {k}={old.get(k)!r}, this run has {meta.get(k)!r}; "
                            "rerun with the original settings to resume, or choose another --out")
    was, now = old.get("env_kwargs") or {}, meta.get("env_kwargs") or {}
    if was != now:
        raise UserError(f"{out} already holds data collected with env options {was or 'none'}, this run has "
                        f"{now or 'none'}; give the original ones to resume (an ALE store with none was collected "
                        "with v5's own sticky actions: --sticky-actions 0.25), or choose another --out")


def collect(cfg: CollectConfig) -> dict:
    """Fill `cfg.out` up to `cfg.steps` transitions. Returns stats (frames, seconds, rates)."""
    _check_config(cfg)  # everything is validated before anything is created on disk
    env, meta, exists, raw_rate = _open_env(cfg)
    stored, k0 = _resume_point(cfg.out) if exists else (0, 0)
    remaining = cfg.steps - stored
    stats = {"raw_steps_per_s": raw_rate, "frames": 0, "steps": 0, "episodes": 0, "seconds": 0.0,
             "resumed_from": stored, "num_envs": cfg.num_envs}
    if remaining <= 0:
        env.close()
        print(f"{cfg.out} already holds {stored} steps (>= --steps {cfg.steps}); nothing to collect")
        return stats
    K = min(cfg.num_envs, remaining)
    budgets = [remaining // K + (1 if w < remaining % K else 0) for w in range(K)]
    t0 = time.monotonic()
    queues, procs = _start_workers(cfg, env, k0, budgets)
    try:
        t_ready = _drain(cfg, meta, queues, procs, remaining, stats)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join(timeout=5)
    t1 = time.monotonic()
    stats["seconds"] = t1 - t0
    stats["frames_per_s"] = stats["frames"] / max(t1 - t0, 1e-9)
    if t_ready is not None:
        stats["frames_per_s_after_startup"] = stats["frames"] / max(t1 - t_ready, 1e-9)
    stats["ratio"] = stats["frames_per_s"] / raw_rate
    return stats


def _check_config(cfg: CollectConfig) -> None:
    if cfg.steps <= 0:
        raise UserError(f"--steps must be positive, not {cfg.steps}")
    if cfg.num_envs < 1:
        raise UserError(f"--num-envs must be >= 1, not {cfg.num_envs}")
    i, n = cfg.shard
    if not (n >= 1 and 0 <= i < n):
        raise UserError(f"--shard must be i/n with 0 <= i < n, not {i}/{n}")
    parse_policy(cfg.policy)
    if cfg.max_episode_steps is not None and cfg.max_episode_steps < 1:
        raise UserError("--max-episode-steps must be >= 1")
    if "://" in cfg.out and not cfg.out.startswith("file://"):
        raise UserError(f"--out must be a local directory, not {cfg.out}")


def _open_env(cfg: CollectConfig):
    """The validation env (the inline worker's too) -> (env, store meta, whether OUT exists, raw env steps/s)."""
    env = make_env(cfg.env_id, cfg.size, seed=episode_seed(cfg.seed, 2**31 + cfg.shard[0]), view=cfg.view, **cfg.env_kwargs)
    try:
        if any(name == "bot" for name, _ in parse_policy(cfg.policy)):
            make_policy("bot", env, np.random.default_rng(0)).start(env)  # refused here if no expert
        meta = _meta(cfg, env)
        exists = os.path.exists(os.path.join(cfg.out, MANIFEST))
        if exists:
            _check_resume(cfg.out, meta)
        return env, meta, exists, measure_raw_rate(env, cfg.bench_seconds, cfg.seed)
    except BaseException:
        env.close()
        raise


def _resume_point(out: str) -> tuple[int, int]:
    """-> (transitions already stored, the next episode counter)."""
    old = EpisodeStore(out)
    ks = [old.entry(e).get("k", -1) for e in old.episode_ids]
    return old.num_transitions, 1 + max(ks, default=-1)


def _start_workers(cfg: CollectConfig, env, k0: int, budgets: list[int]):
    """-> (one message queue per worker, worker processes): inline for one env, forked workers for several."""
    K = len(budgets)
    if K == 1:  # inline: the validation env is reused (its first episode is reseeded)
        return [_InlineQueue(cfg, k0, budgets[0], env)], []
    env.close()  # each worker builds its own (fork-safety of emulators is not guaranteed)
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    queues = [ctx.Queue(maxsize=4) for _ in range(K)]
    procs = []
    for w in range(K):
        p = ctx.Process(target=_worker, args=(w, cfg, k0, budgets[w], queues[w], os.getpid()), daemon=True)
        p.start()
        procs.append(p)
    return queues, procs


def _next_message(q, procs, bar: Progress, wait: float):
    """The next message of one worker's queue; wakes every `wait` s to keep the progress line alive and to notice
    a worker that died without a word (killed)."""
    while True:
        try:
            return q.get(timeout=wait)
        except queue_mod.Empty:
            bar.update(0)
            dead = [p for p in procs if not p.is_alive() and p.exitcode not in (0, None)]
            if dead:
                raise RuntimeError(f"collect worker died with exit code {dead[0].exitcode}") from None


def _drain(cfg: CollectConfig, meta: dict, queues: list, procs, remaining: int, stats: dict) -> float | None:
    """Store the workers' episodes in k order (worker 0, 1, ..., K-1, 0, ...: see the module docstring), with
    progress. -> when every worker was ready (or None)."""
    turn, ready = deque(range(len(queues))), []
    with StoreWriter(cfg.out, meta, cfg.episodes_per_shard, cfg.frames_per_shard, resume=True) as writer, \
            Progress(total=remaining, desc=f"collect {cfg.env_id}", unit="steps", bar=cfg.progress) as bar:
        # wake at least once per progress interval: long episodes (or slow worker start-up) must not
        # leave a redirected log silent
        wait = min(5.0, max(0.05, bar.interval))
        while turn:
            msg = _next_message(queues[turn[0]], procs, bar, wait)
            kind = msg[0]
            if kind == "ready":
                ready.append(msg[2])
            elif kind == "ep":
                _, _, ep, extra = msg
                writer.add(ep, **extra)
                stats["steps"] += len(ep)
                stats["frames"] += len(ep) + 1
                stats["episodes"] += 1
                bar.update(len(ep), episodes=stats["episodes"])
                turn.rotate(-1)
            elif kind == "done":
                turn.popleft()
            elif kind == "error":
                _, wid, is_user, text = msg
                if is_user:
                    raise UserError(text)
                raise RuntimeError(f"collect worker {wid} failed: {text}")
    return max(ready) if len(ready) == len(queues) else None


def format_stats(stats: dict, out: str) -> str:
    if stats["frames"] == 0:
        return ""
    lines = [
        f"stored {stats['episodes']} episodes, {stats['steps']} steps ({stats['frames']} frames) in {out} "
        f"in {stats['seconds']:.2f} s with {stats['num_envs']} env(s)",
        f"stored frames/s: {stats['frames_per_s']:.0f} end to end"
        + (f" ({stats['frames_per_s_after_startup']:.0f} after env start-up)" if "frames_per_s_after_startup" in stats else ""),
        f"raw env steps/s (one env, no resize, no storage, same run): {stats['raw_steps_per_s']:.0f}",
        f"ratio stored/raw: {100 * stats['ratio']:.0f}%",
    ]
    return "\n".join(lines)
