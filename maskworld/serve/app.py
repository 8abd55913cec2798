"""The play server (`maskworld play`): one static page, a small JSON API, one WebSocket per tab.

The pieces: protocol.py (messages and frames), connection.py (one WebSocket), handlers.py (one
function per message type), client.py (a tab's state), ticker.py (the batched model thread),
server.py (what they share), security.py (token, Origin, Host), prompts.py (uploads), store.py
(SQLite sessions). This file assembles them. The core never imports any of it, and none of it
imports agents or training: the agent's policy is passed in (`policy=`).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request, WebSocket
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from maskworld import load_world
from maskworld.errors import UserError
from maskworld.serve import security
from maskworld.serve.connection import serve_socket
from maskworld.serve.server import PlayServer, build_server
from maskworld.serve.store import DEFAULT_MAX_BYTES, DEFAULT_MAX_SESSIONS, SessionStore, validate_name
from maskworld.serve.ticker import Policy

STATIC_DIR = Path(__file__).parent / "static"


def create_app(world, *, world_path=None, store: SessionStore | None = None, token: str | None = None, fps: float = 20.0,
               allowed_hosts: list[str] | None = None, max_batch: int = 64, policy: Policy | None = None,
               policy_info: dict | None = None, shared=None, shared_name: str | None = None) -> FastAPI:
    """The FastAPI app. world: a World or a world directory. allowed_hosts: the Host names to answer
    (security.allowed_hosts_for). policy: frames (B,S,S,3) uint8 -> (B,) world actions, the agent that may
    drive (the page's "Agent drives" switch), with policy_info its summary for the page; None: no agent.
    shared: a hosted persistent instance (maskworld.host) that every tab views and may drive (serve/shared.py)."""
    if isinstance(world, (str, Path)):
        world_path = Path(world)
        world = load_world(world_path)
    if world_path is None and world.path is None:
        raise ValueError("create_app needs the world's directory (world_path=) to identify saved sessions")
    store = store or SessionStore(max_sessions=DEFAULT_MAX_SESSIONS, max_bytes=DEFAULT_MAX_BYTES)
    srv = build_server(world, world_path or world.path, store, fps=fps, max_batch=max_batch, policy=policy,
                       policy_info=policy_info, shared=shared, shared_name=shared_name)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        srv.ticker.start()
        try:
            yield
        finally:
            await asyncio.get_running_loop().run_in_executor(None, srv.shutdown)

    app = FastAPI(title="maskworld play", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server, app.state.ticker, app.state.store, app.state.world = srv, srv.ticker, store, world
    if allowed_hosts:
        app.add_middleware(security.HostCheck, allowed=allowed_hosts)
    _add_headers_and_errors(app)
    _add_routes(app, srv, token)
    return app


def _add_headers_and_errors(app: FastAPI) -> None:
    @app.middleware("http")
    async def headers(request: Request, call_next):
        resp = await call_next(request)
        for k, v in security.SECURITY_HEADERS.items():
            resp.headers.setdefault(k, v)
        return resp

    @app.exception_handler(UserError)
    async def user_error(request, exc: UserError):
        return JSONResponse({"detail": str(exc)}, status_code=400)


def _add_routes(app: FastAPI, srv: PlayServer, token: str | None) -> None:
    def check(request: Request) -> None:
        if not security.token_ok(token, security.given_token(request)):
            raise HTTPException(401, "missing or wrong token: open the URL printed by `maskworld play` (it ends in ?token=...)")

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request):
        check(request)
        return HTMLResponse((STATIC_DIR / "index.html").read_text())

    @app.get("/api/info")
    def api_info(request: Request):
        check(request)
        return srv.hello

    @app.get("/api/sessions")
    def api_sessions(request: Request):
        check(request)
        return [s | {"same_world": s["world_id"] == srv.wid} for s in srv.store.list()]

    @app.get("/api/sessions/{name}/thumbnail.png")
    def api_thumbnail(name: str, request: Request):
        check(request)
        try:
            png = srv.store.thumbnail(validate_name(name))
        except UserError as e:
            raise HTTPException(404, str(e)) from None
        if png is None:
            raise HTTPException(404, "no thumbnail")
        return Response(png, media_type="image/png")

    @app.websocket("/ws")
    async def play(ws: WebSocket):
        await serve_socket(ws, srv, token)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
