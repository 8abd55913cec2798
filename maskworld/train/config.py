"""What `maskworld train world|tokenizer|dynamics` trains with: one typed tree, validated once.

    from maskworld.train.config import resolve
    cfg = resolve("tiny", {"data": "data/toy", "out": "worlds/toy", "steps": 200})
    run_train(cfg)

TrainConfig
  run        RunConfig             data, out, preset, budget, seed, device, processes
  tokenizer  TokenizerTrainConfig  token grid, tokenizer batch and budget
  dynamics   DynamicsTrainConfig   window, width, depth, batch, clip sampling, --init
  lam        LamTrainConfig        latent actions for action-free data
  memory     MemoryTrainConfig     memory M: retrieval, compressed frames, copy head

Each leaf field is one flag of `maskworld train` (`d_model` -> `--d-model`) and one key of `resolve`'s
overrides, so names are unique across the tree; the string under a field is its `--help`
(maskworld.commands._config_cli). Field metadata: "metavar", "default_text" (the default shown in `--help`
when the field's own is None), "cli": False (not a flag).

`resolve(preset, overrides, init_world)` is the one way from a preset to a config: pure (no I/O, the preset
is frozen), overrides win, a --init world fixes its architecture. `TrainConfig.__post_init__` checks every rule
that needs no data; `check_data` the ones that need the store's metadata. Nothing here imports torch: the
CLI builds its parsers from these classes for every `maskworld` call.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from maskworld.data.event_sampler import check_share
from maskworld.errors import UserError
from maskworld.train.presets import PRESETS, Preset, get_preset
from maskworld.train.unified_tasks import task_weights


def _by_preset(attr: str, unit: str = "") -> dict:
    """Metadata showing a preset-filled field's default in --help: the value of every preset."""
    return {"default_text": "the preset's: " + ", ".join(f"{n} {getattr(p, attr)}{unit}" for n, p in PRESETS.items())}


@dataclass
class RunConfig:
    """Data, output, budget and machine: what every stage shares."""

    data: str
    """Episode store (path or fsspec URL) from `maskworld collect` / `import-video`."""
    out: str
    """World directory to write (world.json + *.safetensors; checkpoints in OUT/_work)."""
    preset: Literal["auto", "tiny", "compact", "small", "base"] = "auto"
    """Model size dial: both models' sizes, batches and learning rate (maskworld.train.presets); auto = the one
    whose tokens per parameter in --minutes come nearest ~20, measured on this machine (maskworld.train.auto_preset)."""
    minutes: float | None = None
    """Wall-clock training budget (split 30/70 tokenizer/dynamics for `world`)."""
    steps: int | None = None
    """Optimisation steps per stage."""
    resume: bool = False
    """Continue from the last checkpoint in OUT/_work."""
    ckpt_minutes: float = 5.0
    """Minutes between checkpoints."""
    seed: int = 0
    """Seed of the initialisation, the train/validation split and the batches."""
    device: str = "auto"
    """auto (cuda > mps > cpu), cpu, cuda, cuda:1, ..."""
    val_fraction: float = 0.1
    """Held-out share of episodes (split by episode, seeded)."""
    ignore_actions: bool = False
    """Treat the data as action-free video (a latent-action world)."""
    progress: bool = True
    """Progress bars (--no-progress: log lines only)."""
    fsdp: bool = False
    """Shard parameters across GPUs with FSDP2 (under torchrun, CUDA only)."""
    data_split: Literal["global", "rank"] = "global"
    """Under torchrun: 'global' = every process draws the same global batch and trains on its part, matching one
    process exactly; 'rank' = each process reads only its own episodes (less memory and I/O per process,
    tokenization in parallel; results depend on the process count). See maskworld.train.dist."""
    compile: bool = False
    """torch.compile the training forward (worth it on GPUs)."""
    command_line: str | None = field(default=None, metadata={"cli": False})
    """The exact command, for the model card."""
    preset_reason: tuple[str, ...] = field(default=(), metadata={"cli": False})
    """Why --preset auto chose the preset (kept in OUT/_work/preset.json, so --resume keeps the choice)."""
    stages: tuple[str, ...] = field(default=("tokenizer", "dynamics"), metadata={"cli": False})
    """What to train: the subcommand (`world` = both, `tokenizer`, `dynamics` on OUT's tokenizer)."""


