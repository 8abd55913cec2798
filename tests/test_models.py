"""G's parts: FSQ, tokenizer, dynamics (two-stream training == cached inference), sampler."""

import pytest
import torch

from maskworld.models.dynamics import Dynamics, DynamicsConfig
from maskworld.models.fsq import FSQ
from maskworld.models.kv_cache import KVCache
from maskworld.models.sampler import (SamplerConfig, decode_autoregressive, decode_frame, decode_nocache, maskgit_fill,
                                      num_masked_after)
from maskworld.models.tokenizer import Tokenizer, TokenizerConfig


def test_fsq_codes_roundtrip_and_cover_codebook():
    f = FSQ([8, 5, 5, 5])
    q, codes = f(torch.randn(20000, 4))
    assert codes.min() >= 0 and codes.max() < 1000
    assert torch.allclose(f.indices_to_latent(codes), q)
    assert len(codes.unique()) > 900  # every code reachable: no collapse by construction


def test_tokenizer_shapes_and_uint8_path():
    tok = Tokenizer(TokenizerConfig(channels=16, num_res=1))
    frames = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    codes = tok.tokenize_uint8(frames)
    assert codes.shape == (2, 8, 8)
    out = tok.render_uint8(codes)
    assert out.shape == (2, 64, 64, 3) and out.dtype == torch.uint8
    assert TokenizerConfig(downsample=0).grid == 16


@pytest.mark.parametrize("grid", [8, 16])
def test_local_encoder_reads_each_token_from_its_own_patch(grid):
    """Redrawing one patch changes no other token under the local encoder; the conv encoder's codes move with their
    neighbours and the frame's statistics (so the check can fail)."""
    torch.manual_seed(0)
    x = torch.rand(4, 3, 64, 64)
    p = 64 // grid
    y = x.clone()
    y[:, :, p:2 * p, p:2 * p] = torch.rand(4, 3, p, p)  # the patch of token (1, 1)
    elsewhere = torch.ones(grid, grid, dtype=torch.bool)
    elsewhere[1, 1] = False
    changed = {}
    for enc in ("local", "conv"):
        tok = Tokenizer(TokenizerConfig(encoder=enc, channels=16, num_res=1, downsample=1 if grid == 8 else 0)).eval()
        with torch.no_grad():
            a, b = tok.encode(x)[1], tok.encode(y)[1]
        assert a.shape == (4, grid, grid)
        changed[enc] = (a != b)[:, elsewhere].float().mean().item()
    assert changed["local"] == 0.0
    assert changed["conv"] > 0.01
    assert "encoder" in TokenizerConfig.__dataclass_fields__ and TokenizerConfig().encoder == "conv"  # older worlds

def _commit(m, cache, tokens, actions, pos):
    """Commit one frame of every row (what the stepping engine does) -> its FrameHeads."""
    view = cache.view()
    heads = m.commit(tokens, actions, pos, view)
    cache.store(view, None, pos)
    return heads


def _model(window=4, spatial_rope=False, local_radius=0):
    torch.manual_seed(0)
    return Dynamics(DynamicsConfig(vocab_size=50, num_actions=3, grid=4, d_model=32, n_layers=2, n_heads=2, window=window,
                                   spatial_rope=spatial_rope, local_radius=local_radius)).eval()


@pytest.mark.parametrize("spatial_rope,local_radius", [(False, 0), (True, 0), (False, 1)])
@torch.no_grad()
def test_cached_inference_equals_training_pass(spatial_rope, local_radius):
    """The KV-cache path computes exactly what the two-stream training pass computes (rotary positions over the
    frame alone, or over frame, row and column; cells reading the whole window or only their neighbourhood)."""
    m = _model(spatial_rope=spatial_rope, local_radius=local_radius)
    B, T, N = 2, 4, 16
    tok = torch.randint(0, 50, (B, T, N))
    act = torch.randint(0, 3, (B, T))
    masked = tok.clone()
    masked[:, :, ::3] = m.cfg.mask_id
    logits, r, d = m(tok, masked, act)
    cache = KVCache.for_model(m.cfg, B)
    for t in range(T - 1):
        h = _commit(m, cache, tok[:, t], act[:, t], torch.full((B,), 50 + t))  # any offset: RoPE is relative
        r_t, d_t = h.reward, h.term
        assert torch.allclose(r_t, r[:, t], atol=1e-4) and torch.allclose(d_t, d[:, t], atol=1e-4)
    cached = m.predict_logits(masked[:, T - 1], act[:, T - 1], torch.full((B,), 50 + T - 1), cache.view())
    assert torch.allclose(cached, logits[:, T - 1], atol=1e-4)
    nocache = m.full_pass_logits(tok[:, : T - 1], act[:, : T - 1], masked[:, T - 1], act[:, T - 1])
    assert torch.allclose(nocache, logits[:, T - 1], atol=1e-4)


