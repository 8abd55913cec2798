"""A Session: one walk through a world. `frame, reward, done = s.step(action)`.

Design choices:
- The session owns its KV cache (the working-memory window), its frame index, and its own
  `torch.Generator`, so stepping it alone or inside a batch (`step_many`) gives the same frames, and
  `state_dict()` / `Session.from_state()` resume it exactly.
- `observe(frame, action)` is the inference filter F for real observations: a real frame is tokenized
  and committed to the cache as if the world had produced it; in a world trained on action-free
  video, a missing action is inferred by the latent-action model from the previous frame.
- `step` never clamps: an action outside the action space is an error.
- Memory M (worlds trained with `--memory`): every committed frame goes into the session's MemoryBank
  with its pose key: the environment's pose when the caller gives one (`observe(..., pose=)`,
  `step(..., pose=)`), else the world's own estimate (its pose head's predicted move, integrated from
  (0, 0, 0) at the first frame). Each decoded frame reads the nearest remembered frames and the
  compressed frames just older than the window. `memory=False` switches the reads off (ablation; the
  bank still fills, so it can be switched back on). The bank is part of the saved session.
"""

from __future__ import annotations

import json

import numpy as np
import torch

from maskworld.errors import UserError
from maskworld.memory.bank import MemoryBank
from maskworld.memory.pose import REL_EMPTY, integrate
from maskworld.models.dynamics import KVCache
from maskworld.models.sampler import decode_frame
from maskworld.world.world import World, as_uint8_frame


def _reward_value(logits_B3: torch.Tensor) -> torch.Tensor:
    """Sign classes (neg, zero, pos) -> -1/0/+1 of the most likely class."""
    return logits_B3.argmax(-1).float() - 1.0


