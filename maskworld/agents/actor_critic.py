"""Actor-critic trained on imagined rollouts (C, issue 8): the world dreams, the agent learns, the real env is only
sampled for start frames.

    from maskworld.agents.actor_critic import train_agent, AgentTrainConfig
    agent, stats = train_agent(world, "MiniGrid-FourRooms-v0", real_steps=5000, out="agents/fourrooms")

Design choices (Dreamer / DreamerV3 actor-critic, simplified to a pixel world with discrete actions):
- Real steps are the budget that is compared against model-free RL: the agent acts in the real env for
  `collect_every` steps (its frames fill a start buffer), then runs `updates_per_collect` updates on
  imagined rollouts of `horizon` steps from `batch` real start frames.
- Targets are lambda-returns R_t = r_t + gamma c_t ((1 - lambda) V(s_t+1) + lambda R_t+1), bootstrapped
  from the critic at the horizon; reward and continue flags come from the world's heads.
- Returns are normalised as in DreamerV3: advantages divided by max(1, S), S an EMA of the 95th - 5th
  percentile range of the returns, so the entropy bonus means the same under sparse and dense rewards.
- Policy gradient is REINFORCE with the critic as baseline (the world is sampled, not differentiated),
  plus an entropy bonus; the critic regresses the lambda-returns. Steps after an imagined episode end
  carry zero weight.
- The network is a small strided CNN on the (S,S,3) frame; config and weights go to agent.json +
  agent.safetensors, like a world.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from maskworld.agents.dream_env import check_world_for_rl, resolve_world
from maskworld.agents.imagination import imagine
from maskworld.errors import UserError


@dataclass
class ActorCriticConfig:
    num_actions: int = 7
    image_size: int = 64
    channels: int = 32
    """Conv width (three stride-2 convolutions, then one hidden layer)."""
    hidden: int = 256


class ActorCritic(nn.Module):
    def __init__(self, cfg: ActorCriticConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.encoder = nn.Sequential(
            nn.Conv2d(3, c, 4, 2, 1), nn.SiLU(), nn.Conv2d(c, c, 4, 2, 1), nn.SiLU(), nn.Conv2d(c, c, 4, 2, 1), nn.SiLU(),
            nn.Flatten(), nn.Linear(c * (cfg.image_size // 8) ** 2, cfg.hidden), nn.SiLU(),
        )
        self.actor = nn.Linear(cfg.hidden, cfg.num_actions)
        self.critic = nn.Linear(cfg.hidden, 1)
        nn.init.zeros_(self.actor.weight)  # uniform policy at the start
        nn.init.zeros_(self.actor.bias)

    def forward(self, frames_BHWC: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 frames (B,S,S,3) -> action logits (B,A), values (B,)."""
        x = frames_BHWC.permute(0, 3, 1, 2).float() / 255.0  # (B,3,S,S)
        h = self.encoder(x)
        return self.actor(h), self.critic(h).squeeze(-1)

    @torch.no_grad()
    def act(self, frames_BHWC: np.ndarray, gen: torch.Generator | None = None, greedy: bool = False) -> np.ndarray:
        dev = next(self.parameters()).device
        logits, _ = self(torch.tensor(np.asarray(frames_BHWC), device=dev))  # a copy: env frames may be read-only
        if greedy:
            return logits.argmax(-1).cpu().numpy()
        probs = torch.softmax(logits.float().cpu(), -1)
        return torch.multinomial(probs, 1, generator=gen).squeeze(-1).numpy()


def lambda_returns(rewards_HB, values_H1B, continues_HB, gamma: float, lam: float) -> torch.Tensor:
    """(H,B) rewards and continues, (H+1,B) values -> (H,B) lambda-returns, bootstrapped from values[H]."""
    H = rewards_HB.shape[0]
    out = torch.empty_like(rewards_HB)
    nxt = values_H1B[H]
    for t in reversed(range(H)):
        nxt = rewards_HB[t] + gamma * continues_HB[t] * ((1 - lam) * values_H1B[t + 1] + lam * nxt)
        out[t] = nxt
    return out


