"""How a world shows an imagined frame: the tokenizer's rendering of its tokens, or that rendering only where
the tokens changed, pasted over the frame shown before ("composite").

Why: most of a game frame does not change from one step to the next, and a small tokenizer trained for
minutes renders a static scene worse than the scene itself (measured on Breakout: raw copy-last 34 dB at
horizon 8, the tokenizer's own rendering 24 dB). Video codecs face the same trade and skip the blocks that
did not change (the "skipped macroblocks" of H.261 onward): a block whose code is unchanged keeps the pixels
already shown. Here the block is a token's cell (image_size / grid pixels on a side), a cell is redrawn when
its token differs from the last frame's, and a real frame (a prompt or an observation) is shown as it is, so
a world started from real frames keeps their detail wherever nothing moves. A changed cell is drawn by the
tokenizer alone, whose receptive field spans neighbouring cells: the seams this can leave are the price.
"""

from __future__ import annotations

import numpy as np

RENDER_MODES = ("tokens", "composite")


def composite(shown_BHW3: np.ndarray, tokens_before_Bhw: np.ndarray, tokens_Bhw: np.ndarray,
              rendered_BHW3: np.ndarray) -> np.ndarray:
    """The frame to show (B,H,W,3) uint8: `rendered` (the tokenizer's rendering of `tokens`) in every cell whose
    token changed since `tokens_before`, the frame shown before everywhere else."""
    B, H, W, _ = rendered_BHW3.shape
    h, w = tokens_Bhw.shape[-2:]
    changed = np.asarray(tokens_Bhw) != np.asarray(tokens_before_Bhw)  # (B,h,w)
    mask = changed.repeat(H // h, 1).repeat(W // w, 2)[..., None]  # (B,H,W,1): each cell's pixels
    return np.where(mask, rendered_BHW3, shown_BHW3)


def check_render_mode(mode: str) -> str:
    if mode not in RENDER_MODES:
        raise ValueError(f"render mode must be one of {RENDER_MODES}, not {mode!r}")
    return mode
