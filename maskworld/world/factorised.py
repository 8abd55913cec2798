"""Decoding a world of several agents one avatar's neighbourhood at a time (a factorised rollout).

A world trained on joint actions reads every avatar's action everywhere: its prediction at one avatar's cells
moves a little when another avatar's action changes, and a MaskGIT draw turns those small moves into other tokens
(on the shipped Coins world one step from real frames, ~10 % of the other avatars' cells are drawn otherwise when
one avatar's action changes). Shared play needs the opposite: each person's avatar answers to them alone.

So the next frame is decoded as several variants in one batch, each the same session with another action, and
composed cell by cell (object-factored dynamics in the spirit of C-SWM, Kipf et al. 2020, here at decoding
time, without retraining):
- the locator (models/locator.py) finds each avatar in the frame shown last and marks its neighbourhood;
- a cell that no avatar's neighbourhood covers is taken from the variant in which no avatar's action is known
  (what the world does on its own: coins appear, the room stays);
- a cell covered by the neighbourhoods of a set of avatars is taken from the variant in which exactly those
  avatars' actions are given; so avatar k's action reaches only cells near avatar k, and where two avatars meet
  both actions act together (the game's own interaction).
- with `SamplerConfig.free_temperature` set, the cells no avatar covers are then drawn again (MaskGIT inpainting,
  `maskgit_fill`) given the avatars' cells just drawn, every action unknown as in the first stage: the first
  stage cannot know that an avatar took a coin, so it cannot put one back elsewhere, and the world's coins drain
  away; the second sees it. It touches no avatar's cells, so each avatar's neighbourhood still answers to its own
  controller alone.
"Unknown" is each agent's NULL in a world trained with `--agent-dropout` (DynamicsConfig.partial_actions: it
learned to predict with some agents' actions hidden). A world that always saw every action is asked with NOOP
instead, which it reads as "stands still" and which drags the prediction for the acting avatar too (measured in
docs/results.md).
Every variant of a session samples with a copy of that session's generator, so all variants draw the same
noise and the composed frame is as seeded, resumable and batch-independent as a joint one.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from maskworld.models.sampler import SamplerConfig, decode_frame

ROLLOUT_MODES = ("joint", "factorised")

FREE_TEMPERATURE = 1.0
"""The second stage's temperature a world gets with its factorised rollout (`SamplerConfig.free_temperature`): chance
events far from every avatar keep the data's rates only when drawn at 1 (measured on Coins: docs/results.md)."""


def check_rollout_mode(mode: str) -> str:
    if mode not in ROLLOUT_MODES:
        raise ValueError(f"rollout must be one of {ROLLOUT_MODES}, not {mode!r}")
    return mode


def default_rollout(dyn_cfg) -> str:
    """Factorised for a world trained with some agents' actions hidden (it can be asked with the others unknown),
    joint otherwise (asked with NOOP for the others, measured no better: docs/results.md)."""
    return "factorised" if dyn_cfg.partial_actions else "joint"


def agent_noop(meanings: list[str]) -> int:
    """The per-agent action that does nothing: NOOP where the env names one, else action 0."""
    return meanings.index("NOOP") if "NOOP" in meanings else 0


def variants(owners_BN: torch.Tensor, actions_B: torch.Tensor, cfg, noop: int):
    """-> (session index (V,), owner mask (V,), action (V,)): one variant per distinct owner set of each session's
    cells, in which the owners act and every other avatar's action is unknown (a world trained with
    `partial_actions`) or, in a world that always saw every action, NOOP."""
    per = cfg.agent_actions(actions_B)  # (B, A)
    idx, masks = [], []
    for b in range(owners_BN.shape[0]):
        for m in torch.unique(owners_BN[b]).tolist():
            idx.append(b)
            masks.append(m)
    idx_V, masks_V = torch.tensor(idx, device=actions_B.device), torch.tensor(masks, device=actions_B.device)
    bits = (masks_V[:, None] >> torch.arange(per.shape[1], device=actions_B.device)) & 1  # (V, A)
    # each agent's NULL (unknown) in a world trained for it, else its NOOP (a known action: the id stays joint)
    absent = torch.tensor(cfg.action_factors if cfg.partial_actions else [noop] * per.shape[1],
                          device=actions_B.device).expand_as(per[idx_V])
    return idx_V, masks_V, cfg.partial_action(torch.where(bits.bool(), per[idx_V], absent))


