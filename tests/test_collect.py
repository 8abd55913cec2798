"""`maskworld collect` end to end: budgets, resume, SIGKILL safety, partitions, merge, errors."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from maskworld.cli import main
from maskworld.data.collect import CollectConfig, collect
from maskworld.data.policies import Policy
from maskworld.data.store import EpisodeStore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MG = "MiniGrid-FourRooms-v0"


def cli(*args):
    return main([str(a) for a in args])


def check_complete(store):
    """Every visible episode decodes, has T+1 frames and ends (terminated or truncated)."""
    assert store.verify() == []
    for i in store.episode_ids:
        ep = store.load(i)
        assert ep.frames.shape[0] == len(ep) + 1 == store.length(i) + 1
        assert ep.terminated[-1] or ep.truncated[-1]
        assert not (ep.terminated[:-1] | ep.truncated[:-1]).any()
        assert ep.info["agent_pos"].shape == (len(ep) + 1, 2)


def test_collect_budget_and_resume(tmp_path, capsys):
    out = tmp_path / "mg"
    assert cli("collect", "--env", MG, "--steps", 250, "--out", out, "--num-envs", 2, "--size", 32,
               "--max-episode-steps", 60, "--no-progress") == 0
    text = capsys.readouterr().out
    assert "stored frames/s" in text and "raw env steps/s" in text and "ratio" in text
    s = EpisodeStore(out)
    assert s.num_transitions == 250 and s.meta["num_actions"] == 7 and s.meta["has_actions"]
    assert s.meta["info_keys"] == ["agent_pos", "agent_dir"] and "collect" in s.meta["command"]
    assert max(s.length(i) for i in s.episode_ids) <= 60
    check_complete(s)
    first = {i: s.load(i).frames for i in s.episode_ids}
    # same command with a larger budget: resumes, keeps what is there, fresh seeds
    assert cli("collect", "--env", MG, "--steps", 400, "--out", out, "--num-envs", 2, "--size", 32,
               "--max-episode-steps", 60, "--no-progress") == 0
    s = EpisodeStore(out)
    assert s.num_transitions == 400
    assert all(np.array_equal(s.load(i).frames, f) for i, f in first.items())
    gs = [s.entry(i)["seed_index"] for i in s.episode_ids]
    assert len(set(gs)) == len(gs)
    # already complete: nothing to do
    assert cli("collect", "--env", MG, "--steps", 300, "--out", out, "--size", 32, "--max-episode-steps", 60,
               "--no-progress") == 0
    assert "nothing to collect" in capsys.readouterr().out
    # different settings on the same store are refused
    assert cli("collect", "--env", MG, "--steps", 900, "--out", out, "--size", 32, "--policy", "sticky",
               "--max-episode-steps", 60, "--no-progress") == 2


def test_one_command_makes_the_same_store_twice(tmp_path):
    """Workers race, yet episodes are stored in k order, so ids and the held-out split repeat run to run."""
    stores = []
    for name in ("a", "b"):
        assert cli("collect", "--env", MG, "--steps", 300, "--out", tmp_path / name, "--num-envs", 3, "--size", 32,
                   "--max-episode-steps", 40, "--no-progress") == 0
        stores.append(EpisodeStore(tmp_path / name))
    a, b = stores
    assert [a.entry(i)["k"] for i in a.episode_ids] == list(range(len(a)))
    assert a.episode_ids == b.episode_ids and a.split() == b.split()
    assert [s["sha256"] for s in a.shards] == [s["sha256"] for s in b.shards]


def test_unknown_env_exit_2_and_no_dir(tmp_path):
    out = tmp_path / "nope"
    r = subprocess.run([sys.executable, "-m", "maskworld", "collect", "--env", "NoSuchEnv-v9", "--steps", "10",
                        "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "NoSuchEnv-v9" in lines[0] and "maskworld envs" in lines[0]
    assert "Traceback" not in r.stderr
    assert not out.exists()


@pytest.mark.slow
def test_sigkill_leaves_complete_episodes_and_resume(tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "maskworld", "collect", "--env", MG, "--steps", "200000", "--out", str(out),
           "--num-envs", "2", "--size", "32", "--frames-per-shard", "150", "--no-progress"]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if len(json.loads((out / "manifest.json").read_text())["shards"]) >= 3:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        else:
            pytest.fail("collect wrote no shards in 60 s")
        os.kill(p.pid, signal.SIGKILL)  # the parent only: workers must die with it
        p.wait(timeout=10)
        deadline = time.time() + 5
        while time.time() < deadline:  # the session (parent + workers) empties by itself
            try:
                os.killpg(p.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            pytest.fail("collect workers outlived their killed parent")
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.3)
    s = EpisodeStore(out)
    assert len(s) > 0
    check_complete(s)
    stored = s.num_transitions
    ids = list(s.episode_ids)
    cmd[cmd.index("--steps") + 1] = str(stored + 300)
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    s = EpisodeStore(out)
    assert s.num_transitions == stored + 300 and s.episode_ids[: len(ids)] == ids
    assert not [n for n in os.listdir(out / "shards") if ".tmp-" in n]
    check_complete(s)


def test_shards_partition_merge_info_verify(tmp_path, capsys):
    for i in (0, 1):
        assert cli("collect", "--env", MG, "--steps", 120, "--out", tmp_path / f"p{i}", "--num-envs", 1,
                   "--size", 32, "--shard", f"{i}/2", "--max-episode-steps", 40, "--no-progress") == 0
    a, b = EpisodeStore(tmp_path / "p0"), EpisodeStore(tmp_path / "p1")
    ga = {a.entry(i)["seed_index"] for i in a.episode_ids}
    gb = {b.entry(i)["seed_index"] for i in b.episode_ids}
    assert ga and gb and not ga & gb and all(g % 2 == 0 for g in ga) and all(g % 2 == 1 for g in gb)
    assert not np.array_equal(a.load(0).frames, b.load(0).frames)
    assert cli("data", "merge", tmp_path / "m", tmp_path / "p0", tmp_path / "p1") == 0
    m = EpisodeStore(tmp_path / "m")
    assert len(m) == len(a) + len(b) and m.num_transitions == 240 and m.episode_ids == list(range(len(m)))
    capsys.readouterr()
    assert cli("data", "info", tmp_path / "m") == 0
    info = capsys.readouterr().out
    assert MG in info and "FORWARD" in info and "train" in info and "shards" in info
    assert cli("data", "verify", tmp_path / "m") == 0
    shard = tmp_path / "m" / m.shards[0]["file"]
    shard.write_bytes(shard.read_bytes()[:100])
    capsys.readouterr()
    assert cli("data", "verify", tmp_path / "m") == 1
    err = capsys.readouterr().err
    assert "shard-000000.npz" in err and "episode 0" in err


def test_policies():
    names = ["LEFT", "RIGHT", "FORWARD", "PICKUP", "DROP", "TOGGLE", "DONE"]
    sticky = Policy("sticky", names, np.random.default_rng(0))
    acts = [sticky.act() for _ in range(2000)]
    repeat = np.mean([x == y for x, y in zip(acts, acts[1:])])
    assert 0.72 < repeat < 0.86  # 0.75 + 0.25/7
    explore = Policy("explore", names, np.random.default_rng(0))
    acts = np.array([explore.act() for _ in range(3000)])
    assert np.mean(acts == 2) > 0.5  # mostly FORWARD
    assert np.mean(acts == 6) < 0.02  # rarely DONE
    rnd = Policy("random", names, np.random.default_rng(0))
    assert set(rnd.act() for _ in range(300)) == set(range(7))


@pytest.mark.parametrize("env_id", ["ALE/Breakout-v5", "crafter", "procgen:coinrun"])
@pytest.mark.slow
def test_collect_other_envs(tmp_path, env_id):
    mod = {"crafter": "crafter", "procgen:coinrun": "procgen"}.get(env_id)
    if mod and importlib.util.find_spec(mod) is None:
        pytest.skip(f"{mod} not installed")
    # crafter builds a world per reset (~0.5 s): keep to one or two episodes
    stats = collect(CollectConfig(env_id=env_id, steps=40, out=str(tmp_path / "d"), num_envs=1, size=32,
                                  max_episode_steps=30, progress=False, bench_seconds=0.05))
    s = EpisodeStore(tmp_path / "d")
    assert s.num_transitions == 40 == stats["steps"] and s.verify() == []
    ep = s.load(0)
    assert ep.frames.shape[1:] == (32, 32, 3) and ep.actions.max() < s.meta["num_actions"]


def test_explore_moves_are_whole_move_words():
    """PICKUP is not a move UP: in MiniGrid the explore policy walks and turns, it does not hold pick-up."""
    from maskworld.data.policies import Policy

    mg = Policy("explore", ["LEFT", "RIGHT", "FORWARD", "PICKUP", "DROP", "TOGGLE", "DONE"], np.random.default_rng(0))
    assert list(mg.held) == [False, False, True, False, False, False, False]
    assert mg.weights[2] > mg.weights[0] > mg.weights[3]
    ale = Policy("explore", ["NOOP", "FIRE", "UP", "UPRIGHT", "UPFIRE"], np.random.default_rng(0))
    assert list(ale.held) == [False, False, True, True, True]


def test_explore_lets_go_of_a_blocked_move():
    """A held forward that changed nothing (a wall) is released and not drawn next; one that moved is held on.
    On MiniGrid-Landmarks-v0 this takes the explorer's forwards that move from 16 % to 66 %."""
    from maskworld.data.policies import Policy

    names = ["LEFT", "RIGHT", "FORWARD", "PICKUP", "DROP", "TOGGLE", "DONE"]
    blocked, walked = [], []
    for seed in range(200):
        p = Policy("explore", names, np.random.default_rng(seed))
        while p.act() != 2 or p.hold == 0:  # until a forward is held for more steps
            pass
        p.saw(False)
        blocked.append(p.act())
        q = Policy("explore", names, np.random.default_rng(seed))
        while q.act() != 2 or q.hold == 0:
            pass
        q.saw(True)
        walked.append(q.act())
    assert 2 not in blocked and set(blocked) >= {0, 1}
    assert all(a == 2 for a in walked)
    turn = Policy("explore", names, np.random.default_rng(0))
    turn.prev = 3  # PICKUP is not a movement: an unchanged frame after it says nothing about walls
    turn.saw(False)
    assert turn.avoid is None


