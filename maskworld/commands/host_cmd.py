"""`maskworld host NAME --world W`: a persistent world that ticks on its own clock and records every tick."""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """examples:
  maskworld host town --world breakout --rate 10                # create (or resume) the instance "town"
  maskworld host town --world breakout --minutes 5              # run it for 5 minutes, then stop
  maskworld host town --world worlds/landmarks --agent agents/lm --ticks 1000
  maskworld sessions replay town                               # every tick again from tick 0, frames checked
  maskworld sessions branch town town-b --at 500                 # a new instance from tick 500
Timelines live in the user data dir (hosted/NAME.db), or --db PATH.
"""


def register(sub) -> None:
    p = sub.add_parser("host", help="a persistent world: ticks on its own clock, every tick recorded (SQLite)",
                       description="Create or resume a named world instance and advance it at --rate ticks per second, "
                                   "whether or not anyone watches: the resident agent (--agent, else a seeded random "
                                   "walk) acts for every avatar nobody holds. Every tick is committed to the instance's "
                                   "timeline, so a restart, even after SIGKILL, resumes at the last committed tick.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="instance name (letters, digits, ' ', '_', '-', '.')")
    p.add_argument("--world", default=None, help="world directory or shipped name (needed to create; a resumed instance "
                                                  "must be given the world it was recorded in)")
    p.add_argument("--rate", type=float, default=10.0, help="ticks per second of a new instance (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of a new instance (default 0)")
    p.add_argument("--agent", default=None, help="agent directory: the resident agent (default: a seeded random walk)")
    p.add_argument("--minutes", type=float, default=None, help="stop after this long (default: run until Ctrl-C)")
    p.add_argument("--ticks", type=int, default=None, help="stop after this many ticks")
    p.add_argument("--snapshot-every", type=int, default=100, help="ticks between saved states (default 100)")
    p.add_argument("--db", default=None, help="the timeline file (default: the user data dir's hosted/NAME.db)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=run)


def timeline_path(name: str, db: str | None) -> Path:
    from maskworld.serve.store import validate_name

    if db:
        return Path(db)
    from platformdirs import user_data_dir

    return Path(user_data_dir("maskworld")) / "hosted" / f"{validate_name(name)}.db"


def run(args) -> int:
    import signal
    import threading
    import time

    from maskworld import load_world
    from maskworld.errors import UserError
    from maskworld.host.host import Host

    path = timeline_path(args.name, args.db)
    if args.world is None:
        if not path.is_file():
            raise UserError(f"no instance {args.name!r} at {path} yet: give --world W to create it")
        from maskworld.host.timeline import Timeline

        tl = Timeline(path)
        args.world = tl.meta()["world"]
        tl.close()
    if args.minutes is not None and args.minutes <= 0 or args.ticks is not None and args.ticks < 1:
        raise UserError("--minutes must be > 0 and --ticks >= 1")
    world = load_world(args.world, device=args.device)  # a path or a shipped world's name
    policy = None
    if args.agent:
        from maskworld.agents.policy_loader import load_policy

        policy, _ = load_policy(args.agent, world)
    new = not path.is_file()
    host = Host.open(world, path, rate=args.rate, seed=args.seed, policy=policy, snapshot_every=args.snapshot_every)
    print(f"[host] {'created' if new else 'resumed'} {args.name} at tick {host.tick_no} ({path}), {host.rate:g} ticks/s, "
          f"driven by {'the agent ' + args.agent if args.agent else 'a random walk'}")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    t0, first = time.monotonic(), host.tick_no
    every = max(1, int(host.rate * 10))

    def report(tick):
        if args.progress and (tick.tick - first) % every == 0:
            rate = (tick.tick - first) / max(time.monotonic() - t0, 1e-9)
            print(f"[host] tick {tick.tick}: {rate:.2f} ticks/s (target {host.rate:g}), reward {tick.reward:+.0f}", flush=True)

    seconds = None if args.minutes is None else 60 * args.minutes
    made = host.run(seconds=seconds, ticks=args.ticks, stop=stop, on_tick=report)
    took = time.monotonic() - t0
    print(f"[host] stopped at tick {host.tick_no}: {made} ticks in {took:.1f} s = {made / max(took, 1e-9):.2f} ticks/s; "
          f"timeline {path}")
    host.close()
    return 0