@torch.no_grad()
def factorised_decode(engine, sessions, actions_B: torch.Tensor, sampler: SamplerConfig) -> torch.Tensor:
    """The next frame's tokens (B, N) of each session, composed from per-avatar variants (module doc)."""
    world = engine.world
    dyn = world.dynamics
    g = dyn.cfg.grid
    last = torch.from_numpy(np.stack([s.tokens.reshape(g, g) for s in sessions]).astype(np.int64)).to(actions_B.device)
    owners = world.locator.owners(last)  # (B, N)
    idx, masks, acts = variants(owners, actions_B, dyn.cfg, agent_noop(world.meta.agent_action_meanings))
    if sampler.free_temperature is not None:  # the cells no avatar covers are drawn by the second stage alone
        keep = masks != 0
        idx, masks, acts = idx[keep], masks[keep], acts[keep]
    out = torch.full_like(owners, dyn.cfg.mask_id)
    if len(idx):
        out = _compose(engine, sessions, idx, masks, acts, owners, sampler, out)
    if sampler.free_temperature is not None:
        out = _redraw_free(engine, sessions, actions_B, sampler, out, owners == 0)
    return out


def _compose(engine, sessions, idx, masks, acts, owners, sampler: SamplerConfig, out_BN: torch.Tensor) -> torch.Tensor:
    """Decode the variants (session idx[v] with action acts[v]) and take each cell from the variant of its
    session whose owner set masks[v] is the cell's; cells of no variant keep out_BN's token."""
    dyn = engine.world.dynamics
    rows = [sessions[i] for i in idx.tolist()]
    gens = []
    for s in rows:  # a copy of the session's generator per variant: the same noise in every variant
        c = torch.Generator(device=s.gen.device)
        c.set_state(s.gen.get_state())
        gens.append(c)
    pos = torch.tensor([s.pos for s in rows], device=acts.device)
    toks = decode_frame(dyn, engine.cache.view([s.row for s in rows]), acts, pos, sampler, gens,
                        engine.memory_input(rows), engine.last_tokens(rows))  # (V, N)
    pick = (idx[None, None, :] == torch.arange(len(sessions), device=idx.device)[:, None, None]) & \
        (masks[None, None, :] == owners[:, :, None])  # (B, N, V), at most one True per cell
    var = pick.float().argmax(-1)  # (B, N)
    out = torch.where(pick.any(-1), toks.gather(0, var), out_BN)  # toks[var[b, n], n]
    first = {}
    for v, b in enumerate(idx.tolist()):
        first.setdefault(b, v)
    for b, v in first.items():  # every copy drew alike; the session continues from one of them
        sessions[b].gen.set_state(gens[v].get_state())
    return out


def _redraw_free(engine, sessions, actions_B: torch.Tensor, sampler: SamplerConfig, tokens_BN: torch.Tensor,
                 free_BN: torch.Tensor) -> torch.Tensor:
    """The cells no avatar covers (free_BN) drawn again given every other cell of `tokens_BN`, no avatar's action
    known (the first stage's variant for them), at the sampler's free temperature (greedy when the sampler is)."""
    dyn = engine.world.dynamics
    _, _, actions_B = variants(torch.zeros_like(free_BN, dtype=torch.long), actions_B, dyn.cfg,
                               agent_noop(engine.world.meta.agent_action_meanings))  # one variant a session, owners none
    t = sampler.free_temperature if sampler.temperature > 0 else 0.0
    cfg = dataclasses.replace(sampler, temperature=t, choice_temperature=sampler.choice_temperature if t > 0 else 0.0,
                              guidance=0.0)  # no action is known here: nothing to guide by
    pos = torch.tensor([s.pos for s in sessions], device=actions_B.device)
    return decode_frame(dyn, engine.cache.view([s.row for s in sessions]), actions_B, pos, cfg, [s.gen for s in sessions],
                        engine.memory_input(sessions), engine.last_tokens(sessions), given=(tokens_BN, free_BN))
