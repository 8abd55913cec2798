"""A session's long-term memory: every frame it has seen or imagined, with its pose key.

Stored per frame: its tokens (uint16, N = h*w), its pose (x, y, dir: the environment's when given, else
the world's own dead-reckoned estimate) and whether it was observed (a real frame) or imagined. That is
2N + 25 bytes a frame (153 B at 8x8 tokens): memory grows linearly with steps and 1,000 steps cost ~150 KB.
Arrays grow by doubling, so appending is amortised O(1).
"""

from __future__ import annotations

import numpy as np
import torch

from maskworld.memory import appearance
from maskworld.memory.pose import HERE, REL_EMPTY, rel_code
from maskworld.memory.retrieval import select


class MemoryBank:
    def __init__(self, tokens_per_frame: int):
        self.n = tokens_per_frame
        self._tok = np.zeros((16, tokens_per_frame), np.uint16)
        self._pose = np.zeros((16, 3), np.int64)
        self._obs = np.zeros(16, bool)
        self.size = 0

    def append(self, tokens: np.ndarray, pose: np.ndarray, observed: bool = False) -> None:
        if self.size == len(self._tok):
            self._tok = np.concatenate([self._tok, np.zeros_like(self._tok)])
            self._pose = np.concatenate([self._pose, np.zeros_like(self._pose)])
            self._obs = np.concatenate([self._obs, np.zeros_like(self._obs)])
        self._tok[self.size] = np.asarray(tokens).reshape(-1)
        self._pose[self.size] = pose
        self._obs[self.size] = observed
        self.size += 1

    def replace(self, index: int, tokens: np.ndarray | None = None, pose: np.ndarray | None = None,
                observed: bool | None = None) -> None:
        """Overwrite a stored frame (the revisit benchmark's oracle pastes real frames and true poses)."""
        if tokens is not None:
            self._tok[index] = np.asarray(tokens).reshape(-1)
        if pose is not None:
            self._pose[index] = pose
        if observed is not None:
            self._obs[index] = observed

    @property
    def tokens(self) -> np.ndarray:
        return self._tok[: self.size]

    @property
    def poses(self) -> np.ndarray:
        return self._pose[: self.size]

    @property
    def observed(self) -> np.ndarray:
        return self._obs[: self.size]

    @property
    def nbytes(self) -> int:
        """Bytes of the stored frames (tokens + poses + observed flags), excluding the doubling slack."""
        return self.size * (self.n * 2 + 3 * 8 + 1)

    def query(self, pos: int, ref_pose: np.ndarray, window: int, m: int, c: int, choose: str = "pose",
              ref_tokens: np.ndarray | None = None, grid: int = 0):
        """Memory for the frame at index `pos` (see maskworld.memory.retrieval for the rule).

        choose: "pose" (the nearest places: what pose-keyed worlds are trained with), "appearance" (the frames
        that look most like `ref_tokens`, the last frame: memory/appearance.py, what worlds without poses are
        trained with; tagged HERE) or "recent" (the m most recent frames beyond the window, whatever their place:
        the ablation that shows what choosing by place buys).
        -> retrieved tokens (m,N) int64, rel codes (m,), compressed tokens (c,N) int64, compressed valid (c,)."""
        newest = min(pos - window, self.size - 1)
        ret = np.zeros((m, self.n), np.int64)
        rel = np.full(m, REL_EMPTY, np.int64)
        if m and newest >= 0:
            if choose == "recent":
                idx = np.arange(newest, max(newest - m, -1), -1)
            elif choose == "appearance":
                idx = appearance.select(ref_tokens, self._tok[: newest + 1], grid, m, self.observed[: newest + 1]) \
                    if ref_tokens is not None else np.zeros(0, np.int64)
            else:
                idx = select(ref_pose, self.poses[: newest + 1], m, observed=self.observed[: newest + 1])
            ret[: len(idx)] = self._tok[idx]
            rel[: len(idx)] = HERE if choose == "appearance" else rel_code(ref_pose, self._pose[idx])
        rows = np.arange(newest - c + 1, newest + 1)
        valid = rows >= 0
        comp = np.where(valid[:, None], self._tok[np.maximum(rows, 0)], 0).astype(np.int64) if c else np.zeros((0, self.n), np.int64)
        return ret, rel, comp, valid

    def state(self) -> dict[str, torch.Tensor]:
        return {"memory.tokens": torch.from_numpy(self.tokens.astype(np.int32)), "memory.poses": torch.from_numpy(self.poses.copy()),
                "memory.observed": torch.from_numpy(self.observed.astype(np.uint8))}

    @classmethod
    def from_state(cls, tensors: dict, tokens_per_frame: int) -> MemoryBank:
        b = cls(tokens_per_frame)
        if "memory.tokens" in tensors:
            obs = tensors.get("memory.observed")  # sessions saved before the flag existed: all imagined
            obs = obs.numpy().astype(bool) if obs is not None else np.zeros(len(tensors["memory.tokens"]), bool)
            for t, p, o in zip(tensors["memory.tokens"].numpy(), tensors["memory.poses"].numpy(), obs):
                b.append(t.astype(np.uint16), p, bool(o))
        return b
