"""Memory-mapped token cache: every frame of a store, tokenized once, for fast dynamics training.

Layout of a cache directory::

    tokens.u16    flat uint16, shape (N, h, w): all frames of all episodes, episode after episode
    index.npz     episode_ids (E,), offsets (E,), lengths (E,) [frames per episode],
                  actions_in (N,) int64, rewards_in (N,) float32, terminated_in (N,) bool, truncated_in (N,) bool,
                  poses (N, 3) int64 [x, y, dir; only when the store records agent_pos/agent_dir, for memory M]
    meta.json     grid [h, w], num_frames, num_actions, null_action, action_meanings, store meta

Per-frame arrays use the clips alignment ("the action precedes its frame", see clips.py):
`actions_in[n]` is the action that led INTO frame n, NULL (= num_actions) on an episode's first frame.

Design choices:
- uint16 tokens (codebooks < 65536) halve the file against int32; `sample` widens to int64.
- The cache is built in a temp dir next to the target and renamed into place, so a crash never
  leaves a half-written cache under the final name.
- `TokenCache(path, rank, world_size)` keeps every `world_size`-th episode for DDP; windows never
  cross episode boundaries; every valid window of the rank's episodes is equally likely.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from maskworld.data.clips import incoming
from maskworld.errors import UserError
from maskworld.progress import Progress

TOKENS, INDEX, META = "tokens.u16", "index.npz", "meta.json"


def write_token_cache(path: str, store: Any, episode_ids: list[int],
                      encode_fn: Callable[[np.ndarray], np.ndarray], batch_size: int = 256,
                      progress: bool = True, overwrite: bool = False) -> TokenCache:
    """Tokenize frames of `episode_ids` with `encode_fn((N,H,W,3) uint8) -> (N,h,w) ints < 65536`."""
    path = os.fspath(path).rstrip("/")
    if os.path.exists(path) and not overwrite:
        raise UserError(f"{path} already exists; delete it or pass overwrite=True")
    if not episode_ids:
        raise UserError("no episodes to tokenize")
    tmp = _make_temp_dir(path)
    try:
        lengths = np.array([store.length(i) + 1 for i in episode_ids], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        null = int(store.meta.get("num_actions", 0))
        per_frame, grid = _tokenize(tmp, store, episode_ids, offsets, lengths, null, encode_fn, batch_size, progress)
        np.savez(os.path.join(tmp, INDEX), episode_ids=np.array(episode_ids, dtype=np.int64),
                 offsets=offsets, lengths=lengths, **per_frame)
        _write_meta(tmp, store, grid, int(lengths.sum()), null)
        for name in (TOKENS, INDEX, META):
            with open(os.path.join(tmp, name), "rb") as f:
                os.fsync(f.fileno())
        _move_into_place(tmp, path)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"cannot write token cache {path}: {e.strerror or e}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return TokenCache(path)


def _make_temp_dir(path: str) -> str:
    """A fresh directory next to `path`, unique per process and call, where the cache is built."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(path)}.tmp-{os.getpid()}-{time.monotonic_ns()}")
    os.makedirs(tmp)
    return tmp


class _TokenWriter:
    """Checks `encode_fn`'s tokens and appends them to the uint16 memmap of N frames, created with the first batch
    (the token grid is known only then)."""

    def __init__(self, file: str, n: int, encode_fn: Callable[[np.ndarray], np.ndarray]):
        self.file, self.n, self.encode_fn = file, n, encode_fn
        self.tokens: np.memmap | None = None
        self.written = 0

    def encode(self, frames: np.ndarray) -> None:
        tok = np.asarray(self.encode_fn(frames))
        if tok.ndim != 3 or tok.shape[0] != len(frames):
            raise ValueError(f"encode_fn must return (N,h,w) tokens for N={len(frames)} frames, got {tok.shape}")
        if tok.size and (tok.min() < 0 or tok.max() >= 65536):
            raise ValueError(f"tokens must be in [0, 65536), got [{tok.min()}, {tok.max()}]")
        if self.tokens is None:
            self.tokens = np.memmap(self.file, dtype=np.uint16, mode="w+", shape=(self.n,) + tok.shape[1:])
        self.tokens[self.written:self.written + len(tok)] = tok
        self.written += len(tok)

    def close(self) -> list[int]:
        """Flush and release the memmap (before the file is fsynced and moved) -> the token grid [h, w]."""
        assert self.written == self.n and self.tokens is not None
        self.tokens.flush()
        grid = list(self.tokens.shape[1:])
        self.tokens = None
        return grid


