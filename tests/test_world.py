"""World directory format, Session API, batched stepping, exact resume, bad input."""

import json

import numpy as np
import pytest

import maskworld
from maskworld.errors import UserError


def test_save_load_roundtrip(tiny_world, tmp_path):
    w = maskworld.load_world(tmp_path / "world")
    assert w.action_meanings == ["LEFT", "RIGHT", "NOOP"]
    s1, s2 = tiny_world.session(seed=3), w.session(seed=3)
    for a in [0, 1, 2, 1]:
        f1, _, _ = s1.step(a)
        f2, _, _ = s2.step(a)
        assert np.array_equal(f1, f2)


def test_step_outputs(tiny_world):
    s = tiny_world.session(prompt=np.zeros((64, 64, 3), np.uint8), seed=0)
    frame, reward, done = s.step(1)
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    assert isinstance(reward, float) and isinstance(done, bool)
    assert s.steps == 1 and s.pos == 2


@pytest.mark.slow
def test_batched_equals_single(tiny_world):
    prompts = [np.full((64, 64, 3), v, np.uint8) for v in (0, 120, 250)]
    singles = [tiny_world.session(prompt=p, seed=i) for i, p in enumerate(prompts)]
    batch = [tiny_world.session(prompt=p, seed=i) for i, p in enumerate(prompts)]
    batch[2].step(0)  # different history lengths inside one batch (padding path)
    singles[2].step(0)
    for t in range(5):
        acts = [t % 3, (t + 1) % 3, (t + 2) % 3]
        outs = tiny_world.step_many(batch, acts)
        for i, s in enumerate(singles):
            f, _, _ = s.step(acts[i])
            assert np.array_equal(f, outs[i][0]), (t, i)


def test_resume_exact(tiny_world):
    s = tiny_world.session(seed=7)
    for a in [0, 1, 2, 0, 1, 2]:  # longer than the window: cache has slid
        s.step(a)
    blob, info = s.to_bytes()
    r = type(s).from_bytes(tiny_world, blob, info)
    for a in [2, 2, 1, 0]:
        assert np.array_equal(s.step(a)[0], r.step(a)[0])


def test_bad_actions_are_errors_not_clamped(tiny_world):
    s = tiny_world.session(seed=0)
    for bad in (3, -1, 1.5, "LEFT", True):
        with pytest.raises(UserError, match="action"):
            s.step(bad)
    assert s.steps == 0


def test_prompt_converted(tiny_world):
    s = tiny_world.session(prompt=np.random.rand(100, 80).astype(np.float32))  # gray float, wrong size
    assert s.frame.shape == (64, 64, 3)
    with pytest.raises(UserError, match="shape"):
        tiny_world.session(prompt=np.zeros((4, 4, 7), np.uint8))


def test_load_errors(tiny_world, tmp_path):
    wdir = tmp_path / "world"
    with pytest.raises(UserError, match="no world.json"):
        maskworld.load_world(tmp_path)
    cfg = json.loads((wdir / "world.json").read_text())
    cfg["format_version"] = 999
    (wdir / "world.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="format version"):
        maskworld.load_world(wdir)
    cfg["format_version"] = maskworld.WORLD_FORMAT_VERSION
    cfg["dynamics"]["d_model"] = 64  # mismatched with the weights
    (wdir / "world.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="does not match"):
        maskworld.load_world(wdir)
    cfg["dynamics"]["d_model"] = 32
    (wdir / "world.json").write_text(json.dumps(cfg))
    (wdir / "dynamics.safetensors").write_bytes(b"garbage")
    with pytest.raises(UserError, match="corrupt"):
        maskworld.load_world(wdir)
    (wdir / "dynamics.safetensors").unlink()
    with pytest.raises(UserError, match="missing dynamics.safetensors"):
        maskworld.load_world(wdir)


def test_shipped_worlds_are_listed_and_played_by_name(capsys):
    """Every folder of maskworld/worlds with a world.json is a shipped world: `demo --list` names it, an unknown name
    is a clear error, and `play NAME` / Dream-v0 resolve the name to its folder."""
    import argparse

    from maskworld import worlds
    from maskworld.agents.dream_env import resolve_world
    from maskworld.cli import main
    from maskworld.commands.play_cmd import check_args

    names = list(worlds.shipped())
    assert names[0] == worlds.DEFAULT
    assert main(["demo", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in names) and "MiniGrid" in out
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("  ")}
    assert "memory M" in lines["landmarks"] and "memory M" not in lines["coinrun"]  # which worlds remember
    assert main(["demo", "--world", "no-such-world"]) == 2
    assert "no shipped world named 'no-such-world'" in capsys.readouterr().err
    args = argparse.Namespace(host="127.0.0.1", token=None, port=8000, fps=20.0, max_batch=64, threads=None,
                              max_sessions=None, max_saved_mib=None, world=names[-1])
    assert check_args(args) == worlds.resolve(names[-1])
    assert maskworld.load_world("breakout").meta.env_id == "ALE/Breakout-v5"  # every command takes a shipped name
    from maskworld.world.unified import load_unified_world
    assert load_unified_world("babyai").meta.env_id.startswith("BabyAI")
    with pytest.raises(UserError, match="no-such-world is not a world directory"):
        maskworld.load_world("no-such-world")
    assert resolve_world(worlds.DEFAULT).meta.env_id.startswith("MiniGrid")


def test_guidance_is_saved_and_set_from_the_command_line(tiny_world, tmp_path):
    """A world's sampler keeps its guidance by the action through save and load (worlds saved before it read 0), and
    --guidance sets it (a unified world's guidance by the words: tests/test_unified.py::test_cli_imagine_and_describe)."""
    from argparse import Namespace

    from maskworld.commands._args import apply_sampler_args

    args = Namespace(sampler_steps=None, temperature=None, guidance=1.5, rollout=None)
    apply_sampler_args(tiny_world, args)
    assert tiny_world.sampler.guidance == 1.5
    tiny_world.save(tmp_path / "g")
    assert maskworld.load_world(tmp_path / "g").sampler.guidance == 1.5
    raw = json.loads((tmp_path / "g" / "world.json").read_text())
    del raw["sampler"]["guidance"]
    (tmp_path / "g" / "world.json").write_text(json.dumps(raw))
    assert maskworld.load_world(tmp_path / "g").sampler.guidance == 0.0
    with pytest.raises(UserError, match="--guidance"):
        apply_sampler_args(tiny_world, Namespace(sampler_steps=None, temperature=None, guidance=-1.0, rollout=None))
