"""The held-out rollout probe of dynamics training: PSNR at h8 beside copy-last and the tokenizer's ceiling."""

import numpy as np

from maskworld.data.store import EpisodeStore
from maskworld.train.heldout_probe import HeldoutProbe, psnr
from toy import make_toy_store


def test_probe_reports_world_copy_last_and_ceiling(tmp_path):
    from conftest import _tiny_parts

    store = EpisodeStore(make_toy_store(tmp_path / "d", episodes=6, T=16))
    tok, dyn = _tiny_parts(4, prev_frame_prior=True)
    probe = HeldoutProbe(tok, store, store.episode_ids, store.meta, num_actions=4, episodes=3)
    dyn.train()
    m = probe(dyn)
    assert set(m) == {"h8_psnr", "h8_copy_last", "h8_tokenizer"}
    assert all(np.isfinite(v) and 0 < v < 100 for v in m.values())
    assert probe(dyn) == m  # fixed clips and seeds: comparable from one evaluation to the next
    assert not HeldoutProbe(tok, store, store.episode_ids, store.meta, num_actions=4, horizon=100)  # no episode that long
    # Few long episodes: several non-overlapping clips in each, not one lucky start per episode.
    long = EpisodeStore(make_toy_store(tmp_path / "long", episodes=2, T=80))
    p2 = HeldoutProbe(tok, long, long.episode_ids[:1], long.meta, num_actions=4, windows=16)
    assert len(p2.clips) == 80 // 12  # 6 clips of context 4 + horizon 8 fit in one 80-frame episode


def test_psnr():
    a = np.zeros((2, 4, 4, 3), np.uint8)
    b = a.copy()
    b[:, 0, 0, 0] = 255
    assert psnr(a, a) > 90 and abs(psnr(a, b) - 10 * np.log10(48)) < 1e-6
