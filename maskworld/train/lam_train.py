"""Train the latent-action model on token pairs, then label every transition of a token cache with it.

    maskworld train world --data VIDEO_STORE --out WORLD --minutes 40            # action-free store: LAM on
    maskworld train world --data STORE --out WORLD --minutes 40 --ignore-actions # a labelled store as video

Logged from the first step (TensorBoard `lam/*`, and the log lines): `codes` (codes used in the
batch), `ppl` (perplexity of the batch's code histogram: K when all K codes are equally used, 1 when
collapsed), `recon` and `recon_shuffled` (decoder error with the inferred latent and with another
sample's latent: the gap is what the latent carries), and `lam/share_k` for every code.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from maskworld.models.lam import LamConfig, LatentActionModel
from maskworld.train import dist
from maskworld.train.loop import Budget, run_loop


def pair_batch(cache, batch: int, rng: np.random.Generator, device, context_frame: bool = False):
    """`batch` consecutive token frames of one episode -> (t-1 or None, t, t+1), each (B,h,w) long."""
    b = cache.sample(batch, 3 if context_frame else 2, rng)
    tok = torch.from_numpy(np.asarray(b["tokens"])).long().to(device)
    return (tok[:, 0], tok[:, 1], tok[:, 2]) if context_frame else (None, tok[:, 0], tok[:, 1])


@torch.no_grad()
def evaluate_lam(model: LatentActionModel, cache, device, batches: int = 8, batch: int = 256, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    counts = torch.zeros(model.cfg.num_codes)
    out = {"recon": 0.0, "recon_shuffled": 0.0}
    for _ in range(batches):
        p, a, b = pair_batch(cache, batch, rng, device, model.cfg.context_frame)
        m = model.losses(a, b, tok_prev=p)
        out["recon"] += m["recon"].item() / batches
        out["recon_shuffled"] += m["recon_shuffled"].item() / batches
        counts += torch.bincount(model.infer(a, b, p).cpu(), minlength=model.cfg.num_codes).float()
    share = counts / counts.sum()
    out["codes"] = float((share >= 0.01).sum())
    out["ppl"] = float(torch.exp(-(share * share.clamp_min(1e-9).log()).sum()))
    return out


def train_lam(train_cache, val_cache, cfg: LamConfig, batch: int, lr: float, budget: Budget, work_dir, device,
              resume: bool, seed: int = 0, progress: bool = True, ckpt_minutes: float = 5.0,
              forced_code: int | None = None) -> tuple[LatentActionModel, dict]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 7)
    model = LatentActionModel(cfg).to(device)
    fwd = dist.wrap(model, device)  # DDP under torchrun; `model` is what we save
    part = dist.part()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)

    def step_fn(step: int) -> dict:
        t0 = time.time()
        p, a, b = pair_batch(train_cache, dist.rows_to_draw(batch), rng, device, cfg.context_frame)  # rank split: its share
        if part is not None:  # several ranks: the same global batch on each, this rank's share of it
            sl = part.slice(len(a))
            p, a, b = (p[sl] if p is not None else None), a[sl], b[sl]
        m = fwd(a, b, forced_code=forced_code, tok_prev=p)  # forward() = losses(), so DDP's gradient hooks fire
        opt.zero_grad(set_to_none=True)
        m["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        logged = {"loss": m["loss"].item(), "recon": m["recon"].item(), "recon_shuffled": m["recon_shuffled"].item(),
                  "codes": m["codes_used"].item(), "ppl": m["perplexity"].item(),
                  "pairs_s": len(a) / max(time.time() - t0, 1e-9)}
        logged.update({f"share_{k}": float(v) for k, v in enumerate(m["share"])})
        return logged

    metrics = run_loop("lam", model, opt, step_fn, budget, work_dir, lr, rng, resume,
                       eval_fn=lambda: evaluate_lam(model, val_cache, device), eval_every=250,
                       progress_bar=progress, ckpt_minutes=ckpt_minutes, items_per_step=batch, items_unit="pairs/s")
    return model.eval(), metrics


@torch.no_grad()
def label_cache(cache, model: LatentActionModel, device, batch: int = 1024) -> np.ndarray:
    """Latent action INTO every frame of the cache's episodes: (N,) int64, NULL (= K) on first frames.

    Index n holds the latent of the transition n-1 -> n, the same place as the real `actions_in[n]`.
    """
    K = model.cfg.num_codes
    out = np.full(len(cache.actions_in), K, np.int64)
    rows, firsts = [], []
    for o, n in zip(cache.offsets, cache.lengths):
        if n > 1:
            rows.append(np.arange(o + 1, o + n))
            firsts.append(np.full(n - 1, o))
    rows = np.concatenate(rows or [np.zeros(0, np.int64)])
    prev_rows = np.maximum(rows - 2, np.concatenate(firsts or [np.zeros(0, np.int64)]))  # t-1; at the start, t itself
    for s in range(0, len(rows), batch):
        r = rows[s:s + batch]
        a = torch.from_numpy(cache.tokens[r - 1].astype(np.int64)).to(device)
        b = torch.from_numpy(cache.tokens[r].astype(np.int64)).to(device)
        p = torch.from_numpy(cache.tokens[prev_rows[s:s + batch]].astype(np.int64)).to(device)
        out[r] = model.infer(a, b, p).cpu().numpy()
    return out


def relabel(cache, latent_in: np.ndarray, num_codes: int):
    """Make a token cache serve latent actions instead of real ones (in memory; the files stay as they are)."""
    cache.real_actions_in = cache.actions_in
    cache.actions_in = latent_in
    cache.num_actions = cache.null_action = num_codes
    return cache