class Session:
    def __init__(self, world: World, seed: int = 0, memory: bool | None = None):
        self.world = world
        cfg = world.dynamics.cfg
        self.memory_on = cfg.has_memory if memory is None else bool(memory) and cfg.has_memory
        self.memory_k = cfg.memory_frames
        """Retrieved frames read per step (<= the trained number; fewer = cheaper)."""
        self.memory_parts = {"retrieved": True, "compressed": True, "choose": "pose"}
        """Ablation switches: read retrieved frames, read compressed frames, choose retrieved frames by "pose"
        (as trained) or "recent"."""
        self.bank = MemoryBank(cfg.tokens_per_frame)
        self.pose = np.zeros(3, np.int64)  # pose of the last frame (estimated unless given)
        self.seed = seed
        self.gen = torch.Generator().manual_seed(seed)
        self.cache: KVCache | None = None
        self.pos = 0  # frame index of the next frame
        self.steps = 0
        self.total_reward = 0.0
        self.done = False
        self.frame: np.ndarray | None = None  # last frame (H,W,3) uint8
        self.tokens: np.ndarray | None = None  # last frame's tokens (h,w)
        self.prev_tokens: np.ndarray | None = None  # the frame before it (the LAM's frame t-1)
        self.actions: list[int] = []

    # ------------------------------------------------------------------ start
    @classmethod
    def start(cls, world: World, prompt=None, seed: int = 0, actions=None, memory: bool | None = None) -> "Session":
        s = cls(world, seed, memory)
        if prompt is None:
            s._generate_first()
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
    def _generate_first(self) -> None:
        """No prompt: the world imagines a first frame from nothing (NULL action, empty context)."""
        w = self.world
        dev = w.device
        null = torch.tensor([w.dynamics.cfg.null_action], device=dev)
        pos = torch.tensor([0], device=dev)
        toks = decode_frame(w.dynamics, None, null, pos, w.sampler, [self.gen])
        self._commit(toks, null)

    @torch.no_grad()
    def observe(self, frame, action: int | None = None, pose=None) -> int | None:
        """F: feed a real frame (and the action that led to it, if known) into the world's context.

        pose: the environment's (x, y, dir) of this frame, if known (memory keys); else the world estimates it.
        Returns the action committed with it: the given one, the latent code the LAM inferred, or None."""
        w = self.world
        img = as_uint8_frame(frame, w.meta.size)
        dev = w.device
        toks = w.tokenizer.tokenize_uint8(torch.from_numpy(np.array(img))[None].to(dev)).flatten(1)
        if action is None and w.lam is not None and self.tokens is not None:
            # Action-free world: F infers the latent action that led from the last frame to this one.
            g = w.dynamics.cfg.grid
            last = torch.from_numpy(self.tokens.astype(np.int64))[None].to(dev)
            before = torch.from_numpy(self.prev_tokens.astype(np.int64))[None].to(dev) if self.prev_tokens is not None else None
            action = int(w.lam.infer(last, toks.view(1, g, g), before)[0])
        a = w.dynamics.cfg.null_action if action is None else self._check_action(action)
        self._commit(toks, torch.tensor([a], device=dev), pose, observed=True)
        return action

    def _commit(self, toks_1N: torch.Tensor, action_1: torch.Tensor, pose=None, observed: bool = False):
        w = self.world
        pos = torch.tensor([self.pos], device=toks_1N.device)
        self.cache, r, d, p = w.dynamics.commit(toks_1N, action_1, pos, self.cache, return_pose=True)
        self._remember(toks_1N[0], p[0] if p is not None else None, pose, observed)
        self.pos += 1
        g = w.dynamics.cfg.grid
        self.prev_tokens = self.tokens
        self.tokens = toks_1N[0].view(g, g).cpu().numpy().astype(np.uint16)
        self.frame = w.tokenizer.render_uint8(toks_1N.view(1, g, g))[0].cpu().numpy()
        return r, d

    def _remember(self, toks_N: torch.Tensor, pose_logits, pose, observed: bool = False) -> None:
        """Store the committed frame with its pose (given, else the estimate moved by the pose head) and whether it
        is a real frame (observed) or the world's own."""
        if pose is not None:
            self.pose = np.asarray(pose, np.int64).reshape(3)
        elif pose_logits is not None and self.bank.size > 0:
            self.pose = integrate(self.pose, int(pose_logits.argmax()))
        if self.world.dynamics.cfg.has_memory:  # worlds without memory M keep no bank (saved sessions stay small)
            self.bank.append(toks_N.cpu().numpy().astype(np.uint16), self.pose, observed)

    def memory_input_row(self):
        """This session's memory for its next frame: (retrieved, rel, compressed, comp_valid) numpy arrays."""
        cfg = self.world.dynamics.cfg
        parts = self.memory_parts
        m = self.memory_k if self.memory_on and parts["retrieved"] else 0
        ret, rel, comp, valid = self.bank.query(self.pos, self.pose, cfg.window, cfg.memory_frames, cfg.compressed_frames,
                                                parts["choose"])
        if m < cfg.memory_frames:  # fewer reads (or memory off): the rest of the slots are empty
            rel[m:] = REL_EMPTY
        if not (self.memory_on and parts["compressed"]):
            valid[:] = False
        return ret, rel, comp, valid

    @property
    def memory_frames(self) -> int:
        """Frames the session's memory holds (what the play page shows)."""
        return self.bank.size

    # ------------------------------------------------------------------ stepping
    def _check_action(self, action) -> int:
        n = self.world.num_actions
        if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)):
            raise UserError(f"action {action!r} is not an integer; valid actions are 0..{n - 1} ({', '.join(self.world.action_meanings)})")
        if not 0 <= int(action) < n:
            raise UserError(f"action {action} is outside the action space 0..{n - 1} ({', '.join(self.world.action_meanings)})")
        return int(action)

    def step(self, action: int, pose=None):
        """-> (frame (H,W,3) uint8, reward float, done bool). pose: the environment's pose of the new frame, if known."""
        return step_many(self.world, [self], [action], None if pose is None else [pose])[0]

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> tuple[dict, dict]:
        """-> (tensors for safetensors, JSON-able info). Together they resume the session exactly."""
        t: dict[str, torch.Tensor] = {"rng": self.gen.get_state(), "tokens": torch.from_numpy(self.tokens.astype(np.int32))}
        if self.prev_tokens is not None:
            t["prev_tokens"] = torch.from_numpy(self.prev_tokens.astype(np.int32))
        t.update(self.bank.state())
        t["memory.pose"] = torch.from_numpy(self.pose.copy())
        if self.cache is not None:
            for i, (k, v) in enumerate(zip(self.cache.k, self.cache.v)):
                t[f"cache.k.{i}"], t[f"cache.v.{i}"] = k.cpu(), v.cpu()
            t["cache.valid"] = self.cache.valid.cpu().to(torch.uint8)
        info = {
            "seed": self.seed, "pos": self.pos, "steps": self.steps, "total_reward": self.total_reward,
            "done": self.done, "actions": self.actions, "cache_frames": self.cache.frames if self.cache else 0,
            "memory_on": self.memory_on, "memory_k": self.memory_k, "memory_parts": self.memory_parts,
        }
        return t, info

    @classmethod
    def from_state(cls, world: World, tensors: dict, info: dict) -> "Session":
        s = cls(world, int(info["seed"]), info.get("memory_on"))
        s.memory_k = int(info.get("memory_k", s.memory_k))
        s.memory_parts.update(info.get("memory_parts", {}))
        s.bank = MemoryBank.from_state(tensors, world.dynamics.cfg.tokens_per_frame)
        if "memory.pose" in tensors:
            s.pose = tensors["memory.pose"].numpy().astype(np.int64)
        s.gen.set_state(tensors["rng"])
        s.pos, s.steps = int(info["pos"]), int(info["steps"])
        s.total_reward, s.done, s.actions = float(info["total_reward"]), bool(info["done"]), list(info["actions"])
        dev = world.device
        n = world.dynamics.cfg.n_layers
        if "cache.valid" in tensors:
            s.cache = KVCache(
                [tensors[f"cache.k.{i}"].to(dev) for i in range(n)], [tensors[f"cache.v.{i}"].to(dev) for i in range(n)],
                tensors["cache.valid"].bool().to(dev), int(info["cache_frames"]),
            )
        toks = tensors["tokens"].long().to(dev)
        s.tokens = toks.cpu().numpy().astype(np.uint16)
        if "prev_tokens" in tensors:
            s.prev_tokens = tensors["prev_tokens"].numpy().astype(np.uint16)
        s.frame = world.tokenizer.render_uint8(toks[None])[0].cpu().numpy()
        return s

    def to_bytes(self) -> tuple[bytes, str]:
        from safetensors.torch import save

        t, info = self.state_dict()
        return save({k: v.contiguous() for k, v in t.items()}), json.dumps(info)

    @classmethod
    def from_bytes(cls, world: World, blob: bytes, info_json: str) -> "Session":
        from safetensors.torch import load

        return cls.from_state(world, load(blob), json.loads(info_json))


