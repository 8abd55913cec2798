"""The stepping engine: many sessions of one world stepped in one forward pass.

Design choices (DIAMOND's `WorldModelEnv`: one batched object that both RL and human play drive):
- One engine owns one KV cache (`models/kv_cache.py`) whose rows are sessions; a session claims a row when it
  opens and gives it back when it is dropped, and no other row moves. Play's ticker, the Gymnasium env and
  vector env, imagination, evaluation, rollouts, the revisit benchmark and the bench all step through
  `Engine.step` (or its two halves, `decode` and `commit`, when real frames are committed in between).
- A row's state besides its cache (its RNG, frame index, memory bank, last tokens and frame) lives in its
  `Session`, the serialisable one-row view; only the engine advances it.
- Each row samples from its own `torch.Generator` and is computed with the same shapes alone or in a batch,
  so a batch gives every session exactly the frames it would get alone.
- The reward convention is a parameter: "argmax" (the most likely reward class's value, the thresholded end: what
  play and Dream-v0 return) or "expected" (the reward's expected value under the head, p(+1) - p(-1) for a world
  of sign classes, and 1 - p(end): imagination weighs steps by them, as
  DreamerV3 weighs imagined steps by the predicted continue probability).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch

from maskworld.errors import UserError
from maskworld.models.dynamics import FrameHeads
from maskworld.models.kv_cache import KVCache
from maskworld.models.memory_reader import MemoryInput
from maskworld.models.sampler import SamplerConfig, decode_frame
from maskworld.world.compose import composite
from maskworld.world.factorised import factorised_decode

HEADS = ("argmax", "expected")


@dataclass
class StepOutput:
    """One step of B sessions."""

    frames: np.ndarray
    """(B, H, W, 3) uint8: the tokenizer's rendering of the new frames."""
    tokens: torch.Tensor
    """(B, N) long: the new frames' tokens."""
    reward: np.ndarray
    """(B,) float32: the most likely class's value ("argmax") or the expected value ("expected") of the reward head
    (the sign -1/0/+1 for a world with sign classes)."""
    done: np.ndarray
    """(B,) bool: the termination head says the episode ended (logit > 0)."""
    continues: np.ndarray
    """(B,) float32: 1 - p(end) ("expected") or 1 - done ("argmax")."""

    def __iter__(self):
        """Per session: (frame, reward, done), what `Session.step` returns."""
        return ((self.frames[i], float(self.reward[i]), bool(self.done[i])) for i in range(len(self.frames)))

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i):
        return self.frames[i], float(self.reward[i]), bool(self.done[i])


