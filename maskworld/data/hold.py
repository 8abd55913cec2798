"""Tokens that hold where the picture holds: a patch whose pixels did not change keeps the previous frame's token.

A conv tokenizer reads each token from a neighbourhood wider than its patch, and its quantizer sits near code
boundaries for some patches, so a frame where only the ball moved can come back with a third of its codes changed
("churn", `eval.metrics.token_churn`). To the dynamics those changes are noise it cannot predict from the game:
targets that cost capacity and gradient and teach nothing about the game. Holding the token of every patch whose
pixels are exactly those of the previous real frame removes that noise from the token sequences the dynamics
learns from and is prompted with, and leaves it the changes the game made (the "nothing changes" prior of the
dynamics, `DynamicsConfig.prev_frame_prior`, then holds for every still patch exactly).

Design choices:
- Exact equality, no tolerance: a held token then always stands for exactly the pixels its patch shows (by
  induction along the chain of equal patches), so nothing drifts. Noisy video (compressed, filmed) rarely has an
  exactly still patch, so holding changes little there and never harms.
- Only between two real frames: the same rule in the token cache (training), in `Engine.observe` (prompts, teacher
  forcing) and in the agents' replay, so a world is prompted with the kind of sequences it learned from.
"""

from __future__ import annotations

import numpy as np


def still_cells(prev_HW3: np.ndarray, cur_HW3: np.ndarray, grid: int) -> np.ndarray:
    """(grid, grid) bool: the patches (H/grid px square) whose pixels are identical in the two frames."""
    H, W, C = cur_HW3.shape
    ph, pw = H // grid, W // grid
    same = (np.asarray(prev_HW3) == np.asarray(cur_HW3)).reshape(grid, ph, grid, pw, C)
    return same.all(axis=(1, 3, 4))


def hold_tokens(tokens_Thw: np.ndarray, frames_THW3: np.ndarray, starts_T: np.ndarray | None = None) -> np.ndarray:
    """Tokens of consecutive real frames (T, h, w), each frame's still patches holding the token before them.

    starts_T: bool (T,), True where a new episode starts (nothing is held across it); None = one episode.
    Returns a new array; frame 0 (and every start) keeps its own tokens."""
    out = np.array(tokens_Thw, copy=True)
    grid = out.shape[1]
    for t in range(1, len(out)):
        if starts_T is not None and starts_T[t]:
            continue
        m = still_cells(frames_THW3[t - 1], frames_THW3[t], grid)
        out[t][m] = out[t - 1][m]
    return out
