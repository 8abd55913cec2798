"""Every task of a unified world measured on held-out data, each beside the dedicated model it must not lose to.

- dynamics: open-loop PSNR at horizons 1, 4, 8 from a real first frame with the real actions; beside it copy-last,
  the tokenizer ceiling and a dedicated dynamics world (today's `train world`) on the same episodes;
- inverse dynamics: action accuracy on held-out real transitions (all, and those where the frame changed); beside
  it a dedicated IDM of the same architecture (`--kind unified --tasks inverse`, optional), a small pixel IDM trained
  here on the training split's real pairs (eval/idm.py: both frames and their difference, three convolutions) and
  chance;
- policy: success rate in the real environment over held-out seeds; beside it a dedicated behaviour-cloning policy
  (`--tasks policy`), random actions and the expert bot;
- world from words: the first frame generated from an instruction shows the object it names
  (eval/babyai_detect.py); beside it the same for frames generated from a shuffled instruction, and the objects
  drawn per frame against the real rooms' (a room full of objects shows any object);
- words from the world: the instruction decoded from an expert episode's frames is exactly right (and names the
  right object); beside it chance and the most frequent instruction.

Seeds: the policy episodes use environment seeds from `HELDOUT_SEED` on, which `maskworld collect` (seeds from
SeedSequence hashes below 2**31, drawn per episode) does not reproduce by construction of the index (a different
seed space); instructions for "from words" come from the same held-out environments.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maskworld.data.held_out import world_split
from maskworld.envs import make_env
from maskworld.errors import UserError
from maskworld.eval.babyai_detect import count_objects, named_object, shows
from maskworld.eval.idm import PairSet, predict_actions, train_idm
from maskworld.eval.metrics import psnr_per_frame
from maskworld.eval.uncertainty import mean_ci
from maskworld.progress import Progress
from maskworld.world.unified import POLICY_TEMPERATURE

HELDOUT_SEED = 2**31 + 1000
HORIZONS = (1, 4, 8)
DELTA_T = 4  # ΔPSNR's horizon, as in Genie


def rollout_psnr(step_fn_factory, episodes: list[Any], horizons=HORIZONS, actions=None) -> dict[int, list[float]]:
    """{h: PSNR of the frame h steps after a real first frame, over episodes long enough}.

    step_fn_factory(first_frame) -> step(action) -> frame: a world's session, opened on the real frame.
    actions: per episode the actions to play instead of the logged ones (random actions: what ΔPSNR compares)."""
    out: dict[int, list[float]] = {h: [] for h in horizons}
    for k, ep in enumerate(episodes):
        step = step_fn_factory(ep.frames[0])
        acts = ep.actions if actions is None else actions[k]
        for t in range(1, max(horizons) + 1):
            frame = step(int(acts[t - 1]))
            if t in out:
                out[t].append(float(psnr_per_frame(frame[None], ep.frames[t][None])[0]))
    return out


def delta_psnr_per_episode(step_fn_factory, episodes: list[Any], num_actions: int, seed: int = 0, t: int = DELTA_T,
                           real: list[float] | None = None) -> np.ndarray:
    """(E,) per episode: PSNR after t steps of the logged actions minus after t random ones (same first frame)."""
    rng = np.random.default_rng(seed)
    rand = [rng.integers(0, num_actions, size=t) for _ in episodes]
    if real is None:
        real = rollout_psnr(step_fn_factory, episodes, (t,))[t]
    return np.asarray(real) - np.asarray(rollout_psnr(step_fn_factory, episodes, (t,), rand)[t])


def _delta_metrics(name: str, step_fn_factory, episodes, num_actions: int, seed: int, real) -> dict:
    """Genie's ΔPSNR at t = DELTA_T (about 0 for a world that ignores its actions) and its 95 % episode-bootstrap
    interval (one rollout per episode: runs of one command spread widely). real: the logged actions' PSNRs at t,
    where already rolled out."""
    d = delta_psnr_per_episode(step_fn_factory, episodes, num_actions, seed, real=real)
    return {f"dynamics.{name}.delta_psnr.{DELTA_T}": float(np.mean(d)),
            f"dynamics.{name}.delta_psnr.{DELTA_T}.ci95": mean_ci(d, np.arange(len(d)), seed)}


def _mean(x) -> float | None:
    return float(np.mean(x)) if len(x) else None


def eval_dynamics(world, store, ids: list[int], episodes: int, dedicated=None, seed: int = 0) -> dict:
    """Open-loop rollouts of the unified world (and a dedicated dynamics world) on the same held-out episodes."""
    eps = [store.load(i) for i in ids if store.length(i) >= max(HORIZONS)][:episodes]
    if not eps:
        raise UserError(f"no held-out episode has {max(HORIZONS)} steps; collect longer episodes (e.g. with explore)")
    m: dict[str, Any] = {"dynamics.episodes": len(eps)}

    def unified(frame0):
        s = world.session(frame=frame0, seed=seed)
        return lambda a: s.step(a)[0]

    res_unified = rollout_psnr(unified, eps)
    m.update(_delta_metrics("unified", unified, eps, world.num_actions, seed, res_unified[DELTA_T]))
    for name, res in (("unified", res_unified),
                      ("copy_last", {h: [float(psnr_per_frame(ep.frames[0][None], ep.frames[h][None])[0]) for ep in eps]
                                     for h in HORIZONS}),
                      ("tokenizer", {h: [float(psnr_per_frame(world.render_tokens(world.encode_frames(ep.frames[h][None])),
                                                              ep.frames[h][None])[0]) for ep in eps] for h in HORIZONS})):
        for h, v in res.items():
            m[f"dynamics.{name}.psnr.{h}"] = _mean(v)
    if dedicated is not None:
        for render in ("tokens", "composite"):
            dedicated.render = render

            def ded(frame0):
                s = dedicated.session(prompt=frame0, seed=seed)
                return lambda a: s.step(a)[0]

            res = rollout_psnr(ded, eps)
            for h, v in res.items():
                m[f"dynamics.dedicated_{render}.psnr.{h}"] = _mean(v)
            m.update(_delta_metrics(f"dedicated_{render}", ded, eps, dedicated.num_actions, seed, res[DELTA_T]))
    return m


class PixelIdm:
    """The pixel IDM of eval/idm.py behind the unified world's `infer_actions`, trained on real training pairs."""

    def __init__(self, store, train_ids: list[int], num_actions: int, steps: int, seed: int, device,
                 max_frames: int = 20_000, progress: bool = True):
        self.device = device
        pairs = PairSet((store.load(i) for i in train_ids), max_frames)  # a generator: loads only what it keeps
        self.model = train_idm(pairs, num_actions, steps, seed, device, progress=progress)

    def infer_actions(self, frames_NHWC: np.ndarray) -> np.ndarray:
        return predict_actions(self.model, frames_NHWC[:-1], frames_NHWC[1:], self.device)


