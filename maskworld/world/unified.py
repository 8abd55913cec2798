"""A unified world: one set of weights (models/unified.py) answers every task by what it hides.

    w = load_unified_world("worlds/babyai")
    s = w.session(text="go to the red ball", seed=0)   # the first frame, generated from words
    frame, reward, done = s.step(2)                   # dynamics
    a = w.act(s)                                      # the world's own policy toward the instruction (s.act())
    w.infer_actions(frames)                           # inverse dynamics, (N+1,H,W,3) -> (N,)
    w.describe(frames)                                # words from the world

The directory holds `world.json` with `"kind": "unified"` (tokenizer, unified model and text-vocabulary configs,
the model card) beside `tokenizer.safetensors` and `unified.safetensors`; loading never runs code.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from maskworld import worlds
from maskworld.device import pick_device
from maskworld.errors import UserError
from maskworld.io import atomic_save_safetensors, atomic_write_text
from maskworld.models.sampler import SamplerConfig
from maskworld.models.text import TextVocab
from maskworld.models.tokenizer import Tokenizer, TokenizerConfig
from maskworld.models.unified import Unified, UnifiedConfig
from maskworld.models.unified_decode import decode
from maskworld.version import WORLD_FORMAT_VERSION

KIND = "unified"
WEIGHTS = {"tokenizer": "tokenizer.safetensors", "unified": "unified.safetensors"}
FIRST_OUTCOME = 2
"""The outcome class of an episode's first frame: zero reward, not terminated (models/unified.outcome_class)."""
FROM_WORDS_GUIDANCE = 6.0
"""Classifier-free guidance of a world from words (`from_words`): chosen by measurement, docs/results.md."""


@dataclass
class UnifiedMeta:
    """What a unified world says about itself besides its configs (the fields play reads of any world's meta)."""

    env_id: str = "unknown"
    size: int = 64
    view: str | None = None
    action_meanings: list[str] = field(default_factory=list)
    model_card: dict = field(default_factory=dict)
    has_actions: bool = True
    agents: int = 1
    agent_action_meanings: list[str] = field(default_factory=list)
    latent_actions: dict = field(default_factory=dict)


