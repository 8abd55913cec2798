"""Memory keys the world computes itself: the motion model, appearance keys, loop closure, appearance-only worlds."""

import numpy as np
import pytest

from maskworld.memory import appearance
from maskworld.memory.motion import STILL, Motion, changed_share, fit_motion
from maskworld.memory.pose import HERE, REL_EMPTY, delta_class, integrate
from maskworld.memory.retrieval import training_memory

LEFT, RIGHT, FORWARD, PICKUP = 0, 1, 2, 3


def corridor_walk(rng, steps=400, width=6, grid=4):
    """A grid walk: turns always turn, forward moves unless a wall is ahead (then the frame stays the same),
    pick-up does nothing. Each pose shows its own random token map (so a move changes the frame)."""
    looks = rng.integers(0, 50, size=(width, width, 4, grid * grid))
    pose = np.array([1, 1, 0])
    poses, toks, acts = [pose.copy()], [looks[1, 1, 0]], [-1]
    for _ in range(steps):
        a = int(rng.integers(4))
        if a == LEFT:
            pose = np.array([pose[0], pose[1], (pose[2] - 1) % 4])
        elif a == RIGHT:
            pose = np.array([pose[0], pose[1], (pose[2] + 1) % 4])
        elif a == FORWARD:
            nxt = integrate(pose, delta_class(np.zeros(3, np.int64), np.array([1, 0, 0])))
            if 0 <= nxt[0] < width and 0 <= nxt[1] < width:
                pose = nxt
        poses.append(pose.copy())
        toks.append(looks[pose[0], pose[1], pose[2]])
        acts.append(a)
    first = np.zeros(len(poses), bool)
    first[0] = True
    return np.array(poses), np.array(toks), np.array(acts), first


def test_motion_model_learns_what_each_action_does_and_when_a_move_is_blocked():
    poses, toks, acts, first = corridor_walk(np.random.default_rng(0))
    m = fit_motion(poses, toks, acts, first, num_actions=4)
    assert m.moves[PICKUP] == STILL and not m.blockable[LEFT] and not m.blockable[RIGHT] and m.blockable[FORWARD]
    p = np.array([2, 2, 0])
    assert (integrate(p, m.moves[LEFT]) == [2, 2, 3]).all() and (integrate(p, m.moves[FORWARD]) == [3, 2, 0]).all()
    assert m.accuracy == 1.0 and 0 < m.change < 1
    # the world's own frame decides a blockable move: an unchanged frame = blocked
    same, other = toks[5], (toks[5] + 1) % 50
    assert (m.step(p, FORWARD, same, same) == p).all()
    assert (m.step(p, FORWARD, same, other) == [3, 2, 0]).all()
    assert (m.step(p, LEFT, same, same) == [2, 2, 3]).all()  # a turn cannot be blocked
    assert (m.step(p, 99, same, other) == p).all()  # the NULL action of a first frame moves nothing
    assert Motion.from_dict(m.to_dict()) == m and Motion.from_dict({}) is None


def test_motion_accuracy_can_fail_when_poses_do_not_follow_the_actions():
    poses, toks, acts, first = corridor_walk(np.random.default_rng(1))
    shuffled = acts.copy()
    np.random.default_rng(2).shuffle(shuffled[1:])
    assert fit_motion(poses, toks, shuffled, first, num_actions=4).accuracy < 0.75  # 1.0 with the true actions


def test_appearance_similarity_matches_a_scrolled_view_and_select_skips_duplicates_and_strangers():
    rng = np.random.default_rng(0)
    g = 8
    a = rng.integers(0, 100, size=(g, g))
    scrolled = np.roll(a, 1, axis=1)
    stranger = rng.integers(100, 200, size=(g, g))
    s = appearance.similarity(a.reshape(-1), np.stack([a, scrolled, stranger]).reshape(3, -1), g)
    assert s[0] == 1.0 and s[1] == 1.0 and s[2] == 0.0
    cand = np.stack([stranger, a, a, scrolled]).reshape(4, -1)
    idx = appearance.select(a.reshape(-1), cand, g, m=3)
    assert list(idx) == [3]  # the most recent view of that look (scrolled by a cell is the same look); copies add nothing


