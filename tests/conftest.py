import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def tiny_world(tmp_path):
    """A randomly initialised tiny world (no training): enough for API, format and speed-path tests."""
    from maskworld.models.dynamics import Dynamics, DynamicsConfig
    from maskworld.models.sampler import SamplerConfig
    from maskworld.models.tokenizer import Tokenizer, TokenizerConfig
    from maskworld.world.world import World, WorldMeta
    import torch

    torch.manual_seed(0)
    tok = Tokenizer(TokenizerConfig(channels=16, num_res=1))
    dyn = Dynamics(DynamicsConfig(vocab_size=tok.cfg.vocab_size, grid=tok.cfg.grid, num_actions=3, d_model=32,
                                  n_layers=2, n_heads=2, window=4))
    w = World(tok, dyn, SamplerConfig(steps=2), WorldMeta(env_id="test", action_meanings=["LEFT", "RIGHT", "NOOP"]))
    w.save(tmp_path / "world")
    return w
