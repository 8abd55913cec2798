"""Episode store: round trip, resume, atomicity, corruption, fsspec, splits, merge."""

import errno
import os

import numpy as np
import pytest

from maskworld.data.store import Episode, EpisodeStore, StoreWriter, merge_stores, split_ids
from maskworld.errors import UserError

META = {"env_id": "test", "size": 8, "action_meanings": ["A", "B", "C"], "num_actions": 3, "has_actions": True,
        "info_keys": ["agent_pos"]}


def make_episode(T: int, tag: int = 0) -> Episode:
    frames = np.zeros((T + 1, 8, 8, 3), np.uint8)
    frames[:, :, :, 0] = np.arange(T + 1)[:, None, None] % 256
    frames[:, :, :, 1] = tag
    return Episode(frames=frames, actions=np.arange(T) % 3, rewards=np.arange(T, dtype=np.float32),
                   terminated=np.eye(1, T, T - 1, dtype=bool)[0], truncated=np.zeros(T, bool),
                   info={"agent_pos": np.stack([np.arange(T + 1)] * 2, axis=1)}).validate()


def write_store(path, lengths, **kw):
    with StoreWriter(path, META, **kw) as w:
        for i, T in enumerate(lengths):
            w.add(make_episode(T, tag=i), seed=i)
    return EpisodeStore(path)


def test_round_trip_and_shards(tmp_path):
    s = write_store(tmp_path / "d", [5, 9, 3, 7, 4], episodes_per_shard=2)
    assert s.episode_ids == [0, 1, 2, 3, 4] and len(s) == 5
    assert len(s.shards) == 3
    assert s.num_frames == sum(T + 1 for T in [5, 9, 3, 7, 4])
    assert s.meta["action_meanings"] == ["A", "B", "C"]
    for i, T in enumerate([5, 9, 3, 7, 4]):
        ep = s.load(i)
        ref = make_episode(T, tag=i)
        assert s.length(i) == T == len(ep)
        for name in ("frames", "actions", "rewards", "terminated", "truncated"):
            got = getattr(ep, name)
            assert got.dtype == getattr(ref, name).dtype and np.array_equal(got, getattr(ref, name))
        assert np.array_equal(ep.info["agent_pos"], ref.info["agent_pos"])
        assert s.entry(i)["seed"] == i
    assert s.verify() == []


def test_writer_resume_and_cleanup(tmp_path):
    d = tmp_path / "d"
    write_store(d, [3, 3], episodes_per_shard=1)
    # debris of a crash: a temp file and a shard the manifest never listed
    (d / "shards" / ".shard-000002.npz.tmp-1-2").write_bytes(b"half")
    (d / "shards" / "shard-000002.npz").write_bytes(b"unlisted")
    with StoreWriter(d, META, episodes_per_shard=1) as w:
        assert w.add(make_episode(4)) == 2
    s = EpisodeStore(d)
    assert s.episode_ids == [0, 1, 2] and s.length(2) == 4
    assert sorted(os.listdir(d / "shards")) == ["shard-000000.npz", "shard-000001.npz", "shard-000002.npz"]
    assert s.verify() == []
    with pytest.raises(UserError, match="already holds"):
        StoreWriter(d, META, resume=False)
    with pytest.raises(UserError, match="size"):
        StoreWriter(d, {**META, "size": 16})


def test_corrupt_shard_is_named_and_others_still_load(tmp_path):
    s = write_store(tmp_path / "d", [4, 4, 4, 4], episodes_per_shard=2)
    bad = tmp_path / "d" / s.shards[1]["file"]
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])  # truncated
    s = EpisodeStore(tmp_path / "d")
    problems = s.verify()
    assert problems and all("shard-000001.npz" in p for p in problems)
    assert any("episode 2" in p for p in problems) and any("episode 3" in p for p in problems)
    assert s.load(0).frames.shape == (5, 8, 8, 3) and len(s.load(1)) == 4
    with pytest.raises(UserError, match=r"shard-000001\.npz: episode 2"):
        s.load(2)
    # flipped bytes with the right size: checksum mismatch
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF
    bad.write_bytes(bytes(flipped))
    assert any("sha256" in p and "shard-000001.npz" in p for p in EpisodeStore(tmp_path / "d").verify())


