"""`maskworld train` and `maskworld rollout` end to end on toy data; exact resume after SIGKILL."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import maskworld
from maskworld.cli import main
from toy import make_toy_store

TINY = ["--preset", "tiny", "--no-progress", "--seed", "0"]


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    return make_toy_store(tmp_path_factory.mktemp("toy") / "data", episodes=12, T=16)


@pytest.mark.slow
def test_train_world_then_rollout(toy_data, tmp_path):
    out = tmp_path / "world"
    assert main(["train", "world", "--data", toy_data, "--out", str(out), "--steps", "4"] + TINY) == 0
    w = maskworld.load_world(out)
    assert w.meta.action_meanings == ["LEFT", "RIGHT", "UP", "DOWN"]
    card = w.meta.model_card
    assert card["data"]["episodes"] == 12 and card["dynamics_train"]["steps"] == 4 and "split" in card
    assert (out / "_work" / "tb").is_dir()  # TensorBoard logs
    video = tmp_path / "r.gif"
    assert main(["rollout", str(out), "--data", toy_data, "--out", str(video), "--episodes", "2", "--horizon", "4"]) == 0
    assert video.stat().st_size > 0
    # a second run into the same folder without --resume is refused, nothing overwritten
    assert main(["train", "world", "--data", toy_data, "--out", str(out), "--steps", "4"] + TINY) == 2


@pytest.mark.slow
def test_stages_alone(toy_data, tmp_path):
    out = tmp_path / "w"
    assert main(["train", "tokenizer", "--data", toy_data, "--out", str(out), "--steps", "3", "--codebook", "240"] + TINY) == 0
    assert (out / "tokenizer.safetensors").exists() and not (out / "world.json").exists()
    assert main(["train", "dynamics", "--data", toy_data, "--out", str(out), "--steps", "3", "--optimizer", "muon"] + TINY) == 0
    w = maskworld.load_world(out)
    assert w.meta.model_card["dynamics_train"]["optimizer"] == "muon"
    # --codebook 240: FSQ levels [8, 6, 5], and the dynamics predicts over those 240 codes
    assert w.tokenizer.cfg.levels == [8, 6, 5] and w.dynamics.cfg.vocab_size == 240
    assert main(["train", "dynamics", "--data", toy_data, "--out", str(tmp_path / "none"), "--steps", "3"] + TINY) == 2


@pytest.mark.slow
def test_init_fine_tunes_from_a_world(toy_data, tmp_path):
    """--init starts the dynamics from a world's weights and config (a fine-tune), with --context-drop, on the init
    world's tokenizer when --out has none; a config conflict or a missing world is a clear error before anything is
    written."""
    src = tmp_path / "src"
    assert main(["train", "world", "--data", toy_data, "--out", str(src), "--steps", "3", "--window", "3"] + TINY) == 0
    out = tmp_path / "ft"
    assert main(["train", "dynamics", "--data", toy_data, "--out", str(out), "--steps", "1", "--init", str(src),
                 "--context-drop", "0.5", "--self-context", "0.5", "--action-dropout", "0.2"] + TINY) == 0
    a, b = maskworld.load_world(src), maskworld.load_world(out)
    assert all(torch.equal(v, b.tokenizer.state_dict()[k]) for k, v in a.tokenizer.state_dict().items())
    assert b.dynamics.cfg.window == 3  # the init world's config, not the preset's
    assert b.meta.model_card["dynamics_train"]["context_drop"] == 0.5
    assert b.meta.model_card["dynamics_train"]["self_context"] == 0.5
    assert b.meta.model_card["dynamics_train"]["action_dropout"] == 0.2
    # the fine-tune holds out what its parent held out, under any ids (here a store with the episodes reversed)
    assert b.meta.model_card["split"]["held_out"] == a.meta.model_card["split"]["held_out"]
    from maskworld.data.store import EpisodeStore, StoreWriter

    store = EpisodeStore(toy_data)
    with StoreWriter(tmp_path / "reversed", store.meta) as w:
        for i in store.episode_ids[::-1]:
            w.add(store.load(i))
    rev = tmp_path / "ft_rev"
    assert main(["train", "dynamics", "--data", str(tmp_path / "reversed"), "--out", str(rev), "--steps", "1", "--init",
                 str(src)] + TINY) == 0
    card = maskworld.load_world(rev).meta.model_card["split"]
    assert card["held_out"] == a.meta.model_card["split"]["held_out"] and card["held_out_from"] == str(src)
    assert main(["train", "dynamics", "--data", toy_data, "--out", str(tmp_path / "z"), "--steps", "1", "--init", str(src),
                 "--action-dropout", "1"] + TINY) == 2 and not (tmp_path / "z").exists()
    # memory added to a world without it (its reader starts at zero: the fine-tune starts from the world as it was)
    mem = tmp_path / "mem"
    assert main(["train", "dynamics", "--data", toy_data, "--out", str(mem), "--steps", "1", "--init", str(src),
                 "--memory", "2", "--memory-keys", "appearance", "--copy-head"] + TINY) == 0
    m = maskworld.load_world(mem).dynamics.cfg
    assert (m.memory_frames, m.compressed_frames, m.memory_keys, m.copy_head, m.window) == (2, 2, "appearance", True, 3)
    diff = max((a.dynamics.state_dict()[k] - v).abs().max().item() for k, v in b.dynamics.state_dict().items())
    assert 0 < diff < 0.05  # one small step away from the init weights (a fresh init would be far)
    assert main(["train", "dynamics", "--data", toy_data, "--out", str(tmp_path / "x"), "--steps", "1", "--init",
                 str(tmp_path / "nope")] + TINY) == 2
    assert main(["train", "dynamics", "--data", toy_data, "--out", str(out), "--steps", "1", "--init", str(src),
                 "--window", "5", "--resume"] + TINY) == 2
    assert main(["train", "dynamics", "--data", toy_data, "--out", str(out), "--steps", "1", "--context-drop", "2"] + TINY) == 2
    assert main(["train", "world", "--data", toy_data, "--out", str(tmp_path / "y"), "--steps", "1", "--init", str(src)] + TINY) == 2
    assert main(["train", "dynamics", "--data", toy_data, "--out", str(out), "--steps", "1", "--init", str(src),
                 "--copy-head", "--resume"] + TINY) == 2  # the init world has no retrieval memory to point at
    other = tmp_path / "other"  # a tokenizer of its own: the init's token ids would mean other patches
    assert main(["train", "tokenizer", "--data", toy_data, "--out", str(other), "--steps", "2", "--seed", "5",
                 "--preset", "tiny", "--no-progress"]) == 0
    assert main(["train", "dynamics", "--data", toy_data, "--out", str(other), "--steps", "1", "--init", str(src)] + TINY) == 2


def test_context_drop_makes_the_context_mostly_noise():
    from maskworld.train.dynamics_train import corrupt

    tok = torch.zeros(64, 3, 16, dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    light = (corrupt(tok, 1000, 0.1, g) != 0).float().mean(dim=(1, 2))
    heavy = (corrupt(tok, 1000, 0.1, g, drop=1.0) != 0).float().mean(dim=(1, 2))
    assert light.max() < 0.2 and heavy.min() > 0.35 and heavy.mean() > 0.6


def test_own_context_is_the_models_own_prediction_after_the_first_frame():
    """Scheduled sampling: picked clips continue from the model's one-pass argmax frames, the first frame stays real;
    the others keep their real context."""
    from maskworld.models.dynamics import Dynamics, DynamicsConfig
    from maskworld.train.dynamics_train import own_context

    cfg = DynamicsConfig(d_model=32, n_layers=1, n_heads=2, window=3, vocab_size=50, num_actions=3, grid=2)
    torch.manual_seed(0)
    model = Dynamics(cfg).eval()
    clean = torch.randint(0, 50, (8, 3, 4))
    act = torch.randint(0, 3, (8, 3))
    assert torch.equal(own_context(model, clean, act, None, cfg.mask_id, torch.zeros(8, dtype=torch.bool)), clean)
    own = own_context(model, clean, act, None, cfg.mask_id, torch.ones(8, dtype=torch.bool))
    pred = model(clean, torch.full_like(clean, cfg.mask_id), act)[0].argmax(-1)
    assert torch.equal(own[:, 0], clean[:, 0]) and torch.equal(own[:, 1:], pred[:, 1:])
    assert not torch.equal(own, clean)
    pick = torch.arange(8) % 2 == 0
    half = own_context(model, clean, act, None, cfg.mask_id, pick)
    assert torch.equal(half[~pick], clean[~pick]) and torch.equal(half[pick], own[pick])


def test_train_bad_input(toy_data, tmp_path, capsys):
    assert main(["train", "world", "--data", toy_data, "--out", str(tmp_path / "a")] + TINY) == 2
    assert "budget" in capsys.readouterr().err
    assert main(["train", "world", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "b"), "--steps", "2"] + TINY) == 2
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_resume_after_sigkill_is_exact(toy_data, tmp_path):
    """Kill -9 mid-dynamics, resume: the final weights equal an uninterrupted run's (nothing lost).

    Every run is a fresh process with the same settings (one thread): a training step's float sums depend on
    process-wide torch state (thread pools, which earlier tests in a pytest process change), and this test is
    about what a checkpoint restores, not about that state."""
    args = ["--data", toy_data, "--steps", "40", "--ckpt-minutes", "0"] + TINY
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "maskworld", "train", "world"]
    ref = tmp_path / "ref"
    subprocess.run(cmd + ["--out", str(ref)] + args, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    killed = tmp_path / "killed"
    p = subprocess.Popen(cmd + ["--out", str(killed)] + args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = killed / "_work" / "ckpt_dynamics" / "latest.json"
    deadline = time.time() + 120
    while not latest.exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (killed / "world.json").exists(), "run finished before the kill; make it longer"
    subprocess.run(cmd + ["--out", str(killed), "--resume"] + args, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    a, b = load_file(str(ref / "dynamics.safetensors")), load_file(str(killed / "dynamics.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_action_dropout_hides_real_actions_only():
    """--action-dropout hides the action into a predicted frame (NULL) at its rate, never invents one for an
    episode's first frame, and the masked stream reads the hidden actions while the context keeps them."""
    from maskworld.train.dynamics_train import hide_actions

    null = 7
    act = torch.randint(0, 7, (64, 50))
    act[:, 0] = null
    hid = hide_actions(act, null, 0.25, torch.Generator().manual_seed(0))
    real = act != null
    share = ((hid == null) & real).sum().item() / real.sum().item()
    assert 0.22 < share < 0.28
    assert ((hid == act) | (hid == null)).all() and (hid[:, 0] == null).all()
    assert torch.equal(hide_actions(act, null, 0.0), act)
