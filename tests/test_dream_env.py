"""maskworld/Dream-v0: Gymnasium conformance, the batched vector env, SB3 on it, bad input."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import torch
import pytest
from gymnasium.utils.env_checker import check_env

import maskworld  # noqa: F401  (registers maskworld/Dream-v0)
from maskworld.agents.dream_env import DreamEnv
from maskworld.agents.vector_env import DreamVectorEnv, bench_vector_env
from maskworld.errors import UserError
from maskworld.world.world import World


@pytest.fixture
def world_dir(tiny_world, tmp_path):
    """The tiny world on disk, with prompts.npz start frames like a shipped world."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "world" / "prompts.npz", frames=rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8))
    return tmp_path / "world"


def never_terminates(world):
    """The random tiny world ends episodes at random; pin its termination head shut where a test counts steps."""
    import torch

    with torch.no_grad():
        world.dynamics.term_head.bias.fill_(-10.0)
    return world


def test_check_env_passes(tiny_world, world_dir):
    env = gym.make("maskworld/Dream-v0", world=tiny_world, render_mode="rgb_array", max_episode_steps=10)
    check_env(env.unwrapped)
    env = gym.make("maskworld/Dream-v0", world=str(world_dir), render_mode="rgb_array", max_episode_steps=10)
    check_env(env.unwrapped)
    obs, info = env.reset(seed=1)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8 and 0 <= info["prompt_index"] < 5
    assert env.action_space.n == 3 and np.array_equal(env.render(), obs)
    obs, r, term, trunc, _ = env.step(2)
    assert r in (-1.0, 0.0, 1.0) and isinstance(term, bool) and trunc is False


def test_start_modes(tiny_world, world_dir):
    gen = DreamEnv(tiny_world, start="generate")
    assert gen.reset(seed=0)[1]["prompt_index"] == -1
    img = np.full((32, 32, 3), 200, np.uint8)  # resized to the world's size
    own = DreamEnv(tiny_world, start=img)
    assert own.reset(seed=0)[0].shape == (64, 64, 3)
    env = DreamEnv(str(world_dir))
    o1, _ = env.reset(seed=3, options={"prompt": img})
    o2, _ = own.reset(seed=3)
    assert np.array_equal(o1, o2)


def test_vector_env_shapes_and_next_step_autoreset(tiny_world, world_dir):
    envs = gym.make_vec("maskworld/Dream-v0", num_envs=3, world=never_terminates(tiny_world), max_episode_steps=2)
    assert isinstance(envs, DreamVectorEnv) and envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    obs, info = envs.reset(seed=0)
    assert obs.shape == (3, 64, 64, 3) and obs.dtype == np.uint8 and info["_prompt_index"].all()
    assert envs.observation_space.contains(obs)
    for t in range(2):
        obs, rew, term, trunc, info = envs.step(np.array([0, 1, 2]))
        assert rew.shape == term.shape == trunc.shape == (3,)
    assert trunc.all() and not term.any()  # the time limit ended every episode
    obs, rew, term, trunc, info = envs.step(np.array([0, 1, 2]))  # actions ignored: the reset step
    assert (rew == 0).all() and not term.any() and not trunc.any() and info["_prompt_index"].all()
    envs.close()


def test_vector_env_same_step_autoreset(tiny_world):
    envs = DreamVectorEnv(2, world=never_terminates(tiny_world), max_episode_steps=2, autoreset_mode="SameStep")
    envs.reset(seed=0)
    envs.step(np.array([0, 0]))
    obs, _, term, trunc, info = envs.step(np.array([1, 1]))
    assert trunc.all() and info["_final_obs"].all() and info["final_obs"][0].shape == (64, 64, 3)
    assert info["_prompt_index"].all()  # the returned obs is already the next episode's first frame
    envs.step(np.array([2, 2]))  # no reset step in between


