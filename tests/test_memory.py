"""Memory M: pose codes, retrieval, a model that learns to read memory (and can fail to), sessions that keep it."""

import dataclasses

import numpy as np
import pytest
import torch

from maskworld.memory.bank import MemoryBank
from maskworld.memory.pose import REL_EMPTY, delta_class, integrate, rel_code
from maskworld.memory.retrieval import select, training_memory


def test_pose_changes_integrate_back():
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = np.array([*rng.integers(-5, 5, 2), rng.integers(4)])
        step = [np.array([1, 0]), np.array([-1, 0]), np.array([0, 1]), np.array([0, -1]), np.array([0, 0])][rng.integers(5)]
        b = np.array([*(a[:2] + step), (a[2] + rng.integers(4)) % 4])
        assert (integrate(a, int(delta_class(a, b))) == b).all()


def test_relative_codes_depend_only_on_the_offset():
    # the same offset seen from anywhere, facing anywhere, gets the same code
    for d in range(4):
        ref = np.array([3, 7, d])
        fwd = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]])[d]
        assert rel_code(ref, np.array([3 + fwd[0], 7 + fwd[1], d])) == rel_code(np.array([0, 0, 0]), np.array([1, 0, 0]))
    assert rel_code(np.zeros(3, int), np.array([0, 0, 0])) != REL_EMPTY


def test_select_nearest_one_per_pose_most_recent_first():
    poses = np.array([[0, 0, 0], [5, 5, 0], [0, 0, 0], [1, 0, 0], [0, 0, 2], [9, 9, 1]])
    idx = select(np.array([0, 0, 0]), poses, 3)
    assert list(idx) == [2, 3, 4]  # the later of the two views at (0,0,0); far ones never
    assert len(select(np.array([20, 20, 0]), poses, 3)) == 0


def test_observed_views_beat_imagined_ones_of_the_same_place():
    """Of several views of one pose a real (observed) one is read, even when an imagined one is more recent; the
    bank keeps the flag through save/load."""
    poses = np.array([[1, 1, 0], [5, 5, 0], [1, 1, 0], [1, 1, 0]])
    assert list(select(np.array([1, 1, 0]), poses, 1)) == [3]  # all real: the most recent view
    obs = np.array([True, True, False, False])
    assert list(select(np.array([1, 1, 0]), poses, 1, observed=obs)) == [0]
    b = MemoryBank(4)
    for i, (p, o) in enumerate(zip(poses, obs)):
        b.append(np.full(4, i), p, bool(o))
    back = MemoryBank.from_state(b.state(), 4)
    assert np.array_equal(back.observed, obs)
    ret, rel, _, _ = back.query(pos=10, ref_pose=np.array([1, 1, 0]), window=2, m=1, c=0)
    assert ret[0, 0] == 0  # the observed view


def test_training_memory_looks_only_beyond_the_window():
    rng = np.random.default_rng(0)
    poses = np.stack([np.arange(30) % 3, np.zeros(30, int), np.zeros(30, int)], 1)  # pacing over 3 cells
    rows = np.array([[20, 21, 22, 23]])
    ret, rel, comp = training_memory(poses, rows, np.zeros_like(rows), window=4, m=2, c=2, rng=rng, drop=0.0)
    for t in range(4):
        p = rows[0, t]
        assert (ret[0, t] >= 0).all() and (ret[0, t] <= p - 4).all()  # two distinct places, both older than the window
        assert list(comp[0, t]) == [p - 5, p - 4]
    # at an episode's start there is nothing to remember
    ret, rel, comp = training_memory(poses, np.array([[0, 1, 2, 3]]), np.zeros((1, 4), int), 4, 2, 2, rng, 0.0)
    assert (ret == -1).all() and (rel == REL_EMPTY).all() and (comp == -1).all()


def test_bank_grows_linearly_and_round_trips():
    b = MemoryBank(64)
    for i in range(100):
        b.append(np.full(64, i, np.uint16), np.array([i, 0, 0]))
    assert b.nbytes == 100 * (64 * 2 + 24 + 1)
    c = MemoryBank.from_state(b.state(), 64)
    assert (c.tokens == b.tokens).all() and (c.poses == b.poses).all()
    ret, rel, comp, valid = b.query(pos=100, ref_pose=np.array([10, 0, 0]), window=4, m=2, c=2)
    assert ret[0, 0] == 10 and list(valid) == [True, True] and comp[1, 0] == 96


STEPS = 600


