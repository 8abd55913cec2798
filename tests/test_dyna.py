"""The Dyna loop: the world learns from the agent's real experience; runs checkpoint, resume and log."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from maskworld.agents.replay import RealReplay
from maskworld.errors import UserError

ENV = "MiniGrid-Empty-5x5-v0"


def _world(tmp_path, name="w"):
    from maskworld.models.dynamics import Dynamics, DynamicsConfig
    from maskworld.models.sampler import SamplerConfig
    from maskworld.models.tokenizer import Tokenizer, TokenizerConfig
    from maskworld.world.world import World, WorldMeta, load_world

    torch.manual_seed(0)
    tok = Tokenizer(TokenizerConfig(channels=16, num_res=1))
    dyn = Dynamics(DynamicsConfig(vocab_size=tok.cfg.vocab_size, grid=tok.cfg.grid, num_actions=7, d_model=32,
                                  n_layers=1, n_heads=2, window=3))
    World(tok, dyn, SamplerConfig(steps=1), WorldMeta(env_id=ENV)).save(tmp_path / name)
    np.savez(tmp_path / name / "prompts.npz", frames=np.zeros((2, 64, 64, 3), np.uint8))
    return load_world(tmp_path / name)


def _real_replay(steps: int, seed: int = 0) -> RealReplay:
    """Real Empty-5x5 experience under a random policy, as the Dyna loop records it."""
    from maskworld.envs.adapter import make_env

    env = make_env(ENV, size=64, seed=seed, view="full")
    rng = np.random.default_rng(seed)
    r = RealReplay()
    frame, _ = env.reset(seed=seed)
    r.add(frame, -1)
    for _ in range(steps):
        a = int(rng.integers(0, 3))
        frame, rew, term, trunc, _ = env.step(a)
        r.add(frame, a, rew, term)
        if term or trunc:
            frame, _ = env.reset(seed=int(rng.integers(1000)))
            r.add(frame, -1)
    env.close()
    return r


def test_replay_view_is_a_token_cache(tmp_path):
    """The replay's token view aligns like a token cache (NULL into first frames) and windows stay in episodes."""
    world = _world(tmp_path)
    r = RealReplay()
    for i in range(7):
        r.add(np.full((64, 64, 3), 10 * i, np.uint8), -1 if i in (0, 4) else 2, reward=1.0 if i == 3 else 0.0, terminated=i == 3)
    view = r.token_view(world)
    assert view.tokens.shape == (7, 8, 8) and list(view.lengths) == [4, 3] and list(view.offsets) == [0, 4]
    assert view.actions_in[0] == view.actions_in[4] == 7 and view.actions_in[1] == 2
    assert list(r.usable_starts()) == [0, 1, 2, 4, 5, 6]  # frame 3 ends an episode: no rollout starts there
    b = view.sample(50, 3, np.random.default_rng(0))
    assert not (b["actions_in"][:, 1:] == 7).any()  # no window crosses an episode start
    back = RealReplay.from_state(r.state())
    assert len(back) == 7 and np.array_equal(back.token_view(world).tokens, view.tokens)


@pytest.mark.slow
def test_world_updates_fit_real_experience(tmp_path):
    """Updating on real transitions lowers the world's loss on them: the metric can fail (no updates: unchanged)."""
    from maskworld.agents.world_update import WorldUpdater
    from maskworld.train.dynamics_train import dynamics_losses, make_batch

    world = _world(tmp_path)
    view = _real_replay(80).token_view(world)

    def loss():
        tok, act, rew, term, _ = make_batch(view, 32, 3, np.random.default_rng(9), 7, "cpu")
        with torch.no_grad():
            return dynamics_losses(world.dynamics, tok, act, rew, term, 0.0, gen=torch.Generator().manual_seed(0))[0].item()

    before = loss()
    up = WorldUpdater(world, batch=16)
    opt = torch.optim.AdamW(up.params(), lr=3e-3)
    rng = np.random.default_rng(0)
    for _ in range(40):
        m = up.step(view, opt, rng)
    after = loss()
    assert set(m) >= {"world_loss", "world_acc"} and up.steps == 40
    assert after < 0.7 * before, (before, after)
    assert not world.dynamics.training  # back in inference mode for imagination


