"""The working-memory window of many sessions: one ring-buffer KV cache whose rows are sessions.

Design choices:
- Every row owns F + 1 frame slots per layer: F = window - 1 ring slots for committed frames and one
  scratch slot for the frame being decoded. A frame's keys are rotated (RoPE over the frame index) before
  they are cached, so attention does not care where a frame sits: a committed frame simply overwrites its
  row's oldest slot (slot = frame index mod F), and nothing is ever shifted, concatenated or re-stacked.
- Decoding writes the new frame's keys/values into the scratch slot in place and attends over the whole
  row with a validity mask, so the K MaskGIT passes allocate no cache-sized tensors (fresh allocations of
  that size were page-faulting on CPU). `commit` then copies the scratch slot into the ring.
- Rows are added and removed (a session opened or dropped) without touching other rows; the cache grows
  by doubling. A batch of consecutive rows is a view; any other set of rows is gathered once per step.
- Padding-free exactness: a row is computed with the same shapes alone or in a batch, so batching does not
  change a session's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class CacheView:
    """The cache as seen by one forward pass over B rows.

    k[l], v[l]: (B, nh, (F+1)*S, hd), the scratch slot last; mask (B, 1, 1, (F+1)*S) bool (scratch valid);
    scratch: (lo, hi) token range of the scratch slot."""

    k: list
    v: list
    mask: torch.Tensor
    scratch: tuple[int, int]


class KVCache:
    """Keys/values of the frames in the window for R rows (sessions).

    k[l], v[l]: (R, nh, (F+1)*S, hd); valid (R, F+1) bool per frame slot (slot F = scratch, never valid)."""

    def __init__(self, n_layers: int, n_heads: int, head_dim: int, window: int, frame_len: int, rows: int = 1,
                 device=None):
        self.n_layers, self.nh, self.hd, self.S = n_layers, n_heads, head_dim, frame_len
        self.F = max(1, window - 1)
        self.device = torch.device(device or "cpu")
        self.k: list[torch.Tensor] = []
        self.v: list[torch.Tensor] = []
        self.valid = torch.zeros(0, self.F + 1, dtype=torch.bool, device=self.device)
        self.resize(rows)

    @classmethod
    def for_model(cls, cfg, rows: int = 1, device=None) -> "KVCache":
        """A cache shaped for a DynamicsConfig."""
        return cls(cfg.n_layers, cfg.n_heads, cfg.d_model // cfg.n_heads, cfg.window, cfg.frame_len, rows, device)

    @property
    def rows(self) -> int:
        return self.valid.shape[0]

    @property
    def slot_tokens(self) -> int:
        return (self.F + 1) * self.S

    def resize(self, rows: int) -> None:
        """Grow (or shrink) to `rows` rows, keeping the first rows' contents."""
        keep = min(rows, self.rows)
        shape = (rows, self.nh, self.slot_tokens, self.hd)
        new_k, new_v = [], []
        for layer in range(self.n_layers):
            k, v = torch.zeros(shape, device=self.device), torch.zeros(shape, device=self.device)
            if keep:
                k[:keep], v[:keep] = self.k[layer][:keep], self.v[layer][:keep]
            new_k.append(k)
            new_v.append(v)
        valid = torch.zeros(rows, self.F + 1, dtype=torch.bool, device=self.device)
        valid[:keep] = self.valid[:keep]
        self.k, self.v, self.valid = new_k, new_v, valid

    def clear(self, row: int) -> None:
        """Forget a row's frames (a new session in a reused row)."""
        self.valid[row] = False

    # ------------------------------------------------------------------ one forward pass
    def view(self, rows=None) -> CacheView:
        """The cache of `rows` (a list/tensor of row indices; None = all) for one pass: consecutive rows are a
        view that the pass writes into directly; others are gathered (the pass writes into the copy)."""
        idx = _as_slice(rows, self.rows)
        if isinstance(idx, slice):
            k, v, valid = [t[idx] for t in self.k], [t[idx] for t in self.v], self.valid[idx]
        else:
            idx = idx.to(self.device)
            k, v, valid = [t.index_select(0, idx) for t in self.k], [t.index_select(0, idx) for t in self.v], self.valid[idx]
        valid = valid.clone()
        valid[:, self.F] = True  # the scratch slot: the frame in flight attends to itself
        mask = valid.repeat_interleave(self.S, 1)[:, None, None, :]  # (B,1,1,(F+1)*S)
        return CacheView(k, v, mask, (self.F * self.S, self.slot_tokens))

    def store(self, view: CacheView, rows, frame_index_B: torch.Tensor) -> None:
        """Copy the scratch slot of `view` (the frame just committed) into each row's ring slot
        frame_index mod F, where it replaces the oldest frame of the window."""
        idx = _as_index(rows, self.rows, self.device)
        slots = (frame_index_B.to(self.device) % self.F).long()
        lo, hi = view.scratch
        for layer in range(self.n_layers):
            for dst, src in ((self.k[layer], view.k[layer]), (self.v[layer], view.v[layer])):
                d5 = dst.view(self.rows, self.nh, self.F + 1, self.S, self.hd)
                d5[idx, :, slots] = src[:, :, lo:hi].view(-1, self.nh, self.S, self.hd)
        self.valid[idx, slots] = True

    # ------------------------------------------------------------------ one row, for saving and loading
    def row_state(self, row: int) -> dict[str, torch.Tensor]:
        """A row's ring (without the scratch slot) for a saved session."""
        ring = self.F * self.S
        out = {"cache.slots": self.valid[row, : self.F].to(torch.uint8).cpu()}
        for layer in range(self.n_layers):
            out[f"cache.ring.k.{layer}"] = self.k[layer][row, :, :ring].cpu()
            out[f"cache.ring.v.{layer}"] = self.v[layer][row, :, :ring].cpu()
        return out

    def load_row(self, row: int, state: dict[str, torch.Tensor]) -> None:
        ring = self.F * self.S
        for layer in range(self.n_layers):
            self.k[layer][row, :, :ring] = state[f"cache.ring.k.{layer}"].to(self.device)
            self.v[layer][row, :, :ring] = state[f"cache.ring.v.{layer}"].to(self.device)
        self.valid[row] = False
        self.valid[row, : self.F] = state["cache.slots"].bool().to(self.device)

    def load_row_in_order(self, row: int, ks: list, vs: list, next_frame: int) -> None:
        """A row from keys/values in time order (oldest first; (nh, n*S, hd) per layer), the last of which is
        frame `next_frame - 1`: each frame goes to the slot it would have been committed to."""
        n = ks[0].shape[1] // self.S
        if n > self.F:
            raise ValueError(f"{n} cached frames do not fit a window of {self.F} frames")
        self.valid[row] = False
        for i in range(n):
            slot = (next_frame - n + i) % self.F
            src = slice(i * self.S, (i + 1) * self.S)
            dst = slice(slot * self.S, (slot + 1) * self.S)
            for layer in range(self.n_layers):
                self.k[layer][row, :, dst] = ks[layer][:, src].to(self.device)
                self.v[layer][row, :, dst] = vs[layer][:, src].to(self.device)
            self.valid[row, slot] = True


def _as_slice(rows, n: int):
    """Row selection -> a slice when the rows are consecutive and increasing, else an index tensor."""
    if rows is None:
        return slice(0, n)
    if isinstance(rows, slice):
        return rows
    r = [int(x) for x in (rows.tolist() if isinstance(rows, torch.Tensor) else rows)]
    if r and r == list(range(r[0], r[0] + len(r))):
        return slice(r[0], r[0] + len(r))
    return torch.tensor(r, dtype=torch.long)


def _as_index(rows, n: int, device) -> torch.Tensor:
    if rows is None:
        return torch.arange(n, device=device)
    if isinstance(rows, slice):
        return torch.arange(n, device=device)[rows]
    return torch.as_tensor(rows, dtype=torch.long, device=device)