@pytest.fixture(scope="module")
def places_model(tmp_path_factory):
    """A tiny dynamics model trained to read memory on the places toy (what a place shows is only in memory)."""
    from maskworld.data.store import EpisodeStore
    from maskworld.data.token_cache import write_token_cache
    from maskworld.models.dynamics import DynamicsConfig
    from maskworld.train.dynamics_train import train_dynamics
    from maskworld.train.loop import Budget
    from toy import make_places_store, places_tokens

    d = tmp_path_factory.mktemp("places")
    store = EpisodeStore(make_places_store(d / "data", episodes=60))
    ids = list(range(len(store)))
    train = write_token_cache(d / "train", store, ids[:50], places_tokens, progress=False)
    val = write_token_cache(d / "val", store, ids[50:], places_tokens, progress=False)
    cfg = DynamicsConfig(vocab_size=16, num_actions=3, grid=2, d_model=64, n_layers=2, n_heads=4, window=2,
                         memory_frames=3, compressed_frames=0, pose_head=True)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, _ = train_dynamics(train, val, cfg, batch=32, lr=2e-3, budget=Budget(steps=STEPS), work_dir=d / "work",
                                  device=torch.device("cpu"), resume=False, progress=False, ckpt_minutes=100)
    finally:
        torch.set_num_threads(n)
    return model.eval(), val


def _accuracy(model, cache, memory: bool) -> float:
    from maskworld.train.dynamics_train import dynamics_losses, make_batch

    rng, gen, accs = np.random.default_rng(5), torch.Generator().manual_seed(5), []
    with torch.no_grad():
        for _ in range(8):
            tok, act, rew, term, extra = make_batch(cache, 64, model.cfg.window, rng, 3, "cpu", model.cfg)
            if not memory:
                extra["rel"] = torch.full_like(extra["rel"], REL_EMPTY)
            accs.append(dynamics_losses(model, tok, act, rew, term, corrupt_max=0.0, gen=gen, extra=extra)[3].item())
    return float(np.mean(accs))


@pytest.mark.slow
def test_model_learns_to_read_memory_and_fails_without_it(places_model):
    model, val = places_model
    on, off = _accuracy(model, val, True), _accuracy(model, val, False)
    # a place's pattern is random per episode: without memory a new place is a guess (1/16 per token)
    assert on > off + 0.15, (on, off)


def test_untrained_reader_changes_nothing():
    from maskworld.models.dynamics import Dynamics, DynamicsConfig
    from maskworld.models.memory_reader import MemoryInput

    torch.manual_seed(0)
    m = Dynamics(DynamicsConfig(vocab_size=20, grid=4, num_actions=3, d_model=32, n_layers=2, n_heads=2, window=3,
                                memory_frames=2, compressed_frames=2)).eval()
    tok = torch.randint(0, 20, (2, 3, 16))
    act = torch.randint(0, 3, (2, 3))
    mem = MemoryInput(torch.randint(0, 20, (6, 2, 16)), torch.zeros(6, 2, dtype=torch.long),
                      torch.randint(0, 20, (6, 2, 16)), torch.ones(6, 2, dtype=torch.bool))
    a, b = m(tok, tok, act)[0], m(tok, tok, act, memory=mem)[0]
    assert torch.equal(a, b)  # zero-initialised outputs: adding memory to a trained world starts from it


def test_copy_head_points_at_remembered_tokens():
    """The copy head's output is a distribution; with its gate open it predicts the remembered token ids (a token
    the vocabulary head would not pick), closed or with nothing remembered it is the vocabulary head."""
    from maskworld.memory.pose import REL_EMPTY
    from maskworld.models.dynamics import Dynamics, DynamicsConfig
    from maskworld.models.memory_reader import MemoryInput

    torch.manual_seed(0)
    cfg = DynamicsConfig(vocab_size=20, grid=4, num_actions=3, d_model=32, n_layers=2, n_heads=2, window=3,
                         memory_frames=2, compressed_frames=0, copy_head=True)
    m = Dynamics(cfg).eval()
    plain = Dynamics(dataclasses.replace(cfg, copy_head=False)).eval()
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("copy_head.")})
    tok = torch.randint(0, 20, (2, 3, 16))
    act = torch.randint(0, 3, (2, 3))
    rel = torch.zeros(6, 2, dtype=torch.long)
    mem = MemoryInput(torch.full((6, 2, 16), 7), rel)
    with torch.no_grad():
        out = m(tok, tok, act, memory=mem)[0]
        assert torch.allclose(out.logsumexp(-1), torch.zeros(()), atol=1e-4)  # log-probabilities
        ref = plain(tok, tok, act, memory=mem)[0]
        assert (out.softmax(-1) - ref.softmax(-1)).abs().max() < 0.1  # gate starts almost closed (sigmoid(-3) ~ 0.05)
        empty = MemoryInput(torch.full((6, 2, 16), 7), torch.full_like(rel, REL_EMPTY))
        torch.testing.assert_close(m(tok, tok, act, memory=empty)[0].softmax(-1),
                                   plain(tok, tok, act, memory=empty)[0].softmax(-1), atol=1e-5, rtol=1e-4)
        m.copy_head.gate.bias.fill_(20.0)  # gate open: everything remembered is token 7
        assert (m(tok, tok, act, memory=mem)[0].argmax(-1) == 7).all()
        assert not (ref.argmax(-1) == 7).all()


