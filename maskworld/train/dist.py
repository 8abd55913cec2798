"""Multi-process training: one small module, DDP switched on by torchrun's environment (nanoGPT style).

    maskworld train world ...                                   # one process (no RANK in the environment)
    torchrun --nproc-per-node 2 -m maskworld train world ...    # two processes, DDP (gloo on CPU, NCCL on GPU)
    torchrun --nproc-per-node 2 -m maskworld train world ... --data-split rank   # each rank reads its own episodes

Design choices:
- `init()` starts the process group only when `RANK`/`WORLD_SIZE` are set; without them every helper
  here is a no-op and the single-process path is untouched.
- **Two ways to share the data** (`--data-split`), both with `--batch`/`--tok-batch` as the global batch:
  - `global` (default): **one global batch, split across ranks.** Every rank opens all training
    episodes, draws the same global batch indices from a shared seed and keeps its contiguous part
    (`Part`), so N ranks together see exactly the batch one process would see, never the same sample
    twice within a step, and DDP's gradient mean equals the single-process gradient (up to float
    rounding). Random masks are drawn for the whole global batch on every rank and sliced the same
    way. The result does not depend on the number of processes, and resuming with another number is
    exact. The price: every rank holds the whole tokenizer frame pool (up to 200k frames) and rank 0
    alone tokenizes every episode into the shared token cache while the others wait.
    It is the default because the stores maskworld trains on fit every rank's memory, and a run that
    reproduces the one-process run is the one to trust first.
  - `rank`: **each rank reads its own episodes.** The training episodes are cut into one contiguous,
    frame-balanced run per rank in shard order (maskworld.data.rank_split), so a rank opens only
    about 1/N of the shard files; its frame pool holds only its run and it tokenizes only its run into
    its own cache (`cache_train.rank-R-of-N`), all ranks at once. No sample can be drawn by two ranks
    (their episodes are disjoint). Each rank draws its share of the global batch, and its own masks,
    from its own random stream (`seed_step`: a pure function of seed, step and rank, so `--resume`
    with the same N is exact). Use it when the data outgrows one host's memory or the tokenization
    of the whole store by rank 0 is the bottleneck (several nodes, object stores); results then
    depend on N. Validation episodes are still read by every rank (at most 512 frames).
- **Rank 0 decides wall-clock things** (the `--minutes` budget, the LR it implies, when to checkpoint)
  and broadcasts them, so all ranks stop on the same step with the same LR.
- Rank 0 alone prints, writes TensorBoard, checkpoints, the shared token caches and the world; the
  others wait at a barrier where they need its files. With several nodes, OUT must be on a shared
  file system (under `--data-split rank` every rank also writes its own token cache there).
- `--fsdp` shards parameters with FSDP2 `fully_shard` (CUDA/NCCL only); checkpoints are gathered to
  full tensors, so they load with any number of ranks, with or without FSDP.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as tdist

from maskworld.data.rank_split import Reader, reader_episodes
from maskworld.errors import UserError

DATA_SPLITS = ("global", "rank")
_data_split = "global"  # process-wide like the process group: set by init(), reset by shutdown()


def enabled() -> bool:
    return tdist.is_available() and tdist.is_initialized()


def rank() -> int:
    return tdist.get_rank() if enabled() else 0


def world_size() -> int:
    return tdist.get_world_size() if enabled() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def print0(*args, **kw) -> None:
    """print on rank 0 only (every rank runs the training under torchrun)."""
    if is_main():
        print(*args, **kw)


def launched() -> bool:
    """True under torchrun (or any launcher that sets RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init(device: torch.device, data_split: str = "global") -> torch.device:
    """Start the process group if launched by torchrun; returns this rank's device (cuda:LOCAL_RANK on GPUs).

    `data_split` ("global" or "rank", see the module docstring) holds until `shutdown()`.
    """
    global _data_split
    if data_split not in DATA_SPLITS:
        raise UserError(f"--data-split {data_split!r}: choose one of {', '.join(DATA_SPLITS)}")
    _data_split = data_split
    if not launched() or enabled():
        return _rank_device(device) if enabled() else device
    device = _rank_device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    # Long timeout: the other ranks wait at a barrier while rank 0 tokenizes the whole store.
    tdist.init_process_group(backend=backend, timeout=timedelta(minutes=60))
    return device


def _rank_device(device: torch.device) -> torch.device:
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", local_rank())
    return device


def shutdown() -> None:
    global _data_split
    _data_split = "global"
    if enabled():
        tdist.destroy_process_group()


def barrier() -> None:
    if enabled():
        if tdist.get_backend() == "nccl":
            tdist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            tdist.barrier()


def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if tdist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_mean(metrics: dict[str, float]) -> dict[str, float]:
    """Mean of each float over the ranks (one collective for the whole dict)."""
    if not enabled() or not metrics:
        return metrics
    keys = sorted(metrics)
    t = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64, device=_comm_device())
    tdist.all_reduce(t)
    return dict(zip(keys, (t / world_size()).tolist()))


