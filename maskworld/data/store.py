"""The episode store: episodes of frames, actions, rewards, ends and info, in shards + a manifest.

Layout::

    DATA/manifest.json              # the only thing readers trust
    DATA/shards/shard-000000.npz    # several episodes; arrays e{j}_frames, e{j}_actions, ...

Design choices:
- **npz, not tar.** An npz is a zip of `.npy` members: numpy reads one member without touching
  the others, so loading episode k of a shard decompresses only episode k (random access by
  episode, needed by clip sampling and evaluation); members are plain numpy arrays (no pickle,
  no custom codec); each member is deflate-compressed (Atari/grid frames shrink 5-20x). A tar
  of per-episode files would need its own index and a decoder per member for the same.
- **Keys are local to the shard** (`e{j}_*`, j = position in the shard); the manifest maps the
  global episode id to (shard, j). Merging stores therefore copies shard files byte for byte
  and only renumbers ids in the manifest.
- **Atomic writes** (maskworld.io). A shard is written to a temp file in `shards/`, fsync'ed and
  `os.replace`d into place; only then is the manifest rewritten (temp + fsync + replace). A SIGKILL at any
  moment leaves the old or the new manifest, and every shard it lists is complete. Leftover temp
  files and shard files the manifest does not list are removed when a writer reopens the store.
- **Checksums.** Each shard's sha256 and byte size are in the manifest; `verify()` checks them and
  decodes every episode, naming the file and the episode of each problem. A reader that hits a
  corrupt shard raises `UserError` naming both; other shards stay readable.
- **fsspec.** Readers accept a path or any fsspec URL (`file://`, `memory://`, `s3://` ...);
  writers write local paths only (atomic rename needs a real file system).
- **Splits** are decided per episode by a hash of (seed, episode id), so adding episodes never
  moves an existing episode between train and validation.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maskworld.errors import UserError
from maskworld.io import TEMP_MARK, atomic_write_bytes, local_path, open_fs, remove_stale_temps

FORMAT = "maskworld-episodes"
VERSION = 1
MANIFEST = "manifest.json"
SHARD_DIR = "shards"
# Meta fields that must agree for two stores (or a store and a resumed collection) to mix.
COMPAT_KEYS = ("env_id", "size", "action_meanings", "num_actions", "has_actions", "info_keys")
_ARRAYS = ("frames", "actions", "rewards", "terminated", "truncated")


@dataclass
class Episode:
    """One episode. T transitions, T+1 frames.

    `actions[t]` turns `frames[t]` into `frames[t+1]`; `rewards[t]`, `terminated[t]`, `truncated[t]`
    belong to that transition. Info arrays are aligned with frames (T+1 entries).
    """

    frames: np.ndarray  # (T+1, H, W, 3) uint8; frames[0] is the reset observation
    actions: np.ndarray  # (T,) int64; -1 when unknown (video)
    rewards: np.ndarray  # (T,) float32
    terminated: np.ndarray  # (T,) bool
    truncated: np.ndarray  # (T,) bool
    info: dict[str, np.ndarray] = field(default_factory=dict)  # each (T+1, ...)

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    def fingerprint(self) -> str:
        """12 hex digits of its content (every frame and action): the same episode has the same fingerprint in any
        store and under any id, so a world's card can name its held-out episodes and eval can check them."""
        h = hashlib.sha256(np.ascontiguousarray(self.frames).tobytes())
        h.update(np.ascontiguousarray(self.actions, dtype=np.int64).tobytes())
        return h.hexdigest()[:12]

    def validate(self) -> Episode:
        T = len(self.actions)
        f = self.frames
        if f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8 or f.shape[0] != T + 1:
            raise ValueError(f"frames must be uint8 (T+1,H,W,3) with T={T}, got {f.dtype} {f.shape}")
        for name in ("rewards", "terminated", "truncated"):
            if getattr(self, name).shape != (T,):
                raise ValueError(f"{name} must have shape ({T},), got {getattr(self, name).shape}")
        for k, v in self.info.items():
            if len(v) != T + 1:
                raise ValueError(f"info[{k!r}] must have T+1={T + 1} entries, got {len(v)}")
        return self

    def window(self, start: int, frames: int) -> Episode:
        """`frames` frames from `start` with the transitions between them (and their info): an Episode of its own."""
        f, t = slice(start, start + frames), slice(start, start + frames - 1)
        return Episode(frames=self.frames[f], actions=self.actions[t], rewards=self.rewards[t],
                       terminated=self.terminated[t], truncated=self.truncated[t],
                       info={k: v[f] for k, v in self.info.items()})

    @classmethod
    def from_lists(cls, frames: list, actions: list, rewards: list, terminated: list, truncated: list,
                   info: dict[str, list] | None = None) -> Episode:
        return cls(
            frames=np.stack(frames).astype(np.uint8, copy=False),
            actions=np.asarray(actions, dtype=np.int64).reshape(-1),
            rewards=np.asarray(rewards, dtype=np.float32).reshape(-1),
            terminated=np.asarray(terminated, dtype=bool).reshape(-1),
            truncated=np.asarray(truncated, dtype=bool).reshape(-1),
            info={k: np.asarray(v) for k, v in (info or {}).items()},
        ).validate()