@dataclass
class TokenizerTrainConfig:
    """The FSQ tokenizer stage."""

    grid: int | None = field(default=None, metadata={"default_text": "the preset's, 8 on 64px frames = 64 tokens"})
    """Tokens per frame side (8 or 16 on 64px frames; 16 is sharper and ~4x dearer)."""
    codebook: Literal[240, 1000, 4375] | None = field(default=None, metadata={"default_text": "1000"})
    """Codes per token: FSQ levels [8,6,5], [8,5,5,5] or [7,5,5,5,5] (Mentzer et al. 2023's choices near 2^8,
    2^10, 2^12). Fewer codes draw less detail and leave the dynamics fewer classes to choose from."""
    tok_encoder: Literal["conv", "local"] = "conv"
    """The tokenizer's encoder (models/tokenizer.py): local reads each token's code from its own patch's pixels
    only, so a token changes only where the picture does; conv uses 3x3 convolutions and GroupNorm, and its codes
    also change with their neighbours and the frame's statistics."""
    tok_batch: int | None = field(default=None, metadata=_by_preset("tok_batch"))
    """Tokenizer frames per step (global under torchrun)."""
    tok_minutes: float | None = None
    """Override the tokenizer's share of --minutes (default 30 %)."""
    tok_steps: int | None = None
    """Override the tokenizer's steps (default: --steps)."""


