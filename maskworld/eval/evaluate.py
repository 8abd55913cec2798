"""`maskworld eval`: the evaluation protocol of DESIGN.md as one function, `evaluate(world, store, ...)`.

Everything runs on held-out episodes (the validation split the world was trained with, read from its
model card), is deterministic given the seed and uses no downloaded weights. Metrics come back as a
flat dict with stable dotted keys (documented in README.md, "Evaluation and benchmarks"); pictures for the HTML report come
back separately.

Design choices:
- Context: c = min(window - 1, 4) real frames, so the KV cache is full or nearly full when imagining
  starts and every world is compared at the same, short context.
- Open-loop rollouts start at a seeded random offset of each episode (reset frames of many games
  look alike) and run to the longest horizon of {1, 2, 4, 8, 16, 32} the episode allows; each
  horizon h is averaged over the episodes long enough for it. Baselines on the same frames:
  copy-last (the last context frame repeated) and the tokenizer ceiling (the ground truth encoded and
  decoded: no dynamics model can beat its own tokenizer).
- Teacher forcing (one pass over each whole episode, real frames committed with real actions) gives
  the next-frame prediction (decoded from the real context, no drift), the reward and termination
  heads' predictions on real transitions, and the generated transitions the inverse-dynamics model
  scores.
- Controllability: Genie's delta-PSNR at t = 4 (rollout with the logged actions minus rollout with
  uniformly random actions, same sessions, same seeds, so an action-blind world scores exactly 0)
  and the action-following accuracy of an IDM trained on real pairs (maskworld/eval/idm.py).
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import torch

from maskworld.errors import UserError
from maskworld.eval import idm as idm_lib
from maskworld.eval import latent as latent_lib
from maskworld.eval.metrics import balanced_accuracy, majority_accuracy, psnr_per_frame, ssim_per_frame
from maskworld.eval.rollout import open_loop
from maskworld.world.engine import Engine
from maskworld.world.session import Session

HORIZONS = (1, 2, 4, 8, 16, 32)
DELTA_T = 4  # Genie's delta-PSNR is read at the 4th imagined frame
NEXT_FRAME_MAX = 32  # teacher-forced next-frame decodes per episode (rewards/ends use the whole episode)
TOKENIZER_MAX_FRAMES = 1024
GRID_STEPS = 6
GIF_EPISODES = 4


def _mean(x) -> float | None:
    x = np.asarray(x, dtype=np.float64)
    return float(x.mean()) if x.size else None


def select_val_episodes(world, store, n: int, seed: int, min_frames: int):
    """(episodes, ids, split) — a seeded subset of the world's validation split with >= min_frames frames."""
    split = dict(world.meta.model_card.get("split") or {})
    if not split:
        print("[eval] the world's model card has no training split; using seed 0, val_fraction 0.1")
    split_seed, frac = int(split.get("seed", 0)), float(split.get("val_fraction", 0.1))
    _, val_ids = store.split(seed=split_seed, val_fraction=frac)
    ok = [i for i in val_ids if store.length(i) + 1 >= min_frames]
    if not ok:
        raise UserError(f"no held-out episode of {store.path} has {min_frames} frames (validation split seed {split_seed}, "
                        f"fraction {frac}: {len(val_ids)} episodes); collect longer episodes or more of them")
    rng = np.random.default_rng(seed)
    ids = sorted(int(i) for i in rng.permutation(ok)[:n])
    return [store.load(i) for i in ids], ids, {"seed": split_seed, "val_fraction": frac}


def check_compatible(world, store) -> None:
    size = int(store.meta.get("size", world.meta.size))
    if size != world.meta.size:
        raise UserError(f"{store.path} holds {size}x{size} frames but the world makes {world.meta.size}x{world.meta.size}; "
                        "evaluate on data collected with the same --size")
    n = store.meta.get("num_actions")
    if world.meta.has_actions and world.num_actions > 1 and n is not None and int(n) != world.num_actions:
        raise UserError(f"{store.path} has {n} actions but the world was trained with {world.num_actions}; "
                        "evaluate on data from the environment the world was trained on")


@torch.no_grad()
def render(world, frames_u8: np.ndarray, batch: int = 128) -> np.ndarray:
    """Tokenizer round trip of real frames (N,H,W,3) -> (reconstruction (N,H,W,3) uint8, tokens (N,h,w))."""
    tok, dev = world.tokenizer, world.device
    recon, codes = [], []
    for i in range(0, len(frames_u8), batch):
        t = tok.tokenize_uint8(torch.from_numpy(np.ascontiguousarray(frames_u8[i : i + batch])).to(dev))
        codes.append(t.cpu())
        recon.append(tok.render_uint8(t).cpu().numpy())
    return np.concatenate(recon), torch.cat(codes).numpy()


