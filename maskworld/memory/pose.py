"""Poses (x, y, dir) on a grid, and the two codes the dynamics model sees.

MiniGrid's convention: dir 0 = +x (right), 1 = +y (down), 2 = -x, 3 = -y. A pose offset is expressed in
the frame of a reference pose (forward, lateral-to-the-right, turn), because what the agent sees from a
pose depends only on that relative offset, not on where in the layout it happened.

- `rel_code(ref, other)`: where a remembered frame was taken, relative to the current pose, clipped to
  +-REL_RADIUS cells; REL_EMPTY marks an empty memory slot.
- `delta_class(prev, cur)`: the pose change between two consecutive frames (forward/lateral in {-1,0,1},
  turn 0..3) = the pose head's target; `integrate` applies a predicted change (dead reckoning).
"""

from __future__ import annotations

import numpy as np

DIR_VEC = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=np.int64)
REL_RADIUS = 3
_SIDE = 2 * REL_RADIUS + 1
REL_CLASSES = _SIDE * _SIDE * 4 + 1
REL_EMPTY = REL_CLASSES - 1
DELTA_CLASSES = 3 * 3 * 4


def offset(ref: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ref, other (..., 3) -> forward, lateral (cells, in ref's frame) and turn (0..3), each (...)."""
    ref, other = np.asarray(ref, np.int64), np.asarray(other, np.int64)
    d = other[..., :2] - ref[..., :2]
    f = DIR_VEC[ref[..., 2] % 4]  # (..., 2)
    r = np.stack([-f[..., 1], f[..., 0]], -1)  # right of facing f (y points down)
    fw = (d * f).sum(-1)
    lat = (d * r).sum(-1)
    return fw, lat, (other[..., 2] - ref[..., 2]) % 4


def rel_code(ref: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Relative-pose code in [0, REL_CLASSES - 1) of `other` seen from `ref` (both (..., 3))."""
    fw, lat, turn = offset(ref, other)
    fw = np.clip(fw, -REL_RADIUS, REL_RADIUS) + REL_RADIUS
    lat = np.clip(lat, -REL_RADIUS, REL_RADIUS) + REL_RADIUS
    return ((fw * _SIDE + lat) * 4 + turn).astype(np.int64)


def distance(ref: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Retrieval distance: cells apart plus one per quarter turn (a frame facing away shows other things)."""
    fw, lat, turn = offset(ref, other)
    return np.abs(fw) + np.abs(lat) + np.minimum(turn, 4 - turn)


def delta_class(prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """Class in [0, DELTA_CLASSES) of the move prev -> cur (moves beyond one cell are clipped)."""
    fw, lat, turn = offset(prev, cur)
    return ((np.clip(fw, -1, 1) + 1) * 3 + np.clip(lat, -1, 1) + 1) * 4 + turn


def integrate(pose: np.ndarray, cls: int) -> np.ndarray:
    """Apply a predicted move class to a pose (3,) -> new pose (3,)."""
    pose = np.asarray(pose, np.int64)
    turn, rest = cls % 4, cls // 4
    fw, lat = rest // 3 - 1, rest % 3 - 1
    f = DIR_VEC[pose[2] % 4]
    r = np.array([-f[1], f[0]])
    xy = pose[:2] + fw * f + lat * r
    return np.array([xy[0], xy[1], (pose[2] + turn) % 4], dtype=np.int64)


HERE = int(rel_code(np.zeros(3, np.int64), np.zeros(3, np.int64)))
"""The relative-pose code of "taken right here": what a frame retrieved by appearance (no pose) is tagged with."""
