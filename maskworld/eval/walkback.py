"""Walk-back trials: the revisit benchmark outside grid worlds, with no poses anywhere.

A trial (LoopNav's A -> B -> A, on a game whose level a seed fixes, e.g. a Procgen platformer with
`num_levels=1`): stand at A for a few frames (the outbound leg, given to the world as real frames), walk
one way for g/2 steps to B, walk back for g/2 steps. The world imagines the walk from the logged actions;
the last frames of the way back are scored against the real frames of the same walk (the game's own
replay of those actions), and against the world's own frame of the outbound place that looks most like
each (self-consistency).

Design choices:
- The two directions are the game's `RIGHT` and `LEFT` actions (any game that names them); the outbound
  frames are `NOOP`s where the game has one, so the world sees the place before it leaves.
- A level is kept only if the real walk survives (no episode end) and really leaves: the frame at B is
  at least `AWAY_DB` below the PSNR of the returning frames against A, so memory of A is needed and the
  window cannot simply still hold it once g/2 exceeds the window. Levels are tried in a seeded order.
- Trials are `RevisitTrial`s without poses or landmark views: `revisit.py` scores PSNR, SSIM and self-PSNR.
- A platformer has inertia: on CoinRun 8 steps out and 8 back do not return to A (the returning frames are
  ~13 dB from it, the turning point ~11 dB), 16 and 16 do (~33 dB); such levels are rejected, not scored.
"""

from __future__ import annotations

import numpy as np

from maskworld.envs import make_env
from maskworld.errors import UserError
from maskworld.eval.metrics import psnr_per_frame
from maskworld.eval.revisit_trials import RevisitTrial

OUTBOUND = 4  # real frames at A given to the world
SCORED = 4  # returning frames scored
AWAY_DB = 6.0  # B must look this much less like A than the returning frames do


def directions(action_meanings: list[str]) -> tuple[int, int, int | None]:
    """(away, back, stand) action ids: RIGHT, LEFT and NOOP (None if the game has none)."""
    names = [m.upper() for m in action_meanings]
    if "RIGHT" not in names or "LEFT" not in names:
        raise UserError("walk-back trials walk RIGHT and back LEFT; this game's actions are "
                        f"{', '.join(action_meanings)}: pass a game that has both (e.g. procgen:coinrun)")
    return names.index("RIGHT"), names.index("LEFT"), names.index("NOOP") if "NOOP" in names else None


def check_game(world, env_id: str, size: int) -> None:
    """UserError unless `env_id` has the world's actions (same names, same order) and RIGHT/LEFT to walk by."""
    env = _open(env_id, 0, size)
    theirs = list(env.action_meanings)
    env.close()
    if theirs != list(world.action_meanings):
        raise UserError(f"{env_id}'s actions ({', '.join(theirs)}) are not the world's ({', '.join(world.action_meanings)}): "
                        "walk-back trials replay the env's actions in the world; pass --env the game the world was trained on")
    directions(theirs)


def _walk(env, actions: list[int]) -> tuple[np.ndarray, bool]:
    frame = env.reset()
    frame = frame[0] if isinstance(frame, tuple) else frame
    frames, ended = [frame], False
    for a in actions:
        out = env.step(a)
        frames.append(out[0])
        ended = ended or bool(out[2] or out[3])
    return np.stack(frames), ended


def _open(env_id: str, level: int, size: int):
    if env_id.startswith("procgen:"):
        return make_env(env_id, size=size, seed=level, start_level=level, num_levels=1)
    return make_env(env_id, size=size, seed=level)


def make_walkback_trials(env_id: str, gaps=(16, 32, 64), per_gap: int = 8, seed: int = 0, size: int = 64,
                         max_attempts: int = 50) -> list[RevisitTrial]:
    """`per_gap` trials per gap g (even, >= 2): OUTBOUND frames at A, g/2 steps away, g/2 steps back."""
    trials: list[RevisitTrial] = []
    for g in gaps:
        if g < 2 or g % 2:
            raise UserError(f"walk-back gap {g}: give an even number of steps >= 2 (half away, half back)")
        found, level = 0, seed * 1000 + g * 100_003 % 997
        for _ in range(max_attempts * per_gap):
            if found == per_gap:
                break
            level += 1
            env = _open(env_id, level, size)
            away, back, stand = directions(env.action_meanings)
            first = [stand if stand is not None else away] * (OUTBOUND - 1)
            acts = first + [away] * (g // 2) + [back] * (g // 2)
            frames, ended = _walk(env, acts)
            env.close()
            if ended:
                continue
            A, B = frames[OUTBOUND - 1], frames[OUTBOUND - 1 + g // 2]
            ret = np.arange(len(frames) - SCORED, len(frames))
            back_db = float(psnr_per_frame(frames[ret], np.repeat(A[None], SCORED, 0)).mean())
            away_db = float(psnr_per_frame(B[None], A[None])[0])
            if away_db > back_db - AWAY_DB:
                continue  # B still looks like A: nothing to remember
            match = np.array([int(psnr_per_frame(frames[:OUTBOUND], np.repeat(frames[r][None], OUTBOUND, 0)).argmax())
                              for r in ret])
            trials.append(RevisitTrial(gap=g, frames=frames, actions_in=np.array([-1] + acts, np.int64), poses=None,
                                       views=None, outbound=OUTBOUND, ret=ret, match=match, away=away_db,
                                       env_seed=level))
            found += 1
        if found < per_gap:
            raise UserError(f"{env_id}: only {found} of {per_gap} levels survive a walk of {g} steps and leave the "
                            "start's view; try a smaller gap or fewer --trials")
    return trials