class UnifiedWorld:
    """Tokenizer + unified model + text vocabulary; every task is a method, and it plays like any world (`session`,
    `step_many`) with its own policy by mask."""

    lam = None  # play's latent-action controls: a unified world has real actions
    has_own_policy = True
    """"Agent drives" in play is the world's own policy toward the session's instruction (`UnifiedSession.act`)."""

    def __init__(self, tokenizer: Tokenizer, model: Unified, vocab: TextVocab, meta: UnifiedMeta | dict, path=None):
        self.tokenizer, self.model, self.vocab = tokenizer.eval(), model.eval(), vocab
        self.meta = meta if isinstance(meta, UnifiedMeta) else UnifiedMeta(**meta)
        self.path = Path(path) if path else None
        self.sampler = SamplerConfig(steps=8, temperature=1.0)
        """MaskGIT passes per generated frame and the sessions' default temperature (`--sampler-steps`,
        `--temperature`); only `steps` and `temperature` are read here."""
        self.guidance = FROM_WORDS_GUIDANCE
        self.render = "tokens"

    @property
    def cfg(self) -> UnifiedConfig:
        return self.model.cfg

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def action_meanings(self) -> list[str]:
        return list(self.meta.action_meanings or [f"ACTION_{i}" for i in range(self.cfg.num_actions)])

    @property
    def num_actions(self) -> int:
        return self.cfg.num_actions

    def step_many(self, sessions, actions) -> list[tuple[np.ndarray, float, bool]]:
        """Play's batched step: one session after the other (a unified clip is re-read whole every step)."""
        return [s.step(a) for s, a in zip(sessions, actions)]

    def restore_session(self, blob: bytes, info: str) -> UnifiedSession:
        return UnifiedSession.from_bytes(self, blob, info)

    # ------------------------------------------------------------------ frames and words <-> ids

    @torch.no_grad()
    def encode_frames(self, frames_NHWC: np.ndarray) -> torch.Tensor:
        """uint8 (N,H,W,3) -> tokens (N,G)."""
        x = torch.from_numpy(np.ascontiguousarray(frames_NHWC)).to(self.device)
        return self.tokenizer.tokenize_uint8(x).flatten(1)

    @torch.no_grad()
    def render_tokens(self, tokens_NG: torch.Tensor) -> np.ndarray:
        """tokens (N,G) -> uint8 (N,H,W,3)."""
        g = self.cfg.grid
        return self.tokenizer.render_uint8(tokens_NG.view(-1, g, g)).cpu().numpy()

    def text_ids(self, text: str | None) -> torch.Tensor:
        """(1,L): the words' ids, or all MASK for no text (the model was trained to go without it)."""
        if text is None:
            return torch.full((1, self.cfg.text_len), self.cfg.text_mask, dtype=torch.long, device=self.device)
        unknown = self.vocab.unknown(text)
        if unknown:
            raise UserError(f"this world never read the word(s) {unknown}; it knows: {' '.join(self.vocab.words[2:])}")
        return torch.from_numpy(self.vocab.encode(text))[None].to(self.device)

    def _ids(self, text_1L, acts: list[int], frames: list[torch.Tensor], outs: list[int]) -> dict[str, torch.Tensor]:
        dev = self.device
        return {"text": text_1L, "act": torch.tensor([acts], device=dev),
                "frame": torch.stack(frames)[None].to(dev), "out": torch.tensor([outs], device=dev)}

    def _blank(self) -> torch.Tensor:
        return torch.full((self.cfg.tokens_per_frame,), self.cfg.frame_mask, dtype=torch.long, device=self.device)

    # ------------------------------------------------------------------ the tasks

    def from_words(self, text: str | None, seed: int = 0, temperature: float | None = None,
                   guidance: float | None = None) -> torch.Tensor:
        """The first frame of an episode with this instruction, as tokens (G,). guidance: classifier-free guidance
        by the words (models/unified_decode.py; None: the world's `guidance`, 0: none)."""
        g = torch.Generator().manual_seed(seed)
        ids = self._ids(self.text_ids(text), [self.cfg.null_action], [self._blank()], [FIRST_OUTCOME])
        todo = torch.zeros_like(ids["frame"], dtype=torch.bool)
        todo[0, 0] = True
        w = self.guidance if guidance is None else guidance
        t = self.sampler.temperature if temperature is None else temperature
        return decode(self.model, ids, "frame", todo, self.sampler.steps, t, g,
                      guidance=w if text is not None else 0.0)["frame"][0, 0]

    def session(self, text: str | None = None, seed: int = 0, frame: np.ndarray | None = None,
                temperature: float | None = None, prompt=None) -> UnifiedSession:
        """A new episode: its first frame generated from `text` (or the real `frame` given). prompt (play's): the
        words (str) or a first frame (H,W,3 uint8)."""
        if isinstance(prompt, str):
            text = prompt
        elif prompt is not None:
            frame = np.asarray(prompt)
        t = self.sampler.temperature if temperature is None else temperature
        tokens = (self.encode_frames(frame[None])[0] if frame is not None
                  else self.from_words(text, seed, t))
        return UnifiedSession(self, text, tokens, seed, t)

    def act(self, session: UnifiedSession) -> int:
        """The world's own policy in `session`: the next action toward its instruction (policy by mask)."""
        return session.act()

    @torch.no_grad()
    def infer_actions(self, frames_NHWC: np.ndarray, text: str | None = None) -> np.ndarray:
        """The action between each pair of consecutive real frames: (N+1,H,W,3) -> (N,), in windows of T frames
        overlapping by one (the window's first action is the one inferred before, visible as in training)."""
        if len(frames_NHWC) < 2:
            raise UserError("infer_actions needs at least two frames")
        tok = self.encode_frames(frames_NHWC)
        T, out = self.cfg.window, []
        prev = self.cfg.null_action
        start = 0
        while start < len(tok) - 1:
            chunk = tok[start:start + T]
            n = len(chunk)
            ids = self._ids(self.text_ids(text), [prev] + [self.cfg.act_mask] * (n - 1), list(chunk),
                            [self.cfg.out_mask] * n)
            logits = self.model(ids["text"], ids["act"], ids["frame"], ids["out"])["act"][0, 1:, :self.cfg.num_actions]
            acts = logits.argmax(-1).tolist()
            out += acts
            prev = acts[-1]
            start += n - 1
        return np.asarray(out, dtype=np.int64)

    @torch.no_grad()
    def describe(self, frames_NHWC: np.ndarray, actions: np.ndarray | None = None) -> str:
        """The instruction that the last T frames (and the actions into them, if given) show being carried out."""
        T = self.cfg.window
        frames = frames_NHWC[-T:]
        tok = self.encode_frames(frames)
        n = len(tok)
        acts = [self.cfg.act_mask] * n if actions is None else [int(a) for a in np.asarray(actions)[-n:]]
        if len(acts) < n:  # the episode's first frame is in the window: no action led into it
            acts = [self.cfg.null_action] + acts
        ids = self._ids(self.text_ids(None), acts, list(tok), [self.cfg.out_mask] * n)
        todo = torch.ones_like(ids["text"], dtype=torch.bool)
        ids = decode(self.model, ids, "text", todo, steps=4, temperature=0.0)
        return self.vocab.decode(ids["text"][0].tolist())

    # ------------------------------------------------------------------ directory

    def config_dict(self) -> dict:
        return {"format_version": WORLD_FORMAT_VERSION, "kind": KIND,
                "tokenizer": dataclasses.asdict(self.tokenizer.cfg), "unified": dataclasses.asdict(self.cfg),
                "text": self.vocab.to_dict(), "meta": dataclasses.asdict(self.meta), "weights": WEIGHTS}

    def update_model_card(self, **entries) -> None:
        """Merge entries into meta.model_card and rewrite world.json (weights untouched), as `World` does."""
        self.meta.model_card.update(entries)
        if self.path is not None:
            atomic_write_text(self.path / "world.json", json.dumps(self.config_dict(), indent=2))

    def save(self, path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        atomic_save_safetensors(self.tokenizer.state_dict(), path / WEIGHTS["tokenizer"])
        atomic_save_safetensors(self.model.state_dict(), path / WEIGHTS["unified"])
        atomic_write_text(path / "world.json", json.dumps(self.config_dict(), indent=2))
        self.path = path
        return path


POLICY_TEMPERATURE = 1.0  # the world's own policy samples its actions (UnifiedSession.act)


class UnifiedSession:
    """One episode in a unified world: the last window - 1 steps as ids, a generator of its own."""

    def __init__(self, world: UnifiedWorld, text: str | None, first_tokens: torch.Tensor, seed: int,
                 temperature: float):
        self.world, self.text = world, text
        self._text_ids = world.text_ids(text)
        self.gen = torch.Generator().manual_seed(int(seed) + 1)
        self.temperature = temperature
        self.seed = int(seed)
        self.acts, self.frames, self.outs = [world.cfg.null_action], [first_tokens], [FIRST_OUTCOME]
        self.frame = world.render_tokens(first_tokens[None])[0]
        self.t = 0
        self.total_reward, self.done = 0.0, False

    @property
    def steps(self) -> int:
        return self.t

    def to_bytes(self) -> tuple[bytes, str]:
        """(tensors as safetensors, JSON): the window's ids and the generator's state resume the episode exactly."""
        from safetensors.torch import save

        t = {"frames": torch.stack(self.frames).to(torch.int32).cpu(), "acts": torch.tensor(self.acts, dtype=torch.int32),
             "outs": torch.tensor(self.outs, dtype=torch.int32), "rng": self.gen.get_state(),
             "frame": torch.from_numpy(np.ascontiguousarray(self.frame))}
        info = {"kind": KIND, "text": self.text, "seed": self.seed, "t": self.t, "temperature": self.temperature,
                "total_reward": self.total_reward, "done": self.done}
        return save(t), json.dumps(info)

    @classmethod
    def from_bytes(cls, world: UnifiedWorld, blob: bytes, info_json: str) -> UnifiedSession:
        from safetensors.torch import load

        t, info = load(blob), json.loads(info_json)
        if info.get("kind") != KIND:
            raise UserError("this saved session was not made in a unified world")
        s = cls.__new__(cls)
        s.world, s.text, s.seed = world, info["text"], int(info["seed"])
        s._text_ids = world.text_ids(s.text)
        s.gen = torch.Generator()
        s.gen.set_state(t["rng"])
        s.temperature, s.t = float(info["temperature"]), int(info["t"])
        s.total_reward, s.done = float(info["total_reward"]), bool(info["done"])
        s.frames = [f.long().to(world.device) for f in t["frames"]]
        s.acts, s.outs = t["acts"].tolist(), t["outs"].tolist()
        s.frame = t["frame"].numpy()
        return s

    def _context(self, keep: int) -> tuple[list, list, list]:
        return self.acts[-keep:], self.frames[-keep:], self.outs[-keep:]

    @torch.no_grad()
    def step(self, action: int) -> tuple[np.ndarray, float, bool]:
        """-> (frame uint8 (H,W,3), reward sign, terminated)."""
        w, cfg = self.world, self.world.cfg
        if not 0 <= int(action) < cfg.num_actions:
            raise UserError(f"action {action} is not one of this world's {cfg.num_actions} actions")
        acts, frames, outs = self._context(cfg.window - 1)
        ids = w._ids(self._text_ids, acts + [int(action)], frames + [w._blank()], outs + [cfg.out_mask])
        todo = torch.zeros_like(ids["frame"], dtype=torch.bool)
        todo[0, -1] = True
        # attending as the dynamics task was trained (None: bidirectional, a world trained before causal clips)
        causal = torch.ones(1, dtype=torch.bool, device=w.device) if cfg.causal_dynamics else None
        ids = decode(w.model, ids, "frame", todo, w.sampler.steps, self.temperature, self.gen, causal=causal)
        out = int(w.model(ids["text"], ids["act"], ids["frame"], ids["out"])["out"][0, -1].argmax())
        tokens = ids["frame"][0, -1]
        self.acts.append(int(action))
        self.frames.append(tokens)
        self.outs.append(out)
        self.acts, self.frames, self.outs = self._context(cfg.window)
        self.frame = w.render_tokens(tokens[None])[0]
        self.t += 1
        reward, done = float(out // 2 - 1), bool(out % 2)
        self.total_reward += reward
        self.done = self.done or done
        return self.frame, reward, done

    @torch.no_grad()
    def act(self, temperature: float = POLICY_TEMPERATURE) -> int:
        """The world's own policy: the next action given the text and the steps so far, drawn from the policy's
        distribution with the session's generator (temperature 0: the most likely action). Drawn rather than the
        argmax by default: a deterministic policy that is not yet right repeats the same wrong action in the same
        view (walks into a wall forever), a stochastic one gets out (the usual way to run a policy-gradient agent)."""
        w, cfg = self.world, self.world.cfg
        acts, frames, outs = self._context(cfg.window - 1)
        ids = w._ids(self._text_ids, acts + [cfg.act_mask], frames + [w._blank()], outs + [cfg.out_mask])
        logits = w.model(ids["text"], ids["act"], ids["frame"], ids["out"])["act"][0, -1, :cfg.num_actions]
        if temperature <= 0:
            return int(logits.argmax())
        p = torch.softmax(logits.float().cpu() / temperature, -1)
        return int(torch.multinomial(p, 1, generator=self.gen))

    def observe(self, frame: np.ndarray, action: int, reward: float = 0.0, terminated: bool = False) -> None:
        """A real step (F): the real frame reached by `action` replaces imagination (to let the policy act in a real env)."""
        w, cfg = self.world, self.world.cfg
        tokens = w.encode_frames(frame[None])[0]
        out = (int(np.sign(reward)) + 1) * 2 + int(bool(terminated))
        self.acts.append(int(action))
        self.frames.append(tokens)
        self.outs.append(out)
        self.acts, self.frames, self.outs = self._context(cfg.window)
        self.frame = frame
        self.t += 1


def is_unified(cfg: dict) -> bool:
    return isinstance(cfg, dict) and cfg.get("kind") == KIND


def is_unified_dir(path) -> bool:
    """Does this directory hold a unified world? (False for anything else: its own loader reports what is wrong.)"""
    f = Path(path) / "world.json"
    try:
        return f.exists() and is_unified(json.loads(f.read_text()))
    except (OSError, ValueError):
        return False


def load_unified_world(path, device=None) -> UnifiedWorld:
    """A unified world from a local directory or a shipped world's name; clear errors for anything else."""
    path = worlds.locate(path)
    f = path / "world.json"
    if not f.exists():
        raise UserError(f"{path} has no world.json; is this a world directory? (train one with "
                        "`maskworld train world --kind unified`)")
    try:
        cfg = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{f} is not valid JSON ({e})") from e
    if not is_unified(cfg):
        raise UserError(f"{path} is a world of kind {cfg.get('kind', 'dynamics')!r}, not a unified world")
    if cfg.get("format_version") != WORLD_FORMAT_VERSION:
        raise UserError(f"{path}: world format version {cfg.get('format_version')}, this maskworld reads "
                        f"{WORLD_FORMAT_VERSION}")
    try:
        tok = Tokenizer(TokenizerConfig(**cfg["tokenizer"]))
        model = Unified(UnifiedConfig(**cfg["unified"]))
        vocab = TextVocab.from_dict(cfg["text"])
    except (KeyError, TypeError) as e:
        raise UserError(f"{f}: incomplete or unknown unified-world config ({e})") from e
    from safetensors.torch import load_file

    for module, name in ((tok, "tokenizer"), (model, "unified")):
        wf = path / WEIGHTS[name]
        if not wf.exists():
            raise UserError(f"{path} is missing {wf.name}; copy the whole world directory")
        try:
            module.load_state_dict(load_file(str(wf)))
        except Exception as e:
            raise UserError(f"{wf}: does not match world.json ({e}); the files come from different worlds") from e
    dev = pick_device(device)
    try:
        meta = UnifiedMeta(**cfg.get("meta", {}))
    except TypeError as e:
        raise UserError(f"{f}: unknown unified-world meta fields ({e})") from e
    return UnifiedWorld(tok.to(dev), model.to(dev), vocab, meta, path=path)
