"""Does a memory world read its memory, and does its own pose estimate hold over an imagined gap?

    python scripts/memory_probe.py runs/lm3                 # cache: WORLD/_work/cache_val
    python scripts/memory_probe.py runs/lm3 --cache runs/lm/_work/cache_val --trials 4

1. Reading: held-out clips, masked-token accuracy of each clip's last frame with the clip's context clean or
   replaced by noise (the state after a long imagined gap), memory on vs off. A world that reads memory keeps
   much of its accuracy under noise with memory on; off, it guesses.
2. Pose drift: on revisit trials, the share of imagined gap steps whose pose change (from the world's pose head)
   matches the real one, and the first step where it does not.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def reading(world, cache, batches: int = 6, batch: int = 16, seed: int = 0) -> dict:
    from maskworld.memory.pose import REL_EMPTY
    from maskworld.train.dynamics_train import make_batch, mask_tokens, memory_input

    dyn, cfg = world.dynamics.eval(), world.dynamics.cfg
    out = {}
    for rate in (0.0, 1.0):
        for mem in (True, False):
            rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
            accs = []
            for _ in range(batches):
                tok, act, _, _, extra = make_batch(cache, batch, cfg.window, rng, cfg.num_actions, "cpu", cfg)
                if not mem:
                    extra = dict(extra, rel=torch.full_like(extra["rel"], REL_EMPTY))
                    if "comp_valid" in extra:
                        extra["comp_valid"] = torch.zeros_like(extra["comp_valid"])
                masked, m = mask_tokens(tok, cfg.mask_id, gen)
                flip = torch.rand(tok.shape, generator=gen) < rate
                clean = torch.where(flip, torch.randint(0, cfg.vocab_size, tok.shape, generator=gen), tok)
                with torch.no_grad():
                    logits = dyn(clean, masked, act, memory_input(extra))[0]
                mm = m[:, -1]
                accs.append((logits[:, -1][mm].argmax(-1) == tok[:, -1][mm]).float().mean().item())
            out[("noise" if rate else "clean", "on" if mem else "off")] = float(np.mean(accs))
    return out


def pose_drift(world, gaps=(8, 32, 128), trials: int = 4, seed: int = 0) -> dict:
    from maskworld.eval.revisit_trials import make_trials
    from maskworld.memory.pose import delta_class
    from maskworld.world.session import Session

    out = {}
    for g in gaps:
        right, first = [], []
        for i, tr in enumerate(make_trials("MiniGrid-Landmarks-v0", gaps=(g,), per_gap=trials, seed=seed, size=world.meta.size)):
            s = Session(world, seed=i, memory=True)
            for j in range(tr.outbound):
                a = int(tr.actions_in[j])
                s.observe(tr.frames[j], None if a < 0 else a)
            errs = []
            for j in range(tr.outbound, len(tr.frames)):
                prev = np.asarray(s.pose).copy()
                s.step(int(tr.actions_in[j]))
                est = delta_class(prev[None], np.asarray(s.pose)[None])[0]
                errs.append(est != delta_class(np.asarray(tr.poses[j - 1])[None], np.asarray(tr.poses[j])[None])[0])
            errs = np.array(errs)
            right.append(1 - errs.mean())
            first.append(int(np.argmax(errs)) if errs.any() else len(errs))
        out[g] = {"share_right": float(np.mean(right)), "first_wrong_step": first}
    return out


def main(argv=None) -> int:
    from maskworld import load_world
    from maskworld.data.token_cache import TokenCache

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("world")
    ap.add_argument("--cache", help="held-out token cache (default WORLD/_work/cache_val)")
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    w = load_world(a.world, device="cpu")
    if not w.has_memory:
        raise SystemExit(f"{a.world} has no memory M (trained without --memory)")
    r = reading(w, TokenCache(a.cache or f"{a.world}/_work/cache_val"))
    for (ctx, mem), acc in r.items():
        print(f"context {ctx:5s}, memory {mem:3s}: masked-token accuracy of the last frame {acc:.3f}")
    for g, d in pose_drift(w, trials=a.trials).items():
        print(f"g={g}: pose change right on {d['share_right']:.2f} of imagined steps; first wrong step {d['first_wrong_step']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
