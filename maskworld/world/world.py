"""A world directory: `world.json` (configs, action meanings, model card) + one safetensors file per model.

Loading never unpickles: weights are safetensors, everything else JSON. A world is checked before
use: format version, files present, weight names and shapes matching the configs. `load_world` reads
a local directory or any fsspec URL (`file://`, `memory://`, `s3://` with s3fs ...; see
maskworld.world.files); saving writes local directories only (atomic renames).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from maskworld.device import pick_device
from maskworld.errors import UserError
from maskworld.io import atomic_save_safetensors, atomic_write_text
from maskworld import worlds
from maskworld.version import WORLD_FORMAT_VERSION
from maskworld.models.dynamics import Dynamics, DynamicsConfig
from maskworld.models.lam import LamConfig, LatentActionModel
from maskworld.models.locator import AvatarLocator, LocatorConfig
from maskworld.models.sampler import SamplerConfig
from maskworld.models.tokenizer import Tokenizer, TokenizerConfig
from maskworld.world.compose import check_render_mode
from maskworld.world.engine import Engine, StepOutput
from maskworld.world.factorised import FREE_TEMPERATURE, check_rollout_mode
from maskworld.world.files import WorldDir, WorldFile
from maskworld.world.meta import WorldMeta
from maskworld.world.frames import as_uint8_frame  # noqa: F401  (re-exported: the image -> frame helper)
from maskworld.world.schema import check_world_json
from maskworld.world.session import Session

WEIGHT_FILES = {"tokenizer": "tokenizer.safetensors", "dynamics": "dynamics.safetensors"}
LAM_FILE = "lam.safetensors"  # only in worlds trained on action-free video
LOCATOR_FILE = "locator.safetensors"  # only in worlds of several agents (models/locator.py)


def _dc_from_dict(cls, d: dict):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise UserError(f"world.json: unknown {cls.__name__} fields {sorted(unknown)}; was this world written by a newer maskworld?")
    return cls(**d)


class World:
    """Tokenizer + dynamics + sampler settings + metadata; makes sessions."""

    def __init__(self, tokenizer: Tokenizer, dynamics: Dynamics, sampler: SamplerConfig, meta: WorldMeta, path=None,
                 lam: LatentActionModel | None = None, locator: AvatarLocator | None = None):
        self.tokenizer, self.dynamics, self.sampler, self.meta = tokenizer.eval(), dynamics.eval(), sampler, meta
        self.lam = lam.eval() if lam is not None else None
        """Latent-action model (F for video): infers the latent action between two real frames."""
        self.locator = locator.eval() if locator is not None else None
        """Worlds of several agents: where each avatar is in a frame's tokens (models/locator.py)."""
        self.rollout = check_rollout_mode(meta.rollout)
        """"joint" or "factorised" (world/factorised.py; needs the locator); the world.json's choice, changeable
        per run (eval and play take --rollout)."""
        self.path = Path(path) if path else None
        self.render = check_render_mode(meta.render)
        """How imagined frames are shown: "tokens" or "composite" (world/compose.py); the world.json's choice,
        changeable per run (eval and play take --render)."""
        self._engine: Engine | None = None

    @property
    def device(self) -> torch.device:
        return next(self.dynamics.parameters()).device

    @property
    def num_actions(self) -> int:
        return self.dynamics.cfg.num_actions

    @property
    def action_meanings(self) -> list[str]:
        return self.meta.action_meanings or [f"ACTION_{i}" for i in range(self.num_actions)]

    @property
    def engine(self) -> Engine:
        """The stepping engine that sessions of this world share unless given their own (engine.py)."""
        if self._engine is None:
            self._engine = Engine(self)
        return self._engine

    def session(self, prompt=None, seed: int = 0, actions=None, memory: bool | None = None,
                engine: Engine | None = None) -> Session:
        """A new session. prompt: None (generate the first frame), an image (H,W,3 uint8 / PIL / path)
        or frames (T,H,W,3) with optional `actions` (T,) leading into each frame. memory: read memory M
        (default: on for worlds trained with it; False = the window only, for comparison)."""
        return Session.start(self, prompt=prompt, seed=seed, actions=actions, memory=memory, engine=engine)

    @property
    def has_memory(self) -> bool:
        return self.dynamics.cfg.has_memory

    def step_many(self, sessions, actions, poses=None) -> StepOutput:
        """Step many sessions (of one engine) in one batched forward pass; iterating the result gives
        (frame, reward, done) per session."""
        if not sessions:
            return self.engine.step([], [])
        return sessions[0].engine.step(sessions, actions, poses)

    # ------------------------------------------------------------------ saving
    def config_dict(self) -> dict:
        return {
            "format_version": WORLD_FORMAT_VERSION,
            "tokenizer": dataclasses.asdict(self.tokenizer.cfg),
            "dynamics": dataclasses.asdict(self.dynamics.cfg),
            "sampler": dataclasses.asdict(self.sampler),
            "meta": dataclasses.asdict(self.meta),
            "weights": {**WEIGHT_FILES, **({"locator": LOCATOR_FILE} if self.locator is not None else {})},
            **({"lam": dataclasses.asdict(self.lam.cfg)} if self.lam is not None else {}),
            **({"locator": dataclasses.asdict(self.locator.cfg)} if self.locator is not None else {}),
        }

    def save(self, path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        atomic_save_safetensors(self.tokenizer.state_dict(), path / WEIGHT_FILES["tokenizer"])
        atomic_save_safetensors(self.dynamics.state_dict(), path / WEIGHT_FILES["dynamics"])
        if self.lam is not None:
            atomic_save_safetensors(self.lam.state_dict(), path / LAM_FILE)
        if self.locator is not None:
            atomic_save_safetensors(self.locator.state_dict(), path / LOCATOR_FILE)
        atomic_write_text(path / "world.json", json.dumps(self.config_dict(), indent=2))
        self.path = path
        return path

    def attach_locator(self, locator: AvatarLocator, rollout: str, **card) -> None:
        """Give the world its avatar locator (writing only its weights and world.json when the world is on disk)
        and the rollout it plays with (factorised: with the second stage for the free cells, unless the sampler
        already says how); card entries go into the model card."""
        self.locator, self.rollout = locator.eval(), check_rollout_mode(rollout)
        self.meta.rollout = rollout
        if rollout == "factorised" and self.sampler.free_temperature is None:
            self.sampler.free_temperature = FREE_TEMPERATURE
        if self.path is not None:
            atomic_save_safetensors(locator.state_dict(), self.path / LOCATOR_FILE)
        self.update_model_card(**card)

    def update_model_card(self, **entries) -> None:
        """Merge entries into meta.model_card and rewrite world.json (weights untouched)."""
        self.meta.model_card.update(entries)
        if self.path is not None:
            atomic_write_text(self.path / "world.json", json.dumps(self.config_dict(), indent=2))


def _load_weights(module: torch.nn.Module, file: WorldFile, what: str) -> None:
    if not file.exists():
        raise UserError(f"world is missing {file.name} ({what} weights); retrain or copy the whole world directory")
    try:
        state = file.load_safetensors()
    except UserError:
        raise
    except Exception as e:  # safetensors raises its own types on truncated/corrupt files
        raise UserError(f"{file}: cannot read {what} weights ({e}); the file is corrupt or truncated") from e
    own = module.state_dict()
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    bad = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or extra or bad:
        raise UserError(
            f"{file.name} does not match world.json's {what} config "
            f"(missing {missing[:3]}, unexpected {extra[:3]}, wrong shape {bad[:3]}); the files come from different worlds"
        )
    module.load_state_dict(state)


def load_world(path, device=None) -> World:
    """A world from a local directory, a shipped world's name (`maskworld demo --list`) or an fsspec URL (e.g.
    `memory://w`, `s3://bucket/w` with s3fs)."""
    if isinstance(path, str) and "://" not in path:
        path = str(worlds.locate(path))
    path = WorldDir.open(path)
    cfg_file = path / "world.json"
    if not path.is_dir():
        raise UserError(f"{path} is not a world directory (expected a folder with world.json)")
    if not cfg_file.exists():
        raise UserError(f"{path} has no world.json; is this a world directory? (train one with `maskworld train world`)")
    try:
        cfg = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{cfg_file} is not valid JSON ({e})") from e
    if isinstance(cfg, dict) and cfg.get("kind") == "unified":
        raise UserError(f"{path} is a unified world (words, frames, actions in one model): load it with "
                        "maskworld.world.unified.load_unified_world; `maskworld unified` runs its tasks")
    check_world_json(cfg, str(cfg_file))  # structure and sizes, before anything is allocated
    version = cfg.get("format_version")
    if version != WORLD_FORMAT_VERSION:
        raise UserError(
            f"{path}: world format version {version}, this maskworld reads version {WORLD_FORMAT_VERSION}; "
            "retrain the world or use the maskworld release that wrote it"
        )
    for key in ("tokenizer", "dynamics", "sampler", "meta"):
        if key not in cfg:
            raise UserError(f"{cfg_file} lacks the '{key}' section; the file is incomplete")
    tok_cfg = _dc_from_dict(TokenizerConfig, cfg["tokenizer"])
    dyn_cfg = _dc_from_dict(DynamicsConfig, cfg["dynamics"])
    if dyn_cfg.vocab_size != tok_cfg.vocab_size or dyn_cfg.grid != tok_cfg.grid:
        raise UserError(f"{cfg_file}: dynamics vocab/grid ({dyn_cfg.vocab_size}, {dyn_cfg.grid}) do not match the tokenizer "
                        f"({tok_cfg.vocab_size}, {tok_cfg.grid})")
    dev = pick_device(device)
    try:
        tok, dyn = Tokenizer(tok_cfg), Dynamics(dyn_cfg)
    except ValueError as e:  # settings that disagree with each other (reward values and classes, action factors)
        raise UserError(f"{cfg_file}: {e}; the file was edited or is damaged") from e
    _load_weights(tok, path / WEIGHT_FILES["tokenizer"], "tokenizer")
    _load_weights(dyn, path / WEIGHT_FILES["dynamics"], "dynamics")
    lam = None
    if "lam" in cfg:
        lam = LatentActionModel(_dc_from_dict(LamConfig, cfg["lam"]))
        if lam.cfg.num_codes != dyn_cfg.num_actions:
            raise UserError(f"{cfg_file}: the latent-action model has {lam.cfg.num_codes} codes but the dynamics "
                            f"{dyn_cfg.num_actions} actions")
        _load_weights(lam, path / LAM_FILE, "latent-action model")
        lam = lam.to(dev)
    locator = None
    if "locator" in cfg:
        locator = AvatarLocator(_dc_from_dict(LocatorConfig, cfg["locator"]))
        if (locator.cfg.vocab_size, locator.cfg.grid) != (dyn_cfg.vocab_size, dyn_cfg.grid):
            raise UserError(f"{cfg_file}: the locator reads {locator.cfg.grid}x{locator.cfg.grid} tokens of "
                            f"{locator.cfg.vocab_size} codes, the world draws {dyn_cfg.grid}x{dyn_cfg.grid} of {dyn_cfg.vocab_size}")
        _load_weights(locator, path / LOCATOR_FILE, "avatar locator")
        locator = locator.to(dev)
    meta = _dc_from_dict(WorldMeta, cfg["meta"])
    if meta.rollout == "factorised" and locator is None:
        raise UserError(f"{cfg_file}: meta.rollout is 'factorised' but the world has no locator; train one with "
                        "`maskworld train locator --world WORLD --data DATA` or set rollout to 'joint'")
    return World(tok.to(dev), dyn.to(dev), _dc_from_dict(SamplerConfig, cfg["sampler"]), meta, path=path.local, lam=lam,
                 locator=locator)
