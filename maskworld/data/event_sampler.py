"""Event oversampling: dynamics clips that end on a reward or termination transition.

    clips = EventClips(cache, T=4, share=0.25)
    b = clips.sample(64, rng)        # the arrays of TokenCache.sample; ~16 of the 64 clips end on an event

Why: under a sparse reward the event is rare in the data (MiniGrid-Empty-8x8, exploring policy: 118 goal
entries in 30k transitions, 0.4% of clips), so a world trained on uniform clips learns the reward head on
real frames but almost never *imagines* the agent stepping onto the goal, imagined returns are ~0 and an
agent trained in the dream stays uniform. Drawing a share of every batch so that an event frame is the
clip's last frame puts it under the masked prediction with the whole window as context, and under the
reward and termination heads, `share / base rate` times more often.

Design choices:
- An event is a transition with a nonzero reward or `terminated` (truncation is the time limit, not the
  env's doing). `rewards_in[n]` / `terminated_in[n]` belong to the transition INTO frame n (clips.py).
- Event clips end on the event frame: the window [n-T+1, n]. An event before the episode's T-th frame
  gets the episode's first window (the latest one that holds it); an episode shorter than T has no
  window at all, as in the uniform sampler. Every event frame is equally likely.
- How many of a batch's clips are event clips: share * batch, its fraction rounded up with that
  probability (expected count exact at any batch size, e.g. a rank's share of the global batch); they
  sit at random rows of the batch, so a global batch split across ranks spreads them over the ranks.
- share 0 calls `TokenCache.sample` itself: the same rng gives the same batch as uniform sampling.
  A cache without events (e.g. one rank's episodes under --data-split rank) samples uniformly too.
- Everything is drawn from the caller's numpy generator, so runs stay seeded and `--resume` exact
  (the loop checkpoints that generator).
"""

from __future__ import annotations

import math

import numpy as np

from maskworld.errors import UserError

DEFAULT_SHARE = 0.25
"""Used when the data has events and `--event-share` is not given: a quarter of the clips, ~60x the goal
entries of uniform clips on Empty-8x8, while three quarters keep the ordinary dynamics in view."""


def check_share(share: float | None, flag: str = "--event-share") -> None:
    """UserError unless `share` is None (automatic) or a number in [0, 1]."""
    if share is None:
        return
    if not isinstance(share, (int, float)) or math.isnan(share) or not 0.0 <= share <= 1.0:
        raise UserError(f"{flag} {share}: give the share of each batch's clips that end on a reward/termination, "
                        "a number from 0 (uniform clips) to 1 (only event clips), e.g. 0.25")


def event_frames(cache) -> np.ndarray:
    """Flat indices (into the cache's per-frame arrays) of this cache's frames reached by an event transition."""
    hit = (cache.rewards_in != 0) | cache.terminated_in
    n = np.flatnonzero(hit)
    # keep the frames of this cache's episodes (a TokenCache(path, rank, world_size) holds every world_size-th one)
    ep = np.searchsorted(cache.offsets, n, side="right") - 1
    ok = (ep >= 0) & (n < cache.offsets[np.maximum(ep, 0)] + cache.lengths[np.maximum(ep, 0)])
    return n[ok]


def event_windows(cache, T: int) -> tuple[np.ndarray, np.ndarray]:
    """(episode index (E,), start inside it (E,)): for each event frame, the window of T frames that ends on it
    (or the episode's first window, for an event before its T-th frame); events in episodes shorter than T
    are left out."""
    n = event_frames(cache)
    ep = np.searchsorted(cache.offsets, n, side="right") - 1
    off, length = cache.offsets[ep], cache.lengths[ep]
    start = np.maximum(n - T + 1, off)
    ok = start + T <= off + length
    return ep[ok], (start - off)[ok]


def default_share(cache) -> float:
    """DEFAULT_SHARE when the cache holds any reward/termination transition, else 0 (uniform clips)."""
    return DEFAULT_SHARE if len(event_frames(cache)) else 0.0


class EventClips:
    """Clips of T frames, a `share` of them ending on an event (see the module docstring)."""

    def __init__(self, cache, T: int, share: float):
        check_share(share)
        self.cache, self.T, self.share = cache, T, float(share)
        self.which, self.starts = event_windows(cache, T) if self.share > 0 else (np.zeros(0, np.int64),) * 2

    @property
    def num_events(self) -> int:
        """Event windows this sampler draws from (0: it samples uniformly)."""
        return len(self.which)

    def sample(self, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The arrays of `TokenCache.sample(batch, T, rng)`."""
        if self.share <= 0 or not self.num_events:
            return self.cache.sample(batch, self.T, rng)
        want = self.share * batch
        k = int(want) + int(rng.random() < want - int(want))
        which, starts = self.cache.draw_windows(batch, self.T, rng)
        rows = rng.choice(batch, k, replace=False)  # event clips at random rows of the batch
        pick = rng.integers(0, self.num_events, k)
        which[rows], starts[rows] = self.which[pick], self.starts[pick]
        return self.cache.windows(which, starts, self.T)