def test_world_updates_refuse_memory_worlds(tiny_memory_world):
    from maskworld.agents.world_update import WorldUpdater

    with pytest.raises(UserError, match="--world-updates 0"):
        WorldUpdater(tiny_memory_world)


@pytest.mark.slow
def test_dyna_run_saves_updated_world_checkpoints_and_resumes(tmp_path):
    """A run updates the world (saved apart, as OUT/world), logs to TensorBoard, checkpoints, and --resume continues
    the counters; a second run into the same OUT without --resume, or a corrupt checkpoint, is refused."""
    from maskworld.agents.config import AgentTrainConfig
    from maskworld.agents.dyna import train_agent
    from maskworld.world.world import load_world

    world = _world(tmp_path)
    frozen = {k: v.clone() for k, v in world.dynamics.state_dict().items()}
    cfg = AgentTrainConfig(horizon=2, batch=4, collect_every=8, updates_per_collect=1, channels=8, world_updates=2,
                           world_batch=4, data_starts=0.0)
    out = tmp_path / "agent"
    _, s1 = train_agent(world, real_steps=16, cfg=cfg, out=out, progress=False, ckpt_minutes=0, view="full")
    assert (s1["updates"], s1["world_update_steps"]) == (2, 4)
    assert list((out / "_work" / "tb" / "agent").glob("events.out.tfevents.*"))
    w2 = load_world(out / "world")
    assert w2.meta.model_card["dyna"]["world_updates"] == 4 and (out / "world" / "prompts.npz").exists()
    changed = any(not torch.equal(frozen[k], v) for k, v in w2.dynamics.state_dict().items())
    assert changed
    orig = load_world(tmp_path / "w")  # the world it started from is untouched on disk
    assert all(torch.equal(frozen[k], v) for k, v in orig.dynamics.state_dict().items())
    assert json.loads((out / "agent.json").read_text())["train"]["world"] == str(out / "world")

    assert all(torch.equal(frozen[k], v) for k, v in world.dynamics.state_dict().items())  # the caller's world too

    with pytest.raises(UserError, match="--resume"):
        train_agent(_world(tmp_path, "w3"), real_steps=16, cfg=cfg, out=out, progress=False, view="full")
    # resuming at the end restores everything and runs nothing: same agent, same updated world
    from maskworld.agents.actor_critic import load_agent

    a1 = load_agent(out)[0].state_dict()
    a_same, s_same = train_agent(_world(tmp_path, "w3b"), real_steps=16, cfg=cfg, out=tmp_path / "agent", progress=False,
                                 resume=True, view="full")
    assert s_same["updates"] == 2 and all(torch.equal(a1[k], v) for k, v in a_same.state_dict().items())
    assert all(torch.equal(w2.dynamics.state_dict()[k], v) for k, v in load_world(out / "world").dynamics.state_dict().items())
    with pytest.raises(UserError, match="world_batch 8"):  # a setting that contradicts the run's own
        train_agent(_world(tmp_path, "w3c"), real_steps=32, cfg=dataclasses.replace(cfg, world_batch=8), out=out,
                    progress=False, resume=True, view="full")
    _, s2 = train_agent(_world(tmp_path, "w4"), real_steps=32, cfg=AgentTrainConfig(), out=out, progress=False,
                        ckpt_minutes=0, resume=True, view="full")  # the defaults: the run's own settings
    assert (s2["real_steps"], s2["updates"], s2["world_update_steps"]) == (32, 4, 8)
    assert s2["real_episodes"] >= s1["real_episodes"]

    ckpt = next((out / "_work" / "ckpt_agent").glob("step-*"))
    (ckpt / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="cannot be loaded"):
        train_agent(_world(tmp_path, "w5"), real_steps=48, cfg=cfg, out=out, progress=False, resume=True, view="full")


