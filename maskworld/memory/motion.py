"""The world's own pose: integrated from the actions, each step confirmed by the frame the world drew.

A memory key must exist where the world is played, with no environment behind it. Dead reckoning with a
learned pose head reads the move off the new frame, and fails where imagined frames are unlike real ones
(measured on Landmarks: right on 99.5 % of real steps, ~70 % of imagined ones). The motion model here asks
less of the frames (WorldCam integrates camera poses from the actions themselves):

- what each action does to the pose is fitted once from the training data's poses (`fit_motion`): the most
  frequent pose change of the action when it changes the pose, or no change for an action that rarely does
  (pick-up, toggle); and whether it is ever blocked (a forward into a wall is; a turn is not);
- a blockable action moves the pose only if the world's own next frame differs from its last one by more
  than the data's threshold (the midpoint between the token change of real moves and of real blocked tries):
  a move the world's imagination blocked is blocked in its pose too, so the pose agrees with the geometry the
  world itself shows, which is what a revisit of *its* places needs.

The model is a few numbers in world.json (`meta.motion`); a world without it keeps its pose head.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from maskworld.memory.pose import delta_class, integrate

STILL = int(delta_class(np.zeros(3, np.int64), np.zeros(3, np.int64)))  # the class of "no pose change"
MOVES_SHARE = 0.05  # an action that changes the pose on fewer of its steps than this moves nothing (pick-up: 0;
# an explorer that keeps pressing into walls moved on only 16 % of its Landmarks forwards)
ALWAYS_SHARE = 0.98  # ... on at least this share it is never blocked (a turn)


@dataclass
class Motion:
    moves: list[int]
    """Per action: the pose-change class it makes (memory/pose.py `delta_class`), STILL for none."""
    blockable: list[bool]
    """Per action: whether it sometimes fails to move (then the world's frame must confirm the move)."""
    change: float
    """Share of a frame's tokens that must change for a blockable move to count as made."""
    accuracy: float = 0.0
    """On the real transitions it was fitted on: share of steps whose pose change this model gets right."""

    def step(self, pose: np.ndarray, action: int, last_tokens: np.ndarray | None, tokens: np.ndarray) -> np.ndarray:
        """The pose after `action` led from a frame with `last_tokens` to one with `tokens` (both (N,) or (h,w))."""
        if not 0 <= action < len(self.moves) or self.moves[action] == STILL:
            return np.asarray(pose, np.int64)
        if self.blockable[action]:
            if last_tokens is None or changed_share(last_tokens, tokens) < self.change:
                return np.asarray(pose, np.int64)
        return integrate(pose, self.moves[action])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> Motion | None:
        if not d:
            return None
        return cls(moves=[int(x) for x in d["moves"]], blockable=[bool(x) for x in d["blockable"]],
                   change=float(d["change"]), accuracy=float(d.get("accuracy", 0.0)))


def changed_share(a: np.ndarray, b: np.ndarray) -> float:
    """Share of token positions whose ids differ between two frames."""
    return float(np.mean(np.asarray(a).reshape(-1) != np.asarray(b).reshape(-1)))


def fit_motion(poses: np.ndarray, tokens: np.ndarray, actions_in: np.ndarray, first: np.ndarray,
               num_actions: int) -> Motion:
    """Fit from real transitions. poses (F,3), tokens (F,N) (or (F,h,w)), actions_in (F,) the action into each
    frame, first (F,) bool: the frame starts an episode (no transition into it)."""
    F_ = len(poses)
    i = np.flatnonzero(~np.asarray(first, bool)[1:]) + 1  # frames with a frame before them in their episode
    a = np.asarray(actions_in)[i]
    ok = (a >= 0) & (a < num_actions)
    i, a = i[ok], a[ok]
    delta = delta_class(poses[i - 1], poses[i])
    toks = np.asarray(tokens).reshape(F_, -1)
    change = np.mean(toks[i] != toks[i - 1], axis=1)  # (n,)
    moves, blockable = [STILL] * num_actions, [False] * num_actions
    for k in range(num_actions):
        d = delta[a == k]
        moved = d[d != STILL]
        if len(d) == 0 or len(moved) < MOVES_SHARE * len(d):
            continue
        moves[k] = int(np.bincount(moved).argmax())
        blockable[k] = len(moved) < ALWAYS_SHARE * len(d)
    # the token change that tells a made move from a blocked one, among the blockable actions' steps
    blk = np.isin(a, [k for k in range(num_actions) if blockable[k]])
    made, stuck = change[blk & (delta != STILL)], change[blk & (delta == STILL)]
    if len(made) and len(stuck):
        thr = 0.5 * (float(np.quantile(made, 0.05)) + float(np.quantile(stuck, 0.95)))
    else:
        thr = 0.5 * float(np.quantile(made, 0.05)) if len(made) else 0.5
    m = Motion(moves, blockable, float(np.clip(thr, 1e-3, 1.0)))
    # how often the rule, applied to the real frames, gives the real pose change
    pred = np.array([m.moves[k] if (m.moves[k] != STILL and (not m.blockable[k] or c >= m.change)) else STILL
                     for k, c in zip(a, change)], np.int64)
    m.accuracy = float(np.mean(pred == delta)) if len(delta) else 0.0
    return m
