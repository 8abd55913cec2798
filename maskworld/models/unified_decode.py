"""MaskGIT decoding for the unified model: fill whatever is hidden, in any stream, in K parallel steps.

Each step runs the model once, samples every still-hidden position of the stream being decoded, and keeps the
most confident ones (confidence = log-probability of the sampled id, plus Gumbel noise that anneals to zero,
as in MaskGIT), so that after step k a share cos(pi/2 * k/K) of the positions is still hidden; the last step
fills the rest. Positions of other streams keep what the caller gave them (visible ids or MASK).

Classifier-free guidance (Ho & Salimans 2022; for masked token models, Muse, Chang et al. 2023): with guidance
w > 0 every step also runs the model with the text hidden, and samples from c + w (c - u), the conditional logits
pushed away from the unconditional ones, so what the words say weighs more than the model's prior.
"""

from __future__ import annotations

import math

import torch

from maskworld.models.unified import Unified

@torch.no_grad()
def decode(model: Unified, ids: dict[str, torch.Tensor], stream: str, todo: torch.Tensor, steps: int = 8,
           temperature: float = 1.0, generator: torch.Generator | None = None,
           steps_ok: torch.Tensor | None = None, causal: torch.Tensor | None = None,
           guidance: float = 0.0) -> dict[str, torch.Tensor]:
    """Fill `ids[stream]` where `todo` (bool, same shape) is True. -> a new ids dict.

    causal: (B,) True for rows decoded with block-causal attention (`Unified.forward`'s causal_B).
    guidance: classifier-free guidance by the text (0: none; a stream other than the text only).
    temperature 0 takes the most likely id everywhere (deterministic); >0 samples (needs `generator` for
    reproducible draws)."""
    if guidance > 0 and stream == "text":
        raise ValueError("guidance by the text cannot decode the text itself")
    ids = {k: v.clone() for k, v in ids.items()}
    mask_id = model.cfg.mask_ids[stream]
    x = ids[stream]
    B = x.shape[0]
    hidden = todo.clone().reshape(B, -1)
    x_flat = x.reshape(B, -1)
    x_flat[hidden] = mask_id
    total = hidden.sum(1)  # (B,)
    for k in range(steps):
        ids[stream] = x_flat.view_as(x)
        logits = model(ids["text"], ids["act"], ids["frame"], ids["out"], steps_ok, causal)[stream]
        if guidance > 0:
            no_text = torch.full_like(ids["text"], model.cfg.text_mask)
            plain = model(no_text, ids["act"], ids["frame"], ids["out"], steps_ok, causal)[stream]
            logits = logits + guidance * (logits - plain)
        logp = torch.log_softmax(logits.float().reshape(B, x_flat.shape[1], -1), dim=-1)
        if temperature > 0:
            probs = torch.softmax(logp / temperature, dim=-1)
            # drawn on the CPU, where the seeded generator lives, so a seed gives the same frames on every device
            pick = torch.multinomial(probs.view(-1, probs.shape[-1]).cpu(), 1, generator=generator).view(B, -1).to(x.device)
        else:
            pick = logp.argmax(-1)
        conf = logp.gather(-1, pick[..., None])[..., 0]
        if temperature > 0:
            u = torch.rand(conf.shape, generator=generator).clamp_(1e-9, 1 - 1e-9).to(conf.device)
            conf = conf + temperature * (1 - (k + 1) / steps) * -torch.log(-torch.log(u))
        keep_hidden = torch.floor(total.float() * math.cos(math.pi / 2 * (k + 1) / steps)).long()
        if k == steps - 1:
            keep_hidden = torch.zeros_like(total)
        reveal = hidden.sum(1) - keep_hidden  # (B,) how many to fill now
        conf = torch.where(hidden, conf, torch.full_like(conf, -float("inf")))
        rank = conf.argsort(dim=1, descending=True).argsort(dim=1)
        now = hidden & (rank < reveal[:, None])
        x_flat = torch.where(now, pick, x_flat)
        hidden = hidden & ~now
    ids[stream] = x_flat.view_as(x)
    return ids
