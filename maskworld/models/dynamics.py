"""Dynamics transformer: predicts the next frame's tokens, reward and termination (G's core).

Design choices:
- A frame is S = 1 + h*w tokens: its action token (the action that led INTO the frame; NULL for an
  episode's first frame) prepended to its token grid. Prepending beats adding (Jasmine's CoinRun study).
- Attention is frame-causal: bidirectional inside a frame, causal across frames. Temporal order comes
  from rotary embeddings over the *frame index* (relative, so a sliding KV cache works at any step);
  within-frame position is a learned embedding.
- Two streams in training (no train/test mismatch): the *clean* stream holds the context frames
  (what the KV cache holds at play time); the *masked* stream holds, for every frame t, a copy with a
  MaskGIT-masked token grid that attends to clean frames < t and to itself. Genie and jafar instead
  let frame t+1 attend to the *masked* frame t; we pay 2x tokens to keep context clean and identical
  to inference.
- Robust rollouts: clean context tokens are corrupted with random tokens at a random rate during
  training (GameNGen's noise augmentation, discrete form), so the model tolerates its own errors.
- Reward (a class per value: models/reward_values.py) and termination are read from the clean stream's action position of frame t
  (it sees the whole frame t, the action into it and the past): the world emits them once the frame
  is decoded.
Models return logits; `maskworld.models.sampler` decodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from maskworld.memory.pose import DELTA_CLASSES, REL_EMPTY
from maskworld.models.code_factors import CodeFactors
from maskworld.models.copy_head import CopyHead
from maskworld.models.attention import Block, TwoStreamMask, axial_angles, local_masks, local_rows, rope_angles
from maskworld.models.kv_cache import CacheView
from maskworld.models.memory_reader import MemoryReader
from maskworld.models.reward_values import SIGN_VALUES, class_values


@dataclass
class DynamicsConfig:
    vocab_size: int = 1000
    """Frame token vocabulary (the tokenizer's). MASK id = vocab_size."""
    num_actions: int = 7
    """Real (or latent) actions; NULL action id = num_actions."""
    grid: int = 8
    """Token grid side: h = w = grid."""
    d_model: int = 256
    n_layers: int = 6
    n_heads: int = 8
    window: int = 8
    """Context window in frames (training clip length; KV cache length at play time)."""
    mlp_ratio: int = 4
    reward_classes: int = 3
    """Classes of the reward head: len(reward_values), or 3 sign classes (0 negative, 1 zero, 2 positive)."""
    reward_values: list[float] | None = None
    """What each reward class is worth (ascending, 0 among them): the data's reward values where they are few
    (models/reward_values.py); None = the sign classes -1/0/+1."""
    rope_base: float = 100.0
    spatial_rope: bool = False
    """Rotary positions over (frame, row, column) instead of the frame alone (axial 3-D RoPE, as video
    transformers use): a third of each head's rotary pairs each for the frame, the token's row and its column, so
    attention between two cells depends on their offset and what moves one cell a frame is learned once for the
    whole grid instead of per position. The action token sits at the grid's centre. False = the frame index only
    (worlds trained before it)."""
    local_radius: int = 0
    """Cells read only nearby cells (0 = every cell reads the whole window, as trained before): in the first layer a
    cell attends to the cells within this many rows and columns of it, in every later layer to its own cell only,
    always across the window's frames and to the action tokens, which read only actions; a cell being decoded reads
    none of its own frame's other cells. So a cell's next token depends on its neighbourhood of the frames before
    and the actions alone (and, in a world with memory M, on what it reads there), and a change travels at most
    `local_radius` cells a frame (the game's own light cone in a grid world where things move a cell a step), which
    keeps one avatar's actions away from the others' cells (world/factorised.py). The reward and termination heads
    read the action token and the mean of the frame's cells. See `local_masks`."""
    memory_frames: int = 0
    """Retrieved frames the predicted frame reads by cross-attention (memory M; 0 = no retrieval memory)."""
    compressed_frames: int = 0
    """Frames just older than the window, read at a quarter of their tokens (FramePack; 0 = none)."""
    memory_keys: str = "pose"
    """How remembered frames are found (memory/): "pose" (the nearest places, by pose keys; needs poses in the
    data) or "appearance" (the frames that look most like the last one: memory/appearance.py; any game)."""
    pose_head: bool = False
    """Predict each frame's pose change (dead reckoning for memory keys; needs poses in the data)."""
    copy_head: bool = False
    """Memory M: tokens may also be predicted by pointing at a retrieved frame's token (copy_head.py)."""
    prev_frame_prior: bool = False
    """Decode from "nothing changes": a masked token carries the previous frame's token at its position (plus a
    learned mask flag) and its logits a learned bonus for that token, so an untrained world copies the last frame
    instead of drawing noise (a discrete-diffusion start from the last frame rather than from all-[MASK])."""
    code_levels: list[int] | None = None
    """The tokenizer's FSQ levels, read as each code's digits by the token embedding and head (code_factors.py);
    None = every code on its own."""
    action_factors: list[int] | None = None
    """Several agents acting at once (a joint action per step): each agent's number of actions. The joint action a
    holds agent i's action (a // prod(f[:i])) % f[i], and its token is the sum of one embedding per agent (each with
    its own NULL), so what each avatar does is learned apart from what the others do. None = one actor."""
    partial_actions: bool = False
    """With action_factors: trained with some agents' actions hidden (each such agent given its NULL) in the frame
    being predicted, so a query may name only some agents' actions (`partial_action`) and the world predicts with
    the others unknown; factorised decoding (world/factorised.py) asks it that way."""
    reward_logit_shift: list[float] | None = None
    """Added to the reward logits at inference: log(data prior / training prior) per sign class, undoing what event
    oversampling taught the head about how often rewards happen (label-shift correction). None = no shift."""
    term_logit_shift: float = 0.0
    """The same correction for the termination logit."""

    @property
    def has_memory(self) -> bool:
        return self.memory_frames > 0 or self.compressed_frames > 0

    @property
    def tokens_per_frame(self) -> int:
        return self.grid * self.grid

    @property
    def frame_len(self) -> int:
        return self.tokens_per_frame + 1

    @property
    def mask_id(self) -> int:
        return self.vocab_size

    @property
    def null_action(self) -> int:
        return self.num_actions

    def agent_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Joint action ids (...) -> each agent's action (..., agents): agent i's is (a // prod(f[:i])) % f[i]."""
        out, stride = [], 1
        for f in self.action_factors:
            out.append((actions // stride) % f)
            stride *= f
        return torch.stack(out, -1)

    def partial_action(self, digits_BA: torch.Tensor) -> torch.Tensor:
        """Each agent's action (B, agents), f[i] (agent i's NULL) where unknown -> action ids (B,) the embedding
        reads: the joint id where every agent is known, else null_action + 1 + the digits in base f[i] + 1 (ids
        past NULL, never stored: only the frame being decoded carries them)."""
        known = (digits_BA < torch.tensor(self.action_factors, device=digits_BA.device)).all(1)
        joint, ext, stride, pstride = torch.zeros_like(digits_BA[:, 0]), torch.zeros_like(digits_BA[:, 0]), 1, 1
        for i, f in enumerate(self.action_factors):
            joint += digits_BA[:, i].clamp(max=f - 1) * stride
            ext += digits_BA[:, i] * pstride
            stride, pstride = stride * f, pstride * (f + 1)
        return torch.where(known, joint, self.null_action + 1 + ext)


class Dynamics(nn.Module):
    def __init__(self, cfg: DynamicsConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.tok_emb = nn.Embedding(cfg.vocab_size + 1, d)  # + MASK
        if cfg.action_factors:
            if math.prod(cfg.action_factors) != cfg.num_actions:
                raise ValueError(f"action_factors {cfg.action_factors} multiply to {math.prod(cfg.action_factors)}, "
                                 f"not num_actions {cfg.num_actions}")
            self.agent_act_emb = nn.ModuleList(nn.Embedding(f + 1, d) for f in cfg.action_factors)  # + NULL each
        else:
            self.act_emb = nn.Embedding(cfg.num_actions + 1, d)  # + NULL
        self.pos_emb = nn.Parameter(torch.randn(cfg.frame_len, d) * 0.02)  # within-frame position
        self.stream_emb = nn.Parameter(torch.zeros(2, d))  # 0 = clean, 1 = masked
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.ln_f = nn.LayerNorm(d)
        self.tok_head = nn.Linear(d, cfg.vocab_size)
        if cfg.reward_values is not None and len(cfg.reward_values) != cfg.reward_classes:
            raise ValueError(f"reward_values {cfg.reward_values} name {len(cfg.reward_values)} classes, not "
                             f"reward_classes {cfg.reward_classes}")
        self.reward_head = nn.Linear(d, cfg.reward_classes)
        self.term_head = nn.Linear(d, 1)
        if cfg.pose_head:
            self.pose_head = nn.Linear(d, DELTA_CLASSES)
        self.apply(self._init)
        if cfg.has_memory:  # after _init: the reader's zero-initialised outputs must stay zero
            self.memory = MemoryReader(d, cfg.n_heads, cfg.n_layers, cfg.grid, cfg.compressed_frames, cfg.num_actions)
        if cfg.copy_head:
            if not cfg.memory_frames:
                raise ValueError("copy_head points at retrieved frames: it needs memory_frames > 0")
            self.copy_head = CopyHead(d)
        if cfg.code_levels:
            if math.prod(cfg.code_levels) != cfg.vocab_size:
                raise ValueError(f"code_levels {cfg.code_levels} make {math.prod(cfg.code_levels)} codes, not vocab_size "
                                 f"{cfg.vocab_size}")
            self.code_factors = CodeFactors(cfg.code_levels, d)
        if cfg.prev_frame_prior:
            self.mask_flag = nn.Parameter(torch.zeros(d))  # marks "still to decode" on top of the previous token
            self.prev_gate = nn.Linear(d, 1)  # logit bonus for the previous frame's token, read from the position
            nn.init.zeros_(self.prev_gate.weight)
            nn.init.constant_(self.prev_gate.bias, math.log(cfg.vocab_size) + 2.0)  # p(copy) ~ 0.9 before training
        self._mask_cache: dict = {}

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def rope(self, frame_BL: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotary angles of tokens laid out a frame (action token + grid) at a time, by their frame indices (B, L)."""
        hd = self.cfg.d_model // self.cfg.n_heads
        if self.cfg.spatial_rope:
            return axial_angles(frame_BL, self.cfg.frame_len, self.cfg.grid, hd, self.cfg.rope_base)
        return rope_angles(frame_BL, hd, self.cfg.rope_base)

    def token_tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(token embedding table (V+1, D), token head weight (V, D)), FSQ digits included with `code_levels`."""
        if not self.cfg.code_levels:
            return self.tok_emb.weight, self.tok_head.weight
        return self.code_factors.tables(self.tok_emb.weight, self.tok_head.weight)

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids (..., ) (MASK included) -> (..., D)."""
        return F.embedding(tokens, self.token_tables()[0])

    def token_logits(self, h_D: torch.Tensor) -> torch.Tensor:
        """Hidden states (..., D) -> token logits (..., V)."""
        return F.linear(h_D, self.token_tables()[1], self.tok_head.bias)

    def embed_actions(self, actions_BT: torch.Tensor) -> torch.Tensor:
        """(B,T) action ids (NULL = num_actions) -> (B,T,D); joint actions as a sum over agents."""
        if not self.cfg.action_factors:
            return self.act_emb(actions_BT)
        null = actions_BT == self.cfg.num_actions
        partial = actions_BT > self.cfg.num_actions  # some agents unknown (DynamicsConfig.partial_action)
        ext = (actions_BT - self.cfg.num_actions - 1).clamp_min(0)
        out, stride, pstride = 0, 1, 1
        for f, emb in zip(self.cfg.action_factors, self.agent_act_emb):
            part = torch.where(partial, (ext // pstride) % (f + 1), (actions_BT // stride) % f)
            part = torch.where(null, torch.full_like(actions_BT, f), part)
            out = out + emb(part)
            stride, pstride = stride * f, pstride * (f + 1)
        return out

    def embed_frames(self, tokens_BTN: torch.Tensor, actions_BT: torch.Tensor, stream: int,
                     prev_BTN: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B,T,N), actions (B,T) -> (B, T*S, D) with the action token first in every frame.

        prev_BTN: with `prev_frame_prior`, the previous frame's tokens (MASK where there is none): masked
        positions embed them plus the mask flag."""
        B, T, N = tokens_BTN.shape
        if prev_BTN is not None and self.cfg.prev_frame_prior:
            masked = tokens_BTN == self.cfg.mask_id
            tok = self.embed_tokens(torch.where(masked, prev_BTN, tokens_BTN)) + masked.unsqueeze(-1) * self.mask_flag
        else:
            tok = self.embed_tokens(tokens_BTN)
        x = torch.cat([self.embed_actions(actions_BT).unsqueeze(2), tok], 2)  # (B,T,S,D)
        x = x + self.pos_emb + self.stream_emb[stream]
        return x.reshape(B, T * (N + 1), -1)

    # ---------------------------------------------------------------- training (two streams)
    def _train_mask(self, T: int, device) -> list[TwoStreamMask]:
        """The training pass's attention pattern of each layer (one shared pattern unless `local_radius`)."""
        key = (T, str(device))
        if key not in self._mask_cache:
            local = local_masks(self.cfg, device)
            if local is None:
                self._mask_cache[key] = [TwoStreamMask.build(T, self.cfg.frame_len, device)] * self.cfg.n_layers
            else:
                self._mask_cache[key] = [TwoStreamMask.build(T, self.cfg.frame_len, device, lm) for lm in local]
        return self._mask_cache[key]

    def _cache_patterns(self, slots: int, decoding: bool, device) -> list[torch.Tensor] | None:
        """With `local_radius`: per layer, what a frame in the cache's scratch slot reads of the `slots` frame slots
        (S, slots * S), made once per shape (the play loop asks for it every MaskGIT pass)."""
        if not self.cfg.local_radius:
            return None
        key = ("cache", slots, decoding, str(device))
        if key not in self._mask_cache:
            self._mask_cache[key] = [local_rows(reads, own, slots - 1, decoding)
                                     for reads, own in local_masks(self.cfg, device)]
        return self._mask_cache[key]

    def head_input(self, frame_BSD: torch.Tensor) -> torch.Tensor:
        """A clean frame's final hidden states (B, S, D) -> what the reward/termination/pose heads read (B, D): its
        action token, which has seen the whole frame, or with `local_radius` (where it reads only actions) the
        action token plus the mean of the frame's cells."""
        if self.cfg.local_radius:
            return frame_BSD[:, 0] + frame_BSD[:, 1:].mean(1)
        return frame_BSD[:, 0]

    def memory_kv(self, memory, actions_Q: torch.Tensor):
        """MemoryInput + the action into each query frame (Q,) -> per-layer keys/values, or None when the model
        or the caller has no memory."""
        if memory is None or not self.cfg.has_memory:
            return None
        # memory's action table knows joint actions and NULL: a partly known action reads as NULL there
        mkv = self.memory.kv(memory, self.token_tables()[0], self.pos_emb[1:], actions_Q.clamp(max=self.cfg.null_action))
        if self.cfg.copy_head and memory.retrieved is not None:  # what the copy head may point at
            Q, M, N = memory.retrieved.shape
            emb = self.embed_tokens(memory.retrieved) + self.pos_emb[1:] + self.memory.rel_emb(memory.rel)[:, :, None]
            valid = (memory.rel != REL_EMPTY)[:, :, None].expand(Q, M, N).reshape(Q, M * N)
            mkv.copy = (self.copy_head.keys(emb.reshape(Q, M * N, -1)), memory.retrieved.reshape(Q, M * N), valid)
        return mkv

    def prev_bonus(self, h_BND: torch.Tensor, logits_BNV: torch.Tensor, prev_BN: torch.Tensor | None) -> torch.Tensor:
        """With `prev_frame_prior`: add the learned gate's bonus to the logit of the previous frame's token
        (positions without a previous frame, MASK, get none)."""
        if prev_BN is None or not self.cfg.prev_frame_prior:
            return logits_BNV
        V = logits_BNV.shape[-1]
        bonus = self.prev_gate(h_BND) * (prev_BN < V).unsqueeze(-1)  # (B,N,1)
        return logits_BNV.scatter_add(-1, prev_BN.clamp(max=V - 1).unsqueeze(-1), bonus.to(logits_BNV.dtype))

    def _copy(self, h_QND: torch.Tensor, logits_QNV: torch.Tensor, mkv) -> torch.Tensor:
        """Token logits, mixed with the copy head's pointer distribution when it has memory to point at."""
        if mkv is None or mkv.copy is None:
            return logits_QNV
        return self.copy_head(h_QND, logits_QNV, *mkv.copy)

    def forward(self, clean_BTN, masked_BTN, actions_BT, memory=None, return_pose: bool = False, query_actions_BT=None):
        """Two-stream training pass.

        clean_BTN: context tokens (possibly corrupted); masked_BTN: same frames with MASK ids where
        the model must predict; actions_BT: action into each frame (NULL for episode starts);
        memory: a MemoryInput with B*T query rows (frame t of clip b = row b*T + t), read by the masked stream.
        query_actions_BT: the actions the masked stream sees instead of actions_BT (some agents hidden: what
        decoding asks of a `partial_actions` world; the clean stream, like the cache in play, keeps the real ones).
        Returns token logits (B,T,N,V) for the masked stream, reward logits (B,T,classes) and termination
        logits (B,T) from the clean stream (+ pose-change logits (B,T,36) with return_pose).
        """
        B, T, N = clean_BTN.shape
        S = N + 1
        prev = None
        if self.cfg.prev_frame_prior:  # frame t's masked positions start from frame t-1 of the (corrupted) context
            prev = torch.cat([torch.full_like(clean_BTN[:, :1], self.cfg.mask_id), clean_BTN[:, :-1]], 1)
        q_act = actions_BT if query_actions_BT is None else query_actions_BT
        x = torch.cat([self.embed_frames(clean_BTN, actions_BT, 0), self.embed_frames(masked_BTN, q_act, 1, prev)], 1)
        pos = torch.arange(T, device=x.device).repeat_interleave(S).repeat(2)[None].expand(B, -1)
        cos, sin = self.rope(pos)
        masks = self._train_mask(T, x.device)
        mkv = self.memory_kv(memory, q_act.reshape(-1))  # the masked stream's query reads memory with its action
        for i, blk in enumerate(self.blocks):
            x = blk(x, cos, sin, masks[i])
            if mkv is not None:  # the masked stream reads memory: one query row per frame
                m = x[:, T * S :].reshape(B * T, S, -1)
                x = torch.cat([x[:, : T * S], (m + self.memory.read(i, m, mkv)).view(B, T * S, -1)], 1)
        x = self.ln_f(x)
        clean, masked = x[:, : T * S].view(B, T, S, -1), x[:, T * S :].view(B, T, S, -1)
        tok_logits = self.token_logits(masked[:, :, 1:])  # (B,T,N,V)
        if prev is not None:
            tok_logits = self.prev_bonus(masked[:, :, 1:].reshape(B * T, N, -1), tok_logits.reshape(B * T, N, -1),
                                         prev.reshape(B * T, N)).view(B, T, N, -1)
        if mkv is not None and mkv.copy is not None:
            tok_logits = self._copy(masked[:, :, 1:].reshape(B * T, N, -1), tok_logits.reshape(B * T, N, -1), mkv).view(
                B, T, N, -1)
        head_in = self.head_input(clean.reshape(B * T, S, -1)).view(B, T, -1)  # (B,T,D)
        out = (tok_logits, self.reward_head(head_in), self.term_head(head_in).squeeze(-1))
        if return_pose:
            out = out + (self.pose_head(head_in) if self.cfg.pose_head else None,)
        return out

    # ---------------------------------------------------------------- inference (KV cache)
    def _frame_pass(self, x_BSD, pos_B, cache: CacheView, mkv=None, masked: bool = True):
        """One frame of B rows through the blocks, attending over the cached window (kv_cache.py); `masked`: the
        frame being decoded (the masked stream) or a finished one being committed (the clean stream)."""
        B, S, _ = x_BSD.shape
        cos, sin = self.rope(pos_B[:, None].expand(B, S))
        local = self._cache_patterns(cache.mask.shape[-1] // S, masked, x_BSD.device)
        for i, blk in enumerate(self.blocks):
            mask = cache.mask if local is None else cache.mask & local[i]
            x_BSD = blk(x_BSD, cos, sin, mask, cache, i)
            if mkv is not None:
                x_BSD = x_BSD + self.memory.read(i, x_BSD, mkv)
        return self.ln_f(x_BSD)

    def predict_logits(self, tokens_BN, actions_B, pos_B, cache: CacheView, mkv=None, prev_BN=None) -> torch.Tensor:
        """Masked-stream pass for the frame being decoded -> token logits (B,N,V). Only the scratch slot is written.

        mkv: `memory_kv(MemoryInput, actions_B)` with B rows, computed once per decoded frame (None = memory off).
        prev_BN: the last committed frame's tokens (MASK rows: none), read with `prev_frame_prior`."""
        x = self.embed_frames(tokens_BN[:, None], actions_B[:, None], 1, None if prev_BN is None else prev_BN[:, None])
        h = self._frame_pass(x, pos_B, cache, mkv)
        return self._copy(h[:, 1:], self.prev_bonus(h[:, 1:], self.token_logits(h[:, 1:]), prev_BN), mkv)

    def commit(self, tokens_BN, actions_B, pos_B, cache: CacheView):
        """Clean-stream pass of a finished frame: its keys/values are left in the cache's scratch slot (the caller
        stores them into the ring, `KVCache.store`). -> FrameHeads of the frame."""
        x = self.embed_frames(tokens_BN[:, None], actions_B[:, None], 0)
        head_in = self.head_input(self._frame_pass(x, pos_B, cache, masked=False))  # (B,D)
        reward, term = self.reward_head(head_in), self.term_head(head_in).squeeze(-1)
        if self.cfg.reward_logit_shift is not None:
            reward = reward + torch.tensor(self.cfg.reward_logit_shift, device=reward.device, dtype=reward.dtype)
        return FrameHeads(reward, term + self.cfg.term_logit_shift, self.pose_head(head_in) if self.cfg.pose_head else None,
                          class_values(self.cfg.reward_values))

    # ---------------------------------------------------------------- no-cache reference (bench, tests)
    def _context_pass(self, tokens_BTN, actions_BT, query_BN=None, query_actions_B=None):
        """Clean frames (+ an optional masked query frame) in one frame-causal pass -> hidden states (B, L, D)."""
        B, T, N = tokens_BTN.shape
        S = N + 1
        x = self.embed_frames(tokens_BTN, actions_BT, 0)
        if query_BN is not None:
            x = torch.cat([x, self.embed_frames(query_BN[:, None], query_actions_B[:, None], 1, tokens_BTN[:, -1:])], 1)
        f = torch.arange(x.shape[1] // S, device=x.device).repeat_interleave(S)
        mask = (f[:, None] >= f[None, :])[None, None]
        cos, sin = self.rope(f[None].expand(B, -1))
        local = local_masks(self.cfg, x.device)
        for i, blk in enumerate(self.blocks):
            m = mask
            if local is not None:
                reads, own = local[i]
                n = x.shape[1] // S
                pattern = reads.repeat(n, n)
                if query_BN is not None:  # the query frame reads its own frame as a frame being decoded
                    pattern[-S:] = local_rows(reads, own, n - 1, decoding=True)
                m = mask & pattern[None, None]
            x = blk(x, cos, sin, m)
        return self.ln_f(x)

    def full_pass_logits(self, ctx_BTN, ctx_actions_BT, query_BN, query_actions_B) -> torch.Tensor:
        """No-cache inference: clean context frames + the masked query frame in one pass -> (B,N,V).

        The same function as committing the context and then `predict_logits`; used to measure what the KV
        cache saves and as the cache's independent reference in tests."""
        T, S = ctx_BTN.shape[1], self.cfg.frame_len
        h = self._context_pass(ctx_BTN, ctx_actions_BT, query_BN, query_actions_B)[:, T * S + 1 :]
        return self.prev_bonus(h, self.token_logits(h), ctx_BTN[:, -1])

    def full_pass_heads(self, ctx_BTN, ctx_actions_BT, frame_BN, frame_actions_B):
        """No-cache reward/termination of a decoded frame: one clean pass over context + the frame.

        What a world without a KV cache must run after decoding to emit (reward, done). -> (reward (B,classes), term (B,))."""
        toks = torch.cat([ctx_BTN, frame_BN[:, None]], 1)
        acts = torch.cat([ctx_actions_BT, frame_actions_B[:, None]], 1)
        S = self.cfg.frame_len
        h = self.head_input(self._context_pass(toks, acts)[:, ctx_BTN.shape[1] * S:])  # the new frame's heads' input
        shift = torch.tensor(self.cfg.reward_logit_shift or [0.0] * self.cfg.reward_classes, device=h.device)
        return self.reward_head(h) + shift, self.term_head(h).squeeze(-1) + self.cfg.term_logit_shift

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


@dataclass
class FrameHeads:
    """What the world emits with a committed frame: reward class logits (B,classes), termination logits (B,),
    pose-change logits (B,36) or None, and what each reward class is worth."""

    reward: torch.Tensor
    term: torch.Tensor
    pose: torch.Tensor | None = None
    values: tuple[float, ...] = SIGN_VALUES


def cosine_mask_ratio(u):
    """MaskGIT's schedule: the share of tokens still masked at progress u in [0, 1] is cos(pi/2 * u). Training
    draws u ~ U(0, 1) (a tensor); the sampler evaluates it at (k+1)/K after step k (a float, in float64 so that
    the last step masks exactly nothing)."""
    return torch.cos(math.pi / 2 * u) if isinstance(u, torch.Tensor) else math.cos(math.pi / 2 * u)