def test_fsspec_memory_url(tmp_path):
    import fsspec

    write_store(tmp_path / "d", [3, 6], episodes_per_shard=1)
    fs = fsspec.filesystem("memory")
    for root, _, files in os.walk(tmp_path / "d"):
        for f in files:
            rel = os.path.relpath(os.path.join(root, f), tmp_path / "d")
            with fs.open(f"/mwstore/{rel}", "wb") as out:
                out.write(open(os.path.join(root, f), "rb").read())
    s = EpisodeStore("memory://mwstore")
    assert s.episode_ids == [0, 1] and s.length(1) == 6
    assert np.array_equal(s.load(1).frames, make_episode(6, tag=1).frames)
    assert s.verify() == []


def test_write_failure_leaves_no_partial_shard(tmp_path, monkeypatch):
    d = tmp_path / "d"
    write_store(d, [3], episodes_per_shard=1)
    before = (d / "manifest.json").read_bytes()

    def denied(fd):
        raise PermissionError(errno.EACCES, "Permission denied")

    w = StoreWriter(d, META, episodes_per_shard=10)
    w.add(make_episode(5))
    monkeypatch.setattr(os, "fsync", denied)
    with pytest.raises(UserError, match="permission denied"):
        w.flush()
    monkeypatch.undo()
    assert sorted(os.listdir(d / "shards")) == ["shard-000000.npz"]  # no temp file, no new shard
    assert (d / "manifest.json").read_bytes() == before
    assert EpisodeStore(d).verify() == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_dir(tmp_path):
    d = tmp_path / "d"
    write_store(d, [3], episodes_per_shard=1)
    os.chmod(d / "shards", 0o555)
    try:
        with pytest.raises(UserError, match="permission denied"):
            write_store(d, [3], episodes_per_shard=1)
        assert os.listdir(d / "shards") == ["shard-000000.npz"]
    finally:
        os.chmod(d / "shards", 0o755)


def test_split_is_deterministic_and_stable():
    tr, va = split_ids(list(range(100)), seed=0, val_fraction=0.1)
    assert split_ids(list(range(100)), seed=0, val_fraction=0.1) == (tr, va)
    assert 3 <= len(va) <= 25 and not set(tr) & set(va) and sorted(tr + va) == list(range(100))
    tr2, va2 = split_ids(list(range(200)), seed=0, val_fraction=0.1)
    assert [i for i in va2 if i < 100] == va  # adding episodes does not move old ones
    assert split_ids([0, 1, 2], val_fraction=0.0, min_val=1)[1] != []
    assert split_ids([7], min_val=1) == ([7], [])
    assert split_ids(list(range(100)), seed=1) != (tr, va)


def test_merge(tmp_path):
    write_store(tmp_path / "a", [3, 4], episodes_per_shard=1)
    with StoreWriter(tmp_path / "b", {**META, "policy": "bot"}, episodes_per_shard=1) as w:  # one policy for all
        w.add(make_episode(5))
    stats = merge_stores(str(tmp_path / "m"), [str(tmp_path / "a"), str(tmp_path / "b")])
    m = EpisodeStore(tmp_path / "m")
    assert [m.entry(i).get("policy") for i in m.episode_ids] == [None, None, "bot"]  # kept past the first meta
    assert stats["episodes"] == 3 and m.episode_ids == [0, 1, 2]
    assert [m.length(i) for i in m.episode_ids] == [3, 4, 5]
    assert np.array_equal(m.load(2).frames, make_episode(5, tag=0).frames)
    assert m.verify() == [] and m.entry(2)["orig_id"] == 0
    with StoreWriter(tmp_path / "c", {**META, "num_actions": 4, "action_meanings": list("ABCD")}) as w:
        w.add(make_episode(2))
    with pytest.raises(UserError, match="differs"):
        merge_stores(str(tmp_path / "m2"), [str(tmp_path / "a"), str(tmp_path / "c")])
    assert not (tmp_path / "m2").exists()


def test_not_a_store(tmp_path):
    with pytest.raises(UserError, match="not an episode store"):
        EpisodeStore(tmp_path)
    (tmp_path / "manifest.json").write_text("{oops")
    with pytest.raises(UserError, match="corrupt"):
        EpisodeStore(tmp_path)
