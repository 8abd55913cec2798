"""Saved play sessions in one SQLite file (memory M's durable part: sessions outlive the process).

Design choices:
- One row per named session: world path and world id (a hash of the weight files, so a session is
  never resumed in a different world), created/updated times, steps, reward, the exact state
  (`Session.to_bytes()`: a safetensors blob + info JSON) and a PNG thumbnail of the last frame.
- Names are database keys only, never file paths; they are still validated (short, printable, no
  slashes or dots at the start) so they are safe to show and to pass around in URLs.
- One connection guarded by a lock (the server uses it from worker threads); WAL journal so the
  `maskworld sessions` CLI can read while a server writes.
- Saving is two halves: `SavedState.of(session)` copies the state out on the thread that steps the
  session (fast), `write` does the PNG and SQLite work anywhere else (slow: a session is megabytes).
- A quota (sessions, bytes) bounds what a server may write: without one, a tab that saves under new
  names in a loop fills the disk (~7 MB a save). Checked inside the write's transaction, so two
  servers sharing one file cannot both squeeze past it; overwriting a name reuses its bytes.
"""

from __future__ import annotations

import hashlib
import io
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskworld.errors import UserError
from maskworld.world.session import Session

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,63}$")
SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    name TEXT PRIMARY KEY,
    world TEXT NOT NULL,
    world_id TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    steps INTEGER NOT NULL,
    total_reward REAL NOT NULL,
    blob BLOB NOT NULL,
    info TEXT NOT NULL,
    thumbnail BLOB
)
"""
LIST_COLUMNS = ("name", "world", "world_id", "created", "updated", "steps", "total_reward")
DEFAULT_MAX_SESSIONS = 100
DEFAULT_MAX_BYTES = 1024 * 2**20  # ~150 saves of a small world's session (~7 MB each)
ROW_BYTES = "length(blob) + length(info) + COALESCE(length(thumbnail), 0)"


def default_db_path() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("maskworld")) / "sessions.db"


def validate_name(name) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or ".." in name:
        raise UserError(
            f"bad session name {str(name)[:80]!r}: use 1-64 letters, digits, spaces, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


def world_id(world_dir) -> str:
    """Identity of a world: sha256 over its weight files (world.json's model card may change, weights do not)."""
    h = hashlib.sha256()
    for f in sorted(Path(world_dir).glob("*.safetensors")):
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def thumbnail_png(frame, scale: int = 1) -> bytes:
    from PIL import Image

    img = Image.fromarray(frame)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class SavedState:
    """What a save writes, copied out of a session by the thread that steps it."""

    blob: bytes
    info: str
    frame: np.ndarray | None
    steps: int
    total_reward: float

    @classmethod
    def of(cls, session) -> SavedState:
        blob, info = session.to_bytes()
        frame = None if session.frame is None else np.array(session.frame, copy=True)
        return cls(blob, info, frame, int(session.steps), float(session.total_reward))


class SessionStore:
    def __init__(self, path=None, max_sessions: int | None = None, max_bytes: int | None = None):
        """max_sessions, max_bytes: the quota on what the file may hold (None: no limit, e.g. for the CLI)."""
        self.max_sessions, self.max_bytes = max_sessions, max_bytes
        self.path = Path(path).expanduser() if path else default_db_path()
        if self.path.exists() and self.path.is_dir():
            raise UserError(f"--db {self.path} is a directory; give a file path such as {self.path / 'sessions.db'}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(SCHEMA)
            self._db.commit()
        except sqlite3.DatabaseError as e:
            raise UserError(f"cannot open session database {self.path} ({e}); pass another file with --db") from e
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ writes
    def save(self, name: str, session, world_path, wid: str) -> dict:
        """Insert or overwrite `name` with the session's exact state (on the thread that owns the session)."""
        return self.write(name, SavedState.of(session), world_path, wid)

    def write(self, name: str, state: SavedState, world_path, wid: str) -> dict:
        """Insert or overwrite `name`; UserError if that would break the quota. Slow: keep it off the model thread."""
        validate_name(name)
        thumb = thumbnail_png(state.frame) if state.frame is not None else None
        size = len(state.blob) + len(state.info) + len(thumb or b"")
        now = time.time()
        with self._lock, self._db:
            self._check_quota(name, size)
            self._db.execute(
                "INSERT INTO sessions (name, world, world_id, created, updated, steps, total_reward, blob, info, thumbnail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET world=excluded.world, "
                "world_id=excluded.world_id, updated=excluded.updated, steps=excluded.steps, "
                "total_reward=excluded.total_reward, blob=excluded.blob, info=excluded.info, thumbnail=excluded.thumbnail",
                (name, str(world_path), wid, now, now, state.steps, state.total_reward, state.blob, state.info, thumb),
            )
        return self.meta(name)

    def check_quota(self, name: str, size: int = 0) -> None:
        """UserError if saving `size` bytes as `name` would break the quota (a cheap early check; `write` checks again)."""
        with self._lock:
            self._check_quota(name, size)

    def _check_quota(self, name: str, size: int) -> None:  # caller holds the lock
        if self.max_sessions is None and self.max_bytes is None:
            return
        count, total = self._db.execute(f"SELECT COUNT(*), COALESCE(SUM({ROW_BYTES}), 0) FROM sessions").fetchone()
        old = self._db.execute(f"SELECT {ROW_BYTES} FROM sessions WHERE name = ?", (name,)).fetchone()
        hint = "delete some with `maskworld sessions delete NAME` or save over an existing name"
        if old is None and self.max_sessions is not None and count >= self.max_sessions:
            raise UserError(f"the session store holds {count} sessions, its limit ({self.path}); {hint} "
                            "(`maskworld play --max-sessions` sets the limit)")
        after = total - (old[0] if old else 0) + size
        if self.max_bytes is not None and after > self.max_bytes:
            raise UserError(f"saving {name!r} ({size / 2**20:.1f} MiB) would take the session store to {after / 2**20:.1f} MiB, "
                            f"over its {self.max_bytes / 2**20:.0f} MiB limit ({self.path}); {hint} "
                            "(`maskworld play --max-saved-mib` sets the limit)")

    def delete(self, name: str) -> None:
        validate_name(name)
        with self._lock, self._db:
            cur = self._db.execute("DELETE FROM sessions WHERE name = ?", (name,))
        if cur.rowcount == 0:
            raise UserError(f"no saved session named {name!r} in {self.path}; `maskworld sessions list` shows them")

    # ------------------------------------------------------------------ reads
    def list(self) -> list[dict]:
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(LIST_COLUMNS)} FROM sessions ORDER BY updated DESC").fetchall()
        return [dict(zip(LIST_COLUMNS, r)) for r in rows]

    def meta(self, name: str) -> dict:
        validate_name(name)
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(LIST_COLUMNS)}, info FROM sessions WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise UserError(f"no saved session named {name!r} in {self.path}; `maskworld sessions list` shows them")
        return dict(zip(LIST_COLUMNS + ("info",), row))

    def load_state(self, name: str) -> tuple[bytes, str, dict]:
        """-> (blob, info JSON, metadata) for `Session.from_bytes`."""
        validate_name(name)
        with self._lock:
            row = self._db.execute(
                f"SELECT blob, info, {', '.join(LIST_COLUMNS)} FROM sessions WHERE name = ?", (name,)
            ).fetchone()
        if row is None:
            raise UserError(f"no saved session named {name!r} in {self.path}; `maskworld sessions list` shows them")
        return bytes(row[0]), row[1], dict(zip(LIST_COLUMNS, row[2:]))

    def thumbnail(self, name: str) -> bytes | None:
        validate_name(name)
        with self._lock:
            row = self._db.execute("SELECT thumbnail FROM sessions WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise UserError(f"no saved session named {name!r}")
        return bytes(row[0]) if row[0] is not None else None

    def load_for(self, name: str, wid: str) -> tuple[bytes, str]:
        """-> (blob, info JSON) of `name`, refused if it was saved in another world than `wid`."""
        blob, info, meta = self.load_state(name)
        if meta["world_id"] != wid:
            raise UserError(
                f"session {name!r} was saved in another world ({meta['world']}, id {meta['world_id']}); "
                f"start `maskworld play {meta['world']}` to resume it"
            )
        return blob, info

    def restore(self, name: str, world, blob: bytes, info: str):
        """A Session from `load_for`'s state (on the thread that steps sessions); a corrupt row is a UserError."""
        try:
            if hasattr(world, "restore_session"):  # a unified world's sessions are its own
                return world.restore_session(blob, info)
            return Session.from_bytes(world, blob, info)
        except UserError:
            raise
        except Exception as e:  # corrupt row
            raise UserError(f"session {name!r} in {self.path} cannot be restored ({type(e).__name__}: {e}); delete it") from e

    def resume(self, name: str, world, wid: str):
        """A Session continuing exactly where `name` was saved; the world must be the one it was saved in."""
        return self.restore(name, world, *self.load_for(name, wid))
