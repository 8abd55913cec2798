"""world.json structure: a wrong or absurd file is a clear UserError before any model is built."""

import copy
import dataclasses
import json
from pathlib import Path

import pytest

from maskworld.errors import UserError
from maskworld.world.schema import SECTIONS, check_world_json


@pytest.fixture
def cfg(tiny_world):
    return copy.deepcopy(tiny_world.config_dict())


def with_(cfg, section, **fields):
    cfg[section].update(fields)
    return cfg


def test_real_worlds_pass(cfg, tiny_latent_world, tiny_memory_world):
    import maskworld

    check_world_json(cfg, "tiny")
    check_world_json(tiny_latent_world.config_dict(), "latent")
    check_world_json(tiny_memory_world.config_dict(), "memory")
    shipped = Path(maskworld.__file__).parent / "worlds" / "default" / "world.json"
    check_world_json(json.loads(shipped.read_text()), "shipped")
    minimal = {k: {} for k in ("tokenizer", "dynamics", "sampler", "meta")} | {"format_version": cfg["format_version"]}
    check_world_json(minimal, "defaults")  # a missing field takes the dataclass default, as load_world does


def test_every_spec_is_a_real_field():
    from maskworld.world.schema import _dataclasses

    for section, cls in _dataclasses().items():
        assert set(SECTIONS[section]) <= {f.name for f in dataclasses.fields(cls)}, section


@pytest.mark.parametrize("mutate, message", [
    (lambda c: [], "must be a JSON object .* not a list"),
    (lambda c: "world", "not a str"),
    (lambda c: c | {"dynamics": 3}, "'dynamics' must be a JSON object of DynamicsConfig fields, not int"),
    (lambda c: c | {"lam": []}, "'lam' must be a JSON object"),
    (lambda c: c | {"format_version": 99}, "format version 99"),
    (lambda c: {k: v for k, v in c.items() if k != "format_version"}, "format version None"),
    (lambda c: {k: v for k, v in c.items() if k != "meta"}, "lacks the 'meta' section"),
    (lambda c: c | {"extra": {}}, r"unknown sections \['extra'\]"),
    (lambda c: c | {"weights": {"tokenizer": 5}}, "'weights' must be an object of file names"),
    (lambda c: with_(c, "dynamics", bogus=1), r"unknown dynamics fields \['bogus'\]"),
])
def test_structure_refused(cfg, mutate, message):
    with pytest.raises(UserError, match=message):
        check_world_json(mutate(cfg), "w/world.json")


@pytest.mark.parametrize("section, field, value, message", [
    ("dynamics", "d_model", "256", "dynamics.d_model must be an int, not str"),
    ("dynamics", "d_model", 256.0, "must be an int, not float"),
    ("dynamics", "n_layers", True, "must be an int, not bool"),
    ("dynamics", "pose_head", 1, "must be a bool"),
    ("dynamics", "rope_base", "x", "must be a float"),
    ("dynamics", "rope_base", float("nan"), "must be a float"),
    ("tokenizer", "levels", [8, "5"], "must be an int list"),
    ("tokenizer", "levels", [], "has length 0"),
    ("meta", "action_meanings", "LEFT", "must be a str list"),
    ("meta", "model_card", [], "must be an object"),
    ("sampler", "order", "random", "must be one of maskgit, autoregressive"),
])
def test_types_refused(cfg, section, field, value, message):
    with pytest.raises(UserError, match=message):
        check_world_json(with_(cfg, section, **{field: value}), "w/world.json")


@pytest.mark.parametrize("section, fields, message", [
    ("dynamics", {"d_model": 2**20}, r"dynamics.d_model = 1048576 is outside 8..16384"),
    ("dynamics", {"n_layers": 10**6}, "n_layers = 1000000 is outside"),
    ("dynamics", {"grid": 10**4}, "grid = 10000 is outside"),
    ("dynamics", {"num_actions": 0}, "num_actions = 0 is outside"),
    ("dynamics", {"window": 10**6}, "window = 1000000 is outside"),
    ("dynamics", {"vocab_size": 2**30}, "vocab_size = 1073741824 is outside"),
    ("dynamics", {"window": 4096, "grid": 64}, "context of 16781312 tokens"),
    ("dynamics", {"d_model": 16384, "n_heads": 128, "n_layers": 256}, "billion parameters"),
    ("dynamics", {"d_model": 30, "n_heads": 4}, "even width"),
    ("tokenizer", {"levels": [256] * 8}, "vocabulary of"),
    ("tokenizer", {"image_size": 1024, "channels": 4096, "num_res": 16, "downsample": 6}, "billion parameters"),
    ("tokenizer", {"image_size": 64, "patch": 3}, "does not divide"),
    ("sampler", {"steps": 0}, "steps = 0 is outside"),
    ("meta", {"size": 10**6}, "meta.size = 1000000 is outside"),
])
def test_absurd_sizes_refused(cfg, section, fields, message):
    with pytest.raises(UserError, match=message):
        check_world_json(with_(cfg, section, **fields), "w/world.json")


@pytest.mark.parametrize("content, message", [
    ("[]", "must be a JSON object"),
    (None, "'dynamics' must be a JSON object"),
    ("huge", "d_model = 1048576 is outside"),
])
def test_load_world_checks_world_json(tiny_world, tmp_path, content, message):
    """Through the public loader: refused before any model is built (a d_model of 2**20 would allocate gigabytes)."""
    import maskworld

    f = tmp_path / "world" / "world.json"
    cfg = json.loads(f.read_text())
    text = {"[]": "[]", None: json.dumps(cfg | {"dynamics": 3}),
            "huge": json.dumps(with_(cfg, "dynamics", d_model=2**20))}[content]
    f.write_text(text)
    with pytest.raises(UserError, match=message):
        maskworld.load_world(tmp_path / "world")
