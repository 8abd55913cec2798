"""Evaluation of worlds trained on action-free video (keys latent.* and control.*).

- Every held-out episode's actions are replaced by the codes the world's latent-action model infers
  from its frames (the real actions stay in `real_actions`), so rollouts, next-frame and delta-PSNR
  use exactly what a player of the world would feed it.
- delta-PSNR (Genie): rollout with the inferred codes minus rollout with random codes, at t = 4.
  Random codes are drawn from the codes' held-out frequencies (`control.delta_psnr`): a model
  that collapsed to one code then scores exactly 0, as it should; uniform draws are reported beside
  it (`control.delta_psnr_uniform`, Genie's wording), where never-used codes can move the number
  without any control being there.
- The real->latent map fitted at training time (world.json) is scored on the held-out episodes'
  labelled transitions, beside the share of the most frequent code.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from maskworld.eval.control import delta_psnr_metrics
from maskworld.world.latent import code_stats, map_accuracy


@torch.no_grad()
def infer_latents(world, frames_u8: np.ndarray, batch: int = 256) -> np.ndarray:
    """(T+1,H,W,3) frames -> (T,) latent codes; code t labels frames[t] -> frames[t+1]."""
    dev = world.device
    toks = torch.cat([world.tokenizer.tokenize_uint8(torch.from_numpy(np.ascontiguousarray(frames_u8[i:i + batch])).to(dev))
                      for i in range(0, len(frames_u8), batch)])
    a, b = toks[:-1], toks[1:]
    p = torch.cat([toks[:1], toks[:-2]])  # frame t-1 of each step; the first step has none (frame t stands in)
    out = [world.lam.infer(a[i:i + batch], b[i:i + batch], p[i:i + batch]) for i in range(0, len(a), batch)]
    return torch.cat(out).cpu().numpy().astype(np.int64) if out else np.zeros(0, np.int64)


def with_inferred_actions(world, episodes) -> list:
    out = []
    for ep in episodes:
        lat = infer_latents(world, ep.frames)
        e = dataclasses.replace(ep, actions=lat)
        e.real_actions = ep.actions
        out.append(e)
    return out


def latent_metrics(world, eps, slices, hs, gen, context: int, seed: int) -> dict:
    K = world.lam.cfg.num_codes
    lat = np.concatenate([e.actions for e in eps])
    stats = code_stats(lat, K)
    probs = np.asarray(stats["share"], np.float64)
    probs = probs / probs.sum()
    m = {"latent.num_codes": K, "latent.codes_used": stats["codes_used"], "latent.share": stats["share"],
         "latent.perplexity": stats["perplexity"], "latent.transitions": stats["transitions"],
         **delta_psnr_metrics(world, slices, hs, gen, context, seed, probs=probs),
         **delta_psnr_metrics(world, slices, hs, gen, context, seed, key="control.delta_psnr_uniform"),
         "control.idm_accuracy": None, "control.idm_accuracy_real": None, "control.chance": None, "control.idm_valid": None,
         "latent.map_accuracy": None, "latent.map_majority": None, "latent.map_transitions": 0}
    amap = (world.meta.latent_actions or {}).get("action_map")
    if amap:
        real = np.concatenate([np.asarray(e.real_actions) for e in eps])
        acc = map_accuracy(amap["to_latent"], real, lat, len(amap["to_latent"]), K)
        m.update({"latent.map_accuracy": acc["accuracy"], "latent.map_majority": acc["majority"],
                  "latent.map_transitions": acc["transitions"], "latent.map_fit_transitions": amap.get("fit_transitions")})
    return m
