"""`maskworld bench [WORLD] [--json out.json] [--quick]`: play and training speed on this machine."""

from __future__ import annotations

import argparse

from maskworld import load_world
from maskworld.commands._args import check_out
from maskworld.errors import UserError
from maskworld.io import atomic_write_json

EXAMPLES = """examples:
  maskworld bench                        # a randomly initialised `small` world: speed before training
  maskworld bench worlds/minigrid --json bench.json
  maskworld bench --quick                # a few iterations (smoke test)
  maskworld bench --device cuda --train-batch 128 --compile   # does torch.compile pay on this GPU?
Keys of the JSON: docs/eval.md
"""


def register(sub) -> None:
    p = sub.add_parser("bench", help="measure FPS, KV-cache and MaskGIT speedups, concurrent sessions, training tokens/s",
                       description="Speed of a world on this machine: end-to-end ms/frame and FPS for K = 1, 2, 4, 8 "
                                   "MaskGIT steps, the same network without the KV cache and decoded autoregressively, "
                                   "concurrent sessions, training tokens/s against a matmul benchmark.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("world", nargs="?", help="world directory (default: a randomly initialised world of --preset)")
    p.add_argument("--preset", default="small", choices=["tiny", "compact", "small", "base"],
                   help="preset of the random world (default small)")
    p.add_argument("--json", help="write the flat results dict here")
    p.add_argument("--data", help="episode store the world was trained on: adds rollout PSNR at horizon 8 of MaskGIT vs "
                                  "token-by-token decoding on held-out episodes (quality.*)")
    p.add_argument("--quality-episodes", type=int, default=8, help="held-out episodes for the --data comparison")
    p.add_argument("--quick", action="store_true", help="few iterations: a smoke test, not a measurement")
    p.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, ...")
    p.add_argument("--train-batch", type=int, help="clips per timed training step (default 16; 2 with --quick)")
    p.add_argument("--compile", action="store_true", help="also time the training step through torch.compile "
                                                           "(train.compiled.*, train.compile_speedup)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from maskworld.device import pick_device
    from maskworld.eval.bench import random_world, run_bench

    check_out(args.json, ".json", "--json")
    if args.world:
        world = load_world(args.world, device=args.device)
        what = args.world
    else:
        world = random_world(args.preset)
        world.tokenizer.to(pick_device(args.device))
        world.dynamics.to(pick_device(args.device))
        what = f"random {args.preset} world (untrained)"
    print(f"[bench] {what}: {world.dynamics.num_params() / 1e6:.2f}M dynamics params, "
          f"{world.dynamics.cfg.tokens_per_frame} tokens/frame, window {world.dynamics.cfg.window}, device {world.device}")
    if args.train_batch is not None and args.train_batch < 1:
        raise UserError(f"--train-batch {args.train_batch}: give at least 1 clip")
    m = run_bench(world, quick=args.quick, progress=args.progress, train_batch=args.train_batch, compile=args.compile)
    m["meta.world"] = args.world or f"random:{args.preset}"
    if args.data:
        from maskworld.data.store import EpisodeStore
        from maskworld.eval.bench import bench_decoder_quality

        if not args.world:
            raise UserError("--data compares decoders of a trained world; give WORLD too")
        print(f"[bench] rollout quality at horizon 8: MaskGIT K={world.sampler.steps} vs autoregressive")
        m.update(bench_decoder_quality(world, EpisodeStore(args.data), episodes=args.quality_episodes))
    for k in (1, 2, 4, 8):
        print(f"  K={k}: {m[f'speed.ms_per_frame.K{k}']:7.2f} ms/frame  {m[f'speed.fps.K{k}']:7.1f} FPS  "
              f"KV cache {m[f'speed.cache_speedup.K{k}']:.2f}x faster than no cache")
    print(f"  autoregressive decoding is {m['speed.ar_vs_maskgit']:.1f}x slower than MaskGIT K={m['speed.default_K']}")
    for n in (1, 4, 16):
        print(f"  {n:2d} sessions: {m[f'sessions.{n}.fps']:7.1f} FPS total, p50 {m[f'sessions.{n}.p50_ms']:.1f} ms, "
              f"p95 {m[f'sessions.{n}.p95_ms']:.1f} ms")
    if "quality.psnr_h8.maskgit" in m:
        print(f"  horizon-8 PSNR: MaskGIT {m['quality.psnr_h8.maskgit']:.2f} dB, autoregressive "
              f"{m['quality.psnr_h8.autoregressive']:.2f} dB ({m['quality.episodes']} held-out episodes)")
    print(f"  training: {m['train.tokens_per_s']:.0f} tokens/s, {m['train.flops_per_s'] / 1e9:.1f} GFLOP/s "
          f"= {100 * m['train.matmul_share']:.0f}% of matmul ({m['matmul.flops_per_s'] / 1e9:.1f} GFLOP/s)")
    if "train.compile_speedup" in m:
        print(f"  torch.compile: {m['train.compiled.tokens_per_s']:.0f} tokens/s, {m['train.compile_speedup']:.2f}x eager, "
              f"after {m['train.compiled.compile_s']:.0f} s of compiling")
    if args.json:
        atomic_write_json(args.json, m, indent=1, sort_keys=True)
        print(f"wrote {args.json}")
    return 0
