"""Fitting a world's avatar locator (models/locator.py) on the data's `agents_pos`.

The world's own tokenizer turns the frames into tokens (what the locator reads in play); each agent's cell (x, y)
of the room becomes the token cell its centre falls on. Cross-entropy over the cells per agent, AdamW, a few
hundred steps of a ~50k-parameter network: seconds on a CPU. The held-out accuracy (every avatar
on its cell) is returned for the model card, beside the share a locator that always names the commonest cell
gets.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from maskworld.data.held_out import world_split
from maskworld.envs import room_cells
from maskworld.errors import UserError
from maskworld.models.locator import AvatarLocator, LocatorConfig
from maskworld.world.factorised import default_rollout


def token_cells(pos_TA2: np.ndarray, room: int, grid: int) -> np.ndarray:
    """Room cells (T, agents, 2) as (x, y) -> flat token cells (T, agents): the token under each cell's centre."""
    col = np.floor((pos_TA2[..., 0] + 0.5) * grid / room).astype(np.int64).clip(0, grid - 1)
    row = np.floor((pos_TA2[..., 1] + 0.5) * grid / room).astype(np.int64).clip(0, grid - 1)
    return row * grid + col


@torch.no_grad()
def _tokens(world, store, ids: list[int], room: int, max_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """-> tokens (T, g, g), target cells (T, agents) of up to max_frames frames of these episodes."""
    g = world.dynamics.cfg.grid
    toks, cells, n = [], [], 0
    for i in ids:
        ep = store.load(i)
        pos = np.asarray(ep.info["agents_pos"])
        for b in range(0, len(ep.frames), 256):
            frames = torch.from_numpy(np.ascontiguousarray(ep.frames[b:b + 256])).to(world.device)
            toks.append(world.tokenizer.tokenize_uint8(frames).cpu())
        cells.append(token_cells(pos, room, g))
        n += len(ep.frames)
        if n >= max_frames:
            break
    return torch.cat(toks)[:max_frames], torch.from_numpy(np.concatenate(cells))[:max_frames]


def fit_locator(world, store, room: int | None = None, steps: int = 600, batch: int = 256, seed: int = 0,
                max_frames: int = 20000, log=print) -> tuple[AvatarLocator, dict]:
    """-> the locator and {accuracy, cell_accuracy, majority, frames, steps, train_s} (held-out split of the
    world's model card). room: cells per side of the env's room (default: asked of the env itself)."""
    agents = int(world.meta.agents)
    if agents < 2:
        raise UserError("a locator is for worlds of several agents (trained on joint actions)")
    if "agents_pos" not in store.meta.get("info_keys", []):
        raise UserError(f"{store.path} records no agents_pos: collect a multi-agent env (MultiAgent-Coins-v0)")
    if room is None:
        room = room_cells(store.meta)
    train_ids, val_ids, _ = world_split(store, world.meta.model_card.get("split", {}))
    t0 = time.time()
    x, y = _tokens(world, store, train_ids, room, max_frames)
    vx, vy = _tokens(world, store, val_ids, room, max_frames // 4)
    cfg = LocatorConfig(vocab_size=world.dynamics.cfg.vocab_size, grid=world.dynamics.cfg.grid, agents=agents)
    torch.manual_seed(seed)
    model = AvatarLocator(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=gen)
        logits = model(x[idx])  # (b, agents, cells)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y[idx].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if log and (step + 1) % 200 == 0:
            log(f"[locator] step {step + 1}/{steps} loss {loss.item():.4f}")
    model.eval()
    cell, _ = model.locate(vx)
    hit = (cell == vy)
    common = torch.mode(y.flatten()).values
    metrics = {"accuracy": float(hit.all(1).float().mean()), "cell_accuracy": float(hit.float().mean()),
               "majority": float((vy == common).float().mean()), "frames": len(x), "val_frames": len(vx),
               "steps": steps, "train_s": round(time.time() - t0, 1)}
    return model, metrics


def add_locator(world, store, rollout: str = "auto", steps: int = 600, seed: int = 0, log=print,
                **card) -> tuple[str, dict]:
    """Fit the world's locator and give it to the world (written into its directory) with the rollout it decodes
    with from now on ("auto": factorised for a world trained with hidden actions, else joint); card entries go into
    the model card beside the locator's held-out metrics. -> (the rollout, the metrics)."""
    locator, m = fit_locator(world, store, steps=steps, seed=seed, log=log)
    if rollout == "auto":
        rollout = default_rollout(world.dynamics.cfg)
    world.attach_locator(locator, rollout, locator_train=m, **card)
    return rollout, m