def head_values(heads: FrameHeads, convention: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reward and termination heads -> (reward (B,), done (B,), continues (B,)) under a convention."""
    if convention not in HEADS:
        raise ValueError(f"heads must be one of {HEADS}, not {convention!r}")
    done = (heads.term > 0).cpu().numpy()
    if convention == "expected":
        p = torch.softmax(heads.reward.float(), -1)
        reward = (p @ torch.tensor(heads.values, dtype=p.dtype, device=p.device)).cpu().numpy()
        cont = (1.0 - torch.sigmoid(heads.term.float())).cpu().numpy()
    else:
        reward = np.asarray(heads.values, np.float32)[heads.reward.argmax(-1).cpu().numpy()]
        cont = 1.0 - done.astype(np.float32)
    return reward.astype(np.float32), done, cont.astype(np.float32)


class Engine:
    """The KV-cache rows of many sessions of one world, and the batched step over any subset of them."""

    def __init__(self, world, rows: int = 1):
        self.world = world
        cfg = world.dynamics.cfg
        self.cache = KVCache.for_model(cfg, max(1, rows), world.device)
        self._free = list(range(self.cache.rows))[::-1]  # a stack: the lowest free row is claimed first
        self._released: list[int] = []  # rows of dropped sessions, freed by the next claim

    # ------------------------------------------------------------------ rows
    def claim(self, owner) -> int:
        """A free row for `owner` (a Session); the row is given back when the owner is garbage-collected."""
        self._drain_released()
        if not self._free:
            n = self.cache.rows
            self.cache.resize(2 * n)
            self._free = list(range(n, 2 * n))[::-1]
        row = self._free.pop()
        self.cache.clear(row)
        weakref.finalize(owner, self._released.append, row)
        return row

    def _drain_released(self) -> None:
        """Rows of dropped sessions become free here, on the thread that steps: a session may be dropped on any
        thread (the play server's event loop), and only appending to a list is safe there."""
        while self._released:
            self._free.append(self._released.pop())
        self._free.sort(reverse=True)

    @property
    def rows_in_use(self) -> int:
        self._drain_released()
        return self.cache.rows - len(self._free)

    # ------------------------------------------------------------------ the step and its halves
    def _check(self, sessions) -> list[int]:
        rows = []
        for s in sessions:
            if s.engine is not self:
                raise UserError("sessions of different engines cannot step together; open them from the same world")
            rows.append(s.row)
        return rows

    @torch.no_grad()
    def decode(self, sessions, actions_B: torch.Tensor, sampler: SamplerConfig | None = None) -> torch.Tensor:
        """The next frame's tokens (B, N) of each session (MaskGIT over the cached window); nothing is committed."""
        rows = self._check(sessions)
        if self.factorised(sessions, actions_B):
            return factorised_decode(self, sessions, actions_B, sampler or self.world.sampler)
        view = self.cache.view(rows)
        pos = torch.tensor([s.pos for s in sessions], device=self.cache.device)
        return decode_frame(self.world.dynamics, view, actions_B, pos, sampler or self.world.sampler,
                            [s.gen for s in sessions], self.memory_input(sessions), self.last_tokens(sessions))

    def factorised(self, sessions, actions_B: torch.Tensor) -> bool:
        """Decode avatar by avatar (world/factorised.py): a world of several agents with a locator, rolled out
        "factorised", every session with a frame to locate its avatars in and a real (not NULL) action."""
        w = self.world
        return (w.rollout == "factorised" and w.locator is not None and all(s.tokens is not None for s in sessions)
                and bool((actions_B < w.dynamics.cfg.null_action).all()))

    def last_tokens(self, sessions) -> torch.Tensor | None:
        """(B, N) the sessions' last frames (MASK for a session without one), for worlds that decode from them."""
        cfg = self.world.dynamics.cfg
        if not cfg.prev_frame_prior:
            return None
        empty = np.full(cfg.tokens_per_frame, cfg.mask_id, np.int64)
        rows = [empty if s.tokens is None else s.tokens.reshape(-1).astype(np.int64) for s in sessions]
        return torch.from_numpy(np.stack(rows)).to(self.cache.device)

    @torch.no_grad()
    def commit(self, sessions, tokens_BN: torch.Tensor, actions_B: torch.Tensor, poses=None,
               observed: bool = False, render: bool = True, real_BHW3: np.ndarray | None = None) -> FrameHeads:
        """Append each session's frame (tokens + the action into it) to its window and memory, render it.

        poses: the environment's (x, y, dir) per session, or None (the world's own estimate); observed: the
        frames are real ones (F), which memory prefers over imagined views of a place; render=False leaves the
        rendering to the first read of `session.frame` (teacher forcing commits many frames nobody looks at).
        real_BHW3: the real frames of an observation, which a "composite" world shows as they are."""
        rows = self._check(sessions)
        dyn, dev = self.world.dynamics, self.cache.device
        pos = torch.tensor([s.pos for s in sessions], device=dev)
        view = self.cache.view(rows)
        heads = dyn.commit(tokens_BN, actions_B, pos, view)
        self.cache.store(view, rows, pos)
        g = dyn.cfg.grid
        toks = tokens_BN.view(-1, g, g).cpu().numpy().astype(np.uint16)
        frames = self._frames_to_show(sessions, tokens_BN.view(-1, g, g), toks, render, real_BHW3)
        acts = actions_B.tolist()
        for i, s in enumerate(sessions):
            pose_logits = heads.pose[i] if heads.pose is not None else None
            s._advance(toks[i], None if frames is None else frames[i], pose_logits, None if poses is None else poses[i],
                       observed, acts[i])
        return heads

    def _frames_to_show(self, sessions, tokens_Bhw: torch.Tensor, toks: np.ndarray, render: bool,
                        real_BHW3: np.ndarray | None) -> np.ndarray | None:
        """(B,H,W,3) uint8 per session, or None (rendered when first read). "composite": a real frame as it is,
        an imagined one redrawn only where its tokens changed (compose.py); sessions without a frame before
        show the whole rendering."""
        if self.world.render != "composite":
            return self.world.tokenizer.render_uint8(tokens_Bhw).cpu().numpy() if render else None
        if real_BHW3 is not None:
            return np.array(real_BHW3, np.uint8)
        rendered = self.world.tokenizer.render_uint8(tokens_Bhw).cpu().numpy()
        had = [i for i, s in enumerate(sessions) if s.tokens is not None]
        if had:
            rendered[had] = composite(np.stack([sessions[i].frame for i in had]),
                                      np.stack([sessions[i].tokens for i in had]), toks[had], rendered[had])
        return rendered

    @torch.no_grad()
    def step(self, sessions, actions, poses=None, heads: str = "argmax", sampler: SamplerConfig | None = None) -> StepOutput:
        """Decode and commit one imagined frame for every session. actions: world actions (validated here)."""
        if len(sessions) != len(actions):
            raise UserError(f"{len(sessions)} sessions but {len(actions)} actions")
        if heads not in HEADS:
            raise ValueError(f"heads must be one of {HEADS}, not {heads!r}")
        acts = [s.check_action(a) for s, a in zip(sessions, actions)]
        if not sessions:
            empty = np.zeros(0, np.float32)
            return StepOutput(np.zeros((0, 0, 0, 3), np.uint8), torch.zeros(0, 0, dtype=torch.long), empty,
                              np.zeros(0, bool), empty)
        a = torch.tensor(acts, device=self.cache.device)
        toks = self.decode(sessions, a, sampler)
        out = self.commit(sessions, toks, a, poses)
        reward, done, cont = head_values(out, heads)
        for i, s in enumerate(sessions):
            s._record_step(acts[i], float(reward[i]), bool(done[i]))
        return StepOutput(np.stack([s.frame for s in sessions]), toks, reward, done, cont)

    @torch.no_grad()
    def observe(self, sessions, frames_BHW3: np.ndarray, actions, poses=None, render: bool = True) -> FrameHeads:
        """F for many sessions at once: tokenize real frames (B,H,W,3) uint8 and commit them with the actions
        into them (None = the NULL action of an episode's first frame)."""
        w, dev = self.world, self.cache.device
        toks = w.tokenizer.tokenize_uint8(torch.from_numpy(np.array(frames_BHW3, np.uint8)).to(dev)).flatten(1)
        null = w.dynamics.cfg.null_action
        a = torch.tensor([null if x is None else int(x) for x in actions], device=dev)
        return self.commit(sessions, toks, a, poses, observed=True, render=render, real_BHW3=frames_BHW3)

    @torch.no_grad()
    def generate_first(self, sessions) -> None:
        """No prompt: each session's world imagines a first frame from nothing (NULL action, empty window)."""
        null = torch.full((len(sessions),), self.world.dynamics.cfg.null_action, device=self.cache.device)
        self.commit(sessions, self.decode(sessions, null), null)

    # ------------------------------------------------------------------ memory M
    def memory_input(self, sessions) -> MemoryInput | None:
        """The batch's MemoryInput, or None when the world has no memory (the model then runs exactly as without)."""
        cfg = self.world.dynamics.cfg
        if not cfg.has_memory:
            return None
        # memory off still reads the (empty) memory: that is the "no memory" the network was trained with (a
        # share of clips), whereas skipping the reads would feed it an input it never saw
        rows = [s.memory_input_row() for s in sessions]
        ret, rel, comp, valid = (torch.from_numpy(np.stack([r[i] for r in rows])).to(self.cache.device) for i in range(4))
        return MemoryInput(ret if cfg.memory_frames else None, rel if cfg.memory_frames else None,
                           comp if cfg.compressed_frames else None, valid if cfg.compressed_frames else None)