def eval_inverse(world, store, ids: list[int], dedicated=None, pixel=None) -> dict:
    """Action accuracy of infer_actions on every held-out real transition; `changed`: transitions whose frame changed
    (an action without visible effect, e.g. walking into a wall, cannot be told from another)."""
    m: dict[str, Any] = {}
    for name, w in (("unified", world), ("dedicated", dedicated), ("pixel_idm", pixel)):
        if w is None:
            continue
        hit, n, hit_c, n_c = 0, 0, 0, 0
        for i in ids:
            ep = store.load(i)
            pred = w.infer_actions(ep.frames)
            ok = pred == ep.actions
            changed = np.abs(ep.frames[1:].astype(int) - ep.frames[:-1].astype(int)).reshape(len(ok), -1).max(1) > 0
            hit, n = hit + int(ok.sum()), n + len(ok)
            hit_c, n_c = hit_c + int(ok[changed].sum()), n_c + int(changed.sum())
        m[f"inverse.{name}.accuracy"] = hit / max(n, 1)
        m[f"inverse.{name}.accuracy_changed"] = hit_c / max(n_c, 1)
        m["inverse.transitions"], m["inverse.transitions_changed"] = n, n_c
    m["inverse.chance"] = 1.0 / world.cfg.num_actions
    return m


