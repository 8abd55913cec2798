"""One masked transformer over words, frames, actions and outcomes: the task is chosen by the mask (Stage II).

A clip of an episode is one sequence (MMaDA / UniDisc style: every modality is a token stream of one backbone):

    [ text: L word tokens ] [ step 0: action, G frame tokens, outcome ] ... [ step T-1: ... ]

- text: the episode's instruction (BabyAI mission), word ids padded with PAD (`models/text.py`);
- action: the action that led INTO the step's frame (NULL on an episode's first frame; clips.py's convention);
- frame: the frame's G = grid * grid tokenizer codes;
- outcome: reward sign (3) x terminated (2) of the transition into the frame, one token of 6 classes.

Every stream has its own embedding table with one extra id, MASK, and its own output head; attention is
bidirectional over the whole clip (which tokens are hidden decides what is predicted; see causal clips below), padded
steps of clips shorter than T are keys nobody attends to. Position is learned: the word index for text, the step
index plus the cell inside the step (action, frame cells, outcome) for everything else.

A hidden frame token whose cell is visible in the step before carries that token's embedding, and its logits a
learned bonus for it: decoding starts from "nothing changes" (the dynamics' prev_frame_prior), so a briefly
trained world copies the last frame instead of drawing noise.

With `action_delta` each action token also carries what changed into its step: the mean, over the cells visible in
both frames whose token differs, of a learned code of (token before, token after). Inverse dynamics then reads the
move from one input, as a pixel IDM reads the frame difference, instead of from a cell-by-cell comparison attention
must first learn to make; cells still hidden count as unchanged, so a hidden frame tells nothing.

Attention is bidirectional, except in clips flagged causal (the dynamics task of a `causal_dynamics` model): there
a step attends to the text and the steps up to itself, and the text to itself only, so a frame hidden at step t
cannot read the frames after t and every later frame of the clip can be predicted at once.

Hiding the frames after visible ones is dynamics; hiding an action between two visible frames is inverse dynamics; hiding the
next action and everything after it is the policy; hiding the text is describing; hiding the first frame given
the text is a world from words (train/unified_train.py samples these as a mixture; models/unified_decode.py
decodes whatever is hidden). Models return logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class UnifiedConfig:
    vocab_size: int = 1000
    """Frame codes (the tokenizer's); MASK = vocab_size."""
    num_actions: int = 7
    """Actions; NULL (no action led into an episode's first frame) = num_actions, MASK = num_actions + 1."""
    text_vocab: int = 32
    """Words, PAD = 0 and UNK = 1 included (models/text.py); MASK = text_vocab."""
    text_len: int = 12
    grid: int = 8
    window: int = 4
    """Steps per clip (frames the model sees at once)."""
    d_model: int = 192
    n_layers: int = 4
    n_heads: int = 6
    mlp_ratio: int = 4
    outcome_classes: int = 6
    """Reward sign (negative, zero, positive) x terminated (no, yes)."""
    causal_dynamics: bool = False
    """Dynamics clips attend block-causally (a step sees the text and the steps up to itself), so every later frame
    of a clip is a target in one pass (diffusion forcing, Chen et al. 2024); the world then decodes its next frame
    the same way. False: a world trained with the last frame as the only target, bidirectionally."""
    action_delta: bool = False
    """Each action token adds the mean code of the cells that changed into its step (see the module docstring).
    False: worlds trained before it, whose action tokens carry the action only."""

    @property
    def tokens_per_frame(self) -> int:
        return self.grid * self.grid

    @property
    def step_len(self) -> int:
        return self.tokens_per_frame + 2

    @property
    def null_action(self) -> int:
        return self.num_actions

    @property
    def act_mask(self) -> int:
        return self.num_actions + 1

    @property
    def frame_mask(self) -> int:
        return self.vocab_size

    @property
    def text_mask(self) -> int:
        return self.text_vocab

    @property
    def out_mask(self) -> int:
        return self.outcome_classes

    @property
    def mask_ids(self) -> dict[str, int]:
        """Each stream's MASK id (the streams of `Unified.forward`'s logits)."""
        return {"text": self.text_mask, "act": self.act_mask, "frame": self.frame_mask, "out": self.out_mask}


def outcome_class(reward: torch.Tensor, terminated: torch.Tensor) -> torch.Tensor:
    """Reward (any float) and terminated (bool/0-1) -> class in 0..5: sign class * 2 + terminated."""
    return ((torch.sign(reward) + 1).long() * 2 + terminated.long()).clamp(0, 5)


def attention_mask(L: int, T: int, step_len: int, steps_ok_BT: torch.Tensor | None, causal_B: torch.Tensor | None,
                   device) -> torch.Tensor | None:
    """-> (B,1,1,S) or (B,1,S,S) bool, True where a query may attend a key (None: everything everywhere).

    Keys of padded steps are off for every query; in causal clips a step's queries see the text and the steps up to
    their own, the text's the text only."""
    pad = steps_ok_BT is not None and not bool(steps_ok_BT.all())
    causal = causal_B is not None and bool(causal_B.any())
    if not pad and not causal:
        return None
    block = torch.cat([torch.full((L,), -1, device=device),
                       torch.arange(T, device=device).repeat_interleave(step_len)])  # (S,) text -1, step t
    mask = torch.ones(1, 1, 1, block.numel(), dtype=torch.bool, device=device)
    if pad:
        B = steps_ok_BT.shape[0]
        mask = torch.cat([torch.ones(B, L, dtype=torch.bool, device=device),
                          steps_ok_BT.bool()[:, :, None].expand(B, T, step_len).flatten(1)], dim=1)[:, None, None, :]
    if causal:
        order = block[None, :] <= block[:, None]  # (S,S) query row, key column
        mask = mask & (order[None] | ~causal_B.bool()[:, None, None])[:, None]
    return mask


class Block(nn.Module):
    def __init__(self, cfg: UnifiedConfig):
        super().__init__()
        d = cfg.d_model
        self.nh = cfg.n_heads
        self.n1, self.n2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, cfg.mlp_ratio * d), nn.GELU(), nn.Linear(cfg.mlp_ratio * d, d))

    def forward(self, x_BSD: torch.Tensor, key_ok_B11S: torch.Tensor | None) -> torch.Tensor:
        B, S, D = x_BSD.shape
        q, k, v = self.qkv(self.n1(x_BSD)).view(B, S, 3, self.nh, D // self.nh).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=key_ok_B11S)  # (B, H, S, hd)
        x_BSD = x_BSD + self.proj(a.transpose(1, 2).reshape(B, S, D))
        return x_BSD + self.mlp(self.n2(x_BSD))


class Unified(nn.Module):
    def __init__(self, cfg: UnifiedConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.emb_text = nn.Embedding(cfg.text_vocab + 1, d)
        self.emb_act = nn.Embedding(cfg.num_actions + 2, d)
        self.emb_frame = nn.Embedding(cfg.vocab_size + 1, d)
        self.emb_out = nn.Embedding(cfg.outcome_classes + 1, d)
        self.emb_prev = nn.Embedding(cfg.vocab_size + 1, d)  # the token the cell had one step before (MASK: unknown)
        self.copy_bonus = nn.Parameter(torch.tensor(2.0))
        if cfg.action_delta:  # (token before, token after) of a changed cell -> its code; zero at start
            self.delta = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, d))
            nn.init.zeros_(self.delta[2].weight)
            nn.init.zeros_(self.delta[2].bias)
        self.pos_text = nn.Parameter(torch.randn(cfg.text_len, d) * 0.02)
        self.pos_step = nn.Parameter(torch.randn(cfg.window, d) * 0.02)
        self.pos_cell = nn.Parameter(torch.randn(cfg.step_len, d) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(d)
        self.head_text = nn.Linear(d, cfg.text_vocab)
        self.head_act = nn.Linear(d, cfg.num_actions + 1)  # NULL included: the first frame says it has no action
        self.head_frame = nn.Linear(d, cfg.vocab_size)
        self.head_out = nn.Linear(d, cfg.outcome_classes)

    def change_code(self, frame_BTG: torch.Tensor, seen_BTGD: torch.Tensor) -> torch.Tensor:
        """-> (B,T,D): per step, the mean code over cells visible in it and the step before whose token differs
        (zero where none did: the first step, a hidden frame, a move that changed nothing). Only the changed cells
        (a few per step in a game) go through the code's MLP."""
        mask = self.cfg.frame_mask
        B, T, G, D = seen_BTGD.shape
        changed = (frame_BTG[:, 1:] != mask) & (frame_BTG[:, :-1] != mask) & (frame_BTG[:, 1:] != frame_BTG[:, :-1])
        b, t, g = changed.nonzero(as_tuple=True)  # (N,) each: step t + 1 changed in cell g
        code = self.delta(torch.cat([seen_BTGD[b, t, g], seen_BTGD[b, t + 1, g]], dim=-1))  # (N,D)
        row = b * T + t + 1
        total = seen_BTGD.new_zeros(B * T, D).index_add(0, row, code)
        count = seen_BTGD.new_zeros(B * T).index_add(0, row, torch.ones_like(row, dtype=seen_BTGD.dtype))
        return (total / count.clamp(min=1.0)[:, None]).view(B, T, D)

    def forward(self, text_BL: torch.Tensor, act_BT: torch.Tensor, frame_BTG: torch.Tensor, out_BT: torch.Tensor,
                steps_ok_BT: torch.Tensor | None = None, causal_B: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Ids (MASK where hidden) -> logits {"text" (B,L,Vt), "act" (B,T,A+1), "frame" (B,T,G,V), "out" (B,T,6)}.

        steps_ok_BT: False for padded steps (a clip shorter than T); their tokens are never attended to.
        causal_B: True for clips that attend block-causally (None: none do)."""
        cfg = self.cfg
        B, T, G = frame_BTG.shape
        L = text_BL.shape[1]
        if T > cfg.window or L != cfg.text_len or G != cfg.tokens_per_frame:
            raise ValueError(f"clip of {T} steps x {G} tokens, text {L}; the model takes <= {cfg.window} x "
                             f"{cfg.tokens_per_frame}, text {cfg.text_len}")
        text = self.emb_text(text_BL) + self.pos_text  # (B,L,D)
        hidden = frame_BTG == cfg.frame_mask
        prev = torch.cat([torch.full_like(frame_BTG[:, :1], cfg.frame_mask), frame_BTG[:, :-1]], dim=1)
        prev = torch.where(hidden, prev, torch.full_like(prev, cfg.frame_mask))  # a prior only where hidden
        seen = self.emb_frame(frame_BTG)  # (B,T,G,D)
        frames = seen + self.emb_prev(prev)
        acts = self.emb_act(act_BT)
        if cfg.action_delta:
            acts = acts + self.change_code(frame_BTG, seen)
        step = torch.cat([acts[:, :, None], frames, self.emb_out(out_BT)[:, :, None]], dim=2)  # (B,T,G+2,D)
        step = step + self.pos_step[:T, None] + self.pos_cell
        x = torch.cat([text, step.flatten(1, 2)], dim=1)  # (B, L + T*(G+2), D)
        key_ok = attention_mask(L, T, cfg.step_len, steps_ok_BT, causal_B, x.device)
        for blk in self.blocks:
            x = blk(x, key_ok)
        x = self.norm(x)
        xt, xs = x[:, :L], x[:, L:].view(B, T, cfg.step_len, -1)
        frame_logits = self.head_frame(xs[:, :, 1:1 + G])  # (B,T,G,V)
        known = (prev != cfg.frame_mask).to(frame_logits.dtype)
        frame_logits = frame_logits.scatter_add(-1, prev.clamp(max=cfg.vocab_size - 1)[..., None],
                                                (known * self.copy_bonus.to(frame_logits.dtype))[..., None])
        return {"text": self.head_text(xt), "act": self.head_act(xs[:, :, 0]),
                "frame": frame_logits, "out": self.head_out(xs[:, :, -1])}
