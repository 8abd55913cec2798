"""The collector's policies: who presses the buttons while `maskworld collect` records.

`--policy`:
- `random`: uniform over actions.
- `sticky`: repeat the previous action with probability 0.75, else uniform (smoother motion,
  longer trajectories; like ALE sticky actions applied to the agent).
- `explore`: biased to move and to keep moving: actions whose names contain FORWARD, UP, DOWN,
  LEFT, RIGHT or MOVE weigh 4 (FORWARD 8), NOOP/DONE/SLEEP 0.25, others 1; a chosen movement
  action is held for a geometric number of steps (mean 6). Turning actions (LEFT/RIGHT in envs
  that also have FORWARD, e.g. MiniGrid) and non-movement actions last one step, so the agent
  turns, then walks. A movement that left the frame unchanged (pressed into a wall) is let go and
  not drawn again at once: without this, 84 % of an explorer's forwards on MiniGrid-Landmarks-v0
  were blocked, and a world trained on them learns that walking forward mostly does nothing.
- `bot`: the environment's expert (BabyAI levels: minigrid's BabyAI bot), which solves the
  episode's mission; refused for envs without one.
- Mixes: `bot:0.7,explore:0.3` draws each episode's policy with these weights (from the
  episode's own seed, so a resumed or sharded run makes the same choice); the manifest records
  which policy made each episode, and its `mission` where the env states one in words.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from maskworld.envs.base import joint_action
from maskworld.errors import UserError

POLICIES = ("random", "sticky", "explore", "bot")


def parse_policy(spec: str) -> list[tuple[str, float]]:
    """'explore' -> [('explore', 1.0)]; 'bot:0.7,explore:0.3' -> weights normalised to sum to 1."""
    parts = []
    for item in str(spec).split(","):
        name, _, w = item.strip().partition(":")
        if name not in POLICIES:
            raise UserError(f"--policy: {name!r} is not a policy; use one of {', '.join(POLICIES)}, "
                            "or a mix such as bot:0.7,explore:0.3")
        try:
            weight = float(w) if w else 1.0
        except ValueError:
            raise UserError(f"--policy: weight {w!r} of {name} is not a number (write {name}:0.5)") from None
        if not weight > 0:
            raise UserError(f"--policy: weight of {name} must be positive, not {w}")
        parts.append((name, weight))
    total = sum(w for _, w in parts)
    return [(n, w / total) for n, w in parts]


def choose_policy(mix: list[tuple[str, float]], rng: np.random.Generator) -> str:
    """One episode's policy from a mix; draws nothing for a single policy (seeds stay as they were)."""
    if len(mix) == 1:
        return mix[0][0]
    return mix[int(rng.choice(len(mix), p=[w for _, w in mix]))][0]


class JointPolicy:
    """Several agents acting at once: one policy per agent over its own actions, composed into the joint index
    (`envs.base.joint_action`), so each agent explores as one agent would."""

    def __init__(self, name: str, agent_meanings: list[str], agents: int, rng: np.random.Generator):
        self.name = name
        self.parts = [Policy(name, agent_meanings, rng) for _ in range(agents)]
        self.n = len(agent_meanings)

    def start(self, env: Any) -> None:
        if self.name == "bot":
            raise UserError(f"--policy bot: {env.env_id} has no expert for several agents; use random, sticky or explore")

    def act(self) -> int:
        return joint_action([p.act() for p in self.parts], self.n)

    def saw(self, changed: bool) -> None:
        """Nothing: with several agents an unchanged frame cannot say whose move was blocked."""


def make_policy(name: str, env: Any, rng: np.random.Generator):
    """The collector's policy for `env`: per agent where several act at once."""
    if env.agents > 1:
        return JointPolicy(name, env.agent_action_meanings, env.agents, rng)
    return Policy(name, env.action_meanings, rng)


class Policy:
    def __init__(self, name: str, action_meanings: list[str], rng: np.random.Generator):
        if name not in POLICIES:
            raise UserError(f"--policy must be one of {', '.join(POLICIES)}, not {name!r}")
        self.name, self.rng, self.n = name, rng, len(action_meanings)
        self.expert = None  # the env's expert, made per episode by `start` (policy "bot")
        self.prev: int | None = None
        self.hold = 0
        self.avoid: int | None = None  # `explore`: a movement that just changed nothing, not drawn next
        names = [m.upper() for m in action_meanings]
        has_forward = "FORWARD" in names
        w = np.ones(self.n)
        self.held = np.zeros(self.n, dtype=bool)  # actions held for several steps by `explore`
        self.moving = np.zeros(self.n, dtype=bool)  # movement actions (turns included)
        for a, m in enumerate(names):
            # made of move words only (UPRIGHT, MOVE_LEFT, UPFIRE): PICKUP is not a move UP
            if re.fullmatch(r"(FORWARD|UP|DOWN|LEFT|RIGHT|MOVE|FIRE|_)+", m) and m.replace("FIRE", "").strip("_"):
                w[a] = 8.0 if m == "FORWARD" else 4.0
                self.moving[a] = True
                self.held[a] = not (has_forward and m in ("LEFT", "RIGHT"))  # turning: one step
            if m in ("NOOP", "DONE", "SLEEP"):
                w[a] = 0.25
        self.weights = w / w.sum()

    def start(self, env: Any) -> None:
        """Called after each reset: the bot plans from the episode's fresh state."""
        if self.name == "bot":
            self.expert = env.expert()
            if self.expert is None:
                raise UserError(f"--policy bot: {env.env_id} has no expert; it exists for BabyAI levels "
                                "(e.g. BabyAI-GoToLocal-v0); use random, sticky or explore")

    def act(self) -> int:
        rng = self.rng
        if self.name == "bot":
            a = self.expert.act()
        elif self.name == "random":
            a = int(rng.integers(self.n))
        elif self.name == "sticky":
            a = self.prev if self.prev is not None and rng.random() < 0.75 else int(rng.integers(self.n))
        else:
            if self.hold > 0 and self.prev is not None:
                self.hold -= 1
                a = self.prev
            else:
                p = self.weights
                if self.avoid is not None:
                    p = p.copy()
                    p[self.avoid] = 0.0
                    p = p / p.sum()
                a = int(rng.choice(self.n, p=p))
                self.hold = int(rng.geometric(1 / 6)) - 1 if self.held[a] else 0
            self.avoid = None
        self.prev = a
        return a

    def saw(self, changed: bool) -> None:
        """What the last action did: `changed` is False when the frame stayed the same. `explore` lets go of a
        movement that changed nothing (pressed into a wall) and does not draw it next."""
        if self.name == "explore" and not changed and self.prev is not None and self.moving[self.prev]:
            self.hold = 0
            self.avoid = self.prev if self.n > 1 else None
