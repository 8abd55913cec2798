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
- Progress: a tqdm bar over real steps (a line every 30 s without one); TensorBoard scalars in
  OUT/_work/tb/agent, x-axis = real steps.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from maskworld.agents.actor_critic import ActorCritic, ActorCriticConfig, AgentTrainConfig, ReturnScale, _update, save_agent
from maskworld.agents.dream_env import check_world_for_rl, resolve_world
from maskworld.agents.replay import RealReplay
from maskworld.agents.starts import load_data_starts, real_env, sample_starts, world_data_steps, world_view
from maskworld.agents.world_update import WorldUpdater
from maskworld.errors import UserError
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


def train_agent(world, env_id: str | None = None, real_steps: int = 10_000, cfg: AgentTrainConfig | None = None,
                seed: int = 0, device: str | None = None, out=None, progress: bool = True, view: str | None = None,
                data=None, command: str | None = None, resume: bool = False, ckpt_minutes: float = 5.0):
    """Train an actor-critic in `world`'s imagination with `real_steps` steps of `env_id` (default: the world's
    own env). -> (agent, stats). With `out`: agent.json + agent.safetensors there, checkpoints and TensorBoard
    in out/_work, the updated world in out/world. view: MiniGrid view of the real env (default: the world's
    data's); data: the world's data store for start frames (default: the path on its model card)."""
    from tqdm import tqdm

    cfg = cfg or AgentTrainConfig()
    cfg.check()
    world = resolve_world(world, device)
    check_world_for_rl(world)
    if not isinstance(real_steps, int) or real_steps < 1:
        raise UserError(f"real_steps must be an integer >= 1, not {real_steps!r}")
    out = None if out is None else Path(out)
    work = None if out is None else out / "_work"
    last = latest_checkpoint(work / CKPT) if work is not None else None
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
    src_path = world.path
    if cfg.world_updates > 0:  # the updates change a copy: the caller's world (and resolve_world's cache) stay as they were
        world = copy.deepcopy(world)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    agent = ActorCritic(ActorCriticConfig(world.num_actions, world.meta.size, cfg.channels)).to(world.device)
    updater = WorldUpdater(world, cfg.world_batch, cfg.world_real_share) if cfg.world_updates > 0 else None
    modules = nn.ModuleDict({"agent": agent, **({"dynamics": world.dynamics} if updater is not None else {})})
    opt = _optimizer(agent, updater, cfg)
    scale = ReturnScale()
    view = view or world_view(world)
    env = real_env(world, env_id, seed, view)  # a wrong env fails here, before any training
    data_frames = load_data_starts(world, data, cfg.max_data_frames, seed) if cfg.data_starts > 0 and cfg.context <= 1 else None

    replay = RealReplay()
    steps, rounds, elapsed, ep_ret = 0, 0, 0.0, 0.0
    episode_returns: list[float] = []
    log: list[dict] = []
    if last is not None:
        try:
            st = load_checkpoint(last, modules, opt, rng)
            replay = RealReplay.from_state(load_arrays(last))
        except UserError:
            env.close()
            raise
        steps, rounds, elapsed = int(st["real_steps"]), int(st["rounds"]), float(st["elapsed_s"])
        episode_returns, log, scale.range = list(st["episode_returns"]), list(st["log"]), st["return_scale"]
        gen.set_state(torch.tensor(st["gen"], dtype=torch.uint8))
        if updater is not None:
            updater.steps = int(st["world_update_steps"])
        print(f"[agent] resumed from {last}: {steps}/{real_steps} real steps, {len(log)} updates "
              "(the real episode in progress then is dropped)")
    world.dynamics.eval()
    writer = _writer(work)
    frame, _ = env.reset(seed=seed if last is None else int(rng.integers(2**31 - 1)))
    replay.add(frame, -1)
    t0 = time.time() - elapsed
    last_ckpt = last_print = time.time()
    bar = tqdm(total=real_steps, initial=steps, unit="step", desc="agent", disable=not progress, dynamic_ncols=True,
               mininterval=1.0)
    wm: dict = {}
    try:
        while steps < real_steps:
            n = min(cfg.collect_every, real_steps - steps)
            for _ in range(n):  # 1. real experience
                a = int(agent.act(frame[None], gen)[0])
                frame, r, term, trunc, _ = env.step(a)
                steps += 1
                ep_ret += r
                replay.add(frame, a, r, term)
                if term or trunc:
                    episode_returns.append(ep_ret)
                    ep_ret = 0.0
                    frame, _ = env.reset(seed=int(rng.integers(2**31 - 1)))
                    replay.add(frame, -1)
            bar.update(n)
            if updater is not None:  # 2. the world learns from it
                real = replay.token_view(world)
                for _ in range(cfg.world_updates):
                    wm = updater.step(real, opt, rng) or wm
            usable = replay.usable_starts()
            for _ in range(cfg.updates_per_collect):  # 3. the agent learns in the world
                starts, start_actions = sample_starts(replay.frames, replay.acts_in, cfg.batch, cfg.context, rng, usable)
                if data_frames is not None:  # replace a share of the batch with data frames
                    k = round(cfg.data_starts * cfg.batch)
                    starts[:k] = data_frames[rng.integers(0, len(data_frames), k)]
                m = _update(agent, opt, world, starts, start_actions, cfg, scale, gen, rng)
                m["real_steps"] = steps
                log.append(m)
            rounds += 1
            recent = float(np.mean(episode_returns[-10:])) if episode_returns else float("nan")
            shown = {"real_return": recent, **({k: log[-1][k] for k in ("imagined_reward", "entropy")} if log else {}),
                     **({"world_acc": wm["world_acc"]} if wm else {})}
            if writer is not None:
                for k, v in {**(log[-1] if log else {}), **wm, "real_return_last10": recent}.items():
                    if k != "real_steps" and np.isfinite(v):
                        writer.add_scalar(f"agent/{k}", v, steps)
            bar.set_postfix({k: f"{v:.3g}" for k, v in shown.items()})
            if not progress and time.time() - last_print > 30:
                last_print = time.time()
                print(f"[agent] {steps}/{real_steps} real steps " + " ".join(f"{k}={v:.3g}" for k, v in shown.items()), flush=True)
            if work is not None and (time.time() - last_ckpt > 60 * ckpt_minutes or steps >= real_steps):
                save_checkpoint(work / CKPT, modules, opt, rounds, {
                    "real_steps": steps, "rounds": rounds, "elapsed_s": time.time() - t0,
                    "episode_returns": episode_returns, "log": log, "return_scale": scale.range,
                    "gen": gen.get_state().tolist(), "world_update_steps": updater.steps if updater else 0,
                    "config": dataclasses.asdict(cfg)}, rng, arrays=replay.state())
                last_ckpt = time.time()
    finally:
        bar.close()
        env.close()
        if writer is not None:
            writer.close()
    data_steps = world_data_steps(world)
    stats = {"real_steps": steps, "world_data_steps": data_steps, "total_real_steps": steps + data_steps,
             "view": view, "data_start_frames": 0 if data_frames is None else len(data_frames),
             "real_episodes": len(episode_returns),
             "real_return_last10": float(np.mean(episode_returns[-10:])) if episode_returns else None,
             "updates": len(log), "world_update_steps": updater.steps if updater else 0,
             "world_last": wm, "train_s": round(time.time() - t0, 1), "last": log[-1] if log else {},
             "config": dataclasses.asdict(cfg), "world": str(src_path) if src_path else None,
             "world_started_from": str(src_path) if src_path else None,
             "env_id": env_id or world.meta.env_id, "seed": seed, "command": command}
    if out is not None:
        if updater is not None:
            stats["world"] = str(_save_world(world, src_path, out / "world", stats))
        save_agent(agent, out, stats)
    return agent, stats
