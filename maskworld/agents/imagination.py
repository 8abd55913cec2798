"""Imagined rollouts: B sessions started from real frames, driven by a policy, one `step_many` per step.

Design choices (issue 8; Dreamer's "learning in imagination", here with a discrete pixel world):
- Starts are real frames (F): each imagined trajectory begins from a frame the agent actually saw, or
  from a short real context (frames + the actions into them), so imagination stays near real states.
- Single-frame starts are opened in one batched pass (`start_sessions`: one tokenizer encode, one
  clean-stream commit, one render for all B) instead of B one-frame `world.session` calls; the sessions
  are the ones `world.session(prompt=frame)` would open (tested).
- The world is sampled, not differentiated: the policy gets a score-function (REINFORCE) gradient, as
  DreamerV3 does for discrete actions.
- Episodes end inside imagination: `continues[t]` is the termination head's probability that the episode
  goes on (0 / 1 with heads="argmax"); later steps are still computed (the batch stays rectangular) but
  carry the weight `alive` = the product of the continues before them.
- Reward and continue are expectations under the heads by default (see `imagine`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Rollout:
    obs: np.ndarray
    """(H+1, B, S, S, 3) uint8: the start frame, then every imagined frame."""
    actions: torch.Tensor
    """(H, B) long."""
    rewards: torch.Tensor
    """(H, B) float: the reward head's expected sign in [-1, 1] (or its most likely class -1/0/+1)."""
    continues: torch.Tensor
    """(H, B) float: the probability the episode goes on after the step (or 0/1)."""

    @property
    def alive(self) -> torch.Tensor:
        """(H, B): the probability the episode had not ended before step t (the weight of step t)."""
        c = torch.cat([torch.ones_like(self.continues[:1]), self.continues[:-1]], 0)
        return torch.cumprod(c, 0)


@torch.no_grad()
def _start_batch(world, frames_BSS3: np.ndarray):
    """Tokenize B real frames and commit them (NULL action, frame 0) in one pass.
    -> (batched KVCache, tokens (B,N), rendered frames (B,S,S,3) uint8)."""
    from maskworld.world.world import as_uint8_frame

    w, dev = world, world.device
    dyn = w.dynamics
    size, g = w.meta.size, dyn.cfg.grid
    imgs = np.stack([as_uint8_frame(f, size) for f in frames_BSS3])  # (B,S,S,3)
    toks_BN = w.tokenizer.tokenize_uint8(torch.from_numpy(imgs).to(dev)).flatten(1)
    B = toks_BN.shape[0]
    null = torch.full((B,), dyn.cfg.null_action, device=dev)
    cache, _, _ = dyn.commit(toks_BN, null, torch.zeros(B, dtype=torch.long, device=dev), None)
    return cache, toks_BN, w.tokenizer.render_uint8(toks_BN.view(B, g, g)).cpu().numpy()


@torch.no_grad()
def start_sessions(world, frames_BSS3: np.ndarray, seeds) -> list:
    """B sessions, each started from one real frame (no action into it), in one batched pass.

    Same result as `[world.session(prompt=f, seed=s) for f, s in zip(frames, seeds)]`: tokenize, commit
    the tokens with the NULL action at frame 0, render them as the session's first frame.
    """
    from maskworld.world.session import Session, _split_cache

    cache, toks_BN, rendered = _start_batch(world, frames_BSS3)
    B, g = toks_BN.shape[0], world.dynamics.cfg.grid
    tokens = toks_BN.view(B, g, g).cpu().numpy().astype(np.uint16)
    sessions = []
    for b, c in enumerate(_split_cache(cache, [1] * B)):
        s = Session(world, int(seeds[b]))
        s.cache, s.pos, s.tokens, s.frame = c, 1, tokens[b], rendered[b]
        sessions.append(s)
    return sessions


HEADS = ("expected", "argmax")
CACHE_CHUNK_BYTES = 8 << 20


