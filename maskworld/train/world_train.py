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
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from maskworld.device import pick_device
from maskworld.data.event_sampler import check_share
from maskworld.errors import UserError
from maskworld.models.sampler import SamplerConfig
from maskworld.models.tokenizer import Tokenizer, TokenizerConfig
from maskworld.train import dist
from maskworld.train.loop import Budget
from maskworld.train.presets import get_preset
from maskworld.world.world import World, WorldMeta, atomic_save_safetensors, atomic_write_text


@dataclass
class TrainArgs:
    data: str
    out: str
    preset: str = "small"
    minutes: float | None = None
    steps: int | None = None
    tok_minutes: float | None = None
    tok_steps: int | None = None
    resume: bool = False
    seed: int = 0
    device: str = "auto"
    val_fraction: float = 0.1
    progress: bool = True
    ignore_actions: bool = False
    grid: int | None = None
    batch: int | None = None
    tok_batch: int | None = None
    ckpt_minutes: float = 5.0
    window: int | None = None
    command_line: str | None = None
    """The exact command, for the model card."""
    """Tokens per frame side (8 or 16); None = the preset's."""
    fsdp: bool = False
    """Shard parameters with FSDP2 (torchrun on GPUs only)."""
    data_split: str = "global"
    """Several processes: "global" (all ranks draw one global batch, each keeps its part) or "rank" (each
    rank reads only its own episodes); see maskworld.train.dist."""
    compile: bool = False
    """torch.compile the training forward."""
    latent_actions: int = 8
    """Codes of the latent-action model trained on action-free data (0: an unconditioned video model)."""
    lam_share: float = 0.25
    """Share of the dynamics budget (--minutes) spent on the latent-action model; with --steps it gets --lam-steps."""
    lam_steps: int | None = None
    label_transitions: int = 200
    """Labelled transitions (from training episodes) that fit the real->latent action map, when the store has actions."""
    memory: int = 0
    """Memory M: retrieved frames read by each predicted frame (0 = off). Needs poses in the data (MiniGrid)."""
    compressed: int | None = None
    """Memory M: frames just older than the window read at a quarter of their tokens (default 2 with --memory)."""
    d_model: int | None = None
    """Dynamics width override (None = the preset's); must be a multiple of the preset's heads."""
    layers: int | None = None
    """Dynamics depth override (None = the preset's)."""
    event_share: float | None = None
    """Share of each dynamics batch's clips that end on a reward/termination transition (issue 8); None = 0.25 when
    the training data has any such transition, else 0 (maskworld.data.event_sampler)."""
    context_drop: float = 0.0
    """Share of clips whose context is mostly noise (corruption rate ~ U(0.5, 1)): as after a long open-loop rollout,
    so a memory world learns to rebuild a place from memory rather than from its window (dynamics_train.corrupt)."""
    init: str | None = None
    """A world directory whose dynamics weights (and config) training starts from: a fine-tune."""
    copy_head: bool = False
    """Memory M: add the copy head (predict a token by pointing at a retrieved one; models/copy_head.py)."""


def _check_memory(a: TrainArgs) -> None:
    if a.memory < 0 or a.memory > 16:
        raise UserError(f"--memory {a.memory}: give 0 (off) to 16 retrieved frames")
    if a.compressed is not None and not 0 <= a.compressed <= 16:
        raise UserError(f"--compressed {a.compressed}: give 0 (off) to 16 frames")
    heads = get_preset(a.preset).dynamics.n_heads
    if a.d_model is not None and (a.d_model < heads or a.d_model % (2 * heads)):
        raise UserError(f"--d-model {a.d_model}: give a multiple of {2 * heads} (the {a.preset} preset's {heads} heads, even head size)")
    if a.layers is not None and a.layers < 1:
        raise UserError(f"--layers {a.layers}: give at least 1")


