"""Write frame sequences as mp4/webm (PyAV through imageio) or gif (Pillow), and still strips as png; side-by-side
and stacked layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maskworld.errors import UserError
from maskworld.io import atomic_output


def upscale(frames_THWC: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling: crisp pixels."""
    return frames_THWC.repeat(factor, 1).repeat(factor, 2) if factor > 1 else frames_THWC


def side_by_side(*videos: np.ndarray, gap: int = 2) -> np.ndarray:
    """Videos (T,H,W,3) of equal T and H -> (T, H, sum W + gaps, 3) with white separators."""
    T, H = videos[0].shape[:2]
    sep = np.full((T, H, gap, 3), 255, np.uint8)
    parts = []
    for i, v in enumerate(videos):
        if i:
            parts.append(sep)
        parts.append(v)
    return np.concatenate(parts, 2)


def strip(*rows: np.ndarray, gap: int = 2) -> np.ndarray:
    """Rows of frames (T,H,W,3), equal in H and W -> one image: each row's frames left to right, rows stacked top
    to bottom with white separators (e.g. ground truth over generated)."""
    lines = [side_by_side(*[f[None] for f in r], gap=gap)[0] for r in rows]
    width = max(x.shape[1] for x in lines)
    lines = [np.pad(x, ((0, 0), (0, width - x.shape[1]), (0, 0)), constant_values=255) for x in lines]
    sep = np.full((gap, width, 3), 255, np.uint8)
    parts = []
    for i, x in enumerate(lines):
        parts += [sep, x] if i else [x]
    return np.concatenate(parts, 0)


def write_png(path, img_HWC: np.ndarray) -> Path:
    """Atomically write one image as png."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, suffix=".png") as tmp:
        Image.fromarray(np.ascontiguousarray(img_HWC.astype(np.uint8))).save(tmp, format="PNG")
    return path


def write_video(path, frames_THWC: np.ndarray, fps: int = 8) -> Path:
    """Atomically write a video; format from the suffix (.mp4, .webm, .gif)."""
    import imageio.v3 as iio

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".mp4", ".webm", ".gif"):
        raise UserError(f"{path}: unsupported video format {suffix!r}; use .mp4, .webm or .gif")
    frames = np.ascontiguousarray(frames_THWC.astype(np.uint8))
    if suffix in (".mp4", ".webm"):  # codecs want even sizes
        h, w = frames.shape[1:3]
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, suffix=suffix) as tmp:
        if suffix == ".gif":
            iio.imwrite(tmp, frames, duration=int(1000 / fps), loop=0)
        else:
            codec = "libx264" if suffix == ".mp4" else "libvpx-vp9"
            iio.imwrite(tmp, frames, plugin="pyav", fps=fps, codec=codec)
    return path
