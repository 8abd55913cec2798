"""`maskworld eval WORLD --data DATA [--json out.json] [--html report.html] [--out DIR] [--strict]`: the evaluation protocol."""

from __future__ import annotations

import argparse
from pathlib import Path

from maskworld import load_world
from maskworld.commands._args import add_revisit_args, add_sampler_args, apply_sampler_args, check_out, parse_ints
from maskworld.commands.revisit_cmd import run_revisit
from maskworld.errors import UserError
from maskworld.io import atomic_write_json
from maskworld.world.compose import RENDER_MODES

EXAMPLES = """examples:
  maskworld eval worlds/minigrid --data data/minigrid --html report.html --json eval.json
  maskworld eval worlds/minigrid --data data/minigrid --episodes 50 --seed 1 --update-card
  maskworld eval worlds/landmarks --data data/landmarks --revisit      # + the memory benchmark
  maskworld eval worlds/minigrid --data data/minigrid --out eval/ --strict   # files + exit 3 on too few episodes
  maskworld eval worlds/babyai --data data/babyai --dedicated-dynamics worlds/babyai-dyn --json unified.json
How to read the report and every JSON key: docs/eval.md; a unified world's tasks: docs/unified.md
"""


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a world on held-out episodes (PSNR/SSIM, controllability, rewards)",
                       description="Metrics on the world's held-out episodes: tokenizer reconstruction, next-frame and "
                                   "open-loop PSNR/SSIM against copy-last and tokenizer baselines, delta-PSNR and "
                                   "inverse-dynamics action following, reward and termination accuracy.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("world", help="world directory")
    p.add_argument("--data", required=True, help="an episode store holding the world's held-out episodes: the one it was trained on, or "
                   "one made again by the same `maskworld collect` command (they are found by content)")
    p.add_argument("--json", help="write the flat metrics dict here")
    p.add_argument("--html", help="write a self-contained HTML report here")
    p.add_argument("--out", help="write eval.json, report.html and the pictures (GIFs ground truth | generated, PNG strips) "
                                 "into this folder (created)")
    p.add_argument("--strict", action="store_true",
                   help="exit with status 3 (before evaluating) when fewer held-out episodes than --episodes are available")
    p.add_argument("--episodes", type=int, default=20, help="held-out episodes to evaluate (default 20)")
    p.add_argument("--windows", type=int, default=20,
                   help="open-loop rollouts in all (default 20): when fewer held-out episodes than this are long enough, "
                        "each gives several non-overlapping windows; intervals still resample whole episodes")
    p.add_argument("--seed", type=int, default=0, help="seed for episode choice, sampling and random actions")
    p.add_argument("--idm-steps", type=int, default=300, help="training steps of the inverse-dynamics model "
                   "(default 300; for a unified world: the pixel IDM beside its inverse dynamics)")
    add_sampler_args(p)
    p.add_argument("--render", choices=RENDER_MODES, help="override how imagined frames are shown: tokens (the "
                   "tokenizer's rendering) or composite (only cells whose token changed are redrawn); default: the world's")
    p.add_argument("--avatar-slices", type=int, default=4, metavar="N",
                   help="worlds of several agents: slices per held-out episode of the per-avatar control test (default "
                        "4; more for tighter numbers, each costs a rollout per avatar)")
    p.add_argument("--update-card", action="store_true", help="write the metrics into the world's model card (world.json)")
    p.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, ...")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.add_argument("--revisit", action="store_true", help="also run the memory benchmark (`maskworld revisit`; MiniGrid worlds)")
    add_revisit_args(p, prefix="revisit-")
    u = p.add_argument_group("unified worlds (--kind unified): every task, each beside its dedicated model")
    u.add_argument("--tasks", help="comma-separated: dynamics, inverse, policy, from_words, describe (default all)")
    u.add_argument("--policy-episodes", type=int, default=100, help="real-environment episodes (held-out seeds) per policy")
    u.add_argument("--words", type=int, default=100, help="held-out instructions for the world from words")
    u.add_argument("--dedicated-dynamics", metavar="WORLD", help="a dynamics world (`train world`) on the same data")
    u.add_argument("--dedicated-idm", metavar="WORLD", help="a unified world trained with --tasks inverse")
    u.add_argument("--dedicated-policy", metavar="WORLD", help="a unified world trained with --tasks policy")
    p.set_defaults(func=run)


