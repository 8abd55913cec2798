"""maskworld: true world models built on masking (arXiv 2510.20668).

    world = maskworld.load_world("worlds/minigrid")
    s = world.session(seed=0)
    frame, reward, done = s.step(action)
"""

__version__ = "0.1.0"

# Version of the world-directory format; bumped when world.json or weight names change.
WORLD_FORMAT_VERSION = 1


def load_world(path, device=None):
    """Load a world directory (world.json + *.safetensors). Never unpickles."""
    from maskworld.world.world import load_world as _load

    return _load(path, device=device)


def _register() -> None:
    """`maskworld/Dream-v0` is registered when Gymnasium is imported, so this import stays light."""
    from maskworld.agents import register_on_gymnasium_import

    register_on_gymnasium_import()


_register()