@pytest.mark.slow
def test_session_memory_survives_save_and_resume(tiny_memory_world, one_thread):
    from maskworld.world.session import Session

    w = tiny_memory_world
    s = w.session(seed=3)
    rng = np.random.default_rng(0)
    for a in rng.integers(0, 3, 500):
        s.step(int(a))
    assert s.memory_frames == 501
    blob, info = s.to_bytes()
    r = Session.from_bytes(w, blob, info)
    assert r.memory_frames == 501 and (r.bank.tokens == s.bank.tokens).all() and (r.pose == s.pose).all()
    # what it reads next (places seen before saving) and what it then shows are the same as without the save
    for x, y in zip(s.memory_input_row(), r.memory_input_row()):
        assert (x == y).all()
    acts = [int(a) for a in rng.integers(0, 3, 10)]
    assert all((s.step(a)[0] == r.step(a)[0]).all() for a in acts)


@pytest.mark.slow
def test_memory_switch_changes_frames_and_not_the_bank(tiny_memory_world):
    w = tiny_memory_world
    on, off = w.session(seed=1), w.session(seed=1, memory=False)
    acts = [0, 2, 2, 1, 2, 2, 0, 0, 2, 1] * 3
    fo = [on.step(a)[0] for a in acts]
    ff = [off.step(a)[0] for a in acts]
    assert off.memory_frames == on.memory_frames == len(acts) + 1
    assert any((x != y).any() for x, y in zip(fo, ff))


@pytest.mark.slow
def test_revisit_benchmark_runs_and_memory_blind_world_gains_nothing(tiny_world, tiny_memory_world, tmp_path):
    """The benchmark's gain can be zero: a world without memory gets exactly its no-memory score."""
    from maskworld.eval.revisit import memory_cost, revisit
    from maskworld.models.sampler import SamplerConfig
    from maskworld.world.world import World, WorldMeta
    from conftest import _tiny_parts

    tok, dyn = _tiny_parts(7)
    blind = World(tok, dyn, SamplerConfig(steps=1), WorldMeta(env_id="MiniGrid-Landmarks-v0"))
    m = revisit(blind, gaps=(8,), per_gap=2, progress=False)
    assert m["revisit.gain.psnr.8"] == 0.0 and m["revisit.memory.psnr.8"] == m["revisit.no_memory.psnr.8"]
    assert m["revisit.gain.psnr_ci.8"] == [0.0, 0.0]  # paired by trial and frame: nothing to spread
    mm = revisit(tiny_memory_world, gaps=(8,), per_gap=2, progress=False, memory_k=(1,), ablations=True)
    for arm in ("memory", "no_memory", "memory_envpose", "oracle", "copy_last", "tokenizer", "memory_k1", "retrieval_only",
                "compressed_only", "recent"):
        assert np.isfinite(mm[f"revisit.{arm}.psnr.8"]) and 0 <= mm[f"revisit.{arm}.recall.8"] <= 1
    assert mm["revisit.memory.psnr.8"] != mm["revisit.no_memory.psnr.8"]
    for gain in ("psnr", "oracle_psnr", "envpose_psnr", "appearance_psnr"):
        lo, hi = mm[f"revisit.gain.{gain}_ci.8"]
        assert lo - 1e-9 <= mm[f"revisit.gain.{gain}.8"] <= hi + 1e-9
    for arm in ("memory", "no_memory", "memory_envpose"):  # own-reckoning returns: counted, scored where there are any
        n, v = mm[f"revisit.{arm}.own_returns.8"], mm[f"revisit.{arm}.own_return_psnr.8"]
        assert n >= 0 and (v is None) == (n == 0) and 0 <= mm[f"revisit.{arm}.own_moved.8"] <= 1
    assert 0 < mm["revisit.real_moved.8"] <= 1
    assert memory_cost(blind, history=20, steps=5)["memory.bytes_per_frame"] == 0.0  # it remembers nothing
    c = memory_cost(tiny_memory_world, history=40, steps=5)
    bpf = tiny_memory_world.dynamics.cfg.tokens_per_frame * 2 + 25
    assert c["memory.bytes_per_frame"] == bpf
    assert [c[f"memory.bytes.{n}"] for n in (10, 20, 40)] == [(n + 1) * bpf for n in (10, 20, 40)]  # linear in steps
    assert c["memory.fps_on"] > 0 and c["memory.fps_off"] > 0