@dataclass
class DynamicsTrainConfig:
    """The dynamics stage: the masked transformer over frame tokens."""

    kind: Literal["dynamics", "unified"] = "dynamics"
    """dynamics: today's world (frames and actions, KV-cached play). unified: one masked transformer over the
    episode's words, frames, actions and outcomes that does dynamics, inverse dynamics, policy, world-from-words and
    describing by what it hides (models/unified.py; needs data with mission text, e.g. a BabyAI level)."""
    tasks: str | None = field(default=None, metadata={"metavar": "T[:W],T[:W]", "default_text": "all"})
    """--kind unified: the tasks of the training mixture (dynamics, inverse, policy, outcome, from_words, describe,
    random), each optionally with its sampling weight (inverse:0.25); one task alone trains a dedicated model of the
    same size, the baseline the unified one is measured against."""
    window: int | None = field(default=None, metadata=_by_preset("window"))
    """Context window in frames; the KV cache holds window-1 frames."""
    d_model: int | None = field(default=None, metadata=_by_preset("d_model"))
    """Dynamics width: a multiple of twice the preset's attention heads."""
    layers: int | None = field(default=None, metadata=_by_preset("n_layers"))
    """Dynamics depth."""
    batch: int | None = field(default=None, metadata=_by_preset("dyn_batch"))
    """Dynamics clips per step (raise it on a GPU; global under torchrun)."""
    event_share: float | None = field(default=None, metadata={
        "metavar": "F", "default_text": "0.25 when the data has a reward or termination, else 0"})
    """Share of each dynamics batch's clips that end on a reward or termination transition, so a sparse-reward
    world learns to imagine the rewarding step (0 = uniform clips; maskworld.data.event_sampler)."""
    prev_frame_prior: bool = True
    """Decode each frame starting from the previous one ("nothing changes"; DynamicsConfig.prev_frame_prior): a
    briefly trained world is at least copy-last instead of noise."""
    spatial_rope: bool = False
    """Rotary positions over frame, row and column (DynamicsConfig.spatial_rope): attention between cells by their
    offset, so a motion is learned once for the whole grid."""
    local_radius: int | None = field(default=None, metadata={"metavar": "R", "default_text": "0, or the --init world's"})
    """Cells read only the cells within R rows and columns of them in the frames before (DynamicsConfig.local_radius),
    so one avatar's actions cannot reach the others' cells faster than R cells a frame; with --init a world that
    read everything is fine-tuned into one that reads locally. 0 = every cell reads the whole window."""
    code_factors: bool = False
    """Read each token code as its FSQ digits in the token embedding and head (DynamicsConfig.code_levels,
    models/code_factors.py), so rare codes learn from their neighbours."""
    render: Literal["tokens", "composite"] = "composite"
    """How the trained world shows imagined frames, written into world.json (world/compose.py): composite redraws
    only the cells around changed tokens, so a world started from real frames keeps their detail where nothing
    moves (measured at horizon 1: MiniGrid 32.8 -> 36.0 dB, Breakout 44.9 -> 45.0 dB; never below tokens)."""
    optimizer: Literal["adamw", "muon"] = "muon"
    """Dynamics optimizer: Muon for the blocks' matrices with AdamW for the rest (maskworld.train.muon), or AdamW
    for all; Muon reached a lower validation loss at equal minutes on CoinRun and Breakout (docs/training.md#muon).
    Under --fsdp AdamW (FSDP shards the matrices Muon orthogonalises whole)."""
    context_drop: float = field(default=0.0, metadata={"metavar": "F"})
    """Share of dynamics clips whose context is mostly noise (corruption rate ~ U(0.5, 1)), as after a long
    open-loop rollout, so a memory world learns to rebuild places from memory (dynamics_train.corrupt)."""
    agent_dropout: float = field(default=0.0, metadata={"metavar": "P"})
    """Worlds of several agents: the chance that one agent's action is hidden from the frame being predicted
    (dynamics_train.hide_agents), so the world learns what each avatar's action does with the others' unknown and
    can be decoded avatar by avatar (world/factorised.py, after `maskworld train locator`)."""
    action_dropout: float = field(default=0.0, metadata={"metavar": "P"})
    """The chance that the action into a predicted frame is hidden (NULL) from it in training, so the world also
    learns the frame without its action: what classifier-free guidance by the action (`--guidance`, models/sampler.py)
    contrasts with. The context keeps every action, as the KV cache does in play."""
    self_context: float = field(default=0.0, metadata={"metavar": "F"})
    """Share of dynamics clips whose context frames are the model's own one-pass predictions instead of the real
    ones (scheduled sampling; dynamics_train.own_context), so the world also learns to continue from frames it drew.
    Costs one extra forward pass a step; on Landmarks it gained nothing over the same minutes without it
    (docs/memory.md)."""
    init: str | None = field(default=None, metadata={"metavar": "WORLD"})
    """Start the dynamics from WORLD's weights and config (a fine-tune, e.g. with --context-drop)."""
    init_config: dict | None = field(default=None, repr=False, metadata={"cli": False})
    """The --init world's dynamics config (its world.json), filled by resolve()."""


@dataclass
class LamTrainConfig:
    """The latent-action model, trained between tokenizer and dynamics on action-free data."""

    latent_actions: int = field(default=8, metadata={"metavar": "K"})
    """Action-free data: latent actions the LAM learns (0 = a video model with no actions)."""
    lam_share: float = 0.25
    """Share of the dynamics' --minutes spent on the LAM."""
    lam_steps: int | None = field(default=None, metadata={"default_text": "--steps"})
    """LAM steps when the budget is --steps."""
    label_transitions: int = 200
    """With --ignore-actions on labelled data: transitions that fit the real->latent action map."""


