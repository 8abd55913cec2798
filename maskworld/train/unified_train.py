"""Train the unified masked model (models/unified.py) on a token cache whose episodes carry mission text.

Each clip of a batch draws one task, and the task is nothing but which tokens are hidden (and which steps exist):

| task | hidden | what it teaches |
|---|---|---|
| dynamics | every frame (own MaskGIT ratio each) and outcome from a step k on; earlier frames lightly corrupted | the next frame |
| inverse | one action between two visible frames, or all of them | inverse dynamics |
| policy | the action into step t, its frame and outcome; steps after t do not exist | the next action from text + past |
| outcome | every outcome | reward and termination |
| from_words | the first frame of an episode (MaskGIT ratio); only step 0 exists | a world from words |
| describe | the text (MaskGIT ratio, or all of it) | words from the world |
| random | every position of every stream with one probability | plain masked modelling (BERT, MAE) |

A `causal_dynamics` model's dynamics clips attend block-causally, so each later frame is predicted from what comes
before it only (diffusion forcing); a world trained without it hid the last frame only, bidirectionally.

The loss is cross-entropy on hidden positions, averaged within each stream and summed over streams (an action
is one token, a frame 64: a plain token average would drown the actions). Clips never cross an episode's end;
a clip of an episode shorter than the window is padded with steps nobody attends to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from maskworld.models.text import TextVocab
from maskworld.models.unified import Unified, UnifiedConfig, outcome_class
from maskworld.train.loop import Budget, run_loop
from maskworld.train.muon import make_optimizer
from maskworld.train.unified_tasks import TASK_WEIGHTS, TASKS

CORRUPT_MAX = 0.1
"""Visible earlier frames of a dynamics clip get random tokens at a rate up to this (GameNGen's noise
augmentation, discrete): a rollout's own errors are then familiar context."""


TEXT_DROP = 0.1
"""Share of from_words clips whose text is hidden, so the model also knows a first frame without words, which
classifier-free guidance (models/unified_decode.py) pushes away from (Ho & Salimans 2022: 10-20 %)."""


@dataclass
class Clips:
    """A batch as arrays: text (B,L), act (B,T), frame (B,T,G), out (B,T), ok (B,T) bool, task (B,) index."""

    text: np.ndarray
    act: np.ndarray
    frame: np.ndarray
    out: np.ndarray
    ok: np.ndarray
    task: np.ndarray


def expert_episodes(cache, store) -> np.ndarray:
    """(E,) bool: the cache episodes an expert played (the manifest's per-episode policy, else the store's).
    The policy task learns from these only (behaviour cloning of the expert, not of the exploring episodes);
    every episode is used where no expert played."""
    default = store.meta.get("policy")
    flags = np.array([(store.entry(int(e)).get("policy") or default) == "bot" for e in cache.episode_ids])
    return flags if flags.any() else np.ones(len(flags), bool)


def episode_texts(cache, store, vocab: TextVocab) -> np.ndarray:
    """(E, L) word ids of every cache episode's mission (all PAD where an episode has none)."""
    rows = []
    for eid in cache.episode_ids:
        m = store.entry(int(eid)).get("mission")
        rows.append(vocab.encode(m) if m else np.zeros(vocab.length, np.int64))
    return np.stack(rows)