def shard_name(index: int) -> str:
    return f"{SHARD_DIR}/shard-{index:06d}.npz"


def encode_shard(episodes: list[Episode], compresslevel: int = 1) -> bytes:
    """npz bytes holding `episodes` under local keys e0_*, e1_*, ...

    Level 1 deflate: frames compress nearly as well as at level 6 and 3-5x faster, which keeps
    the collecting process from becoming the bottleneck.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=compresslevel) as zf:
        for j, ep in enumerate(episodes):
            arrays = {name: getattr(ep, name) for name in _ARRAYS}
            arrays.update({f"info.{k}": v for k, v in ep.info.items()})
            for name, arr in arrays.items():
                with zf.open(f"e{j}_{name}.npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def _hash_unit(seed: int, episode_id: int) -> float:
    h = hashlib.blake2b(f"{seed}:{episode_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2**64


def split_ids(ids: list[int], seed: int = 0, val_fraction: float = 0.1, min_val: int = 1) -> tuple[list[int], list[int]]:
    """Deterministic train/val split by episode id (stable when episodes are added).

    An episode goes to val when hash(seed, id) < val_fraction; if that gives fewer than `min_val`,
    the episodes with the smallest hashes are moved over. At least one episode always stays in
    train, so a single-episode store has an empty val split.
    """
    ids = sorted(int(i) for i in ids)
    if not ids:
        return [], []
    u = {i: _hash_unit(seed, i) for i in ids}
    val = {i for i in ids if u[i] < val_fraction}
    want = min(max(min_val, len(val)), len(ids) - 1)
    by_hash = sorted(ids, key=lambda i: u[i])
    val = set(by_hash[:want]) if len(val) != want else val
    return [i for i in ids if i not in val], [i for i in ids if i in val]


def partition(ids: list[int], rank: int, world_size: int) -> list[int]:
    """Episodes of one DDP rank: every `world_size`-th id starting at `rank`."""
    return list(ids)[rank::world_size]


class EpisodeStore:
    """Read-only view of a store (a local path or an fsspec URL)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.fs, self.root = open_fs(self.path, "episode store")
        mpath = f"{self.root.rstrip('/')}/{MANIFEST}"
        try:
            with self.fs.open(mpath, "rb") as f:
                manifest = json.loads(f.read().decode())
        except FileNotFoundError:
            raise UserError(f"{self.path} is not an episode store (no {MANIFEST}); "
                            "create one with `maskworld collect` or `maskworld import-video`") from None
        except OSError as e:  # permissions, network, a remote store that refuses the request
            raise UserError(f"cannot read {self.path}/{MANIFEST}: {e}") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise UserError(f"{self.path}/{MANIFEST} is corrupt ({e})") from None
        if manifest.get("format") != FORMAT:
            raise UserError(f"{self.path}/{MANIFEST} is not a maskworld episode manifest")
        if manifest.get("version", 0) > VERSION:
            raise UserError(f"{self.path} was written by a newer maskworld (format version {manifest['version']}); upgrade")
        self.manifest = manifest
        self.meta: dict[str, Any] = manifest["meta"]
        self._where: dict[int, tuple[dict, int, dict]] = {}
        for shard in manifest["shards"]:
            for j, ep in enumerate(shard["episodes"]):
                self._where[int(ep["id"])] = (shard, j, ep)
        self.episode_ids: list[int] = sorted(self._where)

    def __len__(self) -> int:
        return len(self.episode_ids)

    def __repr__(self) -> str:
        return f"EpisodeStore({self.path!r}, episodes={len(self)}, frames={self.num_frames})"

    @property
    def shards(self) -> list[dict]:
        return self.manifest["shards"]

    @property
    def num_transitions(self) -> int:
        return sum(ep["length"] for _, _, ep in self._where.values())

    @property
    def num_frames(self) -> int:
        """Frames stored: T+1 per episode."""
        return self.num_transitions + len(self)

    @property
    def nbytes(self) -> int:
        return sum(s["bytes"] for s in self.shards)

    def length(self, ep_id: int) -> int:
        """Transitions T of an episode (it has T+1 frames)."""
        return int(self._entry(ep_id)[2]["length"])

    def entry(self, ep_id: int) -> dict:
        """The manifest record of an episode (id, length and whatever the writer added, e.g. seed)."""
        return dict(self._entry(ep_id)[2])

    def _entry(self, ep_id: int) -> tuple[dict, int, dict]:
        try:
            return self._where[int(ep_id)]
        except KeyError:
            raise KeyError(f"episode {ep_id} is not in {self.path}") from None

    def _shard_path(self, shard: dict) -> str:
        return f"{self.root.rstrip('/')}/{shard['file']}"

    def _read(self, f: Any, j: int, length: int, keys: list[str]) -> Episode:
        with np.load(f, allow_pickle=False) as z:
            arrays = {name: z[f"e{j}_{name}"] for name in _ARRAYS}
            info = {k: z[f"e{j}_info.{k}"] for k in keys}
        ep = Episode(info=info, **arrays)
        ep.validate()
        if len(ep) != length:
            raise ValueError(f"has {len(ep)} transitions, manifest says {length}")
        return ep

    def load(self, ep_id: int) -> Episode:
        shard, j, entry = self._entry(ep_id)
        try:
            with self.fs.open(self._shard_path(shard), "rb") as f:
                return self._read(f, j, int(entry["length"]), list(self.meta.get("info_keys", [])))
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as e:
            raise UserError(f"{self.path}/{shard['file']}: episode {ep_id} is unreadable ({type(e).__name__}: {e}); "
                            f"run `maskworld data verify {self.path}`") from None

    def __iter__(self) -> Iterator[Episode]:
        for i in self.episode_ids:
            yield self.load(i)

    def split(self, seed: int = 0, val_fraction: float = 0.1, min_val: int = 1) -> tuple[list[int], list[int]]:
        return split_ids(self.episode_ids, seed, val_fraction, min_val)

    def verify(self) -> list[str]:
        """Check every shard's size and sha256 and decode every episode. Returns problems ([] = ok)."""
        problems = []
        keys = list(self.meta.get("info_keys", []))
        for shard in self.shards:
            name = f"{self.path}/{shard['file']}"
            ids = [e["id"] for e in shard["episodes"]]
            eps = f"episode {ids[0]}" if len(ids) == 1 else f"episodes {ids[0]}-{ids[-1]}"
            try:
                with self.fs.open(self._shard_path(shard), "rb") as f:
                    data = f.read()
            except (OSError, FileNotFoundError) as e:
                problems.append(f"{name}: cannot read ({e}); {eps} lost")
                continue
            if len(data) != shard["bytes"]:
                problems.append(f"{name}: {len(data)} bytes, manifest says {shard['bytes']} (truncated?); {eps} affected")
            elif hashlib.sha256(data).hexdigest() != shard["sha256"]:
                problems.append(f"{name}: sha256 mismatch; {eps} affected")
            for j, e in enumerate(shard["episodes"]):
                try:
                    self._read(io.BytesIO(data), j, int(e["length"]), keys)
                except Exception as ex:  # noqa: BLE001  (any decode failure is a problem to report, not to raise)
                    problems.append(f"{name}: episode {e['id']} does not decode ({type(ex).__name__}: {ex})")
        return problems


