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
- Two encoders (`TokenizerConfig.encoder`). "conv": 3x3 convolutions and GroupNorm, so every code depends on
  its neighbours and, through GroupNorm's statistics over the whole frame, on every pixel: when Breakout's ball
  moves, 37 % of the tokens change although only 4 % of the 8x8 patches do, and the dynamics must predict that
  churn. "local": an MLP over each token's own patch of pixels (the same width and number of residual blocks), so
  a token's code is a function of its patch alone and changes only where the picture does (the decoder keeps
  its 3x3 convolutions: drawing may use the neighbours). Over an hour of Breakout and of CoinRun the local
  encoder reconstructed worse after its 18 minutes and its worlds were worse at every horizon although their
  dynamics got far more tokens right (docs/results.md), so conv stays the default and local an option.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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
    encoder: Literal["conv", "local"] = "conv"
    """"local": each token's code is read from its own patch's pixels only (see the module docstring); "conv"
    (what worlds without this field were trained with): 3x3 convolutions and GroupNorm over the frame."""

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


class LocalEncoder(nn.Module):
    """A token's code from its own patch alone: an MLP over each patch's pixels (ViT-style pre-norm residual
    blocks, 4x hidden), run on all patches at once as one batch of rows."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        c = cfg.channels
        self.merge = 2**cfg.downsample  # the 4x4 cells of pixel_unshuffle(patch) that make up one token's patch
        self.inp = nn.Linear(3 * (cfg.patch * self.merge) ** 2, c)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(c), nn.Linear(c, 4 * c), nn.SiLU(), nn.Linear(4 * c, c))
            for _ in range(cfg.num_res * (1 + cfg.downsample)))
        self.out = nn.Sequential(nn.LayerNorm(c), nn.SiLU(), nn.Linear(c, len(cfg.levels)))

    def forward(self, x_BChw: torch.Tensor) -> torch.Tensor:
        """pixel_unshuffle(frames, patch) (B, 3p^2, H/p, W/p) -> pre-quantization latents (B, D, h, w)."""
        x = F.pixel_unshuffle(x_BChw, self.merge).permute(0, 2, 3, 1)  # (B, h, w, 3 (p*merge)^2)
        x = self.inp(x)
        for block in self.blocks:
            x = x + block(x)
        return self.out(x).permute(0, 3, 1, 2)


def conv_encoder(cfg: TokenizerConfig) -> nn.Module:
    c, p = cfg.channels, cfg.patch
    enc = [nn.Conv2d(3 * p * p, c, 3, padding=1)]
    enc += [ResBlock(c) for _ in range(cfg.num_res)]
    for _ in range(cfg.downsample):
        enc += [nn.Conv2d(c, c, 4, stride=2, padding=1)] + [ResBlock(c) for _ in range(cfg.num_res)]
    return nn.Sequential(*enc, nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, len(cfg.levels), 1))


ENCODERS = {"conv": conv_encoder, "local": LocalEncoder}


class Tokenizer(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.cfg = cfg
        c, p = cfg.channels, cfg.patch
        self.encoder = ENCODERS[cfg.encoder](cfg)
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