def cache_chunk(dyn_cfg, max_bytes: int | None = None) -> int:
    """Sessions per batched forward pass such that one layer's cached keys stay under `max_bytes` (8 MiB).

    Every pass concatenates the cache with the new frame's keys/values (`Attention.forward`): at batch 64 a
    small world's cache is 64 MiB per tensor, and on CPU each such fresh allocation is a new mmap whose pages
    fault in on first touch; that made the batch-64 step of the shipped world slower than 64 single steps
    (torch.cat 46% of the step, measured with `scripts/bench_dream.py --profile`). Chunks of <= 8 MiB come
    back from the allocator's free lists instead, and their matmuls still have >= 8 x 65 rows.
    """
    per_session = dyn_cfg.n_heads * (dyn_cfg.window - 1) * dyn_cfg.frame_len * (dyn_cfg.d_model // dyn_cfg.n_heads) * 4
    return max(1, (max_bytes or CACHE_CHUNK_BYTES) // max(1, per_session))


@torch.no_grad()
def imagine(world, act, starts: np.ndarray, horizon: int, seeds, start_actions=None, heads: str = "expected",
            sampler=None) -> Rollout:
    """Roll `horizon` steps from each start: one batched MaskGIT decode per step (per chunk, see `cache_chunk`).

    act: uint8 frames (B,S,S,3) -> actions (B,) (ints or a tensor); starts: (B,S,S,3) frames, or
    (B,T,S,S,3) real contexts with `start_actions` (B,T) leading into each frame (None / -1 for unknown).
    heads: "expected" = reward p(+1) - p(-1) and continue 1 - p(end) from the heads' probabilities
    (DreamerV3 weighs imagined steps by the predicted continue probability); "argmax" = the sign class and
    the thresholded end, what `world.step_many` / Dream-v0 return. The expectation keeps a partial signal
    where the argmax loses it: a rare event the world imagines imperfectly (MiniGrid's goal entry, 118
    times in 30k transitions) often gets p(+1) well below 1/2, which argmax rounds to 0.

    The batch keeps its KV caches from start to end (no per-step stacking and splitting of per-session
    caches; one cache per chunk of `cache_chunk` sessions), and seeds[b] seeds rollout b's sampling
    generator, as a session with that seed would.
    sampler: a SamplerConfig to decode with instead of the world's (e.g. fewer MaskGIT steps).
    """
    from maskworld.models.sampler import decode_frame
    from maskworld.world.session import _stack_caches

    if heads not in HEADS:
        raise ValueError(f"heads must be one of {HEADS}, not {heads!r}")
    starts = np.asarray(starts)
    B, dyn, dev = len(starts), world.dynamics, world.device
    if starts.ndim == 4 and start_actions is None:
        caches, firsts = [], []
        step = cache_chunk(dyn.cfg)
        for j in range(0, B, step):
            c, _, f = _start_batch(world, starts[j : j + step])
            caches.append(c)
            firsts.append(f)
        first = np.concatenate(firsts)
        pos = torch.ones(B, dtype=torch.long, device=dev)
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    else:
        sessions = []
        for b in range(B):
            acts = None
            if start_actions is not None:
                acts = [None if a is None or int(a) < 0 else int(a) for a in start_actions[b]]
            sessions.append(world.session(prompt=np.asarray(starts[b]), seed=int(seeds[b]), actions=acts))
        step = cache_chunk(dyn.cfg)
        caches = [_stack_caches([s.cache for s in sessions[j : j + step]]) for j in range(0, B, step)]
        pos = torch.tensor([s.pos for s in sessions], device=dev)
        gens = [s.gen for s in sessions]
        first = np.stack([s.frame for s in sessions])
    g = dyn.cfg.grid
    obs = [first]
    actions, rewards, continues = [], [], []
    for _ in range(horizon):
        a = act(obs[-1])
        a_B = torch.as_tensor(np.asarray(a.tolist() if hasattr(a, "tolist") else a, dtype=np.int64), device=dev)
        toks, r_logits, d_logits = [], [], []
        for k, j in enumerate(range(0, B, step)):  # one batched pass per chunk of sessions (see cache_chunk)
            sl = slice(j, j + step)
            t = decode_frame(dyn, caches[k], a_B[sl], pos[sl], sampler or world.sampler, gens[sl])
            caches[k], r, d = dyn.commit(t, a_B[sl], pos[sl], caches[k])
            toks.append(t)
            r_logits.append(r)
            d_logits.append(d)
        toks, r_logits, d_logits = torch.cat(toks), torch.cat(r_logits), torch.cat(d_logits)
        pos = pos + 1
        obs.append(world.tokenizer.render_uint8(toks.view(B, g, g)).cpu().numpy())
        actions.append(a_B.cpu())
        if heads == "expected":
            p = torch.softmax(r_logits.float(), -1)
            rewards.append((p[:, 2] - p[:, 0]).cpu())
            continues.append(1.0 - torch.sigmoid(d_logits.float()).cpu())
        else:
            rewards.append((r_logits.argmax(-1).float() - 1.0).cpu())
            continues.append((d_logits <= 0).float().cpu())
    return Rollout(np.stack(obs), torch.stack(actions).long(), torch.stack(rewards).float(), torch.stack(continues).float())
