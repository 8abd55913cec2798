"""`maskworld envs`: the environment ids maskworld knows, and how to spell any other."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("envs", help="list known environment ids",
                       description="List curated environment ids for `maskworld collect --env`, "
                       "and how to spell any Gymnasium or Procgen id.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from maskworld.envs.adapter import list_envs

    known, note = list_envs()
    width = max(len(i) for i, _ in known)
    for env_id, desc in known:
        print(f"{env_id:<{width}}  {desc}")
    print()
    print(note)
    return 0
