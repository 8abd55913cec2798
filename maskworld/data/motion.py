"""Where the picture moved: per token cell, whether its pixels changed from the frame before.

In most games a frame differs from the last in a few places (Breakout: 4 % of the cells, the ball and the paddle),
and those few cells are what the dynamics has to get right: a world that draws every still cell exactly and
loses the ball scores well in masked-token accuracy and badly where a player looks. A uniform token loss gives the
still cells (and the tokenizer's churn on them) almost all of its gradient. `moved_cells` marks the cells that
changed in pixels, so the loss can weigh them more (`dynamics_train.dynamics_losses`, `--moving-weight`), as
focal-style reweightings do for rare classes (Lin et al. 2017).

Design choices:
- Pixels, not tokens: a conv tokenizer changes a third of Breakout's codes between frames where 4 % of the
  patches changed ("churn"), so token changes would mostly mark noise.
- A tolerance of `TOLERANCE` levels, so video noise and compression do not mark every cell; game renderers give
  exact zeros where nothing moved.
- A frame that starts an episode has nothing before it: no cell of it moved.
- Cell borders as the tokenizer's grid divides the frame (i * H // h), so frames not a multiple of the grid work.
"""

from __future__ import annotations

import numpy as np

TOLERANCE = 8
"""A pixel channel counts as changed when it differs by more than this many levels (of 255)."""


def moved_cells(frames_THW3: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(T, h, w) bool for one episode's frames: cell (i, j) of frame t changed from frame t - 1 (frame 0: False)."""
    f = np.asarray(frames_THW3)
    T, H, W = f.shape[:3]
    h, w = grid
    out = np.zeros((T, h, w), bool)
    if T < 2:
        return out
    diff = (np.abs(f[1:].astype(np.int16) - f[:-1].astype(np.int16)) > TOLERANCE)  # (T-1, H, W, C)
    px = diff.reshape(T - 1, H, W, -1).any(-1)  # (T-1, H, W)
    rows = np.logical_or.reduceat(px, np.arange(h) * H // h, axis=1)  # (T-1, h, W)
    out[1:] = np.logical_or.reduceat(rows, np.arange(w) * W // w, axis=2)  # (T-1, h, w)
    return out
