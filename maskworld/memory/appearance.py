"""Appearance keys: finding remembered frames by what they show, with no pose at all.

A frame's appearance key is its token map: the tokenizer's learned codes, one per cell. Two frames look
alike when many cells hold the same code; a scrolled view (a platformer's camera) is matched by also trying
the map shifted by one cell in each direction, scored over the overlap. No extra weights, so training and
play compute exactly the same key (Mixture of Contexts routes a query to past chunks by such summaries).

Two uses:
- retrieval for worlds trained without poses (`select`): the frames most similar to the last one, one per
  look (near-duplicates of a frame already chosen are skipped), observed (real) views first at equal score;
- loop closure for worlds that keep a pose (`closure`): when the new frame matches a remembered one almost
  exactly, and every remembered frame that matches about as well was taken at one pose, the world is back at
  that pose, whatever its integrated pose says. Two more conditions keep it from snapping to the wrong place:
  the view must be distinctive (not mostly one token, as a bare wall or an empty floor: such views look alike
  everywhere), and the remembered pose must be near the integrated one (`CLOSE_RADIUS` cells): a closure
  corrects the drift of dead reckoning, it does not teleport (the re-localisation step of visual odometry).
"""

from __future__ import annotations

import numpy as np

SHIFTS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
MIN_SIMILARITY = 0.2  # a retrieved frame must share at least this share of cells with the query (else: distractor)
DUPLICATE = 0.95  # a candidate this similar to one already chosen adds nothing
CLOSE_AT = 0.9  # loop closure: the match must be at least this similar ...
CLOSE_MARGIN = 0.05  # ... and every frame within this margin of it must have the same pose
CLOSE_RADIUS = 3  # ... within this many cells (x + y) of the integrated pose
PLAIN = 0.6  # a view whose most common token covers this share of its cells is not distinctive


def similarity(ref: np.ndarray, cand: np.ndarray, grid: int) -> np.ndarray:
    """ref (N,), cand (K,N) token ids of grid x grid frames -> (K,) share of matching cells, best of the nine
    one-cell shifts (each scored over the cells both maps cover)."""
    cand = np.asarray(cand).reshape(-1, grid, grid)
    ref = np.asarray(ref).reshape(grid, grid)
    best = np.zeros(len(cand))
    for dy, dx in SHIFTS:
        r = ref[max(dy, 0):grid + min(dy, 0), max(dx, 0):grid + min(dx, 0)]
        c = cand[:, max(-dy, 0):grid + min(-dy, 0), max(-dx, 0):grid + min(-dx, 0)]
        best = np.maximum(best, (c == r).mean(axis=(1, 2)))
    return best


def select(ref: np.ndarray, cand: np.ndarray, grid: int, m: int, observed: np.ndarray | None = None) -> np.ndarray:
    """ref (N,) the last frame's tokens, cand (K,N) remembered frames oldest first -> up to m indices, most
    similar first (ties: observed, then the more recent)."""
    if len(cand) == 0 or m <= 0:
        return np.zeros(0, np.int64)
    s = similarity(ref, cand, grid)
    imagined = np.zeros(len(s), bool) if observed is None else ~np.asarray(observed, bool)
    order = np.lexsort((-np.arange(len(s)), imagined, -s))
    out: list[int] = []
    for i in order:
        if s[i] < MIN_SIMILARITY:
            break
        if out and similarity(cand[i], cand[out], grid).max() >= DUPLICATE:
            continue
        out.append(int(i))
        if len(out) == m:
            break
    return np.array(out, np.int64)


def distinctive(tokens: np.ndarray) -> bool:
    """Not mostly one token (a bare wall, an empty floor): a view that could be taken in many places."""
    counts = np.unique(np.asarray(tokens).reshape(-1), return_counts=True)[1]
    return counts.max() < PLAIN * counts.sum()


def closure(tokens: np.ndarray, cand: np.ndarray, cand_poses: np.ndarray, grid: int,
            pose: np.ndarray | None = None) -> np.ndarray | None:
    """The pose the world is back at, or None: tokens (N,) the new frame, cand (K,N) and cand_poses (K,3) the
    remembered frames old enough to count (outside the window); pose: the integrated pose, which a closure may
    correct by at most CLOSE_RADIUS cells."""
    if len(cand) == 0 or not distinctive(tokens):
        return None
    s = similarity(tokens, cand, grid)
    best = int(s.argmax())
    if s[best] < CLOSE_AT:
        return None
    near = cand_poses[s >= s[best] - CLOSE_MARGIN]
    if not (near == cand_poses[best]).all():
        return None  # it looks like several places (a bare wall): no evidence where it is
    if pose is not None and np.abs(cand_poses[best][:2] - np.asarray(pose)[:2]).sum() > CLOSE_RADIUS:
        return None  # too far from where the world believes it is: a look-alike, not a return
    return cand_poses[best].copy()
