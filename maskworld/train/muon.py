"""Muon for the transformer's hidden matrices, AdamW for everything else, as one optimizer.

Design choices:
- Muon (Jordan et al. 2024, "Muon: an optimizer for hidden layers", used by the modded-nanoGPT speedruns):
  SGD with Nesterov momentum whose update for a 2-D weight is replaced by the nearest semi-orthogonal matrix,
  computed by five Newton-Schulz iterations of a quintic with the speedrun's coefficients. Every direction of the
  matrix then moves at the same rate, which is where it beats Adam per step on small transformers.
- Only the blocks' matrices (attention and MLP weights) use it; embeddings, output heads, norms and biases keep
  AdamW, as in the reference: an embedding row is a lookup, not a linear map to orthogonalise.
- The update is scaled by sqrt(max(1, rows / cols)) so that tall and wide matrices move alike, and weight decay is
  decoupled as in AdamW.
- One optimizer with two kinds of parameter group keeps checkpoints (state_dict) and the training loop's learning
  rate schedule unchanged: a group's `lr_scale` multiplies the scheduled rate (Muon's rate is ~40x Adam's).
"""

from __future__ import annotations

import torch

NS_COEFFS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5
MUON_LR = 0.02
MUON_MOMENTUM = 0.95


def orthogonalise(g_RC: torch.Tensor, steps: int = NS_STEPS) -> torch.Tensor:
    """Approximately U V^T of g's SVD (singular values pushed toward 1) by Newton-Schulz iterations, in float32."""
    a, b, c = NS_COEFFS
    x = g_RC.float()
    wide = x.shape[0] <= x.shape[1]
    if not wide:
        x = x.T
    x = x / (x.norm() + 1e-7)
    for _ in range(steps):
        m = x @ x.T
        x = a * x + (b * m + c * m @ m) @ x
    return (x if wide else x.T).to(g_RC.dtype)


def is_hidden_matrix(name: str, p: torch.Tensor) -> bool:
    """A 2-D weight inside a transformer block (attention or MLP): what Muon updates."""
    return p.dim() == 2 and ".blocks." in f".{name}" and "emb" not in name


class MuonAdamW(torch.optim.Optimizer):
    """Groups with kind="muon" (2-D hidden weights) take Muon steps, kind="adamw" groups AdamW steps."""

    def __init__(self, groups: list[dict], lr: float, betas=(0.9, 0.95), eps: float = 1e-8,
                 momentum: float = MUON_MOMENTUM):
        defaults = {"lr": lr, "betas": betas, "eps": eps, "momentum": momentum, "weight_decay": 0.0, "kind": "adamw",
                    "lr_scale": 1.0}
        super().__init__(groups, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if group["kind"] == "muon":
                    buf = st.setdefault("momentum_buffer", torch.zeros_like(p))
                    buf.mul_(group["momentum"]).add_(p.grad)
                    g = p.grad.add(buf, alpha=group["momentum"])  # Nesterov
                    u = orthogonalise(g) * max(1.0, p.shape[0] / p.shape[1]) ** 0.5
                    p.mul_(1 - lr * wd).add_(u, alpha=-lr)
                else:
                    self._adamw(p, st, group)
        return None

    @staticmethod
    def _adamw(p, st, group):
        b1, b2 = group["betas"]
        if not st:
            st["step"] = 0
            st["exp_avg"], st["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
        st["step"] += 1
        m, v = st["exp_avg"], st["exp_avg_sq"]
        m.lerp_(p.grad, 1 - b1)
        v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
        bc1, bc2 = 1 - b1 ** st["step"], 1 - b2 ** st["step"]
        p.mul_(1 - group["lr"] * group["weight_decay"])
        p.addcdiv_(m / bc1, (v / bc2).sqrt_().add_(group["eps"]), value=-group["lr"])


def make_optimizer(model: torch.nn.Module, lr: float, kind: str = "adamw", weight_decay: float = 0.05):
    """The dynamics' optimizer: AdamW (decay on 2-D non-embedding weights) or Muon + AdamW (module doc)."""
    named = list(model.named_parameters())
    decay = [p for n, p in named if p.dim() >= 2 and "emb" not in n]
    no_decay = [p for n, p in named if not (p.dim() >= 2 and "emb" not in n)]
    if kind == "adamw":
        return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                  {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95))
    if kind != "muon":
        raise ValueError(f"unknown optimizer {kind!r}; choose adamw or muon")
    hidden = [p for n, p in named if is_hidden_matrix(n, p)]
    ids = {id(p) for p in hidden}
    return MuonAdamW([{"params": hidden, "kind": "muon", "weight_decay": weight_decay, "lr_scale": MUON_LR / lr},
                      {"params": [p for p in decay if id(p) not in ids], "weight_decay": weight_decay},
                      {"params": no_decay, "weight_decay": 0.0}], lr=lr)
