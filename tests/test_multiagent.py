"""Worlds of several agents acting at once: the env, joint actions in the data and the model, one avatar per
person or agent in a hosted instance and in shared play, and the per-avatar control metric (shown to fail).
Decoding them avatar by avatar: test_factorised.py."""

import numpy as np
import pytest
import torch

from maskworld.envs import base
from maskworld.envs.coins import AGENT_COLORS, N, CoinsEnv
from maskworld.errors import UserError


def joint_action(actions):
    return base.joint_action(actions, N)


def split_action(joint, agents):
    return base.split_action(joint, agents, N)


def test_joint_actions_round_trip_and_moves_block():
    for agents in (2, 3, 4):
        for j in (0, 7, 5**agents - 1):
            assert joint_action(split_action(j, agents)) == j
    env = CoinsEnv(agents=2, size=5, coins=1)
    env.reset(seed=0)
    env.pos[:] = [[1, 1], [2, 1]]
    env.coins = [(3, 3)]
    env.step(joint_action([4, 0]))  # agent 0 moves right into agent 1: blocked
    assert env.pos.tolist() == [[1, 1], [2, 1]]
    env.step(joint_action([1, 0]))  # up into the wall: blocked
    assert env.pos.tolist() == [[1, 1], [2, 1]]
    env.step(joint_action([2, 4]))
    assert env.pos.tolist() == [[1, 2], [3, 1]]
    _, r, term, _, info = env.step(joint_action([0, 2]))
    _, r, term, _, info = env.step(joint_action([0, 2]))
    assert r == 1.0 and not term and len(env.coins) == 1 and (3, 3) not in env.coins  # collected, respawned
    frame = env.render()
    x, y = info["agents_pos"][1]
    assert tuple(frame[y * 8 + 4, x * 8 + 4]) == AGENT_COLORS[1]


def test_collect_records_agents_and_their_positions(tmp_path):
    from maskworld.data.collect import CollectConfig, collect
    from maskworld.data.store import EpisodeStore

    out = str(tmp_path / "d")
    collect(CollectConfig(env_id="MultiAgent-Coins-v0", steps=300, out=out, policy="explore", progress=False,
                          env_kwargs={"agents": 3}, bench_seconds=0.05))
    s = EpisodeStore(out)
    assert s.meta["agents"] == 3 and s.meta["num_actions"] == 125
    assert s.meta["agent_action_meanings"] == ["NOOP", "UP", "DOWN", "LEFT", "RIGHT"]
    ep = s.load(s.episode_ids[0])
    assert ep.info["agents_pos"].shape == (len(ep.frames), 3, 2)
    per = np.array([split_action(a, 3) for a in ep.actions])
    assert all(len(np.unique(per[:, i])) > 1 for i in range(3))  # every agent acts on its own


def test_joint_action_embedding_is_a_sum_over_agents():
    from maskworld.models.dynamics import Dynamics, DynamicsConfig

    torch.manual_seed(0)
    d = Dynamics(DynamicsConfig(vocab_size=16, grid=2, num_actions=25, action_factors=[5, 5], d_model=16, n_layers=1,
                                n_heads=2, window=2))
    e = d.embed_actions(torch.tensor([[joint_action([1, 3]), joint_action([1, 0]), joint_action([0, 3]), 25]]))[0]
    base = d.embed_actions(torch.tensor([[joint_action([0, 0])]]))[0, 0]
    torch.testing.assert_close(e[0] + base, e[1] + e[2])  # agent 0's part and agent 1's part add up
    nulls = sum(emb.weight[5] for emb in d.agent_act_emb)
    torch.testing.assert_close(e[3], nulls)
    with pytest.raises(ValueError, match="multiply"):
        Dynamics(DynamicsConfig(num_actions=24, action_factors=[5, 5], d_model=16, n_layers=1, n_heads=2))


@pytest.fixture(scope="module")
def coins_world(tmp_path_factory):
    from maskworld.data.collect import CollectConfig, collect
    from maskworld.train.world_train import TrainArgs, run_train

    root = tmp_path_factory.mktemp("coins")
    collect(CollectConfig(env_id="MultiAgent-Coins-v0", steps=400, out=str(root / "d"), policy="random",
                          progress=False, env_kwargs={"agents": 2}, bench_seconds=0.05))
    torch.set_num_threads(1)
    run_train(TrainArgs(data=str(root / "d"), out=str(root / "w"), preset="tiny", steps=2, tok_steps=2, progress=False))
    return root


