"""How the dynamics model reads memory M: per-layer cross-attention from the frame being predicted to
remembered frames (retrieved by pose) and compressed older frames.

Design choices (issue 7; WorldMem / Context-as-Memory read retrieved frames, FramePack compresses old ones):
- Cross-attention, not more tokens in the causal context: the memory changes every step (retrieval
  follows the agent), so it must not be baked into the KV cache, and its keys carry no RoPE time
  position (a frame from 200 steps ago is as usable as one from 20). What places a remembered frame is
  its relative-pose embedding (`maskworld.memory.pose.rel_code`), added to each of its tokens.
- Only the masked stream (the frame being decoded) reads memory; the clean stream and the reward,
  termination and pose heads are untouched, so memory off = the same network minus these reads.
- Memory tokens are embeddings (token + within-frame position + relative pose or age), projected to
  keys/values per layer once per decoded frame and reused across the MaskGIT steps: cheap enough for
  play (measured by `maskworld eval --revisit`).
- Compressed frames: 2x2 average pooling of the token embeddings (a quarter of the tokens), with an
  age embedding (FramePack keeps recent frames sharp and older ones coarse).
- The query also carries the action being taken (a per-layer action embedding added to it): which
  remembered frame shows the next view depends on the move (after "turn left" it is the one to the left),
  and keys hold the relative pose additively, so action-query x pose-key scores learn that choice
  directly (measured on the places toy: without it the reader stayed unused for 1,500 steps).
- A learned "nothing" key is always present, so a query with an empty memory attends somewhere; output
  projections start at zero, so an untrained reader leaves the model unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from maskworld.memory.pose import REL_CLASSES


@dataclass
class MemoryInput:
    """What memory gives the frames being predicted. Q = query frames (B in play, B*T in training).

    retrieved (Q, M, N) long tokens; rel (Q, M) relative-pose codes (REL_EMPTY = empty slot);
    compressed (Q, C, N) long tokens; comp_valid (Q, C) bool. Either part may be None (switched off).
    """

    retrieved: torch.Tensor | None = None
    rel: torch.Tensor | None = None
    compressed: torch.Tensor | None = None
    comp_valid: torch.Tensor | None = None


class MemoryKV:
    """Per-layer keys/values of the memory tokens: k[l], v[l] (Q, nh, Lm, hd); mask (Q, 1, 1, Lm) bool;
    aq[l] (Q, 1, D) the action's query term."""

    def __init__(self, k: list, v: list, mask: torch.Tensor, aq: list):
        self.k, self.v, self.mask, self.aq = k, v, mask, aq


class CrossRead(nn.Module):
    def __init__(self, d: int, nh: int):
        super().__init__()
        self.nh, self.hd = nh, d // nh
        self.ln_q, self.ln_m = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.kv, self.out = nn.Linear(d, d), nn.Linear(d, 2 * d), nn.Linear(d, d)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def keys(self, mem_QLD: torch.Tensor):
        Q, L, D = mem_QLD.shape
        k, v = self.kv(self.ln_m(mem_QLD)).view(Q, L, 2, self.nh, self.hd).permute(2, 0, 3, 1, 4)
        return k, v

    def forward(self, x_QSD: torch.Tensor, k, v, mask, aq) -> torch.Tensor:
        Q, S, D = x_QSD.shape
        q = (self.q(self.ln_q(x_QSD)) + aq).view(Q, S, self.nh, self.hd).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(Q, S, D))


class MemoryReader(nn.Module):
    def __init__(self, d: int, nh: int, n_layers: int, grid: int, compressed_frames: int, num_actions: int):
        super().__init__()
        self.grid = grid
        self.act_q = nn.ModuleList([nn.Embedding(num_actions + 1, d) for _ in range(n_layers)])  # + NULL
        self.rel_emb = nn.Embedding(REL_CLASSES, d)
        self.kind_emb = nn.Parameter(torch.zeros(2, d))  # 0 = retrieved, 1 = compressed
        self.age_emb = nn.Parameter(torch.zeros(max(1, compressed_frames), d))
        self.null = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.reads = nn.ModuleList([CrossRead(d, nh) for _ in range(n_layers)])
        # the model's own init scale (std 0.02): a default N(0, 1) relative-pose embedding would drown the
        # token embeddings it is added to, and the reader could not tell remembered frames apart
        for e in [self.rel_emb, *self.act_q]:
            nn.init.normal_(e.weight, std=0.02)

    def embed(self, mem: MemoryInput, tok_emb: nn.Embedding, pos_emb_ND: torch.Tensor):
        """-> memory tokens (Q, Lm, D) and their validity (Q, Lm)."""
        parts, valid = [], []
        if mem.retrieved is not None:
            Q, M, N = mem.retrieved.shape
            e = tok_emb(mem.retrieved) + pos_emb_ND + self.rel_emb(mem.rel)[:, :, None] + self.kind_emb[0]  # (Q,M,N,D)
            parts.append(e.reshape(Q, M * N, -1))
            from maskworld.memory.pose import REL_EMPTY

            valid.append((mem.rel != REL_EMPTY)[:, :, None].expand(Q, M, N).reshape(Q, M * N))
        if mem.compressed is not None:
            Q, C, N = mem.compressed.shape
            g = self.grid
            e = (tok_emb(mem.compressed) + pos_emb_ND).view(Q * C, g, g, -1).permute(0, 3, 1, 2)
            e = F.avg_pool2d(e, 2).flatten(2).transpose(1, 2).reshape(Q, C, (g // 2) ** 2, -1)
            e = e + self.age_emb[:C, None] + self.kind_emb[1]
            parts.append(e.reshape(Q, C * (g // 2) ** 2, -1))
            valid.append(mem.comp_valid[:, :, None].expand(Q, C, (g // 2) ** 2).reshape(Q, -1))
        Q = parts[0].shape[0]
        parts.insert(0, self.null.expand(Q, 1, -1))
        valid.insert(0, torch.ones(Q, 1, dtype=torch.bool, device=parts[0].device))
        return torch.cat(parts, 1), torch.cat(valid, 1)

    def kv(self, mem: MemoryInput, tok_emb: nn.Embedding, pos_emb_ND: torch.Tensor, actions_Q: torch.Tensor) -> MemoryKV:
        """actions_Q: the action into each query frame."""
        e, valid = self.embed(mem, tok_emb, pos_emb_ND)
        ks, vs = zip(*(r.keys(e) for r in self.reads))
        return MemoryKV(list(ks), list(vs), valid[:, None, None, :], [a(actions_Q)[:, None] for a in self.act_q])

    def read(self, layer: int, x_QSD: torch.Tensor, mkv: MemoryKV) -> torch.Tensor:
        return self.reads[layer](x_QSD, mkv.k[layer], mkv.v[layer], mkv.mask, mkv.aq[layer])
