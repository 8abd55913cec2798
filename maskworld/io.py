"""Where maskworld's files live and how they are written: atomic writes, local paths and fsspec URLs.

    atomic_write_text(path, text)            atomic_write_bytes(path, data)
    atomic_write_json(path, obj, indent=2)   atomic_save_safetensors(tensors, path, metadata=None)
    with atomic_output("out/video.mp4", suffix=".mp4") as tmp:   # any writer that takes a file name
        imageio.v3.imwrite(tmp, frames)
    remove_stale_temps(directory, "latest.json")   # what a killed writer left behind
    local_path("file:///data/x", "the episode store")  -> "/data/x"   (other URLs: UserError)
    open_fs("data/minigrid")                 -> (LocalFileSystem, "/abs/data/minigrid")
    open_fs("s3://bucket/minigrid")          -> (S3FileSystem, "bucket/minigrid")   # with s3fs installed

Design choices:
- Atomic = a temp file in the target's directory (the same file system, so the rename is atomic) is
  written, fsync'ed and `os.replace`d over the target, then the directory is fsync'ed so that the rename
  itself survives a power cut. Readers see the old file or the new one, never a part.
- The temp file is removed on any exception, KeyboardInterrupt included. A SIGKILL cannot be caught:
  its temp file (`.<name>.tmp-*`, see `temp_prefix`) stays until the next writer of that directory calls
  `remove_stale_temps`.
- Written files get mode 0644: `mkstemp` creates 0600 files, and trained weights, world.json and reports
  must be readable by others like the files a release ships.
- A write that fails for a reason the user can fix (disk full, quota, permissions, read-only file system)
  is a `UserError` naming the file and the cause; nothing partial is left behind.
- Readers take any fsspec URL (`file://`, `memory://`, `s3://`, `gs://`, `hf://` ...); writers take local
  paths only (`local_path`), because their crash safety rests on an atomic rename in a real file system.
  A URL fsspec cannot serve is a `UserError` that says why: an unknown scheme, or the package that adds
  the scheme (fsspec's own hint, e.g. "Install s3fs to access S3").
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from maskworld.errors import UserError

FILE_MODE = 0o644
TEMP_MARK = ".tmp-"

_WHY = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EACCES: "permission denied",
        errno.EPERM: "permission denied", errno.EROFS: "read-only file system"}


# ---- atomic writes


def temp_prefix(name: str) -> str:
    """Prefix of the temp files that stand in for the file `name` while it is written."""
    return f".{name}{TEMP_MARK}"


def _write_error(path: str, e: OSError) -> UserError:
    what = _WHY.get(e.errno, e.strerror or str(e))
    return UserError(f"cannot write {path}: {what}; free space or write elsewhere (nothing partial was left behind)")


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: str) -> None:
    """Best effort: some file systems (and Windows) cannot open or fsync a directory."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """A temp file name beside `path` to write to; on a clean exit it replaces `path` (see the module docstring).

    `suffix` keeps writers that choose the format by extension (imageio) working on the temp name."""
    path = os.fspath(path)
    d = os.path.dirname(path) or "."
    try:
        fd, tmp = tempfile.mkstemp(dir=d, prefix=temp_prefix(os.path.basename(path)), suffix=suffix)
    except OSError as e:
        raise _write_error(path, e) from None
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE)
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        _unlink(tmp)
        if isinstance(e, OSError):
            raise _write_error(path, e) from None
        raise
    _fsync_dir(d)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = None, sort_keys: bool = False,
                      default: Any = None) -> None:
    """`json.dumps(obj, indent=..., sort_keys=..., default=...)` written atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys, default=default))


def atomic_save_safetensors(tensors: dict, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """torch tensors -> a safetensors file (detached, contiguous, on the CPU)."""
    from safetensors.torch import save_file  # imports torch: only writers of weights pay for it

    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_output(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)


def remove_stale_temps(directory: str | os.PathLike, name: str) -> int:
    """Remove the temp files of `name` in `directory` that a killed writer left; -> how many.

    Call it where no other process can be writing `name` there (the single writer, as it starts)."""
    directory = os.fspath(directory)
    prefix = temp_prefix(name)
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    stale = [n for n in names if n.startswith(prefix)]
    for n in stale:
        _unlink(os.path.join(directory, n))
    return len(stale)


# ---- local paths and fsspec URLs


def is_url(path: str | os.PathLike) -> bool:
    return "://" in os.fspath(path)


def local_path(path: str | os.PathLike, what: str = "maskworld") -> str:
    """`path` as a local path for a writer: `file://` is unwrapped, any other URL is a UserError naming `what`."""
    path = os.fspath(path)
    if path.startswith("file://"):
        return path[len("file://"):]
    if is_url(path):
        raise UserError(f"cannot write to {path}: {what} writes local (or mounted, shared) directories only; "
                        "write to a local path, then copy the directory")
    return path


def open_fs(path: str | os.PathLike, what: str = "data") -> tuple[Any, str]:
    """(file system, path inside it) of a local path or fsspec URL; `what` names it in errors."""
    import fsspec  # a reader's dependency: `maskworld --help` does not load it

    path = os.fspath(path)
    try:
        return fsspec.core.url_to_fs(path)
    except ImportError as e:  # a known scheme whose backend is not installed
        raise UserError(f"cannot open {what} {path}: {e} (pip install it, or copy the files to a local path)") from None
    except ValueError as e:  # "Protocol not known: foo", or a URL the backend rejects
        raise UserError(f"cannot open {what} {path}: {e}; use a local path or an fsspec URL "
                        "such as file://, memory://, s3://, gs://") from None


def is_local(fs: Any) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)
