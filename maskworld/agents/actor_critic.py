"""Actor-critic trained on imagined rollouts: the world dreams, the agent learns.

    from maskworld.agents.config import AgentTrainConfig
    from maskworld.agents.dyna import train_agent
    agent, stats = train_agent(world, "MiniGrid-FourRooms-v0", real_steps=5000, out="agents/fourrooms")

The loop that alternates real experience, world updates and imagined updates is maskworld.agents.dyna;
where imagined rollouts start is maskworld.agents.starts; this module holds the network, the imagined
update, the returns and saving/loading.

Design choices (Dreamer / DreamerV3 actor-critic, simplified to a pixel world with discrete actions):
- Real steps are the budget that is compared against model-free RL: the agent acts in the real env for
  `collect_every` steps, then runs `updates_per_collect` updates on imagined rollouts of `horizon` steps
  from `batch` real start frames. The world's own training data counts too
  (`stats["world_data_steps"]`, `stats["total_real_steps"]`): it was real experience.
- Start frames: a share `data_starts` of every batch comes from the world's training data (real frames
  already paid for), the rest from the agent's own real frames. Under a sparse reward the agent's early
  frames all lie near its start and a horizon-15 dream from them rarely meets a reward; the data's frames
  cover the states an exploring policy reached (goal included), so the critic learns the reward early and
  bootstraps it back towards the start (Dyna / Dreamer replay starts).
- Targets are lambda-returns R_t = r_t + gamma c_t ((1 - lambda) V(s_t+1) + lambda R_t+1), bootstrapped
  from the critic at the horizon; reward and continue come from the world's heads, as expectations under
  their probabilities by default (`heads`): on imagined goal entries the argmax is mostly 0 (Empty-8x8 tiny
  world, 3 real frames of context then the real last action imagined: +1 on 13 of 48 goal entries).
- Returns are normalised as in DreamerV3: advantages divided by max(1, S), S an EMA of the 95th - 5th
  percentile range of the returns, so the entropy bonus means the same under sparse and dense rewards.
- Policy gradient is REINFORCE with the critic as baseline (the world is sampled, not differentiated),
  plus an entropy bonus; the critic regresses the lambda-returns. Steps after an imagined episode end
  carry zero weight.
- The network is a small strided CNN on the (S,S,3) frame; config and weights go to agent.json +
  agent.safetensors, like a world.
- Joint actions of several avatars (a world with `action_factors`, e.g. 4 avatars x 5 moves = 625 joint
  actions) get one softmax per avatar, the joint policy their product: each avatar's log-probability of its
  own move gets the gradient instead of one of 625 joint classes, each drawn in a 625th of the steps (factorised action
  spaces, as in multi-agent actor-critics with a shared critic, e.g. COMA / MAPPO's centralised value).
  The joint index is sum_i a_i * prod(factors[:i]), the order `envs.base.split_action` reads.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from maskworld.agents.config import AgentTrainConfig  # also importable from here, as scripts and notebooks do
from maskworld.agents.imagination import imagine
from maskworld.errors import UserError
from maskworld.io import atomic_save_safetensors, atomic_write_json


@dataclass
class ActorCriticConfig:
    num_actions: int = 7
    image_size: int = 64
    channels: int = 32
    """Conv width (three stride-2 convolutions, then one hidden layer)."""
    hidden: int = 256
    action_factors: list[int] | None = None
    """Moves per avatar of a joint action (their product = num_actions): one softmax each; None = one softmax."""


class ActorCritic(nn.Module):
    def __init__(self, cfg: ActorCriticConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.encoder = nn.Sequential(
            nn.Conv2d(3, c, 4, 2, 1), nn.SiLU(), nn.Conv2d(c, c, 4, 2, 1), nn.SiLU(), nn.Conv2d(c, c, 4, 2, 1), nn.SiLU(),
            nn.Flatten(), nn.Linear(c * (cfg.image_size // 8) ** 2, cfg.hidden), nn.SiLU(),
        )
        self.factors = list(cfg.action_factors or [cfg.num_actions])
        if int(np.prod(self.factors)) != cfg.num_actions:
            raise ValueError(f"action_factors {self.factors} multiply to {int(np.prod(self.factors))}, not {cfg.num_actions}")
        self.actor = nn.Linear(cfg.hidden, sum(self.factors))
        self.critic = nn.Linear(cfg.hidden, 1)
        nn.init.zeros_(self.actor.weight)  # uniform policy at the start
        nn.init.zeros_(self.actor.bias)

    def forward(self, frames_BHWC: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 frames (B,S,S,3) -> action logits (B, sum(factors)), values (B,)."""
        x = frames_BHWC.permute(0, 3, 1, 2).float() / 255.0  # (B,3,S,S)
        h = self.encoder(x)
        return self.actor(h), self.critic(h).squeeze(-1)

    def _strides(self) -> list[int]:
        return [int(np.prod(self.factors[:i])) for i in range(len(self.factors))]

    def log_prob_entropy(self, logits: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """logits (..., sum(factors)), joint actions (...) -> log pi(action) (...), entropy of pi (...).

        Both sum over the factors: the joint policy is the product of one softmax per avatar."""
        logp_a, entropy = 0, 0
        for part, f, stride in zip(logits.split(self.factors, -1), self.factors, self._strides()):
            logp = torch.log_softmax(part, -1)
            logp_a = logp_a + logp.gather(-1, ((actions // stride) % f)[..., None]).squeeze(-1)
            entropy = entropy - (logp.exp() * logp).sum(-1)
        return logp_a, entropy

    @torch.no_grad()
    def act(self, frames_BHWC: np.ndarray, gen: torch.Generator | None = None, greedy: bool = False) -> np.ndarray:
        """uint8 frames (B,S,S,3) -> joint actions (B,), each avatar's move drawn from its own softmax."""
        dev = next(self.parameters()).device
        logits, _ = self(torch.tensor(np.asarray(frames_BHWC), device=dev))  # a copy: env frames may be read-only
        joint = 0
        for part, stride in zip(logits.float().cpu().split(self.factors, -1), self._strides()):
            if greedy:
                a = part.argmax(-1)
            else:
                a = torch.multinomial(torch.softmax(part, -1), 1, generator=gen).squeeze(-1)
            joint = joint + a * stride
        return joint.numpy()


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


def _update(agent, opt, world, starts, start_actions, cfg: AgentTrainConfig, scale: ReturnScale, gen, rng) -> dict:
    dev = next(agent.parameters()).device
    seeds = rng.integers(0, 2**31 - 1, len(starts))
    agent.eval()
    sampler = dataclasses.replace(world.sampler, steps=cfg.sampler_steps) if cfg.sampler_steps else None
    ro = imagine(world, lambda o: agent.act(o, gen), starts, cfg.horizon, seeds, start_actions, heads=cfg.heads,
                 sampler=sampler)
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
    logp_a, entropy = agent.log_prob_entropy(logits, ro.actions.to(dev))
    w = alive / alive.sum().clamp(min=1)
    actor_loss = -(w * (logp_a * adv + cfg.entropy * entropy)).sum()
    critic_loss = 0.5 * (w * (values[:H] - ret) ** 2).sum()
    opt.zero_grad(set_to_none=True)
    (actor_loss + critic_loss).backward()
    nn.utils.clip_grad_norm_(agent.parameters(), 100.0)
    opt.step()
    return {"actor_loss": actor_loss.item(), "critic_loss": critic_loss.item(), "entropy": float((w * entropy).sum().detach()),
            "imagined_reward": float((alive * rew).sum() / B), "return_scale": s}


def save_agent(agent: ActorCritic, out, stats: dict | None = None) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_save_safetensors(agent.state_dict(), out / "agent.safetensors")
    atomic_write_json(out / "agent.json", {"agent": dataclasses.asdict(agent.cfg), "train": stats or {}}, indent=2)
    return out


def load_agent(path, device=None) -> tuple[ActorCritic, dict]:
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / "agent.json").exists() or not (path / "agent.safetensors").exists():
        raise UserError(f"{path} is not an agent directory (expected agent.json + agent.safetensors from train_agent)")
    try:
        info = json.loads((path / "agent.json").read_text())
        agent = ActorCritic(ActorCriticConfig(**info["agent"]))
    except (ValueError, TypeError, KeyError) as e:
        raise UserError(f"{path}/agent.json is corrupt ({type(e).__name__}: {e}); retrain the agent or restore the file") from e
    try:
        state = load_file(str(path / "agent.safetensors"))
    except Exception as e:
        raise UserError(f"{path}/agent.safetensors cannot be read ({e}); the file is corrupt or truncated, retrain the agent") from e
    try:
        agent.load_state_dict(state)
    except Exception as e:
        raise UserError(f"{path}/agent.safetensors does not match agent.json ({e})") from e
    return agent.to(device or "cpu").eval(), info.get("train", {})
