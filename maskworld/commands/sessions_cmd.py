"""`maskworld sessions list|show|delete [--db PATH]`: the saved play sessions; `replay|branch`: hosted worlds' timelines."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("sessions", help="list, show or delete saved play sessions",
                       description="Sessions saved from the play page live in one SQLite file.")
    ss = p.add_subparsers(dest="sessions_command", metavar="ACTION", required=True)
    for name, help_, needs_name in (("list", "list saved sessions", False), ("show", "show one session's metadata", True),
                                    ("delete", "delete a saved session", True)):
        q = ss.add_parser(name, help=help_)
        if needs_name:
            q.add_argument("name", help="session name")
        q.add_argument("--db", default=None, help="SQLite file (default: the user data dir)")
        if name == "show":
            q.add_argument("--thumbnail", default=None, help="also write the last frame as a PNG here")
        if name in ("list", "show"):
            q.add_argument("--json", action="store_true", help="machine-readable output")
        q.set_defaults(func=run)
    q = ss.add_parser("replay", help="replay a hosted world's timeline from tick 0, every frame checked against its record",
                      description="Rebuilds every tick of a persistent world (`maskworld host`) from its start state and "
                                  "logged actions, and checks each frame against the hash recorded when it was lived.")
    q.add_argument("name", help="hosted instance name")
    q.add_argument("--to", type=int, default=None, help="last tick to replay (default: the last committed)")
    q.add_argument("--gif", default=None, help="also write the replayed frames as an animated GIF here")
    q.add_argument("--db", default=None, help="the timeline file (default: the user data dir's hosted/NAME.db)")
    q.set_defaults(func=run_timeline)
    q = ss.add_parser("branch", help="start a new hosted instance from a tick of another's history",
                      description="Copies a persistent world's history up to --at into a new instance; the original is "
                                  "untouched. Host the branch with `maskworld host NEW`.")
    q.add_argument("name", help="hosted instance name")
    q.add_argument("new", help="name of the new instance")
    q.add_argument("--at", type=int, required=True, help="the tick the branch starts from")
    q.add_argument("--db", default=None, help="the timeline file (default: the user data dir's hosted/NAME.db)")
    q.add_argument("--new-db", default=None, help="the branch's timeline file (default: hosted/NEW.db)")
    q.set_defaults(func=run_timeline)


def _when(t: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def run(args) -> int:
    import json
    from pathlib import Path

    from maskworld.serve.store import SessionStore

    store = SessionStore(args.db)
    try:
        if args.sessions_command == "list":
            rows = store.list()
            if args.json:
                print(json.dumps(rows, indent=2))
            elif not rows:
                print(f"no saved sessions in {store.path}")
            else:
                print(f"{'name':<24} {'steps':>7} {'reward':>8}  {'updated':<19}  world")
                for r in rows:
                    print(f"{r['name']:<24} {r['steps']:>7} {r['total_reward']:>8.1f}  {_when(r['updated'])}  {r['world']}")
        elif args.sessions_command == "show":
            m = store.meta(args.name)
            info = json.loads(m.pop("info"))
            m["seed"], m["cache_frames"] = info.get("seed"), info.get("cache_frames")
            m["actions"] = len(info.get("actions", []))
            if args.thumbnail:
                png = store.thumbnail(args.name)
                if png:
                    Path(args.thumbnail).write_bytes(png)
                    m["thumbnail"] = args.thumbnail
            if args.json:
                print(json.dumps(m, indent=2))
            else:
                for k, v in m.items():
                    print(f"{k:>13}: {_when(v) if k in ('created', 'updated') else v}")
        elif args.sessions_command == "delete":
            store.delete(args.name)
            print(f"deleted {args.name}")
    finally:
        store.close()
    return 0



def run_timeline(args) -> int:
    """replay / branch of a hosted world's timeline."""
    from maskworld.commands.host_cmd import timeline_path
    from maskworld.host.timeline import Timeline

    tl = Timeline(timeline_path(args.name, args.db))
    try:
        if args.sessions_command == "branch":
            new = tl.branch(timeline_path(args.new, args.new_db), args.at)
            print(f"branched {args.name} at tick {args.at} into {args.new} ({new.path}); host it with "
                  f"`maskworld host {args.new}`")
            new.close()
            return 0
        return _replay(tl, args)
    finally:
        tl.close()


def _replay(tl, args) -> int:
    import time

    import torch

    from maskworld import load_world
    from maskworld.errors import UserError
    from maskworld.host.host import replay

    meta = tl.meta()
    last = tl.last_tick if args.to is None else args.to
    if not 0 <= last <= tl.last_tick:
        raise UserError(f"--to {args.to}: this world has ticks 0..{tl.last_tick}")
    torch.set_num_threads(int(meta["threads"]))  # the numerics it was recorded with
    world = load_world(meta["world"], device="cpu")
    t0, frames = time.monotonic(), []
    n = 0
    for tick, frame in replay(world, tl, last):
        n = tick
        if args.gif:
            frames.append(frame)
    print(f"replayed ticks 0..{n} in {time.monotonic() - t0:.1f} s: every frame equals the one recorded (hash)")
    if args.gif:
        from PIL import Image

        imgs = [Image.fromarray(f) for f in frames]
        imgs[0].save(args.gif, save_all=True, append_images=imgs[1:], duration=int(1000 / float(meta["rate"])), loop=0)
        print(f"wrote {args.gif}")
    return 0
