"""The structure of world.json, checked before anything is built from it.

`load_world` builds models from these numbers, so a corrupt or hostile file must be refused while it
is still numbers: `[]` or `"dynamics": 3` would otherwise fail deep inside with a traceback, and a
`d_model` of 2**20 would allocate gigabytes before any shape check. Every section and field is
checked for its JSON type (an int is not a float is not a bool), sizes are held to ranges far beyond
any world this package trains, and the model's parameter count is estimated from the numbers alone
and refused above MAX_PARAMS.

Fields are the config dataclasses' (TokenizerConfig, DynamicsConfig, SamplerConfig, LamConfig,
WorldMeta); a field missing from the file takes the dataclass default, as `load_world` does.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from maskworld.errors import UserError
from maskworld.models.dynamics import DynamicsConfig
from maskworld.models.lam import LamConfig
from maskworld.models.locator import LocatorConfig
from maskworld.models.sampler import SamplerConfig
from maskworld.models.tokenizer import TokenizerConfig
from maskworld.version import WORLD_FORMAT_VERSION
from maskworld.world.compose import RENDER_MODES
from maskworld.world.factorised import ROLLOUT_MODES
from maskworld.world.meta import WorldMeta

MAX_PARAMS = 2e9
MAX_VOCAB = 2**18
MAX_SEQUENCE = 2**17  # tokens in the dynamics' context: window * (grid^2 + 1)


@dataclass(frozen=True)
class Spec:
    """A field's JSON type ("int", "float", "bool", "str", "object", "int list", "float list", "str list") and
    bounds."""

    kind: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple | None = None
    max_len: int | None = None  # strings, lists
    nullable: bool = False  # JSON null allowed (an optional setting)


def Int(lo, hi):
    return Spec("int", lo, hi)


def Float(lo, hi):
    return Spec("float", lo, hi)


BOOL, OBJECT = Spec("bool"), Spec("object")
LEVELS = Spec("int list", 2, 256, max_len=16)  # FSQ levels; their product is the vocabulary

SECTIONS: dict[str, dict[str, Spec]] = {
    "tokenizer": {"image_size": Int(8, 1024), "patch": Int(1, 64), "channels": Int(8, 4096), "num_res": Int(0, 16),
                  "downsample": Int(0, 6), "levels": LEVELS, "encoder": Spec("str", choices=("conv", "local"))},
    "dynamics": {"vocab_size": Int(2, MAX_VOCAB), "num_actions": Int(1, 4096), "grid": Int(1, 64), "d_model": Int(8, 16384),
                 "n_layers": Int(1, 256), "n_heads": Int(1, 256), "window": Int(1, 4096), "mlp_ratio": Int(1, 16),
                 "reward_classes": Int(1, 16), "rope_base": Float(1e-6, 1e12), "spatial_rope": BOOL, "local_radius": Int(0, 64),
                 "memory_frames": Int(0, 1024),
                 "compressed_frames": Int(0, 1024),
                 "memory_keys": Spec("str", choices=("pose", "appearance")), "pose_head": BOOL, "copy_head": BOOL, "prev_frame_prior": BOOL,
                 "reward_logit_shift": Spec("float list", -100, 100, max_len=16, nullable=True),
                 "reward_values": Spec("float list", -1e9, 1e9, max_len=16, nullable=True),
                 "term_logit_shift": Float(-100, 100),
                 "action_factors": Spec("int list", 1, 4096, max_len=16, nullable=True), "partial_actions": BOOL},
    "sampler": {"steps": Int(1, 4096), "temperature": Float(0, 100), "choice_temperature": Float(0, 100),
                "order": Spec("str", choices=("maskgit", "autoregressive")), "guidance": Float(0, 100),
                "free_temperature": Spec("float", 0, 100, nullable=True)},
    "lam": {"num_codes": Int(1, 4096), "grid": Int(1, 64), "levels": LEVELS, "channels": Int(8, 4096),
            "context_frame": BOOL, "prev_dropout": Float(0, 1), "batch_entropy_weight": Float(0, 1e6),
            "sample_entropy_weight": Float(0, 1e6)},
    "meta": {"env_id": Spec("str", max_len=256), "size": Int(8, 1024), "has_actions": BOOL, "model_card": OBJECT,
             "action_meanings": Spec("str list", max_len=4096), "latent_actions": OBJECT,
             "render": Spec("str", choices=RENDER_MODES), "motion": OBJECT, "agents": Int(1, 16),
             "agent_action_meanings": Spec("str list", max_len=4096), "rollout": Spec("str", choices=ROLLOUT_MODES)},
    "locator": {"vocab_size": Int(2, MAX_VOCAB), "grid": Int(1, 64), "agents": Int(1, 16), "channels": Int(4, 1024),
                "radius": Int(0, 64), "min_confidence": Float(0, 1)},
}
REQUIRED = ("tokenizer", "dynamics", "sampler", "meta")
TOP_LEVEL = {"format_version", "weights", *SECTIONS}


def _dataclasses() -> dict[str, type]:

    return {"tokenizer": TokenizerConfig, "dynamics": DynamicsConfig, "sampler": SamplerConfig, "lam": LamConfig,
            "meta": WorldMeta, "locator": LocatorConfig}


def _type_ok(kind: str, v) -> bool:
    if kind == "any":
        return True
    if kind == "int":
        return isinstance(v, int) and not isinstance(v, bool)  # JSON true is not the number 1
    if kind == "float":
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if kind in ("int list", "str list"):
        item = int if kind == "int list" else str
        return isinstance(v, list) and all(isinstance(x, item) and not isinstance(x, bool) for x in v)
    if kind == "float list":
        return isinstance(v, list) and all(_type_ok("float", x) for x in v)
    return isinstance(v, {"bool": bool, "str": str, "object": dict}[kind])


def _check_value(where: str, name: str, v, spec: Spec) -> None:
    if v is None and spec.nullable:
        return
    if not _type_ok(spec.kind, v):
        raise UserError(f"{where}: {name} must be {'an' if spec.kind[0] in 'aeiou' else 'a'} {spec.kind}, "
                        f"not {type(v).__name__} {str(v)[:40]}")
    values = v if spec.kind in ("int list", "float list") else [v] if spec.kind in ("int", "float") else []
    for x in values if spec.lo is not None else []:
        if not spec.lo <= x <= spec.hi:
            raise UserError(f"{where}: {name} = {x} is outside {spec.lo:g}..{spec.hi:g}; the file is corrupt or not a maskworld world")
    if spec.choices is not None and v not in spec.choices:
        raise UserError(f"{where}: {name} = {v!r} must be one of {', '.join(spec.choices)}")
    if spec.max_len is not None and not (1 if spec.kind.endswith("list") and spec.kind != "str list" else 0) <= len(v) <= spec.max_len:
        raise UserError(f"{where}: {name} has length {len(v)}, outside {1 if spec.kind == 'int list' else 0}..{spec.max_len}")
    if spec.kind == "str list" and any(len(x) > 256 for x in v):
        raise UserError(f"{where}: {name} has an entry over 256 characters")


def _check_section(where: str, section: str, d, cls: type) -> dict:
    """-> the section with the dataclass defaults filled in, every value checked."""
    if not isinstance(d, dict):
        raise UserError(f"{where}: '{section}' must be a JSON object of {cls.__name__} fields, not {type(d).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise UserError(f"{where}: unknown {section} fields {unknown[:5]}; was this world written by a newer maskworld?")
    specs = SECTIONS[section]
    full = {}
    for name, f in known.items():
        v = d[name] if name in d else f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        spec = specs.get(name) or Spec({bool: "bool", int: "int", float: "float", str: "str", dict: "object"}.get(type(v), "any"))
        if name in d:  # defaults are trusted; a field without a spec gets its default's type
            _check_value(where, f"{section}.{name}", v, spec)
        full[name] = v
    return full


# ---------------------------------------------------------------------------- sizes
def _tokenizer_params(t: dict) -> float:
    """Conv weights of encoder + decoder: 3x3 convs in the residual blocks, 4x4 strided (de)convs, the patch convs."""
    c, stages = t["channels"], 1 + t["downsample"]
    patch_in = 3 * t["patch"] ** 2
    per_side = t["num_res"] * stages * 2 * 9 * c * c + t["downsample"] * 16 * c * c + 9 * (patch_in + len(t["levels"])) * c
    return 2.0 * per_side


def _dynamics_params(d: dict) -> float:
    """Embeddings and heads (vocabulary, actions, positions) + per layer attention (4 d^2) and MLP (2 r d^2),
    + per layer a memory cross-read (4 d^2 and an action table) in worlds with memory."""
    dm, layers = d["d_model"], d["n_layers"]
    tables = (2 * d["vocab_size"] + d["num_actions"] + d["grid"] ** 2 + 8) * dm
    per_layer = (4 + 2 * d["mlp_ratio"]) * dm * dm
    if d["memory_frames"] > 0 or d["compressed_frames"] > 0:
        per_layer += 4 * dm * dm + (d["num_actions"] + 1) * dm
    return float(tables + layers * per_layer)


def _lam_params(lam: dict) -> float:
    c = lam["channels"]
    return 9.0 * c * c * 8 + c * lam["num_codes"] * 2


def _check_sizes(where: str, s: dict) -> None:
    t, d = s["tokenizer"], s["dynamics"]
    vocab = math.prod(t["levels"])
    if vocab > MAX_VOCAB:
        raise UserError(f"{where}: tokenizer.levels {t['levels']} make a vocabulary of {vocab}, over {MAX_VOCAB}")
    if t["image_size"] % t["patch"] or t["image_size"] // t["patch"] // 2 ** t["downsample"] < 1:
        raise UserError(f"{where}: tokenizer.image_size {t['image_size']} does not divide into patch {t['patch']} "
                        f"and {t['downsample']} stride-2 stages")
    if d["d_model"] % d["n_heads"] or (d["d_model"] // d["n_heads"]) % 2:
        raise UserError(f"{where}: dynamics.d_model {d['d_model']} must split into {d['n_heads']} heads of an even "
                        "width (rotary position pairs)")
    tokens = d["window"] * (d["grid"] ** 2 + 1)
    if tokens > MAX_SEQUENCE:
        raise UserError(f"{where}: dynamics.window {d['window']} x {d['grid']}^2 tokens is a context of {tokens} tokens, "
                        f"over {MAX_SEQUENCE}")
    params = _tokenizer_params(t) + _dynamics_params(d) + (_lam_params(s["lam"]) if "lam" in s else 0)
    if params > MAX_PARAMS:
        raise UserError(f"{where}: these sizes make a model of ~{params / 1e9:.1f} billion parameters, over the "
                        f"{MAX_PARAMS / 1e9:.0f} billion this loader accepts; the file is corrupt or not a maskworld world")


def check_world_json(cfg: object, where: str) -> None:
    """Refuse a parsed world.json that is not a well-formed, sanely sized world (UserError naming the problem).

    where: the file, for messages. Checks structure and sizes only; whether the weights match is load_world's job."""
    if not isinstance(cfg, dict):
        raise UserError(f"{where}: must be a JSON object with tokenizer, dynamics, sampler and meta sections, "
                        f"not a {type(cfg).__name__}")
    version = cfg.get("format_version")
    if version != WORLD_FORMAT_VERSION:
        raise UserError(f"{where}: world format version {str(version)[:20]}, this maskworld reads version "
                        f"{WORLD_FORMAT_VERSION}; retrain the world or use the maskworld release that wrote it")
    unknown = sorted(set(cfg) - TOP_LEVEL)
    if unknown:
        raise UserError(f"{where}: unknown sections {unknown[:5]}; was this world written by a newer maskworld?")
    missing = [k for k in REQUIRED if k not in cfg]
    if missing:
        raise UserError(f"{where} lacks the {', '.join(repr(k) for k in missing)} section; the file is incomplete")
    weights = cfg.get("weights", {})
    if not (isinstance(weights, dict) and all(isinstance(v, str) for v in weights.values())):
        raise UserError(f"{where}: 'weights' must be an object of file names")
    classes = _dataclasses()
    sections = {k: _check_section(where, k, cfg[k], classes[k]) for k in SECTIONS if k in cfg}
    _check_sizes(where, sections)
