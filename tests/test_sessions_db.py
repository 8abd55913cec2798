"""Saved sessions: exact resume across servers and DB connections, name checks, `maskworld sessions`."""

import json

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient
from test_serve import next_of, open_step, step

import maskworld
from maskworld.cli import main
from maskworld.errors import UserError
from maskworld.serve.app import create_app
from maskworld.serve.store import SessionStore, validate_name

FIRST, THEN = [0, 1, 2, 0, 1, 1], [2, 0, 1, 2]  # FIRST is longer than the tiny window (4): the cache has slid


@pytest.mark.slow
def test_resume_in_new_server_is_exact(tiny_world, tmp_path):
    db, world = tmp_path / "sessions.db", tmp_path / "world"
    # uninterrupted reference, straight from the core API
    ref = maskworld.load_world(world).session(seed=11)
    for a in FIRST:
        ref.step(a)
    ref_frames = [ref.step(a)[0] for a in THEN]

    app = create_app(world, store=SessionStore(db))
    with TestClient(app) as client, open_step(client, seed=11) as (ws, _, _):
        for a in FIRST:
            saved_frame = step(ws, a)
        ws.send_text(json.dumps({"type": "save", "name": "run 1"}))
        assert next_of(ws, "json", "saved")[1] == {"type": "saved", "name": "run 1", "steps": len(FIRST)}
        # the server's own session continues like the reference
        live = [step(ws, a)[2][..., :3] for a in THEN]
    assert all(np.array_equal(a, b) for a, b in zip(live, ref_frames))
    app.state.store.close()

    # a new server, a new DB connection, the world loaded again from disk
    app2 = create_app(world, store=SessionStore(db))
    with TestClient(app2) as client, open_step(client, seed=999) as (ws, _, _):
        ws.send_text(json.dumps({"type": "list"}))
        listed = next_of(ws, "json", "sessions")[1]["sessions"]
        assert [(s["name"], s["steps"], s["same_world"]) for s in listed] == [("run 1", len(FIRST), True)]
        ws.send_text(json.dumps({"type": "load", "name": "run 1"}))
        resumed = next_of(ws, "frame")
        assert resumed[1]["step"] == len(FIRST) and resumed[1]["name"] == "run 1"
        assert np.array_equal(resumed[2], saved_frame[2])
        after = [step(ws, a)[2][..., :3] for a in THEN]
        # reset goes back to the resumed point, not to step 0
        ws.send_text(json.dumps({"type": "reset"}))
        assert next_of(ws, "frame")[1]["step"] == len(FIRST)
        thumb = client.get("/api/sessions/run 1/thumbnail.png")
        assert thumb.status_code == 200 and thumb.content[:4] == b"\x89PNG"
        assert client.get("/api/sessions/nope/thumbnail.png").status_code == 404
    assert all(np.array_equal(a, b) for a, b in zip(after, ref_frames))


def test_other_world_is_refused(tiny_world, tmp_path):
    store = SessionStore(tmp_path / "s.db")
    s = tiny_world.session(seed=0)
    store.save("mine", s, tmp_path / "world", "0123456789abcdef")
    with pytest.raises(UserError, match="another world"):
        store.resume("mine", tiny_world, "fedcba9876543210")


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "..", ".hidden", "x" * 65, "semi;colon", "nul\x00", 5, None, "a..b"])
def test_bad_names(bad):
    with pytest.raises(UserError, match="session name"):
        validate_name(bad)


def test_sessions_cli(tiny_world, tmp_path, capsys):
    db = str(tmp_path / "cli.db")
    store = SessionStore(db)
    s = tiny_world.session(seed=1)
    s.step(0)
    store.save("alpha", s, tmp_path / "world", "abc")
    s.step(1)
    store.save("beta", s, tmp_path / "world", "abc")
    store.close()

    assert main(["sessions", "list", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "alpha" in out and "beta" in out
    assert main(["sessions", "list", "--db", db, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"]: r["steps"] for r in rows} == {"alpha": 1, "beta": 2}
    thumb = tmp_path / "t.png"
    assert main(["sessions", "show", "beta", "--db", db, "--json", "--thumbnail", str(thumb)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["steps"] == 2 and shown["seed"] == 1 and thumb.read_bytes()[:4] == b"\x89PNG"
    assert main(["sessions", "delete", "alpha", "--db", db]) == 0
    capsys.readouterr()
    assert main(["sessions", "delete", "alpha", "--db", db]) == 2
    assert "no saved session" in capsys.readouterr().err
    assert main(["sessions", "show", "../etc", "--db", db]) == 2
    assert main(["sessions", "list", "--db", str(tmp_path)]) == 2  # a directory is not a DB file
    assert "is a directory" in capsys.readouterr().err
