"""`maskworld play [WORLD]`: play a world in the browser (real-time or step by step), save and resume sessions."""

from __future__ import annotations

import os
from pathlib import Path

from maskworld.commands._args import add_sampler_args, apply_sampler_args
from maskworld.world.compose import RENDER_MODES

MIN_TOKEN_CHARS = 8


def register(sub) -> None:
    p = sub.add_parser("play", help="play a world in the browser: real-time or step mode, save/resume sessions",
                       description="Serve one page with the world on a canvas; keys are bound from the world's action "
                                   "meanings. Binds 127.0.0.1; any other --host needs --token.")
    p.add_argument("world", nargs="?", default=None,
                   help="world directory, or the name of a shipped world (`maskworld demo --list`; default: default)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind; anything but loopback requires --token")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--db", default=None, help="SQLite file for saved sessions (default: the user data dir)")
    p.add_argument("--token", default=os.environ.get("MASKWORLD_TOKEN"),
                   help="secret the page and WebSocket must present (?token=); default $MASKWORLD_TOKEN")
    p.add_argument("--fps", type=float, default=20.0, help="real-time mode tick rate")
    p.add_argument("--render", choices=RENDER_MODES, default=None,
                   help="how imagined frames are shown (default: the world's): tokens or composite (world/compose.py)")
    add_sampler_args(p)
    p.add_argument("--max-batch", type=int, default=64, help="most sessions stepped in one forward pass")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads for the model (default: cores - 1, leaving one for the web server; "
                        "measured on 2 shared cores: 1 thread 5 ms/frame, 2 threads up to 700 ms when the machine is busy)")
    p.add_argument("--agent", default=None,
                   help="agent directory that may drive (the page's 'Agent drives' switch, key G); default: WORLD/agent, "
                        "or the agent whose updated world WORLD is (AGENT/world)")
    p.add_argument("--no-agent", action="store_true", help="do not offer an agent even if the world has one")
    p.add_argument("--max-sessions", type=int, default=None,
                   help="most saved sessions the --db file may hold before saves are refused (default 100)")
    p.add_argument("--max-saved-mib", type=float, default=None,
                   help="most MiB of saved sessions the --db file may hold (default 1024; a session is a few MB)")
    p.add_argument("--persistent", metavar="NAME", default=None,
                   help="shared play of the persistent instance NAME (created at --fps ticks/s, or resumed, as by "
                        "`maskworld host NAME`): it ticks on its own clock, every tab sees the same frames and one may "
                        "drive; the resident agent (--agent, else a random walk) drives otherwise")
    p.add_argument("--persistent-db", default=None, help="the instance's timeline file (default: hosted/NAME.db)")
    p.set_defaults(func=run)


def find_agent(world: Path, given: str | None, off: bool) -> Path | None:
    """The agent directory play offers: --agent, else WORLD/agent, else WORLD/.. when WORLD is an agent's world."""
    from maskworld.errors import UserError

    if off:
        return None
    if given is not None:
        p = Path(given).expanduser().resolve()
        if not (p / "agent.json").is_file():
            raise UserError(f"--agent {given} is not an agent directory (agent.json + agent.safetensors from "
                            "`maskworld train agent`)")
        return p
    for p in (world / "agent", world.parent):
        if (p / "agent.json").is_file() and (p / "agent.safetensors").is_file():
            return p
    return None