@dataclass
class MemoryTrainConfig:
    """Memory M: past frames the dynamics read beyond the window, found by place (poses) or by appearance."""

    memory: int = field(default=0, metadata={"metavar": "M"})
    """Retrieved past frames each predicted frame reads (0 = off)."""
    memory_keys: Literal["auto", "pose", "appearance"] = "auto"
    """How remembered frames are found: "pose" (the nearest places; needs poses in the data, e.g.
    MiniGrid-Landmarks-v0), "appearance" (the frames that look most like the last one; any game), auto = pose
    where the data records poses, else appearance."""
    compressed: int | None = field(default=None, metadata={"metavar": "C", "default_text": "2 with --memory, else 0"})
    """Frames just older than the window, read at a quarter of their tokens."""
    copy_head: bool = False
    """Also predict tokens by pointing at the retrieved frames' tokens (exact copies of small details; with
    --memory, or added to an --init world that has memory; models/copy_head.py)."""


MAX_MEMORY = 16
POSE_KEYS = {"agent_pos", "agent_dir"}
TOK_SHARE = 0.3
"""The tokenizer's share of --minutes when --tok-minutes/--tok-steps are not given."""


@dataclass
class TrainConfig:
    """Everything one `maskworld train` run needs; build it with `resolve` (it fills the preset's values)."""

    run: RunConfig
    tokenizer: TokenizerTrainConfig = field(default_factory=TokenizerTrainConfig)
    dynamics: DynamicsTrainConfig = field(default_factory=DynamicsTrainConfig)
    lam: LamTrainConfig = field(default_factory=LamTrainConfig)
    memory: MemoryTrainConfig = field(default_factory=MemoryTrainConfig)

    def __post_init__(self) -> None:
        self._check_budget()
        self._check_dynamics()
        self._check_lam()
        self._check_memory()

    # ---------------------------------------------------------------- rules that need no data
    def _check_budget(self) -> None:
        r = self.run
        if r.minutes is None and r.steps is None:
            raise UserError("give a budget: --minutes M or --steps N")
        if r.minutes is not None and r.steps is not None:
            raise UserError("give --minutes or --steps, not both")
        bad = [s for s in r.stages if s not in ("tokenizer", "dynamics")]
        if bad or not r.stages:
            raise ValueError(f"stages {r.stages!r}: give 'tokenizer' and/or 'dynamics'")
        dyn = self.budgets()[1]
        if "dynamics" in r.stages and dyn[1] is not None and dyn[1] <= 0:
            raise UserError("--tok-minutes leaves no time for the dynamics; raise --minutes")

    def _check_dynamics(self) -> None:
        d, heads = self.dynamics, PRESETS[self.run.preset].n_heads
        if d.window is not None and d.window < 2:
            raise UserError(f"--window {d.window}: the dynamics need at least 2 frames (one of context)")
        if d.d_model is not None and (d.d_model < heads or d.d_model % (2 * heads)):
            raise UserError(f"--d-model {d.d_model}: give a multiple of {2 * heads} (the {self.run.preset} preset's "
                            f"{heads} heads, even head size)")
        if d.layers is not None and d.layers < 1:
            raise UserError(f"--layers {d.layers}: give at least 1")
        check_share(d.event_share)
        if not 0.0 <= d.context_drop <= 1.0:
            raise UserError(f"--context-drop {d.context_drop}: give the share of clips with a noisy context, from 0 to 1")
        if not 0.0 <= d.agent_dropout < 1.0:
            raise UserError(f"--agent-dropout {d.agent_dropout}: give the chance an agent's action is hidden, from 0 "
                            "up to (not including) 1")
        if not 0.0 <= d.action_dropout < 1.0:
            raise UserError(f"--action-dropout {d.action_dropout}: give the chance an action is hidden, from 0 up to "
                            "(not including) 1")
        if not 0.0 <= d.self_context <= 1.0:
            raise UserError(f"--self-context {d.self_context}: give the share of clips with the model's own context, "
                            "from 0 to 1")
        if d.init is not None and "tokenizer" in self.run.stages:
            raise UserError("--init fine-tunes the dynamics on the init world's tokenizer: use `maskworld train dynamics` "
                            "(into an --out without a tokenizer, it takes the init world's)")

    def _check_lam(self) -> None:
        lam = self.lam
        if lam.latent_actions < 0 or lam.latent_actions == 1:
            raise UserError(f"--latent-actions {lam.latent_actions}: use >= 2 codes (default 8), or 0 for a video model "
                            "without actions")
        if not 0 < lam.lam_share < 1:
            raise UserError(f"--lam-share {lam.lam_share} must be between 0 and 1")

    def _check_memory(self) -> None:
        m = self.memory
        if not 0 <= m.memory <= MAX_MEMORY:
            raise UserError(f"--memory {m.memory}: give 0 (off) to {MAX_MEMORY} retrieved frames")
        if m.compressed is not None and not 0 <= m.compressed <= MAX_MEMORY:
            raise UserError(f"--compressed {m.compressed}: give 0 (off) to {MAX_MEMORY} frames")
        if m.copy_head and not m.memory:
            init = self.dynamics.init
            raise UserError("--copy-head points at retrieved frames: " + (
                f"{init} has no retrieval memory (--memory 0)" if init else
                "give --memory M (or --init a world that has memory)"))

    # ---------------------------------------------------------------- rules that need the data
    def check_data(self, meta: Mapping[str, Any]) -> None:
        """UserError when this config cannot train on a store with metadata `meta` (before anything is written)."""
        r, d = self.run, self.dynamics
        if "dynamics" in r.stages and self.memory.memory_keys == "pose" and not POSE_KEYS <= set(meta.get("info_keys", [])):
            raise UserError(f"--memory-keys pose needs poses in the data: {r.data} records no agent_pos/agent_dir "
                            "(collect a MiniGrid env, e.g. MiniGrid-Landmarks-v0), or use --memory-keys appearance")
        if "tokenizer" in r.stages:
            tokenizer_downsample(self.tokenizer.grid, int(meta.get("size", 64)))
        if d.kind == "unified":
            if not meta.get("has_text"):
                raise UserError(f"--kind unified reads each episode's words, and {r.data} has none; collect a BabyAI "
                                "level, e.g. `maskworld collect --env BabyAI-GoToLocal-v0 --view full --policy bot:0.7,explore:0.3`")
            task_weights(d.tasks)  # a clear error for an unknown task, before anything is written
            if not self.has_actions(meta) or self.has_memory:
                raise UserError("--kind unified trains on real actions, without --memory or --ignore-actions")
        if d.init is not None and (d.init_config or {}).get("kind", "dynamics") != d.kind:
            have = (d.init_config or {}).get("kind", "dynamics")
            raise UserError(f"--init {d.init} is a {have} world and this run trains --kind {d.kind}: "
                            f"{'give --kind ' + have if have != 'dynamics' else 'drop --kind'} or --init a {d.kind} world")
        if d.init is not None and "dynamics" in r.stages:
            if self.uses_lam(meta):
                raise UserError("--init fine-tunes a world with real actions; a latent-action world learns new codes, "
                                "so train it from scratch (drop --init)")
            have, n = (d.init_config or {}).get("num_actions"), self.num_actions(meta)
            if have is not None and have != n:
                raise UserError(f"--init {d.init} has {have} actions but {r.data} has {n}; fine-tune on data of the same env")

    def has_actions(self, meta: Mapping[str, Any]) -> bool:
        """The dynamics condition on the data's own actions (not action-free video, not --ignore-actions)."""
        return bool(meta.get("has_actions", True)) and not self.run.ignore_actions

    def uses_lam(self, meta: Mapping[str, Any]) -> bool:
        """Action-free data with latent actions on: a LAM stage labels the transitions."""
        return not self.has_actions(meta) and self.lam.latent_actions > 0

    def num_actions(self, meta: Mapping[str, Any]) -> int:
        """Real actions the dynamics condition on (1 = a single NOOP, before any latent actions)."""
        return int(meta.get("num_actions", 1)) if self.has_actions(meta) else 1

    @property
    def has_memory(self) -> bool:
        return bool(self.memory.memory or self.memory.compressed)

    def memory_keys(self, meta: Mapping[str, Any]) -> str:
        """"pose" or "appearance": --memory-keys, with auto resolved by whether the data records poses."""
        if self.memory.memory_keys != "auto":
            return self.memory.memory_keys
        return "pose" if POSE_KEYS <= set(meta.get("info_keys", [])) else "appearance"

    def budgets(self) -> tuple[tuple[int | None, float | None], tuple[int | None, float | None]]:
        """(steps, minutes) of the tokenizer and of the dynamics: --minutes is the whole budget, the dynamics get
        what the tokenizer leaves; --steps is per stage."""
        r, t = self.run, self.tokenizer
        if "tokenizer" not in r.stages:
            tok: tuple = (None, None)
        elif t.tok_steps is not None or t.tok_minutes is not None:
            tok = (t.tok_steps, t.tok_minutes)
        elif "dynamics" not in r.stages:  # `train tokenizer`: the whole budget is the tokenizer's
            tok = (r.steps, None) if r.steps else (None, r.minutes)
        else:
            tok = (r.steps, None) if r.steps else (None, TOK_SHARE * r.minutes)
        if r.steps:
            return tok, (r.steps, None)
        return tok, (None, r.minutes - (tok[1] or 0.0))

    def to_dict(self) -> dict:
        """The settings for the model card (the init world's config is in that world's card already)."""
        d = dataclasses.asdict(self)
        d["dynamics"].pop("init_config")
        d["run"].pop("command_line")
        d["run"]["preset_reason"] = list(d["run"]["preset_reason"])
        d["run"]["stages"] = list(d["run"]["stages"])
        return d