def _tokenize(tmp: str, store: Any, episode_ids: list[int], offsets: np.ndarray, lengths: np.ndarray, null: int,
              encode_fn: Callable[[np.ndarray], np.ndarray], batch_size: int, progress: bool) -> tuple[dict, list[int]]:
    """Every frame's tokens into tmp/TOKENS, encoded in batches of >= batch_size frames that may span episodes
    (short episodes would otherwise make small batches) -> (the per-frame arrays of the index, the grid [h, w])."""
    N = int(lengths.sum())
    per_frame = {"actions_in": np.empty(N, np.int64), "rewards_in": np.empty(N, np.float32),
                 "terminated_in": np.empty(N, bool), "truncated_in": np.empty(N, bool)}
    if {"agent_pos", "agent_dir"} <= set(store.meta.get("info_keys", [])):
        per_frame["poses"] = np.full((N, 3), -1, np.int64)
    writer = _TokenWriter(os.path.join(tmp, TOKENS), N, encode_fn)
    pending: list[np.ndarray] = []  # frames waiting for a full batch
    with Progress(total=N, unit="frames", desc="tokenize", enabled=progress) as bar:
        def flush() -> None:
            frames = np.concatenate(pending)
            pending.clear()
            writer.encode(frames)
            bar.update(len(frames))

        for ep_id, off, n in zip(episode_ids, offsets, lengths):
            ep = store.load(ep_id)
            _fill_frame_arrays(per_frame, ep, int(off), int(n), null)
            for s in range(0, int(n), batch_size):
                pending.append(ep.frames[s:s + batch_size])
                if sum(len(p) for p in pending) >= batch_size:
                    flush()
        if pending:
            flush()
    return per_frame, writer.close()


def _fill_frame_arrays(per_frame: dict[str, np.ndarray], ep: Any, off: int, n: int, null: int) -> None:
    """Episode `ep`'s rows off..off+n of the per-frame arrays (clips alignment; poses when they are kept)."""
    for k, v in incoming(ep, 0, n, null).items():
        per_frame[k][off:off + n] = v
    if "poses" in per_frame:
        per_frame["poses"][off:off + n, :2] = np.asarray(ep.info["agent_pos"]).reshape(n, 2)
        per_frame["poses"][off:off + n, 2] = np.asarray(ep.info["agent_dir"]).reshape(n)


def _write_meta(tmp: str, store: Any, grid: list[int], num_frames: int, null: int) -> None:
    meta = {"format": "maskworld-token-cache", "version": 1, "grid": grid, "num_frames": num_frames,
            "num_actions": null, "null_action": null,
            "action_meanings": store.meta.get("action_meanings", []), "store_meta": store.meta,
            "store_path": getattr(store, "path", None)}
    with open(os.path.join(tmp, META), "w") as f:
        json.dump(meta, f, indent=1)


def _move_into_place(tmp: str, path: str) -> None:
    if os.path.exists(path):  # overwrite: move the old cache aside, then swap
        old = f"{tmp}.old"
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