def test_axial_rope_scores_depend_on_the_cells_offset():
    """With spatial_rope a query and key of the same content score by their (frame, row, column) offset alone: the
    same offset anywhere on the grid gives the same score, another offset another one (frame-only RoPE: every cell
    of a frame alike)."""
    from maskworld.models.attention import apply_rope, axial_angles, rope_angles
    G, S, hd = 4, 17, 12
    frame = torch.tensor([[0] * S + [1] * S])  # (1, 2S): two frames
    torch.manual_seed(0)
    q, k = torch.randn(hd), torch.randn(hd)

    def score(angles, i, j):  # query at token i, key at token j
        cos, sin = angles
        x = torch.stack([q, k])[None, None]  # (1, 1, 2, hd)
        qi = apply_rope(x[:, :, :1], cos[:, i:i + 1], sin[:, i:i + 1])
        kj = apply_rope(x[:, :, 1:], cos[:, j:j + 1], sin[:, j:j + 1])
        return float((qi * kj).sum())

    def tok(f, r, c):
        return f * S + 1 + r * G + c

    ax = axial_angles(frame, S, G, hd, 100.0)
    assert abs(score(ax, tok(1, 1, 1), tok(0, 1, 2)) - score(ax, tok(1, 2, 2), tok(0, 2, 3))) < 1e-4  # same offset
    assert abs(score(ax, tok(1, 1, 1), tok(0, 1, 2)) - score(ax, tok(1, 1, 1), tok(0, 3, 0))) > 1e-3  # another
    flat = rope_angles(frame, hd, 100.0)
    assert abs(score(flat, tok(1, 1, 1), tok(0, 1, 2)) - score(flat, tok(1, 1, 1), tok(0, 3, 0))) < 1e-4


@torch.no_grad()
def test_local_cells_read_only_their_neighbourhood():
    """With local_radius 1 a cell's prediction does not move when a context cell two or more cells away changes (in
    any frame, through every layer), nor when another cell of the frame being decoded is revealed; it moves when a
    neighbour changes. The same model reading everything moves in all three cases (so the check can fail)."""
    B, T, G = 1, 4, 4
    torch.manual_seed(1)
    tok = torch.randint(0, 50, (B, T, G * G))
    act = torch.randint(0, 3, (B, T))
    masked = tok.clone()
    masked[:, -1] = 50  # the last frame fully hidden

    def cell(r, c):
        return r * G + c

    def pred(model, t, m):
        return model(t, m, act)[0][0, -1, cell(0, 0)]

    for radius, far_moves in ((1, False), (0, True)):
        m = _model(local_radius=radius)
        m.cfg.prev_frame_prior = False
        base = pred(m, tok, masked)
        far = tok.clone()
        far[:, :-1, cell(2, 2)] = (far[:, :-1, cell(2, 2)] + 1) % 50  # two cells away, every context frame
        revealed = masked.clone()
        revealed[:, -1, cell(0, 1)] = 7  # a neighbour of the same frame decoded
        near = tok.clone()
        near[:, -2, cell(1, 1)] = (near[:, -2, cell(1, 1)] + 1) % 50  # a neighbour in the frame before
        assert torch.allclose(pred(m, far, masked), base, atol=1e-6) != far_moves
        assert torch.allclose(pred(m, tok, revealed), base, atol=1e-6) != far_moves
        assert not torch.allclose(pred(m, near, masked), base, atol=1e-6)


