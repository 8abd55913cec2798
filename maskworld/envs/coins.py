"""`MultiAgent-Coins-v0`: a top-down room where 2-4 agents, each acting every step, collect coins together.

Built for persistent shared worlds (several people and agents in one learned world): every agent has its own
action each step, so a world trained on it learns joint actions, and each avatar's effect is visible in its
own part of the frame.

Design choices:
- A `size` x `size` room of cells (walls on the border), drawn `tile` pixels per cell: 8 x 8 cells of 8 pixels
  fill a 64 x 64 frame, one tokenizer token per cell. Agents are discs of distinct colours (red, blue, green,
  yellow), coins small gold squares on a dark floor.
- Each agent's actions: NOOP, UP, DOWN, LEFT, RIGHT (moves in screen directions, no facing). The env's action
  is the joint one, a Discrete(5 ** agents) index: agent i's action is (a // 5 ** i) % 5, named "UP|NOOP" etc.
  `agents` and `agent_action_meanings` on the env say so to the collector and the world.
- Agents move in index order; a move into a wall or into a cell another agent occupies (after the earlier
  agents' moves) is blocked, so two agents never share a cell.
- An agent on a coin collects it: the team's reward +1, and the coin reappears on a random free cell, so there
  is always something to do. The episode never terminates; it is truncated at `max_steps`.
- `info["agents_pos"]` (agents, 2) gives each agent's (x, y) cell, for per-avatar measurements.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from maskworld.envs.base import split_action

ENV_ID = "MultiAgent-Coins-v0"
AGENT_ACTIONS = ("NOOP", "UP", "DOWN", "LEFT", "RIGHT")
N = len(AGENT_ACTIONS)
MOVES = {0: (0, 0), 1: (0, -1), 2: (0, 1), 3: (-1, 0), 4: (1, 0)}
AGENT_COLORS = ((230, 60, 60), (70, 120, 255), (60, 200, 90), (240, 220, 60))
FLOOR, WALL, COIN = (20, 20, 28), (110, 110, 120), (255, 190, 40)


class CoinsEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, agents: int = 2, size: int = 8, coins: int = 3, tile: int = 8, max_steps: int = 256,
                 render_mode: str | None = "rgb_array"):
        if not 1 <= agents <= len(AGENT_COLORS):
            raise ValueError(f"agents must be 1..{len(AGENT_COLORS)}, not {agents}")
        if size < 4 or (size - 2) ** 2 < agents + coins:
            raise ValueError(f"a {size}x{size} room has no space for {agents} agents and {coins} coins")
        self.agents, self.size, self.n_coins, self.tile, self.max_steps = agents, size, coins, tile, max_steps
        self.render_mode = render_mode
        self.agent_action_meanings = list(AGENT_ACTIONS)
        self.action_space = gym.spaces.Discrete(len(AGENT_ACTIONS) ** agents)
        px = size * tile
        self.observation_space = gym.spaces.Box(0, 255, (px, px, 3), np.uint8)
        self.pos = np.zeros((agents, 2), np.int64)
        self.coins: list[tuple[int, int]] = []
        self.t = 0

    def get_action_meanings(self) -> list[str]:
        return ["|".join(AGENT_ACTIONS[a] for a in split_action(j, self.agents, N)) for j in range(self.action_space.n)]

    def _free_cells(self) -> list[tuple[int, int]]:
        taken = {tuple(p) for p in self.pos.tolist()} | set(self.coins)
        inner = range(1, self.size - 1)
        return [(x, y) for y in inner for x in inner if (x, y) not in taken]

    def _spawn_coin(self) -> None:
        free = self._free_cells()
        self.coins.append(free[int(self.np_random.integers(len(free)))])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        inner = [(x, y) for y in range(1, self.size - 1) for x in range(1, self.size - 1)]
        pick = self.np_random.choice(len(inner), size=self.agents, replace=False)
        self.pos = np.array([inner[i] for i in pick], np.int64)
        self.coins = []
        for _ in range(self.n_coins):
            self._spawn_coin()
        self.t = 0
        return self._frame(), self._info()

    def step(self, action: int):
        reward = 0.0
        for i, a in enumerate(split_action(int(action), self.agents, N)):
            dx, dy = MOVES[a]
            nx, ny = int(self.pos[i, 0]) + dx, int(self.pos[i, 1]) + dy
            inside = 1 <= nx < self.size - 1 and 1 <= ny < self.size - 1
            occupied = any(j != i and tuple(self.pos[j]) == (nx, ny) for j in range(self.agents))
            if inside and not occupied:
                self.pos[i] = (nx, ny)
            if (int(self.pos[i, 0]), int(self.pos[i, 1])) in self.coins:
                self.coins.remove((int(self.pos[i, 0]), int(self.pos[i, 1])))
                reward += 1.0
                self._spawn_coin()
        self.t += 1
        return self._frame(), reward, False, self.t >= self.max_steps, self._info()

    def _info(self) -> dict[str, Any]:
        return {"agents_pos": self.pos.copy()}

    def _frame(self) -> np.ndarray:
        t, n = self.tile, self.size
        img = np.empty((n * t, n * t, 3), np.uint8)
        img[:] = WALL
        img[t:(n - 1) * t, t:(n - 1) * t] = FLOOR
        q = max(1, t // 4)
        for x, y in self.coins:
            img[y * t + q:(y + 1) * t - q, x * t + q:(x + 1) * t - q] = COIN
        yy, xx = np.mgrid[0:t, 0:t]
        disc = (yy - (t - 1) / 2) ** 2 + (xx - (t - 1) / 2) ** 2 <= (t / 2 - 0.5) ** 2
        for i, (x, y) in enumerate(self.pos.tolist()):
            cell = img[y * t:(y + 1) * t, x * t:(x + 1) * t]
            cell[disc] = AGENT_COLORS[i]
        return img

    def render(self) -> np.ndarray:
        return self._frame()