def draw_clips(cache, texts: np.ndarray, expert: np.ndarray, batch: int, T: int, rng: np.random.Generator,
               weights: tuple[float, ...] = TASK_WEIGHTS) -> Clips:
    """`batch` clips of up to T steps with a task each; from_words clips start at their episode's first frame;
    policy and describe clips come from expert episodes (an instruction says what the expert does, not what an
    explorer does), and half the describe clips end where the episode ends, where the instruction is carried out."""
    lengths = cache.lengths.astype(np.int64)
    task = rng.choice(len(TASKS), size=batch, p=np.asarray(weights) / np.sum(weights))
    p_all = np.maximum(lengths - T + 1, 1).astype(np.float64)
    p_exp = p_all * expert
    by_expert = np.isin(task, [TASKS.index("policy"), TASKS.index("describe")])
    which = np.empty(batch, np.int64)
    which[~by_expert] = rng.choice(len(lengths), size=int((~by_expert).sum()), p=p_all / p_all.sum())
    which[by_expert] = rng.choice(len(lengths), size=int(by_expert.sum()), p=p_exp / p_exp.sum())
    G = cache.grid[0] * cache.grid[1]
    frame = np.zeros((batch, T, G), np.int64)
    act = np.zeros((batch, T), np.int64)
    rew = np.zeros((batch, T), np.float32)
    term = np.zeros((batch, T), bool)
    ok = np.zeros((batch, T), bool)
    for b, e in enumerate(which):
        n_ep = int(lengths[e])
        start = int(rng.integers(0, max(n_ep - T, 0) + 1))
        if TASKS[task[b]] == "from_words":
            start = 0
        elif TASKS[task[b]] == "describe" and rng.random() < 0.5:
            start = max(n_ep - T, 0)
        n = min(T, n_ep - start)
        rows = int(cache.offsets[e]) + start + np.arange(n)
        frame[b, :n] = np.asarray(cache.tokens[rows]).reshape(n, G)
        act[b, :n] = cache.actions_in[rows]
        rew[b, :n] = cache.rewards_in[rows]
        term[b, :n] = cache.terminated_in[rows]
        ok[b, :n] = True
    act = np.where((act < 0) | (act > cache.num_actions), cache.num_actions, act)
    out = outcome_class(torch.from_numpy(rew), torch.from_numpy(term)).numpy()
    return Clips(texts[which], act, frame, out, ok, task)


