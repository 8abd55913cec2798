"""Agents in the dream (C, issue 8): the world as a Gymnasium env, a batched vector env, actor-critic.

    import gymnasium as gym, maskworld
    env = gym.make("maskworld/Dream-v0", world="maskworld/worlds/default", max_episode_steps=100)
    envs = gym.make_vec("maskworld/Dream-v0", num_envs=64, world=...)   # one batched forward pass per step

`maskworld/Dream-v0` is registered when Gymnasium is imported (before or after maskworld), so
`import maskworld` itself stays light (no gymnasium, no torch). Where the hook cannot run,
`gym.make("maskworld.agents:maskworld/Dream-v0", ...)` imports this module and registers it.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

ENV_ID = "maskworld/Dream-v0"


def register() -> None:
    """Register `maskworld/Dream-v0` (scalar and vector entry points) with Gymnasium; idempotent."""
    import gymnasium

    if ENV_ID not in gymnasium.registry:
        gymnasium.register(
            id=ENV_ID,
            entry_point="maskworld.agents.dream_env:DreamEnv",
            vector_entry_point="maskworld.agents.vector_env:DreamVectorEnv",
        )


class _RegisterAfterGymnasium(importlib.abc.MetaPathFinder):
    """One-shot import hook: when `gymnasium` is first imported, register our id right after it loads."""

    def find_spec(self, name, path=None, target=None):
        if name != "gymnasium":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)  # the ordinary finders, this hook removed
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_register(module):
            exec_module(module)
            try:
                register()
            except Exception as e:  # never break `import gymnasium` for someone else's program
                print(f"maskworld: could not register {ENV_ID} with gymnasium ({e})", file=sys.stderr)

        spec.loader.exec_module = exec_and_register
        return spec


def register_on_gymnasium_import() -> None:
    """Register now if Gymnasium is loaded, else as soon as it is (costs nothing until then)."""
    if "gymnasium" in sys.modules:
        try:
            register()
        except Exception:  # a broken gymnasium install: maskworld itself still imports
            pass
    elif not any(isinstance(f, _RegisterAfterGymnasium) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterGymnasium())


# Importing this module (e.g. through "maskworld.agents:maskworld/Dream-v0") registers the id.
register_on_gymnasium_import()
