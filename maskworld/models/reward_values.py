"""What each class of the reward head is worth: the game's own reward values, or the reward's sign.

A reward head that predicts only the sign (-1, 0, +1) pays a step in which three coins are taken as one coin, a
7-point Breakout brick as a 1-point one and CoinRun's 10 as 1, so a world's imagined returns rank policies by how
often they score, not by how much. Where the data's rewards take a few values (most games: coins, bricks,
points), the head's classes are those values and a step's reward is the value of its class (argmax) or their
expectation under the head (a categorical value head, as MuZero's and DreamerV3's, on the data's own support
instead of fixed bins). Rewards of many values (MiniGrid's time-discounted 1 - 0.9 t/T) keep the sign classes.

    values = reward_values_for(cache_rewards)     # None -> sign classes
    cfg.reward_values, cfg.reward_classes = values, len(class_values(values))
    target = reward_class(rew_BT, cfg.reward_values)          # (B,T) class indices
"""

from __future__ import annotations

import numpy as np
import torch

SIGN_VALUES = (-1.0, 0.0, 1.0)
"""The sign classes: 0 negative, 1 zero, 2 positive (every world trained before value classes)."""

MAX_VALUES = 8
"""Data whose rewards take more distinct values than this keep the sign classes (the head stays small and every
class has examples)."""


def class_values(reward_values) -> tuple[float, ...]:
    """The value of each class of a head: `reward_values` (DynamicsConfig.reward_values) or the sign classes."""
    return tuple(float(v) for v in reward_values) if reward_values else SIGN_VALUES


def reward_values_for(rewards: np.ndarray, max_values: int = MAX_VALUES) -> list[float] | None:
    """The classes a world trained on these rewards gets: the sorted distinct values (0 among them) where there are
    at most `max_values` and some lie outside {-1, 0, 1}; None (sign classes) otherwise."""
    r = np.asarray(rewards, np.float64)
    r = r[np.isfinite(r)]
    distinct = np.unique(np.round(np.concatenate([r, [0.0]]), 6))
    if len(distinct) > max_values or set(distinct.tolist()) <= set(SIGN_VALUES):
        return None
    return [float(v) for v in distinct]


def reward_class(r: torch.Tensor, values) -> torch.Tensor:
    """Rewards -> class index (long, same shape): the nearest class value (the sign for the sign classes)."""
    if not values:  # any positive reward is "positive", not the nearest of -1/0/1
        return (torch.sign(r) + 1).long()
    v = torch.tensor(class_values(values), device=r.device, dtype=torch.float32)
    return (r.float()[..., None] - v).abs().argmin(-1)


def reward_class_np(r: np.ndarray, values) -> np.ndarray:
    """`reward_class` for numpy arrays (eval, head priors)."""
    return reward_class(torch.from_numpy(np.asarray(r, np.float32)), values).numpy()


def zero_class(values) -> int:
    """The class of "no reward"."""
    return int(np.argmin(np.abs(np.asarray(class_values(values)))))
