"""The play server: one static page, one WebSocket per tab, one ticker for all (`maskworld play`).

Protocol (WebSocket `/ws?token=&fmt=rgba|png&mode=realtime|step&seed=`):
- down, binary: one message per frame = uint32 LE header length | JSON header (step, reward, model ms,
  batch size, ...) | image (raw RGBA by default: ~0.04 ms to encode vs ~0.8 ms for PNG at 64x64, and
  `putImageData` needs no decode; `fmt=png` for slow links).
- down, text: JSON `hello` (world, bindings), `error`, `saved`, `sessions`, `pong`, and `preview` (latent-action
  worlds: K PNG data URLs, the next frame under each latent code, answering an up `preview`).
- up, text: small JSON messages, validated against `SCHEMAS` (size cap, known type, known fields and
  types, known action); a bad message gets an `error` reply and the session carries on.
- up, binary: a PNG or JPEG to start a new session from (byte and pixel caps, format checked before decode).

Design choices:
- Controls (controls.py) sit between keys and the world: in a latent-action world the game's own keys
  send the latent codes they map to, and digits 1..K the codes themselves.
- Thin layer: the world, its sessions and SQLite persistence are core/serve objects; this file only
  validates, routes and serialises. The core never imports it.
- Token: when set (required off-loopback), every HTTP route but the static assets and the WebSocket
  check it (`?token=` or `Authorization: Bearer`) in constant time. The WebSocket also checks the
  Origin header against Host, so another site open in the browser cannot drive a local server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import random
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from maskworld.errors import UserError
from maskworld.serve import controls
from maskworld.serve.store import SessionStore, validate_name, world_id
from maskworld.serve.ticker import MAX_PENDING_STEPS, PlayClient, Ticker, encode_frame, frame_header, pack_frame

log = logging.getLogger("maskworld.serve")

STATIC_DIR = Path(__file__).parent / "static"
MAX_TEXT_BYTES = 2048
MAX_UPLOAD_BYTES = 4 * 1024 * 1024
MAX_UPLOAD_PIXELS = 4096 * 4096
FORMATS = ("rgba", "png")
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
                    "Cache-Control": "no-store"}

# type -> {field: (types, required, allowed values or None)}
SCHEMAS: dict[str, dict[str, tuple]] = {
    "action": {"action": ((int, str), True, None)},
    "release": {},
    "mode": {"mode": ((str,), True, ("realtime", "step"))},
    "reset": {},
    "new": {"source": ((str,), False, ("scratch", "data")), "seed": ((int,), False, None)},
    "save": {"name": ((str,), True, None)},
    "load": {"name": ((str,), True, None)},
    "list": {},
    "ping": {"t": ((int, float), False, None)},
    "preview": {},
    "driver": {"driver": ((str,), True, ("you", "agent"))},
}


def validate_message(text: str | bytes) -> dict:
    """A browser's text message -> a dict that matches SCHEMAS, or UserError saying what is wrong."""
    if len(text) > MAX_TEXT_BYTES:
        raise UserError(f"message of {len(text)} bytes is over the {MAX_TEXT_BYTES}-byte limit")
    try:
        msg = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise UserError("message is not valid JSON; send e.g. {\"type\": \"action\", \"action\": 0}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise UserError("message must be a JSON object with a string 'type'")
    schema = SCHEMAS.get(msg["type"])
    if schema is None:
        raise UserError(f"unknown message type {msg['type'][:40]!r}; known: {', '.join(SCHEMAS)}")
    extra = set(msg) - set(schema) - {"type"}
    if extra:
        raise UserError(f"'{msg['type']}' message has unknown fields {sorted(extra)[:5]}")
    for name, (types, required, allowed) in schema.items():
        if name not in msg:
            if required:
                raise UserError(f"'{msg['type']}' message needs a '{name}' field")
            continue
        v = msg[name]
        if isinstance(v, bool) or not isinstance(v, types):
            raise UserError(f"'{msg['type']}.{name}' has the wrong type ({type(v).__name__})")
        if allowed is not None and v not in allowed:
            raise UserError(f"'{msg['type']}.{name}' must be one of {', '.join(allowed)}")
    return msg


def resolve_action(value, meanings: list[str]) -> int:
    """An action index or meaning name -> index; anything else is an error, never clamped."""
    if isinstance(value, str):
        upper = [m.upper() for m in meanings]
        if value.upper() in upper:
            return upper.index(value.upper())
        raise UserError(f"unknown action {value[:40]!r}; this world's actions are {', '.join(meanings)}")
    if not 0 <= value < len(meanings):
        raise UserError(f"action {value} is outside 0..{len(meanings) - 1} ({', '.join(meanings)})")
    return value


def decode_upload(data: bytes, size: int) -> np.ndarray:
    """Uploaded PNG/JPEG bytes -> (size, size, 3) uint8. Caps bytes and pixels before decoding."""
    from PIL import Image

    from maskworld.world.world import as_uint8_frame

    if len(data) > MAX_UPLOAD_BYTES:
        raise UserError(f"image of {len(data)} bytes is over the {MAX_UPLOAD_BYTES // 2**20} MiB limit; upload a smaller PNG or JPEG")
    if not (data.startswith(b"\x89PNG\r\n\x1a\n") or data.startswith(b"\xff\xd8\xff")):
        raise UserError("upload is not a PNG or JPEG image")
    try:
        img = Image.open(io.BytesIO(data), formats=["PNG", "JPEG"])  # reads the header only
    except Exception:
        raise UserError("upload is not a readable PNG or JPEG image") from None
    w, h = img.size
    if w * h > MAX_UPLOAD_PIXELS or w < 1 or h < 1:
        raise UserError(f"image of {w}x{h} pixels is over the {MAX_UPLOAD_PIXELS} pixel limit; scale it down first")
    try:
        img.draft("RGB", (size, size))  # JPEG: decode at reduced scale
        img.load()
    except Exception as e:
        raise UserError(f"cannot decode the uploaded image ({type(e).__name__}); is it truncated?") from None
    return as_uint8_frame(img, size)


def load_prompts(world_dir: Path, size: int) -> np.ndarray | None:
    """`prompts.npz` beside the world: uint8 frames (N, H, W, 3) to start sessions from real data."""
    f = world_dir / "prompts.npz"
    if not f.exists():
        return None
    try:
        with np.load(f, allow_pickle=False) as z:
            arr = z["frames"] if "frames" in z.files else z[z.files[0]]
    except Exception as e:
        raise UserError(f"{f} is not a readable .npz of frames ({e}); rewrite it with np.savez(f, frames=uint8 (N,{size},{size},3))") from e
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3 or len(arr) == 0:
        raise UserError(f"{f}: expected uint8 frames (N, {size}, {size}, 3), got {arr.dtype} {arr.shape}")
    return arr


def _token_ok(expected: str | None, given: str | None) -> bool:
    return expected is None or (given is not None and secrets.compare_digest(given.encode(), expected.encode()))


def _given_token(conn) -> str | None:
    auth = conn.headers.get("authorization", "")
    return auth[7:] if auth.lower().startswith("bearer ") else conn.query_params.get("token")


def load_play_agent(path, world):
    """An agent directory -> (callable frames (B,S,S,3) uint8 -> world actions (B,), its summary for the page).
    UserError if it is corrupt or made for another world (action count, frame size)."""
    import torch

    from maskworld.agents.actor_critic import load_agent

    agent, train = load_agent(path, device=world.device)
    if agent.cfg.num_actions != world.num_actions or agent.cfg.image_size != world.meta.size:
        raise UserError(f"agent {path} acts with {agent.cfg.num_actions} actions on {agent.cfg.image_size}px frames but "
                        f"this world has {world.num_actions} actions and {world.meta.size}px frames; pick the agent "
                        "trained in this world (--agent) or play without one (--no-agent)")
    gen = torch.Generator().manual_seed(0)
    info = json.loads((Path(path) / "agent.json").read_text())
    ev = info.get("eval") or {}
    summary = {"name": Path(path).name, "env_id": train.get("env_id"), "real_steps": train.get("real_steps"),
               "mean_return": ev.get("agent.mean_return")}
    return (lambda frames: agent.act(frames, gen)), summary


def create_app(world, *, world_path=None, store: SessionStore | None = None, token: str | None = None,
               fps: float = 20.0, allowed_hosts: list[str] | None = None, max_batch: int = 64, agent=None):
    """The FastAPI app. `world`: a World or a world directory. agent: an agent directory that may drive
    (maskworld.agents; the page's "Agent drives" switch), or None."""
    from maskworld import load_world
    from maskworld.world.session import Session

    if isinstance(world, (str, Path)):
        world_path = Path(world)
        world = load_world(world_path)
    if world_path is None and world.path is None:
        raise ValueError("create_app needs the world's directory (world_path=) to identify saved sessions")
    world_path = Path(world_path or world.path).resolve()
    wid = world_id(world_path)
    store = store or SessionStore()
    ctrl = controls.for_world(world)
    meanings, bindings, idle = ctrl.meanings, ctrl.bindings, ctrl.idle
    idle_world = ctrl.to_action[idle] if idle is not None else None  # what the ticker steps with
    size = world.meta.size
    prompts = load_prompts(world_path, size)
    act, agent_info = load_play_agent(agent, world) if agent is not None else (None, None)
    ticker = Ticker(world, fps=fps, max_batch=max_batch, agent=act)
    rng = random.SystemRandom()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        ticker.start()
        try:
            yield
        finally:
            await asyncio.get_running_loop().run_in_executor(None, ticker.stop)

    app = FastAPI(title="maskworld play", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ticker, app.state.store, app.state.world = ticker, store, world
    if allowed_hosts:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)  # DNS rebinding

    @app.middleware("http")
    async def headers(request: Request, call_next):
        resp = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            resp.headers.setdefault(k, v)
        return resp

    def check(request: Request) -> None:
        if not _token_ok(token, _given_token(request)):
            raise HTTPException(401, "missing or wrong token: open the URL printed by `maskworld play` (it ends in ?token=...)")

    info = {"env_id": world.meta.env_id, "size": size, "actions": meanings, "bindings": bindings, "idle_action": idle,
            "fps": fps, "has_prompts": prompts is not None, "world": world_path.name, "world_id": wid, "latent": ctrl.latent,
            "agent": agent_info}

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request):
        check(request)
        return HTMLResponse((STATIC_DIR / "index.html").read_text())

    @app.get("/api/info")
    def api_info(request: Request):
        check(request)
        return info

    @app.get("/api/sessions")
    def api_sessions(request: Request):
        check(request)
        return [s | {"same_world": s["world_id"] == wid} for s in store.list()]

    @app.get("/api/sessions/{name}/thumbnail.png")
    def api_thumbnail(name: str, request: Request):
        check(request)
        try:
            png = store.thumbnail(validate_name(name))
        except UserError as e:
            raise HTTPException(404, str(e)) from None
        if png is None:
            raise HTTPException(404, "no thumbnail")
        return Response(png, media_type="image/png")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # ------------------------------------------------------------------ WebSocket
    def _origin_ok(ws: WebSocket) -> bool:
        origin = ws.headers.get("origin")
        return origin is None or urlsplit(origin).netloc == ws.headers.get("host")

    def _new_state(prompt, seed):  # model thread
        s = world.session(prompt=prompt, seed=seed)
        return s, s.to_bytes()

    def _restore(state):  # model thread
        return Session.from_bytes(world, *state)

    def _resume(name):  # model thread
        s = store.resume(name, world, wid)
        return s, s.to_bytes()

    def _preview(s):  # model thread: one step with every latent code, from copies of the session
        K = ctrl.latent["num_codes"]
        state = s.to_bytes()
        copies = [Session.from_bytes(world, *state) for _ in range(K)]
        out = world.step_many(copies, list(range(K)))
        return ["data:image/png;base64," + base64.b64encode(encode_frame(f, "png")).decode() for f, _, _ in out]

    def _send_frame(c: PlayClient) -> None:
        s = c.session
        c.push(pack_frame(frame_header(c, s), encode_frame(s.frame, c.fmt)))

    def _replace(c: PlayClient, s, start, name) -> None:
        with ticker.lock:  # the new session cannot be in a batch yet: its first frame is consistent
            c.replace_session(s, start, name)
            _send_frame(c)
        ticker.wake()

    async def _start(c: PlayClient, prompt, seed, name=None, state=None):
        s, start = await ticker.run_model(_new_state, prompt, seed) if state is None else state
        _replace(c, s, start, name)

    async def handle(c: PlayClient, msg: dict) -> None:
        t = msg["type"]
        if t == "action":
            a = ctrl.to_action[resolve_action(msg["action"], meanings)]
            if c.mode == "step":
                if len(c.pending) >= MAX_PENDING_STEPS:
                    raise UserError("too many queued steps; wait for frames before pressing more keys")
                c.pending.append(a)
            else:
                c.held = a
            ticker.wake()
        elif t == "release":
            if c.idle_action is not None:  # (a world action)
                c.held = c.idle_action
        elif t == "mode":
            with ticker.lock:
                c.mode = msg["mode"]
                c.pending.clear()
            c.send_json(type="mode", mode=c.mode)
            ticker.wake()
        elif t == "reset":
            _replace(c, await ticker.run_model(_restore, c.start_state), c.start_state, c.name)
        elif t == "new":
            seed = msg.get("seed", rng.randrange(2**31))
            if not 0 <= seed < 2**63:
                raise UserError("'new.seed' must be in 0..2**63-1")
            if msg.get("source", "scratch") == "data":
                if prompts is None:
                    raise UserError(f"this world has no prompts.npz (uint8 frames (N,{size},{size},3)); start from scratch or upload an image")
                await _start(c, prompts[rng.randrange(len(prompts))], seed)
            else:
                await _start(c, None, seed)
        elif t == "save":
            name = validate_name(msg["name"])
            meta = await ticker.run_model(store.save, name, c.session, world_path, wid)
            c.name = name
            c.send_json(type="saved", name=name, steps=meta["steps"])
        elif t == "load":
            name = validate_name(msg["name"])
            await _start(c, None, None, name=name, state=await ticker.run_model(_resume, name))
        elif t == "list":
            c.send_json(type="sessions", sessions=[
                {k: s[k] for k in ("name", "steps", "updated", "total_reward")} | {"same_world": s["world_id"] == wid}
                for s in store.list()])
        elif t == "preview":
            if ctrl.latent is None:
                raise UserError("this world has real actions; the preview strip is for latent-action worlds")
            frames = await ticker.run_model(_preview, c.session)
            c.send_json(type="preview", step=c.session.steps, frames=frames)
        elif t == "ping":
            c.send_json(type="pong", t=msg.get("t"))
        elif t == "driver":
            if msg["driver"] == "agent" and act is None:
                raise UserError("no agent can drive this world: train one with `maskworld train agent --world WORLD` "
                                "or start play with --agent AGENT_DIR")
            with ticker.lock:
                c.driver = msg["driver"]
                c.pending.clear()
                c.held = c.idle_action
            c.send_json(type="driver", driver=c.driver)
            ticker.wake()

    async def sender(ws: WebSocket, c: PlayClient) -> None:
        try:
            while True:
                m = await c.outbox.get()
                if isinstance(m, bytes):
                    await ws.send_bytes(m)
                else:
                    await ws.send_text(m)
        except asyncio.CancelledError:
            raise
        except Exception:  # client went away mid-send
            ticker.remove(c)

    @app.websocket("/ws")
    async def play(ws: WebSocket):
        if not _token_ok(token, _given_token(ws)) or not _origin_ok(ws):
            await ws.close(code=1008)  # policy violation (HTTP 403 before the handshake)
            return
        fmt, mode = ws.query_params.get("fmt", "rgba"), ws.query_params.get("mode", "realtime")
        try:
            seed = int(ws.query_params.get("seed", rng.randrange(2**31)))
        except ValueError:
            seed = -1
        if fmt not in FORMATS or mode not in ("realtime", "step") or not 0 <= seed < 2**63:
            await ws.close(code=1008)
            return
        await ws.accept()
        c = PlayClient(fmt=fmt, idle_action=idle_world, held=idle_world, mode=mode)
        task = asyncio.create_task(sender(ws, c))
        try:
            c.send_json(type="hello", mode=c.mode, **info)
            await _start(c, None, seed)
            ticker.add(c)
            while not c.closed:
                m = await ws.receive()
                if m["type"] == "websocket.disconnect":
                    break
                try:
                    if m.get("bytes") is not None:
                        img = decode_upload(m["bytes"], size)
                        await _start(c, img, rng.randrange(2**31))
                    else:
                        await handle(c, validate_message(m.get("text") or ""))
                except UserError as e:
                    c.send_json(type="error", message=str(e))
                except Exception as e:  # our bug: report, keep the connection
                    log.exception("message failed")
                    c.send_json(type="error", message=f"internal error: {type(e).__name__}")
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            ticker.remove(c)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    @app.exception_handler(UserError)
    async def user_error(request, exc: UserError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    return app