def broadcast_floats(values: list[float]) -> list[float]:
    """Rank 0's values on every rank."""
    if not enabled():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    tdist.broadcast(t, src=0)
    return t.tolist()


@dataclass(frozen=True)
class Part:
    """This rank's contiguous share of a global batch."""

    rank: int = 0
    world: int = 1

    def slice(self, n: int) -> slice:
        return slice(self.rank * n // self.world, (self.rank + 1) * n // self.world)


def part() -> Part | None:
    """This rank's Part of a global batch that it drew in full (--data-split global, several processes).

    None in one process and under --data-split rank, where the rows a rank draws are all its own:
    callers then take the plain single-process code path (local means; DDP averages them).
    """
    return Part(rank(), world_size()) if world_size() > 1 and not own_data() else None


def rows_to_draw(batch: int) -> int:
    """How many rows this rank samples for a global batch of `batch`: all of them when it keeps its
    `part()` afterwards (global split), only its share when it samples its own data (rank split)."""
    if not own_data():
        return batch
    sl = Part(rank(), world_size()).slice(batch)
    return sl.stop - sl.start


# ------------------------------------------------------------------ data split (--data-split global|rank)
def data_split() -> str:
    return _data_split


def own_data() -> bool:
    """True when this rank reads and samples only its own episodes (--data-split rank, several processes).

    With one process the rank split is the global one: the single-process path stays untouched.
    """
    return _data_split == "rank" and world_size() > 1


def own_episodes(store, ids: list[int]) -> list[int]:
    """The training episodes this rank reads: all of `ids` (global split) or its own contiguous,
    frame-balanced run of them (rank split; maskworld.data.rank_split)."""
    if not own_data():
        return list(ids)
    return reader_episodes(store, ids, Reader.of(rank(), world_size()))


def own_cache_path(path: Path) -> Path:
    """Where this rank's token cache of its own episodes lives (rank split): `PATH.rank-R-of-N` beside PATH.

    The process count is in the name because the partition depends on it: resuming with another
    count builds new caches instead of reading episodes that now belong to another rank.
    """
    return path.with_name(f"{path.name}.rank-{rank()}-of-{world_size()}") if own_data() else path


def seed_step(np_rng: np.random.Generator, stream: int, step: int) -> None:
    """Rank split: reseed this rank's numpy generator and torch for `step` from (stream, step, rank).

    Each rank then draws its own batch rows, masks and corruption (not copies of rank 0's), and the
    draws of a step do not depend on the history, so `--resume` from rank 0's checkpoint (which
    holds `stream`) continues every rank exactly where it was.
    """
    np_seq, torch_seq = np.random.SeedSequence([stream, step, rank()]).spawn(2)
    np_rng.bit_generator.state = type(np_rng.bit_generator)(np_seq).state
    torch.manual_seed(int(torch_seq.generate_state(1, np.uint64)[0] >> np.uint64(1)))


def check_batch(name: str, batch: int) -> None:
    if batch % world_size():
        raise UserError(f"{name} {batch} is the global batch and must be a multiple of the {world_size()} processes; "
                        f"pass e.g. {name} {max(1, batch // world_size()) * world_size()}")


# ------------------------------------------------------------------ wrapping (DDP / FSDP2 / compile)
def wrap(model: torch.nn.Module, device: torch.device, fsdp: bool = False, compile: bool = False,
         blocks: list[torch.nn.Module] | None = None) -> torch.nn.Module:
    """The module to call in training steps. `model` itself stays the one to checkpoint and evaluate.

    DDP: a wrapper that averages gradients. FSDP2: `fully_shard` shards `model` in place (each of
    `blocks`, then the root), so the returned module is `model`. `compile`: torch.compile on top.
    """
    fwd = model
    if fsdp:
        check_fsdp(device)
        from torch.distributed.fsdp import fully_shard

        for b in blocks or []:
            fully_shard(b)
        fully_shard(model)
    elif enabled():
        from torch.nn.parallel import DistributedDataParallel as DDP

        fwd = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if compile:
        fwd = torch.compile(fwd)
    return fwd


def check_fsdp(device: torch.device) -> None:
    if device.type != "cuda":
        raise UserError("--fsdp shards parameters across GPUs (FSDP2 with NCCL) and needs CUDA; "
                        "on CPU train without --fsdp (plain DDP under torchrun)")
    if not launched():
        raise UserError("--fsdp needs torchrun, e.g. `torchrun --nproc-per-node 8 -m maskworld train world ... --fsdp`")


def is_sharded(model: torch.nn.Module) -> bool:
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Plain CPU tensors of the whole model (a collective under FSDP: call it on every rank)."""
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=False))
    return model.state_dict()


def unshard(model: torch.nn.Module, fresh: torch.nn.Module) -> torch.nn.Module:
    """After FSDP training: `fresh` (an unsharded twin) with the full weights; else `model` itself."""
    if not is_sharded(model):
        return model
    fresh.load_state_dict({k: v.detach() for k, v in full_state_dict(model).items()})
    return fresh