def test_a_hosted_world_of_two_agents_gives_each_avatar_its_controller(coins_world, tmp_path):
    from maskworld import load_world
    from maskworld.host.host import Host, replay
    from maskworld.host.timeline import frame_hash

    world = load_world(coins_world / "w")
    assert world.meta.agents == 2 and world.dynamics.cfg.action_factors == [5, 5]
    host = Host.open(world, tmp_path / "h.db", rate=50)
    assert host.avatars == 2 and host.avatar_actions[1] == "UP"
    host.hold(0, "ann")
    host.hold(1, "bob")
    with pytest.raises(UserError, match="held by ann"):
        host.hold(0, "bob")
    with pytest.raises(UserError, match="0..4"):
        host.act(0, "ann", 7)
    host.act(0, "ann", 2, keep=True)
    host.act(1, "bob", 4, keep=True)
    ticks = [host.step() for _ in range(3)]
    assert all(t.actions == [2, 4] and t.actors == ["ann", "bob"] for t in ticks)
    host.release(1)
    t = host.step()
    assert t.actors == ["ann", "agent"] and t.actions[0] == 2
    assert base.split_action(joint_action([2, 4]), 2, 5) == [2, 4]
    frames = [frame_hash(f) for _, f in replay(world, host.timeline)]
    assert frames[1:] == [tk.frame_hash for tk in host.timeline.ticks(0, None)]
    host.close()


