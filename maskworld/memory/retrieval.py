"""Which remembered frames the predicted frame reads: the same rule in training and in play.

For the frame at index p (episode frame index in training, session position in play) with a window of W
frames, the context already holds frames p-W+1 .. p-1, so memory looks only further back:
- compressed: frames p-W+1-C .. p-W (the C frames that most recently left the window), oldest first;
- retrieved: among frames <= p-W, the `m` nearest to the reference pose (the pose of frame p-1, the last
  one known), one per distinct pose, ties to the more recent; nothing farther than `max_dist` (cells +
  quarter turns): a frame from elsewhere only distracts. Of several views of one pose, an *observed* one (a
  real frame fed with `observe`) beats an imagined one, and then the most recent wins: a real view is the
  truth, an imagined one the world's guess (measured on the revisit benchmark: the return leg otherwise
  reads the gap's imagined views of the place instead of the real scan). Training data is all observed.
"""

from __future__ import annotations

import numpy as np

from maskworld.memory import appearance
from maskworld.memory.pose import HERE, REL_EMPTY, distance, rel_code

MAX_DIST = 3


def select(ref_pose: np.ndarray, cand_poses: np.ndarray, m: int, max_dist: int = MAX_DIST,
           observed: np.ndarray | None = None) -> np.ndarray:
    """ref (3,), candidates (K,3) oldest first -> up to m candidate indices, nearest first.
    observed (K,) bool: real views (preferred over imagined ones of the same pose); None = all real."""
    if len(cand_poses) == 0 or m <= 0:
        return np.zeros(0, np.int64)
    d = distance(ref_pose[None], cand_poses)  # (K,)
    imagined = np.zeros(len(d), bool) if observed is None else ~np.asarray(observed, bool)
    order = np.lexsort((-np.arange(len(d)), imagined, d))  # by distance, observed first, then most recent first
    order = order[d[order] <= max_dist]
    out, seen = [], set()
    for i in order:
        key = tuple(cand_poses[i])
        if key in seen:
            continue
        seen.add(key)
        out.append(i)
        if len(out) == m:
            break
    return np.array(out, np.int64)


def training_memory(poses: np.ndarray | None, rows: np.ndarray, first_rows: np.ndarray, window: int, m: int, c: int,
                    rng: np.random.Generator, drop: float = 0.2, keys: str = "pose", tokens: np.ndarray | None = None,
                    grid: int = 0):
    """Memory of every frame of a batch of clips, from a token cache's flat arrays.

    poses (N,3) flat (keys "pose"), or tokens (N,h,w) flat (keys "appearance": memory/appearance.py, tagged
    HERE); rows, first_rows (B,T) flat frame index of each clip frame and of its episode's first frame. Returns
    retrieved rows (B,T,m) (-1 = empty), rel codes (B,T,m) and compressed rows (B,T,c) (-1 = none). A share
    `drop` of the clips gets no memory at all, so the same network also learns to work with memory switched off
    (the ablation baseline).
    """
    B, T = rows.shape
    ret = np.full((B, T, m), -1, np.int64)
    rel = np.full((B, T, m), REL_EMPTY, np.int64)
    comp = np.full((B, T, c), -1, np.int64)
    for b in range(B):
        if rng.random() < drop:
            continue
        e = int(first_rows[b, 0])
        for t in range(T):
            p = int(rows[b, t])
            newest = p - window  # frames <= newest are outside the window
            if c:
                cr = np.arange(newest - c + 1, newest + 1)
                comp[b, t] = np.where(cr >= e, cr, -1)
            if m and newest >= e and p - 1 >= e:
                if keys == "appearance":
                    cand_t = np.asarray(tokens[e:newest + 1]).reshape(newest + 1 - e, -1)
                    idx = appearance.select(np.asarray(tokens[p - 1]).reshape(-1), cand_t, grid, m)
                    codes = np.full(len(idx), HERE, np.int64)
                else:
                    cand = poses[e:newest + 1]
                    idx = select(poses[p - 1], cand, m)
                    codes = rel_code(poses[p - 1], cand[idx])
                ret[b, t, :len(idx)] = e + idx
                rel[b, t, :len(idx)] = codes
    return ret, rel, comp