@pytest.mark.slow
def test_agent_updates_leave_the_world_alone(tmp_path):
    """One optimiser holds agent and dynamics: an agent update must not move the world, nor a world update the agent."""
    from maskworld.agents.actor_critic import ActorCritic, ActorCriticConfig, ReturnScale, _update
    from maskworld.agents.config import AgentTrainConfig
    from maskworld.agents.dyna import _optimizer
    from maskworld.agents.world_update import WorldUpdater

    world = _world(tmp_path)
    cfg = AgentTrainConfig(horizon=2, batch=4, channels=8, world_batch=4)
    agent = ActorCritic(ActorCriticConfig(7, 64, 8))
    up = WorldUpdater(world, cfg.world_batch)
    opt = _optimizer(agent, up, cfg)
    dyn0 = {k: v.clone() for k, v in world.dynamics.state_dict().items()}
    ag0 = {k: v.clone() for k, v in agent.state_dict().items()}
    starts = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    _update(agent, opt, world, starts, None, cfg, ReturnScale(), torch.Generator().manual_seed(0), np.random.default_rng(0))
    assert all(torch.equal(dyn0[k], v) for k, v in world.dynamics.state_dict().items())
    assert any(not torch.equal(ag0[k], v) for k, v in agent.state_dict().items())
    ag1 = {k: v.clone() for k, v in agent.state_dict().items()}
    up.step(_real_replay(30).token_view(world), opt, np.random.default_rng(0))
    assert all(torch.equal(ag1[k], v) for k, v in agent.state_dict().items())
    assert any(not torch.equal(dyn0[k], v) for k, v in world.dynamics.state_dict().items())


def test_frozen_world_stays_frozen(tmp_path):
    from maskworld.agents.config import AgentTrainConfig
    from maskworld.agents.dyna import train_agent

    world = _world(tmp_path)
    frozen = {k: v.clone() for k, v in world.dynamics.state_dict().items()}
    cfg = AgentTrainConfig(horizon=2, batch=4, collect_every=8, updates_per_collect=1, channels=8, world_updates=0)
    _, s = train_agent(world, real_steps=8, cfg=cfg, out=tmp_path / "a", progress=False, view="full")
    assert s["world_update_steps"] == 0 and not (tmp_path / "a" / "world").exists()
    assert all(torch.equal(frozen[k], v) for k, v in world.dynamics.state_dict().items())


def test_bad_agent_settings_and_corrupt_agent(tmp_path):
    from maskworld.agents.actor_critic import load_agent
    from maskworld.agents.config import AgentTrainConfig
    from maskworld.agents.dyna import train_agent
    from maskworld.cli import main

    world = _world(tmp_path)
    with pytest.raises(UserError, match="world_real_share"):
        train_agent(world, real_steps=8, cfg=AgentTrainConfig(world_real_share=1.5), out=tmp_path / "x")
    assert not (tmp_path / "x").exists()  # nothing written
    cfg = AgentTrainConfig(horizon=2, batch=4, collect_every=8, updates_per_collect=1, channels=8, world_updates=0)
    train_agent(world, real_steps=8, cfg=cfg, out=tmp_path / "a", progress=False, view="full")
    f = tmp_path / "a" / "agent.safetensors"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(UserError, match="corrupt or truncated"):
        load_agent(tmp_path / "a")
    assert main(["eval-agent", str(tmp_path / "a"), "--episodes", "1", "--baseline-steps", "0"]) == 2
    (tmp_path / "a" / "agent.json").write_text("{not json")
    assert main(["eval-agent", str(tmp_path / "a"), "--episodes", "1"]) == 2
