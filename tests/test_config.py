"""Training configs: resolve() is pure and overrides win, every rule fires once with its message, and the CLI
generated from the dataclasses shows real defaults and field docs and round-trips to the same config."""

import argparse
import dataclasses
import math
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Literal

import pytest

from maskworld.agents.config import AgentConfig, AgentTrainConfig
from maskworld.commands._config_cli import add_config_arguments, config_overrides, field_docs, leaf_fields
from maskworld.errors import UserError
from maskworld.train.config import DynamicsTrainConfig, TrainConfig, resolve, tokenizer_downsample
from maskworld.train.presets import PRESETS, get_preset

BASE = {"data": "data/toy", "out": "worlds/toy", "steps": 3}
POSES = {"info_keys": ["agent_pos", "agent_dir"], "num_actions": 4, "size": 64}
INIT = {"window": 3, "d_model": 64, "n_layers": 1, "n_heads": 4, "memory_frames": 0, "compressed_frames": 0,
        "copy_head": False, "num_actions": 4}


def _parser(cls) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="t")
    add_config_arguments(p, cls)
    return p


def _train_parser(stage: str = "world") -> argparse.ArgumentParser:
    from maskworld.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    tsub = next(a for a in sub.choices["train"]._actions if isinstance(a, argparse._SubParsersAction))
    return tsub.choices[stage]


# ------------------------------------------------------------------ resolve
def test_resolve_is_pure_and_fills_the_preset():
    p = get_preset("tiny")
    before, table = dataclasses.replace(p), dict(PRESETS)
    overrides = dict(BASE, window=6)
    a = resolve(p, overrides)
    b = resolve(p, BASE)
    assert p == before and PRESETS == table and overrides == dict(BASE, window=6)
    assert (a.dynamics.window, b.dynamics.window) == (6, p.window)  # the first call left nothing behind
    assert (b.dynamics.d_model, b.dynamics.layers, b.dynamics.batch, b.tokenizer.tok_batch) == (96, 2, 8, 16)
    assert b.run.preset == "tiny" and b.memory.compressed == 0
    assert resolve("tiny", BASE) == b  # a preset by name is the same


def test_overrides_win():
    c = resolve("small", dict(BASE, d_model=128, layers=3, batch=4, tok_batch=7, memory=4, seed=5, progress=False,
                               window=None))
    assert (c.dynamics.d_model, c.dynamics.layers, c.dynamics.batch, c.tokenizer.tok_batch) == (128, 3, 4, 7)
    assert c.dynamics.window == PRESETS["small"].window  # None: not given
    assert (c.memory.memory, c.memory.compressed) == (4, 2)  # compressed: 2 with memory unless given
    assert c.run.seed == 5 and c.run.progress is False
    assert resolve("tiny", dict(BASE, memory=4, compressed=0)).memory.compressed == 0
    with pytest.raises(TypeError, match="no_such"):
        resolve("tiny", dict(BASE, no_such=1))


def test_muon_is_the_default_but_not_under_fsdp():
    assert resolve("tiny", dict(BASE)).dynamics.optimizer == "muon"
    assert resolve("tiny", dict(BASE, optimizer="adamw")).dynamics.optimizer == "adamw"
    assert resolve("tiny", dict(BASE, fsdp=True, optimizer=None)).dynamics.optimizer == "adamw"  # shards whole matrices
    with pytest.raises(UserError, match="--fsdp"):
        resolve("tiny", dict(BASE, fsdp=True, optimizer="muon"))


