"""A persistent world's timeline: every tick it has lived, in one SQLite file (WAL), outliving any process.

Design choices (the paper's Stage V: a world with its own history, independent of any session):
- One file per named world instance. `meta` holds what the instance is (world directory and id, seed, tick
  rate, torch threads); `ticks` one row per tick: time, the joint action (one per avatar), who chose each
  ("agent" or a person's id) and a hash of the frame the world showed; `snapshots` the exact session state
  (`Session.to_bytes()`) every `snapshot_every` ticks, tick 0 included.
- A tick is committed in its own transaction (WAL, synchronous=NORMAL): a process killed at any moment (SIGKILL)
  loses no committed tick; only a power cut could lose the last ones, which WAL's NORMAL mode trades for speed.
- The state at any tick is the nearest snapshot at or before it plus the logged actions after it: stepping is
  deterministic (each session has its own RNG; same thread count), so a replay from tick 0 reproduces every
  frame bit for bit, and the frame hashes prove it.
- Branching copies ticks and snapshots up to a tick into a new instance; history is never rewritten.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskworld.errors import UserError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ticks (
    tick INTEGER PRIMARY KEY,
    t REAL NOT NULL,
    actions TEXT NOT NULL,
    actors TEXT NOT NULL,
    reward REAL NOT NULL,
    frame_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (tick INTEGER PRIMARY KEY, blob BLOB NOT NULL, info TEXT NOT NULL);
"""
FORMAT = 1


def frame_hash(frame: np.ndarray) -> str:
    """A short, exact fingerprint of a frame's pixels."""
    return hashlib.blake2b(np.ascontiguousarray(frame).tobytes(), digest_size=12).hexdigest()


@dataclass(frozen=True)
class Tick:
    tick: int
    t: float
    actions: list[int]
    actors: list[str]
    reward: float
    frame_hash: str


class Timeline:
    """The SQLite file of one persistent world instance."""

    def __init__(self, path, create: bool = False):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise UserError(f"no persistent world at {self.path}: start one with `maskworld host NAME --world W`")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            raise UserError(f"{self.path} is not a persistent world's timeline ({e})") from None

    # ---------------------------------------------------------------- meta
    def meta(self) -> dict:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def set_meta(self, **values) -> None:
        with self._tx():
            for k, v in values.items():
                self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, json.dumps(v)))

    # ---------------------------------------------------------------- writing
    def _tx(self):
        db = self.db

        class _Tx:
            def __enter__(self):
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self, kind, *_):
                db.execute("COMMIT" if kind is None else "ROLLBACK")

        return _Tx()

    def append(self, tick: Tick, snapshot: tuple[bytes, str] | None = None) -> None:
        """Commit one tick (and, every so often, the session state after it) in one transaction."""
        with self._tx():
            self.db.execute("INSERT INTO ticks VALUES (?, ?, ?, ?, ?, ?)",
                            (tick.tick, tick.t, json.dumps(tick.actions), json.dumps(tick.actors), tick.reward,
                             tick.frame_hash))
            if snapshot is not None:
                self.db.execute("INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?)", (tick.tick, snapshot[0], snapshot[1]))

    def save_snapshot(self, tick: int, snapshot: tuple[bytes, str]) -> None:
        with self._tx():
            self.db.execute("INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?)", (tick, snapshot[0], snapshot[1]))

    # ---------------------------------------------------------------- reading
    @property
    def last_tick(self) -> int:
        """The last committed tick (0 = only the start state)."""
        row = self.db.execute("SELECT MAX(tick) FROM ticks").fetchone()
        return int(row[0]) if row[0] is not None else 0

    def ticks(self, after: int = 0, upto: int | None = None) -> list[Tick]:
        upto = self.last_tick if upto is None else upto
        rows = self.db.execute("SELECT tick, t, actions, actors, reward, frame_hash FROM ticks WHERE tick > ? AND tick <= ? "
                               "ORDER BY tick", (after, upto))
        return [Tick(r[0], r[1], json.loads(r[2]), json.loads(r[3]), r[4], r[5]) for r in rows]

    def snapshot_at_or_before(self, tick: int) -> tuple[int, bytes, str]:
        row = self.db.execute("SELECT tick, blob, info FROM snapshots WHERE tick <= ? ORDER BY tick DESC LIMIT 1",
                              (tick,)).fetchone()
        if row is None:
            raise UserError(f"{self.path} has no saved state at or before tick {tick} (the start state is missing)")
        return int(row[0]), bytes(row[1]), str(row[2])

    def integrity(self) -> str:
        return str(self.db.execute("PRAGMA integrity_check").fetchone()[0])

    def branch(self, path, at: int) -> Timeline:
        """A new instance at `path` with this one's history up to tick `at` (its start state is the snapshot there)."""
        if not 0 <= at <= self.last_tick:
            raise UserError(f"--at {at}: this world has ticks 0..{self.last_tick}")
        if Path(path).exists():
            raise UserError(f"{path} exists already: pick a new name for the branch")
        new = Timeline(path, create=True)
        new.set_meta(**(self.meta() | {"branched_from": str(self.path), "branched_at": at, "created": time.time()}))
        with new._tx():
            for tk in self.ticks(0, at):
                new.db.execute("INSERT INTO ticks VALUES (?, ?, ?, ?, ?, ?)", (tk.tick, tk.t, json.dumps(tk.actions),
                               json.dumps(tk.actors), tk.reward, tk.frame_hash))
            for row in self.db.execute("SELECT tick, blob, info FROM snapshots WHERE tick <= ?", (at,)):
                new.db.execute("INSERT INTO snapshots VALUES (?, ?, ?)", row)
        return new

    def close(self) -> None:
        self.db.close()