def _stack_caches(caches: list[KVCache]) -> KVCache:
    """Left-pad each session's cache to the longest and stack them into one batch."""
    if len(caches) == 1:
        return caches[0]
    L = max(c.valid.shape[1] for c in caches)
    def pad(x, n):  # (1, nh, l, hd) -> (1, nh, L, hd)
        return torch.nn.functional.pad(x, (0, 0, n, 0)) if n else x
    ks, vs = [], []
    for layer in range(len(caches[0].k)):
        ks.append(torch.cat([pad(c.k[layer], L - c.valid.shape[1]) for c in caches], 0))
        vs.append(torch.cat([pad(c.v[layer], L - c.valid.shape[1]) for c in caches], 0))
    valid = torch.cat([torch.nn.functional.pad(c.valid, (L - c.valid.shape[1], 0)) for c in caches], 0)
    return KVCache(ks, vs, valid, max(c.frames for c in caches))


def _split_cache(cache: KVCache, frames: list[int]) -> list[KVCache]:
    if cache.valid.shape[0] == 1 and bool(cache.valid.all()):
        return [KVCache(cache.k, cache.v, cache.valid, frames[0])]
    out = []
    for b in range(cache.valid.shape[0]):
        n = int(cache.valid[b].sum())  # drop this row's left padding
        out.append(KVCache([k[b : b + 1, :, -n:] if n else k[b : b + 1, :, :0] for k in cache.k],
                           [v[b : b + 1, :, -n:] if n else v[b : b + 1, :, :0] for v in cache.v],
                           cache.valid[b : b + 1, -n:] if n else cache.valid[b : b + 1, :0], frames[b]))
    return out


@torch.no_grad()
def _memory_input(world: World, sessions: list[Session]):
    """The batch's MemoryInput, or None when no session reads memory (then the model runs exactly as without)."""
    from maskworld.models.memory_reader import MemoryInput

    cfg = world.dynamics.cfg
    if not cfg.has_memory:
        return None
    # memory off still reads the (empty) memory: that is the "no memory" the network was trained with (20 % of
    # clips), whereas skipping the reads would feed it an input it never saw
    rows = [s.memory_input_row() for s in sessions]
    dev = world.device
    ret, rel, comp, valid = (torch.from_numpy(np.stack([r[i] for r in rows])).to(dev) for i in range(4))
    return MemoryInput(ret if cfg.memory_frames else None, rel if cfg.memory_frames else None,
                       comp if cfg.compressed_frames else None, valid if cfg.compressed_frames else None)


@torch.no_grad()
def step_many(world: World, sessions: list[Session], actions: list[int], poses=None):
    """One batched MaskGIT decode + commit for all sessions. -> [(frame, reward, done)].

    poses: optional environment poses (x, y, dir) of the new frames, one per session (memory keys)."""
    if len(sessions) != len(actions):
        raise UserError(f"{len(sessions)} sessions but {len(actions)} actions")
    if not sessions:
        return []
    acts = [s._check_action(a) for s, a in zip(sessions, actions)]
    dev = world.device
    dyn = world.dynamics
    cache = _stack_caches([s.cache for s in sessions])
    a = torch.tensor(acts, device=dev)
    pos = torch.tensor([s.pos for s in sessions], device=dev)
    toks = decode_frame(dyn, cache, a, pos, world.sampler, [s.gen for s in sessions], _memory_input(world, sessions))
    new_cache, r_logits, d_logits, p_logits = dyn.commit(toks, a, pos, cache, return_pose=True)
    g = dyn.cfg.grid
    frames = world.tokenizer.render_uint8(toks.view(-1, g, g)).cpu().numpy()
    rewards = _reward_value(r_logits).cpu().numpy()
    dones = (d_logits > 0).cpu().numpy()
    caches = _split_cache(new_cache, [min(s.cache.frames + 1, dyn.cfg.window - 1) for s in sessions])
    out = []
    for i, s in enumerate(sessions):
        s._remember(toks[i], p_logits[i] if p_logits is not None else None, None if poses is None else poses[i])
        s.cache, s.pos, s.steps = caches[i], s.pos + 1, s.steps + 1
        s.prev_tokens, s.tokens = s.tokens, toks[i].view(g, g).cpu().numpy().astype(np.uint16)
        s.frame = frames[i]
        s.actions.append(acts[i])
        s.total_reward += float(rewards[i])
        s.done = bool(dones[i])
        out.append((frames[i], float(rewards[i]), bool(dones[i])))
    return out
