"""Local paths and fsspec URLs on the read side (the episode store and world directories).

    open_fs("data/minigrid")              -> (LocalFileSystem, "/abs/data/minigrid")
    open_fs("file:///data/minigrid")      -> (LocalFileSystem, "/data/minigrid")
    open_fs("s3://bucket/minigrid")       -> (S3FileSystem, "bucket/minigrid")   # with s3fs installed

Design choices (issue 9):
- Readers take any fsspec URL (`file://`, `memory://`, `s3://`, `gs://`, `hf://` ...); writers stay
  local, because their crash safety rests on an atomic rename in a real file system.
- A URL fsspec cannot serve is a `UserError` that says why: an unknown scheme, or the package that
  adds the scheme (fsspec's own hint, e.g. "Install s3fs to access S3").
"""

from __future__ import annotations

import os
from typing import Any

from maskworld.errors import UserError


def is_url(path: str | os.PathLike) -> bool:
    return "://" in os.fspath(path)


def open_fs(path: str | os.PathLike, what: str = "data") -> tuple[Any, str]:
    """(file system, path inside it) of a local path or fsspec URL; `what` names it in errors."""
    import fsspec

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