def run_unified(args, json_path: str | None) -> int:
    """`maskworld eval` of a unified world: evaluate_unified, printed and written as JSON."""
    from maskworld.data.store import EpisodeStore
    from maskworld.eval.unified_eval import evaluate_unified
    from maskworld.world.unified import load_unified_world

    tasks = [t.strip() for t in args.tasks.split(",")] if args.tasks else None
    known = ("dynamics", "inverse", "policy", "from_words", "describe")
    if tasks and any(t not in known for t in tasks):
        raise UserError(f"--tasks {args.tasks}: choose from {', '.join(known)}")
    if args.policy_episodes < 1 or args.words < 1:
        raise UserError("--policy-episodes and --words must be at least 1")
    world = load_unified_world(args.world, device=args.device)
    apply_sampler_args(world, args)
    ded = {k: getattr(args, f"dedicated_{k}") for k in ("dynamics", "idm", "policy")}
    if ded["dynamics"]:
        ded["dynamics"] = load_world(ded["dynamics"], device=args.device)
    for k in ("idm", "policy"):
        if ded[k]:
            ded[k] = load_unified_world(ded[k], device=args.device)
    metrics = evaluate_unified(world, EpisodeStore(args.data), episodes=args.episodes, policy_episodes=args.policy_episodes,
                               words=args.words, seed=args.seed, dedicated_dynamics=ded["dynamics"] or None,
                               dedicated_idm=ded["idm"] or None, dedicated_policy=ded["policy"] or None, tasks=tasks,
                               progress=args.progress, idm_steps=args.idm_steps)
    for k, v in metrics.items():
        shown = (f"{v:.3f}" if isinstance(v, float) else
                 f"[{v[0]:.3f}, {v[1]:.3f}]" if isinstance(v, list) and len(v) == 2 else v)
        print(f"  {k:42s} {shown}")
    if json_path:
        atomic_write_json(json_path, metrics, indent=1, sort_keys=True)
        print(f"wrote {json_path}")
    if args.update_card:
        world.update_model_card(eval=metrics)
        print(f"updated the model card in {args.world}/world.json")
    return 0


def _summary(metrics: dict) -> None:
    inv = set(metrics.get("meta.invalid_keys") or [])
    for k in ("tokenizer.psnr", "tokenizer.changed_tokens", "tokenizer.churn",
              "next_frame.psnr", "control.delta_psnr", "control.action_spread", "control.seed_spread",
              "control.idm_accuracy", "control.idm_accuracy_real",
              "control.chance", "reward.accuracy", "reward.balanced_accuracy", "reward.majority", "termination.accuracy",
              "termination.balanced_accuracy", "termination.majority"):
        v, ci = metrics.get(k), metrics.get(f"{k}.ci")
        text = f"{v:.3f}" if isinstance(v, float) else f"{v}"
        text += f"  [{ci[0]:.3f}, {ci[1]:.3f}]" if ci and None not in ci else ""
        print(f"  {k:30s} {text}{'  INVALID (probe failed its check)' if k in inv else ''}")
    for h in metrics["meta.horizons"]:
        ci = metrics.get(f"rollout.psnr.{h}.ci") or [float("nan")] * 2
        print(f"  horizon {h:2d}: world {metrics[f'rollout.psnr.{h}']:.2f} dB [{ci[0]:.2f}, {ci[1]:.2f}], "
              f"copy-last {metrics[f'baseline.copy_last.psnr.{h}']:.2f} (through the tokenizer "
              f"{metrics[f'baseline.copy_last_tok.psnr.{h}']:.2f}), tokenizer {metrics[f'baseline.tokenizer.psnr.{h}']:.2f}, "
              f"mean-colour gap {metrics.get(f'rollout.mean_colour_gap.{h}') or 0:.1f}, "
              f"{_paired(metrics, 'rollout.below_tokenizer', h)} below the tokenizer, "
              f"{metrics[f'rollout.windows.{h}']} windows of {metrics[f'rollout.episodes.{h}']} episodes")
    for w in metrics.get("meta.warnings") or []:
        print(f"WARNING: {w}")


def _paired(metrics: dict, key: str, h: int) -> str:
    v, ci = metrics.get(f"{key}.{h}"), metrics.get(f"{key}.{h}.ci")
    if v is None:
        return "?"
    return f"{v:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci and None not in ci else "")