_SECTION_CLASSES = {"run": RunConfig, "tokenizer": TokenizerTrainConfig, "dynamics": DynamicsTrainConfig,
                    "lam": LamTrainConfig, "memory": MemoryTrainConfig}
FIELD_SECTION = {f.name: s for s, cls in _SECTION_CLASSES.items() for f in dataclasses.fields(cls)}
"""Leaf field name -> its section: overrides are flat because every name is unique in the tree."""
assert len(FIELD_SECTION) == sum(len(dataclasses.fields(c)) for c in _SECTION_CLASSES.values()), "field names must be unique"

# --init: the init world's dynamics config fixes these (config field -> DynamicsConfig field).
INIT_FIXES = {"window": "window", "d_model": "d_model", "layers": "n_layers", "memory": "memory_frames",
              "compressed": "compressed_frames"}


def tokenizer_downsample(grid: int | None, image_size: int, patch: int = 4) -> int | None:
    """The tokenizer's stride-2 stages for `grid` tokens per side (None: the preset's); UserError where none fits."""
    if not grid:
        return None
    ratio = image_size // patch // grid
    if ratio < 1 or ratio & (ratio - 1) or ratio * grid * patch != image_size:
        raise UserError(f"--grid {grid} does not divide {image_size}px frames into {patch}px patches halved a whole "
                        "number of times")
    return ratio.bit_length() - 1


