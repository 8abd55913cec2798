"""A toy environment as an episode store: a bright square on a 4x4 grid, moved by LEFT/RIGHT/UP/DOWN.

Deterministic and action-dependent, so a tiny world learns it in seconds and every metric has
something to find (or, for an action-blind model, nothing).
"""

import numpy as np

from maskworld.data.store import Episode, StoreWriter

ACTIONS = ["LEFT", "RIGHT", "UP", "DOWN"]


def toy_episode(rng, T=24, size=64, cell=16) -> Episode:
    n = size // cell
    x, y = (int(v) for v in rng.integers(0, n, 2))

    def draw(x, y):
        f = np.zeros((size, size, 3), np.uint8)
        f[:cell, :cell] = (0, 0, 120)  # the rewarding corner
        f[y * cell : (y + 1) * cell, x * cell : (x + 1) * cell] = (255, 220, 0)
        return f

    frames, acts, rews = [draw(x, y)], [], []
    for _ in range(T):
        a = int(rng.integers(0, 4))
        dx, dy = [(-1, 0), (1, 0), (0, -1), (0, 1)][a]
        nx, ny = min(max(x + dx, 0), n - 1), min(max(y + dy, 0), n - 1)
        rews.append(1.0 if (nx, ny) == (0, 0) and (x, y) != (0, 0) else 0.0)
        x, y = nx, ny
        frames.append(draw(x, y))
        acts.append(a)
    return Episode.from_lists(frames, acts, rews, [False] * T, [False] * (T - 1) + [True])


def make_toy_store(path, episodes=40, T=24, seed=0) -> str:
    rng = np.random.default_rng(seed)
    meta = {"env_id": "toy/square", "size": 64, "num_actions": 4, "has_actions": True, "action_meanings": ACTIONS,
            "info_keys": []}
    with StoreWriter(path, meta) as w:
        for _ in range(episodes):
            w.add(toy_episode(rng, T))
    return str(path)
