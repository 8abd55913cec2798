"""MaskGIT iterative parallel decoding, kept apart from the model (like a diffusers scheduler).

Design choices (MaskGIT, Chang et al., 2022):
- K steps; after step k, ceil(N * cos(pi/2 * (k+1)/K)) tokens stay masked (cosine schedule), so
  K = 1 decodes every token in one pass.
- Each still-masked token is sampled with `temperature` (0 = argmax); the least confident samples are
  re-masked, with Gumbel noise on the confidence annealed to zero over the steps (MaskGIT's choice
  temperature) so early steps explore and the last ones commit.
- Context frames come from the model's KV cache (`kv_cache.CacheView`) and are never recomputed: every
  step runs only the new frame's S tokens. `decode_nocache` and `decode_autoregressive` exist to measure that choice
  (bench: same network, same K, no cache; and one token per forward pass).
- Every session carries its own `torch.Generator`, so a batch of sessions samples exactly what each
  would sample alone (seeded, resumable).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from maskworld.models.dynamics import Dynamics, cosine_mask_ratio
from maskworld.models.kv_cache import CacheView


@dataclass
class SamplerConfig:
    steps: int = 4
    """K, MaskGIT decoding steps per frame (chosen by `maskworld bench` / eval measurements)."""
    temperature: float = 0.5
    """Token sampling temperature; 0 = greedy."""
    choice_temperature: float = 1.0
    """Gumbel noise scale on confidences at step 0, annealed linearly to 0."""
    order: str = "maskgit"
    """"maskgit" (K parallel steps) or "autoregressive" (one token per pass, raster order: the baseline)."""
    guidance: float = 0.0
    """Classifier-free guidance by the action (Ho & Salimans, 2022; Muse guides masked decoding by text the same
    way): each step samples from c + w (c - u), c the log-probabilities with the action and u with it hidden (NULL),
    so what the action changes weighs more than the world's prior. 0 = none (one pass a step); w > 0 costs a second
    pass a step and needs a world trained with `--action-dropout`, which teaches it the frame without the action."""
    free_temperature: float | None = None
    """Worlds of several agents decoded avatar by avatar (world/factorised.py): the cells no avatar's
    neighbourhood covers are drawn again, given every avatar's cells just drawn (no action known), at this
    temperature (None = no second stage). What happens there is the world's own chance (a coin comes back
    somewhere when one is taken), and a temperature below 1 draws rare events rarer still: at 0.5 the shipped
    Coins world loses its coins under a coin-seeking policy (docs/results.md). 0 when `temperature` is 0."""


def _gumbel(shape, gens: list[torch.Generator], device) -> torch.Tensor:
    """Gumbel noise (B, *shape), row b drawn from gens[b]."""
    return -torch.log(-torch.log(_uniform(shape, gens, device).clamp_(1e-9, 1 - 1e-9)))


def _uniform(shape, gens: list[torch.Generator], device) -> torch.Tensor:
    """Uniform noise (B, *shape), row b drawn from gens[b] (so batching never changes a session's draws)."""
    return torch.stack([torch.rand(shape, generator=g) for g in gens]).to(device)


def _sample(logits_BNV: torch.Tensor, temperature: float, gens) -> tuple[torch.Tensor, torch.Tensor]:
    """-> sampled ids (B,N), their log-probabilities (B,N).

    Inverse-CDF sampling: one uniform per token instead of one Gumbel per (token, code) — 1000x fewer
    random numbers, which dominated batched steps when drawn per session (measured in `play`).
    """
    B, N, V = logits_BNV.shape
    u = _uniform((N,), gens, logits_BNV.device) if temperature > 0 else None  # (B,N), every row from its own gen
    ids, logp_ids = [], []
    # Rows in chunks of ~256k logits: each chunk's softmax/cumsum passes stay in cache (2x faster at batch 64 on
    # CPU than whole-batch passes, which are memory-bound); rows are independent, so results are identical.
    step = max(1, (1 << 18) // max(1, N * V))
    for b in range(0, B, step):
        logp = torch.log_softmax(logits_BNV[b : b + step].float(), -1)
        if u is None:
            i = logp.argmax(-1)
        else:
            cdf = torch.softmax(logp / temperature, -1).cumsum(-1)  # (b,N,V)
            i = torch.searchsorted(cdf, (u[b : b + step] * cdf[..., -1]).unsqueeze(-1)).squeeze(-1)  # u scaled: cdf may end at 1-eps
            i = i.clamp_(max=V - 1)
        ids.append(i)
        logp_ids.append(logp.gather(-1, i[..., None]).squeeze(-1))
    return (ids[0], logp_ids[0]) if len(ids) == 1 else (torch.cat(ids), torch.cat(logp_ids))


def num_masked_after(step: int, steps: int, n: int) -> int:
    """Tokens still masked after `step` (0-based) of `steps`: cosine schedule, 0 after the last."""
    return int(math.floor(n * cosine_mask_ratio((step + 1) / steps)))


def maskgit_decode(predict, B: int, N: int, mask_id: int, cfg: SamplerConfig, gens, device) -> torch.Tensor:
    """Generic MaskGIT loop. predict(tokens (B,N)) -> logits (B,N,V). Returns tokens (B,N)."""
    tokens = torch.full((B, N), mask_id, dtype=torch.long, device=device)
    return maskgit_fill(predict, tokens, torch.ones(B, N, dtype=torch.bool, device=device), mask_id, cfg, gens)


def maskgit_fill(predict, tokens_BN: torch.Tensor, unknown_BN: torch.Tensor, mask_id: int, cfg: SamplerConfig,
                 gens) -> torch.Tensor:
    """MaskGIT over the `unknown` tokens of a frame whose other tokens are given (inpainting, as MaskGIT edits
    images): each row's unknown tokens follow the cosine schedule of their own count, the given ones are read
    by every pass and kept. All unknown is `maskgit_decode`. Returns tokens (B,N)."""
    B, N = tokens_BN.shape
    unknown = unknown_BN.clone()
    count = unknown.sum(-1)  # (B,)
    tokens = torch.where(unknown, torch.full_like(tokens_BN, mask_id), tokens_BN)
    for k in range(cfg.steps):
        logits = predict(tokens)
        ids, logp = _sample(logits, cfg.temperature, gens)
        keep_B = torch.floor(count.double() * cosine_mask_ratio((k + 1) / cfg.steps)).long()  # still masked after k
        ids = torch.where(unknown, ids, tokens)
        most = int(keep_B.max()) if B else 0
        if most == 0:
            return ids
        conf = logp
        anneal = cfg.choice_temperature * (1.0 - (k + 1) / cfg.steps)
        if anneal > 0:
            conf = conf + anneal * _gumbel((N,), gens, tokens.device)
        conf = torch.where(unknown, conf, torch.full_like(conf, float("inf")))
        # Each row's keep_B[b] least confident unknown tokens are masked again (topk is sorted: its first ones).
        remask_idx = conf.topk(most, dim=-1, largest=False).indices  # (B, most)
        chosen = torch.arange(most, device=tokens.device)[None, :] < keep_B[:, None]
        remask = torch.zeros_like(unknown).scatter_(1, remask_idx, chosen)
        tokens = torch.where(remask, torch.full_like(ids, mask_id), ids)
        unknown = remask
    return tokens


@torch.no_grad()
def decode_frame(model: Dynamics, cache: CacheView, actions_B, pos_B, cfg: SamplerConfig, gens, memory=None,
                 prev_BN=None, given=None) -> torch.Tensor:
    """Next frame's tokens (B, N) with the KV cache: each step runs only the new frame.

    memory: a MemoryInput (B rows) or None; its keys/values are computed once and read by every step.
    prev_BN: the last frame's tokens (MASK rows where there is none): where masked tokens start from.
    given: (tokens (B,N), unknown (B,N) bool): decode only the unknown tokens, reading the others (`maskgit_fill`,
    MaskGIT whatever the order)."""
    if cfg.order == "autoregressive" and given is None:
        return decode_autoregressive(model, cache, actions_B, pos_B, cfg.temperature, gens, prev_BN)
    if cfg.order != "maskgit":
        raise ValueError(f"unknown sampler order {cfg.order!r}; use 'maskgit' or 'autoregressive'")
    B, N = actions_B.shape[0], model.cfg.tokens_per_frame
    mkv = model.memory_kv(memory, actions_B)

    def predict(tokens_BN):
        return model.predict_logits(tokens_BN, actions_B, pos_B, cache, mkv, prev_BN)

    if cfg.guidance:  # both passes write the cache's scratch slot before reading it, so each reads only its own frame
        null_B = torch.full_like(actions_B, model.cfg.null_action)
        mkv_null = model.memory_kv(memory, null_B)
        predict = guided(predict, lambda t: model.predict_logits(t, null_B, pos_B, cache, mkv_null, prev_BN), cfg.guidance)
    if given is not None:
        return maskgit_fill(predict, *given, model.cfg.mask_id, cfg, gens)
    return maskgit_decode(predict, B, N, model.cfg.mask_id, cfg, gens, actions_B.device)


def guided(with_action, without_action, w: float):
    """Classifier-free guidance of a predict function (SamplerConfig.guidance): tokens -> c + w (c - u) over
    log-probabilities, c with the action and u without; w = 0 is `with_action` itself (one pass)."""
    if w == 0:
        return with_action

    def predict(tokens_BN):
        c = with_action(tokens_BN).float().log_softmax(-1)
        return c + w * (c - without_action(tokens_BN).float().log_softmax(-1))

    return predict


@torch.no_grad()
def decode_nocache(model: Dynamics, ctx_tokens_BTN, ctx_actions_BT, actions_B, cfg: SamplerConfig, gens):
    """Same decoding, but every step recomputes the whole context (no KV cache) — the bench baseline."""
    B, N = actions_B.shape[0], model.cfg.tokens_per_frame
    null_B = torch.full_like(actions_B, model.cfg.null_action)
    predict = guided(lambda t: model.full_pass_logits(ctx_tokens_BTN, ctx_actions_BT, t, actions_B),
                     lambda t: model.full_pass_logits(ctx_tokens_BTN, ctx_actions_BT, t, null_B), cfg.guidance)
    return maskgit_decode(predict, B, N, model.cfg.mask_id, cfg, gens, actions_B.device)


@torch.no_grad()
def decode_autoregressive(model: Dynamics, cache: CacheView, actions_B, pos_B, temperature: float, gens, prev_BN=None):
    """One token per forward pass in raster order (the autoregressive baseline of the bench)."""
    B, N = actions_B.shape[0], model.cfg.tokens_per_frame
    tokens = torch.full((B, N), model.cfg.mask_id, dtype=torch.long, device=actions_B.device)
    for i in range(N):
        logits = model.predict_logits(tokens, actions_B, pos_B, cache, prev_BN=prev_BN)[:, i : i + 1]
        ids, _ = _sample(logits, temperature, gens)
        tokens[:, i] = ids[:, 0]
    return tokens
