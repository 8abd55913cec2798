"""Atomic, resumable checkpoints without pickles.

Layout: `DIR/step-000123/{model.safetensors, optim.safetensors, state.json}` and `DIR/latest.json`
naming the newest complete one. A checkpoint directory is fully written and fsynced before
`latest.json` is atomically replaced (maskworld.io), so a SIGKILL at any moment leaves the previous
checkpoint usable; older directories are deleted only after the pointer moves. What a SIGKILL leaves
half-written (a `.tmp-step-*` directory, a `.latest.json.tmp-*` file) is removed by the next save and,
on rank 0, by `latest_checkpoint` as a run starts.

Multi-process (maskworld.train.dist): rank 0 writes; the others return at once (DDP replicas are
identical) or, under FSDP, first help gather the full tensors. Files hold full, unsharded tensors
and index-keyed optimizer state either way, so a checkpoint loads with any number of ranks.
Every rank loads the same checkpoint (several nodes: OUT on a shared file system).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from maskworld.errors import UserError
from maskworld.io import atomic_write_json, remove_stale_temps
from maskworld.train import dist

LATEST = "latest.json"


def _optim_to_flat(opt: torch.optim.Optimizer, sd: dict | None = None) -> tuple[dict, dict]:
    sd = opt.state_dict() if sd is None else sd
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optim_from_flat(opt: torch.optim.Optimizer, tensors: dict, info: dict, model: torch.nn.Module | None = None) -> None:
    state: dict = {}
    for key, v in tensors.items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    for key, v in info["scalars"].items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    if model is not None and dist.is_sharded(model):  # FSDP: by name, each rank keeps its shard
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        names = _param_names(model, opt)
        groups = [dict(g, params=[names[i] for i in g["params"]]) for g in info["param_groups"]]
        set_optimizer_state_dict(model, opt, {"state": {names[i]: st for i, st in state.items()}, "param_groups": groups},
                                 options=StateDictOptions(full_state_dict=True))
        return
    opt.load_state_dict({"state": state, "param_groups": info["param_groups"]})


def _param_names(model: torch.nn.Module, opt: torch.optim.Optimizer) -> list[str]:
    """FQN of each optimizer parameter in state-dict index order (0, 1, ...)."""
    names = {id(p): n for n, p in model.named_parameters()}
    return [names[id(p)] for g in opt.param_groups for p in g["params"]]


def _sharded_optim_state(model, opt) -> dict:
    """FSDP: the full optimizer state (collective), re-keyed by index like `opt.state_dict()`."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    sd = get_optimizer_state_dict(model, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not dist.is_main():  # cpu_offload leaves the full state on rank 0 only
        return {}
    idx = {n: i for i, n in enumerate(_param_names(model, opt))}
    groups = [dict(g, params=[idx[n] for n in g["params"]]) for g in sd["param_groups"]]
    return {"state": {idx[n]: st for n, st in sd["state"].items()}, "param_groups": groups}


def save_checkpoint(ckpt_dir, model: torch.nn.Module, opt: torch.optim.Optimizer, step: int, state: dict, np_rng=None,
                    arrays: dict[str, np.ndarray] | None = None) -> Path:
    """Call on every rank; rank 0 writes (see the module docstring). `arrays`: numpy arrays kept beside the
    weights in arrays.npz (e.g. an agent's real experience; `load_arrays` reads them back, no pickles)."""
    ckpt_dir = Path(ckpt_dir)
    final = ckpt_dir / f"step-{step:09d}"
    if dist.is_sharded(model):  # every rank takes part in the gathers
        msd, osd = dist.full_state_dict(model), _sharded_optim_state(model, opt)
    elif not dist.is_main():
        return final
    else:
        msd, osd = model.state_dict(), None
    if not dist.is_main():
        return final
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    tmp = ckpt_dir / f".tmp-step-{step:09d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        msd = {k: v.detach().cpu().contiguous() for k, v in msd.items()}
        save_file(msd, str(tmp / "model.safetensors"))
        ot, oinfo = _optim_to_flat(opt, osd)
        ot["torch_rng"] = torch.get_rng_state()
        save_file(ot, str(tmp / "optim.safetensors"))
        full_state = dict(state, step=step, optim=oinfo)
        if np_rng is not None:
            full_state["np_rng"] = np_rng.bit_generator.state
        (tmp / "state.json").write_text(json.dumps(full_state, default=int))
        if arrays is not None:
            np.savez_compressed(tmp / "arrays.npz", **arrays)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_json(ckpt_dir / LATEST, {"dir": final.name, "step": step})
    for old in ckpt_dir.glob("step-*"):  # keep only the newest
        if old.name != final.name:
            shutil.rmtree(old, ignore_errors=True)
    _remove_debris(ckpt_dir)
    return final


def _remove_debris(ckpt_dir: Path) -> None:
    """What a killed run left half-written; only rank 0 writes here, so nothing else can be in flight."""
    for debris in ckpt_dir.glob(".tmp-step-*"):
        shutil.rmtree(debris, ignore_errors=True)
    remove_stale_temps(ckpt_dir, LATEST)


def latest_checkpoint(ckpt_dir, clean: bool = False) -> Path | None:
    """The newest complete checkpoint, or None. clean=True: the run that will write here calls it as it starts
    (on every rank), and rank 0 also removes what an earlier, killed run left half-written. A reader (another
    process watching the run) must not clean: it would delete the writer's checkpoint in flight."""
    ckpt_dir = Path(ckpt_dir)
    if clean and dist.is_main() and ckpt_dir.is_dir():
        _remove_debris(ckpt_dir)
    p = ckpt_dir / LATEST
    if not p.exists():
        return None
    d = Path(ckpt_dir) / json.loads(p.read_text())["dir"]
    return d if d.exists() else None


def load_checkpoint(path, model: torch.nn.Module, opt: torch.optim.Optimizer | None = None, np_rng=None) -> dict:
    path = Path(path)
    try:
        msd = load_file(str(path / "model.safetensors"))
        if dist.is_sharded(model):
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

            set_model_state_dict(model, msd, options=StateDictOptions(full_state_dict=True))
        else:
            model.load_state_dict(msd)
        state = json.loads((path / "state.json").read_text())
        ot = load_file(str(path / "optim.safetensors"))
    except Exception as e:
        raise UserError(f"checkpoint {path} cannot be loaded ({e}); delete it to start over, or pick another run") from e
    torch_rng = ot.pop("torch_rng", None)
    if opt is not None:
        _optim_from_flat(opt, ot, state["optim"], model)
    if torch_rng is not None:
        torch.set_rng_state(torch_rng)
    if np_rng is not None and "np_rng" in state:
        np_rng.bit_generator.state = state["np_rng"]
    return state


def load_arrays(path) -> dict[str, np.ndarray]:
    """The `arrays` a checkpoint was saved with ({} if none)."""
    f = Path(path) / "arrays.npz"
    if not f.exists():
        return {}
    try:
        with np.load(f, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:
        raise UserError(f"checkpoint {path}: arrays.npz cannot be read ({e}); delete the checkpoint to start over") from e
