"""The files of a world directory to load, from a local path or any fsspec URL (read-only).

    d = WorldDir.open("memory://worlds/minigrid")   # or "worlds/minigrid", "file:///...", "s3://bucket/w"
    d.is_dir(); (d / "world.json").read_text(); (d / "dynamics.safetensors").load_safetensors()

Design choices:
- The same small pathlib-like surface (`/`, `exists`, `is_dir`, `name`, `read_text`) for local and
  remote directories, so `load_world` reads one way whatever the source.
- Never unpickles: weights are safetensors, read with `safetensors.torch.load_file` from a local
  file (memory-mapped) or `safetensors.torch.load(bytes)` from a remote one.
- `local` is the directory as a `Path` when it is on the local file system (`file://` URLs
  included), else None: writing beside a world (model card updates, prompts, saved sessions) needs
  a local directory; a remote world is loaded read-only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from maskworld.errors import UserError
from maskworld.fsurl import is_local, is_url, open_fs


@dataclass(frozen=True)
class WorldFile:
    fs: Any
    path: str
    """Path inside `fs`."""
    shown: str
    """What error messages call it: the local path or the URL the user gave, plus the file name."""

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return self.shown

    def exists(self) -> bool:
        try:
            return bool(self.fs.isfile(self.path))
        except OSError as e:
            raise UserError(f"cannot read {self.shown}: {e}") from None

    def read_bytes(self) -> bytes:
        try:
            return self.fs.cat_file(self.path)
        except FileNotFoundError:
            raise UserError(f"{self.shown} does not exist") from None
        except OSError as e:
            raise UserError(f"cannot read {self.shown}: {e}") from None

    def read_text(self) -> str:
        try:
            return self.read_bytes().decode()
        except UnicodeDecodeError as e:
            raise UserError(f"{self.shown} is not text ({e})") from None

    def load_safetensors(self) -> dict[str, torch.Tensor]:
        """The tensors of a safetensors file (CPU). Errors of a corrupt file propagate to the caller."""
        from safetensors.torch import load, load_file

        if is_local(self.fs):
            return load_file(self.path)
        return load(self.read_bytes())


@dataclass(frozen=True)
class WorldDir:
    fs: Any
    root: str
    shown: str
    local: Path | None
    """The directory on the local file system, else None (remote: read-only)."""

    @classmethod
    def open(cls, path: str | os.PathLike) -> "WorldDir":
        shown = os.fspath(path)
        if not is_url(shown):  # plain local path: keep it as the user wrote it (relative paths stay relative)
            return cls(open_fs(shown, "world")[0], shown, shown, Path(shown))
        fs, root = open_fs(shown, "world")
        return cls(fs, root, shown.rstrip("/"), Path(root) if is_local(fs) else None)

    def __truediv__(self, name: str) -> WorldFile:
        return WorldFile(self.fs, f"{self.root.rstrip('/')}/{name}", f"{self.shown}/{name}")

    def __str__(self) -> str:
        return self.shown

    def is_dir(self) -> bool:
        try:
            return bool(self.fs.isdir(self.root))
        except OSError as e:
            raise UserError(f"cannot read {self.shown}: {e}") from None
