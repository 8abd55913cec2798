"""Command-line arguments that several commands share (`maskworld eval --revisit-*` takes `maskworld revisit`'s flags)."""

from __future__ import annotations

from pathlib import Path

from maskworld.errors import UserError


def parse_ints(text: str, flag: str) -> tuple:
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
    p.add_argument(f"--{prefix}env", help="env of the trials (default: the world's): a MiniGrid layout env (out-and-back "
                   "with poses and landmarks) or a game with RIGHT/LEFT actions (walk-back trials, e.g. procgen:coinrun)")
    p.add_argument(f"--{prefix}memory-k", default="", help="also run arms reading only k retrieved frames, e.g. 1,2")
    p.add_argument(f"--{prefix}ablations", action="store_true",
                   help="also run retrieval_only, compressed_only and recent (choose by recency, not place) arms")
    p.add_argument(f"--{prefix}history", type=int, default=1000, help="steps of history for the memory speed cost (default 1000)")


def check_out(path: str | None, suffix: str, flag: str) -> None:
    """An output file name given with `flag`: the right suffix, in a folder that exists (checked before any work)."""
    if path is None:
        return
    p = Path(path)
    if p.suffix.lower() != suffix:
        raise UserError(f"{flag} {path}: expected a {suffix} file name")
    if not p.parent.exists():
        raise UserError(f"{flag} {path}: folder {p.parent} does not exist; create it first")


def add_sampler_args(p) -> None:
    """--sampler-steps / --temperature / --guidance / --free-temperature: decode with other MaskGIT settings than the
    world's (chosen by measuring)."""
    p.add_argument("--sampler-steps", type=int,
                   help="override the world's MaskGIT steps K (to choose K by measurement)")
    p.add_argument("--temperature", type=float, help="override the world's sampling temperature (0 = greedy)")
    p.add_argument("--guidance", type=float,
                   help="classifier-free guidance, 0 = none: by the action in a world trained with --action-dropout "
                        "(more follows the action more, at two passes a step); by the words in a unified world's "
                        "world from words (its default 6); default: the world's")
    p.add_argument("--free-temperature", metavar="T|off",
                   help="worlds decoded avatar by avatar: the temperature at which the cells no avatar covers are "
                        "drawn again given the avatars' cells, or off (no second stage); default: the world's")
    p.add_argument("--rollout", choices=("joint", "factorised"),
                   help="worlds of several agents: decode every avatar's neighbourhood from its own action "
                        "(factorised; needs the world's locator) or all from the joint action; default: the world's")


def apply_sampler_args(world, args) -> None:
    """Set the world's sampler from --sampler-steps / --temperature / --guidance / --free-temperature (and its
    --rollout) where given; bad values are refused."""
    if args.sampler_steps is not None:
        if args.sampler_steps < 1:
            raise UserError(f"--sampler-steps {args.sampler_steps}: give at least 1")
        world.sampler.steps = args.sampler_steps
    if args.temperature is not None:
        if not args.temperature >= 0:
            raise UserError(f"--temperature {args.temperature}: give 0 (greedy) or more")
        world.sampler.temperature = args.temperature
    if getattr(args, "guidance", None) is not None:
        if not 0 <= args.guidance <= 100:
            raise UserError(f"--guidance {args.guidance}: give a scale from 0 (no guidance) to 100")
        if hasattr(world, "guidance"):  # a unified world: guidance by the words of its world from words
            world.guidance = args.guidance
        else:
            world.sampler.guidance = args.guidance
    if getattr(args, "free_temperature", None) is not None:
        world.sampler.free_temperature = _free_temperature(args.free_temperature)
    if getattr(args, "rollout", None) is not None:
        if args.rollout == "factorised" and getattr(world, "locator", None) is None:
            raise UserError("--rollout factorised needs a world of several agents with a locator; add one with "
                            "`maskworld train locator --world WORLD --data DATA`")
        world.rollout = args.rollout


def _free_temperature(text: str) -> float | None:
    """--free-temperature: a temperature >= 0, or off (None)."""
    if text == "off":
        return None
    try:
        t = float(text)
    except ValueError:
        t = -1.0
    if not t >= 0:
        raise UserError(f"--free-temperature {text}: give a temperature of 0 (greedy) or more, or off")
    return t
