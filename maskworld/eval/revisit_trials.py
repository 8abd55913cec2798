"""Revisit trials (world-model memory) and the landmark-recall metric.

A trial: observe a place (a 360-degree scan in place), stay away for exactly `gap` actions, come
back to the same pose and scan again. A model is given the outbound frames and all actions; the
return frames are scored against the outbound frames of the same pose and against the true
landmark layout (`landmark_recall`).

Design choices:
- Trials are played in the real env through `make_env(..., view="partial")`, so frames are exactly
  what collected data looks like; the egocentric encodings (`views`) come from the same MiniGrid
  state after each step, so frames and views agree.
- The gap is an *exact-length* closed walk: a table `can[k][pose]` ("the start pose is reachable in
  exactly k more actions") lets a far-seeking policy wander until the table forces it home. Blocked
  forwards are no-op actions, which is how odd gaps fit (every effective move flips x+y+dir parity).
  The policy heads for far cells (ideally other rooms) and stays away as long as the budget allows,
  so the start scene is not re-observed early.
- Only left/right/forward (0/1/2) are used: they cannot change the world, so the return scan must
  reproduce the outbound scan exactly (a built-in check of the trial).
- Recall compares the dominant hue of each landmark's cell region with the landmark's colour and its
  coloured area with a clean rendering of that object in that cell; hue survives the grey
  highlight and anti-aliasing, and the area check rejects smears and wrong object sizes.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from maskworld.envs import make_env
from maskworld.envs.base import resize_frame
from maskworld.errors import UserError

LEFT, RIGHT, FORWARD = 0, 1, 2
SCAN = (RIGHT, RIGHT, RIGHT, RIGHT)  # 360 degrees in place, ending facing the start direction
VIEW = 7  # MiniGrid agent_view_size; the agent sits at view cell (3, 6), facing up
LANDMARK_TYPES = ("ball", "box", "key", "door")
MIN_SAT = 30  # max-min channel spread; grey walls/floor have 0, a purple box outline at 64 px ~36
HUE_TOL = 30.0  # degrees; a hue further than this from every palette colour counts as no colour
AREA_FACTOR = 2.0  # coloured area must be within this factor of a clean rendering


@dataclass
class RevisitTrial:
    gap: int  # steps between the last outbound frame and the first return frame
    frames: np.ndarray  # (L, S, S, 3) uint8, as make_env(..., view="partial") returns them
    actions_in: np.ndarray  # (L,) int64; action that led INTO frame i; actions_in[0] = -1
    poses: np.ndarray  # (L, 3) int64: agent x, y, dir
    views: np.ndarray  # (L, 7, 7, 3) uint8: MiniGrid's egocentric encoding (obs["image"])
    outbound: int  # frames 0..outbound-1 are the outbound leg (given to the model)
    ret: np.ndarray  # (R,) indices of the scored return frames
    match: np.ndarray  # (R,) index of the outbound frame with the same pose as each return frame
    away: int  # max Manhattan distance (cells) from the start cell during the gap
    env_seed: int  # the reset seed of the layout, to rebuild the env


# --- exact-length closed walks on the pose graph -------------------------------------------------

def _pose_graph(grid, width: int, height: int) -> np.ndarray:
    """succ (W*H*4, 3) int: pose index after LEFT/RIGHT/FORWARD; pose = (y*W + x)*4 + dir."""
    from minigrid.core.constants import DIR_TO_VEC

    succ = np.zeros((width * height * 4, 3), dtype=np.int64)
    for y in range(height):
        for x in range(width):
            for d in range(4):
                p = (y * width + x) * 4 + d
                succ[p, LEFT] = (y * width + x) * 4 + (d - 1) % 4
                succ[p, RIGHT] = (y * width + x) * 4 + (d + 1) % 4
                fx, fy = x + int(DIR_TO_VEC[d][0]), y + int(DIR_TO_VEC[d][1])
                cell = grid.get(fx, fy) if (0 <= fx < width and 0 <= fy < height) else None
                ok = 0 <= fx < width and 0 <= fy < height and (cell is None or cell.can_overlap())
                succ[p, FORWARD] = (fy * width + fx) * 4 + d if ok else p  # blocked: no-op
    return succ


def _predecessors(succ: np.ndarray) -> list[list[int]]:
    preds: list[list[int]] = [[] for _ in range(len(succ))]
    for p in range(len(succ)):
        for q in set(succ[p].tolist()):
            preds[q].append(p)
    return preds


def _cost_to(preds: list[list[int]], targets: list[int]) -> np.ndarray:
    """Fewest actions from every pose to any pose in `targets` (reverse BFS); inf where unreachable."""
    cost = np.full(len(preds), np.inf)
    todo = deque(targets)
    cost[targets] = 0
    while todo:
        q = todo.popleft()
        for p in preds[q]:
            if cost[p] == np.inf:
                cost[p] = cost[q] + 1
                todo.append(p)
    return cost


def _next_target(preds, p: int, rem: int, home: np.ndarray, far: np.ndarray, width: int,
                 rng: np.random.Generator) -> tuple[int | None, np.ndarray | None]:
    """A far cell whose round trip (p -> cell -> home) fits in `rem` actions, and the cost-to-it table.

    Candidates are tried farthest first, in random order within the top 30% of distances, so that
    walks differ between trials but still leave (ideally into another room).
    """
    cell_far: dict[int, int] = {}
    for q in np.flatnonzero(home < np.inf).tolist():
        if q // 4 != p // 4:
            cell_far[q // 4] = int(far[q])
    if not cell_far:
        return None, None
    best = max(cell_far.values())
    top = [c for c, f in cell_far.items() if f >= 0.7 * best]
    rest = sorted((c for c, f in cell_far.items() if f < 0.7 * best), key=lambda c: -cell_far[c])
    rng.shuffle(top)
    px, py = (p // 4) % width, (p // 4) // width
    for c in top + rest:
        if abs(c % width - px) + abs(c // width - py) + cell_far[c] > rem:  # lower bound: cannot fit
            continue
        tgt = [c * 4 + d for d in range(4)]
        cost = _cost_to(preds, tgt)
        if cost[p] + home[tgt].min() <= rem:
            return c, cost
    return None, None


def _closed_walk(succ: np.ndarray, width: int, start: int, gap: int, rng: np.random.Generator) -> list[int] | None:
    """Exactly `gap` actions from pose `start` back to `start`, staying far away; None if impossible."""
    n = len(succ)
    # can[k, p]: start is reachable from p in exactly k actions (blocked forwards included).
    can = np.zeros((gap + 1, n), dtype=bool)
    can[0, start] = True
    for k in range(1, gap + 1):
        can[k] = can[k - 1][succ].any(axis=1)
    if not can[gap, start]:
        return None
    preds = _predecessors(succ)
    home = _cost_to(preds, [start])
    cx, cy = (np.arange(n) // 4) % width, (np.arange(n) // 4) // width
    far = np.abs(cx - cx[start]) + np.abs(cy - cy[start])  # Manhattan cells from the start
    actions: list[int] = []
    p, target, to_target, searching = start, None, None, True
    for t in range(gap):
        rem = gap - t
        if searching and (target is None or p // 4 == target):
            target, to_target = _next_target(preds, p, rem, home, far, width, rng)
            searching = target is not None  # nothing fits now: nothing will later, stop looking
        allowed = [a for a in (LEFT, RIGHT, FORWARD) if can[rem - 1, succ[p, a]]]

        def key(a: int) -> tuple:
            q = succ[p, a]
            return (to_target[q] if to_target is not None else 0.0, -far[q], rng.random())

        a = min(allowed, key=key)
        actions.append(a)
        p = int(succ[p, a])
    assert p == start, "closed walk did not return to the start pose"
    return actions


# --- trials --------------------------------------------------------------------------------------

def _landmark_mask(view: np.ndarray) -> np.ndarray:
    """(7, 7) bool: view cells holding a landmark (ball/box/key/door of a non-grey colour)."""
    from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX

    types = [OBJECT_TO_IDX[t] for t in LANDMARK_TYPES]
    return np.isin(view[..., 0], types) & (view[..., 1] != COLOR_TO_IDX["grey"])


def _record(env, frame: np.ndarray, info: dict, action: int, out: dict) -> None:
    base = env.env.unwrapped
    out["frames"].append(frame)
    out["actions"].append(action)
    out["poses"].append([int(info["agent_pos"][0]), int(info["agent_pos"][1]), int(info["agent_dir"])])
    out["views"].append(base.gen_obs()["image"].astype(np.uint8))


def _play(env, env_seed: int, actions: list[int]) -> dict:
    out: dict[str, list] = {"frames": [], "actions": [], "poses": [], "views": []}
    frame, info = env.reset(seed=env_seed)
    _record(env, frame, info, -1, out)
    for a in actions:
        frame, _r, term, trunc, info = env.step(a)
        if term or trunc:
            raise UserError(f"{env.env_id} ended after {len(out['frames'])} steps; a revisit trial needs "
                            f"{len(actions) + 1} frames (raise the env's max_steps)")
        _record(env, frame, info, a, out)
    return out


def make_trials(env_id: str = "MiniGrid-Landmarks-v0", gaps=(8, 16, 32, 64, 128, 256), per_gap: int = 8,
                seed: int = 0, size: int = 64, max_attempts: int = 100) -> list[RevisitTrial]:
    """`per_gap` trials per gap: scan, closed walk of exactly `gap` actions, scan again.

    Layouts/starts without a ball/box/key in the outbound scan, or where no closed walk of that
    length exists, are redrawn (seeded, so the result is deterministic in `seed`).
    """

    gaps = [int(g) for g in gaps]
    if not gaps or min(gaps) < 1:
        raise UserError(f"gaps must be positive action counts, not {gaps}")
    env = make_env(env_id, size=size, seed=seed, view="partial")
    if env.view != "partial":
        raise UserError(f"{env_id} is not a MiniGrid env; revisit trials need MiniGrid poses and views")
    base = env.env.unwrapped
    trials = []
    try:
        for gap in gaps:
            for k in range(per_gap):
                trials.append(_one_trial(env, base, gap, np.random.default_rng([seed, gap, k]), max_attempts))
    finally:
        env.close()
    return trials


def _one_trial(env, base, gap: int, rng: np.random.Generator, max_attempts: int) -> RevisitTrial:
    n_out = len(SCAN) + 1
    for _ in range(max_attempts):
        env_seed = int(rng.integers(2**31 - 1))
        scan = _play(env, env_seed, list(SCAN))
        if not any(_landmark_mask(v).any() for v in scan["views"]):
            continue  # nothing to remember from here
        x, y, d = scan["poses"][0]
        succ = _pose_graph(base.grid, base.width, base.height)
        walk = _closed_walk(succ, base.width, (y * base.width + x) * 4 + d, gap, rng)
        if walk is None:
            continue
        out = _play(env, env_seed, list(SCAN) + walk + list(SCAN))
        poses = np.asarray(out["poses"], dtype=np.int64)
        ret = np.arange(n_out - 1 + gap, n_out + gap + len(SCAN))
        match = np.arange(n_out)
        # The contract the scorer relies on: exact gap, same poses, and a static world.
        assert len(out["frames"]) == n_out + gap + len(SCAN)
        assert (poses[ret] == poses[match]).all(), "return poses differ from the outbound poses"
        gap_poses = poses[n_out - 1: ret[0] + 1]
        away = int(np.abs(gap_poses[:, :2] - poses[0, :2]).sum(axis=1).max())
        return RevisitTrial(
            gap=gap,
            frames=np.stack(out["frames"]).astype(np.uint8),
            actions_in=np.asarray(out["actions"], dtype=np.int64),
            poses=poses,
            views=np.stack(out["views"]).astype(np.uint8),
            outbound=n_out,
            ret=ret.astype(np.int64),
            match=match.astype(np.int64),
            away=away,
            env_seed=env_seed,
        )
    raise UserError(f"no revisit trial with gap {gap} found in {max_attempts} layouts of {env.env_id}: "
                    "use an env with coloured landmarks (MiniGrid-Landmarks-v0) and a gap that fits its max_steps")


# --- landmark recall -----------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _palette() -> tuple[tuple[str, ...], np.ndarray]:
    from minigrid.core.constants import COLORS

    names = tuple(c for c in COLORS if c != "grey")
    return names, _hue(np.stack([COLORS[c] for c in names]).astype(np.float64))


def _hue(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) -> (...) hue in degrees; blending with grey, black or white keeps it."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx, mn = rgb.max(axis=-1), rgb.min(axis=-1)
    c = np.maximum(mx - mn, 1e-9)
    h = np.where(mx == r, ((g - b) / c) % 6, np.where(mx == g, (b - r) / c + 2, (r - g) / c + 4))
    return h * 60.0


def _colour_classes(region: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 -> (h, w) int: palette index of saturated pixels, -1 for grey/dark/off-palette."""
    names, hues = _palette()
    rgb = region.astype(np.float64)
    sat = rgb.max(axis=-1) - rgb.min(axis=-1)
    d = np.abs(_hue(rgb)[..., None] - hues)
    d = np.minimum(d, 360.0 - d)  # circular
    cls = d.argmin(axis=-1)
    ok = (sat >= MIN_SAT) & (d.min(axis=-1) <= HUE_TOL)
    return np.where(ok, cls, -1)


