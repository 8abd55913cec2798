"""Turn videos (mp4/webm/gif/...) and folders of PNG/JPEG frames into action-free episodes.

    maskworld import-video clips/*.mp4 frames_dir/ --out data/videos --size 64 --fps-stride 2

Design choices:
- One file (or one folder of frames, sorted by name) is one episode. Actions are unknown:
  `actions = -1`, `has_actions = False` in the store meta; the latent-action model (F) infers them.
  Rewards are 0, `terminated` False, the last transition `truncated` (the video just stops).
- Frames are center-cropped to a square, then resized (area when shrinking) to `size`, so
  16:9 video is not squashed. `crop=False` squashes instead, like the env adapter.
- `fps_stride=k` keeps every k-th frame (30 fps video with k=2 gives 15 fps episodes).
- Decoding: imageio v3 (PyAV plugin for video containers, Pillow for GIF), streamed frame by
  frame so long videos do not need to fit in memory at full resolution.
- Importing into an existing store appends; files already imported (same resolved path) are
  skipped, so rerunning the same command does not duplicate episodes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from maskworld.data.store import MANIFEST, Episode, EpisodeStore, StoreWriter
from maskworld.envs.base import resize_frame
from maskworld.errors import UserError
from maskworld.progress import track

VIDEO_EXT = {".mp4", ".webm", ".mkv", ".mov", ".avi", ".gif", ".m4v"}
IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def _prepare(frame: np.ndarray, size: int, crop: bool) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    frame = frame[:, :, :3]
    if crop:
        h, w = frame.shape[:2]
        s = min(h, w)
        y, x = (h - s) // 2, (w - s) // 2
        frame = frame[y:y + s, x:x + s]
    return resize_frame(frame, size)


def _iter_video(path: str) -> Iterator[np.ndarray]:
    import imageio.v3 as iio

    plugin = "pillow" if path.lower().endswith(".gif") else "pyav"
    kwargs = {"mode": "RGB"} if plugin == "pillow" else {}
    yield from iio.imiter(path, plugin=plugin, **kwargs)


def _iter_folder(path: str) -> Iterator[np.ndarray]:
    from PIL import Image

    names = sorted(n for n in os.listdir(path) if os.path.splitext(n)[1].lower() in IMAGE_EXT)
    if not names:
        raise UserError(f"{path}: folder holds no PNG/JPEG frames")
    for n in names:
        try:
            with Image.open(os.path.join(path, n)) as im:
                yield np.asarray(im.convert("RGB"))
        except OSError as e:
            raise UserError(f"{os.path.join(path, n)}: unreadable image ({e})") from None


def read_episode(path: str, size: int = 64, fps_stride: int = 1, crop: bool = True):
    """Decode one video file or frame folder into an action-free `Episode`."""
    if fps_stride < 1:
        raise UserError(f"--fps-stride must be >= 1, not {fps_stride}")
    if not os.path.exists(path):
        raise UserError(f"{path}: no such file or folder")
    frames = []
    source = _iter_folder(path) if os.path.isdir(path) else _iter_video(path)
    try:
        for i, frame in enumerate(source):
            if i % fps_stride == 0:
                frames.append(_prepare(frame, size, crop))
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001  (decoders raise many types: av.error.*, OSError, ValueError, ...)
        raise UserError(f"{path}: cannot decode as video or image frames ({type(e).__name__}: {e})") from None
    if len(frames) < 2:
        raise UserError(f"{path}: needs at least 2 frames after --fps-stride {fps_stride}, has {len(frames)}")
    T = len(frames) - 1
    truncated = np.zeros(T, dtype=bool)
    truncated[-1] = True
    return Episode(frames=np.stack(frames), actions=np.full(T, -1, dtype=np.int64),
                   rewards=np.zeros(T, dtype=np.float32), terminated=np.zeros(T, dtype=bool),
                   truncated=truncated, info={}).validate()


def expand_inputs(paths: list[str]) -> list[str]:
    """Files stay files; a folder of images is one episode; a folder of videos is expanded."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            names = sorted(os.listdir(p))
            vids = [os.path.join(p, n) for n in names if os.path.splitext(n)[1].lower() in VIDEO_EXT]
            imgs = [n for n in names if os.path.splitext(n)[1].lower() in IMAGE_EXT]
            if imgs:
                out.append(p)
            out.extend(vids)
            if not imgs and not vids:
                raise UserError(f"{p}: folder holds no videos ({', '.join(sorted(VIDEO_EXT))}) or PNG/JPEG frames")
        else:
            out.append(p)
    return out


def import_videos(paths: list[str], out: str, size: int = 64, fps_stride: int = 1, crop: bool = True,
                  command: str = "", progress: bool = True) -> dict:
    """Import `paths` into the store at `out`. Returns {"episodes", "frames", "skipped"}."""
    if not paths:
        raise UserError("give at least one video file or frame folder")
    inputs = expand_inputs(paths)
    for p in inputs:  # fail on a missing path before creating anything
        if not os.path.exists(p):
            raise UserError(f"{p}: no such file or folder")
    meta = {"env_id": "video", "size": size, "action_meanings": [], "num_actions": 0, "has_actions": False,
            "info_keys": [], "policy": None, "seed": None, "fps_stride": fps_stride, "crop": crop,
            "command": command, "source": "video"}
    done = set()
    if os.path.exists(os.path.join(out, MANIFEST)):
        old = EpisodeStore(out)
        done = {old.entry(i).get("source") for i in old.episode_ids}
    # decode the first new input before creating the store, so a bad file leaves nothing behind
    todo = [p for p in inputs if os.path.abspath(p) not in done]
    stats = {"episodes": 0, "frames": 0, "skipped": len(inputs) - len(todo)}
    if not todo:
        return stats
    first = read_episode(todo[0], size, fps_stride, crop)
    with StoreWriter(out, meta, episodes_per_shard=64, frames_per_shard=4096) as writer:
        for k, p in enumerate(track(todo, desc="import", unit="files", enabled=progress)):
            ep = first if k == 0 else read_episode(p, size, fps_stride, crop)
            writer.add(ep, source=os.path.abspath(p))
            stats["episodes"] += 1
            stats["frames"] += len(ep) + 1
    return stats
