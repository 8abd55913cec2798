"""The whole pipeline: tokenizer -> token cache -> dynamics -> WORLD directory.

    maskworld train world --data DATA --out WORLD --preset small --minutes 60        # one CPU
    maskworld train world --data DATA --out WORLD --preset small --minutes 60 --resume  # after a kill

Everything resumable lives in WORLD/_work: per-stage checkpoints (latest.json + step dirs), the token
caches (written to a temp dir and renamed, so a killed tokenization is simply redone) and TensorBoard
logs (`tensorboard --logdir WORLD/_work/tb`). The finished world is world.json + *.safetensors;
`_work` can be deleted once you are happy with it.

    torchrun --nproc-per-node 8 -m maskworld train world --data DATA --out WORLD --preset base --minutes 60

Under torchrun the same code runs data-parallel (maskworld.train.dist): batches are global and split
across ranks; rank 0 writes the token caches (the others wait at a barrier), checkpoints and the
world. DATA may be any fsspec URL; OUT is a local path or file:// URL (on a shared file system when
there are several nodes).

Settings: maskworld.train.config (TrainConfig, validated once; resolve() from a preset and overrides). The stages
take the config and a `Run` (the opened data, its split, the device, OUT/_work).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maskworld.data.event_sampler import default_share, event_windows
from maskworld.data.held_out import card_split, world_split
from maskworld.data.store import EpisodeStore
from maskworld.data.token_cache import TokenCache, write_token_cache
from maskworld.device import pick_device
from maskworld.errors import UserError
from maskworld.io import atomic_save_safetensors, atomic_write_json, atomic_write_text
from maskworld.memory.motion import Motion, fit_motion
from maskworld.models.fsq import LEVELS_BY_CODES
from maskworld.models.lam import LamConfig
from maskworld.models.sampler import SamplerConfig
from maskworld.models.text import TextVocab
from maskworld.models.tokenizer import Tokenizer, TokenizerConfig
from maskworld.models.unified import UnifiedConfig
from maskworld.train import dist
from maskworld.train.auto_preset import PRESET_RECORD
from maskworld.train.config import TrainConfig, init_split, tokenizer_downsample, train_config
from maskworld.train.data_checks import check_budget, check_episodes, check_frames_change
from maskworld.train.dynamics_train import train_dynamics
from maskworld.train.head_prior import set_head_prior, set_reward_values
from maskworld.train.dist import print0
from maskworld.train.heldout_probe import HeldoutProbe
from maskworld.train.init_world import init_dynamics, init_tokenizer, init_unified
from maskworld.train.lam_train import label_cache, relabel, train_lam
from maskworld.train.locator_train import add_locator
from maskworld.train.loop import Budget
from maskworld.train.presets import get_preset
from maskworld.train.tokenizer_train import FramePool, train_tokenizer
from maskworld.train.unified_tasks import task_weights
from maskworld.train.unified_train import episode_texts, expert_episodes, train_unified
from maskworld.world.latent import code_stats, fit_action_map, map_accuracy
from maskworld.world.unified import UnifiedWorld
from maskworld.world.world import World, WorldMeta

TrainArgs = train_config
"""Flat keyword arguments (one per `maskworld train` flag) -> TrainConfig, e.g. TrainArgs(data=..., out=..., steps=3)."""


@dataclass
class Run:
    """What every stage shares besides the config: the opened data, its split, the device and OUT/_work."""

    cfg: TrainConfig
    store: Any
    train_ids: list[int]
    val_ids: list[int]
    device: torch.device
    work: Path

    @property
    def meta(self) -> dict:
        return self.store.meta

    def preset(self):
        """The preset's model configs for this data's frame size."""
        return get_preset(self.cfg.run.preset, int(self.meta.get("size", 64)))


def _budgets(cfg: TrainConfig) -> tuple[Budget, Budget]:
    (tok_steps, tok_min), (dyn_steps, dyn_min) = cfg.budgets()
    return Budget(steps=tok_steps, minutes=tok_min), Budget(steps=dyn_steps, minutes=dyn_min)


def open_store(data: str):
    store = EpisodeStore(data)
    if len(store.episode_ids) < 2:
        raise UserError(f"{data} has {len(store.episode_ids)} episode(s); training needs at least 2 (one for validation). "
                        "Collect more with `maskworld collect`")
    return store


def _card_base(cfg: TrainConfig, store, device) -> dict:
    r = cfg.run
    return {
        "command": r.command_line,
        "data": {"path": str(r.data), "env_id": store.meta.get("env_id"), "collect_command": store.meta.get("command"),
                 "episodes": len(store.episode_ids),
                 "frames": int(store.num_frames), "policy": store.meta.get("policy")},
        "preset": r.preset, "seed": r.seed, "device": str(device),
        "device_name": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__, "processes": dist.world_size(), "data_split": dist.data_split(), "fsdp": r.fsdp,
        "config": cfg.to_dict(),
    }


def stage_tokenizer(run: Run, budget: Budget):
    r, preset = run.cfg.run, run.preset()
    tcfg, batch = preset.tokenizer, run.cfg.tokenizer.tok_batch
    down = tokenizer_downsample(run.cfg.tokenizer.grid, tcfg.image_size, tcfg.patch)
    if down is not None:
        tcfg.downsample = down
    if run.cfg.tokenizer.codebook:
        tcfg.levels = list(LEVELS_BY_CODES[run.cfg.tokenizer.codebook])
    tcfg.encoder = run.cfg.tokenizer.tok_encoder
    pool = FramePool(run.store, dist.own_episodes(run.store, run.train_ids), seed=r.seed)  # rank split: this rank's episodes only
    val = FramePool(run.store, run.val_ids, max_frames=512, seed=r.seed + 1).frames
    dist.check_batch("--tok-batch", batch)
    print0(f"[tokenizer] {len(pool)} training frames, budget {budget.describe()}, {tcfg.grid}x{tcfg.grid} tokens, device {run.device}")
    tok, m = train_tokenizer(pool, val, tcfg, batch, preset.lr * 2, budget, run.work, run.device, r.resume,
                             r.seed, r.progress, ckpt_minutes=r.ckpt_minutes, fsdp=r.fsdp, compile=r.compile)
    print0(f"[tokenizer] val PSNR {m.get('val_psnr', float('nan')):.2f} dB, code usage {m.get('val_usage', 0):.2f}")
    return tok, m


def save_tokenizer(out: Path, tok: Tokenizer, metrics: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_save_safetensors(tok.state_dict(), out / "tokenizer.safetensors")
    atomic_write_text(out / "tokenizer.json", json.dumps({"tokenizer": dataclasses.asdict(tok.cfg), "metrics": metrics}, indent=2))


def load_tokenizer(out: Path, device) -> Tokenizer:
    from safetensors.torch import load_file

    cfg_f, w_f = out / "tokenizer.json", out / "tokenizer.safetensors"
    if not cfg_f.exists() or not w_f.exists():
        raise UserError(f"{out} has no trained tokenizer; run `maskworld train tokenizer --out {out}` first (or `train world`)")
    tok = Tokenizer(TokenizerConfig(**json.loads(cfg_f.read_text())["tokenizer"]))
    tok.load_state_dict(load_file(str(w_f)))
    return tok.to(device).eval()


def stage_cache(store, ids, tok: Tokenizer, path: Path, device, progress: bool, own: bool = False):
    """Rank 0 tokenizes (once; a finished cache is reused on --resume); the other ranks wait, then all open it.

    own (--data-split rank): every rank tokenizes its own episodes into its own cache, all at once."""
    if own:
        path, ids = dist.own_cache_path(path), dist.own_episodes(store, ids)
    if (own or dist.is_main()) and not (path / "index.npz").exists():
        def encode(frames_u8: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return tok.tokenize_uint8(torch.from_numpy(frames_u8).to(device)).cpu().numpy()

        write_token_cache(path, store, ids, encode, progress=progress and dist.is_main())
    dist.barrier()
    return TokenCache(path)


def stage_dynamics(run: Run, tok, budget: Budget):
    c, r = run.cfg, run.cfg.run
    t0 = time.time()
    train_cache = stage_cache(run.store, run.train_ids, tok, run.work / "cache_train", run.device, r.progress, own=dist.own_data())
    val_cache = stage_cache(run.store, run.val_ids, tok, run.work / "cache_val", run.device, r.progress)
    print0(f"[cache] tokenized {train_cache.num_frames + val_cache.num_frames} frames in {time.time() - t0:.0f}s")
    cfg, init_state = _dynamics_config(run, tok)
    set_reward_values(cfg, train_cache, init_state)
    if budget.minutes is not None:
        left = budget.minutes - (time.time() - t0) / 60
        if left < 0.5:
            print0(f"[dynamics] warning: tokenizing the data took {(time.time() - t0) / 60:.1f} min of the budget, "
                   f"{max(left, 0):.2f} min are left for the dynamics: raise --minutes (the token cache is kept for "
                   "the next run into this --out)")
        budget = Budget(minutes=max(left, 0.05))
    lam, lam_info = None, {}
    if c.uses_lam(run.meta):
        lam, lam_info, budget = stage_lam(run, tok, train_cache, val_cache, budget)
        cfg.num_actions = lam.cfg.num_codes
    dist.check_batch("--batch", c.dynamics.batch)
    share = event_share(c, train_cache, cfg.window)
    print0(f"[dynamics] budget {budget.describe()}, window {cfg.window} frames, {cfg.d_model}d x {cfg.n_layers} layers")
    probe = None if lam is not None or not dist.is_main() else HeldoutProbe(tok, run.store, run.val_ids, run.meta, cfg.num_actions,
                                                                                  render=c.dynamics.render)
    model, m = train_dynamics(train_cache, val_cache, cfg, c.dynamics.batch, run.preset().lr, budget, run.work, run.device,
                              r.resume, r.seed, r.progress, ckpt_minutes=r.ckpt_minutes, fsdp=r.fsdp, compile=r.compile,
                              event_share=share, context_drop=c.dynamics.context_drop, init_state=init_state,
                              self_context=c.dynamics.self_context, agent_dropout=c.dynamics.agent_dropout,
                              action_dropout=c.dynamics.action_dropout,
                              probe=probe or None, optimizer=c.dynamics.optimizer)
    m["event_share"] = share
    set_head_prior(model.cfg, train_cache, share, r.seed)  # the heads' logits corrected for the oversampled event prior
    if model.cfg.memory_frames and model.cfg.memory_keys == "pose" and train_cache.poses is not None:
        m["motion"] = fit_cache_motion(train_cache, model.cfg.num_actions).to_dict()
        print0(f"[memory] motion model: its pose changes match {m['motion']['accuracy']:.3f} of the real steps; "
               f"a blockable move counts when >= {m['motion']['change']:.2f} of the tokens change")
    print0(f"[dynamics] val token loss {m.get('val_loss', float('nan')):.3f}, masked-token accuracy {m.get('val_acc', 0):.3f}, "
          f"{m.get('tok_s', 0):.0f} tokens/s")
    if "val_h8_psnr" in m:
        print0(f"[dynamics] held-out rollout PSNR at h8 {m['val_h8_psnr']:.2f} dB: copy-last {m['val_h8_copy_last']:.2f}, "
               f"tokenizer ceiling {m['val_h8_tokenizer']:.2f}")
    return model, m, lam, lam_info


def _dynamics_config(run: Run, tok):
    """The dynamics' model config (and weights to start from): the --init world's, or the preset's with the run's
    sizes and memory. resolve() has already made the run's settings agree with an --init world."""
    c, mem = run.cfg, run.cfg.memory
    init_state = None
    if c.dynamics.init is not None:
        cfg, init_state = init_dynamics(c.dynamics.init, tok)
        cfg.copy_head = mem.copy_head  # the init world's, or added to it
        if c.has_memory and not cfg.has_memory:  # memory added to a world without it
            _set_memory(run, cfg, tok)
    else:
        cfg = run.preset().dynamics
        cfg.window, cfg.d_model, cfg.n_layers = c.dynamics.window, c.dynamics.d_model, c.dynamics.layers
        cfg.prev_frame_prior, cfg.spatial_rope = c.dynamics.prev_frame_prior, c.dynamics.spatial_rope
        cfg.code_levels = list(tok.cfg.levels) if c.dynamics.code_factors else None
        if c.has_memory:
            _set_memory(run, cfg, tok)
    if c.dynamics.local_radius is not None:
        if c.dynamics.local_radius < 0:
            raise UserError(f"--local-radius {c.dynamics.local_radius}: give 0 (cells read everything) or more")
        cfg.local_radius = c.dynamics.local_radius
    cfg.num_actions = c.num_actions(run.meta)
    cfg.vocab_size, cfg.grid = tok.cfg.vocab_size, tok.cfg.grid
    agents = int(run.meta.get("agents", 1))
    if agents > 1 and c.has_actions(run.meta) and c.dynamics.init is None:  # joint actions: one embedding per agent
        cfg.action_factors = [len(run.meta["agent_action_meanings"])] * agents
    if c.dynamics.agent_dropout > 0:
        if not cfg.action_factors:
            raise UserError("--agent-dropout hides single agents' actions: it needs data of several agents acting at "
                            "once (collect a multi-agent env such as MultiAgent-Coins-v0)")
        cfg.partial_actions = True  # kept by later fine-tunes: the world reads partly known actions from now on
    return cfg, init_state


