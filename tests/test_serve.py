"""The play server through FastAPI's TestClient: page, bindings, stepping, validation, token, uploads."""

import contextlib
import io
import json
import struct

import numpy as np
import pytest

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402  (after the skip: fastapi is optional)
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from maskworld.errors import UserError  # noqa: E402
from maskworld.serve import keys  # noqa: E402
from maskworld.serve.app import create_app  # noqa: E402
from maskworld.serve.prompts import MAX_UPLOAD_BYTES, decode_upload  # noqa: E402
from maskworld.serve.protocol import TYPE_OF, parse_message  # noqa: E402
from maskworld.serve.store import SessionStore  # noqa: E402

TOKEN = "s3cret-token-123"


def unpack_frame(msg: bytes) -> tuple[dict, bytes]:
    """A frame message -> (header, image bytes): what the page's onFrame does."""
    (n,) = struct.unpack_from("<I", msg)
    return json.loads(msg[4 : 4 + n]), msg[4 + n :]


def validate_message(text) -> dict:
    """parse_message's result as the dict the tab sent (type included)."""
    import dataclasses

    msg = parse_message(text)
    return {"type": TYPE_OF[type(msg)], **dataclasses.asdict(msg)}


def agent_app(world_dir, store, agent_dir, **kw):
    """create_app with the agent at agent_dir driving, loaded as `maskworld play` does."""
    from maskworld import load_world
    from maskworld.agents.policy_loader import load_policy

    world = load_world(world_dir)
    policy, info = load_policy(agent_dir, world)
    return create_app(world, world_path=world_dir, store=store, policy=policy, policy_info=info, **kw)


@pytest.fixture
def app(tiny_world, tmp_path):
    return create_app(tmp_path / "world", store=SessionStore(tmp_path / "s.db"), fps=20)


def recv(ws):
    """-> ("json", dict) or ("frame", header, rgba (H,W,4))."""
    m = ws.receive()
    if m.get("text") is not None:
        return ("json", json.loads(m["text"]))
    h, payload = unpack_frame(m["bytes"])
    return ("frame", h, np.frombuffer(payload, np.uint8).reshape(h["h"], h["w"], 4) if h["fmt"] == "rgba" else payload)


def next_of(ws, kind, type_=None, limit=50):
    for _ in range(limit):
        m = recv(ws)
        if m[0] == kind and (type_ is None or m[1].get("type") == type_):
            return m
    raise AssertionError(f"no {kind} {type_} in {limit} messages")


@contextlib.contextmanager
def open_step(client, seed=0, **q):
    """A step-mode connection: -> (ws, hello, first frame)."""
    qs = "&".join(f"{k}={v}" for k, v in {"seed": seed, "mode": "step", **q}.items())
    with client.websocket_connect(f"/ws?{qs}") as ws:
        hello = next_of(ws, "json", "hello")[1]
        first = next_of(ws, "frame")
        yield ws, hello, first


def step(ws, action):
    ws.send_text(json.dumps({"type": "action", "action": action}))
    return next_of(ws, "frame")


def png_bytes(arr=None, size=(40, 30), fmt="PNG"):
    from PIL import Image

    img = Image.fromarray(arr) if arr is not None else Image.new("RGB", size, (200, 30, 90))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


# ---------------------------------------------------------------------------- page and bindings
def test_page_loads_with_canvas_and_bindings(app, tiny_world):
    with TestClient(app) as client:
        r = client.get("/")
        assert r.status_code == 200 and "<canvas" in r.text and "/static/app.js" in r.text
        assert r.headers["x-frame-options"] == "DENY"
        css = client.get("/static/app.css")
        assert css.status_code == 200 and "pixelated" in css.text
        assert client.get("/static/app.js").status_code == 200
        info = client.get("/api/info").json()
        assert info["actions"] == ["LEFT", "RIGHT", "NOOP"] and info["idle_action"] == 2
        labels = {b["meaning"]: b["keys"] for b in info["bindings"]}
        assert labels["LEFT"] == ["ArrowLeft"] and labels["RIGHT"] == ["ArrowRight"] and labels["NOOP"] == ["1"]