def tokenizer_metrics(world, episodes) -> dict:
    frames, n = [], 0
    for ep in episodes:
        frames.append(ep.frames[: TOKENIZER_MAX_FRAMES - n])
        n += len(frames[-1])
        if n >= TOKENIZER_MAX_FRAMES:
            break
    real = np.concatenate(frames)
    recon, codes = render(world, real)
    return {"tokenizer.psnr": _mean(psnr_per_frame(recon, real)), "tokenizer.ssim": _mean(ssim_per_frame(recon, real)),
            "tokenizer.usage": float(len(np.unique(codes)) / world.tokenizer.cfg.vocab_size), "tokenizer.frames": int(len(real))}


def _action_in(a: int, null: int, num_actions: int) -> int:
    return int(a) if 0 <= a < num_actions else null


@torch.no_grad()
def teacher_forced(world, episodes, seed: int, progress: bool = True) -> dict:
    """One batched pass over whole episodes with real frames and actions committed (one engine row per episode).

    Returns next-frame pairs (real, generated, reconstruction of the frame before, action) and the
    reward/termination heads' predictions on every real transition.
    """
    from tqdm import tqdm

    dyn, tok, dev = world.dynamics, world.tokenizer, world.device
    null, A = dyn.cfg.null_action, dyn.cfg.num_actions
    g = dyn.cfg.grid
    eng = Engine(world, rows=len(episodes))
    sessions = [Session(world, seed + 10_000 + e, engine=eng) for e in range(len(episodes))]
    out = {k: [] for k in ("real", "gen", "prev", "action", "r_pred", "r_true", "d_pred", "d_true")}
    L = max(len(ep.frames) for ep in episodes)
    for t in tqdm(range(L), desc="teacher-forced", unit="frame", disable=not progress, leave=False):
        alive = [e for e in range(len(episodes)) if t < len(episodes[e].frames)]  # ended episodes leave the batch
        rows = [sessions[e] for e in alive]
        frames = np.stack([episodes[e].frames[t] for e in alive])
        acts_l = [null if t == 0 else _action_in(episodes[e].actions[t - 1], null, A) for e in alive]
        acts = torch.tensor(acts_l, device=dev)
        if 1 <= t <= NEXT_FRAME_MAX:
            pred = eng.decode(rows, acts)
            out["gen"].append(tok.render_uint8(pred.view(-1, g, g)).cpu().numpy())
            out["real"].append(frames)
            out["prev"].append(np.stack([s.frame for s in rows]))  # the tokenizer's reading of frame t-1
            out["action"].append(np.array([episodes[e].actions[t - 1] for e in alive], np.int64))
        heads = eng.observe(rows, frames, acts_l, render=False)
        if t >= 1:
            out["r_pred"].append(heads.reward.argmax(-1).cpu().numpy())
            out["r_true"].append(np.array([np.sign(episodes[e].rewards[t - 1]) + 1 for e in alive], np.int64))
            out["d_pred"].append((heads.term > 0).cpu().numpy())
            out["d_true"].append(np.array([bool(episodes[e].terminated[t - 1]) for e in alive]))
    return {k: np.concatenate(v) for k, v in out.items()}  # every episode has >= 1 transition


def rollout_plan(episodes, context: int, seed: int):
    """Per episode: a seeded start offset and the longest horizon it allows -> (slices, horizons)."""
    rng = np.random.default_rng(seed + 1)
    slices, hs = [], []
    for ep in episodes:
        n = len(ep.frames)
        h = max(x for x in HORIZONS if context + x <= n)
        s = int(rng.integers(0, n - context - h + 1))
        slices.append(SimpleNamespace(frames=ep.frames[s : s + context + h], actions=ep.actions[s : s + context + h - 1]))
        hs.append(h)
    return slices, np.array(hs)


def _logged_actions(slices, context: int, horizon: int) -> np.ndarray:
    acts = np.zeros((len(slices), horizon), np.int64)
    for e, sl in enumerate(slices):
        a = np.asarray(sl.actions[context - 1 : context - 1 + horizon])
        acts[e, : len(a)] = np.maximum(a, 0)
    return acts


