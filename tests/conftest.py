import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def one_thread():
    """Torch on one thread for a test (two cores, two processes: oversubscribed OpenMP threads spin, 10x slower)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _tiny_parts(num_actions: int, **dyn_kw):
    """A seeded random tiny tokenizer and dynamics model (no training)."""
    import torch

    from maskworld.models.dynamics import Dynamics, DynamicsConfig
    from maskworld.models.tokenizer import Tokenizer, TokenizerConfig

    torch.manual_seed(0)
    tok = Tokenizer(TokenizerConfig(channels=16, num_res=1))
    dyn = Dynamics(DynamicsConfig(vocab_size=tok.cfg.vocab_size, grid=tok.cfg.grid, num_actions=num_actions, d_model=32,
                                  n_layers=2, n_heads=2, window=4, **dyn_kw))
    return tok, dyn


@pytest.fixture
def tiny_world(tmp_path):
    """A randomly initialised tiny world (no training): enough for API, format and speed-path tests."""
    from maskworld.models.sampler import SamplerConfig
    from maskworld.world.world import World, WorldMeta

    tok, dyn = _tiny_parts(3)
    w = World(tok, dyn, SamplerConfig(steps=2), WorldMeta(env_id="test", action_meanings=["LEFT", "RIGHT", "NOOP"]))
    w.save(tmp_path / "world")
    return w


@pytest.fixture
def tiny_latent_world(tmp_path):
    """A randomly initialised world trained "on video": 4 latent codes and a real->latent map for 3 game actions."""
    from maskworld.models.lam import LamConfig, LatentActionModel
    from maskworld.models.sampler import SamplerConfig
    from maskworld.world.world import World, WorldMeta

    tok, dyn = _tiny_parts(4)
    lam = LatentActionModel(LamConfig(num_codes=4, grid=tok.cfg.grid, levels=list(tok.cfg.levels), channels=16))
    meta = WorldMeta(env_id="test/video", action_meanings=[f"LATENT_{k + 1}" for k in range(4)], has_actions=False,
                     latent_actions={"num_codes": 4, "val_usage": {"codes_used": 4, "share": [0.1, 0.2, 0.6, 0.1]},
                                     "action_map": {"to_latent": [3, 1, 2], "real_action_meanings": ["LEFT", "RIGHT", "NOOP"],
                                                    "fit_transitions": 200}})
    w = World(tok, dyn, SamplerConfig(steps=2), meta, lam=lam)
    w.save(tmp_path / "latent_world")
    return w


@pytest.fixture
def tiny_memory_world(tmp_path):
    """A random tiny MiniGrid world with memory M (2 retrieved + 2 compressed frames, pose head). The reader's
    zero-initialised outputs are randomised so that what memory holds changes the frames (untrained, it would not)."""
    import torch

    from maskworld.models.sampler import SamplerConfig
    from maskworld.world.world import World, WorldMeta

    tok, dyn = _tiny_parts(7, memory_frames=2, compressed_frames=2, pose_head=True)
    with torch.no_grad():
        for r in dyn.memory.reads:
            r.out.weight.normal_(0, 0.5)
    meanings = ["LEFT", "RIGHT", "FORWARD", "PICKUP", "DROP", "TOGGLE", "DONE"]
    w = World(tok, dyn, SamplerConfig(steps=2), WorldMeta(env_id="MiniGrid-Landmarks-v0", action_meanings=meanings))
    w.save(tmp_path / "memory_world")
    return w
