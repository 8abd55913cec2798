"""Each avatar drawn once, on its own cell, along an open-loop rollout of a world of several agents.

PSNR barely sees a lost avatar: on a 64 x 64 Coins frame an avatar is one cell of 64, so a world that drops one
or draws it twice loses a dB or two of frame PSNR, and the per-avatar delta-PSNR (eval/avatars.py) can even
grow when the random-action rollout loses the avatar the real one keeps. This reads the avatars themselves.

For each held-out slice: `context` real frames, then `horizon` frames imagined with the logged joint actions
(the world's own sampler and rollout, what a player sees). At each horizon h the world's avatar locator
(models/locator.py, fitted on real frames) reads the imagined frame's tokens and says where each avatar is and
how sure it is:
- `avatars.on_cell.{h}`: the share of (avatar, slice) the locator finds on the cell the avatar really holds at
  that step (the data's `agents_pos`) with at least its `min_confidence`: drawn where the game has it.
- `avatars.lost.{h}`: the share the locator is unsure of (below `min_confidence` at its best cell): an avatar
  drawn nowhere, or in several places, or as something the locator does not know.
- `avatars.on_cell.copy_last.{h}`: the same reading of the last real frame, held: the avatars that really stayed
  where they were. A world that copies its last frame scores exactly this; one that moves its avatars as the
  game does scores above it, up to `avatars.on_cell.real.{h}`, the reading of the real frame at that step (the
  locator's own accuracy, ~1 for a locator fitted on a trained tokenizer).
- `avatars.on_cell_ci.{h}`: a 95 % interval of `on_cell` with the held-out episodes resampled
  (eval/uncertainty.py).
Measured (docs/results.md): the colour of each Coins cell tells the same story as the locator.
"""

from __future__ import annotations

import numpy as np
import torch

from maskworld.eval.rollout import open_loop
from maskworld.eval.uncertainty import mean_ci
from maskworld.train.locator_train import token_cells

HORIZONS = (1, 2, 4, 8, 16)


def avatar_cells(world, store, ids: list[int], room: int, context: int = 2, slices_per_episode: int = 4,
                 horizons: tuple[int, ...] = HORIZONS, seed: int = 0) -> dict:
    """{avatars.on_cell.{h}, avatars.lost.{h}, avatars.on_cell.copy_last.{h}, avatars.on_cell.real.{h},
    avatars.on_cell_ci.{h}, avatars.on_cell.slices} (module doc); {} for a world without a locator."""
    loc = world.locator
    if loc is None:
        return {}
    H = max(horizons)
    rng = np.random.default_rng(seed)
    slices, pos, groups = [], [], []
    for i in ids:
        ep = store.load(i)
        T = len(ep.actions)
        for _ in range(slices_per_episode if T >= context + H - 1 else 0):  # context + H frames
            s = int(rng.integers(0, T - (context + H - 1) + 1))
            sl = ep.window(s, context + H)  # the context frames, then the real frames the imagined ones stand for
            slices.append(sl)
            pos.append(np.asarray(sl.info["agents_pos"][context - 1:]))  # (H+1, agents, 2)
            groups.append(i)
    out: dict = {"avatars.on_cell.slices": len(slices)}
    if not slices:
        return out
    g, dev = world.dynamics.cfg.grid, next(loc.parameters()).device
    _, gen_EHhw = open_loop(world, slices, context, H, seed, every_tokens=True)  # (E, H, h, w)
    with torch.no_grad():  # the last real frame, then the real frames the imagined ones stand for: (E, H+1, h, w)
        real_EHhw = np.stack([world.tokenizer.tokenize_uint8(torch.from_numpy(sl.frames[context - 1:]).to(dev))
                              .cpu().numpy() for sl in slices])
    true_EHA = token_cells(np.stack(pos), room, g)  # (E, H+1, agents) flat token cells

    def read(tok_Bhw):  # -> cell (B, agents), sure (B, agents)
        cell, conf = loc.locate(torch.from_numpy(tok_Bhw).to(dev))
        return cell.cpu().numpy(), conf.cpu().numpy() >= loc.cfg.min_confidence

    last_cell, last_sure = read(real_EHhw[:, 0])
    grp = np.repeat(np.asarray(groups), true_EHA.shape[-1])
    for h in horizons:
        truth = true_EHA[:, h]
        cell, sure = read(gen_EHhw[:, h - 1])
        hit = ((cell == truth) & sure).reshape(-1)
        out[f"avatars.on_cell.{h}"] = float(hit.mean())
        out[f"avatars.on_cell_ci.{h}"] = mean_ci(hit, grp, seed=seed)
        out[f"avatars.lost.{h}"] = float((~sure).mean())
        out[f"avatars.on_cell.copy_last.{h}"] = float(((last_cell == truth) & last_sure).mean())
        rc, rs = read(real_EHhw[:, h])
        out[f"avatars.on_cell.real.{h}"] = float(((rc == truth) & rs).mean())
    return out