def _cell_box(i: int, j: int, size: int) -> tuple[slice, slice]:
    """Pixel rows/cols of view cell (i=column, j=row): MiniGrid renders view[i, j] at x=i, y=j."""
    b = [round(n * size / VIEW) for n in range(VIEW + 1)]
    return slice(b[j], b[j + 1]), slice(b[i], b[i + 1])


@lru_cache(maxsize=None)
def _clean_area(type_idx: int, color_idx: int, state: int, i: int, j: int, size: int) -> int:
    """Coloured-pixel count of this object drawn alone in view cell (i, j), rendered like a frame."""
    from minigrid.core.grid import Grid
    from minigrid.core.world_object import WorldObj


    tile = math.ceil(size / VIEW)  # as make_env's RGBImgPartialObsWrapper(tile_size=ceil(size/7))
    floor = Grid.render_tile(None, highlight=True, tile_size=tile)
    img = np.tile(floor, (VIEW, VIEW, 1))
    img[j * tile:(j + 1) * tile, i * tile:(i + 1) * tile] = Grid.render_tile(
        WorldObj.decode(type_idx, color_idx, state), highlight=True, tile_size=tile)
    rows, cols = _cell_box(i, j, size)
    return int((_colour_classes(resize_frame(img, size)[rows, cols]) >= 0).sum())