def fit_cache_motion(cache, num_actions: int) -> Motion:
    """The motion model (memory/motion.py) fitted on a token cache's real transitions."""
    first = np.zeros(len(cache.poses), bool)
    first[cache.offsets] = True
    return fit_motion(cache.poses, np.asarray(cache.tokens), cache.actions_in, first, num_actions)


def _set_memory(run: Run, cfg, tok) -> None:
    """The run's memory M (--memory, --compressed, --memory-keys, --copy-head) into a dynamics config."""
    c, mem = run.cfg, run.cfg.memory
    if mem.compressed and tok.cfg.grid % 2:
        raise UserError(f"--compressed pools 2x2 tokens and needs an even token grid, not {tok.cfg.grid}")
    cfg.memory_keys = c.memory_keys(run.meta)
    by_pose = cfg.memory_keys == "pose"
    cfg.memory_frames, cfg.compressed_frames, cfg.pose_head, cfg.copy_head = mem.memory, mem.compressed, by_pose, mem.copy_head
    print0(f"[memory] {mem.memory} retrieved frames by {cfg.memory_keys}, {mem.compressed} compressed frames"
           + (", pose head on, motion fitted from the data's poses" if by_pose else ""))


def _take_init_tokenizer(init: str, out: Path) -> None:
    """A fine-tune (--init WORLD) into an --out without a tokenizer: the init world's tokenizer is written there, so its
    dynamics' token ids keep meaning the same patches."""
    tok = init_tokenizer(init)
    save_tokenizer(out, tok, {"from": str(init)})
    print0(f"[tokenizer] none in {out}: using {init}'s ({tok.cfg.grid}x{tok.cfg.grid} tokens)")