def test_paired_gain_interval_resamples_trials():
    """A gain the same on every frame is certain; one that only some trials have straddles them."""
    from maskworld.eval.revisit import paired_gain_ci

    base = [np.full(6, 20.0) for _ in range(8)]
    assert paired_gain_ci([b + 2.0 for b in base], base) == [2.0, 2.0]
    mixed = [b + (8.0 if i < 2 else -1.0) for i, b in enumerate(base)]  # mean +1.25, carried by two trials
    lo, hi = paired_gain_ci(mixed, base)
    assert lo < 1.25 < hi and lo <= 0.0 and hi > 2.0
    assert paired_gain_ci(base[:1], base[:1]) is None  # one trial: nothing to resample


def test_own_returns_score_what_the_world_showed_there_and_can_fail():
    """A return = the pose comes back to one it had more than a window ago, after leaving it: a world that shows the
    same frame there scores high, one that shows another scores low, and turning in place is no return."""
    from maskworld.eval.revisit import own_returns

    rng = np.random.default_rng(0)
    place = {p: rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for p in range(4)}
    path = [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0]  # x positions: out and back twice
    poses = np.array([[x, 0, 0] for x in path])
    same = np.stack([place[x] for x in path])  # remembers: each place always looks the same
    forgets = same.copy()
    forgets[6:] = rng.integers(0, 256, forgets[6:].shape, dtype=np.uint8)  # after the first loop: new views
    good, moved = own_returns(same, poses, start=6, window=2)  # the second loop
    bad, _ = own_returns(forgets, poses, start=6, window=2)
    assert len(good) == len(bad) > 0 and moved == 1.0
    assert min(good) >= 59 and max(bad) < 20  # 60 dB: the PSNR cap of identical frames
    spin = np.array([[0, 0, d % 4] for d in range(13)])  # turning on the spot: never leaves
    assert own_returns(same, spin, start=1, window=2) == ([], 0.0)


@pytest.mark.slow
def test_revisit_command_writes_json_and_svg(tiny_memory_world, tmp_path, capsys, one_thread):
    import json

    from maskworld.cli import main

    out = tmp_path / "r.json"
    assert main(["revisit", str(tiny_memory_world.path), "--gaps", "8", "--trials", "1", "--history", "20",
                 "--json", str(out), "--svg", str(tmp_path / "r.svg"), "--no-progress", "--temperature", "1.0"]) == 0
    m = json.loads(out.read_text())
    assert m["revisit.gaps"] == [8] and "revisit.gain.psnr.8" in m and m["memory.history_steps"] == 20
    assert m["meta.sampler_temperature"] == 1.0 and m["meta.sampler_steps"] == tiny_memory_world.sampler.steps
    assert (tmp_path / "r.svg").read_text().startswith("<svg") and "memory gain" in capsys.readouterr().out


def test_bad_memory_input_fails_clearly_before_writing(tiny_memory_world, tiny_world, tmp_path, capsys):
    from maskworld.cli import main
    from toy import make_toy_store

    w = str(tiny_memory_world.path)
    for bad, msg in ((["--gaps", "0,8"], "--gaps"), (["--gaps", "eight"], "--gaps"), (["--memory-k", "3"], "--memory-k 3"),
                     (["--trials", "0"], "--trials"), (["--env", "ALE/Pong-v5"], "are not the world's"),
                     (["--temperature", "-1"], "--temperature"), (["--sampler-steps", "0"], "--sampler-steps"),
                     (["--guidance", "-1"], "--guidance"), (["--free-temperature", "warm"], "--free-temperature"),
                     (["--json", str(tmp_path / "x.txt")], ".json")):
        assert main(["revisit", w, *bad]) == 2, bad
        assert msg in capsys.readouterr().err, bad
    assert not (tmp_path / "x.txt").exists()
    # pose keys need poses: a store without agent_pos/agent_dir is refused before anything is written
    data = make_toy_store(tmp_path / "toy", episodes=4, T=6)
    for bad in (["--memory", "2", "--memory-keys", "pose", "--window", "4"], ["--memory", "-1"], ["--compressed", "99"]):
        out = tmp_path / "w"
        assert main(["train", "world", "--data", data, "--out", str(out), "--steps", "2", *bad]) == 2
        assert not out.exists(), bad
    assert "agent_pos" in capsys.readouterr().err