def rollout_metrics(world, slices, hs, context: int, seed: int) -> tuple[dict, np.ndarray, dict]:
    H = int(hs.max())
    gen = open_loop(world, slices, context, H, seed, actions_override=_logged_actions(slices, context, H))
    m, curve = {}, {}
    for h in HORIZONS:
        es = [e for e in range(len(slices)) if hs[e] >= h]
        if not es:
            continue
        gt = np.stack([slices[e].frames[context + h - 1] for e in es])
        g = gen[es, h - 1]
        last = np.stack([slices[e].frames[context - 1] for e in es])
        recon, _ = render(world, gt)
        row = {"rollout": _mean(psnr_per_frame(g, gt)), "copy_last": _mean(psnr_per_frame(last, gt)),
               "tokenizer": _mean(psnr_per_frame(recon, gt))}
        m[f"rollout.psnr.{h}"], m[f"rollout.ssim.{h}"] = row["rollout"], _mean(ssim_per_frame(g, gt))
        m[f"baseline.copy_last.psnr.{h}"], m[f"baseline.tokenizer.psnr.{h}"] = row["copy_last"], row["tokenizer"]
        m[f"baseline.copy_last.ssim.{h}"] = _mean(ssim_per_frame(last, gt))
        m[f"rollout.episodes.{h}"] = len(es)
        curve[h] = row
    return m, gen, curve


def delta_psnr(world, slices, hs, gen, context: int, seed: int, probs=None) -> float | None:
    """Genie's delta-PSNR at t = 4: PSNR of the rollout with the logged (or inferred) actions minus the
    rollout of the same sessions with random actions, drawn uniformly or from `probs`."""
    es = [e for e in range(len(slices)) if hs[e] >= DELTA_T]
    if not es:
        return None
    rng = np.random.default_rng(seed + 2)
    A = world.num_actions
    rnd = rng.choice(A, size=(len(slices), DELTA_T), p=probs) if probs is not None else rng.integers(0, A, (len(slices), DELTA_T))
    gen_rnd = open_loop(world, slices, context, DELTA_T, seed, actions_override=rnd)
    gt = np.stack([slices[e].frames[context + DELTA_T - 1] for e in es])
    return _mean(psnr_per_frame(gen[es, DELTA_T - 1], gt)) - _mean(psnr_per_frame(gen_rnd[es, DELTA_T - 1], gt))


def controllability(world, store, train_ids, slices, hs, gen, tf, context: int, seed: int, idm_steps: int,
                    progress: bool) -> dict:
    """delta-PSNR at t = 4 and IDM action-following accuracy (keys control.*)."""
    A = world.num_actions
    m = {"control.delta_psnr": None, "control.idm_accuracy": None, "control.idm_accuracy_real": None, "control.chance": None}
    m["control.delta_psnr"] = delta_psnr(world, slices, hs, gen, context, seed)
    rng = np.random.default_rng(seed + 3)
    # A generator: PairSet stops loading episodes once it holds enough frames.
    train_pairs = idm_lib.PairSet(store.load(int(i)) for i in rng.permutation(train_ids))
    if len(train_pairs) == 0:
        print("[eval] no labelled training transitions: skipping the inverse-dynamics model")
        return m
    print(f"[eval] inverse-dynamics model: {idm_steps} steps on {len(train_pairs)} real training transitions")
    model = idm_lib.train_idm(train_pairs, A, idm_steps, seed, world.device, progress=progress)
    ok = tf["action"] >= 0
    if ok.any():
        # Real held-out pairs: the same transitions the generated pairs come from.
        val_pairs = idm_lib.PairSet(tf["episodes"])
        a, b, y = val_pairs.pairs(np.arange(len(val_pairs)))
        m["control.idm_accuracy_real"] = float((idm_lib.predict_actions(model, a, b, world.device) == y).mean())
        pred = idm_lib.predict_actions(model, tf["prev"][ok], tf["gen"][ok], world.device)
        m["control.idm_accuracy"] = float((pred == tf["action"][ok]).mean())
        m["control.chance"] = majority_accuracy(tf["action"][ok])
        m["control.idm_pairs"] = int(ok.sum())
    return m


