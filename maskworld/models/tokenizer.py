"""Frame tokenizer: a convolutional FSQ autoencoder, 64x64 RGB <-> an h x w grid of discrete tokens.

Design choices (Mentzer et al. 2023, FSQ):
- Pixel-unshuffle first (4x4 patches -> 16x16x48): a conv stack at full 64x64 costs ~3 s per batch-32
  step on 2 CPU cores; working at 16x16 makes the same network ~16x cheaper.
- FSQ levels [8,5,5,5] = 1000 codes: no codebook collapse, no auxiliary losses.
- Tokens per frame: 8x8 = 64 by default (one stride-2 stage after the patchify); `downsample=0`
  (`train --grid 16`) gives 16x16 = 256. Measured (maskworld eval / bench, docs/results.md):
  MiniGrid at 8x8 reconstructs at 57.9 dB held-out PSNR, and its small world steps in 23 ms per frame
  (43 FPS, K=1) on 2 CPU cores; CoinRun's textured scenes need 16x16 to pass 28 dB (43.4 dB after
  3.5 H100-minutes), and every dynamics pass then carries 4x the tokens (~4x the MLP cost, up to
  16x the attention cost), so the 8x8 default is the real-time choice and 16x16 the sharp one.
- Output through a sigmoid, loss MSE in [0, 1] (PSNR is what we report).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from maskworld.models.fsq import FSQ, LEVELS_BY_CODES


@dataclass
class TokenizerConfig:
    image_size: int = 64
    """Square frame size in pixels."""
    patch: int = 4
    """Pixel-unshuffle factor applied before any convolution."""
    channels: int = 96
    """Conv width."""
    num_res: int = 2
    """Residual blocks per stage."""
    downsample: int = 1
    """Stride-2 stages after the patchify: 1 -> 8x8 tokens for 64x64 frames, 0 -> 16x16."""
    levels: list[int] = field(default_factory=lambda: list(LEVELS_BY_CODES[1000]))
    """FSQ levels; prod(levels) is the vocabulary size."""

    @property
    def grid(self) -> int:
        return self.image_size // self.patch // (2**self.downsample)

    @property
    def vocab_size(self) -> int:
        n = 1
        for v in self.levels:
            n *= v
        return n


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(8, c)
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.norm2 = nn.GroupNorm(8, c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return x + h


class Tokenizer(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.cfg = cfg
        c, p = cfg.channels, cfg.patch
        enc = [nn.Conv2d(3 * p * p, c, 3, padding=1)]
        enc += [ResBlock(c) for _ in range(cfg.num_res)]
        for _ in range(cfg.downsample):
            enc += [nn.Conv2d(c, c, 4, stride=2, padding=1)] + [ResBlock(c) for _ in range(cfg.num_res)]
        enc += [nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, len(cfg.levels), 1)]
        self.encoder = nn.Sequential(*enc)
        dec = [nn.Conv2d(len(cfg.levels), c, 3, padding=1)] + [ResBlock(c) for _ in range(cfg.num_res)]
        for _ in range(cfg.downsample):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1)]
            dec += [ResBlock(c) for _ in range(cfg.num_res)]
        dec += [nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, 3 * p * p, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)
        self.fsq = FSQ(cfg.levels)

    @staticmethod
    def to_float(frames_BHWC: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [0, 1]."""
        return frames_BHWC.permute(0, 3, 1, 2).float() / 255.0

    def encode(self, x_BCHW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """float frames in [0,1] (B,3,H,W) -> (quantized latent (B,h,w,D), tokens (B,h,w))."""
        z = self.encoder(F.pixel_unshuffle(x_BCHW * 2 - 1, self.cfg.patch))  # (B, D, h, w)
        return self.fsq(z.permute(0, 2, 3, 1))

    def decode_latent(self, q_BhwD: torch.Tensor) -> torch.Tensor:
        """quantized latent (B,h,w,D) -> float frames (B,3,H,W) in [0,1]."""
        y = self.decoder(q_BhwD.permute(0, 3, 1, 2))
        return torch.sigmoid(F.pixel_shuffle(y, self.cfg.patch))

    def decode(self, tokens_Bhw: torch.Tensor) -> torch.Tensor:
        """tokens (B,h,w) -> float frames (B,3,H,W) in [0,1]."""
        return self.decode_latent(self.fsq.indices_to_latent(tokens_Bhw))

    def forward(self, x_BCHW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, tokens = self.encode(x_BCHW)
        return self.decode_latent(q), tokens

    @torch.no_grad()
    def tokenize_uint8(self, frames_BHWC: torch.Tensor) -> torch.Tensor:
        """uint8 frames (B,H,W,3) -> tokens (B,h,w) int64."""
        return self.encode(self.to_float(frames_BHWC))[1]

    @torch.no_grad()
    def render_uint8(self, tokens_Bhw: torch.Tensor) -> torch.Tensor:
        """tokens (B,h,w) -> uint8 frames (B,H,W,3)."""
        x = self.decode(tokens_Bhw)
        return (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1)
