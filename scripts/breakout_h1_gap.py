"""Where a Breakout world's one-step gap to its tokenizer lies, and how much of the paddle's next move the past fixes.

    python scripts/breakout_h1_gap.py maskworld/worlds/breakout --data data/breakout --out h1_gap.json --png worst.png

A diagnostic for `ALE/Breakout-v5` worlds (not part of the package: it reads the game's layout). Two parts:

1. The world's next frame from 4 real frames (`--windows` spread over each held-out episode) against the real one,
   beside the tokenizer's reconstruction, per window: how the gap (tokenizer PSNR minus world PSNR) is spread over
   windows (and how often the paddle moved as far in the world's frame as in the real one), and, for windows more
   than 3 dB short, the screen band holding most of the squared error: the score and lives (top 7 rows), the paddle
   (bottom 10), or between them (ball, bricks); with what the mean gap would be if each band's windows were drawn as
   well as the tokenizer draws them.
2. The paddle's horizontal move from frame t to t+1, predicted by the most frequent move of the training episodes
   that share the last k actions and the last k-1 moves (and whether the paddle is near a wall): the share of
   held-out moves it gets right, k = 1..4. What a world can know of the paddle from a window of frames is bounded
   by this kind of predictor; a share well below 1 is a hidden state (Breakout's paddle has inertia the frames
   show only in part).
"""

import argparse
import collections

import numpy as np
import torch

from maskworld import load_world
from maskworld.data.store import EpisodeStore
from maskworld.eval.metrics import psnr_per_frame
from maskworld.eval.rollout import open_loop
from maskworld.io import atomic_write_json

PADDLE_ROW = 57  # of a 64 x 64 Breakout frame
BANDS = {"score and lives": (0, 7), "between (ball, bricks)": (7, 54), "paddle": (54, 64)}


class _Window:
    def __init__(self, ep, t: int, context: int):
        self.frames, self.actions = ep.frames[t:t + context + 1], ep.actions[t:t + context]


def next_frame_gap(world, store, ids, per_episode: int, context: int = 4):
    wins = []
    for e in ids:
        ep = store.load(e)
        for t in np.linspace(0, len(ep.frames) - context - 2, per_episode).astype(int):
            wins.append(_Window(ep, int(t), context))
    gen = open_loop(world, wins, context=context, horizon=1, seed=0)[:, 0]
    real = np.stack([w.frames[context] for w in wins])
    with torch.no_grad():
        rec = world.tokenizer.render_uint8(world.tokenizer.tokenize_uint8(torch.from_numpy(real))).numpy()
    pw, pt = psnr_per_frame(gen, real), psnr_per_frame(rec, real)
    gap = pt - pw
    err = ((gen.astype(np.float64) - real) ** 2).sum(-1)  # (n, H, W)
    tot = err.sum((1, 2)) + 1e-9
    share = {name: err[:, a:b].sum((1, 2)) / tot for name, (a, b) in BANDS.items()}
    band = np.array([max(share, key=lambda k: share[k][i]) for i in range(len(wins))])
    short = gap > 3
    out = {"windows": len(wins), "world": float(pw.mean()), "tokenizer": float(pt.mean()), "gap": float(gap.mean()),
           "gap_percentiles_10_25_50_75_90": np.percentile(gap, [10, 25, 50, 75, 90]).round(2).tolist(),
           "share_short_3db": float(short.mean()), "share_short_10db": float((gap > 10).mean())}
    for name in BANDS:
        m = short & (band == name)
        out[f"band.{name}.windows"] = int(m.sum())
        out[f"band.{name}.gap_share"] = float(gap[m].sum() / len(gap))
        out[f"band.{name}.gap_if_drawn_as_tokenizer"] = float(pt.mean() - np.where(m, pt, pw).mean())
    # the paddle's move as the world drew it against the real one, on the same windows
    prev = [w.frames[context - 1] for w in wins]
    moves = [(round(paddle_x(g) - paddle_x(p)), round(paddle_x(r) - paddle_x(p))) for g, r, p in zip(gen, real, prev)
             if not np.isnan([paddle_x(g), paddle_x(r), paddle_x(p)]).any()]
    out["paddle.world_move_right"] = float(np.mean([a == b for a, b in moves])) if moves else float("nan")
    worst = np.argsort(-gap)[:8]
    strip = np.concatenate([np.concatenate([w.frames[context - 1], real[i], gen[i], rec[i]], 1)
                            for w, i in ((wins[i], i) for i in worst)], 0)
    return out, strip


def paddle_x(frame) -> float:
    xs = np.flatnonzero(frame[PADDLE_ROW, 3:61].astype(int).sum(-1) > 100)
    return float(xs.mean()) if len(xs) else np.nan


def paddle_bound(store, train_ids, val_ids, depth: int) -> float:
    def rows(ids):
        for e in ids:
            ep = store.load(e)
            x, a = np.array([paddle_x(f) for f in ep.frames]), ep.actions
            for t in range(depth, len(a)):
                if np.isnan(x[t - depth:t + 2]).any():
                    continue
                key = tuple(int(v) for v in a[t - depth + 1:t + 1]) + \
                    tuple(int(round(x[t - i] - x[t - i - 1])) for i in range(depth - 1)) + (int(x[t] < 8 or x[t] > 48),)
                yield key, int(round(x[t + 1] - x[t]))

    seen = collections.defaultdict(collections.Counter)
    for k, d in rows(train_ids):
        seen[k][d] += 1
    hits = [seen[k].most_common(1)[0][0] == d for k, d in rows(val_ids) if k in seen]
    return float(np.mean(hits)) if hits else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("world")
    ap.add_argument("--data", required=True, help="the world's Breakout store (its held-out split is read)")
    ap.add_argument("--windows", type=int, default=8, help="windows per held-out episode")
    ap.add_argument("--out", help="JSON file for the numbers")
    ap.add_argument("--png", help="the 8 windows furthest short: previous, real, world, tokenizer")
    args = ap.parse_args()
    world, store = load_world(args.world), EpisodeStore(args.data)
    train_ids, val_ids = store.split()
    res, strip = next_frame_gap(world, store, val_ids, args.windows)
    for k in (1, 2, 3, 4):
        res[f"paddle.best_guess_right.{k}"] = paddle_bound(store, train_ids, val_ids, k)
    for k, v in res.items():
        print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
    if args.out:
        atomic_write_json(args.out, res)
    if args.png:
        from PIL import Image
        Image.fromarray(strip).save(args.png)


if __name__ == "__main__":
    main()