def event_share(c: TrainConfig, cache, window: int) -> float:
    """--event-share, or its default for this cache (0.25 with events, 0 without); says what it found."""
    n = len(event_windows(cache, window)[0])
    share = default_share(cache) if c.dynamics.event_share is None else c.dynamics.event_share
    if share > 0 and n == 0:
        print0(f"[dynamics] --event-share {share:g}: {c.run.data} has no reward or termination transition in an episode of "
               f"{window}+ frames, nothing to oversample: uniform clips")
        return 0.0
    if share > 0:
        uniform = n / max(1, int(np.maximum(cache.lengths - window + 1, 0).sum()))
        print0(f"[dynamics] event oversampling: {share:.0%} of the clips end on one of {n} reward/termination "
               f"transitions ({uniform:.2%} of uniform clips do)")
    return share


def stage_lam(run: Run, tok, train_cache, val_cache, budget: Budget):
    """Latent-action model on the token caches, then both caches relabelled with its codes.

    Returns (lam, info for world.json, what is left of the dynamics budget)."""
    r, lc = run.cfg.run, run.cfg.lam
    if budget.minutes is not None:
        lam_budget = Budget(minutes=lc.lam_share * budget.minutes)
        rest = Budget(minutes=budget.minutes - lam_budget.minutes)
    else:
        lam_budget, rest = Budget(steps=lc.lam_steps or budget.steps), budget
    cfg = LamConfig(num_codes=lc.latent_actions, grid=tok.cfg.grid, levels=list(tok.cfg.levels), context_frame=True,
                    norm_features=True)
    print0(f"[lam] latent-action model: {cfg.num_codes} codes, budget {lam_budget.describe()} (action-free data)")
    lam, m = train_lam(train_cache, val_cache, cfg, 256, 1e-3, lam_budget, run.work, run.device, r.resume, r.seed, r.progress,
                       ckpt_minutes=r.ckpt_minutes)
    real = train_cache.actions_in, val_cache.actions_in
    latent = label_cache(train_cache, lam, run.device), label_cache(val_cache, lam, run.device)
    relabel(train_cache, latent[0], cfg.num_codes)
    relabel(val_cache, latent[1], cfg.num_codes)
    keys = ("steps", "train_s", "val_codes", "val_ppl", "val_recon", "val_recon_shuffled")
    info = {"num_codes": cfg.num_codes, "train": {k: m[k] for k in keys if k in m},
            "val_usage": code_stats(latent[1], cfg.num_codes)}
    print0(f"[lam] held-out code use {info['val_usage']['codes_used']}/{cfg.num_codes} (perplexity {info['val_usage']['perplexity']:.2f}), "
           f"decoder error {m.get('val_recon', float('nan')):.4f} vs {m.get('val_recon_shuffled', float('nan')):.4f} "
           "with another sample's latent")
    amap = _action_map(run, real, latent, cfg.num_codes)
    if amap is not None:
        info["action_map"] = amap
    return lam, info, rest


