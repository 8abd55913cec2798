"""Which episodes each reader owns when every rank reads its own data (`maskworld train ... --data-split rank`).

A *reader* is one process that loads episodes: a DDP rank, or one loader worker of a rank. Readers are
numbered rank-major (`Reader.of(rank, world_size, worker, num_workers)`), so one rank's workers own
neighbouring runs of the store.

Design choices:
- **Contiguous runs in shard order.** Episodes are ordered as they lie in the store (shard by shard)
  and cut into `count` consecutive runs, so a reader opens about 1/count of the shard files (the shard at
  either end of its run may be shared with the neighbouring reader, each reading different episodes). A
  round-robin deal (`store.partition`) balances as well but makes every reader open every shard,
  which is what this mode exists to avoid on object stores and shared file systems.
- **Balanced by frames, not episodes.** Each cut is placed at the episode boundary nearest to
  `r/count` of the frames, because the training samplers draw frames (tokenizer) or windows
  (dynamics), and episodes differ in length.
- **Every reader gets at least one episode**, else it is a `UserError` (a reader with no data would
  hang its rank's collectives or crash on its first batch).
- Pure functions of the manifest: every rank computes the same parts without talking to the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from maskworld.errors import UserError


@dataclass(frozen=True)
class Reader:
    """Reader `index` of `count` (index = rank * num_workers + worker)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"reader {self.index} of {self.count} does not exist")

    @classmethod
    def of(cls, rank: int, world_size: int, worker: int = 0, num_workers: int = 1) -> Reader:
        """Rank-major numbering: rank r's workers are readers r*W .. r*W+W-1."""
        return cls(rank * num_workers + worker, world_size * num_workers)

    @classmethod
    def current(cls, rank: int, world_size: int) -> Reader:
        """This rank, split further by the torch DataLoader worker calling this (if any).

        maskworld's own samplers run in the training process (no loader workers); this is the
        entry point for a DataLoader-based reader that streams episodes, so its workers split the
        same way.
        """
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        return cls.of(rank, world_size, info.id, info.num_workers) if info is not None else cls.of(rank, world_size)

    def __str__(self) -> str:
        return f"reader {self.index} of {self.count}"


def store_order(store: Any, ids: list[int]) -> list[int]:
    """`ids` in the order their episodes lie in the store's shards (shard, then position in the shard)."""
    pos = {int(e["id"]): (s, j) for s, shard in enumerate(store.shards) for j, e in enumerate(shard["episodes"])}
    missing = [i for i in ids if int(i) not in pos]
    if missing:
        raise UserError(f"episodes {missing[:5]} are not in {store.path}")
    return sorted((int(i) for i in ids), key=lambda i: pos[i])


def cuts(frames: np.ndarray, count: int) -> list[int]:
    """Positions 0 = c_0 < c_1 < ... < c_count = len(frames) that split `frames` (per episode) into
    `count` non-empty consecutive runs of nearly equal total frames."""
    E = len(frames)
    before = np.concatenate([[0], np.cumsum(frames)])  # before[i] = frames of episodes 0..i-1
    out = [0]
    for r in range(1, count):
        c = int(np.argmin(np.abs(before - r * before[-1] / count)))  # boundary nearest r/count of the frames
        out.append(min(max(c, out[-1] + 1), E - (count - r)))  # keep every run (this and later ones) non-empty
    return out + [E]


def reader_episodes(store: Any, ids: list[int], reader: Reader) -> list[int]:
    """The episodes of `ids` that `reader` owns (in store order); the readers' parts are disjoint and cover `ids`."""
    if len(ids) < reader.count:
        raise UserError(f"--data-split rank gives each of {reader.count} readers its own episodes, but there are only "
                        f"{len(ids)} training episodes in {store.path}; use --data-split global, fewer processes, "
                        "or collect more episodes")
    ordered = store_order(store, ids)
    frames = np.array([store.length(i) + 1 for i in ordered], dtype=np.int64)
    c = cuts(frames, reader.count)
    return ordered[c[reader.index]:c[reader.index + 1]]


def shard_files(store: Any, ids: list[int]) -> list[str]:
    """The shard files (relative to the store) holding `ids`, in store order: what a reader of them opens."""
    wanted = {int(i) for i in ids}
    return [s["file"] for s in store.shards if any(int(e["id"]) in wanted for e in s["episodes"])]
