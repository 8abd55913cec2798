"""Where each avatar is: a small convolutional network over a frame's tokens (F for worlds of several agents).

A world of several agents acting at once decodes each avatar's neighbourhood from that avatar's own action
(world/factorised.py); for that it needs to know, in every frame it shows, real or imagined, which token cell
each avatar occupies. The locator reads the frame's token grid and gives, per agent, a distribution over the
cells. Trained on the data's `agents_pos` (train/locator_train.py).

Design choices:
- Tokens, not pixels: the locator reads exactly what the dynamics model draws, so it locates avatars in
  imagined frames as in real ones, and costs one tiny pass per step (no decoder).
- Convolutions, not attention: an avatar is a local pattern; two 3x3 layers see a 5x5 neighbourhood of cells,
  enough to tell a sprite from the floor; ~50k parameters (mostly the token embedding), a 0.2 MB file.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class LocatorConfig:
    vocab_size: int = 1000
    grid: int = 8
    agents: int = 2
    channels: int = 32
    radius: int = 1
    """Cells within this many (Chebyshev) of an avatar are its neighbourhood: where its action may change the
    next frame (an avatar moves at most one cell a step in the games this is built for)."""
    min_confidence: float = 0.5
    """Below this probability at its most likely cell an avatar is treated as anywhere (its action reaches every
    cell), so an avatar the locator loses is never frozen."""


class AvatarLocator(nn.Module):
    def __init__(self, cfg: LocatorConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.emb = nn.Embedding(cfg.vocab_size, c)
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.out = nn.Conv2d(c, cfg.agents, 1)

    def forward(self, tokens_Bhw: torch.Tensor) -> torch.Tensor:
        """-> logits (B, agents, h*w): per agent, over the cells."""
        x = self.emb(tokens_Bhw).permute(0, 3, 1, 2)  # (B, c, h, w)
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x)) + x
        return self.out(x).flatten(2)

    @torch.no_grad()
    def locate(self, tokens_Bhw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> each avatar's cell (B, agents) as a flat index row * w + col, and its probability (B, agents)."""
        p = torch.softmax(self.forward(tokens_Bhw).float(), -1)
        conf, cell = p.max(-1)
        return cell, conf

    @torch.no_grad()
    def owners(self, tokens_Bhw: torch.Tensor) -> torch.Tensor:
        """-> (B, h*w) int64 bit masks: bit k is set on the cells within `radius` of avatar k (every cell where
        the locator is unsure of it)."""
        B, h, w = tokens_Bhw.shape
        cell, conf = self.locate(tokens_Bhw)
        rows = torch.arange(h, device=cell.device).view(1, 1, h, 1)
        cols = torch.arange(w, device=cell.device).view(1, 1, 1, w)
        r, c = (cell // w).view(B, -1, 1, 1), (cell % w).view(B, -1, 1, 1)
        near = ((rows - r).abs() <= self.cfg.radius) & ((cols - c).abs() <= self.cfg.radius)  # (B, agents, h, w)
        near |= (conf < self.cfg.min_confidence).view(B, -1, 1, 1)
        bits = (1 << torch.arange(self.cfg.agents, device=cell.device)).view(1, -1, 1, 1)
        return (near.long() * bits).sum(1).flatten(1)
