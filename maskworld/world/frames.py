"""Anything image-like -> the (size, size, 3) uint8 frame a world reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from maskworld.errors import UserError


def as_uint8_frame(image, size: int) -> np.ndarray:
    """Anything image-like (path, PIL image, array HxW, HxWx3/4, float or uint8) -> (size,size,3) uint8.

    Wrong size or mode is converted (resized, RGB); something that is not an image is a clear error.
    """
    if isinstance(image, (str, Path)):
        try:
            image = Image.open(image)
            image.load()
        except Exception as e:
            raise UserError(f"cannot read prompt image {image}: {e}") from e
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if isinstance(image, np.ndarray):
        a = image
        if a.dtype != np.uint8:
            if a.size and a.max() <= 1.0 + 1e-6 and a.min() >= 0:
                a = (a * 255).round()
            a = np.clip(a, 0, 255).astype(np.uint8)
        if a.ndim == 2:
            a = np.stack([a] * 3, -1)
        if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
            raise UserError(f"prompt image has shape {image.shape}; expected (H, W, 3) RGB")
        image = Image.fromarray(a[..., :3] if a.shape[-1] != 1 else np.repeat(a, 3, -1))
    if not isinstance(image, Image.Image):
        raise UserError(f"prompt of type {type(image).__name__} is not an image; pass a path, PIL image or HxWx3 array")
    image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)
