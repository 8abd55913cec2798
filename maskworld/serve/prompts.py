"""Where a new session may start from besides scratch: an uploaded image, or `prompts.npz` beside the world.

Design choices:
- An upload is untrusted: bytes, format and the pixel size from the image header are all checked
  before any pixel is decoded. A PNG's size is its IHDR's claim, and deflate compresses a blank
  image ~1000:1, so a 32 KB file can claim 1 x 16,777,216 pixels; the side cap refuses it unread.
- Decoding runs on a small worker pool (server.py), never on the event loop: even an allowed
  4096 x 4096 image takes a fraction of a second, which would stall every tab of the server.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from maskworld.errors import UserError
from maskworld.world.world import as_uint8_frame

MAX_UPLOAD_BYTES = 4 * 1024 * 1024
MAX_UPLOAD_SIDE = 4096
MAX_UPLOAD_PIXELS = 4096 * 4096
SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")  # PNG (RFC 2083), JPEG SOI + marker


def open_upload(data: bytes):
    """Upload bytes -> a PIL image whose header (not pixels) has been read and checked against the caps."""
    from PIL import Image

    if len(data) > MAX_UPLOAD_BYTES:
        raise UserError(f"image of {len(data)} bytes is over the {MAX_UPLOAD_BYTES // 2**20} MiB limit; upload a smaller PNG or JPEG")
    if not data.startswith(SIGNATURES):
        raise UserError("upload is not a PNG or JPEG image")
    try:
        img = Image.open(io.BytesIO(data), formats=["PNG", "JPEG"])  # reads the header only
    except Exception:  # noqa: BLE001  (PIL raises many types for a malformed header; all mean the same here)
        raise UserError("upload is not a readable PNG or JPEG image") from None
    w, h = img.size
    if not (1 <= w <= MAX_UPLOAD_SIDE and 1 <= h <= MAX_UPLOAD_SIDE and w * h <= MAX_UPLOAD_PIXELS):
        raise UserError(f"image of {w}x{h} is over the pixel limit ({MAX_UPLOAD_SIDE} px per side, "
                        f"{MAX_UPLOAD_PIXELS // 2**20} Mpx in all); scale it down first")
    return img


def decode_upload(data: bytes, size: int) -> np.ndarray:
    """Uploaded PNG/JPEG bytes -> (size, size, 3) uint8. Blocking: call it off the event loop."""
    img = open_upload(data)
    try:
        img.draft("RGB", (size, size))  # JPEG: decode at reduced scale
        img.load()
    except Exception as e:  # noqa: BLE001  (zlib, OSError, SyntaxError...: a corrupt or truncated image)
        raise UserError(f"cannot decode the uploaded image ({type(e).__name__}); is it truncated?") from None
    return as_uint8_frame(img, size)


def load_prompts(world_dir: Path, size: int) -> np.ndarray | None:
    """`prompts.npz` beside the world: uint8 frames (N, H, W, 3) to start sessions from real data."""
    f = Path(world_dir) / "prompts.npz"
    if not f.exists():
        return None
    try:
        with np.load(f, allow_pickle=False) as z:
            arr = z["frames"] if "frames" in z.files else z[z.files[0]]
    except Exception as e:
        raise UserError(f"{f} is not a readable .npz of frames ({e}); rewrite it with np.savez(f, frames=uint8 (N,{size},{size},3))") from e
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3 or len(arr) == 0:
        raise UserError(f"{f}: expected uint8 frames (N, {size}, {size}, 3), got {arr.dtype} {arr.shape}")
    return arr
