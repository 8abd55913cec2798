"""Environments: one adapter from anything with pixels to uint8 frames + discrete actions."""

from maskworld.envs.adapter import KNOWN_ENVS, PixelEnv, list_envs, make_env, resize_frame

__all__ = ["KNOWN_ENVS", "PixelEnv", "list_envs", "make_env", "resize_frame"]