def _action_map(run: Run, real, latent, num_codes: int) -> dict | None:
    """The real->latent action map, fit on labelled training transitions when the store has actions."""
    n_real, n_fit = int(run.meta.get("num_actions", 0)), run.cfg.lam.label_transitions
    if not (run.meta.get("has_actions", True) and n_real > 0 and n_fit > 0):
        return None
    amap = fit_action_map(real[0], latent[0], n_real, num_codes, n_fit, seed=run.cfg.run.seed)
    amap_eval = {"val_" + k: v for k, v in map_accuracy(amap["to_latent"], real[1], latent[1], n_real, num_codes).items()}
    amap.update(amap_eval)
    amap["real_action_meanings"] = list(run.meta.get("action_meanings", []))
    if amap_eval["val_accuracy"] is None:
        print0(f"[lam] real->latent map fit on {amap['fit_transitions']} labelled transitions (no held-out labelled ones to score it)")
    else:
        print0(f"[lam] real->latent map fit on {amap['fit_transitions']} labelled transitions: held-out accuracy "
               f"{amap_eval['val_accuracy']:.3f} (majority code {amap_eval['val_majority']:.3f}, "
               f"{amap_eval['val_transitions']} transitions)")
    return amap


def local_out(out: str) -> Path:
    """OUT as a local path: checkpoints and token caches need atomic renames and memory maps."""
    out = str(out)
    if out.startswith("file://"):
        return Path(out[len("file://"):])
    if "://" in out:
        raise UserError(f"--out {out}: training writes a local (or shared, mounted) directory only; "
                        "train into a local path, then copy the world directory")
    return Path(out)