def test_sticky_actions_reach_the_emulator_and_the_store(tmp_path):
    """--sticky-actions 0 (the default for ALE): v5 without its repeat-the-last-action noise; stored so eval builds
    the same env and a resume must match it; refused for other envs and outside [0, 1]."""
    from maskworld.cli import main
    from maskworld.envs import make_env

    out = tmp_path / "d"
    assert main(["collect", "--env", "ALE/Breakout-v5", "--steps", "20", "--num-envs", "1", "--size", "32",
                 "--sticky-actions", "0", "--out", str(out), "--no-progress"]) == 0
    kw = EpisodeStore(out).meta["env_kwargs"]
    assert kw == {"repeat_action_probability": 0.0}
    env = make_env("ALE/Breakout-v5", size=32, seed=0, **kw)
    try:
        assert env.env.unwrapped.ale.getFloat("repeat_action_probability") == 0.0
    finally:
        env.close()
    assert main(["collect", "--env", "ALE/Breakout-v5", "--steps", "5", "--num-envs", "1", "--size", "32",
                 "--out", str(tmp_path / "default"), "--no-progress"]) == 0  # a world's actions do what they say
    assert EpisodeStore(tmp_path / "default").meta["env_kwargs"] == {"repeat_action_probability": 0.0}
    before = EpisodeStore(out).num_transitions
    assert main(["collect", "--env", "ALE/Breakout-v5", "--steps", "40", "--num-envs", "1", "--size", "32",
                 "--sticky-actions", "0.5", "--out", str(out), "--no-progress"]) == 2  # resume with other env options
    assert EpisodeStore(out).num_transitions == before
    assert main(["collect", "--env", "MiniGrid-Empty-5x5-v0", "--steps", "5", "--sticky-actions", "0",
                 "--out", str(tmp_path / "m")]) == 2
    assert main(["collect", "--env", "ALE/Breakout-v5", "--steps", "5", "--sticky-actions", "1.5",
                 "--out", str(tmp_path / "b")]) == 2
    assert main(["collect", "--env", "MultiAgent-Coins-v0", "--steps", "5", "--agents", "5", "--out", str(tmp_path / "c")]) == 2
    assert main(["collect", "--env", "ALE/Breakout-v5", "--steps", "5", "--num-levels", "3", "--out", str(tmp_path / "p")]) == 2
    assert not any((tmp_path / n).exists() for n in "mbcp")
