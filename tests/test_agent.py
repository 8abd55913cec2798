"""Agents in the dream: batched imagination starts, the world's data as start frames, view lookup."""

import json

import numpy as np
import pytest
import torch

from maskworld.agents.starts import load_data_starts, world_data_steps, world_view
from maskworld.agents.imagination import imagine, start_sessions
from toy import make_toy_store


def test_start_sessions_match_world_session(tiny_world):
    """The batched start opens the sessions `world.session(prompt=frame)` opens: same tokens, frame, cache, and
    the same imagined steps after."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    batched = start_sessions(tiny_world, frames, [5, 6, 7])
    alone = [tiny_world.session(prompt=f, seed=s) for f, s in zip(frames, [5, 6, 7])]
    for b, a in zip(batched, alone):
        assert (b.pos, b.steps, b.window_frames) == (a.pos, a.steps, a.window_frames)
        assert np.array_equal(b.tokens, a.tokens) and np.array_equal(b.frame, a.frame)
        rb, ra = b.engine.cache.row_state(b.row), a.engine.cache.row_state(a.row)
        assert rb.keys() == ra.keys()
        for key in rb:
            torch.testing.assert_close(rb[key], ra[key], atol=1e-5, rtol=1e-4)
    outs_b = tiny_world.step_many(batched, [0, 1, 2])
    outs_a = tiny_world.step_many(alone, [0, 1, 2])
    for (fb, rb, db), (fa, ra, da) in zip(outs_b, outs_a):
        assert np.array_equal(fb, fa) and (rb, db) == (ra, da)


def test_imagine_shapes(tiny_world):
    rng = np.random.default_rng(1)
    starts = rng.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    ro = imagine(tiny_world, lambda o: np.zeros(len(o), int), starts, 3, [0, 1, 2, 3])
    assert ro.obs.shape == (4, 4, 64, 64, 3) and ro.actions.shape == ro.rewards.shape == ro.continues.shape == (3, 4)
    assert (ro.alive[0] == 1).all() and (ro.alive[1:] <= ro.alive[:-1]).all()  # soft weights, never rising
    hard = imagine(tiny_world, lambda o: np.zeros(len(o), int), starts, 3, [0, 1, 2, 3], heads="argmax")
    assert ((hard.alive == 0) | (hard.alive == 1)).all()


def test_world_view_and_data_starts(tiny_world, tmp_path):
    store = make_toy_store(tmp_path / "data", episodes=3, T=6)
    card = tiny_world.meta.model_card
    assert world_view(tiny_world) == "partial"  # collect's default where nothing says
    card["data"] = {"path": store, "frames": 21, "episodes": 3,
                    "collect_command": "maskworld collect --env MiniGrid-Empty-8x8-v0 --view full --steps 18"}
    assert world_view(tiny_world) == "full" and world_data_steps(tiny_world) == 18
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    manifest["meta"]["view"] = "partial"
    (tmp_path / "data" / "manifest.json").write_text(json.dumps(manifest))
    assert world_view(tiny_world) == "partial"  # the store's manifest before the command line
    frames = load_data_starts(tiny_world, max_frames=10)
    assert frames.shape == (10, 64, 64, 3) and frames.dtype == np.uint8
    assert len(load_data_starts(tiny_world, max_frames=100)) == 18  # every frame that has a successor
    card["data"] = {"path": str(tmp_path / "missing")}
    assert load_data_starts(tiny_world) is None  # a message, no crash


def test_imagine_argmax_matches_step_many(tiny_world):
    """heads="argmax" imagines exactly what stepping the sessions with world.step_many gives (same seeds and
    actions): the one-cache batched loop is the sessions' computation without the per-step stack/split."""
    rng = np.random.default_rng(2)
    starts = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    acts = rng.integers(0, 3, (4, 3))
    calls = iter(acts)
    ro = imagine(tiny_world, lambda o: next(calls), starts, 4, [3, 4, 5], heads="argmax")
    sessions = [tiny_world.session(prompt=f, seed=s) for f, s in zip(starts, [3, 4, 5])]
    for t in range(4):
        out = tiny_world.step_many(sessions, [int(a) for a in acts[t]])
        assert np.array_equal(ro.obs[t + 1], np.stack([f for f, _, _ in out])), t
        assert ro.rewards[t].tolist() == [r for _, r, _ in out]
        assert ro.continues[t].tolist() == [0.0 if d else 1.0 for _, _, d in out]
    soft = imagine(tiny_world, lambda o: np.zeros(len(o), int), starts, 2, [3, 4, 5])
    assert ((soft.rewards >= -1) & (soft.rewards <= 1)).all() and ((soft.continues > 0) & (soft.continues < 1)).all()


