"""Decoding a world of several agents avatar by avatar: the avatar locator, factorised decoding (each avatar's
neighbourhood from its own action, the free cells' second stage), partial actions, and avatars kept on their cells."""

import numpy as np
import pytest
import torch

from maskworld.data.store import EpisodeStore
from maskworld.envs import base
from maskworld.envs.coins import N
from maskworld.errors import UserError


def joint_action(actions):
    return base.joint_action(actions, N)


@pytest.fixture(scope="module")
def located_world(tmp_path_factory):
    """A coins world whose tokenizer had enough steps to tell the avatars apart, trained with agents' actions
    hidden (so `train world` makes it decode avatar by avatar), its locator fitted again by the command a user runs."""
    import json

    from maskworld.cli import main
    from maskworld.data.collect import CollectConfig, collect
    from maskworld.train.world_train import TrainArgs, run_train

    root = tmp_path_factory.mktemp("located")
    collect(CollectConfig(env_id="MultiAgent-Coins-v0", steps=1500, out=str(root / "d"), policy="random",
                          progress=False, env_kwargs={"agents": 2}, bench_seconds=0.05))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # this module's tests run on one thread; the modules after it get theirs back
    run_train(TrainArgs(data=str(root / "d"), out=str(root / "w"), preset="tiny", steps=2, tok_steps=150, progress=False,
                        agent_dropout=0.5))
    cfg = json.loads((root / "w" / "world.json").read_text())
    assert cfg["meta"]["rollout"] == "factorised" and cfg["sampler"]["free_temperature"] == 1.0  # set by training
    assert main(["train", "locator", "--world", str(root / "w"), "--data", str(root / "d"), "--steps", "300"]) == 0
    yield root
    torch.set_num_threads(threads)


def test_the_locator_finds_every_avatar_and_an_untrained_one_does_not(located_world):
    import json

    from maskworld import load_world
    from maskworld.data.store import EpisodeStore
    from maskworld.models.locator import AvatarLocator, LocatorConfig
    from maskworld.train.locator_train import _tokens

    cfg = json.loads((located_world / "w" / "world.json").read_text())
    m = cfg["meta"]["model_card"]["locator_train"]
    assert cfg["meta"]["rollout"] == "factorised" and cfg["weights"]["locator"] == "locator.safetensors"
    assert m["accuracy"] > 0.5 and m["majority"] < 0.1  # a few seconds of tokenizer: far from the 1.0 of a real world
    world = load_world(located_world / "w")
    assert world.locator is not None and world.rollout == "factorised" and world.dynamics.cfg.partial_actions
    st = EpisodeStore(located_world / "d")
    x, y = _tokens(world, st, st.episode_ids, room=8, max_frames=400)
    torch.manual_seed(1)
    for loc, good in ((world.locator, True), (AvatarLocator(LocatorConfig(agents=2, vocab_size=world.locator.cfg.vocab_size,
                                                                                grid=8)), False)):
        acc = float((loc.locate(x)[0] == y).all(1).float().mean())
        assert (acc > 0.5) if good else (acc < 0.1), acc