@torch.no_grad()
def test_frame_causal_no_future_leak():
    m = _model()
    tok = torch.randint(0, 50, (1, 4, 16))
    act = torch.randint(0, 3, (1, 4))
    masked = torch.full_like(tok, m.cfg.mask_id)
    a, _, _ = m(tok, masked, act)
    tok2 = tok.clone()
    tok2[:, 3] = (tok2[:, 3] + 1) % 50  # change the last frame only
    b, _, _ = m(tok2, masked, act)
    assert torch.allclose(a[:, :3], b[:, :3], atol=1e-5)  # earlier predictions unaffected
    act2 = act.clone()
    act2[:, 2] = (act2[:, 2] + 1) % 3
    c, _, _ = m(tok, masked, act2)
    assert not torch.allclose(a[:, 2], c[:, 2])  # the action into a frame conditions its prediction


@torch.no_grad()
def test_kv_cache_slides():
    m = _model(window=3)
    cache = KVCache.for_model(m.cfg, 1)
    for t in range(6):
        _commit(m, cache, torch.randint(0, 50, (1, 16)), torch.tensor([0]), torch.tensor([t]))
    assert cache.k[0].shape[2] == 3 * m.cfg.frame_len  # window - 1 frames kept + the scratch slot
    assert int(cache.valid[0].sum()) == 2


def test_cosine_schedule():
    assert num_masked_after(0, 1, 64) == 0  # K = 1 decodes all at once
    seq = [num_masked_after(k, 8, 64) for k in range(8)]
    assert seq == sorted(seq, reverse=True) and seq[-1] == 0


def test_fill_keeps_given_tokens_and_follows_each_row_s_schedule():
    """MaskGIT inpainting: the given tokens are read and kept; each row's unknown ones are unmasked on the cosine
    schedule of their own count (row 0: 16 unknown, row 1: 5, row 2: none)."""
    V, mask_id, K = 7, 7, 4
    given = torch.randint(0, V, (3, 16))
    unknown = torch.zeros(3, 16, dtype=torch.bool)
    unknown[0] = True
    unknown[1, [1, 4, 6, 9, 15]] = True
    seen = []

    def predict(tokens):
        seen.append((tokens == mask_id).sum(-1).tolist())
        assert torch.equal(tokens[~unknown], given[~unknown])  # the given tokens are what every pass reads
        return torch.randn(tokens.shape[0], tokens.shape[1], V)

    gens = [torch.Generator().manual_seed(s) for s in range(3)]
    out = maskgit_fill(predict, given, unknown, mask_id, SamplerConfig(steps=K), gens)
    assert torch.equal(out[~unknown], given[~unknown]) and (out < V).all()
    assert seen[0] == [16, 5, 0]
    assert [row[0] for row in seen[1:]] == [num_masked_after(k, K, 16) for k in range(K - 1)]
    assert [row[1] for row in seen[1:]] == [num_masked_after(k, K, 5) for k in range(K - 1)]


@torch.no_grad()
@pytest.mark.parametrize("K", [1, 2, 4, 8])
def test_sampler_all_tokens_decoded_and_seeded(K):
    m = _model()
    cache = KVCache.for_model(m.cfg, 2)
    _commit(m, cache, torch.randint(0, 50, (2, 16)), torch.tensor([0, 1]), torch.tensor([0, 0]))
    cfg = SamplerConfig(steps=K)
    a = decode_frame(m, cache.view(), torch.tensor([1, 2]), torch.tensor([1, 1]), cfg, [torch.Generator().manual_seed(s) for s in (0, 1)])
    b = decode_frame(m, cache.view(), torch.tensor([1, 2]), torch.tensor([1, 1]), cfg, [torch.Generator().manual_seed(s) for s in (0, 1)])
    assert (a < 50).all() and torch.equal(a, b)


