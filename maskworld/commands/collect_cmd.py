"""`maskworld collect`: run an environment with a simple policy and store the episodes."""

from __future__ import annotations

import argparse

from maskworld.errors import UserError


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected i/n such as 0/4, not {text!r}") from None
    return i, n


def register(sub) -> None:
    p = sub.add_parser(
        "collect",
        help="collect episodes from an environment into an episode store",
        description=(
            "Run --num-envs copies of an environment with a simple policy and store frames, actions, "
            "rewards and episode ends in DATA (shards + manifest, crash-safe). Rerunning the same "
            "command resumes; --shard i/n makes disjoint partitions for `maskworld data merge`. "
            "Prints stored frames/s next to the raw env step rate."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--env", required=True, help="environment id, e.g. ALE/Breakout-v5, MiniGrid-FourRooms-v0, "
                   "crafter, procgen:coinrun (see `maskworld envs`)")
    p.add_argument("--steps", type=int, required=True, help="transitions the store should hold")
    p.add_argument("--out", required=True, help="store directory (created; resumed if it exists)")
    p.add_argument("--policy", default="random",
                   help="random: uniform; sticky: repeat previous action w.p. 0.75; explore: favour "
                   "movement actions and hold them for a few steps; bot: the env's expert (BabyAI levels); "
                   "a mix such as bot:0.7,explore:0.3 draws each episode's policy with these weights")
    p.add_argument("--num-envs", type=int, default=2, help="parallel env worker processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=64, help="frames are resized to size x size")
    p.add_argument("--view", default="partial", choices=["partial", "full"], help="MiniGrid view")
    p.add_argument("--max-episode-steps", type=int, default=None, help="cut episodes at this length")
    p.add_argument("--shard", type=_shard, default=(0, 1), metavar="i/n",
                   help="collect partition i of n of the episode seeds")
    p.add_argument("--frames-per-shard", type=int, default=4096, help="frames per shard file")
    p.add_argument("--agents", type=int, default=None, help="MultiAgent-Coins-v0: agents acting at once (2-4, default 2)")
    p.add_argument("--distribution-mode", default=None, help="procgen: easy|hard|... (default easy)")
    p.add_argument("--start-level", type=int, default=None, help="procgen: first level seed")
    p.add_argument("--num-levels", type=int, default=None, help="procgen: number of levels (0 = unlimited)")
    p.add_argument("--sticky-actions", type=float, default=None, metavar="P",
                   help="ALE/<Game>-v5: probability that the emulator repeats the previous action instead of the given "
                        "one (default 0: every frame follows its action, as a playable world should; 0.25 is v5's "
                        "own default, the noise of Machado et al. 2018 for testing agents)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar: plain progress lines every MASKWORLD_PROGRESS_INTERVAL seconds (default 30)")
    p.set_defaults(func=run)


# option -> (env ids it applies to, their name in a message, its check or None, the env's keyword, default for those
# envs or None)
ENV_OPTIONS = {
    "distribution_mode": ("procgen:", "procgen:<game>", None, "distribution_mode", None),
    "start_level": ("procgen:", "procgen:<game>", None, "start_level", None),
    "num_levels": ("procgen:", "procgen:<game>", None, "num_levels", None),
    # Default 0: a world learns what each action does, and v5's sticky actions (p = 0.25) make a quarter of the
    # presses do what the previous one did, so a world trained on them hedges and plays that way (DreamerV3's
    # Atari 100k configs leave them off too). On Breakout, one CPU hour, they cost the world 6 dB one step ahead and
    # about half its response to its actions (docs/results.md).
    "sticky_actions": ("ALE/", "ALE/<Game>-v5", (lambda v: 0.0 <= v <= 1.0, "give a probability in [0, 1]"),
                       "repeat_action_probability", 0.0),
    "agents": ("MultiAgent-", "multi-agent (MultiAgent-Coins-v0)", (lambda v: 2 <= v <= 4, "give 2, 3 or 4"), "agents",
               None),
}


def env_options(args: argparse.Namespace) -> dict:
    """The env-specific options given (or defaulted for the env), checked against the env id, as the env's keyword
    arguments."""
    out = {}
    for name, (prefix, envs, check, key, default) in ENV_OPTIONS.items():
        v = getattr(args, name)
        if v is None and args.env.startswith(prefix):
            v = default
        if v is None:
            continue
        flag = "--" + name.replace("_", "-")
        if not args.env.startswith(prefix):
            raise UserError(f"{flag} applies to {envs} envs only")
        if check is not None and not check[0](v):
            raise UserError(f"{flag} {v}: {check[1]}")
        out[key] = v
    return out


def run(args: argparse.Namespace) -> int:
    from maskworld.data.collect import CollectConfig, collect, format_stats
    from maskworld.progress import summary

    env_kwargs = env_options(args)
    if args.frames_per_shard < 1:
        raise UserError("--frames-per-shard must be >= 1")
    cfg = CollectConfig(
        env_id=args.env, steps=args.steps, out=args.out, policy=args.policy, num_envs=args.num_envs,
        seed=args.seed, size=args.size, view=args.view, max_episode_steps=args.max_episode_steps,
        shard=args.shard, frames_per_shard=args.frames_per_shard, progress=not args.no_progress,
        env_kwargs=env_kwargs, command=args.command_line,
    )
    stats = collect(cfg)
    text = format_stats(stats, args.out)
    if text:
        print(text)
        summary("collect", steps=stats["steps"], steps_unit="steps", minutes=stats["seconds"] / 60,
                throughput=stats["frames_per_s"], unit="frames/s", metric={"episodes": stats["episodes"]})
    return 0