def _check_latent(a: TrainArgs) -> None:
    if a.latent_actions < 0 or a.latent_actions == 1:
        raise UserError(f"--latent-actions {a.latent_actions}: use >= 2 codes (default 8), or 0 for a video model without actions")
    if not 0 < a.lam_share < 1:
        raise UserError(f"--lam-share {a.lam_share} must be between 0 and 1")


def _budgets(a: TrainArgs) -> tuple[Budget, Budget]:
    if a.minutes is None and a.steps is None:
        raise UserError("give a budget: --minutes M or --steps N")
    if a.minutes is not None and a.steps is not None:
        raise UserError("give --minutes or --steps, not both")
    tok = Budget(steps=a.tok_steps, minutes=a.tok_minutes)
    if tok.steps is None and tok.minutes is None:
        tok = Budget(steps=a.steps) if a.steps else Budget(minutes=0.3 * a.minutes)
    # --minutes is the whole budget: the dynamics get what the tokenizer leaves.
    dyn = Budget(steps=a.steps) if a.steps else Budget(minutes=a.minutes - (tok.minutes or 0.0))
    if dyn.minutes is not None and dyn.minutes <= 0:
        raise UserError("--tok-minutes leaves no time for the dynamics; raise --minutes")
    return tok, dyn


def open_store(data: str):
    from maskworld.data.store import EpisodeStore

    store = EpisodeStore(data)
    if len(store.episode_ids) < 2:
        raise UserError(f"{data} has {len(store.episode_ids)} episode(s); training needs at least 2 (one for validation). Collect more with `maskworld collect`")
    return store


def _card_base(a: TrainArgs, store, device) -> dict:
    return {
        "command": a.command_line,
        "data": {"path": str(a.data), "env_id": store.meta.get("env_id"), "collect_command": store.meta.get("command"), "episodes": len(store.episode_ids),
                 "frames": int(store.num_frames), "policy": store.meta.get("policy")},
        "preset": a.preset, "seed": a.seed, "device": str(device),
        "device_name": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__, "processes": dist.world_size(), "data_split": dist.data_split(), "fsdp": a.fsdp,
    }


def stage_tokenizer(a: TrainArgs, store, train_ids, val_ids, budget: Budget, device, work: Path):
    from maskworld.train.tokenizer_train import FramePool, train_tokenizer

    preset = get_preset(a.preset, int(store.meta.get("size", 64)))
    if a.grid:
        ratio = preset.tokenizer.image_size // preset.tokenizer.patch // a.grid
        if ratio < 1 or ratio & (ratio - 1) or ratio * a.grid * preset.tokenizer.patch != preset.tokenizer.image_size:
            raise UserError(f"--grid {a.grid} does not divide {preset.tokenizer.image_size}px frames into 4px patches halved a whole number of times")
        preset.tokenizer.downsample = ratio.bit_length() - 1
    pool = FramePool(store, dist.own_episodes(store, train_ids), seed=a.seed)  # rank split: this rank's episodes only
    val = FramePool(store, val_ids, max_frames=512, seed=a.seed + 1).frames
    dist.check_batch("--tok-batch", a.tok_batch or preset.tok_batch)
    print0(f"[tokenizer] {len(pool)} training frames, budget {budget.describe()}, {preset.tokenizer.grid}x{preset.tokenizer.grid} tokens, device {device}")
    tok, m = train_tokenizer(pool, val, preset.tokenizer, a.tok_batch or preset.tok_batch, preset.lr * 2, budget, work, device, a.resume,
                             a.seed, a.progress, ckpt_minutes=a.ckpt_minutes, fsdp=a.fsdp, compile=a.compile)
    print0(f"[tokenizer] val PSNR {m.get('val_psnr', float('nan')):.2f} dB, code usage {m.get('val_usage', 0):.2f}")
    return tok, m


def save_tokenizer(out: Path, tok: Tokenizer, metrics: dict) -> None:
    import dataclasses

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


def print0(*args, **kw) -> None:
    """print on rank 0 only (every rank runs this file under torchrun)."""
    if dist.is_main():
        print(*args, **kw)


