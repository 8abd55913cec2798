"""Who may talk to the play server: token, Origin and Host checks, and the response headers.

Design choices:
- Token (required off loopback, play_cmd.py): every HTTP route but the static assets, and the
  WebSocket, check it (`?token=` or `Authorization: Bearer`, RFC 6750) in constant time.
- Origin (RFC 6454): a WebSocket handshake from a page of another origin is refused, so another site
  open in the browser cannot drive a local server (browsers do not apply CORS to WebSockets).
- Host (DNS rebinding): a page on evil.example whose name is re-pointed at 127.0.0.1 is same-origin
  with the server, so the Origin check passes; its Host header still says evil.example. A server bound
  to a loopback address (127.0.0.0/8, ::1, localhost) answers only to loopback names. Starlette's
  TrustedHostMiddleware cuts the port at the first ':', which breaks `[::1]:8000` (RFC 3986 brackets),
  so the header is parsed here, for HTTP and WebSocket alike.
"""

from __future__ import annotations

import ipaddress
import secrets
from urllib.parse import urlsplit

SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
                    "Cache-Control": "no-store"}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def _bare(host: str) -> str:
    """'[::1]' / 'LocalHost.' -> '::1' / 'localhost'."""
    host = host.strip().lower().rstrip(".")
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def is_loopback(host: str) -> bool:
    """Is `host` (a --host value) only reachable from this machine?"""
    host = _bare(host)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed_hosts_for(bind: str) -> list[str] | None:
    """The Host names a server bound to `bind` answers to: loopback names on loopback, else None (any; the
    token guards a public server)."""
    return sorted(set(LOOPBACK_NAMES) | {_bare(bind)}) if is_loopback(bind) else None


def host_name(header: str) -> str:
    """A Host header's name without its port: 'example:80' -> 'example', '[::1]:8000' -> '::1'."""
    header = header.strip()
    if header.startswith("["):
        return _bare(header[: header.find("]") + 1]) if "]" in header else ""
    return _bare(header.rsplit(":", 1)[0] if header.count(":") == 1 else header)


class HostCheck:
    """ASGI middleware: refuse requests and WebSocket handshakes whose Host is not in `allowed`."""

    def __init__(self, app, allowed: list[str]):
        self.app, self.allowed = app, {_bare(h) for h in allowed}

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
            if host_name(host) not in self.allowed:
                if scope["type"] == "websocket":  # before accept: the server answers the handshake with 403
                    await send({"type": "websocket.close", "code": 1008})
                    return
                from starlette.responses import PlainTextResponse

                await PlainTextResponse("Invalid host header", status_code=400)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def token_ok(expected: str | None, given: str | None) -> bool:
    return expected is None or (given is not None and secrets.compare_digest(given.encode(), expected.encode()))


def given_token(conn) -> str | None:
    """The token an HTTP request or WebSocket handshake presents."""
    auth = conn.headers.get("authorization", "")
    return auth[7:] if auth.lower().startswith("bearer ") else conn.query_params.get("token")


def origin_ok(conn) -> bool:
    """No Origin (not a browser) or the page's own origin."""
    origin = conn.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == conn.headers.get("host")
