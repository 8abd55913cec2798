"""The play protocol: what a tab may send, and the one way a frame message is built.

WebSocket `/ws?token=&fmt=rgba|png&mode=realtime|step&seed=`:
- down, binary: one message per frame = uint32 LE header length | JSON header | image (raw RGBA by
  default: ~0.04 ms to encode vs ~0.8 ms for PNG at 64x64, and `putImageData` needs no decode;
  `fmt=png` for slow links). `frame_message` is the only place that header is built.
- down, text: JSON `hello`, `error`, `saved`, `sessions`, `pong`, `mode`, `driver`, `preview`.
- up, text: one of the message dataclasses below, checked by `parse_message` (byte and nesting caps,
  strict JSON, known type, known fields and their types). Meaning is checked by the handlers: an
  action against the world's controls (`Controls.world_action`), a name against the store.
- up, binary: a PNG or JPEG to start a new session from (prompts.py).
"""

from __future__ import annotations

import dataclasses
import io
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from maskworld.errors import UserError

MAX_TEXT_BYTES = 2048
MAX_DEPTH = 4  # every message is one flat object; anything deeper is not ours
FORMATS = ("rgba", "png")
MODES = ("realtime", "step")
DRIVERS = ("you", "agent")
SEED_LIMIT = 2**63  # seeds go to torch.Generator.manual_seed (a signed 64-bit integer)

_REQUIRED = object()


def _field(*types, choices=None, default=_REQUIRED):
    """A message field: the JSON types it accepts and, optionally, the values it may take."""
    meta = {"types": types, "choices": choices}
    return field(metadata=meta) if default is _REQUIRED else field(default=default, metadata=meta)


# ---------------------------------------------------------------------------- client -> server messages
@dataclass(frozen=True)
class Action:
    action: int | str = _field(int, str)
    """A control: index into hello's `actions`, or its meaning name (any case)."""


@dataclass(frozen=True)
class Release:
    """Real-time mode: no key is held any more (the idle action takes over)."""


@dataclass(frozen=True)
class Mode:
    mode: str = _field(str, choices=MODES)


@dataclass(frozen=True)
class Reset:
    """Back to where the session started (or was resumed)."""


@dataclass(frozen=True)
class New:
    source: str = _field(str, choices=("scratch", "data"), default="scratch")
    seed: int | None = _field(int, default=None)
    text: str | None = _field(str, default=None)
    """A unified world: the instruction its first frame is generated from (a world from words)."""


@dataclass(frozen=True)
class Save:
    name: str = _field(str)


@dataclass(frozen=True)
class Load:
    name: str = _field(str)


@dataclass(frozen=True)
class ListSessions:
    """The saved sessions."""


@dataclass(frozen=True)
class Ping:
    t: int | float | None = _field(int, float, default=None)


@dataclass(frozen=True)
class Preview:
    """Latent-action worlds: the next frame under each latent code."""


@dataclass(frozen=True)
class Driver:
    driver: str = _field(str, choices=DRIVERS)


MESSAGES: dict[str, type] = {"action": Action, "release": Release, "mode": Mode, "reset": Reset, "new": New, "save": Save,
                             "load": Load, "list": ListSessions, "ping": Ping, "preview": Preview, "driver": Driver}
TYPE_OF = {cls: name for name, cls in MESSAGES.items()}


def _depth(text: str) -> int:
    """Deepest [ / { nesting outside strings: checked before parsing, since a parser recurses per level."""
    depth = deepest = 0
    in_str = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif in_str:
            escaped, in_str = ch == "\\", ch != '"'
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")  # NaN/Infinity: Python accepts them, browsers' JSON.parse does not


def _decode_json(text: str | bytes):
    size = len(text.encode() if isinstance(text, str) else text)
    if size > MAX_TEXT_BYTES:
        raise UserError(f"message of {size} bytes is over the {MAX_TEXT_BYTES}-byte limit")
    try:
        text = text.decode() if isinstance(text, bytes) else text
    except UnicodeDecodeError:
        raise UserError("message is not UTF-8 text") from None
    if _depth(text) > MAX_DEPTH:
        raise UserError(f"message is nested deeper than {MAX_DEPTH} levels; send one flat JSON object")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except ValueError:
        raise UserError("message is not valid JSON; send e.g. {\"type\": \"action\", \"action\": 0}") from None