@torch.no_grad()
def test_greedy_nocache_matches_cache_and_ar_runs():
    m = _model()
    tok = torch.randint(0, 50, (1, 3, 16))
    act = torch.randint(0, 3, (1, 3))
    cache = KVCache.for_model(m.cfg, 1)
    for t in range(3):
        _commit(m, cache, tok[:, t], act[:, t], torch.tensor([t]))
    cfg = SamplerConfig(steps=4, temperature=0.0, choice_temperature=0.0)
    g = [torch.Generator().manual_seed(0)]
    a = decode_frame(m, cache.view(), torch.tensor([1]), torch.tensor([3]), cfg, g)
    b = decode_nocache(m, tok, act, torch.tensor([1]), cfg, g)
    assert torch.equal(a, b)
    ar = decode_autoregressive(m, cache.view(), torch.tensor([1]), torch.tensor([3]), 0.0, g)
    assert ar.shape == (1, 16) and (ar < 50).all()


def test_sampling_follows_the_distribution():
    from maskworld.models.sampler import _sample

    logits = torch.log(torch.tensor([0.1, 0.2, 0.7])).expand(1, 4000, 3)
    ids, logp = _sample(logits, 1.0, [torch.Generator().manual_seed(0)])
    freq = torch.bincount(ids[0], minlength=3).float() / 4000
    assert torch.allclose(freq, torch.tensor([0.1, 0.2, 0.7]), atol=0.03)
    ids0, _ = _sample(logits, 0.0, [torch.Generator()])
    assert (ids0 == 2).all()


@pytest.mark.parametrize("local_radius", [0, 1])
@torch.no_grad()
def test_nocache_heads_equal_commit_heads(local_radius):
    m = _model(local_radius=local_radius)
    tok = torch.randint(0, 50, (2, 4, 16))
    act = torch.randint(0, 3, (2, 4))
    cache = KVCache.for_model(m.cfg, 2)
    for t in range(4):
        h = _commit(m, cache, tok[:, t], act[:, t], torch.full((2,), t))
    r, d = h.reward, h.term
    r2, d2 = m.full_pass_heads(tok[:, :3], act[:, :3], tok[:, 3], act[:, 3])
    assert torch.allclose(r, r2, atol=1e-4) and torch.allclose(d, d2, atol=1e-4)


@torch.no_grad()
def test_prev_frame_prior_starts_from_copy_last_and_cache_is_exact():
    """With the previous-frame prior an untrained model already decodes (nearly) the last frame, where the same
    model without it decodes noise; and its cached pass still equals the training pass and the no-cache pass."""
    torch.manual_seed(0)
    cfg = DynamicsConfig(vocab_size=50, num_actions=3, grid=4, d_model=32, n_layers=2, n_heads=2, window=4,
                         prev_frame_prior=True)
    m = Dynamics(cfg).eval()
    B, T, N = 2, 4, 16
    tok = torch.randint(0, 50, (B, T, N))
    act = torch.randint(0, 3, (B, T))
    masked = tok.clone()
    masked[:, :, ::3] = cfg.mask_id
    logits, _, _ = m(tok, masked, act)
    cache = KVCache.for_model(cfg, B)
    for t in range(T - 1):
        _commit(m, cache, tok[:, t], act[:, t], torch.full((B,), t))
    cached = m.predict_logits(masked[:, T - 1], act[:, T - 1], torch.full((B,), T - 1), cache.view(), prev_BN=tok[:, T - 2])
    assert torch.allclose(cached, logits[:, T - 1], atol=1e-4)
    nocache = m.full_pass_logits(tok[:, : T - 1], act[:, : T - 1], masked[:, T - 1], act[:, T - 1])
    assert torch.allclose(nocache, logits[:, T - 1], atol=1e-4)
    sampler = SamplerConfig(steps=2, temperature=0.5)
    gens = [torch.Generator().manual_seed(s) for s in range(B)]
    prior = decode_frame(m, cache.view(), act[:, -1], torch.full((B,), T - 1), sampler, gens, prev_BN=tok[:, T - 2])
    assert (prior == tok[:, T - 2]).float().mean() > 0.9  # "nothing changes" before any training
    torch.manual_seed(0)
    plain = Dynamics(DynamicsConfig(vocab_size=50, num_actions=3, grid=4, d_model=32, n_layers=2, n_heads=2, window=4)).eval()
    cache2 = KVCache.for_model(plain.cfg, B)
    for t in range(T - 1):
        _commit(plain, cache2, tok[:, t], act[:, t], torch.full((B,), t))
    noise = decode_frame(plain, cache2.view(), act[:, -1], torch.full((B,), T - 1), sampler, gens)
    assert (noise == tok[:, T - 2]).float().mean() < 0.3