def _shows(frame: np.ndarray, i: int, j: int, obj: np.ndarray) -> bool:
    from minigrid.core.constants import IDX_TO_COLOR

    names, _ = _palette()
    size = frame.shape[0]
    rows, cols = _cell_box(i, j, size)
    cls = _colour_classes(frame[rows, cols])
    coloured = cls[cls >= 0]
    if coloured.size == 0:
        return False
    want = names.index(IDX_TO_COLOR[int(obj[1])])
    dominant = np.bincount(coloured, minlength=len(names)).argmax()
    ref = _clean_area(int(obj[0]), int(obj[1]), int(obj[2]), i, j, size)
    n = int((coloured == want).sum())
    return dominant == want and ref / AREA_FACTOR <= n <= ref * AREA_FACTOR


def landmark_recall(frames: np.ndarray, views: np.ndarray) -> tuple[int, int]:
    """(hits, total) over landmark cells of the true `views` (K,7,7,3): does `frames` (K,S,S,3) show them?

    A hit needs the region of that view cell to have the landmark's colour as its dominant
    saturated hue and a coloured area within AREA_FACTOR of a clean rendering of the object.
    """
    hits = landmark_hits(frames, views)
    return int(hits.sum()), len(hits)


def landmark_hits(frames: np.ndarray, views: np.ndarray) -> np.ndarray:
    """(n,) bool, one per landmark cell of `views` (frame by frame, in a fixed order): is it shown? Two frame
    sequences over the same views give aligned arrays (e.g. to score only cells a tokenizer can render)."""
    frames, views = np.asarray(frames), np.asarray(views)
    if frames.ndim != 4 or views.shape[1:] != (VIEW, VIEW, 3) or len(frames) != len(views):
        raise UserError(f"landmark_recall needs frames (K,S,S,3) and views (K,7,7,3), got {frames.shape} and {views.shape}")
    out = []
    for frame, view in zip(frames, views):
        for i, j in zip(*np.nonzero(_landmark_mask(view))):
            out.append(_shows(frame, int(i), int(j), view[i, j]))
    return np.asarray(out, bool)