def action_grids(world, slices, context: int, seed: int, starts: int = 2) -> list:
    """From the same start frames, one row per action held for GRID_STEPS steps -> [(start, [(action, frames)])]."""
    A = world.num_actions
    picked = slices[:starts]
    eps = [sl for sl in picked for _ in range(A)]
    acts = np.repeat(np.tile(np.arange(A), len(picked))[:, None], GRID_STEPS, 1)
    gen = open_loop(world, eps, context, GRID_STEPS, seed, actions_override=acts)
    names = list(world.action_meanings) + [f"ACTION_{a}" for a in range(len(world.action_meanings), A)]
    grids = []
    for i, sl in enumerate(picked):
        rows = [(names[a], np.concatenate([sl.frames[context - 1][None], gen[i * A + a]])) for a in range(A)]
        grids.append((i, rows))
    return grids


def evaluate(world, store, episodes: int = 20, seed: int = 0, idm_steps: int = 300, progress: bool = True,
             world_path: str = "", data_path: str = "") -> tuple[dict, dict]:
    """-> (flat metrics, artifacts for the report)."""
    t0 = time.time()
    torch.manual_seed(seed)
    check_compatible(world, store)
    context = min(world.dynamics.cfg.window - 1, 4)
    eps, ids, split = select_val_episodes(world, store, episodes, seed, context + 1)
    has_actions = world.meta.has_actions and world.num_actions > 1
    if world.lam is not None:
        eps = latent_lib.with_inferred_actions(world, eps)  # the actions of every pass below are the LAM's codes
    print(f"[eval] {len(eps)} held-out episodes ({sum(len(e.frames) for e in eps)} frames), context {context}, seed {seed}")
    m: dict = {}
    print("[eval] tokenizer reconstruction")
    m.update(tokenizer_metrics(world, eps))
    print("[eval] teacher-forced pass: next frame, reward, termination")
    tf = teacher_forced(world, eps, seed, progress)
    tf["episodes"] = [SimpleNamespace(frames=e.frames[: NEXT_FRAME_MAX + 1], actions=e.actions[:NEXT_FRAME_MAX]) for e in eps]
    m["next_frame.psnr"] = _mean(psnr_per_frame(tf["gen"], tf["real"]))
    m["next_frame.ssim"] = _mean(ssim_per_frame(tf["gen"], tf["real"]))
    m["next_frame.frames"] = int(len(tf["gen"]))
    for name, p, y in (("reward", tf["r_pred"], tf["r_true"]), ("termination", tf["d_pred"], tf["d_true"])):
        m[f"{name}.accuracy"] = _mean(p == y)
        m[f"{name}.majority"] = majority_accuracy(y)
        m[f"{name}.balanced_accuracy"] = balanced_accuracy(p, y)
        m[f"{name}.transitions"] = int(len(y))
    m["reward.nonzero"] = int((tf["r_true"] != 1).sum())
    m["termination.positives"] = int(tf["d_true"].sum())
    print("[eval] open-loop rollouts")
    slices, hs = rollout_plan(eps, context, seed)
    rm, gen, curve = rollout_metrics(world, slices, hs, context, seed)
    m.update(rm)
    grids = []
    if world.lam is not None:
        print("[eval] latent actions: code usage, delta-PSNR inferred vs random codes, real->latent map")
        m.update(latent_lib.latent_metrics(world, eps, slices, hs, gen, context, seed))
        grids = action_grids(world, slices, context, seed)
    elif has_actions:
        print("[eval] controllability: random-action rollouts")
        train_ids, _ = store.split(seed=split["seed"], val_fraction=split["val_fraction"])
        m.update(controllability(world, store, train_ids, slices, hs, gen, tf, context, seed, idm_steps, progress))
        grids = action_grids(world, slices, context, seed)
    else:
        m.update({"control.delta_psnr": None, "control.idm_accuracy": None, "control.idm_accuracy_real": None,
                  "control.chance": None})
    gifs = [(f"episode {ids[e]}", slices[e].frames[context : context + hs[e]], gen[e, : hs[e]]) for e in range(min(GIF_EPISODES, len(eps)))]
    m.update({"meta.episodes": len(eps), "meta.episode_ids": ids, "meta.seed": seed, "meta.context": context,
              "meta.horizons": [h for h in HORIZONS if f"rollout.psnr.{h}" in m], "meta.idm_steps": idm_steps,
              "meta.world": str(world_path), "meta.data": str(data_path),
              "meta.split_seed": split["seed"], "meta.split_val_fraction": split["val_fraction"],
              "meta.sampler_steps": world.sampler.steps, "meta.seconds": round(time.time() - t0, 2)})
    m = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in m.items()}
    return m, {"curve": curve, "grids": grids, "gifs": gifs}