def test_init_world_fixes_its_architecture():
    ov = dict(BASE, init="W", stages=("dynamics",))
    c = resolve("tiny", ov, init_world=INIT)
    assert (c.dynamics.window, c.dynamics.d_model, c.dynamics.layers, c.memory.memory) == (3, 64, 1, 0)
    assert resolve("tiny", dict(ov, window=3), INIT).dynamics.window == 3  # agreeing is fine
    with pytest.raises(UserError, match="--init W has window 3, not 5: drop --window"):
        resolve("tiny", dict(ov, window=5), INIT)
    with pytest.raises(UserError, match="has d-model 64, not 96"):
        resolve("tiny", dict(ov, d_model=96), INIT)
    with pytest.raises(UserError, match="W has no retrieval memory"):
        resolve("tiny", dict(ov, copy_head=True), INIT)
    mem = dict(INIT, memory_frames=4, compressed_frames=2)
    c = resolve("tiny", dict(ov, copy_head=True), mem)  # a copy head may be added to a memory world
    assert (c.memory.memory, c.memory.compressed, c.memory.copy_head) == (4, 2, True)
    assert resolve("tiny", ov, dict(mem, copy_head=True)).memory.copy_head  # and an init world keeps its own
    with pytest.raises(UserError, match="use `maskworld train dynamics`"):
        resolve("tiny", dict(BASE, init="W"), INIT)  # stages: tokenizer too


# ------------------------------------------------------------------ one rule, one message
@pytest.mark.parametrize("overrides, message", [
    ({"steps": None}, "give a budget: --minutes M or --steps N"),
    ({"minutes": 5.0}, "give --minutes or --steps, not both"),
    ({"steps": None, "minutes": 1.0, "tok_minutes": 2.0}, "--tok-minutes leaves no time for the dynamics"),
    ({"window": 1}, "--window 1: the dynamics need at least 2 frames"),
    ({"d_model": 100}, "--d-model 100: give a multiple of 8"),
    ({"layers": 0}, "--layers 0: give at least 1"),
    ({"event_share": 1.5}, "--event-share 1.5"),
    ({"event_share": math.nan}, "--event-share nan"),
    ({"context_drop": 2.0}, "--context-drop 2.0"),
    ({"self_context": -0.1}, "--self-context -0.1"),
    ({"latent_actions": 1}, "--latent-actions 1: use >= 2 codes"),
    ({"latent_actions": -3}, "--latent-actions -3"),
    ({"lam_share": 1.5}, "--lam-share 1.5 must be between 0 and 1"),
    ({"memory": -1}, "--memory -1: give 0 .off. to 16"),
    ({"memory": 17}, "--memory 17"),
    ({"compressed": 99}, "--compressed 99"),
    ({"copy_head": True}, "--copy-head points at retrieved frames: give --memory M"),
])
def test_each_rule_fires_with_its_message(overrides, message):
    with pytest.raises(UserError, match=message):
        resolve("tiny", {**BASE, **overrides})


def test_rules_that_need_the_data():
    mem = resolve("tiny", dict(BASE, memory=2, memory_keys="pose"))
    with pytest.raises(UserError, match="--memory-keys pose needs poses in the data: data/toy records no agent_pos"):
        mem.check_data({"num_actions": 4})
    auto = resolve("tiny", dict(BASE, memory=2))
    auto.check_data({})  # no poses: memory by appearance
    assert auto.memory_keys({}) == "appearance" and auto.memory_keys(POSES) == "pose"
    resolve("tiny", dict(BASE, compressed=1)).check_data({})
    mem.check_data(POSES)
    resolve("tiny", dict(BASE, memory=2, stages=("tokenizer",))).check_data({})  # no dynamics, no memory read
    init = resolve("tiny", dict(BASE, init="W", stages=("dynamics",)), INIT)
    init.check_data(POSES)
    with pytest.raises(UserError, match="--init W has 4 actions but data/toy has 7"):
        init.check_data(dict(POSES, num_actions=7))
    with pytest.raises(UserError, match="--init fine-tunes a world with real actions"):
        init.check_data(dict(POSES, has_actions=False))
    with pytest.raises(UserError, match="--grid 12 does not divide 64px frames"):
        resolve("tiny", dict(BASE, grid=12)).check_data(POSES)
    assert tokenizer_downsample(8, 64) == 1 and tokenizer_downsample(16, 64) == 0 and tokenizer_downsample(None, 64) is None


