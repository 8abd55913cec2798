"""Environments: one adapter from anything with pixels to uint8 frames + discrete actions.

`MiniGrid-Landmarks-v0` (maskworld.envs.landmarks) is registered with Gymnasium by `import maskworld`."""

from maskworld.envs.adapter import KNOWN_ENVS, PixelEnv, list_envs, make_env, resize_frame, room_cells

__all__ = ["KNOWN_ENVS", "PixelEnv", "list_envs", "make_env", "resize_frame", "room_cells"]
