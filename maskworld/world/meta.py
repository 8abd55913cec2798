"""What a world directory says about its world besides the models' configs: the game, the frame size, the
actions and the model card."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class WorldMeta:
    env_id: str = "unknown"
    size: int = 64
    action_meanings: list[str] = field(default_factory=list)
    has_actions: bool = True
    model_card: dict = field(default_factory=dict)
    """command, data, training time, device, evaluation numbers."""
    render: str = "tokens"
    """How imagined frames are shown (world/compose.py): "tokens" (the tokenizer's rendering of every token) or
    "composite" (only the cells whose token changed are redrawn over the frame shown before)."""
    motion: dict = field(default_factory=dict)
    """Worlds with pose-keyed memory: what each action does to the pose (memory/motion.py `Motion`), fitted on the
    training data, so the world keeps its own pose in play. Empty: the pose head's dead reckoning."""
    agents: int = 1
    """Agents acting at once; above 1 each action is a joint index (agent i's action is (a // n ** i) % n with
    n = len(agent_action_meanings)), and play and `maskworld host` give each avatar its own controller."""
    agent_action_meanings: list[str] = field(default_factory=list)
    rollout: str = "joint"
    """Worlds of several agents: "joint" (one pass reads every avatar's action everywhere) or "factorised" (each
    avatar's neighbourhood decoded from its own action, world/factorised.py; needs the world's locator)."""
    latent_actions: dict = field(default_factory=dict)
    """Worlds trained on action-free video: num_codes, held-out code usage, and `action_map` (real action ->
    latent code, fitted on a few labelled transitions) when labelled data was available."""