def _check_value(kind: str, name: str, v, types: tuple, choices) -> None:
    if isinstance(v, bool) or not isinstance(v, types):  # JSON true is not the number 1
        raise UserError(f"'{kind}.{name}' has the wrong type ({type(v).__name__})")
    if choices is not None and v not in choices:
        raise UserError(f"'{kind}.{name}' must be one of {', '.join(choices)}")


def parse_message(text: str | bytes):
    """A tab's text message -> one of the message dataclasses, or UserError saying what is wrong."""
    msg = _decode_json(text)
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise UserError("message must be a JSON object with a string 'type'")
    kind = msg.pop("type")
    cls = MESSAGES.get(kind)
    if cls is None:
        raise UserError(f"unknown message type {kind[:40]!r}; known: {', '.join(MESSAGES)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    extra = set(msg) - set(fields)
    if extra:
        raise UserError(f"'{kind}' message has unknown fields {sorted(extra)[:5]}")
    for name, f in fields.items():
        if name in msg:
            _check_value(kind, name, msg[name], f.metadata["types"], f.metadata["choices"])
        elif f.default is dataclasses.MISSING:
            raise UserError(f"'{kind}' message needs a '{name}' field")
    return cls(**msg)


@dataclass(frozen=True)
class Connect:
    """The WebSocket URL's query: frame format, starting mode, optional seed."""

    fmt: str = "rgba"
    mode: str = "realtime"
    seed: int | None = None


def parse_connect(query: Mapping[str, str]) -> Connect:
    fmt, mode, seed = query.get("fmt", "rgba"), query.get("mode", "realtime"), query.get("seed")
    if fmt not in FORMATS or mode not in MODES:
        raise UserError(f"fmt must be one of {', '.join(FORMATS)} and mode one of {', '.join(MODES)}")
    if seed is not None:
        if not (seed.isascii() and seed.isdigit() and len(seed) <= 19 and int(seed) < SEED_LIMIT):
            raise UserError(f"seed must be an integer in 0..{SEED_LIMIT - 1}")
        seed = int(seed)
    return Connect(fmt, mode, seed)


# ---------------------------------------------------------------------------- server -> client frames
@dataclass(frozen=True)
class FrameInfo:
    """What a frame message says besides its pixels, read from the session by the thread that steps it."""

    step: int
    total_reward: float
    done: bool
    memory: int | None
    """Frames held by memory M (None: the world has none, or it is switched off)."""
    h: int
    w: int
    reward: float = 0.0
    model_ms: float | None = None
    batch: int | None = None
    action: int | None = None
    driver: str | None = None
    """Who chose the action that made this frame (None: whoever drives now)."""
    closures: int | None = None
    """Loop closures of memory M so far (the world recognised a remembered place and put its pose back there)."""
    last_closure: int | None = None
    """Frame index of the last loop closure (None: none yet)."""
    avatars: list[str] | None = None
    """Shared worlds: who drives each avatar this tick ("you", another person's id, or "agent")."""

    @classmethod
    def of(cls, session, **step_fields) -> FrameInfo:
        """step_fields: what the step returned (reward, done) and how it was made (model_ms, batch, action, driver)."""
        h, w = session.frame.shape[:2]
        memory = session.memory_frames if getattr(session, "memory_on", False) else None
        base = {"step": int(session.steps), "total_reward": float(session.total_reward), "done": bool(session.done),
                "memory": memory, "h": int(h), "w": int(w)}
        if memory is not None and getattr(session, "memory_keys", None) == "own":
            last = int(session.last_closure)
            base |= {"closures": int(session.closures), "last_closure": None if last < 0 else last}
        return cls(**(base | step_fields))


def encode_frame(frame: np.ndarray, fmt: str) -> bytes:
    """(H,W,3) uint8 -> raw RGBA bytes (what canvas putImageData takes) or PNG."""
    if fmt == "png":
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="PNG", compress_level=1)
        return buf.getvalue()
    h, w, _ = frame.shape
    rgba = np.empty((h, w, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = frame, 255
    return rgba.tobytes()


def frame_message(seq: int, fmt: str, mode: str, name: str | None, driver: str, info: FrameInfo, image: bytes) -> bytes:
    """One binary WebSocket message: uint32 LE header length | JSON header | image bytes."""
    header = dataclasses.asdict(info) | {"seq": seq, "fmt": fmt, "mode": mode, "name": name,
                                         "driver": info.driver or driver}
    h = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<I", len(h)) + h + image
