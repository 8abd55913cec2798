"""`maskworld data info|verify|merge`: inspect, check and join episode stores."""

from __future__ import annotations

import argparse
import sys


def register(sub) -> None:
    p = sub.add_parser("data", help="inspect, verify or merge episode stores",
                       description="Inspect (info), check (verify) or join (merge) episode stores.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    pi = dsub.add_parser("info", help="episodes, frames, env, actions, splits, size on disk")
    pi.add_argument("data", metavar="DATA", help="store directory or fsspec URL")
    pi.set_defaults(func=run_info)
    pv = dsub.add_parser("verify", help="check shard checksums and decode every episode (exit 1 on problems)")
    pv.add_argument("data", metavar="DATA")
    pv.set_defaults(func=run_verify)
    pm = dsub.add_parser("merge", help="join stores with the same env/size/actions into OUT (ids renumbered)")
    pm.add_argument("out", metavar="OUT", help="new store directory (must not exist)")
    pm.add_argument("inputs", nargs="+", metavar="DATA")
    pm.set_defaults(func=run_merge)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)


def run_info(args: argparse.Namespace) -> int:
    from maskworld.data.store import EpisodeStore

    s = EpisodeStore(args.data)
    m = s.meta
    train, val = s.split()
    lengths = [s.length(i) for i in s.episode_ids]
    print(f"store       {args.data}")
    print(f"env         {m.get('env_id')}  size {m.get('size')}  view {m.get('view') or '-'}  source {m.get('source', '-')}")
    print(f"episodes    {len(s)}  (length min {min(lengths, default=0)} / mean "
          f"{(sum(lengths) / max(len(lengths), 1)):.1f} / max {max(lengths, default=0)})")
    print(f"frames      {s.num_frames}  ({s.num_transitions} transitions)")
    if m.get("has_actions"):
        print(f"actions     {m.get('num_actions')}: {', '.join(m.get('action_meanings', []))}")
    else:
        print("actions     none (video): actions are -1")
    print(f"info keys   {', '.join(m.get('info_keys', [])) or '-'}")
    print(f"policy      {m.get('policy')}  seed {m.get('seed')}  shard {m.get('shard', '-')}")
    print(f"split       train {len(train)} / val {len(val)} episodes (seed 0, 10% val)")
    print(f"shards      {len(s.shards)}  ({_human(s.nbytes)} on disk)")
    if m.get("command"):
        print(f"command     {m['command']}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from maskworld.data.store import EpisodeStore

    s = EpisodeStore(args.data)
    problems = s.verify()
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"{args.data}: {len(problems)} problem(s) in {len(s.shards)} shards", file=sys.stderr)
        return 1
    print(f"{args.data}: ok ({len(s)} episodes, {s.num_frames} frames, {len(s.shards)} shards verified)")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from maskworld.data.store import merge_stores

    stats = merge_stores(args.out, args.inputs, command=args.command_line)
    print(f"merged {stats['episodes']} episodes ({stats['frames']} frames, {stats['shards']} shards) into {args.out}")
    return 0
