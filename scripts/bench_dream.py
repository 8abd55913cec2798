"""Dream-env speed: `DreamVectorEnv` at batch N (one `world.step_many` per step) vs N single `DreamEnv`s
stepped one at a time, in the same run (issue 8). Prints a line and writes `maskworld bench`-style JSON.

    python scripts/bench_dream.py                                  # the shipped world, batch 64
    python scripts/bench_dream.py WORLD --num-envs 64 --json dream_bench.json
    python scripts/bench_dream.py --device cuda --threads 8

Threads: torch's default (one per core) oversubscribes a shared machine and makes timings swing by
several x; the default here is half the cores (1 on a 2-core box), set once for both sides.
"""

from __future__ import annotations

import argparse
import json
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
    a = ap.parse_args(argv)

    import torch

    from maskworld.agents.dream_env import resolve_world
    from maskworld.agents.vector_env import bench_vector_env
    from maskworld.device import pick_device
    from maskworld.errors import UserError
    from maskworld.world.world import atomic_write_text

    torch.set_num_threads(a.threads)
    try:
        if a.json and not Path(a.json).parent.exists():
            raise UserError(f"--json {a.json}: folder {Path(a.json).parent} does not exist")
        world = resolve_world(a.world, device=str(pick_device(a.device)))
        t0 = time.time()
        m = bench_vector_env(world, num_envs=a.num_envs, iters=a.iters, warmup=a.warmup, seed=a.seed)
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
    if a.json:
        atomic_write_text(Path(a.json), json.dumps(m, indent=1, sort_keys=True))
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