def _play(env, choose, max_steps: int) -> bool:
    """One real episode: choose(frame, mission, last action, reward, terminated) -> action. -> success."""
    for _ in range(max_steps):
        a = choose()
        frame, r, term, trunc, _ = env.step(a)
        choose.observe(frame, a, r, term)
        if term or trunc:
            return r > 0
    return False


class _WorldPolicy:
    """A unified world's policy on a real env: its session observes every real frame (F) and acts by mask (C)."""

    def __init__(self, world, frame, mission):
        self.s = world.session(text=mission, frame=frame)

    def __call__(self) -> int:
        return self.s.act()

    def observe(self, frame, a, r, term) -> None:
        self.s.observe(frame, a, r, term)


class _Random:
    def __init__(self, n: int, rng):
        self.n, self.rng = n, rng

    def __call__(self) -> int:
        return int(self.rng.integers(self.n))

    def observe(self, *a) -> None:
        pass


class _Expert:
    def __init__(self, env):
        self.e = env.expert()

    def __call__(self) -> int:
        return self.e.act()

    def observe(self, *a) -> None:
        pass


def eval_policy(world, env_id: str, view: str, size: int, episodes: int, dedicated=None, seed: int = 0,
                progress: bool = True) -> dict:
    """Success rates in the real environment over held-out seeds: the unified policy, the dedicated one, random, bot."""
    m: dict[str, Any] = {"policy.episodes": episodes, "policy.env": env_id, "policy.temperature": POLICY_TEMPERATURE}
    env = make_env(env_id, size, view=view)
    max_steps = int(getattr(env.env.unwrapped, "max_steps", 64))
    arms = {"unified": lambda f, mi: _WorldPolicy(world, f, mi), "random": None, "expert": None}
    if dedicated is not None:
        arms["dedicated"] = lambda f, mi: _WorldPolicy(dedicated, f, mi)
    try:
        with Progress(total=episodes * len(arms), desc="policy", unit="episodes", bar=progress) as bar:
            for name, make in arms.items():
                wins = 0
                rng = np.random.default_rng(seed)
                for i in range(episodes):
                    frame, _ = env.reset(seed=HELDOUT_SEED + i)
                    if name == "random":
                        chooser = _Random(env.num_actions, rng)
                    elif name == "expert":
                        chooser = _Expert(env)
                    else:
                        chooser = make(frame, env.mission)
                    wins += _play(env, chooser, max_steps)
                    bar.update(1)
                m[f"policy.{name}.success"] = wins / episodes
    finally:
        env.close()
    return m


def eval_words(world, env_id: str, view: str, size: int, n: int, seed: int = 0) -> dict:
    """World from words: does the first frame generated from a held-out instruction show the named object, against
    frames generated from a shuffled instruction (judged against the original instruction's object); with the
    world's classifier-free guidance, and without it beside. A room drawn full of objects shows any object by
    chance, so the objects each frame holds are counted beside the real first frames', and `shows_object_sparse`
    counts a hit only where the frame holds no more objects than the real room of that instruction."""
    env = make_env(env_id, size, view=view)
    try:
        missions, real = [], []
        for i in range(n):
            frame, _ = env.reset(seed=HELDOUT_SEED + 10_000 + i)
            missions.append(env.mission)
            real.append(frame)
    finally:
        env.close()
    room = _room_cells(env_id)
    perm = np.random.default_rng(seed).permutation(n)
    hit, hit_sparse, hit_plain, hit_shuf, named = 0, 0, 0, 0, 0
    drawn, in_real = [], []
    for i, text in enumerate(missions):
        obj = named_object(text)
        if obj is None:
            continue
        named += 1
        frame = world.render_tokens(world.from_words(text, seed=seed + i)[None])[0]
        shown = shows(frame, *obj, room=room)
        drawn.append(count_objects(frame, room))
        in_real.append(count_objects(real[i], room))
        hit += shown
        hit_sparse += shown and drawn[-1] <= in_real[-1]
        plain = world.render_tokens(world.from_words(text, seed=seed + i, guidance=0.0)[None])[0]
        hit_plain += shows(plain, *obj, room=room)
        other = world.render_tokens(world.from_words(missions[perm[i]], seed=seed + i)[None])[0]
        hit_shuf += shows(other, *obj, room=room)
    return {"from_words.instructions": named, "from_words.guidance": world.guidance,
            "from_words.shows_object": hit / max(named, 1), "from_words.unguided_shows_object": hit_plain / max(named, 1),
            "from_words.shuffled_shows_object": hit_shuf / max(named, 1),
            "from_words.shows_object_sparse": hit_sparse / max(named, 1),
            "from_words.objects_drawn": _mean(drawn), "from_words.objects_real": _mean(in_real)}


