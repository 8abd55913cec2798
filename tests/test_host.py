"""Persistent hosted worlds: a timeline that survives SIGKILL, replays bit for bit, branches; controllers and agents."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from maskworld.errors import UserError
from maskworld.host.host import Host, replay
from maskworld.host.timeline import Timeline, frame_hash


def test_host_records_resumes_replays_and_branches(tiny_world, tmp_path, one_thread):
    db = tmp_path / "town.db"
    h = Host.open(tiny_world, db, rate=1000, seed=3, snapshot_every=7)
    assert h.run(ticks=20) == 20 and h.timeline.last_tick == 20
    last = h.frame.copy()
    h.close()
    again = Host.open(tiny_world, db)  # resumes at the last committed tick: snapshot 14, then 6 logged actions
    assert again.tick_no == 20 and (again.session.frame == last).all()
    assert again.rate == 1000 and again.timeline.integrity() == "ok"
    again.run(ticks=5)
    again.close()
    tl = Timeline(db)
    hashes = {t.tick: t.frame_hash for t in tl.ticks()}
    replayed = dict(replay(tiny_world, tl))
    assert sorted(replayed) == list(range(26)) and all(frame_hash(replayed[k]) == hashes[k] for k in hashes)
    b = tl.branch(tmp_path / "town-b.db", at=12)
    assert b.last_tick == 12 and b.meta()["branched_at"] == 12
    b.close()
    hb = Host.open(tiny_world, tmp_path / "town-b.db")
    assert hb.tick_no == 12 and frame_hash(hb.session.frame) == hashes[12]
    with pytest.raises(UserError, match="exists already"):
        tl.branch(tmp_path / "town-b.db", at=3)
    with pytest.raises(UserError, match="ticks 0..25"):
        tl.branch(tmp_path / "c.db", at=99)


def test_a_tampered_timeline_is_refused(tiny_world, tmp_path, one_thread):
    db = tmp_path / "t.db"
    h = Host.open(tiny_world, db, rate=1000, snapshot_every=100)
    h.run(ticks=5)
    h.close()
    tl = Timeline(db)
    tl.db.execute("UPDATE ticks SET frame_hash = 'x' WHERE tick = 3")
    with pytest.raises(UserError, match="tick 3"):
        list(replay(tiny_world, tl))
    with pytest.raises(UserError, match="tick 3"):
        Host.open(tiny_world, db)


def test_people_hold_avatars_and_the_agent_drives_the_rest(tiny_world, tmp_path, one_thread):
    h = Host.open(tiny_world, tmp_path / "p.db", rate=1000, policy=lambda frames: np.full(len(frames), 1))
    assert h.step().actors == ["agent"] and h.timeline.ticks()[-1].actions == [1]
    h.hold(0, "alice")
    h.act(0, "alice", 2)
    t = h.step()
    assert t.actions == [2] and t.actors == ["alice"] and h.drivers() == ["alice"]
    assert h.step().actions == [0]  # an action counts once; then NOOP until the holder acts again
    with pytest.raises(UserError, match="held by alice"):
        h.hold(0, "bob")
    with pytest.raises(UserError, match="does not hold"):
        h.act(0, "bob", 1)
    with pytest.raises(UserError, match="outside the action space"):
        h.act(0, "alice", 99)
    h.release(0)
    assert h.step().actors == ["agent"]


def test_an_instance_refuses_another_world(tiny_world, tiny_memory_world, tmp_path, one_thread):
    db = tmp_path / "w.db"
    Host.open(tiny_world, db, rate=1000).close()
    with pytest.raises(UserError, match="was recorded in world"):
        Host.open(tiny_memory_world, db)
    before = tiny_world.sampler.temperature
    try:  # the same weights drawing otherwise would not replay the recorded ticks
        tiny_world.sampler.temperature = before + 0.25
        with pytest.raises(UserError, match="sampler's temperature"):
            Host.open(tiny_world, db)
    finally:
        tiny_world.sampler.temperature = before
    Host.open(tiny_world, db).close()
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(UserError, match="not a persistent world"):
        Timeline(tmp_path / "junk.db")


@pytest.mark.slow
def test_sigkill_loses_no_committed_tick_and_replay_is_exact(tiny_world, tmp_path):
    """A real `maskworld host` process killed with SIGKILL at random moments: every restart resumes at the last
    committed tick, the file stays intact, and a replay from tick 0 reproduces every recorded frame."""
    db = tmp_path / "k.db"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "maskworld", "host", "k", "--world", str(tiny_world.path), "--db", str(db),
           "--rate", "40", "--snapshot-every", "9", "--no-progress"]
    rng = np.random.default_rng(0)
    seen = 0
    for kill in range(3):
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        first = p.stdout.readline()
        assert ("created" if kill == 0 else f"resumed k at tick {seen} ") in first, first
        time.sleep(1.0 + rng.random())
        p.send_signal(signal.SIGKILL)
        p.wait()
        tl = Timeline(db)
        assert tl.integrity() == "ok" and tl.last_tick > seen
        seen = tl.last_tick
        tl.close()
    assert subprocess.run([sys.executable, "-m", "maskworld", "sessions", "replay", "k", "--db", str(db)],
                          env=env, capture_output=True, text=True).returncode == 0


def test_shared_play_every_tab_sees_the_same_tick_and_one_drives(tiny_world, tmp_path, one_thread):
    """Two tabs on one hosted instance: the same frame for the same tick; a tab that takes the avatar drives it,
    the other watches and cannot; private-session messages are refused; a closed tab lets go of the avatar."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from maskworld.serve.app import create_app
    from maskworld.serve.store import SessionStore
    from test_serve import next_of

    host = Host.open(tiny_world, tmp_path / "shared.db", rate=25)
    app = create_app(tiny_world, store=SessionStore(tmp_path / "s.db"), shared=host, shared_name="town")
    with TestClient(app) as client, client.websocket_connect("/ws?mode=realtime") as a, \
            client.websocket_connect("/ws?mode=realtime") as b:
        hello = next_of(a, "json", "hello")[1]
        assert hello["shared"] == {"name": "town", "rate": 25.0, "avatars": 1}
        next_of(b, "json", "hello")
        seen: dict[str, dict[int, bytes]] = {"a": {}, "b": {}}
        for _ in range(12):  # read both tabs in turn, so their frames overlap
            for name, ws in (("a", a), ("b", b)):
                _, h, img = next_of(ws, "frame")
                seen[name][h["step"]] = img.tobytes()
        common = set(seen["a"]) & set(seen["b"])
        assert len(common) >= 3 and all(seen["a"][k] == seen["b"][k] for k in common)
        a.send_text('{"type": "driver", "driver": "you"}')
        assert next_of(a, "json", "driver")[1]["driver"] == "you"
        b.send_text('{"type": "driver", "driver": "you"}')
        assert "every avatar is held (viewer-" in next_of(b, "json", "error")[1]["message"]
        b.send_text('{"type": "action", "action": 2}')
        assert "you are watching" in next_of(b, "json", "error")[1]["message"]
        a.send_text('{"type": "action", "action": 2}')
        for _ in range(30):  # the held key is the avatar's action from the next tick on, tick after tick
            _, h, _ = next_of(a, "frame")
            if h["action"] == 2 and h["driver"] == "you":
                break
        else:
            raise AssertionError("the driving tab's action never reached the world")
        for _ in range(30):
            _, h, _ = next_of(b, "frame")
            if h["action"] == 2:
                assert h["driver"].startswith("viewer-")  # the watcher sees who drives
                break
        b.send_text('{"type": "new"}')
        assert "shared persistent world" in next_of(b, "json", "error")[1]["message"]
    assert host.drivers() == ["agent"]  # the tabs are gone: the resident agent drives again
    assert host.timeline.last_tick > 0 and host.timeline.integrity() == "ok"