def test_loop_closure_snaps_only_to_a_place_that_looks_unique():
    rng = np.random.default_rng(0)
    g = 4
    here, elsewhere = rng.integers(0, 50, size=(2, g * g))
    poses = np.array([[5, 5, 1], [7, 2, 0]])
    assert (appearance.closure(here, np.stack([here, elsewhere]), poses, g) == [5, 5, 1]).all()
    assert appearance.closure(here, np.stack([here, here]), poses, g) is None  # looks like two places
    assert appearance.closure(here, np.stack([elsewhere, elsewhere]), poses, g) is None
    near, far = np.array([4, 6, 0]), np.array([9, 9, 0])
    assert (appearance.closure(here, np.stack([here, elsewhere]), poses, g, pose=near) == [5, 5, 1]).all()
    assert appearance.closure(here, np.stack([here, elsewhere]), poses, g, pose=far) is None  # no teleporting
    wall = np.zeros(g * g, np.int64)
    wall[:3] = 7  # mostly one token: it could be taken anywhere
    assert not appearance.distinctive(wall) and appearance.distinctive(here)
    assert appearance.closure(wall, np.stack([wall, elsewhere]), poses, g) is None


def test_training_memory_by_appearance_reads_the_frames_that_look_like_the_last_one():
    rng = np.random.default_rng(0)
    g = 4
    looks = rng.integers(0, 1000, size=(3, g * g))
    order = [0, 1, 2, 0, 1, 2, 1, 1, 0]  # frame 8's predecessor (frame 7) looks like frames 1, 4, 6
    tokens = looks[order].reshape(-1, g, g)
    rows = np.array([[6, 7, 8]])
    ret, rel, _ = training_memory(None, rows, np.zeros_like(rows), window=2, m=2, c=0, rng=rng, drop=0.0,
                                  keys="appearance", tokens=tokens, grid=g)
    assert order[ret[0, 2, 0]] == 1 and ret[0, 2, 0] == 6 and rel[0, 2, 0] == HERE  # most recent look-alike first
    assert ret[0, 2, 1] == -1 and rel[0, 2, 1] == REL_EMPTY  # its copies are skipped, the rest look different


def _with_motion(world, motion: Motion):
    import dataclasses

    world.meta = dataclasses.replace(world.meta, motion=motion.to_dict())
    return world


def test_session_keeps_its_own_pose_and_closes_loops(tiny_memory_world):
    n = tiny_memory_world.num_actions
    turn = int(delta_class(np.zeros(3, np.int64), np.array([0, 0, 1])))
    motion = Motion(moves=[turn] + [STILL] * (n - 1), blockable=[False] * n, change=0.5)
    w = _with_motion(tiny_memory_world, motion)
    s = w.session(seed=0)
    assert s.memory_keys == "own"
    win = w.dynamics.cfg.window
    for _ in range(win - 1):  # no loop closure yet: nothing has left the window
        s.step(0)
    assert (s.pose == [0, 0, (win - 1) % 4]).all()  # turns, whatever the frames showed
    for _ in range(win + 2):
        s.step(1)
    # a frame that looks exactly like one remembered place (outside the window) puts the pose back there
    g, rng = w.dynamics.cfg.grid, np.random.default_rng(0)
    for i in range(s.bank.size):
        s.bank.replace(i, tokens=rng.integers(0, w.dynamics.cfg.vocab_size, g * g), pose=np.array([i, 9, 0]))
    s.bank.replace(1, pose=np.array([4, 4, 2]))
    before = s.closures
    s.pose = np.array([9, 9, 0])
    s._close_loop(s.bank.tokens[1].reshape(g, g).copy())
    assert s.closures == before  # the look-alike is far from where the world believes it is: no jump
    s.pose = np.array([3, 5, 0])
    s._close_loop(s.bank.tokens[1].reshape(g, g).copy())
    assert (s.pose == [4, 4, 2]).all() and s.closures == before + 1 and s.last_closure == s.pos
    s._close_loop(s.bank.tokens[1].reshape(g, g).copy())
    assert s.closures == before + 1  # already there: nothing to close


