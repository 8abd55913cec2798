"""The revisit benchmark: does the world remember a place after being away longer than its window?

Protocol (WorldMem/VMem-style revisits): scripted out-and-back trials in procedurally generated
MiniGrid layouts with landmarks (maskworld.eval.revisit_trials): the world is given the real frames of the
outbound leg (a 360-degree scan of a place), then imagines the gap of g steps and the return leg from the
logged actions. Scored on the return leg (the same scan of the same place):
- `psnr` / `ssim` against the real frames;
- `self_psnr`: against the world's own frames of the same poses before the gap (self-consistency);
- `own_return_psnr`: self-consistency by the world's *own* reckoning, over the whole imagined part: whenever a
  session's pose (the keys it reads memory by) comes back to a pose it had more than a window ago, after going at
  least `RETURN_AWAY` cells away, the frame against the one it showed there (`own_returns`: how many such returns,
  `own_moved`: share of imagined steps its pose moved, beside the real walk's `real_moved`). No ground truth at all:
  a world that imagines other corridors than the real ones still returns, by its own geometry, to places it drew;
- `recall`: landmark recall (right object, right place, right colour) on the returning frames;
  `recall_renderable`: the same over the landmark cells the tokenizer's reconstruction of the real frames
  shows (the tokenizer scores 1.0 there; a world cannot show what its tokenizer cannot draw).

Outside grid worlds (`env_id` not MiniGrid): walk-back trials (walkback.py) on a game whose level a seed fixes:
stand, walk RIGHT g/2 steps, walk back; no poses and no landmarks, so the arms are `memory`, `no_memory` and
`oracle` (plus `copy_last` and `tokenizer`), scored by PSNR, SSIM and self-PSNR.

Arms, in one run on the same trials and seeds:
- `memory`: memory M as trained, keys the world computes itself (nothing given but frames and actions, like
  play): its motion model's pose with loop closure by appearance (memory/motion.py, appearance.py), or the
  pose head where the world has no motion model;
- `memory_posehead`: keys from the pose head's dead reckoning (what worlds used before the motion model);
- `memory_appearance`: retrieval by appearance alone (the frames that look most like the last one; no pose);
- `no_memory`: the same weights reading nothing (the window only);
- `memory_envpose`: memory M keyed by the environment's logged poses (the data has them) instead of the
  world's estimates; the remembered frames are still the world's own;
- `oracle`: oracle retrieval: the memory holds the real frames, keyed by the true poses;
- `copy_last`: the last given frame, repeated;
- `tokenizer`: the real frames through the tokenizer (the ceiling any world with this tokenizer can reach).
Ablations (`ablations=True`, keyed by the logged poses like `memory_envpose`): `retrieval_only` (compressed frames
off), `compressed_only` (retrieval off),
`recent` (the retrieved frames are the most recent ones beyond the window instead of the nearest places), and
`memory_k{k}` arms read only k retrieved frames: how many to read, and how to choose them, by measurement.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from maskworld.errors import UserError
from maskworld.eval.metrics import psnr_per_frame, ssim_per_frame
from maskworld.eval.revisit_trials import landmark_hits, make_trials
from maskworld.eval.uncertainty import mean_ci
from maskworld.eval.walkback import check_game, make_walkback_trials
from maskworld.progress import Progress
from maskworld.world.engine import Engine
from maskworld.world.session import Session

ARMS = ("memory", "memory_posehead", "memory_appearance", "no_memory", "memory_envpose", "oracle")
KEYS = {"memory_posehead": "head", "memory_appearance": "appearance"}
WALK_ARMS = ("memory", "no_memory", "oracle")  # walk-back trials: no poses to key by
ABLATIONS = {"retrieval_only": {"compressed": False}, "compressed_only": {"retrieved": False}, "recent": {"choose": "recent"}}


RETURN_AWAY = 2  # cells (x + y) a pose must have left before coming back counts as a return


def own_returns(frames: np.ndarray, poses: np.ndarray, start: int, window: int) -> tuple[list[float], float]:
    """frames (L,H,W,3), poses (L,3) the pose each frame was keyed by, start: the first imagined frame ->
    (PSNR of every return: frame j against the last frame i < j - window at the same pose, where the poses between
    them went RETURN_AWAY cells or more from it; share of imagined steps whose pose moved)."""
    out = []
    for j in range(start, len(frames)):
        same = np.flatnonzero((poses[: max(j - window, 0)] == poses[j]).all(1))
        if len(same) == 0:
            continue
        i = int(same[-1])
        if np.abs(poses[i:j, :2] - poses[j, :2]).sum(1).max() < RETURN_AWAY:
            continue  # never left: standing still is not a return
        out.append(float(psnr_per_frame(frames[j][None], frames[i][None])[0]))
    return out, _moved(poses, start)


def _moved(poses: np.ndarray, start: int) -> float:
    """Share of the steps into frames start.. whose pose changed place."""
    moved = np.diff(poses[max(start - 1, 0):, :2], axis=0) != 0
    return float(moved.any(1).mean()) if len(moved) else 0.0


def _tokenize(world, frames: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        t = world.tokenizer.tokenize_uint8(torch.from_numpy(np.ascontiguousarray(frames)).to(world.device))
    return t.flatten(1).cpu().numpy()


def _run_arm(world, trials, arm: str, seed: int, k: int | None = None, parts: dict | None = None):
    """Imagine every trial of one gap under one arm -> (per trial its frames (L, H, W, 3) (outbound: the
    world's reading of the real frames; then its own), per trial its loop closures, per trial the pose (L, 3) each
    frame was keyed by)."""
    memory = arm != "no_memory"
    eng = Engine(world, rows=len(trials))
    sessions, frames, poses = [], [], []
    oracle = arm == "oracle"
    given = arm in ("oracle", "memory_envpose") and trials[0].poses is not None  # keys from the logged poses
    for i, tr in enumerate(trials):
        s = Session(world, seed=seed + i, memory=memory, engine=eng)
        if k is not None:
            s.memory_k = k
        s.memory_parts.update(parts or {})
        if arm in KEYS:
            s.memory_keys = KEYS[arm]
        own, keyed = [], []
        for j in range(tr.outbound):
            a = int(tr.actions_in[j])
            s.observe(tr.frames[j], None if a < 0 else a, pose=tr.poses[j] if given else None)
            own.append(s.frame)
            keyed.append(s.pose.copy())
        sessions.append(s)
        frames.append(own)
        poses.append(keyed)
    real_tokens = [_tokenize(world, tr.frames) for tr in trials] if oracle else None
    L = len(trials[0].frames)
    for j in range(trials[0].outbound, L):
        acts = [int(tr.actions_in[j]) for tr in trials]
        out = eng.step(sessions, acts, [tr.poses[j] for tr in trials] if given else None)
        for i, (f, _, _) in enumerate(out):
            frames[i].append(f)
            poses[i].append(sessions[i].pose.copy())
            if oracle:  # what was really seen there, at the true pose
                sessions[i].bank.replace(sessions[i].bank.size - 1, real_tokens[i][j], observed=True)
    return [np.stack(f) for f in frames], [s.closures for s in sessions], [np.stack(p) for p in poses]


def _return_psnr(trials, gen: list[np.ndarray]) -> list[np.ndarray]:
    """Per trial, the PSNR (dB) of each returning frame against the real one."""
    return [psnr_per_frame(g[tr.ret], tr.frames[tr.ret]) for tr, g in zip(trials, gen)]


def paired_gain_ci(arm: list[np.ndarray], base: list[np.ndarray], seed: int = 0) -> list[float] | None:
    """95 % interval of an arm's PSNR gain over a baseline arm on the same trials: the returning frames' paired
    differences, whole trials resampled (a trial's frames share its walk and its drift, eval/uncertainty.py)."""
    diff = np.concatenate([a - b for a, b in zip(arm, base)])
    trial = np.concatenate([np.full(len(a), i) for i, a in enumerate(arm)])
    return mean_ci(diff, trial, seed=seed)


def _scores(trials, gen: list[np.ndarray], renderable: list[np.ndarray] | None = None,
            ps: list[np.ndarray] | None = None) -> dict:
    """PSNR/SSIM/self-PSNR and landmark recall on the return legs. renderable: per trial, which landmark cells of
    the return leg the tokenizer's reconstruction of the real frames shows; `recall_renderable` is the recall
    over those cells only (what any world with this tokenizer could show: the tokenizer scores 1.0 on it).
    ps: the returning frames' PSNR per trial (`_return_psnr`), where the caller has it already."""
    ps, ss, self_ps, hits, ok = ps if ps is not None else _return_psnr(trials, gen), [], [], [], []
    for i, (tr, g) in enumerate(zip(trials, gen)):
        pred, real, before = g[tr.ret], tr.frames[tr.ret], g[tr.match]
        ss.append(ssim_per_frame(pred, real))
        self_ps.append(psnr_per_frame(pred, before))
        if tr.views is not None:
            hits.append(landmark_hits(pred, tr.views[tr.ret]))
        if renderable is not None:
            ok.append(renderable[i])
    h = np.concatenate(hits) if hits else np.zeros(0, bool)
    out = {"psnr": float(np.concatenate(ps).mean()), "ssim": float(np.concatenate(ss).mean()),
           "self_psnr": float(np.concatenate(self_ps).mean()), "recall": float(h.mean()) if h.size else None,
           "landmarks": int(h.size)}
    if renderable is not None:
        r = np.concatenate(ok) if ok else np.zeros(0, bool)
        out["recall_renderable"] = float(h[r].mean()) if r.any() else None
        out["landmarks_renderable"] = int(r.sum())
    return out


def revisit(world, env_id: str | None = None, gaps=(8, 16, 32, 64, 128, 256), per_gap: int = 8, seed: int = 0,
            memory_k: tuple = (), ablations: bool = False, progress: bool = True) -> dict:
    """Run the benchmark -> flat metrics `revisit.<arm>.<metric>.<g>` plus `revisit.gain.*` summaries."""
    env_id = env_id or world.meta.env_id
    grid = env_id.startswith("MiniGrid-")
    if not grid:  # walk-back trials (walkback.py): no poses, no landmarks
        check_game(world, env_id, world.meta.size)
    if not world.has_memory:
        print("note: this world has no memory M (trained without --memory): the memory arms equal no_memory")
    for k in memory_k:
        if not 1 <= k <= world.dynamics.cfg.memory_frames:
            raise UserError(f"--memory-k {k}: this world reads 1..{world.dynamics.cfg.memory_frames} retrieved frames")
    size = world.meta.size
    base = ARMS if grid else WALK_ARMS
    if not grid and (ablations or memory_k):
        raise UserError("--ablations and --memory-k read by the environment's poses: they run on MiniGrid trials only")
    arms = list(base) + (list(ABLATIONS) if ablations else []) + [f"memory_k{k}" for k in memory_k]
    out: dict = {"revisit.env": env_id, "revisit.gaps": list(gaps), "revisit.trials_per_gap": per_gap,
                 "revisit.window": world.dynamics.cfg.window, "revisit.arms": arms + ["copy_last", "tokenizer"]}
    t0 = time.time()
    bar = Progress(total=len(gaps) * len(arms), desc="revisit", unit="arms", enabled=progress)
    for g in gaps:
        if grid:
            trials = make_trials(env_id, gaps=(g,), per_gap=per_gap, seed=seed, size=size)
            out[f"revisit.away.{g}"] = float(np.mean([t.away for t in trials]))
            out[f"revisit.real_moved.{g}"] = float(np.mean([_moved(t.poses, t.outbound) for t in trials]))
        else:
            trials = make_walkback_trials(env_id, gaps=(g,), per_gap=per_gap, seed=seed, size=size)
            out[f"revisit.away_psnr.{g}"] = float(np.mean([t.away for t in trials]))
        with torch.no_grad():
            recon = [world.tokenizer.render_uint8(torch.from_numpy(_tokenize(world, t.frames)).view(
                -1, world.dynamics.cfg.grid, world.dynamics.cfg.grid).to(world.device)).cpu().numpy() for t in trials]
        renderable = [landmark_hits(r[t.ret], t.views[t.ret]) for r, t in zip(recon, trials)] if grid else None
        last = [np.repeat(t.frames[t.outbound - 1][None], len(t.frames), 0) for t in trials]
        for key, v in _scores(trials, last, renderable).items():
            out[f"revisit.copy_last.{key}.{g}"] = v
        for key, v in _scores(trials, recon, renderable).items():
            out[f"revisit.tokenizer.{key}.{g}"] = v
        per_trial = {}
        for arm in arms:
            k = int(arm.split("_k")[1]) if "_k" in arm else None
            # ablations read with the environment's poses: they isolate what is read from where the world thinks it is
            gen, closures, keyed = _run_arm(world, trials, "memory_envpose" if k or arm in ABLATIONS else arm, seed, k,
                                            ABLATIONS.get(arm))
            per_trial[arm] = _return_psnr(trials, gen)  # scored once: the arm's means and the paired gains
            for key, v in _scores(trials, gen, renderable, per_trial[arm]).items():
                out[f"revisit.{arm}.{key}.{g}"] = v
            out[f"revisit.{arm}.closures.{g}"] = float(np.mean(closures))
            if grid:  # poses to reckon by (walk-back trials keep none)
                rets = [own_returns(f, p, t.outbound, world.dynamics.cfg.window) for f, p, t in zip(gen, keyed, trials)]
                ps = [v for r, _ in rets for v in r]
                out[f"revisit.{arm}.own_return_psnr.{g}"] = float(np.mean(ps)) if ps else None
                out[f"revisit.{arm}.own_returns.{g}"] = len(ps)
                out[f"revisit.{arm}.own_moved.{g}"] = float(np.mean([m for _, m in rets]))
            bar.update(1)
        for arm, name in (("memory", "psnr"), ("oracle", "oracle_psnr"), ("memory_envpose", "envpose_psnr"),
                          ("memory_appearance", "appearance_psnr")):
            if arm in per_trial:
                out[f"revisit.gain.{name}_ci.{g}"] = paired_gain_ci(per_trial[arm], per_trial["no_memory"], seed)
    bar.close()
    for g in gaps:
        off, mem, orc = (out[f"revisit.{a}.psnr.{g}"] for a in ("no_memory", "memory", "oracle"))
        out[f"revisit.gain.psnr.{g}"] = mem - off
        out[f"revisit.gain.oracle_psnr.{g}"] = orc - off
        out[f"revisit.gain.share_of_oracle.{g}"] = (mem - off) / (orc - off) if orc - off > 1e-6 else None
        out[f"revisit.gain.self_psnr.{g}"] = out[f"revisit.memory.self_psnr.{g}"] - out[f"revisit.no_memory.self_psnr.{g}"]
        if not grid:
            continue
        mo, oo = out[f"revisit.memory.own_return_psnr.{g}"], out[f"revisit.no_memory.own_return_psnr.{g}"]
        out[f"revisit.gain.own_return_psnr.{g}"] = mo - oo if mo is not None and oo is not None else None
        env = out[f"revisit.memory_envpose.psnr.{g}"]
        out[f"revisit.gain.envpose_psnr.{g}"] = env - off
        out[f"revisit.gain.envpose_share_of_oracle.{g}"] = (env - off) / (orc - off) if orc - off > 1e-6 else None
        out[f"revisit.gain.share_of_envpose.{g}"] = (mem - off) / (env - off) if env - off > 1e-6 else None
        out[f"revisit.gain.appearance_psnr.{g}"] = out[f"revisit.memory_appearance.psnr.{g}"] - off
    out["revisit.seconds"] = time.time() - t0
    return out


def memory_cost(world, history: int = 1000, steps: int = 50, seed: int = 0) -> dict:
    """Play speed with memory on vs off after `history` steps, and bytes per remembered frame."""
    rng = np.random.default_rng(seed)
    s = Session.start(world, seed=seed)
    sizes = {}
    for i in range(history):
        s.step(int(rng.integers(min(3, world.num_actions))))
        if i + 1 in (history // 4, history // 2, history):
            sizes[i + 1] = s.bank.nbytes
    acts = [int(a) for a in rng.integers(min(3, world.num_actions), size=steps)]
    fps = {}
    for on in (False, True, False, True):  # interleaved: the machine is shared and noisy
        s.memory_on = on and world.has_memory
        t = time.perf_counter()
        for a in acts:
            s.step(a)
        fps.setdefault(on, []).append(steps / (time.perf_counter() - t))
    off, on = max(fps[False]), max(fps[True])
    out = {"memory.history_steps": history, "memory.fps_off": off, "memory.fps_on": on,
           "memory.speed_cost": 1 - on / off,
           "memory.bytes_per_frame": s.bank.nbytes / s.bank.size if s.bank.size else 0.0}  # no memory M: no bank
    for n, b in sizes.items():
        out[f"memory.bytes.{n}"] = b
    return out


def summary_lines(m: dict) -> list[str]:
    lines = []
    arms = m["revisit.arms"]
    lines.append("  gap  " + "".join(f"{a:>22s}" for a in arms) + "   (PSNR dB / recall / recall of renderable)")
    for g in m["revisit.gaps"]:
        cells = []
        for a in arms:
            r, rr = m.get(f"revisit.{a}.recall.{g}"), m.get(f"revisit.{a}.recall_renderable.{g}")
            cells.append(f"{m[f'revisit.{a}.psnr.{g}']:6.2f} / {'-' if r is None else f'{r:.2f}'} / "
                         f"{'-' if rr is None else f'{rr:.2f}'}")
        lines.append(f"  {g:4d} " + "".join(f"{c:>22s}" for c in cells))
    return lines
