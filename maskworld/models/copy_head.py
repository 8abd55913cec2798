"""A pointer ("copy") head for memory M: predict a token by pointing at a remembered one.

    p(token) = (1 - lam) * softmax(tok_head(h)) + lam * sum_j attn_j [memory token j == token]

Why: the cross-attention reader (memory_reader.py) moves what it reads into the hidden state, and the
vocabulary head must then re-derive the exact token id from it. On the Landmarks world that rebuilt the
layout of a revisited place (29-30 dB, 88 % of the oracle's gain) but drew its small landmarks (keys, balls:
rare token ids) as blurred look-alikes, so landmark recall stayed at ~40 % of what the tokenizer can draw.
Pointing copies the id itself (pointer-generator networks, See et al. 2017; CopyNet).

Design choices:
- Only the retrieved frames are pointed at (compressed frames are pooled, they have no token ids).
- Keys are the remembered tokens' embeddings (token + within-frame position + relative pose), the query is
  the final hidden state of the position being predicted; one head, scaled dot product.
- The gate `lam` is per position, from the same hidden state, and starts near 0 (bias -3): an untrained
  copy head leaves the model almost unchanged, so it can be added to a trained world and fine-tuned
  (`maskworld train dynamics --init WORLD --copy-head`). Positions with an empty memory get lam = 0.
- The output is log p (valid logits: softmax(log p) = p), so training, MaskGIT sampling and every caller
  of the token logits stay as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-6


class CopyHead(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.q, self.k = nn.Linear(d, d), nn.Linear(d, d)
        self.gate = nn.Linear(d, 1)
        for m in (self.q, self.k, self.gate):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        nn.init.constant_(self.gate.bias, -3.0)

    def keys(self, emb_QLD: torch.Tensor) -> torch.Tensor:
        """Embeddings of the remembered tokens (Q, L, D) -> keys (Q, L, D)."""
        return self.k(emb_QLD)

    def forward(self, h_QND: torch.Tensor, logits_QNV: torch.Tensor, keys_QLD: torch.Tensor, ids_QL: torch.Tensor,
                valid_QL: torch.Tensor) -> torch.Tensor:
        """-> log of the mixture (Q, N, V)."""
        Q, N, D = h_QND.shape
        V = logits_QNV.shape[-1]
        score = self.q(h_QND) @ keys_QLD.transpose(1, 2) / D**0.5  # (Q,N,L)
        score = score.masked_fill(~valid_QL[:, None, :], float("-inf"))
        any_valid = valid_QL.any(-1)  # (Q,)
        attn = torch.softmax(torch.where(any_valid[:, None, None], score, torch.zeros_like(score)), -1)
        p_copy = torch.zeros(Q, N, V, dtype=attn.dtype, device=attn.device)
        p_copy.scatter_add_(2, ids_QL.clamp(0, V - 1)[:, None, :].expand(Q, N, -1), attn)
        lam = torch.sigmoid(self.gate(h_QND)) * any_valid[:, None, None]  # (Q,N,1)
        p = (1 - lam) * F.softmax(logits_QNV.float(), -1) + lam * p_copy.float()
        return torch.log(p + EPS).to(logits_QNV.dtype)
