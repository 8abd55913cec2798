"""The attention side of the dynamics transformer: where each token sits (rotary angles) and what it may read.

- Rotary positions (Su et al. 2021) over the frame index, so a sliding KV cache works at any step; or axial over
  (frame, row, column), so a score depends on the cells' offset (`DynamicsConfig.spatial_rope`).
- The training pass's two streams as two attentions (`TwoStreamMask`) instead of one masked one.
- Cells that read only their neighbourhood (`local_masks`, `DynamicsConfig.local_radius`): the same per-frame
  pattern, tiled over the frames of the training pass, the KV-cached pass and the no-cache reference alike
  (`local_rows`), so the three compute one function.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def rope_angles(pos: torch.Tensor, dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame indices (...) -> cos, sin (..., dim/2)."""
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, device=pos.device, dtype=torch.float32) / dim))
    ang = pos.float().unsqueeze(-1) * inv
    return ang.cos(), ang.sin()


def axial_angles(frame_BL: torch.Tensor, S: int, grid: int, dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame indices (B, L) of tokens laid out S to a frame (action token, then the grid row by row) -> cos, sin
    (B, L, dim/2): the first pairs rotate by the frame, the next third by the row, the last third by the column."""
    half = dim // 2
    n_sp = half // 3
    j = torch.arange(frame_BL.shape[-1], device=frame_BL.device) % S
    centre = (grid - 1) / 2.0
    row = torch.where(j == 0, centre, ((j - 1) // grid).float())
    col = torch.where(j == 0, centre, ((j - 1) % grid).float())
    parts = [rope_angles(frame_BL, 2 * (half - 2 * n_sp), base),
             rope_angles(row.expand_as(frame_BL), 2 * n_sp, base), rope_angles(col.expand_as(frame_BL), 2 * n_sp, base)]
    return torch.cat([p[0] for p in parts], -1), torch.cat([p[1] for p in parts], -1)


def apply_rope(x_BHLD: torch.Tensor, cos_BLd: torch.Tensor, sin_BLd: torch.Tensor) -> torch.Tensor:
    x1, x2 = x_BHLD[..., ::2], x_BHLD[..., 1::2]
    c, s = cos_BLd.unsqueeze(1), sin_BLd.unsqueeze(1)  # (B, 1, L, d/2)
    out = torch.stack([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1)
    return out.flatten(-2).type_as(x_BHLD)


def local_masks(cfg, device=None) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """With `local_radius`: per layer, (reads (S, S), own (S, S)) bool over a frame's token layout (action token,
    then the grid row by row): which token of a frame may attend to which token of an earlier (or, in the clean
    stream, the same) frame, and which token of a frame being decoded to which token of that same frame. None for
    a world whose cells read everything."""
    r = cfg.local_radius
    if not r:
        return None
    G, S = cfg.grid, cfg.frame_len
    rc = torch.stack(torch.meshgrid(torch.arange(G), torch.arange(G), indexing="ij"), -1).reshape(-1, 2)  # (N, 2)
    cheb = (rc[:, None] - rc[None]).abs().amax(-1)  # (N, N)
    out = []
    for layer in range(cfg.n_layers):
        reads = torch.zeros(S, S, dtype=torch.bool)
        reads[:, 0] = True  # every token reads the action tokens; the action token nothing else
        reads[1:, 1:] = cheb <= (r if layer == 0 else 0)
        own = torch.eye(S, dtype=torch.bool)
        own[:, 0] = True
        out.append((reads.to(device), own.to(device)))
    return out


def local_rows(reads: torch.Tensor, own: torch.Tensor, earlier: int, decoding: bool) -> torch.Tensor:
    """One layer's pattern for a frame's tokens (S, (earlier + 1) * S): the `earlier` frames before it read by
    `reads`, its own frame by `own` (a frame being decoded) or by `reads` (a clean frame)."""
    return torch.cat([reads.repeat(1, earlier), own if decoding else reads], 1)


@dataclass(frozen=True)
class TwoStreamMask:
    """The training pass's attention pattern, done as two attentions instead of one masked (2L x 2L) one.

    Clean frame t attends to clean frames <= t; masked frame t attends to clean frames < t and to itself, never
    to other masked frames. A dense mask spends half of the (2L)^2 scores on pairs it then hides (clean ->
    masked and masked -> other masked frames); here the clean stream is one frame-causal attention (L x L)
    and every masked frame is a row of its own over [clean frames, itself] (S x (L + S)): the same outputs at
    about half the attention FLOPs."""

    T: int
    S: int
    clean: torch.Tensor
    """(1, 1, L, L) bool: clean frame-causal."""
    masked: torch.Tensor
    """(T, 1, S, L + S) bool: frame t's masked row sees clean frames < t and its own S tokens."""

    @staticmethod
    def build(T: int, S: int, device, local: tuple[torch.Tensor, torch.Tensor] | None = None) -> "TwoStreamMask":
        """local: one layer's (reads, own) of `local_masks`, or None (every token of a frame reads every one)."""
        f = torch.arange(T, device=device).repeat_interleave(S)  # frame index of each clean token
        clean = (f[:, None] >= f[None, :])[None, None]
        earlier = f[None, :] < torch.arange(T, device=device)[:, None]  # (T, L)
        masked = torch.cat([earlier[:, None, None, :].expand(T, 1, S, T * S),
                            torch.ones(T, 1, S, S, dtype=torch.bool, device=device)], -1)
        if local is not None:
            reads, own = local
            clean = clean & reads.repeat(T, T)[None, None]
            masked = masked & local_rows(reads, own, T, decoding=True)[None, None]
        return TwoStreamMask(T, S, clean, masked)

    def dense(self) -> torch.Tensor:
        """The same pattern as one (1, 1, 2L, 2L) mask (the reference the two-attention form must equal)."""
        T, S, L = self.T, self.S, self.T * self.S
        f = torch.arange(T, device=self.clean.device).repeat_interleave(S)
        mm = f[:, None] == f[None, :]
        top = torch.cat([self.clean[0, 0], torch.zeros(L, L, dtype=torch.bool, device=f.device)], 1)
        bottom = torch.cat([f[:, None] > f[None, :], mm], 1)
        return torch.cat([top, bottom], 0)[None, None]

    def attend(self, q, k, v) -> torch.Tensor:
        """q, k, v (B, nh, 2L, hd): clean stream then masked stream -> (B, nh, 2L, hd)."""
        B, nh, _, hd = q.shape
        T, S, L = self.T, self.S, self.T * self.S
        y_clean = F.scaled_dot_product_attention(q[:, :, :L], k[:, :, :L], v[:, :, :L], attn_mask=self.clean)

        def per_frame(x):  # (B, nh, L, hd) masked stream -> (B, T, nh, S, hd)
            return x.reshape(B, nh, T, S, hd).transpose(1, 2)

        def rows(x_clean, x_masked):  # -> (B*T, nh, L + S, hd): every masked frame's own key row
            return torch.cat([x_clean[:, None].expand(B, T, nh, L, hd), per_frame(x_masked)], 3).reshape(B * T, nh, L + S, hd)

        qm = per_frame(q[:, :, L:]).reshape(B * T, nh, S, hd)
        mask = self.masked.repeat(B, 1, 1, 1)  # (B*T, 1, S, L+S)
        ym = F.scaled_dot_product_attention(qm, rows(k[:, :, :L], k[:, :, L:]), rows(v[:, :, :L], v[:, :, L:]), attn_mask=mask)
        ym = ym.reshape(B, T, nh, S, hd).transpose(1, 2).reshape(B, nh, L, hd)
        return torch.cat([y_clean, ym], 2)