def test_actions_rule():
    c = resolve("tiny", BASE)
    video = {"has_actions": False, "num_actions": 4}
    assert c.has_actions({"num_actions": 4}) and c.num_actions({"num_actions": 4}) == 4
    assert not c.has_actions(video) and c.uses_lam(video) and c.num_actions(video) == 1
    ignore = resolve("tiny", dict(BASE, ignore_actions=True))
    assert not ignore.has_actions({"num_actions": 4}) and ignore.uses_lam({"num_actions": 4})
    assert not resolve("tiny", dict(BASE, latent_actions=0)).uses_lam(video)  # a video model without actions


def test_budgets():
    def b(**kw):
        return resolve("tiny", {"data": "d", "out": "o", **kw}).budgets()

    assert b(minutes=10.0) == ((None, 3.0), (None, 7.0))
    assert b(minutes=10.0, tok_minutes=4.0) == ((None, 4.0), (None, 6.0))
    assert b(minutes=10.0, tok_steps=5) == ((5, None), (None, 10.0))
    assert b(steps=5) == ((5, None), (5, None))
    assert b(minutes=10.0, stages=("dynamics",)) == ((None, None), (None, 10.0))
    assert b(minutes=6.0, stages=("tokenizer",))[0] == (None, 6.0)  # `train tokenizer --minutes 6`: all six


# ------------------------------------------------------------------ the generated CLI
def test_every_field_has_a_doc():
    for cls in (TrainConfig, AgentConfig):
        missing = [f.name for _, f, _ in leaf_fields(cls) if not _doc_of(cls, f.name)]
        assert not missing, f"{cls.__name__}: fields without a docstring (their --help): {missing}"


def _doc_of(cls, name):
    import typing

    for tp in typing.get_type_hints(cls).values():
        if dataclasses.is_dataclass(tp) and name in field_docs(tp):
            return field_docs(tp)[name]
    return None