def _outputs(args) -> tuple[str | None, str | None]:
    """(json path, html path): --json/--html, or eval.json/report.html inside --out."""
    check_out(args.json, ".json", "--json")
    check_out(args.html, ".html", "--html")
    if args.out is None:
        return args.json, args.html
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {args.out}: exists and is not a folder")
    if not out.parent.exists():
        raise UserError(f"--out {args.out}: folder {out.parent} does not exist; create it first")
    return args.json or str(out / "eval.json"), args.html or str(out / "report.html")


def _avatar_metrics(world, store, seed: int, slices_per_episode: int = 4) -> dict:
    """Per-avatar delta-PSNR (eval/avatars.py) and each avatar kept on its cell (eval/avatar_cells.py) on the
    held-out split, in the env's own cells."""
    from maskworld.data.held_out import world_split
    from maskworld.envs import room_cells
    from maskworld.eval.avatar_cells import avatar_cells
    from maskworld.eval.avatars import avatar_control

    _, val, _ = world_split(store, world.meta.model_card.get("split", {}))
    room = room_cells(store.meta)
    out = avatar_control(world, store, val, room=room, seed=seed, slices_per_episode=slices_per_episode)
    out.update(avatar_cells(world, store, val, room=room, seed=seed, slices_per_episode=slices_per_episode))
    return out


def run(args) -> int:
    from maskworld.data.store import EpisodeStore
    from maskworld.eval.evaluate import evaluate

    if args.episodes < 1:
        raise UserError(f"--episodes {args.episodes}: give at least 1")
    if args.windows < 1:
        raise UserError(f"--windows {args.windows}: give at least 1")
    if args.avatar_slices < 1:
        raise UserError(f"--avatar-slices {args.avatar_slices}: give at least 1")
    if args.idm_steps < 1:
        raise UserError(f"--idm-steps {args.idm_steps}: give at least 1")
    json_path, html_path = _outputs(args)
    from maskworld.world.unified import is_unified_dir

    if is_unified_dir(args.world):
        return run_unified(args, json_path)
    world = load_world(args.world, device=args.device)
    apply_sampler_args(world, args)
    if args.render is not None:
        world.render = args.render
    store = EpisodeStore(args.data)
    if args.revisit:  # checked before the long protocol runs
        parse_ints(args.revisit_gaps, "--revisit-gaps")
        if args.revisit_memory_k:
            parse_ints(args.revisit_memory_k, "--revisit-memory-k")
    metrics, artifacts = evaluate(world, store, episodes=args.episodes, seed=args.seed, idm_steps=args.idm_steps,
                                  progress=args.progress, world_path=args.world, data_path=args.data, strict=args.strict,
                                  windows=args.windows)
    metrics["meta.sampler_steps"] = world.sampler.steps
    metrics["meta.sampler_temperature"] = world.sampler.temperature
    metrics["meta.sampler_guidance"] = world.sampler.guidance
    metrics["meta.sampler_free_temperature"] = world.sampler.free_temperature
    metrics["meta.rollout"] = getattr(world, "rollout", "joint")
    if getattr(world.meta, "agents", 1) > 1:  # each avatar answers to its own controller
        metrics.update(_avatar_metrics(world, store, args.seed, args.avatar_slices))
        for k in sorted(k for k in metrics if k.startswith("avatars.")):
            v = metrics[k]
            if isinstance(v, list):  # an interval
                v = "[" + ", ".join(f"{x:.3f}" for x in v) + "]"
            print(f"  {k:30s} {v:.3f}" if isinstance(v, float) else f"  {k:30s} {v}")
    _summary(metrics)
    if args.revisit:
        metrics.update(run_revisit(world, args, prefix="revisit-", progress=args.progress, seed=args.seed))
    if args.out:
        from maskworld.eval.report import write_files

        Path(args.out).mkdir(exist_ok=True)
        files = write_files(args.out, artifacts)
        print(f"wrote {len(files)} pictures (GIF, PNG) into {args.out}")
    if json_path:
        atomic_write_json(json_path, metrics, indent=1, sort_keys=True)
        print(f"wrote {json_path}")
    if html_path:
        from maskworld.eval.report import write_html

        write_html(html_path, metrics, artifacts)
        print(f"wrote {html_path}")
    if args.update_card:
        world.update_model_card(eval=metrics)
        print(f"updated the model card in {args.world}/world.json")
    return 0