class ReturnScale:
    """DreamerV3's return normalisation: max(1, EMA of the 95th - 5th percentile of returns)."""

    def __init__(self, decay: float = 0.99):
        self.decay, self.range = decay, None

    def __call__(self, returns: torch.Tensor, weights: torch.Tensor) -> float:
        r = returns[weights > 0]
        if r.numel():
            spread = float(torch.quantile(r.float(), 0.95) - torch.quantile(r.float(), 0.05))
            self.range = spread if self.range is None else self.decay * self.range + (1 - self.decay) * spread
        return max(1.0, self.range or 0.0)


@dataclass
class AgentTrainConfig:
    horizon: int = 15
    """Imagined steps per rollout (Dreamer: 15)."""
    batch: int = 32
    """Imagined trajectories per update, all stepped in one batched forward pass."""
    collect_every: int = 100
    """Real steps between rounds of imagination."""
    updates_per_collect: int = 4
    gamma: float = 0.985
    lam: float = 0.95
    entropy: float = 3e-3
    """Entropy bonus on normalised advantages (DreamerV3's eta)."""
    lr: float = 3e-4
    channels: int = 32
    context: int = 1
    """Real frames leading into each imagined start (1 = the start frame alone)."""


def _real_env(world, env_id: str | None, seed: int):
    from maskworld.envs.adapter import make_env

    env_id = env_id or world.meta.env_id
    data = world.meta.model_card.get("data", {}) if isinstance(world.meta.model_card, dict) else {}
    view = data.get("view") or "partial"
    env = make_env(env_id, size=world.meta.size, seed=seed, view=view)
    if env.num_actions != world.num_actions:
        env.close()
        raise UserError(f"{env_id} has {env.num_actions} actions but the world has {world.num_actions}; "
                        "train the agent against the env the world was learned from")
    return env


def _update(agent, opt, world, starts, start_actions, cfg: AgentTrainConfig, scale: ReturnScale, gen, rng) -> dict:
    dev = next(agent.parameters()).device
    seeds = rng.integers(0, 2**31 - 1, len(starts))
    agent.eval()
    ro = imagine(world, lambda o: agent.act(o, gen), starts, cfg.horizon, seeds, start_actions)
    agent.train()
    H, B = ro.actions.shape
    obs = torch.from_numpy(ro.obs).to(dev).flatten(0, 1)  # ((H+1)*B, S, S, 3)
    logits, values = agent(obs)
    logits, values = logits.view(H + 1, B, -1)[:H], values.view(H + 1, B)
    rew, cont, alive = ro.rewards.to(dev), ro.continues.to(dev), ro.alive.to(dev)
    with torch.no_grad():
        ret = lambda_returns(rew, values.detach(), cont, cfg.gamma, cfg.lam)  # (H,B)
        s = scale(ret, alive)
        adv = (ret - values[:H].detach()) / s
    logp = torch.log_softmax(logits, -1)
    logp_a = logp.gather(-1, ro.actions.to(dev)[..., None]).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    w = alive / alive.sum().clamp(min=1)
    actor_loss = -(w * (logp_a * adv + cfg.entropy * entropy)).sum()
    critic_loss = 0.5 * (w * (values[:H] - ret) ** 2).sum()
    opt.zero_grad(set_to_none=True)
    (actor_loss + critic_loss).backward()
    nn.utils.clip_grad_norm_(agent.parameters(), 100.0)
    opt.step()
    return {"actor_loss": actor_loss.item(), "critic_loss": critic_loss.item(), "entropy": float((w * entropy).sum().detach()),
            "imagined_reward": float((alive * rew).sum() / B), "return_scale": s}