@pytest.mark.parametrize("random_ends", [True, False])
@pytest.mark.slow
def test_batched_equals_sequential(tiny_world, random_ends):
    """Env i in the batch sees exactly what a lone DreamEnv with seed s + i sees, across autoresets and a
    partial reset (sessions of different lengths then share a batch: the padding path). The random
    tiny world's termination head fires at random; pinned shut, only the time limit ends episodes."""
    world = tiny_world if random_ends else never_terminates(tiny_world)
    n, steps, limit = 3, 8, 5
    vec = DreamVectorEnv(n, world=world, max_episode_steps=limit)
    singles = [gym.make("maskworld/Dream-v0", world=world, max_episode_steps=limit) for _ in range(n)]
    vobs, _ = vec.reset(seed=11)
    sobs = [e.reset(seed=11 + i)[0] for i, e in enumerate(singles)]
    assert all(np.array_equal(vobs[i], sobs[i]) for i in range(n))
    ended = [False] * n
    rng = np.random.default_rng(0)
    for t in range(steps):
        if t == 2:  # restart env 0 alone
            vobs, _ = vec.reset(options={"reset_mask": np.array([True, False, False])})
            assert np.array_equal(vobs[0], singles[0].reset()[0])
            ended[0] = False
        acts = rng.integers(0, 3, n)
        vobs, vrew, vterm, vtrunc, _ = vec.step(acts)
        for i, e in enumerate(singles):
            if ended[i]:  # NEXT_STEP: this step is the reset
                o, r, te, tr = e.reset()[0], 0.0, False, False
            else:
                o, r, te, tr, _ = e.step(int(acts[i]))
            assert np.array_equal(vobs[i], o), (t, i)
            assert (vrew[i], vterm[i], vtrunc[i]) == (r, te, tr), (t, i)
            ended[i] = te or tr
    lengths = {e.session.window_frames for e in vec.envs}
    assert random_ends or len(lengths) > 1  # the batch really mixed history lengths


@pytest.mark.slow
def test_sb3_ppo_smoke(world_dir):
    """Stable-Baselines3 PPO trains on maskworld/Dream-v0 as registered (no wrappers of ours)."""
    pytest.importorskip("stable_baselines3")
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    torch.manual_seed(0)
    venv = make_vec_env("maskworld/Dream-v0", n_envs=2, seed=0,
                        env_kwargs={"world": str(world_dir), "max_episode_steps": 8})
    model = PPO("CnnPolicy", venv, n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu",
                policy_kwargs={"features_extractor_kwargs": {"features_dim": 32}})
    model.learn(total_timesteps=64)
    assert model.num_timesteps >= 64
    action, _ = model.predict(venv.reset(), deterministic=True)
    assert action.shape == (2,) and ((0 <= action) & (action < 3)).all()


