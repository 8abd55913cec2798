"""Environments: one adapter from anything with pixels to uint8 frames + discrete actions."""

from maskworld.envs.adapter import KNOWN_ENVS, PixelEnv, list_envs, make_env, resize_frame


def _register_landmarks() -> None:
    """Register MiniGrid-Landmarks-v0 (revisit benchmark) by entry-point string.

    Done here so that any process that imports `maskworld.envs` (collect workers included) can
    `gym.make` it; the string keeps minigrid itself unimported until the env is made.
    """
    import gymnasium as gym

    if "MiniGrid-Landmarks-v0" not in gym.registry:  # re-imports and reloads must not re-register
        gym.register(id="MiniGrid-Landmarks-v0", entry_point="maskworld.envs.landmarks:LandmarksEnv")


_register_landmarks()

__all__ = ["KNOWN_ENVS", "PixelEnv", "list_envs", "make_env", "resize_frame"]