def test_bindings_from_meanings():
    mg = {b["meaning"]: b["keys"] for b in keys.bindings(["LEFT", "RIGHT", "FORWARD", "PICKUP", "DROP", "TOGGLE", "DONE"])}
    assert mg["FORWARD"] == ["ArrowUp"] and mg["TOGGLE"] == [" "] and mg["DONE"] == ["Enter"]
    atari = keys.bindings(["NOOP", "FIRE", "RIGHT", "LEFT", "UPRIGHTFIRE"])
    assert [b["keys"] for b in atari] == [["1"], [" "], ["ArrowRight"], ["ArrowLeft"], ["ArrowUp", "ArrowRight", " "]]
    assert keys.idle_action(["NOOP", "FIRE"]) == 0 and keys.idle_action(["LEFT", "RIGHT"]) is None
    pg = {b["meaning"]: b["keys"] for b in keys.bindings(["UP_RIGHT", "NOOP", "W", "D"])}
    assert pg["UP_RIGHT"] == ["ArrowUp", "ArrowRight"] and pg["W"] == ["w"] and pg["D"] == ["d"]
    many = keys.bindings([f"WEIRD{i}" for i in range(12)] + ["FIRE", "TOGGLE"])  # collisions + digits run out
    chords = [frozenset(b["keys"]) for b in many if b["keys"]]
    assert len(chords) == len(set(chords)) == 14
    assert many[0]["keys"] == ["1"] and many[12]["keys"] == [" "] and many[13]["keys"] != [" "]


# ---------------------------------------------------------------------------- stepping
def test_step_changes_frame_and_reset_replays(app):
    with TestClient(app) as client, open_step(client, seed=3) as (ws, hello, first):
        assert hello["mode"] == "step" and first[1]["step"] == 0 and first[2].shape == (64, 64, 4)
        frames = [step(ws, a) for a in (0, 1, 1)]
        assert [f[1]["step"] for f in frames] == [1, 2, 3] and frames[0][1]["model_ms"] > 0
        assert not np.array_equal(first[2], frames[0][2])
        ws.send_text(json.dumps({"type": "reset"}))
        again = next_of(ws, "frame")
        assert again[1]["step"] == 0 and np.array_equal(again[2], first[2])
        replay = [step(ws, a) for a in (0, 1, 1)]
        assert all(np.array_equal(a[2], b[2]) for a, b in zip(frames, replay))


def test_realtime_ticks_with_idle_action(app):
    with TestClient(app) as client, client.websocket_connect("/ws?seed=1") as ws:
        assert next_of(ws, "json", "hello")[1]["mode"] == "realtime"
        steps = [next_of(ws, "frame")[1] for _ in range(3)]
        assert steps[-1]["step"] >= 2 and steps[-1]["action"] == 2  # NOOP held while no key is pressed
        ws.send_text(json.dumps({"type": "action", "action": "LEFT"}))
        for _ in range(20):
            h = next_of(ws, "frame")[1]
            if h["action"] == 0:
                break
        assert h["action"] == 0
        ws.send_text(json.dumps({"type": "mode", "mode": "step"}))
        next_of(ws, "json", "mode")