def test_bad_input_errors(tiny_world, tmp_path, world_dir):
    with pytest.raises(UserError, match="world.json|world directory"):
        gym.make("maskworld/Dream-v0", world=str(tmp_path / "nope"))
    with pytest.raises(UserError, match="needs a world"):
        DreamEnv()
    with pytest.raises(UserError, match="neither"):
        DreamEnv(world=42)
    in_memory = World(tiny_world.tokenizer, tiny_world.dynamics, tiny_world.sampler, tiny_world.meta)
    with pytest.raises(UserError, match="prompts.npz"):
        DreamEnv(in_memory, start="prompts")  # no directory, no prompts.npz
    with pytest.raises(UserError, match="not one of"):
        DreamEnv(tiny_world, start="promts")
    env = DreamEnv(str(world_dir))
    with pytest.raises(UserError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    for bad in (3, -1, 1.5):
        with pytest.raises(UserError, match="action"):
            env.step(bad)
    vec = DreamVectorEnv(2, world=tiny_world)
    with pytest.raises(UserError, match="reset"):
        vec.step(np.array([0, 0]))
    vec.reset(seed=0)
    with pytest.raises(UserError, match="shape"):
        vec.step(np.array([0, 0, 0]))
    with pytest.raises(UserError, match="autoreset_mode"):
        DreamVectorEnv(2, world=tiny_world, autoreset_mode="sometimes")


def test_world_without_reward_heads_is_refused(tiny_world):
    tiny_world.meta.has_actions = False  # as a world learned from action-free video
    with pytest.raises(UserError, match="video"):
        gym.make("maskworld/Dream-v0", world=tiny_world)
    tiny_world.meta.has_actions = True
    head = tiny_world.dynamics.term_head
    del tiny_world.dynamics.term_head
    try:
        with pytest.raises(UserError, match="termination"):
            DreamEnv(tiny_world)
    finally:
        tiny_world.dynamics.term_head = head


def test_registered_lazily():
    """`import maskworld` registers its ids by entry-point string: no torch, no env module, no import hook."""
    code = ("import sys; hooks = list(sys.meta_path); import maskworld, gymnasium; "
            "assert 'maskworld/Dream-v0' in gymnasium.registry and 'MiniGrid-Landmarks-v0' in gymnasium.registry; "
            "assert 'torch' not in sys.modules and 'maskworld.agents.dream_env' not in sys.modules; "
            "assert sys.meta_path == hooks")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_bench_smoke(tiny_world):
    m = bench_vector_env(tiny_world, num_envs=2, iters=1, warmup=0)
    assert m["dream.vector.fps"] > 0 and m["dream.single.fps"] > 0 and m["dream.speedup"] > 0


@pytest.mark.slow
def test_train_agent_and_eval_agent_smoke(tmp_path, capsys):
    """Actor-critic in imagination for a few real steps of a real MiniGrid env, then `eval-agent` with PPO."""
    import argparse
    import json

    import torch

    from maskworld.agents.actor_critic import AgentTrainConfig, lambda_returns, load_agent
    from maskworld.agents.dyna import train_agent
    from maskworld.commands import agent_cmd
    from maskworld.models.dynamics import Dynamics, DynamicsConfig
    from maskworld.models.sampler import SamplerConfig
    from maskworld.models.tokenizer import Tokenizer, TokenizerConfig
    from maskworld.world.world import WorldMeta

    # lambda = 1, gamma = 1: the return is the sum of the rewards to the end, cut where continue = 0
    r, c = torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[1.0], [0.0], [1.0]])
    assert lambda_returns(r, torch.zeros(4, 1), c, 1.0, 1.0).squeeze(1).tolist() == [3.0, 2.0, 3.0]

    torch.manual_seed(0)
    tok = Tokenizer(TokenizerConfig(channels=16, num_res=1))
    dyn = Dynamics(DynamicsConfig(vocab_size=tok.cfg.vocab_size, grid=tok.cfg.grid, num_actions=7, d_model=32,
                                  n_layers=1, n_heads=2, window=3))
    world = World(tok, dyn, SamplerConfig(steps=1), WorldMeta(env_id="MiniGrid-Empty-5x5-v0"))
    cfg = AgentTrainConfig(horizon=3, batch=4, collect_every=12, updates_per_collect=1, channels=8, context=2)
    agent, stats = train_agent(world, real_steps=24, cfg=cfg, out=tmp_path / "agent", progress=False)
    assert stats["real_steps"] == 24 and stats["updates"] == 2 and np.isfinite(stats["last"]["actor_loss"])
    assert load_agent(tmp_path / "agent")[1]["env_id"] == "MiniGrid-Empty-5x5-v0"

    ap = argparse.ArgumentParser()
    agent_cmd.register(ap.add_subparsers())
    args = ap.parse_args(["eval-agent", str(tmp_path / "agent"), "--episodes", "1", "--max-steps", "8",
                          "--baseline-steps", "16", "--json", str(tmp_path / "eval.json")])
    pytest.importorskip("stable_baselines3")
    assert args.func(args) == 0
    res = json.loads((tmp_path / "eval.json").read_text())
    assert {"agent.mean_return", "ppo.mean_return"} <= set(res) and res["ppo.real_steps"] == 16
    with pytest.raises(UserError, match="not an agent directory"):
        load_agent(tmp_path)


def test_bench_dream_script_smoke(world_dir, tmp_path, capsys):
    """scripts/bench_dream.py end to end: vector vs single, the imagination path, the profile breakdown, JSON."""
    import importlib.util
    import json
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("bench_dream", Path(__file__).parent.parent / "scripts" / "bench_dream.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "b.json"
    n = torch.get_num_threads()
    try:  # the script sets torch's thread count for the process: give later tests theirs back
        assert bench.main([str(world_dir), "--num-envs", "2", "--iters", "1", "--warmup", "1", "--profile", "1",
                           "--threads", "1", "--json", str(out)]) == 0
    finally:
        torch.set_num_threads(n)
    m = json.loads(out.read_text())
    assert m["dream.imagine.fps"] > 0 and m["dream.speedup"] > 0 and m["profile.vector"] and m["profile.single"]
    assert "imagination path" in capsys.readouterr().out