def test_factorised_decoding_keeps_an_avatar_s_action_near_it(located_world):
    """In a world where avatar 0's action reaches every cell, joint decoding redraws far cells when it changes;
    factorised decoding changes nothing outside avatar 0's neighbourhood."""
    import dataclasses

    from maskworld import load_world
    from maskworld.data.store import EpisodeStore
    from maskworld.world.engine import Engine

    world = load_world(located_world / "w")
    torch.manual_seed(0)
    with torch.no_grad():
        world.dynamics.agent_act_emb[0].weight.normal_(0, 20.0)
        world.dynamics.prev_gate.bias.zero_()
        world.dynamics.tok_head.weight.normal_(0, 1.0)
    world.sampler = dataclasses.replace(world.sampler, temperature=0.0, choice_temperature=0.0, free_temperature=None)
    ep = EpisodeStore(located_world / "d").load(EpisodeStore(located_world / "d").episode_ids[0])
    frames = ep.frames[:6]

    def decode(mode, a0):
        world.rollout = mode
        eng = Engine(world, rows=len(frames))
        ss = [world.session(f, engine=eng) for f in frames]
        acts = torch.tensor([joint_action([a0, 2])] * len(ss))
        return eng.decode(ss, acts), world.locator.owners(torch.from_numpy(np.stack([s.tokens for s in ss]).astype(np.int64)))

    for mode in ("joint", "factorised"):
        outs = [decode(mode, a0) for a0 in range(5)]
        owners = outs[0][1]
        far = (owners & 1) == 0  # cells outside avatar 0's neighbourhood
        changed = max(int(((o[0] != outs[0][0]) & far).sum()) for o in outs[1:])
        if mode == "joint":
            assert changed > 0  # the test can fail: joint decoding lets avatar 0 reach everywhere
        else:
            assert changed == 0
            near = max(int(((o[0] != outs[0][0]) & ~far).sum()) for o in outs[1:])
            assert near > 0  # ... and avatar 0 still acts where it is
    # with the second stage the free cells are drawn given the avatars' cells (which avatar 0 moves), but the
    # other avatar's neighbourhood still never hears avatar 0
    world.sampler = dataclasses.replace(world.sampler, free_temperature=1.0)
    outs = [decode("factorised", a0) for a0 in range(5)]
    others = ((outs[0][1] & 1) == 0) & (outs[0][1] != 0)
    assert others.any()
    assert max(int(((o[0] != outs[0][0]) & others).sum()) for o in outs[1:]) == 0


def test_factorised_steps_are_seeded_and_batch_independent(located_world):
    from maskworld import load_world
    from maskworld.data.store import EpisodeStore
    from maskworld.world.engine import Engine

    world = load_world(located_world / "w")
    ep = EpisodeStore(located_world / "d").load(EpisodeStore(located_world / "d").episode_ids[0])
    acts = [joint_action([1, 3]), joint_action([4, 0]), joint_action([2, 2])]

    def run(batch: bool):
        eng = Engine(world, rows=2)
        ss = [world.session(ep.frames[0], seed=s, engine=eng) for s in (3, 4)]
        out = []
        for a in acts:
            if batch:
                out.append(eng.step(ss, [a, a]).tokens)
            else:
                out.append(torch.cat([eng.step([s], [a]).tokens for s in ss]))
        return torch.stack(out)

    assert torch.equal(run(True), run(False))


def test_the_free_cells_second_stage_redraws_only_them(located_world):
    """free_temperature draws the cells no avatar covers again, given the avatars' cells: those stay exactly as the
    one-stage decode draws them (same seeds), the free cells are drawn anew, and the steps stay seeded."""
    import dataclasses

    from maskworld import load_world
    from maskworld.data.store import EpisodeStore
    from maskworld.world.engine import Engine

    world = load_world(located_world / "w")
    store = EpisodeStore(located_world / "d")
    frames = store.load(store.episode_ids[0]).frames[:6]
    acts = torch.tensor([joint_action([1, 3])] * len(frames))

    def decode(free_temperature):
        world.sampler = dataclasses.replace(world.sampler, temperature=1.0, free_temperature=free_temperature)
        eng = Engine(world, rows=len(frames))
        ss = [world.session(f, seed=i, engine=eng) for i, f in enumerate(frames)]
        owners = world.locator.owners(torch.from_numpy(np.stack([s.tokens for s in ss]).astype(np.int64)))
        return eng.decode(ss, acts), owners

    one, owners = decode(None)
    two, _ = decode(1.0)
    free = owners == 0
    assert free.any() and (~free).any()
    assert torch.equal(one[~free], two[~free])
    assert (one[free] != two[free]).any()  # the test can fail: a second stage that kept the first's free cells
    assert torch.equal(decode(1.0)[0], two)
    import argparse

    from maskworld.commands._args import apply_sampler_args
    for given, want in (("off", None), ("0.7", 0.7)):
        apply_sampler_args(world, argparse.Namespace(sampler_steps=None, temperature=None, free_temperature=given))
        assert world.sampler.free_temperature == want