def run_optimizer(settings: Mapping[str, Any]) -> str:
    """The dynamics optimizer a run uses: the one given, else AdamW under --fsdp (FSDP shards the matrices Muon
    orthogonalises whole), else the default."""
    return settings.get("optimizer") or ("adamw" if settings.get("fsdp") else DynamicsTrainConfig.optimizer)


def resolve(preset: Preset | str, overrides: Mapping[str, Any], init_world: Mapping[str, Any] | None = None) -> TrainConfig:
    """The config of a run: the preset's values, then the --init world's architecture (when given), then
    `overrides` (flat: leaf field name -> value). Pure: neither argument is changed.

    init_world: the init world's dynamics config (world.json's "dynamics"); an override that contradicts it
    is a UserError (a fine-tune keeps the architecture)."""
    p = get_preset(preset) if isinstance(preset, str) else preset
    unknown = sorted(set(overrides) - set(FIELD_SECTION))
    if unknown:
        raise TypeError(f"unknown training settings {unknown}")
    if overrides.get("preset", p.name) != p.name:
        raise ValueError(f"preset {overrides['preset']!r} given with the {p.name!r} preset's values")
    values: dict[str, Any] = {"preset": p.name, "window": p.window, "d_model": p.d_model, "layers": p.n_layers,
                              "batch": p.dyn_batch, "tok_batch": p.tok_batch}
    values.update({k: v for k, v in overrides.items() if v is not None})  # None: "not given"
    if init_world is not None:  # after the overrides: it has checked them against what it fixes
        values.update(_from_init(init_world, overrides))
    if values.get("compressed") is None:
        values["compressed"] = 2 if values.get("memory") else 0
    if values.get("fsdp"):  # FSDP2 shards each matrix across GPUs; Muon orthogonalises whole matrices
        if overrides.get("optimizer") == "muon":
            raise UserError("--optimizer muon cannot run with --fsdp (FSDP shards the matrices Muon orthogonalises "
                            "whole): drop --fsdp, or give --optimizer adamw")
        values["optimizer"] = run_optimizer(values)
    sections: dict[str, dict] = {s: {} for s in _SECTION_CLASSES}
    for k, v in values.items():
        sections[FIELD_SECTION[k]][k] = v
    if "stages" in sections["run"]:
        sections["run"]["stages"] = tuple(sections["run"]["stages"])
    missing = [k for k in ("data", "out") if k not in sections["run"]]
    if missing:
        raise TypeError(f"resolve needs {' and '.join(missing)}")
    return TrainConfig(**{s: cls(**sections[s]) for s, cls in _SECTION_CLASSES.items()})


