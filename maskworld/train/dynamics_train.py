"""Train the MaskGIT dynamics model on a token cache.

    maskworld train dynamics --data DATA --out WORLD --minutes 30

Per batch: clips of `window` frames (tokens, the action into each frame, reward, termination).
- Masked stream: each frame gets its own MaskGIT mask ratio cos(pi/2 * u), u ~ U(0,1), at least one
  token; cross-entropy on masked tokens only (MaskGIT).
- Clean stream: the context, corrupted with random tokens at a per-clip rate ~ U(0, corrupt_max)
  (robustness to the model's own errors, GameNGen's noise augmentation in discrete form).
- Reward (its class: the data's value, or the sign; models/reward_values.py) and termination losses on every
  frame that is the result of a real transition (not an episode's first frame, whose incoming action is NULL).

Several processes (torchrun): `batch` is the global batch. Every rank samples the same global batch
of clips (token windows are a few KB) and draws the masks and corruption for all of it, then trains
on its own contiguous part; the losses are normalised by the global counts of masked tokens and real
transitions, so DDP's gradient mean is the single-process gradient (maskworld.train.dist).
With `--data-split rank` each rank instead samples its share of `batch` from its own token cache.

Event oversampling (`--event-share`, maskworld.data.event_sampler): a share of each batch's clips end on a
reward or termination transition, so a sparse-reward world learns to imagine the rewarding step.
Validation stays on uniform clips, comparable across runs.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from maskworld.data.event_sampler import EventClips
from maskworld.device import autocast
from maskworld.errors import UserError
from maskworld.memory.pose import delta_class
from maskworld.memory.retrieval import training_memory
from maskworld.models.dynamics import Dynamics, DynamicsConfig, cosine_mask_ratio
from maskworld.models.memory_reader import MemoryInput
from maskworld.models.reward_values import reward_class
from maskworld.train import dist
from maskworld.train.loop import Budget, run_loop
from maskworld.train.muon import make_optimizer


def make_batch(cache, batch: int, window: int, rng: np.random.Generator, num_actions: int, device, cfg=None,
               clips=None):
    """-> tok (B,T,N), act (B,T), rew (B,T), term (B,T), extra {memory parts (B,T,...), pose_target (B,T)}.

    `extra` is filled only for a model with memory or a pose head (cfg), from the cache's poses.
    clips: an EventClips over `cache` and `window` (event oversampling); None = uniform windows."""
    b = clips.sample(batch, rng) if clips is not None else cache.sample(batch, window, rng)
    tok = torch.from_numpy(np.asarray(b["tokens"])).long().to(device).flatten(2)  # (B,T,N)
    act = torch.from_numpy(np.asarray(b["actions_in"])).long().to(device)  # (B,T)
    act = torch.where((act < 0) | (act > num_actions), torch.full_like(act, num_actions), act)
    rew = torch.from_numpy(np.asarray(b["rewards_in"], dtype=np.float32)).to(device)
    term = torch.from_numpy(np.asarray(b["terminated_in"])).float().to(device)
    extra = {}
    if cfg is not None and (cfg.has_memory or cfg.pose_head):
        extra = memory_extra(cache, b, cfg, rng, device)
    return tok, act, rew, term, extra


def memory_extra(cache, b: dict, cfg: DynamicsConfig, rng: np.random.Generator, device) -> dict:
    """Memory tokens of every clip frame (maskworld.memory.retrieval) and, with poses, pose-change targets."""
    rows, first = b["rows"], b["first_rows"]
    by_pose = cfg.memory_keys == "pose"
    if cache.poses is None and (by_pose and cfg.memory_frames or cfg.pose_head):
        raise UserError(f"{cache.path} has no poses: pose-keyed memory and the pose head need data that records "
                        "agent_pos/agent_dir (MiniGrid envs); train with --memory-keys appearance, or --memory 0")
    ret, rel, comp = training_memory(cache.poses, rows, first, cfg.window, cfg.memory_frames, cfg.compressed_frames, rng,
                                     keys=cfg.memory_keys, tokens=cache.tokens, grid=cfg.grid)
    out = {}
    if cfg.pose_head:
        prev_ok = rows - 1 >= first
        target = np.where(prev_ok, delta_class(cache.poses[np.maximum(rows - 1, 0)], cache.poses[rows]), -1)
        out["pose_target"] = torch.from_numpy(target).long().to(device)
    g = cfg.grid

    def gather(r):  # (B,T,k) rows, -1 = none -> tokens (B,T,k,N)
        t = cache.tokens[np.maximum(r, 0).reshape(-1)].reshape(*r.shape, g * g).astype(np.int64)
        return torch.from_numpy(t).to(device)

    if cfg.memory_frames:
        out["retrieved"], out["rel"] = gather(ret), torch.from_numpy(rel).to(device)
    if cfg.compressed_frames:
        out["compressed"], out["comp_valid"] = gather(comp), torch.from_numpy(comp >= 0).to(device)
    return out


def memory_input(extra: dict):
    """(B,T,...) memory parts -> a MemoryInput with B*T query rows, or None."""
    if not any(k in extra for k in ("retrieved", "compressed")):
        return None
    flat = {k: v.flatten(0, 1) for k, v in extra.items() if k != "pose_target"}
    return MemoryInput(flat.get("retrieved"), flat.get("rel"), flat.get("compressed"), flat.get("comp_valid"))


def mask_tokens(tok_BTN: torch.Tensor, mask_id: int, gen: torch.Generator | None = None):
    """-> (masked tokens, bool mask) with a MaskGIT ratio per frame."""
    B, T, N = tok_BTN.shape
    dev = tok_BTN.device
    ratio = cosine_mask_ratio(torch.rand(B, T, 1, generator=gen).to(dev))
    n_mask = (ratio * N).ceil().clamp(min=1)
    rank = torch.rand(B, T, N, generator=gen).to(dev).argsort(-1).argsort(-1)  # random rank of each position
    m = rank < n_mask
    return torch.where(m, torch.full_like(tok_BTN, mask_id), tok_BTN), m


def corrupt(tok_BTN: torch.Tensor, vocab: int, max_rate: float, gen=None, drop: float = 0.0) -> torch.Tensor:
    """Random tokens at a per-clip rate ~ U(0, max_rate); a share `drop` of the clips gets U(0.5, 1) instead (a
    context that is mostly noise, like a long open-loop rollout's: what memory M must stand in for)."""
    if max_rate <= 0 and drop <= 0:
        return tok_BTN
    B = tok_BTN.shape[0]
    rate = torch.rand(B, 1, 1, generator=gen).to(tok_BTN.device) * max_rate
    if drop > 0:
        heavy = torch.rand(B, 1, 1, generator=gen).to(tok_BTN.device) < drop
        rate = torch.where(heavy, 0.5 + 0.5 * torch.rand(B, 1, 1, generator=gen).to(tok_BTN.device), rate)
    flip = torch.rand(tok_BTN.shape, generator=gen).to(tok_BTN.device) < rate
    rnd = torch.randint(0, vocab, tok_BTN.shape, generator=gen).to(tok_BTN.device)
    return torch.where(flip, rnd, tok_BTN)


@torch.no_grad()
def own_context(forward, clean_BTN, act_BT, memory, mask_id: int, pick_B: torch.Tensor) -> torch.Tensor:
    """Scheduled sampling (Bengio et al. 2015) for a masked world: in the picked clips, every frame after the first
    is replaced by the model's own one-pass prediction of it (argmax, all of the frame masked) from the frames
    before it, so the world also learns to continue from frames it drew itself, as in an open-loop rollout, and not
    only from real ones. The targets stay the real frames. One extra forward pass, no gradient."""
    T = clean_BTN.shape[1]
    if T < 2 or not bool(pick_B.any()):
        return clean_BTN
    own = forward(clean_BTN, torch.full_like(clean_BTN, mask_id), act_BT, memory)[0].argmax(-1)  # (B,T,N)
    later = torch.arange(T, device=clean_BTN.device) > 0
    return torch.where(pick_B[:, None, None] & later[None, :, None], own, clean_BTN)


def hide_agents(cfg: DynamicsConfig, act_BT: torch.Tensor, p: float, gen=None) -> torch.Tensor:
    """Joint actions (B,T) with each agent's action hidden (its NULL) with probability p, independently, in real
    transitions: what the masked stream of a `partial_actions` world sees (classifier-free guidance's condition
    dropout, per agent), so it learns to predict a frame from some agents' actions alone."""
    if not cfg.action_factors:
        raise UserError("--agent-dropout hides single agents' actions: it needs data of several agents acting at once")
    real = act_BT != cfg.null_action
    digits = cfg.agent_actions(act_BT)  # (B, T, agents)
    hide = torch.stack([torch.rand(act_BT.shape, generator=gen) for _ in cfg.action_factors], -1).to(act_BT.device) < p
    null = torch.tensor(cfg.action_factors, device=act_BT.device).expand_as(digits)  # each agent's NULL
    digits = torch.where(hide & real[..., None], null, digits)
    q = cfg.partial_action(digits.flatten(0, 1)).view_as(act_BT)
    return torch.where(real, q, act_BT)


def hide_actions(act_BT: torch.Tensor, null: int, p: float, gen=None) -> torch.Tensor:
    """Actions (B,T) with each real one replaced by NULL with probability p (classifier-free guidance's condition
    dropout, Ho & Salimans 2022): the masked stream then also learns the frame without the action that led to it."""
    hide = (torch.rand(act_BT.shape, generator=gen) < p).to(act_BT.device)
    return torch.where(hide & (act_BT != null), torch.full_like(act_BT, null), act_BT)


def dynamics_losses(model: Dynamics, tok, act, rew, term, corrupt_max: float = 0.1, gen=None,
                    part: dist.Part | None = None, forward=None, extra: dict | None = None, context_drop: float = 0.0,
                    self_context: float = 0.0, agent_dropout: float = 0.0, action_dropout: float = 0.0):
    """Token, reward and termination losses and masked-token accuracy.

    `extra` (from make_batch): memory read by the predicted frames, and pose-change targets whose loss
    is added to the termination loss's slot only when the model has a pose head (see `pose_loss`).

    With `part` (several ranks) tok/act/rew/term are the global batch: masks are drawn for all of it,
    the model runs on this rank's share, and each loss is this rank's sum over the global count
    times the number of ranks (DDP averages gradients), so the mean over ranks is the global mean.
    `self_context`: share of clips whose context is the model's own predictions (`own_context`).
    `agent_dropout`: a world of several agents: the chance that an agent's action is hidden from the frame being
    predicted (`hide_agents`).
    `action_dropout`: the chance that the whole action into a predicted frame is hidden from it (NULL), what
    classifier-free guidance by the action contrasts with (`hide_actions`).
    """
    cfg = model.cfg
    forward = model if forward is None else forward
    masked, m = mask_tokens(tok, cfg.mask_id, gen)
    clean = corrupt(tok, cfg.vocab_size, corrupt_max, gen, context_drop)
    real = act != cfg.null_action  # frames produced by a transition
    # drawn for the global batch, like the masks, so N ranks pick the clips one process would
    own = (torch.rand(len(tok), generator=gen) < self_context).to(tok.device) if self_context > 0 else None
    hidden = agent_dropout > 0 or action_dropout > 0  # the masked stream reads other actions than the context
    q_act = hide_agents(cfg, act, agent_dropout, gen) if agent_dropout > 0 else act
    q_act = hide_actions(q_act, cfg.null_action, action_dropout, gen) if action_dropout > 0 else q_act
    if part is not None:
        n_mask, n_real = m.sum().clamp_min(1), real.sum().clamp_min(1)
        sl = part.slice(len(tok))
        tok, act, q_act, rew, term, masked, m, clean, real = (t[sl] for t in (tok, act, q_act, rew, term, masked, m, clean,
                                                                               real))
        own = own[sl] if own is not None else None
        extra = {k: v[sl] for k, v in (extra or {}).items()}
    extra = extra or {}
    memory = memory_input(extra)
    if own is not None:
        clean = own_context(forward, clean, act, memory, cfg.mask_id, own)
    logits, r_logits, d_logits, p_logits = forward(clean, masked, act, memory, return_pose=True,
                                                   **({"query_actions_BT": q_act} if hidden else {}))
    if p_logits is not None and "pose_target" in extra:
        # the pose head rides on the termination slot: the sum is what training minimises and logs
        pl = F.cross_entropy(p_logits.flatten(0, 1), extra["pose_target"].flatten(), ignore_index=-1)
        d_extra = pl if bool((extra["pose_target"] >= 0).any()) else torch.zeros((), device=tok.device)
    else:
        d_extra = None
    if part is None:
        tok_loss = F.cross_entropy(logits[m], tok[m])
        if real.any():
            r_loss = F.cross_entropy(r_logits[real], reward_class(rew[real], cfg.reward_values))
            d_loss = F.binary_cross_entropy_with_logits(d_logits[real], term[real])
        else:
            r_loss = d_loss = torch.zeros((), device=tok.device)
        acc = (logits[m].argmax(-1) == tok[m]).float().mean()
        return tok_loss, r_loss, d_loss + (d_extra if d_extra is not None else 0.0), acc
    w = part.world
    tok_loss = F.cross_entropy(logits[m], tok[m], reduction="sum") * w / n_mask
    r_loss = F.cross_entropy(r_logits[real], reward_class(rew[real], cfg.reward_values), reduction="sum") * w / n_real
    d_loss = F.binary_cross_entropy_with_logits(d_logits[real], term[real], reduction="sum") * w / n_real
    acc = (logits[m].argmax(-1) == tok[m]).float().sum() * w / n_mask
    if d_extra is not None:
        d_loss = d_loss + d_extra  # this rank's mean (pose targets are dense; a small DDP approximation)
    return tok_loss, r_loss, d_loss, acc


def clip_events(rew, term, act, null_action: int) -> float:
    """Share of the batch's clips holding a reward or termination transition (logged: what oversampling did)."""
    hit = ((rew != 0) | (term > 0)) & (act != null_action)  # (B,T)
    return hit.any(1).float().mean().item()


@torch.no_grad()
def evaluate_dynamics(model: Dynamics, cache, window: int, device, batches: int = 4, batch: int = 16, seed: int = 1):
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    out = {"loss": 0.0, "acc": 0.0}
    for _ in range(batches):
        tok, act, rew, term, extra = make_batch(cache, batch, window, rng, model.cfg.num_actions, device, model.cfg)
        tl, _, _, acc = dynamics_losses(model, tok, act, rew, term, corrupt_max=0.0, gen=gen, extra=extra)
        out["loss"] += tl.item() / batches
        out["acc"] += acc.item() / batches
    return out


def train_dynamics(train_cache, val_cache, cfg: DynamicsConfig, batch: int, lr: float, budget: Budget, work_dir, device,
                   resume: bool, seed: int = 0, progress: bool = True, ckpt_minutes: float = 5.0, corrupt_max: float = 0.1,
                   fsdp: bool = False, compile: bool = False, event_share: float = 0.0, context_drop: float = 0.0,
                   init_state: dict | None = None, probe=None, optimizer: str = "adamw", self_context: float = 0.0,
                   agent_dropout: float = 0.0, action_dropout: float = 0.0):
    """event_share: share of each batch's clips that end on a reward/termination (maskworld.data.event_sampler).
    context_drop: share of clips with a mostly-noise context (`corrupt`). self_context: share of clips whose
    context is the model's own predictions (`own_context`). agent_dropout: chance an agent's action is hidden from
    the predicted frame (`hide_agents`; cfg.partial_actions must be set). action_dropout: chance the action is hidden
    from the predicted frame (`hide_actions`). init_state: weights to start from (a
    fine-tune; a checkpoint in work_dir, on --resume, takes precedence). probe: model -> held-out rollout metrics
    (heldout_probe.HeldoutProbe), logged with every evaluation beside the masked-token ones. optimizer: adamw or
    muon (maskworld.train.muon; `maskworld train` passes its --optimizer, default muon)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = Dynamics(cfg).to(device)
    if init_state is not None:
        missing, unexpected = model.load_state_dict(init_state, strict=False)
        # memory (its reader's outputs start at zero), a pose head or a copy head added to a trained world start
        # fresh, and so does a reward head given other classes (world_train._set_reward_values)
        new = [k for k in missing if not k.startswith(("copy_head.", "memory.", "pose_head.", "reward_head."))]
        if new or unexpected:
            raise UserError(f"the --init weights do not fit this model (missing {new[:3]}, unexpected {unexpected[:3]})")
    fwd = dist.wrap(model, device, fsdp=fsdp, compile=compile, blocks=list(model.blocks))  # `model` is what we save
    part = dist.part()
    opt = make_optimizer(model, lr, optimizer)
    tokens_per_step = batch * cfg.window * cfg.frame_len
    clips = EventClips(train_cache, cfg.window, event_share)

    def step_fn(step: int) -> dict:
        import time

        t0 = time.time()
        # global split: the whole global batch (dynamics_losses keeps `part`); rank split: this rank's own rows
        tok, act, rew, term, extra = make_batch(train_cache, dist.rows_to_draw(batch), cfg.window, rng, cfg.num_actions, device, cfg,
                                               clips)
        with autocast(device):
            tl, rl, dl, acc = dynamics_losses(model, tok, act, rew, term, corrupt_max, part=part, forward=fwd, extra=extra,
                                              context_drop=context_drop, self_context=self_context,
                                              agent_dropout=agent_dropout, action_dropout=action_dropout)
        loss = tl + 0.5 * rl + 0.5 * dl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return {"loss": loss.item(), "tok_loss": tl.item(), "reward_loss": rl.item(), "term_loss": dl.item(),
                "acc": acc.item(), "tok_s": tokens_per_step / max(time.time() - t0, 1e-9),
                "event_clips": clip_events(rew, term, act, cfg.null_action)}

    metrics = run_loop("dynamics", model, opt, step_fn, budget, work_dir, lr, rng, resume,
                       eval_fn=lambda: {**evaluate_dynamics(model, val_cache, cfg.window, device), **(probe(model) if probe else {})},
                       eval_every=250,
                       progress_bar=progress, ckpt_minutes=ckpt_minutes, items_per_step=tokens_per_step, items_unit="tokens/s")
    return dist.unshard(model, Dynamics(cfg).to(device)), metrics