def test_factorised_rollout_needs_a_locator(located_world, tmp_path, capsys):
    import argparse
    import json
    import shutil

    from maskworld import load_world
    from maskworld.cli import main
    from maskworld.commands._args import apply_sampler_args
    from maskworld.data.collect import CollectConfig, collect

    w = tmp_path / "w"
    shutil.copytree(located_world / "w", w)
    (w / "locator.safetensors").unlink()
    cfg = json.loads((w / "world.json").read_text())
    cfg.pop("locator")
    cfg["weights"].pop("locator")
    (w / "world.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="no locator"):
        load_world(w)
    cfg["meta"]["rollout"] = "joint"
    (w / "world.json").write_text(json.dumps(cfg))
    world = load_world(w)
    with pytest.raises(UserError, match="train locator"):
        apply_sampler_args(world, argparse.Namespace(sampler_steps=None, temperature=None, rollout="factorised"))
    before = (w / "world.json").read_text()
    collect(CollectConfig(env_id="MiniGrid-Empty-5x5-v0", steps=30, out=str(tmp_path / "mg"), progress=False,
                          bench_seconds=0.05))
    assert main(["train", "locator", "--world", str(w), "--data", str(tmp_path / "mg"), "--steps", "5"]) != 0
    assert "records no agents_pos" in capsys.readouterr().err
    assert (w / "world.json").read_text() == before and not (w / "locator.safetensors").exists()


def test_a_world_fine_tuned_to_read_locally(located_world, tmp_path, capsys):
    """`--local-radius` turns an --init world that read everything into one whose cells read their neighbourhood;
    the setting is saved, the world loads and decodes avatar by avatar, and a negative radius is refused first."""
    import json

    from maskworld import load_world
    from maskworld.cli import main

    d, out = str(located_world / "d"), tmp_path / "wl"
    assert main(["train", "dynamics", "--data", d, "--out", str(out), "--init", str(located_world / "w"),
                 "--local-radius", "-1", "--steps", "1", "--no-progress"]) != 0
    assert "--local-radius -1" in capsys.readouterr().err and not (out / "world.json").exists()
    assert main(["train", "dynamics", "--data", d, "--out", str(out), "--init", str(located_world / "w"),
                 "--local-radius", "1", "--steps", "1", "--no-progress"]) == 0
    assert json.loads((out / "world.json").read_text())["dynamics"]["local_radius"] == 1
    world = load_world(out)
    assert world.dynamics.cfg.local_radius == 1 and world.rollout == "factorised"
    assert world.sampler.steps == 1  # its cells do not read each other: more MaskGIT steps draw the same
    s = world.session(EpisodeStore(d).load(EpisodeStore(d).episode_ids[0]).frames[0])
    assert s.step(joint_action([1, 2]))[0].shape == (64, 64, 3)


def test_partial_actions_name_some_agents_and_hide_the_rest():
    from maskworld.models.dynamics import Dynamics, DynamicsConfig
    from maskworld.train.dynamics_train import hide_agents

    torch.manual_seed(0)
    cfg = DynamicsConfig(vocab_size=16, grid=2, num_actions=25, action_factors=[5, 5], d_model=16, n_layers=1,
                         n_heads=2, window=2, partial_actions=True)
    d = Dynamics(cfg)
    known = cfg.partial_action(torch.tensor([[1, 3], [4, 0]]))
    assert known.tolist() == [joint_action([1, 3]), joint_action([4, 0])]  # every agent known: the joint id
    part = cfg.partial_action(torch.tensor([[1, 5], [5, 5]]))  # agent 1 unknown; both unknown
    assert (part > cfg.null_action).all()
    e = d.embed_actions(torch.stack([part, torch.tensor([joint_action([1, 0]), cfg.null_action])])[None])[0]
    emb0, emb1 = d.agent_act_emb
    torch.testing.assert_close(e[0, 0], emb0.weight[1] + emb1.weight[5])  # agent 0's action + agent 1's NULL
    torch.testing.assert_close(e[0, 1], emb0.weight[5] + emb1.weight[5])  # both NULL: as the NULL action
    torch.testing.assert_close(e[0, 1], e[1, 1])
    act = torch.tensor([[cfg.null_action] + [joint_action([a % 5, (a * 3) % 5]) for a in range(1, 400)]])
    q = hide_agents(cfg, act, 0.5, torch.Generator().manual_seed(0))
    assert q[0, 0] == cfg.null_action  # an episode's first frame stays NULL
    hidden = (q > cfg.null_action).float().mean().item()
    assert 0.6 < hidden < 0.9  # 1 - 0.5^2 of the steps hide at least one agent
    same = q == act
    assert same.any() and (same | (q > cfg.null_action)).all()  # a step is either as it was or partly hidden
    with pytest.raises(UserError, match="several agents"):
        hide_agents(DynamicsConfig(num_actions=5, d_model=16, n_layers=1, n_heads=2), act % 5, 0.5)


def test_each_variant_names_exactly_its_owners_actions():
    from maskworld.models.dynamics import DynamicsConfig
    from maskworld.world.factorised import variants

    owners = torch.tensor([[0, 1, 2, 3, 1, 1]])  # bit k: the cell is near avatar k
    a = torch.tensor([joint_action([2, 4])])
    for partial in (False, True):
        cfg = DynamicsConfig(num_actions=25, action_factors=[5, 5], partial_actions=partial)
        idx, masks, acts = variants(owners, a, cfg, noop=0)
        assert idx.tolist() == [0, 0, 0, 0] and masks.tolist() == [0, 1, 2, 3]
        absent = 5 if partial else 0  # unknown (NULL) in a world trained for it, else NOOP
        expect = [[absent, absent], [2, absent], [absent, 4], [2, 4]]
        assert acts.tolist() == cfg.partial_action(torch.tensor(expect)).tolist()


def test_avatar_cells_reads_a_copying_world_as_copy_last_and_an_erasing_world_as_lost(located_world):
    """`avatars.on_cell.{h}` can fail both ways: a world that copies its last frame scores exactly the avatars that
    stayed put (copy-last), and one that draws every cell as floor keeps no avatar on its cell."""
    import dataclasses

    from maskworld import load_world
    from maskworld.data.store import EpisodeStore
    from maskworld.eval.avatar_cells import avatar_cells

    st = EpisodeStore(located_world / "d")
    world = load_world(located_world / "w")
    world.rollout = "joint"
    world.sampler = dataclasses.replace(world.sampler, temperature=0.0, choice_temperature=0.0)
    with torch.no_grad():
        world.dynamics.prev_gate.bias.fill_(50.0)  # the previous frame's token wins every cell: a copying world
    m = avatar_cells(world, st, st.episode_ids[:2], room=8, slices_per_episode=3, horizons=(1, 4))
    assert m["avatars.on_cell.slices"] == 6
    for h in (1, 4):
        assert m[f"avatars.on_cell.{h}"] == m[f"avatars.on_cell.copy_last.{h}"] < m[f"avatars.on_cell.real.{h}"]
        lo, hi = m[f"avatars.on_cell_ci.{h}"]
        assert lo <= m[f"avatars.on_cell.{h}"] <= hi
    floor = int(np.bincount(world.tokenizer.tokenize_uint8(torch.from_numpy(st.load(st.episode_ids[0]).frames[:50]))
                            .flatten().numpy()).argmax())
    with torch.no_grad():
        world.dynamics.prev_gate.bias.fill_(-50.0)
        world.dynamics.tok_head.bias.fill_(-50.0)
        world.dynamics.tok_head.bias[floor] = 50.0  # every imagined cell is the floor's token
    m = avatar_cells(world, st, st.episode_ids[:2], room=8, slices_per_episode=3, horizons=(1, 4))
    for h in (1, 4):
        assert m[f"avatars.on_cell.{h}"] <= 0.1 < m[f"avatars.on_cell.real.{h}"], m
    world.locator = None  # a world of several agents without a locator: nothing to read with
    assert avatar_cells(world, st, st.episode_ids[:1], room=8) == {}
