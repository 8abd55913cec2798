"""Where imagined rollouts start: real frames, from the world's training data and from the agent's real steps.

Both the actor-critic update and the Dyna loop draw starts here (see maskworld.agents.actor_critic,
"Start frames", and maskworld.agents.dyna). The world's model card says where its data lives and which
MiniGrid view it was collected with, so the agent's real env shows the frames the world was trained on.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from maskworld.data.store import EpisodeStore
from maskworld.envs import make_env
from maskworld.errors import UserError


def _card_data(world) -> dict:
    card = world.meta.model_card if isinstance(world.meta.model_card, dict) else {}
    return card.get("data", {}) or {}


def world_view(world) -> str:
    """The MiniGrid view ("partial" / "full") of the world's training data: the model card, else the data store's
    manifest, else `--view` in the recorded collect command; "partial" (collect's default) if none says."""
    data = _card_data(world)
    if data.get("view"):
        return str(data["view"])
    path = data.get("path")
    if path:
        try:
            view = json.loads((Path(path) / "manifest.json").read_text()).get("meta", {}).get("view")
            if view:
                return str(view)
        except (OSError, ValueError):
            pass
    m = re.search(r"--view[ =](\w+)", data.get("collect_command") or "")
    return m.group(1) if m else "partial"


def world_data_steps(world) -> int:
    """Real transitions in the world's training data (frames - episodes), 0 if the card does not say."""
    data = _card_data(world)
    return max(0, int(data.get("frames") or 0) - int(data.get("episodes") or 0))


def load_data_starts(world, data_path=None, max_frames: int = 8192, seed: int = 0) -> np.ndarray | None:
    """Real start frames (N,S,S,3) from the world's training data store (each episode's last frame left out:
    nothing follows it), or None (with a message) where the store cannot be read."""
    path = data_path or _card_data(world).get("path")
    if not path:
        print("[agent] the world's model card names no data store: start frames come from the agent's real steps only")
        return None
    try:
        store = EpisodeStore(path)
        ids = list(store.episode_ids)
    except Exception as e:  # noqa: BLE001  (whatever the reason, the agent still trains: on its own real frames)
        print(f"[agent] cannot read the world's data at {path} ({e}); pass --data: start frames come from real steps only")
        return None
    rng = np.random.default_rng(seed)
    lengths = np.array([store.length(i) for i in ids])  # transitions: frames 0..len-1 have a successor
    total = int(lengths.sum())
    take = set(rng.choice(total, min(max_frames, total), replace=False).tolist()) if total else set()
    frames, offset = [], 0
    for ep_id, n in zip(ids, lengths):
        want = [j - offset for j in range(offset, offset + n) if j in take]
        offset += n
        if want:
            ep = store.load(ep_id)
            frames.extend(np.asarray(ep.frames[j]) for j in want)
    return np.stack(frames) if frames else None


def env_kwargs(world) -> dict:
    """What the real env needs to be the world's: the number of agents of a world trained on joint actions."""
    agents = int(getattr(world.meta, "agents", 1))
    return {"agents": agents} if agents > 1 else {}


def real_env(world, env_id: str | None, seed: int, view: str | None = None):
    """The real env an agent of `world` acts in (default: the world's own), with the world's size and view."""
    env_id = env_id or world.meta.env_id
    env = make_env(env_id, size=world.meta.size, seed=seed, view=view or world_view(world), **env_kwargs(world))
    if env.num_actions != world.num_actions:
        env.close()
        raise UserError(f"{env_id} has {env.num_actions} actions but the world has {world.num_actions}; "
                        "train the agent against the env the world was learned from")
    return env



def sample_starts(frames, acts_in, batch: int, context: int, rng, usable=None):
    """B real start points; with context > 1, the frames (and actions) leading into each, within one episode.
    usable: indices of frames that may start a rollout (not an episode's last frame); default all."""
    idx = rng.integers(0, len(frames), batch) if usable is None else np.asarray(usable)[rng.integers(0, len(usable), batch)]
    if context <= 1:
        return np.stack([frames[i] for i in idx]), None
    firsts = []
    for i in idx:
        j = i
        while j > 0 and i - j + 1 < context and acts_in[j] >= 0:  # acts_in[j] < 0: frame j starts an episode
            j -= 1
        firsts.append(j)
    n = min(int(i) - j + 1 for i, j in zip(idx, firsts))  # one context length per batch
    starts = np.stack([np.stack(frames[i - n + 1 : i + 1]) for i in idx])
    acts = np.array([[-1] + list(acts_in[i - n + 2 : i + 1]) for i in idx])
    return starts, acts