@pytest.mark.slow
def test_train_agent_with_data_starts_and_eval_records(tmp_path):
    """train_agent draws half its starts from the world's data store; eval-agent writes its numbers into agent.json
    and (--update-card) into the world's model card."""
    import argparse

    from maskworld.agents.actor_critic import load_agent
    from maskworld.agents.config import AgentTrainConfig
    from maskworld.agents.dyna import train_agent
    from maskworld.commands import agent_cmd
    from maskworld.models.dynamics import Dynamics, DynamicsConfig
    from maskworld.models.sampler import SamplerConfig
    from maskworld.models.tokenizer import Tokenizer, TokenizerConfig
    from maskworld.world.world import World, WorldMeta, load_world

    torch.manual_seed(0)
    store = make_toy_store(tmp_path / "data", episodes=2, T=5)
    tok = Tokenizer(TokenizerConfig(channels=16, num_res=1))
    dyn = Dynamics(DynamicsConfig(vocab_size=tok.cfg.vocab_size, grid=tok.cfg.grid, num_actions=7, d_model=32,
                                  n_layers=1, n_heads=2, window=3))
    card = {"data": {"path": store, "frames": 12, "episodes": 2, "collect_command": "maskworld collect --view full"}}
    World(tok, dyn, SamplerConfig(steps=1), WorldMeta(env_id="MiniGrid-Empty-5x5-v0", model_card=card)).save(tmp_path / "w")
    world = load_world(tmp_path / "w")
    cfg = AgentTrainConfig(horizon=2, batch=4, collect_every=10, updates_per_collect=1, channels=8)
    _, stats = train_agent(world, real_steps=10, cfg=cfg, out=tmp_path / "agent", progress=False)
    assert stats["data_start_frames"] == 10 and stats["view"] == "full"
    assert (stats["world_data_steps"], stats["total_real_steps"]) == (10, 20)

    ap = argparse.ArgumentParser()
    agent_cmd.register(ap.add_subparsers())
    args = ap.parse_args(["eval-agent", str(tmp_path / "agent"), "--episodes", "3", "--max-steps", "5",
                          "--baseline-steps", "0", "--update-card"])
    assert args.func(args) == 0
    info = json.loads((tmp_path / "agent" / "agent.json").read_text())
    assert info["eval"]["view"] == "full" and info["eval"]["agent.total_real_steps"] == 20
    ev = info["eval"]  # the paired difference: episode k of both runs is the same seeded level
    diff = np.subtract(ev["agent.returns"], ev["random.returns"])
    assert ev["agent_minus_random"] == pytest.approx(diff.mean())
    lo, hi = ev["agent_minus_random_ci"]
    assert diff.min() <= lo <= ev["agent_minus_random"] <= hi <= diff.max()
    assert "agent.mean_return" in load_world(tmp_path / "w").meta.model_card["agent"]
    assert load_agent(tmp_path / "agent")[1]["real_steps"] == 10


def test_split_batches_match(tiny_world):
    """Imagining a batch in one engine or each start on its own changes no frame, reward or end (the vector env
    against its sub-envs alone: test_dream_env.py)."""
    rng = np.random.default_rng(3)
    starts = rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    acts = rng.integers(0, 3, (3, 5))
    def player(col=None):
        it = iter(acts if col is None else acts[:, col : col + 1])
        return lambda obs: next(it)

    whole = imagine(tiny_world, player(), starts, 3, range(5), heads="argmax")
    for b in range(5):
        alone = imagine(tiny_world, player(b), starts[b : b + 1], 3, [b], heads="argmax")
        assert np.array_equal(whole.obs[:, b], alone.obs[:, 0]) and torch.equal(whole.rewards[:, b], alone.rewards[:, 0])
        assert torch.equal(whole.continues[:, b], alone.continues[:, 0])



def test_factorised_policy_of_joint_actions():
    """A joint action of several avatars: one softmax per avatar, the joint policy their product; sampled joint
    indices decode per avatar with split_action, and log-probabilities and entropy match the product's."""
    import math

    import pytest

    from maskworld.agents.actor_critic import ActorCritic, ActorCriticConfig
    from maskworld.envs.base import split_action

    torch.manual_seed(0)
    agent = ActorCritic(ActorCriticConfig(num_actions=3 * 5, image_size=64, channels=8, hidden=16, action_factors=[3, 5]))
    assert agent.actor.out_features == 8
    frames = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    logits, _ = agent(torch.from_numpy(frames))
    _, ent = agent.log_prob_entropy(logits, torch.zeros(2, dtype=torch.long))
    assert torch.allclose(ent, torch.full((2,), math.log(15.0)))  # zero-init actor: uniform over the 15 joint actions

    with torch.no_grad():  # avatar 0 always picks move 2, avatar 1 always move 4
        agent.actor.bias.copy_(torch.tensor([0.0, 0.0, 30.0, 0.0, 0.0, 0.0, 0.0, 30.0]))
    joint = agent.act(frames, torch.Generator().manual_seed(0))
    assert list(joint) == [2 + 3 * 4] * 2 and list(agent.act(frames, greedy=True)) == list(joint)
    same = ActorCritic(ActorCriticConfig(num_actions=25, image_size=64, channels=8, hidden=16, action_factors=[5, 5]))
    with torch.no_grad():  # the env's order: avatar i's move is (joint // 5 ** i) % 5
        same.actor.bias.copy_(torch.tensor([0.0, 30.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 30.0, 0.0]))
    assert [split_action(j, 2, 5) for j in same.act(frames, greedy=True)] == [[1, 3], [1, 3]]

    logits = torch.randn(4, 8)
    acts = torch.arange(4) * 4 % 15
    lp, ent = agent.log_prob_entropy(logits, acts)
    joint_logp = (torch.log_softmax(logits[:, :3], -1)[:, :, None] + torch.log_softmax(logits[:, 3:], -1)[:, None, :])
    joint_logp = joint_logp.transpose(1, 2).reshape(4, 15)  # index a0 + 3 * a1
    assert torch.allclose(lp, joint_logp.gather(1, acts[:, None]).squeeze(1), atol=1e-6)
    assert torch.allclose(ent, -(joint_logp.exp() * joint_logp).sum(-1), atol=1e-5)
    with pytest.raises(ValueError, match="multiply"):
        ActorCritic(ActorCriticConfig(num_actions=16, action_factors=[3, 5]))
