"""Weight-free image metrics: PSNR and SSIM, per frame, in torch (no downloads, no extra deps); token churn.

Design choices:
- Both take uint8 frames (..., H, W, 3) or floats in [0, 1] and return one number per frame, so
  callers can average over whatever set they like (horizon, episode, ...).
- PSNR is capped at `PSNR_CAP` dB: two identical frames (a copy-last baseline on a frame where
  nothing moved) would otherwise count as infinite and dominate any mean.
- SSIM follows Wang et al. (2004): 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, data
  range 1, "valid" filtering (no padding), computed per RGB channel and averaged.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PSNR_CAP = 60.0


def as_float_bchw(frames) -> torch.Tensor:
    """uint8 / float array or tensor (..., H, W, 3) -> float (B, 3, H, W) in [0, 1]."""
    x = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames)
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    x = x.float().reshape(-1, *x.shape[-3:])
    return x.permute(0, 3, 1, 2)


def psnr_per_frame(a, b) -> np.ndarray:
    """PSNR (dB) of each frame pair, capped at PSNR_CAP. a, b: (..., H, W, 3)."""
    x, y = as_float_bchw(a), as_float_bchw(b)
    mse = ((x - y) ** 2).flatten(1).mean(1).clamp_min(10 ** (-PSNR_CAP / 10))
    return (10 * torch.log10(1.0 / mse)).numpy()


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size, dtype=torch.float32) - (size - 1) / 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(3, 1, size, size).contiguous()  # (3, 1, k, k): one per channel


def ssim_per_frame(a, b, batch: int = 256) -> np.ndarray:
    """SSIM of each frame pair (mean over pixels and channels). a, b: (..., H, W, 3)."""
    x_all, y_all = as_float_bchw(a), as_float_bchw(b)
    w = _gaussian_window()
    c1, c2 = 0.01**2, 0.03**2
    out = []
    for i in range(0, len(x_all), batch):
        x, y = x_all[i : i + batch], y_all[i : i + batch]

        def filt(z):
            return F.conv2d(z, w, groups=3)  # valid filtering, as in Wang et al.

        mx, my = filt(x), filt(y)
        sxx, syy, sxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
        s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
        out.append(s.flatten(1).mean(1))
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def balanced_accuracy(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean per-class recall over the classes present in `true`."""
    classes = np.unique(true)
    if len(classes) == 0:
        return float("nan")
    return float(np.mean([(pred[true == c] == c).mean() for c in classes]))


def majority_accuracy(true: np.ndarray) -> float:
    """Accuracy of always answering the most frequent class of `true` (a constant-predictor baseline)."""
    if len(true) == 0:
        return float("nan")
    _, counts = np.unique(true, return_counts=True)
    return float(counts.max() / len(true))


def token_churn(frames: np.ndarray, codes: np.ndarray, episode: np.ndarray) -> dict[str, float]:
    """How often a token's code changes between consecutive frames of an episode, against how often its patch does.

    frames (N, H, W, 3) uint8, codes (N, h, w), episode (N,): the episode of each frame (pairs never cross one).
    -> {"changed_patches": share of (pair, token) whose patch has any pixel changed, "changed_tokens": share whose
    code changed, "churn": share whose code changed although no pixel of the patch did}. Churn is what the dynamics
    must predict without anything in the picture to predict it from (codes that read their neighbours or the
    frame's statistics, models/tokenizer.py); a tokenizer whose codes read their own patch only has none."""
    same = episode[1:] == episode[:-1]
    n, h, w = codes.shape
    if n < 2 or not same.any():
        return {"changed_patches": float("nan"), "changed_tokens": float("nan"), "churn": float("nan")}
    p, q = frames.shape[1] // h, frames.shape[2] // w
    pix = (frames[1:] != frames[:-1]).any(-1)[same]  # (P, H, W) any channel changed
    patch = pix[:, : h * p, : w * q].reshape(-1, h, p, w, q).any(axis=(2, 4))
    code = (codes[1:] != codes[:-1])[same]
    return {"changed_patches": float(patch.mean()), "changed_tokens": float(code.mean()),
            "churn": float((code & ~patch).mean())}
