"""maskworld.io: atomic writes (mode 0644, nothing left on failure), stale temp files, local paths."""

import json
import os
import stat
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from maskworld.errors import UserError
from maskworld.io import (
    atomic_output,
    atomic_save_safetensors,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    local_path,
    remove_stale_temps,
    temp_prefix,
)
from maskworld.train import checkpoint


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_writes_replace_whole_files_readable_by_all(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "old")
    atomic_write_text(tmp_path / "a.txt", "new")
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    atomic_write_json(tmp_path / "c.json", {"x": [1, 2]}, indent=1)
    atomic_save_safetensors({"w": torch.arange(6.0).view(2, 3).t()}, tmp_path / "d.safetensors")  # not contiguous
    assert (tmp_path / "a.txt").read_text() == "new" and (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert json.loads((tmp_path / "c.json").read_text()) == {"x": [1, 2]}
    assert torch.equal(load_file(str(tmp_path / "d.safetensors"))["w"], torch.arange(6.0).view(2, 3).t())
    assert {mode(tmp_path / n) for n in ("a.txt", "b.bin", "c.json", "d.safetensors")} == {0o644}
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.bin", "c.json", "d.safetensors"]  # no temp file left


def test_failure_leaves_the_old_file_and_no_temp(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "old")
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)), atomic_output(tmp_path / "a.txt") as tmp:
            Path(tmp).write_text("half")
            raise exc
    assert (tmp_path / "a.txt").read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_unwritable_folder_is_a_user_error(tmp_path):
    os.chmod(tmp_path, 0o555)
    try:
        with pytest.raises(UserError, match="permission denied"):
            atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.chmod(tmp_path, 0o755)


def test_stale_temps_are_removed(tmp_path):
    (tmp_path / f"{temp_prefix('latest.json')}abc").write_text("half")
    (tmp_path / "latest.json").write_text("{}")
    (tmp_path / f"{temp_prefix('other.json')}abc").write_text("someone else's")
    assert remove_stale_temps(tmp_path, "latest.json") == 1
    assert sorted(os.listdir(tmp_path)) == sorted(["latest.json", f"{temp_prefix('other.json')}abc"])


def test_checkpoint_start_removes_what_a_killed_run_left(tmp_path):
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters())
    final = checkpoint.save_checkpoint(tmp_path, model, opt, 3, {})
    (tmp_path / f"{temp_prefix('latest.json')}x1").write_text('{"dir": "st')  # SIGKILL while writing latest.json
    (tmp_path / ".tmp-step-000000004-123").mkdir()  # SIGKILL while writing a checkpoint
    assert checkpoint.latest_checkpoint(tmp_path) == final  # a reader leaves a writer's files alone
    assert len(os.listdir(tmp_path)) == 4
    assert checkpoint.latest_checkpoint(tmp_path, clean=True) == final  # the run that resumes here cleans up
    assert sorted(os.listdir(tmp_path)) == ["latest.json", final.name]


def test_local_path():
    assert local_path("file:///data/x") == "/data/x" and local_path("rel/dir") == "rel/dir"
    with pytest.raises(UserError, match="the episode store writes local"):
        local_path("s3://bucket/x", "the episode store")
