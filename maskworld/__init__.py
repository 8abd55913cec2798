"""maskworld: true world models built on masking (arXiv 2510.20668).

    world = maskworld.load_world("worlds/minigrid")
    s = world.session(seed=0)
    frame, reward, done = s.step(action)

Importing maskworld registers its Gymnasium ids (`maskworld/Dream-v0`, `MiniGrid-Landmarks-v0`,
`MultiAgent-Coins-v0`) with
`gymnasium.register` and entry-point strings: that is its only side effect, and neither torch nor the
env modules load until `gymnasium.make`.
"""

import gymnasium

from maskworld.version import WORLD_FORMAT_VERSION, __version__

__all__ = ["WORLD_FORMAT_VERSION", "__version__", "load_world"]


def load_world(path, device=None):
    """Load a world directory (world.json + *.safetensors). Never unpickles."""
    # Here, not at the top: `import maskworld` (and so `maskworld --help`) must not import torch.
    from maskworld.world.world import load_world as _load

    return _load(path, device=device)


def _register(env_id: str, **entry_points: str) -> None:
    if env_id not in gymnasium.registry:  # importlib.reload must not register twice
        gymnasium.register(id=env_id, **entry_points)


_register("maskworld/Dream-v0", entry_point="maskworld.agents.dream_env:DreamEnv",
          vector_entry_point="maskworld.agents.vector_env:DreamVectorEnv")
_register("MiniGrid-Landmarks-v0", entry_point="maskworld.envs.landmarks:LandmarksEnv")
_register("MultiAgent-Coins-v0", entry_point="maskworld.envs.coins:CoinsEnv")
