"""Presets: one complexity dial (tiny | compact | small | base) for tokenizer, dynamics and batch sizes.

tiny    — seconds per run; tests and the `make demo` pipeline on a laptop CPU.
compact — tiny's widths at twice its depth: about 20 training tokens per parameter in an hour of one CPU core,
          where tiny sees 50 (`--preset auto` picks it there; on CoinRun it beat tiny at equal minutes).
small   — several CPU hours, or a GPU's minutes; real-time play on 2 cores.
base    — for a GPU.

A preset is a frozen table of numbers, importable without torch (the CLI shows its values in `--help`);
`tokenizer` and `dynamics` build fresh model configs from it, so a caller may change those freely.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    name: str
    tok_channels: int
    """Tokenizer conv width."""
    tok_res: int
    """Tokenizer residual blocks per stage."""
    d_model: int
    n_layers: int
    n_heads: int
    window: int
    """Dynamics context window in frames."""
    tok_batch: int
    dyn_batch: int
    lr: float = 3e-4
    image_size: int = 64
    """Frame size the tokenizer config is built for (the data's)."""

    @property
    def tokenizer(self):
        from maskworld.models.tokenizer import TokenizerConfig

        return TokenizerConfig(image_size=self.image_size, channels=self.tok_channels, num_res=self.tok_res)

    @property
    def dynamics(self):
        from maskworld.models.dynamics import DynamicsConfig

        return DynamicsConfig(d_model=self.d_model, n_layers=self.n_layers, n_heads=self.n_heads, window=self.window)


PRESETS: dict[str, Preset] = {
    "tiny": Preset("tiny", tok_channels=32, tok_res=1, d_model=96, n_layers=2, n_heads=4, window=4,
                   tok_batch=16, dyn_batch=8, lr=1e-3),
    "compact": Preset("compact", tok_channels=32, tok_res=1, d_model=96, n_layers=4, n_heads=4, window=4,
                      tok_batch=16, dyn_batch=8, lr=1e-3),
    "small": Preset("small", tok_channels=96, tok_res=2, d_model=256, n_layers=4, n_heads=8, window=8,
                    tok_batch=32, dyn_batch=16, lr=5e-4),
    "base": Preset("base", tok_channels=128, tok_res=2, d_model=384, n_layers=8, n_heads=8, window=16,
                   tok_batch=64, dyn_batch=32, lr=3e-4),
}


def get_preset(name: str, image_size: int = 64) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name], image_size=image_size)
