"""A Session: one walk through a world, `frame, reward, done = s.step(action)`; one row of the stepping engine.

Design choices:
- The session's working-memory window is a row of its engine's KV cache (`engine.py`); the session holds
  the rest of the row's state — its own `torch.Generator`, frame index, memory bank, last tokens and frame —
  and only the engine advances it, so stepping it alone or in a batch gives the same frames, and
  `state_dict()` / `Session.from_state()` resume it exactly.
- `observe(frame, action)` is the inference filter F for real observations: a real frame is tokenized
  and committed to the window as if the world had produced it; in a world trained on action-free
  video, a missing action is inferred by the latent-action model from the previous frame.
- `step` never clamps: an action outside the action space is an error.
- Memory M (worlds trained with `--memory`): every committed frame goes into the session's MemoryBank
  with its pose key: the environment's pose when the caller gives one (`observe(..., pose=)`,
  `step(..., pose=)`), else the world's own, integrated from (0, 0, 0) at the first frame (`memory_keys`):
  "own" = the motion model (memory/motion.py: each action's move, made only if the world's own frame shows
  it) with loop closure by appearance (memory/appearance.py: a new frame that matches one remembered
  place almost exactly puts the pose back there); "head" = the pose head's dead reckoning (worlds saved
  without a motion model). Worlds trained without poses ("appearance") read the frames that look most like
  the last one instead. Each decoded frame reads the remembered frames and the compressed frames just older
  than the window. `memory=False` switches the reads off (ablation; the bank still fills, so it can be
  switched back on). The bank, the pose and the closure count are part of the saved session.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from safetensors.torch import load, save

from maskworld.errors import UserError
from maskworld.memory import appearance
from maskworld.memory.bank import MemoryBank
from maskworld.memory.motion import Motion
from maskworld.memory.pose import REL_EMPTY, integrate
from maskworld.world.engine import Engine
from maskworld.world.frames import as_uint8_frame


class Session:
    def __init__(self, world, seed: int = 0, memory: bool | None = None, engine: Engine | None = None):
        self.world = world
        self.engine = engine or world.engine
        self.row = self.engine.claim(self)
        """This session's row of the engine's KV cache."""
        cfg = world.dynamics.cfg
        self.memory_on = cfg.has_memory if memory is None else bool(memory) and cfg.has_memory
        self.memory_k = cfg.memory_frames
        """Retrieved frames read per step (<= the trained number; fewer = cheaper)."""
        self.memory_parts = {"retrieved": True, "compressed": True, "choose": "pose"}
        """Ablation switches: read retrieved frames, read compressed frames, choose retrieved frames by "pose"
        (as trained) or "recent"."""
        self.bank = MemoryBank(cfg.tokens_per_frame)
        self.pose = np.zeros(3, np.int64)  # pose of the last frame (estimated unless given)
        self.motion = Motion.from_dict(world.meta.motion)
        self.memory_keys = default_memory_keys(cfg.memory_keys, self.motion)
        """Memory keys when no environment pose is given: "own" (motion model + loop closure), "head" (the pose
        head's dead reckoning) or "appearance" (retrieval by appearance, no pose)."""
        self.closures = 0
        """Loop closures so far (the pose snapped back to a remembered place); `last_closure`: the frame index."""
        self.last_closure = -1
        self.seed = seed
        self.gen = torch.Generator().manual_seed(seed)
        self.pos = 0  # frame index of the next frame
        self.steps = 0
        self.total_reward = 0.0
        self.done = False
        self._frame: np.ndarray | None = None  # last frame (H,W,3) uint8, rendered when first asked for
        self.tokens: np.ndarray | None = None  # last frame's tokens (h,w) uint16
        self.prev_tokens: np.ndarray | None = None  # the frame before it (the LAM's frame t-1)
        self.actions: list[int] = []

    # ------------------------------------------------------------------ start
    @classmethod
    def start(cls, world, prompt=None, seed: int = 0, actions=None, memory: bool | None = None,
              engine: Engine | None = None) -> "Session":
        s = cls(world, seed, memory, engine)
        if prompt is None:
            s.engine.generate_first([s])
            return s
        arr = prompt if isinstance(prompt, np.ndarray) and prompt.ndim == 4 else None
        frames = [as_uint8_frame(f, world.meta.size) for f in arr] if arr is not None else [as_uint8_frame(prompt, world.meta.size)]
        acts = list(actions) if actions is not None else [None] * len(frames)
        if len(acts) != len(frames):
            raise UserError(f"prompt has {len(frames)} frames but {len(acts)} actions; give one action per frame (None for the first)")
        for f, a in zip(frames, acts):
            s.observe(f, a)
        return s

    @torch.no_grad()
    def observe(self, frame, action: int | None = None, pose=None) -> int | None:
        """F: feed a real frame (and the action that led to it, if known) into the world's context.

        pose: the environment's (x, y, dir) of this frame, if known (memory keys); else the world estimates it.
        Returns the action committed with it: the given one, the latent code the LAM inferred, or None."""
        w = self.world
        img = as_uint8_frame(frame, w.meta.size)
        if action is None and w.lam is not None and self.tokens is not None:
            # Action-free world: F infers the latent action that led from the last frame to this one.
            dev, g = w.device, w.dynamics.cfg.grid
            toks = w.tokenizer.tokenize_uint8(torch.from_numpy(np.array(img))[None].to(dev))
            last = torch.from_numpy(self.tokens.astype(np.int64))[None].to(dev)
            before = torch.from_numpy(self.prev_tokens.astype(np.int64))[None].to(dev) if self.prev_tokens is not None else None
            action = int(w.lam.infer(last, toks.view(1, g, g), before)[0])
        a = None if action is None else self.check_action(action)
        self.engine.observe([self], img[None], [a], None if pose is None else [pose])
        return action

    # ------------------------------------------------------------------ what the engine calls
    def _advance(self, tokens_hw: np.ndarray, frame: np.ndarray, pose_logits, pose, observed: bool,
                 action: int = -1) -> None:
        """A frame was committed to this session's row (`action` led into it): remember it, move the pose, keep
        tokens and frame."""
        if pose is not None:
            self.pose = np.asarray(pose, np.int64).reshape(3)
        elif self.bank.size > 0:
            if self.memory_keys == "own" and self.motion is not None:
                self.pose = self.motion.step(self.pose, action, self.tokens, tokens_hw)
                if self.memory_on:  # memory switched off reads nothing, loop closure included
                    self._close_loop(tokens_hw)
            elif self.memory_keys in ("own", "head") and pose_logits is not None:
                self.pose = integrate(self.pose, int(pose_logits.argmax()))
        if self.world.dynamics.cfg.has_memory:  # worlds without memory M keep no bank (saved sessions stay small)
            self.bank.append(tokens_hw.reshape(-1), self.pose, observed)
        self.pos += 1
        self.prev_tokens, self.tokens, self._frame = self.tokens, tokens_hw, frame

    def _close_loop(self, tokens_hw: np.ndarray) -> None:
        """Loop closure: the frame being committed (index self.pos) against the remembered frames outside the window."""
        cfg = self.world.dynamics.cfg
        old = self.pos - cfg.window + 1  # frames 0 .. old-1 have left the window
        if old <= 0:
            return
        snap = appearance.closure(tokens_hw.reshape(-1), self.bank.tokens[:old], self.bank.poses[:old], cfg.grid,
                                  pose=self.pose)
        if snap is not None and (snap != self.pose).any():
            self.pose = snap
            self.closures += 1
            self.last_closure = self.pos

    @property
    def frame(self) -> np.ndarray | None:
        """The last frame (H,W,3) uint8: what the world shows (world/compose.py), rendered when first read."""
        if self._frame is None and self.tokens is not None:
            toks = torch.from_numpy(self.tokens.astype(np.int64))[None].to(self.world.device)
            with torch.no_grad():
                self._frame = self.world.tokenizer.render_uint8(toks)[0].cpu().numpy()
        return self._frame

    def _record_step(self, action: int, reward: float, done: bool) -> None:
        self.steps += 1
        self.actions.append(action)
        self.total_reward += reward
        self.done = done

    def memory_input_row(self):
        """This session's memory for its next frame: (retrieved, rel, compressed, comp_valid) numpy arrays."""
        cfg = self.world.dynamics.cfg
        parts = self.memory_parts
        m = self.memory_k if self.memory_on and parts["retrieved"] else 0
        choose = "appearance" if self.memory_keys == "appearance" and parts["choose"] == "pose" else parts["choose"]
        ret, rel, comp, valid = self.bank.query(self.pos, self.pose, cfg.window, cfg.memory_frames, cfg.compressed_frames,
                                                choose, self.tokens, cfg.grid)
        if m < cfg.memory_frames:  # fewer reads (or memory off): the rest of the slots are empty
            rel[m:] = REL_EMPTY
        if not (self.memory_on and parts["compressed"]):
            valid[:] = False
        return ret, rel, comp, valid

    @property
    def window_frames(self) -> int:
        """Frames in the session's working window (its row of the KV cache)."""
        return int(self.engine.cache.valid[self.row].sum())

    @property
    def memory_frames(self) -> int:
        """Frames the session's memory holds (what the play page shows)."""
        return self.bank.size

    # ------------------------------------------------------------------ stepping
    def check_action(self, action) -> int:
        """A world action as an int; anything else (wrong type, out of range) is a UserError naming the valid ones."""
        n = self.world.num_actions
        if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)):
            raise UserError(f"action {action!r} is not an integer; valid actions are 0..{n - 1} ({', '.join(self.world.action_meanings)})")
        if not 0 <= int(action) < n:
            raise UserError(f"action {action} is outside the action space 0..{n - 1} ({', '.join(self.world.action_meanings)})")
        return int(action)

    def step(self, action: int, pose=None):
        """-> (frame (H,W,3) uint8, reward float, done bool). pose: the environment's pose of the new frame, if known."""
        return self.engine.step([self], [action], None if pose is None else [pose])[0]

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> tuple[dict, dict]:
        """-> (tensors for safetensors, JSON-able info). Together they resume the session exactly."""
        t: dict[str, torch.Tensor] = {"rng": self.gen.get_state(), "tokens": torch.from_numpy(self.tokens.astype(np.int32))}
        if self.prev_tokens is not None:
            t["prev_tokens"] = torch.from_numpy(self.prev_tokens.astype(np.int32))
        t.update(self.bank.state())
        t["memory.pose"] = torch.from_numpy(self.pose.copy())
        t.update(self.engine.cache.row_state(self.row))
        if self.world.render == "composite":  # the next frame is drawn over the one shown: keep it (12 KB at 64x64)
            t["frame"] = torch.from_numpy(np.ascontiguousarray(self.frame))
        info = {
            "seed": self.seed, "pos": self.pos, "steps": self.steps, "total_reward": self.total_reward,
            "done": self.done, "actions": self.actions, "cache_layout": "ring",
            "memory_on": self.memory_on, "memory_k": self.memory_k, "memory_parts": self.memory_parts,
            "memory_keys": self.memory_keys, "closures": self.closures, "last_closure": self.last_closure,
        }
        return t, info

    @classmethod
    def from_state(cls, world, tensors: dict, info: dict, engine: Engine | None = None) -> "Session":
        s = cls(world, int(info["seed"]), info.get("memory_on"), engine)
        s.memory_k = int(info.get("memory_k", s.memory_k))
        s.memory_parts.update(info.get("memory_parts", {}))
        s.memory_keys = check_memory_keys(info.get("memory_keys", "head"), world)  # saved before own keys: the pose head
        s.closures, s.last_closure = int(info.get("closures", 0)), int(info.get("last_closure", -1))
        s.bank = MemoryBank.from_state(tensors, world.dynamics.cfg.tokens_per_frame)
        if "memory.pose" in tensors:
            s.pose = tensors["memory.pose"].numpy().astype(np.int64)
        s.gen.set_state(tensors["rng"])
        s.pos, s.steps = int(info["pos"]), int(info["steps"])
        s.total_reward, s.done, s.actions = float(info["total_reward"]), bool(info["done"]), list(info["actions"])
        cache = s.engine.cache
        if info.get("cache_layout") == "ring":
            cache.load_row(s.row, tensors)
        elif "cache.valid" in tensors:  # saved before the ring layout: keys/values in time order, oldest first
            n = world.dynamics.cfg.n_layers
            keep = tensors["cache.valid"].bool()[0]
            cache.load_row_in_order(s.row, [tensors[f"cache.k.{i}"][0][:, keep] for i in range(n)],
                                    [tensors[f"cache.v.{i}"][0][:, keep] for i in range(n)], s.pos)
        s.tokens = tensors["tokens"].numpy().astype(np.uint16)
        if "prev_tokens" in tensors:
            s.prev_tokens = tensors["prev_tokens"].numpy().astype(np.uint16)
        if "frame" in tensors:
            s._frame = tensors["frame"].numpy().astype(np.uint8)
        return s

    def to_bytes(self) -> tuple[bytes, str]:
        t, info = self.state_dict()
        return save({k: v.contiguous() for k, v in t.items()}), json.dumps(info)

    @classmethod
    def from_bytes(cls, world, blob: bytes, info_json: str, engine: Engine | None = None) -> "Session":
        return cls.from_state(world, load(blob), json.loads(info_json), engine)


def step_many(world, sessions: list[Session], actions: list[int], poses=None):
    """One batched MaskGIT decode + commit for all sessions -> [(frame, reward, done)]. (`Engine.step`.)"""
    if not sessions:
        return []
    return list(sessions[0].engine.step(sessions, actions, poses))


MEMORY_KEYS = ("own", "head", "appearance")


def default_memory_keys(trained: str, motion: Motion | None) -> str:
    """A new session's keys: appearance for worlds trained without poses; else its own pose, by the motion model
    where the world has one, by the pose head otherwise."""
    if trained == "appearance":
        return "appearance"
    return "own" if motion is not None else "head"


def check_memory_keys(keys: str, world) -> str:
    """`keys` if this world can use them, else a UserError naming those it can."""
    if keys not in MEMORY_KEYS:
        raise UserError(f"memory keys {keys!r}: use one of {', '.join(MEMORY_KEYS)}")
    if world.dynamics.cfg.memory_keys == "appearance" and keys != "appearance":
        raise UserError(f"memory keys {keys!r}: this world was trained without poses and finds memory by appearance only")
    if keys == "own" and not world.meta.motion:
        return "head"  # no motion model saved: its own pose is the pose head's
    return keys