def test_shared_play_gives_each_tab_its_own_avatar(coins_world, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from maskworld import load_world
    from maskworld.host.host import Host
    from maskworld.serve.app import create_app
    from maskworld.serve.store import SessionStore
    from test_serve import next_of

    world = load_world(coins_world / "w")
    host = Host.open(world, tmp_path / "s.db", rate=25)
    app = create_app(world, store=SessionStore(tmp_path / "x.db"), shared=host, shared_name="yard")
    with TestClient(app) as client, client.websocket_connect("/ws?mode=realtime") as a, \
            client.websocket_connect("/ws?mode=realtime") as b:
        hello = next_of(a, "json", "hello")[1]
        assert hello["shared"]["avatars"] == 2 and hello["actions"] == ["NOOP", "UP", "DOWN", "LEFT", "RIGHT"]
        next_of(b, "json", "hello")
        for ws in (a, b):
            ws.send_text('{"type": "driver", "driver": "you"}')
            assert next_of(ws, "json", "driver")[1]["driver"] == "you"
        a.send_text('{"type": "action", "action": 1}')
        b.send_text('{"type": "action", "action": 3}')
        for _ in range(40):
            _, h, _ = next_of(a, "frame")
            if h["avatars"] == ["you", h["avatars"][1]] and h["action"] == 1:
                break
        else:
            raise AssertionError("tab a's avatar never moved by its key")
        assert h["avatars"][1].startswith("viewer-")
        tk = host.timeline.ticks(host.timeline.last_tick - 1, None)[-1]
        assert sorted(tk.actors)[0].startswith("viewer-") and tk.actions == [1, 3]
    assert host.drivers() == ["agent", "agent"]


def test_private_play_of_a_multi_agent_world_points_to_shared_play(coins_world, tmp_path):
    from maskworld import load_world
    from maskworld.serve.server import build_server
    from maskworld.serve.store import SessionStore

    world = load_world(coins_world / "w")
    with pytest.raises(UserError, match="--persistent"):
        build_server(world, coins_world / "w", SessionStore(tmp_path / "x.db"), fps=10, max_batch=1, policy=None,
                     policy_info=None)


def test_avatar_control_is_zero_for_a_world_that_ignores_actions(coins_world):
    """An untrained world barely reads its actions: neither an avatar's own region nor the others' respond."""
    from maskworld import load_world
    from maskworld.data.store import EpisodeStore
    from maskworld.eval.avatars import avatar_control

    world = load_world(coins_world / "w")
    with torch.no_grad():
        for emb in world.dynamics.agent_act_emb:
            emb.weight.zero_()  # action-blind by construction
    st = EpisodeStore(coins_world / "d")
    m = avatar_control(world, st, st.episode_ids[:1], room=8, slices_per_episode=3)
    assert m["avatars.slices"] == 3
    for g in ("", "greedy."):
        for i in range(2):
            for k in ("own", "others", "others_abs", "others_changed", "others_free", "others_free_changed"):
                assert m[f"avatars.{g}{i}.{k}"] == pytest.approx(0.0, abs=1e-9), (g, i, k)
    # an untrained world with the previous-frame prior copies its last frame: another draw draws the same cells
    assert m["avatars.noise_abs"] == pytest.approx(0.0, abs=1e-9) and m["avatars.noise_changed"] == 0.0
    assert m["avatars.greedy.noise_abs"] == 0.0 and m["avatars.greedy.noise_changed"] == 0.0  # deterministic
    assert m["avatars.game.replayed"] == 3 and all(0 <= m[f"avatars.game.{i}.others_changed"] <= 1 for i in range(2))


def test_the_game_floor_replays_the_game(coins_world):
    """Replayed with the logged actions the game draws every other avatar's cell as recorded (floor 0); with an
    avatar teleported by random actions for long enough it does not."""
    from maskworld.data.store import EpisodeStore
    from maskworld.eval.avatars import game_floor

    st = EpisodeStore(coins_world / "d")
    i = st.episode_ids[0]
    ep = st.load(i)
    refs = [(i, s) for s in (0, 10, 40)]
    pos = [np.asarray(ep.info["agents_pos"][s + 2 + 3]) for _, s in refs]
    truth = np.stack([ep.frames[s + 2 + 3] for _, s in refs])
    logged = np.stack([ep.actions[s + 1:s + 5] for _, s in refs])
    m, free = game_floor(st, refs, pos, truth, [logged, logged], context=2, room=8)
    assert free.shape == (2, 3, 2) and free[0, :, 1].all() and free[1, :, 0].all()
    assert m == {"avatars.game.replayed": 3, "avatars.game.0.others_changed": 0.0, "avatars.game.1.others_changed": 0.0}
    shifted = [(i, s + 7) for _, s in refs]  # replayed from another step: the avatars stand elsewhere
    m, _ = game_floor(st, shifted, pos, truth, [logged, logged], context=2, room=8)
    assert m["avatars.game.replayed"] == 3 and m["avatars.game.0.others_changed"] > 0


def test_avatar_control_sees_an_avatar_whose_actions_move_everything(coins_world):
    """The others' metrics can fail: a world where avatar 0's action reaches every cell changes the others' cells."""
    from maskworld import load_world
    from maskworld.data.store import EpisodeStore
    from maskworld.eval.avatars import avatar_control

    world = load_world(coins_world / "w")
    torch.manual_seed(0)
    with torch.no_grad():
        world.dynamics.agent_act_emb[1].weight.zero_()
        world.dynamics.agent_act_emb[0].weight.normal_(0, 20.0)  # avatar 0's action swamps every position ...
        world.dynamics.prev_gate.bias.zero_()  # ... where the previous-frame prior no longer holds the last frame
        world.dynamics.tok_head.weight.normal_(0, 1.0)  # and every cell's token follows its hidden state closely
    st = EpisodeStore(coins_world / "d")
    m = avatar_control(world, st, st.episode_ids[:2], room=8, slices_per_episode=3)
    assert m["avatars.greedy.0.others_changed"] > 0 and m["avatars.greedy.0.others_abs"] > 0
    assert m["avatars.greedy.1.others_changed"] == 0.0  # avatar 1's actions still reach nothing
    for k in ("own", "others"):  # intervals over the two held-out episodes, around their means
        lo, hi = m[f"avatars.greedy.0.{k}_ci"]
        assert lo <= m[f"avatars.greedy.0.{k}"] <= hi
    assert m["avatars.greedy.1.others_ci"] == [0.0, 0.0]  # nothing changed in any slice: no spread either


def test_a_world_of_several_agents_gets_its_locator_when_trained(coins_world):
    """`train world` on multi-agent data fits the locator; without --agent-dropout the world keeps joint decoding."""
    from maskworld import load_world

    world = load_world(coins_world / "w")
    assert world.locator is not None and world.rollout == "joint"
    assert "locator_train" in world.meta.model_card