def train_agent(world, env_id: str | None = None, real_steps: int = 10_000, cfg: AgentTrainConfig | None = None,
                seed: int = 0, device: str | None = None, out=None, progress: bool = True):
    """Train an actor-critic in `world`'s imagination with `real_steps` steps of `env_id` (default: the
    world's own env) for start frames. -> (agent, stats). With `out`, saves agent.json + agent.safetensors."""
    cfg = cfg or AgentTrainConfig()
    world = resolve_world(world, device)
    check_world_for_rl(world)
    if real_steps < 1:
        raise UserError(f"real_steps must be >= 1, not {real_steps}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    agent = ActorCritic(ActorCriticConfig(world.num_actions, world.meta.size, cfg.channels)).to(world.device)
    opt = torch.optim.Adam(agent.parameters(), lr=cfg.lr, eps=1e-5)
    scale = ReturnScale()
    env = _real_env(world, env_id, seed)
    frames, acts_in = [], []  # real frames and the action into each (-1 at episode starts)
    episode_returns, ep_ret, log = [], 0.0, []
    frame, _ = env.reset(seed=seed)
    frames.append(frame)
    acts_in.append(-1)
    t0, steps = time.time(), 0
    try:
        while steps < real_steps:
            for _ in range(min(cfg.collect_every, real_steps - steps)):
                a = int(agent.act(frame[None], gen)[0])
                frame, r, term, trunc, _ = env.step(a)
                steps += 1
                ep_ret += r
                if term or trunc:
                    episode_returns.append(ep_ret)
                    ep_ret = 0.0
                    frame, _ = env.reset(seed=int(rng.integers(2**31 - 1)))
                    a = -1
                frames.append(frame)
                acts_in.append(a)
            for _ in range(cfg.updates_per_collect):
                starts, start_actions = _sample_starts(frames, acts_in, cfg.batch, cfg.context, rng)
                m = _update(agent, opt, world, starts, start_actions, cfg, scale, gen, rng)
                m["real_steps"] = steps
                log.append(m)
            if progress:
                recent = np.mean(episode_returns[-10:]) if episode_returns else float("nan")
                print(f"[agent] {steps}/{real_steps} real steps, real return (last 10) {recent:.3f}, "
                      f"imagined reward {m['imagined_reward']:.3f}, entropy {m['entropy']:.2f}, {time.time() - t0:.0f}s")
    finally:
        env.close()
    stats = {"real_steps": steps, "real_episodes": len(episode_returns),
             "real_return_last10": float(np.mean(episode_returns[-10:])) if episode_returns else None,
             "updates": len(log), "train_s": round(time.time() - t0, 1), "last": log[-1] if log else {},
             "config": dataclasses.asdict(cfg), "world": str(world.path) if world.path else None,
             "env_id": env_id or world.meta.env_id, "seed": seed}
    if out is not None:
        save_agent(agent, out, stats)
    return agent, stats


def _sample_starts(frames, acts_in, batch: int, context: int, rng):
    """B real start points; with context > 1, the frames (and actions) leading into each, within one episode."""
    idx = rng.integers(0, len(frames), batch)
    if context <= 1:
        return np.stack([frames[i] for i in idx]), None
    firsts = []
    for i in idx:
        j = i
        while j > 0 and i - j + 1 < context and acts_in[j] >= 0:  # acts_in[j] < 0: frame j starts an episode
            j -= 1
        firsts.append(j)
    n = min(int(i) - j + 1 for i, j in zip(idx, firsts))  # one context length per batch
    starts = np.stack([np.stack(frames[i - n + 1 : i + 1]) for i in idx])
    acts = np.array([[-1] + list(acts_in[i - n + 2 : i + 1]) for i in idx])
    return starts, acts


def save_agent(agent: ActorCritic, out, stats: dict | None = None) -> Path:
    from maskworld.world.world import atomic_save_safetensors, atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_save_safetensors(agent.state_dict(), out / "agent.safetensors")
    atomic_write_text(out / "agent.json", json.dumps({"agent": dataclasses.asdict(agent.cfg), "train": stats or {}}, indent=2))
    return out


def load_agent(path, device=None) -> tuple[ActorCritic, dict]:
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / "agent.json").exists() or not (path / "agent.safetensors").exists():
        raise UserError(f"{path} is not an agent directory (expected agent.json + agent.safetensors from train_agent)")
    info = json.loads((path / "agent.json").read_text())
    agent = ActorCritic(ActorCriticConfig(**info["agent"]))
    try:
        agent.load_state_dict(load_file(str(path / "agent.safetensors")))
    except Exception as e:
        raise UserError(f"{path}/agent.safetensors does not match agent.json ({e})") from e
    return agent.to(device or "cpu").eval(), info.get("train", {})
