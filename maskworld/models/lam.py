"""Latent-action model (F for action-free video): Genie's LAM, in token space.

From the tokens of frames t and t+1 the encoder picks one of K discrete latent actions (K = 8 by
default); the decoder must rebuild frame t+1 from frame t and that latent alone, so the few bits
of the latent are spent on what changed between the frames (the agent's move), not on what
frame t already shows.

Design choices:
- **Token space, not pixels.** The inputs are the tokenizer's FSQ latents (grid x grid x D values
  in [-1, 1]), so training and labelling read the same memory-mapped token cache as the dynamics,
  and a CPU trains the LAM in minutes. The tokenizer already keeps what matters of each frame.
- **Categorical bottleneck with straight-through one-hots** (argmax forward, softmax gradient) rather than
  a VQ codebook: nothing to go stale. The encoder pools globally, so a code can name a kind of change
  (a move left) but not a place: without that the codes learned where the agent ended up. Collapse to one code
  is what open Genie reimplementations report most, so two entropy terms guard against it: the entropy of the *batch-mean* code
  distribution is pushed up (every code gets used), the entropy of each sample's distribution is
  pushed down (each transition commits to one code); with equal weights the pair is the mutual
  information between transition and code. Usage and perplexity are logged every step. (Gumbel noise
  was tried: the encoder then kept its logits uniform and let the noise satisfy the usage term.)
- **The decoder predicts the change** (frame t + delta) and is conditioned on the latent by FiLM:
  copying frame t is free, so the latent is only useful for the motion.
- Alignment (the off-by-one bug class): `infer(tok_t, tok_t1)` labels the transition INTO frame
  t+1, stored at index t+1 like every other action in the token cache ("the action precedes its frame").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from maskworld.models.fsq import FSQ, LEVELS_BY_CODES


@dataclass
class LamConfig:
    num_codes: int = 8
    grid: int = 8
    levels: list[int] = field(default_factory=lambda: list(LEVELS_BY_CODES[1000]))
    """The tokenizer's FSQ levels: token ids -> latent vectors."""
    channels: int = 64
    context_frame: bool = False
    """Also see frame t-1 (encoder and decoder). Under inertia (CoinRun's agent keeps its speed) what frame t -> t+1
    shows is mostly the old velocity; with t-1 the decoder extrapolates that itself and the code is left with the
    change of motion, which is what the action did. False: pairs only (worlds written before this option)."""
    prev_dropout: float = 0.1
    """Training: share of samples whose frame t-1 is replaced by frame t, as at an episode's first step."""
    batch_entropy_weight: float = 0.1
    sample_entropy_weight: float = 0.1
    norm_features: bool = False
    """Standardise the pooled encoder features over the batch (BatchNorm) and each transition's code logits across
    the codes (mean 0, root-mean-square LOGIT_SCALE; the argmax is kept). Without the first, the features of
    different transitions differ by ~0.1 % of their size at initialisation, every transition gets the same logits
    and training sits in a one-code phase; without the second, logits that did separate grow to +-40 and their
    gradient vanishes with codes left dead (both measured on the scroll toy of tests/test_latent.py; a tanh bound
    only moved the vanishing into the tanh). False: LAMs trained before."""


LOGIT_SCALE = 2.0
OFFSETS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def cost_volume(z_t: torch.Tensor, z_t1: torch.Tensor) -> torch.Tensor:
    """How well frame t+1 matches frame t moved by each offset of a 3x3 neighbourhood: (B,9,h,w).

    Which way something moved is a correlation of the two frames; convolutions over their concatenation
    learn it slowly (measured: up vs down was found, left vs right merged), so it is given, as in
    optical-flow networks."""
    h, w = z_t.shape[-2:]
    zp = F.pad(z_t, (1, 1, 1, 1))
    return torch.cat([-((z_t1 - zp[:, :, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]) ** 2).sum(1, keepdim=True)
                      for dy, dx in OFFSETS], 1)


class _FiLMRes(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)
        self.norm = nn.GroupNorm(8, c)

    def forward(self, x, scale, shift):
        h = self.norm(self.c1(F.gelu(x)))
        h = h * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        return x + self.c2(F.gelu(h))


