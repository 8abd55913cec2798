"""`maskworld train locator`: give a world of several agents its avatar locator (and choose how it decodes)."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  maskworld train locator --world worlds/coins --data data/coins
  maskworld train locator --world worlds/coins --data data/coins --rollout factorised  # even without --agent-dropout
  maskworld eval worlds/coins --data data/coins --episodes 10 --rollout joint      # compare the two decodings
"""


def register_train_locator(tsub) -> None:
    p = tsub.add_parser("locator", help="where each avatar is (worlds of several agents): lets the world decode each "
                        "avatar's neighbourhood from its own action", epilog=EXAMPLES,
                        description="Fit the avatar locator of a world trained on joint actions, on the data's "
                                    "agents_pos, and write it into the world directory (world/factorised.py).",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world", required=True, help="the world directory (trained on a multi-agent env's data)")
    p.add_argument("--data", required=True, help="the episode store it was trained on (records agents_pos)")
    p.add_argument("--steps", type=int, default=600, help="optimizer steps (default 600: under a minute on a CPU)")
    p.add_argument("--rollout", choices=("auto", "factorised", "joint"), default="auto",
                   help="how the world decodes from now on (default auto: factorised for a world trained with "
                        "--agent-dropout, which can be asked with the others' actions unknown, else joint)")
    p.add_argument("--seed", type=int, default=0, help="seed of the locator's initialisation and batches")
    p.set_defaults(func=run)


def run(args) -> int:
    from maskworld.data.store import EpisodeStore
    from maskworld.errors import UserError
    from maskworld.train.locator_train import add_locator
    from maskworld.world.world import load_world

    if args.steps < 1:
        raise UserError(f"--steps {args.steps}: give at least 1")
    world = load_world(args.world, device="cpu")
    if world.path is None:
        raise UserError(f"{args.world}: a locator is written into a local world directory")
    store = EpisodeStore(args.data)
    command = getattr(args, "command_line", None) or f"maskworld train locator --world {args.world} --data {args.data}"
    rollout, m = add_locator(world, store, args.rollout, steps=args.steps, seed=args.seed, locator_command=command)
    print(f"[locator] held-out: every avatar on its cell in {m['accuracy']:.3f} of {m['val_frames']} frames "
          f"({m['cell_accuracy']:.3f} of avatars; the commonest cell {m['majority']:.3f}); {m['train_s']} s")
    print(f"[locator] wrote {world.path}/locator.safetensors; rollout {rollout}")
    return 0
