"""Inverse-dynamics model (IDM) for action-following accuracy: (frame_t, frame_t+1) -> action_t.

Design choices (controllability, as in Genie's evaluation):
- Trained inside `maskworld eval` on *real* transitions of the training split, for a fixed number of
  steps (deterministic given the seed; seconds on a CPU), then scored on real held-out transitions
  (`control.idm_accuracy_real`, the ceiling: some actions have no visible effect) and applied to
  generated transitions (`control.idm_accuracy`): if the world ignores actions, the IDM cannot
  recover them and falls to chance.
- Input: both frames and their difference (9 channels) at 32x32, three stride-2 convs, a linear head. Small on
  purpose: it must learn in a fixed budget of a few hundred steps.
- Frames are kept once per episode; pairs are indices into them (no duplicated frame memory), and each
  pair remembers its episode (confidence intervals resample episodes, maskworld.eval.uncertainty).
- The probe checks itself before anyone reads it (`probe_validity`): an IDM that is not above chance on
  real held-out frames (its accuracy's lower confidence bound does not exceed the majority-action
  guess, or it answers a single action) cannot tell a controllable world from an action-blind one, so
  the action-following numbers read through it are marked invalid instead of being reported as a
  world's failure (or success).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from maskworld.progress import track


class InverseDynamics(nn.Module):
    def __init__(self, num_actions: int, width: int = 16):
        super().__init__()
        c = width
        self.net = nn.Sequential(
            nn.AdaptiveAvgPool2d(32),  # 64x64 -> 32x32 first: ~10x cheaper, grid-game motion survives
            nn.Conv2d(9, c, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(c, 2 * c, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(2 * c, 4 * c, 4, 2, 1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(4 * c * 16, num_actions),
        )

    def forward(self, a_BHWC: torch.Tensor, b_BHWC: torch.Tensor) -> torch.Tensor:
        """uint8 frame pairs (B,H,W,3) x2 -> action logits (B, A)."""
        a = a_BHWC.permute(0, 3, 1, 2).float() / 255.0
        b = b_BHWC.permute(0, 3, 1, 2).float() / 255.0
        return self.net(torch.cat([a, b, b - a], 1))


class PairSet:
    """Real transitions of some episodes: frames (N,H,W,3) uint8, pair index i -> (frames[i], frames[i+1], action)."""

    def __init__(self, episodes, max_frames: int = 10_000):
        frames, first, acts, eps, n = [], [], [], [], 0
        for e, ep in enumerate(episodes):
            if n >= max_frames:
                break
            f = ep.frames[: max_frames - n]
            a = np.asarray(ep.actions[: len(f) - 1])
            ok = np.nonzero(a >= 0)[0]  # unknown actions (-1) are not labels
            first.append(ok + n)
            acts.append(a[ok])
            eps.append(np.full(len(ok), e, np.int64))
            frames.append(f)
            n += len(f)
        self.frames = np.concatenate(frames) if frames else np.zeros((0, 1, 1, 3), np.uint8)
        self.first = np.concatenate(first).astype(np.int64) if first else np.zeros(0, np.int64)
        self.actions = np.concatenate(acts).astype(np.int64) if acts else np.zeros(0, np.int64)
        self.episode = np.concatenate(eps) if eps else np.zeros(0, np.int64)
        """Position (in the given order) of each pair's episode."""

    def __len__(self) -> int:
        return len(self.first)

    def pairs(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        i = self.first[idx]
        return self.frames[i], self.frames[i + 1], self.actions[idx]


def train_idm(pairs: PairSet, num_actions: int, steps: int, seed: int, device, batch: int = 64, lr: float = 1e-3,
              progress: bool = True) -> InverseDynamics:
    """Fixed-budget IDM training on real pairs (deterministic given the seed)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = InverseDynamics(num_actions).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in track(range(steps), desc="idm", unit="steps", enabled=progress):
        a, b, y = pairs.pairs(rng.integers(0, len(pairs), batch))
        logits = model(torch.from_numpy(a).to(device), torch.from_numpy(b).to(device))
        loss = F.cross_entropy(logits, torch.from_numpy(y).to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def predict_actions(model: InverseDynamics, a: np.ndarray, b: np.ndarray, device, batch: int = 256) -> np.ndarray:
    out = []
    for i in range(0, len(a), batch):
        logits = model(torch.from_numpy(np.ascontiguousarray(a[i : i + batch])).to(device),
                       torch.from_numpy(np.ascontiguousarray(b[i : i + batch])).to(device))
        out.append(logits.argmax(-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def confusion(pred: np.ndarray, true: np.ndarray, num_actions: int) -> list[list[int]]:
    """Counts [true action][predicted action] (A x A): which actions the probe tells apart, and which it merges."""
    m = np.zeros((num_actions, num_actions), np.int64)
    ok = (true >= 0) & (true < num_actions) & (pred >= 0) & (pred < num_actions)
    np.add.at(m, (true[ok], pred[ok]), 1)
    return m.tolist()


def probe_validity(pred: np.ndarray, true: np.ndarray, chance: float, ci: list | None) -> tuple[bool, str]:
    """Is the IDM a working probe on real frames? -> (valid, why not ("" when valid)).

    Above chance means the lower end of the accuracy's confidence interval exceeds the majority-action
    guess (without an interval, the point estimate must); a probe that answers one action only is a
    constant guess whatever its accuracy."""
    if len(true) == 0:
        return False, "no labelled held-out transitions to check the probe on"
    if len(np.unique(pred)) < 2:
        return False, f"it predicts a single action ({int(pred[0])}) for every real transition"
    acc = float((pred == true).mean())
    lo = ci[0] if ci is not None else acc
    if not lo > chance:
        return False, (f"its accuracy on real held-out frames ({acc:.3f}, 95% CI lower bound {lo:.3f}) does not exceed "
                       f"chance ({chance:.3f}, the most frequent action)")
    return True, ""