class LatentActionModel(nn.Module):
    def __init__(self, cfg: LamConfig):
        super().__init__()
        self.cfg = cfg
        self.fsq = FSQ(cfg.levels)
        D, C = len(cfg.levels), cfg.channels
        n_in = 3 * D + len(OFFSETS) + (2 * D + len(OFFSETS) if cfg.context_frame else 0)
        self.enc = nn.Sequential(
            nn.Conv2d(n_in, C, 3, padding=1), nn.GELU(),
            nn.Conv2d(C, C, 3, padding=1), nn.GELU(),
            nn.Conv2d(C, C, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(C, C, 3, stride=2, padding=1), nn.GELU(),
        )
        self.feat_norm = nn.BatchNorm1d(2 * C) if cfg.norm_features else nn.Identity()
        self.head = nn.Sequential(nn.Linear(2 * C, C), nn.GELU(), nn.Linear(C, cfg.num_codes))
        self.code_emb = nn.Embedding(cfg.num_codes, C)
        self.dec_in = nn.Conv2d(2 * D if cfg.context_frame else D, C, 3, padding=1)
        self.film = nn.Linear(C, 2 * C * 2)
        self.blocks = nn.ModuleList([_FiLMRes(C), _FiLMRes(C)])
        self.dec_out = nn.Conv2d(C, D, 3, padding=1)
        nn.init.zeros_(self.dec_out.weight)
        nn.init.zeros_(self.dec_out.bias)

    def latents(self, tok_BHW: torch.Tensor) -> torch.Tensor:
        """token ids (B,h,w) -> FSQ latents (B,D,h,w)."""
        return self.fsq.indices_to_latent(tok_BHW).permute(0, 3, 1, 2)

    def logits(self, z_t: torch.Tensor, z_t1: torch.Tensor, z_prev: torch.Tensor | None = None) -> torch.Tensor:
        """(B,D,h,w) x 2 (x 3 with the context frame) -> code logits (B,K)."""
        x = [z_t, z_t1, z_t1 - z_t, cost_volume(z_t, z_t1)]
        if self.cfg.context_frame:
            z_prev = z_t if z_prev is None else z_prev
            x += [z_prev, z_t - z_prev, cost_volume(z_prev, z_t)]
        h = self.enc(torch.cat(x, 1))
        # Global pooling: the code may say *what kind* of change happened, not *where* (an action, not a place).
        logits = self.head(self.feat_norm(torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1)))
        if not self.cfg.norm_features:
            return logits
        centred = logits - logits.mean(-1, keepdim=True)  # a fixed spread across codes; the argmax is kept
        return LOGIT_SCALE * centred / centred.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()

    def decode(self, z_t: torch.Tensor, onehot_BK: torch.Tensor, z_prev: torch.Tensor | None = None) -> torch.Tensor:
        """frame t latents (and t-1's) + (soft or hard) one-hot latent action -> predicted frame t+1 latents."""
        e = onehot_BK @ self.code_emb.weight  # (B,C)
        film = self.film(e).chunk(2 * len(self.blocks), -1)
        h = self.dec_in(torch.cat([z_t, z_t if z_prev is None else z_prev], 1) if self.cfg.context_frame else z_t)
        for i, blk in enumerate(self.blocks):
            h = blk(h, film[2 * i], film[2 * i + 1])
        return z_t + self.dec_out(F.gelu(h))

    @torch.no_grad()
    def infer(self, tok_t: torch.Tensor, tok_t1: torch.Tensor, tok_prev: torch.Tensor | None = None) -> torch.Tensor:
        """F for video: tokens of frames t and t+1 (B,h,w) (and t-1, None at an episode's start)
        -> the latent action of t -> t+1 (B,)."""
        z_prev = self.latents(tok_prev) if tok_prev is not None and self.cfg.context_frame else None
        return self.logits(self.latents(tok_t), self.latents(tok_t1), z_prev).argmax(-1)

    def forward(self, tok_t: torch.Tensor, tok_t1: torch.Tensor, forced_code: int | None = None,
                tok_prev: torch.Tensor | None = None) -> dict:
        return self.losses(tok_t, tok_t1, forced_code, tok_prev)

    def losses(self, tok_t: torch.Tensor, tok_t1: torch.Tensor, forced_code: int | None = None,
               tok_prev: torch.Tensor | None = None) -> dict:
        """Training objective on token pairs (B,h,w) x 2 (+ frame t-1). `forced_code` pins every latent to
        one code (a collapsed model)."""
        z_t, z_t1 = self.latents(tok_t), self.latents(tok_t1)
        z_prev = None
        if self.cfg.context_frame and tok_prev is not None:
            z_prev = self.latents(tok_prev)
            if self.training and self.cfg.prev_dropout > 0:  # learn the episode-start case (no frame t-1)
                drop = torch.rand(len(z_t), 1, 1, 1, device=z_t.device) < self.cfg.prev_dropout
                z_prev = torch.where(drop, z_t, z_prev)
        logits = self.logits(z_t, z_t1, z_prev)
        K = self.cfg.num_codes
        p = logits.softmax(-1)
        if forced_code is not None:
            hard = F.one_hot(torch.full_like(logits[:, 0], forced_code, dtype=torch.long), K).float()
            onehot = hard
        else:
            hard = F.one_hot(logits.argmax(-1), K).float()
            onehot = hard + p - p.detach()  # straight-through
        pred = self.decode(z_t, onehot, z_prev)
        # Scale-free reconstruction: error relative to copying frame t (1 = no better than a copy, 0 = exact).
        # Raw MSE on FSQ latents is tiny when little moves, and the entropy terms would drown it.
        change = F.mse_loss(z_t, z_t1).detach().clamp_min(1e-6)
        recon = F.mse_loss(pred, z_t1) / change
        mean_p = p.mean(0)
        batch_h = -(mean_p * mean_p.clamp_min(1e-9).log()).sum()
        sample_h = -(p * p.clamp_min(1e-9).log()).sum(-1).mean()
        loss = recon - self.cfg.batch_entropy_weight * batch_h + self.cfg.sample_entropy_weight * sample_h
        share = hard.detach().mean(0)
        usage_h = -(share * share.clamp_min(1e-9).log()).sum()
        # Baseline the latent must beat: the same decoder with the latent of another sample in the batch.
        with torch.no_grad():
            shuffled = self.decode(z_t, hard[torch.roll(torch.arange(len(hard)), 1)], z_prev)
            recon_shuffled = F.mse_loss(shuffled, z_t1) / change
        return {"loss": loss, "recon": recon.detach(), "recon_shuffled": recon_shuffled,
                "codes_used": (share > 0).sum().float(), "perplexity": usage_h.exp(), "share": share}
