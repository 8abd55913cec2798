"""`maskworld revisit WORLD`: the memory benchmark alone (also part of `maskworld eval --revisit`)."""

from __future__ import annotations

import argparse

from maskworld import load_world
from maskworld.commands._args import add_revisit_args, add_sampler_args, apply_sampler_args, check_out, parse_ints
from maskworld.errors import UserError
from maskworld.eval.plots import revisit_curves_svg
from maskworld.io import atomic_write_json, atomic_write_text

EXAMPLES = """examples:
  maskworld revisit worlds/landmarks --json revisit.json --svg revisit.svg
  maskworld revisit worlds/landmarks --gaps 8,32,128 --trials 4 --memory-k 1,2 --ablations
  maskworld revisit worlds/landmarks --gaps 128 --temperature 1.0      # imagine the gap at another temperature
  maskworld revisit worlds/coinrun-memory --env procgen:coinrun --gaps 16,32,64   # walk-back trials: no poses
How to read it: docs/memory.md
"""


def register(sub) -> None:
    p = sub.add_parser("revisit", help="memory benchmark: go out, stay away g steps, come back; is the place the same?",
                       description="Scripted out-and-back trials on MiniGrid layouts with landmarks (or walk-back "
                                   "trials on a game with RIGHT/LEFT and fixed levels, e.g. procgen:coinrun): PSNR/SSIM, "
                                   "self-consistency and landmark recall of the returning frames, as curves over the gap, "
                                   "for memory on, memory off, oracle retrieval and copy-last; plus memory's speed and "
                                   "byte cost.", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("world", help="world directory")
    add_revisit_args(p)
    add_sampler_args(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the metrics here (.json)")
    p.add_argument("--svg", help="write the PSNR-over-gap plot here (.svg)")
    p.add_argument("--update-card", action="store_true", help="write the metrics into the world's model card (world.json)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=run)


def run_revisit(world, args, prefix: str = "", progress: bool = True, seed: int = 0) -> dict:
    from maskworld.eval.revisit import memory_cost, revisit, summary_lines

    def get(name):
        return getattr(args, prefix.replace("-", "_") + name)

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
        print(f"  g={g}: memory gain {m[f'revisit.gain.psnr.{g}']:+.2f} dB{_ci(m, 'psnr', g)} (share of oracle "
              f"{'-' if share is None else f'{share:.2f}'}), oracle {m[f'revisit.gain.oracle_psnr.{g}']:+.2f} dB"
              f"{_ci(m, 'oracle_psnr', g)}, "
              f"self-PSNR gain {m[f'revisit.gain.self_psnr.{g}']:+.2f} dB")
        if f"revisit.gain.envpose_psnr.{g}" not in m:
            continue  # walk-back trials: no poses
        env, own = m[f"revisit.gain.envpose_share_of_oracle.{g}"], m[f"revisit.gain.share_of_envpose.{g}"]
        print(f"         with env poses {m[f'revisit.gain.envpose_psnr.{g}']:+.2f} dB{_ci(m, 'envpose_psnr', g)} (share of oracle "
              f"{'-' if env is None else f'{env:.2f}'}); own keys reach {'-' if own is None else f'{own:.2f}'} of it "
              f"with {m[f'revisit.memory.closures.{g}']:.1f} loop closures a trial; appearance only "
              f"{m[f'revisit.gain.appearance_psnr.{g}']:+.2f} dB{_ci(m, 'appearance_psnr', g)}")
        own, off = (m.get(f"revisit.{a}.own_return_psnr.{g}") for a in ("memory", "no_memory"))
        print(f"         returns by the world's own reckoning: {_db(own)} with memory over "
              f"{m[f'revisit.memory.own_returns.{g}']} returns, {_db(off)} without over "
              f"{m[f'revisit.no_memory.own_returns.{g}']}; its pose moved on {m[f'revisit.memory.own_moved.{g}']:.2f} of "
              f"the imagined steps (the real walk {m[f'revisit.real_moved.{g}']:.2f})")
    print(f"  play speed after {m['memory.history_steps']} steps: {m['memory.fps_on']:.1f} FPS with memory, "
          f"{m['memory.fps_off']:.1f} without (cost {100 * m['memory.speed_cost']:.0f} %); "
          f"{m['memory.bytes_per_frame']:.0f} bytes per remembered frame")
    return m


def run(args) -> int:
    check_out(args.json, ".json", "--json")
    check_out(args.svg, ".svg", "--svg")
    world = load_world(args.world, device=args.device)
    apply_sampler_args(world, args)
    m = run_revisit(world, args, progress=args.progress, seed=args.seed)
    m["meta.sampler_steps"], m["meta.sampler_temperature"] = world.sampler.steps, world.sampler.temperature
    m["meta.sampler_guidance"] = world.sampler.guidance
    if args.json:
        atomic_write_json(args.json, m, indent=1, sort_keys=True)
        print(f"wrote {args.json}")
    if args.svg:
        atomic_write_text(args.svg, revisit_curves_svg(m))
        print(f"wrote {args.svg}")
    if args.update_card:
        world.update_model_card(revisit=m)
        print(f"updated the model card in {args.world}/world.json")
    return 0


def _ci(m: dict, gain: str, g: int) -> str:
    """The 95 % interval of a gain over memory off (trials resampled) as " [lo, hi]", where there is one."""
    ci = m.get(f"revisit.gain.{gain}_ci.{g}")
    return "" if ci is None else f" [{ci[0]:+.2f}, {ci[1]:+.2f}]"


def _db(v) -> str:
    return "-" if v is None else f"{v:.2f} dB"