def run_train(cfg: TrainConfig, stages: tuple[str, ...] | None = None) -> Path:
    """Train; under torchrun every rank calls this (see maskworld.train.dist). stages: instead of cfg.run.stages."""
    if stages is not None:  # replace() runs the config's checks again, now with these stages
        cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, stages=tuple(stages)))
    out = local_out(cfg.run.out)
    device = pick_device(cfg.run.device)
    if cfg.run.fsdp:
        dist.check_fsdp(device)
    device = dist.init(device, cfg.run.data_split)
    try:
        return _run_train(cfg, out, device)
    finally:
        dist.shutdown()


def _run_train(cfg: TrainConfig, out: Path, device) -> Path:
    r, stages = cfg.run, cfg.run.stages
    tok_budget, dyn_budget = _budgets(cfg)
    store = open_store(r.data)
    cfg.check_data(store.meta)  # argument errors first: nothing is written before they pass
    train_ids, val_ids = store.split(seed=r.seed, val_fraction=r.val_fraction)
    inherited = None
    if cfg.dynamics.init is not None:  # a fine-tune holds out what its parent held out, and trains on nothing else
        t, v, how = world_split(store, init_split(cfg.dynamics.init))
        if how.by == "content":
            train_ids, val_ids, inherited = t, v, str(cfg.dynamics.init)
            print0(f"[data] held out as --init {inherited} held out: its {how.found} held-out episodes found in {r.data}")
    if not r.resume:
        check_budget(r.minutes, dyn_budget.minutes if "dynamics" in stages else None)
    if "dynamics" in stages:
        check_episodes(store, train_ids, cfg.dynamics.window)
    check_frames_change(store, train_ids, r.seed)
    work = out / "_work"
    if out.exists() and any(out.iterdir()) and not r.resume and "tokenizer" in stages and (work / "ckpt_tokenizer").exists():
        raise UserError(f"{out} already holds a training run; pass --resume to continue it, or choose another --out")
    dist.barrier()  # every rank has checked OUT before rank 0 starts writing to it
    if dist.is_main():
        work.mkdir(parents=True, exist_ok=True)
        if r.preset_reason:  # --preset auto's choice: a resumed run must build the same models
            atomic_write_json(work / PRESET_RECORD, {"preset": r.preset, "why": list(r.preset_reason)}, indent=1)
    run = Run(cfg, store, train_ids, val_ids, device, work)
    card = _card_base(cfg, store, device)
    card["split"] = card_split(store, r.seed, r.val_fraction, val_ids, inherited) if dist.is_main() else {}
    times = {}
    if "tokenizer" in stages:
        t0 = time.time()
        tok, tm = stage_tokenizer(run, tok_budget)
        if dist.is_main():
            save_tokenizer(out, tok, tm)
        times["tokenizer_s"] = round(time.time() - t0, 1)
        card["tokenizer_train"] = {k: tm[k] for k in ("val_psnr", "val_usage", "steps", "train_s") if k in tm}
    else:
        if cfg.dynamics.init is not None and not (out / "tokenizer.safetensors").exists() and dist.is_main():
            _take_init_tokenizer(cfg.dynamics.init, out)
        dist.barrier()
        tok = load_tokenizer(out, device)
    if "dynamics" not in stages:
        dist.barrier()
        return out
    if cfg.dynamics.kind == "unified":
        stage_unified(run, tok, dyn_budget, card, out)
        return out
    t0 = time.time()
    dyn, dm, lam, lam_info = stage_dynamics(run, tok, dyn_budget)
    times["dynamics_s"] = round(time.time() - t0, 1)
    keep = ("val_loss", "val_acc", "val_h8_psnr", "val_h8_copy_last", "val_h8_tokenizer", "steps", "train_s", "tok_s",
            "event_share")
    card["dynamics_train"] = {k: dm[k] for k in keep if k in dm}
    card["dynamics_train"].update({"context_drop": cfg.dynamics.context_drop, "self_context": cfg.dynamics.self_context,
                                   **({"agent_dropout": cfg.dynamics.agent_dropout} if cfg.dynamics.agent_dropout else {}),
                                   **({"action_dropout": cfg.dynamics.action_dropout} if cfg.dynamics.action_dropout else {}),
                                   "optimizer": cfg.dynamics.optimizer,
                                   **({"init": str(cfg.dynamics.init)} if cfg.dynamics.init else {})})
    card["train_time_s"] = times
    _save_world(run, out, tok, dyn, lam, lam_info, card, dm.get("motion"))
    return out