def _from_init(init_world: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict:
    """The values an --init world fixes; a contradicting override is a UserError."""
    init = overrides.get("init")
    fixed = {k: init_world[theirs] for k, theirs in INIT_FIXES.items() if theirs in init_world}
    if not fixed.get("memory") and not fixed.get("compressed") and overrides.get("memory"):
        # memory added to a world without it: its reader starts at zero, so the fine-tune starts as the world was
        fixed.pop("memory", None), fixed.pop("compressed", None)
    for k, have in fixed.items():
        want = overrides.get(k)
        if want is not None and want != have:
            flag = "--" + k.replace("_", "-")
            raise UserError(f"--init {init} has {k.replace('_', '-')} {have}, not {want}: drop {flag} "
                            "(a fine-tune keeps the config)")
    # the copy head may be added to an init world (it reads the memory the world already has)
    copy_head = bool(init_world.get("copy_head")) or bool(overrides.get("copy_head"))
    return {**fixed, "copy_head": copy_head, "init_config": dict(init_world)}


def load_init_world(path: str | None) -> dict | None:
    """The model config in `path`/world.json (None without --init), with its world kind under "kind" (a unified
    world's model is its "unified" config); UserError when it is no world directory."""
    if path is None:
        return None
    f = Path(path) / "world.json"
    try:
        world = json.loads(f.read_text())
        if world.get("kind") == "unified":
            return {**world["unified"], "kind": "unified"}
        return {**world["dynamics"], "kind": "dynamics"}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"--init {path} is not a world directory (world.json + *.safetensors): {e}") from None


def init_split(path: str) -> dict:
    """The training split on the --init world's card ({} where it has none)."""
    try:
        return json.loads((Path(path) / "world.json").read_text())["meta"]["model_card"].get("split") or {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def train_config(**settings: Any) -> TrainConfig:
    """resolve() with the preset named in `settings` (default small; "auto" is chosen before, by the command) and
    the --init world read from disk."""
    if settings.get("preset") == "auto":
        settings = {**settings, "preset": "small"}
    return resolve(settings.get("preset") or "small", settings, load_init_world(settings.get("init")))
