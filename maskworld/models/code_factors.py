"""Token codes read as their FSQ digits, in the dynamics' token embedding and output head.

A token id is the mixed-radix number of its FSQ digits (fsq.py): codes that share a digit share the level of one
latent channel, so they look alike in that channel. A joint-code model (MaskGIT, Genie) ignores this: each of the
1000 codes has its own embedding and logit, and a code the data shows rarely is barely learned. Here each table
also gets a part shared by every code with the same digit:

    emb(c)      = E[c]   + sum_i A_i[digit_i(c)]          (the MASK id has no digits: E only)
    logit(c | h) = W[c] . h + sum_i B_i[digit_i(c)] . h

so a rare code starts from the embedding and logit of its digits, which its neighbours train, and a near miss in
one channel trains the right digit of the others. Both are the plain tables plus a (V, sum L) one-hot product, so
the sampler and the KV cache see ordinary tables (`CodeFactors.tables`, kept while no weight changes).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def digit_onehot(levels: list[int]) -> torch.Tensor:
    """(prod(levels) + 1, sum(levels)) float: row c has a one at each of code c's digits; the last row (MASK) none."""
    V, cols = math.prod(levels), sum(levels)
    onehot = torch.zeros(V + 1, cols)
    codes = torch.arange(V)
    stride, offset = 1, 0
    for L in levels:
        onehot[codes, offset + (codes // stride) % L] = 1.0
        stride, offset = stride * L, offset + L
    return onehot


class CodeFactors(nn.Module):
    """The digit parts A (embedding) and B (head) of the dynamics' token tables for FSQ `levels`."""

    def __init__(self, levels: list[int], d: int):
        super().__init__()
        self.register_buffer("onehot", digit_onehot(levels), persistent=False)  # (V+1, sum L)
        self.digit_emb = nn.Parameter(torch.randn(sum(levels), d) * 0.02)  # A_i, stacked
        self.digit_head = nn.Parameter(torch.zeros(sum(levels), d))  # B_i, stacked: the head starts as the joint one
        self._cache: tuple | None = None

    def tables(self, joint_emb_VD: torch.Tensor, joint_head_VD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The joint embedding (V+1, D) and head weight (V, D) -> both with their digits' parts added.

        Without gradients they are kept until a weight changes (in-place optimizer steps bump `_version`)."""
        if torch.is_grad_enabled():
            return joint_emb_VD + self.onehot @ self.digit_emb, joint_head_VD + self.onehot[:-1] @ self.digit_head
        key = tuple((id(t), t._version) for t in (joint_emb_VD, joint_head_VD, self.digit_emb, self.digit_head))
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, joint_emb_VD + self.onehot @ self.digit_emb,
                           joint_head_VD + self.onehot[:-1] @ self.digit_head)
        return self._cache[1], self._cache[2]
