"""Each avatar answers to its own controller: Genie's delta-PSNR, read in one avatar's part of the frame.

For a world of several agents acting at once (joint actions, e.g. `MultiAgent-Coins-v0`), per avatar i and held-out
slice: an open-loop rollout of `DELTA_T` steps with the logged joint actions, and the same sessions with avatar i's
actions replaced by random ones (the others keep theirs). Both are compared with the real frame at t = DELTA_T:

- `own`: PSNR in avatar i's region (the cells within one step of where it really is at t = DELTA_T) with its real
  actions minus with random ones, averaged over slices (Genie's delta-PSNR in that region). An avatar the world
  moves by its own actions scores > 0; an action-blind world 0.
- `others`: the same signed difference in the other avatars' cells (one PSNR over all of them per slice): what
  changing avatar i's actions does to how well the others are drawn. A world that keeps the avatars apart scores
  ~0 (unless avatar i, moving at random, really blocks another one's way: the game's own interaction).
- `others_changed`: the share of the other avatars' cells where the two rollouts drew another token (a cell's
  tokens: those its pixels fall on). A signed mean can hide cells that change both ways; this cannot. Tokens, not
  pixels: the convolutional decoder spreads every changed token a few levels into its neighbours' pixels, so a
  pixel test would count the decoder's reach, not the world's drawing. `noise_changed` is the same share between
  two rollouts with the *same* logged actions and another sampling seed: how often a cell changes by sampling
  alone.
- `others_abs`, `noise_abs`: the strictest reading, |PSNR difference| of each single cell averaged over cells
  (a cell is a few pixels, often within the tokenizer's error of the truth, so one token's swing moves its PSNR
  by tens of dB: these read like a changed-cell share scaled by that swing).
- `greedy.*`: all of it again with the world's sampler made deterministic (temperature 0, no confidence noise), so
  a cell changes only where the world's predictions change: `greedy.noise_*` are 0 by construction, and
  `greedy.{i}.others*` is what avatar i's actions do to the others' cells in the model itself, sampling luck aside
  (a MaskGIT draw commits tokens in the order of its confidences over the whole frame, so changed logits in one
  place reorder the draws everywhere).

- `game.{i}.others_changed`: the same share in the game itself (each slice's episode replayed from its seed, then
  stepped with the same random actions of avatar i): how often avatar i really changes the others' cells (blocking
  their way, taking their coin), the floor `others_changed` is read against.
- `others_free`, `others_free_changed`: `others` and `others_changed` over only the other avatars' cells that the
  game itself leaves as recorded under avatar i's random actions: where avatar i has no real effect, so a world
  that keeps the avatars apart scores ~0 there whatever the game's interactions.
- `own_ci`, `others_ci`, `others_free_ci`: 95 % intervals of those means when the held-out episodes are resampled
  (eval/uncertainty.py). A slice's signed difference is ~0 where no cell changed and tens of dB where one did, so
  with a few dozen slices the interval is wide: read a bar such as "within 0.2 dB of 0" against it.

Regions come from the data's `agents_pos` (cells), scaled to pixels by the frame size and the room's cells.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from maskworld.envs import make_env
from maskworld.envs.base import joint_action, split_action
from maskworld.errors import UserError
from maskworld.eval.control import DELTA_T
from maskworld.eval.rollout import open_loop
from maskworld.eval.uncertainty import mean_ci


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)) / 255.0**2
    return 10 * np.log10(1.0 / max(mse, 1e-10))


def token_box(rows: slice, cols: slice, frame_size: int, grid: int) -> tuple[slice, slice]:
    """The token rows, columns a pixel region falls on (a `grid` x `grid` token map of the frame)."""
    t = frame_size / grid
    return (slice(int(rows.start // t), int(np.ceil(rows.stop / t))), slice(int(cols.start // t), int(np.ceil(cols.stop / t))))


def _delta(a: np.ndarray, b: np.ndarray, truth: np.ndarray) -> float:
    """PSNR of `a` minus PSNR of `b`, both against `truth` (one region)."""
    return _psnr(a, truth) - _psnr(b, truth)


def _cells(frame_HWC: np.ndarray, boxes: list[tuple[slice, slice]]) -> np.ndarray:
    """The pixels of several regions of one frame, flattened together (one PSNR over all of them)."""
    return np.concatenate([frame_HWC[rs, cs].reshape(-1) for rs, cs in boxes])


def region(frame_size: int, room: int, cell: np.ndarray, radius: int) -> tuple[slice, slice]:
    """Pixel rows, columns of the cells within `radius` of `cell` (x, y) in a room of `room` x `room` cells."""
    t = frame_size // room
    x, y = int(cell[0]), int(cell[1])
    return (slice(max(0, (y - radius) * t), min(frame_size, (y + radius + 1) * t)),
            slice(max(0, (x - radius) * t), min(frame_size, (x + radius + 1) * t)))


def avatar_control(world, store, ids: list[int], room: int, context: int = 2, slices_per_episode: int = 4,
                   seed: int = 0) -> dict:
    """{avatars.{i}.{own,others,others_abs,others_changed}, avatars.noise_{abs,changed}, avatars.greedy.*,
    avatars.game.*, avatars.slices}: means over held-out slices (module doc)."""
    agents = int(getattr(world.meta, "agents", 1))
    if agents < 2:
        raise UserError("per-avatar control needs a world of several agents (trained on joint actions)")
    if "agents_pos" not in store.meta.get("info_keys", []):
        raise UserError(f"{store.path} records no agents_pos: collect a multi-agent env (MultiAgent-Coins-v0)")
    n = len(world.meta.agent_action_meanings)
    rng = np.random.default_rng(seed)
    slices, positions, refs = [], [], []
    for i in ids:
        ep = store.load(i)
        T = len(ep.actions)
        for _ in range(slices_per_episode):
            if T < context + DELTA_T:
                break
            s = int(rng.integers(0, T - context - DELTA_T + 1))
            refs.append((i, s))
            slices.append(ep.window(s, context + DELTA_T))
            positions.append(np.asarray(ep.info["agents_pos"][s + context + DELTA_T - 1]))
    if not slices:
        raise UserError(f"no held-out episode has {context + DELTA_T} frames")
    real = np.stack([sl.actions[context - 1:context - 1 + DELTA_T] for sl in slices])  # (E, DELTA_T) joint
    truth = np.stack([sl.frames[context + DELTA_T - 1] for sl in slices])
    out: dict = {"avatars.slices": len(slices)}
    per = np.array([[split_action(a, agents, n) for a in row] for row in real])  # (E, DELTA_T, agents)
    rnd = _random_actions(per, agents, n, seed)  # one draw for the game's replay and every sampler's pass
    floor, free = game_floor(store, refs, positions, truth, rnd, context, room)
    out.update(floor)
    sampler = world.sampler
    try:
        for prefix, cfg in (("avatars.", sampler),
                            ("avatars.greedy.", dataclasses.replace(sampler, temperature=0.0, choice_temperature=0.0))):
            world.sampler = cfg
            out.update(_measure(world, slices, positions, rnd, truth, agents, room, context, seed, prefix, free,
                                groups=np.array([r[0] for r in refs])))
    finally:
        world.sampler = sampler
    return out


def _random_actions(per_EtA: np.ndarray, agents: int, n: int, seed: int) -> list[np.ndarray]:
    """Per avatar i: the slices' joint actions (E, DELTA_T) with avatar i's replaced by random ones (one seeded
    draw, the same in every pass and in the game's own replay)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(agents):
        p = per_EtA.copy()
        p[:, :, i] = rng.integers(0, n, size=p.shape[:2])
        out.append(np.array([[joint_action(a, n) for a in row] for row in p]))
    return out


def game_floor(store, refs, positions, truth, random_actions: list[np.ndarray], context: int,
               room: int) -> tuple[dict, np.ndarray | None]:
    """`avatars.game.{i}.others_changed`: the share of the other avatars' cells that the *game itself* draws
    otherwise when avatar i takes the same random actions (the episode replayed from its seed, then stepped with
    them): how much the avatars really interact, the floor a world's `others_changed` is read against.
    `avatars.game.replayed`: slices whose replay reproduced the recorded frame (0: no seeds, or a game that does
    not replay; then nothing else is reported). -> (those metrics, free (agents, E, agents) bool or None: free[i, e,
    j] where avatar j's cell of slice e came out as recorded in the game with avatar i's random actions)."""
    meta = store.meta
    if any(store.entry(i).get("seed") is None for i, _ in refs):
        return {"avatars.game.replayed": 0}, None
    env = make_env(meta["env_id"], int(meta.get("size", 64)), **(meta.get("env_kwargs") or {}))
    S = truth.shape[1]
    agents = len(random_actions)
    changed = [[] for _ in range(agents)]
    free = np.zeros((agents, len(refs), agents), bool)
    replayed = 0
    try:
        for e, (ep_id, s) in enumerate(refs):
            ep = store.load(ep_id)
            seed = int(store.entry(ep_id)["seed"])

            def replay():
                frame, _ = env.reset(seed=seed)
                for a in ep.actions[:s + context - 1]:
                    frame = env.step(int(a))[0]
                return frame

            if not np.array_equal(replay(), ep.frames[s + context - 1]):
                continue
            replayed += 1
            for i in range(agents):
                replay()
                for a in random_actions[i][e]:
                    frame = env.step(int(a))[0]
                for j in range(agents):
                    if j != i:
                        rs, cs = region(S, room, positions[e][j], radius=0)
                        free[i, e, j] = np.array_equal(frame[rs, cs], truth[e][rs, cs])
                        changed[i].append(not free[i, e, j])
    finally:
        env.close()
    out: dict = {"avatars.game.replayed": replayed}
    if not replayed:
        return out, None
    out.update({f"avatars.game.{i}.others_changed": float(np.mean(changed[i])) for i in range(agents)})
    return out, free


def _measure(world, slices, positions, random_actions: list[np.ndarray], truth, agents: int, room: int, context: int,
             seed: int, prefix: str, free: np.ndarray | None = None, groups: np.ndarray | None = None) -> dict:
    """own / others per avatar and the redraw noise, under the world's current sampler (module doc);
    random_actions[i]: the slices' joint actions (E, DELTA_T) with avatar i's random (`_random_actions`);
    groups: each slice's episode (E,), for the intervals (one group per slice if None)."""
    groups = np.arange(len(slices)) if groups is None else np.asarray(groups)
    gen, tok = open_loop(world, slices, context, DELTA_T, seed, return_tokens=True)  # (E, T, S, S, 3), (E, h, w)
    gen = gen[:, -1]
    S, grid = truth.shape[1], tok.shape[-1]
    cells = [[region(S, room, positions[e][j], radius=0) for j in range(agents)] for e in range(len(slices))]
    tcells = [[token_box(rs, cs, S, grid) for rs, cs in row] for row in cells]
    redraw, tok_redraw = open_loop(world, slices, context, DELTA_T, seed + 1, return_tokens=True)  # another draw
    redraw = redraw[:, -1]
    noise_abs, noise_changed = [], []
    for e in range(len(slices)):
        for (rs, cs), (tr, tc) in zip(cells[e], tcells[e]):
            noise_abs.append(abs(_delta(gen[e, rs, cs], redraw[e, rs, cs], truth[e, rs, cs])))
            noise_changed.append(not np.array_equal(tok[e, tr, tc], tok_redraw[e, tr, tc]))
    out: dict = {f"{prefix}noise_abs": float(np.mean(noise_abs)), f"{prefix}noise_changed": float(np.mean(noise_changed))}
    for i, rnd in enumerate(random_actions):
        gen_rnd, tok_rnd = open_loop(world, slices, context, DELTA_T, seed, actions_override=rnd, return_tokens=True)
        gen_rnd = gen_rnd[:, -1]
        own, others, others_abs, changed, others_free, free_changed, free_groups = [], [], [], [], [], [], []
        for e in range(len(slices)):
            rs, cs = region(S, room, positions[e][i], radius=1)
            own.append(_delta(gen[e, rs, cs], gen_rnd[e, rs, cs], truth[e, rs, cs]))
            others_j = [j for j in range(agents) if j != i]
            boxes = [cells[e][j] for j in others_j]
            others.append(_delta(_cells(gen[e], boxes), _cells(gen_rnd[e], boxes), _cells(truth[e], boxes)))
            for j in others_j:
                (rs, cs), (tr, tc) = cells[e][j], tcells[e][j]
                others_abs.append(abs(_delta(gen[e, rs, cs], gen_rnd[e, rs, cs], truth[e, rs, cs])))
                changed.append(not np.array_equal(tok[e, tr, tc], tok_rnd[e, tr, tc]))
                if free is not None and free[i, e, j]:
                    free_changed.append(changed[-1])
            fb = [cells[e][j] for j in others_j if free is not None and free[i, e, j]]
            if fb:
                others_free.append(_delta(_cells(gen[e], fb), _cells(gen_rnd[e], fb), _cells(truth[e], fb)))
                free_groups.append(groups[e])
        out[f"{prefix}{i}.own"] = float(np.mean(own))
        out[f"{prefix}{i}.own_ci"] = mean_ci(own, groups, seed=seed)
        out[f"{prefix}{i}.others"] = float(np.mean(others))
        out[f"{prefix}{i}.others_ci"] = mean_ci(others, groups, seed=seed)
        out[f"{prefix}{i}.others_abs"] = float(np.mean(others_abs))
        out[f"{prefix}{i}.others_changed"] = float(np.mean(changed))
        if others_free:  # only the cells the game itself leaves as they were: what avatar i must not touch
            out[f"{prefix}{i}.others_free"] = float(np.mean(others_free))
            out[f"{prefix}{i}.others_free_ci"] = mean_ci(others_free, np.array(free_groups), seed=seed)
            out[f"{prefix}{i}.others_free_changed"] = float(np.mean(free_changed))
    return out
