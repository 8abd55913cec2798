"""The agent's real experience: frames for imagined starts, tokens for updating the world (the Dyna loop, Sutton 1991).

    replay = RealReplay()
    replay.add(frame, -1)                           # an episode's first frame (no action led into it)
    replay.add(frame, a, reward, terminated)        # the frame action `a` led to
    view = replay.token_view(world)                 # tokenizes what is new; a TokenCache over the real episodes
    b = view.sample(16, world.dynamics.cfg.window, rng)

Design choices:
- Per-frame arrays in the token cache's alignment ("the action precedes its frame", maskworld.data.clips):
  `acts_in[n]` is the action into frame n, -1 on an episode's first frame; `rewards_in[n]` / `terms_in[n]`
  belong to that transition. So the world trains on the agent's episodes exactly as on its own data.
- Frames are tokenized once, in batches, when a view is asked for (after each collect round), with the
  world's tokenizer (frozen: only the dynamics learns from real experience).
- `token_view` is a `TokenCache` whose arrays live in memory, so the same samplers serve both
  (`TokenCache.sample`, `EventClips`): windows never cross an episode start.
- `state()` / `from_state()` are plain numpy arrays (an .npz in the agent's checkpoint; no pickles).
"""

from __future__ import annotations

import numpy as np
import torch

from maskworld.data.token_cache import TokenCache
from maskworld.errors import UserError

TOKENIZE_BATCH = 256


class RealReplay:
    def __init__(self):
        self.frames: list[np.ndarray] = []
        self.acts_in: list[int] = []
        self.rewards_in: list[float] = []
        self.terms_in: list[bool] = []
        self._tokens: list[np.ndarray] = []  # (h, w) uint16 per tokenized frame, a prefix of `frames`

    def __len__(self) -> int:
        return len(self.frames)

    def add(self, frame: np.ndarray, act_in: int, reward: float = 0.0, terminated: bool = False) -> None:
        """One real frame; act_in = -1 starts an episode."""
        self.frames.append(np.asarray(frame, np.uint8))
        self.acts_in.append(int(act_in))
        self.rewards_in.append(float(reward))
        self.terms_in.append(bool(terminated))

    def usable_starts(self) -> np.ndarray:
        """Indices of frames an imagined rollout may start from: all but an episode's last frame (the one an
        episode start follows: nothing real came after it). The newest frame counts: its successor is coming."""
        a = np.asarray(self.acts_in, np.int64)
        return np.flatnonzero(np.append(a[1:], 0) != -1)

    # ------------------------------------------------------------------ tokens
    @torch.no_grad()
    def _tokenize(self, world) -> None:
        for i in range(len(self._tokens), len(self.frames), TOKENIZE_BATCH):
            batch = np.stack(self.frames[i : i + TOKENIZE_BATCH])
            toks = world.tokenizer.tokenize_uint8(torch.from_numpy(batch).to(world.device))
            self._tokens.extend(toks.cpu().numpy().astype(np.uint16))

    def token_view(self, world) -> ReplayTokens:
        self._tokenize(world)
        return ReplayTokens(np.stack(self._tokens), np.asarray(self.acts_in), np.asarray(self.rewards_in, np.float32),
                            np.asarray(self.terms_in, bool), world.num_actions)

    # ------------------------------------------------------------------ saving
    def state(self) -> dict[str, np.ndarray]:
        s = {"frames": np.stack(self.frames) if self.frames else np.zeros((0, 1, 1, 3), np.uint8),
             "acts_in": np.asarray(self.acts_in, np.int64), "rewards_in": np.asarray(self.rewards_in, np.float32),
             "terms_in": np.asarray(self.terms_in, bool)}
        if self._tokens:
            s["tokens"] = np.stack(self._tokens)
        return s

    @classmethod
    def from_state(cls, s: dict) -> RealReplay:
        r = cls()
        missing = {"frames", "acts_in", "rewards_in", "terms_in"} - set(s)
        if missing:
            raise UserError(f"the checkpoint holds no replay of real experience (missing {sorted(missing)}); "
                            "delete the checkpoint to start over")
        n = len(s["acts_in"])
        if not (len(s["frames"]) == len(s["rewards_in"]) == len(s["terms_in"]) == n):
            raise UserError("the replay in this checkpoint has arrays of different lengths; delete the checkpoint to start over")
        r.frames = list(s["frames"])
        r.acts_in = [int(a) for a in s["acts_in"]]
        r.rewards_in = [float(x) for x in s["rewards_in"]]
        r.terms_in = [bool(x) for x in s["terms_in"]]
        r._tokens = list(s["tokens"]) if "tokens" in s else []
        return r


class ReplayTokens(TokenCache):
    """A `TokenCache` over the agent's real episodes, held in memory (same sampling code as a cache on disk)."""

    def __init__(self, tokens_NHW: np.ndarray, acts_in: np.ndarray, rewards_in: np.ndarray, terms_in: np.ndarray,
                 num_actions: int):
        N = len(acts_in)
        self.path = "<agent's real experience>"
        self.grid = tuple(int(x) for x in tokens_NHW.shape[1:])
        self.tokens = tokens_NHW
        self.num_actions, self.null_action = num_actions, num_actions
        # the cache stores NULL (= num_actions) on first frames; make_batch maps anything out of range to NULL too
        self.actions_in = np.where(acts_in < 0, num_actions, acts_in).astype(np.int64)
        self.rewards_in, self.terminated_in = rewards_in, terms_in
        self.truncated_in = np.zeros(N, bool)
        self.poses = None
        starts = np.flatnonzero(acts_in < 0)
        if N and (len(starts) == 0 or starts[0] != 0):
            starts = np.concatenate([[0], starts])
        self.offsets = starts.astype(np.int64)
        self.lengths = np.diff(np.append(starts, N)).astype(np.int64)
        self.episode_ids = np.arange(len(starts), dtype=np.int64)
        self.meta = {"grid": list(self.grid), "num_frames": N, "num_actions": num_actions, "null_action": num_actions}
