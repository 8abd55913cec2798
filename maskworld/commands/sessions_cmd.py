"""`maskworld sessions list|show|delete [--db PATH]`: the saved play sessions."""

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
