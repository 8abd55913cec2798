"""Clip sampling and the token cache: the "action precedes its frame" alignment, boundaries, atomicity.

Frames carry their own coordinates: red = t (index in the episode), green = episode tag. Actions
are a[t] = (3 t + 1) mod A and rewards r[t] = t + 0.5, so the action INTO frame t must be
a[t-1] = (3 (t-1) + 1) mod A: an off-by-one (a[t] instead of a[t-1]) gives (3 t + 1) mod A and fails.
"""

import os

import numpy as np
import pytest

from maskworld.data.clips import ClipSampler
from maskworld.data.store import Episode, EpisodeStore, StoreWriter
from maskworld.data.token_cache import TokenCache, write_token_cache
from maskworld.errors import UserError

A = 5
LENGTHS = [12, 3, 20, 9, 15]  # transitions; episode 1 has 4 frames only


def episode(T, tag):
    frames = np.zeros((T + 1, 8, 8, 3), np.uint8)
    frames[..., 0] = np.arange(T + 1)[:, None, None]
    frames[..., 1] = tag
    term = np.zeros(T, bool)
    term[-1] = tag % 2 == 0
    trunc = np.zeros(T, bool)
    trunc[-1] = not term[-1]
    return Episode(frames=frames, actions=(3 * np.arange(T) + 1) % A, rewards=np.arange(T, dtype=np.float32) + 0.5,
                   terminated=term, truncated=trunc, info={"agent_pos": np.zeros((T + 1, 2), np.int64)})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("clips") / "d"
    meta = {"env_id": "test", "size": 8, "action_meanings": list("ABCDE"), "num_actions": A, "has_actions": True,
            "info_keys": ["agent_pos"]}
    with StoreWriter(path, meta, episodes_per_shard=2) as w:
        for tag, T in enumerate(LENGTHS):
            w.add(episode(T, tag))
    return EpisodeStore(path)


def check_alignment(frames_t, actions_in, rewards_in, terminated_in, tag, length):
    """frames_t: (T,) frame indices inside the episode; the rest (T,) for one window."""
    assert np.all(np.diff(frames_t) == 1)  # consecutive, so no boundary crossed
    for t_ep, a, r, d in zip(frames_t, actions_in, rewards_in, terminated_in):
        if t_ep == 0:
            assert a == A and r == 0 and not d  # NULL action into the reset frame
        else:
            assert a == (3 * (t_ep - 1) + 1) % A
            assert r == t_ep - 0.5
            assert d == (t_ep == length and tag % 2 == 0)


def test_clip_sampler_alignment_and_boundaries(store):
    T = 6
    s = ClipSampler(store, store.episode_ids, T, seed=0)
    assert s.skipped == 1 and 1 not in s.episode_ids  # 4 frames < 6: skipped, not padded
    b = s.sample(64)
    assert b["frames"].shape == (64, T, 8, 8, 3) and b["frames"].dtype == np.uint8
    assert b["actions_in"].shape == (64, T) and b["actions_in"].dtype == np.int64
    assert b["rewards_in"].dtype == np.float32 and b["terminated_in"].dtype == bool
    assert b["info"]["agent_pos"].shape == (64, T, 2)
    for k in range(64):
        tags = b["frames"][k, :, 0, 0, 1]
        assert (tags == tags[0]).all() and tags[0] == b["episode_ids"][k]
        frames_t = b["frames"][k, :, 0, 0, 0].astype(int)
        assert frames_t[0] == b["starts"][k]
        check_alignment(frames_t, b["actions_in"][k], b["rewards_in"][k], b["terminated_in"][k],
                        tags[0], LENGTHS[tags[0]])
    # every window is reachable, including the first (NULL action) and the last one
    starts = {(int(e), int(st)) for e, st in zip(*[s.sample(2000)[k] for k in ("episode_ids", "starts")])}
    assert (0, 0) in starts and (2, LENGTHS[2] + 1 - T) in starts
    assert len(s) == sum(L + 1 - T + 1 for L in LENGTHS if L + 1 >= T)
    with pytest.raises(UserError, match="no episode"):
        ClipSampler(store, [1], T)


def test_token_cache(store, tmp_path):
    calls = []

    def encode(frames):  # (N,8,8,3) -> (N,2,2): token = frame index * 10 + episode tag
        calls.append(len(frames))
        tok = frames[:, ::4, ::4, 0].astype(np.int64) * 10 + frames[:, ::4, ::4, 1]
        return tok

    path = tmp_path / "cache"
    cache = write_token_cache(str(path), store, store.episode_ids, encode, batch_size=16, progress=False)
    N = sum(L + 1 for L in LENGTHS)
    assert cache.num_frames == N and cache.grid == (2, 2) and cache.tokens.shape == (N, 2, 2)
    assert isinstance(cache.tokens, np.memmap) and cache.tokens.dtype == np.uint16
    assert max(calls) <= 16 + max(LENGTHS) and sum(calls) == N
    assert sorted(os.listdir(path)) == ["index.npz", "meta.json", "tokens.u16"]
    assert not [n for n in os.listdir(tmp_path) if "tmp" in n]

    cache = TokenCache(str(path))
    rng = np.random.default_rng(0)
    b = cache.sample(32, 5, rng)
    assert b["tokens"].shape == (32, 5, 2, 2) and b["tokens"].dtype == np.int64
    for k in range(32):
        tok = b["tokens"][k, :, 0, 0]
        tag = tok % 10
        assert (tag == tag[0]).all() and tag[0] == b["episode_ids"][k]
        check_alignment(tok // 10, b["actions_in"][k], b["rewards_in"][k], b["terminated_in"][k],
                        tag[0], LENGTHS[tag[0]])
    ep = cache.episode(2)
    assert ep["episode_id"] == 2 and ep["tokens"].shape == (LENGTHS[2] + 1, 2, 2)
    assert ep["actions_in"][0] == A and ep["actions_in"][1] == 1
    # DDP partition: disjoint ranks covering everything
    r0, r1 = TokenCache(str(path), 0, 2), TokenCache(str(path), 1, 2)
    assert set(r0.episode_ids) | set(r1.episode_ids) == set(store.episode_ids)
    assert not set(r0.episode_ids) & set(r1.episode_ids)
    assert r0.num_frames + r1.num_frames == N
    assert set(r1.sample(50, 3, rng)["episode_ids"]) <= set(r1.episode_ids)
    with pytest.raises(UserError, match="already exists"):
        write_token_cache(str(path), store, store.episode_ids, encode, progress=False)


def test_token_cache_failure_leaves_nothing(store, tmp_path):
    def bad(frames):
        if bad.n > 1:
            raise RuntimeError("encoder crashed")
        bad.n += 1
        return np.zeros((len(frames), 2, 2), np.int64)

    bad.n = 0
    with pytest.raises(RuntimeError):
        write_token_cache(str(tmp_path / "c"), store, store.episode_ids, bad, batch_size=8, progress=False)
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="65536"):
        write_token_cache(str(tmp_path / "c"), store, [0], lambda f: np.full((len(f), 2, 2), 70000), progress=False)
    assert os.listdir(tmp_path) == []
