"""--init WORLD: a run that continues a trained world (a fine-tune) starts from its weights and config, on its
tokenizer, so that the world's token ids keep meaning the same image patches; anything that would give them another
meaning is a clear error before training."""

from __future__ import annotations

import dataclasses

import torch

from maskworld.errors import UserError
from maskworld.models.text import TextVocab
from maskworld.models.tokenizer import Tokenizer
from maskworld.models.unified import UnifiedConfig
from maskworld.train.dist import print0
from maskworld.world.unified import is_unified_dir, load_unified_world
from maskworld.world.world import load_world

OTHER_TOKENIZER = ("train into an --out without a tokenizer (it takes the init world's), or copy {init}/tokenizer.safetensors "
                   "and tokenizer.json into --out")


def init_tokenizer(init: str) -> Tokenizer:
    """The init world's tokenizer (a dynamics or a unified world)."""
    return (load_unified_world if is_unified_dir(init) else load_world)(init, device="cpu").tokenizer


def same_tokenizer(tok, other) -> bool:
    """The same weights: the same token ids mean the same image patches."""
    mine, theirs = tok.state_dict(), other.state_dict()
    return mine.keys() == theirs.keys() and all(torch.equal(mine[k].cpu(), theirs[k].cpu()) for k in mine)


def init_dynamics(init: str, tok):
    """--init WORLD: its dynamics config and weights (a fine-tune); a clear error where its tokens mean other patches."""
    src = load_world(init, device="cpu")
    cfg = dataclasses.replace(src.dynamics.cfg)
    if not same_tokenizer(tok, src.tokenizer):  # the same token ids must mean the same image patches
        raise UserError(f"--init {init}: its dynamics were trained on another tokenizer than the one in --out; "
                        + OTHER_TOKENIZER.format(init=init))
    print0(f"[dynamics] starting from {init}'s weights ({cfg.d_model}d x {cfg.n_layers} layers, window {cfg.window})")
    return cfg, src.dynamics.state_dict()


def init_unified(init: str, tok, vocab: TextVocab, cfg: UnifiedConfig):
    """--init UNIFIED_WORLD: its model config and weights, to train on; a clear error where its token ids (frames,
    words or actions) would mean something else in this data."""
    src = load_unified_world(init, device="cpu")
    if not same_tokenizer(tok, src.tokenizer):
        raise UserError(f"--init {init}: it was trained on another tokenizer than the one in --out; "
                        + OTHER_TOKENIZER.format(init=init))
    if src.vocab.words != vocab.words:
        raise UserError(f"--init {init} knows the words {src.vocab.words[2:]}, the data's missions use "
                        f"{vocab.words[2:]}: continue on data of the same level")
    if src.model.cfg.num_actions != cfg.num_actions:
        raise UserError(f"--init {init} has {src.model.cfg.num_actions} actions, the data {cfg.num_actions}")
    m = src.model.cfg
    print(f"[unified] starting from {init}'s weights ({m.d_model}d x {m.n_layers} layers, window {m.window})")
    return dataclasses.replace(m), src.model.state_dict()
