"""Where a world's next frame is wrong: per-pixel maps over the teacher-forced pairs of an evaluation.

A mean PSNR says how wrong the next frame is, not where. Three maps of the same held-out pairs, side by side:

- `changes`: how often each pixel changes from one real frame to the next (what there is to predict);
- `world`: the world's mean squared error of the next frame against the real one;
- `tokenizer`: the tokenizer's mean squared error on the real frames (the ceiling's own error).

The two error maps share one colour scale, so a pixel brighter in `world` than in `tokenizer` is where the
dynamics, not the tokens, loses the frame (e.g. a small object the world has not learned to move). One number
goes into the metrics: the share of the world's squared error on the 5 % of pixels where it is largest
(`next_frame.error_top5_share`; ~0.05 when the error is spread evenly, towards 1 when a small object carries it).
"""

from __future__ import annotations

import numpy as np

TOP = 0.05


def error_maps(real_NHWC: np.ndarray, gen_NHWC: np.ndarray, real_prev_NHWC: np.ndarray,
               recon_prev_NHWC: np.ndarray) -> dict[str, np.ndarray]:
    """uint8 frames -> {"changes", "world", "tokenizer"}: (H, W) float maps (share of pairs; MSE in [0, 1] units)."""
    f = lambda a: a.astype(np.float32) / 255.0  # noqa: E731
    return {"changes": (real_NHWC != real_prev_NHWC).any(-1).mean(0),
            "world": ((f(gen_NHWC) - f(real_NHWC)) ** 2).mean((0, 3)),
            "tokenizer": ((f(recon_prev_NHWC) - f(real_prev_NHWC)) ** 2).mean((0, 3))}


def top_share(err_HW: np.ndarray, top: float = TOP) -> float:
    """Share of the summed error on the `top` fraction of pixels where it is largest."""
    v = np.sort(err_HW.reshape(-1))[::-1]
    total = float(v.sum())
    return float(v[: max(1, int(round(top * v.size)))].sum() / total) if total > 0 else 0.0


def _hot(x_HW: np.ndarray) -> np.ndarray:
    """[0, 1] -> (H, W, 3) uint8: black, red, yellow, white."""
    x = np.clip(x_HW, 0.0, 1.0)[..., None]
    rgb = np.concatenate([np.clip(3 * x, 0, 1), np.clip(3 * x - 1, 0, 1), np.clip(3 * x - 2, 0, 1)], -1)
    return (rgb * 255).round().astype(np.uint8)


def error_picture(maps: dict[str, np.ndarray], gap: int = 2) -> np.ndarray:
    """The three maps side by side (H, 3W + 2 gap, 3), on square-root scales: changes on their own (their brightest
    pixel white), both errors on one."""
    top = max(float(maps["world"].max()), float(maps["tokenizer"].max()), 1e-12)
    changes = np.sqrt(maps["changes"] / max(float(maps["changes"].max()), 1e-12))
    tiles = [_hot(changes), _hot(np.sqrt(maps["world"] / top)), _hot(np.sqrt(maps["tokenizer"] / top))]
    H = tiles[0].shape[0]
    sep = np.full((H, gap, 3), 255, np.uint8)
    return np.concatenate([tiles[0], sep, tiles[1], sep, tiles[2]], 1)
