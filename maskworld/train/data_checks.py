"""Checks of a training run against its data and budget, before anything is trained or written.

Each names what is wrong and what to change: a budget too small to train anything, episodes shorter than the
dynamics' window, or data whose frames never change (a world cannot learn a game it never sees move).
"""

from __future__ import annotations

import numpy as np

from maskworld.errors import UserError

MIN_MINUTES = 1.0
"""Below this a world gets a handful of optimizer steps on a 2-core CPU (a step of the small preset takes
seconds): nothing it learns is worth saving."""
FRAMES_CHECKED = 256


def check_budget(minutes: float | None, dyn_minutes: float | None) -> None:
    if minutes is not None and minutes < MIN_MINUTES:
        raise UserError(f"--minutes {minutes:g} is too small to train anything useful (a few optimizer steps); give "
                        f"--minutes {MIN_MINUTES:g} or more, or --steps N for a smoke test")
    if dyn_minutes is not None and dyn_minutes < 0.5 * MIN_MINUTES:
        raise UserError(f"the dynamics get {dyn_minutes:.2f} min of --minutes {minutes:g}: too little to learn the game; "
                        "raise --minutes or lower --tok-minutes")


def check_episodes(store, ids, window: int) -> None:
    """The longest training episode must hold a whole window of frames."""
    longest = max((store.length(int(i)) for i in ids), default=0)
    if longest < window:
        raise UserError(f"the training episodes have at most {longest} frames but the dynamics' window is {window}: "
                        f"pass --window {max(2, longest)} or collect longer episodes (`maskworld collect --steps`, "
                        "--max-episode-steps)")


def check_frames_change(store, ids, seed: int = 0) -> None:
    """Refuse data whose sampled frames are all one image."""
    rng = np.random.default_rng(seed)
    picked = rng.permutation(np.asarray(ids))[:8]
    frames = np.concatenate([store.load(int(i)).frames[:FRAMES_CHECKED] for i in picked])
    if len(frames) > 1 and not np.any(frames != frames[:1]):
        raise UserError(f"every sampled frame of {store.path} is the same image: "
                        "the game never changes on screen (a wrong --env or --view, or a policy that never acts), so "
                        "there is nothing for a world to learn; check the data with `maskworld data`")
