"""Event oversampling for dynamics training (`--event-share`, maskworld.data.event_sampler).

The toy store's reward (entering the top-left corner) is sparse and falls anywhere in an episode, so both
kinds of event clip occur: ending on the event, and an early event held by the episode's first window.
"""

import json

import numpy as np
import pytest

from maskworld.cli import main
from maskworld.data.event_sampler import DEFAULT_SHARE, EventClips, default_share, event_frames
from maskworld.data.store import EpisodeStore
from maskworld.data.token_cache import TokenCache, write_token_cache
from toy import make_toy_store

T = 4


def encode(frames):  # (N,64,64,3) -> (N,4,4): one token per 16px cell, its colour
    return frames[:, 8::16, 8::16].astype(np.int64).sum(-1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_toy_store(tmp_path_factory.mktemp("ev") / "data", episodes=20, T=24)


@pytest.fixture(scope="module")
def cache_path(data, tmp_path_factory):
    store = EpisodeStore(data)
    path = tmp_path_factory.mktemp("evc") / "cache"
    write_token_cache(str(path), store, store.episode_ids, encode, progress=False)
    return str(path)


def is_event(b):
    """(B,T) bool: frames reached by a reward or termination transition."""
    return (b["rewards_in"] != 0) | b["terminated_in"]


def test_share_zero_is_the_uniform_sampler(cache_path):
    cache = TokenCache(cache_path)
    old = cache.sample(64, T, np.random.default_rng(7))
    new = EventClips(cache, T, 0.0).sample(64, np.random.default_rng(7))
    assert old.keys() == new.keys()
    for k in old:
        np.testing.assert_array_equal(old[k], new[k], err_msg=k)


def test_batches_hold_events_at_the_share(cache_path):
    cache = TokenCache(cache_path)
    ends = event_frames(cache)
    assert 0 < len(ends) < 0.1 * cache.num_frames  # sparse, as the fix assumes
    rng = np.random.default_rng(0)
    base = is_event(cache.sample(4000, T, rng)).any(1).mean()
    for share in (0.25, 0.5):
        clips = EventClips(cache, T, share)
        b = clips.sample(4000, rng)
        hit = is_event(b).any(1).mean()
        expected = share + (1 - share) * base  # uniform clips may hold an event too
        assert abs(hit - expected) < 0.03, (share, hit, expected)
        # windows stay inside one episode
        assert ((b["rows"] >= b["first_rows"]) & (np.diff(b["rows"], axis=1) == 1).all(1)[:, None]).all()
    b = EventClips(cache, T, 1.0).sample(500, rng)
    ev = is_event(b)
    assert ev.any(1).all()
    late = b["starts"] > 0  # not the episode's first window: it ends on its event (early events sit inside the first)
    assert late.any() and ev[late, -1].all()


def test_odd_batches_keep_the_expected_share(cache_path):
    """A rank's share of a global batch can be tiny: the event count is rounded at random, exact on average."""
    cache = TokenCache(cache_path)
    clips, rng = EventClips(cache, T, 0.3), np.random.default_rng(1)
    n = sum(is_event(clips.sample(2, rng))[:, -1].sum() for _ in range(2000)) / 4000
    assert 0.27 < n < 0.36  # 0.3 forced, plus the few uniform clips that end on an event


def test_seeded_and_rank_caches(cache_path):
    cache = TokenCache(cache_path)
    a = EventClips(cache, T, 0.25).sample(32, np.random.default_rng(3))
    b = EventClips(cache, T, 0.25).sample(32, np.random.default_rng(3))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    r1 = TokenCache(cache_path, 1, 2)  # a rank's cache draws events from its own episodes only
    got = EventClips(r1, T, 1.0).sample(200, np.random.default_rng(0))
    assert set(got["episode_ids"]) <= set(r1.episode_ids) and is_event(got).any(1).all()


def test_no_events_means_uniform(cache_path):
    cache = TokenCache(cache_path)
    assert default_share(cache) == DEFAULT_SHARE
    cache.rewards_in = np.zeros_like(cache.rewards_in)
    cache.terminated_in = np.zeros_like(cache.terminated_in)
    assert default_share(cache) == 0.0
    old = cache.sample(16, T, np.random.default_rng(5))
    new = EventClips(cache, T, 0.5).sample(16, np.random.default_rng(5))
    np.testing.assert_array_equal(old["rows"], new["rows"])


@pytest.mark.parametrize("bad", ["-0.1", "1.5", "nan"])
def test_bad_share_exits_before_writing(data, tmp_path, capsys, bad):
    out = tmp_path / "w"
    args = ["train", "world", "--data", data, "--out", str(out), "--steps", "2", "--preset", "tiny", "--no-progress"]
    assert main(args + [f"--event-share={bad}"]) == 2
    assert "--event-share" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_train_world_records_the_share(data, tmp_path, capsys):
    out = tmp_path / "w"
    args = ["train", "world", "--data", data, "--out", str(out), "--steps", "3", "--preset", "tiny", "--no-progress"]
    assert main(args + ["--event-share", "0.5"]) == 0
    assert "event oversampling: 50%" in capsys.readouterr().out
    card = json.loads((out / "world.json").read_text())["meta"]["model_card"]
    assert card["dynamics_train"]["event_share"] == 0.5
