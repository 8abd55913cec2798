"""`maskworld revisit WORLD`: the memory benchmark alone (also part of `maskworld eval --revisit`)."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  maskworld revisit worlds/landmarks --json revisit.json --svg revisit.svg
  maskworld revisit worlds/landmarks --gaps 8,32,128 --trials 4 --memory-k 1,2 --ablations
How to read it: README.md, "Memory M and the revisit benchmark"
"""


def parse_ints(text: str, flag: str) -> tuple:
    from maskworld.errors import UserError

    try:
        vals = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise UserError(f"{flag} {text!r}: give comma-separated integers, e.g. 8,16,32") from None
    if any(v < 1 for v in vals):
        raise UserError(f"{flag} {text!r}: every value must be >= 1")
    return vals


def add_revisit_args(p, prefix: str = "") -> None:
    p.add_argument(f"--{prefix}gaps", default="8,16,32,64,128,256", help="gaps g in steps (default 8,16,32,64,128,256)")
    p.add_argument(f"--{prefix}trials", type=int, default=8, help="out-and-back trials per gap (default 8)")
    p.add_argument(f"--{prefix}env", help="MiniGrid env of the trials (default: the world's)")
    p.add_argument(f"--{prefix}memory-k", default="", help="also run arms reading only k retrieved frames, e.g. 1,2")
    p.add_argument(f"--{prefix}ablations", action="store_true",
                   help="also run retrieval_only, compressed_only and recent (choose by recency, not place) arms")
    p.add_argument(f"--{prefix}history", type=int, default=1000, help="steps of history for the memory speed cost (default 1000)")


def register(sub) -> None:
    p = sub.add_parser("revisit", help="memory benchmark: go out, stay away g steps, come back; is the place the same?",
                       description="Scripted out-and-back trials on MiniGrid layouts with landmarks: PSNR/SSIM, "
                                   "self-consistency and landmark recall of the returning frames, as curves over the gap, "
                                   "for memory on, memory off, oracle retrieval and copy-last; plus memory's speed and "
                                   "byte cost.", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("world", help="world directory")
    add_revisit_args(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the metrics here (.json)")
    p.add_argument("--svg", help="write the PSNR-over-gap plot here (.svg)")
    p.add_argument("--update-card", action="store_true", help="write the metrics into the world's model card (world.json)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=run)


def run_revisit(world, args, prefix: str = "", progress: bool = True, seed: int = 0) -> dict:
    from maskworld.errors import UserError
    from maskworld.eval.revisit import memory_cost, revisit, summary_lines

    get = lambda name: getattr(args, prefix.replace("-", "_") + name)  # noqa: E731
    gaps = parse_ints(get("gaps"), f"--{prefix}gaps")
    ks = parse_ints(get("memory_k"), f"--{prefix}memory-k") if get("memory_k") else ()
    if get("trials") < 1:
        raise UserError(f"--{prefix}trials {get('trials')}: give at least 1")
    if get("history") < 1:
        raise UserError(f"--{prefix}history {get('history')}: give at least 1")
    m = revisit(world, env_id=get("env"), gaps=gaps, per_gap=get("trials"), seed=seed, memory_k=ks,
                ablations=get("ablations"), progress=progress)
    m.update(memory_cost(world, history=get("history"), seed=seed))
    for line in summary_lines(m):
        print(line)
    for g in gaps:
        share = m[f"revisit.gain.share_of_oracle.{g}"]
        env = m[f"revisit.gain.envpose_share_of_oracle.{g}"]
        print(f"  g={g}: memory gain {m[f'revisit.gain.psnr.{g}']:+.2f} dB (share of oracle {'-' if share is None else f'{share:.2f}'}), "
              f"with env poses {m[f'revisit.gain.envpose_psnr.{g}']:+.2f} dB (share {'-' if env is None else f'{env:.2f}'}), "
              f"oracle {m[f'revisit.gain.oracle_psnr.{g}']:+.2f} dB")
    print(f"  play speed after {m['memory.history_steps']} steps: {m['memory.fps_on']:.1f} FPS with memory, "
          f"{m['memory.fps_off']:.1f} without (cost {100 * m['memory.speed_cost']:.0f} %); "
          f"{m['memory.bytes_per_frame']:.0f} bytes per remembered frame")
    return m


def run(args) -> int:
    import json

    from maskworld import load_world
    from maskworld.commands.eval_cmd import _check_out
    from maskworld.eval.revisit import curves_svg
    from maskworld.world.world import atomic_write_text

    _check_out(args.json, ".json", "--json")
    _check_out(args.svg, ".svg", "--svg")
    world = load_world(args.world, device=args.device)
    m = run_revisit(world, args, progress=args.progress, seed=args.seed)
    if args.json:
        atomic_write_text(args.json, json.dumps(m, indent=1, sort_keys=True))
        print(f"wrote {args.json}")
    if args.svg:
        atomic_write_text(args.svg, curves_svg(m))
        print(f"wrote {args.svg}")
    if args.update_card:
        world.update_model_card(revisit=m)
        print(f"updated the model card in {args.world}/world.json")
    return 0