class StoreWriter:
    """Appends episodes to a store, one atomic shard at a time.

    `StoreWriter(path, meta, episodes_per_shard=64, frames_per_shard=4096, resume=True)`.
    Buffered episodes are written when either limit is reached and on `close()`. With
    `resume=True` an existing store is continued (its meta must agree on `COMPAT_KEYS`);
    with `resume=False` an existing store is an error.
    """

    def __init__(self, path: str | os.PathLike, meta: dict, episodes_per_shard: int = 64,
                 frames_per_shard: int = 4096, resume: bool = True, compresslevel: int = 1):
        self.path = local_path(path, "the episode store")
        self.episodes_per_shard, self.frames_per_shard = int(episodes_per_shard), int(frames_per_shard)
        self.compresslevel = compresslevel
        self._buffer: list[tuple[Episode, dict]] = []
        self._closed = False
        mpath = os.path.join(self.path, MANIFEST)
        try:
            os.makedirs(os.path.join(self.path, SHARD_DIR), exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create {self.path}: {e.strerror}") from None
        if os.path.exists(mpath):
            if not resume:
                raise UserError(f"{self.path} already holds an episode store; choose another --out or delete it")
            old = EpisodeStore(self.path)
            for k in COMPAT_KEYS:
                if k in meta and old.meta.get(k) != meta[k]:
                    raise UserError(f"{self.path} holds data with {k}={old.meta.get(k)!r}, not {meta[k]!r}; "
                                    "choose another --out or match the existing settings")
            self.manifest = old.manifest
        else:
            self.manifest = {"format": FORMAT, "version": VERSION, "meta": dict(meta), "shards": []}
            self._write_manifest()
        self._clean()
        self._next_id = 1 + max((e["id"] for s in self.manifest["shards"] for e in s["episodes"]), default=-1)

    @property
    def meta(self) -> dict:
        return self.manifest["meta"]

    @property
    def episodes(self) -> list[dict]:
        """Manifest records of all stored (flushed) episodes."""
        return [e for s in self.manifest["shards"] for e in s["episodes"]]

    def _clean(self) -> None:
        """Remove temp files and shards a crash left behind (the manifest does not list them)."""
        listed = {os.path.basename(s["file"]) for s in self.manifest["shards"]}
        sdir = os.path.join(self.path, SHARD_DIR)
        for name in os.listdir(sdir):
            if name not in listed and (TEMP_MARK in name or name.startswith("shard-")):
                try:
                    os.unlink(os.path.join(sdir, name))
                except OSError:
                    pass
        remove_stale_temps(self.path, MANIFEST)

    def _write_manifest(self) -> None:
        data = json.dumps(self.manifest, indent=1).encode()
        atomic_write_bytes(os.path.join(self.path, MANIFEST), data)

    def add(self, ep: Episode, **extra: Any) -> int:
        """Buffer an episode; returns its id. `extra` (JSON values, e.g. seed=) goes into the manifest."""
        ep.validate()
        if self._closed:
            raise RuntimeError("StoreWriter is closed")
        record = {"id": self._next_id, "length": len(ep), **extra}
        self._next_id += 1
        self._buffer.append((ep, record))
        frames = sum(len(e) + 1 for e, _ in self._buffer)
        if len(self._buffer) >= self.episodes_per_shard or frames >= self.frames_per_shard:
            self.flush()
        return record["id"]

    def add_shard_file(self, src_bytes: bytes, records: list[dict]) -> None:
        """Append an already-encoded shard (used by merge): byte copy, new ids."""
        self.flush()
        for r in records:
            r["id"] = self._next_id
            self._next_id += 1
        self._commit(src_bytes, records)

    def flush(self) -> None:
        if not self._buffer:
            return
        data = encode_shard([e for e, _ in self._buffer], self.compresslevel)
        records = [r for _, r in self._buffer]
        self._buffer = []
        self._commit(data, records)

    def _commit(self, data: bytes, records: list[dict]) -> None:
        index = 1 + max((int(s["file"][-10:-4]) for s in self.manifest["shards"]), default=-1)
        name = shard_name(index)
        atomic_write_bytes(os.path.join(self.path, name), data)
        self.manifest["shards"].append({"file": name, "bytes": len(data),
                                        "sha256": hashlib.sha256(data).hexdigest(), "episodes": records})
        try:
            self._write_manifest()
        except UserError:
            self.manifest["shards"].pop()
            try:
                os.unlink(os.path.join(self.path, name))
            except OSError:
                pass
            raise

    def close(self) -> None:
        if not self._closed:
            self.flush()
            self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None or exc_type is KeyboardInterrupt:
            self.close()  # buffered episodes are complete: keep them
        else:
            try:
                self.close()
            except Exception:  # noqa: BLE001, S110  (e.g. disk full again: the original error is the one to show)
                pass


def merge_stores(out: str, inputs: list[str], command: str = "") -> dict:
    """Join stores whose meta agree on `COMPAT_KEYS` into a new store `out`.

    Shard files are copied byte for byte (their sha256 is checked on the way); episode ids are
    renumbered 0..N-1 in input order, each record keeping `from` (input path), `orig_id` and the policy that
    played it (its own, else its store's). On any error the half-built `out` is removed.
    """
    out = local_path(out, "the episode store")
    if os.path.exists(os.path.join(out, MANIFEST)) or (os.path.isdir(out) and os.listdir(out)):
        raise UserError(f"{out} already exists and is not empty; merge writes a new store")
    stores = [EpisodeStore(p) for p in inputs]
    first = stores[0].meta
    for s in stores[1:]:
        for k in COMPAT_KEYS:
            if s.meta.get(k) != first.get(k):
                raise UserError(f"cannot merge {s.path} into {stores[0].path}: {k} differs "
                                f"({s.meta.get(k)!r} vs {first.get(k)!r})")
    meta = dict(first)
    meta["command"] = command
    meta["merged_from"] = [{"path": s.path, "command": s.meta.get("command"), "shard": s.meta.get("shard"),
                            "seed": s.meta.get("seed"), "episodes": len(s)} for s in stores]
    created = not os.path.exists(out)
    try:
        writer = StoreWriter(out, meta, resume=False)
        for s in stores:
            for shard in s.shards:
                with s.fs.open(s._shard_path(shard), "rb") as f:
                    data = f.read()
                if len(data) != shard["bytes"] or hashlib.sha256(data).hexdigest() != shard["sha256"]:
                    raise UserError(f"{s.path}/{shard['file']}: checksum mismatch, not merging; "
                                    f"run `maskworld data verify {s.path}`")
                # an episode without its own policy took its store's; the merged store has one meta for all
                policy = {"policy": s.meta["policy"]} if s.meta.get("policy") else {}
                records = [{**policy, **e, "from": s.path, "orig_id": e["id"]} for e in shard["episodes"]]
                writer.add_shard_file(data, records)
        writer.close()
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    m = EpisodeStore(out)
    return {"episodes": len(m), "frames": m.num_frames, "shards": len(m.shards)}
