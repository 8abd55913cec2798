"""The Dyna loop: act in the real env, update the world on what happened, train the agent in the world.

    from maskworld.agents.dyna import train_agent
    agent, stats = train_agent(world, "MiniGrid-Empty-8x8-v0", real_steps=20_000, out="runs/agent_e8")

One round (IRIS / DreamerV3 alternate the same three phases):
1. collect `collect_every` real steps with the current policy into `RealReplay` (frames, actions, rewards);
2. `world_updates` gradient steps of the world's dynamics on clips of those real episodes mixed with the
   world's own data (maskworld.agents.world_update; 0 keeps the world frozen);
3. `updates_per_collect` actor-critic updates on batched imagined rollouts from real start frames
   (maskworld.agents.actor_critic._update).

Design choices:
- Real steps are the budget compared against model-free RL; `stats` counts the world's own training data
  too (`world_data_steps`, `total_real_steps`): it was real experience.
- One optimiser holds the agent (Adam) and the dynamics (its own LR and betas) as two param groups, so one
  atomic checkpoint (maskworld.train.checkpoint) holds both, plus the replay (`arrays.npz`), the
  counters, the return scale and every RNG. `--resume` continues from the last one; the real episode in
  progress at that moment is dropped (an env's state cannot be saved) and a new one starts.
- Start frames: never an episode's last frame (nothing follows it); a share `data_starts` from the
  world's own data (see actor_critic).
- A world changed by updates is saved as OUT/world (tokenizer, dynamics, prompts), never over the world
  it started from; `agent.json` names it, and `maskworld play OUT/world` finds the agent beside it.
- Progress (maskworld.progress): a bar over real steps on a terminal, a plain line every 30 s elsewhere; TensorBoard scalars in
  OUT/_work/tb/agent, x-axis = real steps.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
import time
from dataclasses import field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from maskworld.agents.actor_critic import ActorCritic, ActorCriticConfig, ReturnScale, _update, save_agent
from maskworld.agents.config import AgentTrainConfig
from maskworld.agents.dream_env import check_world_for_rl, resolve_world
from maskworld.agents.replay import RealReplay
from maskworld.agents.starts import env_kwargs, load_data_starts, real_env, sample_starts, world_data_steps, world_view
from maskworld.agents.world_update import WorldUpdater
from maskworld.errors import UserError
from maskworld.progress import Progress
from maskworld.train.checkpoint import latest_checkpoint, load_arrays, load_checkpoint, save_checkpoint

CKPT = "ckpt_agent"


def _optimizer(agent: nn.Module, updater: WorldUpdater | None, cfg: AgentTrainConfig) -> torch.optim.Optimizer:
    groups = [{"params": list(agent.parameters()), "lr": cfg.lr, "eps": 1e-5, "betas": (0.9, 0.999), "weight_decay": 0.0}]
    if updater is not None:
        groups.append({"params": updater.params(), "lr": cfg.world_lr, "eps": 1e-8, "betas": (0.9, 0.95), "weight_decay": 0.0})
    return torch.optim.AdamW(groups)  # weight_decay 0: the agent's group is exactly Adam


def _writer(work: Path | None):
    if work is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional for the library; the CLI's install has it
        return None
    return SummaryWriter(str(work / "tb" / "agent"))


def _save_world(world, src_path, dest: Path, stats: dict) -> Path:
    """The updated world as a world directory of its own (prompts copied from the one it started from)."""
    world.save(dest)
    if src_path is not None and (Path(str(src_path)) / "prompts.npz").exists():
        shutil.copyfile(Path(str(src_path)) / "prompts.npz", dest / "prompts.npz")
    world.update_model_card(dyna={"started_from": None if src_path is None else str(src_path),
                                  "world_updates": stats["world_update_steps"], "real_steps": stats["real_steps"]})
    return dest


def _resumed_config(last: Path, cfg: AgentTrainConfig) -> AgentTrainConfig:
    """The checkpoint's own settings; a setting given now (not the default) that differs is a clear error."""
    try:
        saved = AgentTrainConfig(**json.loads((last / "state.json").read_text())["config"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"checkpoint {last} has no readable settings ({e}); delete it to start over") from e
    default = AgentTrainConfig()
    clash = [f.name for f in dataclasses.fields(cfg)
             if getattr(cfg, f.name) != getattr(default, f.name) and getattr(cfg, f.name) != getattr(saved, f.name)]
    if clash:
        raise UserError("--resume continues a run with its own settings; these differ from it: "
                        + ", ".join(f"{k} {getattr(cfg, k)!r} (run: {getattr(saved, k)!r})" for k in clash)
                        + ". Drop them, or start a new run in another --out")
    return saved


@dataclasses.dataclass
class _Parts:
    """What a run acts and learns with, built once from its settings (a resumed run's: the checkpoint's)."""

    world: Any  # the world imagined in (a copy when the run updates it)
    src_path: Any  # the world directory the run started from (None: an in-memory world)
    cfg: AgentTrainConfig
    agent: ActorCritic
    updater: WorldUpdater | None
    modules: nn.ModuleDict
    opt: torch.optim.Optimizer
    scale: ReturnScale
    rng: np.random.Generator
    gen: torch.Generator
    view: str
    env: Any
    data_frames: np.ndarray | None


@dataclasses.dataclass
class _Progress:
    """What the loop changes; a checkpoint holds all of it but the real episode in progress."""

    replay: RealReplay = field(default_factory=RealReplay)
    steps: int = 0
    rounds: int = 0
    elapsed: float = 0.0
    ep_ret: float = 0.0
    episode_returns: list[float] = field(default_factory=list)
    log: list[dict] = field(default_factory=list)
    wm: dict = field(default_factory=dict)  # the last world update's metrics
    frame: np.ndarray | None = None


def _prepare(world, real_steps, cfg: AgentTrainConfig | None, device, out, resume: bool):
    """Checked settings and paths -> (world, cfg, out, work, last checkpoint or None); fails before anything is built."""
    cfg = cfg or AgentTrainConfig()
    cfg.check()
    world = resolve_world(world, device)
    check_world_for_rl(world)
    if not isinstance(real_steps, int) or real_steps < 1:
        raise UserError(f"real_steps must be an integer >= 1, not {real_steps!r}")
    out = None if out is None else Path(out)
    work = None if out is None else out / "_work"
    last = latest_checkpoint(work / CKPT, clean=True) if work is not None else None
    if last is not None and not resume:
        raise UserError(f"{out} already holds an agent run ({last}); pass --resume to continue it, or choose another --out")
    if resume and out is None:
        raise UserError("--resume needs the agent directory (--out) whose checkpoint to continue")
    if last is not None:
        cfg = _resumed_config(last, cfg)
    if cfg.world_updates > 0 and world.dynamics.cfg.has_memory:
        print("[agent] this world has memory M: world updates from real experience are not wired for it yet, "
              "the world stays frozen (world_updates = 0)")
        cfg = dataclasses.replace(cfg, world_updates=0)
    return world, cfg, out, work, last


def _build(world, cfg: AgentTrainConfig, seed: int, env_id, view, data) -> _Parts:
    """Seeded agent, world updater, optimiser, real env and data start frames, in the order that draws the seeds."""
    src_path = world.path
    if cfg.world_updates > 0:  # the updates change a copy: the caller's world (and resolve_world's cache) stay as they were
        world = copy.deepcopy(world)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    agent = ActorCritic(ActorCriticConfig(world.num_actions, world.meta.size, cfg.channels,
                                          action_factors=world.dynamics.cfg.action_factors)).to(world.device)
    updater = WorldUpdater(world, cfg.world_batch, cfg.world_real_share) if cfg.world_updates > 0 else None
    modules = nn.ModuleDict({"agent": agent, **({"dynamics": world.dynamics} if updater is not None else {})})
    opt = _optimizer(agent, updater, cfg)
    view = view or world_view(world)
    env = real_env(world, env_id, seed, view)  # a wrong env fails here, before any training
    data_frames = load_data_starts(world, data, cfg.max_data_frames, seed) if cfg.data_starts > 0 and cfg.context <= 1 else None
    return _Parts(world, src_path, cfg, agent, updater, modules, opt, ReturnScale(), rng, gen, view, env, data_frames)


def _restore(last: Path, p: _Parts, run: _Progress, real_steps: int) -> None:
    """Weights, optimiser, RNGs, replay and counters from the checkpoint `last` (the env is closed if it cannot load)."""
    try:
        st = load_checkpoint(last, p.modules, p.opt, p.rng)
        run.replay = RealReplay.from_state(load_arrays(last))
    except UserError:
        p.env.close()
        raise
    run.steps, run.rounds, run.elapsed = int(st["real_steps"]), int(st["rounds"]), float(st["elapsed_s"])
    run.episode_returns, run.log, p.scale.range = list(st["episode_returns"]), list(st["log"]), st["return_scale"]
    p.gen.set_state(torch.tensor(st["gen"], dtype=torch.uint8))
    if p.updater is not None:
        p.updater.steps = int(st["world_update_steps"])
    print(f"[agent] resumed from {last}: {run.steps}/{real_steps} real steps, {len(run.log)} updates "
          "(the real episode in progress then is dropped)")


def _collect(p: _Parts, run: _Progress, n: int) -> None:
    """Phase 1: `n` real steps with the current policy into the replay."""
    for _ in range(n):
        a = int(p.agent.act(run.frame[None], p.gen)[0])
        run.frame, r, term, trunc, _ = p.env.step(a)
        run.steps += 1
        run.ep_ret += r
        run.replay.add(run.frame, a, r, term)
        if term or trunc:
            run.episode_returns.append(run.ep_ret)
            run.ep_ret = 0.0
            run.frame, _ = p.env.reset(seed=int(p.rng.integers(2**31 - 1)))
            run.replay.add(run.frame, -1)


def _update_world(p: _Parts, run: _Progress) -> None:
    """Phase 2: the world learns from the real experience (nothing when it stays frozen)."""
    if p.updater is None:
        return
    real = run.replay.token_view(p.world)
    for _ in range(p.cfg.world_updates):
        run.wm = p.updater.step(real, p.opt, p.rng) or run.wm


def _update_agent(p: _Parts, run: _Progress) -> None:
    """Phase 3: the agent learns in the world, from real start frames (a share `data_starts` from the world's data)."""
    cfg = p.cfg
    usable = run.replay.usable_starts()
    for _ in range(cfg.updates_per_collect):
        starts, start_actions = sample_starts(run.replay.frames, run.replay.acts_in, cfg.batch, cfg.context, p.rng, usable)
        if p.data_frames is not None:  # replace a share of the batch with data frames
            k = round(cfg.data_starts * cfg.batch)
            starts[:k] = p.data_frames[p.rng.integers(0, len(p.data_frames), k)]
        m = _update(p.agent, p.opt, p.world, starts, start_actions, cfg, p.scale, p.gen, p.rng)
        m["real_steps"] = run.steps
        run.log.append(m)


def _log_round(run: _Progress, writer, bar) -> dict:
    """TensorBoard scalars and the bar's postfix of the round just done -> the metrics shown."""
    recent = float(np.mean(run.episode_returns[-10:])) if run.episode_returns else float("nan")
    log, wm = run.log, run.wm
    shown = {"real_return": recent, **({k: log[-1][k] for k in ("imagined_reward", "entropy")} if log else {}),
             **({"world_acc": wm["world_acc"]} if wm else {})}
    if writer is not None:
        for k, v in {**(log[-1] if log else {}), **wm, "real_return_last10": recent}.items():
            if k != "real_steps" and np.isfinite(v):
                writer.add_scalar(f"agent/{k}", v, run.steps)
    bar.set_metrics(**shown)
    return shown


def _checkpoint(work: Path, p: _Parts, run: _Progress, t0: float) -> None:
    """One atomic checkpoint: agent (and dynamics), optimiser, replay, counters, return scale, settings and RNGs."""
    save_checkpoint(work / CKPT, p.modules, p.opt, run.rounds, {
        "real_steps": run.steps, "rounds": run.rounds, "elapsed_s": time.time() - t0,
        "episode_returns": run.episode_returns, "log": run.log, "return_scale": p.scale.range,
        "gen": p.gen.get_state().tolist(), "world_update_steps": p.updater.steps if p.updater else 0,
        "config": dataclasses.asdict(p.cfg)}, p.rng, arrays=run.replay.state())


def _stats(p: _Parts, run: _Progress, t0: float, env_id, seed: int, command) -> dict:
    """The run's summary, saved in agent.json and returned by train_agent."""
    data_steps = world_data_steps(p.world)
    src = str(p.src_path) if p.src_path else None
    return {"real_steps": run.steps, "world_data_steps": data_steps, "total_real_steps": run.steps + data_steps,
            "view": p.view, "data_start_frames": 0 if p.data_frames is None else len(p.data_frames),
            "real_episodes": len(run.episode_returns),
            "real_return_last10": float(np.mean(run.episode_returns[-10:])) if run.episode_returns else None,
            "updates": len(run.log), "world_update_steps": p.updater.steps if p.updater else 0,
            "world_last": run.wm, "train_s": round(time.time() - t0, 1), "last": run.log[-1] if run.log else {},
            "config": dataclasses.asdict(p.cfg), "world": src, "world_started_from": src,
            "env_id": env_id or p.world.meta.env_id, "env_kwargs": env_kwargs(p.world), "seed": seed, "command": command}


def train_agent(world, env_id: str | None = None, real_steps: int = 10_000, cfg: AgentTrainConfig | None = None,
                seed: int = 0, device: str | None = None, out=None, progress: bool = True, view: str | None = None,
                data=None, command: str | None = None, resume: bool = False, ckpt_minutes: float = 5.0):
    """Train an actor-critic in `world`'s imagination with `real_steps` steps of `env_id` (default: the world's
    own env). -> (agent, stats). With `out`: agent.json + agent.safetensors there, checkpoints and TensorBoard
    in out/_work, the updated world in out/world. view: MiniGrid view of the real env (default: the world's
    data's); data: the world's data store for start frames (default: the path on its model card)."""
    world, cfg, out, work, last = _prepare(world, real_steps, cfg, device, out, resume)
    p = _build(world, cfg, seed, env_id, view, data)
    run = _Progress()
    if last is not None:
        _restore(last, p, run, real_steps)
    p.world.dynamics.eval()
    writer = _writer(work)
    run.frame, _ = p.env.reset(seed=seed if last is None else int(p.rng.integers(2**31 - 1)))
    run.replay.add(run.frame, -1)
    t0 = time.time() - run.elapsed
    last_ckpt = time.time()
    bar = Progress(total=real_steps, initial=run.steps, unit="steps", desc="agent", bar=progress)
    try:
        while run.steps < real_steps:
            n = min(cfg.collect_every, real_steps - run.steps)
            _collect(p, run, n)
            bar.update(n)
            _update_world(p, run)
            _update_agent(p, run)
            run.rounds += 1
            _log_round(run, writer, bar)
            if work is not None and (time.time() - last_ckpt > 60 * ckpt_minutes or run.steps >= real_steps):
                _checkpoint(work, p, run, t0)
                last_ckpt = time.time()
    finally:
        bar.close()
        p.env.close()
        if writer is not None:
            writer.close()
    stats = _stats(p, run, t0, env_id, seed, command)
    if out is not None:
        if p.updater is not None:
            stats["world"] = str(_save_world(p.world, p.src_path, out / "world", stats))
        save_agent(p.agent, out, stats)
    return p.agent, stats
