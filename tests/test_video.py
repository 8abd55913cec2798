"""`maskworld import-video`: real mp4 / gif / PNG-folder files become action-free episodes."""

import os

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from maskworld.cli import main
from maskworld.data.store import EpisodeStore


def moving_square(n=12, h=48, w=80):
    frames = np.zeros((n, h, w, 3), np.uint8)
    for t in range(n):
        frames[t, 10:30, 4 * t:4 * t + 20] = (255, 128, 0)
    return frames


@pytest.fixture
def media(tmp_path):
    frames = moving_square()
    iio.imwrite(tmp_path / "clip.mp4", frames, plugin="pyav", codec="libx264", fps=10)
    Image.fromarray(frames[0]).save(tmp_path / "anim.gif", save_all=True,
                                    append_images=[Image.fromarray(f) for f in frames[1:8]], duration=100, loop=0)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for t, f in enumerate(frames[:6]):
        Image.fromarray(f).save(folder / f"{t:04d}.png")
    return tmp_path


def test_import_mp4_gif_folder(media, tmp_path, capsys):
    out = tmp_path / "vid"
    paths = [media / "clip.mp4", media / "anim.gif", media / "pngs"]
    assert main(["import-video", *map(str, paths), "--out", str(out), "--size", "32", "--no-progress"]) == 0
    s = EpisodeStore(out)
    assert s.meta["has_actions"] is False and s.meta["num_actions"] == 0 and s.meta["env_id"] == "video"
    assert [s.length(i) + 1 for i in s.episode_ids] == [12, 8, 6]
    ep = s.load(0)
    assert ep.frames.shape == (12, 32, 32, 3) and (ep.actions == -1).all() and ep.truncated[-1]
    assert not ep.terminated.any() and (ep.rewards == 0).all()
    # the orange square moves right: center of mass of the red channel increases
    xs = [np.argwhere(f[:, :, 0] > 128)[:, 1].mean() for f in ep.frames]
    assert xs[-1] > xs[0]
    # same command again: nothing duplicated
    assert main(["import-video", *map(str, paths), "--out", str(out), "--size", "32", "--no-progress"]) == 0
    assert len(EpisodeStore(out)) == 3 and "skipped 3" in capsys.readouterr().out
    assert EpisodeStore(out).verify() == []


def test_fps_stride_and_squash(media, tmp_path):
    out = tmp_path / "v2"
    assert main(["import-video", str(media / "clip.mp4"), "--out", str(out), "--fps-stride", "3", "--squash",
                 "--size", "16", "--no-progress"]) == 0
    s = EpisodeStore(out)
    assert s.length(0) + 1 == 4 and s.load(0).frames.shape[1:] == (16, 16, 3)


def test_bad_file_is_named_and_nothing_created(tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(os.urandom(2000))
    out = tmp_path / "never"
    assert main(["import-video", str(bad), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "broken.mp4" in err and err.count("\n") == 1
    assert not out.exists()
    assert main(["import-video", str(tmp_path / "missing.webm"), "--out", str(out)]) == 2
    assert not out.exists()
