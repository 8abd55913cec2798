"""fsspec URLs: the episode store and world directories read from `memory://` and `file://`
(fsspec's real in-memory file system, shared in-process with `maskworld.cli.main`); writers stay local.
"""

import importlib.util
import uuid

import fsspec
import numpy as np
import pytest

import maskworld
from maskworld.cli import main
from maskworld.errors import UserError
from toy import make_toy_store

MEM = fsspec.filesystem("memory")


@pytest.fixture
def mem():
    """A fresh folder in the in-memory file system, removed afterwards (it is process-wide)."""
    root = f"/t-{uuid.uuid4().hex[:8]}"
    yield root
    if MEM.exists(root):
        MEM.rm(root, recursive=True)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (conftest's one_thread)."""


def frames(world, actions=(0, 1, 2, 1)):
    s = world.session(seed=3)
    return [s.step(a)[0] for a in actions]


def test_load_world_from_memory_and_file_urls(tiny_world, tmp_path, mem):
    MEM.put(str(tmp_path / "world"), f"{mem}/world", recursive=True)
    w = maskworld.load_world(f"memory://{mem}/world")
    assert w.path is None  # remote: loaded read-only, nothing can be written beside it
    assert w.action_meanings == ["LEFT", "RIGHT", "NOOP"]
    ref = frames(tiny_world)
    assert all(np.array_equal(a, b) for a, b in zip(frames(w), ref))
    local = maskworld.load_world(f"file://{tmp_path / 'world'}")
    assert local.path == tmp_path / "world"  # file:// is local: the World keeps its directory
    assert all(np.array_equal(a, b) for a, b in zip(frames(local), ref))


def test_url_errors_name_the_problem(tiny_world, tmp_path, mem):
    with pytest.raises(UserError, match="Protocol not known: nosuch"):
        maskworld.load_world("nosuch://bucket/world")
    if importlib.util.find_spec("s3fs") is None:
        with pytest.raises(UserError, match="s3fs"):
            maskworld.load_world("s3://bucket/world")
    with pytest.raises(UserError, match="not a world directory"):
        maskworld.load_world(f"memory://{mem}/nothing")
    MEM.put(str(tmp_path / "world"), f"{mem}/w", recursive=True)
    MEM.pipe(f"{mem}/w/dynamics.safetensors", b"\x80\x04garbage, e.g. a pickle")  # never unpickled
    with pytest.raises(UserError, match="corrupt"):
        maskworld.load_world(f"memory://{mem}/w")
    MEM.rm(f"{mem}/w/dynamics.safetensors")
    with pytest.raises(UserError, match="missing dynamics.safetensors"):
        maskworld.load_world(f"memory://{mem}/w")
    MEM.rm(f"{mem}/w/world.json")
    with pytest.raises(UserError, match="no world.json"):
        maskworld.load_world(f"memory://{mem}/w")


@pytest.mark.slow
def test_train_world_from_memory_store_then_load_from_memory(tmp_path, mem, capsys):
    data = make_toy_store(tmp_path / "data", episodes=4, T=10)
    MEM.put(data, f"{mem}/data", recursive=True)
    out = tmp_path / "w"
    assert main(["train", "world", "--data", f"memory://{mem}/data", "--out", f"file://{out}", "--steps", "2",
                 "--preset", "tiny", "--no-progress"]) == 0
    assert (out / "world.json").exists()
    w = maskworld.load_world(out)
    assert w.meta.model_card["data"]["path"] == f"memory://{mem}/data"
    MEM.put(str(out), f"{mem}/world", recursive=True)  # the trained world, shipped to "object storage"
    remote = maskworld.load_world(f"memory://{mem}/world")
    assert all(np.array_equal(a, b) for a, b in zip(frames(remote), frames(w)))
    # Bad --data URLs and a remote --out are errors that say what to do (exit 2, nothing written).
    assert main(["train", "world", "--data", "nosuch://x", "--out", str(tmp_path / "a"), "--steps", "1"]) == 2
    assert "Protocol not known" in capsys.readouterr().err
    assert main(["train", "world", "--data", f"memory://{mem}/data", "--out", f"memory://{mem}/out", "--steps", "1"]) == 2
    assert "local" in capsys.readouterr().err and not MEM.exists(f"{mem}/out")
    assert not (tmp_path / "a").exists()
