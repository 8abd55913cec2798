"""Token codes read as FSQ digits (models/code_factors.py): the digits are FSQ's own, the cached pass stays exact,
and the digit parts change what the model computes (and learn)."""

import math
import typing

import torch

from maskworld.models.code_factors import digit_onehot
from maskworld.models.dynamics import Dynamics, DynamicsConfig
from maskworld.models.fsq import FSQ, LEVELS_BY_CODES
from maskworld.models.kv_cache import KVCache
from maskworld.train.config import TokenizerTrainConfig

LEVELS = [5, 2, 3]  # 30 codes


def test_every_codebook_choice_has_levels():
    choices = typing.get_args(typing.get_args(typing.get_type_hints(TokenizerTrainConfig)["codebook"])[0])
    assert {math.prod(LEVELS_BY_CODES[c]) for c in choices} == set(choices) == set(LEVELS_BY_CODES)


def test_digits_are_fsqs_own():
    onehot = digit_onehot(LEVELS)
    assert onehot.shape == (31, 10) and onehot[-1].sum() == 0  # MASK: no digits
    assert (onehot[:-1].sum(1) == len(LEVELS)).all()
    fsq = FSQ(LEVELS)
    codes = torch.arange(30)
    idx = (codes[:, None] // fsq._basis) % fsq._levels.long()  # FSQ's mixed radix
    offsets = torch.tensor([0, 5, 7])
    expect = torch.zeros(30, 10)
    expect[torch.arange(30)[:, None], idx + offsets] = 1
    assert torch.equal(onehot[:-1], expect)


def _model(code_levels):
    torch.manual_seed(0)
    cfg = DynamicsConfig(vocab_size=30, num_actions=3, grid=4, d_model=32, n_layers=2, n_heads=2, window=4,
                         prev_frame_prior=True, code_levels=code_levels)
    return Dynamics(cfg)


def test_cached_pass_is_exact_and_the_digits_matter():
    m = _model(LEVELS).eval()
    with torch.no_grad():
        m.code_factors.digit_head.normal_(0, 0.5)  # as if trained: the head's digit part is zero at the start
    B, T, N = 2, 4, 16
    tok = torch.randint(0, 30, (B, T, N))
    act = torch.randint(0, 3, (B, T))
    masked = tok.clone()
    masked[:, :, ::3] = m.cfg.mask_id
    with torch.no_grad():
        logits, _, _ = m(tok, masked, act)
        cache = KVCache.for_model(m.cfg, B)
        for t in range(T - 1):
            view = cache.view()
            m.commit(tok[:, t], act[:, t], torch.full((B,), t), view)
            cache.store(view, None, torch.full((B,), t))
        cached = m.predict_logits(masked[:, T - 1], act[:, T - 1], torch.full((B,), T - 1), cache.view(),
                                  prev_BN=tok[:, T - 2])
        nocache = m.full_pass_logits(tok[:, : T - 1], act[:, : T - 1], masked[:, T - 1], act[:, T - 1])
    assert torch.allclose(cached, logits[:, T - 1], atol=1e-4)
    assert torch.allclose(nocache, logits[:, T - 1], atol=1e-4)
    # the same weights without the digit parts compute something else
    plain = _model(None).eval()
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("code_factors.")})
    with torch.no_grad():
        other, _, _ = plain(tok, masked, act)
    assert (other - logits).abs().max() > 1e-2


def test_kept_tables_follow_an_optimizer_step():
    """Without gradients the tables are kept; an in-place update of any weight (an optimizer step) renews them."""
    m = _model(LEVELS)
    with torch.no_grad():
        before = m.token_tables()[0].clone()
        assert m.token_tables()[0] is m.token_tables()[0]  # kept
    opt = torch.optim.SGD(m.parameters(), lr=1.0)
    loss = m.token_logits(torch.randn(5, 32)).logsumexp(-1).sum() + m.embed_tokens(torch.arange(31)).square().sum()
    loss.backward()
    assert m.code_factors.digit_emb.grad.abs().sum() > 0 and m.code_factors.digit_head.grad.abs().sum() > 0
    opt.step()
    with torch.no_grad():
        assert not torch.allclose(m.token_tables()[0], before)
