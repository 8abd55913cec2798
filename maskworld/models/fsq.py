"""Finite scalar quantization (Mentzer et al., 2023).

Why FSQ: every code of the implicit codebook is reachable by construction, so there is no codebook
collapse, no commitment loss and no dead-code reset (Mentzer et al. 2023, FSQ).
Each latent channel i is bounded with tanh and rounded to one of `levels[i]` values; the token id is
the mixed-radix number of the per-channel indices, so `prod(levels)` codes in all.
"""

from __future__ import annotations

import torch
from torch import nn


LEVELS_BY_CODES = {240: [8, 6, 5], 1000: [8, 5, 5, 5], 4375: [7, 5, 5, 5, 5]}
"""Mentzer et al. 2023's levels for codebooks near 2^8, 2^10 and 2^12 (their Table 1)."""


class FSQ(nn.Module):
    def __init__(self, levels: list[int]):
        super().__init__()
        self.levels = list(levels)
        lv = torch.tensor(levels, dtype=torch.float32)
        basis = torch.cumprod(torch.tensor([1] + list(levels[:-1]), dtype=torch.long), 0)
        self.register_buffer("_levels", lv, persistent=False)
        self.register_buffer("_basis", basis, persistent=False)
        self.dim = len(levels)
        self.codebook_size = int(torch.prod(lv).item())

    def _bound(self, z: torch.Tensor) -> torch.Tensor:
        # Maps R -> (-(L-1)/2, (L-1)/2) with a half-step shift for even L (so rounding is symmetric).
        half_l = (self._levels - 1) * (1 - 1e-3) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset

    def forward(self, z_BHWD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z (..., D) -> (quantized in [-1, 1] (..., D) with straight-through grads, token ids (...))."""
        b = self._bound(z_BHWD)
        q = b + (torch.round(b) - b).detach()
        half_width = (self._levels // 2)
        codes = self.codes_from_levels(torch.round(q.detach()) + half_width)
        return q / half_width, codes

    def codes_from_levels(self, idx_D: torch.Tensor) -> torch.Tensor:
        return (idx_D.long() * self._basis).sum(-1)

    def indices_to_latent(self, codes: torch.Tensor) -> torch.Tensor:
        """token ids (...) -> quantized latent (..., D) in [-1, 1]."""
        idx = (codes.long().unsqueeze(-1) // self._basis) % self._levels.long()
        half_width = (self._levels // 2)
        return (idx.float() - half_width) / half_width
