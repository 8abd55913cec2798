"""`--data-split rank`: which episodes each reader (rank x loader worker) owns, and that the
samplers built on a reader's part never leave it. One process; the torchrun run is in test_distributed.py.

Frames carry their episode id in the green channel, so every sampled frame or token names its episode.
"""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset

from maskworld.data.rank_split import Reader, cuts, reader_episodes, shard_files, store_order
from maskworld.data.store import Episode, EpisodeStore, StoreWriter
from maskworld.data.token_cache import write_token_cache
from maskworld.errors import UserError
from maskworld.train import dist
from maskworld.train.tokenizer_train import FramePool

LENGTHS = [12, 3, 20, 9, 15, 7, 30, 2, 11, 5, 16]  # transitions; shards of 3 episodes -> 4 shards


def episode(T: int, tag: int) -> Episode:
    frames = np.zeros((T + 1, 8, 8, 3), np.uint8)
    frames[..., 0] = np.arange(T + 1)[:, None, None]
    frames[..., 1] = tag
    return Episode(frames=frames, actions=np.arange(T) % 3, rewards=np.zeros(T, np.float32),
                   terminated=np.zeros(T, bool), truncated=np.eye(1, T, T - 1, dtype=bool)[0])


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("split") / "d"
    meta = {"env_id": "test", "size": 8, "action_meanings": list("ABC"), "num_actions": 3, "has_actions": True, "info_keys": []}
    with StoreWriter(path, meta, episodes_per_shard=3) as w:
        for tag, T in enumerate(LENGTHS):
            assert w.add(episode(T, tag)) == tag
    return EpisodeStore(path)


def parts(store, ids, count):
    return [reader_episodes(store, ids, Reader(i, count)) for i in range(count)]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 11])
def test_parts_are_disjoint_contiguous_and_balanced(store, count):
    ids = list(reversed(store.episode_ids))  # any order in, store order out
    ps = parts(store, ids, count)
    assert [i for p in ps for i in p] == store_order(store, ids) == store.episode_ids  # disjoint, cover, contiguous
    assert all(ps)  # every reader has data
    frames = [sum(store.length(i) + 1 for i in p) for p in ps]
    share = store.num_frames / count
    longest = max(LENGTHS) + 1
    assert max(abs(f - share) for f in frames) <= longest  # off by less than one episode
    # Each cut splits at most one shard between two readers: about 1/count of the files each.
    opened = [shard_files(store, p) for p in ps]
    assert sum(len(o) for o in opened) <= len(store.shards) + count - 1


def test_cuts_keep_every_run_non_empty():
    assert cuts(np.array([100, 1, 1, 1]), 3) == [0, 1, 2, 4]  # one huge episode cannot starve the others
    assert cuts(np.array([5] * 4), 4) == [0, 1, 2, 3, 4]
    assert cuts(np.array([10, 10, 10, 10]), 2) == [0, 2, 4]


def test_readers_are_rank_major_and_checked():
    got = [Reader.of(r, 2, w, 3) for r in range(2) for w in range(3)]
    assert [g.index for g in got] == list(range(6)) and {g.count for g in got} == {6}
    with pytest.raises(ValueError):
        Reader(2, 2)


def test_too_few_episodes_is_a_clear_error(store):
    with pytest.raises(UserError, match="--data-split global"):
        reader_episodes(store, [0, 1], Reader(0, 3))
    with pytest.raises(UserError, match="not in"):
        store_order(store, [0, 99])


def test_samplers_stay_in_their_part(store, tmp_path):
    """The frame pool (tokenizer) and the token cache (dynamics) of a reader only ever yield its episodes."""
    rng = np.random.default_rng(0)
    ps = parts(store, store.episode_ids, 3)
    for r, own in enumerate(ps):
        pool = FramePool(store, own, seed=r)
        assert pool.episode_ids == own and pool.shard_files == shard_files(store, own)
        tags = set(pool.sample(256, rng)[:, 0, 0, 1].tolist())
        assert tags <= set(own) and len(tags) > 1

        def encode(frames):  # one token per frame: the episode tag
            return frames[:, :1, :1, 1].astype(np.int64)

        cache = write_token_cache(str(tmp_path / f"cache.rank-{r}-of-3"), store, own, encode, progress=False)
        b = cache.sample(128, 3, rng)
        assert set(b["episode_ids"].tolist()) <= set(own)
        assert (b["tokens"][:, :, 0, 0] == b["episode_ids"][:, None]).all()


class _EpisodesOfWorker(IterableDataset):
    """What a DataLoader-based reader would do: split this rank's data further by loader worker."""

    def __init__(self, store, rank, world):
        self.path, self.rank, self.world = store.path, rank, world

    def __iter__(self):
        store = EpisodeStore(self.path)
        reader = Reader.current(self.rank, self.world)
        for i in reader_episodes(store, store.episode_ids, reader):
            yield torch.tensor([reader.index, i])


def test_loader_workers_split_a_rank_further(store):
    seen = {}
    for rank in range(2):
        loader = DataLoader(_EpisodesOfWorker(store, rank, 2), num_workers=2, batch_size=None)
        for reader, ep in (t.tolist() for t in loader):
            assert ep not in seen  # no episode read twice across ranks and workers
            seen[ep] = reader
    assert sorted(seen) == store.episode_ids and set(seen.values()) == {0, 1, 2, 3}
    assert all(seen[a] <= seen[b] for a, b in zip(store.episode_ids, store.episode_ids[1:]))  # rank-major runs


def test_dist_helpers_in_one_process():
    """One process: the rank split is the global one (nothing changes), and it is reset on shutdown."""
    dist.init(torch.device("cpu"), "rank")
    try:
        assert dist.data_split() == "rank" and not dist.own_data()
        assert dist.part() is None and dist.rows_to_draw(8) == 8
        assert dist.own_episodes(None, [3, 1, 2]) == [3, 1, 2]
    finally:
        dist.shutdown()
    assert dist.data_split() == "global"
    with pytest.raises(UserError, match="global, rank"):
        dist.init(torch.device("cpu"), "node")


def test_seed_step_is_a_pure_function_of_stream_and_step():
    """What makes `--resume` exact under the rank split: a step's draws do not depend on the history."""
    rng = np.random.default_rng(0)

    def draws(step):
        dist.seed_step(rng, stream=1234, step=step)
        return rng.integers(0, 1 << 30, 4).tolist(), torch.rand(3).tolist()

    a = draws(7)
    draws(8), rng.random(100), torch.rand(100)  # any history in between
    assert draws(7) == a and draws(8) != a