def test_png_format(app):
    with TestClient(app) as client, open_step(client, fmt="png") as (_, _, first):
        assert first[1]["fmt"] == "png" and first[2][:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------- validation
BAD = [
    "not json", "[1, 2]", '{"no_type": 1}', '{"type": 5}', '{"type": "explode"}', '{"type": "action"}',
    '{"type": "action", "action": 99}', '{"type": "action", "action": -1}', '{"type": "action", "action": 1.5}',
    '{"type": "action", "action": true}', '{"type": "action", "action": "JUMP"}',
    '{"type": "action", "action": 0, "extra": 1}', '{"type": "mode", "mode": "turbo"}',
    '{"type": "save", "name": "../../etc/passwd"}', '{"type": "save", "name": ""}', '{"type": "load", "name": "missing"}',
    '{"type": "new", "source": "data"}', '{"type": "new", "seed": "x"}', '{"type": "new", "seed": -3}',
    json.dumps({"type": "ping", "t": "x" * 5000}),
]


REFUSED_LATER = ("99", "-1", '"JUMP"', "passwd", '""', "missing", '"data"', "-3")  # schema-valid, refused by the handler


@pytest.mark.parametrize("text", BAD)
def test_validate_message_rejects(text):
    if any(r in text for r in REFUSED_LATER):
        assert validate_message(text)["type"] in ("action", "save", "load", "new")
    else:
        with pytest.raises(UserError):
            validate_message(text)


def test_bad_messages_get_errors_and_session_continues(app):
    with TestClient(app) as client, open_step(client) as (ws, _, _):
        for text in BAD:
            ws.send_text(text)
            err = next_of(ws, "json", "error")[1]
            assert err["message"], text
        ws.send_bytes(b"GIF89a not an image")
        assert "PNG or JPEG" in next_of(ws, "json", "error")[1]["message"]
        f = step(ws, "RIGHT")  # meaning names are accepted too
        assert f[1]["step"] == 1 and f[1]["action"] == 1


def test_disconnect_leaves_no_stuck_state(app):
    with TestClient(app) as client:
        ticker = app.state.ticker
        with client.websocket_connect("/ws?seed=0") as ws:
            next_of(ws, "frame")
            ws.send_text(json.dumps({"type": "action", "action": 0}))
        # closed mid-stream (realtime frames in flight): the ticker forgets it, others keep working
        with open_step(client, seed=2) as (ws2, _, _):
            assert step(ws2, 1)[1]["step"] == 1
            assert len(ticker.clients) == 1


# ---------------------------------------------------------------------------- token and host
def test_token_enforced(tiny_world, tmp_path):
    app = create_app(tmp_path / "world", store=SessionStore(tmp_path / "s.db"), token=TOKEN)
    with TestClient(app) as client:
        assert client.get("/").status_code == 401
        assert client.get("/?token=wrong").status_code == 401
        assert client.get("/api/info").status_code == 401
        assert client.get(f"/?token={TOKEN}").status_code == 200
        assert client.get("/api/info", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        for url in ("/ws", "/ws?token=wrong"):
            with pytest.raises(WebSocketDisconnect) as e, client.websocket_connect(url) as ws:
                ws.receive()
            assert e.value.code == 1008
        with open_step(client, token=TOKEN) as (_, hello, _):
            assert hello["type"] == "hello"
            evil = {"origin": "http://evil.example"}  # another site's page may not drive the server
            with pytest.raises(WebSocketDisconnect), client.websocket_connect(f"/ws?token={TOKEN}", headers=evil) as ws:
                ws.receive()


def test_host_header_checked(tiny_world, tmp_path):
    app = create_app(tmp_path / "world", store=SessionStore(tmp_path / "s.db"), allowed_hosts=["127.0.0.1", "localhost"])
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        assert client.get("/").status_code == 200
        assert client.get("/", headers={"host": "rebind.example"}).status_code == 400


def test_play_refuses_public_host_without_token(tiny_world, tmp_path, capsys):
    from maskworld.cli import main

    world = str(tmp_path / "world")
    assert main(["play", world, "--host", "0.0.0.0"]) == 2
    assert "--token" in capsys.readouterr().err
    assert main(["play", world, "--host", "0.0.0.0", "--token", "short"]) == 2
    assert main(["play", str(tmp_path), "--port", "1"]) == 2  # not a world dir
    assert "not a world directory" in capsys.readouterr().err


# ---------------------------------------------------------------------------- uploads and prompts
def test_upload_caps():
    from PIL import Image

    ok = decode_upload(png_bytes(size=(300, 200)), 64)
    assert ok.shape == (64, 64, 3) and ok.dtype == np.uint8 and tuple(ok[0, 0]) == (200, 30, 90)
    assert decode_upload(png_bytes(size=(80, 80), fmt="JPEG"), 64).shape == (64, 64, 3)
    with pytest.raises(UserError, match="limit"):
        decode_upload(b"\x89PNG\r\n\x1a\n" + b"0" * MAX_UPLOAD_BYTES, 64)
    with pytest.raises(UserError, match="PNG or JPEG"):
        decode_upload(b"GIF89a" + b"0" * 100, 64)
    buf = io.BytesIO()
    Image.new("1", (5000, 5000)).save(buf, format="PNG")  # 25 Mpixel bomb, tiny file
    with pytest.raises(UserError, match="pixel limit"):
        decode_upload(buf.getvalue(), 64)
    with pytest.raises(UserError):
        decode_upload(png_bytes(size=(64, 64))[:60], 64)  # truncated


def test_upload_over_websocket_and_data_prompts(tiny_world, tmp_path):
    frames = np.zeros((3, 64, 64, 3), np.uint8)
    frames[:, :, :, 1] = 255
    np.savez(tmp_path / "world" / "prompts.npz", frames=frames)
    app = create_app(tmp_path / "world", store=SessionStore(tmp_path / "s.db"))
    with TestClient(app) as client, open_step(client) as (ws, hello, _):
        assert hello["has_prompts"]
        ws.send_bytes(png_bytes(size=(120, 90)))
        f = next_of(ws, "frame")
        assert f[1]["step"] == 0
        ws.send_text(json.dumps({"type": "new", "source": "data", "seed": 4}))
        g = next_of(ws, "frame")
        assert g[1]["step"] == 0 and not np.array_equal(f[2], g[2])
        assert step(ws, 0)[1]["step"] == 1


# ---------------------------------------------------------------------------- latent-action worlds
def test_latent_world_keys_map_and_preview(tiny_latent_world, tmp_path):
    """Game keys send their mapped latent code, digits send codes, idle is the game's NOOP, and the
    preview strip holds the next frame under each code: the same frame a real step with that code gives."""
    app = create_app(tmp_path / "latent_world", store=SessionStore(tmp_path / "s.db"), fps=20)
    with TestClient(app) as client, open_step(client, seed=5) as (ws, hello, _first):
        assert hello["latent"]["num_codes"] == 4 and hello["latent"]["has_map"]
        by_meaning = {b["meaning"]: b for b in hello["bindings"]}
        assert by_meaning["LEFT"]["keys"] == ["ArrowLeft"] and by_meaning["LEFT"]["code"] == 3
        assert [by_meaning[f"latent {k + 1}"]["keys"] for k in range(4)] == [["1"], ["2"], ["3"], ["4"]]
        assert not any(set(b["keys"]) & {"1", "2", "3", "4"} for b in hello["bindings"] if not b["meaning"].startswith("latent"))
        assert hello["actions"][hello["idle_action"]] == "NOOP"
        ws.send_text(json.dumps({"type": "preview"}))
        prev = next_of(ws, "json", "preview")[1]
        assert len(prev["frames"]) == 4 and all(f.startswith("data:image/png;base64,") for f in prev["frames"])
        # LEFT (control 0) -> code 3: its frame is the preview's 4th picture.
        left = step(ws, hello["actions"].index("LEFT"))
        assert left[1]["action"] == 3
        import base64

        from PIL import Image

        pic = np.asarray(Image.open(io.BytesIO(base64.b64decode(prev["frames"][3].split(",", 1)[1]))).convert("RGB"))
        assert np.array_equal(pic, left[2][..., :3])


def test_preview_refused_for_real_action_worlds(app):
    with TestClient(app) as client, open_step(client) as (ws, hello, _):
        assert hello["latent"] is None
        ws.send_text(json.dumps({"type": "preview"}))
        assert "latent-action worlds" in next_of(ws, "json", "error")[1]["message"]


def save_fixed_agent(path, num_actions: int, action: int):
    """An agent directory whose policy always picks `action` (bias +50 on it)."""
    import torch

    from maskworld.agents.actor_critic import ActorCritic, ActorCriticConfig, save_agent

    agent = ActorCritic(ActorCriticConfig(num_actions, 64, channels=8, hidden=16))
    with torch.no_grad():
        agent.actor.bias[action] = 50.0
    return save_agent(agent, path, {"env_id": "test", "real_steps": 123})


def test_agent_drives_and_frames_say_who_acts(tiny_world, tmp_path):
    """With an agent, the driver switch hands the actions to it (every key press = one agent step in step mode);
    each frame says who acted; switching back gives the keys back."""
    agent = save_fixed_agent(tmp_path / "agent", 3, action=2)
    app = agent_app(tmp_path / "world", SessionStore(tmp_path / "s.db"), agent, fps=20)
    with TestClient(app) as client, open_step(client) as (ws, hello, first):
        assert hello["agent"]["name"] == "agent" and hello["agent"]["real_steps"] == 123
        assert first[1]["driver"] == "you"
        ws.send_text(json.dumps({"type": "driver", "driver": "agent"}))
        assert next_of(ws, "json", "driver")[1]["driver"] == "agent"
        for _ in range(3):
            h = step(ws, 0)[1]  # the key asks for a step; the agent picks the action
            assert (h["action"], h["driver"]) == (2, "agent")
        ws.send_text(json.dumps({"type": "driver", "driver": "you"}))
        next_of(ws, "json", "driver")
        h = step(ws, 0)[1]
        assert (h["action"], h["driver"]) == (0, "you")


def test_agent_refused_when_missing_or_mismatched(app, tiny_world, tmp_path):
    with TestClient(app) as client, open_step(client) as (ws, hello, _):
        assert hello["agent"] is None
        ws.send_text(json.dumps({"type": "driver", "driver": "agent"}))
        assert "no agent" in next_of(ws, "json", "error")[1]["message"]
        assert step(ws, 1)[1]["driver"] == "you"  # the session carries on
    with pytest.raises(UserError, match="7 actions"):
        agent_app(tmp_path / "world", SessionStore(tmp_path / "s2.db"), save_fixed_agent(tmp_path / "a7", 7, 0))
    bad = save_fixed_agent(tmp_path / "bad", 3, 0)
    (bad / "agent.safetensors").write_bytes(b"\0" * 10)
    with pytest.raises(UserError, match="corrupt or truncated"):
        agent_app(tmp_path / "world", SessionStore(tmp_path / "s3.db"), bad)


def test_play_finds_the_agent_beside_its_world(tmp_path):
    from maskworld.commands.play_cmd import find_agent

    (tmp_path / "w").mkdir()
    assert find_agent(tmp_path / "w", None, False) is None
    a = save_fixed_agent(tmp_path / "w" / "agent", 3, 0)
    assert find_agent(tmp_path / "w", None, False) == a and find_agent(tmp_path / "w", None, True) is None
    (a / "world").mkdir()
    assert find_agent(a / "world", None, False) == a  # an agent's updated world (AGENT/world) finds its agent
    with pytest.raises(UserError, match="not an agent directory"):
        find_agent(tmp_path / "w", str(tmp_path / "nope"), False)


# ---------------------------------------------------------------------------- hardening
def test_serve_imports_no_agents_or_training():
    """The agent is injected as a callable: serving does not depend on how agents are trained or stored."""
    import ast
    from pathlib import Path

    import maskworld.serve

    for f in Path(maskworld.serve.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.startswith(("maskworld.agents", "maskworld.train")) for n in names), (f.name, names)


def tall_png(width=16_777_216, height=1) -> bytes:
    """A tiny PNG claiming a huge size (deflate squeezes a blank image ~1000:1): 16 KB for 16 Mpx."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (width, height)).save(buf, format="PNG")
    return buf.getvalue()


def header_only_png(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height and whose pixel data is missing: only a check of the header can
    say anything but 'truncated'."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_upload_side_capped_before_decoding():
    """A 1 x 16,777,216 PNG is 16 KB but decodes for seconds: refused from its header, per side, before any pixel."""
    data = tall_png()
    assert len(data) < 64 * 1024
    with pytest.raises(UserError, match=r"pixel limit \(4096 px per side"):
        decode_upload(data, 64)
    for w, h in ((16_777_216, 1), (1, 5000), (4097, 4)):
        with pytest.raises(UserError, match="pixel limit"):
            decode_upload(header_only_png(w, h), 64)
    with pytest.raises(UserError, match="truncated"):  # within the caps: the header passes, the pixels are missing
        decode_upload(header_only_png(4096, 4), 64)


def test_upload_decoded_off_the_event_loop(app, monkeypatch):
    """While one tab's image decodes, another tab is answered: decoding runs on a worker, not the event loop."""
    import threading

    from maskworld.serve import prompts

    started, go, waited = threading.Event(), threading.Event(), []
    real = prompts.decode_upload

    def slow_decode(data, size):
        started.set()
        waited.append(go.wait(10))  # True only if the other tab got its answer while this blocked
        return real(data, size)

    monkeypatch.setattr(prompts, "decode_upload", slow_decode)
    with TestClient(app) as client, open_step(client, seed=1) as (ws1, _, _), open_step(client, seed=2) as (ws2, _, _):
        ws1.send_bytes(png_bytes(size=(120, 90)))
        assert started.wait(10)
        ws2.send_text(json.dumps({"type": "ping", "t": 7}))
        assert next_of(ws2, "json", "pong")[1]["t"] == 7
        go.set()
        assert next_of(ws1, "frame")[1]["step"] == 0
    assert waited == [True]


def test_ipv6_loopback_host_checked(tiny_world, tmp_path):
    """Bound to ::1 the server answers only to loopback names: DNS rebinding (Host: evil.example) gets 400 / 403."""
    from maskworld.serve.security import allowed_hosts_for, host_name, is_loopback

    assert all(is_loopback(h) for h in ("::1", "[::1]", "127.0.0.1", "127.0.0.2", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.2", "evil.example"))
    assert allowed_hosts_for("0.0.0.0") is None and "::1" in allowed_hosts_for("::1")
    assert [host_name(h) for h in ("[::1]:8000", "[::1]", "LocalHost.:80", "127.0.0.1", "evil.example:80", "[::1")] == \
        ["::1", "::1", "localhost", "127.0.0.1", "evil.example", ""]
    app = create_app(tmp_path / "world", store=SessionStore(tmp_path / "s.db"), allowed_hosts=allowed_hosts_for("::1"))
    with TestClient(app, base_url="http://[::1]:8000") as client:
        assert client.get("/").status_code == 200
        for host in ("localhost:8000", "127.0.0.1:8000"):
            assert client.get("/", headers={"host": host}).status_code == 200
        for host in ("evil.example", "evil.example:8000", "[::2]:8000", ""):
            assert client.get("/", headers={"host": host}).status_code == 400
        with pytest.raises(WebSocketDisconnect) as e, client.websocket_connect("/ws", headers={"host": "evil.example"}) as ws:
            ws.receive()
        assert e.value.code == 1008
        with client.websocket_connect("ws://[::1]:8000/ws?mode=step") as ws:
            assert next_of(ws, "json", "hello")[1]["type"] == "hello"


def test_save_quota(tiny_world, tmp_path):
    """Saves stop at the server's quota (count, then bytes) with a clear error; overwriting a name is allowed."""
    store = SessionStore(tmp_path / "s.db", max_sessions=2)
    app = create_app(tmp_path / "world", store=store)
    with TestClient(app) as client, open_step(client) as (ws, _, _):
        for name in ("a", "b", "a"):
            ws.send_text(json.dumps({"type": "save", "name": name}))
            assert next_of(ws, "json", "saved")[1]["name"] == name
        ws.send_text(json.dumps({"type": "save", "name": "c"}))
        err = next_of(ws, "json", "error")[1]["message"]
        assert "2 sessions" in err and "--max-sessions" in err and "maskworld sessions delete" in err
        assert step(ws, 0)[1]["step"] == 1  # the session carries on
    one = store.meta("a")
    size = len(store.load_state("a")[0])
    tight = SessionStore(tmp_path / "t.db", max_bytes=int(size * 1.5))
    s = tiny_world.session(seed=0)
    tight.save("x", s, tmp_path / "world", one["world_id"])
    tight.save("x", s, tmp_path / "world", one["world_id"])  # same name: its bytes are reused
    with pytest.raises(UserError, match="MiB limit"):
        tight.save("y", s, tmp_path / "world", one["world_id"])
    assert [r["name"] for r in tight.list()] == ["x"]


def test_play_checks_quota_flags(tiny_world, tmp_path, capsys):
    from maskworld.cli import main

    world = str(tmp_path / "world")
    assert main(["play", world, "--max-sessions", "0"]) == 2
    assert "--max-sessions" in capsys.readouterr().err
    assert main(["play", world, "--max-saved-mib", "-1"]) == 2
    assert "--max-saved-mib" in capsys.readouterr().err


def test_save_does_not_block_other_sessions(app, monkeypatch):
    """The SQLite write of a save runs on the store's thread: while it is in progress, other tabs keep stepping."""
    import threading

    store = app.state.store
    started, go, waited = threading.Event(), threading.Event(), []
    real = store.write

    def slow_write(*args):
        started.set()
        waited.append(go.wait(10))  # True only if the other tab stepped while this write blocked
        return real(*args)

    monkeypatch.setattr(store, "write", slow_write)
    with TestClient(app) as client, open_step(client, seed=1) as (ws1, _, _), open_step(client, seed=2) as (ws2, _, _):
        ws1.send_text(json.dumps({"type": "save", "name": "slow"}))
        assert started.wait(10)
        assert step(ws2, 1)[1]["step"] == 1
        go.set()
        assert next_of(ws1, "json", "saved")[1]["name"] == "slow"
    assert waited == [True]


@pytest.mark.parametrize("text", ["[" * 1000 + "]" * 1000, '{"type": "ping", "t": ' + "[" * 600 + "]" * 600 + "}",
                                  '{"type": "ping", "t": NaN}', '{"type": "ping", "t": Infinity}'])
def test_nested_or_nonstandard_json_is_a_clear_error(app, text, caplog):
    """Deep nesting (a parser recurses per level) and NaN/Infinity (not JSON) get an error message, not a traceback."""
    with pytest.raises(UserError, match="nested|not valid JSON"):
        validate_message(text)
    with TestClient(app) as client, open_step(client) as (ws, _, _):
        ws.send_text(text)
        assert "internal error" not in next_of(ws, "json", "error")[1]["message"]
        assert step(ws, 0)[1]["step"] == 1
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