def test_two_stream_attention_equals_the_dense_mask():
    """Training attends as two attentions (clean frame-causal; each masked frame over [earlier clean, itself]):
    outputs and gradients equal one attention under the dense (2L x 2L) mask, a one-frame clip included."""
    import torch.nn.functional as F

    from maskworld.models.attention import TwoStreamMask

    torch.manual_seed(0)
    for T, S in [(4, 17), (1, 5)]:
        pattern = TwoStreamMask.build(T, S, "cpu")
        dense = pattern.dense()
        assert dense.shape == (1, 1, 2 * T * S, 2 * T * S) and not dense[0, 0, : T * S, T * S :].any()
        q, k, v = (torch.randn(2, 3, 2 * T * S, 8, dtype=torch.float64, requires_grad=True) for _ in range(3))
        a, b = pattern.attend(q, k, v), F.scaled_dot_product_attention(q, k, v, attn_mask=dense)
        assert torch.allclose(a, b, atol=1e-12)
        ga, gb = torch.autograd.grad((a**2).sum(), (q, k, v)), torch.autograd.grad((b**2).sum(), (q, k, v))
        assert all(torch.allclose(x, y, atol=1e-10) for x, y in zip(ga, gb))
        if T > 1:  # a masked frame must not see another masked frame
            k2 = k.detach().clone()
            k2[:, :, T * S : T * S + S] += torch.randn_like(k2[:, :, T * S : T * S + S])  # masked frame 0
            a2 = pattern.attend(q, k2, v)
            assert torch.allclose(a2[:, :, T * S + S :], a[:, :, T * S + S :])  # frames 1.. unchanged
            assert not torch.allclose(a2[:, :, T * S : T * S + S], a[:, :, T * S : T * S + S])


@torch.no_grad()
def test_action_guidance_is_exact_and_leaves_actionless_frames_alone():
    """Guidance by the action: the cached decode equals the no-cache one; its step logits are c + w (c - u) of the
    passes with and without the action; a frame whose action is NULL (nothing to guide by) decodes as unguided, and
    a real action decodes otherwise once guided."""
    from maskworld.models.sampler import guided

    m = _model()
    B, T = 2, 3
    tok = torch.randint(0, 50, (B, T, 16))
    act = torch.randint(0, 3, (B, T))
    cache = KVCache.for_model(m.cfg, B)
    for t in range(T):
        _commit(m, cache, tok[:, t], act[:, t], torch.full((B,), t))
    pos, a = torch.full((B,), T), torch.tensor([1, m.cfg.null_action])
    greedy = SamplerConfig(steps=4, temperature=0.0, choice_temperature=0.0, guidance=3.0)
    g = [torch.Generator().manual_seed(0) for _ in range(B)]
    cached = decode_frame(m, cache.view(), a, pos, greedy, g)
    assert torch.equal(cached, decode_nocache(m, tok, act, a, greedy, g))
    query = torch.full((B, 16), m.cfg.mask_id)
    c = m.predict_logits(query, a, pos, cache.view()).log_softmax(-1)
    u = m.predict_logits(query, torch.full_like(a, m.cfg.null_action), pos, cache.view()).log_softmax(-1)
    both = guided(lambda t: m.predict_logits(t, a, pos, cache.view()),
                  lambda t: m.predict_logits(t, torch.full_like(a, m.cfg.null_action), pos, cache.view()), 3.0)(query)
    assert torch.allclose(both, c + 3.0 * (c - u), atol=1e-5)
    assert torch.allclose(both[1], c[1], atol=1e-5)  # the NULL row: c == u
    plain = decode_frame(m, cache.view(), a, pos, SamplerConfig(steps=4, temperature=0.0, choice_temperature=0.0), g)
    # an untrained model hardly reads its action (|c - u| ~ 0.005 here): a strong guidance makes it matter
    strong = decode_frame(m, cache.view(), a, pos, SamplerConfig(steps=4, temperature=0.0, choice_temperature=0.0,
                                                                 guidance=1000.0), g)
    assert torch.equal(plain[1], strong[1]) and not torch.equal(plain[0], strong[0])