def hide(clips: Clips, cfg: UnifiedConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per clip, the task's pattern: bool masks {"text","act","frame","out"} (True = hidden, predicted), the
    steps that exist ("ok", False = padding) and the clips that attend block-causally ("causal", (B,)); visible
    earlier frames of dynamics clips are corrupted in place."""
    B, T, G = clips.frame.shape
    L = clips.text.shape[1]
    m = {"text": np.zeros((B, L), bool), "act": np.zeros((B, T), bool), "frame": np.zeros((B, T, G), bool),
         "out": np.zeros((B, T), bool), "causal": np.zeros(B, bool)}
    ok = clips.ok.copy()

    def maskgit(n: int) -> np.ndarray:  # MaskGIT: hide a share cos(pi/2 u) of n positions, at least one
        k = max(1, math.ceil(math.cos(math.pi / 2 * rng.random()) * n))
        sel = np.zeros(n, bool)
        sel[rng.choice(n, size=k, replace=False)] = True
        return sel

    for b in range(B):
        n = int(ok[b].sum())
        task = TASKS[clips.task[b]]
        if task in ("inverse", "policy") and n < 2:
            task = "dynamics"
        if task == "dynamics":
            # causal: frames k..n-1 are targets (diffusion forcing: a later target's context is partly hidden, the
            # first one's is whole, as in play); otherwise the last frame only
            t = int(rng.integers(1, n)) if cfg.causal_dynamics and n > 1 else n - 1
            for u in range(t, n):
                m["frame"][b, u] = maskgit(G)
            m["out"][b, t:n] = t > 0
            m["causal"][b] = cfg.causal_dynamics
            if t > 0:
                rate = rng.random() * CORRUPT_MAX
                noisy = rng.random((t, G)) < rate
                clips.frame[b, :t][noisy] = rng.integers(0, cfg.vocab_size, size=int(noisy.sum()))
        elif task == "inverse":
            m["text"][b] = rng.random() < 0.5  # inferring actions must not need the instruction,
            m["out"][b, :n] = rng.random() < 0.5  # nor the rewards
            if rng.random() < 0.5:
                m["act"][b, 1:n] = True
            else:
                m["act"][b, int(rng.integers(1, n))] = True
        elif task == "policy":
            t = int(rng.integers(1, n))
            m["act"][b, t] = m["out"][b, t] = True
            m["frame"][b, t] = True
            ok[b, t + 1:] = False
        elif task == "outcome":
            m["out"][b, 1:n] = True
        elif task == "from_words":
            m["frame"][b, 0] = maskgit(G)
            m["text"][b] = rng.random() < TEXT_DROP  # the same frame without words: guidance's unconditional side
            ok[b, 1:] = False
        elif task == "describe":
            m["text"][b] = True if rng.random() < 0.5 else maskgit(L)
        else:  # random spans over every stream
            r = rng.uniform(0.1, 0.9)
            for k in ("text", "act", "frame", "out"):
                m[k][b] = rng.random(m[k][b].shape) < r
            m["text"][b, 0] |= not m["text"][b].any() and not m["frame"][b, :n].any()  # at least one hidden
        for k in ("act", "frame", "out"):
            m[k][b, ~ok[b]] = False
    m["ok"] = ok
    return m


def masked_inputs(clips: Clips, m: dict[str, np.ndarray], cfg: UnifiedConfig,
                  device) -> tuple[dict, dict, torch.Tensor, torch.Tensor]:
    """-> (model inputs with MASK where hidden, targets, steps_ok, causal), as tensors on `device`."""
    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    target = {"text": t(clips.text), "act": t(clips.act), "frame": t(clips.frame), "out": t(clips.out)}
    inputs = {k: torch.where(t(m[k]), torch.full_like(v, cfg.mask_ids[k]), v) for k, v in target.items()}
    return inputs, target, t(m["ok"]), t(m["causal"])


def unified_loss(model: Unified, clips: Clips, m: dict[str, np.ndarray], device) -> tuple[torch.Tensor, dict]:
    """Sum over streams of the mean cross-entropy on hidden positions; per-stream accuracy for the log."""
    inputs, target, ok, causal = masked_inputs(clips, m, model.cfg, device)
    logits = model(inputs["text"], inputs["act"], inputs["frame"], inputs["out"], ok, causal)
    total, stats = 0.0, {}
    for k in ("text", "act", "frame", "out"):
        sel = torch.from_numpy(m[k]).to(device)
        if not bool(sel.any()):
            continue
        lg, tg = logits[k][sel], target[k][sel]
        loss = F.cross_entropy(lg.float(), tg)
        total = total + loss
        stats[f"loss_{k}"] = float(loss.detach())
        stats[f"acc_{k}"] = float((lg.argmax(-1) == tg).float().mean())
    return total, stats


def train_unified(cache, val_cache, texts: np.ndarray, val_texts: np.ndarray, expert: np.ndarray,
                  val_expert: np.ndarray, cfg: UnifiedConfig, batch: int,
                  lr: float, budget: Budget, work, device, resume: bool, seed: int, progress: bool,
                  ckpt_minutes: float = 5.0, weights: tuple[float, ...] = TASK_WEIGHTS,
                  init_state: dict | None = None, optimizer: str = "adamw") -> tuple[Unified, dict]:
    """The training loop (train/loop.py) with the task mixture; validation: per-stream accuracy on fixed clips.
    init_state: weights to start from (--init), else a fresh initialisation. optimizer: adamw or muon, as for the
    dynamics (maskworld.train.muon)."""
    torch.manual_seed(seed)
    model = Unified(cfg)
    if init_state is not None:
        model.load_state_dict(init_state)
    model = model.to(device)
    opt = make_optimizer(model, lr, optimizer)
    rng = np.random.default_rng(seed)

    def step_fn(step: int) -> dict:
        clips = draw_clips(cache, texts, expert, batch, cfg.window, rng, weights)
        m = hide(clips, cfg, rng)
        loss, stats = unified_loss(model, clips, m, device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return {"loss": float(loss.detach()), "acc": stats.get("acc_frame", 0.0), **stats}

    def eval_fn() -> dict:
        vr = np.random.default_rng(seed + 1)
        out: dict[str, list[float]] = {}
        with torch.no_grad():
            for _ in range(4):
                clips = draw_clips(val_cache, val_texts, val_expert, batch, cfg.window, vr, weights)
                m = hide(clips, cfg, vr)
                loss, stats = unified_loss(model, clips, m, device)
                for k, v in {"loss": float(loss), **stats}.items():
                    out.setdefault(k, []).append(v)
        return {k: float(np.mean(v)) for k, v in out.items()}

    tokens = batch * (cfg.text_len + cfg.window * cfg.step_len)
    metrics = run_loop("unified", model, opt, step_fn, budget, work, lr, rng, resume, ckpt_minutes=ckpt_minutes,
                       eval_fn=eval_fn, eval_every=200, progress_bar=progress, items_per_step=tokens)
    return model.eval(), metrics
