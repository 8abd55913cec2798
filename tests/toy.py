"""A toy environment as an episode store: a bright square on a 4x4 grid, moved by LEFT/RIGHT/UP/DOWN.

Deterministic and action-dependent, so a tiny world learns it in seconds and every metric has
something to find (or, for an action-blind model, nothing).
"""

import numpy as np

from maskworld.data.store import Episode, StoreWriter

ACTIONS = ["LEFT", "RIGHT", "UP", "DOWN"]


def toy_episode(rng, T=24, size=64, cell=16, far_corner: float = 0.0) -> Episode:
    """far_corner: what entering the opposite corner pays (0: nothing; a second reward value for the head's classes)."""
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
        moved = (nx, ny) != (x, y)
        rews.append(1.0 if (nx, ny) == (0, 0) and moved else far_corner if (nx, ny) == (n - 1, n - 1) and moved else 0.0)
        x, y = nx, ny
        frames.append(draw(x, y))
        acts.append(a)
    return Episode.from_lists(frames, acts, rews, [False] * T, [False] * (T - 1) + [True])


def make_toy_store(path, episodes=40, T=24, seed=0, far_corner: float = 0.0) -> str:
    rng = np.random.default_rng(seed)
    meta = {"env_id": "toy/square", "size": 64, "num_actions": 4, "has_actions": True, "action_meanings": ACTIONS,
            "info_keys": []}
    with StoreWriter(path, meta) as w:
        for _ in range(episodes):
            w.add(toy_episode(rng, T, far_corner=far_corner))
    return str(path)


def places_episode(rng, T=60, cells=6, vocab=16) -> Episode:
    """A line of `cells` places, each showing its own random 2x2 token pattern, new every episode: what a
    place looks like can only be known by having seen it (memory), never from the weights. Actions: LEFT,
    RIGHT, STAY. Frames are 8x8: token k of the pattern is a 4x4 block of value 16k (see `places_tokens`)."""
    pats = rng.integers(0, vocab, (cells, 2, 2))
    x = int(rng.integers(cells))

    def draw(x):
        return np.repeat(np.repeat(pats[x] * 16, 4, 0), 4, 1).astype(np.uint8)[..., None].repeat(3, -1)

    frames, acts, pos = [draw(x)], [], [x]
    for _ in range(T):
        a = int(rng.integers(3))
        x = min(max(x + (-1, 1, 0)[a], 0), cells - 1)
        frames.append(draw(x))
        acts.append(a)
        pos.append(x)
    info = {"agent_pos": np.array([[p, 0] for p in pos]), "agent_dir": np.zeros(T + 1, np.int64)}
    return Episode.from_lists(frames, acts, [0.0] * T, [False] * T, [False] * T, info=info)


def places_tokens(frames: np.ndarray) -> np.ndarray:
    """(N,8,8,3) places frames -> (N,2,2) tokens (the exact inverse of the drawing)."""
    return frames[:, ::4, ::4, 0].astype(np.int64) // 16


def make_places_store(path, episodes=60, T=60, seed=0) -> str:
    rng = np.random.default_rng(seed)
    meta = {"env_id": "toy/places", "size": 8, "num_actions": 3, "has_actions": True,
            "action_meanings": ["LEFT", "RIGHT", "STAY"], "info_keys": ["agent_pos", "agent_dir"]}
    with StoreWriter(path, meta) as w:
        for _ in range(episodes):
            w.add(places_episode(rng, T))
    return str(path)
