"""`maskworld demo`: play a shipped world; `maskworld demo --train`: the whole pipeline on a CPU.

    maskworld demo                    # play the default world (MiniGrid FourRooms)
    maskworld demo --list             # the shipped worlds
    maskworld demo --world NAME       # play another shipped world (a world of several agents: shared, join from a
                                      # second tab)
    maskworld demo --train            # collect, train and roll out a tiny world of your own

--train: collect a small data set from MiniGrid (egocentric view), train a tiny world for a few
minutes with progress bars, and write a ground-truth | generated rollout video.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from maskworld import worlds


def register(sub) -> None:
    p = sub.add_parser("demo", help="play a shipped world (or --train: collect, train and roll out a tiny world)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world", default=worlds.DEFAULT, help="shipped world to play (see --list)")
    p.add_argument("--list", action="store_true", help="list the shipped worlds and exit")
    p.add_argument("--train", action="store_true", help="run the collect -> train -> rollout pipeline instead of playing")
    p.add_argument("--out", default="demo_out", help="working folder for --train (data, world, video)")
    p.add_argument("--env", default="MiniGrid-FourRooms-v0", help="environment for --train")
    p.add_argument("--steps", type=int, default=20000, help="environment steps to collect for --train")
    p.add_argument("--minutes", type=float, default=6.0, help="training budget for --train")
    p.add_argument("--preset", default="tiny", choices=["tiny", "compact", "small", "base"])
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1")
    p.set_defaults(func=run)


def _run(cmd: list[str]) -> None:
    print("$ " + " ".join(cmd), flush=True)
    rc = subprocess.call(cmd)
    if rc:
        raise SystemExit(rc)


def run(args) -> int:
    me = [sys.executable, "-m", "maskworld"]
    available = worlds.shipped()
    if args.list or (not args.train and args.world not in available):
        if not args.list:
            print(f"maskworld demo: no shipped world named {args.world!r}", file=sys.stderr)
        width = max(map(len, available), default=0)
        for name, path in available.items():
            print(f"  {name:{width}s}  {worlds.describe(path)}")
        print("play one with `maskworld demo --world NAME` (or `make demo WORLD=NAME`)")
        return 0 if args.list else 2
    if not args.train:
        others = [n for n in available if n != args.world]
        if others:
            print(f"maskworld demo: playing {args.world!r}; also shipped: {', '.join(others)} "
                  "(`maskworld demo --world NAME`, `make demo WORLD=NAME`)", flush=True)
        extra = []
        if worlds.agents(available[args.world]) > 1:  # several avatars: a persistent instance every tab shares
            extra = ["--persistent", f"demo-{args.world}"]
            print(f"maskworld demo: {args.world!r} is a world of several agents, played shared: open the URL in a "
                  "second tab (or browser) and press G in each to take an avatar", flush=True)
        return subprocess.call(me + ["play", str(available[args.world]), "--host", args.host, "--port", str(args.port)]
                               + extra)
    out = Path(args.out)
    data, world, video = out / "data", out / "world", out / "rollout.mp4"
    _run(me + ["collect", "--env", args.env, "--steps", str(args.steps), "--out", str(data), "--num-envs", "2",
               "--policy", "explore", "--seed", "0"])
    resume = ["--resume"] if (world / "_work").exists() else []
    _run(me + ["train", "world", "--data", str(data), "--out", str(world), "--preset", args.preset,
               "--minutes", str(args.minutes)] + resume)
    _run(me + ["rollout", str(world), "--data", str(data), "--out", str(video), "--episodes", "4", "--horizon", "24"])
    print(f"\ndemo done: world in {world}, video in {video} (left: ground truth, right: the world's imagination)")
    return 0
