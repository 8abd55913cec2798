"""Train the FSQ tokenizer on frames of an episode store.

    maskworld train tokenizer --data DATA --out WORLD --preset small --minutes 20

Frames of the training split are held in memory (uint8, up to `max_frames`, a random subset of
episodes beyond that); batches are uniform over frames. Logged: MSE, PSNR and code usage (fraction
of the 1000 FSQ codes seen in the batch window), from the first step.

Several processes (torchrun, maskworld.train.dist): with `--data-split global` every rank holds the
same pool and keeps its part of the same global batch; with `--data-split rank` each rank's pool holds
only its own episodes (`dist.own_episodes`), it draws its share of the batch from them, and it writes
which episodes and shard files it read to WORK/reads/tokenizer.rank-R-of-N.json.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from maskworld.data.rank_split import shard_files
from maskworld.io import atomic_write_json
from maskworld.models.tokenizer import Tokenizer, TokenizerConfig
from maskworld.train import dist
from maskworld.train.loop import Budget, run_loop


class FramePool:
    """All (or up to max_frames) frames of the given episodes, (N, H, W, 3) uint8.

    `episode_ids` are the episodes it loaded (a random subset when they hold more than max_frames).
    """

    def __init__(self, store, episode_ids, max_frames: int = 200_000, seed: int = 0):
        rng = np.random.default_rng(seed)
        ids = list(episode_ids)
        rng.shuffle(ids)
        chunks, n, loaded = [], 0, []
        for i in ids:
            f = store.load(i).frames
            chunks.append(f)
            loaded.append(int(i))
            n += len(f)
            if n >= max_frames:
                break
        if not chunks:
            raise ValueError("no frames to train on")
        self.frames = np.concatenate(chunks)[:max_frames]
        self.episode_ids = sorted(loaded)
        self.shard_files = shard_files(store, loaded)

    def __len__(self):
        return len(self.frames)

    def sample(self, batch: int, rng: np.random.Generator, part: dist.Part | None = None) -> np.ndarray:
        """`batch` random frames; with `part`, only this rank's share of that global batch."""
        idx = rng.integers(0, len(self.frames), batch)
        return self.frames[idx if part is None else idx[part.slice(batch)]]

    def record(self, path: Path) -> None:
        """Write which episodes and shard files this pool read (JSON), e.g. to audit a --data-split rank run."""
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"rank": dist.rank(), "world_size": dist.world_size(), "data_split": dist.data_split(),
                                 "frames": len(self), "episodes": self.episode_ids, "shards": self.shard_files}, indent=1)


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean PSNR (dB) over a batch of images in [0, 1]."""
    mse = ((x - y) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return (10 * torch.log10(1.0 / mse)).mean()


@torch.no_grad()
def evaluate_tokenizer(tok: Tokenizer, frames_u8: np.ndarray, device, batch: int = 64) -> dict:
    tok.eval()
    ps, used = [], torch.zeros(tok.cfg.vocab_size, dtype=torch.bool)
    for i in range(0, len(frames_u8), batch):
        x = Tokenizer.to_float(torch.from_numpy(frames_u8[i : i + batch]).to(device))
        y, codes = tok(x)
        ps.append(psnr(y.clamp(0, 1), x).item() * len(x))
        used[codes.flatten().cpu()] = True
    return {"psnr": sum(ps) / len(frames_u8), "usage": used.float().mean().item()}


def train_tokenizer(train_pool: FramePool, val_frames: np.ndarray, cfg: TokenizerConfig, batch: int, lr: float,
                    budget: Budget, work_dir, device, resume: bool, seed: int = 0, progress: bool = True, ckpt_minutes: float = 5.0,
                    fsdp: bool = False, compile: bool = False):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tok = Tokenizer(cfg).to(device)
    fwd = dist.wrap(tok, device, fsdp=fsdp, compile=compile)  # DDP / FSDP2 / compiled; `tok` is what we save
    part, rows = dist.part(), dist.rows_to_draw(batch)  # global split: draw all `batch`, keep `part`; rank split: draw own rows
    if dist.own_data():
        train_pool.record(Path(work_dir) / "reads" / f"tokenizer.rank-{dist.rank()}-of-{dist.world_size()}.json")
    opt = torch.optim.AdamW(tok.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    seen = torch.zeros(cfg.vocab_size, dtype=torch.bool)

    def step_fn(step: int) -> dict:
        nonlocal seen
        x = Tokenizer.to_float(torch.from_numpy(train_pool.sample(rows, rng, part)).to(device))
        y, codes = fwd(x)
        loss = F.mse_loss(y, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tok.parameters(), 1.0)
        opt.step()
        if step % 100 == 0:
            seen = torch.zeros_like(seen)
        seen[codes.flatten().cpu()] = True
        return {"loss": loss.item(), "psnr": 10 * math.log10(1 / max(loss.item(), 1e-10)), "usage": seen.float().mean().item()}

    metrics = run_loop("tokenizer", tok, opt, step_fn, budget, work_dir, lr, rng, resume,
                       eval_fn=lambda: evaluate_tokenizer(tok, val_frames, device), eval_every=1000, progress_bar=progress,
                       ckpt_minutes=ckpt_minutes, items_per_step=batch, items_unit="frames/s")
    return dist.unshard(tok, Tokenizer(cfg).to(device)), metrics
