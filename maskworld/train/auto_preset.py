"""`--preset auto`: the model size that learns the most in the budget, measured on this machine.

Design choices:
- Compute-optimal sizing (Hoffmann et al. 2022, "Chinchilla"): for a fixed compute budget a model learns most when
  it sees about 20 training tokens per parameter; a larger model that sees fewer tokens is undertrained, a smaller
  one that sees many more is too small to use them. What a budget buys depends on the machine, so it is measured:
  one timed training step of each preset's dynamics on the run's device (after one warm-up step) gives the
  tokens/s, and the dynamics' share of --minutes turns that into the tokens the preset would see.
- The preset whose tokens per parameter come nearest TOKENS_PER_PARAM (by ratio, either way) is chosen. Presets are
  probed from small to large and the probe stops at the first that falls short, so a CPU never times the base
  preset's seconds-long step for a short budget. Nearest, not "the largest that reaches it": on CoinRun, 60 minutes
  on one core, tiny saw 50 tokens per parameter and compact 16, and compact was the better world at equal minutes
  (validation loss 3.01 against 3.13, open-loop PSNR higher at every horizon; docs/results.md).
- The tokenizer follows the chosen preset, and the minutes split stays the measured 30/70 tokenizer/dynamics.
- A step budget (--steps) has no minutes to size against: `small`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from maskworld.models.dynamics import Dynamics
from maskworld.train.dynamics_train import dynamics_losses
from maskworld.train.muon import make_optimizer
from maskworld.train.presets import PRESETS, get_preset

TOKENS_PER_PARAM = 20.0
DEFAULT = "small"
PRESET_RECORD = "preset.json"
"""In OUT/_work: the preset auto chose and why; --resume reads it instead of measuring again."""


@dataclass
class Probe:
    name: str
    params: int
    step_s: float
    tokens_per_step: int

    def tokens_per_param(self, minutes: float) -> float:
        return minutes * 60 / self.step_s * self.tokens_per_step / self.params


def probe(name: str, device, image_size: int = 64, num_actions: int = 8, vocab: int = 1000,
          optimizer: str = "muon") -> Probe:
    """Time one dynamics training step of preset `name` with the run's optimizer (random tokens; the cost does not
    depend on them)."""
    p = get_preset(name, image_size)
    cfg = p.dynamics
    cfg.num_actions, cfg.vocab_size, cfg.prev_frame_prior = num_actions, vocab, True
    torch.manual_seed(0)
    model = Dynamics(cfg).to(device)
    opt = make_optimizer(model, 1e-4, optimizer)
    B, T, N = p.dyn_batch, cfg.window, cfg.tokens_per_frame
    tok = torch.randint(0, vocab, (B, T, N), device=device)
    act = torch.randint(0, num_actions, (B, T), device=device)
    zeros = torch.zeros(B, T, device=device)

    def step():
        tl, rl, dl, _ = dynamics_losses(model, tok, act, zeros, zeros)
        opt.zero_grad(set_to_none=True)
        (tl + 0.5 * rl + 0.5 * dl).backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up: allocator, kernels
    t = time.perf_counter()
    step()
    return Probe(name, model.num_params(), time.perf_counter() - t, B * T * cfg.frame_len)


def choose_preset(minutes: float | None, device, image_size: int = 64, dyn_share: float = 0.7,
                  optimizer: str = "muon", vocab: int = 1000) -> tuple[str, list[str]]:
    """-> (preset name, lines saying why)."""
    if minutes is None:
        return DEFAULT, [f"[auto] a --steps budget has no minutes to size against: preset {DEFAULT}"]
    dyn_minutes = dyn_share * minutes
    ratios, why = {}, []
    for name in PRESETS:  # tiny, compact, small, base: ascending size
        pr = probe(name, device, image_size, vocab=vocab, optimizer=optimizer)
        ratios[name] = ratio = pr.tokens_per_param(dyn_minutes)
        ok = ratio >= TOKENS_PER_PARAM
        why.append(f"[auto] {name}: {pr.params / 1e6:.2f}M parameters, {pr.step_s:.2f} s/step on {device.type} -> "
                   f"{ratio:.0f} tokens/parameter in {dyn_minutes:.1f} dynamics minutes "
                   f"({'enough' if ok else 'undertrained'}; compute-optimal is ~{TOKENS_PER_PARAM:.0f})")
        if not ok:
            break
    chosen = min(ratios, key=lambda n: abs(math.log(max(ratios[n], 1e-9) / TOKENS_PER_PARAM)))
    why.append(f"[auto] preset {chosen}: its {ratios[chosen]:.0f} tokens per parameter come nearest the "
               f"compute-optimal ~{TOKENS_PER_PARAM:.0f} in the budget")
    return chosen, why
