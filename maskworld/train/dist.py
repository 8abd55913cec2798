"""Multi-process training: one small module, DDP switched on by torchrun's environment (nanoGPT style).

    maskworld train world ...                                   # one process (no RANK in the environment)
    torchrun --nproc-per-node 2 -m maskworld train world ...    # two processes, DDP (gloo on CPU, NCCL on GPU)

Design choices (issue 9):
- `init()` starts the process group only when `RANK`/`WORLD_SIZE` are set; without them every helper
  here is a no-op and the single-process path is untouched.
- **One global batch, split across ranks.** Every rank draws the same global batch indices from a
  shared seed and keeps its contiguous part (`Part`), so N ranks together see exactly the batch one
  process would see, never the same sample twice within a step, and DDP's gradient mean equals the
  single-process gradient (up to float rounding). Random masks are drawn for the whole global batch
  on every rank and sliced the same way.
- **Rank 0 decides wall-clock things** (the `--minutes` budget, the LR it implies, when to checkpoint)
  and broadcasts them, so all ranks stop on the same step with the same LR.
- Rank 0 alone prints, writes TensorBoard, checkpoints, token caches and the world; the others wait
  at a barrier where they need its files. With several nodes, OUT must be on a shared file system.
- `--fsdp` shards parameters with FSDP2 `fully_shard` (CUDA/NCCL only); checkpoints are gathered to
  full tensors, so they load with any number of ranks, with or without FSDP.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as tdist

from maskworld.errors import UserError


def enabled() -> bool:
    return tdist.is_available() and tdist.is_initialized()


def rank() -> int:
    return tdist.get_rank() if enabled() else 0


def world_size() -> int:
    return tdist.get_world_size() if enabled() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    return rank() == 0


def launched() -> bool:
    """True under torchrun (or any launcher that sets RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init(device: torch.device) -> torch.device:
    """Start the process group if launched by torchrun; returns this rank's device (cuda:LOCAL_RANK on GPUs)."""
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
    """None in one process (callers keep their single-process code path), else this rank's Part."""
    return Part(rank(), world_size()) if world_size() > 1 else None


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
