"""Tokens that hold where the picture holds (maskworld/data/hold.py): in the token cache, in prompts, in saved
sessions, and never across an episode's start."""

import numpy as np
import torch

from maskworld.data.hold import hold_tokens, still_cells
from maskworld.data.store import Episode, EpisodeStore, StoreWriter
from maskworld.data.token_cache import write_token_cache


def _frames(T: int, seed: int) -> np.ndarray:
    """T frames 8x8 (2x2 patches of 4 px): the top-left patch changes every frame, the rest never."""
    rng = np.random.default_rng(seed)
    f = np.repeat(rng.integers(0, 256, (1, 8, 8, 3), dtype=np.uint8), T, 0)
    f[:, :4, :4] = rng.integers(0, 256, (T, 4, 4, 3), dtype=np.uint8)
    return f


def test_still_cells_and_hold_tokens():
    f = _frames(4, 0)
    assert still_cells(f[0], f[1], 2).tolist() == [[False, True], [True, True]]
    f[2:, 7, 7, 2] ^= 1  # one channel of one pixel is a change (from frame 2 on)
    assert still_cells(f[1], f[2], 2).tolist() == [[False, True], [True, False]]
    churn = np.arange(16).reshape(4, 2, 2)  # a tokenizer whose every code changes every frame
    held = hold_tokens(churn, f)
    assert held[:, 0, 0].tolist() == [0, 4, 8, 12]  # the changing patch: its own codes
    assert held[:, 0, 1].tolist() == [1, 1, 1, 1] and held[:, 1, 0].tolist() == [2, 2, 2, 2]
    assert held[:, 1, 1].tolist() == [3, 3, 11, 11]  # changed at frame 2, then held from there
    starts = np.array([True, False, True, False])
    assert hold_tokens(churn, f, starts)[2].tolist() == churn[2].tolist()  # nothing held across a start
    assert (churn == np.arange(16).reshape(4, 2, 2)).all()  # the input is left alone


def test_token_cache_holds_within_episodes_only(tmp_path):
    meta = {"env_id": "test", "size": 8, "action_meanings": ["A", "B"], "num_actions": 2, "has_actions": True}
    with StoreWriter(tmp_path / "d", meta, episodes_per_shard=1) as w:
        for _ in range(2):  # two identical episodes: the second starts on the first one's last picture
            f = _frames(6, 1)
            w.add(Episode(frames=np.concatenate([f, f[-1:]]), actions=np.zeros(6, np.int64),
                          rewards=np.zeros(6, np.float32), terminated=np.eye(6, dtype=bool)[-1],
                          truncated=np.zeros(6, bool)))
    store = EpisodeStore(tmp_path / "d")
    count = iter(range(10**6))

    def encode(frames):  # churn: every frame gets new codes everywhere
        return np.stack([np.full((2, 2), next(count)) for _ in frames])

    plain = write_token_cache(str(tmp_path / "plain"), store, store.episode_ids, encode, batch_size=3, progress=False)
    held = write_token_cache(str(tmp_path / "held"), store, store.episode_ids, encode, batch_size=3, progress=False,
                             hold_still=True)
    assert held.held_still and not plain.held_still
    p, h = np.asarray(plain.tokens, np.int64), np.asarray(held.tokens, np.int64) - 14  # 14 frames later
    moving = np.ones(14, bool)
    moving[[6, 13]] = False  # each episode's last frame repeats the one before it
    assert (p[moving, 0, 0] == h[moving, 0, 0]).all() and len(np.unique(p[:, 1, 1])) == 14
    first, second = h[:7], h[7:]
    assert (first[:, 1, 1] == first[0, 1, 1]).all() and (second[:, 1, 1] == second[0, 1, 1]).all()
    assert second[0, 1, 1] != first[-1, 1, 1]  # the second episode starts from its own codes
    assert (first[6, 0, 0] == first[5, 0, 0]) and first[6, 0, 0] != p[6, 0, 0]  # repeated last frame: held too


def _world(hold: bool):
    from maskworld.models.dynamics import Dynamics, DynamicsConfig
    from maskworld.models.sampler import SamplerConfig
    from maskworld.models.tokenizer import Tokenizer, TokenizerConfig
    from maskworld.world.world import World, WorldMeta

    torch.manual_seed(0)
    tok = Tokenizer(TokenizerConfig(channels=16, num_res=1))
    dyn = Dynamics(DynamicsConfig(vocab_size=tok.cfg.vocab_size, grid=tok.cfg.grid, num_actions=2, d_model=32,
                                  n_layers=2, n_heads=2, window=4, hold_still=hold, prev_frame_prior=True))
    return World(tok, dyn, SamplerConfig(steps=2), WorldMeta(env_id="test", action_meanings=["A", "B"]))


def test_observed_frames_hold_still_tokens_and_resume_so(one_thread):
    from maskworld.world.session import Session

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    b = a.copy()
    b[8:16, 8:16] = 255 - b[8:16, 8:16]  # token cell (1, 1) changes, every other patch is the same
    w, plain = _world(True), _world(False)
    fresh = w.tokenizer.tokenize_uint8(torch.from_numpy(b)[None])[0].numpy()
    s = Session(w, seed=0)
    s.observe(a)
    before = s.tokens.astype(np.int64)
    saved = s.to_bytes()
    s.observe(b, 1)
    still = np.ones((8, 8), bool)
    still[1, 1] = False
    assert (s.tokens[still] == before[still]).all() and s.tokens[1, 1] == fresh[1, 1]
    assert not (fresh[still] == before[still]).all(), "the tokenizer must churn here, or the test shows nothing"
    r = Session.from_bytes(w, *saved)  # a resumed session holds from the same real frame
    r.observe(b, 1)
    assert (r.tokens == s.tokens).all()
    s.step(0)
    assert s.last_real is None  # an imagined frame: the next real one holds nothing
    p = Session(plain, seed=0)
    p.observe(a)
    p.observe(b, 1)
    assert (p.tokens == fresh).all() and p.last_real is None
