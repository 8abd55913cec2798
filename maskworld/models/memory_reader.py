"""How the dynamics model reads memory M: per-layer cross-attention from the frame being predicted to
remembered frames (retrieved by pose) and compressed older frames.

Design choices (WorldMem / Context-as-Memory read retrieved frames, FramePack compresses old ones):
- Cross-attention, not more tokens in the causal context: the memory changes every step (retrieval
  follows the agent), so it must not be baked into the KV cache, and its keys carry no RoPE time
  position (a frame from 200 steps ago is as usable as one from 20). What places a remembered frame is
  its relative-pose embedding (`maskworld.memory.pose.rel_code`), added to each of its tokens.
- Only the masked stream (the frame being decoded) reads memory; the clean stream and the reward,
  termination and pose heads are untouched, so memory off = the same network minus these reads.
- Memory tokens are embeddings (token + within-frame position + relative pose or age) and their keys/values
  are a linear map of them, so each is a sum of rows of small per-layer tables (vocabulary x 2D, positions
  x 2D, ...) computed once per step: gathering rows instead of projecting every memory token of every
  query frame halved a training step (289 memory tokens per frame; measured 11.6 s -> ~6 s on the small
  preset), and in play the tables are reused across the MaskGIT steps.
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

from maskworld.memory.pose import REL_CLASSES, REL_EMPTY


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
    aq[l] (Q, 1, D) the action's query term; copy: (keys (Q,L,D), token ids (Q,L), valid (Q,L)) of the retrieved
    tokens for the copy head (copy_head.py), or None."""

    def __init__(self, k: list, v: list, mask: torch.Tensor, aq: list, copy=None):
        self.k, self.v, self.mask, self.aq, self.copy = k, v, mask, aq, copy


class CrossRead(nn.Module):
    def __init__(self, d: int, nh: int):
        super().__init__()
        self.nh, self.hd = nh, d // nh
        self.ln_q = nn.LayerNorm(d)
        self.q, self.kv, self.out = nn.Linear(d, d), nn.Linear(d, 2 * d), nn.Linear(d, d)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def split(self, kv_QL2D: torch.Tensor):
        Q, L, _ = kv_QL2D.shape
        k, v = kv_QL2D.view(Q, L, 2, self.nh, self.hd).permute(2, 0, 3, 1, 4)
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
        self._cache = None
        # the model's own init scale (std 0.02): a default N(0, 1) relative-pose embedding would drown the
        # token embeddings it is added to, and the reader could not tell remembered frames apart
        for e in [self.rel_emb, *self.act_q]:
            nn.init.normal_(e.weight, std=0.02)

    def _tables(self, tok_table_VD: torch.Tensor, pos_emb_ND: torch.Tensor):
        """Per-layer K/V tables (layers stacked on the last axis). In inference they are computed once and kept
        (10 ms a step on the CPU otherwise); `train()` drops them, and so does any call with gradients on."""
        if self._cache is not None and not self.training and not torch.is_grad_enabled():
            return self._cache
        W = torch.cat([r.kv.weight for r in self.reads], 0)  # (L*2D, D)
        b = torch.cat([r.kv.bias for r in self.reads], 0)
        def tab(x):
            return x @ W.t()

        out = (tab, tab(tok_table_VD), tab(pos_emb_ND), tab(self.kind_emb) + b, tab(self.null[0]) + b,
               tab(self.rel_emb.weight), tab(self.age_emb))  # tok (V+1, L2D), pos (N, L2D), ...
        self._cache = out if not self.training and not torch.is_grad_enabled() else None
        return out

    def train(self, mode: bool = True):
        self._cache = None
        return super().train(mode)

    def kv(self, mem: MemoryInput, tok_table_VD: torch.Tensor, pos_emb_ND: torch.Tensor, actions_Q: torch.Tensor) -> MemoryKV:
        """Keys/values of every memory token for every layer; actions_Q: the action into each query frame.

        A memory token's embedding is tok + pos + (rel | age) + kind, and its keys/values W e + b, so they are
        sums of table rows: tab(x) = x @ W^T for every layer at once (layers stacked along the last axis)."""
        _, tok_t, pos_t, kind_t, null_t, rel_t, age_t = self._tables(tok_table_VD, pos_emb_ND)
        parts, valid = [null_t], [None]
        if mem.retrieved is not None:
            Q, M, N = mem.retrieved.shape
            e = tok_t[mem.retrieved] + pos_t + (rel_t[mem.rel] + kind_t[0])[:, :, None]  # (Q,M,N,L2D)
            parts.append(e.reshape(Q, M * N, -1))
            valid.append((mem.rel != REL_EMPTY)[:, :, None].expand(Q, M, N).reshape(Q, M * N))
        if mem.compressed is not None:
            Q, C, N = mem.compressed.shape
            g = self.grid
            e = (tok_t[mem.compressed] + pos_t).view(Q * C, g, g, -1).permute(0, 3, 1, 2)
            e = F.avg_pool2d(e, 2).flatten(2).transpose(1, 2).reshape(Q, C, (g // 2) ** 2, -1)  # pooling commutes with W
            e = e + (age_t[:C] + kind_t[1])[:, None]
            parts.append(e.reshape(Q, C * (g // 2) ** 2, -1))
            valid.append(mem.comp_valid[:, :, None].expand(Q, C, (g // 2) ** 2).reshape(Q, -1))
        Q = parts[1].shape[0]
        parts[0] = parts[0].expand(Q, 1, -1)
        valid[0] = torch.ones(Q, 1, dtype=torch.bool, device=parts[1].device)
        kv_all, mask = torch.cat(parts, 1), torch.cat(valid, 1)[:, None, None, :]  # (Q, Lm, L*2D)
        ks, vs = zip(*(r.split(c) for r, c in zip(self.reads, kv_all.chunk(len(self.reads), -1))))
        return MemoryKV(list(ks), list(vs), mask, [a(actions_Q)[:, None] for a in self.act_q])

    def read(self, layer: int, x_QSD: torch.Tensor, mkv: MemoryKV) -> torch.Tensor:
        return self.reads[layer](x_QSD, mkv.k[layer], mkv.v[layer], mkv.mask, mkv.aq[layer])
