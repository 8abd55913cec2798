"""Dream-env speed: `DreamVectorEnv` at batch N (one `world.step_many` per step) vs N single `DreamEnv`s
stepped one at a time, in the same run. Prints a line and writes `maskworld bench`-style JSON.

    python scripts/bench_dream.py                                  # the shipped world, batch 64
    python scripts/bench_dream.py WORLD --num-envs 64 --json dream_bench.json
    python scripts/bench_dream.py --device cuda --threads 8

Also measured: the agent's imagination path (`maskworld.agents.imagination.imagine`: one KV cache for the
whole batch, no per-session stacking/splitting) at the same batch, as `dream.imagine.*`. `--profile N`
profiles N more rounds of each path with cProfile and prints where the time goes (top functions by own time).

Threads: torch's default (one per core) oversubscribes a shared machine and makes timings swing by
several x; the default here is half the cores (1 on a 2-core box), set once for both sides.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("world", nargs="?", default="default", help="world directory (default: the shipped world)")
    ap.add_argument("--num-envs", type=int, default=64)
    ap.add_argument("--iters", type=int, default=5, help="timed rounds (after the window-filling warmup)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: window - 1)")
    ap.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    ap.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the flat results dict here")
    ap.add_argument("--profile", type=int, default=0, help="cProfile this many extra rounds of each path and print the top ops")
    ap.add_argument("--no-imagine", dest="imagine", action="store_false", help="skip the imagination-path measurement")
    a = ap.parse_args(argv)

    import torch

    from maskworld.agents.dream_env import resolve_world
    from maskworld.agents.vector_env import bench_vector_env
    from maskworld.device import pick_device
    from maskworld.errors import UserError
    from maskworld.io import atomic_write_json

    torch.set_num_threads(a.threads)
    try:
        if a.json and not Path(a.json).parent.exists():
            raise UserError(f"--json {a.json}: folder {Path(a.json).parent} does not exist")
        world = resolve_world(a.world, device=str(pick_device(a.device)))
        t0 = time.time()
        m = bench_vector_env(world, num_envs=a.num_envs, iters=a.iters, warmup=a.warmup, seed=a.seed)
        if a.imagine:
            m.update(bench_imagine(world, a.num_envs, a.iters, m["dream.warmup_steps"], a.seed, m["dream.single.fps"]))
        if a.profile:
            m.update(profile_paths(world, a.num_envs, a.profile, m["dream.warmup_steps"], a.seed))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    m.update({"meta.world": a.world, "meta.seconds": round(time.time() - t0, 1), "machine.cores": os.cpu_count(),
              "machine.torch": torch.__version__, "machine.python": platform.python_version(),
              "machine.gpu": torch.cuda.get_device_name(0) if world.device.type == "cuda" else None})
    print(f"[bench_dream] {a.world} on {world.device} ({a.threads} threads), batch {a.num_envs}: "
          f"vector {m['dream.vector.fps']:.1f} frames/s ({m['dream.vector.ms_per_step']:.1f} ms/step), "
          f"single {m['dream.single.fps']:.1f} frames/s ({m['dream.single.ms_per_step']:.1f} ms/step): "
          f"{m['dream.speedup']:.2f}x")
    if a.imagine:
        print(f"[bench_dream] imagination path, batch {a.num_envs}: {m['dream.imagine.fps']:.1f} frames/s "
              f"({m['dream.imagine.ms_per_step']:.1f} ms/step): {m['dream.imagine.speedup']:.2f}x the single envs")
    if a.json:
        atomic_write_json(Path(a.json), m, indent=1, sort_keys=True)
        print(f"wrote {a.json}")
    return 0


def bench_imagine(world, num_envs: int, iters: int, warmup: int, seed: int, single_fps: float) -> dict:
    """Frames/s of `imagine` (random actions) at batch N: median step time over `iters` steps after `warmup`."""
    import numpy as np

    from maskworld.agents.dream_env import load_start_frames
    from maskworld.agents.imagination import imagine

    rng = np.random.default_rng(seed)
    starts = load_start_frames(world, "auto")
    if starts is None:  # no prompts.npz: imagine from the world's own first frames
        starts = np.stack([world.session(seed=seed + i).frame for i in range(num_envs)])
    starts = starts[rng.integers(0, len(starts), num_envs)]
    times, last = [], [time.perf_counter()]

    def act(obs):  # called once per step: the time between calls is one batched step
        now = time.perf_counter()
        times.append(now - last[0])
        out = rng.integers(0, world.num_actions, len(obs))
        last[0] = time.perf_counter()
        return out

    imagine(world, act, starts, warmup + iters, seed + np.arange(num_envs), heads="argmax")
    step_s = float(np.median(times[1 + warmup :] or times[1:]))  # times[0] is the batched start
    return {"dream.imagine.ms_per_step": 1000 * step_s, "dream.imagine.fps": num_envs / step_s,
            "dream.imagine.speedup": num_envs / step_s / single_fps}


def profile_paths(world, num_envs: int, rounds: int, warmup: int, seed: int, top: int = 12) -> dict:
    """cProfile `rounds` steps of the vector env and of the single envs (after `warmup` untimed steps); prints the
    top functions by own time; -> {"profile.vector": [...], "profile.single": [...]} (name, calls, own s per round)."""
    import cProfile
    import pstats

    import numpy as np

    from maskworld.agents.vector_env import paired_envs

    vec, singles = paired_envs(world, num_envs, seed)
    rng = np.random.default_rng(seed)
    acts = [rng.integers(0, world.num_actions, num_envs) for _ in range(warmup + rounds)]
    for a in acts[:warmup]:
        vec.step(a)
        for env, ai in zip(singles, a):
            env.step(ai)
    out = {}
    paths = {"vector": lambda: [vec.step(a) for a in acts[warmup:]],
             "single": lambda: [[env.step(ai) for env, ai in zip(singles, a)] for a in acts[warmup:]]}
    for name, fn in paths.items():
        pr = cProfile.Profile()
        pr.enable()
        fn()
        pr.disable()
        st = pstats.Stats(pr)
        total = st.total_tt / rounds
        rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:top]  # (file, line, func) -> (cc, nc, tt, ct, ...)
        out[f"profile.{name}"] = [[f"{Path(f).name}:{ln}({fn_})" if f != "~" else fn_, nc // rounds, tt / rounds]
                                  for (f, ln, fn_), (cc, nc, tt, ct, _) in rows]
        print(f"[bench_dream] profile, {name} path: {1000 * total:.1f} ms per round of {num_envs} frames; top own time:")
        for label, calls, tt in out[f"profile.{name}"]:
            print(f"    {1000 * tt:8.1f} ms {100 * tt / total:5.1f}%  {calls:6d} calls  {label}")
    return out


if __name__ == "__main__":
    sys.exit(main())