class Attention(nn.Module):
    def __init__(self, cfg):  # a DynamicsConfig
        super().__init__()
        self.nh, self.hd = cfg.n_heads, cfg.d_model // cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.rope_base = cfg.rope_base

    def forward(self, x_BLD, cos, sin, mask, cache=None, layer: int = 0):
        """x (B, L, D); mask bool (B|1, 1, L, Lk), a TwoStreamMask (training) or None.

        cache: a CacheView (inference): this frame's keys/values are written into its scratch slot in place and
        the frame attends over the whole row (the window + itself); None: self-attention over x (training)."""
        B, L, D = x_BLD.shape
        q, k, v = self.qkv(x_BLD).view(B, L, 3, self.nh, self.hd).permute(2, 0, 3, 1, 4)  # (B, nh, L, hd)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            lo, hi = cache.scratch
            cache.k[layer][:, :, lo:hi], cache.v[layer][:, :, lo:hi] = k, v
            k, v = cache.k[layer], cache.v[layer]  # (B, nh, (F+1)*S, hd)
        if isinstance(mask, TwoStreamMask):
            y = mask.attend(q, k, v)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, nh, L, hd)
        return self.proj(y.transpose(1, 2).reshape(B, L, D))


class Block(nn.Module):
    def __init__(self, cfg):  # a DynamicsConfig
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.mlp_ratio * cfg.d_model),
            nn.GELU(approximate="tanh"),
            nn.Linear(cfg.mlp_ratio * cfg.d_model, cfg.d_model),
        )

    def forward(self, x, cos, sin, mask, cache=None, layer: int = 0):
        x = x + self.attn(self.ln1(x), cos, sin, mask, cache, layer)
        return x + self.mlp(self.ln2(x))
