"""One WebSocket, one tab: check the handshake, say hello, start a session, route messages until it closes.

Two tasks per connection: this receive loop (messages are handled one at a time, in order) and a
sender draining the client's outbox, so a slow socket never holds up the model thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import WebSocket, WebSocketDisconnect

from maskworld.errors import UserError
from maskworld.serve import handlers, security
from maskworld.serve.client import PlayClient
from maskworld.serve.protocol import parse_connect
from maskworld.serve.server import PlayServer

log = logging.getLogger("maskworld.serve")
POLICY_VIOLATION = 1008  # RFC 6455 close code; before accept, the server answers the handshake with 403


async def _sender(ws: WebSocket, c: PlayClient, srv: PlayServer) -> None:
    try:
        while True:
            m = await c.outbox.get()
            await (ws.send_bytes(m) if isinstance(m, bytes) else ws.send_text(m))
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001  (whatever a send raises, the tab is gone)
        srv.ticker.remove(c)


async def _handle(srv: PlayServer, c: PlayClient, raw: dict) -> None:
    try:
        await handlers.dispatch(srv, c, raw)
    except UserError as e:
        c.send_json(type="error", message=str(e))
    except Exception as e:  # our bug: report it, keep the connection
        log.exception("message failed")
        c.send_json(type="error", message=f"internal error: {type(e).__name__}")


async def serve_socket(ws: WebSocket, srv: PlayServer, token: str | None) -> None:
    if not security.token_ok(token, security.given_token(ws)) or not security.origin_ok(ws):
        await ws.close(code=POLICY_VIOLATION)
        return
    try:
        q = parse_connect(ws.query_params)
    except UserError:
        await ws.close(code=POLICY_VIOLATION)
        return
    await ws.accept()
    c = PlayClient(srv.ticker.lock, fmt=q.fmt, mode=q.mode, idle_action=srv.controls.idle_action)
    sender = asyncio.create_task(_sender(ws, c, srv))
    try:
        c.send_json(type="hello", mode=c.mode, **srv.hello)
        await srv.start(c, None, srv.random_seed() if q.seed is None else q.seed)
        srv.ticker.add(c)
        while not c.closed:
            raw = await ws.receive()
            if raw["type"] == "websocket.disconnect":
                break
            await _handle(srv, c, raw)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        srv.drop(c)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
