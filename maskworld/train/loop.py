"""The one training loop every stage uses: budget, LR schedule, progress (maskworld.progress), TensorBoard,
periodic atomic checkpoints and exact `--resume`.

`step_fn(step) -> dict of floats` does one optimisation step; the loop owns everything else.
The budget is `steps` or `minutes` (wall clock of training, carried across resumes).

Under torchrun (maskworld.train.dist) every rank runs this loop: rank 0's clock decides the budget's
progress (hence the LR and the last step) and when to checkpoint, broadcast each step so all ranks
agree; logged metrics are averaged over ranks; only rank 0 shows the bar, writes TensorBoard and
checkpoint files. Under `--data-split rank` the loop reseeds each rank's numpy generator and torch
at every step from (stream, step, rank) (`dist.seed_step`), so ranks draw different rows and masks;
`stream` comes from the seed and is saved in the checkpoint, which keeps `--resume` exact.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskworld.progress import Progress, num, summary
from maskworld.train import dist
from maskworld.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint


@dataclass
class Budget:
    steps: int | None = None
    minutes: float | None = None

    def progress(self, step: int, elapsed_s: float) -> float:
        if self.steps:
            return min(1.0, step / self.steps)
        return min(1.0, elapsed_s / (60.0 * self.minutes))

    def describe(self) -> str:
        return f"{self.steps} steps" if self.steps else f"{num(self.minutes)} min"


# Metrics shown on the progress bar and log lines (every metric goes to TensorBoard).
SHOWN = ("loss", "psnr", "usage", "acc", "tok_s", "codes", "ppl", "recon")


def lr_at(base: float, step: int, progress: float, warmup: int = 100) -> float:
    """Linear warmup, then cosine decay to 10 % of base over the budget."""
    w = min(1.0, (step + 1) / warmup)
    return base * w * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


class _NullWriter:
    """TensorBoard stand-in on ranks other than 0."""

    def add_scalar(self, *a, **k):
        pass

    def flush(self):
        pass


def run_loop(name, model, opt, step_fn, budget: Budget, work_dir: Path, base_lr: float, np_rng: np.random.Generator,
             resume: bool, log_every: int = 20, ckpt_minutes: float = 5.0, eval_fn=None, eval_every: int = 500,
             progress_bar: bool = True, writer=None, items_per_step: float | None = None, items_unit: str = "tokens/s") -> dict:
    """Runs until the budget is spent. Returns the last logged metrics (and eval ones).

    progress_bar=False: plain progress lines instead of a bar even on a terminal. items_per_step: what one step
    processes (tokens, frames ...), for the throughput in the closing summary line (`items_unit`)."""
    ckpt_dir = Path(work_dir) / f"ckpt_{name}"
    main = dist.is_main()
    step, elapsed, st = _restore(name, ckpt_dir, model, opt, np_rng, resume, main)
    if st.get("finished"):
        return st.get("metrics", {})
    # Rank split: the same stream on every rank (drawn from the shared seed, or rank 0's checkpoint).
    stream = (int(st["rank_stream"]) if "rank_stream" in st else int(np_rng.integers(2**62))) if dist.own_data() else None
    extra = {} if stream is None else {"rank_stream": stream}
    writer = _open_writer(writer, work_dir, name, main)
    total = budget.steps if budget.steps else None
    bar = Progress(total=total, initial=step, desc=name, unit="steps", bar=progress_bar, enabled=main)
    t_start = time.time() - elapsed
    last_ckpt = t_run = time.time()
    step_run = step  # steps this process takes: the throughput of this run, not of the killed one
    metrics: dict = {}
    model.train()
    prog = budget.progress(step, time.time() - t_start)
    if dist.world_size() > 1:
        prog = dist.broadcast_floats([prog])[0]
    while prog < 1.0:
        lr = lr_at(base_lr, step, prog)
        for g in opt.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)  # Muon's groups run at a fixed multiple of the schedule
        if stream is not None:
            dist.seed_step(np_rng, stream, step)
        t0 = time.time()
        m = step_fn(step)
        dt = time.time() - t0
        step += 1
        shown = _log(name, m, lr, dt, step, writer, metrics) if step % log_every == 0 or step == 1 else {}
        bar.update(1, frac=None if total else budget.progress(step, time.time() - t_start), **shown)
        if eval_fn is not None and step % eval_every == 0:
            _evaluate(name, eval_fn, model, writer, step, metrics)
        prog, save = budget.progress(step, time.time() - t_start), time.time() - last_ckpt > 60 * ckpt_minutes
        if dist.world_size() > 1:  # rank 0's clock, so every rank takes the same steps, LR and saves
            prog, save = dist.broadcast_floats([prog, float(save)])
        if save:
            save_checkpoint(ckpt_dir, model, opt, step, {"elapsed_s": time.time() - t_start, **extra}, np_rng)
            last_ckpt = time.time()
    bar.close()
    run_s = time.time() - t_run  # before the final eval: the training throughput
    model.eval()
    if eval_fn is not None:
        metrics.update({f"val_{k}": v for k, v in eval_fn().items()})
    metrics["steps"] = step
    metrics["train_s"] = time.time() - t_start
    save_checkpoint(ckpt_dir, model, opt, step,
                    {"elapsed_s": time.time() - t_start, "finished": True, "metrics": metrics, **extra}, np_rng)
    writer.flush()
    summary(name, steps=step, minutes=metrics["train_s"] / 60, enabled=main, unit=items_unit,
            throughput=items_per_step * (step - step_run) / run_s if items_per_step and step > step_run and run_s > 0 else None,
            metric={k: v for k, v in metrics.items() if k == "loss" or k.startswith("val_")})
    return metrics


def _restore(name: str, ckpt_dir: Path, model, opt, np_rng, resume: bool, main: bool) -> tuple[int, float, dict]:
    """--resume: the last checkpoint's weights, optimizer, RNG and counters. -> (step, elapsed seconds, its state)."""
    last = latest_checkpoint(ckpt_dir, clean=True) if resume else None
    if last is None:
        return 0, 0.0, {}
    st = load_checkpoint(last, model, opt, np_rng)
    step, elapsed = int(st["step"]), float(st["elapsed_s"])
    if st.get("finished"):
        summary(name, steps=step, minutes=elapsed / 60, metric="already finished", enabled=main)
    elif main:
        print(f"[{name}] resumed from {last} at step {step} ({elapsed / 60:.1f} min done)")
    return step, elapsed, st


def _open_writer(writer, work_dir: Path, name: str, main: bool):
    """TensorBoard on rank 0 (OUT/_work/tb/NAME), nothing elsewhere."""
    if writer is not None:
        return writer
    if not main:
        return _NullWriter()
    from torch.utils.tensorboard import SummaryWriter  # tensorboard's import is slow: only when a run starts

    return SummaryWriter(str(Path(work_dir) / "tb" / name))


def _log(name: str, m: dict, lr: float, dt: float, step: int, writer, metrics: dict) -> dict:
    """A logged step: scalars to TensorBoard (averaged over ranks) -> the ones the progress line shows."""
    m["lr"] = lr
    m["step_s"] = dt
    m = dist.all_reduce_mean(m)  # same steps on every rank, so this collective lines up
    for k, v in m.items():
        writer.add_scalar(f"{name}/{k}", v, step)
    metrics.update(m)
    return {k: v for k, v in m.items() if k in SHOWN}


def _evaluate(name: str, eval_fn, model, writer, step: int, metrics: dict) -> None:
    model.eval()
    em = eval_fn()
    model.train()
    for k, v in em.items():
        writer.add_scalar(f"{name}/val_{k}", v, step)
    metrics.update({f"val_{k}": v for k, v in em.items()})
