"""What `maskworld train agent` trains with: the run (world, env, budget, output) and the agent's settings.

AgentConfig
  run    AgentRunConfig    world, real env, real-step budget, output, seed, device
  train  AgentTrainConfig  imagination (horizon, batch, heads), optimiser, start frames, world updates

Each leaf field is one flag of `maskworld train agent` (`world_lr` -> `--world-lr`) and its help is the string
under it (maskworld.commands._config_cli). Nothing here imports torch: the CLI builds its parser from these
classes for every `maskworld` call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from maskworld.errors import UserError


@dataclass
class AgentTrainConfig:
    """How the agent learns: imagined rollouts, the actor-critic update, start frames and world updates."""

    horizon: int = 15
    """Imagined steps per rollout (Dreamer: 15)."""
    batch: int = 32
    """Imagined trajectories per update, all stepped in one batched forward pass."""
    collect_every: int = 100
    """Real steps between rounds of imagination."""
    updates_per_collect: int = 4
    """Actor-critic updates per round."""
    gamma: float = 0.985
    """Discount."""
    lam: float = 0.95
    """Lambda of the lambda-returns (0: one-step bootstrap, 1: Monte Carlo up to the horizon)."""
    entropy: float = 3e-3
    """Entropy bonus on normalised advantages (DreamerV3's eta)."""
    lr: float = 3e-4
    """Adam learning rate of the agent."""
    channels: int = 32
    """Agent CNN width."""
    context: int = 1
    """Real frames leading into each imagined start (1 = the start frame alone)."""
    data_starts: float = 0.5
    """Share of start frames drawn from the world's training data (the rest: the agent's real frames; 0 = the
    agent's real frames only); only with context = 1."""
    heads: Literal["expected", "argmax"] = "expected"
    """Reward and continue of imagined steps: "expected" (the reward head's expected value, 1 - p(end)) or "argmax" (the
    most likely class's value and the thresholded end, as Dream-v0 returns them); see `imagination.imagine`."""
    sampler_steps: int | None = field(default=None, metadata={"default_text": "the world's"})
    """MaskGIT steps per imagined frame (None: the world's own). Fewer steps make imagination cheaper; 1 decodes
    every token in one pass (measured on the Empty-8x8 tiny world: no worse than its K = 4 on a scripted path)."""
    max_data_frames: int = 8192
    """Cap on the data frames kept in memory as starts (uniformly sampled, each episode's last frame left out)."""
    world_updates: int = 10
    """Gradient steps of the world's dynamics on real experience after each collect round (the Dyna loop's "the
    world learns"; 0 = the world stays frozen); the updated world is saved as OUT/world. See
    maskworld.agents.world_update."""
    world_batch: int = 16
    """Clips per world update."""
    world_lr: float = 1e-4
    """Learning rate of the world updates (a fine-tune of a trained world: below its training rate)."""
    world_real_share: float = 0.5
    """Share of each world batch from the agent's real episodes (the rest: the world's own training data)."""

    def check(self) -> None:
        """UserError naming the first bad field (before anything is trained or written)."""
        ints = {"horizon": 1, "batch": 1, "collect_every": 1, "updates_per_collect": 0, "channels": 1, "context": 1,
                "world_updates": 0, "world_batch": 1, "max_data_frames": 1}
        for k, lo in ints.items():
            v = getattr(self, k)
            if not isinstance(v, int) or v < lo:
                raise UserError(f"agent setting {k} = {v!r} must be an integer >= {lo}")
        for k in ("gamma", "lam", "data_starts", "world_real_share"):
            if not 0.0 <= getattr(self, k) <= 1.0:
                raise UserError(f"agent setting {k} = {getattr(self, k)} must be in [0, 1]")
        for k in ("lr", "world_lr"):
            if not getattr(self, k) > 0:
                raise UserError(f"agent setting {k} = {getattr(self, k)} must be > 0")
        if self.heads not in ("expected", "argmax"):
            raise UserError(f"agent setting heads = {self.heads!r} must be 'expected' or 'argmax'")


@dataclass
class AgentRunConfig:
    """The world, the real env, the budget and where it all goes."""

    world: str
    """World directory (needs reward and termination heads)."""
    env: str | None = field(default=None, metadata={"default_text": "the world's"})
    """Real environment id."""
    real_steps: int = 10_000
    """Real environment steps in all."""
    out: str | None = field(default=None, metadata={"default_text": "WORLD/agent"})
    """Agent directory: agent.json + agent.safetensors, OUT/world (the updated world), OUT/_work."""
    view: Literal["partial", "full"] | None = field(default=None, metadata={"default_text": "the world's data's"})
    """MiniGrid view of the real env."""
    data: str | None = field(default=None, metadata={"default_text": "the path on its model card"})
    """The world's data store, for start frames."""
    resume: bool = False
    """Continue from the last checkpoint in OUT/_work."""
    ckpt_minutes: float = 5.0
    """Minutes between checkpoints."""
    seed: int = 0
    """Seed of the agent, the real env and the start frames."""
    device: str = "auto"
    """auto (cuda > mps > cpu), cpu, cuda, cuda:1, ..."""
    progress: bool = True
    """Progress bar (--no-progress: a log line every 30 s)."""


@dataclass
class AgentConfig:
    """`maskworld train agent`: the run and the agent's training settings."""

    run: AgentRunConfig
    train: AgentTrainConfig = field(default_factory=AgentTrainConfig)

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any]) -> AgentConfig:
        """Flat {leaf field: value} (every name is unique in the tree) -> the config, defaults filling the rest."""
        names = {s: {f.name for f in dataclasses.fields(t)} for s, t in (("run", AgentRunConfig), ("train", AgentTrainConfig))}
        unknown = sorted(set(overrides) - names["run"] - names["train"])
        if unknown:
            raise TypeError(f"unknown agent settings {unknown}")
        part = {s: {k: v for k, v in overrides.items() if k in n} for s, n in names.items()}
        return cls(AgentRunConfig(**part["run"]), AgentTrainConfig(**part["train"]))
