"""Presets: one complexity dial (tiny | small | base) for tokenizer, dynamics and batch sizes.

tiny  — seconds per run; tests and the `make demo` pipeline on a laptop CPU.
small — the CPU world of the issue bars (~60 CPU-minutes); real-time play on 2 cores.
base  — for a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from maskworld.models.dynamics import DynamicsConfig
from maskworld.models.tokenizer import TokenizerConfig


@dataclass
class Preset:
    tokenizer: TokenizerConfig
    dynamics: DynamicsConfig
    tok_batch: int
    dyn_batch: int
    lr: float = 3e-4


def get_preset(name: str, image_size: int = 64) -> Preset:
    if name == "tiny":
        return Preset(TokenizerConfig(image_size=image_size, channels=32, num_res=1),
                      DynamicsConfig(d_model=96, n_layers=2, n_heads=4, window=4), tok_batch=16, dyn_batch=8, lr=1e-3)
    if name == "small":
        return Preset(TokenizerConfig(image_size=image_size, channels=96, num_res=2),
                      DynamicsConfig(d_model=256, n_layers=4, n_heads=8, window=8), tok_batch=32, dyn_batch=16, lr=5e-4)
    if name == "base":
        return Preset(TokenizerConfig(image_size=image_size, channels=128, num_res=2),
                      DynamicsConfig(d_model=384, n_layers=8, n_heads=8, window=16), tok_batch=64, dyn_batch=32, lr=3e-4)
    raise ValueError(f"unknown preset {name!r}; choose tiny, small or base")
