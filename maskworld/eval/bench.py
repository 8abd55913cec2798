"""`maskworld bench`: how fast a world plays and trains on this machine, as medians and in-run ratios.

Design choices (speed):
- End to end means what a player waits for: action in -> 64x64 RGB frame out (MaskGIT decode, the
  commit of the new frame to the KV cache, tokenizer decode), one session whose context window is
  already full (the steady state of play), for K = 1, 2, 4, 8 decoding steps.
- The baselines run the *same network in the same process*: decoding without the KV cache (every
  step recomputes the whole window) and token-by-token autoregressive decoding. Only ratios
  measured within one run are compared; absolute numbers depend on the machine and its load.
- Every measurement: warmup iterations first, then the median (latency percentiles for sessions).
- Training throughput is tokens/s of real dynamics training steps (`dynamics_losses` + AdamW) on
  random tokens; its achieved FLOP/s (the FLOPs torch's counter sees in one step, attention included,
  over the step time) is set against a plain `torch.matmul` benchmark measured in the same run.
- `--compile` times the same step again through `torch.compile` (after its compilation, whose seconds are
  reported apart): whether fusing kernels pays depends on the machine and the model size, so it is measured, not
  assumed. It times the forward, backward and AdamW step alone; a training run adds batch sampling and its own
  optimizer, which compiling does not cover (docs/scale.md measures both).
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from maskworld.device import autocast
from maskworld.eval.evaluate import select_val_episodes
from maskworld.eval.plan import logged_actions, rollout_plan
from maskworld.eval.metrics import psnr_per_frame
from maskworld.eval.rollout import open_loop
from maskworld.models.dynamics import Dynamics
from maskworld.models.sampler import SamplerConfig, decode_autoregressive, decode_nocache
from maskworld.models.tokenizer import Tokenizer
from maskworld.progress import track
from maskworld.train.dynamics_train import dynamics_losses
from maskworld.train.presets import get_preset
from maskworld.world.engine import Engine
from maskworld.world.world import World, WorldMeta

KS = (1, 2, 4, 8)
SESSIONS = (1, 4, 16)


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, warmup: int, iters: int, device) -> list[float]:
    """Seconds of each of `iters` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    out = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - t0)
    return out


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device) -> dict:
    return {"machine.cores": os.cpu_count(), "machine.torch": torch.__version__, "machine.threads": torch.get_num_threads(),
            "machine.device": str(device), "machine.cpu": cpu_model(), "machine.python": platform.python_version(),
            "machine.gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None}


def random_world(preset: str = "small", num_actions: int = 7, seed: int = 0):
    """A randomly initialised world of a preset: speed is measurable before any training."""

    torch.manual_seed(seed)
    p = get_preset(preset)
    tok = Tokenizer(p.tokenizer)
    cfg = p.dynamics
    cfg.vocab_size, cfg.grid, cfg.num_actions = tok.cfg.vocab_size, tok.cfg.grid, num_actions
    return World(tok, Dynamics(cfg), SamplerConfig(), WorldMeta(env_id=f"random-{preset}", action_meanings=[]))


def _full_session(world, seed: int = 0, engine=None):
    """A session whose window is full: window - 1 random context frames observed (a row of `engine`, default the
    world's)."""
    rng = np.random.default_rng(seed)
    W, size = world.dynamics.cfg.window, world.meta.size
    frames = rng.integers(0, 256, (W - 1, size, size, 3), dtype=np.uint8)
    acts = [None] + [int(a) for a in rng.integers(0, world.num_actions, W - 2)]
    return world.session(prompt=frames, seed=seed, actions=acts, engine=engine)


@torch.no_grad()
def bench_decoding(world, warmup: int, iters: int, ar_iters: int, progress: bool = True) -> dict:
    """Per K: end-to-end step, the engine's cached decode + commit, and the same network without the cache;
    then MaskGIT against token-by-token (autoregressive) decoding. Every cached measurement steps one session
    with a full window through the stepping engine."""
    dyn, dev, base = world.dynamics, world.device, world.sampler
    m = {}
    s = _full_session(world)
    eng = s.engine
    W, N = dyn.cfg.window, dyn.cfg.tokens_per_frame
    a = torch.tensor([0], device=dev)
    ctx = torch.randint(0, dyn.cfg.vocab_size, (1, W - 1, N), device=dev)
    ctx_a = torch.randint(0, dyn.cfg.num_actions, (1, W - 1), device=dev)
    gen = [torch.Generator().manual_seed(0)]

    def cached(cfg):  # the frame's tokens, then its reward/termination (the commit)
        eng.commit([s], eng.decode([s], a, cfg), a, render=False)

    def nocache(cfg):  # same outputs as `cached`, recomputing the window every pass
        toks = decode_nocache(dyn, ctx, ctx_a, a, cfg, gen)
        dyn.full_pass_heads(ctx, ctx_a, toks, a)

    def ar():
        toks = decode_autoregressive(dyn, eng.cache.view([s.row]), a, torch.tensor([s.pos], device=dev), base.temperature,
                                     [s.gen], eng.last_tokens([s]))
        eng.commit([s], toks, a, render=False)

    try:
        for k in track(KS, desc="decode K", unit="K", enabled=progress):
            cfg = SamplerConfig(steps=k, temperature=base.temperature, choice_temperature=base.choice_temperature)
            world.sampler = cfg
            e2e = float(np.median(timed(lambda: s.step(0), warmup, iters, dev)))
            c = float(np.median(timed(lambda: cached(cfg), warmup, iters, dev)))
            nc = float(np.median(timed(lambda: nocache(cfg), warmup, iters, dev)))
            m[f"speed.ms_per_frame.K{k}"] = 1000 * e2e
            m[f"speed.fps.K{k}"] = 1.0 / e2e
            m[f"speed.decode_ms.K{k}"] = 1000 * c
            m[f"speed.nocache_decode_ms.K{k}"] = 1000 * nc
            m[f"speed.cache_speedup.K{k}"] = nc / c
            # end to end: the no-cache world pays the same tokenizer decode and session overhead
            m[f"speed.cache_speedup_e2e.K{k}"] = (e2e - c + nc) / e2e
        world.sampler = base
        ar_s = float(np.median(timed(ar, 1, ar_iters, dev)))
        mg_s = float(np.median(timed(lambda: cached(base), warmup, iters, dev)))
        m["speed.ar_decode_ms"] = 1000 * ar_s
        m["speed.maskgit_decode_ms"] = 1000 * mg_s
        m["speed.ar_vs_maskgit"] = ar_s / mg_s
        m["speed.default_K"] = base.steps
    finally:
        world.sampler = base
    return m


def bench_sessions(world, warmup: int, iters: int, progress: bool = True) -> dict:
    m = {}
    for n in track(SESSIONS, desc="sessions", unit="sizes", enabled=progress):
        eng = Engine(world, rows=n)  # the n sessions of a server: n rows of one engine
        ss = [_full_session(world, seed=i, engine=eng) for i in range(n)]
        acts = [i % world.num_actions for i in range(n)]
        lat = np.array(timed(lambda: world.step_many(ss, acts), warmup, iters, world.device))
        m[f"sessions.{n}.fps"] = n * len(lat) / lat.sum()
        m[f"sessions.{n}.p50_ms"] = 1000 * float(np.percentile(lat, 50))
        m[f"sessions.{n}.p95_ms"] = 1000 * float(np.percentile(lat, 95))
    return m


def bench_matmul(device, n: int, warmup: int, iters: int) -> float:
    """FLOP/s of a plain n x n fp32 matmul (bf16 on CUDA, what training uses there)."""
    dt = torch.bfloat16 if device.type == "cuda" else torch.float32
    x, y = torch.randn(n, n, device=device, dtype=dt), torch.randn(n, n, device=device, dtype=dt)
    t = float(np.median(timed(lambda: torch.matmul(x, y), warmup, iters, device)))
    return 2 * n**3 / t


def bench_training(world, batch: int, warmup: int, iters: int, compile: bool = False) -> dict:
    """Tokens/s of dynamics training steps on a copy of the world's dynamics (the world is left untouched);
    with `compile`, the same steps through `torch.compile` too (`train.compiled.*`)."""
    import copy

    dev = world.device
    model = copy.deepcopy(world.dynamics).train()
    m = _train_steps(model, batch, warmup, iters, dev)
    if compile:
        fwd = torch.compile(copy.deepcopy(world.dynamics).train())
        t0 = time.perf_counter()
        c = _train_steps(fwd, batch, 0, 1, dev, count_flops=False)  # the first step compiles
        compile_s = time.perf_counter() - t0
        c = _train_steps(fwd, batch, warmup, iters, dev, count_flops=False)
        m.update({"train.compiled.step_ms": c["train.step_ms"], "train.compiled.tokens_per_s": c["train.tokens_per_s"],
                  "train.compiled.compile_s": compile_s,
                  "train.compile_speedup": c["train.tokens_per_s"] / m["train.tokens_per_s"]})
    return m


def _train_steps(model, batch: int, warmup: int, iters: int, dev, count_flops: bool = True) -> dict:
    """Median time of `iters` training steps of `model` (a Dynamics, or one wrapped by torch.compile)."""
    cfg = model.cfg
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    tok = torch.randint(0, cfg.vocab_size, (batch, cfg.window, cfg.tokens_per_frame), generator=g).to(dev)
    act = torch.randint(0, cfg.num_actions, (batch, cfg.window), generator=g).to(dev)
    act[:, 0] = cfg.null_action
    rew, term = torch.zeros(batch, cfg.window, device=dev), torch.zeros(batch, cfg.window, device=dev)

    def step():
        with autocast(dev):
            tl, rl, dl, _ = dynamics_losses(model, tok, act, rew, term, gen=g)
        opt.zero_grad(set_to_none=True)
        (tl + 0.5 * rl + 0.5 * dl).backward()
        opt.step()

    t = float(np.median(timed(step, warmup, iters, dev)))
    tokens = batch * cfg.window * cfg.frame_len  # as the trainer counts them (clean stream)
    m = {"train.batch": batch, "train.tokens_per_step": tokens, "train.step_ms": 1000 * t, "train.tokens_per_s": tokens / t}
    if count_flops:
        params, flops = model.num_params(), step_flops(step)
        m.update({"train.params": params, "train.flops_per_step": flops, "train.flops_per_s": flops / t,
                  "train.flops_per_s_6nd": 6 * params * tokens / t})
    return m


def _cpu_flash(query, key, value, *args, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_flash_backward(grad_out, query, key, value, *args, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


# torch's counter knows the CUDA attention kernels but not the CPU one, which it would count as zero
_CPU_ATTENTION = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash,
                  torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_flash_backward}


def step_flops(step) -> int:
    """Matmul, convolution and attention FLOPs of one call of `step` (forward and backward), counted by torch's
    FlopCounterMode rather than estimated: 6 x params x tokens (Kaplan) misses that the dynamics run two streams
    (context and masked frames) through every block, counts embedding tables that do no matmul, and leaves
    attention out (PaLM's MFU adds it). Attention counts every query-key pair a kernel is given (a masked pair
    costs the same as a visible one)."""
    with FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION) as counter:
        step()
    return int(counter.get_total_flops())


def run_bench(world, quick: bool = False, progress: bool = True, train_batch: int | None = None,
              compile: bool = False) -> dict:
    t0 = time.time()
    dev = world.device
    warmup, iters = (1, 5) if quick else (3, 20)
    m = machine(dev)
    dyn = world.dynamics
    m.update({"model.dynamics_params": dyn.num_params(), "model.tokenizer_params": sum(p.numel() for p in world.tokenizer.parameters()),
              "model.tokens_per_frame": dyn.cfg.tokens_per_frame, "model.window": dyn.cfg.window,
              "model.num_actions": dyn.cfg.num_actions, "model.image_size": world.meta.size})
    print("[bench] decoding: K = " + ", ".join(map(str, KS)) + ", no cache, autoregressive")
    m.update(bench_decoding(world, warmup, iters, 1 if quick else 3, progress))
    print("[bench] concurrent sessions: " + ", ".join(map(str, SESSIONS)))
    m.update(bench_sessions(world, warmup, iters, progress))
    print("[bench] training throughput and matmul")
    batch = train_batch or (2 if quick else 16)
    m.update(bench_training(world, batch, 1, 2 if quick else 5, compile=compile))
    m["matmul.n"] = 4096 if dev.type == "cuda" else 512 if quick else 1024  # a GPU needs a large product to reach its rate
    m["matmul.flops_per_s"] = bench_matmul(dev, m["matmul.n"], 2, 5 if quick else 20)
    m["train.matmul_share"] = m["train.flops_per_s"] / m["matmul.flops_per_s"]
    m["meta.quick"] = quick
    m["meta.seconds"] = round(time.time() - t0, 2)
    return m


def bench_decoder_quality(world, store, episodes: int = 8, horizon: int = 8, seed: int = 0) -> dict:
    """Open-loop PSNR at `horizon` of MaskGIT (the world's K) vs token-by-token decoding, same episodes.

    The speed ratio alone would flatter MaskGIT if its frames were worse; this puts the quality of
    both decoders of the same network beside it (>= 8x faster at equal or better PSNR).
    """
    import dataclasses


    context = min(world.dynamics.cfg.window - 1, 4)
    eps, _, _ = select_val_episodes(world, store, episodes, seed, context + horizon)
    slices, _ = rollout_plan(eps, context, seed)
    acts = logged_actions(slices, context, horizon)
    gt = np.stack([sl.frames[context + horizon - 1] for sl in slices])
    base = world.sampler
    out = {"quality.episodes": len(slices), "quality.horizon": horizon}
    try:
        for name, cfg in (("maskgit", base), ("autoregressive", dataclasses.replace(base, order="autoregressive"))):
            world.sampler = cfg
            t0 = time.time()
            gen = open_loop(world, slices, context, horizon, seed, actions_override=acts)
            out[f"quality.psnr_h{horizon}.{name}"] = float(np.mean(psnr_per_frame(gen[:, horizon - 1], gt)))
            out[f"quality.rollout_s.{name}"] = time.time() - t0
    finally:
        world.sampler = base
    return out
