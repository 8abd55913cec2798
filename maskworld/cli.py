"""`maskworld` command line: one subcommand per module, registered lazily.

Each command module exposes `register(subparsers)` which adds its parser(s) and sets
`func=<callable(args) -> int>`. Modules keep heavy imports (torch, gymnasium) inside their
`run` functions so that `maskworld --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys

from maskworld.errors import UserError

# Order here is the order in `maskworld --help`.
COMMAND_MODULES = [
    "maskworld.commands.envs_cmd",
    "maskworld.commands.collect_cmd",
    "maskworld.commands.import_video_cmd",
    "maskworld.commands.data_cmd",
    "maskworld.commands.train_cmd",
    "maskworld.commands.map_actions_cmd",
    "maskworld.commands.rollout_cmd",
    "maskworld.commands.eval_cmd",
    "maskworld.commands.revisit_cmd",
    "maskworld.commands.bench_cmd",
    "maskworld.commands.play_cmd",
    "maskworld.commands.sessions_cmd",
    "maskworld.commands.agent_cmd",
    "maskworld.commands.demo_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maskworld",
        description="Build, evaluate and play world models learned from pixels and actions.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # command not built yet; the others still work
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    # The exact command, for manifests and model cards (not sys.argv: main() may be called in-process).
    args.command_line = "maskworld " + shlex.join(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        rc = args.func(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