def stage_unified(run: Run, tok, budget: Budget, card: dict, out: Path) -> None:
    """--kind unified: the token caches, the text vocabulary of the data's missions, the unified model, the world."""
    c, r = run.cfg, run.cfg.run
    if dist.world_size() > 1:
        raise UserError("--kind unified trains in one process for now; run it without torchrun")
    t0 = time.time()
    train_cache = stage_cache(run.store, run.train_ids, tok, run.work / "cache_train", run.device, r.progress)
    val_cache = stage_cache(run.store, run.val_ids, tok, run.work / "cache_val", run.device, r.progress)
    vocab = TextVocab.build(run.store.entry(e).get("mission") for e in run.store.episode_ids
                            if run.store.entry(e).get("mission"))
    if budget.minutes is not None:
        budget = Budget(minutes=max(budget.minutes - (time.time() - t0) / 60, 0.05))
    preset = run.preset().dynamics
    cfg = UnifiedConfig(vocab_size=tok.cfg.vocab_size, num_actions=c.num_actions(run.meta), text_vocab=vocab.size,
                        text_len=vocab.length, grid=tok.cfg.grid, window=c.dynamics.window, d_model=c.dynamics.d_model,
                        n_layers=c.dynamics.layers, n_heads=preset.n_heads, causal_dynamics=True,
                        action_delta=True)
    init_state = None
    if c.dynamics.init is not None:
        cfg, init_state = init_unified(c.dynamics.init, tok, vocab, cfg)
    print(f"[unified] tasks {c.dynamics.tasks or 'all'}; {vocab.size} words, texts of <= {vocab.length}; clips of {cfg.window} steps; "
          f"{cfg.d_model}d x {cfg.n_layers} layers; budget {budget.describe()}")
    model, m = train_unified(train_cache, val_cache, episode_texts(train_cache, run.store, vocab),
                             episode_texts(val_cache, run.store, vocab), expert_episodes(train_cache, run.store),
                             expert_episodes(val_cache, run.store), cfg, c.dynamics.batch, run.preset().lr, budget,
                             run.work, run.device, r.resume, r.seed, r.progress, ckpt_minutes=r.ckpt_minutes,
                             weights=task_weights(c.dynamics.tasks), init_state=init_state,
                             optimizer=c.dynamics.optimizer)
    shown = ", ".join(f"{name} {m[f'val_acc_{k}']:.3f}" for k, name in
                      (("frame", "frame tokens"), ("act", "actions"), ("out", "outcomes"), ("text", "words"))
                      if f"val_acc_{k}" in m)
    print(f"[unified] {m['steps']} steps; held-out accuracy on hidden positions: {shown or 'none measured'}")
    card["unified_train"] = {k: m[k] for k in m if k.startswith("val_") or k in ("steps", "train_s")}
    card["unified_train"]["optimizer"] = c.dynamics.optimizer
    if c.dynamics.init is not None:  # the lineage: a continued world says what it started from
        card["unified_train"]["init"] = str(c.dynamics.init)
    meta = {"env_id": run.meta.get("env_id", "unknown"), "size": int(run.meta.get("size", 64)),
            "view": run.meta.get("view"), "action_meanings": list(run.meta.get("action_meanings", [])),
            "model_card": card}
    UnifiedWorld(tok.cpu(), model.cpu(), vocab, meta).save(out)
    print(f"[world] saved the unified world {out}/world.json (+ tokenizer.safetensors, unified.safetensors)")