def check_args(args) -> Path:
    """Validate everything before loading anything; -> resolved world directory."""
    from maskworld.errors import UserError
    from maskworld.serve.security import is_loopback

    if not is_loopback(args.host) and not args.token:
        raise UserError(f"--host {args.host} exposes the server beyond this machine; pass --token SECRET "
                        f"(at least {MIN_TOKEN_CHARS} characters) or bind --host 127.0.0.1")
    if args.token is not None and len(args.token) < MIN_TOKEN_CHARS:
        raise UserError(f"--token is too short; use at least {MIN_TOKEN_CHARS} characters, "
                        "e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`")
    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port} is not a TCP port (1-65535)")
    if not 0 < args.fps <= 120:
        raise UserError(f"--fps {args.fps} must be in (0, 120]")
    if args.max_batch < 1:
        raise UserError("--max-batch must be at least 1")
    if args.threads is not None and args.threads < 1:
        raise UserError("--threads must be at least 1")
    if args.max_sessions is not None and args.max_sessions < 1:
        raise UserError("--max-sessions must be at least 1")
    if args.max_saved_mib is not None and not args.max_saved_mib > 0:
        raise UserError("--max-saved-mib must be positive")
    from maskworld import worlds

    if args.world is None:
        world = worlds.ROOT / worlds.DEFAULT
        if not (world / "world.json").exists():
            raise UserError(f"no world given and the default world ({world}) is not installed; "
                            "train one with `maskworld train world ...` (or `maskworld demo`) and run `maskworld play PATH/TO/WORLD`")
    else:
        world = worlds.locate(args.world).resolve()
        if not world.is_dir() or not (world / "world.json").is_file():
            raise UserError(f"{args.world} is not a world directory (a folder with world.json and *.safetensors) nor a "
                            f"shipped world ({', '.join(worlds.shipped())})")
    try:
        import websockets  # noqa: F401  (uvicorn's WebSocket protocol)
    except ImportError:
        try:
            import wsproto  # noqa: F401
        except ImportError:
            raise UserError("uvicorn needs a WebSocket library: pip install websockets") from None
    return world


def load_agent_policy(agent_dir: Path | None, world):
    """-> (policy, summary) for create_app, or (None, None) without an agent."""
    if agent_dir is None:
        return None, None
    from maskworld.agents.policy_loader import load_policy

    return load_policy(agent_dir, world)


def run(args) -> int:
    import uvicorn

    import maskworld
    from maskworld.serve import store as store_mod
    from maskworld.serve.app import create_app
    from maskworld.serve.prompts import MAX_UPLOAD_BYTES
    from maskworld.serve.security import allowed_hosts_for

    world_dir = check_args(args)
    import torch

    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 2) - 1))
    max_mib = args.max_saved_mib if args.max_saved_mib is not None else store_mod.DEFAULT_MAX_BYTES / 2**20
    store = store_mod.SessionStore(args.db, max_sessions=args.max_sessions or store_mod.DEFAULT_MAX_SESSIONS,
                                   max_bytes=int(max_mib * 2**20))
    from maskworld.errors import UserError
    from maskworld.world.unified import is_unified_dir, load_unified_world

    unified = is_unified_dir(world_dir)
    if unified and args.persistent is not None:
        raise UserError(f"{world_dir.name} is a unified world: it plays private sessions only; drop --persistent")
    world = load_unified_world(world_dir) if unified else maskworld.load_world(world_dir)
    apply_sampler_args(world, args)
    if args.render is not None:
        world.render = args.render
    agent = find_agent(world_dir, args.agent, args.no_agent)
    policy, policy_info = load_agent_policy(agent, world)
    shared = None
    if args.persistent is not None:
        from maskworld.commands.host_cmd import timeline_path
        from maskworld.host.host import Host

        path = timeline_path(args.persistent, args.persistent_db)
        shared = Host.open(world, path, rate=args.fps, policy=policy)
        print(f"persistent world {args.persistent}: tick {shared.tick_no}, {shared.rate:g} ticks/s ({path})", flush=True)
    app = create_app(world, world_path=world_dir, store=store, token=args.token, fps=args.fps,
                     allowed_hosts=allowed_hosts_for(args.host), max_batch=args.max_batch, policy=policy,
                     policy_info=policy_info, shared=shared, shared_name=args.persistent)
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{args.port}/" + (f"?token={args.token}" if args.token else "")
    print(f"maskworld play: {world_dir.name} at {url}  (sessions: {store.path}; Ctrl-C to stop)", flush=True)
    if agent is not None:
        print(f"  agent {agent} can drive: press G or 'Agent drives' on the page", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", ws_max_size=MAX_UPLOAD_BYTES + 4096,
                ws_ping_interval=20, ws_ping_timeout=20)
    return 0
