"""`maskworld eval`: the evaluation protocol (docs/eval.md) as one function, `evaluate(world, store, ...)`.

Everything runs on held-out episodes (the validation split the world was trained with, read from its
model card), is deterministic given the seed and uses no downloaded weights. Metrics come back as a
flat dict with stable dotted keys (documented in docs/eval.md); pictures for the HTML report come
back separately.

Design choices:
- Context: c = min(window - 1, 4) real frames, so the KV cache is full or nearly full when imagining
  starts and every world is compared at the same, short context.
- Which frames are read (eval/plan.py): seeded rollout windows to the longest horizon of {1, 2, 4, 8, 16, 32}
  each episode allows, several per episode where few long ones are held out, about --windows in all; each
  horizon h is averaged over the windows long enough for it. Baselines on the same frames:
  copy-last (the last context frame repeated) and the tokenizer ceiling (the ground truth encoded and
  decoded: no dynamics model can beat its own tokenizer).
- Teacher forcing (one pass over each whole episode, real frames committed with real actions) gives
  the next-frame prediction (decoded from the real context, no drift), the reward and termination
  heads' predictions on real transitions, and the generated transitions the inverse-dynamics model
  scores.
- Controllability: Genie's delta-PSNR at t = 4 (rollout with the logged actions minus rollout with
  uniformly random actions, same sessions, same seeds, so an action-blind world scores exactly 0)
  and the action-following accuracy of an IDM trained on real pairs (maskworld/eval/idm.py).
- Every headline number comes with its sample size (episodes, pairs) and a 95 % confidence interval
  from an episode bootstrap (maskworld/eval/uncertainty.py), under `<key>.ci`: a difference between two
  worlds that their intervals do not separate is not a finding.
- Baselines that keep the reading honest: copy-last is also passed through the tokenizer
  (`baseline.copy_last_tok.*`). Where the tokenizer ceiling sits below raw copy-last, no world decoded by
  that tokenizer can beat raw copy-last, and the fair bar is tokenizer-passed copy-last
  (`baseline.reference.{h}`, `baseline.ceiling_below_copy_last`). Tokenized copy-last is the closer
  bar even above the ceiling: raw copy-last scores the PSNR cap on every frame where nothing moved, a
  score no decoded frame can reach.
- Probes check themselves: the IDM must be above chance on real frames or the numbers read through it
  are marked invalid (`control.idm_valid`, `meta.invalid_keys`); the tokenizer is flagged when it uses
  very few codes or reconstructs far worse than copy-last; the reward and termination heads are flagged
  when they score below the majority guess. Every flag also lands in `meta.warnings` as a sentence.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from maskworld.data.held_out import HeldOut, world_split
from maskworld.errors import UserError
from maskworld.eval import idm as idm_lib
from maskworld.eval import latent as latent_lib
from maskworld.eval.control import DELTA_T, action_spread_metrics, delta_psnr, delta_psnr_metrics, delta_psnr_per_episode  # noqa: F401
from maskworld.eval.error_map import error_maps, top_share
from maskworld.eval.plan import (HORIZONS, ROLLOUT_WINDOWS, episodes_of, first_per_episode, logged_actions, next_frame_steps,
                                 rollout_plan)
from maskworld.eval.metrics import balanced_accuracy, majority_accuracy, psnr_per_frame, ssim_per_frame, token_churn
from maskworld.eval.rollout import open_loop
from maskworld.eval.uncertainty import balanced_accuracy_ci, mean_ci
from maskworld.models.reward_values import reward_class_np, zero_class
from maskworld.progress import track
from maskworld.world.engine import Engine
from maskworld.world.session import Session

TOKENIZER_MAX_FRAMES = 1024
GRID_STEPS = 6
GIF_EPISODES = 4
MEAN_COLOUR_TOL = 10.0  # levels of 255: the largest drift of a generated frame's mean colour read as faithful
RECON_STRIP = 8  # frames in the tokenizer's reconstruction strip
LOW_USAGE = 0.05  # share of the codebook below which the tokenizer is flagged (collapsed codes) ...
LOSSLESS_DB = 40.0  # ... unless it reconstructs this well: then the frames have few kinds of patch (Coins: 7), not it
RECON_MARGIN_DB = 3.0  # tokenizer PSNR this far below copy-last (twice its squared error) is flagged
CONFUSION_MAX_ACTIONS = 32  # larger action spaces (joint actions of several agents) keep no confusion matrix


class ShortSample(UserError):
    """`--strict` and fewer held-out episodes than asked for."""

    exit_code = 3


def _mean(x) -> float | None:
    x = np.asarray(x, dtype=np.float64)
    return float(x.mean()) if x.size else None


def _psnr_of_mse(psnr) -> float | None:
    """PSNR of the mean squared error over frames: unlike the mean of per-frame PSNRs, frames that match exactly
    (copy-last where nothing moved, at the PSNR cap) do not dominate it."""
    p = np.asarray(psnr, np.float64)
    return float(-10 * np.log10(np.mean(10 ** (-p / 10)))) if p.size else None


def select_val_episodes(world, store, n: int, seed: int, min_frames: int):
    """(episodes, ids, split) — a seeded subset of the world's held-out episodes with >= min_frames frames: those
    its card lists by content, found in this store, else its validation split by ids (data/held_out.py).

    split: {seed, val_fraction, val_episodes (held out), available (long enough), requested, train_ids, held_out}."""
    split = dict(world.meta.model_card.get("split") or {})
    if not split:
        print("[eval] the world's model card has no training split; using seed 0, val_fraction 0.1")
    split_seed, frac = int(split.get("seed", 0)), float(split.get("val_fraction", 0.1))
    train_ids, val_ids, held = world_split(store, split)
    ok = [i for i in val_ids if store.length(i) + 1 >= min_frames]
    if not ok:
        raise UserError(f"no held-out episode of {store.path} has {min_frames} frames (validation split seed {split_seed}, "
                        f"fraction {frac}: {len(val_ids)} episodes); collect longer episodes or more of them")
    rng = np.random.default_rng(seed)
    ids = sorted(int(i) for i in rng.permutation(ok)[:n])
    info = {"seed": split_seed, "val_fraction": frac, "val_episodes": len(val_ids), "available": len(ok), "requested": n,
            "train_ids": train_ids, "held_out": held}
    return [store.load(i) for i in ids], ids, info


def sample_warning(store, split: dict, min_frames: int) -> str | None:
    """A sentence when fewer held-out episodes than `--episodes` were available, naming how to get more."""
    k, n = split["available"], split["requested"]
    if k >= n:
        return None
    env = store.meta.get("env_id") or "ENV"
    short = split["val_episodes"] - k
    if split["held_out"].by == "content":  # a fixed list: adding episodes to the store adds none to it
        return (f"only {k} held-out episodes were available, {n} were asked for (--episodes {n}): the world's card lists "
                f"{split['held_out'].listed} held-out episode{'s' * (split['held_out'].listed != 1)}, "
                f"{split['held_out'].found} of them in {store.path}"
                + (f", {short} of those shorter than {min_frames} frames" if short else "")
                + f". The intervals are over {k} episode{'s' * (k != 1)}, wider than {n} would give; a world trained with a larger "
                "`maskworld train world --val-fraction` holds out more. `maskworld eval --strict` makes this an error (exit 3).")
    return (f"only {k} held-out episodes were available, {n} were asked for (--episodes {n}): the validation split of "
            f"{store.path} (the world's training split: seed {split['seed']}, val_fraction {split['val_fraction']:g}) holds "
            f"{split['val_episodes']} of its {len(store.episode_ids)} episodes"
            + (f", {short} of them shorter than {min_frames} frames" if short else "")
            + f". The intervals are over {k} episodes, wider than {n} would give. For more: add episodes to the store "
            f"(`maskworld collect --env {env} --out {store.path} --steps N` with N above its {store.num_transitions} "
            f"transitions; the split hashes episode ids, so about {split['val_fraction']:.0%} of new episodes are held out "
            f"and the world's training episodes stay in training) or train the world with a larger "
            f"`maskworld train world --val-fraction`; `maskworld eval --strict` makes this an error (exit 3).")


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


def tokenizer_metrics(world, episodes) -> tuple[dict, tuple]:
    """Reconstruction of real held-out frames -> (tokenizer.* metrics, (real, reconstruction) strip frames)."""
    frames, eps, n = [], [], 0
    for e, ep in enumerate(episodes):
        frames.append(ep.frames[: TOKENIZER_MAX_FRAMES - n])
        eps.append(np.full(len(frames[-1]), e))
        n += len(frames[-1])
        if n >= TOKENIZER_MAX_FRAMES:
            break
    real, groups = np.concatenate(frames), np.concatenate(eps)
    recon, codes = render(world, real)
    psnr = psnr_per_frame(recon, real)
    pick = np.linspace(0, len(real) - 1, min(RECON_STRIP, len(real))).round().astype(int)
    churn = {f"tokenizer.{k}": v for k, v in token_churn(real, codes, groups).items()}
    return ({**churn,
             "tokenizer.psnr": _mean(psnr), "tokenizer.psnr.ci": mean_ci(psnr, groups, seed=0), "tokenizer.psnr_mse": _psnr_of_mse(psnr),
             "tokenizer.ssim": _mean(ssim_per_frame(recon, real)),
             "tokenizer.usage": float(len(np.unique(codes)) / world.tokenizer.cfg.vocab_size),
             "tokenizer.codes_used": int(len(np.unique(codes))), "tokenizer.vocab_size": int(world.tokenizer.cfg.vocab_size),
             "tokenizer.frames": int(len(real)), "tokenizer.episodes": int(len(frames))},
            (real[pick], recon[pick]))


def _action_in(a: int, null: int, num_actions: int) -> int:
    return int(a) if 0 <= a < num_actions else null


@torch.no_grad()
def teacher_forced(world, episodes, seed: int, progress: bool = True) -> dict:
    """One batched pass over whole episodes with real frames and actions committed (one engine row per episode).

    Returns next-frame pairs at next_frame_steps (real frame, real frame before, generated frame, the frame before
    as the world shows it and as the tokenizer reads it, action, episode) and the reward/termination heads'
    predictions on every real transition (with its episode, h_ep).
    """
    dyn, tok, dev = world.dynamics, world.tokenizer, world.device
    null, A = dyn.cfg.null_action, dyn.cfg.num_actions
    g = dyn.cfg.grid
    eng = Engine(world, rows=len(episodes))
    sessions = [Session(world, seed + 10_000 + e, engine=eng) for e in range(len(episodes))]
    picks = [set(s.tolist()) for s in next_frame_steps(episodes, seed)]
    out = {k: [] for k in ("real", "real_prev", "gen", "prev", "recon_prev", "action", "ep", "r_pred", "r_true", "d_pred",
                           "d_true", "h_ep")}
    L = max(len(ep.frames) for ep in episodes)
    for t in track(range(L), desc="teacher-forced", unit="frames", enabled=progress):
        alive = [e for e in range(len(episodes)) if t < len(episodes[e].frames)]  # ended episodes leave the batch
        rows = [sessions[e] for e in alive]
        frames = np.stack([episodes[e].frames[t] for e in alive])
        acts_l = [null if t == 0 else _action_in(episodes[e].actions[t - 1], null, A) for e in alive]
        acts = torch.tensor(acts_l, device=dev)
        dec = [i for i, e in enumerate(alive) if t in picks[e]]
        if dec:
            pred = eng.decode([rows[i] for i in dec], acts[dec])
            out["gen"].append(tok.render_uint8(pred.view(-1, g, g)).cpu().numpy())
            out["real"].append(frames[dec])
            out["real_prev"].append(np.stack([episodes[alive[i]].frames[t - 1] for i in dec]))
            out["prev"].append(np.stack([rows[i].frame for i in dec]))  # frame t-1 as the world shows it
            before = torch.from_numpy(np.stack([rows[i].tokens for i in dec]).astype(np.int64)).to(dev)
            out["recon_prev"].append(tok.render_uint8(before).cpu().numpy())  # the tokenizer's reading of frame t-1
            out["action"].append(np.array([episodes[alive[i]].actions[t - 1] for i in dec], np.int64))
            out["ep"].append(np.array([alive[i] for i in dec], np.int64))  # confidence intervals resample episodes
        heads = eng.observe(rows, frames, acts_l, render=False)
        if t >= 1:
            out["r_pred"].append(heads.reward.argmax(-1).cpu().numpy())
            out["r_true"].append(reward_class_np(np.array([episodes[e].rewards[t - 1] for e in alive]),
                                                 world.dynamics.cfg.reward_values))
            out["d_pred"].append((heads.term > 0).cpu().numpy())
            out["d_true"].append(np.array([bool(episodes[e].terminated[t - 1]) for e in alive]))
            out["h_ep"].append(np.array(alive, np.int64))
    tf = {k: np.concatenate(v) for k, v in out.items()}  # every episode has >= 1 transition
    tf["r_zero"] = zero_class(world.dynamics.cfg.reward_values)  # the class of "no reward"
    return tf


def _horizon_row(world, slices, es, g, context: int, h: int) -> tuple[dict, dict]:
    """Metrics of one horizon h over the windows `es` (one frame each; g: their generated frames)."""
    gt = np.stack([slices[e].frames[context + h - 1] for e in es])
    last = np.stack([slices[e].frames[context - 1] for e in es])
    recon, _ = render(world, gt)
    last_tok, _ = render(world, last)  # copy-last as the tokenizer draws it: the bar a world can actually reach
    per = {"rollout": psnr_per_frame(g, gt), "copy_last": psnr_per_frame(last, gt), "tokenizer": psnr_per_frame(recon, gt),
           "copy_last_tok": psnr_per_frame(last_tok, gt)}
    row = {k: _mean(v) for k, v in per.items()}
    keys = {"rollout": "rollout.psnr", "copy_last": "baseline.copy_last.psnr", "tokenizer": "baseline.tokenizer.psnr",
            "copy_last_tok": "baseline.copy_last_tok.psnr"}
    m = {}
    groups = episodes_of(slices, es)
    for k, key in keys.items():
        m[f"{key}.{h}"], m[f"{key}.{h}.ci"] = row[k], mean_ci(per[k], groups, seed=h)
    # the bars' two readings, paired frame by frame (the same windows resampled on both sides): far narrower
    # than the difference of two marginal intervals, since a hard window is hard for every arm
    for key, diff in (("rollout.below_tokenizer", per["tokenizer"] - per["rollout"]),
                      ("rollout.above_copy_last", per["rollout"] - per["copy_last"])):
        m[f"{key}.{h}"], m[f"{key}.{h}.ci"] = _mean(diff), mean_ci(diff, groups, seed=h)
    m[f"rollout.ssim.{h}"], m[f"baseline.copy_last.ssim.{h}"] = _mean(ssim_per_frame(g, gt)), _mean(ssim_per_frame(last, gt))
    m[f"baseline.copy_last.psnr_mse.{h}"] = _psnr_of_mse(per["copy_last"])
    m[f"rollout.episodes.{h}"], m[f"rollout.windows.{h}"] = len(set(groups)), len(es)
    m[f"rollout.mean_colour_gap.{h}"] = mean_colour_gap(g, gt)
    return m, row


def mean_colour_gap(gen_BHW3: np.ndarray, real_BHW3: np.ndarray) -> float:
    """Largest gap, over R, G and B, between the mean level (0..255) of generated and real frames: a world that
    dissolves into a grey or single-coloured soup moves it by tens of levels even where PSNR still looks fair."""
    g = np.asarray(gen_BHW3, np.float64).reshape(-1, 3).mean(0)
    r = np.asarray(real_BHW3, np.float64).reshape(-1, 3).mean(0)
    return float(np.abs(g - r).max())


def rollout_metrics(world, slices, hs, context: int, seed: int) -> tuple[dict, np.ndarray, dict]:
    H = int(hs.max())
    gen = open_loop(world, slices, context, H, seed, actions_override=logged_actions(slices, context, H))
    m, curve = {}, {}
    for h in HORIZONS:
        es = [e for e in range(len(slices)) if hs[e] >= h]
        if es:
            hm, curve[h] = _horizon_row(world, slices, es, gen[es, h - 1], context, h)
            m.update(hm)
    m.update(ceiling_reading(m, [h for h in HORIZONS if h in curve], composite=world.render == "composite"))
    return m, gen, curve


def ceiling_reading(m: dict, hs: list, composite: bool = False) -> dict:
    """Which copy-last a world should beat at each horizon: raw copy-last, unless the tokenizer ceiling is below
    it (then no world decoded by this tokenizer can beat it, and tokenizer-passed copy-last is the fair bar). A
    composite world (world/compose.py) keeps real pixels where its tokens stay, so raw copy-last is its bar."""
    below = [h for h in hs if m[f"baseline.tokenizer.psnr.{h}"] < m[f"baseline.copy_last.psnr.{h}"]]
    out = {"baseline.ceiling_below_copy_last": below}
    for h in hs:
        ref = "copy_last_tok" if h in below and not composite else "copy_last"
        out[f"baseline.reference.{h}"] = ref
        out[f"rollout.minus_reference.{h}"] = m[f"rollout.psnr.{h}"] - m[f"baseline.{ref}.psnr.{h}"]
    return out


CONTROL_NONE = {"control.delta_psnr": None, "control.idm_accuracy": None, "control.idm_accuracy_real": None,
                "control.chance": None, "control.idm_valid": None, "control.action_spread": None,
                "control.seed_spread": None}


def controllability(world, store, train_ids, slices, hs, gen, tf, context: int, seed: int, idm_steps: int,
                    progress: bool) -> dict:
    """delta-PSNR at t = 4 and IDM action-following accuracy (keys control.*), the IDM checked on real frames."""
    m = dict(CONTROL_NONE)
    m.update(delta_psnr_metrics(world, slices, hs, gen, context, seed))
    m.update(action_spread_metrics(world, slices, hs, gen, context, seed))
    rng = np.random.default_rng(seed + 3)
    # A generator: PairSet stops loading episodes once it holds enough frames.
    train_pairs = idm_lib.PairSet(store.load(int(i)) for i in rng.permutation(train_ids))
    if len(train_pairs) == 0:
        print("[eval] no labelled training transitions: skipping the inverse-dynamics model")
        return m
    print(f"[eval] inverse-dynamics model: {idm_steps} steps on {len(train_pairs)} real training transitions")
    model = idm_lib.train_idm(train_pairs, world.num_actions, idm_steps, seed, world.device, progress=progress)
    if (tf["action"] >= 0).any():
        m.update(idm_scores(world, model, tf, seed))
    return m


def idm_scores(world, model, tf, seed: int) -> dict:
    """The IDM on real held-out pairs (is the probe valid?) and on the world's generated pairs (does the world
    follow its actions?), each with its interval, pair count and confusion matrix."""
    A, dev = world.num_actions, world.device
    ok = tf["action"] >= 0
    # Real held-out pairs: the same transitions the generated pairs come from.
    y, ep = tf["action"][ok], tf["ep"][ok]
    pred_real = idm_lib.predict_actions(model, tf["real_prev"][ok], tf["real"][ok], dev)
    pred = idm_lib.predict_actions(model, tf["prev"][ok], tf["gen"][ok], dev)
    chance = majority_accuracy(y)
    ci_real = mean_ci(pred_real == y, ep, seed=seed + 3)
    valid, why = idm_lib.probe_validity(pred_real, y, chance, ci_real)
    small = A <= CONFUSION_MAX_ACTIONS  # a joint action space (625 for 4 agents) makes a matrix nobody reads
    return {"control.idm_accuracy_real": float((pred_real == y).mean()), "control.idm_accuracy_real.ci": ci_real,
            "control.idm_pairs_real": int(len(y)), "control.idm_confusion_real": idm_lib.confusion(pred_real, y, A) if small else None,
            "control.idm_accuracy": float((pred == y).mean()), "control.idm_accuracy.ci": mean_ci(pred == y, ep, seed=seed + 4),
            "control.idm_pairs": int(ok.sum()), "control.idm_episodes": int(len(np.unique(ep))),
            "control.idm_confusion": idm_lib.confusion(pred, y, A) if small else None,
            "control.chance": chance, "control.idm_valid": valid, "control.idm_invalid_reason": why or None}


def action_grids(world, slices, context: int, seed: int, starts: int = 2) -> list:
    """From the same start frames, one row per action held for GRID_STEPS steps -> [(start, [(action, frames)])]."""
    A = world.num_actions
    picked = [slices[e] for e in first_per_episode(slices)[:starts]]
    eps = [sl for sl in picked for _ in range(A)]
    acts = np.repeat(np.tile(np.arange(A), len(picked))[:, None], GRID_STEPS, 1)
    gen = open_loop(world, eps, context, GRID_STEPS, seed, actions_override=acts)
    names = list(world.action_meanings) + [f"ACTION_{a}" for a in range(len(world.action_meanings), A)]
    grids = []
    for i, sl in enumerate(picked):
        rows = [(names[a], np.concatenate([sl.frames[context - 1][None], gen[i * A + a]])) for a in range(A)]
        grids.append((i, rows))
    return grids


def next_frame_metrics(tf, seed: int) -> dict:
    psnr = psnr_per_frame(tf["gen"], tf["real"])
    return {"next_frame.psnr": _mean(psnr), "next_frame.psnr.ci": mean_ci(psnr, tf["ep"], seed=seed + 5),
            "next_frame.ssim": _mean(ssim_per_frame(tf["gen"], tf["real"])), "next_frame.frames": int(len(tf["gen"])),
            "next_frame.episodes": int(len(np.unique(tf["ep"])))}


def head_metrics(tf, seed: int) -> dict:
    """Reward (its classes: the data's values or the sign) and termination heads on real transitions: accuracy beside the majority guess and
    balanced accuracy (a head that never fires scores the majority's accuracy and 1/classes balanced)."""
    m, g = {}, tf["h_ep"]
    for name, p, y in (("reward", tf["r_pred"], tf["r_true"]), ("termination", tf["d_pred"], tf["d_true"])):
        acc, maj = _mean(p == y), majority_accuracy(y)
        m.update({f"{name}.accuracy": acc, f"{name}.accuracy.ci": mean_ci(p == y, g, seed=seed + 6), f"{name}.majority": maj,
                  f"{name}.balanced_accuracy": balanced_accuracy(p, y),
                  f"{name}.balanced_accuracy.ci": balanced_accuracy_ci(p, y, g, seed=seed + 7),
                  f"{name}.transitions": int(len(y)), f"{name}.episodes": int(len(np.unique(g))),
                  f"{name}.below_majority": bool(acc is not None and acc < maj - 1e-12)})
    zero = tf["r_zero"]
    m["reward.nonzero"], m["reward.predicted_nonzero"] = int((tf["r_true"] != zero).sum()), int((tf["r_pred"] != zero).sum())
    m["termination.positives"], m["termination.predicted_positives"] = int(tf["d_true"].sum()), int(tf["d_pred"].sum())
    return m


def _control(world, store, split, eps, slices, hs, gen, tf, context: int, seed: int, idm_steps: int,
             progress: bool) -> tuple[dict, list]:
    """Controllability metrics (latent codes, real actions, or none) and the per-action grids."""
    if world.lam is not None:
        print("[eval] latent actions: code usage, delta-PSNR inferred vs random codes, real->latent map")
        return latent_lib.latent_metrics(world, eps, slices, hs, gen, context, seed), action_grids(world, slices, context, seed)
    if world.meta.has_actions and world.num_actions > 1:
        print("[eval] controllability: random-action rollouts")
        m = controllability(world, store, split["train_ids"], slices, hs, gen, tf, context, seed, idm_steps, progress)
        return m, action_grids(world, slices, context, seed)
    return dict(CONTROL_NONE), []


def _tokenizer_flags(m: dict) -> list[str]:
    # PSNR of the mean squared error on both sides: copy-last's mean PSNR sits at the cap wherever nothing moved
    usage, psnr, copy1 = m["tokenizer.usage"], m.get("tokenizer.psnr_mse"), m.get("baseline.copy_last.psnr_mse.1")
    m["tokenizer.low_usage"] = usage < LOW_USAGE and (psnr is None or psnr < LOSSLESS_DB)
    m["tokenizer.below_copy_last"] = psnr is not None and copy1 is not None and psnr < copy1 - RECON_MARGIN_DB
    out = []
    if m["tokenizer.low_usage"]:
        out.append(f"the tokenizer uses {m['tokenizer.codes_used']} of its {m['tokenizer.vocab_size']} codes ({usage:.1%}, "
                   f"below {LOW_USAGE:.0%}): collapsed codes draw few distinct patches, and every PSNR here is capped by them")
    if m["tokenizer.below_copy_last"]:
        out.append(f"the tokenizer reconstructs real frames at {psnr:.2f} dB, {copy1 - psnr:.1f} dB below copy-last at "
                   f"horizon 1 ({copy1:.2f} dB; both the PSNR of the mean squared error): the tokenizer, not the dynamics, "
                   "limits this world; train it longer or with a finer --grid")
    return out


def trust_checks(m: dict, short: str | None, held_out: HeldOut | None = None) -> dict:
    """Flags of probes and baselines as sentences (meta.warnings) and the keys not to read (meta.invalid_keys)."""
    warn = ([short] if short else []) + _tokenizer_flags(m)
    if held_out is not None and (said := held_out.warning(m.get("meta.data") or "this store")):
        warn.append(said)
    below = m.get("baseline.ceiling_below_copy_last") or []
    if below and m.get("meta.render") != "composite":
        warn.append(f"at horizons {below} the tokenizer ceiling is below raw copy-last: no world decoded by this "
                    "tokenizer can beat raw copy-last there, so read the world against copy-last through the tokenizer "
                    "(baseline.copy_last_tok.psnr.{h})")
    soup = {h: round(m[k], 1) for k in m if k.startswith("rollout.mean_colour_gap.")
            for h in [int(k.rsplit(".", 1)[1])] if m[k] is not None and m[k] > MEAN_COLOUR_TOL}
    if soup:
        warn.append(f"the generated frames' mean colour is more than {MEAN_COLOUR_TOL:g} levels (of 255) from the real "
                    f"frames' at horizons {soup}: the world drifts toward a uniform soup (rollout.mean_colour_gap.{{h}})")
    invalid = []
    if m.get("control.idm_valid") is False:
        invalid = ["control.idm_accuracy", "control.idm_accuracy.ci", "control.idm_confusion"]
        warn.append(f"the inverse-dynamics probe is not valid: {m['control.idm_invalid_reason']}; its action-following "
                    "accuracy on generated frames says nothing about the world (read control.delta_psnr, and "
                    "control.action_spread beside control.seed_spread, instead)")
    for name, what, n in (("reward", "nonzero reward", "reward.nonzero"), ("termination", "termination", "termination.positives")):
        if m.get(f"{name}.below_majority"):
            pred = m["reward.predicted_nonzero" if name == "reward" else "termination.predicted_positives"]
            warn.append(f"the {name} head scores below the majority guess ({m[f'{name}.accuracy']:.3f} < "
                        f"{m[f'{name}.majority']:.3f}): it predicts a {what} on {pred} transitions where {m[n]} had one; "
                        "one cause: event oversampling without the prior correction (maskworld.train.head_prior)")
    return {"meta.warnings": warn, "meta.invalid_keys": invalid}


def _finite(v):
    """NaN/inf -> None, inside lists too (JSON has no NaN)."""
    if isinstance(v, float):
        return v if np.isfinite(v) else None
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v


def evaluate(world, store, episodes: int = 20, seed: int = 0, idm_steps: int = 300, progress: bool = True,
             world_path: str = "", data_path: str = "", strict: bool = False, windows: int = ROLLOUT_WINDOWS) -> tuple[dict, dict]:
    """-> (flat metrics, artifacts for the report). strict: ShortSample (exit 3) when fewer held-out episodes
    than `episodes` are available, raised before any model runs. windows: about this many open-loop rollouts in
    all (several per episode when few, long episodes are held out; rollout_plan)."""
    t0 = time.time()
    torch.manual_seed(seed)
    check_compatible(world, store)
    context = min(world.dynamics.cfg.window - 1, 4)
    eps, ids, split = select_val_episodes(world, store, episodes, seed, context + 1)
    short = sample_warning(store, split, context + 1)
    if short and strict:
        raise ShortSample(short)
    if short:
        print(f"[eval] WARNING: {short}")
    held = split["held_out"]
    if said := held.warning(str(store.path)):
        print(f"[eval] WARNING: {said}")
    if world.lam is not None:
        eps = latent_lib.with_inferred_actions(world, eps)  # the actions of every pass below are the LAM's codes
    print(f"[eval] {len(eps)} held-out episodes ({sum(len(e.frames) for e in eps)} frames), context {context}, seed {seed}")
    print("[eval] tokenizer reconstruction")
    m, recon = tokenizer_metrics(world, eps)
    print("[eval] teacher-forced pass: next frame, reward, termination")
    tf = teacher_forced(world, eps, seed, progress)
    m.update(next_frame_metrics(tf, seed))
    maps = error_maps(tf["real"], tf["gen"], tf["real_prev"], tf["recon_prev"])
    m["next_frame.error_top5_share"] = top_share(maps["world"])
    m.update(head_metrics(tf, seed))
    print("[eval] open-loop rollouts")
    slices, hs = rollout_plan(eps, context, seed, windows)
    print(f"[eval] {len(slices)} rollout windows over {len(eps)} episodes")
    rm, gen, curve = rollout_metrics(world, slices, hs, context, seed)
    m.update(rm)
    cm, grids = _control(world, store, split, eps, slices, hs, gen, tf, context, seed, idm_steps, progress)
    m.update(cm)
    shown = first_per_episode(slices)[:GIF_EPISODES]
    gifs = [(f"episode {ids[slices[e].ep]} from frame {slices[e].start}", slices[e].frames[context : context + hs[e]], gen[e, : hs[e]])
            for e in shown]
    m.update({"meta.episodes": len(eps), "meta.episodes_requested": episodes,
              "meta.windows": len(slices), "meta.windows_requested": windows, "meta.episodes_available": split["available"],
              "meta.val_episodes": split["val_episodes"], "meta.episode_ids": ids, "meta.seed": seed, "meta.context": context,
              "meta.horizons": [h for h in HORIZONS if f"rollout.psnr.{h}" in m], "meta.idm_steps": idm_steps,
              "meta.world": str(world_path), "meta.data": str(data_path),
              "meta.split_seed": split["seed"], "meta.split_val_fraction": split["val_fraction"],
              "meta.sampler_steps": world.sampler.steps, "meta.render": world.render, "meta.seconds": round(time.time() - t0, 2),
              **held.as_metrics()})
    m.update(trust_checks(m, short, held))
    m = {k: _finite(v) for k, v in m.items()}
    return m, {"curve": curve, "grids": grids, "gifs": gifs, "recon": recon, "error_maps": maps}