class TokenCache:
    """Read a token cache. `TokenCache(path, rank=0, world_size=1)`."""

    def __init__(self, path: str, rank: int = 0, world_size: int = 1):
        self.path = os.fspath(path)
        try:
            with open(os.path.join(self.path, META)) as f:
                self.meta = json.load(f)
            idx = np.load(os.path.join(self.path, INDEX))
        except FileNotFoundError:
            raise UserError(f"{self.path} is not a token cache (missing {META} or {INDEX})") from None
        h, w = self.meta["grid"]
        N = int(self.meta["num_frames"])
        self.grid: tuple[int, int] = (int(h), int(w))
        self.tokens = np.memmap(os.path.join(self.path, TOKENS), dtype=np.uint16, mode="r", shape=(N, h, w))
        self.null_action = int(self.meta["null_action"])
        self.num_actions = int(self.meta["num_actions"])
        self.actions_in = idx["actions_in"]
        self.rewards_in = idx["rewards_in"]
        self.terminated_in = idx["terminated_in"]
        self.truncated_in = idx["truncated_in"]
        self.poses = idx["poses"] if "poses" in idx.files else None
        """(N, 3) x, y, dir per frame when the data recorded poses (MiniGrid): memory keys and pose-head targets."""
        sel = slice(rank, None, world_size)  # DDP: each rank sees a disjoint set of episodes
        self.episode_ids = idx["episode_ids"][sel]
        self.offsets = idx["offsets"][sel]
        self.lengths = idx["lengths"][sel]

    @property
    def num_frames(self) -> int:
        """Frames of this rank's episodes."""
        return int(self.lengths.sum())

    @property
    def num_episodes(self) -> int:
        return len(self.episode_ids)

    def __len__(self) -> int:
        return self.num_episodes

    def episode(self, i: int) -> dict[str, np.ndarray]:
        """Arrays of the i-th episode of this rank (i in 0..num_episodes-1; its id is episode_ids[i])."""
        s, n = int(self.offsets[i]), int(self.lengths[i])
        return {"tokens": np.asarray(self.tokens[s:s + n]).astype(np.int64),
                "actions_in": self.actions_in[s:s + n], "rewards_in": self.rewards_in[s:s + n],
                "terminated_in": self.terminated_in[s:s + n], "truncated_in": self.truncated_in[s:s + n],
                "episode_id": int(self.episode_ids[i])}

    def sample(self, batch: int, T: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """`batch` windows of T frames, never crossing an episode boundary.

        Returns tokens (B,T,h,w) int64, actions_in (B,T) int64, rewards_in (B,T) float32,
        terminated_in (B,T) bool, truncated_in (B,T) bool, episode_ids (B,), starts (B,) (frame
        index inside the episode), rows (B,T) flat frame indices and first_rows (B,T) the flat index of
        each clip's episode start (memory retrieval looks at rows first_rows..rows-1).
        """
        which, starts = self.draw_windows(batch, T, rng)
        return self.windows(which, starts, T)

    def draw_windows(self, batch: int, T: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(episode index (B,), start frame inside it (B,)) of `batch` uniform windows of T frames."""
        windows = np.maximum(self.lengths - T + 1, 0)
        cum = np.cumsum(windows)
        if cum.size == 0 or cum[-1] == 0:
            raise UserError(f"no episode in {self.path} has {T} frames (longest {int(self.lengths.max(initial=0))})")
        u = rng.integers(0, cum[-1], size=batch)
        which = np.searchsorted(cum, u, side="right")
        return which, u - (cum[which] - windows[which])

    def windows(self, which: np.ndarray, starts: np.ndarray, T: int) -> dict[str, np.ndarray]:
        """The arrays of `sample` for given windows: episode index `which` (B,), start inside it `starts` (B,)."""
        batch = len(which)
        rows = (self.offsets[which] + starts)[:, None] + np.arange(T)[None, :]  # (B,T) flat frame index
        return {
            "tokens": self.tokens[rows.reshape(-1)].reshape(batch, T, *self.grid).astype(np.int64),
            "actions_in": self.actions_in[rows],
            "rewards_in": self.rewards_in[rows],
            "terminated_in": self.terminated_in[rows],
            "truncated_in": self.truncated_in[rows],
            "episode_ids": self.episode_ids[which],
            "starts": np.asarray(starts).astype(np.int64),
            "rows": rows,
            "first_rows": np.broadcast_to(self.offsets[which][:, None], rows.shape).copy(),
        }