def stage_cache(store, ids, tok: Tokenizer, path: Path, device, progress: bool, own: bool = False):
    """Rank 0 tokenizes (once; a finished cache is reused on --resume); the other ranks wait, then all open it.

    own (--data-split rank): every rank tokenizes its own episodes into its own cache, all at once."""
    from maskworld.data.token_cache import TokenCache, write_token_cache

    if own:
        path, ids = dist.own_cache_path(path), dist.own_episodes(store, ids)
    if (own or dist.is_main()) and not (path / "index.npz").exists():
        def encode(frames_u8: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return tok.tokenize_uint8(torch.from_numpy(frames_u8).to(device)).cpu().numpy()

        write_token_cache(path, store, ids, encode, progress=progress and dist.is_main())
    dist.barrier()
    return TokenCache(path)


def stage_dynamics(a: TrainArgs, store, tok, train_ids, val_ids, budget: Budget, device, work: Path):
    from maskworld.train.dynamics_train import train_dynamics

    preset = get_preset(a.preset, int(store.meta.get("size", 64)))
    t0 = time.time()
    train_cache = stage_cache(store, train_ids, tok, work / "cache_train", device, a.progress, own=dist.own_data())
    val_cache = stage_cache(store, val_ids, tok, work / "cache_val", device, a.progress)
    print0(f"[cache] tokenized {train_cache.num_frames + val_cache.num_frames} frames in {time.time() - t0:.0f}s")
    cfg = preset.dynamics
    init_state = None
    if a.init:
        cfg, init_state = _init_dynamics(a, tok)
    if a.window is not None:
        if a.window < 2:
            raise UserError(f"--window {a.window}: the dynamics need at least 2 frames (one of context)")
        cfg.window = a.window
    if a.d_model is not None:
        cfg.d_model = a.d_model
    if a.layers is not None:
        cfg.n_layers = a.layers
    has_actions = bool(store.meta.get("has_actions", True)) and not a.ignore_actions
    if init_state is not None:
        n = int(store.meta.get("num_actions", 1)) if has_actions else 1
        if not has_actions and a.latent_actions > 0:
            raise UserError("--init fine-tunes a world with real actions; a latent-action world learns new codes, so "
                            "train it from scratch (drop --init)")
        if n != cfg.num_actions:
            raise UserError(f"--init {a.init} has {cfg.num_actions} actions but {a.data} has {n}; fine-tune on data of the same env")
    cfg.num_actions = int(store.meta.get("num_actions", 1)) if has_actions else 1
    cfg.vocab_size, cfg.grid = tok.cfg.vocab_size, tok.cfg.grid
    if budget.minutes is not None:
        budget = Budget(minutes=max(budget.minutes - (time.time() - t0) / 60, 0.05))
    lam, lam_info = None, {}
    if not has_actions and a.latent_actions > 0:
        lam, lam_info, budget = stage_lam(a, store, tok, train_cache, val_cache, budget, device, work)
        cfg.num_actions = lam.cfg.num_codes
    compressed = a.compressed if a.compressed is not None else (2 if a.memory else 0)
    if init_state is not None:  # the config is the init world's (plus a copy head, when asked for)
        if a.copy_head and not cfg.memory_frames:
            raise UserError(f"--copy-head points at retrieved frames, but {a.init} has no retrieval memory (--memory 0)")
        cfg.copy_head = cfg.copy_head or a.copy_head
    elif a.memory or compressed:
        if train_cache.poses is None:
            raise UserError(f"memory needs poses in the data: {a.data} records no agent_pos/agent_dir (collect a MiniGrid "
                            "env, e.g. MiniGrid-Landmarks-v0), or train without --memory/--compressed")
        if cfg.grid % 2:
            raise UserError(f"--compressed pools 2x2 tokens and needs an even token grid, not {cfg.grid}")
        cfg.memory_frames, cfg.compressed_frames, cfg.pose_head = a.memory, compressed, True
        cfg.copy_head = a.copy_head and a.memory > 0
        print0(f"[memory] {a.memory} retrieved frames by pose, {compressed} compressed frames, pose head on")
    dist.check_batch("--batch", a.batch or preset.dyn_batch)
    share = event_share(a, train_cache, cfg.window)
    print0(f"[dynamics] budget {budget.describe()}, window {cfg.window} frames, {cfg.d_model}d x {cfg.n_layers} layers")
    model, m = train_dynamics(train_cache, val_cache, cfg, a.batch or preset.dyn_batch, preset.lr, budget, work, device, a.resume,
                              a.seed, a.progress, ckpt_minutes=a.ckpt_minutes, fsdp=a.fsdp, compile=a.compile,
                              event_share=share, context_drop=a.context_drop, init_state=init_state)
    m["event_share"] = share
    print0(f"[dynamics] val token loss {m.get('val_loss', float('nan')):.3f}, masked-token accuracy {m.get('val_acc', 0):.3f}, "
          f"{m.get('tok_s', 0):.0f} tokens/s")
    return model, m, lam, lam_info


def _init_dynamics(a: TrainArgs, tok):
    """--init WORLD: its dynamics config and weights (a fine-tune); clear errors where they cannot fit."""
    import dataclasses

    from maskworld.world.world import load_world

    src = load_world(a.init, device="cpu")
    cfg = dataclasses.replace(src.dynamics.cfg)
    mine, theirs = tok.state_dict(), src.tokenizer.state_dict()
    same = mine.keys() == theirs.keys() and all(torch.equal(mine[k].cpu(), theirs[k]) for k in mine)
    if not same:  # the same token ids must mean the same image patches
        raise UserError(f"--init {a.init}: its dynamics were trained on another tokenizer than the one in --out; copy "
                        f"{a.init}/tokenizer.safetensors and tokenizer.json into --out first")
    given = {"--window": (a.window, cfg.window), "--d-model": (a.d_model, cfg.d_model), "--layers": (a.layers, cfg.n_layers),
             "--memory": (a.memory or None, cfg.memory_frames or None)}
    for flag, (want, have) in given.items():
        if want is not None and want != have:
            raise UserError(f"--init {a.init} has {flag.lstrip('-')} {have}, not {want}: drop {flag} (a fine-tune keeps the config)")
    print0(f"[dynamics] starting from {a.init}'s weights ({cfg.d_model}d x {cfg.n_layers} layers, window {cfg.window})")
    return cfg, src.dynamics.state_dict()


def event_share(a: TrainArgs, cache, window: int) -> float:
    """--event-share, or its default for this cache (0.25 with events, 0 without); says what it found."""
    from maskworld.data.event_sampler import default_share, event_windows

    n = len(event_windows(cache, window)[0])
    share = default_share(cache) if a.event_share is None else a.event_share
    if share > 0 and n == 0:
        print0(f"[dynamics] --event-share {share:g}: {a.data} has no reward or termination transition in an episode of "
               f"{window}+ frames, nothing to oversample: uniform clips")
        return 0.0
    if share > 0:
        uniform = n / max(1, int(np.maximum(cache.lengths - window + 1, 0).sum()))
        print0(f"[dynamics] event oversampling: {share:.0%} of the clips end on one of {n} reward/termination "
               f"transitions ({uniform:.2%} of uniform clips do)")
    return share


def stage_lam(a: TrainArgs, store, tok, train_cache, val_cache, budget: Budget, device, work: Path):
    """Latent-action model on the token caches, then both caches relabelled with its codes.

    Returns (lam, info for world.json, what is left of the dynamics budget)."""
    from maskworld.models.lam import LamConfig
    from maskworld.train.lam_train import label_cache, relabel, train_lam
    from maskworld.world.latent import code_stats, fit_action_map, map_accuracy

    if budget.minutes is not None:
        lam_budget = Budget(minutes=a.lam_share * budget.minutes)
        rest = Budget(minutes=budget.minutes - lam_budget.minutes)
    else:
        lam_budget, rest = Budget(steps=a.lam_steps or budget.steps), budget
    cfg = LamConfig(num_codes=a.latent_actions, grid=tok.cfg.grid, levels=list(tok.cfg.levels), context_frame=True)
    print0(f"[lam] latent-action model: {cfg.num_codes} codes, budget {lam_budget.describe()} (action-free data)")
    lam, m = train_lam(train_cache, val_cache, cfg, 256, 1e-3, lam_budget, work, device, a.resume, a.seed, a.progress,
                       ckpt_minutes=a.ckpt_minutes)
    real_train, real_val = train_cache.actions_in, val_cache.actions_in
    lat_train, lat_val = label_cache(train_cache, lam, device), label_cache(val_cache, lam, device)
    relabel(train_cache, lat_train, cfg.num_codes)
    relabel(val_cache, lat_val, cfg.num_codes)
    info = {"num_codes": cfg.num_codes, "train": {k: m[k] for k in ("steps", "train_s", "val_codes", "val_ppl", "val_recon", "val_recon_shuffled") if k in m},
            "val_usage": code_stats(lat_val, cfg.num_codes)}
    print0(f"[lam] held-out code use {info['val_usage']['codes_used']}/{cfg.num_codes} (perplexity {info['val_usage']['perplexity']:.2f}), "
           f"decoder error {m.get('val_recon', float('nan')):.4f} vs {m.get('val_recon_shuffled', float('nan')):.4f} with another sample's latent")
    n_real = int(store.meta.get("num_actions", 0))
    if store.meta.get("has_actions", True) and n_real > 0 and a.label_transitions > 0:
        amap = fit_action_map(real_train, lat_train, n_real, cfg.num_codes, a.label_transitions, seed=a.seed)
        amap_eval = {"val_" + k: v for k, v in map_accuracy(amap["to_latent"], real_val, lat_val, n_real, cfg.num_codes).items()}
        amap.update(amap_eval)
        amap["real_action_meanings"] = list(store.meta.get("action_meanings", []))
        info["action_map"] = amap
        if amap_eval["val_accuracy"] is None:
            print0(f"[lam] real->latent map fit on {amap['fit_transitions']} labelled transitions (no held-out labelled ones to score it)")
        else:
            print0(f"[lam] real->latent map fit on {amap['fit_transitions']} labelled transitions: held-out accuracy "
                   f"{amap_eval['val_accuracy']:.3f} (majority code {amap_eval['val_majority']:.3f}, {amap_eval['val_transitions']} transitions)")
    return lam, info, rest


def local_out(out: str) -> Path:
    """OUT as a local path: checkpoints and token caches need atomic renames and memory maps."""
    out = str(out)
    if out.startswith("file://"):
        return Path(out[len("file://"):])
    if "://" in out:
        raise UserError(f"--out {out}: training writes a local (or shared, mounted) directory only; "
                        "train into a local path, then copy the world directory")
    return Path(out)


def run_train(a: TrainArgs, stages=("tokenizer", "dynamics")) -> Path:
    """Train; under torchrun every rank calls this (see maskworld.train.dist)."""
    out = local_out(a.out)
    device = pick_device(a.device)
    if a.fsdp:
        dist.check_fsdp(device)
    device = dist.init(device, a.data_split)
    try:
        return _run_train(a, stages, out, device)
    finally:
        dist.shutdown()


def _run_train(a: TrainArgs, stages, out: Path, device) -> Path:
    tok_budget, dyn_budget = _budgets(a)  # argument errors first: nothing is written before they pass
    _check_latent(a)
    _check_memory(a)
    check_share(a.event_share)
    if a.copy_head and not (a.memory or a.init):
        raise UserError("--copy-head points at retrieved frames: give --memory M (or --init a world that has memory)")
    if not 0.0 <= a.context_drop <= 1.0:
        raise UserError(f"--context-drop {a.context_drop}: give the share of clips with a noisy context, from 0 to 1")
    if a.init is not None and not (Path(a.init) / "world.json").is_file():
        raise UserError(f"--init {a.init} is not a world directory (world.json + *.safetensors)")
    if a.init is not None and "tokenizer" in stages:
        raise UserError("--init fine-tunes the dynamics on the init world's tokenizer: use `maskworld train dynamics` "
                        "(copy the init world's tokenizer.safetensors and tokenizer.json into --out first)")
    store = open_store(a.data)
    if (a.memory or a.compressed) and "dynamics" in stages and not {"agent_pos", "agent_dir"} <= set(store.meta.get("info_keys", [])):
        raise UserError(f"memory needs poses in the data: {a.data} records no agent_pos/agent_dir (collect a MiniGrid env, "
                        "e.g. MiniGrid-Landmarks-v0), or train without --memory/--compressed")
    work = out / "_work"
    if out.exists() and any(out.iterdir()) and not a.resume and "tokenizer" in stages and (work / "ckpt_tokenizer").exists():
        raise UserError(f"{out} already holds a training run; pass --resume to continue it, or choose another --out")
    dist.barrier()  # every rank has checked OUT before rank 0 starts writing to it
    if dist.is_main():
        work.mkdir(parents=True, exist_ok=True)
    train_ids, val_ids = store.split(seed=a.seed, val_fraction=a.val_fraction)
    card = _card_base(a, store, device)
    times = {}
    if "tokenizer" in stages:
        t0 = time.time()
        tok, tm = stage_tokenizer(a, store, train_ids, val_ids, tok_budget, device, work)
        if dist.is_main():
            save_tokenizer(out, tok, tm)
        times["tokenizer_s"] = round(time.time() - t0, 1)
        card["tokenizer_train"] = {k: tm[k] for k in ("val_psnr", "val_usage", "steps", "train_s") if k in tm}
    else:
        tok = load_tokenizer(out, device)
    if "dynamics" not in stages:
        dist.barrier()
        return out
    t0 = time.time()
    dyn, dm, lam, lam_info = stage_dynamics(a, store, tok, train_ids, val_ids, dyn_budget, device, work)
    times["dynamics_s"] = round(time.time() - t0, 1)
    card["dynamics_train"] = {k: dm[k] for k in ("val_loss", "val_acc", "steps", "train_s", "tok_s", "event_share") if k in dm}
    card["dynamics_train"].update({"context_drop": a.context_drop, **({"init": str(a.init)} if a.init else {})})
    card["train_time_s"] = times
    card["split"] = {"seed": a.seed, "val_fraction": a.val_fraction, "val_episodes": len(val_ids)}
    # Same rule as stage_dynamics: action-free video (or --ignore-actions) -> latent actions, or one NOOP action.
    has_actions = bool(store.meta.get("has_actions", True)) and not a.ignore_actions
    meanings = list(store.meta.get("action_meanings", [])) if has_actions else ["NOOP"]
    if lam is not None:
        meanings = [f"LATENT_{k + 1}" for k in range(lam.cfg.num_codes)]
        card["lam_train"] = lam_info.get("train", {})
    meta = WorldMeta(env_id=store.meta.get("env_id", "unknown"), size=int(store.meta.get("size", 64)),
                     action_meanings=meanings, has_actions=has_actions, model_card=card,
                     latent_actions={k: v for k, v in lam_info.items() if k != "train"})
    if dist.is_main():
        World(tok.cpu(), dyn.cpu(), SamplerConfig(), meta, lam=lam.cpu() if lam is not None else None).save(out)
    dist.barrier()  # nobody reports success before the world is on disk
    print0(f"[world] saved {out}/world.json (+ tokenizer.safetensors, dynamics.safetensors)")
    return out