def _room_cells(env_id: str) -> int:
    import gymnasium as gym

    env = gym.make(env_id)
    try:
        return int(env.unwrapped.width)
    finally:
        env.close()


def eval_describe(world, store, ids: list[int], train_ids: list[int]) -> dict:
    """Words from the world on held-out expert episodes: exact instruction, and the right object named."""
    default = store.meta.get("policy")
    expert = [i for i in ids if (store.entry(i).get("policy") or default) == "bot" and store.entry(i).get("mission")]
    if not expert:
        return {"describe.episodes": 0}
    exact, obj_ok = 0, 0
    for i in expert:
        ep, truth = store.load(i), store.entry(i)["mission"]
        said = world.describe(ep.frames, ep.actions)
        exact += said == " ".join(truth.lower().split())
        obj_ok += named_object(said) == named_object(truth)
    train = [store.entry(i).get("mission") for i in train_ids if store.entry(i).get("mission")]
    values, counts = np.unique(train, return_counts=True)
    top = values[counts.argmax()]
    return {"describe.episodes": len(expert), "describe.exact": exact / len(expert),
            "describe.object": obj_ok / len(expert), "describe.chance": 1.0 / len(values),
            "describe.most_frequent": float(np.mean([store.entry(i)["mission"] == top for i in expert]))}


def evaluate_unified(world, store, episodes: int = 20, policy_episodes: int = 100, words: int = 100, seed: int = 0,
                     dedicated_dynamics=None, dedicated_idm=None, dedicated_policy=None, tasks=None,
                     progress: bool = True, idm_steps: int = 300) -> dict:
    """Every task (or those in `tasks`) on the store's held-out split and on held-out environment seeds.
    idm_steps: training steps of the pixel IDM beside the inverse dynamics (0: none)."""
    tasks = set(tasks or ("dynamics", "inverse", "policy", "from_words", "describe"))
    train_ids, val_ids, held = world_split(store, world.meta.model_card.get("split") or {})  # the world's, whatever --seed is
    if said := held.warning(str(store.path)):
        print(f"[eval] WARNING: {said}")
    env_id, view, size = store.meta.get("env_id"), store.meta.get("view") or "full", int(store.meta.get("size", 64))
    m: dict[str, Any] = {"meta.env_id": env_id, "meta.val_episodes": len(val_ids),
                         "meta.sampler_steps": world.sampler.steps, "meta.sampler_temperature": world.sampler.temperature,
                         **held.as_metrics()}
    if "dynamics" in tasks:
        m.update(eval_dynamics(world, store, val_ids, episodes, dedicated_dynamics, seed))
    if "inverse" in tasks:
        pixel = PixelIdm(store, train_ids, world.cfg.num_actions, idm_steps, seed, world.device,
                         progress=progress) if idm_steps > 0 else None
        m.update(eval_inverse(world, store, val_ids, dedicated_idm, pixel))
        m["inverse.pixel_idm.steps"] = idm_steps
    if "policy" in tasks:
        m.update(eval_policy(world, env_id, view, size, policy_episodes, dedicated_policy, seed, progress))
    if "from_words" in tasks:
        m.update(eval_words(world, env_id, view, size, words, seed))
    if "describe" in tasks:
        m.update(eval_describe(world, store, val_ids, train_ids))
    return m