def test_help_shows_real_defaults_and_field_docs(monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps at the terminal's width: one line per option
    text = " ".join(_train_parser("world").format_help().split())
    assert "(default: the preset's: tiny 96, compact 96, small 256, base 384)" in text  # --d-model
    assert "--lam-share LAM_SHARE Share of the dynamics' --minutes spent on the LAM. (default: 0.25)" in text
    assert "--preset {auto,tiny,compact,small,base}" in text and "(default: auto)" in text
    assert "--progress, --no-progress" in text and "--memory M" in text and "--init WORLD" in text
    assert " ".join(field_docs(DynamicsTrainConfig)["context_drop"].split()) in text
    assert "examples:" in text and "maskworld train world --data data/minigrid" in text  # the epilog is kept
    agent = " ".join(_train_parser("agent").format_help().split())
    assert "--horizon HORIZON Imagined steps per rollout (Dreamer: 15). (default: 15)" in agent
    assert f"(default: {AgentTrainConfig().world_lr})" in agent and "(default: WORLD/agent)" in agent


OLD_TRAIN_FLAGS = [  # every flag `maskworld train world` had before it was generated, with a value
    "--preset tiny", "--minutes 1", "--tok-minutes 0.2", "--tok-steps 2", "--grid 8", "--window 4", "--d-model 64",
    "--layers 2", "--batch 4", "--tok-batch 4", "--ckpt-minutes 1", "--resume", "--seed 1", "--device cpu",
    "--val-fraction 0.2", "--ignore-actions", "--latent-actions 4", "--lam-share 0.3", "--lam-steps 2",
    "--label-transitions 10", "--memory 2", "--compressed 1", "--event-share 0.5", "--context-drop 0.1",
    "--copy-head", "--init W", "--fsdp", "--data-split rank", "--compile", "--no-progress"]
OLD_AGENT_FLAGS = [
    "--env E", "--real-steps 5", "--out O", "--view full", "--data D", "--horizon 2", "--batch 3", "--collect-every 4",
    "--updates-per-collect 1", "--entropy 0.01", "--gamma 0.9", "--lr 0.001", "--sampler-steps 1", "--channels 8",
    "--data-starts 0.2", "--world-updates 0", "--world-batch 2", "--world-lr 0.01", "--world-real-share 0.3",
    "--resume", "--ckpt-minutes 1", "--seed 2", "--device cpu", "--no-progress"]


def test_old_flags_parse_and_round_trip():
    argv = ["--data", "d", "--out", "o"] + " ".join(OLD_TRAIN_FLAGS).split()
    ov = config_overrides(_train_parser("world").parse_args(argv), TrainConfig)
    assert ov["minutes"] == 1.0 and ov["grid"] == 8 and ov["data_split"] == "rank" and ov["progress"] is False
    assert ov["copy_head"] is True and ov["resume"] is True and ov["init"] == "W"
    agent = _train_parser("agent").parse_args(["--world", "W"] + " ".join(OLD_AGENT_FLAGS).split())
    cfg = AgentConfig.from_overrides(config_overrides(agent, AgentConfig))
    assert (cfg.run.world, cfg.run.real_steps, cfg.run.view, cfg.run.progress) == ("W", 5, "full", False)
    assert (cfg.train.horizon, cfg.train.world_lr, cfg.train.sampler_steps, cfg.train.lam) == (2, 0.01, 1, 0.95)


def test_namespace_to_overrides_to_config():
    argv = ["--data", "d", "--out", "o", "--steps", "3", "--preset", "tiny", "--window", "6", "--no-progress"]
    ov = config_overrides(_train_parser("dynamics").parse_args(argv), TrainConfig)
    assert ov == {"data": "d", "out": "o", "steps": 3, "preset": "tiny", "window": 6, "progress": False}  # only what was typed
    assert resolve("tiny", ov) == resolve("tiny", {"data": "d", "out": "o", "steps": 3, "window": 6, "progress": False})
    agent = _train_parser("agent").parse_args(["--world", "W", "--horizon", "3"])
    assert AgentConfig.from_overrides(config_overrides(agent, AgentConfig)) == AgentConfig(
        run=AgentConfig.from_overrides({"world": "W"}).run, train=AgentTrainConfig(horizon=3))


def test_generator_types_choices_and_required():
    @dataclass
    class Section:
        """A section."""

        mode: Literal["a", "b"] = "a"
        """The mode."""
        rate: float | None = field(default=None, metadata={"default_text": "half", "metavar": "R"})
        """A rate of 100%."""
        hidden: list = field(default_factory=list, metadata={"cli": False})

    @dataclass
    class Cfg:
        name: str
        """Required."""
        flag: bool = True
        """A switch."""
        sec: Section = field(default_factory=Section)

    p = _parser(Cfg)
    assert config_overrides(p.parse_args(["--name", "x", "--rate", "0.5", "--no-flag", "--mode", "b"]), Cfg) == {
        "name": "x", "rate": 0.5, "flag": False, "mode": "b"}
    text = " ".join(p.format_help().split())
    assert "--rate R A rate of 100%. (default: half)" in text and "sec: A section." in text and "--hidden" not in text
    for bad in ([], ["--name", "x", "--mode", "c"], ["--name", "x", "--rate", "fast"]):
        with pytest.raises(SystemExit):
            p.parse_args(bad)


def test_configs_and_their_parsers_need_no_torch():
    code = ("import sys, argparse; from maskworld.commands._config_cli import add_config_arguments; "
            "from maskworld.train.config import TrainConfig; from maskworld.agents.config import AgentConfig; "
            "[add_config_arguments(argparse.ArgumentParser(), c) for c in (TrainConfig, AgentConfig)]; "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_loop_and_the_library_share_one_agent_config():
    """actor_critic still defines AgentTrainConfig (the API tests and notebooks import); until it re-exports this
    one, it must not drift from the one the CLI is generated from."""
    from maskworld.agents import actor_critic, dyna

    ours = [(f.name, f.default) for f in dataclasses.fields(AgentTrainConfig)]
    for cls in (actor_critic.AgentTrainConfig, dyna.AgentTrainConfig):
        assert [(f.name, f.default) for f in dataclasses.fields(cls)] == ours
