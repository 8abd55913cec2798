"""The local-path / fsspec-URL helpers live in maskworld.io; this module name stays importable for
maskworld.world.files, which imports them from here."""

from maskworld.io import is_local, is_url, open_fs

__all__ = ["is_local", "is_url", "open_fs"]
