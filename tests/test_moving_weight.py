"""Moved cells (data/motion.py) and the token loss weighted on them (`--moving-weight`).

The store's frames are black with one white 2x2 "ball" that moves one cell right every step, so exactly the cell
it leaves and the cell it enters change: the moved mask must hold those two cells and nothing else.
"""

import os

import numpy as np
import torch
import torch.nn.functional as F

from maskworld.data.motion import TOLERANCE, moved_cells
from maskworld.data.store import Episode, EpisodeStore, StoreWriter
from maskworld.data.token_cache import MOVED, TokenCache, add_moved, write_token_cache
from maskworld.models.dynamics import Dynamics, DynamicsConfig
from maskworld.train import dist
from maskworld.train.dynamics_train import dynamics_losses, make_batch, mask_tokens

G, PX = 4, 4  # 4x4 cells of 4x4 pixels


def ball_frames(T: int, row: int) -> np.ndarray:
    f = np.zeros((T, G * PX, G * PX, 3), np.uint8)
    for t in range(T):
        c = t % G
        f[t, row * PX:row * PX + 2, c * PX:c * PX + 2] = 255
    return f


def test_moved_cells_marks_where_pixels_changed():
    f = ball_frames(4, row=1)
    m = moved_cells(f, (G, G))
    assert m.shape == (4, G, G) and not m[0].any()  # an episode's first frame has nothing before it
    for t in range(1, 4):
        assert sorted(map(tuple, np.argwhere(m[t]))) == [(1, t - 1), (1, t)]
    small = f.copy()
    small[2] = small[1]
    small[2, 0, 0] = TOLERANCE  # a change within the tolerance (noise) is no move
    assert not moved_cells(small[:3], (G, G))[2].any()
    odd = np.zeros((2, 10, 10, 3), np.uint8)
    odd[1, 9, 9] = 255  # grid 3 over 10 px: borders at 0, 3, 6
    assert [tuple(x) for x in np.argwhere(moved_cells(odd, (3, 3))[1])] == [(2, 2)]


def _store(path):
    meta = {"env_id": "test", "size": G * PX, "action_meanings": list("AB"), "num_actions": 2, "has_actions": True}
    with StoreWriter(path, meta) as w:
        for row, T in ((0, 5), (2, 7)):
            frames = ball_frames(T + 1, row)
            w.add(Episode(frames=frames, actions=np.zeros(T, np.int64), rewards=np.zeros(T, np.float32),
                          terminated=np.zeros(T, bool), truncated=np.eye(T, dtype=bool)[-1], info={}))
    return EpisodeStore(path)


def test_token_cache_keeps_moved_cells_and_older_caches_get_them(tmp_path):
    store = _store(tmp_path / "d")
    encode = lambda fr: (fr[:, ::PX, ::PX, 0] > 0).astype(np.uint16)  # noqa: E731 (N,4,4): the ball's cell
    cache = write_token_cache(tmp_path / "c", store, [0, 1], encode, progress=False)
    want = np.concatenate([moved_cells(store.load(i).frames, (G, G)) for i in (0, 1)])
    assert cache.moved is not None and np.array_equal(np.asarray(cache.moved) > 0, want)
    os.remove(tmp_path / "c" / MOVED)  # a cache from before moved cells were kept
    assert TokenCache(tmp_path / "c").moved is None
    add_moved(tmp_path / "c", store)
    assert np.array_equal(np.asarray(TokenCache(tmp_path / "c").moved) > 0, want)
    assert sorted(os.listdir(tmp_path / "c")) == ["index.npz", "meta.json", MOVED, "tokens.u16"]  # no temp file left
    tok, *_, extra = make_batch(cache, 3, 4, np.random.default_rng(0), 2, "cpu", moved=True)
    assert extra["moved"].shape == tok.shape and extra["moved"].dtype == torch.bool
    assert "moved" not in make_batch(cache, 3, 4, np.random.default_rng(0), 2, "cpu")[-1]


@torch.no_grad()
def _losses(model, tok, act, moved, weight, part=None):
    z = torch.zeros(act.shape)
    return dynamics_losses(model, tok, act, z, z, corrupt_max=0.0, gen=torch.Generator().manual_seed(3), part=part,
                           extra={"moved": moved}, moving_weight=weight)[0]


def test_moving_weight_is_a_weighted_mean_over_masked_tokens():
    torch.manual_seed(0)
    cfg = DynamicsConfig(vocab_size=16, num_actions=2, grid=G, d_model=32, n_layers=1, n_heads=2, window=3)
    model = Dynamics(cfg).eval()
    tok = torch.randint(0, 16, (4, 3, G * G))
    act = torch.randint(0, 2, (4, 3))
    moved = torch.rand(tok.shape) < 0.2
    plain = _losses(model, tok, act, moved, 1.0)
    # the same masks as inside dynamics_losses (same generator), then the mean and the weighted mean by hand
    masked, m = mask_tokens(tok, cfg.mask_id, torch.Generator().manual_seed(3))
    with torch.no_grad():
        ce = F.cross_entropy(model(tok, masked, act)[0][m], tok[m], reduction="none")
    w = torch.where(moved[m], 5.0, 1.0)
    torch.testing.assert_close(plain, ce.mean(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(_losses(model, tok, act, moved, 5.0), (ce * w).sum() / w.sum(), rtol=1e-5, atol=1e-6)
    assert abs(float(_losses(model, tok, act, moved, 5.0)) - float(plain)) > 1e-4  # the weight does something
    # two ranks' shares (each normalised by the global weight, times the world size) average to the one-process loss
    halves = [_losses(model, tok, act, moved, 5.0, part=dist.Part(r, 2)) for r in (0, 1)]
    torch.testing.assert_close((halves[0] + halves[1]) / 2, (ce * w).sum() / w.sum(), rtol=1e-5, atol=1e-6)
