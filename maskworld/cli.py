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
    "maskworld.commands.unified_cmd",
    "maskworld.commands.revisit_cmd",
    "maskworld.commands.bench_cmd",
    "maskworld.commands.play_cmd",
    "maskworld.commands.sessions_cmd",
    "maskworld.commands.host_cmd",
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
        importlib.import_module(name).register(sub)
    _attach_examples(parser)
    return parser


def iter_commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """Yield (path, help, subparser) for every subcommand, depth first, in `--help` order.

    path is the command after `maskworld`, e.g. ("train", "world").
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sp in action.choices.items():
                path = prefix + (name,)
                yield path, helps.get(name) or "", sp
                yield from iter_commands(sp, path)


def _attach_examples(parser: argparse.ArgumentParser) -> None:
    """Give every subcommand without an epilog the examples of maskworld.commands.examples."""
    from maskworld.commands.examples import EXAMPLES

    for path, _, sp in iter_commands(parser):
        text = EXAMPLES.get(" ".join(path))
        if sp.epilog or not text:
            continue
        sp.epilog = text
        # Keep the command's own formatter (e.g. its defaults in the help) and add raw epilog layout.
        base = sp.formatter_class
        if not issubclass(base, argparse.RawDescriptionHelpFormatter):
            sp.formatter_class = type("ExamplesFormatter", (argparse.RawDescriptionHelpFormatter, base), {})


def commands_markdown(parser: argparse.ArgumentParser | None = None) -> str:
    """The README's command table: every command with subcommands expanded, and its one-line help.

    Regenerate with `python -c "import maskworld.cli as c; print(c.commands_markdown())"`.
    """
    parser = parser or build_parser()
    rows = ["| command | what it does |", "|---|---|"]
    for path, help_, sp in iter_commands(parser):
        if any(isinstance(a, argparse._SubParsersAction) for a in sp._actions):
            continue  # a group such as `data`: its subcommands have the rows
        text = help_.replace("|", "\\|")
        rows.append(f"| `maskworld {' '.join(path)}` | {text} |")
    return "\n".join(rows) + "\n"


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
