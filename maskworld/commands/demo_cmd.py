"""`maskworld demo`: play the shipped world; `maskworld demo --train`: the whole pipeline on a CPU.

--train: collect a small data set from MiniGrid (egocentric view), train a tiny world for a few
minutes with progress bars, and write a ground-truth | generated rollout video.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("demo", help="play the shipped world (or --train: collect, train and roll out a tiny world)",
                       description=__doc__)
    p.add_argument("--train", action="store_true", help="run the collect -> train -> rollout pipeline instead of playing")
    p.add_argument("--out", default="demo_out", help="working folder for --train (data, world, video)")
    p.add_argument("--env", default="MiniGrid-FourRooms-v0", help="environment for --train")
    p.add_argument("--steps", type=int, default=20000, help="environment steps to collect for --train")
    p.add_argument("--minutes", type=float, default=6.0, help="training budget for --train")
    p.add_argument("--preset", default="tiny", choices=["tiny", "small", "base"])
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
    if not args.train:
        return subprocess.call(me + ["play", "--host", args.host, "--port", str(args.port)])
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