def _save_world(run: Run, out: Path, tok, dyn, lam, lam_info: dict, card: dict, motion: dict | None = None) -> None:
    has_actions = run.cfg.has_actions(run.meta)
    meanings = list(run.meta.get("action_meanings", [])) if has_actions else ["NOOP"]
    if lam is not None:
        meanings = [f"LATENT_{k + 1}" for k in range(lam.cfg.num_codes)]
        card["lam_train"] = lam_info.get("train", {})
    meta = WorldMeta(env_id=run.meta.get("env_id", "unknown"), size=int(run.meta.get("size", 64)),
                     action_meanings=meanings, has_actions=has_actions, model_card=card,
                     latent_actions={k: v for k, v in lam_info.items() if k != "train"}, render=run.cfg.dynamics.render,
                     motion=motion or {}, agents=int(run.meta.get("agents", 1)) if has_actions else 1,
                     agent_action_meanings=list(run.meta.get("agent_action_meanings", [])) if has_actions else [])
    if dist.is_main():
        # cells that read only their neighbourhood do not read the other cells of the frame being decoded, so every
        # MaskGIT step draws from the same logits: one step is the same distribution at a quarter of the passes
        sampler = SamplerConfig(steps=1) if dyn.cfg.local_radius else SamplerConfig()
        world = World(tok.cpu(), dyn.cpu(), sampler, meta, lam=lam.cpu() if lam is not None else None)
        world.save(out)
        if meta.agents > 1 and "agents_pos" in run.meta.get("info_keys", []):
            # a world of several agents gets its avatar locator (seconds); it decodes avatar by avatar only when
            # trained with hidden actions (--agent-dropout): world/factorised.py, docs/results.md
            rollout, m = add_locator(world, run.store, seed=run.cfg.run.seed, log=None)
            print(f"[locator] every avatar on its cell in {m['accuracy']:.3f} of {m['val_frames']} held-out frames; "
                  f"rollout {rollout}")
    dist.barrier()  # nobody reports success before the world is on disk
    print0(f"[world] saved {out}/world.json (+ tokenizer.safetensors, dynamics.safetensors)")