def test_own_keys_session_resumes_frame_identically(tiny_memory_world, one_thread):
    from maskworld.world.session import Session

    n = tiny_memory_world.num_actions
    fwd = int(delta_class(np.zeros(3, np.int64), np.array([1, 0, 0])))
    turn = int(delta_class(np.zeros(3, np.int64), np.array([0, 0, 1])))
    w = _with_motion(tiny_memory_world, Motion(moves=[turn, turn, fwd] + [STILL] * (n - 3),
                                               blockable=[False, False, True] + [False] * (n - 3), change=0.05))
    acts = [2, 2, 0, 2, 1, 2, 2, 2] * 6
    s = w.session(seed=3)
    for a in acts:
        s.step(a)
    blob, info = s.to_bytes()
    r = Session.from_bytes(w, blob, info)
    assert r.memory_keys == "own" and r.closures == s.closures and (r.pose == s.pose).all()
    for a in acts[:12]:
        fa, fb = s.step(a)[0], r.step(a)[0]
        assert (fa == fb).all() and (s.pose == r.pose).all()


def test_changed_share():
    assert changed_share(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 0])) == 0.5


@pytest.mark.slow
def test_a_world_trained_without_poses_remembers_by_appearance(tmp_path, capsys, one_thread):
    from maskworld.cli import main
    from maskworld.world.world import load_world
    from toy import make_toy_store

    data = make_toy_store(tmp_path / "toy", episodes=6, T=16)
    out = tmp_path / "w"
    assert main(["train", "world", "--data", data, "--out", str(out), "--preset", "tiny", "--steps", "2",
                 "--tok-steps", "2", "--window", "4", "--memory", "2", "--no-progress"]) == 0
    assert "retrieved frames by appearance" in capsys.readouterr().out
    w = load_world(out)
    assert w.dynamics.cfg.memory_keys == "appearance" and not w.dynamics.cfg.pose_head and not w.meta.motion
    s = w.session(seed=0)
    assert s.memory_keys == "appearance"
    for _ in range(10):
        s.step(0)
    ret, rel, _, _ = s.memory_input_row()
    assert set(rel.tolist()) <= {HERE, REL_EMPTY}
    from maskworld.world.session import Session

    r = Session.from_bytes(w, *s.to_bytes())  # appearance keys resume exactly: they are the remembered tokens
    assert r.memory_keys == "appearance"
    for a in [0, 1, 2, 3] * 3:
        assert (s.step(a)[0] == r.step(a)[0]).all()


@pytest.mark.slow
def test_walkback_trials_on_a_platformer_and_the_benchmark_without_poses(one_thread):
    """Walk-back trials leave the start's view and come back; the benchmark runs on them with a world that finds
    memory by appearance, and a world without memory gains exactly nothing."""
    import torch

    from conftest import _tiny_parts
    from maskworld.envs import make_env
    from maskworld.eval.metrics import psnr_per_frame
    from maskworld.eval.revisit import revisit
    from maskworld.eval.walkback import OUTBOUND, make_walkback_trials
    from maskworld.models.sampler import SamplerConfig
    from maskworld.world.world import World, WorldMeta

    trials = make_walkback_trials("procgen:coinrun", gaps=(32,), per_gap=2, seed=0)
    for t in trials:
        assert len(t.frames) == OUTBOUND + 32 and t.poses is None and t.views is None
        back = psnr_per_frame(t.frames[t.ret], t.frames[t.match]).mean()
        assert t.away < back - 6  # the turning point looks unlike the start; the way back looks like it
    meanings = make_env("procgen:coinrun", size=64, seed=0).action_meanings
    tok, dyn = _tiny_parts(len(meanings), memory_frames=2, compressed_frames=2, memory_keys="appearance")
    with torch.no_grad():
        for r in dyn.memory.reads:
            r.out.weight.normal_(0, 0.5)
    w = World(tok, dyn, SamplerConfig(steps=1), WorldMeta(env_id="procgen:coinrun", action_meanings=meanings))
    m = revisit(w, gaps=(32,), per_gap=2, progress=False)
    assert m["revisit.arms"] == ["memory", "no_memory", "oracle", "copy_last", "tokenizer"]
    assert m["revisit.memory.psnr.32"] != m["revisit.no_memory.psnr.32"] and m["revisit.memory.recall.32"] is None
    tok, dyn = _tiny_parts(len(meanings))
    blind = World(tok, dyn, SamplerConfig(steps=1), WorldMeta(env_id="procgen:coinrun", action_meanings=meanings))
    assert revisit(blind, gaps=(32,), per_gap=2, progress=False)["revisit.gain.psnr.32"] == 0.0
