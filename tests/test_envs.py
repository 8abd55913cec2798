"""The env adapter on real environments: frames, action names, info keys, errors."""

import importlib.util

import gymnasium as gym
import numpy as np
import pytest

from maskworld.envs import list_envs, make_env, resize_frame
from maskworld.errors import UserError


def _check(env, size):
    frame, info = env.reset(seed=1)
    assert frame.shape == (size, size, 3) and frame.dtype == np.uint8
    assert set(info) == set(env.info_keys)
    frame, r, term, trunc, info = env.step(0)
    assert frame.shape == (size, size, 3) and frame.dtype == np.uint8
    assert isinstance(r, float) and isinstance(term, bool) and isinstance(trunc, bool)
    assert env.num_actions == len(env.action_meanings)
    return info


@pytest.mark.parametrize("view", ["partial", "full"])
def test_minigrid(view):
    env = make_env("MiniGrid-FourRooms-v0", size=64, seed=0, view=view)
    assert env.action_meanings == ["LEFT", "RIGHT", "FORWARD", "PICKUP", "DROP", "TOGGLE", "DONE"]
    assert env.info_keys == ["agent_pos", "agent_dir"]
    frame0, info0 = env.reset(seed=3)
    frame1, info1 = env.reset(seed=3)
    assert np.array_equal(frame0, frame1)  # seeded resets are reproducible
    info = _check(env, 64)
    assert np.asarray(info["agent_pos"]).shape == (2,) and 0 <= info["agent_dir"] < 4
    env.close()


def test_breakout_and_size():
    env = make_env("ALE/Breakout-v5", size=32, seed=0)
    assert env.action_meanings == ["NOOP", "FIRE", "RIGHT", "LEFT"]
    info = _check(env, 32)
    assert "lives" in info
    env.close()


@pytest.mark.skipif(importlib.util.find_spec("crafter") is None, reason="crafter not installed")
@pytest.mark.slow
def test_crafter():
    env = make_env("crafter", size=48, seed=0)
    assert env.num_actions == 17 and env.action_meanings[0] == "noop" and "move_left" in env.action_meanings
    info = _check(env, 48)
    assert np.asarray(info["agent_pos"]).shape == (2,)


@pytest.mark.skipif(importlib.util.find_spec("procgen") is None, reason="procgen not installed")
def test_procgen_coinrun():
    env = make_env("procgen:coinrun", size=64, seed=0)
    assert env.num_actions == 15
    assert {"NOOP", "UP_RIGHT", "LEFT", "DOWN_LEFT"} <= set(env.action_meanings)
    _check(env, 64)
    # episodes end with terminated=True and the next reset starts a fresh episode
    for _ in range(1200):
        _, _, term, trunc, _ = env.step(env.action_meanings.index("RIGHT"))
        if term:
            break
    assert term
    frame, _ = env.reset()
    assert frame.shape == (64, 64, 3)
    env.close()


def test_unknown_env_names_the_fix():
    with pytest.raises(UserError, match="maskworld envs"):
        make_env("NoSuchEnv-v0")
    with pytest.raises(UserError, match="maskworld envs"):
        make_env("procgen:nosuchgame") if importlib.util.find_spec("procgen") else make_env("NoSuch-v1")


class _NoPixels(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        return np.zeros(3, np.float32), {}

    def step(self, a):
        return np.zeros(3, np.float32), 0.0, False, False, {}


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_env_without_pixels_is_refused():
    gym.register("MaskworldNoPixels-v0", entry_point=_NoPixels)
    with pytest.raises(UserError, match="MaskworldNoPixels-v0"):
        make_env("MaskworldNoPixels-v0")


def test_resize_and_list():
    c = np.full((210, 160, 3), 77, np.uint8)
    assert np.all(resize_frame(c, 64) == 77)
    assert resize_frame(np.zeros((20, 20, 3), np.uint8), 64).shape == (64, 64, 3)
    known, note = list_envs()
    ids = [i for i, _ in known]
    assert {"ALE/Breakout-v5", "MiniGrid-FourRooms-v0", "crafter", "procgen:coinrun"} <= set(ids)
    assert "Gymnasium" in note


def test_procgen_missing_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "procgen", None)  # import procgen -> ImportError
    with pytest.raises(UserError) as e:
        make_env("procgen:coinrun")
    assert 'pip install "maskworld[procgen]"' in str(e.value)
