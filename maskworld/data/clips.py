"""Random clips of T consecutive frames from an episode store, for tokenizer and dynamics training.

THE ALIGNMENT CONVENTION ("the action precedes its frame") used by every model in maskworld:

    frames[t]          = episode.frames[start + t]                       t = 0..T-1
    actions_in[t]      = episode.actions[start + t - 1]   the action that led INTO frame t
    rewards_in[t]      = episode.rewards[start + t - 1]   reward received on entering frame t
    terminated_in[t]   = episode.terminated[start + t - 1]
    truncated_in[t]    = episode.truncated[start + t - 1]

For the reset frame of an episode (start + t == 0) there is no incoming action: `actions_in` is
the NULL id `num_actions` (so models need `num_actions + 1` action embeddings), rewards 0 and
flags False. Unknown actions (-1, imported video) are mapped to NULL as well. A dynamics model
predicting frame t+1 therefore reads frames[0..t] and actions_in[0..t+1]: the action token of a
frame is prepended to that frame (Genie / Jasmine layout).

Episodes with fewer than T frames are skipped (never padded: padding would teach the model
fake dynamics); if no episode is long enough, construction fails with a clear message. Windows
never cross an episode boundary; every valid window is equally likely (episodes are drawn in
proportion to their number of windows). Recently loaded episodes are kept in a small LRU cache
because loading decompresses a whole episode.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from maskworld.errors import UserError


def incoming(ep: Any, start: int, T: int, null_action: int) -> dict[str, np.ndarray]:
    """The `*_in` arrays of frames start..start+T-1 of one episode (see module docstring)."""
    idx = np.arange(start, start + T) - 1  # transition that produced each frame; -1 = none (reset frame)
    has = idx >= 0
    j = np.maximum(idx, 0)
    actions = np.where(has, ep.actions[j], -1).astype(np.int64)
    actions[actions < 0] = null_action
    return {
        "actions_in": actions,
        "rewards_in": np.where(has, ep.rewards[j], 0.0).astype(np.float32),
        "terminated_in": np.where(has, ep.terminated[j], False),
        "truncated_in": np.where(has, ep.truncated[j], False),
    }


class ClipSampler:
    """`ClipSampler(store, episode_ids, clip_len, seed=0).sample(batch_size) -> dict`.

    Returned dict (B = batch_size, T = clip_len):
      frames        (B,T,H,W,3) uint8
      actions_in    (B,T) int64     action INTO frame t; NULL = num_actions for an episode's first frame
      rewards_in    (B,T) float32
      terminated_in (B,T) bool
      truncated_in  (B,T) bool
      info          {key: (B,T,...)} aligned with frames
      episode_ids   (B,) int64, starts (B,) int64
    """

    def __init__(self, store: Any, episode_ids: list[int], clip_len: int, seed: int = 0, cache_episodes: int = 16):
        if clip_len < 1:
            raise UserError(f"clip length must be >= 1, not {clip_len}")
        self.store, self.T = store, int(clip_len)
        self.rng = np.random.default_rng(seed)
        self.null_action = int(store.meta.get("num_actions", 0))
        frames = np.array([store.length(i) + 1 for i in episode_ids], dtype=np.int64)
        keep = frames >= self.T
        self.episode_ids = [int(i) for i, k in zip(episode_ids, keep) if k]
        self.skipped = len(episode_ids) - len(self.episode_ids)
        if not self.episode_ids:
            raise UserError(f"no episode has {self.T} frames (longest: {int(frames.max(initial=0))}); "
                            "use a shorter clip length or collect longer episodes")
        self.windows = frames[keep] - self.T + 1  # valid start positions per episode
        self._cum = np.cumsum(self.windows)
        self._cache: OrderedDict[int, Any] = OrderedDict()
        self._cache_size = cache_episodes

    def __len__(self) -> int:
        """Number of distinct windows."""
        return int(self._cum[-1])

    def _episode(self, ep_id: int) -> Any:
        if ep_id in self._cache:
            self._cache.move_to_end(ep_id)
            return self._cache[ep_id]
        ep = self.store.load(ep_id)
        self._cache[ep_id] = ep
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return ep

    def clip(self, ep_id: int, start: int) -> dict[str, Any]:
        """One window (no batch axis)."""
        ep = self._episode(ep_id)
        T = self.T
        if not 0 <= start <= len(ep) + 1 - T:
            raise IndexError(f"window {start}:{start + T} is outside episode {ep_id} ({len(ep) + 1} frames)")
        out: dict[str, Any] = {"frames": ep.frames[start:start + T]}
        out.update(incoming(ep, start, T, self.null_action))
        out["info"] = {k: v[start:start + T] for k, v in ep.info.items()}
        return out

    def sample(self, batch_size: int) -> dict[str, Any]:
        u = self.rng.integers(0, len(self), size=batch_size)
        which = np.searchsorted(self._cum, u, side="right")
        starts = u - (self._cum[which] - self.windows[which])
        clips = [self.clip(self.episode_ids[w], int(s)) for w, s in zip(which, starts)]
        batch: dict[str, Any] = {k: np.stack([c[k] for c in clips]) for k in clips[0] if k != "info"}
        batch["info"] = {k: np.stack([c["info"][k] for c in clips]) for k in clips[0]["info"]}
        batch["episode_ids"] = np.array([self.episode_ids[w] for w in which], dtype=np.int64)
        batch["starts"] = starts.astype(np.int64)
        return batch


def spread_starts(n: int, length: int, k: int, rng: np.random.Generator) -> list[int]:
    """Seeded starts of up to k non-overlapping windows of `length` frames in an n-frame episode, one in each of
    k equal parts (fewer when the parts would be shorter than a window): an evaluation of few long episodes
    reads many places of each, not one lucky start."""
    k = max(1, min(k, n // length))
    part = n // k
    return [j * part + int(rng.integers(0, part - length + 1)) for j in range(k)]
